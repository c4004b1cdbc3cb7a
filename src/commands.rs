//! The command catalog: which commands exist, what they may target, which params
//! they take, and the validation of those params.
//!
//! Shared by the server (which validates before it sends, so bad input never
//! reaches an agent) and the agent (which validates again what it receives:
//! the wire is not trusted). Pure: no I/O.
//!
//! Invariants:
//! - `validate_params` is the only place that decides whether a params object is
//!   acceptable; every refusal is a [`ParamError`], whose wire code is
//!   `invalid_params`.
//! - A validated [`Params`] is canonical: defaults are filled in, hex strings are
//!   lower case, so `validate_params(c, &p.to_json()) == Ok(p)` for every `p`.
//! - Unknown param keys are refused, not ignored: a misspelt `line=100` must not
//!   silently run with the default of 50 (nor a misspelt `rotate_to_chek=true`
//!   silently skip a rotation the operator asked for).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::protocol::ErrorCode;
use serde_json::{Map, Value};

/// Every command an agent may be asked to run, by its wire name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommandName {
    Start,
    Stop,
    Restart,
    Logs,
    Status,
    Exec,
    BackupKeys,
    RestoreKeys,
    Payout,
    RotateKeys,
    CheckKeys,
    HasSessionKeys,
    HasKey,
    FindValidator,
}

/// One param a command accepts, as documented to operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// The key in the params object.
    pub name: &'static str,
    /// What the value must be, for `help` and error messages.
    pub expected: &'static str,
    /// Whether the command refuses to run without it.
    pub required: bool,
}

const NO_PARAMS: &[ParamSpec] = &[];
const LOGS_PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "lines",
    expected: LINES_EXPECTED,
    required: false,
}];
const EXEC_PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "command",
    expected: COMMAND_EXPECTED,
    required: true,
}];
const RESTORE_KEYS_PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "backup_file",
    expected: BACKUP_FILE_EXPECTED,
    required: true,
}];
const CHECK_KEYS_PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "rotate_to_check",
        expected: BOOL_EXPECTED,
        required: false,
    },
    ParamSpec {
        name: "public_keys",
        expected: PUBLIC_KEYS_EXPECTED,
        required: false,
    },
];
const HAS_SESSION_KEYS_PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "session_keys",
    expected: SESSION_KEYS_OR_EMPTY_EXPECTED,
    required: false,
}];
const HAS_KEY_PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "public_key",
        expected: HEX_EXPECTED,
        required: true,
    },
    ParamSpec {
        name: "key_type",
        expected: KEY_TYPE_EXPECTED,
        required: false,
    },
];
const FIND_VALIDATOR_PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "session_keys",
        expected: SESSION_KEYS_OR_EMPTY_EXPECTED,
        required: false,
    },
    ParamSpec {
        name: "deep_search",
        expected: BOOL_EXPECTED,
        required: false,
    },
];

const LINES_EXPECTED: &str = "an integer from 1 to 10000";
const COMMAND_EXPECTED: &str = "a non-empty command line of at most 65536 bytes (split into words like a shell would, but never run by one)";
const BACKUP_FILE_EXPECTED: &str = "a backup file name without directories (no '/', '\\', '..', leading '.' or control characters)";
const BOOL_EXPECTED: &str = "true or false";
const PUBLIC_KEYS_EXPECTED: &str = "a map from key type (4 lowercase letters or digits, e.g. babe) to a hex key 0x…, with 1 to 8 entries";
const HEX_EXPECTED: &str =
    "a hex string 0x… with an even number of hex digits, at most 1024 of them";
const SESSION_KEYS_OR_EMPTY_EXPECTED: &str = "a hex string 0x… with an even number of hex digits (at most 1024), or empty for the last known keys";
const KEY_TYPE_EXPECTED: &str = "4 lowercase ASCII letters or digits, e.g. aura";

