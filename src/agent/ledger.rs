//! The agent's durable ledger: which command ids it has seen, their terminal
//! responses, the durable events it has raised, and which of those the
//! server has acknowledged. One JSON Lines file, `<state dir>/ledger.jsonl`,
//! appended to, replayed on start, and compacted.
//!
//! Invariants:
//! - A command is recorded as started (on disk) before it runs: after a crash
//!   it is never run again; it gets a `failed` response saying its outcome is
//!   unknown, so no command is left without an outcome.
//! - A terminal response or event is on disk before it is first sent, and is
//!   resent after every `welcome` until acknowledged.
//! - Compaction keeps everything unacknowledged and every id still inside the
//!   command age window ([`Ledger::open`]'s `window`): an id older than that
//!   would be refused by the age check anyway, so forgetting it cannot run a
//!   command twice. It runs at start and whenever the file has doubled
//!   (at least [`COMPACT_MIN_BYTES`]), as an atomic rewrite.
//! - Group commit: records are written under the ledger's lock but synced
//!   outside it through a [`Ticket`]; threads finishing together share one
//!   fsync ([`Syncer`]).
//! - Once acknowledged, a response larger than [`KEEP_ACKED_BYTES`] is kept
//!   as a stub (its result replaced by a note): the server already has it,
//!   and a resend of a seen id only needs its status.
use crate::fsutil::{self, JsonLog};
use crate::protocol::{CommandResponse, ErrorCode, Event, EventKind, Message, is_valid_id, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The file is compacted once it is at least this big and twice its size
/// after the last compaction.
pub const COMPACT_MIN_BYTES: u64 = 4 * 1024 * 1024;
/// Acknowledged responses larger than this (encoded) are kept as stubs.
pub const KEEP_ACKED_BYTES: usize = 4 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "rec", rename_all = "snake_case")]
enum Record {
    Started {
        id: String,
        ts: i64,
    },
    Response {
        response: CommandResponse,
    },
    Event {
        #[serde(rename = "type")]
        kind: String,
        data: Map<String, Value>,
    },
    Acked {
        key: String,
    },
}

/// What the ledger knows of a command id.
#[derive(Debug, PartialEq)]
pub enum Seen<'a> {
    New,
    Running,
    Done(&'a CommandResponse),
}

/// A message waiting for the server's ack, keyed `cmd:<id>` or `evt:<event id>`.
#[derive(Clone, Debug)]
struct Pending {
    key: String,
    message: Message,
}

/// Shares fsyncs between the threads waiting for their records.
pub struct Syncer {
    /// Records written so far (a sequence number).
    written: AtomicU64,
    state: Mutex<SyncState>,
    synced: Condvar,
}

struct SyncState {
    /// A handle on the ledger file: fsync of any descriptor syncs the file.
    file: Arc<File>,
    synced: u64,
    syncing: bool,
}

/// A record written but perhaps not yet on disk; [`Ticket::wait`] returns
/// once it is.
#[must_use]
pub struct Ticket {
    seq: u64,
    syncer: Arc<Syncer>,
}

impl Ticket {
    /// Block until the record is on disk. The first waiter syncs everything
    /// written so far; the others wait for that sync instead of their own.
    pub fn wait(self) -> io::Result<()> {
        let syncer = &self.syncer;
        let mut state = syncer.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.synced >= self.seq {
                return Ok(());
            }
            if state.syncing {
                state = syncer.synced.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            state.syncing = true;
            // Everything written before this load is covered by the sync.
            let target = syncer.written.load(Ordering::SeqCst);
            let file = state.file.clone();
            drop(state);
            let result = file.sync_data();
            state = syncer.state.lock().unwrap_or_else(|p| p.into_inner());
            state.syncing = false;
            if result.is_ok() {
                state.synced = state.synced.max(target);
            }
            syncer.synced.notify_all();
            result?;
        }
    }
}

