//! One sink's durable queue: a directory with one file per notice,
//! `<seq>.json` (20 digits, so names sort by age). A notice is written
//! (atomic replace, fsync) before `enqueue` returns and removed only after
//! the sink accepted it, so a crash loses none; one in flight at a crash is
//! sent again (at least once). Files hold the notice only: no URL, no token.
use super::super::notice::Notice;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// Notices a queue holds at most; beyond, `push` refuses (the caller reports
/// it: never a silent drop).
pub const MAX_QUEUED: usize = 10_000;
/// A queue file larger than this is not a notice warden wrote.
const MAX_FILE_BYTES: u64 = 256 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    pub notice: Notice,
    pub enqueued_ms: i64,
}

#[derive(Debug)]
pub struct Queue {
    dir: PathBuf,
    next_seq: u64,
    len: usize,
}

fn seq_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

impl Queue {
    pub fn open(dir: &Path) -> io::Result<Queue> {
        crate::fsutil::ensure_private_dir(dir)?;
        let entries = Queue::entries(dir)?;
        Ok(Queue {
            dir: dir.to_path_buf(),
            next_seq: entries.last().map_or(1, |(s, _)| s + 1),
            len: entries.len(),
        })
    }

    /// Queue files, oldest first. Anything else in the directory is ignored
    /// (temp files of an interrupted write).
    fn entries(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
        let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter_map(|p| seq_of(&p).map(|s| (s, p)))
            .collect();
        out.sort();
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, item: &Queued) -> io::Result<()> {
        if self.len >= MAX_QUEUED {
            return Err(io::Error::other(format!(
                "the queue holds {MAX_QUEUED} notices already; the sink has been failing for long: check it"
            )));
        }
        let path = self.dir.join(format!("{:020}.json", self.next_seq));
        crate::fsutil::write_json_atomic(&path, item)?;
        self.next_seq += 1;
        self.len += 1;
        Ok(())
    }

    /// The oldest notice and its file. An unreadable file is moved aside
    /// (`<name>.bad`, kept for inspection) and reported as an error, so one
    /// bad file cannot block the queue.
    pub fn front(&mut self) -> io::Result<Option<(PathBuf, Queued)>> {
        let entries = Queue::entries(&self.dir)?;
        self.len = entries.len();
        let Some((_, path)) = entries.into_iter().next() else {
            return Ok(None);
        };
        let read = super::super::config::read_bounded(&path, MAX_FILE_BYTES)
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|b| serde_json::from_slice::<Queued>(&b).map_err(io::Error::other));
        match read {
            Ok(item) => Ok(Some((path, item))),
            Err(e) => {
                let aside = path.with_extension("json.bad");
                std::fs::rename(&path, &aside)?;
                self.len = self.len.saturating_sub(1);
                Err(io::Error::other(format!(
                    "unreadable queue file moved to {}: {e}",
                    aside.display()
                )))
            }
        }
    }

    pub fn remove(&mut self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)?;
        self.len = self.len.saturating_sub(1);
        Ok(())
    }
}
