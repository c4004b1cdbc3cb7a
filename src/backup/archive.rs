//! The key-backup archive: what goes in, how it is written, and the one reader that
//! decides whether an archive is safe to restore.
//!
//! Format: a gzip-compressed tar whose entries are `keystore`, `keystore/…`, `network`,
//! `network/…` (relative paths, directories and regular files only, files mode 0600,
//! directories 0700, uid/gid 0, every mtime the backup's time), in name order. The gzip
//! header's comment says `warden key backup; container=NAME; chain=ID; host=HOST;
//! keys=NAME,NAME…` (the keystore's file names: key type and public key), so an archive
//! keeps saying whose keys it holds, from which host, when its file is renamed.
//!
//! [`read_archive`] is used twice: to verify an archive just written (so warden never
//! publishes what it would refuse to restore) and to validate an archive before a restore
//! (the whole archive, before anything is written anywhere). It works on bytes already in
//! memory, read once: what was checksummed is what is checked and extracted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use flate2::Compression;
use flate2::GzBuilder;
use flate2::read::GzDecoder;
use tar::{Builder, EntryType, Header};

/// The only top-level directories an archive may hold.
pub const TOP_DIRS: [&str; 2] = ["keystore", "network"];
/// Most entries (files and directories) in one archive. `author_rotateKeys` adds three
/// key files and deletes none, so a keystore grows by three per rotation: 65,536 is
/// ~21,800 rotations (10,000 was passed after ~3,300, and every later backup refused).
/// A backup warns long before (see `flow::KEYSTORE_WARN_FILES`).
pub const MAX_ENTRIES: usize = 65_536;
/// Most bytes of file content in one archive, uncompressed. A keystore file is ~70
/// bytes; 64 MiB is far beyond any real keystore and bounds memory use.
pub const MAX_CONTENT_BYTES: u64 = 64 * 1024 * 1024;
/// Largest archive file accepted for a restore (it is read into memory whole).
pub const MAX_ARCHIVE_BYTES: u64 = 64 * 1024 * 1024;
/// Most bytes the gzip stream may inflate to: content plus tar headers, long-name and
/// pax records (at most 2 KiB per entry), and the end blocks. Past it, reading fails: a
/// decompression bomb stops here.
const MAX_INFLATED_BYTES: u64 = MAX_CONTENT_BYTES + MAX_ENTRIES as u64 * 2048 + 1024 * 1024;
/// Deepest path, in components (`keystore/x` is 2).
const MAX_DEPTH: usize = 8;
const MAX_COMPONENT_BYTES: usize = 255;
const MAX_PATH_BYTES: usize = 1024;

/// Modes every restored or archived entry gets.
pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

/// Start of the gzip header comment of warden's archives.
const COMMENT_PREFIX: &str = "warden key backup;";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// One entry of a tree or an archive: a relative path such as `keystore/6772…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    /// Content length; 0 for directories.
    pub size: u64,
}

impl Entry {
    /// The path as listed to operators: directories end in `/`.
    pub fn display_name(&self) -> String {
        match self.kind {
            Kind::Dir => format!("{}/", self.path),
            Kind::File => self.path.clone(),
        }
    }
}

/// An archive that passed every check, with its contents in memory.
#[derive(Debug)]
pub struct ValidArchive {
    /// In archive order.
    pub entries: Vec<Entry>,
    /// Contents of the file entries, by path.
    pub contents: BTreeMap<String, Vec<u8>>,
    /// What the gzip header says about where the keys came from.
    pub origin: Option<Origin>,
}

/// The container, chain, host and keys named in a warden archive's gzip header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub container: String,
    pub chain_id: String,
    /// The host the backup was taken on (`None` in archives of older versions).
    pub host: Option<String>,
    /// The keystore's file names (hex key type ‖ hex public key), sorted; `None` in
    /// archives of older versions.
    pub keys: Option<Vec<String>>,
}

/// A header field value: no separator, no control character (a host name or a
/// keystore file name always is).
fn clean_field(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 255
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'='))
}

