//! The web dashboard, served by `warden server` on its admin listener under
//! `/` (everything but `/metrics` and `/healthz`). See docs/dashboard.md.
//!
//! The admin listener hands each connection to [`Web::serve`], which reads
//! the request ([`http`]), routes it ([`Web::handle`], pure but for the hub
//! questions it asks through [`Submit`]) and writes the answer, or keeps the
//! connection as a WebSocket at `live` that pushes the fleet as it changes.
//! The hub answers [`WebRequest`]s (see [`snapshot`]); nothing here touches
//! its state.
//!
//! Invariants:
//! - Every page but the login needs a session; every action (and logout)
//!   needs the session's CSRF token in `X-CSRF-Token`; read-only operators
//!   never act. A token removed or replaced with `warden token` ends its
//!   sessions at their next request.
//! - Sessions live in memory only, at most [`MAX_SESSIONS`], each at most
//!   [`SESSION_MAX_AGE`] old and [`SESSION_IDLE`] idle.
//! - Failed logins: at most [`LOGIN_FAILURES`] per address per
//!   [`LOGIN_WINDOW`]; then 429 until the window ends.
//! - Every URL the pages use is relative, so a reverse proxy may mount the
//!   dashboard under any prefix. `X-Forwarded-For`/`-Proto` are believed only
//!   from a loopback peer (a proxy on the same host).
//! - Everything a person does (login, failed login, logout, action) goes to
//!   the audit log with the operator's name.
mod delta;
pub mod http;
mod live;
pub mod snapshot;

use super::admin::RequestLine;
use super::tokens::{OperatorIdentity, TokenStore, token_hash};
use http::{Request, Response};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Value, json};
use snapshot::{AgentRow, Snapshot};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, TcpStream};
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

pub use snapshot::WebRequest;

pub const COOKIE: &str = "warden_session";
pub const MAX_SESSIONS: usize = 256;
pub const SESSION_MAX_AGE: Duration = Duration::from_secs(12 * 3600);
pub const SESSION_IDLE: Duration = Duration::from_secs(3600);
pub const LOGIN_FAILURES: u32 = 5;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked for failed logins, at most.
const MAX_TRACKED_ADDRESSES: usize = 4096;
/// How long a request waits for the hub.
const HUB_DEADLINE: Duration = Duration::from_secs(10);
/// A fleet snapshot younger than this is served from the cache.
const SNAPSHOT_FRESH: Duration = Duration::from_millis(500);
/// Samples kept per node for its charts, and nodes with samples, at most.
pub const RING_SAMPLES: usize = 120;
const RING_NODES: usize = 8192;
/// Agents remembered once gone (for "disconnected, last seen"), at most.
const MAX_REMEMBERED: usize = 10_000;
/// Command outcomes kept for the page, at most.
const MAX_RESULTS: usize = 256;
/// A kept result's text, at most (a `logs` result may be big).
const MAX_RESULT_BYTES: usize = 256 * 1024;

const INDEX_HTML: &str = include_str!("assets/index.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The commands of protocol.md's table; anything else is refused before
/// the hub sees it.
pub const COMMANDS: &[&str] = &[
    "start",
    "stop",
    "restart",
    "logs",
    "status",
    "exec",
    "payout",
    "backup_keys",
    "restore_keys",
    "rotate_keys",
    "check_keys",
    "has_session_keys",
    "has_key",
    "find_validator",
];

/// Hands a request to the hub; false if the hub is gone or too busy.
pub type Submit = Arc<dyn Fn(WebRequest) -> bool + Send + Sync>;

struct WebSession {
    who: OperatorIdentity,
    token_sha256: String,
    csrf: String,
    created: Instant,
    last_used: Instant,
}

struct Failures {
    count: u32,
    since: Instant,
}

/// One sample of a node, for its charts.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sample {
    pub ts: i64,
    pub best: Option<u64>,
    pub peers: Option<u64>,
    pub cpu: Option<f64>,
    pub mem: Option<u64>,
}

