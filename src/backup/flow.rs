//! The order of things in a backup, a restore and a recovery. Every function here takes
//! an [`Engine`], so the tests drive the same code with a stand-in that fails any step.

use std::any::Any;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::docker::{ContainerInspect, DockerError, validate_container_name};

use super::archive::{self, Entry, Kind, Origin, ValidArchive};
use super::chain::{self, ChainDir, ResolveError, is_missing_path};
use super::engine::Engine;
use super::error::{BackupError, Cause, Failure, KeysState, NodeState, Operation};
use super::marker::{self, Marker, OpGuard};
use super::owner::{self, NodeUser};
use super::store::{self, Published, ReadError, Scratch, WrapWriter};
use super::{BackupConfig, BackupReport, RestoreOptions, RestoreReport};

/// Deadline of each `docker exec` (`ls`, `mv`, `rm`).
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Key files past which a backup warns that the keystore keeps growing (100 rotations).
pub const KEYSTORE_WARN_FILES: usize = 300;
/// `docker start` attempts before giving up on starting a node warden stopped.
const START_ATTEMPTS: u32 = 3;

/// What tests change: the clock, the archive's writer, the pause between start attempts.
pub struct Hooks {
    pub now_unix: Option<u64>,
    pub archive_writer: Option<Box<WrapWriter>>,
    pub start_retry_delay: Duration,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            now_unix: None,
            archive_writer: None,
            start_retry_delay: Duration::from_secs(1),
        }
    }
}

impl Hooks {
    fn now(&self) -> u64 {
        self.now_unix.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
    }
}

fn failed(
    operation: Operation,
    container: &str,
    step: &str,
    cause: impl Into<Cause>,
    node: NodeState,
) -> BackupError {
    BackupError::Failed(Box::new(Failure {
        operation,
        container: container.to_owned(),
        step: step.to_owned(),
        cause: cause.into(),
        node,
        keys: KeysState::Unchanged,
        saved: None,
    }))
}

fn with_keys(mut error: BackupError, new_keys: KeysState) -> BackupError {
    if let BackupError::Failed(failure) = &mut error {
        failure.keys = new_keys;
    }
    error
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs `f`, turning a panic into [`Cause::Panic`].
fn contained<T>(f: impl FnOnce() -> Result<T, (String, Cause)>) -> Result<T, (String, Cause)> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err((
            "working on the keys".to_owned(),
            Cause::Panic(panic_message(&*payload)),
        )),
    }
}

fn check_container(container: &str) -> Result<(), BackupError> {
    validate_container_name(container).map_err(|_| BackupError::InvalidContainerName {
        name: container.to_owned(),
    })
}

fn inspect(
    engine: &dyn Engine,
    container: &str,
    operation: Operation,
) -> Result<ContainerInspect, BackupError> {
    match engine.inspect(container) {
        Ok(inspect) => Ok(inspect),
        Err(DockerError::NoSuchContainer { .. }) => Err(BackupError::NoSuchContainer {
            container: container.to_owned(),
        }),
        Err(error) => Err(failed(
            operation,
            container,
            "inspecting the container",
            error,
            NodeState::NotStopped,
        )),
    }
}

/// Whether the node runs; refuses states in which stopping and starting it again is
/// not the operator's plain intent.
fn running_state(inspect: &ContainerInspect, container: &str) -> Result<bool, BackupError> {
    let state = &inspect.state;
    let reason = if state.paused {
        Some(format!(
            "it is paused; resume it with `docker unpause {container}` first"
        ))
    } else if state.restarting {
        Some(format!(
            "it is restarting (its restart policy is bringing it back); wait until it runs, \
             or stop it with `docker stop {container}` and try again"
        ))
    } else if matches!(state.status.as_str(), "removing" | "dead") {
        Some(format!("its state is {}", state.status))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(BackupError::NotPossible {
            container: container.to_owned(),
            reason,
        }),
        None => Ok(state.running),
    }
}

#[allow(clippy::too_many_arguments)]
fn find_chain(
    engine: &dyn Engine,
    container: &str,
    inspect: &ContainerInspect,
    cfg: &BackupConfig,
    running: bool,
    scratch: &Path,
    home: &str,
    operation: Operation,
    progress: &mut dyn FnMut(&str),
) -> Result<ChainDir, BackupError> {
    let paths = chain::chain_paths(inspect, cfg.chain_id_hint.as_deref(), home);
    let step = "looking for the key directories";
    match chain::resolve_chain(engine, container, &paths, running, scratch, progress) {
        Ok(found) => {
            progress(&format!(
                "keys of {container} are in {}",
                found.chain_path()
            ));
            Ok(found)
        }
        Err(ResolveError::NotFound { tried, found }) => Err(BackupError::ChainNotFound {
            container: container.to_owned(),
            base_path: paths.base_path,
            tried,
            found,
        }),
        Err(ResolveError::Docker(error)) => Err(failed(
            operation,
            container,
            step,
            error,
            NodeState::NotStopped,
        )),
    }
}

