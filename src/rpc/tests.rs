//! Pure logic (port rule, loopback check, argv, reply and exec mapping) from
//! tables; the HTTP path against a small server on 127.0.0.1:0 run by each test.
//! No container is needed here: the integration tests drive the test node.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitStatus;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::*;

// ---- endpoints ----

#[test]
fn port_rule_by_name() {
    for (name, port) in [
        ("3node0", Some(33980)),
        ("3node1", Some(33981)),
        ("3node12", Some(33992)),
        ("node0", Some(33880)),
        ("node7", Some(33887)),
        ("node01", Some(33881)),
        ("3node31555", Some(65535)),
        ("3node31556", None),
        ("3node99999999999999999999", None),
        ("3node", None),
        ("node", None),
        ("3node-1", None),
        ("3node+1", None),
        ("3nodex", None),
        ("node1a", None),
        ("my3node0", None),
        ("validator", None),
        ("", None),
    ] {
        assert_eq!(port_by_name(name), port, "{name:?}");
    }
}

#[test]
fn for_container_prefers_the_override() {
    let custom = Endpoint::DockerExec {
        container: "3node0".into(),
        port: 9944,
    };
    let rule = EndpointRule::new().with_override("3node0", custom.clone());
    assert_eq!(Endpoint::for_container("3node0", &rule), Some(custom));
    assert_eq!(
        Endpoint::for_container("3node1", &rule),
        Some(Endpoint::Http {
            url: "http://127.0.0.1:33981/".into()
        })
    );
    assert_eq!(
        Endpoint::for_container("node2", &EndpointRule::new()),
        Some(Endpoint::loopback(33882))
    );
    assert_eq!(Endpoint::for_container("alice", &rule), None);
}

/// A container from the captured `docker inspect` fixture, with its command
/// line and network replaced.
fn inspected(name: &str, network_mode: &str, args: &[&str]) -> ContainerInspect {
    let text = include_str!("../../tests/fixtures/docker/inspect.json");
    let mut inspect = crate::docker::parse_inspect(text).unwrap().remove(0);
    inspect.name = name.to_owned();
    inspect.host_config.network_mode = network_mode.to_owned();
    inspect.args = args.iter().map(|a| (*a).to_owned()).collect();
    inspect
}

#[test]
fn from_inspect_follows_the_network_and_the_rpc_port() {
    let host = inspected(
        "3node0",
        "host",
        &["--chain", "mainnet", "--rpc-port", "33980"],
    );
    assert_eq!(
        Endpoint::from_inspect(&host).unwrap(),
        Endpoint::loopback(33980)
    );
    let host_eq = inspected("v", "host", &["--rpc-port=40000", "--validator"]);
    assert_eq!(
        Endpoint::from_inspect(&host_eq).unwrap(),
        Endpoint::loopback(40000)
    );
    let host_default = inspected("v", "host", &["--validator"]);
    assert_eq!(
        Endpoint::from_inspect(&host_default).unwrap(),
        Endpoint::loopback(9944)
    );
    for mode in ["default", "bridge", "cc3-net", "none", "container:abc"] {
        let bridged = inspected("3node1", mode, &["--rpc-port", "9933"]);
        assert_eq!(
            Endpoint::from_inspect(&bridged).unwrap(),
            Endpoint::DockerExec {
                container: "3node1".into(),
                port: 9933
            },
            "{mode}"
        );
    }
    for bad in ["abc", "0", "70000", ""] {
        let broken = inspected("3node2", "host", &["--rpc-port", bad]);
        let error = Endpoint::from_inspect(&broken).unwrap_err();
        assert_eq!(error.code().as_str(), "unavailable");
        assert!(error.to_string().contains("--rpc-port"), "{error}");
    }
}

#[test]
fn resolve_order_is_override_then_inspect_then_name() {
    let bridged = inspected("3node0", "bridge", &["--rpc-port", "9944"]);
    let by_inspect = Endpoint::DockerExec {
        container: "3node0".into(),
        port: 9944,
    };
    let rule = EndpointRule::new();
    assert_eq!(
        Endpoint::resolve("3node0", &rule, Some(&bridged)).unwrap(),
        by_inspect
    );
    assert_eq!(
        Endpoint::resolve("3node0", &rule, None).unwrap(),
        Endpoint::loopback(33980)
    );
    let configured = Endpoint::loopback(1234);
    let rule = EndpointRule::new().with_override("3node0", configured.clone());
    assert_eq!(
        Endpoint::resolve("3node0", &rule, Some(&bridged)).unwrap(),
        configured
    );
    let error = Endpoint::resolve("alice", &rule, None).unwrap_err();
    assert_eq!(error.code().as_str(), "unavailable");
    assert!(error.to_string().contains("alice"), "{error}");
}