#[derive(Default)]
struct Cache {
    at: Option<Instant>,
    snapshot: Option<Arc<Snapshot>>,
    /// The JSON of a snapshot (the newest one a page or `api/fleet` needed whole).
    json: Option<(Arc<Snapshot>, Arc<str>)>,
    /// Agents seen connected, for rows after they leave.
    seen: BTreeMap<String, AgentRow>,
    rings: HashMap<(String, String), VecDeque<Sample>>,
}

pub struct Web {
    tokens: TokenStore,
    submit: Submit,
    sessions: Mutex<HashMap<String, WebSession>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    cache: Mutex<Cache>,
    results: Arc<Mutex<VecDeque<(String, Value)>>>,
    live_clients: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere leaves plain data behind: keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

/// The authenticated caller of one request.
pub struct Caller {
    pub who: OperatorIdentity,
    csrf: String,
}

impl Web {
    pub fn new(tokens: TokenStore, submit: Submit) -> Web {
        Web {
            tokens,
            submit,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            cache: Mutex::new(Cache::default()),
            results: Arc::new(Mutex::new(VecDeque::new())),
            live_clients: AtomicUsize::new(0),
        }
    }

    /// The admin listener's hook: answer one connection. Returns the request
    /// line when it is the admin listener's own (`/metrics`, `/healthz`).
    pub fn serve(&self, stream: &TcpStream) -> Option<RequestLine> {
        let request = match http::read_request(stream) {
            Ok(r) => r,
            Err(code) => {
                let _ = http::write_response(stream, &Response::text(code, "bad request\n"), false);
                return None;
            }
        };
        if matches!(request.path.as_str(), "/metrics" | "/healthz") {
            return Some(RequestLine {
                method: request.method,
                path: request.path,
            });
        }
        let peer = stream
            .peer_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if request.path == "/live" {
            live::serve(self, stream, &request, peer);
            return None;
        }
        let response = self.handle(&request, peer);
        let _ = http::write_response(stream, &response, request.method == "HEAD");
        None
    }

    /// Route one request to its answer.
    pub fn handle(&self, req: &Request, peer: IpAddr) -> Response {
        let method = if req.method == "HEAD" {
            "GET"
        } else {
            req.method.as_str()
        };
        match (method, req.path.as_str()) {
            ("GET", "/app.js") => Response::new(200, "text/javascript; charset=utf-8", APP_JS),
            ("GET", "/app.css") => Response::new(200, "text/css; charset=utf-8", APP_CSS),
            ("GET", "/" | "/index.html") => match self.caller(req) {
                Some(c) => Response::new(200, "text/html; charset=utf-8", self.index(&c)),
                None => Response::new(200, "text/html; charset=utf-8", LOGIN_HTML),
            },
            ("POST", "/login") => self.login(req, peer),
            ("POST", "/logout") => self.logout(req),
            ("GET", "/api/fleet") => match self.caller(req) {
                Some(_) => match self.snapshot_json() {
                    Some(json) => Response::new(200, "application/json", json.as_bytes().to_vec()),
                    None => Response::text(503, "the hub is not responding\n"),
                },
                None => Response::text(401, "log in first\n"),
            },
            ("GET", "/api/node") => match self.caller(req) {
                Some(_) => self.node(req),
                None => Response::text(401, "log in first\n"),
            },
            ("GET", "/api/result") => match self.caller(req) {
                Some(_) => self.result(req),
                None => Response::text(401, "log in first\n"),
            },
            ("POST", "/api/action") => self.action(req, peer),
            (_, "/" | "/index.html" | "/app.js" | "/app.css" | "/api/fleet" | "/api/node")
            | (_, "/api/result" | "/login" | "/logout" | "/api/action") => {
                Response::text(405, "method not allowed\n")
            }
            _ => Response::text(404, "not found\n"),
        }
    }

    fn index(&self, caller: &Caller) -> String {
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('"', "&quot;")
        };
        INDEX_HTML
            .replace("{{CSRF}}", &caller.csrf)
            .replace("{{NAME}}", &escape(&caller.who.name))
            .replace(
                "{{MODE}}",
                if caller.who.read_only {
                    "read-only"
                } else {
                    "read-write"
                },
            )
    }

