//! Every rule over hand-built views, and `fleet_view_from_stats` over the
//! agent's literal JSON (docs/protocol.md's shapes).
use super::config::{AlertsConfig, RuleName};
use super::rules::{self, AlertKey, Heights};
use super::view::*;
use crate::server::keyguard::Duplicate;
use serde_json::json;
use std::collections::BTreeMap;

pub const NOW: i64 = 1_700_000_000_000;

pub fn node(best: u64, fin: u64, peers: u64, syncing: bool) -> ContainerView {
    ContainerView {
        state: "running".into(),
        node: NodeView {
            best: Some(best),
            finalized: Some(fin),
            sync_target: Some(best),
            peers: Some(peers),
            syncing: Some(syncing),
            chain: Some("creditcoin3".into()),
            is_authority: Some(false),
            rpc_error: None,
        },
        ..ContainerView::default()
    }
}

pub fn agent(containers: Vec<(&str, ContainerView)>) -> AgentView {
    AgentView {
        connected: true,
        last_seen_ms: Some(NOW - 1000),
        stats_seen: true,
        host: Some("val-eu-1".into()),
        docker_error: None,
        containers: containers
            .into_iter()
            .map(|(n, c)| (n.to_string(), c))
            .collect(),
    }
}

pub fn fleet(agents: Vec<(&str, AgentView)>) -> FleetView {
    FleetView {
        now_ms: NOW,
        started_ms: NOW - 3_600_000,
        heartbeat_s: 15,
        agents: agents
            .into_iter()
            .map(|(n, a)| (n.to_string(), a))
            .collect(),
        duplicate_keys: Vec::new(),
    }
}

fn fired(view: &FleetView, heights: &Heights) -> Vec<(RuleName, String, Option<String>)> {
    rules::evaluate(view, &AlertsConfig::default(), heights)
        .conditions
        .into_iter()
        .map(|c| (c.key.rule, c.key.agent, c.key.container))
        .collect()
}

fn one(
    rule: RuleName,
    agent: &str,
    container: Option<&str>,
) -> Vec<(RuleName, String, Option<String>)> {
    vec![(rule, agent.to_string(), container.map(str::to_string))]
}

#[test]
fn a_healthy_fleet_fires_nothing() {
    let view = fleet(vec![("h1", agent(vec![("n0", node(100, 98, 10, false))]))]);
    assert_eq!(fired(&view, &Heights::new()), vec![]);
}

#[test]
fn each_node_rule_fires_on_its_condition() {
    let mut stopped = node(0, 0, 0, false);
    stopped.state = "exited".into();
    stopped.node = NodeView::default();
    let mut unreachable = node(0, 0, 0, false);
    unreachable.node = NodeView {
        rpc_error: Some("connection refused".into()),
        ..NodeView::default()
    };
    let table: Vec<(ContainerView, RuleName)> = vec![
        (stopped, RuleName::ContainerDown),
        (node(100, 98, 10, true), RuleName::NodeSyncing),
        (node(100, 98, 2, false), RuleName::NodeLowPeers),
        (node(100, 70, 10, false), RuleName::NodeFinalityLag),
        (unreachable, RuleName::NodeRpcUnreachable),
    ];
    for (c, rule) in table {
        let view = fleet(vec![("h1", agent(vec![("n0", c)]))]);
        assert_eq!(
            fired(&view, &Heights::new()),
            one(rule, "h1", Some("n0")),
            "{rule:?}"
        );
    }
}

#[test]
fn thresholds_are_the_boundaries() {
    // 3 peers is not low (fewer than 3 is); a lag of 20 is fine (more is not).
    let view = fleet(vec![("h1", agent(vec![("n0", node(120, 100, 3, false))]))]);
    assert_eq!(fired(&view, &Heights::new()), vec![]);
    let cfg = AlertsConfig::from_json(
        br#"{"rules":{"NodeLowPeers":{"threshold":5},"NodeFinalityLag":{"enabled":false}}}"#,
    )
    .unwrap();
    let view = fleet(vec![("h1", agent(vec![("n0", node(200, 100, 4, false))]))]);
    let got: Vec<RuleName> = rules::evaluate(&view, &cfg, &Heights::new())
        .conditions
        .iter()
        .map(|c| c.key.rule)
        .collect();
    assert_eq!(got, vec![RuleName::NodeLowPeers]);
}

