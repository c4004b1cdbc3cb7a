//! The backup directory: archive names, `.sha256` files, publishing an archive
//! atomically, reading one back for a restore, retention, and private scratch space.
//!
//! Names: `<container>-keys-YYYYMMDD-HHMM.tar.gz` (UTC), then `-2`, `-3`, … before
//! `.tar.gz` when that minute's name is taken. Beside each, `<name>.sha256` in
//! `sha256sum` format: `<64 lowercase hex>  <name>\n`.
//!
//! Temporary files and directories are named `.warden-tmp-<pid>-<n>-<purpose>`; a
//! process removes its own on every path (drop guards), and [`remove_stale_temps`]
//! removes those of processes that were killed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ring::digest;

use super::archive::{self, Entry, Origin};
use super::error::Cause;

const TEMP_PREFIX: &str = ".warden-tmp-";
/// Most archives one container may get in one minute.
const MAX_SEQ: u32 = 1000;
/// Largest `.sha256` file read.
const MAX_SHA_FILE_BYTES: u64 = 4096;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_name(purpose: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{TEMP_PREFIX}{}-{n}-{purpose}", std::process::id())
}

/// Creates the backup directory (0700) if needed, and makes it private if it is not.
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    crate::fsutil::ensure_private_dir(dir)?;
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    // Key backups are ours alone: a directory another user owns could be
    // read, or swapped, by that user.
    let uid = rustix::process::getuid().as_raw();
    if std::os::unix::fs::MetadataExt::uid(&meta) != uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to this user (uid {uid}); give the backups a directory of their own",
                dir.display(),
                std::os::unix::fs::MetadataExt::uid(&meta)
            ),
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        // Key backups: no one but the owner may list or read them. Through
        // the opened directory (fchmod), so the path is not resolved twice.
        File::open(dir)?.set_permissions(fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A private (0700) directory in the backup directory, removed with everything in it
/// when dropped, on every path including a panic's unwinding.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new(dir: &Path, purpose: &str) -> io::Result<Scratch> {
        let path = dir.join(temp_name(purpose));
        fs::DirBuilder::new().mode(0o700).create(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
        Ok(Scratch { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new private directory inside this one.
    pub fn subdir(&self, name: &str) -> io::Result<PathBuf> {
        let path = self.path.join(name);
        fs::DirBuilder::new().mode(0o700).create(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Removes a file when dropped unless disarmed.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Removes `.warden-tmp-*` entries left by processes other than this one (killed
/// mid-backup). Returns how many were removed.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(items) = fs::read_dir(dir) else {
        return 0;
    };
    let own = format!("{TEMP_PREFIX}{}-", std::process::id());
    let mut removed = 0;
    for item in items.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        if !name.starts_with(TEMP_PREFIX) || name.starts_with(&own) {
            continue;
        }
        // `.warden-tmp-<pid>-…`: another live process's scratch is in use.
        let owner = name[TEMP_PREFIX.len()..]
            .split('-')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        if owner.is_some_and(super::marker::held_by_another_live_process) {
            continue;
        }
        let path = item.path();
        let result = match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(error) => Err(error),
        };
        if result.is_ok() {
            removed += 1;
        }
    }
    removed
}

// ---- time ----

/// UTC calendar time of a Unix time: (year, month, day, hour, minute, second). The
/// crate has one civil-date conversion, [`crate::log::format_utc`]; this reads its
/// fields back.
pub fn utc(unix: u64) -> (i64, u32, u32, u32, u32, u32) {
    let text = crate::log::format_utc(i64::try_from(unix).unwrap_or(i64::MAX));
    let fields: Vec<i64> = text
        .trim_end_matches('Z')
        .split(['-', 'T', ':'])
        .map(|part| part.parse().unwrap_or(0))
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    let small = |i: usize| u32::try_from(field(i)).unwrap_or(0);
    (field(0), small(1), small(2), small(3), small(4), small(5))
}

/// `2025-01-08T14:30:00Z`
pub fn rfc3339(unix: u64) -> String {
    let (y, mo, d, h, mi, s) = utc(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `20250108143000`, for names of things inside a container.
pub fn compact_stamp(unix: u64) -> String {
    let (y, mo, d, h, mi, s) = utc(unix);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

// ---- names ----

/// A parsed archive file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArchiveName {
    /// Sort key first: date, time, sequence.
    pub date: u32,
    pub time: u32,
    pub seq: u32,
    pub container: String,
}

/// `<container>-keys-YYYYMMDD-HHMM[-N].tar.gz` for `unix`, sequence `seq` (1 = no suffix).
pub fn archive_file_name(container: &str, unix: u64, seq: u32) -> String {
    let (y, mo, d, h, mi, _) = utc(unix);
    let suffix = if seq > 1 {
        format!("-{seq}")
    } else {
        String::new()
    };
    format!("{container}-keys-{y:04}{mo:02}{d:02}-{h:02}{mi:02}{suffix}.tar.gz")
}

fn all_digits(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_digit())
}

/// `<container>-keys-YYYYMMDD-HHMM` → (container, date, time).
fn parse_stem(stem: &str) -> Option<(&str, &str, &str)> {
    let (rest, time) = stem.rsplit_once('-')?;
    let (rest, date) = rest.rsplit_once('-')?;
    let container = rest.strip_suffix("-keys")?;
    (all_digits(time, 4) && all_digits(date, 8)).then_some((container, date, time))
}

/// Reads an archive name back; `None` for any other name.
pub fn parse_archive_name(name: &str) -> Option<ArchiveName> {
    let stem = name.strip_suffix(".tar.gz")?;
    let with_seq = stem.rsplit_once('-').and_then(|(head, last)| {
        let seq: u32 = last.parse().ok()?;
        let canonical = last.bytes().all(|b| b.is_ascii_digit()) && !last.starts_with('0');
        (canonical && seq >= 2)
            .then(|| parse_stem(head).map(|parts| (parts, seq)))
            .flatten()
    });
    let ((container, date, time), seq) = match with_seq {
        Some(found) => found,
        None => (parse_stem(stem)?, 1),
    };
    crate::docker::validate_container_name(container).ok()?;
    Some(ArchiveName {
        date: date.parse().ok()?,
        time: time.parse().ok()?,
        seq,
        container: container.to_owned(),
    })
}

/// Checks a backup file name given by an operator: a plain `….tar.gz` name.
pub fn check_backup_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    if name.len() > 255 {
        return Err("it is longer than 255 bytes".to_owned());
    }
    if name.contains(['/', '\\']) {
        return Err("give a file name in the backup directory, not a path".to_owned());
    }
    if name.contains("..") {
        return Err("it contains `..`".to_owned());
    }
    if name.starts_with('.') {
        return Err("names starting with `.` are warden's own temporary files".to_owned());
    }
    if name.chars().any(char::is_control) {
        return Err("it contains control characters".to_owned());
    }
    if !name.ends_with(".tar.gz") || name.len() == ".tar.gz".len() {
        return Err("a key backup's name ends in .tar.gz".to_owned());
    }
    Ok(())
}

// ---- checksums ----

/// One line in `sha256sum` format.
pub fn sha256_line(hex_digest: &str, file_name: &str) -> String {
    format!("{hex_digest}  {file_name}\n")
}

/// The digest a `sha256sum` line gives for `file_name` (text `  ` or binary ` *` mode).
pub fn parse_sha256_file(text: &str, file_name: &str) -> Result<String, String> {
    let line = text.strip_suffix('\n').unwrap_or(text);
    if line.contains('\n') {
        return Err("the checksum file has more than one line".to_owned());
    }
    let (digest, name) = line
        .split_once("  ")
        .or_else(|| line.split_once(" *"))
        .ok_or_else(|| "the checksum file is not in sha256sum format".to_owned())?;
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the checksum file does not hold a SHA-256 digest".to_owned());
    }
    if name != file_name {
        return Err(format!(
            "the checksum file names {name:?}, not {file_name:?}"
        ));
    }
    Ok(digest.to_ascii_lowercase())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes))
}

