//! `warden agent`: runs on a validator host, streams what it sees to the
//! server and runs the server's commands within its own policy.
//!
//! Threads: the caller's thread connects (and reconnects forever, with
//! exponential backoff and jitter) and reads frames; `stats` sends a report
//! every interval; each command runs on its own `cmd-<n>` thread (a
//! counter: no thread name comes from the wire).
//!
//! Invariants:
//! - The agent's policy, not the server, decides what runs.
//! - A command id runs at most once, ever (see [`ledger::Ledger`]).
//! - Mutating commands on one container never overlap; the later one fails
//!   with `busy`.
pub mod backups;
pub mod config;
mod dispatch;
mod failure;
mod keys;
mod keystore_cache;
pub mod ledger;
pub mod limits;
mod node;
pub mod policy;
mod runner;
mod stats;
mod summary;
mod watch;

use crate::peer_loop::{End, PingWhen, send_error};
use crate::protocol::{self, CommandResponse, ErrorCode, Hello, Message};
use crate::transport::{self, Connection, Incoming, ReadOutcome};
use config::AgentConfig;
use ledger::Ledger;
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How long SIGTERM waits for running commands. A command cut off here is
/// reported after the next start as failed with an unknown outcome.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub enum AgentError {
    Config(String),
    State(std::io::Error),
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Config(e) => f.write_str(e),
            AgentError::State(e) => write!(f, "cannot use the agent's state dir: {e}"),
        }
    }
}

impl std::error::Error for AgentError {}

/// State shared by the connection, stats and command threads.
pub struct Agent {
    pub config: AgentConfig,
    pub docker: crate::docker::Docker,
    /// Shared by every node's RPC client (one connection pool).
    rpc: crate::rpc::RpcClient,
    ledger: Mutex<Ledger>,
    busy: Arc<Mutex<HashSet<String>>>,
    audit: Mutex<crate::fsutil::JsonLog>,
    connection: Mutex<Option<Arc<Connection>>>,
    /// Each node's keystore public keys as last listed (by the summary
    /// loop), reported in stats for the server's duplicate-key guard.
    keystores: Mutex<std::collections::BTreeMap<String, Vec<(String, String)>>>,
    /// Serialises updates of the known-session-keys file.
    known_keys_lock: Mutex<()>,
    /// Managed containers and keystore listings, kept by `docker events`.
    watch: watch::ContainerWatch,
    /// Makes event ids unique within this process (with the time).
    event_seq: std::sync::atomic::AtomicU64,
    /// Numbers command threads (`cmd-<n>`).
    command_seq: std::sync::atomic::AtomicU64,
    /// Set on SIGTERM: new commands are refused while the running ones finish.
    shutting_down: std::sync::atomic::AtomicBool,
    running: std::sync::atomic::AtomicUsize,
    /// Commands per second (see `limits.rs`).
    rate: Mutex<limits::TokenBucket>,
    /// Free space of the state dir (see `limits.rs`).
    disk: limits::DiskGuard,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Agent {
    /// Send if connected. Messages that must not be lost go through the
    /// ledger first and are resent after the next welcome.
    fn send(&self, message: &Message) {
        let conn = lock(&self.connection).clone();
        if let Some(conn) = conn {
            let _ = conn.send_text(&message.to_json());
        }
    }

    /// Store a terminal response durably, then send it.
    /// The fsync happens outside the ledger's lock, shared with whoever
    /// finishes at the same time (group commit).
    /// Returns whether this was the id's first terminal response.
    fn finish(&self, response: CommandResponse) -> bool {
        let stored = lock(&self.ledger).finish(response.clone());
        let stored = match stored {
            Ok(Some(ticket)) => ticket.wait().map(|()| true),
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        };
        match stored {
            Ok(true) => {
                self.send(&Message::CommandResponse(response));
                true
            }
            Ok(false) => false,
            Err(e) => {
                // Still send it: better delivered once than never.
                crate::log::error(&format!(
                    "cannot store the response to {} on disk: {e}",
                    response.id
                ));
                self.send(&Message::CommandResponse(response));
                true
            }
        }
    }

    /// Raise a durable event (key update, backup, validator change).
    pub fn raise(&self, event: protocol::Event) {
        let event = with_wire_id(event);
        let message = Message::Event(event.clone());
        let stored = lock(&self.ledger).raise(event);
        let stored = match stored {
            Ok(Some(ticket)) => ticket.wait(),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            crate::log::error(&format!("cannot store an event on disk: {e}"));
        }
        self.send(&message);
    }

    /// Graceful stop: refuse new commands, let running ones finish (their
    /// responses are on disk either way), say goodbye, exit 0.
    fn terminate(&self, signal: &str) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let running = self.running.load(Ordering::SeqCst);
        crate::log::info(&format!(
            "{signal}: stopping after {running} running command(s) finish (at most {} s)",
            SHUTDOWN_GRACE.as_secs()
        ));
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.running.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        if let Some(conn) = lock(&self.connection).clone() {
            conn.close(protocol::close_code::GOING_AWAY, "agent shutting down");
        }
        std::process::exit(0);
    }

