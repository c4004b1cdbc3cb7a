//! What changed between two fleet snapshots: the frames `live` pushes to a
//! browser after the first snapshot. Pure: [`diff`] compares rows by key
//! (agent id; agent and container; alert rule, agent and container) and
//! [`snapshot_frame`] / [`Delta`] are the two frame kinds on the wire.
//!
//! The wire (text frames, JSON):
//! - `{"type":"snapshot","seq":N,"fleet":{…}}`: the whole fleet, as
//!   `api/fleet` answers it; the page starts over from it.
//! - `{"type":"delta","seq":N,"ts":…,"agents":[…],"agents_gone":[id…],
//!   "nodes":[…],"nodes_gone":[[agent,container]…],"alerts":[…],
//!   "alerts_gone":[[rule,agent,container]…],"commands":[…]}`: rows added
//!   or changed, keys gone; `commands` (the 50 most recent, small) only
//!   when that list changed. Empty lists are left out.
//!
//! `seq` counts a connection's frames from 1 (its first snapshot); a page
//! that sees a gap sends `resync` and ignores deltas until a snapshot.
use super::snapshot::{AgentRow, NodeRow, Snapshot};
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The rows of `new` that differ from `old`, and the keys `new` lost.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Delta<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub seq: u64,
    pub ts: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<&'a AgentRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub agents_gone: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<&'a NodeRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes_gone: Vec<[&'a str; 2]>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<&'a Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts_gone: Vec<[&'a Value; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commands: Option<&'a [Value]>,
}

impl Delta<'_> {
    /// Rows it carries (changed or gone); `commands` counts as one.
    pub fn rows(&self) -> usize {
        self.agents.len()
            + self.agents_gone.len()
            + self.nodes.len()
            + self.nodes_gone.len()
            + self.alerts.len()
            + self.alerts_gone.len()
            + usize::from(self.commands.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }
}

/// Rows a snapshot carries, in the same count as [`Delta::rows`].
pub fn rows(snapshot: &Snapshot) -> usize {
    snapshot.agents.len() + snapshot.nodes.len() + snapshot.alerts.len() + 1
}

const NULL: Value = Value::Null;

/// An alert's identity: what fires, and where.
fn alert_key(alert: &Value) -> [&Value; 3] {
    let field = |k| alert.get(k).unwrap_or(&NULL);
    [field("rule"), field("agent"), field("container")]
}

/// Keyed rows of `old` and `new`: the new or changed ones, and the keys gone.
fn changed<'a, K: Eq + std::hash::Hash + Copy, T: PartialEq>(
    old: &'a [T],
    new: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> (Vec<&'a T>, Vec<K>) {
    let before: HashMap<K, &T> = old.iter().map(|row| (key(row), row)).collect();
    let mut kept: HashSet<K> = HashSet::with_capacity(new.len());
    let mut rows = Vec::new();
    for row in new {
        let k = key(row);
        kept.insert(k);
        if before.get(&k) != Some(&row) {
            rows.push(row);
        }
    }
    let gone = old.iter().map(&key).filter(|k| !kept.contains(k)).collect();
    (rows, gone)
}

/// What changed from `old` to `new`, as frame number `seq`.
pub fn diff<'a>(old: &'a Snapshot, new: &'a Snapshot, seq: u64) -> Delta<'a> {
    let (agents, agents_gone) = changed(&old.agents, &new.agents, |a| a.id.as_str());
    let (nodes, nodes_gone) = changed(&old.nodes, &new.nodes, |n| {
        [n.agent.as_str(), n.container.as_str()]
    });
    let (alerts, alerts_gone) = changed(&old.alerts, &new.alerts, alert_key);
    Delta {
        kind: "delta",
        seq,
        ts: new.ts,
        agents,
        agents_gone,
        nodes,
        nodes_gone,
        alerts,
        alerts_gone,
        commands: (old.commands != new.commands).then_some(new.commands.as_slice()),
    }
}

/// The snapshot frame around the fleet's JSON (as `api/fleet` serves it).
pub fn snapshot_frame(seq: u64, fleet_json: &str) -> String {
    format!("{{\"type\":\"snapshot\",\"seq\":{seq},\"fleet\":{fleet_json}}}")
}

/// A delta of more rows than this, and more than half the fleet's, goes
/// as a snapshot (parsing one is cheaper than applying that many); below
/// it a delta is small whatever share of a small fleet it carries.
pub const SNAPSHOT_MIN_ROWS: usize = 64;

/// With nothing changed, a delta of just `ts` this often, so the page's
/// ages ("last seen 5s") keep counting.
pub const KEEPALIVE: Duration = Duration::from_secs(5);

/// One connection's side of the push: what it last sent, and its count.
///
/// Bounded by construction: a frame is computed against what was last
/// *sent*, so changes that happen while a browser is slow to read merge
/// into the next frame instead of queueing; and a delta that would carry
/// more than half the fleet's rows (and more than [`SNAPSHOT_MIN_ROWS`])
/// goes as a snapshot instead.
#[derive(Default)]
pub struct Push {
    sent: Option<Arc<Snapshot>>,
    seq: u64,
    last_frame: Option<Instant>,
}

impl Push {
    /// The page asked for a fresh start (it saw a gap).
    pub fn resync(&mut self) {
        self.sent = None;
    }

    /// The next frame for `now`, if any is due; `fleet_json` is the
    /// snapshot's JSON, asked for only when a snapshot frame goes out.
    pub fn next(
        &mut self,
        now: &Arc<Snapshot>,
        fleet_json: impl FnOnce() -> Option<Arc<str>>,
        at: Instant,
    ) -> Option<String> {
        let quiet = self
            .last_frame
            .is_none_or(|t| at.duration_since(t) >= KEEPALIVE);
        let text = match &self.sent {
            Some(old) if Arc::ptr_eq(old, now) && !quiet => return None,
            Some(old) => {
                let delta = diff(old, now, self.seq + 1);
                if delta.is_empty() && !quiet {
                    return None;
                }
                if delta.rows() > SNAPSHOT_MIN_ROWS && delta.rows() * 2 > rows(now) {
                    snapshot_frame(self.seq + 1, &fleet_json()?)
                } else {
                    serde_json::to_string(&delta).ok()?
                }
            }
            None => snapshot_frame(self.seq + 1, &fleet_json()?),
        };
        self.seq += 1;
        self.sent = Some(now.clone());
        self.last_frame = Some(at);
        Some(text)
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
