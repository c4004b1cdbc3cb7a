//! Backup and restore of a validator node's keys (`keystore/` and `network/`), with the
//! node stopped while its key files are read, and started again on every path.
//!
//! Losing a validator's keystore means downtime; a validator left stopped risks
//! slashing; one validator's keys running in two nodes gets it slashed. So:
//!
//! - **The node is started again on every path.** Before warden stops a node it writes
//!   an in-flight marker (`<dir>/.inflight-<container>.json`, atomically). Whatever
//!   happens after the stop (docker cp failing, a full disk, a panic, which is caught),
//!   the start is attempted, and the error says whether it worked. The marker goes once
//!   the outcome is reported; a marker left by a killed process is settled by
//!   [`recover_inflight`] when the agent starts (and by the next operation on that
//!   container). A backup restarts the node as soon as the files are copied out, before
//!   archiving, so the node is down only for `docker stop` + two `docker cp` + `docker start`.
//! - **An archive is published whole or not at all**: written to a temp file, fsynced,
//!   read back and verified against the copied files, then given its final name with a
//!   hard link (which cannot overwrite), the directory fsynced, and its `.sha256` written
//!   atomically beside it. Temp files go on every path.
//! - **A restore checks everything before touching anything**: a plain file name in the
//!   backup directory, its SHA-256 against the `.sha256`, every entry of the archive
//!   (see [`archive::read_archive`]), and that the archive is this container's (by its
//!   name and its gzip header) unless [`RestoreOptions::allow_other_container`]. The
//!   node's current keys are saved first as an ordinary backup archive.
//! - **A restore makes the key directories exactly the backup's.** `author_rotateKeys`
//!   adds key files and never deletes, so a keystore may hold several key sets; merging
//!   the backup in would keep keys the backup does not have. Docker cannot delete or
//!   rename files in a stopped container, and `docker exec` needs it running, so for a
//!   running node the restore is: copy the backup into a staging directory beside the
//!   keystore (`<chain>/.warden-restore-<id>`), rename the current `keystore` and
//!   `network` aside and the staged ones into place (each a rename within one
//!   directory), then stop and start the node so it loads them, then delete the staging
//!   directory and each set-aside directory that is exactly the pre-restore archive's
//!   copy (one that is not, say a key `author_rotateKeys` added meanwhile, is kept and
//!   reported), and verify the result by copying it back out. The node runs with the new key files
//!   on disk only for the length of `docker stop`. For a stopped node (which warden never
//!   starts on its own) the backup is copied over the existing directories, which is
//!   exact only when every file there is also in the backup: otherwise the restore is
//!   refused with the reason, before anything is changed.
//! - **Ownership**: restored files belong to the user the node runs as (root for the
//!   guide's image, `creditcoin` for the official one), with the archive's modes
//!   (directories 0700, files 0600): the tree is `chown`ed on the host before `docker cp`
//!   carries it in (see [`owner`] for why this way).
//!
//! Invariants: only this module writes in the backup directory; it never reads or logs
//! key file contents except to copy, hash and compare them; every Docker call goes
//! through [`engine::Engine`], implemented by [`crate::docker::Docker`].
//!
//! Not done, on purpose or for lack of a Docker call: restoring into a non-root node
//! when warden itself cannot `chown` (it runs without CAP_CHOWN: refused, with the reason);
//! archives of the original shell recipe (`chains/<id>/keystore/…` layout) are refused
//! as entries outside `keystore/`/`network/`; two agents sharing one backup directory
//! are not coordinated (the busy check is per process).

pub mod archive;
mod chain;
mod engine;
mod error;
mod flow;
mod marker;
mod owner;
mod restore;
mod store;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use archive::{MAX_ARCHIVE_BYTES, MAX_CONTENT_BYTES, MAX_ENTRIES};
pub use chain::{
    ChainDir, DEFAULT_BASE_PATH, FALLBACK_CHAIN_IDS, NodePaths, chain_paths, is_missing_path,
};
pub use error::{BackupError, Cause, Failure, KeysState, NodeState, Operation};
pub use store::{ArchiveName, archive_file_name, parse_archive_name};

use crate::docker::{Docker, DockerError};

/// Archives kept per container by default.
pub const DEFAULT_KEEP: usize = 7;
/// Default `docker stop` grace: a Substrate node flushes its database on SIGTERM.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(60);

/// Where backups go and how nodes are handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    /// The backup directory (created 0700, made 0700 if it is not).
    pub dir: PathBuf,
    /// Archives kept per container; the one just written always counts and is never
    /// deleted (0 is taken as 1).
    pub keep: usize,
    /// `docker stop -t`.
    pub stop_grace: Duration,
    /// The chain id to look for first (`creditcoin3`), when the node's command line
    /// does not tell.
    pub chain_id_hint: Option<String>,
    /// This host's name, recorded in archives and checked by restores: a container
    /// name alone does not say whose keys an archive holds (`3node0` exists on every
    /// host).
    pub host: String,
}

/// This host's name (the kernel's), as recorded in archives.
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

