//! Starting the node: lay out the base path, print the start-up lines, open the endpoints,
//! tick the chain, and exit 0 on a termination signal.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::chain::Chain;
use crate::clock;
use crate::log;
use crate::node::{self, Node};
use crate::server::{self, RpcSocket};
use crate::signals;

/// The informant prints every 5 s (sc-informant `lib.rs`, `build`).
const INFORMANT_INTERVAL_MS: u64 = 5_000;
/// After a long pause (a stopped process, a suspended machine) only this many missed blocks
/// get 🔖 lines, not thousands.
const MAX_CATCH_UP_LINES: u64 = 10;

/// The CORS origins a real node allows by default (sc-cli `RpcParams::rpc_cors`), as it logs
/// them; `--rpc-cors all` logs `["*"]`.
const DEFAULT_ORIGINS: &str = r#"["http://localhost:*", "http://127.0.0.1:*", "https://localhost:*", "https://127.0.0.1:*", "https://polkadot.js.org"]"#;

fn bind_error(addr: SocketAddr, e: io::Error) -> String {
    format!("failed to bind {addr}: {e}")
}

/// Binds the RPC sockets as sc-rpc-server does: the IPv4 address is required; the IPv6 one is
/// optional (hosts without IPv6, or `[::]` colliding with `0.0.0.0` on the same port).
fn bind_rpc(node: &Node) -> Result<Vec<TcpListener>, String> {
    let port = node.config.rpc_port;
    let (v4, v6) = if node.config.rpc_external {
        (
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        )
    };
    let v4 = SocketAddr::new(v4, port);
    let mut listeners = vec![TcpListener::bind(v4).map_err(|e| bind_error(v4, e))?];
    if let Ok(listener) = TcpListener::bind(SocketAddr::new(v6, port)) {
        listeners.push(listener);
    }
    Ok(listeners)
}

pub fn run(config: crate::cli::Config) -> Result<(), String> {
    // Before any thread starts, so every thread inherits the handlers' mask.
    let shutdown =
        signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let node = Node::open(config).map_err(|e| format!("cannot prepare the base path: {e}"))?;
    let node = Arc::new(node);
    for line in node.startup_lines() {
        log::info(&line);
    }

    if let Some(port) = node.config.prometheus_port {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        let listener = TcpListener::bind(addr).map_err(|e| bind_error(addr, e))?;
        server::spawn_metrics(Arc::clone(&node), listener).map_err(|e| e.to_string())?;
        log::info(&format!("〽️ Prometheus exporter started at {addr}"));
    }

    let listeners = bind_rpc(&node)?;
    let mut addrs = Vec::new();
    for listener in listeners {
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let socket = RpcSocket {
            port: local.port(),
            host_filter: !node.config.rpc_cors_all,
            deny_unsafe: server::deny_unsafe(&local, node.config.rpc_methods),
        };
        server::spawn_rpc(Arc::clone(&node), listener, socket).map_err(|e| e.to_string())?;
        addrs.push(local.to_string());
    }
    // sc-rpc-server's line, e.g. `addr=127.0.0.1:9944,[::1]:9944, allowed origins=[…]`.
    let addrs = addrs.join(",");
    let origins = if node.config.rpc_cors_all {
        r#"["*"]"#
    } else {
        DEFAULT_ORIGINS
    };
    log::info(&format!(
        "Running JSON-RPC server: addr={addrs}, allowed origins={origins}"
    ));

    if node.config.validator {
        log::info("👶 Starting BABE Authorship worker");
    }
    let ticker_node = Arc::clone(&node);
    thread::Builder::new()
        .name("informant".to_string())
        .spawn(move || tick(&ticker_node))
        .map_err(|e| e.to_string())?;

    shutdown.wait();
    Ok(())
}

/// The chain's heartbeat in the log: a 🔖 line for each block this node authors, and the
/// informant line every 5 s.
fn tick(node: &Node) {
    let chain: &Chain = &node.chain;
    let start_ms = clock::now_unix_ms();
    let mut next_informant_ms = start_ms + INFORMANT_INTERVAL_MS;
    let mut last_best = chain.best_at(start_ms);
    let mut last_informant = (start_ms, last_best);
    loop {
        let now_ms = clock::now_unix_ms();
        let control = node.control.load();
        let best = chain.best_at(now_ms);
        if !control.syncing {
            let first = (last_best + 1).max(best.saturating_sub(MAX_CATCH_UP_LINES - 1));
            for number in first..=best {
                if node.authored(number) {
                    log::info(&node::pre_sealed_line(chain, number));
                }
            }
        }
        last_best = best;
        if now_ms >= next_informant_ms {
            let (then_ms, then_best) = last_informant;
            let elapsed_ms = now_ms.saturating_sub(then_ms).max(1);
            let speed = best.saturating_sub(then_best) as f64 * 1000.0 / elapsed_ms as f64;
            let status = node.status(&control, now_ms);
            log::info(&node::informant_line(chain, &status, speed));
            last_informant = (now_ms, best);
            next_informant_ms += INFORMANT_INTERVAL_MS;
            if next_informant_ms <= now_ms {
                next_informant_ms = now_ms + INFORMANT_INTERVAL_MS;
            }
        }
        let next_block_ms = chain.block_time_of(best + 1);
        let wake_ms = next_block_ms.min(next_informant_ms);
        thread::sleep(Duration::from_millis(wake_ms.saturating_sub(now_ms).max(1)));
    }
}
