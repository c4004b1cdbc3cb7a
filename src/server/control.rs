//! The control socket: `warden ctl` speaks the operator language to the
//! running server through `<data dir>/control.sock` (a Unix socket, 0600).
//!
//! One request per connection: a JSON line `{"line", "json", "wait_s"}`. The
//! line goes to the hub as [`HubEvent::Control`]; the hub answers through a
//! channel of [`Update`]s (its text, the commands it issued, then, with
//! `wait_s`, each command's outcome). This thread assembles the answer, one
//! JSON line `{"exit", "stdout"}`, and closes. The exit codes are the
//! contract's: 0 done, 1 a command failed or was refused, 2 a usage error,
//! 3 `--wait` ran out of time.
//!
//! Only the server's user can connect (mode 0600); the peer's uid comes from
//! the kernel (SO_PEERCRED) and goes into the audit log with every line.
use super::HubEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

pub const SOCKET_NAME: &str = "control.sock";
/// A request line, at most: an operator line (64 KiB) and its envelope.
const MAX_REQUEST_BYTES: u64 = 65 * 1024;
/// Clients served at once; more are answered "busy" at once.
const MAX_CLIENTS: usize = 16;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the hub may take to answer a line (it answers in milliseconds;
/// this only bounds a wedged hub).
const HUB_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `--wait` accepted.
pub const MAX_WAIT_S: u64 = 24 * 3600;

pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const TIMED_OUT: u8 = 3;
}

/// What `warden ctl` sends.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub line: String,
    #[serde(default)]
    pub json: bool,
    #[serde(default)]
    pub wait_s: Option<u64>,
    /// `--yes`: confirms a broadcast that changes nodes.
    #[serde(default)]
    pub yes: bool,
    /// `--key`: the client's operator public key; the server holds the
    /// line's commands and answers their payloads for the client to sign.
    #[serde(default)]
    pub key: Option<String>,
    /// With `approve <id>`: the client's signature over that payload.
    #[serde(default)]
    pub signature: Option<crate::operator_keys::CommandSignature>,
}

/// A command held for signatures: what the ctl client signs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingPayload {
    pub id: String,
    pub agent: String,
    /// The exact bytes to sign (UTF-8; see `operator_keys::signing_payload`).
    pub payload: String,
}

/// What the server answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub exit: u8,
    pub stdout: String,
    /// Commands held for the client's signature (`--key`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingPayload>,
}

/// One ctl line on its way to the hub.
pub struct ControlRequest {
    pub line: String,
    pub uid: u32,
    /// With `--wait`: until when outcomes are awaited.
    pub wait_until: Option<Instant>,
    pub updates: Sender<Update>,
    /// `--yes` was given.
    pub yes: bool,
    pub key: Option<String>,
    pub signature: Option<crate::operator_keys::CommandSignature>,
}

/// A command the line issued.
#[derive(Clone, Debug)]
pub struct Issued {
    pub agent: String,
    pub id: String,
    pub command: String,
    pub target: String,
}

/// What the hub tells the waiting ctl thread, in order.
#[derive(Debug)]
pub enum Update {
    /// Text stdin would have printed.
    Text(String),
    /// The line was refused: 1 (a refusal) or 2 (a usage error).
    Exit(u8),
    /// The verb, for `--json`.
    Verb(&'static str),
    /// Agents the line targeted, and what it issued to them.
    Targeted(usize),
    Issued(Vec<Issued>),
    /// The commands actually queued for their agents.
    Reached(usize),
    /// Commands held for signatures, with their payloads.
    Pending(Vec<PendingPayload>),
    /// The immediate answer is complete (everything before is on disk).
    Done,
    /// A command's terminal outcome (with `--wait`).
    Outcome {
        id: String,
        status: String,
        code: Option<String>,
        error: Option<String>,
        result: Option<Value>,
    },
}

#[derive(Debug)]
pub enum ControlError {
    InUse(PathBuf),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::InUse(path) => write!(
                f,
                "{} answers: another server runs with this data dir (stop it, or pick another --data-dir)",
                path.display()
            ),
            ControlError::Io(path, e) => write!(f, "cannot open {}: {e}", path.display()),
        }
    }
}

