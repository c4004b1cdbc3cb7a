//! The agent's settings: command-line flags plus its config file (JSON).
//!
//! ```json
//! {
//!   "state_dir": "/var/lib/warden-agent",
//!   "stats_interval_s": 10,
//!   "docker": { "program": "docker", "timeout_s": 30, "stop_grace_s": 60 },
//!   "limits": { "min_free_mb": 256 },
//!   "policy": { "containers": ["3node*"], "allow": ["status", "logs"] }
//! }
//! ```
//! Every key is optional; unknown keys are refused so a typo never silently
//! widens or narrows what the agent does. `policy` is described in
//! docs/policy.md.
use super::policy::Policy;
use crate::identity::Token;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    state_dir: Option<PathBuf>,
    stats_interval_s: Option<u64>,
    /// How often `summary` (era, payouts) goes out and the era watch runs.
    summary_interval_s: Option<u64>,
    #[serde(default)]
    docker: DockerSettings,
    #[serde(default)]
    rpc: RpcSettings,
    #[serde(default)]
    backup: BackupSettings,
    /// SS58 address format for accounts shown to the operator (42: generic Substrate, used by Creditcoin).
    ss58_prefix: Option<u16>,
    #[serde(default)]
    limits: LimitSettings,
    /// Read by `Policy::from_json_value` from the whole file; named here
    /// only so that `deny_unknown_fields` accepts it.
    #[serde(default, rename = "policy")]
    _policy: Value,
}

/// `limits`: what the agent refuses to take on (docs/agent-config.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Below this many MiB free on the state dir's filesystem, commands are
    /// refused with `unavailable`.
    pub min_free_mb: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            min_free_mb: super::limits::DEFAULT_MIN_FREE_MB,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerSettings {
    pub program: PathBuf,
    pub timeout_s: u64,
    /// How long `stop` lets a node shut down before Docker kills it: a
    /// Substrate node flushes its database on SIGTERM.
    pub stop_grace_s: u64,
}

impl DockerSettings {
    /// Bound on one Docker CLI call (at least 1 s).
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s.max(1))
    }

    /// The Docker CLI as these settings describe it.
    pub fn client(&self) -> crate::docker::Docker {
        crate::docker::Docker::new()
            .with_program(self.program.clone())
            .with_timeout(self.timeout())
    }
}

impl Default for DockerSettings {
    fn default() -> Self {
        DockerSettings {
            program: PathBuf::from("docker"),
            timeout_s: 30,
            stop_grace_s: 60,
        }
    }
}

/// Where key backups go and how many are kept.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    /// Default: `<state dir>/backups`.
    pub dir: Option<PathBuf>,
    /// Archives kept per container (default 7).
    pub keep: Option<usize>,
}

/// How the agent reaches its nodes' JSON-RPC.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpcSettings {
    /// Bound on every RPC call (and on a Prometheus scrape).
    pub timeout_s: u64,
    /// Per container: `{"kind": "http", "url": "http://127.0.0.1:9944"}` or
    /// `{"kind": "docker_exec", "container": "3node0", "port": 9944}`.
    pub endpoints: std::collections::BTreeMap<String, crate::rpc::Endpoint>,
    #[serde(skip)]
    pub rule: crate::rpc::EndpointRule,
}

impl Default for RpcSettings {
    fn default() -> Self {
        RpcSettings {
            timeout_s: 5,
            endpoints: Default::default(),
            rule: Default::default(),
        }
    }
}

/// Command-line flags, before the config file is read.
#[derive(Clone, Debug, Default)]
pub struct AgentArgs {
    pub server_url: String,
    pub agent_id: String,
    pub token_file: PathBuf,
    pub config_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub server_fingerprint: Option<String>,
    pub state_dir: Option<PathBuf>,
}

pub struct AgentConfig {
    pub server_url: String,
    pub agent_id: String,
    pub token: Token,
    pub token_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub server_fingerprint: Option<String>,
    pub host_name: String,
    pub state_dir: PathBuf,
    pub stats_interval: Duration,
    pub summary_interval: Duration,
    pub docker: DockerSettings,
    pub rpc: RpcSettings,
    pub ss58_prefix: u16,
    pub backup: crate::backup::BackupConfig,
    pub policy: Policy,
    pub limits: LimitSettings,
}

