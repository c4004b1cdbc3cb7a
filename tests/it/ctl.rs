//! `warden ctl` against a running server and raw agents: text and `--json`
//! output, every exit code, `--wait` on success, failure and time-out,
//! agent lists and globs, and the audit trail.
use crate::support::*;
use serde_json::{Value, json};
use std::process::Output;

/// A raw agent with one container `n0`: `status` completes, `logs` fails,
/// anything else is never answered.
fn raw_status_agent(server: &ServerProc, id: &str, token: &str) -> std::thread::JoinHandle<()> {
    raw_agent(server, id, token, &["status", "logs"], |data| {
        match data["command"].as_str() {
            Some("status") => Some(json!({"id": data["id"], "status": "completed",
                "result": "n0 running", "timestamp": 1})),
            Some("logs") => Some(json!({"id": data["id"], "status": "failed",
                "code": "unavailable", "error": "docker is not reachable", "timestamp": 1})),
            _ => None,
        }
    })
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ctl_round_trips_with_text_json_every_exit_code_and_wait() {
    let dir = TempDir::new("ctl");
    let data_dir = dir.join("server");
    let ids = [unique("g-a"), unique("g-b")];
    let tokens: Vec<String> = ids.iter().map(|id| token_add(&data_dir, id)).collect();
    let mut server = ServerProc::start(&data_dir, &[]);
    let _agents: Vec<_> = ids
        .iter()
        .zip(&tokens)
        .map(|(id, token)| raw_status_agent(&server, id, token))
        .collect();
    for id in &ids {
        server.out.wait_for(&format!("* {id} connected"), WAIT);
    }

    // A view, as text: what the prompt prints.
    let out = ctl(&data_dir, &["list"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains(&ids[0]) && stdout(&out).contains("AGENT"));

    // send with --wait, text: the outcome is printed and the exit is 0.
    let out = ctl(&data_dir, &["--wait=20", "send", &ids[0], "status", "n0"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("sent status n0") && text.contains("completed"),
        "{text}"
    );

    // The same as one JSON document.
    let out = ctl(
        &data_dir,
        &["--json", "--wait=20", "send", &ids[0], "status", "n0"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["verb"], "send");
    assert_eq!(doc["targeted"], 1);
    assert_eq!(doc["reached"], 1);
    assert_eq!(doc["succeeded"], 1);
    assert_eq!(doc["commands"][0]["agent"], ids[0].as_str());
    assert_eq!(doc["commands"][0]["status"], "completed");
    assert_eq!(doc["commands"][0]["result"], "n0 running");

    // A glob targets both agents; the failure of one command makes it 1.
    let out = ctl(
        &data_dir,
        &["--json", "--wait=20", "send", "g-*", "logs", "n0"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["targeted"], 2, "{doc}");
    assert_eq!(doc["failed"], 2, "{doc}");
    assert_eq!(doc["commands"][1]["code"], "unavailable", "{doc}");

    // A comma list naming an agent that is not connected: refused, 1.
    let list = format!("{},nobody", ids[1]);
    let out = ctl(&data_dir, &["--wait=20", "send", &list, "status", "n0"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).contains("nobody is not connected"),
        "{}",
        stdout(&out)
    );

    // Without --wait the command is only sent: 0.
    let out = ctl(&data_dir, &["send", &ids[1], "status", "n0"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("sent status n0"));

    // An unknown target is refused at the server: 1.
    let out = ctl(&data_dir, &["send", &ids[1], "status", "zz"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // --wait runs out: 3 (the agent never answers `restart`).
    let out = ctl(&data_dir, &["--wait=1", "send", &ids[1], "restart", "n0"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(stdout(&out).contains("timed out"), "{}", stdout(&out));

    // A broadcast that changes nodes must name its target (issue 10): each
    // agent's only container would be every validator of the fleet at once.
    let out = ctl(&data_dir, &["--yes", "broadcast", "stop"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).contains("needs a target"), "{}", stdout(&out));

    // Usage errors and `quit`: 2, and the server keeps running.
    assert_eq!(ctl(&data_dir, &["frobnicate"]).status.code(), Some(2));
    let out = ctl(&data_dir, &["quit"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(ctl(&data_dir, &["list"]).status.code(), Some(0));

    // No server on the socket: 2.
    let elsewhere = dir.join("nothing-here");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let out = ctl(&elsewhere, &["list"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no server answers"));

    // Every line is audited with the peer's uid; commands say they came by ctl.
    let audit = std::fs::read_to_string(data_dir.join("audit.jsonl")).unwrap();
    // The test runs as the data dir's owner, like the server it started.
    let uid = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&data_dir).unwrap().uid()
    };
    let ctl_lines: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["action"] == "ctl")
        .collect();
    assert!(ctl_lines.len() >= 10, "{audit}");
    assert!(
        ctl_lines
            .iter()
            .all(|v| v["by"] == "ctl" && v["uid"] == uid)
    );
    assert!(
        audit
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["action"] == "command" && v["by"] == "ctl"),
        "{audit}"
    );

    // A clean stop removes the socket.
    let socket = data_dir.join("control.sock");
    assert!(socket.exists());
    server.type_line("quit");
    let _ = server.child.wait();
    assert!(!socket.exists(), "the socket outlived a clean exit");
}