/// Bind the control socket in `data_dir`, replacing a stale one (a socket
/// file no server answers on).
pub fn bind(data_dir: &Path) -> Result<(UnixListener, PathBuf), ControlError> {
    let path = data_dir.join(SOCKET_NAME);
    if path.exists() {
        if UnixStream::connect(&path).is_ok() {
            return Err(ControlError::InUse(path));
        }
        std::fs::remove_file(&path).map_err(|e| ControlError::Io(path.clone(), e))?;
    }
    let listener = UnixListener::bind(&path).map_err(|e| ControlError::Io(path.clone(), e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| ControlError::Io(path.clone(), e))?;
    Ok((listener, path))
}

/// Accept ctl clients on the `control` thread.
pub fn spawn(listener: UnixListener, hub: SyncSender<HubEvent>) -> io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else {
                    thread::sleep(Duration::from_millis(100));
                    continue;
                };
                if active.load(Ordering::SeqCst) >= MAX_CLIENTS {
                    let _ = answer(
                        &stream,
                        exit::FAILED,
                        "error: the server is busy with other ctl clients; try again".into(),
                    );
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let (hub, active) = (hub.clone(), active.clone());
                let spawned = thread::Builder::new()
                    .name("ctl".into())
                    .stack_size(256 * 1024)
                    .spawn(move || {
                        serve(&stream, &hub);
                        active.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    crate::log::error("cannot start a ctl thread");
                }
            }
        })?;
    Ok(())
}

fn answer(stream: &UnixStream, exit: u8, stdout: String) -> io::Result<()> {
    answer_with(stream, exit, stdout, Vec::new())
}

fn answer_with(
    mut stream: &UnixStream,
    exit: u8,
    stdout: String,
    pending: Vec<PendingPayload>,
) -> io::Result<()> {
    let reply = Reply {
        exit,
        stdout,
        pending,
    };
    let mut line = serde_json::to_vec(&reply).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)
}

fn serve(stream: &UnixStream, hub: &SyncSender<HubEvent>) {
    let uid = rustix::net::sockopt::socket_peercred(stream)
        .map(|cred| cred.uid.as_raw())
        .unwrap_or(u32::MAX);
    let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
    let mut text = String::new();
    let read = BufReader::new(stream.take(MAX_REQUEST_BYTES)).read_line(&mut text);
    let request = match read
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str::<Request>(&text).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            let _ = answer(
                stream,
                exit::USAGE,
                format!("error (bad_request): unreadable ctl request: {e}"),
            );
            return;
        }
    };
    let (tx, rx) = mpsc::channel();
    let wait = request
        .wait_s
        .map(|s| Duration::from_secs(s.min(MAX_WAIT_S)));
    let event = HubEvent::Control(ControlRequest {
        line: request.line.clone(),
        uid,
        wait_until: wait.map(|w| Instant::now() + w),
        updates: tx,
        yes: request.yes,
        key: request.key.clone(),
        signature: request.signature.clone(),
    });
    if hub.send(event).is_err() {
        let _ = answer(stream, exit::USAGE, "error: the server is stopping".into());
        return;
    }
    let (exit, stdout, pending) = collect(&rx, wait, request.json);
    let _ = answer_with(stream, exit, stdout, pending);
}

/// Gather the hub's updates into the answer: text, or one JSON document.
fn collect(
    rx: &Receiver<Update>,
    wait: Option<Duration>,
    as_json: bool,
) -> (u8, String, Vec<PendingPayload>) {
    let mut pending = Vec::new();
    let (exit, stdout) = collect_text(rx, wait, as_json, &mut pending);
    (exit, stdout, pending)
}