fn default_state_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    home.join(".warden").join("agent")
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn read_token(path: &Path) -> Result<Token, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!(
            "the token file {} is empty (put the line `warden token add` printed in it)",
            path.display()
        ));
    }
    Ok(Token::new(token.to_string()))
}

/// Everything the config file (and `--state-dir`) says: what the agent
/// needs, and what cron mode (`warden backup-keys`) needs without a server.
pub struct LocalConfig {
    pub state_dir: PathBuf,
    pub stats_interval: Duration,
    pub summary_interval: Duration,
    pub ss58_prefix: u16,
    pub docker: DockerSettings,
    pub rpc: RpcSettings,
    pub backup: crate::backup::BackupConfig,
    pub policy: Policy,
    pub limits: LimitSettings,
}

impl LocalConfig {
    pub fn load(
        config_file: Option<&Path>,
        state_dir: Option<PathBuf>,
    ) -> Result<LocalConfig, String> {
        let (file, policy) = match config_file {
            None => (FileConfig::default(), Policy::default()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
                let whole: Value =
                    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                let file: FileConfig = serde_json::from_value(whole.clone())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let policy = Policy::from_json_value(&whole)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                (file, policy)
            }
        };
        let stats_interval_s = file.stats_interval_s.unwrap_or(10);
        if stats_interval_s == 0 {
            return Err("stats_interval_s must be at least 1".into());
        }
        let state_dir = state_dir
            .or(file.state_dir)
            .unwrap_or_else(default_state_dir);
        let mut backup = crate::backup::BackupConfig::new(
            file.backup
                .dir
                .clone()
                .unwrap_or_else(|| state_dir.join("backups")),
        );
        if let Some(keep) = file.backup.keep {
            if keep == 0 {
                return Err(
                    "backup.keep must be at least 1 (the backup just written is always kept)"
                        .into(),
                );
            }
            backup.keep = keep;
        }
        backup.stop_grace = Duration::from_secs(file.docker.stop_grace_s);
        let mut rpc = file.rpc;
        if rpc.timeout_s == 0 {
            return Err("rpc.timeout_s must be at least 1".into());
        }
        rpc.rule = rpc
            .endpoints
            .iter()
            .fold(crate::rpc::EndpointRule::new(), |rule, (name, e)| {
                rule.with_override(name.clone(), e.clone())
            });
        Ok(LocalConfig {
            state_dir,
            stats_interval: Duration::from_secs(stats_interval_s),
            summary_interval: Duration::from_secs(file.summary_interval_s.unwrap_or(60).max(1)),
            ss58_prefix: file
                .ss58_prefix
                .unwrap_or(crate::chain::ss58::DEFAULT_PREFIX),
            docker: file.docker,
            rpc,
            backup,
            policy,
            limits: file.limits,
        })
    }

    pub fn docker(&self) -> crate::docker::Docker {
        self.docker.client()
    }
}

impl AgentConfig {
    pub fn load(args: AgentArgs) -> Result<AgentConfig, String> {
        if !crate::identity::is_valid_agent_id(&args.agent_id) {
            return Err(format!(
                "invalid agent id {:?}: {}",
                args.agent_id,
                crate::identity::AGENT_ID_RULE
            ));
        }
        if !(args.server_url.starts_with("ws://") || args.server_url.starts_with("wss://")) {
            return Err(format!(
                "--server {}: use ws://HOST:PORT/agent or wss://HOST:PORT/agent",
                args.server_url
            ));
        }
        let token = read_token(&args.token_file)?;
        let local = LocalConfig::load(args.config_file.as_deref(), args.state_dir)?;
        Ok(AgentConfig {
            server_url: args.server_url,
            agent_id: args.agent_id,
            token,
            token_file: args.token_file,
            ca_file: args.ca_file,
            client_cert: args.client_cert.zip(args.client_key),
            server_fingerprint: args.server_fingerprint,
            host_name: host_name(),
            state_dir: local.state_dir,
            stats_interval: local.stats_interval,
            summary_interval: local.summary_interval,
            ss58_prefix: local.ss58_prefix,
            docker: local.docker,
            rpc: local.rpc,
            backup: local.backup,
            policy: local.policy,
            limits: local.limits,
        })
    }

    pub fn docker(&self) -> crate::docker::Docker {
        self.docker.client()
    }

    pub fn stop_grace(&self) -> Duration {
        Duration::from_secs(self.docker.stop_grace_s)
    }
}
