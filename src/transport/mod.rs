//! WebSocket connections over plain TCP or TLS, shared between one reading
//! thread and any number of sending threads, without polling.
//!
//! The crux (measured in design-facts.md): the connection's own thread blocks
//! in `read` on the raw socket with no lock held. When bytes arrive it locks
//! the connection, feeds the bytes into a [`Pipe`] and decodes frames until
//! the pipe runs dry. Any other thread that wants to send locks the same
//! mutex and writes straight to the socket. So a command for an idle agent
//! goes out the moment it is issued, and an idle connection costs no CPU.
//!
//! Two ways to send. Blocking (the agent, test peers): the sender locks the
//! connection and writes to the socket. Queued (the server, see
//! [`writer`]): the sender queues the frame and returns; a writer thread
//! encodes it and writes the bytes with no lock held, so no thread that
//! sends to an agent (the server's hub above all) ever waits on its socket.
//!
//! Invariants:
//! - The pipe's write path never reads from the socket (a write that timed out
//!   must not fall into a blocking read).
//! - In queued mode nothing holds the connection's lock during socket I/O.
//! - After feeding bytes, frames are decoded until `WouldBlock`: a second frame
//!   that arrived in the same read never waits for the next packet.
//! - On any send failure the socket is shut down, which also wakes the reader.
mod tls;
pub mod writer;

pub use tls::{ClientTls, certificate_names, client_tls_config, fingerprint, server_tls_config};
pub use writer::WriterPool;

use rustls::pki_types::{CertificateDer, ServerName};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tungstenite::handshake::HandshakeError;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message as WsMessage, WebSocket};

