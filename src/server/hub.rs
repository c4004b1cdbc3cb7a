//! The hub: the one thread that owns the server's state and reacts to every
//! [`HubEvent`]. It never waits on a socket (frames are queued on each
//! agent's connection) or a disk (lines go into a [`Batch`] that the
//! journal writes and syncs; acks and sends ride on the batch and happen
//! only once it is on disk).
//!
//! Events that are waiting are handled together and committed once, so a
//! broadcast's outcomes arriving together cost one fsync.
use super::console::{self, Out};
use super::control::Update;
use super::journal::{Batch, Journal, Log};
use super::keyguard::KeyGuard;
use super::ops::Ops;
use super::store::{ResponseVerdict, Store};
use super::tokens::TokenStore;
use super::{ByteBudget, HubEvent, LiveAgent, ServerConfig, conn::RateLimit, render};
use crate::protocol::events::Payload;
use crate::protocol::{
    self, CommandRequest, CommandResponse, ErrorBody, ErrorCode, Event, EventKind, Message,
    Welcome, now_ms,
};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

/// Unfinished commands younger than this are resent on reconnect; agents
/// refuse older ones anyway (policy.max_command_age_s, 300 s by default).
const RESEND_WINDOW_MS: i64 = 10 * 60 * 1000;
/// Events handled before one commit, at most.
const MAX_EVENTS_PER_COMMIT: usize = 1024;
/// Containers the hub tracks per agent, at most, and a name's length.
pub const MAX_CONTAINERS_PER_AGENT: usize = 256;
const MAX_CONTAINER_NAME: usize = 128;
/// A `stats` or `summary` larger than this is acked but not kept: a real
/// report of a host is a few KB.
const MAX_KEPT_REPORT_BYTES: usize = 256 * 1024;
/// A durable event larger than this is refused (`bad_request`, no ack).
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Durable events per agent: on average, and in a burst (a ledger resent
/// after a reconnect). Beyond it: `error` `busy`, no ack; the agent resends
/// after its next welcome.
const EVENTS_PER_S: f64 = 5.0;
const EVENT_BURST: f64 = 500.0;
/// How long `quit` waits for close frames to go out.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

pub(super) struct Live {
    pub session: Arc<LiveAgent>,
    /// The agent's containers as it last reported them (hello, then stats).
    pub containers: Vec<String>,
    /// Its last `stats` frame, for `nodes` and the health verdict (as
    /// text: see [`Live::stats`]; shared with the alert facts).
    pub last_stats: Option<Arc<str>>,
    /// Its last `summary` frame (era, payouts), for `nodes`.
    pub last_summary: Option<Arc<str>>,
    /// Durable events it may still send before being told to wait.
    pub event_budget: RateLimit,
    /// When the server last received its `stats` (server clock; 0: never).
    pub stats_ms: i64,
}

impl Live {
    /// Whether the agent announced `container` (in `hello`, or its last
    /// `stats`): only those count as its nodes.
    pub fn announced(&self, container: &str) -> bool {
        self.containers.iter().any(|c| c == container)
            || self.session.hello.containers.iter().any(|c| c == container)
    }

    /// The last `stats` report, parsed now: kept as text, a report costs
    /// ~2 KB an agent instead of ~15 KB parsed.
    pub fn stats(&self) -> Option<Map<String, Value>> {
        self.last_stats.as_deref().and_then(report_data)
    }

    pub fn summary(&self) -> Option<Map<String, Value>> {
        self.last_summary.as_deref().and_then(report_data)
    }
}

/// The `data` of a kept `stats` or `summary` frame.
fn report_data(frame: &str) -> Option<Map<String, Value>> {
    match Message::parse(frame) {
        Ok(Message::Stats(data) | Message::Summary(data)) => Some(data),
        _ => None,
    }
}

pub(super) struct Hub {
    pub config: ServerConfig,
    pub store: Store,
    pub journal: Journal,
    /// What the events handled since the last commit wrote or must do.
    pub batch: Batch,
    pub tokens: TokenStore,
    pub registry_stamp: Option<Vec<u8>>,
    pub live: BTreeMap<String, Live>,
    pub keyguard: KeyGuard,
    pub out: Out,
    pub interactive: bool,
    pub next_seq: u64,
    pub budget: Arc<ByteBudget>,
    /// The ctl client whose line is being handled (replies go there).
    pub reply: Option<Sender<Update>>,
    /// With `--wait`: until when that client waits for outcomes.
    pub ctl_wait: Option<Instant>,
    /// Command id → the ctl client waiting for its outcome, and until when.
    pub watchers: HashMap<String, (Sender<Update>, Instant)>,
    /// Alerts, metrics and schedules (see `ops.rs`).
    pub ops: Ops,
    /// Who issues the line being handled when it is not stdin or ctl.
    pub issued_by: Option<&'static str>,
    /// Broadcast confirmations and rollouts (src/server/rollout.rs).
    pub safety: super::rollout::SafetyState,
}

#[derive(PartialEq)]
pub(super) enum Flow {
    Continue,
    Quit,
}

impl Hub {
    pub fn new(
        config: ServerConfig,
        store: Store,
        journal: Journal,
        tokens: TokenStore,
        out: Out,
        budget: Arc<ByteBudget>,
        ops: Ops,
    ) -> Hub {
        let mut hub = Hub {
            config,
            store,
            journal,
            batch: Batch::default(),
            tokens,
            registry_stamp: None,
            live: BTreeMap::new(),
            keyguard: KeyGuard::default(),
            out,
            interactive: false,
            next_seq: 0,
            budget,
            reply: None,
            ctl_wait: None,
            watchers: HashMap::new(),
            ops,
            issued_by: None,
            safety: Default::default(),
        };
        hub.registry_stamp = hub.registry_stamp_now();
        hub.load_operator_key();
        hub
    }

    pub fn run(&mut self, rx: Receiver<HubEvent>) {
        while let Ok(event) = rx.recv() {
            let mut flow = self.handle(event);
            // Whatever else is already waiting joins the same commit.
            let mut handled = 1;
            while flow == Flow::Continue && handled < MAX_EVENTS_PER_COMMIT {
                match rx.try_recv() {
                    Ok(event) => flow = self.handle(event),
                    Err(_) => break,
                }
                handled += 1;
            }
            self.commit();
            if flow == Flow::Quit {
                self.shutdown();
                return;
            }
        }
    }

    /// Hand what was handled to the journal: its lines are synced, then its
    /// acks, sends and lines of output happen.
    pub fn commit(&mut self) {
        self.journal.submit(std::mem::take(&mut self.batch));
    }

    fn handle(&mut self, event: HubEvent) -> Flow {
        match event {
            HubEvent::Connected(session) => self.on_connected(session),
            HubEvent::Message {
                agent,
                conn_id,
                message,
                cost,
                raw,
            } => {
                if self
                    .live
                    .get(&agent)
                    .is_some_and(|l| l.session.conn_id == conn_id)
                {
                    self.on_message(&agent, message, cost, raw);
                }
                self.budget.give_back(cost);
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
            } => self.audit(json!({
                "ts": now_ms(), "action": "refused", "peer": peer, "agent": agent, "reason": reason,
            })),
            HubEvent::Operator(line) => {
                let flow = self.on_operator_line(&line);
                if flow == Flow::Continue {
                    self.prompt_after_commit();
                }
                return flow;
            }
            HubEvent::Control(request) => self.on_control(request),
            HubEvent::OperatorClosed => {
                // A server under systemd has no terminal: keep serving.
                crate::log::info(
                    "stdin closed; the server keeps running (stop it with SIGTERM or `quit`)",
                );
            }
            HubEvent::Tick => {
                self.on_tick();
                self.ops_tick();
            }
            HubEvent::AlertDelivery(report) => self.ops_on_delivery(report),
            HubEvent::Admin(request) => self.ops_on_admin(request),
            HubEvent::Web(request) => self.on_web(request),
            HubEvent::Terminate(signal) => {
                crate::log::info(&format!("{signal}: closing every connection and stopping"));
                return Flow::Quit;
            }
        }
        Flow::Continue
    }

    pub fn audit(&mut self, entry: Value) {
        self.batch.write(Log::Audit, &entry);
    }

    /// Print `text` once what was handled before it is on disk.
    pub fn line_after_commit(&mut self, text: String) {
        let out = self.out.clone();
        self.batch.then(move || out.line(&text));
    }

    /// Queue `message` for `agent` once what was handled before it is on disk.
    pub fn send_after_commit(&mut self, agent: &str, message: Message) {
        if let Some(live) = self.live.get(agent) {
            let session = live.session.clone();
            self.batch.then(move || {
                let _ = session.send(&message);
            });
        }
    }

    pub fn prompt(&self) {
        if self.interactive {
            self.out.prompt();
        }
    }

    fn prompt_after_commit(&mut self) {
        if self.interactive {
            let out = self.out.clone();
            self.batch.then(move || out.prompt());
        }
    }

    fn shutdown(&mut self) {
        for live in self.live.values() {
            live.session
                .link
                .close(protocol::close_code::GOING_AWAY, "server shutting down");
        }
        self.journal.finish();
        // Give the close frames a moment to go out; never wait for a peer.
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        while Instant::now() < deadline && !self.live.values().all(|l| l.session.is_flushed()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.out.line("bye");
    }

    fn on_connected(&mut self, session: Arc<LiveAgent>) {
        let agent = session.agent_id.clone();
        if let Some(old) = self.live.remove(&agent) {
            // Queued: the old connection's writer sends the close; the hub
            // never waits on it.
            old.session
                .link
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
        self.ops_seen(&agent, true);
        self.audit(json!({
            "ts": now_ms(), "action": "connected", "agent": agent, "peer": session.link.peer(),
            "host_name": session.hello.host_name, "version": session.hello.version,
        }));
        self.out.line(&format!(
            "* {agent} connected from {} ({} {}, containers: {})",
            session.link.peer(),
            console::inline(&session.hello.host_name),
            console::inline(&session.hello.version),
            console::inline(&session.hello.containers.join(" "))
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
                signatures: record.signatures.clone(),
            };
            let _ = session.send(&Message::Command(request));
        }
        let containers = valid_container_names(session.hello.containers.iter().map(String::as_str));
        self.live.insert(
            agent,
            Live {
                session,
                containers,
                last_stats: None,
                last_summary: None,
                event_budget: RateLimit::new(EVENTS_PER_S, EVENT_BURST),
                stats_ms: 0,
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
            self.ops_seen(agent, false);
            // What it reported is stale now; it reports again when back.
            let found = self.keyguard.forget_agent(agent);
            self.raise_duplicates(found);
            self.audit(json!({
                "ts": now_ms(), "action": "disconnected", "agent": agent, "reason": reason,
            }));
            self.out.line(&format!(
                "* {agent} disconnected: {}",
                console::inline(reason)
            ));
        }
    }

    fn on_message(&mut self, agent: &str, message: Message, cost: usize, raw: Option<Arc<str>>) {
        // `cost` counts a parsed frame as three times its text.
        let cost = cost / 3;
        self.ops_seen(agent, true);
        match message {
            Message::Stats(data) => self.on_stats(agent, data, cost, raw),
            Message::Summary(_) => {
                if let Some(live) = self.live.get_mut(agent)
                    && cost <= MAX_KEPT_REPORT_BYTES
                {
                    live.last_summary = raw.clone();
                    self.ops_on_report(agent, false, raw);
                }
            }
            Message::CommandResponse(response) => self.on_response(agent, response),
            Message::Event(event) => self.on_event(agent, event, cost),
            _ => {}
        }
    }

    fn on_stats(
        &mut self,
        agent: &str,
        data: Map<String, Value>,
        cost: usize,
        raw: Option<Arc<str>>,
    ) {
        let Some(live) = self.live.get_mut(agent) else {
            return;
        };
        if let Some(list) = data.get("containers").and_then(Value::as_array) {
            live.containers = valid_container_names(
                list.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str)),
            );
        }
        if cost > MAX_KEPT_REPORT_BYTES {
            crate::log::warn(&format!(
                "{agent} sent a stats report of {cost} bytes; not kept (at most {MAX_KEPT_REPORT_BYTES})"
            ));
            return;
        }
        // Only the containers the agent manages count as nodes (the kept
        // text is filtered the same way when shown: see `announced_nodes`).
        if let Some(Value::Object(nodes)) = data.get("nodes") {
            let managed: Vec<(&String, &Value)> = nodes
                .iter()
                .filter(|(name, _)| live.announced(name))
                .collect();
            self.guard_keystores(agent, managed.iter().copied());
        }
        if let Some(live) = self.live.get_mut(agent) {
            live.last_stats = raw.clone();
            live.stats_ms = now_ms();
        }
        self.ops_on_report(agent, true, raw);
    }

    fn on_response(&mut self, agent: &str, mut response: CommandResponse) {
        // Agent text printed inline must not start a line of its own.
        response.error = response.error.map(|e| console::inline(&e).into_owned());
        if !response.status.is_terminal() {
            self.store.record_progress(agent, &response);
            self.out.line(&format!(
                "[{agent} {}] {}",
                console::inline(&response.id),
                response.status.as_str()
            ));
            return;
        }
        // What is kept on disk (and in memory) is bounded; the operator
        // still sees the whole of what the agent sent.
        let verdict =
            self.store
                .record_response(agent, &super::outcome::bounded(&response), &mut self.batch);
        let ack = Message::CommandAck(protocol::IdRef {
            id: response.id.clone(),
        });
        match verdict {
            ResponseVerdict::Recorded => {
                self.send_after_commit(agent, ack);
                if let Some((tx, _)) = self.watchers.remove(&response.id) {
                    let outcome = Update::Outcome {
                        id: response.id.clone(),
                        status: response.status.as_str().to_string(),
                        code: response.code.map(|c| c.as_str().to_string()),
                        error: response.error.clone(),
                        result: response.result.clone(),
                    };
                    self.batch.then(move || {
                        let _ = tx.send(outcome);
                    });
                }
                let record = self.store.get(&response.id).cloned();
                if let Some(record) = &record {
                    self.guard_confirmed_keys(agent, record, &response);
                    self.ops_on_outcome(agent, record, &response);
                }
                let (command, target) = record.map(|r| (r.command, r.target)).unwrap_or_default();
                self.line_after_commit(render::response(agent, &command, &target, &response));
                let completed = response.status.as_str() == "completed";
                self.rollout_outcome(agent, &response.id, completed);
            }
            // After the commit too: the first record of it may still be in
            // this very batch.
            ResponseVerdict::Duplicate | ResponseVerdict::NeverIssued => {
                self.send_after_commit(agent, ack)
            }
            ResponseVerdict::OtherAgent => self.send_now(
                agent,
                Message::Error(ErrorBody {
                    code: ErrorCode::BadRequest,
                    message: format!("command {} was not issued to {agent}", response.id),
                    reference: Some(response.id.clone()),
                }),
            ),
        }
    }

    fn send_now(&self, agent: &str, message: Message) {
        if let Some(live) = self.live.get(agent) {
            let _ = live.session.send(&message);
        }
    }

    fn on_event(&mut self, agent: &str, event: Event, cost: usize) {
        let refuse = |code, message: String| {
            Message::Error(ErrorBody {
                code,
                message,
                reference: Some(event.event_id.clone()),
            })
        };
        if cost > MAX_EVENT_BYTES {
            let why = format!("event of {cost} bytes refused: at most {MAX_EVENT_BYTES}");
            self.send_now(agent, refuse(ErrorCode::BadRequest, why));
            return;
        }
        let Some(live) = self.live.get_mut(agent) else {
            return;
        };
        if !live.event_budget.take().is_zero() {
            let why = "too many events; not stored, send it again after the next welcome";
            self.send_now(agent, refuse(ErrorCode::Busy, why.into()));
            return;
        }
        let payload = event.payload();
        let fresh = self
            .store
            .record_event(agent, &event, payload.as_ref().ok(), &mut self.batch);
        if fresh {
            self.line_after_commit(render::event(agent, &event));
            match &payload {
                Ok(payload) => {
                    self.ops_on_event(agent, payload);
                    if let Payload::KeyUpdate(update) = payload {
                        self.guard_key_update(agent, update);
                    }
                }
                // Acked and kept as it came, as before payloads were typed.
                Err(e) => crate::log::warn(&format!(
                    "{agent}: {} {} is stored but not read: its data does not fit the protocol: {e}",
                    event.kind.as_str(),
                    event.event_id
                )),
            }
        }
        let ack = match event.kind {
            EventKind::KeyUpdate => Message::KeyUpdateAck(protocol::KeyUpdateAck {
                event_id: event.event_id.clone(),
                status: "stored".into(),
            }),
            _ => Message::EventAck(protocol::EventAck {
                event_id: event.event_id.clone(),
            }),
        };
        self.send_after_commit(agent, ack);
    }

    /// The registry's bytes: compared whole, since a replaced token keeps
    /// the file's size and a coarse mtime may not move.
    fn registry_stamp_now(&self) -> Option<Vec<u8>> {
        std::fs::read(self.tokens.path()).ok()
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.watchers.retain(|_, (_, until)| *until > now);
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
        self.ops_sync_registry(registry.agents.keys().cloned());
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
                    .link
                    .close(protocol::close_code::POLICY, "token revoked");
                let found = self.keyguard.forget_agent(&agent);
                self.raise_duplicates(found);
                self.audit(json!({"ts": now_ms(), "action": "revoked", "agent": agent}));
                self.out.line(&format!(
                    "* {agent} disconnected: its token was removed or replaced"
                ));
            }
        }
    }

    pub fn new_command_id(&mut self) -> String {
        loop {
            self.next_seq += 1;
            let id = format!("c{}-{}", now_ms(), self.next_seq);
            if !self.store.contains(&id) {
                return id;
            }
        }
    }
}

/// `stats.nodes` without the nodes the agent never announced.
pub(super) fn announced_nodes(live: &Live, mut stats: Map<String, Value>) -> Map<String, Value> {
    if let Some(Value::Object(nodes)) = stats.get_mut("nodes") {
        nodes.retain(|name, _| live.announced(name));
    }
    stats
}

/// Container names an agent reports, kept only while plausible and bounded.
fn valid_container_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    names
        .filter(|n| !n.is_empty() && n.len() <= MAX_CONTAINER_NAME)
        .take(MAX_CONTAINERS_PER_AGENT)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