/// Settles a marker an interrupted operation left for this container (as
/// [`recover_with`] does at agent start), before the container's state is read.
fn settle_stale_marker(
    engine: &dyn Engine,
    cfg: &BackupConfig,
    container: &str,
    operation: Operation,
    progress: &mut dyn FnMut(&str),
) -> Result<(), BackupError> {
    let step = "settling an interrupted earlier operation";
    let path = marker::marker_path(&cfg.dir, container);
    if fs::symlink_metadata(&path).is_err() {
        return Ok(());
    }
    let stale = marker::read(&path).map_err(|problem| {
        failed(
            operation,
            container,
            step,
            Cause::Stale(format!(
                "the in-flight marker {} cannot be read ({problem}); check the container and \
                 remove the file by hand",
                path.display()
            )),
            NodeState::NotStopped,
        )
    })?;
    if marker::held_by_another_live_process(stale.pid) {
        return Err(BackupError::Busy {
            container: container.to_owned(),
        });
    }
    let recovered = marker::recover_one(engine, &stale);
    progress(&recovered.message);
    if !recovered.remove {
        return Err(failed(
            operation,
            container,
            step,
            Cause::Stale(recovered.message),
            NodeState::NotStopped,
        ));
    }
    marker::remove(&cfg.dir, container)
        .map_err(|error| failed(operation, container, step, error, NodeState::NotStopped))
}

/// Writes the in-flight marker; refuses if one is there (stale ones were settled
/// before, so it belongs to another process).
fn take_marker(cfg: &BackupConfig, new: &Marker, operation: Operation) -> Result<(), BackupError> {
    let container = new.container.as_str();
    match marker::create(&cfg.dir, new) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Err(BackupError::Busy {
            container: container.to_owned(),
        }),
        Err(error) => Err(failed(
            operation,
            container,
            "writing the in-flight marker",
            error,
            NodeState::NotStopped,
        )),
    }
}

/// Starts a node warden stopped, retrying briefly: a node left stopped risks slashing.
fn start_again(
    engine: &dyn Engine,
    container: &str,
    hooks: &Hooks,
    progress: &mut dyn FnMut(&str),
) -> Result<(), DockerError> {
    let mut attempt = 1;
    loop {
        // Docker first, words after: nothing (not even a caller's callback) may stand
        // between a stopped validator and its start.
        let result = engine.start(container);
        match result {
            Ok(()) => {
                progress(&format!("{container} started"));
                return Ok(());
            }
            Err(error @ DockerError::NoSuchContainer { .. }) => return Err(error),
            Err(error) if attempt >= START_ATTEMPTS => return Err(error),
            Err(error) => {
                progress(&format!(
                    "starting {container} failed ({error}); trying again"
                ));
                thread::sleep(hooks.start_retry_delay * attempt);
                attempt += 1;
            }
        }
    }
}

fn node_state_after_start(result: &Result<(), DockerError>) -> NodeState {
    match result {
        Ok(()) => NodeState::StartedAgain,
        Err(error) => NodeState::NotStarted {
            detail: error.to_string(),
        },
    }
}

fn remove_marker(cfg: &BackupConfig, container: &str, warnings: &mut Vec<String>) {
    if let Err(error) = marker::remove(&cfg.dir, container) {
        warnings.push(format!(
            "cannot remove the in-flight marker of {container}: {error}"
        ));
    }
}

// ---- backup ----

