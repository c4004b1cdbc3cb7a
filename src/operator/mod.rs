//! The operator command language: one line of the server's stdin (or control
//! socket) in, one [`OperatorCommand`] out. Pure: no I/O, no knowledge of which
//! agents are connected.
//!
//! Parsing happens in two steps because the second needs the agent's state:
//! 1. [`parse_line`] turns the line into words and the words into a command.
//!    For `send`/`broadcast` this is a [`CommandRequest`] whose target is only a
//!    word ([`TargetWord`]); its params are already checked with
//!    [`commands::validate_params`], so a bad param is reported once, even for
//!    a broadcast.
//! 2. [`resolve`] checks the target word against one agent's containers (as it
//!    last reported them) and yields what goes on the wire. For `broadcast` the
//!    server resolves once per agent.
//!
//! The verbs live in one table (`VERBS`) that also feeds `help`; a new verb
//! is a new row and a new [`OperatorCommand`] variant.
//!
//!
//! The language itself (words, quoting, params, shorthands, error codes) is
//! written in docs/operator-language.md. Files: this one holds the types and
//! [`resolve`]; `error.rs` the parse errors; `parse.rs` the verbs table and
//! [`parse_line`]; `lexer.rs` the words.

mod error;
mod lexer;
mod parse;

pub use error::{ParseError, ParseErrorKind};
pub use parse::{help_text, parse_line};

use std::fmt;

use serde_json::{Map, Value};

use crate::commands::{self, CommandName, ParamError, Params};
use crate::protocol::ErrorCode;

/// Longest line accepted, in bytes (newline excluded): 64 KiB.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One parsed operator line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorCommand {
    Help,
    List,
    Send {
        agent: String,
        request: CommandRequest,
    },
    Broadcast {
        request: CommandRequest,
    },
    Show {
        id: String,
    },
    History {
        agent: Option<String>,
    },
    Keys {
        agent: Option<String>,
    },
    /// Every node of the fleet (or of one agent) in one table.
    Nodes {
        agent: Option<String>,
    },
    /// Key backups the agents reported, newest first, and how old the newest is.
    Backups {
        agent: Option<String>,
    },
    /// What fires now.
    Alerts,
    /// The schedule file and its state.
    Schedules,
    /// Co-sign a command the server holds until it has its signatures.
    Approve {
        id: String,
    },
    Quit,
}

/// The target as written, before it is checked against an agent's containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetWord {
    /// A word that should name one of the agent's containers.
    Named(String),
    /// The word `all`; [`parse_line`] only accepts it for commands that allow it.
    All,
    /// No positional word: the agent's only container, if it has exactly one.
    Unspecified,
}

/// An agent command as the operator wrote it, params checked, target not yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRequest {
    pub command: CommandName,
    pub target: TargetWord,
    /// The params as written (after coercion and shorthands), without
    /// defaults; [`resolve`] gives the canonical form.
    pub params: Map<String, Value>,
    /// Words for the server, never sent to the agent (see [`Controls`]).
    pub controls: Controls,
}

/// Words of a request line that the server acts on and strips before the
/// params reach the agent (which refuses params it does not know):
/// - `force=true reason="…"` (only for `start` and `restore_keys`): send
///   although the double-sign check refuses; both words are needed, and
///   the reason goes into the audit log.
/// - `batch=N` (only for `broadcast`): roll the command N agents at a time,
///   stopping at the first failure.
/// - `signatures=K` (any command): hold it until K operator signatures are
///   collected (`approve <id>`), then send it with them.
///
/// For any other command these words stay params and are refused as such.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Controls {
    pub force: bool,
    pub reason: Option<String>,
    pub batch: Option<usize>,
    /// `signatures=K` (1 to 16): hold the command until K operators signed
    /// it (`approve <id>`), then send it.
    pub signatures: Option<usize>,
}

/// Largest `batch=N`.
pub const MAX_BATCH: usize = 1000;
/// Longest `reason=…`, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// A target checked against one agent's containers: the wire's `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolvedTarget {
    Container(String),
    All,
}

