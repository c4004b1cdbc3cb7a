//! The server's side of one agent connection: upgrade and token check,
//! `hello`, then reading frames until the connection ends. Stateless work
//! (pings, heartbeats, envelope errors, stats acks) is answered here; the rest
//! goes to the hub.
use super::admission::Admission;
use super::tokens::TokenStore;
use super::{ByteBudget, HubEvent, LiveAgent};
use crate::peer_loop::{End, PingWhen, send_error};
use crate::protocol::{self, ErrorCode, Message, Rejection, Timestamp, close_code, now_ms};
use crate::transport::{self, Connection, Incoming, ReadOutcome, WriterPool};
use rustls::pki_types::CertificateDer;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::handshake::server::{ErrorResponse, Request};
use tungstenite::http;

/// TCP accept to a finished upgrade (TLS included). Short: a real agent
/// needs milliseconds, and every second an idle socket is held is a place an
/// attacker keeps (see `admission.rs`).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connection threads parse JSON and TLS records; 256 KiB is ample (serde's
/// recursion limit bounds the depth) and only touched pages cost memory.
const CONN_STACK: usize = 256 * 1024;

/// What one agent may send on average, and in a burst (a broadcast's
/// responses, a resend of its ledger after a reconnect).
const MESSAGES_PER_S: f64 = 200.0;
const MESSAGE_BURST: f64 = 1000.0;

/// A token bucket: `take` says how long to wait before the next message.
pub struct RateLimit {
    per_s: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    pub fn new(per_s: f64, burst: f64) -> RateLimit {
        RateLimit {
            per_s,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    pub fn take(&mut self) -> Duration {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_s).min(self.burst);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_s)
        }
    }
}

pub struct ConnShared {
    pub tokens: TokenStore,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub heartbeat: Duration,
    pub heartbeat_s: u64,
    pub max_message_bytes: usize,
    /// Each agent's client certificate must name its agent id.
    pub mutual_tls: bool,
    pub hub: SyncSender<HubEvent>,
    /// What frames queued for the hub may hold, in bytes.
    pub budget: Arc<ByteBudget>,
    pub writers: Arc<WriterPool>,
    pub next_conn_id: AtomicU64,
    /// Connections still in TLS, upgrade or hello.
    pub admission: Admission,
}

pub fn accept_loop(listener: TcpListener, shared: Arc<ConnShared>) {
    for stream in listener.incoming() {
        let socket = match stream {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                crate::log::error(&format!("accept failed: {e}"));
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let shared = shared.clone();
        let name = socket
            .peer_addr()
            .map(|p| format!("conn-{p}"))
            .unwrap_or_else(|_| "conn".into());
        let spawned = thread::Builder::new()
            .name(name)
            .stack_size(CONN_STACK)
            .spawn(move || serve(socket, shared));
        if let Err(e) = spawned {
            crate::log::error(&format!("cannot start a connection thread: {e}"));
        }
    }
}

struct Authorized {
    agent_id: String,
    token_sha256: String,
}

fn http_error(status: u16, body: &str) -> ErrorResponse {
    let mut response = http::Response::new(Some(body.to_string()));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    response
}

/// Why an upgrade was refused: the HTTP answer, and a reason for the audit log.
struct Refusal {
    status: u16,
    body: &'static str,
    reason: String,
}

fn refusal(status: u16, body: &'static str, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        body,
        reason: reason.into(),
    }
}

