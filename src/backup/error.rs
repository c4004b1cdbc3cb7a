//! `BackupError`: what failed, and in what state the node and its keys were left.

use std::fmt;
use std::io;

use serde::Serialize;

use crate::docker::DockerError;
use crate::protocol::ErrorCode;

/// Which operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Backup,
    Restore,
}

impl Operation {
    fn noun(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Restore => "restore",
        }
    }
}

/// What became of the node (its container) during an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NodeState {
    /// warden did not stop it (it may have been running or not).
    NotStopped,
    /// warden stopped it and started it again.
    StartedAgain,
    /// It was not running before; it was left stopped.
    LeftStopped,
    /// warden stopped it (or tried to) and could not start it again.
    NotStarted { detail: String },
    /// Restore only: the restored keys are in place but the node was not restarted,
    /// so it still runs with what it loaded before (its network identity).
    NotReloaded { detail: String },
}

/// What became of the node's keys during a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "keys", rename_all = "snake_case")]
pub enum KeysState {
    /// Exactly as before the operation.
    Unchanged,
    /// Replaced by the backup's.
    Restored,
    /// Partly replaced, or a roll-back failed: what an operator must check.
    InDoubt { detail: String },
}

/// The underlying failure of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    Docker(DockerError),
    Io {
        kind: io::ErrorKind,
        message: String,
    },
    /// warden's own code panicked; the panic was caught so the node could be started.
    Panic(String),
    /// What was written or copied is not what was meant to be.
    Verify(String),
    /// A command warden ran inside the container (`mv`, `rm`) failed.
    InContainer(String),
    /// An earlier operation left state warden will not guess about.
    Stale(String),
}

impl From<DockerError> for Cause {
    fn from(error: DockerError) -> Self {
        Cause::Docker(error)
    }
}

impl From<io::Error> for Cause {
    fn from(error: io::Error) -> Self {
        Cause::Io {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Docker(error) => write!(f, "{error}"),
            Cause::Io { kind, message } => {
                write!(f, "{message}")?;
                if *kind == io::ErrorKind::StorageFull {
                    write!(f, " (the backup directory's disk is full)")?;
                }
                Ok(())
            }
            Cause::Panic(message) => write!(f, "warden panicked: {message}"),
            Cause::Verify(detail) => write!(f, "verification failed: {detail}"),
            Cause::InContainer(detail) => write!(f, "in the container, {detail}"),
            Cause::Stale(detail) => write!(f, "{detail}"),
        }
    }
}

/// Why a backup or restore failed. Display is one lowercase line that says what failed
/// and, once warden has touched the node, whether it runs again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupError {
    /// Not a valid Docker container name; nothing was done.
    InvalidContainerName { name: String },
    /// Docker does not know the container; nothing was done.
    NoSuchContainer { container: String },
    /// The backup file name is not a plain `….tar.gz` name in the backup directory.
    InvalidBackupName { name: String, reason: String },
    /// No such regular file in the backup directory.
    BackupNotFound { name: String },
    /// The `.sha256` beside the archive is missing, unreadable or does not match.
    Checksum { name: String, problem: String },
    /// The archive fails validation; nothing was written anywhere.
    UnsafeArchive { name: String, problem: String },
    /// The archive holds another container's keys (by its name or its header).
    OtherContainer {
        name: String,
        container: String,
        backed_up: Option<String>,
    },
    /// The container's state or configuration does not allow the operation now
    /// (paused, restarting, runs as a non-root user, …); nothing was done.
    NotPossible { container: String, reason: String },
    /// Another backup or restore of this container is in progress in this process.
    Busy { container: String },
    /// No key directory was found in the container.
    ChainNotFound {
        container: String,
        base_path: String,
        tried: Vec<String>,
        /// What `<base>/chains` holds, when it could be listed.
        found: Option<Vec<String>>,
    },
    /// A step failed after the operation began.
    Failed(Box<Failure>),
}

