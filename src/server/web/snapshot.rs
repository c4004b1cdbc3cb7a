//! What the dashboard shows, built by the hub from its own state: the narrow
//! interface between the hub and the web module. The hub answers a
//! [`WebRequest`] on its thread (so it reads its state without locks) and
//! the web threads only ever see these plain, owned values.
//!
//! Invariants: a snapshot is bounded (every live agent and its announced
//! nodes, at most [`MAX_COMMANDS`] commands); a node's problem is decided
//! here, once, by [`classify`], so the page and the tests agree on it.
use super::super::control::Update;
use super::super::hub::{Hub, Live};
use crate::protocol::now_ms;
use crate::protocol::reports::NodeReport;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::mpsc::{Sender, SyncSender};
use std::time::{Duration, Instant};

/// Commands in the fleet snapshot, and in a node's page, at most.
pub const MAX_COMMANDS: usize = 50;
/// Key updates and backups on a node's page, at most.
pub const MAX_HISTORY: usize = 50;
/// How long the hub keeps telling the dashboard about a command's outcome.
const ACTION_WAIT: Duration = Duration::from_secs(600);
/// A validator behind by more than this many blocks is `BEHIND`.
pub const LAG_BLOCKS: u64 = 10;
/// An unclaimed payout this close (days) to expiring is a problem.
pub const PAYOUT_DAYS: u64 = 7;
/// A newest backup older than this is a problem.
pub const BACKUP_MAX_AGE_MS: i64 = 48 * 3600 * 1000;