/// Passes writes through while hashing and counting them.
struct HashingWriter<W> {
    inner: W,
    context: digest::Context,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.context.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// ---- publishing ----

/// Wraps the archive's temp file in another writer (tests inject failures with it).
pub type WrapWriter = dyn Fn(File) -> Box<dyn Write>;

/// An archive that is in place under its final name, with its `.sha256`.
#[derive(Debug, Clone)]
pub struct Published {
    pub file_name: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    pub entries: Vec<Entry>,
}

/// Archives the tree under `tree_root` into the backup directory: temp file, fsync,
/// read back and verified against the tree, then linked under the first free name,
/// the directory fsynced, the `.sha256` written atomically. On any failure nothing
/// is left: not the temp file, not a partial archive.
pub fn publish_archive(
    dir: &Path,
    origin: &Origin,
    tree_root: &Path,
    unix: u64,
    wrap: Option<&WrapWriter>,
) -> Result<Published, Cause> {
    let entries = archive::scan_tree(tree_root).map_err(|error| match error {
        archive::TreeError::Unsupported(problem) => {
            Cause::Verify(format!("the copied keys cannot be archived: {problem}"))
        }
        archive::TreeError::Io(error) => error.into(),
    })?;
    if !entries.iter().any(|e| e.path == "keystore") {
        return Err(Cause::Verify("no keystore directory was copied".to_owned()));
    }
    // The header records the public keys the archive holds (its keystore file names).
    let mut keys: Vec<String> = entries
        .iter()
        .filter(|e| e.kind == archive::Kind::File)
        .filter_map(|e| e.path.strip_prefix("keystore/"))
        .filter(|rest| !rest.contains('/'))
        .map(str::to_owned)
        .collect();
    keys.sort();
    let origin = &Origin {
        keys: Some(keys),
        ..origin.clone()
    };
    let temp_path = dir.join(temp_name("archive.tar.gz"));
    let mut temp_guard = RemoveOnDrop(Some(temp_path.clone()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp_path)?;
    let sync_handle = file.try_clone()?;
    let writer: Box<dyn Write> = match wrap {
        Some(wrap) => wrap(file),
        None => Box::new(file),
    };
    let hashing = HashingWriter {
        inner: BufWriter::new(writer),
        context: digest::Context::new(&digest::SHA256),
        bytes: 0,
    };
    let mut hashing = archive::write_archive(tree_root, &entries, origin, unix, hashing)?;
    hashing.flush()?;
    let HashingWriter {
        inner,
        context,
        bytes,
    } = hashing;
    drop(inner.into_inner().map_err(|error| error.into_error())?);
    sync_handle.sync_all()?;
    drop(sync_handle);
    let sha256 = hex::encode(context.finish());

    // Read back what is on disk, not what was meant to be written.
    let on_disk = fs::read(&temp_path)?;
    if on_disk.len() as u64 != bytes || sha256_hex(&on_disk) != sha256 {
        return Err(Cause::Verify(
            "the archive read back from disk differs from what was written".to_owned(),
        ));
    }
    let written = archive::read_archive(&on_disk).map_err(|problem| {
        Cause::Verify(format!("the archive just written is invalid: {problem}"))
    })?;
    if written.entries != entries {
        return Err(Cause::Verify(
            "the archive's entries differ from the copied files".to_owned(),
        ));
    }
    if let Some(difference) = archive::compare_tree(
        tree_root,
        &written.entries,
        &written.contents,
        &archive::TOP_DIRS,
        false,
    )? {
        return Err(Cause::Verify(format!(
            "the archive differs from the copied files: {difference}"
        )));
    }

    let (file_name, path) = link_unique(dir, &temp_path, &origin.container, unix)?;
    // The archive has its name; the temp name goes.
    temp_guard.0 = None;
    let _ = fs::remove_file(&temp_path);
    let sha_path = dir.join(format!("{file_name}.sha256"));
    if let Err(error) =
        crate::fsutil::write_atomic(&sha_path, sha256_line(&sha256, &file_name).as_bytes())
    {
        // An archive without its checksum cannot be restored: take it back.
        let _ = fs::remove_file(&path);
        let _ = sync_dir(dir);
        return Err(error.into());
    }
    Ok(Published {
        file_name,
        path,
        bytes,
        sha256,
        entries,
    })
}

/// Gives `temp` the first free archive name: a hard link fails if the name exists,
/// so two writers can never take the same one. Where hard links are not supported,
/// falls back to rename after a check (one agent per backup directory).
fn link_unique(
    dir: &Path,
    temp: &Path,
    container: &str,
    unix: u64,
) -> io::Result<(String, PathBuf)> {
    for seq in 1..=MAX_SEQ {
        let name = archive_file_name(container, unix, seq);
        let path = dir.join(&name);
        match fs::hard_link(temp, &path) {
            Ok(()) => {
                sync_dir(dir)?;
                return Ok((name, path));
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::Unsupported
                ) || error.raw_os_error() == Some(95) =>
            {
                if fs::symlink_metadata(&path).is_ok() {
                    continue;
                }
                fs::rename(temp, &path)?;
                sync_dir(dir)?;
                return Ok((name, path));
            }
            Err(error) => return Err(error),
        }
    }
    Err(io::Error::other(format!(
        "{MAX_SEQ} archives of {container} already exist for this minute"
    )))
}

// ---- reading a backup ----

/// Why a named backup cannot be read.
#[derive(Debug)]
pub enum ReadError {
    NotFound,
    /// Not a regular file, a symlink, or swapped while opening.
    NotRegular(String),
    TooLarge,
    Io(io::Error),
}

/// Reads a regular file (not through a symlink) whole, refusing more than `max` bytes.
fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(ReadError::NotFound),
        Err(error) => return Err(ReadError::Io(error)),
    };
    if meta.file_type().is_symlink() {
        return Err(ReadError::NotRegular("it is a symbolic link".to_owned()));
    }
    if !meta.is_file() {
        return Err(ReadError::NotRegular("it is not a regular file".to_owned()));
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge);
    }
    let file = File::open(path).map_err(ReadError::Io)?;
    let opened = file.metadata().map_err(ReadError::Io)?;
    // Swapped for a link or another file between the check and the open.
    if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) || !opened.is_file() {
        return Err(ReadError::NotRegular(
            "it was replaced while being opened".to_owned(),
        ));
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge);
    }
    Ok(bytes)
}

