//! Every rule of the contract, evaluated over one [`FleetView`]: pure, no
//! clock, no I/O. The result is the set of conditions that hold now, each
//! with the facts a notice needs, and what is *unknown* now (an agent away,
//! a node that cannot be read), whose alerts keep their last state.
//!
//! `NodeStalled` needs history: [`track_heights`] keeps, per node, its best
//! height and since when it has not moved (persisted with the engine's state).
use super::config::{AlertsConfig, RuleName};
use super::view::{AgentView, ContainerView, FleetView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// An alert's identity: its rule and labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertKey {
    pub rule: RuleName,
    pub agent: String,
    pub container: Option<String>,
}

impl AlertKey {
    /// 16 hex digits, stable across restarts and versions (Alertmanager's
    /// fingerprints look the same): SHA-256 of rule, agent and container.
    pub fn fingerprint(&self) -> String {
        let text = format!(
            "{}\u{0}{}\u{0}{}",
            self.rule.as_str(),
            self.agent,
            self.container.as_deref().unwrap_or("")
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        hex::encode(&digest.as_ref()[..8])
    }
}

/// A rule's condition holding now, with what to tell the operator.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub key: AlertKey,
    pub summary: String,
    /// The facts of the moment, one per line.
    pub facts: Vec<String>,
    /// The command that would help, in the operator language.
    pub help: Option<String>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Evaluation {
    pub conditions: Vec<Condition>,
    /// Agents away (disconnected, silent, no stats yet, Docker unusable):
    /// every alert on their containers is held.
    pub away_agents: BTreeSet<String>,
    /// Some agent has not reported its keystore yet: a standing duplicate
    /// may look gone.
    pub duplicates_held: bool,
}

impl Evaluation {
    /// Whether an alert absent from `conditions` must keep its state rather
    /// than resolve: its facts are unknown now (a node that cannot be read,
    /// an agent away, a restart not caught up). Computed on demand, for the
    /// few alerts that are tracked and absent, so evaluation stays cheap.
    pub fn is_held(&self, view: &FleetView, key: &AlertKey) -> bool {
        let Some(agent) = view.agents.get(&key.agent) else {
            return false; // no longer registered: nothing to wait for
        };
        let Some(name) = &key.container else {
            // AgentDown: not back yet after a restart, within its grace.
            let last = agent.last_seen_ms.unwrap_or(view.started_ms);
            let limit_ms = 2 * view.heartbeat_s.max(1) as i64 * 1000;
            return agent.last_seen_ms.is_none() && view.now_ms - last <= limit_ms;
        };
        if key.rule == RuleName::DuplicateSessionKeys && self.duplicates_held {
            return true;
        }
        if self.away_agents.contains(&key.agent) {
            return true;
        }
        let Some(c) = agent.containers.get(name) else {
            return false; // no longer managed
        };
        match key.rule {
            RuleName::NodeSyncing
            | RuleName::NodeLowPeers
            | RuleName::NodeStalled
            | RuleName::NodeFinalityLag => !c.running() || !c.node.reachable(),
            RuleName::NodeRpcUnreachable => !c.running(),
            RuleName::ValidatorInactive => c.validator.active.is_none(),
            RuleName::ValidatorChanged => c.validator.changed.is_none(),
            RuleName::UnclaimedPayouts => c.validator.unclaimed_eras.is_none(),
            RuleName::BackupFailed => {
                c.backup.last_failure.is_none() && c.backup.newest_ms.is_none()
            }
            RuleName::BackupStale => c.backup.newest_ms.is_none() && c.is_validator(),
            _ => false,
        }
    }
}

/// Per node: the best height seen and since when it has not changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeightMark {
    pub best: u64,
    pub since_ms: i64,
}

pub type Heights = BTreeMap<(String, String), HeightMark>;