/// How many bytes one blocking read takes from the socket. Each connection
/// thread keeps one such buffer for its life: 4 KiB (one page) keeps a
/// server with thousands of agents small; a large frame costs more reads.
const READ_CHUNK: usize = 4 * 1024;
/// A blocking send that makes no progress for this long means the peer
/// stopped reading: the connection is cut. A slow link that still makes
/// progress is not affected. (Queued connections use [`writer`]'s limits.)
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// A socket's read or write timeout ran out (`WouldBlock` on Unix,
/// `TimedOut` on Windows): nothing to do now, not an error.
pub(crate) fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn ws_config(max_message_bytes: usize) -> WebSocketConfig {
    // A small read buffer: the 128 KiB default is allocated per connection.
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

/// The stream tungstenite sees: reads return only bytes fed by the reading
/// thread (`WouldBlock` when none are left); writes go straight to the socket.
pub struct Pipe {
    socket: Arc<TcpStream>,
    tls: Option<Box<rustls::Connection>>,
    inbound: Vec<u8>,
    inbound_pos: usize,
    /// The client's certificate chain, set once the TLS handshake is done, so
    /// that the upgrade's authorisation can map it to an agent id.
    peer_certs: Arc<OnceLock<Vec<CertificateDer<'static>>>>,
    /// Queued mode: bytes to send, in the order they were produced, until a
    /// writer takes them. `None`: writes go straight to the socket.
    outbound: Option<Vec<u8>>,
}

impl Pipe {
    fn new(socket: Arc<TcpStream>, tls: Option<rustls::Connection>) -> Pipe {
        Pipe {
            socket,
            tls: tls.map(Box::new),
            inbound: Vec::new(),
            inbound_pos: 0,
            peer_certs: Arc::new(OnceLock::new()),
            outbound: None,
        }
    }

    /// Hand bytes read from the socket to the pipe (decrypting them for TLS).
    fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if self.inbound_pos == self.inbound.len() {
            self.inbound.clear();
            self.inbound_pos = 0;
        }
        let Some(tls) = self.tls.as_mut() else {
            self.inbound.extend_from_slice(bytes);
            return Ok(());
        };
        while !bytes.is_empty() {
            tls.read_tls(&mut bytes)?;
            let processed = tls.process_new_packets();
            // Send whatever rustls produced (handshake messages, an alert).
            flush_tls(tls, self.outbound.as_mut(), &self.socket)?;
            processed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if !tls.is_handshaking()
                && self.peer_certs.get().is_none()
                && let Some(chain) = tls.peer_certificates()
            {
                let _ = self.peer_certs.set(chain.to_vec());
            }
            // Move plaintext out at once so rustls' buffer never fills.
            match tls.reader().read_to_end(&mut self.inbound) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    fn has_outbound(&self) -> bool {
        self.outbound.as_ref().is_some_and(|o| !o.is_empty())
    }
}

/// Move what rustls has to send to the queue (queued mode) or the socket.
fn flush_tls(
    tls: &mut rustls::Connection,
    mut outbound: Option<&mut Vec<u8>>,
    socket: &TcpStream,
) -> io::Result<()> {
    while tls.wants_write() {
        match outbound.as_deref_mut() {
            Some(queue) => tls.write_tls(queue)?,
            None => tls.write_tls(&mut &*socket)?,
        };
    }
    Ok(())
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = &self.inbound[self.inbound_pos..];
        if available.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.inbound_pos += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match (self.tls.as_mut(), self.outbound.as_mut()) {
            (None, None) => (&*self.socket).write(buf),
            (None, Some(queue)) => {
                queue.extend_from_slice(buf);
                Ok(buf.len())
            }
            (Some(tls), outbound) => {
                let n = tls.writer().write(buf)?;
                flush_tls(tls, outbound, &self.socket)?;
                Ok(n)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match (self.tls.as_mut(), self.outbound.as_mut()) {
            (None, None) => (&*self.socket).flush(),
            (None, Some(_)) => Ok(()),
            (Some(tls), outbound) => flush_tls(tls, outbound, &self.socket),
        }
    }
}

/// What one wake-up of the reading thread produced.
#[derive(Debug)]
pub enum Incoming {
    Text(String),
    /// A binary frame: protocol 1 has none, the receiver answers `bad_request`.
    Binary,
    /// A message over the size limit: the connection must close with 1009.
    TooBig,
    /// The peer closed (with a close frame, or by dropping the socket).
    Closed,
    /// A WebSocket ping or pong: a control frame, not a sign of life.
    Control,
}

/// The result of one [`Connection::read_batch`].
#[derive(Debug)]
pub enum ReadOutcome {
    Frames(Vec<Incoming>),
    /// Nothing arrived within the socket's read timeout.
    Idle,
}

#[derive(Debug)]
pub enum TransportError {
    Io(io::Error),
    Tls(String),
    WebSocket(String),
    /// The server refused the upgrade with this HTTP status (401 for a bad token).
    Refused {
        status: u16,
        body: String,
    },
    /// The peer did not finish the handshake in time.
    HandshakeTimeout,
    BadUrl(String),
    Config(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Io(e) => write!(f, "{e}"),
            TransportError::Tls(e) => write!(f, "tls: {e}"),
            TransportError::WebSocket(e) => write!(f, "websocket: {e}"),
            TransportError::Refused { status, body } if body.is_empty() => {
                write!(f, "server refused the connection with HTTP {status}")
            }
            TransportError::Refused { status, body } => {
                write!(
                    f,
                    "server refused the connection with HTTP {status}: {}",
                    body.trim()
                )
            }
            TransportError::HandshakeTimeout => f.write_str("handshake timed out"),
            TransportError::BadUrl(e) => write!(f, "bad server url: {e}"),
            TransportError::Config(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for TransportError {}

impl From<io::Error> for TransportError {
    fn from(e: io::Error) -> Self {
        TransportError::Io(e)
    }
}

/// One established WebSocket connection.
pub struct Connection {
    socket: Arc<TcpStream>,
    ws: Mutex<WebSocket<Pipe>>,
    peer: SocketAddr,
    /// Set once the connection is in queued mode.
    queue: OnceLock<writer::Queue>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .finish()
    }
}

impl Connection {
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn lock(&self) -> MutexGuard<'_, WebSocket<Pipe>> {
        // A thread that panicked while holding the lock leaves the socket
        // in an unknown state; the connection is unusable, so shut it.
        match self.ws.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                let _ = self.socket.shutdown(Shutdown::Both);
                poisoned.into_inner()
            }
        }
    }

    /// From now on, sends queue their frame and return at once; `pool`
    /// writes it out. The socket's write timeout becomes the pool's short
    /// one, since no caller waits on it any more.
    pub fn queue_writes(self: &Arc<Self>, pool: &WriterPool) -> io::Result<()> {
        self.socket
            .set_write_timeout(Some(writer::SOCKET_WRITE_TIMEOUT))?;
        let mut ws = self.lock();
        let pipe = ws.get_mut();
        pipe.outbound.get_or_insert_with(Vec::new);
        let _ = self
            .queue
            .set(writer::Queue::new(pool, Arc::downgrade(self)));
        Ok(())
    }

    /// Queued mode: nothing waits to be written.
    pub fn is_flushed(&self) -> bool {
        self.queue.get().is_none_or(writer::Queue::is_idle)
    }

    /// Encode queued frames (CPU only, under the lock) and take the bytes.
    /// Returns them and whether they end with a close frame.
    fn encode(&self, items: Vec<writer::Item>) -> (Vec<u8>, bool) {
        let mut ws = self.lock();
        let mut closes = false;
        for item in items {
            match item {
                writer::Item::Text(text) => {
                    // A connection tungstenite considers closed drops it.
                    let _ = ws.send(WsMessage::text(text));
                }
                writer::Item::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    let _ = ws.close(Some(frame));
                    let _ = ws.flush();
                    closes = true;
                }
            }
        }
        let bytes = ws
            .get_mut()
            .outbound
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        (bytes, closes)
    }

    fn has_outbound(&self) -> bool {
        self.lock().get_ref().has_outbound()
    }

    /// Send one text frame. Blocking mode: any failure shuts the socket
    /// down, which ends the reading thread (a peer that stopped reading is a
    /// dead peer). Queued mode: queue it and return; an error means the
    /// connection is closing or was cut off.
    pub fn send_text(&self, text: &str) -> io::Result<()> {
        if let Some(queue) = self.queue.get() {
            return queue.push(writer::Item::Text(text.to_string()));
        }
        let result = self.lock().send(WsMessage::text(text));
        result.map_err(|e| {
            let _ = self.socket.shutdown(Shutdown::Both);
            io::Error::other(e.to_string())
        })
    }

    /// The reading thread's own sends (replies, acks): in queued mode the
    /// frame is written on this thread when no writer owns the connection,
    /// saving a writer's wake-up; otherwise as [`Connection::send_text`].
    pub fn reply_text(&self, text: &str) -> io::Result<()> {
        match self.queue.get() {
            Some(queue) => queue.push_and_flush(writer::Item::Text(text.to_string())),
            None => self.send_text(text),
        }
    }

    /// Send a close frame with `code` and shut the socket down (queued
    /// mode: once the frames queued before it are out).
    pub fn close(&self, code: u16, reason: &str) {
        if let Some(queue) = self.queue.get() {
            if queue
                .push(writer::Item::Close(code, reason.to_string()))
                .is_err()
            {
                self.abort();
            }
            return;
        }
        {
            let mut ws = self.lock();
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_string().into(),
            };
            let _ = ws.close(Some(frame));
            let _ = ws.flush();
        }
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    /// The reading side is done: shut the socket down, unless a close frame
    /// is queued, which the writer sends first (within its deadline).
    pub fn end(&self) {
        if self.queue.get().is_some_and(writer::Queue::is_closing) {
            return;
        }
        self.abort();
    }

    /// Shut the socket down without a close frame (a dead or stuck peer).
    pub fn abort(&self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    /// Block until bytes arrive (or the read timeout passes), then decode every
    /// complete frame they carry.
    pub fn read_batch(&self, buf: &mut [u8]) -> ReadOutcome {
        let n = match (&*self.socket).read(buf) {
            Ok(n) => n,
            Err(e) if is_timeout(&e) => {
                return ReadOutcome::Idle;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return ReadOutcome::Frames(vec![]),
            Err(_) => return ReadOutcome::Frames(vec![Incoming::Closed]),
        };
        if n == 0 {
            return ReadOutcome::Frames(vec![Incoming::Closed]);
        }
        let mut ws = self.lock();
        if ws.get_mut().feed(&buf[..n]).is_err() {
            return ReadOutcome::Frames(vec![Incoming::Closed]);
        }
        let mut frames = Vec::new();
        loop {
            match ws.read() {
                Ok(WsMessage::Text(t)) => frames.push(Incoming::Text(t.as_str().to_string())),
                Ok(WsMessage::Binary(_)) => frames.push(Incoming::Binary),
                Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_)) => {
                    frames.push(Incoming::Control)
                }
                Ok(WsMessage::Close(_)) => {
                    // tungstenite queued the close reply; push it out.
                    let _ = ws.flush();
                    frames.push(Incoming::Closed);
                    break;
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(tungstenite::Error::Capacity(_)) => {
                    frames.push(Incoming::TooBig);
                    break;
                }
                Err(_) => {
                    frames.push(Incoming::Closed);
                    break;
                }
            }
        }
        // Queued mode: replies tungstenite or rustls produced while reading
        // (a pong, a close reply) wait for a writer.
        let produced = ws.get_ref().has_outbound();
        drop(ws);
        if produced && let Some(queue) = self.queue.get() {
            queue.wake();
        }
        ReadOutcome::Frames(frames)
    }

    /// Frames left over from a handshake phase first, else the next batch
    /// (empty when the read timed out).
    pub fn next_frames(&self, buf: &mut [u8], unread: &mut Vec<Incoming>) -> Vec<Incoming> {
        if !unread.is_empty() {
            return std::mem::take(unread);
        }
        match self.read_batch(buf) {
            ReadOutcome::Frames(frames) => frames,
            ReadOutcome::Idle => Vec::new(),
        }
    }

    /// Set how long [`Connection::read_batch`] waits before returning `Idle`.
    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.socket.set_read_timeout(Some(timeout))
    }

    pub fn is_tls(&self) -> bool {
        self.lock().get_ref().is_tls()
    }

    pub fn read_buffer() -> Vec<u8> {
        vec![0; READ_CHUNK]
    }
}

/// Drive a handshake over a [`Pipe`] until it completes or `deadline` passes.
fn drive_handshake<R: tungstenite::handshake::HandshakeRole<InternalStream = Pipe>>(
    socket: &TcpStream,
    mut attempt: Result<R::FinalResult, HandshakeError<R>>,
    deadline: Instant,
) -> Result<R::FinalResult, TransportError> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let mid = match attempt {
            Ok(done) => return Ok(done),
            Err(HandshakeError::Interrupted(mid)) => mid,
            Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                return Err(TransportError::Refused {
                    status: response.status().as_u16(),
                    body,
                });
            }
            Err(HandshakeError::Failure(e)) => {
                return Err(TransportError::WebSocket(e.to_string()));
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TransportError::HandshakeTimeout);
        }
        socket.set_read_timeout(Some(left))?;
        let n = match (&*socket).read(&mut buf) {
            Ok(0) => {
                return Err(TransportError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed the connection during the handshake",
                )));
            }
            Ok(n) => n,
            Err(e) if is_timeout(&e) => {
                return Err(TransportError::HandshakeTimeout);
            }
            Err(e) => return Err(e.into()),
        };
        let mut mid = mid;
        mid.get_mut().get_mut().feed(&buf[..n]).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                TransportError::Tls(e.to_string())
            } else {
                TransportError::Io(e)
            }
        })?;
        attempt = mid.handshake();
    }
}

