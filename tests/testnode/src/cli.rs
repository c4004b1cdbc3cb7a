//! The node's command line, parsed by hand in a real node's terms.
//!
//! Flags keep polkadot-sdk's names and meanings (sc-cli `RunCmd`, `RpcParams`,
//! `PrometheusParams`, `SharedParams`), so a container started for the test node is started
//! the way an operator starts a real one. Flags a real node has but that change nothing here
//! (networking, pruning, telemetry) are accepted and ignored; an unknown flag is an error,
//! as it is for a real node.

use std::path::PathBuf;

/// `--rpc-methods` (sc-rpc-server `RpcMethods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcMethods {
    /// Unsafe methods only when the RPC socket is bound to a loopback address.
    Auto,
    Safe,
    Unsafe,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub base_path: PathBuf,
    pub chain: String,
    pub rpc_port: u16,
    /// `None` with `--no-prometheus`.
    pub prometheus_port: Option<u16>,
    pub name: Option<String>,
    pub validator: bool,
    /// Listen on all interfaces instead of loopback.
    pub rpc_external: bool,
    pub rpc_methods: RpcMethods,
    /// `--rpc-cors all`: no CORS restriction, which also turns the Host filter off.
    pub rpc_cors_all: bool,
    pub block_time_ms: u64,
    /// The control file; `<base>/testnode.json` when not given.
    pub control: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            base_path: PathBuf::from("/root/data"),
            chain: "creditcoin3".to_string(),
            rpc_port: 9944,
            prometheus_port: Some(9615),
            name: None,
            validator: false,
            rpc_external: false,
            rpc_methods: RpcMethods::Auto,
            rpc_cors_all: false,
            block_time_ms: 1000,
            control: None,
        }
    }
}

impl Config {
    pub fn chain_dir(&self) -> PathBuf {
        self.base_path.join("chains").join(&self.chain)
    }

    pub fn control_path(&self) -> PathBuf {
        self.control
            .clone()
            .unwrap_or_else(|| self.base_path.join("testnode.json"))
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Config),
    Help,
}

/// Why the command line was refused, and how the process should exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// A usage error, reported as clap does (exit code 2).
    Usage(String),
    /// A configuration a real node refuses at start-up (exit code 1), with its message.
    Input(String),
}

pub const USAGE: &str = "\
Usage: testnode [OPTIONS]

A stand-in Creditcoin 3 node for warden's tests (not a real node).

Options:
  -d, --base-path <PATH>         [default: /root/data]
      --chain <ID>               [default: creditcoin3]
      --rpc-port <PORT>          [default: 9944]
      --prometheus-port <PORT>   [default: 9615]
      --no-prometheus
      --name <NAME>
      --validator
      --rpc-external             listen on all interfaces (refused for a validator unless unsafe)
      --unsafe-rpc-external
      --rpc-methods <auto|safe|unsafe>  [default: auto]
      --rpc-cors <all|ORIGINS>
      --block-time-ms <MS>       [default: 1000]
      --control <FILE>           [default: <base-path>/testnode.json]
  -h, --help

Invoked as `curl`, it is a minimal curl instead.
";

/// Real-node flags that take a value and change nothing here.
const IGNORED_WITH_VALUE: &[&str] = &[
    "--port",
    "--bootnodes",
    "--reserved-nodes",
    "--public-addr",
    "--listen-addr",
    "--telemetry-url",
    "--pruning",
    "--state-pruning",
    "--blocks-pruning",
    "--database",
    "--db",
    "--db-cache",
    "--sync",
    "--in-peers",
    "--in-peers-light",
    "--out-peers",
    "--rpc-max-connections",
    "--rpc-max-request-size",
    "--rpc-max-response-size",
    "--rpc-rate-limit",
    "--max-runtime-instances",
    "--execution",
    "--wasm-execution",
    "--log",
    "-l",
    "--node-key-file",
    "--trie-cache-size",
];

/// Real-node switches that change nothing here.
const IGNORED_SWITCHES: &[&str] = &[
    "--prometheus-external",
    "--no-telemetry",
    "--no-mdns",
    "--no-private-ip",
    "--allow-private-ip",
    "--discover-local",
    "--no-hardware-benchmarks",
    "--detailed-log-output",
    "--disable-log-color",
    "--enable-offchain-indexing",
];

/// The refusal sc-cli gives a validator asked to listen externally (`RpcParams::rpc_addr`).
pub const EXTERNAL_VALIDATOR_REFUSAL: &str = "--rpc-external option shouldn't be used if the node \
is running as a validator. Use `--unsafe-rpc-external` or `--rpc-methods=unsafe` if you \
understand the risks. See the options description for more information.";

fn parse_number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, CliError> {
    value.parse().map_err(|_| {
        CliError::Usage(format!(
            "error: invalid value '{value}' for '{flag} <VALUE>': not a valid number"
        ))
    })
}