#[test]
fn agent_down_after_twice_the_heartbeat_and_its_containers_are_held() {
    let mut a = agent(vec![("n0", node(100, 98, 10, false))]);
    a.connected = false;
    a.last_seen_ms = Some(NOW - 30_000); // exactly 2 × 15 s: not yet
    let view = fleet(vec![("h1", a.clone())]);
    let eval = rules::evaluate(&view, &AlertsConfig::default(), &Heights::new());
    assert!(eval.conditions.is_empty());
    assert!(
        eval.away_agents.contains("h1"),
        "disconnected: container alerts held at once"
    );
    a.last_seen_ms = Some(NOW - 30_001);
    let view = fleet(vec![("h1", a)]);
    assert_eq!(
        fired(&view, &Heights::new()),
        one(RuleName::AgentDown, "h1", None)
    );
}

#[test]
fn after_a_restart_an_agent_not_back_is_down_after_twice_the_heartbeat() {
    let mut a = agent(vec![]);
    a.connected = false;
    a.last_seen_ms = None;
    a.stats_seen = false;
    let mut view = fleet(vec![("h1", a)]);
    view.started_ms = NOW - 10_000;
    let eval = rules::evaluate(&view, &AlertsConfig::default(), &Heights::new());
    assert!(eval.conditions.is_empty());
    let down = AlertKey {
        rule: RuleName::AgentDown,
        agent: "h1".into(),
        container: None,
    };
    assert!(
        eval.is_held(&view, &down),
        "a firing AgentDown must not resolve during the grace"
    );
    view.started_ms = NOW - 31_000;
    assert_eq!(
        fired(&view, &Heights::new()),
        one(RuleName::AgentDown, "h1", None)
    );
}

#[test]
fn a_stalled_node_is_stuck_but_a_stalled_chain_says_so() {
    let view = fleet(vec![
        ("h1", agent(vec![("n0", node(100, 98, 10, false))])),
        ("h2", agent(vec![("n1", node(250, 248, 10, false))])),
    ]);
    let mut heights = Heights::new();
    rules::track_heights(&view, &mut heights);
    // n0 has not moved for 200 s, n1 moved just now.
    heights
        .get_mut(&("h1".into(), "n0".into()))
        .unwrap()
        .since_ms = NOW - 200_000;
    let eval = rules::evaluate(&view, &AlertsConfig::default(), &heights);
    assert_eq!(eval.conditions.len(), 1);
    let c = &eval.conditions[0];
    assert_eq!(c.key.rule, RuleName::NodeStalled);
    assert!(c.summary.contains("stuck at #100"), "{}", c.summary);
    assert!(c.help.as_deref().unwrap().contains("send h1 restart n0"));
    assert!(
        c.facts.iter().any(|f| f.contains("h2/n1 at #250")),
        "{:?}",
        c.facts
    );

    // Every node of the chain stopped at one height: the chain stalled.
    let view = fleet(vec![
        ("h1", agent(vec![("n0", node(100, 98, 10, false))])),
        ("h2", agent(vec![("n1", node(100, 98, 10, false))])),
    ]);
    let mut heights = Heights::new();
    rules::track_heights(&view, &mut heights);
    for m in heights.values_mut() {
        m.since_ms = NOW - 200_000;
    }
    let eval = rules::evaluate(&view, &AlertsConfig::default(), &heights);
    assert_eq!(eval.conditions.len(), 2);
    for c in &eval.conditions {
        assert!(c.summary.starts_with("chain stalled"), "{}", c.summary);
        assert!(
            !c.help.as_deref().unwrap().contains("send "),
            "no command restarts a node of a stalled chain"
        );
    }
}

