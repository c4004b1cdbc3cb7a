//! The admin listener against a stand-in hub (a thread reading a channel),
//! on port 0: answers, a frozen hub's 503, bounds and errors.
use super::*;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::Instant;

/// A hub stand-in: answers every request from its channel unless frozen.
fn hub(frozen: Arc<AtomicBool>) -> (Submit, Arc<Mutex<Vec<AdminQuery>>>) {
    let (tx, rx) = mpsc::channel::<AdminRequest>();
    let seen: Arc<Mutex<Vec<AdminQuery>>> = Arc::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        for req in rx {
            s.lock().unwrap().push(req.query);
            if frozen.load(Ordering::SeqCst) {
                std::mem::forget(req); // holds it, as a stuck hub would
                continue;
            }
            let body = match req.query {
                AdminQuery::Metrics => {
                    "# TYPE warden_agents_connected gauge\nwarden_agents_connected 3\n".to_string()
                }
                AdminQuery::Healthz => String::new(),
            };
            req.answer(body);
        }
    });
    let tx = Mutex::new(tx);
    let submit: Submit = Arc::new(move |req| tx.lock().unwrap().send(req).is_ok());
    (submit, seen)
}

fn get(addr: SocketAddr, raw: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[test]
fn metrics_and_healthz_are_answered_by_the_hub() {
    let frozen = Arc::new(AtomicBool::new(false));
    let (submit, seen) = hub(frozen.clone());
    let server = AdminServer::start("127.0.0.1:0", submit).unwrap();
    let addr = server.local_addr();
    assert!(server.url().starts_with("http://127.0.0.1:"));
    assert_eq!(
        get(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
        (200, "ok\n".to_string())
    );
    let (code, body) = get(addr, "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(code, 200);
    assert!(body.contains("warden_agents_connected 3"));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![AdminQuery::Healthz, AdminQuery::Metrics]
    );
    // A frozen hub fails /healthz, within the deadline.
    frozen.store(true, Ordering::SeqCst);
    let started = Instant::now();
    assert_eq!(get(addr, "GET /healthz HTTP/1.0\r\n\r\n").0, 503);
    let took = started.elapsed();
    assert!(
        took >= HEALTHZ_DEADLINE && took < HEALTHZ_DEADLINE + Duration::from_secs(3),
        "{took:?}"
    );
    server.shutdown();
}

#[test]
fn a_gone_hub_is_503_and_bad_requests_are_refused() {
    let submit: Submit = Arc::new(|_| false);
    let server = AdminServer::start("127.0.0.1:0", submit).unwrap();
    let addr = server.local_addr();
    assert_eq!(get(addr, "GET /healthz HTTP/1.1\r\n\r\n").0, 503);
    assert_eq!(get(addr, "GET / HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(
        get(
            addr,
            "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        )
        .0,
        405
    );
    assert_eq!(get(addr, "garbage\r\n\r\n").0, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(get(addr, &huge).0, 431);
    server.shutdown();
}

/// The whole answer, as sent.
fn exchange(addr: SocketAddr, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn answers_are_pinned_to_the_byte() {
    let (submit, _seen) = hub(Arc::new(AtomicBool::new(false)));
    let server = AdminServer::start("127.0.0.1:0", submit).unwrap();
    let addr = server.local_addr();
    assert_eq!(
        exchange(addr, "PUT /healthz HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n\
         Content-Length: 9\r\nConnection: close\r\nAllow: GET, HEAD\r\n\r\nonly GET\n"
    );
    // HEAD: the length of the body, not the body.
    assert_eq!(
        exchange(addr, "HEAD /healthz HTTP/1.1\r\n\r\n"),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\
         Connection: close\r\n\r\n"
    );
    server.shutdown();
}

#[test]
fn request_heads_parse() {
    /// Raw head, and the (method, path) or status code it gets.
    type Row = (&'static str, Result<(&'static str, &'static str), u16>);
    let table: &[Row] = &[
        (
            "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
            Ok(("GET", "/metrics")),
        ),
        ("HEAD /healthz?probe HTTP/1.0\n\n", Ok(("HEAD", "/healthz"))),
        ("GET /metrics\r\n\r\n", Err(400)),
        ("GET /metrics HTTP/2 x\r\n\r\n", Err(400)),
        ("GET /metrics HTTP/1.1\r\nHost: a\r\n", Err(400)),
        ("", Err(400)),
    ];
    for (raw, want) in table {
        let got = http::read_request(raw.as_bytes()).map(|r| (r.method, r.path));
        let want = want.map(|(m, p)| (m.to_string(), p.to_string()));
        assert_eq!(got, want, "{raw:?}");
    }
}

#[test]
fn connections_beyond_the_cap_get_503_at_once() {
    let frozen = Arc::new(AtomicBool::new(true));
    let (submit, seen) = hub(frozen);
    let server = AdminServer::start("127.0.0.1:0", submit).unwrap();
    let addr = server.local_addr();
    // Fill every slot with a request the frozen hub never answers.
    let held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
            s
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < MAX_CONNECTIONS {
        assert!(Instant::now() < deadline, "the slots did not fill");
        std::thread::yield_now();
    }
    let started = Instant::now();
    let (code, body) = get(addr, "GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(
        (code, body.as_str()),
        (503, "busy: too many admin connections\n")
    );
    assert!(
        started.elapsed() < HEALTHZ_DEADLINE,
        "refused at once, not after a wait"
    );
    drop(held);
    server.shutdown();
}