/// Default of `logs`' `lines`.
pub const DEFAULT_LOG_LINES: u32 = 50;
/// Largest `lines` a `logs` command may ask for.
pub const MAX_LOG_LINES: u32 = 10_000;
/// Default of `has_key`'s `key_type`.
pub const DEFAULT_KEY_TYPE: &str = "aura";
/// Longest `backup_file` accepted: the usual file-name limit (NAME_MAX).
pub const MAX_BACKUP_FILE_BYTES: usize = 255;

// Caps on every param that could otherwise grow without bound. The wire
// frame is at most 1 MiB, but one frame must not buy unbounded work: each
// entry of `public_keys` costs the agent RPC calls, each word of an exec
// command a policy check. docs/agent-config.md ("Limits") lists them.

/// Longest `exec` command line, in bytes: the operator's own line limit
/// (`operator::MAX_LINE_BYTES`), well under Linux's 128 KiB per argument.
/// It also bounds the number of words (32 Ki at most), each checked once
/// against the policy's fixed argv.
pub const MAX_EXEC_COMMAND_BYTES: usize = 64 * 1024;
/// Most hex digits in a key param (`public_key`, `session_keys`, each value
/// of `public_keys`): 512 bytes, five times Creditcoin's 96-byte session keys.
pub const MAX_HEX_DIGITS: usize = 1024;
/// Most entries in `check_keys`' `public_keys`: one per key type, and no
/// Substrate chain has more than a handful (Creditcoin 3 has three).
pub const MAX_PUBLIC_KEYS: usize = 8;

impl CommandName {
    /// Every command, in the order of the protocol's table.
    pub const ALL: [CommandName; 14] = [
        CommandName::Start,
        CommandName::Stop,
        CommandName::Restart,
        CommandName::Logs,
        CommandName::Status,
        CommandName::Exec,
        CommandName::BackupKeys,
        CommandName::RestoreKeys,
        CommandName::Payout,
        CommandName::RotateKeys,
        CommandName::CheckKeys,
        CommandName::HasSessionKeys,
        CommandName::HasKey,
        CommandName::FindValidator,
    ];

    /// The wire name, e.g. `backup_keys`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CommandName::Start => "start",
            CommandName::Stop => "stop",
            CommandName::Restart => "restart",
            CommandName::Logs => "logs",
            CommandName::Status => "status",
            CommandName::Exec => "exec",
            CommandName::BackupKeys => "backup_keys",
            CommandName::RestoreKeys => "restore_keys",
            CommandName::Payout => "payout",
            CommandName::RotateKeys => "rotate_keys",
            CommandName::CheckKeys => "check_keys",
            CommandName::HasSessionKeys => "has_session_keys",
            CommandName::HasKey => "has_key",
            CommandName::FindValidator => "find_validator",
        }
    }

    /// Whether `target` may be `"all"` (start, stop, status).
    pub fn allows_all_target(self) -> bool {
        matches!(
            self,
            CommandName::Start | CommandName::Stop | CommandName::Status
        )
    }

    /// Whether the command changes a node or its host whatever its params.
    ///
    /// `exec` counts: it can change anything. `check_keys` is neither mutating
    /// nor read-only here: it rotates keys only with `rotate_to_check=true`, so
    /// ask [`Params::is_mutating`] for it.
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            CommandName::Start
                | CommandName::Stop
                | CommandName::Restart
                | CommandName::BackupKeys
                | CommandName::RestoreKeys
                | CommandName::RotateKeys
                | CommandName::Payout
                | CommandName::Exec
        )
    }

    /// Whether the command never changes anything whatever its params.
    ///
    /// Not simply `!is_mutating()`: `check_keys` is neither (see there).
    pub fn is_read_only(self) -> bool {
        !self.is_mutating() && self != CommandName::CheckKeys
    }

    /// How long the agent lets the command run, all its steps together,
    /// before it fails it with `timeout` and kills its processes. The agent
    /// stretches two of them by its own settings: `stop` and `restart` by
    /// the stop grace (`docker.stop_grace_s`), `payout` to the script's
    /// timeout (`policy.payout.timeout_s`) plus a minute. docs/agent-config.md
    /// ("Limits") lists them.
    ///
    /// `backup_keys` and `restore_keys` are reported at their deadline but
    /// their processes are not cut short: the flow must always get to start
    /// the node again, and each of its docker calls has its own timeout.
    pub fn deadline(self) -> std::time::Duration {
        let minutes = |m: u64| std::time::Duration::from_secs(m * 60);
        match self {
            CommandName::Status
            | CommandName::Logs
            | CommandName::HasKey
            | CommandName::HasSessionKeys => minutes(2),
            CommandName::Start
            | CommandName::Stop
            | CommandName::Restart
            | CommandName::Exec
            | CommandName::RotateKeys
            | CommandName::CheckKeys
            | CommandName::FindValidator
            | CommandName::Payout => minutes(5),
            CommandName::BackupKeys | CommandName::RestoreKeys => minutes(30),
        }
    }

    /// Whether the command's processes are killed at its deadline (see
    /// [`CommandName::deadline`]).
    pub fn deadline_kills_processes(self) -> bool {
        !matches!(self, CommandName::BackupKeys | CommandName::RestoreKeys)
    }

    /// The params the command accepts, in documentation order.
    pub fn params(self) -> &'static [ParamSpec] {
        match self {
            CommandName::Logs => LOGS_PARAMS,
            CommandName::Exec => EXEC_PARAMS,
            CommandName::RestoreKeys => RESTORE_KEYS_PARAMS,
            CommandName::CheckKeys => CHECK_KEYS_PARAMS,
            CommandName::HasSessionKeys => HAS_SESSION_KEYS_PARAMS,
            CommandName::HasKey => HAS_KEY_PARAMS,
            CommandName::FindValidator => FIND_VALIDATOR_PARAMS,
            CommandName::Start
            | CommandName::Stop
            | CommandName::Restart
            | CommandName::Status
            | CommandName::BackupKeys
            | CommandName::Payout
            | CommandName::RotateKeys => NO_PARAMS,
        }
    }
}

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A command name that is not in the catalog (wire code `unknown_command`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCommand {
    pub name: String,
}

impl UnknownCommand {
    /// The wire error code this maps to.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::UnknownCommand
    }
}

