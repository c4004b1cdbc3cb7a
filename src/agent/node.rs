//! What the agent learns about each node it manages: where its RPC is, and
//! its heights, peers, sync state, roles and version. Prometheus is read
//! where it is reachable (host networking: one request); otherwise the
//! node's RPC answers (through `docker exec … curl` for a node whose RPC
//! listens only on its container's loopback).
//!
//! Each node's network identity goes with it: its peer id (`system_localPeerId`)
//! and whether `<chain>/network/secret_ed25519` exists. Since node v3.52.0 a
//! validator no longer makes that key by itself (`key generate-node-key` does):
//! a node without it gets a new peer id at every start, so it is flagged. Both
//! are read again at every [`IDENTITY_EVERY`]th stats report or when the
//! container restarted (they cost a `docker exec` or two), never from the file's
//! contents.
use super::Agent;
use crate::chain::{self, KeyTypeId};
use crate::docker::ContainerInspect;
use crate::metrics::{self, MetricsClient, NodeMetrics};
use crate::rpc::{Endpoint, RpcClient, RpcError};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A node's peer id and network-key check are reused for this many stats
/// intervals (a minute at the default 10 s).
pub const IDENTITY_EVERY: u32 = 6;

/// A node's network identity as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub peer_id: Option<String>,
    /// `None` when it could not be told (no `ls` in the image, chain not found).
    pub network_key: Option<bool>,
}

/// Container → (its start time, when read, what was read).
static IDENTITIES: Mutex<BTreeMap<String, (String, Instant, Identity)>> =
    Mutex::new(BTreeMap::new());

/// Whether a `ls -1` of the network directory lists the key file.
pub fn lists_network_key(listing: &str) -> bool {
    listing.lines().any(|name| name.trim() == "secret_ed25519")
}

fn read_identity(agent: &Agent, inspect: &ContainerInspect) -> Identity {
    let peer_id = rpc_for(agent, &inspect.name, Some(inspect))
        .and_then(|client| client.call("system_localPeerId", json!([])))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|p| !p.is_empty() && p.len() <= 128);
    let network_key = crate::backup::locate_chain(&agent.docker, inspect)
        .ok()
        .and_then(|chain| {
            // A missing directory is "no key" (ls exits non-zero naming it); no
            // `ls` at all is "cannot tell".
            let argv = [
                "ls".into(),
                "-1".into(),
                "--".into(),
                chain.path_of("network"),
            ];
            let out = agent
                .docker
                .exec(&inspect.name, &argv, Duration::from_secs(10))
                .ok()?;
            Some(out.exit_code == 0 && lists_network_key(&out.stdout))
        });
    Identity {
        peer_id,
        network_key,
    }
}

/// The node's peer id and network-key check, read again when older than
/// [`IDENTITY_EVERY`] stats intervals or when the container was started since.
pub fn identity(agent: &Agent, inspect: &ContainerInspect) -> Identity {
    let started = inspect.state.started_at.clone();
    if let Some((at_start, read_at, known)) = IDENTITIES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&inspect.name)
        && *at_start == started
        && read_at.elapsed() < agent.config.stats_interval * IDENTITY_EVERY
    {
        return known.clone();
    }
    let read = read_identity(agent, inspect);
    IDENTITIES.lock().unwrap_or_else(|e| e.into_inner()).insert(
        inspect.name.clone(),
        (started, Instant::now(), read.clone()),
    );
    read
}

/// The RPC client for `container`: a configured endpoint, else what its
/// command line and network mode say, else the original port rule.
pub fn rpc_for(
    agent: &Agent,
    container: &str,
    inspect: Option<&ContainerInspect>,
) -> Result<RpcClient, RpcError> {
    let endpoint = Endpoint::resolve(container, &agent.config.rpc.rule, inspect)?;
    Ok(agent.rpc.for_endpoint(endpoint))
}

