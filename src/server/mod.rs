//! `warden server`: holds the agents' WebSocket connections and lets an
//! operator drive the fleet from stdin.
//!
//! Threads: one acceptor, one per connection (`conn-<peer>`), a small pool
//! of socket writers (`writer-N`), the journal (group commit), stdin, a
//! ticker, and the hub (the caller's thread). The hub owns all state (the
//! live sessions and the [`Store`]) and reacts to one closed [`HubEvent`]
//! enum, so every cause of work is visible in one `match`. It never waits on
//! a socket (frames are queued, see `transport::writer`) or a disk (lines
//! go to the journal, see [`journal`]).
//!
//! Invariants:
//! - A durable message is acknowledged only after it is on disk.
//! - A command is recorded as issued (on disk) before it is sent.
//! - A session is registered, and the old one for the same agent closed with
//!   1000, only once the new one's `hello` is valid.
pub mod admin;
mod admission;
pub mod alerts;
mod budget;
mod conn;
pub mod console;
pub mod control;
pub mod ctlsign;
mod dispatch;
pub mod doublesign;
mod guard;
mod hub;
pub mod journal;
pub mod keyguard;
mod listen;
mod ops;
pub mod outcome;
pub mod prom;
mod render;
mod rollout;
mod safety;
pub mod schedule;
mod signing;
pub mod store;
pub mod tokens;
pub mod web;

use crate::protocol::{Hello, Message};
use crate::transport;
use std::fmt;
use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;
use store::Store;
use tokens::TokenStore;

pub use budget::ByteBudget;
pub use console::printable;
pub(crate) use dispatch::format_age;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";
pub const DEFAULT_HEARTBEAT_S: u64 = 15;
/// Events waiting for the hub, at most (and [`HUB_QUEUE_BYTES`] of frames):
/// when the hub falls behind, connection threads wait and TCP pushes back.
const HUB_QUEUE: usize = 4096;
const HUB_QUEUE_BYTES: usize = 16 * 1024 * 1024;

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
    /// `--admin-listen`: `/metrics` and `/healthz` (off when absent).
    pub admin_listen: Option<String>,
    /// `--alerts`: rules' settings and sinks (rules run without it too).
    pub alerts_file: Option<PathBuf>,
    /// `--schedules`: commands the server issues on its own.
    pub schedules_file: Option<PathBuf>,
    /// `--log-max-mb`, `--log-keep`, `--log-max-age-days`: how the
    /// journal's files rotate.
    pub rotation: journal::Rotation,
    /// `--operator-key FILE`: sign every command typed on stdin.
    pub operator_key: Option<PathBuf>,
}

