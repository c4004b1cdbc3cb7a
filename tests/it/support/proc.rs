//! The real `warden` binary as server and agent processes: their output
//! read line by line on their own threads, restarts, and a connected `Fleet`.
use super::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};

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

impl Fleet {
    /// Rewrites the agent's config with `change`, restarts the agent and
    /// waits until it is connected again.
    pub fn reconfigure(&mut self, change: impl FnOnce(&mut Value)) {
        let path = self.dir.join(&format!("{}.json", self.agent_id));
        let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        change(&mut config);
        std::fs::write(&path, config.to_string()).unwrap();
        self.agent.restart();
        self.server
            .out
            .wait_for(&format!("* {} connected", self.agent_id), WAIT);
    }

    /// Wait until the server shows a `stats` of this agent with `container`
    /// in it: the double-sign check before `start` and `restore_keys` refuses
    /// while the server has no stats (and so no keystore listing) yet.
    pub fn wait_stats(&mut self, container: &str) {
        let command = format!("nodes {}", self.agent_id);
        self.server.poll_line(&command, |l| l.contains(container));
    }
}

impl ServerProc {
    /// `rotate_keys` on `node` through this server (warden's own rotation, so
    /// the agent's keystore cache lists the keys at once); the session keys
    /// its result carries.
    pub fn rotated_keys(&mut self, agent_id: &str, node: &Node) -> warden::chain::SessionKeys {
        let id = self.send(&format!("send {agent_id} rotate_keys {}", node.name));
        let result = self.json_result(&id);
        warden::chain::split_session_keys(result["session_key"].as_str().unwrap()).unwrap()
    }

    /// The result of command `id`, which must complete: inline after
    /// `completed: ` (as a JSON string if it is not JSON), or the JSON printed
    /// on the lines after it.
    pub fn json_result(&mut self, id: &str) -> Value {
        let head = self.outcome(id, WAIT);
        assert!(head.contains("completed"), "{head}");
        if let Some((_, inline)) = head.split_once("completed: ") {
            return serde_json::from_str(inline).unwrap_or(Value::String(inline.to_string()));
        }
        let deadline = Instant::now() + WAIT;
        let mut text = String::new();
        loop {
            text.push_str(&self.out.wait_until(|_| true, WAIT, "result body"));
            text.push('\n');
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                return v;
            }
            assert!(Instant::now() < deadline, "no result: {text}");
        }
    }
}

impl AgentProc {
    /// Waits until the agent's era watch has saved `era` as its baseline
    /// (its state file), bounded by `timeout`.
    pub fn wait_watch_era(&self, era: u32, timeout: Duration) {
        let path = self.state_dir.join("era_watch.json");
        let deadline = Instant::now() + timeout;
        loop {
            let state: Option<Value> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if state.as_ref().is_some_and(|s| s["era"] == era) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the era watch never reached era {era}: {state:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