/// A step that failed once an operation began, and the state it left things in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub operation: Operation,
    pub container: String,
    /// What warden was doing: `copying the keystore out`.
    pub step: String,
    pub cause: Cause,
    pub node: NodeState,
    /// Restore only; `Unchanged` for backups.
    pub keys: KeysState,
    /// An archive that was written nevertheless (the keys are saved in it).
    pub saved: Option<String>,
}

impl BackupError {
    /// The wire protocol's error code; the one place this mapping lives.
    pub fn code(&self) -> ErrorCode {
        match self {
            BackupError::InvalidContainerName { .. } | BackupError::NoSuchContainer { .. } => {
                ErrorCode::UnknownTarget
            }
            BackupError::InvalidBackupName { .. }
            | BackupError::BackupNotFound { .. }
            | BackupError::Checksum { .. }
            | BackupError::UnsafeArchive { .. }
            | BackupError::OtherContainer { .. } => ErrorCode::InvalidParams,
            BackupError::NotPossible { .. } => ErrorCode::Unavailable,
            BackupError::Busy { .. } => ErrorCode::Busy,
            BackupError::ChainNotFound { .. } => ErrorCode::Internal,
            BackupError::Failed(failure) => match &failure.cause {
                Cause::Docker(error) => error.code(),
                Cause::Io { .. }
                | Cause::Panic(_)
                | Cause::Verify(_)
                | Cause::InContainer(_)
                | Cause::Stale(_) => ErrorCode::Internal,
            },
        }
    }

    /// The node's state, once warden touched it (`None` for refusals).
    pub fn node_state(&self) -> Option<&NodeState> {
        match self {
            BackupError::Failed(failure) => Some(&failure.node),
            _ => None,
        }
    }
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupError::InvalidContainerName { name } => write!(
                f,
                "invalid container name {name:?}: a name is 1 to {} characters from \
                 [a-zA-Z0-9_.-], starting with a letter or digit",
                crate::docker::MAX_CONTAINER_NAME_LEN
            ),
            BackupError::NoSuchContainer { container } => write!(
                f,
                "no such container {container:?}: docker does not know it on this host; \
                 nothing was done"
            ),
            BackupError::InvalidBackupName { name, reason } => {
                write!(f, "invalid backup file name {name:?}: {reason}")
            }
            BackupError::BackupNotFound { name } => write!(
                f,
                "no backup file {name:?} in the backup directory; nothing was changed"
            ),
            BackupError::Checksum { name, problem } => write!(
                f,
                "refusing to restore {name:?}: {problem}; nothing was changed"
            ),
            BackupError::UnsafeArchive { name, problem } => write!(
                f,
                "refusing to restore {name:?}: {problem}; nothing was changed"
            ),
            BackupError::OtherContainer {
                name,
                container,
                backed_up,
            } => {
                match backed_up {
                    Some(other) => write!(
                        f,
                        "refusing to restore {name:?} into {container:?}: it holds the keys of \
                         {other:?}; one validator's keys running in two nodes gets it slashed"
                    )?,
                    None => write!(
                        f,
                        "refusing to restore {name:?} into {container:?}: its name does not say \
                         which container it was taken from (expected {container}-keys-…)"
                    )?,
                }
                write!(
                    f,
                    "; nothing was changed: restoring one validator's keys into another node gets it slashed \
                     when both run; to move keys for good, retire the old node first and copy them by hand"
                )
            }
            BackupError::NotPossible { container, reason } => {
                write!(
                    f,
                    "cannot do this with {container:?} now: {reason}; nothing was changed"
                )
            }
            BackupError::Busy { container } => write!(
                f,
                "a backup or restore of {container:?} is already in progress; try again when it \
                 has finished"
            ),
            BackupError::ChainNotFound {
                container,
                base_path,
                tried,
                found,
            } => {
                write!(
                    f,
                    "no keystore found in {container:?} under {base_path}/chains (tried {})",
                    tried.join(", ")
                )?;
                match found {
                    Some(found) if found.is_empty() => {
                        write!(f, "; the directory is empty or missing")?
                    }
                    Some(found) => write!(f, "; it holds {}", found.join(", "))?,
                    None => {}
                }
                write!(
                    f,
                    "; check the node's --base-path and --chain (warden reads them from the container's \
                     command line); the node was not touched"
                )
            }
            BackupError::Failed(failure) => {
                let Failure {
                    operation,
                    container,
                    step,
                    cause,
                    node,
                    keys,
                    saved,
                } = &**failure;
                write!(
                    f,
                    "{} of {container} failed while {step}: {cause}",
                    operation.noun()
                )?;
                if let Some(saved) = saved {
                    write!(f, "; the keys were saved in {saved} nevertheless")?;
                }
                match keys {
                    KeysState::Unchanged if *operation == Operation::Restore => {
                        write!(f, "; the node's keys were not changed")?
                    }
                    KeysState::Unchanged => {}
                    KeysState::Restored => write!(f, "; the backup's keys are in place")?,
                    KeysState::InDoubt { detail } => write!(f, "; CHECK THE KEYS: {detail}")?,
                }
                match node {
                    NodeState::NotStopped => write!(f, "; the node was not stopped"),
                    NodeState::StartedAgain => write!(f, "; the node was started again"),
                    NodeState::LeftStopped => {
                        write!(f, "; the node was not running before and was left stopped")
                    }
                    NodeState::NotStarted { detail } => write!(
                        f,
                        "; the node could NOT be started again ({detail}): start it by hand \
                         with `docker start {container}`"
                    ),
                    NodeState::NotReloaded { detail } => write!(
                        f,
                        "; the node was not restarted ({detail}) and still runs with what it \
                         loaded before: restart it with `docker restart {container}`"
                    ),
                }
            }
        }
    }
}

