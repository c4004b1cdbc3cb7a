//! No secret in anything warden writes: run a fleet through its paces, then
//! search every file and stream it produced for the agent's token.
use crate::support::*;
use serde_json::json;
use std::path::Path;

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            files_under(&path, out);
        } else if kind.is_file() {
            // Not the control socket: it holds nothing.
            out.push(path);
        }
    }
}

#[test]
fn the_token_never_appears_in_logs_history_errors_or_help() {
    let n0 = Node::start("3node0");
    let mut f = Fleet::start(
        &[&n0],
        json!({"allow": ["status", "stop", "start", "logs"]}),
        &[],
    );
    let token = std::fs::read_to_string(f.dir.join(&format!("{}.token", f.agent_id))).unwrap();
    let a = f.agent_id.clone();
    for line in [
        format!("send {a} status {}", n0.name),
        format!("send {a} exec {} cat /etc/passwd", n0.name),
        format!("send {a} logs {} 10", n0.name),
    ] {
        let id = f.server.send(&line);
        f.server.outcome(&id, WAIT);
    }
    // A refused connection with a wrong token, and a reconnect.
    let bad = TempDir::new("secrets-bad");
    let config = config_for(&[&n0.name], json!({}));
    let wrong = AgentProc::start(
        bad.path(),
        &f.server.url(),
        &a,
        "not-the-token",
        &config,
        &[],
    );
    let deadline = std::time::Instant::now() + WAIT;
    while !wrong.log().contains("401") {
        assert!(std::time::Instant::now() < deadline, "{}", wrong.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f.server.restart();
    f.server.out.wait_for(&format!("* {a} connected"), WAIT);
    f.server.type_line("history");
    f.server.out.wait_for("ISSUED", WAIT);

    let mut texts: Vec<(String, String)> = vec![
        ("server stdout".into(), f.server.out.seen.join("\n")),
        ("server stderr".into(), f.server.stderr()),
        ("agent log".into(), f.agent.log()),
        ("wrong agent log".into(), wrong.log()),
    ];
    for args in [
        &["--help"][..],
        &["help", "server"],
        &["help", "agent"],
        &["help", "token"],
    ] {
        let out = warden().args(args).output().unwrap();
        texts.push((
            format!("warden {args:?}"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
    }
    let mut files = Vec::new();
    files_under(&f.server.data_dir, &mut files);
    files_under(&f.agent.state_dir, &mut files);
    assert!(files.len() >= 6, "{files:?}");
    for file in files {
        texts.push((
            file.display().to_string(),
            String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned(),
        ));
    }
    let token = token.trim();
    assert_eq!(token.len(), 64);
    for (name, text) in &texts {
        assert!(!text.contains(token), "the token appears in {name}");
    }
}