pub fn backup_with(
    engine: &dyn Engine,
    container: &str,
    cfg: &BackupConfig,
    hooks: &Hooks,
    progress: &mut dyn FnMut(&str),
) -> Result<BackupReport, BackupError> {
    const OP: Operation = Operation::Backup;
    check_container(container)?;
    let _guard = OpGuard::acquire(container)?;
    store::prepare_dir(&cfg.dir).map_err(|error| {
        failed(
            OP,
            container,
            "preparing the backup directory",
            error,
            NodeState::NotStopped,
        )
    })?;
    settle_stale_marker(engine, cfg, container, OP, progress)?;
    let inspect = inspect(engine, container, OP)?;
    let was_running = running_state(&inspect, container)?;
    let scratch = Scratch::new(&cfg.dir, "backup").map_err(|error| {
        failed(
            OP,
            container,
            "creating a private temp directory",
            error,
            NodeState::NotStopped,
        )
    })?;
    // The user's home only places sc-cli's default base path; a backup reads files as
    // root whoever owns them, so an unresolvable user falls back to root's home.
    let home = owner::node_user(engine, &inspect, scratch.path())
        .map(|user| user.home)
        .unwrap_or_else(|_| NodeUser::root().home);
    let chain = find_chain(
        engine,
        container,
        &inspect,
        cfg,
        was_running,
        scratch.path(),
        &home,
        OP,
        progress,
    )?;
    let now = hooks.now();
    take_marker(cfg, &Marker::new(OP, container, was_running, now), OP)?;
    let mut warnings = Vec::new();

    // From here the node may be stopped: every path goes through the start below.
    let copy_root = scratch.path().join("copy");
    let stopped_at = Instant::now();
    let copied = contained(|| {
        if was_running {
            progress(&format!(
                "stopping {container} (grace {}s)",
                crate::docker::grace_seconds(cfg.stop_grace)
            ));
            engine
                .stop(container, cfg.stop_grace)
                .map_err(|error| ("stopping the node".to_owned(), error.into()))?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&copy_root)
            .map_err(|error| ("creating a private temp directory".to_owned(), error.into()))?;
        progress(&format!("copying {}", chain.path_of("keystore")));
        engine
            .cp_from(container, &chain.path_of("keystore"), &copy_root)
            .map_err(|error| ("copying the keystore out".to_owned(), error.into()))?;
        progress(&format!("copying {}", chain.path_of("network")));
        match engine.cp_from(container, &chain.path_of("network"), &copy_root) {
            Ok(()) => Ok(true),
            Err(error) if is_missing_path(&error) => Ok(false),
            Err(error) => Err(("copying the network directory out".to_owned(), error.into())),
        }
    });
    let (node, start_error) = if was_running {
        let started = start_again(engine, container, hooks, progress);
        (node_state_after_start(&started), started.err())
    } else {
        (NodeState::LeftStopped, None)
    };
    let stopped_ms = was_running.then(|| stopped_at.elapsed().as_millis() as u64);
    // The outcome for the node is known and goes into the result: the marker's work is done.
    remove_marker(cfg, container, &mut warnings);
    let has_network =
        copied.map_err(|(step, cause)| failed(OP, container, &step, cause, node.clone()))?;
    if !has_network {
        warnings.push(format!(
            "{container} has no {}: only the keystore was backed up",
            chain.path_of("network")
        ));
    }

    progress("writing the archive");
    let origin = Origin {
        container: container.to_owned(),
        chain_id: chain.chain_id.clone(),
        host: Some(cfg.host.clone()),
        keys: None,
    };
    let published = match panic::catch_unwind(AssertUnwindSafe(|| {
        store::publish_archive(
            &cfg.dir,
            &origin,
            &copy_root,
            now,
            hooks.archive_writer.as_deref(),
        )
    })) {
        Ok(Ok(published)) => published,
        Ok(Err(cause)) => {
            return Err(failed(OP, container, "writing the archive", cause, node));
        }
        Err(payload) => {
            return Err(failed(
                OP,
                container,
                "writing the archive",
                Cause::Panic(panic_message(&*payload)),
                node,
            ));
        }
    };
    drop(scratch);
    if let Some(error) = start_error {
        return Err(BackupError::Failed(Box::new(Failure {
            operation: OP,
            container: container.to_owned(),
            step: "starting the node again".to_owned(),
            cause: error.into(),
            node,
            keys: KeysState::Unchanged,
            saved: Some(published.file_name),
        })));
    }
    progress(&format!(
        "wrote {} ({} bytes, sha256 {})",
        published.file_name, published.bytes, published.sha256
    ));
    let key_files = count_files(&published.entries, "keystore");
    if key_files > KEYSTORE_WARN_FILES {
        warnings.push(format!(
            "{container}'s keystore holds {key_files} key files (author_rotateKeys adds three \
             and deletes none); backups stop at {} entries: remove the files of keys the chain \
             no longer uses (not in Session.NextKeys or QueuedKeys) after a backup",
            archive::MAX_ENTRIES
        ));
    }
    let (deleted, failures) = store::prune(&cfg.dir, container, cfg.keep, &published.file_name);
    warnings.extend(failures);
    if !deleted.is_empty() {
        progress(&format!("retention deleted {}", deleted.join(", ")));
    }
    Ok(report(
        container,
        published,
        chain,
        was_running,
        stopped_ms,
        deleted,
        warnings,
    ))
}

