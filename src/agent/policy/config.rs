//! The file's `"policy"` object as written, checked for shape only: every
//! key known, every value of the right type, each error naming its JSON path.
//! Meanings (patterns, command names, consistency) are checked in `mod.rs`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Why a policy could not be loaded.
#[derive(Debug)]
pub enum PolicyError {
    /// The config file could not be read.
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The config file is not well-formed JSON.
    Syntax {
        file: PathBuf,
        source: serde_json::Error,
    },
    /// The JSON is well formed but the policy in it is not acceptable.
    Invalid {
        /// The file it came from, when loaded with [`Policy::load`].
        file: Option<PathBuf>,
        /// Where in the JSON, e.g. `policy.allow[2]`.
        json_path: String,
        /// What is wrong and, where it helps, what would be right.
        message: String,
    },
}

impl PolicyError {
    pub(super) fn invalid(json_path: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            file: None,
            json_path: json_path.to_string(),
            message: message.into(),
        }
    }

    pub(super) fn in_file(self, path: &Path) -> PolicyError {
        match self {
            PolicyError::Invalid {
                json_path, message, ..
            } => PolicyError::Invalid {
                file: Some(path.to_path_buf()),
                json_path,
                message,
            },
            other => other,
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Read { file, source } => {
                write!(f, "cannot read config file {}: {source}", file.display())
            }
            PolicyError::Syntax { file, source } => {
                write!(
                    f,
                    "config file {} is not valid JSON: {source}",
                    file.display()
                )
            }
            PolicyError::Invalid {
                file,
                json_path,
                message,
            } => {
                if let Some(file) = file {
                    write!(f, "{}: ", file.display())?;
                }
                write!(f, "{json_path}: {message}")
            }
        }
    }
}

impl std::error::Error for PolicyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PolicyError::Read { source, .. } => Some(source),
            PolicyError::Syntax { source, .. } => Some(source),
            PolicyError::Invalid { .. } => None,
        }
    }
}

/// The `"policy"` object of the agent's config file, as written: every key
/// optional, shapes checked, meanings not yet (see [`Policy::from_config`]).
///
/// It implements `Deserialize`, so the agent's own config struct may embed it
/// as `#[serde(default)] policy: PolicyConfig`; unknown keys at any level are
/// rejected with their JSON path in the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyConfig {
    /// `containers`: names or glob patterns of the managed containers.
    pub containers: Option<Vec<String>>,
    /// `allow`: the commands that may run, some restricted to containers.
    pub allow: Option<Vec<AllowEntryConfig>>,
    /// `exec`: the programs `exec` may run.
    pub exec: Option<ExecConfig>,
    /// `payout`: the script `payout` runs.
    pub payout: Option<PayoutConfig>,
    /// `max_command_age_s`: commands older than this are refused.
    pub max_command_age_s: Option<u64>,
    /// `operators`: operator name → Ed25519 public key (`0x` + 64 hex).
    pub operators: Option<Vec<(String, String)>>,
    /// `require_signatures`: command → how many operators must sign it.
    pub require_signatures: Option<Vec<(String, u64)>>,
}

/// One entry of `policy.allow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntryConfig {
    /// `"stop"`: allowed on every managed container.
    Command(String),
    /// `{"command": "stop", "containers": ["3node1", "3node2*"]}`: allowed only
    /// on managed containers matching one of these patterns.
    Restricted {
        command: String,
        containers: Vec<String>,
    },
}

/// `policy.exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecConfig {
    /// `programs`; absent means empty.
    pub programs: Vec<ExecProgramConfig>,
}

/// One entry of `policy.exec.programs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecProgramConfig {
    /// `program`: `argv[0]`, matched exactly.
    pub program: String,
    /// `args`: the fixed arguments, one per word; absent means none. With
    /// `unsafe_any_args`, globs (the last may be `"**"`), and absent means
    /// any arguments at all.
    pub args: Option<Vec<String>>,
    /// `unsafe_any_args`: whether `args` may hold patterns (default false).
    pub unsafe_any_args: bool,
}

/// `policy.payout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutConfig {
    /// `script`: absolute path of the payout script on the agent's host.
    pub script: String,
    /// `timeout_s`: how long the script may run.
    pub timeout_s: Option<u64>,
}

impl PolicyConfig {
    /// Reads the `"policy"` object itself (not the whole config file).
    pub fn from_value(value: &Value) -> Result<PolicyConfig, PolicyError> {
        let path = "policy";
        let object = expect_object(value, path)?;
        check_keys(
            object,
            path,
            &[
                "containers",
                "allow",
                "exec",
                "payout",
                "max_command_age_s",
                "operators",
                "require_signatures",
            ],
        )?;
        let mut config = PolicyConfig::default();
        if let Some(value) = object.get("containers") {
            config.containers = Some(expect_string_list(value, "policy.containers")?);
        }
        if let Some(value) = object.get("allow") {
            let path = "policy.allow";
            let entries = expect_array(value, path)?;
            let mut allow = Vec::with_capacity(entries.len());
            for (index, entry) in entries.iter().enumerate() {
                allow.push(read_allow_entry(entry, &format!("{path}[{index}]"))?);
            }
            config.allow = Some(allow);
        }
        if let Some(value) = object.get("exec") {
            config.exec = Some(read_exec(value, "policy.exec")?);
        }
        if let Some(value) = object.get("payout") {
            config.payout = Some(read_payout(value, "policy.payout")?);
        }
        if let Some(value) = object.get("operators") {
            let path = "policy.operators";
            let mut operators = Vec::new();
            for (name, key) in expect_object(value, path)? {
                let key = expect_string(key, &format!("{path}.{name}"))?;
                operators.push((name.clone(), key.to_string()));
            }
            config.operators = Some(operators);
        }
        if let Some(value) = object.get("require_signatures") {
            let path = "policy.require_signatures";
            let mut required = Vec::new();
            for (command, count) in expect_object(value, path)? {
                let count = count.as_u64().ok_or_else(|| {
                    PolicyError::invalid(
                        &format!("{path}.{command}"),
                        format!("expected a whole number, found {}", describe(count)),
                    )
                })?;
                required.push((command.clone(), count));
            }
            config.require_signatures = Some(required);
        }
        if let Some(value) = object.get("max_command_age_s") {
            config.max_command_age_s = Some(expect_seconds(value, "policy.max_command_age_s")?);
        }
        Ok(config)
    }
}