pub struct Ledger {
    log: JsonLog,
    path: PathBuf,
    syncer: Arc<Syncer>,
    /// Ids recorded as started that have no response yet.
    running: HashSet<String>,
    responses: HashMap<String, CommandResponse>,
    pending: Vec<Pending>,
    /// Ids kept only inside this window (see the module's invariants).
    window: Duration,
    /// The file's size after the last compaction.
    compacted_len: u64,
    pub skipped_lines: usize,
}

fn cmd_key(id: &str) -> String {
    format!("cmd:{id}")
}

/// A response as kept once acknowledged: itself, or a stub if large.
fn kept_after_ack(response: CommandResponse) -> CommandResponse {
    let size = serde_json::to_vec(&response).map(|v| v.len()).unwrap_or(0);
    if size <= KEEP_ACKED_BYTES {
        return response;
    }
    CommandResponse {
        result: response.result.as_ref().map(|_| {
            Value::from(format!(
                "[a result of {size} bytes, delivered and acknowledged; the agent keeps no copy]"
            ))
        }),
        error: response
            .error
            .map(|e| e.chars().take(KEEP_ACKED_BYTES / 4).collect()),
        ..response
    }
}

impl Ledger {
    /// Replay the ledger and compact it. Commands that were started but
    /// never finished (the agent died while they ran) get a terminal
    /// `failed` response now. `window` is how long a seen id must be
    /// remembered: the policy's command age limit plus the clock skew it
    /// tolerates.
    pub fn open(state_dir: &Path, window: Duration) -> io::Result<(Ledger, Vec<String>)> {
        fsutil::ensure_private_dir(state_dir)?;
        check_state_dir(state_dir)?;
        let path = state_dir.join("ledger.jsonl");
        let (mut records, mut skipped_lines) = fsutil::read_json_lines::<Record>(&path)?;
        // Ids written before ids were checked on the wire (a 400 KB id, a
        // NUL) would be resent and refused forever: they are dropped here.
        let before = records.len();
        records.retain(|record| match record {
            Record::Started { id, .. } => is_valid_id(id),
            Record::Response { response } => is_valid_id(&response.id),
            Record::Event { data, .. } => data
                .get("event_id")
                .and_then(Value::as_str)
                .is_some_and(is_valid_id),
            Record::Acked { .. } => true,
        });
        skipped_lines += before - records.len();
        let mut started_order = Vec::new();
        let mut started = HashSet::new();
        let mut responses: HashMap<String, CommandResponse> = HashMap::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut acked = HashSet::new();
        for record in records {
            match record {
                Record::Started { id, .. } => {
                    if started.insert(id.clone()) {
                        started_order.push(id);
                    }
                }
                Record::Response { response } => {
                    pending.push(Pending {
                        key: cmd_key(&response.id),
                        message: Message::CommandResponse(response.clone()),
                    });
                    responses.entry(response.id.clone()).or_insert(response);
                }
                Record::Event { kind, data } => {
                    let (Some(kind), Some(event_id)) = (
                        EventKind::parse(&kind),
                        data.get("event_id")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    ) else {
                        continue;
                    };
                    pending.push(Pending {
                        key: format!("evt:{event_id}"),
                        message: Message::Event(Event {
                            kind,
                            event_id,
                            data,
                        }),
                    });
                }
                Record::Acked { key } => {
                    acked.insert(key);
                }
            }
        }
        pending.retain(|p| !acked.contains(&p.key));
        let mut seen_keys = HashSet::new();
        pending.retain(|p| seen_keys.insert(p.key.clone()));
        for (id, response) in responses.iter_mut() {
            if acked.contains(&cmd_key(id)) {
                *response = kept_after_ack(response.clone());
            }
        }
        let log = JsonLog::open(&path)?;
        let syncer = Arc::new(Syncer {
            written: AtomicU64::new(0),
            state: Mutex::new(SyncState {
                file: Arc::new(File::open(&path)?),
                synced: 0,
                syncing: false,
            }),
            synced: Condvar::new(),
        });
        let mut ledger = Ledger {
            log,
            path,
            syncer,
            running: HashSet::new(),
            responses,
            pending,
            window,
            compacted_len: 0,
            skipped_lines,
        };
        let interrupted: Vec<String> = started_order
            .into_iter()
            .filter(|id| !ledger.responses.contains_key(id))
            .collect();
        for id in &interrupted {
            // Made durable by the compaction just below.
            let _synced_by_compaction = ledger.store_response(CommandResponse::failed(
                id,
                ErrorCode::Internal,
                "the agent stopped while this command was running; its outcome is unknown: \
                 check the container (status, logs) before running it again",
            ))?;
        }
        ledger.compact(now_ms())?;
        Ok((ledger, interrupted))
    }

