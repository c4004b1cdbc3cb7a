//! `warden server`: holds the agents' WebSocket connections and lets an
//! operator drive the fleet from stdin.
//!
//! Threads: one acceptor, one per connection (`conn-<peer>`), one reading
//! stdin, one ticker, and the hub (the caller's thread). The hub owns all
//! state (the live sessions and the [`Store`]) and reacts to one closed
//! [`HubEvent`] enum, so every cause of work is visible in one `match`.
//! Connection threads do what needs no state: the handshake and token check,
//! the `hello` checks, pings, heartbeats and envelope errors.
//!
//! Invariants:
//! - A durable message is acknowledged only after it is on disk.
//! - A command is recorded as issued (on disk) before it is sent.
//! - A session is registered, and the old one for the same agent closed with
//!   1000, only once the new one's `hello` is valid.
mod conn;
pub mod keyguard;
mod render;
pub mod store;
pub mod tokens;

use crate::operator::{self, OperatorCommand};
use crate::protocol::{
    self, CommandRequest, CommandResponse, Event, Hello, Message, Welcome, now_ms,
};
use crate::transport;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, IsTerminal, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use store::{CommandRecord, ResponseVerdict, Store};
use tokens::TokenStore;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";
pub const DEFAULT_HEARTBEAT_S: u64 = 15;
const HUB_QUEUE: usize = 4096;
/// Unfinished commands younger than this are resent on reconnect; agents
/// refuse older ones anyway (policy.max_command_age_s, 300 s by default).
const RESEND_WINDOW_MS: i64 = 10 * 60 * 1000;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// With TLS: require agents' client certificates from this CA (mTLS).
    pub client_ca: Option<PathBuf>,
    pub heartbeat_s: u64,
    pub max_message_bytes: usize,
}

