//! Crash-safe file primitives used by every store in warden.
//!
//! - Replaced files go through temp file + fsync + rename + fsync of the
//!   folder, so a reader sees the old or the new content, never a mix.
//! - Logs are JSON Lines appended with one `write` per record; a record only
//!   counts once its newline is on disk, so a torn last line (kill -9 during
//!   an append) is detected and skipped on reading.
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Create `dir` (and parents) with mode 0700 if it does not exist.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp path beside `path`, unique within this process and across processes.
fn temp_beside(path: &Path) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}.{n}", std::process::id()))
}

/// Replace `path` with `bytes` atomically, mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = temp_beside(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// An append-only JSON Lines file, opened once and kept open.
#[derive(Debug)]
pub struct JsonLog {
    path: PathBuf,
    file: File,
}

impl JsonLog {
    /// Open (creating with mode 0600) for appending. A torn last line left by
    /// a crash is ended with a newline so the next record starts clean.
    pub fn open(path: &Path) -> io::Result<JsonLog> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o600)
            .open(path)?;
        let len = file.metadata()?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8; 1];
            let mut reader = &file;
            reader.seek(SeekFrom::Start(len - 1))?;
            reader.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        // Keep the mode tight even if the file already existed.
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        Ok(JsonLog {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record as one line. With `durable`, returns only once the
    /// record is on disk (use it before acknowledging anything to a peer).
    pub fn append<T: Serialize>(&mut self, record: &T, durable: bool) -> io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.append_bytes(&line)?;
        if durable {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

impl JsonLog {
    /// Append whole lines (each ending in a newline) with one write; not
    /// synced.
    pub fn append_bytes(&mut self, lines: &[u8]) -> io::Result<()> {
        self.file.write_all(lines)
    }

    /// Make every record appended so far durable (one fsync for a batch).
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Read every whole, parsable record of a JSON Lines file; a missing file is
/// empty. Returns the records and how many lines were skipped (torn or
/// foreign lines), so the caller can say so.
pub fn read_json_lines<T: DeserializeOwned>(path: &Path) -> io::Result<(Vec<T>, usize)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut records = Vec::new();
    let mut skipped = 0;
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(&line) {
            Ok(r) => records.push(r),
            Err(_) => skipped += 1,
        }
    }
    Ok((records, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("warden-fsutil-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn torn_last_line_is_skipped_and_next_append_starts_clean() {
        let dir = temp_dir("torn");
        let path = dir.join("log.jsonl");
        fs::write(&path, b"{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        let (records, skipped) = read_json_lines::<Value>(&path).unwrap();
        assert_eq!(records, vec![json!({"a":1}), json!({"a":2})]);
        assert_eq!(skipped, 1);
        let mut log = JsonLog::open(&path).unwrap();
        log.append(&json!({"a":3}), true).unwrap();
        let (records, skipped) = read_json_lines::<Value>(&path).unwrap();
        assert_eq!(
            records,
            vec![json!({"a":1}), json!({"a":2}), json!({"a":3})]
        );
        assert_eq!(skipped, 1);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = temp_dir("atomic");
        let path = dir.join("state.json");
        write_json_atomic(&path, &json!({"v":1})).unwrap();
        write_json_atomic(&path, &json!({"v":2})).unwrap();
        let v: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(v, json!({"v":2}));
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
