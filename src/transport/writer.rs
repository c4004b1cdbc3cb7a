//! Queued writes: how the server sends without ever waiting on a socket.
//!
//! A connection switched to queued mode ([`Connection::queue_writes`]) takes
//! frames into a bounded queue and returns at once. A small pool of
//! long-lived writer threads encodes them (under the connection's lock, CPU
//! only) and writes the bytes to the socket with no lock held. A socket
//! whose send buffer is full blocks a writer for at most
//! [`SOCKET_WRITE_TIMEOUT`]; the connection is then parked and retried
//! every [`RETRY_INTERVAL`], so one slow agent costs the pool almost
//! nothing and delays no other agent.
//!
//! Invariants:
//! - At most one writer works on a connection at a time (`scheduled`), so
//!   bytes reach the socket in the order they were produced (TLS records
//!   must).
//! - Every chunk of bytes has a deadline for the whole chunk
//!   ([`WRITE_DEADLINE`]), not a per-syscall timer: a peer that reads a
//!   byte now and then is still cut off.
//! - A connection's queue is bounded ([`QUEUE_MAX_BYTES`]); overflowing it
//!   means the peer stopped reading: it is cut off.
//! - Nothing here ever takes a lock while doing socket I/O.
use super::Connection;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

/// How long one `write` may block on a full send buffer before the writer
/// parks the connection and moves on.
pub const SOCKET_WRITE_TIMEOUT: Duration = Duration::from_millis(2);
/// How often parked connections are tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(50);
/// A chunk of queued bytes (one or more frames, a single frame may be up to
/// the 1 MiB message limit) must be written whole within this: a peer that
/// cannot take 1 MiB in 5 s is treated as gone.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// More than this queued for one peer means it is not reading: cut it off.
pub const QUEUE_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Frames encoded into one chunk at most (bytes of payload).
const CHUNK_BYTES: usize = 64 * 1024;
/// Writer threads. Writers never wait long on a socket, so two keep up with
/// thousands of agents on this project's 2-core reference machine.
pub const WRITERS: usize = 2;
/// Writer threads do little: a small stack keeps the server lean.
const WRITER_STACK: usize = 256 * 1024;

/// A frame waiting to be encoded.
pub(super) enum Item {
    Text(String),
    Close(u16, String),
}

#[derive(Default)]
pub(super) struct OutState {
    items: VecDeque<Item>,
    /// Payload bytes of `items`.
    item_bytes: usize,
    /// Encoded bytes a stalled write left behind, and how far it got.
    leftover: Vec<u8>,
    leftover_pos: usize,
    /// When the leftover chunk's first write was tried.
    leftover_started: Option<Instant>,
    /// The leftover chunk ends with a close frame: shut down once written.
    leftover_closes: bool,
    /// A writer owns the connection (queued for it, working, or parked).
    scheduled: bool,
    /// A close frame was queued: nothing more is taken.
    closing: bool,
    /// Cut off or closed: nothing more is taken or written.
    dead: bool,
}

impl OutState {
    fn queued_bytes(&self) -> usize {
        self.item_bytes + self.leftover.len() - self.leftover_pos
    }

    fn clear(&mut self) {
        self.items.clear();
        self.item_bytes = 0;
        self.leftover = Vec::new();
        self.leftover_pos = 0;
        self.leftover_started = None;
    }
}

/// A queued-mode connection's side of the pool.
pub(super) struct Queue {
    state: Mutex<OutState>,
    worker: Sender<Arc<Connection>>,
    me: Weak<Connection>,
}

impl Queue {
    pub(super) fn new(pool: &WriterPool, me: Weak<Connection>) -> Queue {
        let n = pool.next.fetch_add(1, Ordering::Relaxed) % pool.workers.len();
        Queue {
            state: Mutex::new(OutState::default()),
            worker: pool.workers[n].clone(),
            me,
        }
    }

    fn lock(&self) -> MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue one frame; never blocks on I/O.
    pub(super) fn push(&self, item: Item) -> io::Result<()> {
        let len = item_len(&item);
        let mut state = self.lock();
        if state.dead || state.closing {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection is closing",
            ));
        }
        if state.queued_bytes() + len > QUEUE_MAX_BYTES {
            state.dead = true;
            state.clear();
            drop(state);
            self.shutdown();
            return Err(io::Error::other(
                "the peer is not reading its messages; cut off",
            ));
        }
        state.closing = matches!(item, Item::Close(..));
        state.item_bytes += len;
        state.items.push_back(item);
        self.schedule(state);
        Ok(())
    }

    /// Queue one frame and, if no writer owns the connection, write it on
    /// the calling thread: for the connection's own reader (pongs, acks,
    /// errors), which saves waking a writer for each. A full socket hands
    /// the rest to the pool; the reader never waits on it.
    pub(super) fn push_and_flush(&self, item: Item) -> io::Result<()> {
        let mut state = self.lock();
        let len = item_len(&item);
        if state.dead || state.closing {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection is closing",
            ));
        }
        if state.scheduled || state.queued_bytes() + len > QUEUE_MAX_BYTES {
            drop(state);
            return self.push(item);
        }
        state.closing = matches!(item, Item::Close(..));
        state.item_bytes += len;
        state.items.push_back(item);
        state.scheduled = true;
        drop(state);
        let Some(conn) = self.me.upgrade() else {
            return Ok(());
        };
        if flush(&conn) == Flush::Stalled {
            let _ = self.worker.send(conn);
        }
        Ok(())
    }

    /// Bytes were produced outside `push` (a pong or close reply the reader
    /// generated): make sure a writer picks them up.
    pub(super) fn wake(&self) {
        let state = self.lock();
        if !state.dead {
            self.schedule(state);
        }
    }

    fn schedule(&self, mut state: MutexGuard<'_, OutState>) {
        if state.scheduled {
            return;
        }
        let Some(conn) = self.me.upgrade() else {
            return;
        };
        state.scheduled = true;
        drop(state);
        // A worker that is gone (only at process exit) just leaves it queued.
        let _ = self.worker.send(conn);
    }

    /// A close frame is queued or sent.
    pub(super) fn is_closing(&self) -> bool {
        let state = self.lock();
        state.closing && !state.dead
    }

    /// Nothing is queued or being written.
    pub(super) fn is_idle(&self) -> bool {
        let state = self.lock();
        state.dead || (!state.scheduled && state.queued_bytes() == 0)
    }

    fn shutdown(&self) {
        if let Some(conn) = self.me.upgrade() {
            let _ = conn.socket.shutdown(Shutdown::Both);
        }
    }
}