fn count_files(entries: &[Entry], top: &str) -> usize {
    let prefix = format!("{top}/");
    entries
        .iter()
        .filter(|e| e.kind == Kind::File && e.path.starts_with(&prefix))
        .count()
}

fn report(
    container: &str,
    published: Published,
    chain: ChainDir,
    was_running: bool,
    stopped_ms: Option<u64>,
    deleted: Vec<String>,
    warnings: Vec<String>,
) -> BackupReport {
    BackupReport {
        container: container.to_owned(),
        keystore_files: count_files(&published.entries, "keystore"),
        network_files: count_files(&published.entries, "network"),
        entries: published.entries.iter().map(Entry::display_name).collect(),
        file_name: published.file_name,
        path: published.path,
        bytes: published.bytes,
        sha256: published.sha256,
        chain,
        was_running,
        stopped_ms,
        deleted,
        warnings,
    }
}

// ---- restore ----

fn check_owner(
    name: &str,
    archive: &ValidArchive,
    container: &str,
    host: &str,
    options: RestoreOptions,
) -> Result<(), BackupError> {
    // The keys the header says the archive holds must be the ones it holds, whoever
    // restores it: the list is what an operator (or a guard) reads without extracting.
    if let Some(recorded) = archive.origin.as_ref().and_then(|o| o.keys.as_ref())
        && *recorded != archive.keystore_names()
    {
        return Err(BackupError::UnsafeArchive {
            name: name.to_owned(),
            problem: "the public keys its header records differ from the keystore it holds"
                .to_owned(),
        });
    }
    if options.allow_other_container {
        return Ok(());
    }
    let refuse = |backed_up: Option<String>| BackupError::OtherContainer {
        name: name.to_owned(),
        container: container.to_owned(),
        backed_up,
    };
    match store::parse_archive_name(name) {
        Some(parsed) if parsed.container == container => {}
        Some(parsed) => return Err(refuse(Some(parsed.container))),
        None => return Err(refuse(None)),
    }
    match &archive.origin {
        Some(origin) if origin.container != container => {
            Err(refuse(Some(origin.container.clone())))
        }
        // `3node0` exists on every host: the same name on another host is another node.
        Some(Origin {
            host: Some(other), ..
        }) if other != host => Err(refuse(Some(format!("{container} on host {other}")))),
        _ => Ok(()),
    }
}

/// Reads, checksums and validates the named backup. Nothing is written.
fn load_backup(
    cfg: &BackupConfig,
    name: &str,
    container: &str,
    options: RestoreOptions,
) -> Result<ValidArchive, BackupError> {
    store::check_backup_name(name).map_err(|reason| BackupError::InvalidBackupName {
        name: name.to_owned(),
        reason,
    })?;
    let bytes = store::read_backup(&cfg.dir, name).map_err(|error| match error {
        ReadError::NotFound => BackupError::BackupNotFound {
            name: name.to_owned(),
        },
        ReadError::NotRegular(reason) => BackupError::InvalidBackupName {
            name: name.to_owned(),
            reason,
        },
        ReadError::TooLarge => BackupError::UnsafeArchive {
            name: name.to_owned(),
            problem: format!("it is larger than {} bytes", archive::MAX_ARCHIVE_BYTES),
        },
        ReadError::Io(error) => failed(
            Operation::Restore,
            container,
            "reading the backup",
            error,
            NodeState::NotStopped,
        ),
    })?;
    store::check_checksum(&cfg.dir, name, &bytes).map_err(|problem| BackupError::Checksum {
        name: name.to_owned(),
        problem,
    })?;
    let archive = archive::read_archive(&bytes).map_err(|problem| BackupError::UnsafeArchive {
        name: name.to_owned(),
        problem,
    })?;
    check_owner(name, &archive, container, &cfg.host, options)?;
    Ok(archive)
}

fn in_tops(entry: &Entry, tops: &[&str]) -> bool {
    tops.iter()
        .any(|top| entry.path == *top || entry.path.starts_with(&format!("{top}/")))
}

fn run_in(engine: &dyn Engine, container: &str, argv: &[&str]) -> Result<(), Cause> {
    let output = engine.exec(container, argv, EXEC_TIMEOUT)?;
    if output.exit_code == 0 {
        Ok(())
    } else {
        Err(Cause::InContainer(format!(
            "`{}` exited {}: {}",
            argv.join(" "),
            output.exit_code,
            output.stderr.trim()
        )))
    }
}