impl<'de> Deserialize<'de> for PolicyConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        PolicyConfig::from_value(&value).map_err(serde::de::Error::custom)
    }
}

pub(super) fn read_allow_entry(value: &Value, path: &str) -> Result<AllowEntryConfig, PolicyError> {
    match value {
        Value::String(command) => Ok(AllowEntryConfig::Command(command.clone())),
        Value::Object(object) => {
            check_keys(object, path, &["command", "containers"])?;
            let command = required(object, path, "command")?;
            let command = expect_string(command, &format!("{path}.command"))?;
            let containers = required(object, path, "containers")?;
            let containers = expect_string_list(containers, &format!("{path}.containers"))?;
            Ok(AllowEntryConfig::Restricted {
                command: command.to_string(),
                containers,
            })
        }
        other => Err(PolicyError::invalid(
            path,
            format!(
                "expected a command name or an object {{\"command\", \"containers\"}}, found {}",
                describe(other)
            ),
        )),
    }
}

pub(super) fn read_exec(value: &Value, path: &str) -> Result<ExecConfig, PolicyError> {
    let object = expect_object(value, path)?;
    check_keys(object, path, &["programs"])?;
    let mut exec = ExecConfig::default();
    if let Some(programs) = object.get("programs") {
        let path = format!("{path}.programs");
        for (index, entry) in expect_array(programs, &path)?.iter().enumerate() {
            let path = format!("{path}[{index}]");
            let entry = expect_object(entry, &path)?;
            check_keys(entry, &path, &["program", "args", "unsafe_any_args"])?;
            let program = required(entry, &path, "program")?;
            let program = expect_string(program, &format!("{path}.program"))?;
            let args = match entry.get("args") {
                Some(args) => Some(expect_string_list(args, &format!("{path}.args"))?),
                None => None,
            };
            let unsafe_any_args = match entry.get("unsafe_any_args") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(PolicyError::invalid(
                        &format!("{path}.unsafe_any_args"),
                        format!("expected true or false, found {}", describe(other)),
                    ));
                }
            };
            exec.programs.push(ExecProgramConfig {
                program: program.to_string(),
                args,
                unsafe_any_args,
            });
        }
    }
    Ok(exec)
}

pub(super) fn read_payout(value: &Value, path: &str) -> Result<PayoutConfig, PolicyError> {
    let object = expect_object(value, path)?;
    check_keys(object, path, &["script", "timeout_s"])?;
    let script = required(object, path, "script")?;
    let script = expect_string(script, &format!("{path}.script"))?;
    let timeout_s = match object.get("timeout_s") {
        Some(timeout) => Some(expect_seconds(timeout, &format!("{path}.timeout_s"))?),
        None => None,
    };
    Ok(PayoutConfig {
        script: script.to_string(),
        timeout_s,
    })
}

pub(super) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn expect_object<'v>(
    value: &'v Value,
    path: &str,
) -> Result<&'v Map<String, Value>, PolicyError> {
    value.as_object().ok_or_else(|| {
        PolicyError::invalid(
            path,
            format!("expected an object, found {}", describe(value)),
        )
    })
}

pub(super) fn expect_array<'v>(value: &'v Value, path: &str) -> Result<&'v [Value], PolicyError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(PolicyError::invalid(
            path,
            format!("expected an array, found {}", describe(other)),
        )),
    }
}

pub(super) fn expect_string<'v>(value: &'v Value, path: &str) -> Result<&'v str, PolicyError> {
    value.as_str().ok_or_else(|| {
        PolicyError::invalid(
            path,
            format!("expected a string, found {}", describe(value)),
        )
    })
}

pub(super) fn expect_string_list(value: &Value, path: &str) -> Result<Vec<String>, PolicyError> {
    let items = expect_array(value, path)?;
    let mut strings = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        strings.push(expect_string(item, &format!("{path}[{index}]"))?.to_string());
    }
    Ok(strings)
}

pub(super) fn expect_seconds(value: &Value, path: &str) -> Result<u64, PolicyError> {
    value.as_u64().ok_or_else(|| {
        let found = match value {
            Value::Number(number) => format!("{number}"),
            other => describe(other).to_string(),
        };
        PolicyError::invalid(
            path,
            format!("expected a whole number of seconds, found {found}"),
        )
    })
}

pub(super) fn required<'v>(
    object: &'v Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<&'v Value, PolicyError> {
    object
        .get(key)
        .ok_or_else(|| PolicyError::invalid(path, format!("missing key \"{key}\"")))
}

pub(super) fn check_keys(
    object: &Map<String, Value>,
    path: &str,
    known: &[&str],
) -> Result<(), PolicyError> {
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        None => Ok(()),
        Some(key) => Err(PolicyError::invalid(
            path,
            format!("unknown key {key:?} (known: {})", known.join(", ")),
        )),
    }
}
