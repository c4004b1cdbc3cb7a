//! Nothing lost, nothing twice: restarts of either side while a command is
//! in flight.
use crate::support::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn slow_script(dir: &Path, seconds: u32) -> String {
    let path = dir.join(format!("slow{seconds}.sh"));
    std::fs::write(
        &path,
        format!("#!/bin/sh\nsleep {seconds}\necho finished for $1\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn outcomes_of(data_dir: &Path, id: &str) -> usize {
    let history = std::fs::read_to_string(data_dir.join("commands.jsonl")).unwrap();
    history
        .lines()
        .filter(|l| l.contains("\"kind\":\"outcome\"") && l.contains(&format!("\"{id}\"")))
        .count()
}

#[test]
fn a_response_survives_a_server_restart_and_is_recorded_once() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("dur");
    let script = slow_script(dir.path(), 3);
    let policy =
        json!({"allow": ["payout", "status"], "payout": {"script": script, "timeout_s": 30}});
    let mut f = Fleet::start(&[&n0], policy, &[]);
    let id = f
        .server
        .send(&format!("send {} payout {}", f.agent_id, n0.name));
    f.server.restart();
    f.server
        .out
        .wait_for(&format!("* {} connected", f.agent_id), WAIT);
    let line = f.server.outcome(&id, WAIT);
    assert!(
        line.contains(&format!("finished for {}", n0.name)),
        "{line}"
    );
    assert_eq!(outcomes_of(&f.server.data_dir, &id), 1);
    // Later reconnects do not record it again.
    f.server.restart();
    f.server
        .out
        .wait_for(&format!("* {} connected", f.agent_id), WAIT);
    let id2 = f
        .server
        .send(&format!("send {} status {}", f.agent_id, n0.name));
    f.server.outcome(&id2, WAIT);
    assert_eq!(outcomes_of(&f.server.data_dir, &id), 1);
}

#[test]
fn a_finished_but_unacked_response_is_delivered_after_an_agent_restart() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("dur");
    let script = slow_script(dir.path(), 2);
    let policy = json!({"allow": ["payout"], "payout": {"script": script, "timeout_s": 30}});
    let mut f = Fleet::start(&[&n0], policy, &[]);
    let id = f
        .server
        .send(&format!("send {} payout {}", f.agent_id, n0.name));
    // Once the agent has it, no server while it finishes: the response can
    // only be kept.
    let ledger = f.agent.state_dir.join("ledger.jsonl");
    let deadline = std::time::Instant::now() + WAIT;
    while !std::fs::read_to_string(&ledger)
        .unwrap_or_default()
        .contains(&id)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never reached the agent"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f.server.kill();
    let deadline = std::time::Instant::now() + WAIT;
    while !std::fs::read_to_string(&ledger)
        .unwrap_or_default()
        .contains("finished for")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f.agent.kill();
    f.server.restart();
    f.agent.restart();
    f.server
        .out
        .wait_for(&format!("* {} connected", f.agent_id), WAIT);
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains("finished for"), "{line}");
    assert_eq!(outcomes_of(&f.server.data_dir, &id), 1);
}