/// Accept one WebSocket upgrade on `socket`. `authorize` sees the request and
/// either accepts it (its value is returned) or answers with an HTTP error.
#[allow(
    clippy::result_large_err,
    reason = "tungstenite's callback type fixes the size of the error response"
)]
pub fn accept<T>(
    socket: TcpStream,
    tls: Option<&Arc<rustls::ServerConfig>>,
    max_message_bytes: usize,
    deadline: Instant,
    authorize: impl FnOnce(&Request, &[CertificateDer<'static>]) -> Result<T, ErrorResponse>,
) -> Result<(Connection, T), TransportError> {
    let peer = socket.peer_addr()?;
    socket.set_nodelay(true)?;
    socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let socket = Arc::new(socket);
    let tls_conn = match tls {
        Some(config) => Some(rustls::Connection::Server(
            rustls::ServerConnection::new(config.clone())
                .map_err(|e| TransportError::Tls(e.to_string()))?,
        )),
        None => None,
    };
    let pipe = Pipe::new(socket.clone(), tls_conn);
    let peer_certs = pipe.peer_certs.clone();
    let mut accepted = None;
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let chain = peer_certs.get().map(Vec::as_slice).unwrap_or(&[]);
        accepted = Some(authorize(request, chain)?);
        Ok(response)
    };
    let attempt =
        tungstenite::accept_hdr_with_config(pipe, callback, Some(ws_config(max_message_bytes)));
    let ws = drive_handshake(&socket, attempt, deadline)?;
    let value =
        accepted.ok_or_else(|| TransportError::WebSocket("upgrade was not authorized".into()))?;
    socket.set_read_timeout(None)?;
    Ok((
        Connection {
            socket,
            ws: Mutex::new(ws),
            peer,
            queue: OnceLock::new(),
        },
        value,
    ))
}

/// Connect to `url` (`ws://` or `wss://`), sending `Authorization: Bearer`.
pub fn connect(
    url: &str,
    bearer_token: &str,
    tls: &Arc<rustls::ClientConfig>,
    max_message_bytes: usize,
    timeout: Duration,
) -> Result<Connection, TransportError> {
    use tungstenite::client::IntoClientRequest;
    let deadline = Instant::now() + timeout;
    let mut request = url
        .into_client_request()
        .map_err(|e| TransportError::BadUrl(e.to_string()))?;
    let uri = request.uri().clone();
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => {
            return Err(TransportError::BadUrl(format!(
                "{url}: the scheme must be ws:// or wss://"
            )));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| TransportError::BadUrl(format!("{url}: no host")))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let value = format!("Bearer {bearer_token}").parse().map_err(|_| {
        TransportError::Config("the token holds characters not allowed in an HTTP header".into())
    })?;
    request.headers_mut().insert("Authorization", value);

    let addrs: Vec<SocketAddr> = (host.as_str(), port).to_socket_addrs()?.collect();
    let mut last_error = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{host} resolves to no address"),
    );
    let mut socket = None;
    for addr in addrs {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                socket = Some(s);
                break;
            }
            Err(e) => last_error = e,
        }
    }
    let socket = socket.ok_or(TransportError::Io(last_error))?;
    let peer = socket.peer_addr()?;
    socket.set_nodelay(true)?;
    socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let socket = Arc::new(socket);
    let tls_conn = if secure {
        let name = ServerName::try_from(host.clone())
            .map_err(|e| TransportError::BadUrl(format!("{host}: {e}")))?;
        let mut conn = rustls::ClientConnection::new(tls.clone(), name)
            .map_err(|e| TransportError::Tls(e.to_string()))?;
        // The client speaks first in TLS: send the ClientHello now.
        while conn.wants_write() {
            conn.write_tls(&mut &*socket)?;
        }
        Some(rustls::Connection::Client(conn))
    } else {
        None
    };
    let pipe = Pipe::new(socket.clone(), tls_conn);
    let attempt =
        tungstenite::client::client_with_config(request, pipe, Some(ws_config(max_message_bytes)));
    let (ws, _response) = drive_handshake(&socket, attempt, deadline)?;
    socket.set_read_timeout(None)?;
    Ok(Connection {
        socket,
        ws: Mutex::new(ws),
        peer,
        queue: OnceLock::new(),
    })
}

/// Build a WebSocket over an already-upgraded stream: for tests that need a
/// raw peer. Not used by warden itself.
pub fn from_raw(socket: TcpStream, role: Role, max_message_bytes: usize) -> io::Result<Connection> {
    let peer = socket.peer_addr()?;
    let socket = Arc::new(socket);
    let ws = WebSocket::from_raw_socket(
        Pipe::new(socket.clone(), None),
        role,
        Some(ws_config(max_message_bytes)),
    );
    Ok(Connection {
        socket,
        ws: Mutex::new(ws),
        peer,
        queue: OnceLock::new(),
    })
}

#[cfg(test)]
mod tests;