#[test]
fn endpoint_display_and_json() {
    assert_eq!(
        Endpoint::loopback(33980).to_string(),
        "http://127.0.0.1:33980/"
    );
    let exec = Endpoint::DockerExec {
        container: "3node0".into(),
        port: 9944,
    };
    assert_eq!(
        exec.to_string(),
        "http://127.0.0.1:9944/ in container 3node0"
    );
    assert_eq!(
        serde_json::to_value(&exec).unwrap(),
        json!({"kind": "docker_exec", "container": "3node0", "port": 9944})
    );
    assert_eq!(
        serde_json::from_value::<Endpoint>(json!({"kind": "http", "url": "http://127.0.0.1:1/"}))
            .unwrap(),
        Endpoint::loopback(1)
    );
}

// ---- loopback, Host ----

#[test]
fn loopback_urls() {
    for (url, loopback) in [
        ("http://127.0.0.1:9944/", true),
        ("http://127.0.0.1:9944", true),
        ("http://localhost:9944/", true),
        ("http://LocalHost:9944/", true),
        ("http://[::1]:9944/", true),
        ("https://127.0.0.1/", true),
        ("http://127.0.0.2:9944/", false),
        ("http://10.0.0.5:9944/", false),
        ("http://0.0.0.0:9944/", false),
        ("http://[::ffff:127.0.0.1]:9944/", false),
        ("http://127.0.0.1.nip.io:9944/", false),
        ("http://localhost.example.com/", false),
        ("http://127.0.0.1@evil.example:9944/", false),
        ("http://evil.example/?h=127.0.0.1", false),
        ("ws://127.0.0.1:9944/", false),
        ("127.0.0.1:9944", false),
        ("not a url", false),
        ("", false),
    ] {
        assert_eq!(is_loopback_url(url), loopback, "{url:?}");
    }
}

#[test]
fn host_header_always_carries_the_port() {
    for (url, host) in [
        ("http://127.0.0.1:9944/", "127.0.0.1:9944"),
        ("http://localhost:33980", "localhost:33980"),
        ("http://[::1]:9944/", "[::1]:9944"),
        ("http://127.0.0.1/", "127.0.0.1:80"),
        ("https://localhost/", "localhost:443"),
    ] {
        assert_eq!(host_header(url).unwrap(), host, "{url}");
    }
    assert!(host_header("127.0.0.1:9944").is_err());
    assert!(host_header("nonsense url").is_err());
}

#[test]
fn unsafe_methods() {
    for method in [
        "author_rotateKeys",
        "author_hasKey",
        "author_hasSessionKeys",
        "author_insertKey",
        "offchain_localStorageSet",
        "system_addReservedPeer",
        "system_peers",
    ] {
        assert!(is_unsafe_method(method), "{method}");
    }
    for method in [
        "system_health",
        "system_syncState",
        "chain_getHeader",
        "state_getStorage",
        "rpc_methods",
    ] {
        assert!(!is_unsafe_method(method), "{method}");
    }
}

#[test]
fn unsafe_calls_never_leave_for_a_non_loopback_address() {
    // 192.0.2.0/24 is TEST-NET-1: nothing answers there, so a call that was
    // sent would time out instead of failing at once.
    let client = RpcClient::new(
        Endpoint::Http {
            url: "http://192.0.2.1:9944/".into(),
        },
        Duration::from_millis(300),
    );
    for method in ["author_rotateKeys", "author_hasKey", "system_peers"] {
        let started = Instant::now();
        let error = client.call(method, json!([])).unwrap_err();
        assert_eq!(
            error,
            RpcError::NotLoopback {
                method: method.into(),
                endpoint: "http://192.0.2.1:9944/".into()
            }
        );
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(error.code().as_str(), "not_permitted");
    }
    assert!(matches!(
        client.author_has_key("0x00", "gran"),
        Err(RpcError::NotLoopback { .. })
    ));
    // A safe method is sent (and gets nowhere).
    let error = client.system_health().unwrap_err();
    assert!(
        matches!(
            error,
            RpcError::Timeout { .. } | RpcError::Unavailable { .. }
        ),
        "{error:?}"
    );
}

// ---- docker exec ----

#[test]
fn curl_argv_is_a_post_with_json_and_status_line() {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"system_health","params":[]}"#;
    assert_eq!(
        curl_argv(9944, body.to_owned(), Duration::from_secs(10)),
        [
            "curl",
            "-sS",
            "--max-time",
            "10",
            "-H",
            "Content-Type: application/json",
            "-w",
            "\\n%{http_code}",
            "-d",
            body,
            "http://127.0.0.1:9944/",
        ]
    );
    let argv = curl_argv(1, "{}".into(), Duration::from_millis(2500));
    assert_eq!(argv[3], "2.500");
    let argv = curl_argv(1, "{}".into(), Duration::ZERO);
    assert_eq!(argv[3], "0.001");
}

