//! The state machine (hold-down, repeats from acceptance, one resolved
//! notice, restarts, agents away), the alerts file, and the payloads.
use super::config::{AlertsConfig, RuleName, Severity};
use super::engine::{Engine, render_firing};
use super::notice::{Notice, NoticeKind};
use super::tests_rules::{NOW, agent, fleet, node};
use super::view::FleetView;
use serde_json::json;
use std::path::PathBuf;

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warden-ops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config_with_sinks() -> AlertsConfig {
    AlertsConfig::from_json(
        br#"{"repeat_interval_s": 600, "sinks": [
            {"kind": "webhook", "url": "http://127.0.0.1:1/a", "name": "all"},
            {"kind": "webhook", "url": "http://127.0.0.1:1/b", "min_severity": "critical"}]}"#,
    )
    .unwrap()
}

/// One node with `peers` peers, its chain advancing a block a second.
fn low_peers(now: i64, peers: u64) -> FleetView {
    let best = 100 + ((now - NOW) / 1000) as u64;
    let mut v = fleet(vec![(
        "h1",
        agent(vec![("n0", node(best, best - 2, peers, false))]),
    )]);
    v.now_ms = now;
    v.agents.get_mut("h1").unwrap().last_seen_ms = Some(now);
    v
}

fn kinds(notices: &[Notice]) -> Vec<(NoticeKind, Vec<String>)> {
    notices.iter().map(|n| (n.kind, n.sinks.clone())).collect()
}

const S: i64 = 1000;

#[test]
fn hold_down_fire_repeat_from_acceptance_and_resolve_once() {
    let dir = temp_dir("engine-cycle");
    let mut e = Engine::open(&dir, config_with_sinks()).unwrap();
    // NodeLowPeers: warning, for_s 300. Only sink "all" takes warnings.
    assert!(e.evaluate(&low_peers(NOW, 1)).is_empty());
    assert!(
        e.evaluate(&low_peers(NOW + 299 * S, 1)).is_empty(),
        "held down for for_s"
    );
    let n = e.evaluate(&low_peers(NOW + 300 * S, 1));
    assert_eq!(
        kinds(&n),
        vec![(NoticeKind::Firing, vec!["all".to_string()])]
    );
    let fp = n[0].fingerprint.clone();
    assert!(n[0].facts[0].contains("peers 1"), "{:?}", n[0].facts);
    assert_eq!(n[0].help.as_deref(), Some("send h1 logs n0 100"));
    // Not accepted yet: no repeat however long it takes.
    assert!(e.evaluate(&low_peers(NOW + 2000 * S, 1)).is_empty());
    e.delivered(&fp, "all", true, NOW + 2000 * S);
    assert!(
        e.evaluate(&low_peers(NOW + 2599 * S, 1)).is_empty(),
        "repeat counts from acceptance"
    );
    let n = e.evaluate(&low_peers(NOW + 2600 * S, 1));
    assert_eq!(
        kinds(&n),
        vec![(NoticeKind::Repeat, vec!["all".to_string()])]
    );
    assert_eq!(
        n[0].starts_at_ms,
        NOW + 300 * S,
        "startsAt stays the firing time"
    );
    e.delivered(&fp, "all", true, NOW + 2601 * S);
    let n = e.evaluate(&low_peers(NOW + 2700 * S, 5));
    assert_eq!(
        kinds(&n),
        vec![(NoticeKind::Resolved, vec!["all".to_string()])]
    );
    assert_eq!(n[0].ends_at_ms, Some(NOW + 2700 * S));
    assert!(
        e.evaluate(&low_peers(NOW + 2800 * S, 5)).is_empty(),
        "exactly one resolved"
    );
    assert!(e.firing().is_empty());
}

#[test]
fn a_flap_shorter_than_for_s_sends_nothing() {
    let dir = temp_dir("engine-flap");
    let mut e = Engine::open(&dir, config_with_sinks()).unwrap();
    assert!(e.evaluate(&low_peers(NOW, 1)).is_empty());
    assert!(e.evaluate(&low_peers(NOW + 100 * S, 9)).is_empty());
    assert!(e.evaluate(&low_peers(NOW + 200 * S, 1)).is_empty());
    assert!(
        e.evaluate(&low_peers(NOW + 450 * S, 1)).is_empty(),
        "hold-down restarted at 200 s"
    );
    assert_eq!(e.evaluate(&low_peers(NOW + 500 * S, 1)).len(), 1);
}