#[test]
fn heights_move_and_unreadable_nodes_keep_their_mark() {
    let mut view = fleet(vec![("h1", agent(vec![("n0", node(100, 98, 10, false))]))]);
    let mut heights = Heights::new();
    rules::track_heights(&view, &mut heights);
    let id = ("h1".to_string(), "n0".to_string());
    assert_eq!(heights[&id].since_ms, NOW);
    view.now_ms += 10_000;
    rules::track_heights(&view, &mut heights);
    assert_eq!(heights[&id].since_ms, NOW, "same height: the mark stays");
    view.agents
        .get_mut("h1")
        .unwrap()
        .containers
        .get_mut("n0")
        .unwrap()
        .node
        .rpc_error = Some("x".into());
    rules::track_heights(&view, &mut heights);
    assert_eq!(heights[&id].best, 100);
    view.agents.get_mut("h1").unwrap().containers.clear();
    rules::track_heights(&view, &mut heights);
    assert!(
        heights.is_empty(),
        "a container no longer reported is forgotten"
    );
}

#[test]
fn validator_payout_and_backup_rules() {
    let mut c = node(100, 98, 10, false);
    c.node.is_authority = Some(true);
    c.validator = ValidatorView {
        account: Some("5Grw".into()),
        active: Some(false),
        changed: Some(ValidatorChange {
            at_ms: NOW - 1000,
            era: Some(513),
            previous: Some("5A".into()),
            current: Some("5Grw".into()),
        }),
        active_era: Some(600),
        unclaimed_eras: Some(3),
        oldest_unclaimed_era: Some(600 - 84 + 10), // expires in 10 eras
    };
    c.backup = BackupView {
        newest_ms: Some(NOW - 3 * 86_400_000),
        last_failure: Some(BackupFailure {
            at_ms: NOW - 1000,
            error: "disk full".into(),
        }),
    };
    let view = fleet(vec![("h1", agent(vec![("n0", c.clone())]))]);
    let mut got: Vec<RuleName> = fired(&view, &Heights::new())
        .into_iter()
        .map(|f| f.0)
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            RuleName::ValidatorInactive,
            RuleName::ValidatorChanged,
            RuleName::UnclaimedPayouts,
            RuleName::BackupFailed,
            RuleName::BackupStale,
        ]
    );
    // Each one clears on its own fact.
    c.validator.active = Some(true);
    c.validator.changed.as_mut().unwrap().at_ms = NOW - 86_400_001;
    c.validator.oldest_unclaimed_era = Some(600 - 84 + 20);
    c.backup.newest_ms = Some(NOW - 100);
    let view = fleet(vec![("h1", agent(vec![("n0", c.clone())]))]);
    assert_eq!(fired(&view, &Heights::new()), vec![]);
    // Expiry unknown: the count decides (7 by default).
    c.validator.oldest_unclaimed_era = None;
    c.validator.unclaimed_eras = Some(7);
    let view = fleet(vec![("h1", agent(vec![("n0", c)]))]);
    assert_eq!(
        fired(&view, &Heights::new()),
        one(RuleName::UnclaimedPayouts, "h1", Some("n0"))
    );
}

#[test]
fn unknown_facts_hold_alerts_instead_of_resolving_them() {
    let mut c = node(100, 98, 10, false);
    c.node.is_authority = Some(true);
    let view = fleet(vec![("h1", agent(vec![("n0", c)]))]);
    let eval = rules::evaluate(&view, &AlertsConfig::default(), &Heights::new());
    let k = |rule| AlertKey {
        rule,
        agent: "h1".into(),
        container: Some("n0".into()),
    };
    for rule in [
        RuleName::ValidatorInactive,
        RuleName::UnclaimedPayouts,
        RuleName::BackupFailed,
        RuleName::BackupStale,
    ] {
        assert!(eval.is_held(&view, &k(rule)), "{rule:?}");
    }
    assert!(!eval.is_held(&view, &k(RuleName::ContainerDown)));
}

#[test]
fn duplicate_keys_fire_once_per_holder() {
    let mut view = fleet(vec![
        ("h1", agent(vec![("n0", node(1, 1, 9, false))])),
        ("h2", agent(vec![("n7", node(1, 1, 9, false))])),
    ]);
    view.duplicate_keys = vec![DuplicateKey {
        key_type: "babe".into(),
        public_key: "0xd435".into(),
        holders: vec![("h1".into(), "n0".into()), ("h2".into(), "n7".into())],
    }];
    let eval = rules::evaluate(&view, &AlertsConfig::default(), &Heights::new());
    let got: Vec<_> = eval
        .conditions
        .iter()
        .map(|c| (c.key.agent.as_str(), c.facts[0].as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("h1", "babe key 0xd435 is also held by h2/n7"),
            ("h2", "babe key 0xd435 is also held by h1/n0")
        ]
    );
}

