//! Pure logic (port rule, loopback check, argv, reply and exec mapping) from
//! tables. No container is needed here: the integration tests drive the test
//! node; the HTTP path is in `http_tests.rs`.

use std::process::ExitStatus;
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