/// Update each readable node's mark; drop marks of nodes no longer reported.
/// A node that cannot be read now keeps its mark (it may come back at the
/// same height: still stalled).
pub fn track_heights(view: &FleetView, heights: &mut Heights) {
    let mut seen = BTreeSet::new();
    for (agent_id, agent) in &view.agents {
        if !agent.stats_seen {
            // Nothing known of its containers: keep every mark it had.
            seen.extend(heights.keys().filter(|(a, _)| a == agent_id).cloned());
            continue;
        }
        for (name, c) in &agent.containers {
            let id = (agent_id.clone(), name.clone());
            seen.insert(id.clone());
            let Some(best) = c.node.best.filter(|_| c.node.reachable()) else {
                continue;
            };
            match heights.get_mut(&id) {
                Some(mark) if mark.best == best => {}
                _ => {
                    heights.insert(
                        id,
                        HeightMark {
                            best,
                            since_ms: view.now_ms,
                        },
                    );
                }
            }
        }
    }
    heights.retain(|id, _| seen.contains(id));
}

fn key(rule: RuleName, agent: &str, container: Option<&str>) -> AlertKey {
    AlertKey {
        rule,
        agent: agent.to_string(),
        container: container.map(str::to_string),
    }
}

fn secs(ms: i64) -> i64 {
    ms.max(0) / 1000
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "unknown".to_string(), |v| v.to_string())
}

/// Heights, peers and sync of a node, as one fact line.
fn node_facts(c: &ContainerView) -> String {
    format!(
        "best #{}, finalized #{}, target #{}, peers {}, syncing {}",
        opt(c.node.best),
        opt(c.node.finalized),
        opt(c.node.sync_target),
        opt(c.node.peers),
        opt(c.node.syncing)
    )
}

fn with_logs(mut facts: Vec<String>, c: &ContainerView) -> Vec<String> {
    if !c.last_log_lines.is_empty() {
        facts.push("last log lines:".to_string());
        facts.extend(c.last_log_lines.iter().map(|l| format!("  {l}")));
    }
    facts
}

/// Is the agent away: disconnected, or silent longer than 2 × heartbeat.
pub fn agent_away(view: &FleetView, agent: &AgentView) -> bool {
    let limit_ms = 2 * view.heartbeat_s.max(1) as i64 * 1000;
    let last = agent.last_seen_ms.unwrap_or(view.started_ms);
    !agent.connected || view.now_ms - last > limit_ms
}

pub fn evaluate(view: &FleetView, config: &AlertsConfig, heights: &Heights) -> Evaluation {
    let mut out = Evaluation::default();
    let enabled = |r: RuleName| config.rule(r).enabled;
    let limit_ms = 2 * view.heartbeat_s.max(1) as i64 * 1000;
    let chains = chain_refs(view, config, heights);
    for (agent_id, agent) in &view.agents {
        let last = agent.last_seen_ms.unwrap_or(view.started_ms);
        let silent_ms = view.now_ms - last;
        if agent_away(view, agent) || !agent.stats_seen || agent.docker_error.is_some() {
            out.away_agents.insert(agent_id.clone());
        }
        if !agent.stats_seen {
            out.duplicates_held = true;
        }
        if enabled(RuleName::AgentDown) && silent_ms > limit_ms {
            let host = agent.host.as_deref().unwrap_or(agent_id);
            let seen = match agent.last_seen_ms {
                Some(_) => format!("last seen {} s ago", secs(silent_ms)),
                None => format!(
                    "not seen since the server started {} s ago",
                    secs(silent_ms)
                ),
            };
            out.conditions.push(Condition {
                key: key(RuleName::AgentDown, agent_id, None),
                summary: format!("agent {agent_id} is down ({seen})"),
                facts: vec![
                    seen,
                    format!(
                        "connected: {}; heartbeat {} s",
                        agent.connected, view.heartbeat_s
                    ),
                    format!("its containers' alerts are held until it is back"),
                ],
                help: Some(format!(
                    "on {host}: systemctl status warden-agent; journalctl -u warden-agent -n 50"
                )),
            });
        }
        if out.away_agents.contains(agent_id) {
            continue;
        }
        for (name, c) in &agent.containers {
            container_rules(view, config, heights, &chains, agent_id, name, c, &mut out);
        }
    }
    duplicate_rule(view, config, &mut out);
    out
}