/// The gzip header comment naming `origin`.
pub fn origin_comment(origin: &Origin) -> String {
    let mut text = format!(
        "{COMMENT_PREFIX} container={}; chain={}",
        origin.container, origin.chain_id
    );
    if let Some(host) = origin.host.as_deref().filter(|h| clean_field(h)) {
        text.push_str(&format!("; host={host}"));
    }
    if let Some(keys) = &origin.keys {
        let clean: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| clean_field(k))
            .collect();
        text.push_str(&format!("; keys={}", clean.join(",")));
    }
    text
}

fn parse_origin_comment(comment: &[u8]) -> Option<Origin> {
    let text = std::str::from_utf8(comment).ok()?;
    let rest = text.strip_prefix(COMMENT_PREFIX)?;
    let mut origin = Origin::default();
    let mut container = None;
    for field in rest.split(';') {
        match field.trim().split_once('=') {
            Some(("container", value)) => container = Some(value.to_owned()),
            Some(("chain", value)) => origin.chain_id = value.to_owned(),
            Some(("host", value)) => origin.host = Some(value.to_owned()),
            Some(("keys", value)) => {
                let mut keys: Vec<String> = value
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect();
                keys.sort();
                origin.keys = Some(keys);
            }
            _ => {}
        }
    }
    origin.container = container?;
    Some(origin)
}

impl ValidArchive {
    /// The file names in its `keystore/`, sorted.
    pub fn keystore_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.kind == Kind::File)
            .filter_map(|e| e.path.strip_prefix("keystore/"))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }
}

/// Checks one path component: not empty, `.` or `..`, no `/`, `\`, NUL or control
/// characters, at most 255 bytes.
pub fn check_component(part: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err("an empty path component (`//`)".to_owned());
    }
    if part == "." || part == ".." {
        return Err(format!("a `{part}` component"));
    }
    if part.len() > MAX_COMPONENT_BYTES {
        return Err(format!(
            "a component longer than {MAX_COMPONENT_BYTES} bytes"
        ));
    }
    if part.contains(['/', '\\']) {
        return Err("a `/` or `\\` inside a component".to_owned());
    }
    if part.chars().any(char::is_control) {
        return Err("a control character".to_owned());
    }
    Ok(())
}

/// Checks a whole entry path (no trailing `/`): relative, every component normal,
/// under `keystore/` or `network/`, not too deep or long.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("an empty path".to_owned());
    }
    if path.starts_with('/') {
        return Err("an absolute path".to_owned());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("a path longer than {MAX_PATH_BYTES} bytes"));
    }
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts {
        check_component(part)?;
    }
    if !TOP_DIRS.contains(&parts[0]) {
        return Err("a path outside keystore/ and network/".to_owned());
    }
    if parts.len() > MAX_DEPTH {
        return Err(format!("a path deeper than {MAX_DEPTH} levels"));
    }
    Ok(())
}

/// Why a tree on disk cannot be archived.
#[derive(Debug)]
pub enum TreeError {
    /// Something in it is not a regular file or directory, or breaks a limit.
    Unsupported(String),
    Io(io::Error),
}

impl From<io::Error> for TreeError {
    fn from(error: io::Error) -> Self {
        TreeError::Io(error)
    }
}

/// Lists `root/keystore` and `root/network` (those that exist), depth first, in name
/// order. Symbolic links, devices, fifos and sockets are refused, not skipped: a
/// backup that silently left a key out would be worse than none.
pub fn scan_tree(root: &Path) -> Result<Vec<Entry>, TreeError> {
    let mut entries = Vec::new();
    let mut total = 0u64;
    for top in TOP_DIRS {
        let path = root.join(top);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                entries.push(Entry {
                    path: top.to_owned(),
                    kind: Kind::Dir,
                    size: 0,
                });
                scan_dir(&path, top, &mut entries, &mut total)?;
            }
            Ok(_) => {
                return Err(TreeError::Unsupported(format!("{top} is not a directory")));
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(entries)
}

fn scan_dir(
    dir: &Path,
    prefix: &str,
    entries: &mut Vec<Entry>,
    total: &mut u64,
) -> Result<(), TreeError> {
    let mut names = Vec::new();
    for item in fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name().into_string().map_err(|name| {
            TreeError::Unsupported(format!("{prefix}/{name:?} has a name that is not UTF-8"))
        })?;
        names.push(name);
    }
    names.sort();
    for name in names {
        let relative = format!("{prefix}/{name}");
        check_path(&relative)
            .map_err(|problem| TreeError::Unsupported(format!("{relative:?} has {problem}")))?;
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path)?;
        let file_type = meta.file_type();
        if entries.len() >= MAX_ENTRIES {
            return Err(TreeError::Unsupported(format!(
                "more than {MAX_ENTRIES} entries"
            )));
        }
        if file_type.is_dir() {
            entries.push(Entry {
                path: relative.clone(),
                kind: Kind::Dir,
                size: 0,
            });
            scan_dir(&path, &relative, entries, total)?;
        } else if file_type.is_file() {
            *total += meta.len();
            if *total > MAX_CONTENT_BYTES {
                return Err(TreeError::Unsupported(format!(
                    "more than {MAX_CONTENT_BYTES} bytes of files"
                )));
            }
            entries.push(Entry {
                path: relative,
                kind: Kind::File,
                size: meta.len(),
            });
        } else {
            let what = if file_type.is_symlink() {
                "a symbolic link"
            } else {
                "not a regular file or directory"
            };
            return Err(TreeError::Unsupported(format!("{relative:?} is {what}")));
        }
    }
    Ok(())
}

