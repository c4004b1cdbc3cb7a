//! Never double-sign, server side: before `start` or `restore_keys` of a
//! node, the keys that node will run with are compared with every other node
//! of the fleet the server knows of, running or stopped. Pure: the hub feeds
//! it a [`FleetKeys`] (live agents' stats and the [`KeyGuard`]'s holders) and
//! sends the command only on `Ok`.
//!
//! Invariants:
//! - It fails closed: when the target's host has not reported within the
//!   freshness window, or never listed the node's keystore, or the archive
//!   of a restore does not say which keys it holds, the answer is a refusal.
//! - A refusal names every other node holding one of the keys; another node
//!   of a connected agent whose keystore was never listed is a refusal too
//!   (it may hold them). Nodes of agents that are not connected are unknown
//!   to the server (their keys are forgotten when they leave): a residual
//!   risk, written in docs/security.md.
//! - Only `force=true` with a non-empty `reason` overrides it (the hub
//!   records the reason in the audit log); that is decided by the caller.
//!
//! [`KeyGuard`]: super::keyguard::KeyGuard
use crate::chain::public_key::key_text;
use std::collections::BTreeSet;
use std::fmt;

/// One node the server knows: (agent id, host name, container).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    pub agent: String,
    pub host: String,
    pub container: String,
}

/// A keystore listing: `(key type, 0x public key)`.
pub type Listing = Vec<(String, String)>;

/// What the server knows of one connected agent.
#[derive(Clone, Debug, Default)]
pub struct HostView {
    pub agent: String,
    pub host: String,
    /// Milliseconds since its last `stats` reached the server (`None`: never).
    pub stats_age_ms: Option<i64>,
    /// Each node's keystore public keys `(type, 0x hex)` as its last stats
    /// listed them; `None` for a node whose keystore was never listed.
    pub nodes: Vec<(String, Option<Listing>)>,
}

/// Everything the check reads.
#[derive(Debug, Default)]
pub struct FleetKeys {
    pub hosts: Vec<HostView>,
    /// Holders of keys seen outside listings (rotations), from the KeyGuard:
    /// `(key type, public key, agent, container)`.
    pub observed: Vec<(String, String, String, String)>,
    /// A host whose stats are older than this is stale (2 × heartbeat).
    pub fresh_ms: i64,
}

/// What is about to run on the target.
pub enum Planned<'a> {
    /// `start`: the node's own keystore, as its agent listed it.
    Start,
    /// `restore_keys`: the archive's keys, when its `backup_complete` said.
    Restore {
        file: &'a str,
        keys: Option<&'a [String]>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No stats from the target's agent within the window (or never).
    Stale { agent: String, age_ms: Option<i64> },
    /// The agent reported the node but never listed its keystore.
    NeverListed { agent: String, container: String },
    /// The server does not know which keys the archive holds.
    ArchiveUnknown { file: String },
    /// Other nodes whose keystores were never listed: they may hold the keys.
    Unknown { nodes: Vec<Node> },
    /// Other nodes hold keys the target would run with.
    Held {
        command: &'static str,
        holders: Vec<(Node, String, String)>,
    },
}

const OVERRIDE: &str = "or add force=true reason=\"…\" (recorded in the audit log)";

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Stale { agent, age_ms } => write!(
                f,
                "refused: the server's view of {agent} is stale ({}), so it cannot tell whether \
                 another node holds these keys; wait for its next stats, {OVERRIDE}",
                match age_ms {
                    Some(ms) => format!("last stats {} s ago", ms / 1000),
                    None => "no stats yet".to_string(),
                }
            ),
            Refusal::NeverListed { agent, container } => write!(
                f,
                "refused: {agent} never listed {container}'s keystore, so its keys cannot be \
                 compared with the fleet's; check `nodes {agent}`, {OVERRIDE}"
            ),
            Refusal::ArchiveUnknown { file } => write!(
                f,
                "refused: the server has no record of which keys {file} holds (no \
                 backup_complete listing them), so they cannot be compared with the fleet's; \
                 {OVERRIDE}"
            ),
            Refusal::Unknown { nodes } => {
                f.write_str("refused: the keystore of ")?;
                for (i, n) in nodes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{} on {}", n.container, n.host)?;
                }
                write!(
                    f,
                    " was never listed, so the server cannot tell whether it holds these keys; \
                     wait for its agent's next stats (`nodes`), {OVERRIDE}"
                )
            }
            Refusal::Held { command, holders } => {
                f.write_str("refused: ")?;
                for (i, (node, key_type, key)) in holders.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(
                        f,
                        "{} on {} holds {key_type} {key}",
                        node.container, node.host
                    )?;
                }
                write!(
                    f,
                    "; {command} would make both sign (double-signing). Stop it first, {OVERRIDE}"
                )
            }
        }
    }
}

