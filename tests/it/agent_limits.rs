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