/// The base path of a node started without `--base-path`, for a binary called `program`.
///
/// As `testnode` it is the guide's `/root/data` (the guide's image passes that path from its
/// start script). Under any other name (the official image's `/bin/creditcoin3-node`) it is
/// a real node's own default: sc-cli `CliConfiguration::base_path` falls back to
/// `BasePath::from_project("", "", &executable_name())` (polkadot-sdk
/// `substrate/client/cli/src/config.rs`), and sc-service's `BasePath::from_project` takes
/// `directories::ProjectDirs::from(..).data_local_dir()`, which on Linux is
/// `$XDG_DATA_HOME/<name>` or `$HOME/.local/share/<name>`.
pub fn default_base_path(
    program: &str,
    home: Option<&str>,
    xdg_data_home: Option<&str>,
) -> PathBuf {
    let name = std::path::Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("testnode");
    if name == "testnode" {
        return PathBuf::from("/root/data");
    }
    match (xdg_data_home.filter(|d| d.starts_with('/')), home) {
        (Some(data), _) => PathBuf::from(data).join(name),
        (None, Some(home)) => PathBuf::from(home).join(".local/share").join(name),
        (None, None) => PathBuf::from("/root/.local/share").join(name),
    }
}

/// Parses the arguments after the program name, with the guide's defaults.
#[cfg(test)]
pub fn parse_args<I, S>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    parse_args_with(Config::default(), args)
}

/// Parses the arguments over `config` (defaults for this program name).
pub fn parse_args_with<I, S>(mut config: Config, args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut unsafe_rpc_external = false;
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        // `--flag=value` and `--flag value` are the same.
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |flag: &str| -> Result<String, CliError> {
            inline_value.clone().or_else(|| args.next()).ok_or_else(|| {
                CliError::Usage(format!(
                    "error: a value is required for '{flag} <VALUE>' but none was supplied"
                ))
            })
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-d" | "--base-path" => config.base_path = PathBuf::from(value(&flag)?),
            "--chain" => config.chain = value(&flag)?,
            "--rpc-port" => config.rpc_port = parse_number(&flag, &value(&flag)?)?,
            "--prometheus-port" => {
                config.prometheus_port = Some(parse_number(&flag, &value(&flag)?)?)
            }
            "--no-prometheus" => config.prometheus_port = None,
            "--name" => config.name = Some(value(&flag)?),
            "--validator" => config.validator = true,
            "--rpc-external" => config.rpc_external = true,
            "--unsafe-rpc-external" => unsafe_rpc_external = true,
            "--rpc-methods" => {
                config.rpc_methods = match value(&flag)?.to_ascii_lowercase().as_str() {
                    "auto" => RpcMethods::Auto,
                    "safe" => RpcMethods::Safe,
                    "unsafe" => RpcMethods::Unsafe,
                    other => {
                        return Err(CliError::Usage(format!(
                            "error: invalid value '{other}' for '--rpc-methods <METHOD SET>'\n  \
                             [possible values: auto, safe, unsafe]"
                        )));
                    }
                }
            }
            "--rpc-cors" => config.rpc_cors_all = value(&flag)? == "all",
            "--block-time-ms" => {
                config.block_time_ms = parse_number(&flag, &value(&flag)?)?;
                if config.block_time_ms == 0 {
                    return Err(CliError::Usage(
                        "error: --block-time-ms must be at least 1".to_string(),
                    ));
                }
            }
            "--control" => config.control = Some(PathBuf::from(value(&flag)?)),
            f if IGNORED_WITH_VALUE.contains(&f) => {
                value(&flag)?;
            }
            f if IGNORED_SWITCHES.contains(&f) => {}
            _ => {
                return Err(CliError::Usage(format!(
                    "error: unexpected argument '{arg}' found\n\n{USAGE}"
                )));
            }
        }
    }
    // sc-cli `rpc_params.rs`: a validator must not expose "safe-only" RPC externally;
    // `--unsafe-rpc-external` is the operator saying they know.
    if config.rpc_external && config.validator && config.rpc_methods != RpcMethods::Unsafe {
        return Err(CliError::Input(EXTERNAL_VALIDATOR_REFUSAL.to_string()));
    }
    config.rpc_external |= unsafe_rpc_external;
    config.chain = chain_id_of(&config.chain)?;
    Ok(Command::Run(config))
}

