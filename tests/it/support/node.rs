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
        Self::run(prefix, &[], &image(), node_args)
    }

    /// `docker run -d` of `image` with `docker_args` before it and `node_args`
    /// after it, named after `prefix` and labelled for cleanup.
    fn run(prefix: &str, docker_args: &[&str], image: &str, node_args: &[&str]) -> Node {
        let name = unique(prefix);
        let mut args = vec!["run", "-d", "--name", &name, "--label", "warden-test=1"];
        args.extend_from_slice(docker_args);
        args.push(image);
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
        Self::run(prefix, &[], image, node_args)
    }

    /// A validator with host networking on a free RPC port (no Prometheus), so
    /// the agent reads its storage over plain HTTP: one summary reads ~100
    /// storage items per node, and through `docker exec curl` (bridge
    /// networking) that alone takes ~10 s. Returns the node and its RPC port.
    pub fn start_on_host(prefix: &str) -> (Node, u16) {
        let rpc_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let port = rpc_port.to_string();
        let node_args = ["--validator", "--rpc-port", &port, "--no-prometheus"];
        let node = Self::run(prefix, &["--network", "host"], &image(), &node_args);
        (node, rpc_port)
    }

    /// The file names in the test image's keystore.
    pub fn keystore_files(&self) -> Vec<String> {
        let out = docker(&["exec", &self.name, "ls", TESTNODE_KEYSTORE]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Copies this node's keystore files into `other`'s keystore (through
    /// `dir` on the host), as a careless restore or a cold standby would.
    pub fn copy_keystore_to(&self, other: &Node, dir: &TempDir) {
        let copy = dir.join(&unique("keystore"));
        let from = format!("{}:{TESTNODE_KEYSTORE}", self.name);
        let out = docker(&["cp", &from, &copy.display().to_string()]);
        assert!(out.status.success(), "{out:?}");
        let into = format!("{}:{TESTNODE_KEYSTORE}", other.name);
        let out = docker(&["cp", &format!("{}/.", copy.display()), &into]);
        assert!(out.status.success(), "{out:?}");
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

/// [`Node::start_on_host`]'s node alone.
pub fn host_node(prefix: &str) -> Node {
    Node::start_on_host(prefix).0
}

/// The test image's keystore, inside the container.
pub const TESTNODE_KEYSTORE: &str = "/root/data/chains/creditcoin3/keystore";

/// The node's RPC port inside a bridge-networked container.
const BRIDGE_RPC_PORT: u16 = 9944;

/// Calls `method` on the node's RPC at `localhost:port` as seen from inside
/// the container (`docker exec curl`), not through warden, until `done`
/// takes the reply; bounded by [`WAIT`].
fn rpc_by_hand<T>(node: &Node, port: u16, method: &str, done: impl Fn(&Value) -> Option<T>) -> T {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method}).to_string();
    let url = format!("http://localhost:{port}/");
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
            &body,
            &url,
        ]);
        let reply: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if let Some(done) = reply.as_ref().and_then(&done) {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "{method} on {}: {reply:?} {}",
            node.name,
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `author_rotateKeys` straight to the node's RPC on `port`, not through
/// warden (as an operator following the original guide does): warden does
/// not know these keys.
pub fn rotate_by_hand(node: &Node, port: u16) -> warden::chain::SessionKeys {
    rpc_by_hand(node, port, "author_rotateKeys", |reply| {
        let keys = reply["result"].as_str()?;
        Some(warden::chain::split_session_keys(keys).unwrap())
    })
}

/// [`rotate_by_hand`] on a bridge-networked node.
pub fn rotate_by_hand_in(node: &Node) -> warden::chain::SessionKeys {
    rotate_by_hand(node, BRIDGE_RPC_PORT)
}

/// Waits until a bridge-networked node's RPC answers on its loopback (after a start
/// or a restart), bounded by [`WAIT`].
pub fn wait_rpc_in(node: &Node) {
    rpc_by_hand(node, BRIDGE_RPC_PORT, "system_health", |reply| {
        reply.get("result").map(|_| ())
    })
}