#[derive(Debug)]
pub enum ServerError {
    Listen { addr: String, source: io::Error },
    DataDir { path: PathBuf, source: io::Error },
    Signals(io::Error),
    Tls(transport::TransportError),
    Tokens(tokens::TokenError),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Listen { addr, source } => {
                write!(
                    f,
                    "cannot listen on {addr}: {source} (is another server running? pick another --listen)"
                )
            }
            ServerError::DataDir { path, source } => {
                write!(f, "cannot use data dir {}: {source}", path.display())
            }
            ServerError::Tls(e) => write!(f, "{e}"),
            ServerError::Signals(e) => write!(f, "cannot install the SIGTERM handler: {e}"),
            ServerError::Tokens(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServerError {}

/// One authenticated agent connection whose `hello` was valid.
pub struct Session {
    pub agent_id: String,
    pub conn_id: u64,
    pub conn: transport::Connection,
    pub hello: Hello,
    pub connected_ms: i64,
    pub last_seen_ms: AtomicI64,
    /// Hash of the token it authenticated with: a replaced or removed token
    /// cuts the connection.
    pub token_sha256: String,
    /// Frames the hub queued for this agent, sent in order by at most one
    /// drainer thread at a time, so the hub never waits on a socket.
    pub outbox: Mutex<Outbox>,
}

/// An agent's queue of outgoing frames. Bounded: an agent whose queue
/// overflows has stopped reading, and is cut off.
#[derive(Default)]
pub struct Outbox {
    frames: std::collections::VecDeque<String>,
    bytes: usize,
    draining: bool,
}

/// More than this queued for one agent means it is not reading: cut it off.
const OUTBOX_MAX_BYTES: usize = 16 * 1024 * 1024;

impl Session {
    /// Queue `message` for the agent and return at once. Frames go out in
    /// the order they were queued; a send that fails (the agent stopped
    /// reading for the write timeout) cuts the connection.
    pub fn send(self: &Arc<Self>, message: &Message) -> io::Result<()> {
        let text = message.to_json();
        let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        if outbox.bytes + text.len() > OUTBOX_MAX_BYTES {
            drop(outbox);
            self.conn.abort();
            return Err(io::Error::other(format!(
                "{} is not reading its messages; cut off",
                self.agent_id
            )));
        }
        outbox.bytes += text.len();
        outbox.frames.push_back(text);
        if !outbox.draining {
            outbox.draining = true;
            let session = self.clone();
            let spawned = thread::Builder::new()
                .name(format!("send-{}", self.agent_id))
                .spawn(move || session.drain());
            if let Err(e) = spawned {
                outbox.draining = false;
                return Err(e);
            }
        }
        Ok(())
    }

    fn drain(&self) {
        loop {
            let next = {
                let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
                match outbox.frames.pop_front() {
                    Some(text) => {
                        outbox.bytes -= text.len();
                        text
                    }
                    None => {
                        outbox.draining = false;
                        return;
                    }
                }
            };
            if self.conn.send_text(&next).is_err() {
                // send_text shut the socket; the reader ends the session.
                let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
                outbox.frames.clear();
                outbox.bytes = 0;
                outbox.draining = false;
                return;
            }
        }
    }
}

/// Everything the hub reacts to.
pub enum HubEvent {
    Connected(Arc<Session>),
    Message {
        agent: String,
        conn_id: u64,
        message: Message,
    },
    Disconnected {
        agent: String,
        conn_id: u64,
        reason: String,
    },
    /// An upgrade or a `hello` was refused: for the audit log.
    Refused {
        peer: String,
        agent: Option<String>,
        reason: String,
    },
    Operator(String),
    OperatorClosed,
    /// SIGTERM or SIGINT: close every connection, flush, exit 0.
    Terminate(&'static str),
    Tick,
}

/// Operator-facing output: stdout, one writer at a time.
#[derive(Clone)]
pub struct Out {
    stdout: Arc<Mutex<io::Stdout>>,
}

impl Out {
    fn new() -> Out {
        Out {
            stdout: Arc::new(Mutex::new(io::stdout())),
        }
    }
    pub fn line(&self, text: &str) {
        let text = printable(text);
        let stdout = self.stdout.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = stdout.lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// What agents and containers send (results, logs, errors) reaches the
/// operator's terminal: control characters other than newline and tab are
/// shown as `?`, so no escape sequence can rewrite the screen or the title.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| if unsafe_char(c) { '?' } else { c })
            .collect(),
    )
}

struct Live {
    session: Arc<Session>,
    /// The agent's containers as it last reported them (hello, then stats).
    containers: Vec<String>,
    /// Its last `stats` report, for `nodes` and the health verdict.
    last_stats: Option<serde_json::Map<String, serde_json::Value>>,
    /// Its last `summary` (era, payouts), for `nodes`.
    last_summary: Option<serde_json::Map<String, serde_json::Value>>,
}

struct Hub {
    config: ServerConfig,
    store: Store,
    tokens: TokenStore,
    registry_stamp: Option<Vec<u8>>,
    live: BTreeMap<String, Live>,
    keyguard: keyguard::KeyGuard,
    out: Out,
    interactive: bool,
    next_seq: u64,
}

pub fn run(config: ServerConfig) -> Result<(), ServerError> {
    let data_dir = config.data_dir.clone();
    let store = Store::open(&data_dir).map_err(|source| ServerError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let tokens = TokenStore::new(&data_dir);
    tokens.load().map_err(ServerError::Tokens)?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(
            transport::server_tls_config(cert, key, config.client_ca.as_deref())
                .map_err(ServerError::Tls)?,
        ),
        _ => None,
    };
    let listener = TcpListener::bind(&config.listen).map_err(|source| ServerError::Listen {
        addr: config.listen.clone(),
        source,
    })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
    let out = Out::new();
    // The first line is the bound address alone, for scripts using port 0.
    out.line(&local.to_string());
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    out.line(&format!(
        "warden server {}: agents connect to {scheme}://{local}/agent; data in {}; type `help`",
        env!("CARGO_PKG_VERSION"),
        data_dir.display()
    ));
    if store.skipped_lines > 0 {
        crate::log::warn(&format!(
            "skipped {} torn or unreadable lines in the command history",
            store.skipped_lines
        ));
    }

    // Bounded: when the hub falls behind, connection threads wait instead of
    // queueing without limit.
    let (tx, rx) = mpsc::sync_channel::<HubEvent>(HUB_QUEUE);
    let shared = Arc::new(conn::ConnShared {
        tokens: tokens.clone(),
        tls,
        heartbeat: Duration::from_secs(config.heartbeat_s.max(1)),
        heartbeat_s: config.heartbeat_s.max(1),
        max_message_bytes: config.max_message_bytes,
        mutual_tls: config.client_ca.is_some(),
        hub: tx.clone(),
        next_conn_id: AtomicU64::new(1),
        handshaking: std::sync::atomic::AtomicUsize::new(0),
    });
    thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || conn::accept_loop(listener, shared))
        .expect("spawn acceptor");
    let interactive = io::stdin().is_terminal();
    spawn_stdin_reader(tx.clone());
    let signal_tx = tx.clone();
    crate::signals::on_terminate(move |name| {
        let _ = signal_tx.send(HubEvent::Terminate(name));
    })
    .map_err(ServerError::Signals)?;
    spawn_ticker(tx);

    let mut hub = Hub {
        config,
        store,
        tokens,
        registry_stamp: None,
        live: BTreeMap::new(),
        keyguard: keyguard::KeyGuard::default(),
        out,
        interactive,
        next_seq: 0,
    };
    hub.registry_stamp = hub.registry_stamp_now();
    hub.prompt();
    hub.run(rx);
    Ok(())
}

fn spawn_stdin_reader(tx: SyncSender<HubEvent>) {
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = io::stdin();
            let mut reader = stdin.lock();
            while let Some(line) = read_bounded_line(&mut reader, operator::MAX_LINE_BYTES) {
                if tx.send(HubEvent::Operator(line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(HubEvent::OperatorClosed);
        })
        .expect("spawn stdin reader");
}

/// One line of at most `max` bytes; a longer one is consumed whole and
/// returned cut at `max + 1` bytes, so the parser refuses it as too long
/// without the server ever buffering it. `None` at end of input.
fn read_bounded_line(reader: &mut impl BufRead, max: usize) -> Option<String> {
    let mut line = Vec::new();
    let mut overflowed = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) => {
                return if line.is_empty() && !overflowed {
                    None
                } else {
                    Some(String::from_utf8_lossy(&line).into_owned())
                };
            }
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1),
            None => (chunk, chunk.len()),
        };
        let room = (max + 1).saturating_sub(line.len());
        line.extend_from_slice(&part[..part.len().min(room)]);
        overflowed |= part.len() > room;
        let found_newline = done > part.len();
        reader.consume(done);
        if found_newline {
            return Some(String::from_utf8_lossy(&line).into_owned());
        }
    }
}

