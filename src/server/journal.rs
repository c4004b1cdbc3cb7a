//! Group commit: the server's append-only files, written and synced on their
//! own thread so the hub never waits on a disk.
//!
//! The hub fills a [`Batch`] while it handles events: the lines to append
//! (issued commands, outcomes, events, key updates, audit records) and what
//! may happen only once they are on disk (acks to agents, sending a command,
//! printing it). The journal thread takes every batch that is waiting,
//! appends their lines, syncs each file it wrote once, then runs the
//! batches' follow-ups in order. So ten outcomes that arrive together cost
//! one fsync, and an acked message is on disk whatever happens next.
//!
//! Rotation: a file past its size limit is renamed `<name>.1` (older
//! generations shift to `.2` …, the oldest beyond [`Rotation::keep`] is
//! deleted) and a new one is started, after a commit, so no record is ever
//! split across files. The store reads the generations back, oldest first,
//! at start.
//!
//! Invariants:
//! - A follow-up runs only after every line of its batch, and of every batch
//!   before it, is synced.
//! - A failed write or sync stops the server (exit 1): after it nothing
//!   could be acked truthfully, and a restart replays what is on disk while
//!   agents resend what was never acked.
use crate::fsutil::JsonLog;
use serde::Serialize;
use std::io;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};

/// The files the journal appends to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// `commands.jsonl`: issued commands and their outcomes.
    Commands,
    /// `events.jsonl`: agents' durable events and the server's alerts.
    Events,
    /// `audit.jsonl`: who did what, when, with what outcome.
    Audit,
    /// `keys.jsonl`: session-key reports, one line each.
    Keys,
}

const LOGS: [(Log, &str); 4] = [
    (Log::Commands, "commands.jsonl"),
    (Log::Events, "events.jsonl"),
    (Log::Audit, "audit.jsonl"),
    (Log::Keys, "keys.jsonl"),
];

/// How many waiting batches one commit takes at most.
const MAX_BATCHES_PER_COMMIT: usize = 4096;

pub type FollowUp = Box<dyn FnOnce() + Send>;

/// Lines to append, and what to do once they are on disk.
#[derive(Default)]
pub struct Batch {
    lines: Vec<(Log, Vec<u8>)>,
    follow_ups: Vec<FollowUp>,
}

impl Batch {
    /// Append `record` as one JSON line to `log`.
    pub fn write<T: Serialize>(&mut self, log: Log, record: &T) {
        // Serialising our own types cannot fail (no non-string map keys).
        if let Ok(mut line) = serde_json::to_vec(record) {
            line.push(b'\n');
            self.lines.push((log, line));
        }
    }

    /// Run `f` once this batch (and every one before it) is on disk.
    pub fn then(&mut self, f: impl FnOnce() + Send + 'static) {
        self.follow_ups.push(Box::new(f));
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.follow_ups.is_empty()
    }
}

/// The journal thread's handle.
pub struct Journal {
    tx: Option<Sender<Batch>>,
    thread: Option<JoinHandle<()>>,
}

/// When the journal's files are rotated, and how long generations live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// A file past this size is rotated after the commit that passed it.
    pub max_bytes: u64,
    /// Rotated generations kept (`<name>.1` … `<name>.keep`).
    pub keep: u32,
    /// A rotated generation last written longer ago than this is deleted
    /// (at start and at each rotation); 0 keeps them whatever their age.
    pub max_age_days: u64,
}

impl Default for Rotation {
    /// 64 MiB a file, 4 generations, 365 days: at most ~320 MiB for each of
    /// the history, events and audit log, a few hundred thousand commands.
    fn default() -> Rotation {
        Rotation {
            max_bytes: 64 * 1024 * 1024,
            keep: 4,
            max_age_days: 365,
        }
    }
}

impl Rotation {
    /// Delete `path`'s rotated generations older than `max_age_days`.
    fn prune_old(&self, path: &Path) {
        if self.max_age_days == 0 {
            return;
        }
        let max_age = std::time::Duration::from_secs(self.max_age_days * 86_400);
        for n in 1..=self.keep.max(1) {
            let old = generation(path, n);
            let too_old = std::fs::metadata(&old)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > max_age);
            if too_old {
                let _ = std::fs::remove_file(&old);
            }
        }
    }
}

/// The names of `path`'s rotated generations that exist, oldest first,
/// then `path` itself: the order to read them back in.
pub fn generations(path: &Path, keep: u32) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = (1..=keep.max(1))
        .rev()
        .map(|n| generation(path, n))
        .filter(|p| p.exists())
        .collect();
    out.push(path.to_path_buf());
    out
}

fn generation(path: &Path, n: u32) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    std::path::PathBuf::from(name)
}

/// The files, opened by [`Journal::open`] before the thread starts, so a
/// data dir that cannot be written fails the start, not the first write.
pub struct Files {
    logs: Vec<(Log, JsonLog)>,
    rotation: Rotation,
}

impl Files {
    pub fn open(data_dir: &Path) -> io::Result<Files> {
        Files::open_with(data_dir, Rotation::default())
    }

    pub fn open_with(data_dir: &Path, rotation: Rotation) -> io::Result<Files> {
        let mut logs = Vec::new();
        for (log, name) in LOGS {
            let path = data_dir.join(name);
            rotation.prune_old(&path);
            logs.push((log, JsonLog::open(&path)?));
        }
        Ok(Files { logs, rotation })
    }

