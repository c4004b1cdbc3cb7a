//! Test harness: the real `warden` binary as server and agent processes,
//! real test-node containers under the real Docker Engine, raw WebSocket
//! peers. Every name, port and folder is unique per test; every wait has a
//! deadline and says what it was waiting for when it gives up.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
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

pub fn token_add(data_dir: &Path, agent_id: &str) -> String {
    let out = warden()
        .args(["token", "add", agent_id, "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "token add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "token add prints the token alone on one line: {text:?}"
    );
    text.trim().to_string()
}

pub fn token_remove(data_dir: &Path, agent_id: &str) {
    let out = warden()
        .args(["token", "remove", agent_id, "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "token remove failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Lines from a child's stdout, read on their own thread.
pub struct Lines {
    rx: Receiver<String>,
    pub seen: Vec<String>,
    name: String,
}

impl Lines {
    pub fn spawn(name: &str, reader: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
            name: name.into(),
        }
    }

    /// The next line containing `needle`; lines before it are consumed.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_until(|l| l.contains(needle), timeout, needle)
    }

    pub fn wait_until(
        &mut self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
        what: &str,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: no line with {what:?} within {timeout:?}; output so far:\n{}",
                        self.name,
                        self.seen.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "{}: output ended before a line with {what:?}; output:\n{}",
                        self.name,
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// The first line within `window` that `pred` accepts, if any (for output typed
    /// again and again until it shows something).
    pub fn drain_until(&mut self, window: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let end = Instant::now() + window;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Everything that arrives within `window` (for asserting absence).
    pub fn drain_for(&mut self, window: Duration) -> Vec<String> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        while let Ok(line) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line.clone());
            got.push(line);
        }
        got
    }
}

pub struct ServerProc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    pub out: Lines,
    pub addr: String,
    pub data_dir: PathBuf,
    pub stderr_path: PathBuf,
    extra: Vec<String>,
}

impl ServerProc {
    pub fn start(data_dir: &Path, extra: &[&str]) -> ServerProc {
        Self::start_on(data_dir, "127.0.0.1:0", extra)
    }

    pub fn start_on(data_dir: &Path, listen: &str, extra: &[&str]) -> ServerProc {
        Self::start_with_env(data_dir, listen, extra, &[])
    }