/// Path first (404 before any token check), then the bearer token.
fn authorize(
    request: &Request,
    client_chain: &[CertificateDer<'static>],
    shared: &ConnShared,
) -> Result<Authorized, Refusal> {
    if request.uri().path() != "/agent" {
        return Err(refusal(
            404,
            "not found: agents connect to /agent\n",
            "wrong path",
        ));
    }
    let presented = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented.filter(|t| !t.is_empty()) else {
        return Err(refusal(
            401,
            "unauthorized: send Authorization: Bearer <token>\n",
            "no token",
        ));
    };
    let registry = shared.tokens.load().map_err(|e| {
        refusal(
            500,
            "the server cannot read its agent registry\n",
            e.to_string(),
        )
    })?;
    match registry.authenticate(presented) {
        Some(agent_id)
            if shared.mutual_tls && !transport::certificate_names(client_chain, &agent_id) =>
        {
            Err(refusal(
                401,
                "unauthorized: the client certificate does not name this agent\n",
                format!("client certificate does not name agent {agent_id}"),
            ))
        }
        Some(agent_id) => {
            let token_sha256 = registry.agents[&agent_id].token_sha256.clone();
            Ok(Authorized {
                agent_id,
                token_sha256,
            })
        }
        None => Err(refusal(401, "unauthorized: unknown token\n", "wrong token")),
    }
}

/// A reply from the connection's own thread (pong, ack).
fn send(conn: &Connection, message: &Message) -> bool {
    conn.reply_text(&message.to_json()).is_ok()
}

fn refuse(conn: &Connection, code: ErrorCode, why: &str) {
    send_error(conn, code, why.to_string(), None);
    conn.close(close_code::POLICY, why);
}

#[allow(
    clippy::result_large_err,
    reason = "tungstenite's callback type fixes the size of the error response"
)]
fn serve(socket: std::net::TcpStream, shared: Arc<ConnShared>) {
    let peer = socket
        .peer_addr()
        .map(|p| p.to_string())
        .unwrap_or_default();
    // Unauthenticated connections are bounded: a flood of them evicts its
    // own oldest, never an agent that authenticates.
    let mut admitted = match shared.admission.admit(&socket) {
        Ok((ticket, _evicted)) => Some(ticket),
        Err(_) => return,
    };
    // TLS and the HTTP upgrade get their own bounded window.
    let handshake_deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut refused_because = None;
    let accepted = transport::accept(
        socket,
        shared.tls.as_ref(),
        shared.max_message_bytes,
        handshake_deadline,
        |request, chain| {
            let verdict = authorize(request, chain, &shared);
            if verdict.is_ok() {
                // Authenticated: it leaves the pool of unauthenticated
                // connections before its 101 is written. Evicted later (the
                // server slow in a reconnect storm), the agent would read its
                // 101, say hello, get a welcome and lose the connection at
                // once.
                admitted.take();
            }
            verdict.map_err(|r| {
                refused_because = Some(r.reason);
                http_error(r.status, r.body)
            })
        },
    );
    let evicted = admitted.take().is_some_and(|ticket| ticket.was_evicted());
    let (conn, auth) = match accepted {
        Ok((conn, auth)) => {
            let conn = Arc::new(conn);
            if conn.queue_writes(&shared.writers).is_err() {
                return;
            }
            (conn, auth)
        }
        Err(e) => {
            let reason = match refused_because {
                Some(reason) => reason,
                None if evicted => format!(
                    "evicted before it authenticated, to make room: too many connections were being set up at once ({e})"
                ),
                None => e.to_string(),
            };
            let _ = shared.hub.send(HubEvent::Refused {
                peer,
                agent: None,
                reason,
            });
            return;
        }
    };
    // The hello window starts once the upgrade is done, not at TCP accept.
    let deadline = Instant::now() + Duration::from_secs(protocol::HELLO_TIMEOUT_S);
    let Some((hello, behind_hello)) = await_hello(&conn, &auth, deadline, &shared, &peer) else {
        return;
    };
    let session = Arc::new(LiveAgent {
        agent_id: auth.agent_id.clone(),
        conn_id: shared.next_conn_id.fetch_add(1, Ordering::Relaxed),
        link: conn.clone(),
        hello,
        connected_ms: now_ms(),
        last_seen_ms: AtomicI64::new(now_ms()),
        token_sha256: auth.token_sha256,
    });
    if shared
        .hub
        .send(HubEvent::Connected(session.clone()))
        .is_err()
    {
        return;
    }
    // The session's reading goes on in a fresh thread: the handshake's
    // deep call chains (TLS, HTTP, the first JSON) touched ~24 KB of this
    // thread's stack, which would stay resident for the connection's life.
    // A new thread's stack holds only what the read loop touches.
    let name = format!("agent-{}", session.agent_id);
    let read = {
        let (session, conn, shared) = (session.clone(), conn.clone(), shared.clone());
        move || read_session(&session, &conn, &shared, behind_hello)
    };
    if let Err(e) = thread::Builder::new()
        .name(name)
        .stack_size(CONN_STACK)
        .spawn(read)
    {
        crate::log::error(&format!(
            "cannot start the reader of {}: {e}",
            session.agent_id
        ));
        conn.abort();
        let _ = shared.hub.send(HubEvent::Disconnected {
            agent: session.agent_id.clone(),
            conn_id: session.conn_id,
            reason: "the server could not start its reader".into(),
        });
    }
}