/// The chain id `--chain` stands for: a spec file's `id` when it names a file (a real node
/// loads any `--chain` that is not a built-in name as a spec file: Creditcoin 3's
/// `load_spec`), else the value itself, which the test node takes as the id.
fn chain_id_of(chain: &str) -> Result<String, CliError> {
    if !(chain.contains('/') || chain.ends_with(".json")) {
        return Ok(chain.to_string());
    }
    #[derive(serde::Deserialize)]
    struct Spec {
        id: String,
    }
    let text = std::fs::read(chain)
        .map_err(|e| CliError::Input(format!("Error opening spec file `{chain}`: {e}")))?;
    let spec: Spec = serde_json::from_slice(&text)
        .map_err(|e| CliError::Input(format!("Error parsing spec file `{chain}`: {e}")))?;
    let valid = !spec.id.is_empty()
        && spec.id.len() <= 128
        && spec
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !valid {
        return Err(CliError::Input(format!(
            "the spec file `{chain}` has an id unfit for a directory name"
        )));
    }
    Ok(spec.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Config {
        match parse_args(args.iter().copied()) {
            Ok(Command::Run(config)) => config,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn defaults_are_a_real_nodes() {
        let config = run(&[]);
        assert_eq!(config, Config::default());
        assert_eq!(config.base_path, PathBuf::from("/root/data"));
        assert_eq!(config.chain, "creditcoin3");
        assert_eq!(
            (config.rpc_port, config.prometheus_port),
            (9944, Some(9615))
        );
        assert_eq!(
            config.control_path(),
            PathBuf::from("/root/data/testnode.json")
        );
        assert_eq!(
            config.chain_dir(),
            PathBuf::from("/root/data/chains/creditcoin3")
        );
    }

    #[test]
    fn reads_every_flag_in_both_forms() {
        let config = run(&[
            "--base-path=/data",
            "--chain",
            "creditcoin3-testnet",
            "--rpc-port",
            "39944",
            "--prometheus-port=39615",
            "--name",
            "3node0",
            "--validator",
            "--rpc-methods",
            "Unsafe",
            "--rpc-external",
            "--rpc-cors",
            "all",
            "--block-time-ms",
            "250",
            "--control",
            "/tmp/c.json",
        ]);
        assert_eq!(config.base_path, PathBuf::from("/data"));
        assert_eq!(config.chain, "creditcoin3-testnet");
        assert_eq!(config.rpc_port, 39944);
        assert_eq!(config.prometheus_port, Some(39615));
        assert_eq!(config.name.as_deref(), Some("3node0"));
        assert!(config.validator && config.rpc_external && config.rpc_cors_all);
        assert_eq!(config.rpc_methods, RpcMethods::Unsafe);
        assert_eq!(config.block_time_ms, 250);
        assert_eq!(config.control_path(), PathBuf::from("/tmp/c.json"));
    }

    #[test]
    fn ignores_real_node_flags_that_do_not_matter_here() {
        let config = run(&[
            "--port",
            "30333",
            "--prometheus-external",
            "--pruning=archive",
            "-l",
            "info",
        ]);
        assert_eq!(config, Config::default());
        assert_eq!(run(&["--no-prometheus"]).prometheus_port, None);
    }

    #[test]
    fn refuses_unknown_flags_and_bad_values() {
        for args in [
            &["--frobnicate"][..],
            &["--rpc-port", "x"],
            &["--rpc-port"],
            &["--rpc-methods", "some"],
            &["--block-time-ms", "0"],
        ] {
            assert!(
                matches!(parse_args(args.iter().copied()), Err(CliError::Usage(_))),
                "{args:?}"
            );
        }
        assert_eq!(parse_args(["--help"]), Ok(Command::Help));
    }

    #[test]
    fn base_path_default_follows_the_program_name() {
        assert_eq!(
            default_base_path("/usr/local/bin/testnode", Some("/root"), None),
            PathBuf::from("/root/data")
        );
        assert_eq!(
            default_base_path("/bin/creditcoin3-node", Some("/creditcoin-node"), None),
            PathBuf::from("/creditcoin-node/.local/share/creditcoin3-node")
        );
        assert_eq!(
            default_base_path("creditcoin3-node", Some("/h"), Some("/xdg")),
            PathBuf::from("/xdg/creditcoin3-node")
        );
    }

    #[test]
    fn chain_spec_files_give_their_id() {
        let path = std::env::temp_dir().join(format!("testnode-spec-{}.json", std::process::id()));
        std::fs::write(
            &path,
            r#"{"name": "Creditcoin3", "id": "creditcoin3", "bootNodes": []}"#,
        )
        .unwrap();
        let config = run(&["--chain", path.to_str().unwrap()]);
        assert_eq!(config.chain, "creditcoin3");
        std::fs::write(&path, r#"{"id": "../x"}"#).unwrap();
        assert!(matches!(
            parse_args(["--chain", path.to_str().unwrap()]),
            Err(CliError::Input(_))
        ));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            parse_args(["--chain", "/nonexistent.json"]),
            Err(CliError::Input(_))
        ));
    }

    #[test]
    fn validator_may_not_listen_externally_without_unsafe() {
        assert_eq!(
            parse_args(["--validator", "--rpc-external"]),
            Err(CliError::Input(EXTERNAL_VALIDATOR_REFUSAL.to_string()))
        );
        assert!(run(&["--validator", "--unsafe-rpc-external"]).rpc_external);
        assert!(run(&["--validator", "--rpc-external", "--rpc-methods", "unsafe"]).rpc_external);
        assert!(run(&["--rpc-external"]).rpc_external);
    }
}