#[allow(clippy::too_many_arguments)]
fn container_rules(
    view: &FleetView,
    config: &AlertsConfig,
    heights: &Heights,
    chains: &Chains,
    agent_id: &str,
    name: &str,
    c: &ContainerView,
    out: &mut Evaluation,
) {
    let on = |r: RuleName| config.rule(r).enabled;
    let k = |r: RuleName| key(r, agent_id, Some(name));
    let mut push = |rule: RuleName, summary: String, facts: Vec<String>, help: Option<String>| {
        if on(rule) {
            out.conditions.push(Condition {
                key: k(rule),
                summary,
                facts,
                help,
            });
        }
    };
    let logs = format!("send {agent_id} logs {name} 100");
    if !c.running() {
        push(
            RuleName::ContainerDown,
            format!("container {name} on {agent_id} is {}", c.state),
            with_logs(
                vec![
                    format!("state: {}", c.state),
                    format!("restarts: {}", opt(c.restart_count)),
                ],
                c,
            ),
            Some(format!("send {agent_id} start {name}   (then: {logs})")),
        );
    }
    if c.running()
        && let Some(error) = &c.node.rpc_error
    {
        push(
            RuleName::NodeRpcUnreachable,
            format!("node {name} on {agent_id} cannot be read"),
            with_logs(vec![format!("error: {error}")], c),
            Some(format!("send {agent_id} status {name}   (then: {logs})")),
        );
    }
    if c.running() && c.node.reachable() {
        let facts = || with_logs(vec![node_facts(c)], c);
        if c.node.syncing == Some(true) {
            let behind = c
                .node
                .sync_target
                .zip(c.node.best)
                .map(|(t, b)| format!(", {} blocks behind", t.saturating_sub(b)))
                .unwrap_or_default();
            push(
                RuleName::NodeSyncing,
                format!("node {name} on {agent_id} is syncing{behind}"),
                facts(),
                Some(logs.clone()),
            );
        }
        let low = config.rule(RuleName::NodeLowPeers).threshold;
        if let Some(peers) = c.node.peers
            && (peers as f64) < low
        {
            push(
                RuleName::NodeLowPeers,
                format!("node {name} on {agent_id} has {peers} peers (fewer than {low})"),
                facts(),
                Some(logs.clone()),
            );
        }
        let lag_max = config.rule(RuleName::NodeFinalityLag).threshold;
        if let (Some(best), Some(fin)) = (c.node.best, c.node.finalized)
            && best.saturating_sub(fin) as f64 > lag_max
        {
            push(
                RuleName::NodeFinalityLag,
                format!(
                    "node {name} on {agent_id}: finality {} blocks behind best",
                    best.saturating_sub(fin)
                ),
                facts(),
                Some(logs.clone()),
            );
        }
        if let Some(cond) = stalled(view, config, heights, chains, agent_id, name, c) {
            push(
                RuleName::NodeStalled,
                cond.0,
                with_logs(cond.1, c),
                Some(cond.2),
            );
        }
    }
    validator_rules(view, config, agent_id, name, c, out);
}

/// Per chain (as nodes report it): the readable nodes of agents present,
/// computed once per evaluation so `NodeStalled` stays linear in the fleet.
#[derive(Debug, Default)]
pub struct ChainRef {
    nodes: usize,
    /// Every readable node of the chain is stalled.
    all_stalled: bool,
    /// The heights the stalled nodes stopped at.
    stalled_heights: BTreeSet<u64>,
    /// A few nodes, for the notice: (agent, container, best).
    sample: Vec<(String, String, u64)>,
}

pub type Chains = BTreeMap<Option<String>, ChainRef>;