fn exec_output(exit_code: i32, stdout: &str, stderr: &str) -> ExecOutput {
    ExecOutput {
        exit_code,
        stdout: stdout.to_owned(),
        stderr: stderr.to_owned(),
        truncated: false,
    }
}

const EXEC_ENDPOINT: &str = "http://127.0.0.1:9944/ in container 3node0";

fn exec(outcome: Result<ExecOutput, DockerError>) -> Result<(u16, String), RpcError> {
    exec_outcome(
        outcome,
        "system_health",
        EXEC_ENDPOINT,
        Duration::from_secs(5),
    )
}

#[test]
fn exec_outcomes() {
    let ok = r#"{"jsonrpc":"2.0","id":1,"result":true}"#;
    assert_eq!(
        exec(Ok(exec_output(0, &format!("{ok}\n200"), ""))),
        Ok((200, ok.to_owned()))
    );
    // A body that ends in a newline keeps it; the status line is the last one.
    assert_eq!(
        exec(Ok(exec_output(0, "a\nb\n\n403", ""))),
        Ok((403, "a\nb\n".to_owned()))
    );
    let wire = |outcome| exec(outcome).map_err(|e: RpcError| e.code().as_str());
    assert_eq!(
        wire(Ok(exec_output(
            7,
            "\n000",
            "curl: (7) Failed to connect to 127.0.0.1 port 9944: Connection refused"
        ))),
        Err("unavailable")
    );
    let timeout = exec(Ok(exec_output(
        28,
        "\n000",
        "curl: (28) Operation timed out after 5000 milliseconds",
    )));
    assert_eq!(
        timeout,
        Err(RpcError::Timeout {
            method: "system_health".into(),
            endpoint: EXEC_ENDPOINT.into(),
            after: Duration::from_secs(5)
        })
    );
    for code in [52, 56, 3, 2] {
        assert_eq!(
            wire(Ok(exec_output(code, "", "curl: (x) something"))),
            Err("unavailable"),
            "{code}"
        );
    }
    assert_eq!(
        wire(Err(DockerError::NotRunning {
            container: "3node0".into(),
            detail: "not running".into()
        })),
        Err("unavailable")
    );
    assert_eq!(
        wire(Err(DockerError::NoSuchContainer {
            container: "3node0".into()
        })),
        Err("unavailable")
    );
    assert_eq!(
        wire(Err(DockerError::Unavailable {
            detail: "Cannot connect to the Docker daemon".into()
        })),
        Err("unavailable")
    );
    assert_eq!(
        wire(Err(DockerError::Timeout {
            argv: vec!["exec".into()],
            after: Duration::from_secs(7)
        })),
        Err("timeout")
    );
    let no_curl = exec(Err(DockerError::ExecStart {
        container: "3node0".into(),
        program: "curl".into(),
        detail: "executable file not found in $PATH".into(),
    }))
    .unwrap_err();
    assert_eq!(no_curl.code().as_str(), "unavailable");
    assert!(no_curl.to_string().contains("needs curl"), "{no_curl}");
    let mut truncated = exec_output(0, "{\n200", "");
    truncated.truncated = true;
    assert_eq!(wire(Ok(truncated)), Err("internal"));
    assert_eq!(wire(Ok(exec_output(0, "no status", ""))), Err("internal"));
    assert_eq!(wire(Ok(exec_output(0, "x\nabc", ""))), Err("internal"));
}

#[test]
fn exec_failure_of_the_docker_client_itself_is_unavailable() {
    // What `Docker::exec` returns when the client dies of a signal.
    #[cfg(unix)]
    let status = {
        use std::os::unix::process::ExitStatusExt;
        ExitStatus::from_raw(9)
    };
    #[cfg(not(unix))]
    let status = ExitStatus::default();
    let error = exec(Err(DockerError::Failed {
        argv: vec!["exec".into(), "3node0".into()],
        status,
        stderr: String::new(),
    }))
    .unwrap_err();
    assert_eq!(error.code().as_str(), "unavailable");
}

// ---- replies ----

fn reply(status: u16, body: &str) -> Result<Value, RpcError> {
    parse_reply(
        "author_rotateKeys",
        "http://127.0.0.1:9944/",
        7,
        status,
        body,
    )
}

fn node_error(code: i64, message: &str) -> RpcError {
    RpcError::Node {
        method: "author_rotateKeys".into(),
        endpoint: "http://127.0.0.1:9944/".into(),
        code,
        message: message.into(),
    }
}

