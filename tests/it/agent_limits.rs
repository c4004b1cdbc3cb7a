//! A hostile or broken server against a real agent: raw frames that once
//! crashed it or made it write without bound (issue 10). Each test fails on
//! the agent before the fix.
use crate::support::*;
use serde_json::{Value, json};
use std::path::Path;

/// A container name no test creates: these tests need no node.
fn nobody() -> String {
    unique("agent-hardening-none")
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The agent still reads and answers: a ping gets its pong.
fn assert_alive(ws: &mut Ws, agent: &mut AgentProc, stamp: i64) {
    send(ws, json!({"type": "ping", "data": {"timestamp": stamp}}));
    let pong = recv_type(ws, "pong");
    assert_eq!(pong["data"]["timestamp"], stamp, "{pong}");
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent exited: {}",
        agent.log()
    );
}

fn refused_frame(ws: &mut Ws) -> Value {
    let e = recv_type(ws, "error");
    assert_eq!(e["data"]["code"], "bad_request", "{e}");
    assert!(
        e["data"].get("ref").is_none(),
        "the bad id is not echoed: {e}"
    );
    e
}

#[test]
fn a_400_kb_command_id_is_refused_before_any_write() {
    let dir = TempDir::new("ah-id");
    let server = RawServer::new();
    let name = nobody();
    let mut agent = start_agent(&dir, &server, &[&name], json!({}));
    let (mut ws, _) = server.accept();
    let huge = "x".repeat(400 * 1024);
    send(&mut ws, command(&huge, "status", &name, json!({})));
    refused_frame(&mut ws);
    // A good command after it runs, and its records are the only ones.
    send(&mut ws, command("ok1", "status", &name, json!({})));
    let r = response_to(&mut ws, "ok1");
    assert_eq!(r["status"], "failed", "{r}");
    assert_alive(&mut ws, &mut agent, 1);
    let ledger = agent.state_dir.join("ledger.jsonl");
    let audit = agent.state_dir.join("audit.jsonl");
    assert!(
        file_len(&ledger) < 4096,
        "ledger is {} bytes",
        file_len(&ledger)
    );
    assert!(
        file_len(&audit) < 4096,
        "audit is {} bytes",
        file_len(&audit)
    );
    assert!(
        !std::fs::read_to_string(&audit)
            .unwrap()
            .contains("xxxxxxxx")
    );
}

#[test]
fn a_nul_in_a_command_id_does_not_crash_the_agent() {
    let dir = TempDir::new("ah-nul");
    let server = RawServer::new();
    let name = nobody();
    let mut agent = start_agent(&dir, &server, &[&name], json!({}));
    let (mut ws, _) = server.accept();
    send(&mut ws, command("a\u{0}b", "status", &name, json!({})));
    refused_frame(&mut ws);
    for bad in ["", "a b", "c/../1", "é"] {
        send(&mut ws, command(bad, "status", &name, json!({})));
        refused_frame(&mut ws);
    }
    assert_alive(&mut ws, &mut agent, 2);
    let audit = agent.state_dir.join("audit.jsonl");
    assert_eq!(file_len(&audit), 0, "nothing audited for refused frames");
}

#[test]
fn a_huge_heartbeat_is_clamped_not_trusted() {
    let dir = TempDir::new("ah-hb");
    let server = RawServer::new();
    let name = nobody();
    let mut agent = start_agent(&dir, &server, &[&name], json!({}));
    let (mut ws, _) = server.accept_with_heartbeat(json!(u64::MAX));
    // Two round trips: the silence check runs between frames.
    assert_alive(&mut ws, &mut agent, 3);
    assert_alive(&mut ws, &mut agent, 4);
    let log = agent.log();
    assert!(
        log.contains("heartbeat of 18446744073709551615 s; using 3600 s"),
        "{log}"
    );
}

#[test]
fn oversized_params_are_invalid_before_any_work() {
    let dir = TempDir::new("ah-params");
    let server = RawServer::new();
    let name = nobody();
    let _agent = start_agent(&dir, &server, &[&name], json!({}));
    let (mut ws, _) = server.accept();
    let many: serde_json::Map<String, Value> = (0..75_000)
        .map(|i| (format!("k{i:03}"), json!("0xab")))
        .take(9)
        .collect();
    let huge_hex = format!("0x{}", "ab".repeat(100_000));
    let cases = [
        ("p1", "check_keys", json!({"public_keys": many})),
        ("p2", "has_key", json!({"public_key": huge_hex})),
        ("p3", "has_session_keys", json!({"session_keys": huge_hex})),
        ("p4", "find_validator", json!({"session_keys": huge_hex})),
    ];
    for (id, command_name, params) in cases {
        send(&mut ws, command(id, command_name, &name, params));
        let r = response_to(&mut ws, id);
        assert_eq!(
            (r["status"].as_str(), r["code"].as_str()),
            (Some("failed"), Some("invalid_params")),
            "{id}: {r}"
        );
    }
}

