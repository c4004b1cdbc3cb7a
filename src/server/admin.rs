//! The admin listener (`--admin-listen ADDR:PORT`): a small blocking
//! HTTP/1.1 server on a std `TcpListener`, serving `GET /metrics` and
//! `GET /healthz`.
//!
//! Both are answered by the hub, not by this module: each request becomes an
//! [`AdminRequest`] handed to `submit` (the hub wraps it in its event enum and
//! sends it into its channel) and the connection thread waits for the answer
//! with a deadline. A frozen hub therefore fails `/healthz` (503), as the
//! contract requires.
//!
//! Bounds: the request is read by the dashboard's bounded parser
//! ([`http::read_request`]: an 8 KiB head, a small body by `Content-Length`),
//! 5 s to read it and to write the answer, at most [`MAX_CONNECTIONS`] connection
//! threads (more get a 503 at once), one request per connection
//! (`Connection: close`). Only GET (and HEAD) of the two paths; anything else
//! gets 404 or 405. Hand-written rather than a crate (tiny_http): two fixed
//! paths, no keep-alive; requests and answers go through `web::http`, the
//! one HTTP/1.1 reader and writer of the listener.
use super::web::http;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

pub const MAX_CONNECTIONS: usize = 32;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `/healthz` waits for the hub: a hub slower than this is not
/// responsive.
pub const HEALTHZ_DEADLINE: Duration = Duration::from_secs(2);
/// `/metrics` renders the whole fleet: a little more time.
pub const METRICS_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminQuery {
    Healthz,
    Metrics,
}

/// One question for the hub. The hub answers with [`AdminRequest::answer`]
/// (a `/metrics` page, or anything for `/healthz`); dropping it unanswered
/// makes the client get a 503.
#[derive(Debug)]
pub struct AdminRequest {
    pub query: AdminQuery,
    reply: mpsc::SyncSender<String>,
}

impl AdminRequest {
    /// A request and the receiver of its answer (what the listener does per
    /// connection; for the hub's own tests).
    pub fn new(query: AdminQuery) -> (AdminRequest, mpsc::Receiver<String>) {
        let (reply, rx) = mpsc::sync_channel(1);
        (AdminRequest { query, reply }, rx)
    }

    pub fn answer(self, body: String) {
        // The connection may have given up waiting: nothing to do then.
        let _ = self.reply.try_send(body);
    }
}

/// Hands a request to the hub; false if the hub is gone.
pub type Submit = Arc<dyn Fn(AdminRequest) -> bool + Send + Sync>;

pub struct AdminServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Bind `addr` (port 0 picks one) and serve until [`AdminServer::shutdown`].
    pub fn start(addr: &str, submit: Submit) -> io::Result<AdminServer> {
        Self::start_with_web(addr, submit, None)
    }

    /// [`AdminServer::start`], with the dashboard answering every path but
    /// `/metrics` and `/healthz` (dashboard hook).
    pub fn start_with_web(
        addr: &str,
        submit: Submit,
        web: Option<Arc<super::web::Web>>,
    ) -> io::Result<AdminServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("admin-listen".into())
            .spawn(move || accept_loop(&listener, &s, &active, &submit, web))?;
        Ok(AdminServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR:PORT`: what the server prints and `externalURL` carries.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Decrements the connection count when a connection thread ends, however.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(
    listener: &TcpListener,
    stop: &AtomicBool,
    active: &Arc<AtomicUsize>,
    submit: &Submit,
    web: Option<Arc<super::web::Web>>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = respond(
                &stream,
                503,
                "text/plain",
                "busy: too many admin connections\n",
                false,
            );
            continue;
        }
        let slot = Slot(active.clone());
        let submit = submit.clone();
        let web = web.clone();
        let spawned = std::thread::Builder::new()
            .name("admin-conn".into())
            .spawn(move || {
                let _slot = slot;
                serve(&stream, &submit, web.as_deref());
            });
        if spawned.is_err() {
            // The slot went with the closure that did not run: its Drop ran.
            continue;
        }
    }
}

/// A parsed request line: method and path (query string dropped).
#[derive(Debug, PartialEq)]
pub struct RequestLine {
    pub method: String,
    pub path: String,
}

impl From<http::Request> for RequestLine {
    fn from(request: http::Request) -> RequestLine {
        RequestLine {
            method: request.method,
            path: request.path,
        }
    }
}

fn serve(stream: &TcpStream, submit: &Submit, web: Option<&super::web::Web>) {
    // Dashboard hook: it reads the request and answers all but these two.
    let head = match web {
        Some(web) => match web.serve(stream) {
            Some(line) => Ok(line),
            None => return,
        },
        None => http::read_request(stream).map(RequestLine::from),
    };
    let head = match head {
        Ok(h) => h,
        Err(code) => {
            let _ = respond(stream, code, "text/plain", "bad request\n", false);
            return;
        }
    };
    let query = match head.path.as_str() {
        "/healthz" => AdminQuery::Healthz,
        "/metrics" => AdminQuery::Metrics,
        _ => {
            let _ = respond(
                stream,
                404,
                "text/plain",
                "not found: try /metrics or /healthz\n",
                false,
            );
            return;
        }
    };
    let head_only = head.method == "HEAD";
    if head.method != "GET" && !head_only {
        let _ = respond(stream, 405, "text/plain", "only GET\n", false);
        return;
    }
    let deadline = match query {
        AdminQuery::Healthz => HEALTHZ_DEADLINE,
        AdminQuery::Metrics => METRICS_DEADLINE,
    };
    let (request, rx) = AdminRequest::new(query);
    let answer = if submit(request) {
        rx.recv_timeout(deadline).ok()
    } else {
        None
    };
    let _ = match (query, answer) {
        (AdminQuery::Healthz, Some(_)) => respond(stream, 200, "text/plain", "ok\n", head_only),
        (AdminQuery::Metrics, Some(page)) => respond(
            stream,
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            &page,
            head_only,
        ),
        (_, None) => respond(
            stream,
            503,
            "text/plain",
            "the hub is not responding\n",
            head_only,
        ),
    };
}

fn respond(
    stream: &TcpStream,
    code: u16,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> io::Result<()> {
    let allow: &[(&str, &str)] = if code == 405 {
        &[("Allow", "GET, HEAD")]
    } else {
        &[]
    };
    http::write_answer(
        stream,
        code,
        content_type,
        allow,
        body.as_bytes(),
        head_only,
    )
}

#[cfg(test)]
#[path = "admin_tests.rs"]
mod tests;