    pub fn seen(&self, id: &str) -> Seen<'_> {
        match self.responses.get(id) {
            Some(r) => Seen::Done(r),
            None if self.running.contains(id) => Seen::Running,
            None => Seen::New,
        }
    }

    /// Write a record; it is on disk once the returned ticket's wait returns.
    fn append(&mut self, record: &Record) -> io::Result<Ticket> {
        self.log.append(record, false)?;
        let seq = self.syncer.written.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Ticket {
            seq,
            syncer: self.syncer.clone(),
        })
    }

    /// Mark `id` as started; wait for the ticket before running it.
    pub fn start(&mut self, id: &str) -> io::Result<Ticket> {
        let ticket = self.append(&Record::Started {
            id: id.to_string(),
            ts: now_ms(),
        })?;
        self.running.insert(id.to_string());
        Ok(ticket)
    }

    /// Store a terminal response; it stays pending until acked. `None` (and
    /// nothing stored) if `id` already has one. Wait for the ticket before
    /// sending the response.
    pub fn finish(&mut self, response: CommandResponse) -> io::Result<Option<Ticket>> {
        if self.responses.contains_key(&response.id) {
            return Ok(None);
        }
        let ticket = self.store_response(response)?;
        self.compact_if_grown()?;
        Ok(Some(ticket))
    }

    fn store_response(&mut self, response: CommandResponse) -> io::Result<Ticket> {
        let ticket = self.append(&Record::Response {
            response: response.clone(),
        })?;
        self.running.remove(&response.id);
        self.pending.push(Pending {
            key: cmd_key(&response.id),
            message: Message::CommandResponse(response.clone()),
        });
        self.responses.insert(response.id.clone(), response);
        Ok(ticket)
    }

    /// Remember a response in memory only, when the ledger cannot be
    /// written: the id is still never run again by this process.
    pub fn remember_unsaved(&mut self, response: CommandResponse) {
        self.running.remove(&response.id);
        self.responses
            .entry(response.id.clone())
            .or_insert(response);
    }

    /// Queue an event until the server acks it; `None` if it already is.
    /// Wait for the ticket before sending it.
    pub fn raise(&mut self, event: Event) -> io::Result<Option<Ticket>> {
        let key = format!("evt:{}", event.event_id);
        if self.pending.iter().any(|p| p.key == key) {
            return Ok(None);
        }
        let ticket = self.append(&Record::Event {
            kind: event.kind.as_str().to_string(),
            data: event.data.clone(),
        })?;
        self.pending.push(Pending {
            key,
            message: Message::Event(event),
        });
        self.compact_if_grown()?;
        Ok(Some(ticket))
    }

    fn ack(&mut self, key: String) -> io::Result<()> {
        if !self.pending.iter().any(|p| p.key == key) {
            return Ok(());
        }
        // Not synced: losing an ack record only causes a harmless resend.
        let _unsynced = self.append(&Record::Acked { key: key.clone() })?;
        self.pending.retain(|p| p.key != key);
        if let Some(id) = key.strip_prefix("cmd:")
            && let Some(response) = self.responses.remove(id)
        {
            self.responses
                .insert(id.to_string(), kept_after_ack(response));
        }
        Ok(())
    }

    pub fn ack_command(&mut self, id: &str) -> io::Result<()> {
        self.ack(cmd_key(id))
    }

    pub fn ack_event(&mut self, event_id: &str) -> io::Result<()> {
        self.ack(format!("evt:{event_id}"))
    }

    /// Everything not yet acknowledged, oldest first.
    pub fn pending(&self) -> Vec<Message> {
        self.pending.iter().map(|p| p.message.clone()).collect()
    }

    /// How many command ids the ledger remembers (for tests and logs).
    pub fn remembered(&self) -> usize {
        self.responses.len() + self.running.len()
    }

    fn compact_if_grown(&mut self) -> io::Result<()> {
        let len = std::fs::metadata(&self.path)?.len();
        if len >= COMPACT_MIN_BYTES.max(self.compacted_len.saturating_mul(2)) {
            self.compact(now_ms())?;
        }
        Ok(())
    }

    /// Forget acknowledged ids older than the window, then rewrite the file
    /// with what is left (atomically: temp file, fsync, rename).
    pub fn compact(&mut self, now_ms: i64) -> io::Result<()> {
        let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(window_ms);
        let pending_keys: HashSet<&str> = self.pending.iter().map(|p| p.key.as_str()).collect();
        self.responses.retain(|id, response| {
            response.timestamp >= cutoff || pending_keys.contains(cmd_key(id).as_str())
        });
        let mut bytes = Vec::new();
        let mut push = |record: &Record| -> io::Result<()> {
            serde_json::to_writer(&mut bytes, record).map_err(io::Error::other)?;
            bytes.push(b'\n');
            Ok(())
        };
        let ts = now_ms;
        for id in &self.running {
            push(&Record::Started { id: id.clone(), ts })?;
        }
        for (id, response) in &self.responses {
            push(&Record::Response {
                response: response.clone(),
            })?;
            if !pending_keys.contains(cmd_key(id).as_str()) {
                push(&Record::Acked { key: cmd_key(id) })?;
            }
        }
        for p in &self.pending {
            if let Message::Event(e) = &p.message {
                push(&Record::Event {
                    kind: e.kind.as_str().to_string(),
                    data: e.data.clone(),
                })?;
            }
        }
        fsutil::write_atomic(&self.path, &bytes)?;
        self.log = JsonLog::open(&self.path)?;
        // The rewrite was fsynced whole: everything written is durable, and
        // later syncs must go to the new file.
        let mut state = self.syncer.state.lock().unwrap_or_else(|p| p.into_inner());
        state.file = Arc::new(File::open(&self.path)?);
        state.synced = self.syncer.written.load(Ordering::SeqCst);
        drop(state);
        self.syncer.synced.notify_all();
        self.compacted_len = bytes.len() as u64;
        Ok(())
    }
}

