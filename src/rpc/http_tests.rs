//! The HTTP path against a small server on 127.0.0.1:0 run by each test:
//! request bytes, keep-alive, timeouts, and node answers mapped to variants.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::*;
/// What the test server does with one request.
enum Answer {
    /// An HTTP response with this status and body.
    Reply(u16, String),
    /// Read the request and say nothing.
    Silence,
    /// Send the status line, headers and half of a promised body, then nothing.
    StallBody,
}

struct Recorded {
    head: String,
    body: String,
}

/// An HTTP/1.1 server on 127.0.0.1:0 with keep-alive, answering each request
/// as `answer` says; it serves one connection at a time on one named thread.
struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(answer: impl Fn(&Value) -> Answer + Send + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicU64::new(0));
        let thread = std::thread::Builder::new()
            .name("rpc-test-server".into())
            .spawn({
                let (stop, requests, connections) =
                    (stop.clone(), requests.clone(), connections.clone());
                move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(stream) = stream else { continue };
                        connections.fetch_add(1, Ordering::SeqCst);
                        serve(stream, &answer, &requests);
                    }
                }
            })
            .unwrap();
        TestServer {
            addr,
            stop,
            requests,
            connections,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.addr.port())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept; the thread then sees `stop`.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves requests on one connection until the peer closes it (or 10 s of
/// silence, so that no test can hang on it).
fn serve(stream: TcpStream, answer: &dyn Fn(&Value) -> Answer, log: &Mutex<Vec<Recorded>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8(body).unwrap();
        let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        log.lock().unwrap().push(Recorded { head, body });
        let result = match answer(&request) {
            Answer::Reply(status, text) => write!(
                writer,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json; charset=utf-8\r\n\
                 content-length: {}\r\n\r\n{text}",
                text.len()
            ),
            Answer::Silence => Ok(()),
            Answer::StallBody => write!(
                writer,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"jsonrpc\":"
            ),
        };
        if result.is_err() {
            return;
        }
    }
}

/// A JSON-RPC success answering `request`.
fn result(request: &Value, result: Value) -> Answer {
    Answer::Reply(
        200,
        json!({"jsonrpc": "2.0", "id": request["id"], "result": result}).to_string(),
    )
}

fn error_answer(request: &Value, code: i64, message: &str) -> Answer {
    Answer::Reply(
        200,
        json!({"jsonrpc": "2.0", "id": request["id"], "error": {"code": code, "message": message}})
            .to_string(),
    )
}