/// The writer threads. Each queued connection is served by one of them.
pub struct WriterPool {
    workers: Vec<Sender<Arc<Connection>>>,
    next: AtomicUsize,
}

impl WriterPool {
    /// Start `threads` named writer threads (`writer-N`).
    pub fn start(threads: usize) -> io::Result<Arc<WriterPool>> {
        let mut workers = Vec::new();
        for n in 0..threads.max(1) {
            let (tx, rx) = mpsc::channel();
            thread::Builder::new()
                .name(format!("writer-{n}"))
                .stack_size(WRITER_STACK)
                .spawn(move || work(rx))?;
            workers.push(tx);
        }
        Ok(Arc::new(WriterPool {
            workers,
            next: AtomicUsize::new(0),
        }))
    }
}

#[derive(Debug, PartialEq)]
enum Flush {
    /// Everything queued is on the wire (or the connection is gone).
    Done,
    /// The socket is full: try again later.
    Stalled,
}

fn work(rx: Receiver<Arc<Connection>>) {
    let mut parked: Vec<Arc<Connection>> = Vec::new();
    let mut last_retry = Instant::now();
    loop {
        let next = if parked.is_empty() {
            match rx.recv() {
                Ok(conn) => Some(conn),
                Err(_) => return,
            }
        } else {
            let wait = RETRY_INTERVAL.saturating_sub(last_retry.elapsed());
            match rx.recv_timeout(wait) {
                Ok(conn) => Some(conn),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        if let Some(conn) = next
            && flush(&conn) == Flush::Stalled
        {
            if parked.is_empty() {
                last_retry = Instant::now();
            }
            parked.push(conn);
        }
        if !parked.is_empty() && last_retry.elapsed() >= RETRY_INTERVAL {
            last_retry = Instant::now();
            for conn in std::mem::take(&mut parked) {
                if flush(&conn) == Flush::Stalled {
                    parked.push(conn);
                }
            }
        }
    }
}

/// Write what `conn` has queued until it is all out, the socket is full, or
/// the connection is gone.
fn flush(conn: &Connection) -> Flush {
    let Some(queue) = conn.queue.get() else {
        return Flush::Done;
    };
    loop {
        // What a stalled write left behind goes first; else encode more.
        let (chunk, mut pos, started, closes) = {
            let mut state = queue.lock();
            if state.dead {
                state.clear();
                state.scheduled = false;
                return Flush::Done;
            }
            if state.leftover_pos < state.leftover.len() {
                let chunk = std::mem::take(&mut state.leftover);
                let pos = std::mem::replace(&mut state.leftover_pos, 0);
                let started = state.leftover_started.take().unwrap_or_else(Instant::now);
                (
                    chunk,
                    pos,
                    started,
                    std::mem::take(&mut state.leftover_closes),
                )
            } else {
                let mut items = Vec::new();
                let mut taken = 0;
                while taken < CHUNK_BYTES
                    && let Some(item) = state.items.pop_front()
                {
                    taken += item_len(&item);
                    items.push(item);
                }
                state.item_bytes -= taken;
                drop(state);
                let (chunk, closes) = conn.encode(items);
                if chunk.is_empty() {
                    // Done only if nothing arrived meanwhile (checked with
                    // both locks, in the order the reader never nests).
                    let mut state = queue.lock();
                    if state.items.is_empty() && !conn.has_outbound() {
                        state.scheduled = false;
                        return Flush::Done;
                    }
                    continue;
                }
                (chunk, 0, Instant::now(), closes)
            }
        };
        while pos < chunk.len() {
            match (&*conn.socket).write(&chunk[pos..]) {
                Ok(0) => return cut_off(conn, queue),
                Ok(n) => pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if super::is_timeout(&e) => {
                    if started.elapsed() >= WRITE_DEADLINE {
                        return cut_off(conn, queue);
                    }
                    let mut state = queue.lock();
                    state.leftover = chunk;
                    state.leftover_pos = pos;
                    state.leftover_started = Some(started);
                    state.leftover_closes = closes;
                    return Flush::Stalled;
                }
                Err(_) => return cut_off(conn, queue),
            }
        }
        if closes {
            // The close frame is out: the connection is over.
            let _ = conn.socket.shutdown(Shutdown::Both);
            return cut_off(conn, queue);
        }
    }
}

fn item_len(item: &Item) -> usize {
    match item {
        Item::Text(t) => t.len(),
        Item::Close(_, r) => r.len() + 2,
    }
}

fn cut_off(conn: &Connection, queue: &Queue) -> Flush {
    let _ = conn.socket.shutdown(Shutdown::Both);
    let mut state = queue.lock();
    state.dead = true;
    state.clear();
    state.scheduled = false;
    Flush::Done
}
