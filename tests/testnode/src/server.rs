//! The node's two HTTP endpoints: JSON-RPC and Prometheus. One thread per connection,
//! blocking reads, keep-alive; every thread is named after its role.
//!
//! RPC requests pass the same gates, in the same order, as in a real node's server
//! (sc-rpc-server `lib.rs` middleware stack, then jsonrpsee `transport/http.rs`):
//! Host filter (403) → `GET /health` and `/health/readiness` (sc-rpc-server
//! `middleware/node_health.rs`) → POST only (405) → JSON content type only (415) → a body that
//! starts like JSON (400 with a parse error) → JSON-RPC.

use std::io::{self, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::cli::RpcMethods;
use crate::clock;
use crate::control::Control;
use crate::http::{self, JSON, ReadError, Request, Response, TEXT};
use crate::metrics;
use crate::node::Node;
use crate::rpc::{self, CallContext};

/// Largest request body accepted: a real node's default `--rpc-max-request-size` (15 MiB).
const MAX_RPC_BODY: usize = 15 * 1024 * 1024;
/// Metrics requests carry no body worth reading.
const MAX_METRICS_BODY: usize = 64 * 1024;
/// A keep-alive connection idle this long is closed, so forgotten clients do not pin threads.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How one RPC listening socket treats its requests.
#[derive(Debug, Clone, Copy)]
pub struct RpcSocket {
    /// The port the node listens on: the only one the Host filter accepts.
    pub port: u16,
    pub host_filter: bool,
    pub deny_unsafe: bool,
}

/// sc-rpc-server `utils.rs` `deny_unsafe`: unsafe methods are allowed when asked for
/// explicitly, or in `auto` mode on a loopback socket; denied otherwise.
pub fn deny_unsafe(local_addr: &SocketAddr, methods: RpcMethods) -> bool {
    !matches!(
        (local_addr.ip().is_loopback(), methods),
        (_, RpcMethods::Unsafe) | (true, RpcMethods::Auto)
    )
}

/// jsonrpsee `is_json`: the content types it takes for JSON-RPC.
pub fn is_json_content_type(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=utf-8",
        "application/json-rpc",
        "application/json-rpc;charset=utf-8",
        "application/json-rpc; charset=utf-8",
    ]
    .iter()
    .any(|accepted| content_type.eq_ignore_ascii_case(accepted))
}

/// The answer to one request on the RPC port.
pub fn route_rpc(
    node: &Node,
    control: Control,
    socket: RpcSocket,
    request: &Request,
    now_ms: u64,
) -> Response {
    if socket.host_filter && !http::host_allowed(request.header("host"), socket.port) {
        return Response::new(403, TEXT, "Provided Host header is not whitelisted.\n");
    }
    let ctx = CallContext {
        node,
        control,
        deny_unsafe: socket.deny_unsafe,
        now_ms,
    };
    if request.method == "GET" {
        match request.path() {
            "/health" => return Response::new(200, JSON, rpc::health(&ctx)),
            "/health/readiness" => {
                let ready = !ctx.control.syncing && ctx.control.peers > 0;
                return Response::new(if ready { 200 } else { 500 }, JSON, "");
            }
            _ => {}
        }
    }
    if request.method != "POST" {
        return Response::new(
            405,
            TEXT,
            "Used HTTP Method is not allowed. POST is required\n",
        );
    }
    if !is_json_content_type(request.header("content-type")) {
        return Response::new(
            415,
            TEXT,
            "Supplied content type is not allowed. Content-Type: application/json is required\n",
        );
    }
    // jsonrpsee `read_body`: a body whose first non-blank byte is neither `{` nor `[` is
    // refused before any JSON parsing.
    let first = request.body.iter().find(|b| !b.is_ascii_whitespace());
    if !matches!(first, Some(b'{') | Some(b'[')) {
        return Response::new(
            400,
            JSON,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
        );
    }
    Response::new(
        200,
        JSON,
        rpc::handle_body(&ctx, &request.body).unwrap_or_default(),
    )
}

