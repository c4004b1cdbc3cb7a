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
    // The script first builds the demo's chain state into both nodes (several docker
    // calls each): slower than WAIT on a loaded machine.
    out.wait_for("Try, at the prompt:", WAIT * 3);
    out.wait_for("* local connected", WAIT);
    use std::io::Write;
    writeln!(stdin, "send local status all").unwrap();
    out.wait_until(|l| l.starts_with("NAME"), WAIT, "status table");
    for n in &nodes {
        assert!(out.wait_for(n, WAIT).contains("running"));
    }
    writeln!(stdin, "send local logs {} 20", nodes[0]).unwrap();
    out.wait_for("Role: AUTHORITY", WAIT);

    // The tour's headline commands, each answering for real.
    let stash = warden::chain::ss58::encode(&warden::chain::AccountId32([0xA0; 32]), 42).unwrap();
    // nodes: era 100, two unclaimed eras (the oldest with a day left), the validator,
    // the chain's keys in the keystore. The first summary comes within ~10 s.
    let deadline = Instant::now() + WAIT * 2;
    let row = loop {
        writeln!(stdin, "nodes").unwrap();
        let seen = out.drain_until(Duration::from_millis(500), |l| {
            l.contains(&nodes[0]) && l.contains(&stash)
        });
        if let Some(row) = seen {
            break row;
        }
        assert!(Instant::now() < deadline, "nodes never showed {stash}");
    };
    for part in [" 100 ", "2 (oldest 1d)", " ok "] {
        assert!(row.contains(part), "{part}: {row}");
    }
    writeln!(stdin, "send local find_validator {}", nodes[0]).unwrap();
    out.wait_until(
        |l| l.contains(r#""validator_account""#) && l.contains(&stash),
        WAIT,
        "find_validator's validator",
    );
    writeln!(stdin, "send local rotate_keys {}", nodes[0]).unwrap();
    out.wait_until(
        |l| l.contains("] rotate_keys ") && l.contains("completed"),
        WAIT,
        "rotate_keys",
    );
    writeln!(stdin, "send local check_keys {}", nodes[0]).unwrap();
    out.wait_for("all 3 keys are in", WAIT);
    writeln!(stdin, "send local backup_keys {}", nodes[0]).unwrap();
    out.wait_until(
        |l| l.contains("] backup_keys ") && l.contains("completed"),
        Duration::from_secs(60),
        "backup_keys",
    );
    writeln!(stdin, "backups").unwrap();
    out.wait_until(
        |l| l.starts_with("local") && l.contains(&nodes[0]),
        WAIT,
        "backups row",
    );
    writeln!(stdin, "keys").unwrap();
    out.wait_until(
        |l| l.contains("local") && l.contains(&nodes[0]),
        WAIT,
        "keys row",
    );
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

/// The public key scripts/up inserts into demo node `node` for key type number
/// `key_type` (1 gran, 2 babe, 3 imon): 32 bytes of `0x<node><key_type>`.
fn demo_key(node: u8, key_type: u8) -> [u8; 32] {
    [node * 16 + key_type; 32]
}

/// scripts/demo-state/<node>.json: the chain state scripts/up gives each demo node, made
/// with warden's chain module (checked against substrate-interface vectors): validator
/// stash `0xA0+n…` whose registered, queued and next keys are the keys scripts/up inserts,
/// active in era 100, with eras 16 and 99 unclaimed. Regenerate with
/// `WARDEN_WRITE_DEMO_STATE=1 cargo test --test it readme::demo_state`.
#[test]
fn demo_state_files_are_current() {
    use warden::chain::{AccountId32, SessionKeys};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo-state");
    for node in 0..2u8 {
        let keys = SessionKeys {
            gran: demo_key(node, 1),
            babe: demo_key(node, 2),
            imon: demo_key(node, 3),
        };
        let stash = AccountId32([0xA0 + node; 32]);
        let state = crate::chainkeys::staking_state(stash, &keys, &keys, &keys);
        let text = format!(
            "{}\n",
            serde_json::to_string_pretty(&state.control_json()).unwrap()
        );
        let path = dir.join(format!("3node{node}.json"));
        if std::env::var_os("WARDEN_WRITE_DEMO_STATE").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default(),
            text,
            "{} is stale: WARDEN_WRITE_DEMO_STATE=1 cargo test --test it readme::demo_state",
            path.display()
        );
    }
}
