//! warden-testnode: a stand-in Creditcoin 3 node (polkadot-sdk based) for warden's tests.
//!
//! No real Substrate node can be built or pulled where warden is tested, so this binary
//! imitates one in everything warden touches, each shape taken from the upstream source named
//! next to it:
//! - the command line and on-disk layout (sc-cli, sc-service, sc-keystore, sc-network);
//! - start-up and informant log lines on stdout (sc-cli `print_node_infos`, sc-informant);
//! - JSON-RPC over HTTP with the real server's gates (Host filter, POST, content type) and
//!   the real error codes and messages (sc-rpc-server, jsonrpsee, sc-rpc-api);
//! - the keystore files `author_rotateKeys` writes (sc-keystore `LocalKeystore`);
//! - Prometheus metrics (sc-service `metrics.rs`, sc-network);
//! - prompt exit on SIGTERM/SIGINT as PID 1 in a container.
//!
//! Where it differs from a real node, on purpose:
//! - no networking, consensus or runtime: the chain is a block counter (`chain.rs`), keys are
//!   random bytes that sign nothing (`keystore.rs`), the PeerId is derived by hashing
//!   (`identity.rs`);
//! - storage, peers, syncing and RPC hangs come from a control file tests edit at run time
//!   (`control.rs`);
//! - Prometheus listens on all interfaces without `--prometheus-external`, so a port mapping
//!   works in tests; RPC listens on IPv4 (and IPv6 loopback when available), no WebSocket;
//! - invoked as `curl`, it is a minimal curl (`curl.rs`), because the image has no other;
//! - invoked under another name (`creditcoin3-node` in the official-shaped image) it is the
//!   node with a real node's default base path (`cli::default_base_path`).

mod chain;
mod cli;
mod clock;
mod control;
mod curl;
mod hex;
mod http;
mod identity;
mod keystore;
mod log;
mod metrics;
mod node;
mod rpc;
mod run;
mod server;
mod signals;

use std::path::Path;

fn main() {
    let mut args = std::env::args();
    let program = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    // Multi-call binary: the image links /usr/bin/curl to this file.
    if Path::new(&program)
        .file_name()
        .is_some_and(|name| name == "curl")
    {
        std::process::exit(curl::main(rest));
    }
    let defaults = cli::Config {
        base_path: cli::default_base_path(
            &program,
            std::env::var("HOME").ok().as_deref(),
            std::env::var("XDG_DATA_HOME").ok().as_deref(),
        ),
        ..cli::Config::default()
    };
    let config = match cli::parse_args_with(defaults, rest) {
        Ok(cli::Command::Run(config)) => config,
        Ok(cli::Command::Help) => {
            print!("{}", cli::USAGE);
            return;
        }
        Err(cli::CliError::Usage(message)) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
        Err(cli::CliError::Input(message)) => {
            // A real node reports configuration errors as `Error: Input("…")` and exits 1.
            eprintln!("Error: Input({message:?})");
            std::process::exit(1);
        }
    };
    if let Err(message) = run::run(config) {
        eprintln!("Error: Service(Other({message:?}))");
        std::process::exit(1);
    }
}