impl fmt::Display for UnknownCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown command {:?}; the commands are ", self.name)?;
        for (i, command) in CommandName::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(command.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownCommand {}

impl FromStr for CommandName {
    type Err = UnknownCommand;

    /// Exact, case-sensitive wire names only.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        CommandName::ALL
            .into_iter()
            .find(|command| command.as_str() == name)
            .ok_or_else(|| UnknownCommand {
                name: name.to_owned(),
            })
    }
}

impl serde::Serialize for CommandName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for CommandName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Validated params of one command, defaults applied, hex in lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Params {
    Start,
    Stop,
    Restart,
    Logs {
        /// 1..=10000.
        lines: u32,
    },
    Status,
    Exec {
        /// The command line as typed.
        command: String,
        /// `command` split into words by [`split_command`], the only split:
        /// the agent's policy checks and runs exactly these words.
        argv: Vec<String>,
    },
    BackupKeys,
    RestoreKeys {
        /// A plain file name; the agent resolves it inside its backup dir.
        backup_file: String,
    },
    Payout,
    RotateKeys,
    CheckKeys {
        rotate_to_check: bool,
        /// Key type → `0x…` hex; `None` when not given (never an empty map).
        public_keys: Option<BTreeMap<String, String>>,
    },
    HasSessionKeys {
        /// `0x…`, or empty for the keys last rotated or reported.
        session_keys: String,
    },
    HasKey {
        public_key: String,
        key_type: String,
    },
    FindValidator {
        /// `None` when not given or given empty.
        session_keys: Option<String>,
        deep_search: bool,
    },
}