fn stalled_since(
    view: &FleetView,
    config: &AlertsConfig,
    heights: &Heights,
    a: &str,
    n: &str,
) -> Option<i64> {
    let limit_ms = (config.rule(RuleName::NodeStalled).threshold * 1000.0) as i64;
    heights
        .get(&(a.to_string(), n.to_string()))
        .filter(|m| view.now_ms - m.since_ms >= limit_ms)
        .map(|m| m.since_ms)
}

pub fn chain_refs(view: &FleetView, config: &AlertsConfig, heights: &Heights) -> Chains {
    let mut chains = Chains::new();
    for (a, av) in view.agents.iter().filter(|(_, av)| !agent_away(view, av)) {
        for (n, cv) in av
            .containers
            .iter()
            .filter(|(_, cv)| cv.running() && cv.node.reachable())
        {
            let entry = chains
                .entry(cv.node.chain.clone())
                .or_insert_with(|| ChainRef {
                    all_stalled: true,
                    ..ChainRef::default()
                });
            let best = cv.node.best.unwrap_or(0);
            entry.nodes += 1;
            if stalled_since(view, config, heights, a, n).is_some() {
                entry.stalled_heights.insert(best);
            } else {
                entry.all_stalled = false;
            }
            if entry.sample.len() < 6 {
                entry.sample.push((a.clone(), n.clone(), best));
            }
        }
    }
    chains
}

/// `NodeStalled`: no new best block for `threshold` s. The rest of the fleet
/// on the same chain is the reference: all stalled at one height is the
/// chain, not this node.
fn stalled(
    view: &FleetView,
    config: &AlertsConfig,
    heights: &Heights,
    chains: &Chains,
    agent_id: &str,
    name: &str,
    c: &ContainerView,
) -> Option<(String, Vec<String>, String)> {
    let since = stalled_since(view, config, heights, agent_id, name)?;
    let best = heights.get(&(agent_id.to_string(), name.to_string()))?.best;
    let chain = chains.get(&c.node.chain)?;
    let chain_name = c.node.chain.as_deref().unwrap_or("its chain");
    let stuck_for = secs(view.now_ms - since);
    let all_same = chain.nodes >= 2
        && chain.all_stalled
        && chain.stalled_heights.len() == 1
        && chain.stalled_heights.contains(&best);
    let mut facts = vec![node_facts(c), format!("no new block for {stuck_for} s")];
    let others: Vec<String> = chain
        .sample
        .iter()
        .filter(|p| !(p.0 == agent_id && p.1 == name))
        .take(5)
        .map(|p| format!("{}/{} at #{}", p.0, p.1, p.2))
        .collect();
    if !others.is_empty() {
        facts.push(format!(
            "other nodes of {chain_name}: {}",
            others.join(", ")
        ));
    }
    if all_same {
        Some((
            format!(
                "chain stalled: every node of {chain_name} stopped at #{best} ({} nodes, {stuck_for} s)",
                chain.nodes
            ),
            facts,
            "nothing to restart here: the chain itself is not producing blocks; check the network's status".to_string(),
        ))
    } else {
        Some((
            format!("node {name} on {agent_id} is stuck at #{best} for {stuck_for} s"),
            facts,
            format!("send {agent_id} restart {name}   (first: send {agent_id} logs {name} 100)"),
        ))
    }
}