pub fn restore_with(
    engine: &dyn Engine,
    container: &str,
    backup_file: &str,
    cfg: &BackupConfig,
    options: RestoreOptions,
    hooks: &Hooks,
    progress: &mut dyn FnMut(&str),
) -> Result<RestoreReport, BackupError> {
    const OP: Operation = Operation::Restore;
    check_container(container)?;
    let _guard = OpGuard::acquire(container)?;
    let archive = load_backup(cfg, backup_file, container, options)?;
    let tops = archive.top_dirs();
    progress(&format!(
        "{backup_file}: checksum and {} entries verified",
        archive.entries.len()
    ));
    let not_stopped =
        |step: &str, cause: Cause| failed(OP, container, step, cause, NodeState::NotStopped);
    store::prepare_dir(&cfg.dir)
        .map_err(|error| not_stopped("preparing the backup directory", error.into()))?;
    settle_stale_marker(engine, cfg, container, OP, progress)?;
    let inspect = inspect(engine, container, OP)?;
    let was_running = running_state(&inspect, container)?;
    let scratch = Scratch::new(&cfg.dir, "restore")
        .map_err(|error| not_stopped("creating a private temp directory", error.into()))?;
    let user = owner::node_user(engine, &inspect, scratch.path()).map_err(|reason| {
        BackupError::NotPossible {
            container: container.to_owned(),
            reason: format!("the owner of its restored files is unknown: {reason}"),
        }
    })?;
    let chain = find_chain(
        engine,
        container,
        &inspect,
        cfg,
        was_running,
        scratch.path(),
        &user.home,
        OP,
        progress,
    )?;

    // The backup's tree, as it will be copied in: the archive's modes (0700, 0600) and
    // the node user's ownership, which `docker cp` carries into the container (see
    // `owner`).
    let payload = scratch
        .subdir("payload")
        .map_err(|error| not_stopped("extracting the backup", error.into()))?;
    archive
        .extract_to(&payload)
        .map_err(|error| not_stopped("extracting the backup", error.into()))?;
    if let Err(error) = owner::chown_tree(&payload, user.uid, user.gid) {
        return Err(BackupError::NotPossible {
            container: container.to_owned(),
            reason: format!(
                "its node runs as uid {} gid {}, and the restored files cannot be given to \
                 that user ({error}); run warden as root (it needs CAP_CHOWN)",
                user.uid, user.gid
            ),
        });
    }

    // The keys in place now.
    let current = scratch
        .subdir("current")
        .map_err(|error| not_stopped("copying the current keys out", error.into()))?;
    let mut present: Vec<&str> = Vec::new();
    for top in archive::TOP_DIRS {
        match engine.cp_from(container, &chain.path_of(top), &current) {
            Ok(()) => present.push(top),
            Err(error) if is_missing_path(&error) => {}
            Err(error) => return Err(not_stopped("copying the current keys out", error.into())),
        }
    }
    let current_entries = match archive::scan_tree(&current) {
        Ok(entries) => entries,
        Err(archive::TreeError::Unsupported(problem)) => {
            return Err(BackupError::NotPossible {
                container: container.to_owned(),
                reason: format!("its current keys cannot be saved first: {problem}"),
            });
        }
        Err(archive::TreeError::Io(error)) => {
            return Err(not_stopped("copying the current keys out", error.into()));
        }
    };
    let archive_names = archive.names();
    let removed: Vec<String> = current_entries
        .iter()
        .filter(|e| in_tops(e, &tops))
        .map(Entry::display_name)
        .filter(|name| !archive_names.contains(name))
        .collect();
    let identical =
        archive::compare_tree(&current, &archive.entries, &archive.contents, &tops, false)
            .map_err(|error| not_stopped("comparing the current keys", error.into()))?
            .is_none();
    let mut report = RestoreReport {
        container: container.to_owned(),
        backup_file: backup_file.to_owned(),
        chain: chain.clone(),
        restored: archive_names.clone(),
        removed: removed.clone(),
        changed: false,
        pre_restore_backup: None,
        was_running,
        restarted: false,
        warnings: Vec::new(),
    };
    if identical {
        progress(&format!(
            "{container} already has exactly the keys of {backup_file}; nothing to do"
        ));
        return Ok(report);
    }
    if !was_running && !removed.is_empty() {
        return Err(BackupError::NotPossible {
            container: container.to_owned(),
            reason: format!(
                "it is stopped, and its key directories hold {} entr{} the backup does not \
                 ({}); replacing them exactly needs the container running (docker cannot \
                 delete files in a stopped container, and warden never starts a stopped \
                 validator by itself): start it and restore again",
                removed.len(),
                if removed.len() == 1 { "y" } else { "ies" },
                removed.join(", ")
            ),
        });
    }

    let now = hooks.now();
    // The keys it has now, saved before anything changes.
    if !current_entries.is_empty() {
        progress("saving the current keys first");
        if !present.contains(&"keystore") {
            // An archive always has a keystore/; this one says "there was none".
            scratch
                .subdir("current/keystore")
                .map_err(|error| not_stopped("saving the current keys first", error.into()))?;
        }
        let origin = Origin {
            container: container.to_owned(),
            chain_id: chain.chain_id.clone(),
            host: Some(cfg.host.clone()),
            keys: None,
        };
        let published = match panic::catch_unwind(AssertUnwindSafe(|| {
            store::publish_archive(
                &cfg.dir,
                &origin,
                &current,
                now,
                hooks.archive_writer.as_deref(),
            )
        })) {
            Ok(result) => result,
            Err(payload) => Err(Cause::Panic(panic_message(&*payload))),
        }
        .map_err(|cause| not_stopped("saving the current keys first", cause))?;
        progress(&format!("current keys saved in {}", published.file_name));
        report.pre_restore_backup = Some(published.file_name);
    }

    let id = format!("{}-{}", store::compact_stamp(now), std::process::id());
    let mut marker = Marker::new(OP, container, was_running, now);
    marker.backup_file = Some(backup_file.to_owned());
    marker.chain_path = Some(chain.chain_path());
    if was_running {
        restore_running(
            engine,
            container,
            cfg,
            hooks,
            &chain,
            &scratch,
            &payload,
            &current,
            &tops,
            &present,
            &id,
            marker,
            &mut report,
            progress,
        )?;
    } else {
        restore_stopped(
            engine,
            container,
            cfg,
            &chain,
            &payload,
            &tops,
            marker,
            &mut report,
            progress,
        )?;
    }
    report.changed = true;

    // Read back what the container now holds.
    let node_now = if was_running {
        NodeState::StartedAgain
    } else {
        NodeState::LeftStopped
    };
    let after = scratch.subdir("after").map_err(|error| {
        with_keys(
            failed(
                OP,
                container,
                "verifying the restored keys",
                error,
                node_now.clone(),
            ),
            KeysState::Restored,
        )
    })?;
    for top in &tops {
        if let Err(error) = engine.cp_from(container, &chain.path_of(top), &after)
            && !is_missing_path(&error)
        {
            return Err(with_keys(
                failed(
                    OP,
                    container,
                    "verifying the restored keys",
                    error,
                    node_now,
                ),
                KeysState::Restored,
            ));
        }
    }
    let difference =
        archive::compare_tree(&after, &archive.entries, &archive.contents, &tops, true).map_err(
            |error| {
                with_keys(
                    failed(
                        OP,
                        container,
                        "verifying the restored keys",
                        error,
                        node_now.clone(),
                    ),
                    KeysState::Restored,
                )
            },
        )?;
    if let Some(difference) = difference {
        return Err(with_keys(
            failed(
                OP,
                container,
                "verifying the restored keys",
                Cause::Verify(format!("{}: {difference}", chain.chain_path())),
                node_now,
            ),
            KeysState::InDoubt {
                detail: format!(
                    "{} differs from {backup_file}; restore again",
                    chain.chain_path()
                ),
            },
        ));
    }
    progress(&format!(
        "{container}: {} now holds exactly the keys of {backup_file}",
        chain.chain_path()
    ));
    Ok(report)
}