/// May `planned` run on `container` of `agent`? See the module docs.
pub fn check(
    fleet: &FleetKeys,
    agent: &str,
    container: &str,
    planned: &Planned<'_>,
) -> Result<(), Refusal> {
    let Some(host) = fleet.hosts.iter().find(|h| h.agent == agent) else {
        return Err(Refusal::Stale {
            agent: agent.to_string(),
            age_ms: None,
        });
    };
    match host.stats_age_ms {
        Some(age) if age <= fleet.fresh_ms => {}
        age_ms => {
            return Err(Refusal::Stale {
                agent: agent.to_string(),
                age_ms,
            });
        }
    }
    let (command, keys): (&'static str, Vec<String>) = match planned {
        Planned::Start => {
            let listed = host
                .nodes
                .iter()
                .find(|(c, _)| c == container)
                .and_then(|(_, keys)| keys.as_ref())
                .ok_or_else(|| Refusal::NeverListed {
                    agent: agent.to_string(),
                    container: container.to_string(),
                })?;
            ("start", listed.iter().map(|(_, k)| key_text(k)).collect())
        }
        Planned::Restore { file, keys } => {
            let keys = keys.ok_or_else(|| Refusal::ArchiveUnknown {
                file: file.to_string(),
            })?;
            ("restore_keys", keys.iter().map(|k| key_text(k)).collect())
        }
    };
    let wanted: BTreeSet<String> = keys.into_iter().collect();
    let mut holders: BTreeSet<(Node, String, String)> = BTreeSet::new();
    let is_target = |a: &str, c: &str| a == agent && c == container;
    for h in &fleet.hosts {
        for (c, listed) in &h.nodes {
            if is_target(&h.agent, c) {
                continue;
            }
            for (key_type, key) in listed.iter().flatten() {
                let key = key_text(key);
                if wanted.contains(&key) {
                    holders.insert((node(h, c), key_type.clone(), key));
                }
            }
        }
    }
    for (key_type, key, a, c) in &fleet.observed {
        let key = key_text(key);
        if is_target(a, c) || !wanted.contains(&key) {
            continue;
        }
        let host = fleet
            .hosts
            .iter()
            .find(|h| h.agent == *a)
            .map(|h| h.host.clone())
            .unwrap_or_else(|| a.clone());
        let already = holders
            .iter()
            .any(|(n, _, k)| n.agent == *a && n.container == *c && *k == key);
        if !already {
            let n = Node {
                agent: a.clone(),
                host,
                container: c.clone(),
            };
            holders.insert((n, key_type.clone(), key));
        }
    }
    if holders.is_empty() {
        let unknown: Vec<Node> = fleet
            .hosts
            .iter()
            .flat_map(|h| h.nodes.iter().map(move |(c, keys)| (h, c, keys)))
            .filter(|(h, c, keys)| keys.is_none() && !is_target(&h.agent, c))
            .map(|(h, c, _)| node(h, c))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(Refusal::Unknown { nodes: unknown })
        }
    } else {
        Err(Refusal::Held {
            command,
            holders: holders.into_iter().collect(),
        })
    }
}

fn node(h: &HostView, container: &str) -> Node {
    Node {
        agent: h.agent.clone(),
        host: h.host.clone(),
        container: container.to_string(),
    }
}

#[cfg(test)]
#[path = "doublesign_tests.rs"]
mod tests;