/// The files of the state dir that are opened (and chmod-ed) by name.
pub const STATE_FILES: [&str; 2] = ["ledger.jsonl", "audit.jsonl"];

/// Refuse a state dir someone else could have prepared: it must belong to
/// this user and be writable by nobody else, and its ledger and audit log
/// must not be symbolic links (opening one, and setting its mode, would
/// follow the link: a planted `ledger.jsonl -> /etc/shadow` made 0600).
pub fn check_state_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let refuse = |why: String| Err(io::Error::new(io::ErrorKind::PermissionDenied, why));
    // The dir itself may be a link (e.g. to a bigger disk): its target is
    // what gets checked.
    let meta = std::fs::metadata(dir)?;
    let uid = rustix::process::getuid().as_raw();
    if meta.uid() != uid {
        return refuse(format!(
            "{} belongs to uid {}, not to this user (uid {uid}); give the agent a state dir of its own",
            dir.display(),
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return refuse(format!(
            "{} is writable by group or others (mode {mode:o}); run `chmod go-w {}`",
            dir.display(),
            dir.display()
        ));
    }
    for name in STATE_FILES {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return refuse(format!(
                    "{} is a symbolic link; the agent does not follow links in its state dir: remove it",
                    path.display()
                ));
            }
            Ok(meta) if meta.uid() != uid => {
                return refuse(format!(
                    "{} belongs to uid {}, not to this user (uid {uid})",
                    path.display(),
                    meta.uid()
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