impl Params {
    /// The command these params belong to.
    pub fn command(&self) -> CommandName {
        match self {
            Params::Start => CommandName::Start,
            Params::Stop => CommandName::Stop,
            Params::Restart => CommandName::Restart,
            Params::Logs { .. } => CommandName::Logs,
            Params::Status => CommandName::Status,
            Params::Exec { .. } => CommandName::Exec,
            Params::BackupKeys => CommandName::BackupKeys,
            Params::RestoreKeys { .. } => CommandName::RestoreKeys,
            Params::Payout => CommandName::Payout,
            Params::RotateKeys => CommandName::RotateKeys,
            Params::CheckKeys { .. } => CommandName::CheckKeys,
            Params::HasSessionKeys { .. } => CommandName::HasSessionKeys,
            Params::HasKey { .. } => CommandName::HasKey,
            Params::FindValidator { .. } => CommandName::FindValidator,
        }
    }

    /// Whether running the command with these params may change anything:
    /// the command's own answer, and `check_keys` only with `rotate_to_check`.
    pub fn is_mutating(&self) -> bool {
        match self {
            Params::CheckKeys {
                rotate_to_check, ..
            } => *rotate_to_check,
            other => other.command().is_mutating(),
        }
    }

    /// The canonical params object for the wire: every param with a default
    /// is present; optional params without one are left out when not given.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut map = Map::new();
        match self {
            Params::Start
            | Params::Stop
            | Params::Restart
            | Params::Status
            | Params::BackupKeys
            | Params::Payout
            | Params::RotateKeys => {}
            Params::Logs { lines } => {
                map.insert("lines".into(), Value::from(*lines));
            }
            Params::Exec { command, .. } => {
                map.insert("command".into(), Value::from(command.as_str()));
            }
            Params::RestoreKeys { backup_file } => {
                map.insert("backup_file".into(), Value::from(backup_file.as_str()));
            }
            Params::CheckKeys {
                rotate_to_check,
                public_keys,
            } => {
                map.insert("rotate_to_check".into(), Value::from(*rotate_to_check));
                if let Some(public_keys) = public_keys {
                    let keys = public_keys
                        .iter()
                        .map(|(key_type, key)| (key_type.clone(), Value::from(key.as_str())))
                        .collect();
                    map.insert("public_keys".into(), Value::Object(keys));
                }
            }
            Params::HasSessionKeys { session_keys } => {
                map.insert("session_keys".into(), Value::from(session_keys.as_str()));
            }
            Params::HasKey {
                public_key,
                key_type,
            } => {
                map.insert("public_key".into(), Value::from(public_key.as_str()));
                map.insert("key_type".into(), Value::from(key_type.as_str()));
            }
            Params::FindValidator {
                session_keys,
                deep_search,
            } => {
                if let Some(session_keys) = session_keys {
                    map.insert("session_keys".into(), Value::from(session_keys.as_str()));
                }
                map.insert("deep_search".into(), Value::from(*deep_search));
            }
        }
        map
    }
}

/// Why a params object was refused. Wire code: `invalid_params`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamError {
    /// A key the command does not take.
    Unknown { command: CommandName, key: String },
    /// A required key is absent.
    Missing {
        command: CommandName,
        key: &'static str,
        expected: &'static str,
    },
    /// A key is present with a value of the wrong type, out of range, or
    /// malformed. `key` is dotted for a map entry (`public_keys.babe`); `got` is
    /// the value as JSON, shortened.
    Invalid {
        key: String,
        expected: &'static str,
        got: String,
    },
}

impl ParamError {
    /// The wire error code this maps to.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidParams
    }

    /// The param the error is about (dotted for a map entry).
    pub fn key(&self) -> &str {
        match self {
            ParamError::Unknown { key, .. } | ParamError::Invalid { key, .. } => key,
            ParamError::Missing { key, .. } => key,
        }
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::Unknown { command, key } => {
                let accepted = command.params();
                if accepted.is_empty() {
                    write!(f, "{command} takes no params, got {key:?}")
                } else {
                    write!(f, "{command} has no param {key:?}; it takes ")?;
                    for (i, spec) in accepted.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        f.write_str(spec.name)?;
                    }
                    Ok(())
                }
            }
            ParamError::Missing {
                command,
                key,
                expected,
            } => write!(f, "{command} needs {key}: {expected}"),
            ParamError::Invalid { key, expected, got } => {
                write!(f, "{key} must be {expected}, got {got}")
            }
        }
    }
}

