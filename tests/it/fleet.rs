//! The whole loop: operator → server → agent → Docker → agent → server,
//! against real test-node containers, with the effect checked in Docker.
use crate::support::*;
use serde_json::json;

#[test]
fn stop_start_restart_status_and_logs_round_trip_through_docker() {
    let n0 = Node::start("3node0");
    let n1 = Node::start("3node1");
    let mut f = Fleet::start(&[&n0, &n1], lifecycle_policy(), &[]);
    let a = f.agent_id.clone();

    let id = f.server.send(&format!("send {a} stop {}", n0.name));
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains("completed"), "{line}");
    assert_eq!(n0.state(), "exited");
    assert_eq!(n1.state(), "running", "only the target stops");

    f.wait_stats(&n0.name);
    let id = f.server.send(&format!("send {a} start {}", n0.name));
    assert!(f.server.outcome(&id, WAIT).contains("completed"));
    assert_eq!(n0.state(), "running");

    let before = n1.started_at();
    let id = f.server.send(&format!("send {a} restart {}", n1.name));
    assert!(f.server.outcome(&id, WAIT).contains("restarted"));
    assert_eq!(n1.state(), "running");
    assert_ne!(n1.started_at(), before, "restart really restarted");

    let id = f.server.send(&format!("send {a} status all"));
    f.server.outcome(&id, WAIT);
    f.server.out.wait_until(
        |l| l.starts_with("NAME") && l.contains("STATE"),
        WAIT,
        "status table header",
    );
    for n in [&n0, &n1] {
        let row = f.server.out.wait_for(&n.name, WAIT);
        assert!(row.contains("running"), "{row}");
    }

    let id = f.server.send(&format!("send {a} logs {} 500", n0.name));
    f.server.outcome(&id, WAIT);
    f.server.out.wait_for("Role: AUTHORITY", WAIT);

    let id = f.server.send(&format!("send {a} stop all"));
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains(&n0.name) && line.contains(&n1.name), "{line}");
    assert_eq!(
        (n0.state().as_str(), n1.state().as_str()),
        ("exited", "exited")
    );
}

#[test]
fn exec_runs_only_what_the_policy_allows() {
    let n0 = Node::start("3node0");
    let policy = json!({
        "allow": ["status", "exec"],
        "exec": {"programs": [
            {"program": "ls", "args": ["/root/data/*"], "unsafe_any_args": true},
            {"program": "cat", "unsafe_any_args": true},
        ]}
    });
    let mut f = Fleet::start(&[&n0], policy, &[]);
    let a = f.agent_id.clone();

    let id = f
        .server
        .send(&format!("send {a} exec {} ls /root/data/chains", n0.name));
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains("completed"), "{line}");
    f.server.out.wait_for("exit code 0", WAIT);
    f.server.out.wait_for("creditcoin3", WAIT);

    let id = f.server.send(&format!(
        "send {a} exec {} sh -c 'touch /tmp/pwned'",
        n0.name
    ));
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains("failed (not_permitted)"), "{line}");
    let check = docker(&["exec", &n0.name, "ls", "/tmp/pwned"]);
    assert!(!check.status.success(), "a refused exec changed nothing");

    let id = f.server.send(&format!("send {a} exec {} ls /etc", n0.name));
    assert!(
        f.server
            .outcome(&id, WAIT)
            .contains("failed (not_permitted)")
    );

    // Not allowed at all: stop is not in this policy's allow list.
    let id = f.server.send(&format!("send {a} stop {}", n0.name));
    assert!(
        f.server
            .outcome(&id, WAIT)
            .contains("failed (not_permitted)")
    );
    assert_eq!(n0.state(), "running");

    let audit = std::fs::read_to_string(f.agent.state_dir.join("audit.jsonl")).unwrap();
    assert_eq!(
        audit.matches("\"not_permitted\"").count(),
        3,
        "every refusal is audited:\n{audit}"
    );
}