    fn remember_keystore(&self, container: &str, keys: &[(crate::chain::KeyTypeId, [u8; 32])]) {
        let listed = keys
            .iter()
            .map(|(t, k)| (t.to_string(), crate::chain::PublicKey::from(*k).to_string()))
            .collect();
        lock(&self.keystores).insert(container.to_string(), listed);
    }

    fn keystore_of(&self, container: &str) -> Option<Vec<(String, String)>> {
        lock(&self.keystores).get(container).cloned()
    }

    fn next_event_seq(&self) -> u64 {
        self.event_seq.fetch_add(1, Ordering::SeqCst)
    }

    pub fn is_connected(&self) -> bool {
        lock(&self.connection).is_some()
    }

    /// Append to the agent's own audit log: every command, allowed or not.
    fn audit(&self, entry: &serde_json::Value) {
        if let Err(e) = lock(&self.audit).append(entry, true) {
            crate::log::error(&format!("cannot write the audit log: {e}"));
        }
    }

    /// Claim containers for a mutating command; `None` if one is busy.
    fn claim(&self, containers: &[String]) -> Option<BusyGuard> {
        let mut busy = lock(&self.busy);
        if containers.iter().any(|c| busy.contains(c)) {
            return None;
        }
        busy.extend(containers.iter().cloned());
        Some(BusyGuard {
            busy: self.busy.clone(),
            containers: containers.to_vec(),
        })
    }

    pub fn managed_containers(&self) -> Result<Vec<String>, crate::docker::DockerError> {
        let mut names: Vec<String> = self
            .docker
            .list_containers()?
            .into_iter()
            .flat_map(|c| c.names)
            .filter(|n| self.config.policy.manages(n))
            .collect();
        names.sort();
        Ok(names)
    }
}

/// Containers claimed by one command, given back on drop.
struct BusyGuard {
    busy: Arc<Mutex<HashSet<String>>>,
    containers: Vec<String>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut busy = lock(&self.busy);
        for c in &self.containers {
            busy.remove(c);
        }
    }
}

pub fn run(config: AgentConfig) -> Result<(), AgentError> {
    let tls = transport::client_tls_config(&transport::ClientTls {
        ca_file: config.ca_file.as_deref(),
        client_cert: config
            .client_cert
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path())),
        server_fingerprint: config.server_fingerprint.as_deref(),
    })
    .map_err(|e| AgentError::Config(e.to_string()))?;
    // A seen id must be remembered as long as a command carrying it could
    // still pass the age check: its age limit, plus how far ahead of our
    // clock a command may be stamped, plus a minute for clock steps.
    let id_window = config.policy.max_command_age()
        + Duration::from_millis(policy::MAX_CLOCK_SKEW_AHEAD_MS.unsigned_abs())
        + Duration::from_secs(60);
    let (ledger, interrupted) =
        Ledger::open(&config.state_dir, id_window).map_err(AgentError::State)?;
    if ledger.skipped_lines > 0 {
        crate::log::warn(&format!(
            "skipped {} torn or unreadable lines in {}/ledger.jsonl",
            ledger.skipped_lines,
            config.state_dir.display()
        ));
    }
    for id in &interrupted {
        crate::log::warn(&format!(
            "command {id} was running when the agent stopped; reporting it as failed with an unknown outcome"
        ));
    }
    let audit = crate::fsutil::JsonLog::open(&config.state_dir.join("audit.jsonl"))
        .map_err(AgentError::State)?;
    let docker = config.docker();
    let rpc = node::base_client(Duration::from_secs(config.rpc.timeout_s), docker.clone());
    let disk = limits::DiskGuard::new(&config.state_dir, config.limits.min_free_mb);
    let agent = Arc::new(Agent {
        config,
        docker,
        rpc,
        ledger: Mutex::new(ledger),
        busy: Arc::new(Mutex::new(HashSet::new())),
        audit: Mutex::new(audit),
        connection: Mutex::new(None),
        keystores: Mutex::new(Default::default()),
        known_keys_lock: Mutex::new(()),
        watch: Default::default(),
        event_seq: std::sync::atomic::AtomicU64::new(0),
        command_seq: std::sync::atomic::AtomicU64::new(0),
        shutting_down: AtomicBool::new(false),
        running: AtomicUsize::new(0),
        rate: Mutex::new(limits::TokenBucket::new(
            limits::COMMAND_BURST,
            limits::COMMANDS_PER_S,
            Instant::now(),
        )),
        disk,
    });
    let for_signals = agent.clone();
    crate::signals::on_terminate(move |signal| for_signals.terminate(signal))
        .map_err(|e| AgentError::Config(format!("cannot install the SIGTERM handler: {e}")))?;
    backups::recover(&agent);
    watch::spawn(agent.clone());
    stats::spawn(agent.clone());
    summary::spawn(agent.clone());

    let mut backoff = BACKOFF_START;
    loop {
        let started = Instant::now();
        match connect_and_serve(&agent, &tls) {
            Ok(reason) => crate::log::info(&format!("disconnected from the server: {reason}")),
            Err(e) => crate::log::warn(&format!(
                "cannot connect to {}: {e}",
                agent.config.server_url
            )),
        }
        *lock(&agent.connection) = None;
        // A session that lasted a while resets the backoff.
        if started.elapsed() > Duration::from_secs(30) {
            backoff = BACKOFF_START;
        }
        let wait = with_jitter(backoff);
        crate::log::info(&format!("reconnecting in {:.1} s", wait.as_secs_f64()));
        thread::sleep(wait);
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Between 50 % and 100 % of `base`, so a fleet does not reconnect in step.
fn with_jitter(base: Duration) -> Duration {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut byte = [0u8; 2];
    let _ = SystemRandom::new().fill(&mut byte);
    let fraction = 0.5 + f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX) / 2.0;
    base.mul_f64(fraction)
}