#[test]
fn fingerprints_are_stable() {
    let k = AlertKey {
        rule: RuleName::ContainerDown,
        agent: "h1".into(),
        container: Some("n0".into()),
    };
    assert_eq!(k.fingerprint().len(), 16);
    assert_eq!(k.fingerprint(), k.clone().fingerprint());
    let other = AlertKey {
        container: None,
        ..k.clone()
    };
    assert_ne!(k.fingerprint(), other.fingerprint());
}

#[test]
fn view_from_the_agents_json() {
    let stats = json!({"timestamp": NOW, "host": {"name": "val-eu-1", "load": [0.1]},
        "containers": [
            {"name": "3node0", "state": "running", "restart_count": 0},
            {"name": "3node1", "state": "exited", "restart_count": 2},
            {"name": "3node2", "state": "running"},
            {"state": "running"}, {"name": 5}],
        "nodes": {
            "3node0": {"best": 4021337, "finalized": 4021335, "sync_target": 4021337, "peers": 24, "syncing": false,
                       "roles": ["Authority"], "chain": "creditcoin3", "source": "prometheus", "rpc_error": null},
            "3node1": {"rpc_error": null, "note": "not running"},
            "3node2": {"best": 7, "rpc_error": "connection refused", "rpc_code": "unavailable"}}});
    let summary = json!({"timestamp": NOW, "era": {"active_era": 512}, "payout_info": {"payout_checks": {
        "3node0": {"current_era": 512, "unclaimed_payouts": 2, "synced": true, "validator_account": "5Grw", "error": null}}}});
    let mut facts = AgentFacts {
        connected: true,
        last_seen_ms: Some(NOW),
        ..AgentFacts::default()
    };
    facts.on_stats(&stats);
    facts.on_summary(&summary);
    facts.on_event(&crate::protocol::events::Payload::ValidatorDeactivated(
        crate::protocol::events::ValidatorChange {
            event_id: "validator_deactivated-3node0-513".into(),
            node: "3node0".into(),
            era: 513,
            validator_account: None,
            previous_validator: Some("5Grw".into()),
            is_authority: None,
            timestamp: NOW - 5,
        },
    ));
    facts.on_backup("3node0", NOW - 10);
    facts.on_backup_failed("3node0", NOW - 20, "disk full");
    facts.on_logs(
        "3node0",
        &(0..20)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let view = fleet_view_from_stats(
        NOW,
        NOW - 1,
        15,
        &BTreeMap::from([("h1".to_string(), facts)]),
        &[Duplicate {
            key_type: "gran".into(),
            public_key: "0x88".into(),
            holders: vec![("h1".into(), "3node0".into()), ("h2".into(), "x".into())],
        }],
    );
    let a = &view.agents["h1"];
    assert_eq!(a.host.as_deref(), Some("val-eu-1"));
    assert_eq!(
        a.containers.len(),
        3,
        "rows without a string name are skipped"
    );
    let n0 = &a.containers["3node0"];
    assert_eq!(
        (
            n0.node.best,
            n0.node.finalized,
            n0.node.peers,
            n0.node.syncing
        ),
        (Some(4021337), Some(4021335), Some(24), Some(false))
    );
    assert_eq!(n0.node.is_authority, Some(true));
    assert_eq!(n0.validator.account.as_deref(), Some("5Grw"));
    assert_eq!(n0.validator.active, Some(false));
    assert_eq!(
        (n0.validator.active_era, n0.validator.unclaimed_eras),
        (Some(512), Some(2))
    );
    assert_eq!(n0.backup.newest_ms, Some(NOW - 10));
    assert_eq!(n0.backup.last_failure.as_ref().unwrap().error, "disk full");
    assert_eq!(
        n0.last_log_lines,
        (15..20).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    let n1 = &a.containers["3node1"];
    assert_eq!((n1.state.as_str(), n1.restart_count), ("exited", Some(2)));
    assert_eq!(n1.node, NodeView::default());
    let n2 = &a.containers["3node2"];
    assert_eq!(
        n2.node.best, None,
        "an unreachable node's values are not kept"
    );
    assert_eq!(n2.node.rpc_error.as_deref(), Some("connection refused"));
    assert_eq!(view.duplicate_keys.len(), 1);

    // Docker unusable: the agent's container alerts are held, none resolves.
    let mut broken = AgentFacts {
        connected: true,
        last_seen_ms: Some(NOW),
        ..AgentFacts::default()
    };
    broken.on_stats(&json!({"timestamp": NOW, "containers": [], "nodes": {}, "error": "docker: permission denied"}));
    let view = fleet_view_from_stats(
        NOW,
        NOW - 1,
        15,
        &BTreeMap::from([("h1".to_string(), broken)]),
        &[],
    );
    assert_eq!(
        view.agents["h1"].docker_error.as_deref(),
        Some("docker: permission denied")
    );
    assert!(
        rules::evaluate(&view, &AlertsConfig::default(), &Heights::new())
            .away_agents
            .contains("h1")
    );
}

#[test]
fn duplicate_keys_come_from_the_keystore_listings() {
    let stats = |keys: serde_json::Value| {
        json!({"timestamp": NOW, "containers": [{"name": "n0", "state": "running"}],
               "nodes": {"n0": {"best": 1, "rpc_error": null, "keystore": keys}}})
    };
    let facts = |keys| {
        let mut f = AgentFacts {
            connected: true,
            last_seen_ms: Some(NOW),
            ..AgentFacts::default()
        };
        f.on_stats(&stats(keys));
        f
    };
    let shared = json!([{"type": "babe", "public": "0xD435"}, {"type": "gran", "public": "0x01"}]);
    let agents = BTreeMap::from([
        ("h1".to_string(), facts(shared.clone())),
        (
            "h2".to_string(),
            facts(
                json!([{"type": "babe", "public": "0xd435"}, {"type": "gran", "public": "0x02"}]),
            ),
        ),
    ]);
    let view = fleet_view_from_stats(NOW, NOW, 15, &agents, &[]);
    assert_eq!(
        view.duplicate_keys,
        vec![DuplicateKey {
            key_type: "babe".into(),
            public_key: "0xd435".into(),
            holders: vec![("h1".into(), "n0".into()), ("h2".into(), "n0".into())],
        }]
    );
    // h2's keystore no longer holds it: no duplicate, the alert resolves.
    let agents = BTreeMap::from([
        ("h1".to_string(), facts(shared)),
        (
            "h2".to_string(),
            facts(json!([{"type": "babe", "public": "0xbeef"}])),
        ),
    ]);
    assert!(
        fleet_view_from_stats(NOW, NOW, 15, &agents, &[])
            .duplicate_keys
            .is_empty()
    );
}

#[test]
fn the_oldest_unclaimed_era_comes_from_the_summarys_era_list() {
    let summary = json!({"timestamp": NOW, "payout_info": {"payout_checks": {
        "3node0": {"current_era": 101, "unclaimed_payouts": 2, "validator_account": "5Grw",
                   "unclaimed_eras": [{"era": 20, "pages": [0], "page_count": 1, "expires_at_era": 105},
                                      {"era": 90, "pages": [0], "page_count": 1, "expires_at_era": 175}]}}}});
    let stats = json!({"timestamp": NOW, "containers": [{"name": "3node0", "state": "running"}],
        "nodes": {"3node0": {"best": 5, "rpc_error": null}}});
    let mut facts = AgentFacts {
        connected: true,
        last_seen_ms: Some(NOW),
        ..AgentFacts::default()
    };
    facts.on_stats(&stats);
    facts.on_summary(&summary);
    let mut agents = std::collections::BTreeMap::new();
    agents.insert("val-eu-1".to_string(), facts);
    let view = fleet_view_from_stats(NOW, NOW - 3_600_000, 15, &agents, &[]);
    let node = &view.agents["val-eu-1"].containers["3node0"];
    assert_eq!(node.validator.oldest_unclaimed_era, Some(20));
    assert_eq!(node.validator.unclaimed_eras, Some(2));
}