fn spawn_ticker(tx: SyncSender<HubEvent>) {
    thread::Builder::new()
        .name("ticker".into())
        .spawn(move || {
            // Once a second: notice token changes made by `warden token`.
            while tx.send(HubEvent::Tick).is_ok() {
                thread::sleep(Duration::from_secs(1));
            }
        })
        .expect("spawn ticker");
}

fn format_age(ms: i64) -> String {
    let s = (ms.max(0) / 1000) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

impl Hub {
    fn run(&mut self, rx: Receiver<HubEvent>) {
        while let Ok(event) = rx.recv() {
            match event {
                HubEvent::Connected(session) => self.on_connected(session),
                HubEvent::Message {
                    agent,
                    conn_id,
                    message,
                } => {
                    if self
                        .live
                        .get(&agent)
                        .is_some_and(|l| l.session.conn_id == conn_id)
                    {
                        self.on_message(&agent, message);
                    }
                }
                HubEvent::Disconnected {
                    agent,
                    conn_id,
                    reason,
                } => self.on_disconnected(&agent, conn_id, &reason),
                HubEvent::Refused {
                    peer,
                    agent,
                    reason,
                } => {
                    let _ = self.store.audit(&serde_json::json!({
                        "ts": now_ms(), "action": "refused", "peer": peer, "agent": agent, "reason": reason,
                    }));
                }
                HubEvent::Operator(line) => {
                    if self.on_operator_line(&line) == Flow::Quit {
                        self.shutdown();
                        return;
                    }
                    self.prompt();
                }
                HubEvent::OperatorClosed => {
                    // A server under systemd has no terminal: keep serving.
                    crate::log::info(
                        "stdin closed; the server keeps running (stop it with SIGTERM or `quit`)",
                    );
                }
                HubEvent::Tick => self.on_tick(),
                HubEvent::Terminate(signal) => {
                    crate::log::info(&format!("{signal}: closing every connection and stopping"));
                    self.shutdown();
                    return;
                }
            }
        }
    }

    fn prompt(&self) {
        if self.interactive {
            let stdout = self.out.stdout.lock().unwrap_or_else(|p| p.into_inner());
            let mut out = stdout.lock();
            let _ = write!(out, "warden> ");
            let _ = out.flush();
        }
    }

    fn shutdown(&mut self) {
        for live in self.live.values() {
            live.session
                .conn
                .close(protocol::close_code::GOING_AWAY, "server shutting down");
        }
        self.out.line("bye");
    }

    fn on_connected(&mut self, session: Arc<Session>) {
        let agent = session.agent_id.clone();
        if let Some(old) = self.live.remove(&agent) {
            old.session
                .conn
                .close(protocol::close_code::NORMAL, "replaced by a new connection");
        }
        let welcome = Message::Welcome(Welcome {
            agent_id: agent.clone(),
            server_version: env!("CARGO_PKG_VERSION").into(),
            protocol: protocol::PROTOCOL_VERSION,
            heartbeat_s: self.config.heartbeat_s.max(1),
        });
        if session.send(&welcome).is_err() {
            return;
        }
        let _ = self.store.audit(&serde_json::json!({
            "ts": now_ms(), "action": "connected", "agent": agent, "peer": session.conn.peer().to_string(),
            "host_name": session.hello.host_name, "version": session.hello.version,
        }));
        self.out.line(&format!(
            "* {agent} connected from {} ({} {}, containers: {})",
            session.conn.peer(),
            session.hello.host_name,
            session.hello.version,
            session.hello.containers.join(" ")
        ));
        // Commands still without an outcome go again: one lost with a
        // dropped connection or a server crash is delivered now, and one
        // the agent already ran is answered from its ledger, not rerun.
        let since = now_ms() - RESEND_WINDOW_MS;
        for record in self.store.unfinished(&agent, since) {
            let request = CommandRequest {
                id: record.id.clone(),
                command: record.command.clone(),
                target: record.target.clone(),
                params: record.params.clone(),
                timestamp: record.issued_ms,
            };
            let _ = session.send(&Message::Command(request));
        }
        let containers = session.hello.containers.clone();
        self.live.insert(
            agent,
            Live {
                session,
                containers,
                last_stats: None,
                last_summary: None,
            },
        );
    }

    fn on_disconnected(&mut self, agent: &str, conn_id: u64, reason: &str) {
        if self
            .live
            .get(agent)
            .is_some_and(|l| l.session.conn_id == conn_id)
        {
            self.live.remove(agent);
            let _ = self.store.audit(&serde_json::json!({
                "ts": now_ms(), "action": "disconnected", "agent": agent, "reason": reason,
            }));
            self.out.line(&format!("* {agent} disconnected: {reason}"));
        }
    }

    fn send_to(&self, agent: &str, message: &Message) {
        if let Some(live) = self.live.get(agent) {
            let _ = live.session.send(message);
        }
    }

    fn on_message(&mut self, agent: &str, message: Message) {
        match message {
            Message::Stats(data) => {
                if let Some(nodes) = data.get("nodes").and_then(|n| n.as_object()) {
                    self.guard_keystores(agent, nodes);
                }
                if let Some(live) = self.live.get_mut(agent)
                    && let Some(list) = data.get("containers").and_then(|c| c.as_array())
                {
                    let names: Vec<String> = list
                        .iter()
                        .filter_map(|c| c.get("name").and_then(|n| n.as_str()).map(str::to_string))
                        .collect();
                    live.containers = names;
                }
                if let Some(live) = self.live.get_mut(agent) {
                    live.last_stats = Some(data);
                }
            }
            Message::Summary(data) => {
                if let Some(live) = self.live.get_mut(agent) {
                    live.last_summary = Some(data);
                }
            }
            Message::CommandResponse(response) => self.on_response(agent, response),
            Message::Event(event) => self.on_event(agent, event),
            _ => {}
        }
    }

    fn on_response(&mut self, agent: &str, response: CommandResponse) {
        if !response.status.is_terminal() {
            self.store.record_progress(agent, &response);
            self.out.line(&format!(
                "[{agent} {}] {}",
                response.id,
                response.status.as_str()
            ));
            return;
        }
        let verdict = match self.store.record_response(agent, &response) {
            Ok(v) => v,
            Err(e) => {
                // Not on disk: do not ack, the agent will resend.
                crate::log::error(&format!(
                    "cannot record the response to {}: {e}",
                    response.id
                ));
                return;
            }
        };
        let ack = Message::CommandAck(protocol::IdRef {
            id: response.id.clone(),
        });
        match verdict {
            ResponseVerdict::Recorded => {
                self.send_to(agent, &ack);
                let record = self.store.get(&response.id).cloned();
                if let Some(record) = &record {
                    self.guard_confirmed_keys(agent, record, &response);
                }
                let (command, target) = record.map(|r| (r.command, r.target)).unwrap_or_default();
                self.out
                    .line(&render::response(agent, &command, &target, &response));
            }
            ResponseVerdict::Duplicate | ResponseVerdict::NeverIssued => self.send_to(agent, &ack),
            ResponseVerdict::OtherAgent => self.send_to(
                agent,
                &Message::Error(protocol::ErrorBody {
                    code: protocol::ErrorCode::BadRequest,
                    message: format!("command {} was not issued to {agent}", response.id),
                    reference: Some(response.id.clone()),
                }),
            ),
        }
    }

    fn on_event(&mut self, agent: &str, event: Event) {
        let fresh = match self.store.record_event(agent, &event) {
            Ok(fresh) => fresh,
            Err(e) => {
                crate::log::error(&format!(
                    "cannot record event {} from {agent}: {e}",
                    event.event_id
                ));
                return;
            }
        };
        if fresh {
            self.out.line(&render::event(agent, &event));
            if event.kind == protocol::EventKind::KeyUpdate {
                self.guard_key_update(agent, &event);
            }
        }
        let ack = match event.kind {
            protocol::EventKind::KeyUpdate => Message::KeyUpdateAck(protocol::KeyUpdateAck {
                event_id: event.event_id.clone(),
                status: "stored".into(),
            }),
            _ => Message::EventAck(protocol::EventAck {
                event_id: event.event_id.clone(),
            }),
        };
        self.send_to(agent, &ack);
    }

    /// The registry's bytes: compared whole, since a replaced token keeps
    /// the file's size and a coarse mtime may not move.
    /// Feed a rotation's keys to the duplicate-key guard.
    fn guard_key_update(&mut self, agent: &str, event: &Event) {
        let container = event
            .data
            .get("container")
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_string();
        let mut keys: Vec<(String, String)> = event
            .data
            .get("keys")
            .and_then(|k| k.as_object())
            .map(|m| {
                m.iter()
                    .filter_map(|(t, v)| v.as_str().map(|v| (t.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(whole) = event.data.get("session_key").and_then(|s| s.as_str()) {
            keys.push(("session".into(), whole.to_string()));
        }
        let found = self
            .keyguard
            .observe(&(agent.to_string(), container), &keys);
        self.raise_duplicates(found);
    }

    /// A `has_session_keys` that answered true confirms the node holds
    /// those keys: the duplicate-key guard learns them too.
    fn guard_confirmed_keys(
        &mut self,
        agent: &str,
        record: &CommandRecord,
        response: &CommandResponse,
    ) {
        let given = record
            .params
            .get("session_keys")
            .and_then(|k| k.as_str())
            .unwrap_or("");
        if record.command != "has_session_keys"
            || given.is_empty()
            || response.result != Some(serde_json::Value::Bool(true))
        {
            return;
        }
        let Ok(keys) = crate::chain::split_session_keys(given) else {
            return;
        };
        let keys: Vec<(String, String)> = keys
            .public_keys()
            .iter()
            .map(|(t, k)| (t.to_string(), format!("0x{}", hex::encode(k))))
            .collect();
        let found = self
            .keyguard
            .observe(&(agent.to_string(), record.target.clone()), &keys);
        self.raise_duplicates(found);
    }

    /// Feed a node's keystore listing (from its stats) to the guard.
    fn guard_keystores(&mut self, agent: &str, nodes: &serde_json::Map<String, serde_json::Value>) {
        for (container, node) in nodes {
            let Some(listing) = node.get("keystore").and_then(|k| k.as_array()) else {
                continue;
            };
            let keys: Vec<(String, String)> = listing
                .iter()
                .filter_map(|k| {
                    Some((
                        k.get("type")?.as_str()?.to_string(),
                        k.get("public")?.as_str()?.to_string(),
                    ))
                })
                .collect();
            let found = self
                .keyguard
                .replace(&(agent.to_string(), container.clone()), &keys);
            self.raise_duplicates(found);
        }
        for (container, node) in nodes {
            let peer_id = node.get("peer_id").and_then(|p| p.as_str());
            let found = self
                .keyguard
                .replace_peer(&(agent.to_string(), container.clone()), peer_id);
            self.raise_duplicates(found);
        }
    }

    fn raise_duplicates(&mut self, found: Vec<keyguard::Duplicate>) {
        for dup in found {
            let nodes: Vec<String> = dup
                .holders
                .iter()
                .map(|(a, c)| format!("{a}/{c}"))
                .collect();
            // On disk first, then shown: whoever sees the line finds the record.
            if let Err(e) = self.store.record_alert(&serde_json::json!({
                "alert": "duplicate_key", "key_type": dup.key_type, "public_key": dup.public_key, "nodes": nodes,
            })) {
                crate::log::error(&format!("cannot record the duplicate-key alert: {e}"));
            }
            self.out.line(&format!(
                "!!! DUPLICATE {}: {} key {} is held by {}. {}",
                dup.what(),
                dup.key_type,
                dup.public_key,
                nodes.join(" and "),
                dup.advice()
            ));
            crate::log::error(&format!(
                "duplicate session key {} on {}",
                dup.public_key,
                nodes.join(", ")
            ));
        }
    }

    fn registry_stamp_now(&self) -> Option<Vec<u8>> {
        std::fs::read(self.tokens.path()).ok()
    }

    fn on_tick(&mut self) {
        let stamp = self.registry_stamp_now();
        if stamp == self.registry_stamp {
            return;
        }
        self.registry_stamp = stamp;
        let registry = match self.tokens.load() {
            Ok(r) => r,
            Err(e) => {
                crate::log::error(&format!("cannot reload the agent registry: {e}"));
                return;
            }
        };
        let revoked: Vec<String> = self
            .live
            .iter()
            .filter(|(id, live)| {
                registry
                    .agents
                    .get(*id)
                    .is_none_or(|r| r.token_sha256 != live.session.token_sha256)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for agent in revoked {
            if let Some(live) = self.live.remove(&agent) {
                live.session
                    .conn
                    .close(protocol::close_code::POLICY, "token revoked");
                let _ = self.store.audit(&serde_json::json!({
                    "ts": now_ms(), "action": "revoked", "agent": agent,
                }));
                self.out.line(&format!(
                    "* {agent} disconnected: its token was removed or replaced"
                ));
            }
        }
    }

    fn new_command_id(&mut self) -> String {
        loop {
            self.next_seq += 1;
            let id = format!("c{}-{}", now_ms(), self.next_seq);
            if !self.store.contains(&id) {
                return id;
            }
        }
    }

    fn on_operator_line(&mut self, line: &str) -> Flow {
        let parsed = match operator::parse_line(line) {
            Ok(Some(c)) => c,
            Ok(None) => return Flow::Continue,
            Err(e) => {
                self.out.line(&format!("error ({}): {e}", e.code()));
                return Flow::Continue;
            }
        };
        match parsed {
            OperatorCommand::Help => self.out.line(&operator::help_text()),
            OperatorCommand::Quit => return Flow::Quit,
            OperatorCommand::List => self.out.line(&self.render_list()),
            OperatorCommand::Show { id } => match self.store.get(&id) {
                Some(record) => self.out.line(&render::show(record)),
                None => self
                    .out
                    .line(&format!("error: no command {id} (see `history`)")),
            },
            OperatorCommand::History { agent } => {
                let recent = self.store.recent(agent.as_deref(), 20);
                self.out.line(&render::history(&recent));
            }
            OperatorCommand::Nodes { agent } => {
                let reports: Vec<render::NodeReport<'_>> = self
                    .live
                    .iter()
                    .filter(|(id, _)| agent.as_deref().is_none_or(|a| a == id.as_str()))
                    .filter_map(|(id, live)| {
                        live.last_stats.as_ref().map(|stats| render::NodeReport {
                            agent: id.as_str(),
                            stats,
                            summary: live.last_summary.as_ref(),
                        })
                    })
                    .collect();
                self.out.line(&render::nodes(&reports));
            }
            OperatorCommand::Backups { agent } => {
                let backups = self.store.backups(agent.as_deref());
                self.out.line(&render::backups(&backups, now_ms()));
            }
            OperatorCommand::Keys { agent } => {
                let keys = self.store.key_updates(agent.as_deref());
                self.out.line(&render::keys(&keys));
            }
            OperatorCommand::Send { agent, request } => {
                let Some(live) = self.live.get(&agent) else {
                    let connected: Vec<&str> = self.live.keys().map(String::as_str).collect();
                    self.out.line(&format!(
                        "error: agent {agent} is not connected (connected: {})",
                        if connected.is_empty() {
                            "none".to_string()
                        } else {
                            connected.join(", ")
                        }
                    ));
                    return Flow::Continue;
                };
                match operator::resolve(&request, &live.containers) {
                    Ok(resolved) => self.issue(vec![(agent, resolved)]),
                    Err(e) => self
                        .out
                        .line(&format!("error ({}): {agent}: {e}", e.code())),
                }
            }
            OperatorCommand::Broadcast { request } => {
                if self.live.is_empty() {
                    self.out.line("error: no agent is connected");
                    return Flow::Continue;
                }
                let mut plan = Vec::new();
                let mut skipped = Vec::new();
                for (agent, live) in &self.live {
                    match operator::resolve(&request, &live.containers) {
                        Ok(resolved) => plan.push((agent.clone(), resolved)),
                        Err(e) => skipped.push(format!("{agent} ({e})")),
                    }
                }
                self.issue(plan);
                if !skipped.is_empty() {
                    self.out.line(&format!("skipped: {}", skipped.join("; ")));
                }
            }
        }
        Flow::Continue
    }

    /// Record, then send, validated commands (one per agent).
    fn issue(&mut self, plan: Vec<(String, operator::ResolvedCommand)>) {
        let mut requests = Vec::with_capacity(plan.len());
        for (agent, resolved) in plan {
            let request = CommandRequest {
                id: self.new_command_id(),
                command: resolved.command().as_str().to_string(),
                target: resolved.target.as_str().to_string(),
                params: resolved.params.to_json(),
                timestamp: now_ms(),
            };
            requests.push((agent, request));
        }
        let records = requests
            .iter()
            .map(|(agent, r)| CommandRecord {
                id: r.id.clone(),
                agent: agent.clone(),
                command: r.command.clone(),
                target: r.target.clone(),
                params: r.params.clone(),
                issued_ms: r.timestamp,
                by: "stdin".into(),
                outcome: None,
                progress: None,
            })
            .collect();
        if let Err(e) = self.store.record_issued(records) {
            self.out
                .line(&format!("error: cannot record the command, not sent: {e}"));
            return;
        }
        // Queued per agent: a stuck agent holds back nobody, not even the hub.
        for (agent, request) in requests {
            let Some(live) = self.live.get(&agent) else {
                continue;
            };
            let (id, command, target) = (
                request.id.clone(),
                request.command.clone(),
                request.target.clone(),
            );
            match live.session.send(&Message::Command(request)) {
                Ok(()) => self
                    .out
                    .line(&format!("[{agent} {id}] sent {command} {target}")),
                Err(e) => self.out.line(&format!(
                    "[{agent} {id}] not delivered ({e}); the agent will reconnect. \
                     Check with `show {id}` before sending it again"
                )),
            }
        }
    }

    fn render_list(&self) -> String {
        if self.live.is_empty() {
            return "no agent is connected".into();
        }
        let now = now_ms();
        let mut rows = vec![vec![
            "AGENT".to_string(),
            "HOST".into(),
            "VERSION".into(),
            "SINCE".into(),
            "LAST SEEN".into(),
            "HEALTH".into(),
            "CONTAINERS".into(),
        ]];
        for (id, live) in &self.live {
            let s = &live.session;
            rows.push(vec![
                id.clone(),
                s.hello.host_name.clone(),
                s.hello.version.clone(),
                format!("{} ago", format_age(now - s.connected_ms)),
                format!(
                    "{} ago",
                    format_age(now - s.last_seen_ms.load(Ordering::Relaxed))
                ),
                render::health(live.last_stats.as_ref()),
                live.containers.join(" "),
            ]);
        }
        render::table(&rows)
    }
}

#[derive(PartialEq)]
enum Flow {
    Continue,
    Quit,
}

#[cfg(test)]
mod tests {
    use super::read_bounded_line;

    #[test]
    fn terminal_escapes_are_neutralised() {
        assert_eq!(super::printable("ok\tline\nnext"), "ok\tline\nnext");
        assert_eq!(
            super::printable("\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}x"),
            "?]0;pwned??[2J?x"
        );
    }

    #[test]
    fn stdin_lines_are_bounded() {
        let input = format!("short\n{}\nnext\nlast", "x".repeat(100));
        let mut reader = std::io::BufReader::with_capacity(7, input.as_bytes());
        assert_eq!(read_bounded_line(&mut reader, 10).as_deref(), Some("short"));
        assert_eq!(
            read_bounded_line(&mut reader, 10).map(|l| l.len()),
            Some(11)
        );
        assert_eq!(read_bounded_line(&mut reader, 10).as_deref(), Some("next"));
        assert_eq!(read_bounded_line(&mut reader, 10).as_deref(), Some("last"));
        assert_eq!(read_bounded_line(&mut reader, 10), None);
    }
}