#[test]
fn exec_is_refused_by_default() {
    let n0 = Node::start("3node0");
    let mut f = Fleet::start(&[&n0], lifecycle_policy(), &[]);
    let id = f
        .server
        .send(&format!("send {} exec {} ls /", f.agent_id, n0.name));
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains("failed (not_permitted)"), "{line}");
}

#[test]
fn payout_runs_the_configured_script_with_a_timeout() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("payout");
    let script = dir.join("payout.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"paying out for $1\"\n").unwrap();
    let slow = dir.join("slow.sh");
    std::fs::write(&slow, "#!/bin/sh\nsleep 30\n").unwrap();
    for p in [&script, &slow] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let policy = json!({"allow": ["payout"], "payout": {"script": script.display().to_string(), "timeout_s": 5}});
    let mut f = Fleet::start(&[&n0], policy, &[]);
    let id = f
        .server
        .send(&format!("send {} payout {}", f.agent_id, n0.name));
    let line = f.server.outcome(&id, WAIT);
    assert!(
        line.contains(&format!("paying out for {}", n0.name)),
        "{line}"
    );

    let n1 = Node::start("3node1");
    let policy = json!({"allow": ["payout"], "payout": {"script": slow.display().to_string(), "timeout_s": 1}});
    let mut f = Fleet::start(&[&n1], policy, &[]);
    let id = f
        .server
        .send(&format!("send {} payout {}", f.agent_id, n1.name));
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains("failed (timeout)"), "{line}");
}

#[test]
fn mutating_commands_on_one_container_never_overlap() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("busy");
    let slow = dir.join("slow.sh");
    std::fs::write(&slow, "#!/bin/sh\nsleep 3\necho done\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let policy = json!({
        "allow": ["payout", "stop", "status"],
        "payout": {"script": slow.display().to_string(), "timeout_s": 20}
    });
    let mut f = Fleet::start(&[&n0], policy, &[]);
    let a = f.agent_id.clone();
    let slow_id = f.server.send(&format!("send {a} payout {}", n0.name));
    let stop_id = f.server.send(&format!("send {a} stop {}", n0.name));
    let status_id = f.server.send(&format!("send {a} status {}", n0.name));
    let line = f.server.outcome(&stop_id, WAIT);
    assert!(line.contains("failed (busy)"), "{line}");
    assert_eq!(n0.state(), "running");
    // Read-only commands run alongside.
    let line = f.server.outcome(&status_id, WAIT);
    assert!(line.contains("completed"), "{line}");
    let line = f.server.outcome(&slow_id, WAIT);
    assert!(line.contains("done"), "{line}");
}

#[test]
fn commands_to_unmanaged_or_missing_containers_fail_cleanly() {
    let n0 = Node::start("3node0");
    let outsider = Node::start("outsider");
    let mut f = Fleet::start(&[&n0], lifecycle_policy(), &[]);
    let a = f.agent_id.clone();
    // The server refuses a target the agent did not report.
    f.server
        .type_line(&format!("send {a} stop {}", outsider.name));
    let reply = f
        .server
        .out
        .wait_until(|l| l.starts_with("error"), WAIT, "refusal");
    assert!(reply.contains("unknown_target"), "{reply}");
    assert_eq!(outsider.state(), "running");
    // The agent manages a name pattern whose container was removed.
    let gone = n0.name.clone();
    drop(n0);
    let id = f.server.send(&format!("send {a} stop {gone}"));
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains("failed (unknown_target)"), "{line}");
}

#[test]
fn huge_output_is_truncated_with_a_marker_and_still_delivered() {
    let n0 = Node::start("3node0");
    let policy = json!({"allow": ["exec", "status"], "exec": {"programs": [{"program": "seq", "args": ["1", "400000"]}]}});
    let mut f = Fleet::start(&[&n0], policy, &[]);
    let id = f.server.send(&format!(
        "send {} exec {} seq 1 400000",
        f.agent_id, n0.name
    ));
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains("completed"), "{line}");
    f.server.out.wait_for("[truncated by the agent:", WAIT);
    // The connection survived: the next command goes through.
    let id = f
        .server
        .send(&format!("send {} status {}", f.agent_id, n0.name));
    assert!(f.server.outcome(&id, WAIT).contains("completed"));
    assert!(
        !f.server.out.seen.iter().any(|l| l.contains("disconnected")),
        "{:?}",
        f.server.out.seen
    );
}

