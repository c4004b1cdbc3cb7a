//! The page parsed by a real Prometheus parser (`promtool check metrics`,
//! from Debian's `prometheus` package; .ci/run installs it) and its values
//! read back.
use super::super::alerts::config::Severity;
use super::super::alerts::view::*;
use super::*;
use std::io::Write as _;
use std::process::{Command, Stdio};

const NOW: i64 = 1_700_000_000_000;

fn running(best: u64) -> ContainerView {
    ContainerView {
        state: "running".into(),
        restart_count: Some(1),
        node: NodeView {
            best: Some(best),
            finalized: Some(best - 2),
            sync_target: Some(best),
            peers: Some(12),
            syncing: Some(false),
            chain: Some("creditcoin3".into()),
            is_authority: Some(true),
            rpc_error: None,
        },
        validator: ValidatorView {
            account: Some("5Grw".into()),
            active: Some(true),
            unclaimed_eras: Some(2),
            ..ValidatorView::default()
        },
        backup: BackupView {
            newest_ms: Some(NOW - 3_600_000),
            last_failure: None,
        },
        last_log_lines: vec![],
    }
}

fn view() -> FleetView {
    let mut unreachable = running(10);
    unreachable.node = NodeView {
        rpc_error: Some("refused".into()),
        ..NodeView::default()
    };
    unreachable.validator = ValidatorView::default();
    unreachable.backup = BackupView::default();
    let mut stopped = ContainerView {
        state: "exited".into(),
        ..ContainerView::default()
    };
    stopped.restart_count = Some(0);
    let here = AgentView {
        connected: true,
        last_seen_ms: Some(NOW - 2000),
        stats_seen: true,
        host: None,
        docker_error: None,
        containers: [
            ("3node0".to_string(), running(4021337)),
            ("3node1".to_string(), unreachable),
            ("odd \"name\"\\\nx".to_string(), stopped),
        ]
        .into(),
    };
    let away = AgentView {
        connected: false,
        last_seen_ms: Some(NOW - 600_000),
        stats_seen: true,
        containers: [("9node0".to_string(), running(5))].into(),
        ..AgentView::default()
    };
    let never = AgentView::default();
    FleetView {
        now_ms: NOW,
        started_ms: NOW - 60_000,
        heartbeat_s: 15,
        agents: [
            ("host1".to_string(), here),
            ("host2".to_string(), away),
            ("host3".to_string(), never),
        ]
        .into(),
        duplicate_keys: vec![],
    }
}

fn page() -> String {
    let mut commands = CommandCounters::default();
    commands.record("start", CommandOutcome::Completed);
    commands.record("start", CommandOutcome::Completed);
    commands.record("backup_keys", CommandOutcome::Failed);
    commands.record("logs", CommandOutcome::Timeout);
    let firing = vec![FiringAlert {
        fingerprint: "f".into(),
        alertname: "AgentDown".into(),
        severity: Severity::Critical,
        agent: "host2".into(),
        container: None,
        since_ms: NOW,
        summary: String::new(),
    }];
    render(&view(), &commands, &firing)
}

/// `promtool check metrics` on the page: exit 0 and no complaint.
fn promtool_check(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed by this test: apt-get install -y prometheus (.ci/run does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool refused the page: {said}\n{text}"
    );
    said
}

fn value(text: &str, series: &str) -> Option<String> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')
            .map(str::to_string)
    })
}