/// Writes the archive of `entries` (as listed by [`scan_tree`] under `root`) to `out`
/// and returns `out`. Nothing is flushed to disk here; the caller syncs.
pub fn write_archive<W: Write>(
    root: &Path,
    entries: &[Entry],
    origin: &Origin,
    mtime: u64,
    out: W,
) -> io::Result<W> {
    let gzip = GzBuilder::new()
        .comment(origin_comment(origin))
        .mtime(u32::try_from(mtime).unwrap_or(0))
        .write(out, Compression::default());
    let mut builder = Builder::new(gzip);
    for entry in entries {
        let mut header = Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        match entry.kind {
            Kind::Dir => {
                header.set_entry_type(EntryType::Directory);
                header.set_mode(DIR_MODE);
                header.set_size(0);
                builder.append_data(&mut header, &entry.path, io::empty())?;
            }
            Kind::File => {
                let mut file = File::open(root.join(&entry.path))?;
                // The size was read when the tree was scanned; the file must not have
                // changed since (nothing else writes to the private copy).
                let size = file.metadata()?.len();
                if size != entry.size {
                    return Err(io::Error::other(format!(
                        "{} changed size while being archived",
                        entry.path
                    )));
                }
                header.set_entry_type(EntryType::Regular);
                header.set_mode(FILE_MODE);
                header.set_size(size);
                builder.append_data(&mut header, &entry.path, (&mut file).take(size))?;
            }
        }
    }
    let gzip = builder.into_inner()?;
    gzip.finish()
}

/// A reader that fails (rather than ends) once more than `left` bytes were asked of it.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // One probe byte tells "exactly at the cap" from "beyond it".
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(format!(
                    "the archive inflates to more than {MAX_INFLATED_BYTES} bytes"
                ))),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads and checks a whole archive held in memory. Refused, with the reason: anything