/// The answer to one request on the metrics port (substrate-prometheus-endpoint: any method
/// on `/metrics`, 404 "Not found." elsewhere).
pub fn route_metrics(node: &Node, control: &Control, request: &Request, now_ms: u64) -> Response {
    if request.path() == "/metrics" {
        let text = metrics::render(&node.metrics_snapshot(control, now_ms));
        Response::new(200, metrics::CONTENT_TYPE, text)
    } else {
        Response::new(404, TEXT, "Not found.")
    }
}

/// Answers for requests that could not be read.
fn read_error_response(error: &ReadError) -> Option<Response> {
    match error {
        ReadError::Closed | ReadError::Io(_) => None,
        ReadError::Malformed(why) => Some(Response::new(400, TEXT, format!("{why}\n"))),
        ReadError::TooLarge => Some(Response::new(
            413,
            JSON,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32007,"message":"Request is too big"}}"#,
        )),
    }
}

/// Serves requests on one connection until it closes, an error, or `Connection: close`.
fn serve_connection<F>(stream: TcpStream, max_body: usize, mut answer: F)
where
    F: FnMut(&Request) -> Option<Response>,
{
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(&stream);
    loop {
        let request = match http::read_request(&mut reader, max_body) {
            Ok(request) => request,
            Err(error) => {
                if let Some(response) = read_error_response(&error) {
                    let _ = http::write_response(&mut &stream, &response, false);
                }
                return;
            }
        };
        let Some(response) = answer(&request) else {
            // Asked to hang: hold the connection, answer nothing, until the client gives up.
            hold_until_closed(&stream);
            return;
        };
        let keep_alive = request.keep_alive();
        if http::write_response(&mut &stream, &response, keep_alive).is_err() || !keep_alive {
            return;
        }
    }
}