    pub fn start_with_env(
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProc {
        let stderr_path = data_dir.with_extension(format!("server-{}.log", unique("e")));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = warden()
            .args(["server", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let mut out = Lines::spawn("server", child.stdout.take().unwrap());
        let addr = out.wait_until(|_| true, WAIT, "the bound address");
        assert!(
            addr.parse::<std::net::SocketAddr>().is_ok(),
            "first line is the bound address alone: {addr:?}"
        );
        ServerProc {
            child,
            stdin,
            out,
            addr,
            data_dir: data_dir.to_path_buf(),
            stderr_path,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/agent", self.addr)
    }

    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("server stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Type a command and return its id from the `sent` line.
    pub fn send(&mut self, line: &str) -> String {
        self.type_line(line);
        let sent = self.out.wait_until(
            |l| l.contains("] sent ") || l.starts_with("error"),
            WAIT,
            &format!("sent line for {line:?}"),
        );
        assert!(!sent.starts_with("error"), "{line:?} was refused: {sent}");
        command_id(&sent)
    }

    /// Wait for the terminal line of command `id` and return it.
    /// The line may already have gone by (read while waiting for another,
    /// e.g. a fast `busy` before the next command's `sent` line).
    pub fn outcome(&mut self, id: &str, timeout: Duration) -> String {
        let tag = format!(" {id}] ");
        let is_outcome =
            |l: &str| l.contains(&tag) && (l.contains(" completed") || l.contains(" failed ("));
        if let Some(line) = self.out.seen.iter().find(|l| is_outcome(l)) {
            return line.clone();
        }
        self.out
            .wait_until(is_outcome, timeout, &format!("outcome of {id}"))
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start a new server process on the same address and data dir.
    pub fn restart(&mut self) {
        self.kill();
        let extra: Vec<String> = self.extra.clone();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let deadline = Instant::now() + WAIT;
        // The old socket may linger for a moment; retry the bind.
        loop {
            let stderr_path = self
                .data_dir
                .with_extension(format!("server-{}.log", unique("e")));
            let stderr = std::fs::File::create(&stderr_path).unwrap();
            let mut child = warden()
                .args(["server", "--listen", &self.addr, "--data-dir"])
                .arg(&self.data_dir)
                .args(&extra)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(stderr)
                .spawn()
                .unwrap();
            let stdin = child.stdin.take();
            let mut out = Lines::spawn("server", child.stdout.take().unwrap());
            let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                out.wait_until(|_| true, WAIT, "address")
            }));
            if let Ok(addr) = first {
                assert_eq!(addr, self.addr);
                self.child = child;
                self.stdin = stdin;
                self.out = out;
                self.stderr_path = stderr_path;
                return;
            }
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "server did not restart on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// Extract the command id from a `[agent id] ...` line.
pub fn command_id(line: &str) -> String {
    let inside = line.trim_start_matches('[').split(']').next().unwrap();
    inside
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no command id in {line:?}"))
        .to_string()
}

pub struct AgentProc {
    pub child: Child,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
    args: Vec<String>,
    /// A command the agent runs under, e.g. `ip netns exec NS`.
    prefix: Vec<String>,
}

impl AgentProc {
    /// Start an agent with `config` (JSON) written beside its state dir.
    pub fn start(
        dir: &Path,
        url: &str,
        agent_id: &str,
        token: &str,
        config: &Value,
        extra: &[&str],
    ) -> AgentProc {
        Self::start_under(&[], dir, url, agent_id, token, config, extra)
    }

    /// Like `start`, with the agent run under `prefix` (e.g. `ip netns exec NS`).
    pub fn start_under(
        prefix: &[&str],
        dir: &Path,
        url: &str,
        agent_id: &str,
        token: &str,
        config: &Value,
        extra: &[&str],
    ) -> AgentProc {
        let token_file = dir.join(format!("{agent_id}.token"));
        std::fs::write(&token_file, token).unwrap();
        let config_file = dir.join(format!("{agent_id}.json"));
        std::fs::write(&config_file, serde_json::to_vec_pretty(config).unwrap()).unwrap();
        let state_dir = dir.join(format!("{agent_id}-state"));
        let mut args: Vec<String> = vec![
            "agent".into(),
            "--server".into(),
            url.into(),
            "--agent-id".into(),
            agent_id.into(),
            "--token-file".into(),
            token_file.display().to_string(),
            "--config".into(),
            config_file.display().to_string(),
            "--state-dir".into(),
            state_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log_path = dir.join(format!("{agent_id}.log"));
        let prefix: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        let child = Self::spawn(&prefix, &args, &log_path);
        AgentProc {
            child,
            state_dir,
            log_path,
            args,
            prefix,
        }
    }

    fn spawn(prefix: &[String], args: &[String], log_path: &Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap();
        let mut command = match prefix.split_first() {
            None => warden(),
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(env!("CARGO_BIN_EXE_warden"));
                c
            }
        };
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(&self.prefix, &self.args, &self.log_path);
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.kill();
    }
}

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

/// One server with a data dir and an agent with its config, connected.
pub struct Fleet {
    pub dir: TempDir,
    pub server: ServerProc,
    pub agent: AgentProc,
    pub agent_id: String,
}

impl Fleet {
    pub fn start(nodes: &[&Node], policy_extra: Value, server_extra: &[&str]) -> Fleet {
        let dir = TempDir::new("fleet");
        let data_dir = dir.join("server");
        let agent_id = unique("agent");
        let token = token_add(&data_dir, &agent_id);
        let mut server = ServerProc::start(&data_dir, server_extra);
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        let config = config_for(&names, policy_extra);
        let agent = AgentProc::start(dir.path(), &server.url(), &agent_id, &token, &config, &[]);
        server
            .out
            .wait_for(&format!("* {agent_id} connected"), WAIT);
        Fleet {
            dir,
            server,
            agent,
            agent_id,
        }
    }
}

// Raw WebSocket peers: a test speaking protocol 1 to the server directly.

use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A raw agent: the test speaks protocol 1 to a real server.
pub type ClientWs = WebSocket<MaybeTlsStream<TcpStream>>;

pub fn upgrade(url: &str, token: Option<&str>) -> Result<ClientWs, u16> {
    let mut request = url.into_client_request().unwrap();
    if let Some(t) = token {
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {t}").parse().unwrap());
    }
    match tungstenite::connect(request) {
        Ok((ws, _)) => {
            if let MaybeTlsStream::Plain(s) = ws.get_ref() {
                s.set_read_timeout(Some(WAIT)).unwrap();
            }
            Ok(ws)
        }
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("upgrade failed unexpectedly: {e}"),
    }
}

/// The next text frame from the server as JSON, skipping its pings.
pub fn recv_skip_pings(ws: &mut ClientWs) -> Value {
    loop {
        match ws.read().expect("a frame") {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "ping" {
                    continue;
                }
                return v;
            }
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// A server played by the test: raw WebSocket frames to and from a real agent.
pub struct RawServer {
    pub listener: std::net::TcpListener,
    pub token: String,
}

/// A raw server's side of the agent's connection.
pub type Ws = tungstenite::WebSocket<TcpStream>;

impl RawServer {
    pub fn new() -> RawServer {
        RawServer {
            listener: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            token: unique("tok"),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/agent", self.listener.local_addr().unwrap())
    }

    #[allow(clippy::result_large_err)] // tungstenite fixes the callback type
    /// Accept the agent's next connection, check its token, read its hello
    /// and welcome it.
    pub fn accept(&self) -> (Ws, Value) {
        self.accept_with_heartbeat(json!(30))
    }

    #[allow(clippy::result_large_err)] // tungstenite fixes the callback type
    /// Like [`RawServer::accept`], with `heartbeat_s` (any JSON) in the welcome.
    pub fn accept_with_heartbeat(&self, heartbeat_s: Value) -> (Ws, Value) {
        self.listener.set_nonblocking(false).unwrap();
        let deadline = Instant::now() + WAIT;
        let (stream, _) = loop {
            self.listener.set_nonblocking(true).unwrap();
            match self.listener.accept() {
                Ok(s) => break s,
                Err(_) => {
                    assert!(Instant::now() < deadline, "the agent never connected");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let expected = format!("Bearer {}", self.token);
        let mut ws = tungstenite::accept_hdr(
            stream,
            |req: &tungstenite::handshake::server::Request, resp| {
                assert_eq!(req.uri().path(), "/agent");
                assert_eq!(
                    req.headers()
                        .get("authorization")
                        .unwrap()
                        .to_str()
                        .unwrap(),
                    expected
                );
                Ok(resp)
            },
        )
        .unwrap();
        let hello = recv(&mut ws);
        assert_eq!(hello["type"], "hello", "{hello}");
        let agent_id = hello["data"]["agent_id"].clone();
        send(
            &mut ws,
            json!({"type": "welcome", "data": {"agent_id": agent_id, "server_version": "test", "protocol": 1, "heartbeat_s": heartbeat_s}}),
        );
        (ws, hello["data"].clone())
    }
}

/// Send one JSON frame, on either side.
pub fn send<S: std::io::Read + std::io::Write>(ws: &mut WebSocket<S>, v: Value) {
    ws.send(tungstenite::Message::text(v.to_string())).unwrap();
}

pub fn recv(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a frame from the agent") {
            tungstenite::Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            tungstenite::Message::Close(f) => panic!("agent closed: {f:?}"),
            _ => {}
        }
    }
}

/// Read until the server closes; returns the close code.
pub fn close_code(ws: &mut ClientWs) -> Option<CloseCode> {
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => return frame.map(|f| f.code),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// The next frame of type `kind`, skipping others (stats, pings).
pub fn recv_type(ws: &mut Ws, kind: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = recv(ws);
        if v["type"] == kind {
            return v;
        }
        assert!(Instant::now() < deadline, "no {kind} frame");
    }
}

pub fn response_to(ws: &mut Ws, id: &str) -> Value {
    loop {
        let v = recv_type(ws, "command_response");
        if v["data"]["id"] == id
            && matches!(v["data"]["status"].as_str(), Some("completed" | "failed"))
        {
            return v["data"].clone();
        }
    }
}

pub fn command(id: &str, command: &str, target: &str, params: Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    json!({"type": "command", "data": {"id": id, "command": command, "target": target, "params": params, "timestamp": now}})
}

pub fn start_agent(dir: &TempDir, server: &RawServer, names: &[&str], policy: Value) -> AgentProc {
    let config = config_for(names, policy);
    AgentProc::start(
        dir.path(),
        &server.url(),
        &unique("agent"),
        &server.token,
        &config,
        &[],
    )
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

impl ServerProc {
    /// Types `command` again every half second until a line of its output matches,
    /// for views (`nodes`, `keys`) that fill in as agents report. Bounded by
    /// twice [`WAIT`].
    pub fn poll_line(&mut self, command: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT * 2;
        loop {
            self.type_line(command);
            let window_end = Instant::now() + Duration::from_millis(500);
            while let Some(left) = window_end.checked_duration_since(Instant::now()) {
                match self.out.rx.recv_timeout(left) {
                    Ok(line) => {
                        self.out.seen.push(line.clone());
                        if pred(&line) {
                            return line;
                        }
                    }
                    Err(_) => break,
                }
            }
            assert!(
                Instant::now() < deadline,
                "no line of {command:?} matched; last lines: {:?}",
                self.out.seen.iter().rev().take(10).collect::<Vec<_>>()
            );
        }
    }
}

/// Chain storage for a test node's control file (`{"storage": {"0x…": "0x…"}}`),
/// keys and SCALE values made with warden's chain module (itself checked against
/// substrate-interface vectors).
#[derive(Clone, Default)]
pub struct ChainState {
    pub items: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
}

impl ChainState {
    pub fn put(&mut self, key: Vec<u8>, value: &impl warden::chain::scale::Encode) -> &mut Self {
        self.items.insert(key, value.encode());
        self
    }

    /// The control file's JSON.
    pub fn control_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .items
            .iter()
            .map(|(k, v)| {
                (
                    warden::chain::keys::to_hex(k),
                    serde_json::json!(format!("0x{}", hex::encode(v))),
                )
            })
            .collect();
        serde_json::json!({ "storage": map })
    }

    /// Writes the control file to `path` in `node` (its base path's `testnode.json`).
    pub fn write_to(&self, node: &Node, path: &str, dir: &TempDir) {
        let file = dir.join(&unique("control"));
        std::fs::write(&file, self.control_json().to_string()).unwrap();
        let out = docker(&[
            "cp",
            &file.display().to_string(),
            &format!("{}:{path}", node.name),
        ]);
        assert!(
            out.status.success(),
            "docker cp to {}: {}",
            node.name,
            String::from_utf8_lossy(&out.stderr)
        );
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

impl Fleet {
    /// Wait until the server shows a `stats` of this agent with `container`
    /// in it: the double-sign check before `start` and `restore_keys` refuses
    /// while the server has no stats (and so no keystore listing) yet.
    pub fn wait_stats(&mut self, container: &str) {
        let command = format!("nodes {}", self.agent_id);
        self.server.poll_line(&command, |l| l.contains(container));
    }
}