#[test]
fn all_means_the_containers_the_command_is_allowed_on() {
    let n0 = Node::start("3node0");
    let n1 = Node::start("3node1");
    let policy = json!({"allow": ["status", {"command": "stop", "containers": [n1.name.clone()]}]});
    let mut f = Fleet::start(&[&n0, &n1], policy, &[]);
    let id = f.server.send(&format!("send {} stop all", f.agent_id));
    let line = f.server.outcome(&id, WAIT);
    assert!(
        line.contains("completed") && line.contains(&n1.name) && !line.contains(&n0.name),
        "{line}"
    );
    assert_eq!(
        (n0.state().as_str(), n1.state().as_str()),
        ("running", "exited")
    );
}

#[test]
fn sigterm_stops_server_and_agent_cleanly() {
    let n0 = Node::start("3node0");
    let mut f = Fleet::start(&[&n0], lifecycle_policy(), &[]);
    for pid in [f.agent.child.id(), f.server.child.id()] {
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    }
    let deadline = std::time::Instant::now() + WAIT;
    for child in [&mut f.agent.child, &mut f.server.child] {
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "did not stop on SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert!(status.success(), "{status}");
    }
}

#[test]
fn nodes_shows_the_fleet_and_a_hanging_rpc_is_reported_not_waited_on() {
    let n0 = Node::start("3node0");
    let n1 = Node::start("3node1");
    let mut f = Fleet::start(&[&n0, &n1], lifecycle_policy(), &[]);
    let config_with_short_rpc = f.dir.join(&format!("{}.json", f.agent_id));
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_with_short_rpc).unwrap()).unwrap();
    config["rpc"] = json!({"timeout_s": 2});
    std::fs::write(&config_with_short_rpc, config.to_string()).unwrap();
    f.agent.restart();
    f.server
        .out
        .wait_for(&format!("* {} connected", f.agent_id), WAIT);

    // Wait for a stats report with both nodes' heights.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        f.server.type_line("nodes");
        let header = f.server.out.wait_until(
            |l| l.starts_with("AGENT") || l.starts_with("no node"),
            WAIT,
            "nodes",
        );
        if header.starts_with("AGENT") {
            let rows: Vec<String> = (0..2)
                .map(|_| f.server.out.wait_for(&f.agent_id, WAIT))
                .collect();
            if rows
                .iter()
                .all(|r| r.contains("running") && r.contains("Authority"))
            {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no node heights in `nodes`"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    f.server.type_line("list");
    assert!(
        f.server.out.wait_for(&f.agent_id, WAIT).contains(" ok "),
        "health verdict"
    );

    // n1's RPC now accepts requests and never answers.
    let hang = docker(&[
        "exec",
        &n1.name,
        "sh",
        "-c",
        "echo '{\"hang_rpc\": true}' > /root/data/testnode.json",
    ]);
    assert!(hang.status.success());
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        f.server.type_line("list");
        let row = f.server.out.wait_for(&f.agent_id, WAIT);
        if row.contains(&format!("RPC unreachable: {}", n1.name)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hanging RPC was never reported: {row}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    f.server.type_line(&format!("nodes {}", f.agent_id));
    f.server
        .out
        .wait_until(|l| l.starts_with("AGENT"), WAIT, "nodes header");
    let rows: Vec<String> = (0..2)
        .map(|_| f.server.out.wait_for(&f.agent_id, WAIT))
        .collect();
    let hung = rows.iter().find(|r| r.contains(&n1.name)).unwrap();
    assert!(
        hung.contains("did not answer") || hung.contains("timed out") || hung.contains("timeout"),
        "{hung}"
    );
    // The agent stays responsive.
    let id = f.server.send(&format!("send {} status all", f.agent_id));
    assert!(f.server.outcome(&id, WAIT).contains("completed"));
}