fn read_session(
    session: &LiveAgent,
    conn: &Connection,
    shared: &ConnShared,
    behind_hello: Vec<Incoming>,
) {
    let reason = read_loop(session, conn, shared, behind_hello);
    conn.end();
    let _ = shared.hub.send(HubEvent::Disconnected {
        agent: session.agent_id.clone(),
        conn_id: session.conn_id,
        reason,
    });
}

/// The first frame must be a valid `hello` for the token's agent, within
/// the hello timeout; anything else is answered with an error and 1008.
fn await_hello(
    conn: &Connection,
    auth: &Authorized,
    deadline: Instant,
    shared: &ConnShared,
    peer: &str,
) -> Option<(protocol::Hello, Vec<Incoming>)> {
    let mut buf = Connection::read_buffer();
    let refused = |reason: String| {
        let _ = shared.hub.send(HubEvent::Refused {
            peer: peer.to_string(),
            agent: Some(auth.agent_id.clone()),
            reason,
        });
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.set_read_timeout(left).is_err() {
            refuse(
                conn,
                ErrorCode::BadRequest,
                "no hello within 10 s of the upgrade",
            );
            refused("no hello in time".into());
            return None;
        }
        let frames = match conn.read_batch(&mut buf) {
            ReadOutcome::Idle => continue,
            ReadOutcome::Frames(f) => f,
        };
        let mut frames = frames.into_iter();
        while let Some(frame) = frames.next() {
            let text = match frame {
                Incoming::Control => continue,
                Incoming::Closed => return None,
                Incoming::TooBig => {
                    conn.close(close_code::TOO_BIG, "message too big");
                    return None;
                }
                Incoming::Binary => {
                    refuse(
                        conn,
                        ErrorCode::BadRequest,
                        "the first frame must be a hello text frame",
                    );
                    refused("binary first frame".into());
                    return None;
                }
                Incoming::Text(t) => t,
            };
            let why = match Message::parse(&text) {
                Ok(Message::Hello(hello)) if hello.protocol != protocol::PROTOCOL_VERSION => (
                    ErrorCode::BadRequest,
                    format!(
                        "protocol {} is not supported; this server speaks 1",
                        hello.protocol
                    ),
                ),
                Ok(Message::Hello(hello)) if hello.agent_id != auth.agent_id => (
                    ErrorCode::Unauthorized,
                    format!(
                        "hello says agent {:?} but the token belongs to another agent",
                        hello.agent_id
                    ),
                ),
                // The token is checked again now: one removed or replaced
                // since the upgrade is refused here, not welcomed.
                Ok(Message::Hello(_)) if !token_still_valid(shared, auth) => (
                    ErrorCode::Unauthorized,
                    "this agent's token was removed or replaced; ask the operator for a new one"
                        .to_string(),
                ),
                Ok(Message::Hello(hello)) => return Some((hello, frames.collect())),
                Ok(other) => (
                    ErrorCode::BadRequest,
                    format!("the first frame must be hello, not {}", other.type_name()),
                ),
                Err(rejection) => (
                    ErrorCode::BadRequest,
                    format!("the first frame must be hello: {}", rejection.message),
                ),
            };
            refuse(conn, why.0, &why.1);
            refused(why.1);
            return None;
        }
    }
}

