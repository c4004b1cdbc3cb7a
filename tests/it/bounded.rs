//! What the server keeps of a result is bounded (issue 10): an agent that
//! answers with 600 KB of output gets it stored cut to 64 KiB, with a marker
//! and the full length.
use crate::support::*;
use serde_json::{Value, json};
use tungstenite::Message;

#[test]
fn a_huge_result_is_stored_cut_with_its_full_length() {
    let dir = TempDir::new("server-safety-bounded");
    let data_dir = dir.join("server");
    let id = unique("big");
    let token = token_add(&data_dir, &id);
    let mut server = ServerProc::start(&data_dir, &[]);
    let mut ws = upgrade(&server.url(), Some(&token)).unwrap();
    send(
        &mut ws,
        json!({"type": "hello", "data": {"agent_id": id, "host_name": "h", "version": "t",
            "protocol": 1, "containers": ["n0"], "commands": ["status"]}}),
    );
    assert_eq!(recv_skip_pings(&mut ws)["type"], "welcome");
    server.out.wait_for(&format!("* {id} connected"), WAIT);
    let command_id = server.send(&format!("send {id} status n0"));
    let big = "x".repeat(600_000);
    let frame = json!({"type": "command_response", "data": {"id": command_id,
        "status": "completed", "result": {"stdout": big, "stderr": "", "exit_code": 0},
        "timestamp": 1}});
    ws.send(Message::text(frame.to_string())).unwrap();
    server.outcome(&command_id, WAIT);
    let history = std::fs::read_to_string(data_dir.join("commands.jsonl")).unwrap();
    let line = history
        .lines()
        .rfind(|l| l.contains(&command_id) && l.contains("outcome"))
        .expect("an outcome line");
    assert!(line.len() <= 70 * 1024, "{} bytes", line.len());
    let record: Value = serde_json::from_str(line).unwrap();
    let stdout = record.to_string();
    assert!(
        stdout.contains("cut by the server: 600000 bytes in all"),
        "{}",
        &stdout[..200]
    );
    drop(ws);
}
