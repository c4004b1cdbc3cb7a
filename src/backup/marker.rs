//! In-flight markers: `<backup dir>/.inflight-<container>.json`, written (atomically,
//! and exclusively) before warden stops a node or changes its keys, removed when the
//! operation has finished and reported. A marker still there when the agent starts
//! means a process was killed mid-operation; [`recover_one`] starts the node again if
//! it was running and is not, and undoes a restore's half-done swap of key directories.
//!
//! Format (JSON, one object):
//!
//! ```json
//! {"version": 1, "operation": "backup", "container": "3node0", "was_running": true,
//!  "at": "2025-01-08T14:30:00Z", "at_unix": 1736346600, "pid": 4242,
//!  "note": "warden stopped 3node0 at 2025-01-08T14:30:00Z for a key backup; it was running …"}
//! ```
//!
//! A restore adds `backup_file`, `phase` (`staging`, `swapping`, `restarting`,
//! `copying`), `chain_path`, `stage` and `aside` (paths inside the container), so a
//! report after a kill can say where the keys are.
//!
//! Also here: the in-process registry of containers with an operation in flight, so two
//! commands never work on one node's keys at once. It does not span processes: one
//! agent per backup directory.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::engine::Engine;
use super::error::{BackupError, Operation};
use crate::docker::DockerError;

const PREFIX: &str = ".inflight-";
const SUFFIX: &str = ".json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub version: u32,
    pub operation: OperationName,
    pub container: String,
    pub was_running: bool,
    /// When the marker was written, just before the node was stopped.
    pub at: String,
    pub at_unix: u64,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aside: Vec<String>,
    /// The same, in words, for whoever finds the file.
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationName {
    Backup,
    Restore,
}

impl From<Operation> for OperationName {
    fn from(operation: Operation) -> Self {
        match operation {
            Operation::Backup => OperationName::Backup,
            Operation::Restore => OperationName::Restore,
        }
    }
}

impl Marker {
    pub fn new(operation: Operation, container: &str, was_running: bool, unix: u64) -> Marker {
        let at = super::store::rfc3339(unix);
        let what = match operation {
            Operation::Backup => "a key backup",
            Operation::Restore => "a key restore",
        };
        let note = if was_running {
            format!(
                "warden stopped {container} at {at} for {what}; it was running. If this file \
                 is still here, warden was interrupted: the agent starts the container again \
                 when it starts (or run `docker start {container}`)"
            )
        } else {
            format!(
                "warden began {what} of {container} at {at}; it was not running and is left \
                 stopped"
            )
        };
        Marker {
            version: 1,
            operation: operation.into(),
            container: container.to_owned(),
            was_running,
            at,
            at_unix: unix,
            pid: std::process::id(),
            backup_file: None,
            phase: None,
            chain_path: None,
            stage: None,
            aside: Vec::new(),
            note,
        }
    }
}

pub fn marker_path(dir: &Path, container: &str) -> PathBuf {
    dir.join(format!("{PREFIX}{container}{SUFFIX}"))
}

fn encode(marker: &Marker) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(marker).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes the marker under its name only if none is there: written whole to a temp
/// file and fsynced, then hard-linked (which fails if the name exists), so a reader
/// never sees half a marker and two writers cannot both succeed.
pub fn create(dir: &Path, marker: &Marker) -> io::Result<()> {
    let path = marker_path(dir, &marker.container);
    let temp = dir.join(format!(
        ".warden-tmp-{}-marker-{}",
        std::process::id(),
        marker.container
    ));
    let _ = fs::remove_file(&temp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(&encode(marker)?)?;
        file.sync_all()?;
        fs::hard_link(&temp, &path)?;
        fs::File::open(dir)?.sync_all()
    })();
    let _ = fs::remove_file(&temp);
    result
}

/// Replaces an existing marker (a restore moving to its next phase).
pub fn update(dir: &Path, marker: &Marker) -> io::Result<()> {
    crate::fsutil::write_atomic(&marker_path(dir, &marker.container), &encode(marker)?)
}