#[derive(Debug)]
pub enum ServerError {
    Listen { addr: String, source: io::Error },
    DataDir { path: PathBuf, source: io::Error },
    Signals(io::Error),
    Threads(io::Error),
    Control(control::ControlError),
    Admin { addr: String, source: io::Error },
    Ops(String),
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
            ServerError::Threads(e) => write!(f, "cannot start the server's threads: {e}"),
            ServerError::Tokens(e) => write!(f, "{e}"),
            ServerError::Control(e) => write!(f, "{e}"),
            ServerError::Admin { addr, source } => write!(
                f,
                "cannot listen on {addr} for the admin listener: {source} (pick another --admin-listen)"
            ),
            ServerError::Ops(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for ServerError {}

/// Where the hub's frames for one agent go: its connection, or in tests a
/// recorder. Sending never blocks.
pub trait AgentLink: Send + Sync {
    /// Queue one text frame; an error means the connection is going away.
    fn send_text(&self, text: &str) -> io::Result<()>;
    /// Queue a close frame; the connection ends once it is out.
    fn close(&self, code: u16, reason: &str);
    fn peer(&self) -> String;
    /// Nothing queued is still waiting to be written.
    fn is_flushed(&self) -> bool {
        true
    }
}

impl AgentLink for transport::Connection {
    fn send_text(&self, text: &str) -> io::Result<()> {
        transport::Connection::send_text(self, text)
    }
    fn close(&self, code: u16, reason: &str) {
        transport::Connection::close(self, code, reason)
    }
    fn peer(&self) -> String {
        transport::Connection::peer(self).to_string()
    }
    fn is_flushed(&self) -> bool {
        transport::Connection::is_flushed(self)
    }
}

/// One authenticated agent connection whose `hello` was valid.
pub struct LiveAgent {
    pub agent_id: String,
    pub conn_id: u64,
    pub link: Arc<dyn AgentLink>,
    pub hello: Hello,
    pub connected_ms: i64,
    pub last_seen_ms: AtomicI64,
    /// Hash of the token it authenticated with: a replaced or removed token
    /// cuts the connection.
    pub token_sha256: String,
}

impl LiveAgent {
    /// Queue `message` for the agent and return at once.
    pub fn send(&self, message: &Message) -> io::Result<()> {
        self.link.send_text(&message.to_json())
    }

    pub fn is_flushed(&self) -> bool {
        self.link.is_flushed()
    }
}

/// Everything the hub reacts to.
pub enum HubEvent {
    Connected(Arc<LiveAgent>),
    Message {
        agent: String,
        conn_id: u64,
        message: Message,
        /// Bytes of the frame, taken from the hub's byte budget.
        cost: usize,
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
    /// A line from `warden ctl`, with where to answer.
    Control(control::ControlRequest),
    OperatorClosed,
    /// SIGTERM or SIGINT: close every connection, flush, exit 0.
    Terminate(&'static str),
    /// A sink accepted or refused an alert notice.
    AlertDelivery(alerts::DeliveryReport),
    /// `/healthz` or `/metrics` on the admin listener.
    Admin(admin::AdminRequest),
    Tick,
    /// The dashboard's questions and actions (src/server/web/).
    Web(web::WebRequest),
}

pub fn run(config: ServerConfig) -> Result<(), ServerError> {
    let data_dir = config.data_dir.clone();
    let data_dir_error = |source| ServerError::DataDir {
        path: data_dir.clone(),
        source,
    };
    let store = Store::open_keeping(&data_dir, config.rotation.keep).map_err(data_dir_error)?;
    let files = journal::Files::open_with(&data_dir, config.rotation).map_err(data_dir_error)?;
    let tokens = TokenStore::new(&data_dir);
    tokens.load().map_err(ServerError::Tokens)?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(
            transport::server_tls_config(cert, key, config.client_ca.as_deref())
                .map_err(ServerError::Tls)?,
        ),
        _ => None,
    };
    let listener = listen::bind(&config.listen).map_err(|source| ServerError::Listen {
        addr: config.listen.clone(),
        source,
    })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
    let out = console::Out::new();
    // The first line is the bound address alone, for scripts using port 0.
    out.line(&local.to_string());
    let (tx, rx) = mpsc::sync_channel::<HubEvent>(HUB_QUEUE);
    // Then the admin listener's, when there is one (operations.md).
    let admin = match &config.admin_listen {
        Some(addr) => {
            let hub = tx.clone();
            let submit: admin::Submit =
                Arc::new(move |request| hub.try_send(HubEvent::Admin(request)).is_ok());
            // The dashboard answers every other path (src/server/web/).
            let web_hub = tx.clone();
            let web_submit: web::Submit =
                Arc::new(move |request| web_hub.try_send(HubEvent::Web(request)).is_ok());
            let dashboard = Arc::new(web::Web::new(tokens.clone(), web_submit));
            let server = admin::AdminServer::start_with_web(addr, submit, Some(dashboard))
                .map_err(|source| ServerError::Admin {
                    addr: addr.clone(),
                    source,
                })?;
            out.line(&format!("admin: {}", server.url()));
            Some(server)
        }
        None => None,
    };
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

    let (control_listener, control_path) =
        control::bind(&data_dir).map_err(ServerError::Control)?;
    let journal = journal::Journal::start(files).map_err(ServerError::Threads)?;
    let writers =
        transport::WriterPool::start(transport::writer::WRITERS).map_err(ServerError::Threads)?;
    let external_url = admin.as_ref().map(|a| a.url()).unwrap_or_default();
    let alerts = ops::start_alerts(
        &data_dir,
        config.alerts_file.as_deref(),
        &external_url,
        tx.clone(),
    )
    .map_err(ServerError::Ops)?;
    let planner = match &config.schedules_file {
        Some(path) => {
            let file = schedule::ScheduleFile::load(path).map_err(ServerError::Ops)?;
            Some(
                schedule::Planner::open(&data_dir, file, crate::protocol::now_ms())
                    .map_err(ServerError::Ops)?,
            )
        }
        None => None,
    };
    let budget = Arc::new(ByteBudget::new(HUB_QUEUE_BYTES));
    let heartbeat_s = config.heartbeat_s.max(1);
    let shared = Arc::new(conn::ConnShared {
        tokens: tokens.clone(),
        tls,
        heartbeat: Duration::from_secs(heartbeat_s),
        heartbeat_s,
        max_message_bytes: config.max_message_bytes,
        mutual_tls: config.client_ca.is_some(),
        hub: tx.clone(),
        budget: budget.clone(),
        writers,
        next_conn_id: AtomicU64::new(1),
        admission: admission::Admission::default(),
    });
    thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || conn::accept_loop(listener, shared))
        .map_err(ServerError::Threads)?;
    let interactive = io::stdin().is_terminal();
    console::spawn_stdin_reader(tx.clone(), crate::operator::MAX_LINE_BYTES);
    let signal_tx = tx.clone();
    crate::signals::on_terminate(move |name| {
        let _ = signal_tx.send(HubEvent::Terminate(name));
    })
    .map_err(ServerError::Signals)?;
    control::spawn(control_listener, tx.clone()).map_err(ServerError::Threads)?;
    spawn_ticker(tx);

    let ops = ops::Ops::new(alerts, planner);
    let mut hub = hub::Hub::new(config, store, journal, tokens, out, budget, ops);
    hub.interactive = interactive;
    hub.ops_start();
    hub.prompt();
    hub.run(rx);
    drop(admin);
    // A clean exit removes the socket; a crash leaves it, replaced at start.
    let _ = std::fs::remove_file(control_path);
    Ok(())
}

fn spawn_ticker(tx: mpsc::SyncSender<HubEvent>) {
    let spawned = thread::Builder::new().name("ticker".into()).spawn(move || {
        // Once a second: notice token changes made by `warden token`.
        while tx.send(HubEvent::Tick).is_ok() {
            thread::sleep(Duration::from_secs(1));
        }
    });
    if let Err(e) = spawned {
        crate::log::error(&format!("cannot start the ticker: {e}"));
    }
}