impl std::error::Error for ParamError {}

/// Check `params` for `command` and return them typed, with defaults applied.
///
/// Refuses unknown keys, missing required keys, wrong types and out-of-range
/// values. Strict about JSON types: `lines` must be a JSON integer, not `"50"`
/// nor `50.0`; booleans must be JSON booleans.
pub fn validate_params(
    command: CommandName,
    params: &Map<String, Value>,
) -> Result<Params, ParamError> {
    if let Some(key) = params
        .keys()
        .find(|key| !command.params().iter().any(|spec| spec.name == *key))
    {
        return Err(ParamError::Unknown {
            command,
            key: key.clone(),
        });
    }
    let get = |key: &str| params.get(key);
    let params = match command {
        CommandName::Start => Params::Start,
        CommandName::Stop => Params::Stop,
        CommandName::Restart => Params::Restart,
        CommandName::Status => Params::Status,
        CommandName::BackupKeys => Params::BackupKeys,
        CommandName::Payout => Params::Payout,
        CommandName::RotateKeys => Params::RotateKeys,
        CommandName::Logs => Params::Logs {
            lines: match get("lines") {
                None => DEFAULT_LOG_LINES,
                Some(value) => validate_lines(value)?,
            },
        },
        CommandName::Exec => {
            let value = required(command, EXEC_PARAMS[0], get("command"))?;
            let (command, argv) = validate_command_line(value)?;
            Params::Exec { command, argv }
        }
        CommandName::RestoreKeys => {
            let value = required(command, RESTORE_KEYS_PARAMS[0], get("backup_file"))?;
            Params::RestoreKeys {
                backup_file: validate_backup_file(value)?,
            }
        }
        CommandName::CheckKeys => Params::CheckKeys {
            rotate_to_check: optional_bool("rotate_to_check", get("rotate_to_check"), false)?,
            public_keys: get("public_keys").map(validate_public_keys).transpose()?,
        },
        CommandName::HasSessionKeys => Params::HasSessionKeys {
            session_keys: match get("session_keys") {
                None => String::new(),
                Some(value) => validate_session_keys(value)?,
            },
        },
        CommandName::HasKey => {
            let value = required(command, HAS_KEY_PARAMS[0], get("public_key"))?;
            Params::HasKey {
                public_key: validate_hex("public_key", HEX_EXPECTED, value)?,
                key_type: match get("key_type") {
                    None => DEFAULT_KEY_TYPE.to_owned(),
                    Some(value) => validate_key_type("key_type", value)?,
                },
            }
        }
        CommandName::FindValidator => Params::FindValidator {
            session_keys: match get("session_keys") {
                None => None,
                Some(value) => Some(validate_session_keys(value)?).filter(|keys| !keys.is_empty()),
            },
            deep_search: optional_bool("deep_search", get("deep_search"), true)?,
        },
    };
    Ok(params)
}

/// Split an `exec` command line into argv the way the agent does: POSIX-shell
/// words (quotes and backslashes), no expansion, never run by a shell.
pub fn split_command(command: &str) -> Result<Vec<String>, ParamError> {
    let invalid = || ParamError::Invalid {
        key: "command".to_owned(),
        expected: COMMAND_EXPECTED,
        got: shorten(&Value::from(command)),
    };
    if command.contains('\0') {
        return Err(invalid());
    }
    match shlex::split(command) {
        Some(argv) if !argv.is_empty() => Ok(argv),
        _ => Err(invalid()),
    }
}

fn required(
    command: CommandName,
    spec: ParamSpec,
    value: Option<&Value>,
) -> Result<&Value, ParamError> {
    value.ok_or(ParamError::Missing {
        command,
        key: spec.name,
        expected: spec.expected,
    })
}

fn invalid(key: &str, expected: &'static str, got: &Value) -> ParamError {
    ParamError::Invalid {
        key: key.to_owned(),
        expected,
        got: shorten(got),
    }
}