pub fn remove(dir: &Path, container: &str) -> io::Result<()> {
    match fs::remove_file(marker_path(dir, container)) {
        Ok(()) => fs::File::open(dir)?.sync_all(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Every marker file in `dir`: its path and its container (from the name).
pub fn list(dir: &Path) -> Vec<(PathBuf, String)> {
    let Ok(items) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(PathBuf, String)> = items
        .flatten()
        .filter_map(|item| {
            let name = item.file_name().into_string().ok()?;
            let container = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.to_owned();
            Some((item.path(), container))
        })
        .collect();
    found.sort();
    found
}

pub fn read(path: &Path) -> Result<Marker, String> {
    let bytes = fs::read(path).map_err(|error| error.to_string())?;
    serde_json::from_slice(&bytes).map_err(|error| error.to_string())
}

// ---- containers with an operation in flight in this process ----

static IN_FLIGHT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn in_flight() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    // The set stays consistent whatever panicked while holding it.
    IN_FLIGHT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Held while an operation works on a container; released on drop.
#[derive(Debug)]
pub struct OpGuard {
    container: String,
}

impl OpGuard {
    pub fn acquire(container: &str) -> Result<OpGuard, BackupError> {
        if in_flight().insert(container.to_owned()) {
            Ok(OpGuard {
                container: container.to_owned(),
            })
        } else {
            Err(BackupError::Busy {
                container: container.to_owned(),
            })
        }
    }
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        in_flight().remove(&self.container);
    }
}

pub fn is_in_flight(container: &str) -> bool {
    in_flight().contains(container)
}

// ---- recovery ----

/// What recovering one marker did, in words, and whether the marker may go.
pub struct Recovered {
    pub message: String,
    pub remove: bool,
}

/// Settles one marker left by an interrupted operation: if the node was running and is
/// not, starts it. A restore killed between its renames (phase `swapping`) can have left
/// the node without `keystore/` or `network/`: the set-aside directories, which hold
/// the keys the node ran with, are put back in place ([`roll_back_swap`]) and the node
/// restarted if it was started here (so it loads them). Other phases leave the keys
/// alone and say where they are.
pub fn recover_one(engine: &dyn Engine, marker: &Marker) -> Recovered {
    let container = marker.container.as_str();
    let what = match marker.operation {
        OperationName::Backup => "key backup",
        OperationName::Restore => "key restore",
    };
    let mut message = format!(
        "a {what} of {container} begun at {} (pid {}) was interrupted",
        marker.at, marker.pid
    );
    if marker.operation == OperationName::Restore {
        message.push_str(&restore_detail(marker));
    }
    if !marker.was_running {
        message.push_str(&format!(
            "; {container} was not running before and was left stopped"
        ));
        return Recovered {
            message,
            remove: true,
        };
    }
    let state = match engine.inspect(container) {
        Ok(inspect) => inspect.state,
        Err(DockerError::NoSuchContainer { .. }) => {
            message.push_str(&format!("; {container} no longer exists"));
            return Recovered {
                message,
                remove: true,
            };
        }
        Err(error) => {
            message.push_str(&format!(
                "; cannot inspect {container} ({error}): it may still be stopped, start it \
                 with `docker start {container}` (warden tries again at its next start)"
            ));
            return Recovered {
                message,
                remove: false,
            };
        }
    };
    let swapping =
        marker.operation == OperationName::Restore && marker.phase.as_deref() == Some("swapping");
    if state.running || state.paused || state.restarting {
        message.push_str(&format!("; {container} is running again already"));
        if swapping {
            return settle_swap(engine, marker, message, false);
        }
        return Recovered {
            message,
            remove: true,
        };
    }
    match engine.start(container) {
        Ok(()) => {
            message.push_str(&format!("; {container} was started again"));
            if swapping {
                return settle_swap(engine, marker, message, true);
            }
            Recovered {
                message,
                remove: true,
            }
        }
        Err(error) => {
            message.push_str(&format!(
                "; {container} could NOT be started again ({error}): start it by hand with \
                 `docker start {container}` (warden tries again at its next start)"
            ));
            Recovered {
                message,
                remove: false,
            }
        }
    }
}

/// After [`roll_back_swap`] on a running node: say what was done; restart the node
/// when it was started by the recovery (it loaded whatever directories were there).
fn settle_swap(
    engine: &dyn Engine,
    marker: &Marker,
    mut message: String,
    started_here: bool,
) -> Recovered {
    let container = marker.container.as_str();
    match roll_back_swap(engine, marker) {
        Ok(false) => {
            message.push_str("; its key directories were not changed");
            Recovered {
                message,
                remove: true,
            }
        }
        Ok(true) => {
            message.push_str(
                "; the keys it had before the restore were put back in place (restore again)",
            );
            if started_here {
                let restarted = engine
                    .stop(container, std::time::Duration::from_secs(60))
                    .and_then(|()| engine.start(container));
                match restarted {
                    Ok(()) => {
                        message.push_str(&format!("; {container} was restarted to load them"))
                    }
                    Err(error) => message.push_str(&format!(
                        "; restarting {container} to load them failed ({error}): run \
                         `docker restart {container}`"
                    )),
                }
            }
            Recovered {
                message,
                remove: true,
            }
        }
        Err(problem) => {
            message.push_str(&format!(
                "; putting its previous keys back failed ({problem}): CHECK its key \
                 directories by hand (warden tries again at its next start)"
            ));
            Recovered {
                message,
                remove: false,
            }
        }
    }
}

/// Runs `argv` in the container; a non-zero exit is an error with its stderr.
fn run_in(engine: &dyn Engine, container: &str, argv: &[&str]) -> Result<String, String> {
    let output = engine
        .exec(container, argv, std::time::Duration::from_secs(30))
        .map_err(|error| error.to_string())?;
    if output.exit_code == 0 {
        Ok(output.stdout)
    } else {
        Err(format!(
            "`{}` exited {}: {}",
            argv.join(" "),
            output.exit_code,
            output.stderr.trim()
        ))
    }
}

/// Undoes a restore's half-done swap in a running container: each directory set aside
/// (`<chain>/<top>.warden-old-<id>`, the keys the node runs with) goes back to
/// `<chain>/<top>`, whatever was moved in there going back to the staging directory,
/// which is then removed. Returns whether anything was moved.
pub fn roll_back_swap(engine: &dyn Engine, marker: &Marker) -> Result<bool, String> {
    let container = marker.container.as_str();
    let (Some(chain), Some(stage)) = (marker.chain_path.as_deref(), marker.stage.as_deref()) else {
        return Err("the marker does not say where the keys are".to_owned());
    };
    let listed = run_in(engine, container, &["ls", "-1", "--", chain])?;
    let names: Vec<&str> = listed.lines().map(str::trim).collect();
    let mut moved = false;
    for aside in &marker.aside {
        let aside_name = aside.rsplit('/').next().unwrap_or(aside);
        let Some((top, _)) = aside_name.split_once(".warden-old-") else {
            return Err(format!("{aside} is not a set-aside key directory"));
        };
        if !matches!(top, "keystore" | "network") || !aside.starts_with(chain) {
            return Err(format!("{aside} is not a set-aside key directory"));
        }
        if !names.contains(&aside_name) {
            // Never moved aside, or already put back.
            continue;
        }
        let in_place = format!("{}/{top}", chain.trim_end_matches('/'));
        if names.contains(&top) {
            run_in(engine, container, &["mkdir", "-p", "--", stage])?;
            run_in(
                engine,
                container,
                &["mv", "--", &in_place, &format!("{stage}/{top}")],
            )?;
        }
        run_in(engine, container, &["mv", "--", aside, &in_place])?;
        moved = true;
    }
    run_in(engine, container, &["rm", "-rf", "--", stage])?;
    Ok(moved)
}

fn restore_detail(marker: &Marker) -> String {
    let file = marker.backup_file.as_deref().unwrap_or("a backup");
    let chain = marker
        .chain_path
        .as_deref()
        .unwrap_or("the chain directory");
    match marker.phase.as_deref() {
        Some("staging") => format!(
            " while copying {file} into the container; the keys were not changed{}",
            marker
                .stage
                .as_deref()
                .map(|stage| format!(" (a staging copy may remain at {stage}: remove it)"))
                .unwrap_or_default()
        ),
        Some("swapping") => format!(
            " while replacing the key directories in {chain} with those of {file}: CHECK \
             {chain}/keystore and {chain}/network; the previous ones may be at {}, the \
             backup's at {}",
            if marker.aside.is_empty() {
                "(none)".to_owned()
            } else {
                marker.aside.join(", ")
            },
            marker.stage.as_deref().unwrap_or("(unknown)")
        ),
        Some("restarting") => format!(
            " after the keys of {file} were put in place in {chain}, while restarting the node \
             to load them{}",
            if marker.aside.is_empty() {
                String::new()
            } else {
                format!(" (the previous keys are at {})", marker.aside.join(", "))
            }
        ),
        Some("copying") => format!(
            " while copying the keys of {file} into {chain}: the keys may be partly restored, \
             restore again"
        ),
        _ => String::new(),
    }
}

/// Whether `pid` is a running process other than this one: a marker or a
/// temp file it owns belongs to a backup still in progress (cron mode and the
/// agent may share a backup dir), not to a killed one. A reused pid errs on
/// the safe side: the marker is left for a later pass or the operator.
pub fn held_by_another_live_process(pid: u32) -> bool {
    pid != std::process::id() && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::testutil::TempDir;

    #[test]
    fn marker_format_and_exclusive_creation() {
        let temp = TempDir::new("marker-format");
        let dir = temp.path();
        let marker = Marker::new(Operation::Backup, "m0", true, 1_736_346_600);
        create(dir, &marker).unwrap();
        let error = create(dir, &marker).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        let path = marker_path(dir, "m0");
        assert_eq!(path.file_name().unwrap(), ".inflight-m0.json");
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["operation"], "backup");
        assert_eq!(json["container"], "m0");
        assert_eq!(json["was_running"], true);
        assert_eq!(json["at"], "2025-01-08T14:30:00Z");
        assert_eq!(json["at_unix"], 1_736_346_600u64);
        assert!(json["note"].as_str().unwrap().starts_with(
            "warden stopped m0 at 2025-01-08T14:30:00Z for a key backup; it was running"
        ));
        assert!(json.get("phase").is_none());
        assert_eq!(read(&path).unwrap(), marker);
        assert_eq!(list(dir), [(path.clone(), "m0".to_owned())]);
        // Only the marker: its temp file is gone.
        assert_eq!(fs::read_dir(dir).unwrap().count(), 1);
        remove(dir, "m0").unwrap();
        remove(dir, "m0").unwrap();
        assert!(list(dir).is_empty());
    }

    #[test]
    fn one_operation_per_container() {
        let first = OpGuard::acquire("marker-busy-1").unwrap();
        assert!(matches!(
            OpGuard::acquire("marker-busy-1"),
            Err(BackupError::Busy { .. })
        ));
        assert!(is_in_flight("marker-busy-1"));
        drop(first);
        assert!(!is_in_flight("marker-busy-1"));
        drop(OpGuard::acquire("marker-busy-1").unwrap());
    }
}