fn token_still_valid(shared: &ConnShared, auth: &Authorized) -> bool {
    shared.tokens.load().is_ok_and(|registry| {
        registry
            .agents
            .get(&auth.agent_id)
            .is_some_and(|entry| entry.token_sha256 == auth.token_sha256)
    })
}

/// Read frames until the connection ends; returns why it ended.
fn read_loop(
    session: &LiveAgent,
    conn: &Connection,
    shared: &ConnShared,
    unread: Vec<Incoming>,
) -> String {
    let mut budget = RateLimit::new(MESSAGES_PER_S, MESSAGE_BURST);
    let end = crate::peer_loop::run(conn, unread, shared.heartbeat, PingWhen::Always, |text| {
        session.last_seen_ms.store(now_ms(), Ordering::Relaxed);
        // Throttle a flooding agent: this thread stops reading, so TCP
        // pushes back on it; nothing queues up here.
        let wait = budget.take();
        if !wait.is_zero() {
            thread::sleep(wait);
        }
        handle_text(session, conn, shared, text);
    });
    match end {
        End::Closed => "connection closed".into(),
        End::TooBig => "sent a message over the size limit".into(),
        End::Silent => format!("silent for {} s", shared.heartbeat_s * 3),
    }
}

fn handle_text(session: &LiveAgent, conn: &Connection, shared: &ConnShared, text: &str) {
    let message = match Message::parse_incoming(text) {
        Ok(m) => m,
        Err(Some(Rejection {
            code,
            message,
            reference,
        })) => {
            send_error(conn, code, message, reference);
            return;
        }
        Err(None) => {
            crate::log::warn(&format!(
                "{} sent a malformed error frame",
                session.agent_id
            ));
            return;
        }
    };
    let forward = |message: Message| {
        let raw = matches!(message, Message::Stats(_) | Message::Summary(_)).then(|| text.into());
        // Wait here (TCP pushes back on the agent) while the hub's queue
        // holds too many bytes; the hub gives them back once handled.
        // A parsed frame takes about three times its text in memory.
        let cost = text.len() * 3;
        shared.budget.take(cost);
        let sent = shared.hub.send(HubEvent::Message {
            agent: session.agent_id.clone(),
            conn_id: session.conn_id,
            message,
            cost,
            raw,
        });
        if sent.is_err() {
            shared.budget.give_back(cost);
        }
    };
    match message {
        Message::Ping(t) => {
            send(conn, &Message::Pong(t));
        }
        Message::Pong(_) => {}
        Message::Stats(ref data) | Message::Summary(ref data) => {
            let timestamp = data.get("timestamp").and_then(|t| t.as_i64());
            let Some(timestamp) = timestamp else {
                send_error(
                    conn,
                    ErrorCode::BadRequest,
                    format!("{} needs an integer timestamp", message.type_name()),
                    None,
                );
                return;
            };
            let ack = match message {
                Message::Stats(_) => Message::StatsAck(Timestamp { timestamp }),
                _ => Message::SummaryAck(Timestamp { timestamp }),
            };
            send(conn, &ack);
            forward(message);
        }
        Message::CommandResponse(_) | Message::Event(_) => forward(message),
        // Nobody answers an error with an error.
        Message::Error(body) => crate::log::warn(&format!(
            "{} reported an error: {} {}",
            session.agent_id, body.code, body.message
        )),
        Message::Hello(_) => {
            send_error(
                conn,
                ErrorCode::BadRequest,
                "hello was already accepted on this connection".into(),
                None,
            );
        }
        other => {
            send_error(
                conn,
                ErrorCode::BadRequest,
                format!("agents do not send {}", other.type_name()),
                other.reference(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimit;
    use std::time::Duration;

    #[test]
    fn the_bucket_allows_a_burst_then_paces() {
        let mut limit = RateLimit::new(100.0, 3.0);
        for _ in 0..3 {
            assert_eq!(limit.take(), Duration::ZERO);
        }
        let wait = limit.take();
        assert!(
            wait > Duration::from_millis(5) && wait <= Duration::from_millis(10),
            "{wait:?}"
        );
    }
}