#[test]
fn requests_are_json_posts_with_the_url_host_on_one_kept_alive_connection() {
    let server = TestServer::start(|request| result(request, json!(true)));
    let client = RpcClient::new(Endpoint::Http { url: server.url() }, Duration::from_secs(5));
    assert_eq!(
        client.call("system_health", Value::Null).unwrap(),
        json!(true)
    );
    assert!(client.author_has_session_keys("0x1234").unwrap());
    let requests = server.requests.lock().unwrap();
    assert_eq!(requests.len(), 2);
    let head = requests[0].head.to_ascii_lowercase();
    assert!(head.starts_with("post / http/1.1\r\n"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/json\r\n"),
        "{head}"
    );
    let host_lines: Vec<&str> = head.lines().filter(|l| l.starts_with("host:")).collect();
    assert_eq!(
        host_lines,
        [format!("host: 127.0.0.1:{}", server.addr.port())]
    );
    assert!(head.contains("user-agent: warden/"), "{head}");
    let first: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(
        first,
        json!({"jsonrpc": "2.0", "id": first["id"], "method": "system_health", "params": []})
    );
    assert!(first["id"].is_u64());
    let second: Value = serde_json::from_str(&requests[1].body).unwrap();
    assert_eq!(second["method"], "author_hasSessionKeys");
    assert_eq!(second["params"], json!(["0x1234"]));
    assert_ne!(first["id"], second["id"]);
    drop(requests);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn localhost_urls_send_localhost_as_host() {
    let server = TestServer::start(|request| result(request, json!("Creditcoin3")));
    let url = format!("http://localhost:{}/", server.addr.port());
    let client = RpcClient::new(Endpoint::Http { url }, Duration::from_secs(5));
    assert_eq!(client.system_chain().unwrap(), "Creditcoin3");
    let requests = server.requests.lock().unwrap();
    let head = requests[0].head.to_ascii_lowercase();
    assert!(
        head.contains(&format!("\r\nhost: localhost:{}\r\n", server.addr.port())),
        "{head}"
    );
}

#[test]
fn a_silent_node_times_out_within_the_bound() {
    let server = TestServer::start(|_| Answer::Silence);
    let timeout = Duration::from_millis(400);
    let client = RpcClient::new(Endpoint::Http { url: server.url() }, timeout);
    let started = Instant::now();
    let error = client.system_health().unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        error,
        RpcError::Timeout {
            method: "system_health".into(),
            endpoint: server.url(),
            after: timeout
        }
    );
    assert!(took >= timeout, "{took:?}");
    assert!(took < timeout + Duration::from_millis(500), "{took:?}");
}

#[test]
fn a_body_that_stalls_times_out_within_the_bound() {
    let server = TestServer::start(|_| Answer::StallBody);
    let timeout = Duration::from_millis(400);
    let client = RpcClient::new(Endpoint::Http { url: server.url() }, timeout);
    let started = Instant::now();
    let error = client.system_version().unwrap_err();
    assert_eq!(error.code().as_str(), "timeout", "{error:?}");
    assert!(started.elapsed() < timeout + Duration::from_millis(500));
}

#[test]
fn node_answers_map_to_their_variants() {
    let server = TestServer::start(|request| match request["method"].as_str() {
        Some("author_rotateKeys") => error_answer(
            request,
            -32601,
            "RPC call is unsafe to be called externally",
        ),
        Some("system_unknown") => error_answer(request, -32601, "Method not found"),
        Some("system_host") => {
            Answer::Reply(403, "Provided Host header is not whitelisted.".into())
        }
        Some("system_garbage") => Answer::Reply(200, "{\"jsonrpc\":\"2.0\",".into()),
        Some("system_html") => Answer::Reply(200, "<html>proxy</html>".into()),
        _ => result(request, Value::Null),
    });
    let client = RpcClient::new(Endpoint::Http { url: server.url() }, Duration::from_secs(5));
    let denied = client.author_rotate_keys().unwrap_err();
    assert!(denied.is_unsafe_denied(), "{denied:?}");
    let missing = client.call("system_unknown", json!([])).unwrap_err();
    assert!(missing.is_method_not_found(), "{missing:?}");
    let host = client.call("system_host", json!([])).unwrap_err();
    assert!(host.is_host_refused(), "{host:?}");
    assert!(host.to_string().contains("through docker exec"));
    for method in ["system_garbage", "system_html"] {
        let error = client.call(method, json!([])).unwrap_err();
        assert!(
            matches!(error, RpcError::Protocol { .. }),
            "{method}: {error:?}"
        );
    }
    // The connection survives all of these.
    assert_eq!(client.call("system_other", json!([])).unwrap(), Value::Null);
}

#[test]
fn a_closed_port_is_unavailable_at_once() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = RpcClient::new(Endpoint::loopback(port), Duration::from_secs(10));
    let started = Instant::now();
    let error = client.system_health().unwrap_err();
    assert!(
        matches!(&error, RpcError::Unavailable { endpoint, .. } if *endpoint == format!("http://127.0.0.1:{port}/")),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    let text = error.to_string();
    assert!(text.contains("check that the node runs"), "{text}");
    // An unsafe call to loopback is sent, and fails the same way.
    assert_eq!(
        client.author_rotate_keys().unwrap_err().code().as_str(),
        "unavailable"
    );
}

#[test]
fn typed_results() {
    let server = TestServer::start(|request| {
        let params = &request["params"];
        match request["method"].as_str().unwrap_or_default() {
            "system_health" => result(
                request,
                json!({"peers": 3, "isSyncing": false, "shouldHavePeers": true}),
            ),
            "system_syncState" => result(
                request,
                json!({"startingBlock": 0, "currentBlock": 120, "highestBlock": 248}),
            ),
            "system_nodeRoles" => result(request, json!(["Authority"])),
            "system_version" => result(request, json!("3.39.0-abc")),
            "chain_getHeader" if params == &json!(["0xdead"]) => result(request, Value::Null),
            "chain_getHeader" => result(
                request,
                json!({"parentHash": "0x01", "number": "0x1a", "stateRoot": "0x02",
                       "extrinsicsRoot": "0x03", "digest": {"logs": []}}),
            ),
            "chain_getFinalizedHead" => result(request, json!("0xabcd")),
            "author_rotateKeys" => result(request, json!("0x00ff")),
            "author_hasKey" => result(request, json!(params == &json!(["0x11", "gran"]))),
            "state_getStorage" if params == &json!(["0x26aa", "0xbeef"]) => {
                result(request, json!("0x0102ff"))
            }
            "state_getStorage" if params == &json!(["0x26aa"]) => result(request, Value::Null),
            "state_getStorage" => result(request, json!("0xzz")),
            _ => result(request, json!({"unexpected": true})),
        }
    });
    let client = RpcClient::new(Endpoint::Http { url: server.url() }, Duration::from_secs(5));
    assert_eq!(
        client.system_health().unwrap(),
        Health {
            peers: 3,
            is_syncing: false,
            should_have_peers: true
        }
    );
    assert_eq!(
        client.system_sync_state().unwrap(),
        SyncState {
            starting_block: 0,
            current_block: 120,
            highest_block: 248
        }
    );
    assert_eq!(client.system_node_roles().unwrap(), ["Authority"]);
    assert_eq!(client.system_version().unwrap(), "3.39.0-abc");
    assert_eq!(
        client.chain_get_header(None).unwrap(),
        Some(Header {
            parent_hash: "0x01".into(),
            number: 26,
            state_root: "0x02".into(),
            extrinsics_root: "0x03".into()
        })
    );
    assert_eq!(client.chain_get_header(Some("0xdead")).unwrap(), None);
    assert_eq!(client.chain_get_finalized_head().unwrap(), "0xabcd");
    assert_eq!(client.author_rotate_keys().unwrap(), "0x00ff");
    assert!(client.author_has_key("0x11", "gran").unwrap());
    assert!(!client.author_has_key("0x12", "gran").unwrap());
    assert_eq!(
        client.state_get_storage("0x26aa", Some("0xbeef")).unwrap(),
        Some(vec![1, 2, 255])
    );
    assert_eq!(client.state_get_storage("0x26aa", None).unwrap(), None);
    let bad_hex = client.state_get_storage("0x00", None).unwrap_err();
    assert!(matches!(bad_hex, RpcError::Protocol { .. }), "{bad_hex:?}");
    // A result of the wrong shape is a protocol error naming the method.
    let other = client.for_endpoint(Endpoint::Http { url: server.url() });
    let error = other.system_chain().unwrap_err();
    assert!(
        matches!(&error, RpcError::Protocol { method, .. } if method == "system_chain"),
        "{error:?}"
    );
}
