//! Test harness: the real `warden` binary as server and agent processes,
//! real test-node containers under the real Docker Engine, raw WebSocket
//! peers. Every name, port and folder is unique per test; every wait has a
//! deadline and says what it was waiting for when it gives up.
//!
//! - `proc`: the server and agent processes, their output, a connected `Fleet`.
//! - `node`: test-node containers (`Node`), `docker`, the node's RPC by hand.
//! - `chain`: on-chain storage fixtures for a node's control file (`ChainState`).
//! - `ws`: raw WebSocket peers, a test playing the agent or the server.
#![allow(dead_code)]

mod chain;
mod node;
mod proc;
mod ws;

pub use chain::*;
pub use node::*;
pub use proc::*;
pub use ws::*;

use serde_json::{Value, json};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

pub fn image() -> String {
    std::env::var("WARDEN_TEST_IMAGE").unwrap_or_else(|_| "warden-testnode:latest".into())
}

/// A name no other test (or concurrent test run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{n}-{:04x}", std::process::id(), nanos & 0xffff)
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(&format!("warden-it-{prefix}")));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn warden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warden"))
}

/// `warden token VERB AGENT_ID --data-dir DATA_DIR`, which must succeed;
/// its stdout.
fn token(verb: &str, data_dir: &Path, agent_id: &str) -> String {
    let out = warden()
        .args(["token", verb, agent_id, "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "token {verb} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn token_add(data_dir: &Path, agent_id: &str) -> String {
    let text = token("add", data_dir, agent_id);
    assert_eq!(
        text.lines().count(),
        1,
        "token add prints the token alone on one line: {text:?}"
    );
    text.trim().to_string()
}

pub fn token_remove(data_dir: &Path, agent_id: &str) {
    token("remove", data_dir, agent_id);
}

/// A key made the way an operator makes one (`warden operator-key new --out
/// DIR/NAME.key`): its file and the public key printed.
pub fn operator_key_file(dir: &TempDir, name: &str) -> (PathBuf, String) {
    let file = dir.join(&format!("{name}.key"));
    let out = warden()
        .args(["operator-key", "new", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    (file, public)
}

/// `warden ctl --data-dir DATA_DIR ARGS…`, run to the end.
pub fn ctl(data_dir: &Path, args: &[&str]) -> Output {
    warden()
        .arg("ctl")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap()
}

/// A policy that manages exactly `names`, with `allow` and optional extras.
pub fn config_for(names: &[&str], policy_extra: Value) -> Value {
    let mut policy = serde_json::json!({ "containers": names });
    if let Value::Object(extra) = policy_extra {
        for (k, v) in extra {
            policy[k] = v;
        }
    }
    serde_json::json!({ "stats_interval_s": 1, "docker": { "stop_grace_s": 5 }, "policy": policy })
}

/// Wait until something connects to `addr` and is accepted (a TCP probe).
pub fn wait_port(addr: &str) {
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A policy allowing what agents allowed by default before `start`,
/// `restore_keys` and `rotate_keys` left the default: every command but
/// `exec` and `payout`. For tests that start, restore or rotate.
pub fn lifecycle_policy() -> Value {
    json!({"allow": [
        "start", "stop", "restart", "logs", "status", "backup_keys", "restore_keys",
        "rotate_keys", "check_keys", "has_session_keys", "has_key", "find_validator",
    ]})
}

/// The official image's shape (`gluwa/creditcoin3`), built by scripts/build-test-image.
pub fn official_image() -> String {
    std::env::var("WARDEN_TEST_OFFICIAL_IMAGE")
        .unwrap_or_else(|_| "warden-testnode-official:latest".into())
}

/// Every command of the catalog: tests that need them say so rather than rely on the
/// default policy.
pub fn allow_all() -> Value {
    serde_json::json!({"allow": [
        "start", "stop", "restart", "logs", "status", "rotate_keys", "check_keys",
        "has_session_keys", "has_key", "find_validator", "backup_keys", "restore_keys"
    ]})
}
