//! What the agent learns about each node it manages: where its RPC is, and
//! its heights, peers, sync state, roles and version. Prometheus is read
//! where it is reachable (host networking: one request); otherwise the
//! node's RPC answers (through `docker exec … curl` for a node whose RPC
//! listens only on its container's loopback).
use super::Agent;
use crate::chain::{self, KeyTypeId};
use crate::docker::ContainerInspect;
use crate::metrics::{self, MetricsClient, NodeMetrics};
use crate::rpc::{Endpoint, RpcClient, RpcError};
use serde_json::{Value, json};
use std::time::Duration;

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

/// The public keys in the node's keystore, from the files' NAMES (hex key
/// type ‖ hex public key); the files hold secrets and are never read.
pub fn keystore_keys(
    agent: &Agent,
    inspect: &ContainerInspect,
) -> Result<Vec<(KeyTypeId, [u8; 32])>, String> {
    let dir = keystore_dir(agent, inspect)?;
    let listing = agent
        .docker
        .exec(
            &inspect.name,
            &["ls".into(), "-1".into(), "--".into(), dir.clone()],
            Duration::from_secs(10),
        )
        .map_err(|e| e.to_string())?;
    if listing.exit_code != 0 {
        return Err(format!(
            "cannot list {dir} in {}: {}",
            inspect.name,
            listing.stderr.trim()
        ));
    }
    Ok(listing
        .stdout
        .lines()
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

/// One node's health, for `stats.nodes`. Never fails: what could not be
/// learned is `null`, with the reason in `rpc_error`.
pub fn status(agent: &Agent, metrics: &MetricsClient, inspect: &ContainerInspect) -> Value {
    if !inspect.state.running {
        return json!({ "rpc_error": null, "note": "not running" });
    }
    if let Some(url) = metrics::metrics_url_from_inspect(inspect)
        && let Ok(m) = metrics.scrape(&url)
    {
        let mut v = from_metrics(&m);
        v["rpc_error"] = Value::Null;
        return v;
    }
    let outcome =
        rpc_for(agent, &inspect.name, Some(inspect)).and_then(|client| from_rpc(&client, inspect));
    match outcome {
        Ok(mut v) => {
            v["rpc_error"] = Value::Null;
            v
        }
        Err(e) => json!({ "rpc_error": e.to_string(), "rpc_code": e.wire_code() }),
    }
}