/// Reads `<dir>/<name>` (at most [`archive::MAX_ARCHIVE_BYTES`]).
pub fn read_backup(dir: &Path, name: &str) -> Result<Vec<u8>, ReadError> {
    read_regular(&dir.join(name), archive::MAX_ARCHIVE_BYTES)
}

/// Checks `bytes` against `<dir>/<name>.sha256`; the problem if missing or wrong.
pub fn check_checksum(dir: &Path, name: &str, bytes: &[u8]) -> Result<String, String> {
    let sha_name = format!("{name}.sha256");
    let text = match read_regular(&dir.join(&sha_name), MAX_SHA_FILE_BYTES) {
        Ok(text) => text,
        Err(ReadError::NotFound) => {
            return Err(format!(
                "its checksum file {sha_name} is missing (an archive is trusted only with its \
                 checksum)"
            ));
        }
        Err(ReadError::NotRegular(why)) => return Err(format!("{sha_name}: {why}")),
        Err(ReadError::TooLarge) => return Err(format!("{sha_name} is too large")),
        Err(ReadError::Io(error)) => return Err(format!("cannot read {sha_name}: {error}")),
    };
    let text = String::from_utf8(text).map_err(|_| format!("{sha_name} is not text"))?;
    let expected = parse_sha256_file(&text, name)?;
    let actual = sha256_hex(bytes);
    if actual != expected {
        return Err(format!(
            "its SHA-256 is {actual}, but {sha_name} says {expected}: the archive is damaged or \
             was changed"
        ));
    }
    Ok(actual)
}