/// Running node: stage, swap by renames, restart, clean up. See the module docs.
#[allow(clippy::too_many_arguments)]
fn restore_running(
    engine: &dyn Engine,
    container: &str,
    cfg: &BackupConfig,
    hooks: &Hooks,
    chain: &ChainDir,
    scratch: &Scratch,
    payload: &Path,
    current: &Path,
    tops: &[&'static str],
    present: &[&str],
    id: &str,
    mut marker: Marker,
    report: &mut RestoreReport,
    progress: &mut dyn FnMut(&str),
) -> Result<(), BackupError> {
    const OP: Operation = Operation::Restore;
    let stage = chain.path_of(&format!(".warden-restore-{id}"));
    let aside = |top: &str| chain.path_of(&format!("{top}.warden-old-{id}"));
    marker.phase = Some("staging".to_owned());
    marker.stage = Some(stage.clone());
    take_marker(cfg, &marker, OP)?;
    let mut warnings = Vec::new();
    let fail_unchanged = |step: &str, cause: Cause, warnings: &mut Vec<String>| {
        remove_marker(cfg, container, warnings);
        failed(OP, container, step, cause, NodeState::NotStopped)
    };

    // 1. The backup's tree goes in beside the keystore, under a new name.
    progress(&format!("copying the backup into {stage}"));
    let staged = contained(|| {
        engine.cp_to(payload, container, &stage).map_err(|error| {
            (
                "copying the backup into the container".to_owned(),
                error.into(),
            )
        })
    });
    if let Err((step, cause)) = staged {
        let _ = run_in(engine, container, &["rm", "-rf", "--", &stage]);
        return Err(fail_unchanged(&step, cause, &mut warnings));
    }

    // 2. Swap: current directories aside, staged ones into place.
    marker.phase = Some("swapping".to_owned());
    marker.aside = tops
        .iter()
        .filter(|top| present.contains(top))
        .map(|top| aside(top))
        .collect();
    if let Err(error) = marker::update(&cfg.dir, &marker) {
        let _ = run_in(engine, container, &["rm", "-rf", "--", &stage]);
        return Err(fail_unchanged(
            "updating the in-flight marker",
            error.into(),
            &mut warnings,
        ));
    }
    progress("replacing the key directories");
    let mut done: Vec<(String, String)> = Vec::new();
    let swapped = contained(|| {
        for top in tops {
            if present.contains(top) {
                let from = chain.path_of(top);
                let to = aside(top);
                run_in(engine, container, &["mv", "--", &from, &to])
                    .map_err(|cause| ("moving the current keys aside".to_owned(), cause))?;
                done.push((from, to));
            }
            let from = format!("{stage}/{top}");
            let to = chain.path_of(top);
            run_in(engine, container, &["mv", "--", &from, &to])
                .map_err(|cause| ("moving the backup's keys into place".to_owned(), cause))?;
            done.push((from, to));
        }
        Ok(())
    });
    if let Err((step, cause)) = swapped {
        // Undo in reverse order; what cannot be undone is reported.
        let mut undo_failures = Vec::new();
        for (from, to) in done.iter().rev() {
            if let Err(cause) = run_in(engine, container, &["mv", "--", to, from]) {
                undo_failures.push(format!("{to} → {from}: {cause}"));
            }
        }
        let keys = if undo_failures.is_empty() {
            let _ = run_in(engine, container, &["rm", "-rf", "--", &stage]);
            KeysState::Unchanged
        } else {
            KeysState::InDoubt {
                detail: format!(
                    "putting the previous keys back failed ({}); the previous keys are in {} \
                     and in the backup directory",
                    undo_failures.join("; "),
                    marker.aside.join(", ")
                ),
            }
        };
        remove_marker(cfg, container, &mut warnings);
        return Err(with_keys(
            failed(OP, container, &step, cause, NodeState::NotStopped),
            keys,
        ));
    }

    // 3. Restart so the node loads them (the network key is read only at start).
    marker.phase = Some("restarting".to_owned());
    if let Err(error) = marker::update(&cfg.dir, &marker) {
        warnings.push(format!("cannot update the in-flight marker: {error}"));
    }
    progress(&format!(
        "stopping {container} (grace {}s) to load the restored keys",
        crate::docker::grace_seconds(cfg.stop_grace)
    ));
    let stopped = contained(|| {
        engine.stop(container, cfg.stop_grace).map_err(|error| {
            (
                "stopping the node to load the restored keys".to_owned(),
                error.into(),
            )
        })
    });
    let started = start_again(engine, container, hooks, progress);
    remove_marker(cfg, container, &mut warnings);
    if let Err((step, cause)) = stopped {
        let node = match &started {
            // It was running (the stop failed) or has been started: either way it
            // may still run with what it loaded before.
            Ok(()) => NodeState::NotReloaded {
                detail: cause.to_string(),
            },
            Err(error) => NodeState::NotStarted {
                detail: error.to_string(),
            },
        };
        return Err(with_keys(
            failed(OP, container, &step, cause, node),
            KeysState::Restored,
        ));
    }
    if let Err(error) = started {
        let node = node_state_after_start(&Err(error.clone()));
        return Err(with_keys(
            failed(OP, container, "starting the node again", error, node),
            KeysState::Restored,
        ));
    }
    report.restarted = true;

    // 4. The staging directory goes, and each set-aside directory once it is checked to
    //    be exactly what the pre-restore archive holds (a key added in between, by an
    //    `author_rotateKeys` during the restore, would exist nowhere else).
    if let Err(cause) = run_in(engine, container, &["rm", "-rf", "--", &stage]) {
        warnings.push(format!("cannot remove {stage} in {container}: {cause}"));
    }
    for top in tops.iter().filter(|top| present.contains(top)) {
        let path = aside(top);
        match aside_matches_saved(engine, container, &path, top, scratch, current) {
            Ok(true) => {
                if let Err(cause) = run_in(engine, container, &["rm", "-rf", "--", &path]) {
                    warnings.push(format!("cannot remove {path} in {container}: {cause}"));
                }
            }
            Ok(false) => warnings.push(format!(
                "kept {path} in {container}: it differs from the keys saved before the restore \
                 (keys added meanwhile?); look at it, then remove it by hand"
            )),
            Err(problem) => warnings.push(format!(
                "kept {path} in {container}: cannot check it against the saved keys ({problem})"
            )),
        }
    }
    report.warnings.extend(warnings);
    Ok(())
}

/// Whether the directory set aside in the container is exactly `current/<top>` (the
/// copy taken before the restore, which the pre-restore archive holds).
fn aside_matches_saved(
    engine: &dyn Engine,
    container: &str,
    path: &str,
    top: &str,
    scratch: &Scratch,
    current: &Path,
) -> Result<bool, String> {
    let check = scratch
        .subdir(&format!("aside-{top}"))
        .map_err(|error| error.to_string())?;
    // The destination does not exist: docker creates it under that name.
    engine
        .cp_from(container, path, &check.join(top))
        .map_err(|error| error.to_string())?;
    let saved = archive::scan_tree(current).map_err(|error| format!("{error:?}"))?;
    let contents = archive::read_contents(current, &saved).map_err(|error| error.to_string())?;
    archive::compare_tree(&check, &saved, &contents, &[top], false)
        .map(|difference| difference.is_none())
        .map_err(|error| error.to_string())
}

/// Stopped node: copy over the existing directories (exact, as checked before).
#[allow(clippy::too_many_arguments)]
fn restore_stopped(
    engine: &dyn Engine,
    container: &str,
    cfg: &BackupConfig,
    chain: &ChainDir,
    payload: &Path,
    tops: &[&'static str],
    mut marker: Marker,
    report: &mut RestoreReport,
    progress: &mut dyn FnMut(&str),
) -> Result<(), BackupError> {
    const OP: Operation = Operation::Restore;
    marker.phase = Some("copying".to_owned());
    take_marker(cfg, &marker, OP)?;
    // `payload/.` into the chain directory: docker merges `keystore/` and `network/`
    // into the existing ones (the backup's files overwrite theirs) and sets those
    // directories' modes from the payload, leaving the chain directory itself alone.
    // (Copying `payload/keystore/.` into `keystore` would not reset that directory's
    // mode; copying `payload/keystore` onto an existing `keystore` would nest it.)
    progress(&format!(
        "copying {} into {}",
        tops.join(" and "),
        chain.chain_path()
    ));
    let copied = contained(|| {
        engine
            .cp_to(&payload.join("."), container, &chain.chain_path())
            .map_err(|error| {
                (
                    "copying the backup into the container".to_owned(),
                    error.into(),
                )
            })
    });
    let mut warnings = Vec::new();
    remove_marker(cfg, container, &mut warnings);
    if let Err((step, cause)) = copied {
        let keys = KeysState::InDoubt {
            detail: format!(
                "{} may be partly restored; restore again",
                chain.chain_path()
            ),
        };
        return Err(with_keys(
            failed(OP, container, &step, cause, NodeState::LeftStopped),
            keys,
        ));
    }
    report.warnings.extend(warnings);
    Ok(())
}

// ---- recovery ----

pub fn recover_with(
    engine: &dyn Engine,
    cfg: &BackupConfig,
    report: &mut dyn FnMut(&str),
) -> Vec<String> {
    let mut messages = Vec::new();
    let removed = store::remove_stale_temps(&cfg.dir);
    if removed > 0 {
        let message = format!(
            "removed {removed} temporary file(s) left in {} by an interrupted backup",
            cfg.dir.display()
        );
        report(&message);
        messages.push(message);
    }
    for (path, container) in marker::list(&cfg.dir) {
        if marker::is_in_flight(&container) {
            continue;
        }
        let message = match marker::read(&path) {
            Ok(live) if marker::held_by_another_live_process(live.pid) => {
                let message = format!(
                    "{container}: a backup or restore by process {} is still in progress; left alone",
                    live.pid
                );
                report(&message);
                continue;
            }
            Ok(stale) => {
                let recovered = marker::recover_one(engine, &stale);
                if recovered.remove
                    && let Err(error) = marker::remove(&cfg.dir, &stale.container)
                {
                    format!(
                        "{}; cannot remove the marker {}: {error}",
                        recovered.message,
                        path.display()
                    )
                } else {
                    recovered.message
                }
            }
            Err(problem) => format!(
                "the in-flight marker {} cannot be read ({problem}): check {container} with \
                 `docker ps -a` and remove the file by hand",
                path.display()
            ),
        };
        report(&message);
        messages.push(message);
    }
    messages
}