#[test]
fn the_page_parses_and_says_what_the_fleet_is() {
    let text = page();
    let complaints = promtool_check(&text);
    assert!(complaints.trim().is_empty(), "promtool lint: {complaints}");
    let want = [
        ("warden_agents_connected", "1"),
        ("warden_agent_up{agent=\"host1\"}", "1"),
        ("warden_agent_up{agent=\"host2\"}", "0"),
        ("warden_agent_up{agent=\"host3\"}", "0"),
        (
            "warden_agent_last_seen_timestamp_seconds{agent=\"host1\"}",
            "1699999998",
        ),
        (
            "warden_container_running{agent=\"host1\",container=\"3node0\"}",
            "1",
        ),
        (
            "warden_container_running{agent=\"host1\",container=\"odd \\\"name\\\"\\\\\\nx\"}",
            "0",
        ),
        (
            "warden_node_best_height{agent=\"host1\",container=\"3node0\"}",
            "4021337",
        ),
        (
            "warden_node_finalized_height{agent=\"host1\",container=\"3node0\"}",
            "4021335",
        ),
        (
            "warden_node_peers{agent=\"host1\",container=\"3node0\"}",
            "12",
        ),
        (
            "warden_node_syncing{agent=\"host1\",container=\"3node0\"}",
            "0",
        ),
        (
            "warden_validator_active{agent=\"host1\",container=\"3node0\"}",
            "1",
        ),
        (
            "warden_node_unclaimed_payouts{agent=\"host1\",container=\"3node0\"}",
            "2",
        ),
        (
            "warden_key_backup_age_seconds{agent=\"host1\",container=\"3node0\"}",
            "3600",
        ),
        (
            "warden_commands_total{command=\"start\",outcome=\"completed\"}",
            "2",
        ),
        (
            "warden_commands_total{command=\"backup_keys\",outcome=\"failed\"}",
            "1",
        ),
        (
            "warden_commands_total{command=\"logs\",outcome=\"timeout\"}",
            "1",
        ),
        (
            "warden_alerts_firing{alertname=\"AgentDown\",severity=\"critical\"}",
            "1",
        ),
    ];
    for (series, v) in want {
        assert_eq!(value(&text, series).as_deref(), Some(v), "{series}\n{text}");
    }
    for kind in [
        "# TYPE warden_agents_connected gauge",
        "# TYPE warden_commands_total counter",
        "# TYPE warden_alerts_firing gauge",
    ] {
        assert!(text.contains(kind), "{kind}");
    }
}

#[test]
fn unknown_values_and_away_agents_have_no_sample() {
    let text = page();
    // host1/3node1 cannot be read: it is running, but has no node value.
    assert!(text.contains("warden_container_running{agent=\"host1\",container=\"3node1\"} 1"));
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("warden_node") && l.contains("3node1")),
        "{text}"
    );
    // host2 is away: only warden_agent_up and its last-seen stay.
    let host2: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("host2") && !l.starts_with('#'))
        .collect();
    assert_eq!(
        host2,
        vec![
            "warden_agent_up{agent=\"host2\"} 0",
            "warden_agent_last_seen_timestamp_seconds{agent=\"host2\"} 1699999400"
        ]
    );
    // host3 was never seen: no last-seen sample rather than a zero.
    assert!(
        !text.contains("last_seen_timestamp_seconds{agent=\"host3\""),
        "{text}"
    );
    // Nothing fires: the family is there, with no sample.
    let quiet = render(&view(), &CommandCounters::default(), &[]);
    promtool_check(&quiet);
    assert!(!quiet.lines().any(|l| l.starts_with("warden_alerts_firing")));
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    assert_eq!(escape_label("plain"), "plain");
}

/// Every `warden_…` metric name in `text` (letters, digits, `_`).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("warden_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_docs_rules_and_dashboard_use_only_metrics_the_page_has() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = root.join("docs/prometheus-rules.yml");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool is needed by this test: apt-get install -y prometheus (.ci/run does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let dashboard = std::fs::read_to_string(root.join("docs/grafana-dashboard.json")).unwrap();
    let _: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let families: std::collections::BTreeSet<String> = page()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let used = metric_names(&std::fs::read_to_string(&rules).unwrap());
    for name in used.iter().chain(metric_names(&dashboard).iter()) {
        assert!(
            families.contains(name),
            "{name} is not on the /metrics page"
        );
    }
}