/// What the web module asks the hub.
pub enum WebRequest {
    /// The fleet, now.
    Snapshot(SyncSender<Snapshot>),
    /// One agent's key history, backups and commands.
    Node {
        agent: String,
        reply: SyncSender<Value>,
    },
    /// An operator line from the dashboard, run as `warden ctl` runs one,
    /// with the operator's name in the audit log.
    Action {
        line: String,
        by: String,
        updates: Sender<Update>,
    },
    /// A login, failed login or logout, for the audit log.
    Audit(Value),
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct AgentRow {
    pub id: String,
    pub connected: bool,
    pub last_seen_ms: i64,
    pub connected_ms: i64,
    pub host: String,
    pub version: String,
    pub docker_error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct NodeRow {
    pub agent: String,
    pub container: String,
    pub state: String,
    pub best: Option<u64>,
    pub finalized: Option<u64>,
    pub target: Option<u64>,
    /// Blocks behind the network (`target - best`).
    pub lag: Option<u64>,
    pub peers: Option<u64>,
    pub syncing: Option<bool>,
    pub roles: String,
    pub era: Option<u64>,
    pub validator: Option<String>,
    pub unclaimed: Option<u64>,
    pub oldest_days: Option<u64>,
    pub keys_warning: Option<String>,
    pub rpc_error: Option<String>,
    pub cpu: Option<f64>,
    pub mem: Option<u64>,
    pub backup_ms: Option<i64>,
    /// 2 red, 1 amber, 0 ok: the sort key.
    pub severity: u8,
    /// The problem in words (`ok` when none).
    pub problem: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    pub ts: i64,
    pub agents: Vec<AgentRow>,
    pub nodes: Vec<NodeRow>,
    pub alerts: Vec<Value>,
    pub commands: Vec<Value>,
}

/// Decide a node's problem: the first that applies, worst first.
pub fn classify(row: &mut NodeRow, agent_connected: bool, now: i64) {
    let (severity, problem) = if !agent_connected {
        (2, "AGENT DISCONNECTED".to_string())
    } else if row.state != "running" {
        (2, format!("DOWN ({})", row.state))
    } else if row.keys_warning.is_some() {
        (2, "KEYS MISSING".into())
    } else if row.rpc_error.is_some() {
        (2, "RPC UNREACHABLE".into())
    } else if row.peers == Some(0) {
        (1, "NO PEERS".into())
    } else if row.syncing == Some(true) {
        (1, "SYNCING".into())
    } else if row.lag.is_some_and(|l| l > LAG_BLOCKS) {
        (1, "BEHIND".into())
    } else if row.unclaimed.is_some_and(|n| n > 0)
        && row.oldest_days.is_some_and(|d| d <= PAYOUT_DAYS)
    {
        (1, "PAYOUT EXPIRING".into())
    } else if row.backup_ms.is_some_and(|b| now - b > BACKUP_MAX_AGE_MS) {
        (1, "BACKUP OLD".into())
    } else {
        (0, "ok".into())
    };
    row.severity = severity;
    row.problem = problem;
}

fn text(v: Option<&str>) -> Option<String> {
    v.map(|s| s.chars().take(200).collect())
}

/// One agent's rows, from its last stats and summary.
fn node_rows(
    agent: &str,
    live: &Live,
    backups: &HashMap<(&str, &str), i64>,
    now: i64,
) -> (Option<String>, Vec<NodeRow>) {
    let Some(stats) = live.stats() else {
        return (None, Vec::new());
    };
    let mut rows = Vec::new();
    for c in stats.rows() {
        let Some(name) = c.name.as_deref() else {
            continue;
        };
        if !live.announced(name) {
            continue;
        }
        let read = live.node(name).map(NodeReport::read);
        let p = live.summary().and_then(|s| s.check(name));
        let best = read.and_then(|r| r.best);
        let target = read.and_then(|r| r.sync_target);
        let mut row = NodeRow {
            agent: agent.to_string(),
            container: name.to_string(),
            state: text(c.state.as_deref()).unwrap_or_else(|| "unknown".into()),
            best,
            finalized: read.and_then(|r| r.finalized),
            target,
            lag: target.zip(best).map(|(t, b)| t.saturating_sub(b)),
            peers: read.and_then(|r| r.peers),
            syncing: read.and_then(|r| r.syncing),
            roles: read
                .and_then(|r| r.roles.as_ref())
                .map(|r| r.join(","))
                .unwrap_or_default(),
            era: p.and_then(|p| p.current_era),
            validator: text(p.and_then(|p| p.validator_account.as_deref())),
            unclaimed: p.and_then(|p| p.unclaimed_payouts),
            oldest_days: p.and_then(|p| p.oldest_expires_in_eras),
            keys_warning: text(
                p.and_then(|p| p.chain_keys.as_ref())
                    .and_then(|k| k.warning.as_deref()),
            ),
            rpc_error: text(live.node(name).and_then(|n| n.rpc_error.as_deref())),
            cpu: c.cpu_percent,
            mem: c.mem_used_bytes,
            backup_ms: backups.get(&(agent, name)).copied(),
            ..NodeRow::default()
        };
        classify(&mut row, true, now);
        rows.push(row);
    }
    (text(stats.error.as_deref()), rows)
}

fn command_json(r: &super::super::store::CommandRecord) -> Value {
    let status = match (&r.outcome, r.progress) {
        (Some(o), _) => o.status.as_str(),
        (None, Some(p)) => p.as_str(),
        (None, None) => "issued",
    };
    json!({
        "id": r.id, "agent": r.agent, "command": r.command, "target": r.target,
        "issued_ms": r.issued_ms, "by": r.by, "status": status,
        "error": r.outcome.as_ref().and_then(|o| o.error.clone()),
    })
}

impl Hub {
    /// The dashboard's hook: every [`WebRequest`] is answered here.
    pub(in crate::server) fn on_web(&mut self, request: WebRequest) {
        match request {
            WebRequest::Snapshot(reply) => {
                let _ = reply.try_send(self.web_snapshot());
            }
            WebRequest::Node { agent, reply } => {
                let _ = reply.try_send(self.web_node(&agent));
            }
            WebRequest::Audit(entry) => self.audit(entry),
            WebRequest::Action { line, by, updates } => {
                self.audit(json!({
                    "ts": now_ms(), "action": "dashboard", "by": by, "line": line,
                }));
                self.out.line(&format!(
                    "dashboard ({by}): {}",
                    super::super::console::inline(&line)
                ));
                let done = updates.clone();
                self.reply = Some(updates);
                self.ctl_wait = Some(Instant::now() + ACTION_WAIT);
                self.issued_by = Some("dashboard");
                let _ = self.on_operator_line(&line);
                self.issued_by = None;
                self.reply = None;
                self.ctl_wait = None;
                self.batch.then(move || {
                    let _ = done.send(Update::Done);
                });
            }
        }
    }

    fn web_snapshot(&self) -> Snapshot {
        let now = now_ms();
        let mut backups: HashMap<(&str, &str), i64> = HashMap::new();
        for b in self.store.backups(None) {
            let newest = backups
                .entry((b.agent.as_str(), b.container.as_str()))
                .or_insert(b.at_ms);
            *newest = (*newest).max(b.at_ms);
        }
        let mut snapshot = Snapshot {
            ts: now,
            ..Snapshot::default()
        };
        for (id, live) in &self.live {
            let (docker_error, rows) = node_rows(id, live, &backups, now);
            let s = &live.session;
            snapshot.agents.push(AgentRow {
                id: id.clone(),
                connected: true,
                last_seen_ms: s.last_seen_ms.load(std::sync::atomic::Ordering::Relaxed),
                connected_ms: s.connected_ms,
                host: s.hello.host_name.chars().take(100).collect(),
                version: s.hello.version.chars().take(40).collect(),
                docker_error,
            });
            snapshot.nodes.extend(rows);
        }
        snapshot.alerts = self.web_alerts();
        snapshot.commands = self
            .store
            .recent(None, MAX_COMMANDS)
            .into_iter()
            .map(command_json)
            .collect();
        snapshot
    }

    /// Firing alerts for the dashboard. The hook for the alert engine: once
    /// it is in the hub, this is `alerts::engine::firing_json(&…firing())`.
    /// What fires now, as the alert engine says: `rule`, `severity`,
    /// labels and `summary`, for the page's alert banner.
    fn web_alerts(&self) -> Vec<Value> {
        self.ops
            .alerts
            .engine
            .firing()
            .into_iter()
            .map(|a| {
                json!({"rule": a.alertname, "severity": a.severity.as_str(), "agent": a.agent,
                       "container": a.container, "since_ms": a.since_ms, "summary": a.summary})
            })
            .collect()
    }

    fn web_node(&self, agent: &str) -> Value {
        let keys: Vec<Value> = self
            .store
            .key_updates(Some(agent))
            .into_iter()
            .take(MAX_HISTORY)
            .map(|k| {
                json!({"container": k.container, "session_key": k.session_key,
                       "action": k.action, "received_ms": k.received_ms})
            })
            .collect();
        let backups: Vec<Value> = self
            .store
            .backups(Some(agent))
            .into_iter()
            .take(MAX_HISTORY)
            .map(|b| json!({"container": b.container, "file": b.file, "bytes": b.bytes, "at_ms": b.at_ms}))
            .collect();
        let commands: Vec<Value> = self
            .store
            .recent(Some(agent), MAX_COMMANDS)
            .into_iter()
            .map(command_json)
            .collect();
        let mut out = Map::new();
        out.insert("agent".into(), Value::from(agent));
        out.insert(
            "connected".into(),
            Value::from(self.live.contains_key(agent)),
        );
        out.insert("keys".into(), Value::from(keys));
        out.insert("backups".into(), Value::from(backups));
        out.insert("commands".into(), Value::from(commands));
        Value::Object(out)
    }
}
