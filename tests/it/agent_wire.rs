//! The agent against a raw server played by the test: what it sends (hello,
//! stats) and how it treats what a server may send (duplicate ids, bad
//! commands, acks), including across its own restart.
use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tungstenite::Message;

#[test]
fn hello_and_stats_describe_the_managed_containers() {
    let n0 = Node::start("3node0");
    let n1 = Node::start("3node1");
    let _outsider = Node::start("3nodeX");
    let dir = TempDir::new("aw");
    let server = RawServer::new();
    let _agent = start_agent(&dir, &server, &[&n0.name, &n1.name], json!({}));
    let (mut ws, hello) = server.accept();
    assert_eq!(hello["protocol"], 1);
    let mut containers: Vec<String> = serde_json::from_value(hello["containers"].clone()).unwrap();
    containers.sort();
    let mut expected = vec![n0.name.clone(), n1.name.clone()];
    expected.sort();
    assert_eq!(containers, expected, "only what the policy manages");
    let commands: Vec<String> = serde_json::from_value(hello["commands"].clone()).unwrap();
    assert!(
        commands.contains(&"stop".to_string()) && !commands.contains(&"exec".to_string()),
        "{commands:?}"
    );

    let stats = recv_type(&mut ws, "stats")["data"].clone();
    assert!(stats["timestamp"].is_i64());
    assert!(stats["host"]["load"].is_array(), "{stats}");
    let rows = stats["containers"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{stats}");
    for row in rows {
        assert_eq!(row["state"], "running", "{row}");
        assert!(
            row["started_at"].as_str().unwrap().starts_with("20"),
            "{row}"
        );
        assert_eq!(row["restart_count"], 0);
        assert!(row["cpu_percent"].is_number(), "{row}");
        assert!(row["mem_used_bytes"].as_u64().unwrap() > 0, "{row}");
        assert!(row["uptime_s"].is_i64(), "{row}");
    }
    // Each node's chain view, through its RPC (on the container's loopback,
    // reached with docker exec curl).
    for n in [&n0, &n1] {
        let node = &stats["nodes"][&n.name];
        assert!(node["rpc_error"].is_null(), "{node}");
        assert!(node["best"].as_u64().is_some(), "{node}");
        assert!(
            node["finalized"].as_u64().unwrap() <= node["best"].as_u64().unwrap(),
            "{node}"
        );
        assert_eq!(node["peers"], 3, "{node}");
        assert_eq!(node["syncing"], false, "{node}");
        assert_eq!(node["roles"], json!(["Authority"]), "{node}");
        assert!(
            node["version"].as_str().unwrap().starts_with("3."),
            "{node}"
        );
    }
}

#[test]
fn bad_commands_fail_with_the_right_code_and_change_nothing() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("aw");
    let server = RawServer::new();
    let _agent = start_agent(&dir, &server, &[&n0.name], json!({}));
    let (mut ws, _) = server.accept();
    let cases = [
        (
            command("c1", "frobnicate", &n0.name, json!({})),
            "unknown_command",
        ),
        (command("c2", "stop", "../x", json!({})), "unknown_target"),
        (
            command("c3", "stop", "a;rm -rf /", json!({})),
            "unknown_target",
        ),
        (
            command("c4", "stop", "3nodeOther", json!({})),
            "unknown_target",
        ),
        (
            command("c5", "logs", &n0.name, json!({"lines": "many"})),
            "invalid_params",
        ),
        (
            command("c6", "logs", &n0.name, json!({"lines": 10001})),
            "invalid_params",
        ),
        (
            command("c7", "stop", &n0.name, json!({"force": true})),
            "invalid_params",
        ),
        (
            command("c8", "exec", &n0.name, json!({"command": "ls /"})),
            "not_permitted",
        ),
        (command("c9", "restart", "all", json!({})), "invalid_params"),
    ];
    for (frame, code) in cases {
        let id = frame["data"]["id"].as_str().unwrap().to_string();
        send(&mut ws, frame);
        let r = response_to(&mut ws, &id);
        assert_eq!(
            (r["status"].as_str(), r["code"].as_str()),
            (Some("failed"), Some(code)),
            "{id}: {r}"
        );
        assert!(!r["error"].as_str().unwrap().is_empty());
    }
    // An old command is refused, never run late.
    let mut old = command("c10", "stop", &n0.name, json!({}));
    old["data"]["timestamp"] = json!(1_000);
    send(&mut ws, old);
    assert_eq!(response_to(&mut ws, "c10")["code"], "timeout");
    assert_eq!(n0.state(), "running");
    // Envelope problems get an error frame, not a response.
    ws.send(Message::text("{oops")).unwrap();
    let e = recv_type(&mut ws, "error");
    assert_eq!(e["data"]["code"], "bad_request");
}

#[test]
fn a_seen_command_id_is_never_run_twice_even_across_a_restart() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("aw");
    let server = RawServer::new();
    let mut agent = start_agent(&dir, &server, &[&n0.name], json!({}));
    let (mut ws, _) = server.accept();
    send(&mut ws, command("s1", "stop", &n0.name, json!({})));
    let first = response_to(&mut ws, "s1");
    assert_eq!(first["status"], "completed");
    assert_eq!(n0.state(), "exited");
    // Start it by hand; a resent s1 must not stop it again.
    assert!(docker(&["start", &n0.name]).status.success());
    send(&mut ws, command("s1", "stop", &n0.name, json!({})));
    let again = response_to(&mut ws, "s1");
    assert_eq!(again, first, "the stored response is resent");
    assert_eq!(n0.state(), "running");

    // Not acked: after a restart the agent resends it from its ledger.
    agent.restart();
    let (mut ws, _) = server.accept();
    let resent = response_to(&mut ws, "s1");
    assert_eq!(resent, first);
    send(
        &mut ws,
        json!({"type": "command_ack", "data": {"id": "s1"}}),
    );
    // Acked: the next restart does not resend it, but still refuses to rerun it.
    agent.restart();
    let (mut ws, _) = server.accept();
    send(&mut ws, command("s1", "stop", &n0.name, json!({})));
    assert_eq!(response_to(&mut ws, "s1"), first);
    assert_eq!(n0.state(), "running");
}

#[test]
fn an_agent_killed_mid_command_reports_an_unknown_outcome_after_restart() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("aw");
    let slow = dir.join("slow.sh");
    std::fs::write(&slow, "#!/bin/sh\nsleep 30\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let server = RawServer::new();
    let policy = json!({"allow": ["payout"], "payout": {"script": slow.display().to_string(), "timeout_s": 60}});
    let mut agent = start_agent(&dir, &server, &[&n0.name], policy);
    let (mut ws, _) = server.accept();
    send(&mut ws, command("p1", "payout", &n0.name, json!({})));
    // Wait until the ledger says it started, then kill the agent.
    let ledger = agent.state_dir.join("ledger.jsonl");
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&ledger)
        .unwrap_or_default()
        .contains("\"p1\"")
    {
        assert!(Instant::now() < deadline, "command never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.restart();
    let (mut ws, _) = server.accept();
    let r = response_to(&mut ws, "p1");
    assert_eq!(
        (r["status"].as_str(), r["code"].as_str()),
        (Some("failed"), Some("internal")),
        "{r}"
    );
    assert!(r["error"].as_str().unwrap().contains("outcome is unknown"));
    // And it is not run again when the server resends it.
    send(&mut ws, command("p1", "payout", &n0.name, json!({})));
    assert_eq!(response_to(&mut ws, "p1"), r);
}