#[test]
fn a_flood_of_commands_is_refused_busy_without_a_trace() {
    let dir = TempDir::new("ah-rate");
    let server = RawServer::new();
    let name = nobody();
    let agent = start_agent(&dir, &server, &[&name], json!({}));
    let (mut ws, _) = server.accept();
    // Invalid params: each accepted one fails at once, without Docker.
    let n = 100;
    for i in 0..n {
        send(
            &mut ws,
            command(&format!("f{i}"), "logs", &name, json!({"lines": 0})),
        );
    }
    // Responses come in any order: gather them all.
    let mut outcomes = std::collections::HashMap::new();
    while outcomes.len() < n {
        let r = recv_type(&mut ws, "command_response")["data"].clone();
        if r["status"] == "failed" {
            outcomes.insert(r["id"].as_str().unwrap().to_string(), r);
        }
    }
    let mut rate_limited = Vec::new();
    for (id, r) in &outcomes {
        if r["error"].as_str().unwrap().contains("a second after that") {
            assert_eq!(r["code"], "busy", "{r}");
            rate_limited.push(id.clone());
        }
    }
    // The burst is 60; a few tokens come back while the frames arrive.
    assert!(rate_limited.len() >= 20, "{rate_limited:?}");
    let ledger = std::fs::read_to_string(agent.state_dir.join("ledger.jsonl")).unwrap();
    let audit = std::fs::read_to_string(agent.state_dir.join("audit.jsonl")).unwrap();
    for id in &rate_limited {
        let quoted = format!("\"{id}\"");
        assert!(!ledger.contains(&quoted), "{id} in the ledger");
        assert!(!audit.contains(&quoted), "{id} in the audit log");
    }
}

#[test]
fn a_nearly_full_disk_stops_commands_and_stats_say_so() {
    let dir = TempDir::new("ah-disk");
    let server = RawServer::new();
    let name = nobody();
    let mut config = config_for(&[&name], json!({}));
    config["limits"] = json!({"min_free_mb": 1u64 << 40});
    let agent = server.start_agent(&dir, &config);
    let (mut ws, _) = server.accept();
    send(&mut ws, command("d1", "status", &name, json!({})));
    let r = response_to(&mut ws, "d1");
    assert_eq!(r["code"], "unavailable", "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("disk is nearly full"),
        "{r}"
    );
    let stats = recv_type(&mut ws, "stats");
    let state_dir = &stats["data"]["host"]["state_dir"];
    assert_eq!(state_dir["accepting_commands"], false, "{stats}");
    assert!(state_dir["free_bytes"].as_u64().is_some(), "{stats}");
    let ledger = agent.state_dir.join("ledger.jsonl");
    assert!(
        !std::fs::read_to_string(ledger)
            .unwrap_or_default()
            .contains("d1")
    );
}

