//! `Connection` over real loopback sockets: the upgrade and its
//! authorization, frames both ways, the size limit, and the handshake
//! deadline. TLS and mTLS run end to end in tests/it/tls.rs.
#![allow(
    clippy::result_large_err,
    reason = "tungstenite's callback type fixes the size of the error response"
)]
use super::*;
use std::net::TcpListener;
use std::thread;

const LIMIT: usize = 1024;
const WAIT: Duration = Duration::from_secs(10);

fn plain_client_tls() -> Arc<rustls::ClientConfig> {
    client_tls_config(&ClientTls::default()).unwrap()
}

/// A listener whose first connection is upgraded on a thread, accepting only
/// `Bearer good`.
fn serve_one(
    limit: usize,
) -> (
    String,
    thread::JoinHandle<Result<Connection, TransportError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/agent", listener.local_addr().unwrap());
    let server = thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        accept(
            socket,
            None,
            limit,
            Instant::now() + WAIT,
            |request, chain| {
                assert!(chain.is_empty(), "no client certificate over plain TCP");
                match request.headers().get("authorization") {
                    Some(v) if v == "Bearer good" => Ok(()),
                    _ => Err(tungstenite::http::Response::builder()
                        .status(401)
                        .body(Some("bad token".to_owned()))
                        .unwrap()),
                }
            },
        )
        .map(|(conn, ())| conn)
    });
    (url, server)
}

/// The next non-control frames, waiting at most [`WAIT`].
fn next(conn: &Connection) -> Vec<Incoming> {
    conn.set_read_timeout(WAIT).unwrap();
    let mut buf = Connection::read_buffer();
    loop {
        match conn.read_batch(&mut buf) {
            ReadOutcome::Frames(frames) => {
                let frames: Vec<Incoming> = frames
                    .into_iter()
                    .filter(|f| !matches!(f, Incoming::Control))
                    .collect();
                if !frames.is_empty() {
                    return frames;
                }
            }
            ReadOutcome::Idle => panic!("nothing arrived within {WAIT:?}"),
        }
    }
}

fn text(frames: &[Incoming]) -> &str {
    match frames {
        [Incoming::Text(t)] => t,
        other => panic!("expected one text frame, got {other:?}"),
    }
}

#[test]
fn frames_go_both_ways_and_a_close_reaches_the_other_side() {
    let (url, server) = serve_one(LIMIT);
    let client = connect(&url, "good", &plain_client_tls(), LIMIT, WAIT).unwrap();
    let server = server.join().unwrap().unwrap();
    assert!(!client.is_tls() && !server.is_tls());
    assert_eq!(server.peer(), client.socket.local_addr().unwrap());

    client.send_text("hello").unwrap();
    assert_eq!(text(&next(&server)), "hello");
    server.send_text("world").unwrap();
    assert_eq!(text(&next(&client)), "world");

    client.close(1000, "bye");
    assert!(matches!(next(&server)[..], [Incoming::Closed]));
}

#[test]
fn a_refused_upgrade_is_the_http_status_and_body() {
    let (url, server) = serve_one(LIMIT);
    let Err(error) = connect(&url, "wrong", &plain_client_tls(), LIMIT, WAIT) else {
        panic!("a wrong token was accepted");
    };
    match &error {
        TransportError::Refused { status, body } => {
            assert_eq!((*status, body.as_str()), (401, "bad token"));
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "server refused the connection with HTTP 401: bad token"
    );
    assert!(server.join().unwrap().is_err());
}

#[test]
fn a_message_of_exactly_the_limit_passes_and_one_byte_more_is_too_big() {
    let (url, server) = serve_one(LIMIT);
    let client = connect(&url, "good", &plain_client_tls(), 4 * LIMIT, WAIT).unwrap();
    let server = server.join().unwrap().unwrap();
    let exact = "x".repeat(LIMIT);
    client.send_text(&exact).unwrap();
    assert_eq!(text(&next(&server)).len(), LIMIT);
    client.send_text(&"y".repeat(LIMIT + 1)).unwrap();
    assert!(matches!(next(&server)[..], [Incoming::TooBig]));
}

#[test]
fn a_peer_that_never_finishes_the_handshake_is_dropped_at_the_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let _silent = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (socket, _) = listener.accept().unwrap();
    let started = Instant::now();
    let result = accept(
        socket,
        None,
        LIMIT,
        Instant::now() + Duration::from_millis(300),
        |_, _| Ok(()),
    );
    assert!(
        matches!(result, Err(TransportError::HandshakeTimeout)),
        "{:?}",
        result.map(|_| ())
    );
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
}

#[test]
fn a_bad_url_is_refused_before_any_connection() {
    for url in ["http://127.0.0.1:1/agent", "not a url", "ws:///agent"] {
        let result = connect(url, "good", &plain_client_tls(), LIMIT, WAIT);
        assert!(
            matches!(result, Err(TransportError::BadUrl(_))),
            "{url}: {:?}",
            result.map(|_| ())
        );
    }
}

#[test]
fn queued_sends_return_at_once_and_arrive_in_order() {
    let (url, server) = serve_one(LIMIT);
    let client = connect(&url, "good", &plain_client_tls(), LIMIT, WAIT).unwrap();
    let server = Arc::new(server.join().unwrap().unwrap());
    let pool = WriterPool::start(2).unwrap();
    server.queue_writes(&pool).unwrap();
    for n in 0..200 {
        server.send_text(&format!("frame {n}")).unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 200 {
        for frame in next(&client) {
            match frame {
                Incoming::Text(t) => seen.push(t),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let expected: Vec<String> = (0..200).map(|n| format!("frame {n}")).collect();
    assert_eq!(seen, expected);
    let deadline = Instant::now() + WAIT;
    while !server.is_flushed() {
        assert!(Instant::now() < deadline, "the queue never drained");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_peer_that_stops_reading_is_cut_off_when_its_queue_is_full() {
    let (url, server) = serve_one(LIMIT);
    let client = connect(&url, "good", &plain_client_tls(), LIMIT, WAIT).unwrap();
    let server = Arc::new(server.join().unwrap().unwrap());
    let pool = WriterPool::start(1).unwrap();
    server.queue_writes(&pool).unwrap();
    // The client never reads: socket buffers fill, then the queue.
    let frame = "z".repeat(256 * 1024);
    let mut queued = 0usize;
    let refused = loop {
        match server.send_text(&frame) {
            Ok(()) => queued += frame.len(),
            Err(e) => break e,
        }
        assert!(
            queued < 4 * writer::QUEUE_MAX_BYTES,
            "never cut off after {queued} bytes"
        );
    };
    assert!(refused.to_string().contains("not reading"), "{refused}");
    assert!(
        server.send_text("after").is_err(),
        "a cut-off peer stays cut off"
    );
    drop(client);
}