/// but a directory or regular file (links of every kind, devices, fifos, sparse files,
/// pax global headers), absolute paths, `..` or `.` components, paths outside
/// `keystore/` and `network/`, duplicate paths, a file where a directory is needed,
/// more than [`MAX_ENTRIES`] entries or [`MAX_CONTENT_BYTES`] of content, a damaged
/// tar or gzip stream, and an archive without `keystore/`.
pub fn read_archive(bytes: &[u8]) -> Result<ValidArchive, String> {
    let decoder = GzDecoder::new(bytes);
    let origin = decoder
        .header()
        .and_then(|header| header.comment())
        .and_then(parse_origin_comment);
    let capped = Capped {
        inner: decoder,
        left: MAX_INFLATED_BYTES,
    };
    let mut archive = tar::Archive::new(capped);
    let mut entries = Vec::new();
    let mut contents = BTreeMap::new();
    let mut kinds: BTreeMap<String, Kind> = BTreeMap::new();
    let mut total = 0u64;
    let iter = archive
        .entries()
        .map_err(|error| format!("cannot read the archive: {error}"))?;
    for item in iter {
        let mut item = item.map_err(|error| format!("the archive is damaged: {error}"))?;
        if entries.len() >= MAX_ENTRIES {
            return Err(format!("it has more than {MAX_ENTRIES} entries"));
        }
        let raw_path = item.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let entry_type = item.header().entry_type();
        let kind = match entry_type {
            EntryType::Regular | EntryType::Continuous => Kind::File,
            EntryType::Directory => Kind::Dir,
            other => {
                return Err(format!(
                    "entry {shown:?} is {}; only directories and regular files are allowed",
                    describe_type(other)
                ));
            }
        };
        if item.link_name_bytes().is_some_and(|link| !link.is_empty()) {
            return Err(format!("entry {shown:?} carries a link target"));
        }
        let Ok(text) = String::from_utf8(raw_path) else {
            return Err(format!("entry {shown:?} has a path that is not UTF-8"));
        };
        let path = match kind {
            Kind::Dir => text.strip_suffix('/').unwrap_or(&text).to_owned(),
            Kind::File => text.clone(),
        };
        check_path(&path).map_err(|problem| format!("entry {shown:?} has {problem}"))?;
        let size = item.size();
        if kind == Kind::Dir && size != 0 {
            return Err(format!("directory entry {shown:?} has content"));
        }
        if kinds.contains_key(&path) {
            return Err(format!("entry {shown:?} appears twice"));
        }
        // A file where a later entry needs a directory would make extraction ambiguous.
        let mut ancestor = path.as_str();
        while let Some((parent, _)) = ancestor.rsplit_once('/') {
            if kinds.get(parent) == Some(&Kind::File) {
                return Err(format!(
                    "entry {shown:?} is inside {parent:?}, which is a file"
                ));
            }
            ancestor = parent;
        }
        total = total.saturating_add(size);
        if total > MAX_CONTENT_BYTES {
            return Err(format!(
                "its files hold more than {MAX_CONTENT_BYTES} bytes"
            ));
        }
        if kind == Kind::File {
            let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            item.read_to_end(&mut data)
                .map_err(|error| format!("entry {shown:?} cannot be read: {error}"))?;
            if data.len() as u64 != size {
                return Err(format!("entry {shown:?} is truncated"));
            }
            contents.insert(path.clone(), data);
        }
        kinds.insert(path.clone(), kind);
        entries.push(Entry { path, kind, size });
    }
    // A directory entry declared after a file inside it is fine; a file declared with
    // the same path as a directory's descendant was caught above only if it came first.
    for (path, kind) in &kinds {
        if *kind == Kind::File {
            let prefix = format!("{path}/");
            if kinds
                .range(prefix.clone()..)
                .next()
                .is_some_and(|(next, _)| next.starts_with(&prefix))
            {
                return Err(format!(
                    "entry {path:?} is a file but other entries are inside it"
                ));
            }
        }
    }
    let has_keystore = kinds
        .iter()
        .any(|(path, _)| path == "keystore" || path.starts_with("keystore/"));
    if !has_keystore {
        return Err("it holds no keystore/".to_owned());
    }
    for top in TOP_DIRS {
        if kinds.get(top) == Some(&Kind::File) {
            return Err(format!("entry {top:?} is a file, not a directory"));
        }
    }
    Ok(ValidArchive {
        entries,
        contents,
        origin,
    })
}

fn describe_type(entry_type: EntryType) -> String {
    match entry_type {
        EntryType::Symlink => "a symbolic link".to_owned(),
        EntryType::Link => "a hard link".to_owned(),
        EntryType::Char => "a character device".to_owned(),
        EntryType::Block => "a block device".to_owned(),
        EntryType::Fifo => "a fifo".to_owned(),
        EntryType::GNUSparse => "a sparse file".to_owned(),
        EntryType::XGlobalHeader => "a pax global header".to_owned(),
        other => format!("of type {:?}", other.as_byte() as char),
    }
}

