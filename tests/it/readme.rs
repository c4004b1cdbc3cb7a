//! The README's first command, as an operator would use it.
use crate::support::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn scripts_up_brings_up_a_fleet_and_leaves_the_operator_at_the_prompt() {
    let suffix = unique("-up");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("bash")
        .arg("scripts/up")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("WARDEN_UP_SUFFIX", &suffix)
        .env("WARDEN_UP_PORT", port.to_string())
        .env("WARDEN_BIN", env!("CARGO_BIN_EXE_warden"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = Lines::spawn("scripts/up", child.stdout.take().unwrap());
    out.wait_for("Try, at the prompt:", WAIT);
    out.wait_for("* local connected", WAIT);
    let nodes = [format!("3node0{suffix}"), format!("3node1{suffix}")];
    use std::io::Write;
    writeln!(stdin, "send local status all").unwrap();
    out.wait_until(|l| l.starts_with("NAME"), WAIT, "status table");
    for n in &nodes {
        assert!(out.wait_for(n, WAIT).contains("running"));
    }
    writeln!(stdin, "send local logs {} 20", nodes[0]).unwrap();
    out.wait_for("Role: AUTHORITY", WAIT);
    writeln!(stdin, "quit").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "scripts/up did not exit after quit"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    for n in &nodes {
        assert!(
            !docker(&["inspect", n]).status.success(),
            "{n} was left behind"
        );
    }
}
