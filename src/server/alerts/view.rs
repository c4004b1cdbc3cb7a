//! [`FleetView`]: the snapshot of the fleet that the alert rules and
//! `/metrics` read, and [`AgentFacts`], what the hub remembers of one agent
//! (its last `stats` and `summary`, the facts its durable events and
//! command outcomes carried) to build it with [`fleet_view_from_stats`].
//!
//! Invariant: a value the agent did not report, or could not read, is `None`
//! here; nothing is defaulted to zero, so no rule fires and no metric shows on
//! a guess. Everything read from the wire is bounded (log lines, counts).
use crate::protocol::events::Payload;
use crate::server::keyguard::Duplicate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Last log lines kept per container, each cut at [`MAX_LOG_LINE`] bytes.
pub const MAX_LOG_LINES: usize = 5;
pub const MAX_LOG_LINE: usize = 200;
/// Containers read from one agent's stats; more are ignored.
pub const MAX_CONTAINERS: usize = 512;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct FleetView {
    pub now_ms: i64,
    /// When this server process started: an agent not seen since then and a
    /// backup never reported are judged from here.
    pub started_ms: i64,
    pub heartbeat_s: u64,
    pub agents: BTreeMap<String, AgentView>,
    pub duplicate_keys: Vec<DuplicateKey>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentView {
    pub connected: bool,
    /// Last frame from it; `None`: not seen since this server started.
    pub last_seen_ms: Option<i64>,
    /// A `stats` report has arrived (before it, nothing is known of its
    /// containers, which is not the same as "no container").
    pub stats_seen: bool,
    pub host: Option<String>,
    /// The agent reported that it cannot use Docker.
    pub docker_error: Option<String>,
    /// Its managed containers from its last stats (empty before the first).
    pub containers: BTreeMap<String, ContainerView>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerView {
    /// Docker's state word: `running`, `exited`, `restarting`, …
    pub state: String,
    pub restart_count: Option<u64>,
    pub node: NodeView,
    pub validator: ValidatorView,
    pub backup: BackupView,
    /// The container's last log lines, when a `logs` result brought some.
    pub last_log_lines: Vec<String>,
}

impl ContainerView {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
    /// A validator node: authority role, or keys that belong to a stash.
    pub fn is_validator(&self) -> bool {
        self.node.is_authority == Some(true) || self.validator.account.is_some()
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeView {
    pub best: Option<u64>,
    pub finalized: Option<u64>,
    pub sync_target: Option<u64>,
    pub peers: Option<u64>,
    pub syncing: Option<bool>,
    pub chain: Option<String>,
    pub is_authority: Option<bool>,
    /// Why the node could not be read (its RPC or metrics).
    pub rpc_error: Option<String>,
}

impl NodeView {
    /// The node answered: its values are fresh.
    pub fn reachable(&self) -> bool {
        self.rpc_error.is_none() && self.best.is_some()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidatorChange {
    pub at_ms: i64,
    pub era: Option<u64>,
    pub previous: Option<String>,
    pub current: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValidatorView {
    /// The stash (SS58) the node's session keys belong to.
    pub account: Option<String>,
    /// In the active set, as the agent's era watch last said.
    pub active: Option<bool>,
    pub changed: Option<ValidatorChange>,
    pub active_era: Option<u64>,
    pub unclaimed_eras: Option<u64>,
    /// The oldest unclaimed era, when the agent reports it.
    pub oldest_unclaimed_era: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupFailure {
    pub at_ms: i64,
    pub error: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackupView {
    pub newest_ms: Option<i64>,
    pub last_failure: Option<BackupFailure>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DuplicateKey {
    pub key_type: String,
    pub public_key: String,
    /// (agent, container), at least two.
    pub holders: Vec<(String, String)>,
}

impl From<&Duplicate> for DuplicateKey {
    fn from(d: &Duplicate) -> Self {
        DuplicateKey {
            key_type: d.key_type.clone(),
            public_key: d.public_key.clone(),
            holders: d.holders.clone(),
        }
    }
}

/// What events and command outcomes said about one container. Serializable
/// so the hub may keep it across restarts (it holds no secret).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerFacts {
    pub validator_active: Option<bool>,
    pub validator_account: Option<String>,
    pub validator_changed: Option<ValidatorChange>,
    pub backup_newest_ms: Option<i64>,
    pub backup_failure: Option<BackupFailure>,
    pub last_log_lines: Vec<String>,
}

/// What the hub remembers of one agent. The hub sets `connected` and
/// `last_seen_ms` and calls the `on_*` methods as frames arrive.
#[derive(Clone, Debug, Default)]
pub struct AgentFacts {
    pub connected: bool,
    pub last_seen_ms: Option<i64>,
    /// `data` of the agent's last `stats` and `summary` frames.
    pub stats: Option<Value>,
    pub summary: Option<Value>,
    pub containers: BTreeMap<String, ContainerFacts>,
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn cut(line: &str, max: usize) -> String {
    if line.len() <= max {
        return line.to_string();
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

impl AgentFacts {
    pub fn on_stats(&mut self, data: &Value) {
        self.stats = Some(data.clone());
    }

    pub fn on_summary(&mut self, data: &Value) {
        self.summary = Some(data.clone());
    }

    fn container(&mut self, name: &str) -> Option<&mut ContainerFacts> {
        if name.is_empty() || name.len() > 255 {
            return None;
        }
        if !self.containers.contains_key(name) && self.containers.len() >= MAX_CONTAINERS {
            return None;
        }
        Some(self.containers.entry(name.to_string()).or_default())
    }

    /// A durable event: backups and validator changes (key updates are
    /// the duplicate-key guard's business).
    pub fn on_event(&mut self, payload: &Payload) {
        let (event, active, change) = match payload {
            Payload::KeyUpdate(_) => return,
            Payload::BackupComplete(backup) => {
                return self.on_backup(&backup.container, backup.timestamp);
            }
            Payload::ValidatorActivated(v) => (v, true, None),
            Payload::ValidatorDeactivated(v) => (v, false, None),
            Payload::ValidatorChanged(v) => (
                v,
                true,
                Some(ValidatorChange {
                    at_ms: v.timestamp,
                    era: Some(v.era.into()),
                    previous: v.previous_validator.clone(),
                    current: v.validator_account.clone(),
                }),
            ),
        };
        let Some(c) = self.container(&event.node) else {
            return;
        };
        c.validator_active = Some(active);
        if active {
            c.validator_account = event.validator_account.clone();
        }
        if change.is_some() {
            c.validator_changed = change;
        }
    }

    /// A finished backup of `container` (an event, or one on record at start).
    pub fn on_backup(&mut self, container: &str, at_ms: i64) {
        if let Some(c) = self.container(container) {
            c.backup_newest_ms = c.backup_newest_ms.max(Some(at_ms));
        }
    }

    /// A `backup_keys` command on `container` failed (its outcome's error).
    /// A later `backup_complete` newer than it clears `BackupFailed`.
    pub fn on_backup_failed(&mut self, container: &str, at_ms: i64, error: &str) {
        if let Some(c) = self.container(container) {
            c.backup_failure = Some(BackupFailure {
                at_ms,
                error: cut(error, 300),
            });
        }
    }

    /// A `logs` result for `container`: its last lines are kept for notices.
    pub fn on_logs(&mut self, container: &str, text: &str) {
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .rev()
            .take(MAX_LOG_LINES)
            .map(|l| cut(l, MAX_LOG_LINE))
            .collect();
        if let Some(c) = self.container(container) {
            c.last_log_lines = lines.into_iter().rev().collect();
        }
    }
}

fn node_view(node: Option<&Value>) -> NodeView {
    let Some(n) = node.filter(|n| n.is_object()) else {
        return NodeView::default();
    };
    let rpc_error = str_of(n, "rpc_error");
    // Values of an unreachable node are not fresh: none of them is kept.
    if rpc_error.is_some() {
        return NodeView {
            rpc_error: rpc_error.map(|e| cut(&e, 300)),
            ..NodeView::default()
        };
    }
    NodeView {
        best: n.get("best").and_then(Value::as_u64),
        finalized: n.get("finalized").and_then(Value::as_u64),
        sync_target: n.get("sync_target").and_then(Value::as_u64),
        peers: n.get("peers").and_then(Value::as_u64),
        syncing: n.get("syncing").and_then(Value::as_bool),
        chain: str_of(n, "chain").map(|c| cut(&c, 64)),
        is_authority: n
            .get("roles")
            .and_then(Value::as_array)
            .map(|r| r.iter().any(|r| r.as_str() == Some("Authority"))),
        rpc_error: None,
    }
}

fn agent_view(facts: &AgentFacts) -> AgentView {
    let mut view = AgentView {
        connected: facts.connected,
        last_seen_ms: facts.last_seen_ms,
        ..AgentView::default()
    };
    let stats = facts.stats.as_ref();
    view.stats_seen = stats.is_some();
    view.host = stats
        .and_then(|s| s.get("host"))
        .and_then(|h| str_of(h, "name"));
    view.docker_error = stats.and_then(|s| str_of(s, "error")).map(|e| cut(&e, 300));
    let checks = facts
        .summary
        .as_ref()
        .and_then(|s| s.pointer("/payout_info/payout_checks"));
    let rows = stats
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for row in rows.iter().take(MAX_CONTAINERS) {
        let Some(name) = str_of(row, "name").filter(|n| !n.is_empty() && n.len() <= 255) else {
            continue;
        };
        let state = str_of(row, "state").unwrap_or_default();
        let mut c = ContainerView {
            restart_count: row.get("restart_count").and_then(Value::as_u64),
            node: if state == "running" {
                node_view(
                    stats.and_then(|s| s.pointer(&format!("/nodes/{}", escape_pointer(&name)))),
                )
            } else {
                NodeView::default()
            },
            state,
            ..ContainerView::default()
        };
        if let Some(check) = checks.and_then(|c| c.get(&name)) {
            c.validator.account = str_of(check, "validator_account");
            c.validator.active_era = check.get("current_era").and_then(Value::as_u64);
            c.validator.unclaimed_eras = check.get("unclaimed_payouts").and_then(Value::as_u64);
            // The summary lists each unclaimed era, oldest first
            // (`unclaimed_eras`); `oldest_unclaimed_era` is the older form.
            c.validator.oldest_unclaimed_era = check
                .get("oldest_unclaimed_era")
                .and_then(Value::as_u64)
                .or_else(|| {
                    check
                        .pointer("/unclaimed_eras/0/era")
                        .and_then(Value::as_u64)
                });
        }
        if let Some(f) = facts.containers.get(&name) {
            c.validator.active = f.validator_active;
            if c.validator.account.is_none() {
                c.validator.account = f.validator_account.clone();
            }
            c.validator.changed = f.validator_changed.clone();
            c.backup = BackupView {
                newest_ms: f.backup_newest_ms,
                last_failure: f.backup_failure.clone(),
            };
            c.last_log_lines = f.last_log_lines.clone();
        }
        view.containers.insert(name, c);
    }
    view
}

/// JSON pointer escaping of one path segment (RFC 6901).
fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Keys held by two or more nodes, from every agent's last keystore
/// listings (`stats.nodes.<c>.keystore`), merged with `known` (the key
/// guard's, which also sees rotations). Sorted by public key.
fn duplicates_from_listings(
    agents: &BTreeMap<String, AgentFacts>,
    known: &[Duplicate],
) -> Vec<DuplicateKey> {
    let mut by_key: BTreeMap<String, (String, std::collections::BTreeSet<(String, String)>)> =
        BTreeMap::new();
    for d in known {
        let entry = by_key
            .entry(d.public_key.to_ascii_lowercase())
            .or_insert_with(|| (d.key_type.clone(), Default::default()));
        entry.1.extend(d.holders.iter().cloned());
    }
    for (agent, facts) in agents {
        let Some(nodes) = facts
            .stats
            .as_ref()
            .and_then(|s| s.get("nodes"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        for (container, node) in nodes.iter().take(MAX_CONTAINERS) {
            let keys = node.get("keystore").and_then(Value::as_array);
            for key in keys.into_iter().flatten().take(64) {
                let (Some(t), Some(public)) = (str_of(key, "type"), str_of(key, "public")) else {
                    continue;
                };
                if public.len() > 130 {
                    continue;
                }
                by_key
                    .entry(public.to_ascii_lowercase())
                    .or_insert_with(|| (t, Default::default()))
                    .1
                    .insert((agent.clone(), container.clone()));
            }
        }
    }
    by_key
        .into_iter()
        .filter(|(_, (_, holders))| holders.len() >= 2)
        .map(|(public_key, (key_type, holders))| DuplicateKey {
            key_type,
            public_key,
            holders: holders.into_iter().collect(),
        })
        .collect()
}

/// The fleet as the hub knows it now. `agents` must hold every agent that
/// has a token (those never seen since the server started with
/// `last_seen_ms: None`), so `AgentDown` covers an agent that does not come
/// back after a restart. Duplicate keys are found in the agents' keystore
/// listings; `duplicates` adds what else the hub knows (the key guard's
/// duplicates from rotations), or is empty.
pub fn fleet_view_from_stats(
    now_ms: i64,
    started_ms: i64,
    heartbeat_s: u64,
    agents: &BTreeMap<String, AgentFacts>,
    duplicates: &[Duplicate],
) -> FleetView {
    FleetView {
        now_ms,
        started_ms,
        heartbeat_s,
        agents: agents
            .iter()
            .map(|(id, f)| (id.clone(), agent_view(f)))
            .collect(),
        duplicate_keys: duplicates_from_listings(agents, duplicates),
    }
}