impl ValidArchive {
    /// The top-level directories present (`keystore`, and `network` if backed up).
    pub fn top_dirs(&self) -> Vec<&'static str> {
        TOP_DIRS
            .into_iter()
            .filter(|top| {
                self.entries
                    .iter()
                    .any(|e| e.path == *top || e.path.starts_with(&format!("{top}/")))
            })
            .collect()
    }

    /// Entry names as listed to operators, in archive order.
    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(Entry::display_name).collect()
    }

    /// Writes the archive's tree under `root` (which must exist and be empty): files
    /// 0600, directories 0700, parents created as needed. Files are created, never
    /// opened if they exist, and nothing is followed.
    pub fn extract_to(&self, root: &Path) -> io::Result<()> {
        let mut made: BTreeSet<String> = BTreeSet::new();
        let mut make_dir = |path: &str| -> io::Result<()> {
            let mut prefix = String::new();
            for part in path.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                if made.insert(prefix.clone()) {
                    fs::DirBuilder::new()
                        .mode(DIR_MODE)
                        .create(root.join(&prefix))?;
                    // The umask may have taken bits away; set them exactly.
                    fs::set_permissions(root.join(&prefix), fs::Permissions::from_mode(DIR_MODE))?;
                }
            }
            Ok(())
        };
        for entry in &self.entries {
            match entry.kind {
                Kind::Dir => make_dir(&entry.path)?,
                Kind::File => {
                    if let Some((parent, _)) = entry.path.rsplit_once('/') {
                        make_dir(parent)?;
                    }
                    let path = root.join(&entry.path);
                    let mut file = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(FILE_MODE)
                        .open(&path)?;
                    file.write_all(&self.contents[&entry.path])?;
                    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
                    file.sync_all()?;
                }
            }
        }
        Ok(())
    }
}

/// Compares the tree under `root` (as [`scan_tree`] sees it) with `expected` entries
/// and their contents, for the top directories `tops`. `None` when identical, else
/// what differs first. Checks modes too when `check_modes`.
pub fn compare_tree(
    root: &Path,
    expected: &[Entry],
    contents: &BTreeMap<String, Vec<u8>>,
    tops: &[&str],
    check_modes: bool,
) -> io::Result<Option<String>> {
    let in_tops = |entry: &&Entry| {
        tops.iter()
            .any(|top| entry.path == *top || entry.path.starts_with(&format!("{top}/")))
    };
    let actual = match scan_tree(root) {
        Ok(entries) => entries,
        Err(TreeError::Unsupported(problem)) => return Ok(Some(problem)),
        Err(TreeError::Io(error)) => return Err(error),
    };
    let mut want: Vec<&Entry> = expected.iter().filter(in_tops).collect();
    let mut have: Vec<&Entry> = actual.iter().filter(in_tops).collect();
    want.sort_by(|a, b| a.path.cmp(&b.path));
    have.sort_by(|a, b| a.path.cmp(&b.path));
    let want_names: Vec<String> = want.iter().map(|e| e.display_name()).collect();
    let have_names: Vec<String> = have.iter().map(|e| e.display_name()).collect();
    if want_names != have_names {
        let missing: Vec<&String> = want_names
            .iter()
            .filter(|n| !have_names.contains(n))
            .collect();
        let extra: Vec<&String> = have_names
            .iter()
            .filter(|n| !want_names.contains(n))
            .collect();
        return Ok(Some(format!(
            "entries differ: missing {missing:?}, unexpected {extra:?}"
        )));
    }
    for entry in have {
        let path = root.join(&entry.path);
        if check_modes {
            let mode = fs::symlink_metadata(&path)?.permissions().mode() & 0o7777;
            let wanted = match entry.kind {
                Kind::Dir => DIR_MODE,
                Kind::File => FILE_MODE,
            };
            if mode != wanted {
                return Ok(Some(format!(
                    "{} has mode {mode:o}, not {wanted:o}",
                    entry.display_name()
                )));
            }
        }
        if entry.kind == Kind::File {
            let data = fs::read(&path)?;
            if contents.get(&entry.path).map(Vec::as_slice) != Some(data.as_slice()) {
                return Ok(Some(format!("{} differs in content", entry.path)));
            }
        }
    }
    Ok(None)
}

/// Reads the contents of the file entries of a tree scanned under `root`.
pub fn read_contents(root: &Path, entries: &[Entry]) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let mut contents = BTreeMap::new();
    for entry in entries.iter().filter(|e| e.kind == Kind::File) {
        contents.insert(entry.path.clone(), fs::read(root.join(&entry.path))?);
    }
    Ok(contents)
}

#[cfg(test)]
#[path = "archive_tests.rs"]
pub(super) mod tests;