fn collect_text(
    rx: &Receiver<Update>,
    wait: Option<Duration>,
    as_json: bool,
    pending: &mut Vec<PendingPayload>,
) -> (u8, String) {
    let mut text = Vec::new();
    let mut exit = exit::OK;
    let mut verb = "";
    let (mut targeted, mut reached) = (0, 0);
    let mut commands: Vec<(Issued, Option<Value>)> = Vec::new();
    let answer_deadline = Instant::now() + HUB_ANSWER_TIMEOUT;
    loop {
        match rx.recv_timeout(answer_deadline.saturating_duration_since(Instant::now())) {
            Ok(Update::Text(t)) => text.push(t),
            Ok(Update::Exit(code)) => exit = exit.max(code),
            Ok(Update::Verb(v)) => verb = v,
            Ok(Update::Targeted(n)) => targeted = n,
            Ok(Update::Reached(n)) => reached = n,
            Ok(Update::Pending(list)) => pending.extend(list),
            Ok(Update::Issued(list)) => commands.extend(list.into_iter().map(|i| (i, None))),
            Ok(Update::Done) => break,
            Ok(Update::Outcome { .. }) => {}
            Err(RecvTimeoutError::Timeout) => {
                return (
                    exit::FAILED,
                    "error: the server did not answer in time".into(),
                );
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Some(wait) = wait.filter(|_| !commands.is_empty()) {
        let deadline = Instant::now() + wait;
        while commands.iter().any(|(_, outcome)| outcome.is_none()) {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Update::Outcome {
                    id,
                    status,
                    code,
                    error,
                    result,
                }) => {
                    if let Some(entry) = commands.iter_mut().find(|(i, _)| i.id == id) {
                        if status != "completed" {
                            exit = exit.max(exit::FAILED);
                        }
                        let shown = match (&code, &error) {
                            (Some(code), Some(error)) => {
                                format!("[{} {id}] {status} ({code}): {error}", entry.0.agent)
                            }
                            _ => format!("[{} {id}] {status}", entry.0.agent),
                        };
                        text.push(shown);
                        entry.1 = Some(
                            json!({"status": status, "code": code, "error": error, "result": result}),
                        );
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    let pending: Vec<&str> = commands
                        .iter()
                        .filter(|(_, o)| o.is_none())
                        .map(|(i, _)| i.id.as_str())
                        .collect();
                    text.push(format!(
                        "timed out after {} s waiting for {} (see `show <id>` later)",
                        wait.as_secs(),
                        pending.join(", ")
                    ));
                    exit = exit.max(exit::TIMED_OUT);
                    break;
                }
            }
        }
    }
    if !as_json {
        let mut stdout = text.join("\n");
        if !stdout.is_empty() {
            stdout.push('\n');
        }
        return (exit, stdout);
    }
    let output = text.join("\n");
    let mut doc = json!({"verb": verb, "exit": exit, "output": output});
    if matches!(verb, "send" | "broadcast") {
        let (mut succeeded, mut failed) = (0, 0);
        let list: Vec<Value> = commands
            .iter()
            .map(|(i, outcome)| {
                match outcome.as_ref().and_then(|o| o["status"].as_str()) {
                    Some("completed") => succeeded += 1,
                    Some(_) => failed += 1,
                    None => {}
                }
                let mut entry =
                    json!({"agent": i.agent, "id": i.id, "command": i.command, "target": i.target});
                if let (Some(outcome), Some(map)) = (outcome, entry.as_object_mut()) {
                    for key in ["status", "code", "error", "result"] {
                        map.insert(key.into(), outcome[key].clone());
                    }
                }
                entry
            })
            .collect();
        doc["targeted"] = json!(targeted);
        doc["reached"] = json!(reached);
        doc["succeeded"] = json!(succeeded);
        doc["failed"] = json!(failed);
        doc["commands"] = Value::Array(list);
    }
    (exit, format!("{doc}\n"))
}

/// The client side: send one line, print the answer, return its exit code.
pub fn request(data_dir: &Path, request: &Request) -> Result<Reply, String> {
    let path = data_dir.join(SOCKET_NAME);
    let mut stream = UnixStream::connect(&path).map_err(|e| {
        format!(
            "no server answers on {}: {e} (is `warden server --data-dir {}` running?)",
            path.display(),
            data_dir.display()
        )
    })?;
    let mut line = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    line.push(b'\n');
    stream.write_all(&line).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    BufReader::new(stream.take(64 * 1024 * 1024))
        .read_line(&mut answer)
        .map_err(|e| format!("reading the server's answer: {e}"))?;
    serde_json::from_str(&answer).map_err(|e| format!("the server's answer is unreadable: {e}"))
}