fn connect_and_serve(
    agent: &Arc<Agent>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<String, String> {
    let config = &agent.config;
    let conn = transport::connect(
        &config.server_url,
        config.token.expose(),
        tls,
        protocol::DEFAULT_MAX_FRAME_BYTES,
        CONNECT_TIMEOUT,
    )
    .map_err(|e| match e {
        transport::TransportError::Refused { status: 401, .. } => format!(
            "{e}: the server does not accept this agent's token (run `warden token add {}` on the server and update {})",
            config.agent_id,
            config.token_file.display()
        ),
        other => other.to_string(),
    })?;
    let conn = Arc::new(conn);
    let containers = match agent.managed_containers() {
        Ok(c) => c,
        Err(e) => {
            crate::log::warn(&format!("cannot list containers: {e}"));
            Vec::new()
        }
    };
    let hello = Message::Hello(Hello {
        agent_id: config.agent_id.clone(),
        host_name: config.host_name.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol: protocol::PROTOCOL_VERSION,
        containers,
        commands: config
            .policy
            .permitted_commands()
            .into_iter()
            .map(String::from)
            .collect(),
    });
    conn.send_text(&hello.to_json())
        .map_err(|e| e.to_string())?;
    let (heartbeat_s, behind_welcome) = await_welcome(&conn)?;
    crate::log::info(&format!(
        "connected to {} as {}",
        config.server_url, config.agent_id
    ));
    *lock(&agent.connection) = Some(conn.clone());
    let pending = lock(&agent.ledger).pending();
    for message in pending {
        conn.send_text(&message.to_json())
            .map_err(|e| e.to_string())?;
    }
    Ok(read_loop(
        agent,
        &conn,
        Duration::from_secs(clamp_heartbeat(heartbeat_s)),
        behind_welcome,
    ))
}

/// `event` with an id the wire accepts: an id the server would refuse (e.g.
/// made from a very long container name) would be resent forever, so it is
/// replaced by a digest of itself, the same every time.
fn with_wire_id(mut event: protocol::Event) -> protocol::Event {
    if protocol::is_valid_id(&event.event_id) {
        return event;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, event.event_id.as_bytes());
    let id = format!("evt-{}", &hex::encode(digest.as_ref())[..40]);
    crate::log::warn(&format!(
        "event id {:?} is not a valid wire id; sending it as {id}",
        event.event_id.chars().take(80).collect::<String>()
    ));
    event.data.insert("event_id".into(), id.clone().into());
    event.event_id = id;
    event
}

/// `welcome.heartbeat_s` within [`protocol::HEARTBEAT_S_RANGE`]: a server's
/// number is not trusted (a huge one overflowed the silence timer, zero
/// would spin).
fn clamp_heartbeat(heartbeat_s: u64) -> u64 {
    let (low, high) = protocol::HEARTBEAT_S_RANGE.into_inner();
    let clamped = heartbeat_s.clamp(low, high);
    if clamped != heartbeat_s {
        crate::log::warn(&format!(
            "the server asked for a heartbeat of {heartbeat_s} s; using {clamped} s (the protocol allows {low} to {high})"
        ));
    }
    clamped
}

/// Wait for `welcome`; returns its heartbeat and any frames that arrived
/// behind it in the same read (a command may follow the welcome at once).
fn await_welcome(conn: &Connection) -> Result<(u64, Vec<Incoming>), String> {
    let deadline = Instant::now() + Duration::from_secs(protocol::HELLO_TIMEOUT_S);
    let mut buf = Connection::read_buffer();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            conn.abort();
            return Err("no welcome from the server in time".into());
        }
        conn.set_read_timeout(left).map_err(|e| e.to_string())?;
        let ReadOutcome::Frames(frames) = conn.read_batch(&mut buf) else {
            continue;
        };
        let mut frames = frames.into_iter();
        while let Some(frame) = frames.next() {
            match frame {
                Incoming::Text(text) => match Message::parse(&text) {
                    Ok(Message::Welcome(w)) => return Ok((w.heartbeat_s, frames.collect())),
                    Ok(Message::Error(e)) => {
                        return Err(format!("server refused: {} ({})", e.message, e.code));
                    }
                    Ok(other) => {
                        return Err(format!("expected welcome, got {}", other.type_name()));
                    }
                    Err(r) => {
                        return Err(format!(
                            "unreadable frame instead of welcome: {}",
                            r.message
                        ));
                    }
                },
                Incoming::Closed => {
                    return Err("the server closed the connection before welcome".into());
                }
                Incoming::TooBig => return Err("the server sent an oversized frame".into()),
                Incoming::Binary | Incoming::Control => {}
            }
        }
    }
}