#[test]
fn min_severity_routes_critical_to_both_sinks() {
    let dir = temp_dir("engine-sev");
    let mut e = Engine::open(&dir, config_with_sinks()).unwrap();
    let mut v = fleet(vec![("h1", agent(vec![("n0", node(1, 1, 9, false))]))]);
    v.agents
        .get_mut("h1")
        .unwrap()
        .containers
        .get_mut("n0")
        .unwrap()
        .state = "exited".into();
    assert!(e.evaluate(&v).is_empty());
    v.now_ms += 60 * S;
    v.agents.get_mut("h1").unwrap().last_seen_ms = Some(v.now_ms);
    let n = e.evaluate(&v);
    assert_eq!(
        kinds(&n),
        vec![(
            NoticeKind::Firing,
            vec!["all".to_string(), "sink1".to_string()]
        )]
    );
    assert_eq!(
        n[0].help.as_deref(),
        Some("send h1 start n0   (then: send h1 logs n0 100)")
    );
    assert_eq!(e.firing()[0].severity, Severity::Critical);
    assert!(render_firing(&e.firing(), v.now_ms).contains("ContainerDown"));
    let doc = super::engine::firing_json(&e.firing());
    assert_eq!(
        doc["firing"][0]["labels"],
        json!({"alertname": "ContainerDown", "severity": "critical", "agent": "h1", "container": "n0"})
    );
    assert_eq!(doc["firing"][0]["since_ms"], v.now_ms);
}

#[test]
fn a_restart_sends_no_second_firing_and_resolves_what_cleared() {
    let dir = temp_dir("engine-restart");
    let mut e = Engine::open(&dir, config_with_sinks()).unwrap();
    e.evaluate(&low_peers(NOW, 1));
    let n = e.evaluate(&low_peers(NOW + 300 * S, 1));
    e.save().unwrap();
    e.delivered(&n[0].fingerprint, "all", true, NOW + 301 * S);
    e.save().unwrap();
    drop(e);
    // Restart: the condition still holds, no second firing.
    let mut e = Engine::open(&dir, config_with_sinks()).unwrap();
    assert!(e.evaluate(&low_peers(NOW + 400 * S, 1)).is_empty());
    assert_eq!(e.firing().len(), 1);
    e.save().unwrap();
    drop(e);
    // Restart again: it cleared while the server was down.
    let mut e = Engine::open(&dir, config_with_sinks()).unwrap();
    let n = e.evaluate(&low_peers(NOW + 500 * S, 9));
    assert_eq!(
        kinds(&n),
        vec![(NoticeKind::Resolved, vec!["all".to_string()])]
    );
    let state = std::fs::read_to_string(dir.join("alerts/state.json")).unwrap();
    assert!(
        !state.contains("127.0.0.1"),
        "no sink URL in the state file"
    );
}

#[test]
fn an_away_agent_keeps_its_containers_alerts_and_raises_agent_down() {
    let dir = temp_dir("engine-away");
    let mut e = Engine::open(&dir, config_with_sinks()).unwrap();
    e.evaluate(&low_peers(NOW, 1));
    assert_eq!(e.evaluate(&low_peers(NOW + 300 * S, 1)).len(), 1);
    // The agent drops: its NodeLowPeers neither resolves nor repeats.
    let mut v = low_peers(NOW + 301 * S, 1);
    let a = v.agents.get_mut("h1").unwrap();
    a.connected = false;
    a.containers.clear();
    assert!(e.evaluate(&v).is_empty());
    v.now_ms = NOW + 400 * S;
    let n = e.evaluate(&v);
    assert_eq!(n.len(), 1);
    assert_eq!(
        (n[0].alertname.as_str(), n[0].container.as_deref()),
        ("AgentDown", None)
    );
    assert_eq!(e.firing().len(), 2);
    // Back, still low on peers: AgentDown resolves, the other stays.
    let n = e.evaluate(&low_peers(NOW + 500 * S, 1));
    assert_eq!(
        n.iter()
            .map(|n| (n.alertname.as_str(), n.kind))
            .collect::<Vec<_>>(),
        vec![("AgentDown", NoticeKind::Resolved)]
    );
}

