//! Test-node containers under the real Docker Engine, and their RPC reached
//! by hand (`docker exec curl`), not through warden.
use super::*;
use std::process::Stdio;

/// A test-node container under the real Docker Engine, removed on drop.
pub struct Node {
    pub name: String,
}

pub fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker CLI")
}

impl Node {
    pub fn start(prefix: &str) -> Node {
        Self::start_with(prefix, &["--validator"])
    }

    pub fn start_with(prefix: &str, node_args: &[&str]) -> Node {
        let name = unique(prefix);
        let mut args = vec!["run", "-d", "--name", &name, "--label", "warden-test=1"];
        let image = image();
        args.push(&image);
        args.extend_from_slice(node_args);
        let out = docker(&args);
        assert!(
            out.status.success(),
            "docker run {name} failed: {} (did scripts/build-test-image run?)",
            String::from_utf8_lossy(&out.stderr)
        );
        Node { name }
    }

    pub fn state(&self) -> String {
        let out = docker(&["inspect", "-f", "{{.State.Status}}", &self.name]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn started_at(&self) -> String {
        let out = docker(&["inspect", "-f", "{{.State.StartedAt}}", &self.name]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Wait until Docker reports `state` for this container.
    pub fn wait_state(&self, state: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.state();
            if now == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} is {now:?}, not {state:?}, after {timeout:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

impl Node {
    /// A container of `image` running `node_args`, removed on drop.
    pub fn start_image(prefix: &str, image: &str, node_args: &[&str]) -> Node {
        let name = unique(prefix);
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "warden-test=1",
            image,
        ];
        args.extend_from_slice(node_args);
        let out = docker(&args);
        assert!(
            out.status.success(),
            "docker run {name} failed: {} (did scripts/build-test-image run?)",
            String::from_utf8_lossy(&out.stderr)
        );
        Node { name }
    }

    /// `docker exec` as root (to look at owners and modes), stdout as text.
    pub fn exec_root(&self, argv: &[&str]) -> String {
        let mut args = vec!["exec", "-u", "0", self.name.as_str()];
        args.extend_from_slice(argv);
        let out = docker(&args);
        assert!(
            out.status.success(),
            "docker exec {argv:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `author_rotateKeys` straight to a bridge-networked node (port 9944 on its
/// loopback), not through warden: as an operator following the guide does.
pub fn rotate_by_hand_in(node: &Node) -> warden::chain::SessionKeys {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"author_rotateKeys"}"#;
    let deadline = Instant::now() + WAIT;
    loop {
        let out = docker(&[
            "exec",
            &node.name,
            "curl",
            "-s",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            "http://localhost:9944/",
        ]);
        let reply: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if let Some(keys) = reply.as_ref().and_then(|r| r["result"].as_str()) {
            return warden::chain::split_session_keys(keys).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "author_rotateKeys on {}: {reply:?}",
            node.name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until a bridge-networked node's RPC answers on its loopback (after a start
/// or a restart), bounded by [`WAIT`].
pub fn wait_rpc_in(node: &Node) {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"system_health"}"#;
    let deadline = Instant::now() + WAIT;
    loop {
        let out = docker(&[
            "exec",
            &node.name,
            "curl",
            "-s",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            "http://localhost:9944/",
        ]);
        if String::from_utf8_lossy(&out.stdout).contains("\"result\"") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}'s RPC never answered",
            node.name
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
