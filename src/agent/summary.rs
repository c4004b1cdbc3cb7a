//! The `summary` report and the era watch, every `summary_interval_s`
//! (default 60 s): the active era, each node's unclaimed payouts, and, when
//! the era changes, each node's validator status, with a durable
//! `validator_activated` / `validator_changed` / `validator_deactivated`
//! event per change.
//!
//! Invariants:
//! - An event is raised exactly once per change: its id is derived from the
//!   node, the era and the kind, and the watch's state is saved (atomically)
//!   after the events are in the ledger, so an agent restart neither loses
//!   nor repeats one.
//! - Each node is compared once per era, in its own active era, the first
//!   time it is read in that era without error and synced; a node seen for
//!   the first time only sets its baseline.
use super::Agent;
use super::keys::session_key_sets;
use crate::chain::{self, AccountId32};
use crate::docker::ContainerInspect;
use crate::protocol::events::{Payload, ValidatorChange};
use crate::protocol::{Event, EventKind, Message, now_ms};
use crate::rpc::RpcStorage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread;

/// What the watch knew of each node at the last era it read it in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchState {
    /// The latest era any node was read in.
    pub era: Option<u32>,
    pub nodes: BTreeMap<String, NodeStatus>,
    /// The era each status in `nodes` was read in. Absent from state saved
    /// before it existed, whose nodes were all read in `era`.
    #[serde(default)]
    pub node_eras: BTreeMap<String, u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The stash this node's session keys belong to (SS58).
    pub validator: Option<String>,
    pub active: bool,
    pub is_authority: bool,
}

/// One change to report: which event, and the stashes it names (SS58).
#[derive(Debug, PartialEq)]
pub struct Change {
    pub kind: EventKind,
    pub node: String,
    pub validator_account: Option<String>,
    pub previous_validator: Option<String>,
    pub is_authority: Option<bool>,
}

/// The events a new era brings, comparing each node's status with the last.
pub fn changes(before: &WatchState, now: &BTreeMap<String, NodeStatus>) -> Vec<Change> {
    let mut out = Vec::new();
    for (node, status) in now {
        let old = before.nodes.get(node).cloned().unwrap_or_default();
        let authority = Some(status.is_authority);
        let (kind, current, previous, is_authority) =
            match (&old.validator, &status.validator, old.active, status.active) {
                (Some(prev), Some(cur), _, true) if prev != cur => (
                    EventKind::ValidatorChanged,
                    Some(cur),
                    Some(prev),
                    authority,
                ),
                (_, Some(cur), false, true) => {
                    (EventKind::ValidatorActivated, Some(cur), None, authority)
                }
                (Some(prev), _, true, false) => {
                    (EventKind::ValidatorDeactivated, None, Some(prev), None)
                }
                _ => continue,
            };
        out.push(Change {
            kind,
            node: node.clone(),
            validator_account: current.cloned(),
            previous_validator: previous.cloned(),
            is_authority,
        });
    }
    out
}

/// The durable event for `change`; its id is the node, the era and the
/// kind, so a change raised twice is one event.
fn validator_event(era: u32, change: Change, timestamp: i64) -> Event {
    let payload = ValidatorChange {
        event_id: format!("{}-{}-{era}", change.kind.as_str(), change.node),
        node: change.node,
        era,
        validator_account: change.validator_account,
        previous_validator: change.previous_validator,
        is_authority: change.is_authority,
        timestamp,
    };
    match change.kind {
        EventKind::ValidatorActivated => Payload::ValidatorActivated(payload),
        EventKind::ValidatorChanged => Payload::ValidatorChanged(payload),
        // `changes` makes only the three validator kinds.
        _ => Payload::ValidatorDeactivated(payload),
    }
    .into()
}