#[test]
fn without_sinks_the_console_gets_firing_repeats_and_resolved() {
    let dir = temp_dir("engine-console");
    let mut e = Engine::open(&dir, AlertsConfig::default()).unwrap();
    e.evaluate(&low_peers(NOW, 1));
    let n = e.evaluate(&low_peers(NOW + 300 * S, 1));
    assert_eq!(kinds(&n), vec![(NoticeKind::Firing, vec![])]);
    assert!(e.evaluate(&low_peers(NOW + 1000 * S, 1)).is_empty());
    let n = e.evaluate(&low_peers(NOW + 300 * S + 14_400 * S, 1));
    assert_eq!(kinds(&n), vec![(NoticeKind::Repeat, vec![])]);
}

#[test]
fn a_corrupt_state_file_is_refused_not_reset() {
    let dir = temp_dir("engine-corrupt");
    std::fs::create_dir_all(dir.join("alerts")).unwrap();
    std::fs::write(dir.join("alerts/state.json"), b"{not json").unwrap();
    let err = Engine::open(&dir, AlertsConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("unreadable"), "{err}");
}

#[test]
fn the_alerts_file_refuses_typos_and_inline_secrets() {
    let bad: &[(&str, &str)] = &[
        (r#"{"repeat_interval": 60}"#, "unknown field"),
        (r#"{"rules": {"NodeLowPeer": {}}}"#, "unknown rule"),
        (
            r#"{"rules": {"NodeLowPeers": {"treshold": 3}}}"#,
            "unknown field",
        ),
        (
            r#"{"rules": {"NodeLowPeers": {"severity": "page"}}}"#,
            "unknown variant",
        ),
        (
            r#"{"rules": {"NodeLowPeers": {"max_unclaimed": 3}}}"#,
            "only UnclaimedPayouts",
        ),
        (r#"{"repeat_interval_s": 5}"#, "between 60"),
        (r#"{"sinks": [{"kind": "pager"}]}"#, "unknown kind"),
        (
            r#"{"sinks": [{"kind": "slack", "url": "https://hooks.slack.com/services/SECRET"}]}"#,
            "only webhook may hold its URL inline",
        ),
        (
            r#"{"sinks": [{"kind": "webhook", "url": "ftp://x"}]}"#,
            "http://",
        ),
        (
            r#"{"sinks": [{"kind": "webhook", "url": "http://a", "name": "x"}, {"kind": "webhook", "url": "http://b", "name": "x"}]}"#,
            "unique name",
        ),
        (
            r#"{"sinks": [{"kind": "telegram", "bot_token_file": "/nonexistent/t", "chat_id": "1"}]}"#,
            "cannot read",
        ),
        (
            r#"{"sinks": [{"kind": "webhook", "url": "http://a", "name": "../x"}]}"#,
            "letters, digits",
        ),
    ];
    for (text, want) in bad {
        let err = AlertsConfig::from_json(text.as_bytes())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(want), "{text}: {err}");
        assert!(!err.contains("SECRET"), "{err}");
    }
}

#[test]
fn secrets_come_from_files_and_never_show() {
    let dir = temp_dir("config-secrets");
    std::fs::write(
        dir.join("slack.url"),
        "https://hooks.slack.com/services/T0/B0/XYZSECRET\n",
    )
    .unwrap();
    std::fs::write(dir.join("tg.token"), "123:TOKENSECRET").unwrap();
    let text = json!({"rules": {"BackupStale": {"enabled": false}, "NodeLowPeers": {"threshold": 5, "severity": "critical"}},
        "sinks": [{"kind": "slack", "url_file": dir.join("slack.url"), "min_severity": "warning"},
                  {"kind": "telegram", "name": "phone", "bot_token_file": dir.join("tg.token"), "chat_id": "-100123"}]});
    let c = AlertsConfig::from_json(text.to_string().as_bytes()).unwrap();
    assert_eq!(
        c.sinks[0].secret.expose(),
        "https://hooks.slack.com/services/T0/B0/XYZSECRET"
    );
    assert_eq!(
        c.sinks[1].post_url(),
        "https://api.telegram.org/bot123:TOKENSECRET/sendMessage"
    );
    assert_eq!(c.rule(RuleName::NodeLowPeers).severity, Severity::Critical);
    assert!(!c.rule(RuleName::BackupStale).enabled);
    let shown = format!("{}{:?}", c.describe(), c);
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(
        shown.contains("sink sink0 (slack)") && shown.contains("sink phone (telegram)"),
        "{shown}"
    );
}

fn sample(kind: NoticeKind) -> Notice {
    Notice {
        fingerprint: "0123456789abcdef".into(),
        alertname: "ContainerDown".into(),
        severity: Severity::Critical,
        kind,
        agent: "h1".into(),
        container: Some("3node0".into()),
        summary: "container 3node0 on h1 is exited".into(),
        facts: vec!["state: exited".into()],
        help: Some("send h1 start 3node0".into()),
        starts_at_ms: 1_736_346_600_000,
        ends_at_ms: (kind == NoticeKind::Resolved).then_some(1_736_350_200_000),
        issued_ms: 1_736_350_200_000,
        sinks: vec![],
    }
}

#[test]
fn webhook_payload_is_alertmanager_v4() {
    let labels = json!({"alertname": "ContainerDown", "severity": "critical", "agent": "h1", "container": "3node0"});
    let annotations = json!({"summary": "container 3node0 on h1 is exited", "description": "state: exited\nwhat helps: send h1 start 3node0"});
    let firing = sample(NoticeKind::Firing).webhook_payload("http://127.0.0.1:9100");
    assert_eq!(
        firing,
        json!({"version": "4", "status": "firing", "receiver": "warden", "groupKey": "0123456789abcdef",
            "truncatedAlerts": 0, "groupLabels": {"alertname": "ContainerDown"},
            "commonLabels": labels, "commonAnnotations": annotations, "externalURL": "http://127.0.0.1:9100",
            "alerts": [{"status": "firing", "labels": labels, "annotations": annotations,
                "startsAt": "2025-01-08T14:30:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9100", "fingerprint": "0123456789abcdef"}]})
    );
    let resolved = sample(NoticeKind::Resolved).webhook_payload("");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["endsAt"], "2025-01-08T15:30:00Z");
    assert_eq!(resolved["externalURL"], "");
}

#[test]
fn chat_payloads_carry_the_facts() {
    let n = sample(NoticeKind::Firing);
    let slack = n.slack_payload();
    assert_eq!(slack["text"], "firing container 3node0 on h1 is exited");
    assert!(
        slack["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("what helps: send h1 start 3node0")
    );
    let discord = n.discord_payload();
    assert_eq!(
        discord["content"],
        "[firing] container 3node0 on h1 is exited"
    );
    assert_eq!(discord["embeds"][0]["title"], "ContainerDown");
    let tg = n.telegram_payload("-100123");
    assert_eq!(tg["chat_id"], "-100123");
    assert!(
        tg["text"]
            .as_str()
            .unwrap()
            .starts_with("🔥 [CRITICAL] ContainerDown\n")
    );
    let mut long = n.clone();
    long.facts = vec!["x".repeat(10_000)];
    assert!(long.telegram_payload("1")["text"].as_str().unwrap().len() <= 4096);
    assert!(
        long.discord_payload()["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .len()
            <= 4096
    );
}

#[test]
fn a_sink_added_while_an_alert_fires_gets_the_firing_the_others_a_repeat() {
    let dir = temp_dir("engine-new-sink");
    let one = AlertsConfig::from_json(br#"{"repeat_interval_s": 600, "sinks": [{"kind": "webhook", "url": "http://127.0.0.1:1/a", "name": "old"}]}"#).unwrap();
    let mut e = Engine::open(&dir, one).unwrap();
    e.evaluate(&low_peers(NOW, 1));
    let n = e.evaluate(&low_peers(NOW + 300 * S, 1));
    e.delivered(&n[0].fingerprint, "old", true, NOW + 300 * S);
    e.save().unwrap();
    drop(e);
    let two = AlertsConfig::from_json(
        br#"{"repeat_interval_s": 600, "sinks": [
        {"kind": "webhook", "url": "http://127.0.0.1:1/a", "name": "old"},
        {"kind": "webhook", "url": "http://127.0.0.1:1/b", "name": "new"}]}"#,
    )
    .unwrap();
    let mut e = Engine::open(&dir, two).unwrap();
    let n = e.evaluate(&low_peers(NOW + 400 * S, 1));
    assert_eq!(
        kinds(&n),
        vec![(NoticeKind::Firing, vec!["new".to_string()])]
    );
    let n = e.evaluate(&low_peers(NOW + 900 * S, 1));
    assert_eq!(
        kinds(&n),
        vec![(NoticeKind::Repeat, vec!["old".to_string()])]
    );
}