impl BackupConfig {
    pub fn new(dir: impl Into<PathBuf>) -> BackupConfig {
        BackupConfig {
            dir: dir.into(),
            keep: DEFAULT_KEEP,
            stop_grace: DEFAULT_STOP_GRACE,
            chain_id_hint: None,
            host: this_host(),
        }
    }
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    pub container: String,
    /// `3node0-keys-20250108-1430.tar.gz`
    pub file_name: String,
    pub path: PathBuf,
    /// Size of the archive file.
    pub bytes: u64,
    /// SHA-256 of the archive file, lowercase hex (also in `<file_name>.sha256`).
    pub sha256: String,
    /// Archive entries: `keystore/`, `keystore/<hex type><hex public key>`, `network/`, …
    pub entries: Vec<String>,
    pub keystore_files: usize,
    pub network_files: usize,
    pub chain: ChainDir,
    pub was_running: bool,
    /// How long the node was down for the copy (`None` if it was not running).
    pub stopped_ms: Option<u64>,
    /// Older archives deleted by retention.
    pub deleted: Vec<String>,
    /// Things an operator should know that did not fail the backup.
    pub warnings: Vec<String>,
}

/// Options of a restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Restore an archive whose name or header says another container (or does not
    /// say). Restoring one validator's keys into another node while the first runs
    /// gets the validator slashed: only for moving a validator to a new container.
    pub allow_other_container: bool,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    pub container: String,
    pub backup_file: String,
    pub chain: ChainDir,
    /// Entries now in place, as in the archive (`keystore/…`, `network/…`).
    pub restored: Vec<String>,
    /// Entries that were there before and are gone (not in the backup).
    pub removed: Vec<String>,
    /// False when the node already had exactly the backup's keys (nothing was done).
    pub changed: bool,
    /// The archive of the keys the node had before, in the backup directory.
    pub pre_restore_backup: Option<String>,
    pub was_running: bool,
    /// The node was stopped and started to load the restored keys.
    pub restarted: bool,
    pub warnings: Vec<String>,
}

/// Backs up `container`'s `keystore/` and `network/` into `cfg.dir`: marker, `docker
/// stop`, `docker cp` out, `docker start` (if it was running, on every path), archive,
/// verify, retention. `progress` receives one line per step.
pub fn backup_keys(
    docker: &Docker,
    container: &str,
    cfg: &BackupConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<BackupReport, BackupError> {
    flow::backup_with(docker, container, cfg, &flow::Hooks::default(), progress)
}

/// Restores `backup_file_name` (a file name in `cfg.dir`) into `container`, making its
/// key directories exactly the archive's (see the module docs for how, and when it is
/// refused).
pub fn restore_keys(
    docker: &Docker,
    container: &str,
    backup_file_name: &str,
    cfg: &BackupConfig,
    options: RestoreOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<RestoreReport, BackupError> {
    restore::restore_with(
        docker,
        container,
        backup_file_name,
        cfg,
        options,
        &flow::Hooks::default(),
        progress,
    )
}

/// On agent start: settles markers left by killed operations (starts each such node
/// again if it was running and is not, and says so) and removes temp files of dead
/// processes. Returns one line per marker; `report` gets each as it happens.
pub fn recover_inflight(
    docker: &Docker,
    cfg: &BackupConfig,
    report: &mut dyn FnMut(&str),
) -> Vec<String> {
    flow::recover_with(docker, cfg, report)
}

/// The names directly under `path` in the container, read from the tar headers of
/// `docker cp <c>:<path> -` (no `ls` needed, nothing written to disk); for images
/// without `ls`.
pub fn list_dir(docker: &Docker, container: &str, path: &str) -> Result<Vec<String>, DockerError> {
    engine::Engine::list_dir(docker, container, path)
}

/// Where `inspect`'s node keeps its chain folder (`<base path>/chains/<id>`),
/// found the way a backup finds it; for the agent's keystore listing.
pub fn locate_chain(
    docker: &Docker,
    inspect: &crate::docker::ContainerInspect,
) -> Result<ChainDir, String> {
    use ring::rand::{SecureRandom, SystemRandom};
    use std::os::unix::fs::DirBuilderExt;
    // A fresh private folder: created here (never an existing one another
    // user could have prepared), named unpredictably, mode 0700.
    let mut nonce = [0u8; 16];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| "the system random generator failed".to_string())?;
    let scratch = std::env::temp_dir().join(format!("warden-locate-{}", hex::encode(nonce)));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&scratch)
        .map_err(|e| format!("{}: {e}", scratch.display()))?;
    let home = owner::node_user(docker, inspect, &scratch)
        .map(|user| user.home)
        .unwrap_or_else(|_| owner::NodeUser::root().home);
    let paths = chain::chain_paths(inspect, None, &home);
    let found = chain::resolve_chain(
        docker,
        &inspect.name,
        &paths,
        inspect.state.running,
        &scratch,
        &mut |_| {},
    );
    let _ = std::fs::remove_dir_all(&scratch);
    match found {
        Ok(dir) => Ok(dir),
        Err(chain::ResolveError::NotFound { tried, .. }) => Err(format!(
            "no chain folder of {} under {}/chains (tried {})",
            inspect.name,
            paths.base_path,
            tried.join(", ")
        )),
        Err(chain::ResolveError::Docker(e)) => Err(e.to_string()),
    }
}