/// Record the status of each node read (without error, synced) in its own
/// active era, and return the changes since the era it was last read in,
/// each with its era. A node is compared once per era, the first time it can
/// be read in that era: one in error or syncing when its era changes is
/// compared at a later summary, not skipped until the next era. A node seen
/// for the first time only sets its baseline: nothing changed that the
/// watch saw.
pub fn observe(state: &mut WatchState, read: Vec<(String, u32, NodeStatus)>) -> Vec<(u32, Change)> {
    let mut out = Vec::new();
    for (node, era, status) in read {
        let last = state.node_eras.get(&node).copied().or(state
            .nodes
            .contains_key(&node)
            .then_some(state.era)
            .flatten());
        if last.is_some_and(|last| last >= era) {
            continue;
        }
        if state.nodes.contains_key(&node) {
            let now = BTreeMap::from([(node.clone(), status.clone())]);
            out.extend(changes(state, &now).into_iter().map(|c| (era, c)));
        }
        state.nodes.insert(node.clone(), status);
        state.node_eras.insert(node, era);
        state.era = state.era.max(Some(era));
    }
    out
}

fn state_path(agent: &Agent) -> std::path::PathBuf {
    agent.config.state_dir.join("era_watch.json")
}

fn load_state(agent: &Agent) -> WatchState {
    std::fs::read(state_path(agent))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn spawn(agent: Arc<Agent>) {
    thread::Builder::new()
        .name("summary".into())
        .spawn(move || {
            let mut state = load_state(&agent);
            loop {
                thread::sleep(agent.config.summary_interval);
                if agent.is_connected() {
                    let report = run_once(&agent, &mut state);
                    agent.send(&Message::Summary(report));
                }
            }
        })
        .expect("spawn summary thread");
}

struct NodeView {
    synced: bool,
    status: NodeStatus,
    stash: Option<AccountId32>,
    active_era: Option<u32>,
    unclaimed: Option<Vec<chain::UnclaimedEra>>,
    /// [`super::keys::chain_keys_report`] of a validator node.
    chain_keys: Option<Value>,
    error: Option<String>,
}

/// Every key a payout check of `stash` can read, for one bulk fetch.
fn payout_keys(stash: &AccountId32, active_era: u32) -> Vec<Vec<u8>> {
    use chain::keys;
    let mut out = vec![keys::staking_bonded(stash)];
    for era in active_era.saturating_sub(chain::HISTORY_DEPTH)..active_era {
        out.push(keys::staking_eras_validator_reward(era));
        out.push(keys::staking_eras_reward_points(era));
        out.push(keys::staking_eras_stakers_overview(era, stash));
        out.push(keys::staking_claimed_rewards(era, stash));
        out.push(keys::staking_eras_stakers(era, stash));
    }
    out
}

/// The node's stash (SS58) and the active era, for the payout script's
/// arguments; `None` where they cannot be learned.
pub fn stash_and_era(agent: &Agent, inspect: &ContainerInspect) -> (Option<String>, Option<u32>) {
    let v = view(agent, inspect, false);
    (v.status.validator, v.active_era)
}

fn view(agent: &Agent, inspect: &ContainerInspect, count_payouts: bool) -> NodeView {
    let mut v = NodeView {
        synced: false,
        status: NodeStatus::default(),
        stash: None,
        active_era: None,
        unclaimed: None,
        chain_keys: None,
        error: None,
    };
    let result = (|| -> Result<(), String> {
        let rpc =
            super::node::rpc_for(agent, &inspect.name, Some(inspect)).map_err(|e| e.to_string())?;
        let health = rpc.system_health().map_err(|e| e.to_string())?;
        v.synced = !health.is_syncing;
        v.status.is_authority = rpc
            .system_node_roles()
            .map_err(|e| e.to_string())?
            .iter()
            .any(|r| r == "Authority");
        let storage = RpcStorage::at_finalized(&rpc).map_err(|e| e.to_string())?;
        v.active_era = chain::validator::active_era(&storage).map_err(|e| e.to_string())?;
        let listed = session_key_sets(agent, inspect);
        storage.prefetch(&super::keys::identify_storage_keys(&listed.sets));
        if let Some((stash, info, _)) = super::keys::identify(&storage, &listed.sets)? {
            v.stash = Some(stash);
            v.status.validator = chain::ss58::encode(&stash, agent.config.ss58_prefix).ok();
            v.status.active = info.is_active_validator;
            if count_payouts {
                v.chain_keys = Some(
                    super::keys::chain_keys_report(
                        &rpc,
                        &storage,
                        &stash,
                        listed.keystore.as_deref(),
                        super::keys::known_keys(agent, &inspect.name).as_deref(),
                    )
                    .unwrap_or_else(|error| json!({ "error": error })),
                );
            }
        }
        if let (Some(stash), Some(era), true, true) =
            (v.stash, v.active_era, v.synced, count_payouts)
        {
            storage.prefetch(&payout_keys(&stash, era));
            let eras = chain::unclaimed_payouts(&storage, &stash, era, chain::HISTORY_DEPTH)
                .map_err(|e| e.to_string())?;
            v.unclaimed = Some(eras);
        }
        Ok(())
    })();
    v.error = result.err();
    v
}

/// One node's entry of `payout_info.payout_checks`: era, payouts (count, and
/// each unclaimed era with its pages and expiry; `oldest_expires_in_eras`
/// counts whole eras, a day each on Creditcoin 3), validator, and the chain's
/// keys against the keystore.
fn node_check(v: &NodeView) -> Value {
    let oldest_expires_in_eras = match (&v.unclaimed, v.active_era) {
        (Some(eras), Some(active)) => eras
            .first()
            .map(|oldest| oldest.expires_at_era.saturating_sub(active)),
        _ => None,
    };
    json!({
        "current_era": v.active_era,
        "unclaimed_payouts": v.unclaimed.as_ref().map(Vec::len),
        "unclaimed_eras": v.unclaimed,
        "oldest_expires_in_eras": oldest_expires_in_eras,
        "synced": v.synced,
        "validator_account": v.status.validator,
        "chain_keys": v.chain_keys,
        "error": v.error,
    })
}

/// One summary: era, payouts, and the era watch's events.
pub fn run_once(agent: &Agent, state: &mut WatchState) -> Map<String, Value> {
    let inspected: Vec<ContainerInspect> = agent
        .watch
        .containers(agent)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.state.running)
        .collect();
    let views: Vec<(String, NodeView)> = thread::scope(|scope| {
        let probes: Vec<_> = inspected
            .iter()
            .map(|c| (c.name.clone(), scope.spawn(move || view(agent, c, true))))
            .collect();
        probes
            .into_iter()
            .filter_map(|(n, p)| p.join().ok().map(|v| (n, v)))
            .collect()
    });
    let active_era = views
        .iter()
        .filter(|(_, v)| v.synced)
        .find_map(|(_, v)| v.active_era);
    let mut checks = Map::new();
    for (name, v) in &views {
        checks.insert(name.clone(), node_check(v));
    }
    // Each node in its own era: a host may run nodes of different chains.
    // A syncing node's finalized state is old: it is read once synced.
    let read: Vec<(String, u32, NodeStatus)> = views
        .iter()
        .filter(|(_, v)| v.error.is_none() && v.synced)
        .filter_map(|(n, v)| Some((n.clone(), v.active_era?, v.status.clone())))
        .collect();
    let before = state.clone();
    for (era, change) in observe(state, read) {
        agent.raise(validator_event(era, change, now_ms()));
    }
    if *state != before
        && let Err(e) = crate::fsutil::write_json_atomic(&state_path(agent), state)
    {
        crate::log::error(&format!("cannot save the era watch's state: {e}"));
    }
    let timestamp = now_ms();
    let mut report = Map::new();
    report.insert("timestamp".into(), json!(timestamp));
    report.insert("era".into(), json!({ "active_era": active_era }));
    report.insert(
        "payout_info".into(),
        json!({ "payout_checks": checks, "timestamp": timestamp }),
    );
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(validator: Option<&str>, active: bool) -> NodeStatus {
        NodeStatus {
            validator: validator.map(str::to_string),
            active,
            is_authority: true,
        }
    }

    #[test]
    fn each_kind_of_change_is_one_event() {
        let before = WatchState {
            era: Some(10),
            node_eras: BTreeMap::new(),
            nodes: [
                ("n_activated".to_string(), status(None, false)),
                ("n_changed".to_string(), status(Some("5A"), true)),
                ("n_deactivated".to_string(), status(Some("5B"), true)),
                ("n_same".to_string(), status(Some("5C"), true)),
            ]
            .into(),
        };
        let now: BTreeMap<String, NodeStatus> = [
            ("n_activated".to_string(), status(Some("5D"), true)),
            ("n_changed".to_string(), status(Some("5E"), true)),
            ("n_deactivated".to_string(), status(Some("5B"), false)),
            ("n_same".to_string(), status(Some("5C"), true)),
            ("n_new_inactive".to_string(), status(None, false)),
        ]
        .into();
        let got = changes(&before, &now);
        let kinds: Vec<(&str, EventKind)> = got.iter().map(|c| (c.node.as_str(), c.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("n_activated", EventKind::ValidatorActivated),
                ("n_changed", EventKind::ValidatorChanged),
                ("n_deactivated", EventKind::ValidatorDeactivated),
            ]
        );
        assert_eq!(got[1].previous_validator.as_deref(), Some("5A"));
        assert_eq!(got[1].validator_account.as_deref(), Some("5E"));
        assert_eq!(got[2].previous_validator.as_deref(), Some("5B"));
        assert_eq!(got[0].validator_account.as_deref(), Some("5D"));
    }

    #[test]
    fn validator_changes_are_reported_byte_for_byte() {
        use crate::protocol::events::tests as wire;
        let before = WatchState {
            era: Some(10),
            nodes: [("3node0".to_string(), status(Some("5A"), true))].into(),
            ..Default::default()
        };
        let cases = [
            (
                status(Some("5E"), true),
                wire::VALIDATOR_CHANGED,
                Some("5A"),
            ),
            (status(Some("5D"), true), wire::VALIDATOR_ACTIVATED, None),
            (
                status(Some("5B"), false),
                wire::VALIDATOR_DEACTIVATED,
                Some("5B"),
            ),
        ];
        for (now, expected, previous) in cases {
            let mut before = before.clone();
            let old = before.nodes.get_mut("3node0").unwrap();
            old.validator = previous.map(str::to_string);
            old.active = previous.is_some();
            let mut got = changes(&before, &[("3node0".to_string(), now)].into());
            assert_eq!(got.len(), 1, "{expected}");
            let event = validator_event(11, got.remove(0), 1733312345678);
            assert_eq!(Message::Event(event).to_json(), expected);
        }
    }

    fn kinds(got: &[(u32, Change)]) -> Vec<(u32, &str, EventKind)> {
        got.iter()
            .map(|(era, c)| (*era, c.node.as_str(), c.kind))
            .collect()
    }

    #[test]
    fn each_node_is_compared_once_per_era_when_it_can_be_read() {
        let mut state = WatchState::default();
        // First sight of each node: its baseline, whatever its status.
        let first = vec![
            ("a".to_string(), 10, status(Some("5A"), true)),
            ("b".to_string(), 10, status(Some("5B"), true)),
        ];
        assert!(observe(&mut state, first).is_empty());
        // Era 11: b is not read (in error, or syncing); a is, unchanged.
        assert!(observe(&mut state, vec![("a".into(), 11, status(Some("5A"), true))]).is_empty());
        // b is read later in era 11: its change is reported then, once.
        let late = vec![
            ("a".to_string(), 11, status(Some("5A"), false)),
            ("b".to_string(), 11, status(Some("5B"), false)),
        ];
        assert_eq!(
            kinds(&observe(&mut state, late.clone())),
            vec![(11, "b", EventKind::ValidatorDeactivated)],
            "a was already compared in era 11"
        );
        assert!(observe(&mut state, late).is_empty());
        // A node whose era goes back (resyncing from scratch) is not compared.
        assert!(observe(&mut state, vec![("b".into(), 9, status(Some("5B"), true))]).is_empty());
        // A node first seen after the others: its baseline too.
        assert!(observe(&mut state, vec![("c".into(), 12, status(Some("5C"), true))]).is_empty());
        assert_eq!(
            state.node_eras,
            [("a".into(), 11), ("b".into(), 11), ("c".into(), 12)].into()
        );
        assert_eq!(state.era, Some(12));
    }

    #[test]
    fn state_saved_before_node_eras_reads_as_of_its_era() {
        let old: WatchState = serde_json::from_value(json!({
            "era": 10,
            "nodes": {"a": {"validator": "5A", "active": true, "is_authority": true}},
        }))
        .unwrap();
        let mut state = old.clone();
        assert!(observe(&mut state, vec![("a".into(), 10, status(None, false))]).is_empty());
        let mut state = old;
        assert_eq!(
            kinds(&observe(
                &mut state,
                vec![("a".into(), 11, status(None, false))]
            )),
            vec![(11, "a", EventKind::ValidatorDeactivated)]
        );
    }
}