#[test]
fn replies_map_to_results_and_errors() {
    assert_eq!(
        reply(200, r#"{"jsonrpc":"2.0","id":7,"result":"0xab"}"#),
        Ok(json!("0xab"))
    );
    assert_eq!(
        reply(200, r#"{"jsonrpc":"2.0","id":7,"result":null}"#),
        Ok(Value::Null)
    );
    let unsafe_denied = reply(
        200,
        r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"RPC call is unsafe to be called externally"}}"#,
    )
    .unwrap_err();
    assert_eq!(
        unsafe_denied,
        node_error(-32601, "RPC call is unsafe to be called externally")
    );
    assert!(unsafe_denied.is_unsafe_denied());
    assert!(!unsafe_denied.is_method_not_found());
    let not_found = reply(
        200,
        r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"Method not found"}}"#,
    )
    .unwrap_err();
    assert!(not_found.is_method_not_found());
    assert!(!not_found.is_unsafe_denied());
    // A parse error comes back with a null id; the node's words are kept.
    assert_eq!(
        reply(
            200,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":4003,"message":"Client error: UnknownBlock: State already discarded for 0x01","data":null}}"#
        ),
        Err(node_error(
            4003,
            "Client error: UnknownBlock: State already discarded for 0x01"
        ))
    );
    let host_refused = reply(403, "Provided Host header is not whitelisted.\n").unwrap_err();
    assert_eq!(
        host_refused,
        RpcError::Http {
            method: "author_rotateKeys".into(),
            endpoint: "http://127.0.0.1:9944/".into(),
            status: 403,
            body: "Provided Host header is not whitelisted.".into()
        }
    );
    assert!(host_refused.is_host_refused());
    for (status, body) in [
        (200, "<html>hello</html>"),
        (200, ""),
        (200, "[1,2]"),
        (200, r#"{"jsonrpc":"2.0","id":8,"result":1}"#),
        (200, r#"{"jsonrpc":"2.0","id":"7","result":1}"#),
        (200, r#"{"jsonrpc":"2.0","id":7}"#),
        (200, r#"{"jsonrpc":"2.0","id":7,"error":{"code":"x"}}"#),
    ] {
        let error = reply(status, body).unwrap_err();
        assert!(
            matches!(error, RpcError::Protocol { .. }),
            "{body:?}: {error:?}"
        );
        assert_eq!(error.code().as_str(), "internal");
    }
    let error = reply(415, "Supplied content type is not allowed").unwrap_err();
    assert!(matches!(error, RpcError::Http { status: 415, .. }));
    let long = "x".repeat(5000);
    match reply(500, &long).unwrap_err() {
        RpcError::Http { body, .. } => assert!(body.len() < 400, "{}", body.len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_messages_name_method_endpoint_and_remedy() {
    let cases = [
        (
            RpcError::Unavailable {
                endpoint: "http://127.0.0.1:33980/".into(),
                detail: "Connection refused (os error 111)".into(),
            },
            "unavailable",
            vec!["http://127.0.0.1:33980/", "Connection refused"],
        ),
        (
            RpcError::Timeout {
                method: "system_health".into(),
                endpoint: "http://127.0.0.1:33980/".into(),
                after: Duration::from_millis(1500),
            },
            "timeout",
            vec!["system_health", "1.5s", "logs"],
        ),
        (
            node_error(-32601, "RPC call is unsafe to be called externally"),
            "internal",
            vec![
                "author_rotateKeys",
                "-32601",
                "unsafe to be called",
                "docker exec",
            ],
        ),
        (
            node_error(-32601, "Method not found"),
            "internal",
            vec!["Method not found", "rpc_methods"],
        ),
        (
            node_error(1040, "Session keys are not encoded correctly"),
            "internal",
            vec!["1040", "Session keys are not encoded correctly"],
        ),
        (
            RpcError::Http {
                method: "system_health".into(),
                endpoint: "http://127.0.0.1:33980/".into(),
                status: 403,
                body: "Provided Host header is not whitelisted.".into(),
            },
            "internal",
            vec![
                "refused the Host header",
                "reach it on its own rpc port or through docker exec",
            ],
        ),
        (
            RpcError::Protocol {
                method: "system_health".into(),
                endpoint: "http://127.0.0.1:33980/".into(),
                detail: "not JSON".into(),
            },
            "internal",
            vec!["system_health", "not JSON"],
        ),
        (
            RpcError::NotLoopback {
                method: "author_rotateKeys".into(),
                endpoint: "http://10.0.0.5:9944/".into(),
            },
            "not_permitted",
            vec!["author_rotateKeys", "10.0.0.5", "127.0.0.1"],
        ),
    ];
    for (error, wire, fragments) in cases {
        let text = error.to_string();
        assert_eq!(error.code().as_str(), wire, "{text}");
        assert!(
            text.starts_with(|c: char| !c.is_uppercase()),
            "not lowercase: {text}"
        );
        assert!(!text.ends_with('.'), "{text}");
        for fragment in fragments {
            assert!(text.contains(fragment), "{fragment:?} missing in {text}");
        }
    }
}

// ---- against a real socket ----

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