impl std::error::Error for BackupError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(cause: Cause, node: NodeState) -> BackupError {
        BackupError::Failed(Box::new(Failure {
            operation: Operation::Backup,
            container: "3node0".to_owned(),
            step: "copying the keystore out".to_owned(),
            cause,
            node,
            keys: KeysState::Unchanged,
            saved: None,
        }))
    }

    #[test]
    fn messages_say_what_state_the_node_is_in() {
        let io = Cause::from(io::Error::from(io::ErrorKind::StorageFull));
        let error = failed(io.clone(), NodeState::StartedAgain);
        let text = error.to_string();
        assert!(text.starts_with("backup of 3node0 failed while copying the keystore out"));
        assert!(text.ends_with("the node was started again"), "{text}");
        assert!(text.contains("disk is full"), "{text}");
        assert_eq!(error.code().as_str(), "internal");

        let error = failed(
            io,
            NodeState::NotStarted {
                detail: "docker is unavailable".to_owned(),
            },
        );
        assert!(
            error
                .to_string()
                .ends_with("start it by hand with `docker start 3node0`"),
            "{error}"
        );
    }

    #[test]
    fn wire_codes() {
        let timeout = DockerError::Timeout {
            argv: vec!["stop".to_owned()],
            after: std::time::Duration::from_secs(1),
        };
        let cases = [
            (
                BackupError::NoSuchContainer {
                    container: "x".to_owned(),
                },
                "unknown_target",
            ),
            (
                BackupError::InvalidContainerName {
                    name: "-x".to_owned(),
                },
                "unknown_target",
            ),
            (
                BackupError::UnsafeArchive {
                    name: "a".to_owned(),
                    problem: "p".to_owned(),
                },
                "invalid_params",
            ),
            (
                BackupError::OtherContainer {
                    name: "a".to_owned(),
                    container: "b".to_owned(),
                    backed_up: None,
                },
                "invalid_params",
            ),
            (
                BackupError::Busy {
                    container: "x".to_owned(),
                },
                "busy",
            ),
            (
                failed(Cause::Docker(timeout), NodeState::StartedAgain),
                "timeout",
            ),
            (
                failed(Cause::Panic("boom".to_owned()), NodeState::StartedAgain),
                "internal",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code().as_str(), code, "{error}");
        }
    }
}