#[test]
fn a_payout_script_past_its_timeout_is_killed_with_its_children() {
    let dir = TempDir::new("ah-pg");
    let pid_file = dir.join("child.pid");
    let script = dir.join("payout.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nsleep 300 </dev/null >/dev/null 2>&1 &\necho $! > {}\nwait\n",
            pid_file.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let server = RawServer::new();
    let node = Node::start("agent-hardening-3node0");
    let name = node.name.clone();
    let policy = json!({"allow": ["payout"], "payout": {"script": script.display().to_string(), "timeout_s": 1}});
    let _agent = start_agent(&dir, &server, &[&name], policy);
    let (mut ws, _) = server.accept();
    send(&mut ws, command("po1", "payout", &name, json!({})));
    let r = response_to(&mut ws, "po1");
    assert_eq!(r["code"], "timeout", "{r}");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    let deadline = std::time::Instant::now() + WAIT;
    // Gone, or a zombie waiting for whoever inherited it.
    while std::fs::read_to_string(&stat)
        .map(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
        .unwrap_or(false)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the script's child outlived the timeout"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn refused_commands_with_big_params_leave_the_ledger_and_audit_small() {
    let dir = TempDir::new("ah-big");
    let server = RawServer::new();
    let name = nobody();
    let mut agent = start_agent(&dir, &server, &[&name], json!({}));
    let (mut ws, _) = server.accept();
    let big = "y".repeat(60 * 1024);
    let mut first = None;
    for i in 0..8 {
        let id = format!("big{i}");
        // exec is not allowed by default; a stop with an unknown param is
        // invalid: both are refused, with their params as received.
        let frame = if i % 2 == 0 {
            command(
                &id,
                "exec",
                &name,
                json!({"command": format!("echo {big}")}),
            )
        } else {
            command(&id, "stop", &name, json!({"junk": big}))
        };
        send(&mut ws, frame);
        let r = response_to(&mut ws, &id);
        assert_eq!(r["status"], "failed", "{r}");
        assert!(
            r.to_string().len() < 2048,
            "the response echoes no params: {r}"
        );
        first.get_or_insert(r);
    }
    let ledger = agent.state_dir.join("ledger.jsonl");
    let audit = agent.state_dir.join("audit.jsonl");
    assert!(
        file_len(&ledger) < 16 * 1024,
        "ledger: {} bytes",
        file_len(&ledger)
    );
    assert!(
        file_len(&audit) < 16 * 1024,
        "audit: {} bytes",
        file_len(&audit)
    );
    let audited = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(audited.matches("\"sha256\"").count(), 8, "{audited}");
    // A restart replays them (inside the window) and still refuses to rerun.
    agent.restart();
    let (mut ws, _) = server.accept();
    send(
        &mut ws,
        command("big0", "exec", &name, json!({"command": "true"})),
    );
    let again = response_to(&mut ws, "big0");
    assert_eq!(Some(again), first);
}

#[test]
fn a_container_id_prefix_is_not_a_target() {
    let n0 = Node::start("agent-hardening-3node0");
    let dir = TempDir::new("ah-idprefix");
    let server = RawServer::new();
    let id = docker(&["inspect", "-f", "{{.Id}}", &n0.name]);
    let prefix = String::from_utf8_lossy(&id.stdout)[..12].to_string();
    // A policy that manages any name, so only the exact-name rule stands
    // between the id prefix and `docker stop`.
    let policy = json!({"containers": ["*"], "allow": ["stop", "status"]});
    let _agent = start_agent(&dir, &server, &[&n0.name], policy);
    let (mut ws, _) = server.accept();
    send(&mut ws, command("ip1", "stop", &prefix, json!({})));
    let r = response_to(&mut ws, "ip1");
    assert_eq!(r["code"], "unknown_target", "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("no container named"),
        "{r}"
    );
    assert_eq!(n0.state(), "running");
    send(&mut ws, command("ip2", "status", &n0.name, json!({})));
    assert_eq!(response_to(&mut ws, "ip2")["status"], "completed");
}

/// An exec'd program past its deadline is killed inside the container, not
/// only its `docker exec` client (which would leave it running there, one
/// more with every command).
#[test]
fn an_exec_past_its_deadline_is_killed_inside_the_container() {
    let dir = TempDir::new("ah-exec-deadline");
    let server = RawServer::new();
    let node = Node::start("agent-hardening-exec");
    let name = node.name.clone();
    let mut config = config_for(
        &[&name],
        json!({"allow": ["exec"], "exec": {"programs": [{"program": "sleep", "args": ["37"]}]}}),
    );
    config["docker"]["timeout_s"] = json!(2);
    let _agent = server.start_agent(&dir, &config);
    let (mut ws, _) = server.accept();
    send(
        &mut ws,
        command("ex1", "exec", &name, json!({"command": "sleep 37"})),
    );
    let r = response_to(&mut ws, "ex1");
    assert_eq!(
        (r["status"].as_str(), r["code"].as_str()),
        (Some("failed"), Some("timeout")),
        "{r}"
    );
    let sleeping = || {
        let top = docker(&["top", &name, "-o", "pid,args"]);
        assert!(top.status.success(), "{top:?}");
        String::from_utf8_lossy(&top.stdout).contains("sleep 37")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while sleeping() {
        assert!(
            std::time::Instant::now() < deadline,
            "`sleep 37` still runs in {name} after its deadline"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
