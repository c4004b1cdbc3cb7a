//! `GET live`: the fleet pushed to a browser over a WebSocket as it changes.
//!
//! The connection thread the admin listener gave this request keeps it:
//! after the upgrade it sends the whole fleet once, then only the rows that
//! changed, checking every [`TICK`] (frames and their sequence numbers in
//! [`delta`](super::delta); the snapshot itself is shared between clients,
//! see `Web::snapshot`). The browser only listens, but for `resync` (it saw
//! a gap: the next frame is a snapshot) and a close.
//!
//! Bounds: at most [`MAX_LIVE`] clients (the admin listener has 32
//! connection threads in all); at most one frame per [`TICK`], computed
//! against what was last sent, so a slow browser is sent merged changes,
//! never a backlog; a write stuck for [`WRITE_STALL`] ends the connection
//! (the page reconnects and starts from a snapshot); frames from the
//! browser of at most 4 KiB; the session is re-checked every tick, so
//! logout, expiry or a removed token ends the stream.
use super::Web;
use super::delta::Push;
use super::http::{self, Request, Response};
use std::net::{IpAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

pub const MAX_LIVE: usize = 8;
const TICK: Duration = Duration::from_millis(250);
/// A browser that reads nothing of a frame for this long is cut off.
const WRITE_STALL: Duration = Duration::from_secs(5);

struct Slot<'a>(&'a Web);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.live_clients.fetch_sub(1, Ordering::SeqCst);
    }
}

pub fn serve(web: &Web, stream: &TcpStream, req: &Request, peer: IpAddr) {
    let refuse = |r: Response| {
        let _ = http::write_response(stream, &r, false);
    };
    let _ = peer;
    if req.method != "GET" {
        return refuse(Response::text(405, "only GET\n"));
    }
    let Some(caller) = web.caller(req) else {
        return refuse(Response::text(401, "log in first\n"));
    };
    if !Web::same_origin(req) {
        return refuse(Response::text(
            403,
            "refused: the request came from another site\n",
        ));
    }
    let upgrade = req
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.header("sec-websocket-key").filter(|_| upgrade) else {
        return refuse(Response::text(
            400,
            "a WebSocket upgrade is expected here\n",
        ));
    };
    if web.live_clients.fetch_add(1, Ordering::SeqCst) >= MAX_LIVE {
        web.live_clients.fetch_sub(1, Ordering::SeqCst);
        return refuse(Response::text(503, "too many live views open; close one\n"));
    }
    let _slot = Slot(web);
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if std::io::Write::write_all(&mut &*stream, head.as_bytes()).is_err() {
        return;
    }
    let _ = stream.set_read_timeout(Some(TICK));
    let _ = stream.set_write_timeout(Some(WRITE_STALL));
    let config = WebSocketConfig::default()
        .max_message_size(Some(4096))
        .max_frame_size(Some(4096));
    let mut ws = WebSocket::from_raw_socket(stream, Role::Server, Some(config));
    let mut push = Push::default();
    loop {
        let Some(now) = web.caller(req) else {
            let _ = ws.close(None);
            let _ = ws.flush();
            return;
        };
        if now.who != caller.who {
            return;
        }
        if let Some(snapshot) = web.snapshot()
            && let Some(frame) = push.next(
                &snapshot,
                || web.fleet_json(&snapshot),
                std::time::Instant::now(),
            )
            && ws.send(Message::text(frame)).is_err()
        {
            return;
        }
        match ws.read() {
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                return;
            }
            Ok(Message::Text(t)) if t.as_str() == "resync" => push.resync(),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}