/// The value as compact JSON, cut to keep an error message one readable line
/// (a 60 KiB string must not be echoed back whole).
fn shorten(value: &Value) -> String {
    const MAX_CHARS: usize = 40;
    let text = value.to_string();
    if text.chars().count() <= MAX_CHARS {
        text
    } else {
        let mut cut: String = text.chars().take(MAX_CHARS).collect();
        cut.push('…');
        cut
    }
}

fn validate_lines(value: &Value) -> Result<u32, ParamError> {
    value
        .as_u64()
        .filter(|lines| (1..=u64::from(MAX_LOG_LINES)).contains(lines))
        .and_then(|lines| u32::try_from(lines).ok())
        .ok_or_else(|| invalid("lines", LINES_EXPECTED, value))
}

fn optional_bool(key: &str, value: Option<&Value>, default: bool) -> Result<bool, ParamError> {
    match value {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(invalid(key, BOOL_EXPECTED, other)),
    }
}

fn validate_command_line(value: &Value) -> Result<(String, Vec<String>), ParamError> {
    let command = value
        .as_str()
        .filter(|command| command.len() <= MAX_EXEC_COMMAND_BYTES)
        .ok_or_else(|| invalid("command", COMMAND_EXPECTED, value))?;
    let argv = split_command(command)?;
    Ok((command.to_owned(), argv))
}

fn validate_backup_file(value: &Value) -> Result<String, ParamError> {
    let ok = value.as_str().filter(|name| {
        !name.is_empty()
            && name.len() <= MAX_BACKUP_FILE_BYTES
            && !name.starts_with('.')
            && !name.contains("..")
            && !name.contains(['/', '\\'])
            && !name.chars().any(char::is_control)
    });
    ok.map(str::to_owned)
        .ok_or_else(|| invalid("backup_file", BACKUP_FILE_EXPECTED, value))
}

/// `0x` followed by an even, non-zero number of hex digits; lower-cased.
fn validate_hex(key: &str, expected: &'static str, value: &Value) -> Result<String, ParamError> {
    let ok = value.as_str().and_then(|text| {
        let digits = text.strip_prefix("0x")?;
        let well_formed = !digits.is_empty()
            && digits.len() <= MAX_HEX_DIGITS
            && digits.len() % 2 == 0
            && digits.bytes().all(|b| b.is_ascii_hexdigit());
        well_formed.then(|| text.to_ascii_lowercase())
    });
    ok.ok_or_else(|| invalid(key, expected, value))
}

/// Hex like [`validate_hex`], or the empty string.
fn validate_session_keys(value: &Value) -> Result<String, ParamError> {
    if value.as_str() == Some("") {
        return Ok(String::new());
    }
    validate_hex("session_keys", SESSION_KEYS_OR_EMPTY_EXPECTED, value)
}

fn is_key_type(text: &str) -> bool {
    text.len() == 4
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn validate_key_type(key: &str, value: &Value) -> Result<String, ParamError> {
    value
        .as_str()
        .filter(|text| is_key_type(text))
        .map(str::to_owned)
        .ok_or_else(|| invalid(key, KEY_TYPE_EXPECTED, value))
}

fn validate_public_keys(value: &Value) -> Result<BTreeMap<String, String>, ParamError> {
    let map = value
        .as_object()
        .filter(|map| !map.is_empty() && map.len() <= MAX_PUBLIC_KEYS)
        .ok_or_else(|| invalid("public_keys", PUBLIC_KEYS_EXPECTED, value))?;
    let mut keys = BTreeMap::new();
    for (key_type, key) in map {
        let dotted = format!("public_keys.{key_type}");
        if !is_key_type(key_type) {
            return Err(ParamError::Invalid {
                key: dotted,
                expected: KEY_TYPE_EXPECTED,
                got: shorten(&Value::from(key_type.as_str())),
            });
        }
        keys.insert(key_type.clone(), validate_hex(&dotted, HEX_EXPECTED, key)?);
    }
    Ok(keys)
}

#[cfg(test)]
#[path = "commands_tests.rs"]
mod tests;