    /// The client's address: the peer, or the last `X-Forwarded-For` hop
    /// when the peer is a proxy on this host.
    pub fn client_addr(req: &Request, peer: IpAddr) -> IpAddr {
        if peer.is_loopback()
            && let Some(ip) = req
                .header("x-forwarded-for")
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse().ok())
        {
            return ip;
        }
        peer
    }

    /// Whether the browser reached us over HTTPS (a TLS-terminating proxy on
    /// this host says so); then the cookie is `Secure`.
    pub fn over_tls(req: &Request, peer: IpAddr) -> bool {
        peer.is_loopback()
            && req
                .header("x-forwarded-proto")
                .is_some_and(|p| p.eq_ignore_ascii_case("https"))
    }

    /// A browser request from another site is refused: its `Origin` must
    /// name the host it was sent to (a proxy's `X-Forwarded-Host` counts).
    pub fn same_origin(req: &Request) -> bool {
        let Some(origin) = req.header("origin") else {
            return true;
        };
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
        [req.header("x-forwarded-host"), req.header("host")]
            .into_iter()
            .flatten()
            .any(|h| !h.is_empty() && h.eq_ignore_ascii_case(origin_host))
    }

    /// The session of a request, if valid (and its operator still
    /// registered with the same token).
    pub fn caller(&self, req: &Request) -> Option<Caller> {
        let id = req.cookie(COOKIE)?;
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        let session = sessions.get_mut(id)?;
        let registered = self.tokens.load_operators().ok().is_some_and(|r| {
            r.operators.get(&session.who.name).is_some_and(|o| {
                o.token_sha256 == session.token_sha256 && o.read_only == session.who.read_only
            })
        });
        if !registered
            || now.duration_since(session.created) > SESSION_MAX_AGE
            || now.duration_since(session.last_used) > SESSION_IDLE
        {
            sessions.remove(id);
            return None;
        }
        session.last_used = now;
        Some(Caller {
            who: session.who.clone(),
            csrf: session.csrf.clone(),
        })
    }

    fn audit(&self, entry: Value) {
        let _ = (self.submit)(WebRequest::Audit(entry));
    }

    /// Too many failed logins from `addr` lately.
    fn limited(&self, addr: IpAddr) -> bool {
        let mut failures = lock(&self.failures);
        let now = Instant::now();
        failures.retain(|_, f| now.duration_since(f.since) < LOGIN_WINDOW);
        match failures.get(&addr) {
            Some(f) => f.count >= LOGIN_FAILURES,
            // A flood of addresses: refuse new ones until some expire.
            None => failures.len() >= MAX_TRACKED_ADDRESSES,
        }
    }

    fn failed(&self, addr: IpAddr) {
        let mut failures = lock(&self.failures);
        let now = Instant::now();
        let f = failures.entry(addr).or_insert(Failures {
            count: 0,
            since: now,
        });
        f.count += 1;
    }

    fn login(&self, req: &Request, peer: IpAddr) -> Response {
        let addr = Self::client_addr(req, peer);
        if !Self::same_origin(req) {
            return Response::text(403, "refused: the request came from another site\n");
        }
        if self.limited(addr) {
            return Response::text(429, "too many failed logins; wait a minute and try again\n")
                .with("Retry-After", LOGIN_WINDOW.as_secs().to_string());
        }
        let body = String::from_utf8_lossy(&req.body);
        let token = Request::field(&body, "token").unwrap_or_default();
        let who = self
            .tokens
            .load_operators()
            .ok()
            .and_then(|r| r.authenticate(token.trim()));
        let Some(who) = who else {
            self.failed(addr);
            self.audit(json!({"ts": crate::protocol::now_ms(), "action": "dashboard_login_failed", "peer": addr.to_string()}));
            return Response::new(
                401,
                "text/html; charset=utf-8",
                LOGIN_HTML.replace(
                    "<!--ERROR-->",
                    "<p class=\"err\" role=\"alert\">That token is not an operator token.</p>",
                ),
            );
        };
        let (Some(id), Some(csrf)) = (random_hex(), random_hex()) else {
            return Response::text(503, "the system random generator failed\n");
        };
        let now = Instant::now();
        {
            let mut sessions = lock(&self.sessions);
            sessions.retain(|_, s| {
                now.duration_since(s.created) <= SESSION_MAX_AGE
                    && now.duration_since(s.last_used) <= SESSION_IDLE
            });
            if sessions.len() >= MAX_SESSIONS {
                // The least recently used one goes.
                if let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.last_used)
                    .map(|(k, _)| k.clone())
                {
                    sessions.remove(&oldest);
                }
            }
            sessions.insert(
                id.clone(),
                WebSession {
                    who: who.clone(),
                    token_sha256: token_hash(token.trim()),
                    csrf,
                    created: now,
                    last_used: now,
                },
            );
        }
        self.audit(json!({"ts": crate::protocol::now_ms(), "action": "dashboard_login", "by": who.name, "read_only": who.read_only, "peer": addr.to_string()}));
        let secure = if Self::over_tls(req, peer) {
            "; Secure"
        } else {
            ""
        };
        // No Path: it defaults to this URL's directory, right under a proxy prefix.
        Response::see_other("./").with(
            "Set-Cookie",
            format!(
                "{COOKIE}={id}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                SESSION_MAX_AGE.as_secs()
            ),
        )
    }

    /// The caller, if its CSRF token is the session's.
    fn checked(&self, req: &Request) -> Result<Caller, Response> {
        let Some(caller) = self.caller(req) else {
            return Err(Response::text(401, "log in first\n"));
        };
        let presented = req.header("x-csrf-token").unwrap_or("");
        if !Self::same_origin(req)
            || !bool::from(presented.as_bytes().ct_eq(caller.csrf.as_bytes()))
        {
            return Err(Response::text(
                403,
                "refused: missing or wrong CSRF token; reload the page\n",
            ));
        }
        Ok(caller)
    }

    fn logout(&self, req: &Request) -> Response {
        let caller = match self.checked(req) {
            Ok(c) => c,
            Err(r) => return r,
        };
        if let Some(id) = req.cookie(COOKIE) {
            lock(&self.sessions).remove(id);
        }
        self.audit(json!({"ts": crate::protocol::now_ms(), "action": "dashboard_logout", "by": caller.who.name}));
        Response::text(200, "logged out\n").with(
            "Set-Cookie",
            format!("{COOKIE}=; HttpOnly; SameSite=Strict; Max-Age=0"),
        )
    }

    /// The fleet: from the cache when fresh, else asked of the hub (one
    /// request at a time: the others wait and take its answer).
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        let mut cache = lock(&self.cache);
        if let (Some(at), Some(snapshot)) = (cache.at, &cache.snapshot)
            && at.elapsed() < SNAPSHOT_FRESH
        {
            return Some(snapshot.clone());
        }
        let (tx, rx) = mpsc::sync_channel(1);
        if !(self.submit)(WebRequest::Snapshot(tx)) {
            return None;
        }
        let mut snapshot = rx.recv_timeout(HUB_DEADLINE).ok()?;
        merge_remembered(&mut cache, &mut snapshot, &self.tokens);
        record_samples(&mut cache, &snapshot);
        let snapshot = Arc::new(snapshot);
        cache.at = Some(Instant::now());
        cache.snapshot = Some(snapshot.clone());
        Some(snapshot)
    }

    /// The fleet as JSON (`api/fleet`).
    pub fn snapshot_json(&self) -> Option<Arc<str>> {
        self.fleet_json(&self.snapshot()?)
    }

    /// This snapshot's JSON, serialized once however many pages ask: only
    /// `api/fleet` and a page's first frame need the whole fleet.
    fn fleet_json(&self, snapshot: &Arc<Snapshot>) -> Option<Arc<str>> {
        let mut cache = lock(&self.cache);
        if let Some((of, json)) = &cache.json
            && Arc::ptr_eq(of, snapshot)
        {
            return Some(json.clone());
        }
        let json: Arc<str> = serde_json::to_string(&**snapshot).ok()?.into();
        cache.json = Some((snapshot.clone(), json.clone()));
        Some(json)
    }

    fn node(&self, req: &Request) -> Response {
        let agent = Request::field(&req.query, "agent").unwrap_or_default();
        let container = Request::field(&req.query, "container").unwrap_or_default();
        if super::tokens::validate_agent_id(&agent).is_err() {
            return Response::text(400, "no such agent id\n");
        }
        let (tx, rx) = mpsc::sync_channel(1);
        if !(self.submit)(WebRequest::Node {
            agent: agent.clone(),
            reply: tx,
        }) {
            return Response::text(503, "the hub is not responding\n");
        }
        let Ok(mut value) = rx.recv_timeout(HUB_DEADLINE) else {
            return Response::text(503, "the hub is not responding\n");
        };
        let samples: Vec<Sample> = lock(&self.cache)
            .rings
            .get(&(agent, container))
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        if let Value::Object(map) = &mut value {
            map.insert("samples".into(), json!(samples));
        }
        Response::json(200, &value)
    }

    fn result(&self, req: &Request) -> Response {
        let id = Request::field(&req.query, "id").unwrap_or_default();
        let results = lock(&self.results);
        match results.iter().find(|(k, _)| *k == id) {
            Some((_, v)) => Response::json(200, v),
            None => Response::text(404, "no outcome yet\n"),
        }
    }

    /// Run one command from the dashboard's form, as an operator line.
    fn action(self: &Web, req: &Request, peer: IpAddr) -> Response {
        let caller = match self.checked(req) {
            Ok(c) => c,
            Err(r) => return r,
        };
        if caller.who.read_only {
            // Someone tried: the audit log says who (the page offers no control).
            self.audit(json!({"ts": crate::protocol::now_ms(), "action": "dashboard_refused", "by": caller.who.name, "why": "read-only"}));
            return Response::text(403, "refused: this operator token is read-only\n");
        }
        let body: Value = match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => {
                return Response::text(
                    400,
                    "the body must be JSON {agent, command, target, params}\n",
                );
            }
        };
        let line = match action_line(&body) {
            Ok(line) => line,
            Err(why) => return Response::text(400, &format!("{why}\n")),
        };
        let (tx, rx) = mpsc::channel();
        let by = caller.who.name.clone();
        crate::log::info(&format!(
            "dashboard: {by} from {}: {line}",
            Self::client_addr(req, peer)
        ));
        if !(self.submit)(WebRequest::Action {
            line: line.clone(),
            by,
            updates: tx,
        }) {
            return Response::text(503, "the hub is not responding\n");
        }
        let mut text = Vec::new();
        let mut issued = Vec::new();
        let mut exit = 0u8;
        let deadline = Instant::now() + HUB_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(super::control::Update::Text(t)) => text.push(t),
                Ok(super::control::Update::Exit(code)) => exit = code,
                Ok(super::control::Update::Issued(list)) => {
                    issued.extend(list.into_iter().map(|i| i.id))
                }
                Ok(super::control::Update::Done) => break,
                Ok(_) => {}
                Err(_) => return Response::text(504, "the hub did not answer in time\n"),
            }
        }
        if !issued.is_empty() {
            self.collect_outcomes(rx, issued.len());
        }
        Response::json(
            200,
            &json!({"line": line, "exit": exit, "text": text.join("\n"), "issued": issued}),
        )
    }

    /// Keep each issued command's outcome for `api/result` (a thread waits
    /// for them; bounded by the hub's own wait).
    fn collect_outcomes(&self, rx: mpsc::Receiver<super::control::Update>, count: usize) {
        let store = self.results.clone();
        let spawned = std::thread::Builder::new()
            .name("web-outcomes".into())
            .spawn(move || {
                let mut left = count;
                while left > 0 {
                    match rx.recv_timeout(Duration::from_secs(600)) {
                        Ok(super::control::Update::Outcome {
                            id,
                            status,
                            code,
                            error,
                            result,
                        }) => {
                            left -= 1;
                            let mut value = json!({"id": id, "status": status, "code": code, "error": error, "result": result});
                            if value.to_string().len() > MAX_RESULT_BYTES {
                                value["result"] = Value::from("(result too large to show; see `warden ctl show`)");
                            }
                            let mut r = lock(&store);
                            if r.len() >= MAX_RESULTS {
                                r.pop_front();
                            }
                            r.push_back((id, value));
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            });
        if let Err(e) = spawned {
            crate::log::warn(&format!("dashboard: cannot wait for outcomes: {e}"));
        }
    }
}

/// Quote a param value for an operator line (POSIX single quotes).
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// Whether `word` is plain: letters, digits and `_ - .` only.
fn plain(word: &str) -> bool {
    !word.is_empty()
        && word.len() <= 128
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The operator line for a form: `send AGENT COMMAND TARGET key=value…`.
/// Agent, command, target and param names are checked here; values are
/// quoted (numbers and booleans stay bare so they keep their type).
pub fn action_line(body: &Value) -> Result<String, String> {
    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
    let (agent, command, target) = (field("agent"), field("command"), field("target"));
    if super::tokens::validate_agent_id(agent).is_err() {
        return Err(format!("no such agent id {agent:?}"));
    }
    if !COMMANDS.contains(&command) {
        return Err(format!("unknown command {command:?}"));
    }
    if !plain(target) {
        return Err(format!("not a container name: {target:?}"));
    }
    let mut line = format!("send {agent} {command} {target}");
    let params = body.get("params").and_then(Value::as_object);
    let mut exec_command = None;
    for (key, value) in params.into_iter().flatten() {
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(format!("not a param name: {key:?}"));
        }
        let text = match value {
            Value::Null => continue,
            Value::String(s) if s.is_empty() && key != "session_keys" => continue,
            Value::String(s) if command == "exec" && key == "command" => {
                exec_command = Some(s.clone());
                continue;
            }
            Value::String(s) => quote(s),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) if n.is_i64() => n.to_string(),
            other => {
                return Err(format!(
                    "param {key}: {other} is not a string, integer or boolean"
                ));
            }
        };
        line.push_str(&format!(" {key}={text}"));
    }
    if let Some(cmd) = exec_command {
        // `exec`: the rest of the line is the command, untouched.
        if cmd.contains(['\n', '\r']) {
            return Err("an exec command is one line".into());
        }
        line.push(' ');
        line.push_str(cmd.trim());
    }
    if line.len() > crate::operator::MAX_LINE_BYTES {
        return Err("the command is too long".into());
    }
    Ok(line)
}

/// Agents seen before and agents registered but never seen join the
/// snapshot as disconnected, with when they were last seen.
fn merge_remembered(cache: &mut Cache, snapshot: &mut Snapshot, tokens: &TokenStore) {
    let live: std::collections::HashSet<String> =
        snapshot.agents.iter().map(|a| a.id.clone()).collect();
    for row in &snapshot.agents {
        if cache.seen.len() < MAX_REMEMBERED || cache.seen.contains_key(&row.id) {
            cache.seen.insert(row.id.clone(), row.clone());
        }
    }
    let registered = tokens.load().map(|r| r.agents).unwrap_or_default();
    // Forget agents whose token was removed.
    cache.seen.retain(|id, _| registered.contains_key(id));
    for id in registered.keys() {
        if live.contains(id) {
            continue;
        }
        let mut row = cache.seen.get(id).cloned().unwrap_or_else(|| AgentRow {
            id: id.clone(),
            ..AgentRow::default()
        });
        row.connected = false;
        snapshot.agents.push(row);
    }
}

/// One sample per node per stats report (at most one per 5 s), in rings
/// of [`RING_SAMPLES`].
fn record_samples(cache: &mut Cache, snapshot: &Snapshot) {
    for n in &snapshot.nodes {
        let key = (n.agent.clone(), n.container.clone());
        if !cache.rings.contains_key(&key) && cache.rings.len() >= RING_NODES {
            continue;
        }
        let ring = cache.rings.entry(key).or_default();
        if ring.back().is_some_and(|s| snapshot.ts - s.ts < 5_000) {
            continue;
        }
        if ring.len() >= RING_SAMPLES {
            ring.pop_front();
        }
        ring.push_back(Sample {
            ts: snapshot.ts,
            best: n.best,
            peers: n.peers,
            cpu: n.cpu,
            mem: n.mem,
        });
    }
}

#[cfg(test)]
mod tests;