fn validator_rules(
    view: &FleetView,
    config: &AlertsConfig,
    agent_id: &str,
    name: &str,
    c: &ContainerView,
    out: &mut Evaluation,
) {
    let on = |r: RuleName| config.rule(r).enabled;
    let k = |r: RuleName| key(r, agent_id, Some(name));
    let v = &c.validator;
    let account = v.account.as_deref().unwrap_or("unknown");
    let mut push = |rule: RuleName, summary: String, facts: Vec<String>, help: Option<String>| {
        if on(rule) {
            out.conditions.push(Condition {
                key: k(rule),
                summary,
                facts,
                help,
            });
        }
    };
    if v.active == Some(false) {
        push(
            RuleName::ValidatorInactive,
            format!("validator on {agent_id}/{name} is not in the active set"),
            vec![
                format!("last validator account: {account}"),
                format!("active era: {}", opt(v.active_era)),
            ],
            Some(format!("send {agent_id} check_keys {name}")),
        );
    }
    if let Some(change) = &v.changed {
        let window_ms = (config.rule(RuleName::ValidatorChanged).threshold * 1000.0) as i64;
        if view.now_ms - change.at_ms <= window_ms {
            push(
                RuleName::ValidatorChanged,
                format!(
                    "node {name} on {agent_id} now validates for {}",
                    opt(change.current.as_deref())
                ),
                vec![
                    format!("previous validator: {}", opt(change.previous.as_deref())),
                    format!("era: {}", opt(change.era)),
                ],
                Some(format!("send {agent_id} find_validator {name}")),
            );
        }
    }
    let settings = config.rule(RuleName::UnclaimedPayouts);
    if let Some(count) = v.unclaimed_eras.filter(|n| *n > 0) {
        let eras_left = v
            .oldest_unclaimed_era
            .zip(v.active_era)
            .map(|(oldest, active)| {
                (oldest + crate::chain::HISTORY_DEPTH as u64).saturating_sub(active)
            });
        let fire = match eras_left {
            Some(left) => left as f64 <= settings.threshold,
            None => count >= settings.max_unclaimed,
        };
        if fire {
            let when = eras_left.map_or_else(
                || "expiry unknown (the agent reports the count only)".to_string(),
                |l| format!("the oldest expires in {l} eras"),
            );
            push(
                RuleName::UnclaimedPayouts,
                format!("{count} unclaimed eras for the validator of {agent_id}/{name}"),
                vec![format!("validator: {account}"), when],
                Some(format!("send {agent_id} payout {name}")),
            );
        }
    }
    let backup_help = format!("send {agent_id} backup_keys {name}");
    if let Some(failure) = &c.backup.last_failure
        && c.backup.newest_ms.is_none_or(|ok| ok < failure.at_ms)
    {
        push(
            RuleName::BackupFailed,
            format!("key backup of {agent_id}/{name} failed"),
            vec![
                format!("error: {}", failure.error),
                format!("{} s ago", secs(view.now_ms - failure.at_ms)),
            ],
            Some(backup_help.clone()),
        );
    }
    let stale_ms = (config.rule(RuleName::BackupStale).threshold * 1000.0) as i64;
    if c.is_validator() {
        let newest = c.backup.newest_ms;
        let age_ms = view.now_ms - newest.unwrap_or(view.started_ms);
        if age_ms > stale_ms {
            let fact = match newest {
                Some(_) => format!("newest backup is {} s old", secs(age_ms)),
                None => format!(
                    "no backup reported since the server started {} s ago",
                    secs(age_ms)
                ),
            };
            push(
                RuleName::BackupStale,
                format!("no recent key backup of validator {agent_id}/{name}"),
                vec![fact],
                Some(backup_help),
            );
        }
    }
}

/// One alert per node holding a key another node holds.
fn duplicate_rule(view: &FleetView, config: &AlertsConfig, out: &mut Evaluation) {
    if !config.rule(RuleName::DuplicateSessionKeys).enabled {
        return;
    }
    let mut per_holder: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for d in &view.duplicate_keys {
        for holder in &d.holders {
            let others: Vec<String> = d
                .holders
                .iter()
                .filter(|h| *h != holder)
                .map(|(a, c)| format!("{a}/{c}"))
                .collect();
            per_holder.entry(holder.clone()).or_default().push(format!(
                "{} key {} is also held by {}",
                d.key_type,
                d.public_key,
                others.join(", ")
            ));
        }
    }
    for ((agent, container), facts) in per_holder {
        out.conditions.push(Condition {
            key: key(RuleName::DuplicateSessionKeys, &agent, Some(&container)),
            summary: format!(
                "DUPLICATE SESSION KEYS on {agent}/{container}: two nodes signing with the same keys get the validator slashed"
            ),
            facts,
            help: Some(format!("send {agent} stop {container}   (stop all but one holder now)")),
        });
    }
}