impl ResolvedTarget {
    /// The wire value: the container name, or `"all"`.
    pub fn as_str(&self) -> &str {
        match self {
            ResolvedTarget::Container(name) => name,
            ResolvedTarget::All => "all",
        }
    }
}

/// A request resolved for one agent: everything a wire `command` needs but
/// its id and timestamp. `params.to_json()` is the wire's `params`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedCommand {
    pub target: ResolvedTarget,
    pub params: Params,
}

impl ResolvedCommand {
    pub fn command(&self) -> CommandName {
        self.params.command()
    }
}

/// Check `request`'s target against the containers one agent last reported,
/// and its params once more (a hand-built request is not trusted either).
pub fn resolve(
    request: &CommandRequest,
    containers: &[String],
) -> Result<ResolvedCommand, ResolveError> {
    let command = request.command;
    let params =
        commands::validate_params(command, &request.params).map_err(ResolveError::InvalidParams)?;
    let target = match &request.target {
        TargetWord::All if command.allows_all_target() => ResolvedTarget::All,
        TargetWord::All => return Err(ResolveError::AllNotAllowed { command }),
        TargetWord::Named(name) if containers.contains(name) => {
            ResolvedTarget::Container(name.clone())
        }
        TargetWord::Named(name) => {
            return Err(ResolveError::UnknownTarget {
                target: name.clone(),
                containers: containers.to_vec(),
            });
        }
        TargetWord::Unspecified => match containers {
            [only] => ResolvedTarget::Container(only.clone()),
            _ => {
                return Err(ResolveError::NoTarget {
                    containers: containers.to_vec(),
                });
            }
        },
    };
    Ok(ResolvedCommand { target, params })
}

/// Why a request cannot go to a given agent. The server prefixes the agent id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// No target written, and the agent does not have exactly one container.
    NoTarget {
        containers: Vec<String>,
    },
    /// The target word names none of the agent's containers.
    UnknownTarget {
        target: String,
        containers: Vec<String>,
    },
    /// `all` for a command that takes one container.
    AllNotAllowed {
        command: CommandName,
    },
    InvalidParams(ParamError),
}

impl ResolveError {
    /// The wire error code this maps to.
    pub fn code(&self) -> ErrorCode {
        match self {
            ResolveError::NoTarget { .. } | ResolveError::UnknownTarget { .. } => {
                ErrorCode::UnknownTarget
            }
            ResolveError::AllNotAllowed { .. } | ResolveError::InvalidParams(_) => {
                ErrorCode::InvalidParams
            }
        }
    }

    /// The containers the operator can choose from (empty when not relevant).
    pub fn choices(&self) -> &[String] {
        match self {
            ResolveError::NoTarget { containers }
            | ResolveError::UnknownTarget { containers, .. } => containers,
            ResolveError::AllNotAllowed { .. } | ResolveError::InvalidParams(_) => &[],
        }
    }
}

fn write_containers(f: &mut fmt::Formatter<'_>, containers: &[String]) -> fmt::Result {
    for (i, name) in containers.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        f.write_str(name)?;
    }
    Ok(())
}

pub(super) fn write_all_not_allowed(
    f: &mut fmt::Formatter<'_>,
    command: CommandName,
) -> fmt::Result {
    write!(
        f,
        "all is a target only for start, stop and status; {command} needs one container"
    )
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NoTarget { containers } if containers.is_empty() => {
                f.write_str("no container named, and the agent reports no containers")
            }
            ResolveError::NoTarget { containers } => {
                write!(
                    f,
                    "no container named, and the agent runs {}: ",
                    containers.len()
                )?;
                write_containers(f, containers)?;
                f.write_str("; name one after the command")
            }
            ResolveError::UnknownTarget { target, containers } if containers.is_empty() => {
                write!(
                    f,
                    "the agent has no container {target:?}; it reports no containers"
                )
            }
            ResolveError::UnknownTarget { target, containers } => {
                write!(f, "the agent has no container {target:?}; its containers: ")?;
                write_containers(f, containers)
            }
            ResolveError::AllNotAllowed { command } => write_all_not_allowed(f, *command),
            ResolveError::InvalidParams(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for ResolveError {}

#[cfg(test)]
mod controls_tests;
#[cfg(test)]
mod tests;
