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
    if meta.permissions().mode() & 0o077 != 0 {
        // Key backups: no one but the owner may list or read them.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
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
pub(super) mod tests {
    use super::*;
    use crate::backup::testutil::TempDir;

    #[test]
    fn utc_calendar() {
        assert_eq!(utc(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc(1_736_346_600), (2025, 1, 8, 14, 30, 0));
        assert_eq!(utc(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc(4_107_542_399), (2100, 2, 28, 23, 59, 59));
        assert_eq!(rfc3339(1_736_346_659), "2025-01-08T14:30:59Z");
        assert_eq!(compact_stamp(1_736_346_659), "20250108143059");
    }

    #[test]
    fn archive_names_round_trip() {
        let t = 1_736_346_600;
        assert_eq!(
            archive_file_name("3node0", t, 1),
            "3node0-keys-20250108-1430.tar.gz"
        );
        assert_eq!(
            archive_file_name("3node0", t, 2),
            "3node0-keys-20250108-1430-2.tar.gz"
        );
        for (name, parsed) in [
            ("3node0-keys-20250108-1430.tar.gz", Some(("3node0", 1))),
            ("3node0-keys-20250108-1430-12.tar.gz", Some(("3node0", 12))),
            ("a-keys-b-keys-20250108-1430.tar.gz", Some(("a-keys-b", 1))),
            (
                "x-keys-20250108-1430-keys-20250109-0900.tar.gz",
                Some(("x-keys-20250108-1430", 1)),
            ),
            ("3node0-keys-20250108.tar.gz", None),
            ("3node0-keys-20250108-1430-01.tar.gz", None),
            ("3node0-keys-20250108-1430-1.tar.gz", None),
            ("-keys-20250108-1430.tar.gz", None),
            ("3node0-keys-20250108-1430.tar", None),
            ("mybackup.tar.gz", None),
        ] {
            let got = parse_archive_name(name);
            assert_eq!(
                got.as_ref().map(|n| (n.container.as_str(), n.seq)),
                parsed,
                "{name}"
            );
        }
    }

    #[test]
    fn backup_names_from_operators() {
        assert!(check_backup_name("3node0-keys-20250108-1430.tar.gz").is_ok());
        for bad in [
            "",
            "../x.tar.gz",
            "a/b.tar.gz",
            "a\\b.tar.gz",
            ".hidden.tar.gz",
            "x..tar.gz",
            "x.zip",
            ".tar.gz",
            "a\nb.tar.gz",
        ] {
            assert!(check_backup_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sha256_file_format() {
        let digest = sha256_hex(b"abc");
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let line = sha256_line(&digest, "n0-keys-20250108-1430.tar.gz");
        assert_eq!(
            line,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  \
             n0-keys-20250108-1430.tar.gz\n"
        );
        assert_eq!(
            parse_sha256_file(&line, "n0-keys-20250108-1430.tar.gz"),
            Ok(digest.clone())
        );
        let binary = format!("{}  *x.tar.gz\n", digest.to_uppercase()).replace("  *", " *");
        assert_eq!(parse_sha256_file(&binary, "x.tar.gz"), Ok(digest.clone()));
        assert!(parse_sha256_file(&line, "other.tar.gz").is_err());
        assert!(parse_sha256_file("abc  x.tar.gz\n", "x.tar.gz").is_err());
        assert!(
            parse_sha256_file(&format!("{line}{line}"), "n0-keys-20250108-1430.tar.gz").is_err()
        );
    }

    fn touch_archive(dir: &Path, name: &str) {
        fs::write(dir.join(name), b"x").unwrap();
        fs::write(dir.join(format!("{name}.sha256")), b"y").unwrap();
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn retention_keeps_exactly_n_and_never_the_new_one() {
        let temp = TempDir::new("store-retention");
        let dir = temp.path();
        for name in [
            "n1-keys-20250101-0000.tar.gz",
            "n1-keys-20250102-0000.tar.gz",
            "n1-keys-20250102-0000-2.tar.gz",
            "n1-keys-20250103-0900.tar.gz",
            // A clock set in the future once: newer by name than the one just written.
            "n1-keys-20990101-0000.tar.gz",
            // Other containers and other files are never touched.
            "n10-keys-20240101-0000.tar.gz",
            "n1-keys-notes.txt",
        ] {
            touch_archive(dir, name);
        }
        let new = "n1-keys-20250104-0000.tar.gz";
        touch_archive(dir, new);
        let (deleted, failures) = prune(dir, "n1", 3, new);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(
            deleted,
            [
                "n1-keys-20250102-0000-2.tar.gz",
                "n1-keys-20250102-0000.tar.gz",
                "n1-keys-20250101-0000.tar.gz",
            ]
        );
        assert_eq!(
            listing(dir),
            [
                "n1-keys-20250103-0900.tar.gz",
                "n1-keys-20250103-0900.tar.gz.sha256",
                "n1-keys-20250104-0000.tar.gz",
                "n1-keys-20250104-0000.tar.gz.sha256",
                "n1-keys-20990101-0000.tar.gz",
                "n1-keys-20990101-0000.tar.gz.sha256",
                "n1-keys-notes.txt",
                "n1-keys-notes.txt.sha256",
                "n10-keys-20240101-0000.tar.gz",
                "n10-keys-20240101-0000.tar.gz.sha256",
            ]
        );
        // keep = 1 (or 0) leaves only the new one.
        let (deleted, _) = prune(dir, "n1", 0, new);
        assert_eq!(deleted.len(), 2);
        assert!(dir.join(new).exists());
    }

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("keystore")).unwrap();
        fs::create_dir_all(root.join("network")).unwrap();
        fs::write(root.join("keystore/6772616e01"), b"\"secret\"").unwrap();
        fs::write(root.join("network/secret_ed25519"), [1u8; 32]).unwrap();
    }

    fn origin(container: &str) -> Origin {
        Origin {
            container: container.to_owned(),
            chain_id: "creditcoin3".to_owned(),
            ..Origin::default()
        }
    }

    #[test]
    fn publishing_names_atomically_with_collision_suffix() {
        let temp = TempDir::new("store-publish");
        let dir = temp.path().join("backups");
        prepare_dir(&dir).unwrap();
        let src = temp.path().join("src");
        tree(&src);
        let t = 1_736_346_600;
        let first = publish_archive(&dir, &origin("n0"), &src, t, None).unwrap();
        let second = publish_archive(&dir, &origin("n0"), &src, t + 30, None).unwrap();
        let third = publish_archive(&dir, &origin("n0"), &src, t + 59, None).unwrap();
        assert_eq!(first.file_name, "n0-keys-20250108-1430.tar.gz");
        assert_eq!(second.file_name, "n0-keys-20250108-1430-2.tar.gz");
        assert_eq!(third.file_name, "n0-keys-20250108-1430-3.tar.gz");
        for published in [&first, &second, &third] {
            let bytes = fs::read(&published.path).unwrap();
            assert_eq!(bytes.len() as u64, published.bytes);
            assert_eq!(sha256_hex(&bytes), published.sha256);
            assert_eq!(
                check_checksum(&dir, &published.file_name, &bytes),
                Ok(published.sha256.clone())
            );
            let mode = fs::metadata(&published.path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let sha_text = fs::read_to_string(dir.join("n0-keys-20250108-1430.tar.gz.sha256")).unwrap();
        assert_eq!(
            sha_text,
            format!("{}  n0-keys-20250108-1430.tar.gz\n", first.sha256)
        );
        // Only archives and checksums: no temp file left.
        assert_eq!(listing(&dir).len(), 6, "{:?}", listing(&dir));
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    /// Bytes that do not compress (xorshift), so an archive of them is as large.
    pub(crate) fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    /// A writer that fails after `limit` bytes, as a full disk does.
    struct FailAfter {
        inner: File,
        limit: usize,
        written: usize,
        panic: bool,
    }

    impl Write for FailAfter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.written + buf.len() > self.limit {
                if self.panic {
                    // Once: the encoders' destructors write again while unwinding, and
                    // a second panic there would abort the test process.
                    self.panic = false;
                    panic!("injected panic while writing the archive");
                }
                return Err(io::Error::from_raw_os_error(28));
            }
            self.written += buf.len();
            self.inner.write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }

    pub(crate) fn failing_writer(limit: usize, panic: bool) -> Box<WrapWriter> {
        Box::new(move |file| {
            Box::new(FailAfter {
                inner: file,
                limit,
                written: 0,
                panic,
            })
        })
    }

    #[test]
    fn failing_midway_leaves_no_partial_file() {
        let temp = TempDir::new("store-enospc");
        let dir = temp.path().join("backups");
        prepare_dir(&dir).unwrap();
        let src = temp.path().join("src");
        tree(&src);
        // Big enough that the gzip stream spills past the buffer mid-way.
        fs::write(src.join("keystore/big"), noise(200_000)).unwrap();
        let wrap = failing_writer(10_000, false);
        let cause = publish_archive(&dir, &origin("n0"), &src, 0, Some(&*wrap)).unwrap_err();
        match &cause {
            Cause::Io { kind, .. } => assert_eq!(*kind, io::ErrorKind::StorageFull),
            other => panic!("{other:?}"),
        }
        assert!(cause.to_string().contains("disk is full"), "{cause}");
        assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));

        let wrap = failing_writer(10_000, true);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            publish_archive(&dir, &origin("n0"), &src, 0, Some(&*wrap))
        }));
        assert!(result.is_err());
        assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
    }

    #[test]
    fn reading_refuses_links_and_wrong_checksums() {
        let temp = TempDir::new("store-read");
        let dir = temp.path();
        fs::write(dir.join("real.tar.gz"), b"data").unwrap();
        std::os::unix::fs::symlink(dir.join("real.tar.gz"), dir.join("link.tar.gz")).unwrap();
        assert!(matches!(
            read_backup(dir, "link.tar.gz"),
            Err(ReadError::NotRegular(_))
        ));
        assert!(matches!(
            read_backup(dir, "none.tar.gz"),
            Err(ReadError::NotFound)
        ));
        fs::create_dir(dir.join("d.tar.gz")).unwrap();
        assert!(matches!(
            read_backup(dir, "d.tar.gz"),
            Err(ReadError::NotRegular(_))
        ));
        let bytes = read_backup(dir, "real.tar.gz").unwrap();
        assert!(
            check_checksum(dir, "real.tar.gz", &bytes)
                .unwrap_err()
                .contains("missing")
        );
        fs::write(
            dir.join("real.tar.gz.sha256"),
            sha256_line(&sha256_hex(b"other"), "real.tar.gz"),
        )
        .unwrap();
        assert!(
            check_checksum(dir, "real.tar.gz", &bytes)
                .unwrap_err()
                .contains("damaged")
        );
        fs::write(
            dir.join("real.tar.gz.sha256"),
            sha256_line(&sha256_hex(b"data"), "real.tar.gz"),
        )
        .unwrap();
        assert!(check_checksum(dir, "real.tar.gz", &bytes).is_ok());
    }

    #[test]
    fn stale_temps_of_other_processes_are_removed() {
        let temp = TempDir::new("store-stale");
        let dir = temp.path();
        fs::create_dir(dir.join(".warden-tmp-999999999-0-backup")).unwrap();
        fs::write(dir.join(".warden-tmp-999999999-1-archive.tar.gz"), b"x").unwrap();
        let own = Scratch::new(dir, "mine").unwrap();
        assert_eq!(remove_stale_temps(dir), 2);
        assert!(own.path().exists());
        let path = own.path().to_path_buf();
        drop(own);
        assert!(!path.exists());
    }
}