fn read_loop(
    agent: &Arc<Agent>,
    conn: &Arc<Connection>,
    heartbeat: Duration,
    unread: Vec<Incoming>,
) -> String {
    let end = crate::peer_loop::run(conn, unread, heartbeat, PingWhen::WhenSilent, |text| {
        handle_text(agent, conn, text)
    });
    match end {
        End::Closed => "the server closed the connection".into(),
        End::TooBig => "the server sent a message over the size limit".into(),
        End::Silent => format!("no word from the server for {} s", heartbeat.as_secs() * 3),
    }
}

fn handle_text(agent: &Arc<Agent>, conn: &Arc<Connection>, text: &str) {
    let message = match Message::parse_incoming(text) {
        Ok(m) => m,
        Err(Some(r)) => {
            send_error(conn, r.code, r.message, r.reference);
            return;
        }
        Err(None) => {
            crate::log::warn("the server sent a malformed error frame");
            return;
        }
    };
    match message {
        Message::Ping(t) => {
            let _ = conn.send_text(&Message::Pong(t).to_json());
        }
        Message::Pong(_) | Message::StatsAck(_) | Message::SummaryAck(_) | Message::Welcome(_) => {}
        Message::Command(request) => dispatch::on_command(agent, request),
        Message::CommandAck(r) => {
            let _ = lock(&agent.ledger).ack_command(&r.id);
        }
        Message::EventAck(r) => {
            let _ = lock(&agent.ledger).ack_event(&r.event_id);
        }
        Message::KeyUpdateAck(r) => {
            let _ = lock(&agent.ledger).ack_event(&r.event_id);
        }
        Message::Error(e) => crate::log::warn(&format!(
            "the server reported an error: {} {}{}",
            e.code,
            e.message,
            e.reference
                .map(|r| format!(" (ref {r})"))
                .unwrap_or_default()
        )),
        other => send_error(
            conn,
            ErrorCode::BadRequest,
            format!("servers do not send {}", other.type_name()),
            other.reference(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_are_clamped() {
        assert_eq!(clamp_heartbeat(0), 1);
        assert_eq!(clamp_heartbeat(30), 30);
        assert_eq!(clamp_heartbeat(u64::MAX), 3600);
    }

    #[test]
    fn an_event_id_the_wire_refuses_is_replaced_by_its_digest() {
        let event = |id: &str| -> protocol::Event {
            protocol::events::Payload::ValidatorDeactivated(protocol::events::ValidatorChange {
                event_id: id.into(),
                node: "3node0".into(),
                era: 1,
                validator_account: None,
                previous_validator: Some("5A".into()),
                is_authority: None,
                timestamp: 1,
            })
            .into()
        };
        let good = with_wire_id(event("backup-3node0-1-2"));
        assert_eq!(good.event_id, "backup-3node0-1-2");
        let long = format!("backup-{}-1733312345678-7", "n".repeat(128));
        let fixed = with_wire_id(event(&long));
        assert!(protocol::is_valid_id(&fixed.event_id), "{}", fixed.event_id);
        let protocol::events::Payload::ValidatorDeactivated(payload) = fixed.payload().unwrap()
        else {
            panic!("{fixed:?}")
        };
        assert_eq!(payload.event_id, fixed.event_id);
        assert_eq!(with_wire_id(event(&long)).event_id, fixed.event_id);
    }
}
