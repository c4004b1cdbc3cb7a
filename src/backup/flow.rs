//! The order of things in a backup and a recovery, and the steps a restore
//! (`restore.rs`) shares with them. Every function here takes an [`Engine`], so the
//! tests drive the same code with a stand-in that fails any step.

use std::any::Any;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::docker::{ContainerInspect, DockerError, validate_container_name};

use super::archive::{self, Entry, Kind, Origin};
use super::chain::{self, ChainDir, ResolveError, is_missing_path};
use super::engine::Engine;
use super::error::{BackupError, Cause, Failure, KeysState, NodeState, Operation};
use super::marker::{self, Marker, OpGuard};
use super::owner::{self, NodeUser};
use super::store::{self, Published, Scratch, WrapWriter};
use super::{BackupConfig, BackupReport};

/// Deadline of each `docker exec` (`ls`, `mv`, `rm`).
pub(super) const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
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
    pub(super) fn now(&self) -> u64 {
        self.now_unix.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
    }
}

pub(super) fn failed(
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

pub(super) fn with_keys(mut error: BackupError, new_keys: KeysState) -> BackupError {
    if let BackupError::Failed(failure) = &mut error {
        failure.keys = new_keys;
    }
    error
}

pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs `f`, turning a panic into [`Cause::Panic`].
pub(super) fn contained<T>(
    f: impl FnOnce() -> Result<T, (String, Cause)>,
) -> Result<T, (String, Cause)> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err((
            "working on the keys".to_owned(),
            Cause::Panic(panic_message(&*payload)),
        )),
    }
}

pub(super) fn check_container(container: &str) -> Result<(), BackupError> {
    validate_container_name(container).map_err(|_| BackupError::InvalidContainerName {
        name: container.to_owned(),
    })
}

pub(super) fn inspect(
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
pub(super) fn running_state(
    inspect: &ContainerInspect,
    container: &str,
) -> Result<bool, BackupError> {
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

#[allow(
    clippy::too_many_arguments,
    reason = "the steps of one backup or restore, each borrowed from its caller: a struct would only rename them"
)]
pub(super) fn find_chain(
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
pub(super) fn settle_stale_marker(
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
pub(super) fn take_marker(
    cfg: &BackupConfig,
    new: &Marker,
    operation: Operation,
) -> Result<(), BackupError> {
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
pub(super) fn start_again(
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

pub(super) fn node_state_after_start(result: &Result<(), DockerError>) -> NodeState {
    match result {
        Ok(()) => NodeState::StartedAgain,
        Err(error) => NodeState::NotStarted {
            detail: error.to_string(),
        },
    }
}

pub(super) fn remove_marker(cfg: &BackupConfig, container: &str, warnings: &mut Vec<String>) {
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

pub(super) fn count_files(entries: &[Entry], top: &str) -> usize {
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