/// The names in `dir` inside the container: `docker exec ls -1` (one cheap
/// call), else, for an image without `ls`, the tar headers of a `docker cp`
/// stream (nothing is written to disk; file contents are never read).
/// `Ok(None)` when the directory does not exist.
fn list_names(agent: &Agent, container: &str, dir: &str) -> Result<Option<Vec<String>>, String> {
    let argv = ["ls".into(), "-1".into(), "--".into(), dir.to_owned()];
    match agent.docker.exec(container, &argv, Duration::from_secs(10)) {
        Ok(out) if out.exit_code == 0 => Ok(Some(
            out.stdout.lines().map(|l| l.trim().to_owned()).collect(),
        )),
        Ok(out) if out.stderr.contains("No such file") => Ok(None),
        Ok(out) => Err(format!(
            "cannot list {dir} in {container}: {}",
            out.stderr.trim()
        )),
        // No `ls` in the image, or a stopped container: tar headers instead.
        Err(
            crate::docker::DockerError::ExecStart { .. }
            | crate::docker::DockerError::NotRunning { .. },
        ) => match crate::backup::list_dir(&agent.docker, container, dir) {
            Ok(names) => Ok(Some(names)),
            Err(e) if crate::backup::is_missing_path(&e) => Ok(None),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// The public keys in the node's keystore, from the files' NAMES (hex key
/// type ‖ hex public key); the files hold secrets and are never read.
pub fn keystore_keys(
    agent: &Agent,
    inspect: &ContainerInspect,
) -> Result<Vec<(KeyTypeId, [u8; 32])>, String> {
    listed_keys(agent, inspect, false)
}

/// The same, for the server's double-sign check: a node without a keystore
/// directory holds no keys (an empty listing, not an error).
pub fn keystore_listing(
    agent: &Agent,
    inspect: &ContainerInspect,
) -> Result<Vec<(KeyTypeId, [u8; 32])>, String> {
    listed_keys(agent, inspect, true)
}

fn listed_keys(
    agent: &Agent,
    inspect: &ContainerInspect,
    missing_is_empty: bool,
) -> Result<Vec<(KeyTypeId, [u8; 32])>, String> {
    let dir = keystore_dir(agent, inspect)?;
    let names = match list_names(agent, &inspect.name, &dir)? {
        Some(names) => names,
        None if missing_is_empty => Vec::new(),
        None => return Err(format!("{dir} does not exist in {}", inspect.name)),
    };
    Ok(names
        .iter()
        .filter_map(|name| chain::parse_keystore_file_name(name.trim()).ok())
        .filter_map(|e| {
            Some((
                e.key_type,
                <[u8; 32]>::try_from(e.public_key.as_slice()).ok()?,
            ))
        })
        .collect())
}

/// `<chain folder>/keystore` inside the container, found as backups find it.
fn keystore_dir(agent: &Agent, inspect: &ContainerInspect) -> Result<String, String> {
    Ok(format!(
        "{}/keystore",
        crate::backup::locate_chain(&agent.docker, inspect)?.chain_path()
    ))
}

/// A base client whose connection pool every node's client shares.
pub fn base_client(agent_timeout: Duration, docker: crate::docker::Docker) -> RpcClient {
    RpcClient::new(
        Endpoint::loopback(crate::rpc::DEFAULT_RPC_PORT),
        agent_timeout,
    )
    .with_docker(docker)
}

fn from_metrics(m: &NodeMetrics) -> Value {
    json!({
        "best": m.best, "finalized": m.finalized, "sync_target": m.sync_target, "peers": m.peers,
        "syncing": m.is_major_syncing,
        "roles": m.node_roles.map(|r| if r == metrics::ROLE_AUTHORITY { vec!["Authority"] } else { vec!["Full"] }),
        "version": m.version, "chain": m.chain, "source": "prometheus",
    })
}

fn from_rpc(client: &RpcClient, inspect: &ContainerInspect) -> Result<Value, RpcError> {
    let health = client.system_health()?;
    let sync = client.system_sync_state()?;
    let finalized_hash = client.chain_get_finalized_head()?;
    let finalized = client
        .chain_get_header(Some(&finalized_hash))?
        .map(|h| h.number);
    let roles = client.system_node_roles()?;
    let version = client.system_version()?;
    Ok(json!({
        "best": sync.current_block, "finalized": finalized, "sync_target": sync.highest_block,
        "peers": health.peers, "syncing": health.is_syncing, "roles": roles, "version": version,
        "chain": inspect.command_line_value("--chain"), "source": "rpc",
    }))
}

/// The node's Prometheus page read from inside its container (`docker exec
/// curl`), when it has one and it says the node's height.
fn scrape_inside(
    agent: &Agent,
    metrics: &MetricsClient,
    inspect: &ContainerInspect,
) -> Option<NodeMetrics> {
    let port = metrics::prometheus_port(inspect)?;
    let timeout = metrics.timeout();
    let seconds = format!("{:.3}", timeout.max(Duration::from_millis(1)).as_secs_f64());
    let argv: Vec<String> = [
        "curl",
        "-sS",
        "--max-time",
        &seconds,
        &metrics::metrics_url(port),
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    let out = agent
        .docker
        .exec(&inspect.name, &argv, timeout + Duration::from_secs(2))
        .ok()?;
    if out.exit_code != 0 || out.truncated {
        return None;
    }
    let m = metrics::parse(&out.stdout);
    m.best.is_some().then_some(m)
}

/// One node's health, for `stats.nodes`. Never fails: what could not be
/// learned is `null`, with the reason in `rpc_error`. A running node also
/// carries `peer_id` and `network_key` (see [`identity`]).
pub fn status(agent: &Agent, metrics: &MetricsClient, inspect: &ContainerInspect) -> Value {
    if !inspect.state.running {
        return json!({ "rpc_error": null, "note": "not running" });
    }
    let mut v = health(agent, metrics, inspect);
    let identity = identity(agent, inspect);
    v["peer_id"] = json!(identity.peer_id);
    v["network_key"] = json!(identity.network_key);
    v
}

fn health(agent: &Agent, metrics: &MetricsClient, inspect: &ContainerInspect) -> Value {
    if let Some(url) = metrics::metrics_url_from_inspect(inspect)
        && let Ok(m) = metrics.scrape(&url)
    {
        let mut v = from_metrics(&m);
        v["rpc_error"] = Value::Null;
        return v;
    }
    // A bridge-networked node serves Prometheus on its own loopback: one
    // `docker exec curl` for the whole page and one RPC call cost two execs
    // instead of the five RPC calls below, each its own exec.
    if let Some(m) = scrape_inside(agent, metrics, inspect) {
        let mut v = from_metrics(&m);
        // Commands need the RPC: one cheap call says whether it answers.
        let rpc = rpc_for(agent, &inspect.name, Some(inspect))
            .and_then(|client| client.system_health().map(|_| ()));
        match rpc {
            Ok(()) => v["rpc_error"] = Value::Null,
            Err(e) => {
                v["rpc_error"] = json!(e.to_string());
                v["rpc_code"] = json!(e.code().as_str());
            }
        }
        return v;
    }
    let outcome =
        rpc_for(agent, &inspect.name, Some(inspect)).and_then(|client| from_rpc(&client, inspect));
    match outcome {
        Ok(mut v) => {
            v["rpc_error"] = Value::Null;
            v
        }
        Err(e) => json!({ "rpc_error": e.to_string(), "rpc_code": e.code().as_str() }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_network_key_is_found_by_its_file_name() {
        assert!(super::lists_network_key("secret_ed25519\n"));
        assert!(super::lists_network_key("other\n secret_ed25519 \n"));
        assert!(!super::lists_network_key(""));
        assert!(!super::lists_network_key("secret_ed25519.bak\n"));
    }
}
