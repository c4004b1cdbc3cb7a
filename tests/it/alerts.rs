//! Alerts end to end (issue 12): a real agent and test-node container, the
//! server with `--alerts` and `--admin-listen`, and a local HTTP receiver
//! standing in for Alertmanager. Conditions are produced for real: a
//! container stopped with `docker stop`, an agent killed; the receiver is
//! taken down and brought back; the server restarts while an alert fires.
use crate::alert_support::*;
use crate::support::*;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn alerts_fire_once_resolve_once_survive_restarts_and_reach_a_receiver_that_was_down() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(0, bodies.clone());
    let node = Node::start("3node0");
    let dir = TempDir::new("alerts-cfg");
    let alerts_file = dir.join("alerts.json");
    std::fs::write(
        &alerts_file,
        json!({
            "repeat_interval_s": 3600,
            "rules": {"ContainerDown": {"for_s": 0}, "AgentDown": {"for_s": 0},
                      "BackupStale": {"enabled": false}, "NodeLowPeers": {"enabled": false}},
            "sinks": [{"kind": "webhook", "url": format!("http://127.0.0.1:{}/alerts", receiver.port)}]
        })
        .to_string(),
    )
    .unwrap();
    let alerts_arg = alerts_file.display().to_string();
    let mut f = Fleet::start(
        &[&node],
        json!({"allow": ["status", "start", "stop"]}),
        &[
            "--heartbeat-s",
            "2",
            "--admin-listen",
            "127.0.0.1:0",
            "--alerts",
            &alerts_arg,
        ],
    );
    // The second line of the server's output, read while it started.
    let admin = f
        .server
        .out
        .seen
        .iter()
        .find_map(|l| l.strip_prefix("admin: "))
        .expect("an admin line")
        .trim()
        .to_string();

    // /metrics of the live fleet, once the first stats are in.
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        let (status, body) = http_get(&format!("{admin}/metrics"));
        assert_eq!(status, 200);
        if body.contains("warden_container_running{") {
            break body;
        }
        assert!(Instant::now() < deadline, "no container series: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(metrics.contains("warden_agents_connected 1"), "{metrics}");
    let running = format!(
        "warden_container_running{{agent=\"{}\",container=\"{}\"}} 1",
        f.agent_id, node.name
    );
    assert!(metrics.contains(&running), "{metrics}");
    assert_eq!(http_get(&format!("{admin}/healthz")).0, 200);
    let page = dir.join("metrics.txt");
    std::fs::write(&page, &metrics).unwrap();
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&page).unwrap())
        .output()
        .expect("promtool (Debian's prometheus package) is needed; .ci/run installs it");
    assert!(
        promtool.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&promtool.stderr)
    );

    // A container stopped outside warden: ContainerDown fires once, with
    // the Alertmanager v4 shape.
    docker(&["stop", "-t", "1", &node.name]);
    let firing = wait_notices(&bodies, "ContainerDown", "firing", 1);
    let notice = &firing[0];
    assert_eq!(notice["version"], "4");
    assert_eq!(notice["receiver"], "warden");
    let alert = &notice["alerts"][0];
    assert_eq!(alert["labels"]["agent"], f.agent_id.as_str());
    assert_eq!(alert["labels"]["container"], node.name.as_str());
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(notice["groupKey"], alert["fingerprint"]);
    assert_eq!(notice["externalURL"], admin.as_str());
    // `alerts` lists it.
    f.server.type_line("alerts");
    f.server.out.wait_for("ContainerDown", WAIT);

    // The receiver goes down; the container comes back: the resolved notice
    // waits in the queue and arrives once the receiver is back.
    let (port, bodies) = receiver.down();
    docker(&["start", &node.name]);
    f.server.out.wait_for("RESOLVED", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    assert!(notices(&bodies, "ContainerDown", "resolved").is_empty());
    let receiver = Receiver::start(port, bodies.clone());
    wait_notices(&bodies, "ContainerDown", "resolved", 1);

    // The agent dies: AgentDown fires. The server restarts while it fires:
    // no second firing. The agent comes back: one resolved notice.
    f.agent.kill();
    wait_notices(&bodies, "AgentDown", "firing", 1);
    // The receiver keeps a body before it answers: wait until the server has
    // saved the acceptance, or the kill below may land in between and the
    // notice is rightly sent again (at least once, as the contract says).
    let state = f.server.data_dir.join("alerts").join("state.json");
    let accepted = || -> bool {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        parsed["alerts"].as_object().is_some_and(|alerts| {
            alerts.values().any(|r| {
                r["key"]["rule"] == "AgentDown"
                    && r["accepted_ms"].as_object().is_some_and(|m| !m.is_empty())
            })
        })
    };
    let deadline = Instant::now() + WAIT;
    while !accepted() {
        assert!(Instant::now() < deadline, "acceptance never saved");
        std::thread::sleep(Duration::from_millis(50));
    }
    f.server.restart();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(notices(&bodies, "AgentDown", "firing").len(), 1);
    f.agent.restart();
    wait_notices(&bodies, "AgentDown", "resolved", 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(notices(&bodies, "ContainerDown", "firing").len(), 1);
    assert_eq!(notices(&bodies, "ContainerDown", "resolved").len(), 1);
    assert_eq!(notices(&bodies, "AgentDown", "firing").len(), 1);
    assert_eq!(notices(&bodies, "AgentDown", "resolved").len(), 1);
    // Deliveries are audited.
    let audit = std::fs::read_to_string(f.server.data_dir.join("audit.jsonl")).unwrap();
    assert!(audit.contains("ContainerDown"), "{audit}");
    drop(receiver);
}

#[test]
fn a_missed_schedule_slot_runs_once_at_start_and_never_in_a_burst() {
    let node = Node::start("3node0");
    let dir = TempDir::new("sched-cfg");
    // A daily slot two minutes ago, last run three days ago: missed three
    // times while the server was down.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let slot_ms = (now_ms - 120_000) / 60_000 * 60_000;
    let minute_of_day = (slot_ms / 60_000) % 1440;
    let at = format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60);
    let schedules = dir.join("schedules.json");
    std::fs::write(
        &schedules,
        json!({"schedules": [{"name": "nightly", "command": "backup_keys", "at": at,
            "targets": "all", "gap_s": 1}]})
        .to_string(),
    )
    .unwrap();
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::set_permissions(
        &data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(
        data_dir.join("schedules.json"),
        json!({"schedules": {"nightly": {"slot_ms": slot_ms - 3 * 86_400_000, "left": []}},
            "running": null, "ended_ms": 0})
        .to_string(),
    )
    .unwrap();
    let agent_id = unique("agent");
    let token = token_add(&data_dir, &agent_id);
    let schedules_arg = schedules.display().to_string();
    let mut server = ServerProc::start(
        &data_dir,
        &["--heartbeat-s", "2", "--schedules", &schedules_arg],
    );
    let config = config_for(&[&node.name], json!({"allow": ["status", "backup_keys"]}));
    let _agent = AgentProc::start(dir.path(), &server.url(), &agent_id, &token, &config, &[]);
    let started = server
        .out
        .wait_for("schedule nightly: backup_keys", Duration::from_secs(60));
    assert!(started.contains(&node.name), "{started}");
    let id = started
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string();
    let outcome = server.outcome(&id, Duration::from_secs(120));
    assert!(outcome.contains("completed"), "{outcome}");
    // Once, not once per missed day.
    let later = server.out.drain_for(Duration::from_secs(5));
    assert!(
        !later.iter().any(|l| l.contains("schedule nightly:")),
        "ran again: {later:?}"
    );
    server.type_line("schedules");
    server.out.wait_for("nightly", WAIT);
    let history = std::fs::read_to_string(data_dir.join("commands.jsonl")).unwrap();
    assert!(history.contains("\"by\":\"schedule\""), "{history}");
}