/// Reads and discards until the peer closes; for `hang_rpc`. Blocks only this connection's
/// own thread.
fn hold_until_closed(stream: &TcpStream) {
    let _ = stream.set_read_timeout(None);
    let mut sink = [0u8; 4096];
    let mut stream = stream;
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

/// Accepts connections forever, one named thread each.
fn accept_loop<H>(listener: TcpListener, role: &'static str, handle: H)
where
    H: Fn(TcpStream) + Send + Sync + 'static,
{
    let handle = Arc::new(handle);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            // Transient (e.g. out of file descriptors): keep listening.
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let handle = Arc::clone(&handle);
        let spawned = thread::Builder::new()
            .name(format!("{role}-conn"))
            .spawn(move || handle(stream));
        if spawned.is_err() {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Serves JSON-RPC on `listener` from a new thread.
pub fn spawn_rpc(node: Arc<Node>, listener: TcpListener, socket: RpcSocket) -> io::Result<()> {
    thread::Builder::new()
        .name("rpc-accept".to_string())
        .spawn(move || {
            accept_loop(listener, "rpc", move |stream| {
                serve_connection(stream, MAX_RPC_BODY, |request| {
                    let control = node.control.load();
                    if control.hang_rpc {
                        return None;
                    }
                    Some(route_rpc(
                        &node,
                        control,
                        socket,
                        request,
                        clock::now_unix_ms(),
                    ))
                })
            })
        })
        .map(drop)
}

/// Serves Prometheus metrics on `listener` from a new thread.
pub fn spawn_metrics(node: Arc<Node>, listener: TcpListener) -> io::Result<()> {
    thread::Builder::new()
        .name("metrics-accept".to_string())
        .spawn(move || {
            accept_loop(listener, "metrics", move |stream| {
                serve_connection(stream, MAX_METRICS_BODY, |request| {
                    let control = node.control.load();
                    Some(route_metrics(
                        &node,
                        &control,
                        request,
                        clock::now_unix_ms(),
                    ))
                })
            })
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Config;

    fn request(method: &str, headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: method.to_string(),
            target: "/".to_string(),
            http11: true,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    const SOCKET: RpcSocket = RpcSocket {
        port: 9944,
        host_filter: true,
        deny_unsafe: false,
    };

    fn with_node(tag: &str, test: impl FnOnce(&Node)) {
        let base =
            std::env::temp_dir().join(format!("testnode-server-{tag}-{}", std::process::id()));
        let node = Node::open(Config {
            base_path: base.clone(),
            ..Config::default()
        })
        .unwrap();
        test(&node);
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn deny_unsafe_follows_socket_and_mode() {
        let loopback: SocketAddr = "127.0.0.1:9944".parse().unwrap();
        let loopback6: SocketAddr = "[::1]:9944".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9944".parse().unwrap();
        assert!(!deny_unsafe(&loopback, RpcMethods::Auto));
        assert!(!deny_unsafe(&loopback6, RpcMethods::Auto));
        assert!(deny_unsafe(&any, RpcMethods::Auto));
        assert!(deny_unsafe(&loopback, RpcMethods::Safe));
        assert!(!deny_unsafe(&any, RpcMethods::Unsafe));
    }

    #[test]
    fn gates_come_in_the_real_order() {
        with_node("gates", |node| {
            let json = ("Content-Type", "application/json");
            let good_host = ("Host", "localhost:9944");
            let body = r#"{"jsonrpc":"2.0","id":1,"method":"system_name"}"#;
            let route = |r: &Request| route_rpc(node, Control::default(), SOCKET, r, 0);

            let mapped = route(&request("POST", &[("Host", "localhost:33980"), json], body));
            assert_eq!(
                (mapped.status, mapped.body.as_slice()),
                (403, &b"Provided Host header is not whitelisted.\n"[..])
            );
            // The Host filter comes first, even for a wrong method.
            assert_eq!(route(&request("GET", &[("Host", "x:1")], "")).status, 403);
            assert_eq!(route(&request("GET", &[good_host], "")).status, 405);
            assert_eq!(
                route(&request(
                    "POST",
                    &[good_host, ("Content-Type", "text/plain")],
                    body
                ))
                .status,
                415
            );
            assert_eq!(route(&request("POST", &[good_host], body)).status, 415);
            assert_eq!(
                route(&request("POST", &[good_host, json], "  nope")).status,
                400
            );
            let ok = route(&request("POST", &[good_host, json], body));
            assert_eq!(ok.status, 200);
            assert_eq!(ok.content_type, JSON);
            assert!(
                String::from_utf8(ok.body)
                    .unwrap()
                    .contains("Creditcoin Node")
            );

            let unfiltered = RpcSocket {
                host_filter: false,
                ..SOCKET
            };
            let anywhere = route_rpc(
                node,
                Control::default(),
                unfiltered,
                &request("POST", &[("Host", "10.1.2.3:33980"), json], body),
                0,
            );
            assert_eq!(anywhere.status, 200);
        });
    }

    #[test]
    fn health_endpoints_answer_get() {
        with_node("health", |node| {
            let mut get = request("GET", &[("Host", "127.0.0.1:9944")], "");
            get.target = "/health".to_string();
            let health = route_rpc(node, Control::default(), SOCKET, &get, 0);
            assert_eq!(health.status, 200);
            assert_eq!(
                health.body,
                br#"{"peers":3,"isSyncing":false,"shouldHavePeers":true}"#
            );
            get.target = "/health/readiness".to_string();
            assert_eq!(
                route_rpc(node, Control::default(), SOCKET, &get, 0).status,
                200
            );
            let alone = Control {
                peers: 0,
                ..Control::default()
            };
            assert_eq!(route_rpc(node, alone, SOCKET, &get, 0).status, 500);
        });
    }

    #[test]
    fn metrics_only_on_metrics_path() {
        with_node("metrics", |node| {
            let mut get = request("GET", &[], "");
            get.target = "/metrics".to_string();
            let ok = route_metrics(node, &Control::default(), &get, 0);
            assert_eq!((ok.status, ok.content_type), (200, metrics::CONTENT_TYPE));
            get.target = "/other".to_string();
            assert_eq!(
                route_metrics(node, &Control::default(), &get, 0).status,
                404
            );
        });
    }

    #[test]
    fn json_content_types_as_jsonrpsee() {
        assert!(is_json_content_type(Some("application/json")));
        assert!(is_json_content_type(Some(
            "Application/JSON; charset=UTF-8"
        )));
        assert!(!is_json_content_type(Some(
            "application/x-www-form-urlencoded"
        )));
        assert!(!is_json_content_type(Some(
            "application/json; charset=latin1"
        )));
        assert!(!is_json_content_type(None));
    }
}
