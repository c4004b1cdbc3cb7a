//! The README's first command, as an operator would use it.
use crate::support::*;
use std::os::unix::process::CommandExt;
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
        // Its own process group: on failure the script, its server and its
        // agent all go.
        .process_group(0)
        .spawn()
        .unwrap();
    let nodes = [format!("3node0{suffix}"), format!("3node1{suffix}")];
    // On any failure below, nothing is left running or behind.
    struct Cleanup(Vec<String>, std::process::Child);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let group = format!("-{}", self.1.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = self.1.wait();
            for name in &self.0 {
                let _ = docker(&["rm", "-f", name]);
            }
        }
    }
    let mut stdin = child.stdin.take().unwrap();
    let mut out = Lines::spawn("scripts/up", child.stdout.take().unwrap());
    let mut guard = Cleanup(nodes.to_vec(), child);
    out.wait_for("Try, at the prompt:", WAIT);
    out.wait_for("* local connected", WAIT);
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
        if let Some(status) = guard.1.try_wait().unwrap() {
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
