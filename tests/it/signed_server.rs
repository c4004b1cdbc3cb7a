//! Signed commands through the real server (issue 10): an agent requiring 2
//! of 3 operator signatures for `stop`; the server signs stdin commands with
//! `--operator-key`, holds a `signatures=2` command until a second operator
//! co-signs with `warden ctl --key FILE approve <id>`, and never relays a
//! signature that does not verify (a signature moved to another target).
use crate::support::*;
use serde_json::json;
use warden::server::control;

/// Type `line`; the id of the command it holds.
fn held(f: &mut Fleet, line: &str) -> String {
    f.server.type_line(line);
    let held = f.server.out.wait_until(
        |l| l.contains("] held: ") || l.starts_with("error"),
        WAIT,
        "held line",
    );
    assert!(
        held.contains("needs 2 operator signature(s), has 1"),
        "{held}"
    );
    command_id(&held)
}

#[test]
fn two_of_three_through_the_server_runs_and_one_untrusted_or_moved_does_not() {
    let n0 = Node::start("server-safety-3node0");
    let n1 = Node::start("server-safety-3node1");
    let dir = TempDir::new("server-safety-signed");
    let (alice, alice_pub) = operator_key_file(&dir, "alice");
    let (bob, bob_pub) = operator_key_file(&dir, "bob");
    let (_carol, carol_pub) = operator_key_file(&dir, "carol");
    let (mallory, _) = operator_key_file(&dir, "mallory");
    let policy = json!({
        "allow": ["stop", "status"],
        "operators": {"alice": alice_pub, "bob": bob_pub, "carol": carol_pub},
        "require_signatures": {"stop": 2},
    });
    let alice_arg = alice.display().to_string();
    let mut f = Fleet::start(&[&n0, &n1], policy, &["--operator-key", &alice_arg]);
    let a = f.agent_id.clone();
    let data_dir = f.server.data_dir.clone();

    // Signed by alice alone (the server's stdin key): the agent refuses.
    let id = f.server.send(&format!("send {a} stop {}", n1.name));
    let line = f.server.outcome(&id, WAIT);
    assert!(
        line.contains("not_permitted") && line.contains("needs 2 operator signature"),
        "{line}"
    );

    // alice and mallory (untrusted): held, co-signed, sent, refused.
    let id = held(&mut f, &format!("send {a} stop {} signatures=2", n1.name));
    let out = ctl(
        &data_dir,
        &["--key", &mallory.display().to_string(), "approve", &id],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains("not_permitted"), "{line}");
    assert_eq!(n1.state(), "running");

    // A signature made for one command does not verify on another (a
    // moved target): the server refuses to relay it.
    let for_n0 = held(&mut f, &format!("send {a} stop {} signatures=2", n0.name));
    let for_n1 = held(&mut f, &format!("send {a} stop {} signatures=2", n1.name));
    let pair = warden::operator_keys::load(&bob).unwrap();
    let ask = |id: &str| control::Request {
        line: format!("approve {id}"),
        json: false,
        wait_s: None,
        yes: false,
        key: Some(bob_pub.clone()),
        signature: None,
    };
    let reply = control::request(&data_dir, &ask(&for_n1)).unwrap();
    assert_eq!(reply.pending.len(), 1, "{reply:?}");
    assert!(reply.pending[0].payload.contains(&n1.name));
    let sig_for_n1 = warden::operator_keys::sign(&pair, reply.pending[0].payload.as_bytes());
    let mut moved = ask(&for_n0);
    moved.signature = Some(sig_for_n1);
    let reply = control::request(&data_dir, &moved).unwrap();
    assert_eq!(reply.exit, 1, "{reply:?}");
    assert!(reply.stdout.contains("does not verify"), "{reply:?}");
    assert_eq!(n0.state(), "running");

    // alice (stdin) and bob (`warden approve`, client-side signing): it runs.
    let out = warden()
        .args(["approve", &for_n0, "--key"])
        .arg(&bob)
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 of 2 signatures; sending"), "{text}");
    let line = f.server.outcome(&for_n0, WAIT);
    assert!(line.contains("completed"), "{line}");
    n0.wait_state("exited", WAIT);
    let audit = std::fs::read_to_string(f.agent.state_dir.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"signed_by\":[\"alice\",\"bob\"]"),
        "{audit}"
    );

    // ctl --key alone signs on the client side: one signature, refused.
    let out = ctl(
        &data_dir,
        &[
            "--key",
            &bob.display().to_string(),
            "--wait=20",
            "send",
            &a,
            "stop",
            &n1.name,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("signed ") && text.contains("not_permitted"),
        "{text}"
    );
    assert_eq!(n1.state(), "running");
}

/// A signed command the agent never answered is sent again when the agent
/// comes back, also after a server restart, with the signatures it was first
/// sent with: they live in the command's record, not in memory.
#[test]
fn a_resend_after_a_server_restart_carries_the_original_signatures() {
    let dir = TempDir::new("server-safety-resend");
    let (alice, _) = operator_key_file(&dir, "alice");
    let data_dir = dir.join("data");
    let alice_arg = alice.display().to_string();
    let mut server = ServerProc::start(&data_dir, &["--operator-key", &alice_arg]);
    let agent = unique("resend");
    let token = token_add(&data_dir, &agent);
    let connect = |server: &ServerProc| {
        let mut ws = upgrade(&server.url(), Some(&token)).unwrap();
        send(
            &mut ws,
            json!({"type": "hello", "data": {"agent_id": agent, "host_name": "h", "version": "t",
                "protocol": 1, "containers": ["n0"], "commands": ["stop"]}}),
        );
        assert_eq!(recv_skip_pings(&mut ws)["type"], "welcome");
        ws
    };
    let next_command = |ws: &mut ClientWs| loop {
        let frame = recv_skip_pings(ws);
        if frame["type"] == "command" {
            return frame["data"].clone();
        }
    };

    let mut ws = connect(&server);
    let id = server.send(&format!("send {agent} stop n0"));
    let first = next_command(&mut ws);
    assert_eq!(first["id"], id.as_str());
    let signatures = first["signatures"].clone();
    assert_eq!(signatures.as_array().map(Vec::len), Some(1), "{first}");

    // No answer; the server is killed and started again on the same data.
    drop(ws);
    server.restart();
    let mut ws = connect(&server);
    let again = next_command(&mut ws);
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["signatures"], signatures, "{again}");
    assert_eq!(again["timestamp"], first["timestamp"]);
}
