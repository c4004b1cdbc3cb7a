//! Operator safety for broadcasts that change nodes (issue 10): the typed
//! confirmation at the prompt, `--yes` over ctl, and `batch=N` rolling N
//! agents at a time and stopping at the first failure. Raw agents, each
//! with one container `n0`; `stop` completes except on the agent told to fail.
use crate::support::*;
use serde_json::{Value, json};

/// A raw agent whose `stop` (and `status`) completes, or fails if `fail`.
fn raw_stop_agent(
    server: &ServerProc,
    id: &str,
    token: &str,
    fail: bool,
) -> std::thread::JoinHandle<()> {
    raw_agent(server, id, token, &["status", "stop"], move |data| {
        Some(if fail {
            json!({"id": data["id"], "status": "failed", "code": "unavailable",
                "error": "docker is not reachable", "timestamp": 1})
        } else {
            json!({"id": data["id"], "status": "completed", "result": "ok", "timestamp": 1})
        })
    })
}

fn sent_stops(server: &ServerProc) -> usize {
    server
        .out
        .seen
        .iter()
        .filter(|l| l.contains("] sent stop"))
        .count()
}

/// Five agents (sorted a..e); `c` fails its commands.
fn fleet(dir: &TempDir) -> (ServerProc, Vec<String>, Vec<std::thread::JoinHandle<()>>) {
    let data_dir = dir.join("server");
    let tag = unique("ro");
    let ids: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|l| format!("{tag}-{l}"))
        .collect();
    let tokens: Vec<String> = ids.iter().map(|id| token_add(&data_dir, id)).collect();
    let mut server = ServerProc::start(&data_dir, &[]);
    let agents = ids
        .iter()
        .zip(&tokens)
        .map(|(id, token)| raw_stop_agent(&server, id, token, id.ends_with("-c")))
        .collect();
    for id in &ids {
        server.out.wait_for(&format!("* {id} connected"), WAIT);
    }
    (server, ids, agents)
}

#[test]
fn a_mutating_broadcast_waits_for_yes_and_anything_else_cancels_it() {
    let dir = TempDir::new("server-safety-confirm");
    let (mut server, ids, _agents) = fleet(&dir);
    server.type_line("broadcast stop n0");
    let asked = server.out.wait_for("Type yes to proceed", WAIT);
    assert!(
        asked.contains("broadcast stop n0 reaches 5 agents"),
        "{asked}"
    );
    assert!(
        asked.contains(&ids[0]) && asked.contains(&ids[4]),
        "{asked}"
    );
    server.type_line("y");
    server.out.wait_for("broadcast stop cancelled", WAIT);
    // A view answers at once: nothing was sent in the meantime.
    server.type_line("list");
    server.out.wait_for("AGENT", WAIT);
    assert_eq!(sent_stops(&server), 0);
    let commands = std::fs::read_to_string(dir.join("server/commands.jsonl")).unwrap_or_default();
    assert!(!commands.contains("\"stop\""), "{commands}");

    // A read-only broadcast needs no confirmation.
    server.type_line("broadcast status n0");
    server
        .out
        .wait_until(|l| l.contains("] sent status"), WAIT, "status sent");

    // yes: rolled two at a time, stopped at c's failure; e never sent.
    server.type_line("broadcast stop n0 batch=2");
    let asked = server.out.wait_for("Type yes to proceed", WAIT);
    assert!(asked.contains("2 at a time"), "{asked}");
    server.type_line("yes");
    let stopped = server.out.wait_for("rollout broadcast stop stopped", WAIT);
    assert!(stopped.contains(&format!("{} failed", ids[2])), "{stopped}");
    // a and b ran; d (c's batch mate) may have completed before c failed.
    let ran = stopped
        .split("Ran on: ")
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    assert!(ran.contains(&ids[0]) && ran.contains(&ids[1]), "{stopped}");
    assert!(
        !ran.contains(&ids[2]) && !ran.contains(&ids[4]),
        "{stopped}"
    );
    assert!(
        stopped.contains(&format!("Not sent: {}", ids[4])),
        "{stopped}"
    );
    assert_eq!(sent_stops(&server), 4, "a, b, then c, d");
    let audit = std::fs::read_to_string(dir.join("server/audit.jsonl")).unwrap();
    assert!(audit.contains("\"action\":\"confirm\""), "{audit}");
}

#[test]
fn ctl_needs_yes_for_a_mutating_broadcast() {
    let dir = TempDir::new("server-safety-yes");
    let (server, _ids, _agents) = fleet(&dir);
    let data_dir = dir.join("server");
    let out = ctl(&data_dir, &["broadcast", "stop", "n0"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("add --yes"), "{text}");
    let commands = std::fs::read_to_string(data_dir.join("commands.jsonl")).unwrap_or_default();
    assert!(!commands.contains("\"stop\""), "{commands}");
    let out = ctl(
        &data_dir,
        &["--yes", "--json", "--wait=20", "broadcast", "stop", "n0"],
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["reached"], 5, "{doc}");
    assert_eq!(doc["failed"], 1, "{doc}");
    assert_eq!(out.status.code(), Some(1), "c failed: {out:?}");
    drop(server);
}