    /// Rotate every file past the size limit: `name` → `name.1` → … and a
    /// new, empty `name`.
    fn rotate_full(&mut self) -> io::Result<()> {
        for (_, file) in self.logs.iter_mut() {
            let path = file.path().to_path_buf();
            if std::fs::metadata(&path)?.len() < self.rotation.max_bytes {
                continue;
            }
            let keep = self.rotation.keep.max(1);
            let _ = std::fs::remove_file(generation(&path, keep));
            for n in (1..keep).rev() {
                let from = generation(&path, n);
                if from.exists() {
                    std::fs::rename(&from, generation(&path, n + 1))?;
                }
            }
            std::fs::rename(&path, generation(&path, 1))?;
            *file = JsonLog::open(&path)?;
            self.rotation.prune_old(&path);
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }

    /// Append every line of `batches`, then sync each file written once.
    fn commit(&mut self, batches: &[Batch]) -> io::Result<()> {
        let mut dirty = [false; LOGS.len()];
        for (i, (log, file)) in self.logs.iter_mut().enumerate() {
            let mut bytes = Vec::new();
            for batch in batches {
                for (which, line) in &batch.lines {
                    if which == log {
                        bytes.extend_from_slice(line);
                    }
                }
            }
            if !bytes.is_empty() {
                file.append_bytes(&bytes)?;
                dirty[i] = true;
            }
        }
        for (i, (_, file)) in self.logs.iter_mut().enumerate() {
            if dirty[i] {
                file.sync()?;
            }
        }
        if dirty.iter().any(|d| *d) {
            self.rotate_full()?;
        }
        Ok(())
    }
}

impl Journal {
    /// Start the journal thread over `files`.
    pub fn start(files: Files) -> io::Result<Journal> {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("journal".into())
            .spawn(move || run(files, rx))?;
        Ok(Journal {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Hand a batch over; returns at once.
    pub fn submit(&self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(batch);
        }
    }

    /// Write everything submitted, run its follow-ups, and stop the thread.
    pub fn finish(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.finish();
    }
}

fn run(mut files: Files, rx: Receiver<Batch>) {
    while let Ok(first) = rx.recv() {
        let mut batches = vec![first];
        while batches.len() < MAX_BATCHES_PER_COMMIT {
            match rx.try_recv() {
                Ok(batch) => batches.push(batch),
                Err(_) => break,
            }
        }
        if let Err(e) = files.commit(&batches) {
            crate::log::error(&format!(
                "cannot write the server's journal: {e}. Stopping: nothing more can be \
                 acknowledged safely. Free the disk or fix the data dir, then start the \
                 server again; agents resend everything that was not acknowledged"
            ));
            std::process::exit(1);
        }
        for batch in batches {
            for follow_up in batch.follow_ups {
                follow_up();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    #[test]
    fn follow_ups_run_in_order_after_their_lines_are_written() {
        let dir = std::env::temp_dir().join(format!("warden-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut journal = Journal::start(Files::open(&dir).unwrap()).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for n in 0..50 {
            let mut batch = Batch::default();
            batch.write(Log::Commands, &json!({"n": n}));
            let (seen, path) = (seen.clone(), dir.join("commands.jsonl"));
            batch.then(move || {
                let on_disk = std::fs::read_to_string(path).unwrap();
                seen.lock()
                    .unwrap()
                    .push((n, on_disk.contains(&format!("{{\"n\":{n}}}"))));
            });
            journal.submit(batch);
        }
        journal.finish();
        let seen = seen.lock().unwrap();
        let order: Vec<i32> = seen.iter().map(|(n, _)| *n).collect();
        assert_eq!(order, (0..50).collect::<Vec<_>>());
        assert!(seen.iter().all(|(_, written)| *written), "{seen:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn full_files_rotate_into_generations_read_back_in_order() {
        let dir = std::env::temp_dir().join(format!("warden-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let rotation = Rotation {
            max_bytes: 100,
            keep: 2,
            max_age_days: 0,
        };
        let mut journal = Journal::start(Files::open_with(&dir, rotation).unwrap()).unwrap();
        let (done, committed) = std::sync::mpsc::channel();
        for n in 0..20 {
            let mut batch = Batch::default();
            batch.write(
                Log::Audit,
                &json!({"n": n, "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}),
            );
            let done = done.clone();
            batch.then(move || done.send(()).unwrap());
            journal.submit(batch);
            // One commit each, so the file passes its limit again and again.
            committed.recv().unwrap();
        }
        journal.finish();
        let path = dir.join("audit.jsonl");
        let files = generations(&path, rotation.keep);
        assert_eq!(files.len(), 3, "{files:?}");
        let mut seen = Vec::new();
        for file in &files {
            let (records, _) = crate::fsutil::read_json_lines::<serde_json::Value>(file).unwrap();
            seen.extend(records.iter().map(|r| r["n"].as_i64().unwrap()));
        }
        // The oldest generations were deleted; what is left is in order.
        assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
        assert_eq!(seen.last(), Some(&19));
        assert!(std::fs::metadata(&files[0]).unwrap().len() >= 100);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn generations_past_their_age_are_deleted() {
        let dir = std::env::temp_dir().join(format!("warden-age-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        for n in 1..=3 {
            std::fs::write(generation(&path, n), b"{}\n").unwrap();
        }
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(generation(&path, 3))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let rotation = Rotation {
            max_bytes: 1 << 20,
            keep: 3,
            max_age_days: 30,
        };
        let _files = Files::open_with(&dir, rotation).unwrap();
        assert!(generation(&path, 1).exists() && generation(&path, 2).exists());
        assert!(!generation(&path, 3).exists(), "40 days old, kept 30");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