// ---- retention ----

/// Keeps the newest `keep` archives of `container` (at least one: the one just
/// written, which is never deleted, plus the newest `keep - 1` others) and deletes the
/// rest with their `.sha256`. Returns the names deleted and any deletion failures.
pub fn prune(
    dir: &Path,
    container: &str,
    keep: usize,
    just_written: &str,
) -> (Vec<String>, Vec<String>) {
    let mut failures = Vec::new();
    let items = match fs::read_dir(dir) {
        Ok(items) => items,
        Err(error) => {
            return (
                Vec::new(),
                vec![format!("cannot list the backup directory: {error}")],
            );
        }
    };
    let mut archives: Vec<(ArchiveName, String)> = items
        .flatten()
        .filter(|item| item.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|item| item.file_name().into_string().ok())
        .filter(|name| name != just_written)
        .filter_map(|name| parse_archive_name(&name).map(|parsed| (parsed, name)))
        .filter(|(parsed, _)| parsed.container == container)
        .collect();
    // Newest first.
    archives.sort_by(|a, b| b.0.cmp(&a.0));
    let keep_others = keep.max(1) - 1;
    let mut deleted = Vec::new();
    for (_, name) in archives.into_iter().skip(keep_others) {
        match fs::remove_file(dir.join(&name)) {
            Ok(()) => {
                let sha = dir.join(format!("{name}.sha256"));
                if let Err(error) = fs::remove_file(&sha)
                    && error.kind() != io::ErrorKind::NotFound
                {
                    failures.push(format!("cannot delete {name}.sha256: {error}"));
                }
                deleted.push(name);
            }
            Err(error) => failures.push(format!("cannot delete {name}: {error}")),
        }
    }
    if !deleted.is_empty()
        && let Err(error) = sync_dir(dir)
    {
        failures.push(format!("cannot sync the backup directory: {error}"));
    }
    (deleted, failures)
}

#[cfg(test)]
#[path = "store_tests.rs"]
pub(super) mod tests;
