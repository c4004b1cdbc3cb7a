//! The agent's own policy: which containers it manages and which commands it
//! will run on them, whatever the server asks.
//!
//! The agent is the last line of defence. A server that has been taken over
//! (think SaltStack CVE-2020-11651, where anyone reaching the master could make
//! every minion run anything) must not be able to do more on a host than this
//! host's operator wrote into the agent's config file. So the policy is read
//! from the agent's file only; nothing the server sends can widen it.
//!
//! This module owns the `"policy"` object of the agent's JSON config file and
//! nothing else in that file. It is pure logic: the only I/O is
//! [`Policy::load`], a convenience that reads the file. The format and the
//! reasons behind it are described in `docs/policy.md`.
//!
//! Two layers:
//! - [`PolicyConfig`] is the file's `"policy"` object as written, checked for
//!   shape only: every key known, every value of the right type. Unknown keys
//!   are an error at every level (the behaviour `#[serde(deny_unknown_fields)]`
//!   gives), because a misspelt key in a security policy must not silently
//!   fall back to a default.
//! - [`Policy`] is the validated policy the agent consults: glob patterns
//!   checked, command names known, exec and payout consistent with `allow`.
//!
//! Every error names the JSON path of the problem (`policy.allow[2]: …`). That
//! is why `PolicyConfig`'s `Deserialize` is written by hand over a
//! `serde_json::Value` walk instead of derived: a derived impl reports
//! "unknown field `arg`" without saying in which of the nested objects.
//!
//! Invariants:
//! - A container name is only ever managed if it is a valid Docker container
//!   name (`[A-Za-z0-9][A-Za-z0-9_.-]+`), whatever the patterns say, so a
//!   server cannot smuggle `--privileged`, `../x` or `a b` through a `*`.
//! - Wildcards in exec argument patterns never match their way into a `..`
//!   path component.
//! - `"all"` is the protocol's word for every managed container; it is never a
//!   container name or pattern here.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::commands::CommandName;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Every command of protocol 1, in the order the protocol's table lists them.
/// This is also the order of [`Policy::permitted_commands`].
pub const KNOWN_COMMANDS: [&str; CommandName::ALL.len()] = {
    // Derived from the catalog, so the two lists cannot drift apart.
    let mut names = [""; CommandName::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = CommandName::ALL[i].as_str();
        i += 1;
    }
    names
};

/// The commands permitted when the policy has no `allow` key: everything
/// except the two that run programs the node software does not define.
const DEFAULT_DENIED: [&str; 2] = ["exec", "payout"];

/// Container patterns used when the policy has no `containers` key: the
/// original design's naming (`3node0`, `3node1`, …, `node0`, …).
pub const DEFAULT_CONTAINER_PATTERNS: [&str; 2] = ["3node*", "node*"];

/// Default and upper bound of `policy.max_command_age_s`.
pub const DEFAULT_MAX_COMMAND_AGE_S: u64 = 300;
pub const MAX_MAX_COMMAND_AGE_S: u64 = 3600;

/// How far in the future a command's timestamp may be before it is refused.
///
/// A command stamped in the future means the server's clock runs ahead of the
/// agent's, or someone forged the timestamp to stretch the age check: a
/// command stamped an hour ahead would otherwise stay "fresh" for an hour plus
/// `max_command_age_s`. A minute absorbs ordinary NTP drift.
pub const MAX_CLOCK_SKEW_AHEAD_MS: i64 = 60_000;

/// Default and upper bound of `policy.payout.timeout_s`.
pub const DEFAULT_PAYOUT_TIMEOUT_S: u64 = 600;
pub const MAX_PAYOUT_TIMEOUT_S: u64 = 3600;

/// The protocol's target meaning "every managed container".
const ALL_TARGET: &str = "all";

// ---------------------------------------------------------------------------
// Errors

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
    fn invalid(json_path: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            file: None,
            json_path: json_path.to_string(),
            message: message.into(),
        }
    }

    fn in_file(self, path: &Path) -> PolicyError {
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

// ---------------------------------------------------------------------------
// The file's "policy" object, shape only

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
    /// `args`: one glob per argument (the last may be `"**"`); absent means
    /// any arguments at all.
    pub args: Option<Vec<String>>,
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
            &["containers", "allow", "exec", "payout", "max_command_age_s"],
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

fn read_allow_entry(value: &Value, path: &str) -> Result<AllowEntryConfig, PolicyError> {
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

fn read_exec(value: &Value, path: &str) -> Result<ExecConfig, PolicyError> {
    let object = expect_object(value, path)?;
    check_keys(object, path, &["programs"])?;
    let mut exec = ExecConfig::default();
    if let Some(programs) = object.get("programs") {
        let path = format!("{path}.programs");
        for (index, entry) in expect_array(programs, &path)?.iter().enumerate() {
            let path = format!("{path}[{index}]");
            let entry = expect_object(entry, &path)?;
            check_keys(entry, &path, &["program", "args"])?;
            let program = required(entry, &path, "program")?;
            let program = expect_string(program, &format!("{path}.program"))?;
            let args = match entry.get("args") {
                Some(args) => Some(expect_string_list(args, &format!("{path}.args"))?),
                None => None,
            };
            exec.programs.push(ExecProgramConfig {
                program: program.to_string(),
                args,
            });
        }
    }
    Ok(exec)
}

fn read_payout(value: &Value, path: &str) -> Result<PayoutConfig, PolicyError> {
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

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expect_object<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>, PolicyError> {
    value.as_object().ok_or_else(|| {
        PolicyError::invalid(
            path,
            format!("expected an object, found {}", describe(value)),
        )
    })
}

fn expect_array<'v>(value: &'v Value, path: &str) -> Result<&'v [Value], PolicyError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(PolicyError::invalid(
            path,
            format!("expected an array, found {}", describe(other)),
        )),
    }
}

fn expect_string<'v>(value: &'v Value, path: &str) -> Result<&'v str, PolicyError> {
    value.as_str().ok_or_else(|| {
        PolicyError::invalid(
            path,
            format!("expected a string, found {}", describe(value)),
        )
    })
}

fn expect_string_list(value: &Value, path: &str) -> Result<Vec<String>, PolicyError> {
    let items = expect_array(value, path)?;
    let mut strings = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        strings.push(expect_string(item, &format!("{path}[{index}]"))?.to_string());
    }
    Ok(strings)
}

fn expect_seconds(value: &Value, path: &str) -> Result<u64, PolicyError> {
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

fn required<'v>(
    object: &'v Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<&'v Value, PolicyError> {
    object
        .get(key)
        .ok_or_else(|| PolicyError::invalid(path, format!("missing key \"{key}\"")))
}

fn check_keys(object: &Map<String, Value>, path: &str, known: &[&str]) -> Result<(), PolicyError> {
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        None => Ok(()),
        Some(key) => Err(PolicyError::invalid(
            path,
            format!("unknown key {key:?} (known: {})", known.join(", ")),
        )),
    }
}

// ---------------------------------------------------------------------------
// Glob patterns

/// A glob over whole strings: `*` matches any run of characters (also none,
/// also `/`), `?` matches exactly one character, every other character
/// matches itself. No character classes, no escapes, no regex: `.` is a dot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob {
    pattern: String,
}

impl Glob {
    fn new(pattern: &str) -> Glob {
        Glob {
            pattern: pattern.to_string(),
        }
    }

    fn matches(&self, text: &str) -> bool {
        glob_match(&self.pattern, text)
    }
}

/// Iterative matching with one backtrack point: on a mismatch, the most
/// recent `*` absorbs one more character. Earlier stars never need to be
/// revisited, so this is O(pattern × text) at worst, with no exponential
/// blow-up on patterns like `*a*a*a*b`.
fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // (index in pattern just after the last `*`, index in text it resumes at)
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                p += 1;
                backtrack = Some((p, t));
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((after_star, resume)) => {
                    p = after_star;
                    t = resume + 1;
                    backtrack = Some((after_star, resume + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether `name` could be a Docker container name. Docker's own rule is
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`; anything else must never reach `docker`.
pub fn is_valid_container_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn parse_container_pattern(pattern: &str, path: &str) -> Result<Glob, PolicyError> {
    if pattern.is_empty() {
        return Err(PolicyError::invalid(
            path,
            "empty container pattern (it would match no container)",
        ));
    }
    if pattern == ALL_TARGET {
        return Err(PolicyError::invalid(
            path,
            "\"all\" is the protocol's word for every managed container and cannot be a container name here; use \"*\" to match every container",
        ));
    }
    if let Some(bad) = pattern
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*' | '?')))
    {
        return Err(PolicyError::invalid(
            path,
            format!(
                "{pattern:?} is not a valid container name pattern: {bad:?} is not allowed (allowed: A-Z a-z 0-9 _ . - and the wildcards * ?)"
            ),
        ));
    }
    Ok(Glob::new(pattern))
}

fn list_patterns(patterns: &[Glob]) -> String {
    let quoted: Vec<String> = patterns
        .iter()
        .map(|g| format!("{:?}", g.pattern))
        .collect();
    format!("[{}]", quoted.join(", "))
}

// ---------------------------------------------------------------------------
// Exec argument patterns

/// What `exec` may run: one entry of `policy.exec.programs`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExecRule {
    program: String,
    args: ArgRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ArgRule {
    /// No `args` key: any arguments at all.
    Any,
    /// One glob per argument; with `rest`, the list ended in `"**"` and any
    /// further arguments (none included) are accepted as they are.
    Patterns { each: Vec<Glob>, rest: bool },
}

/// How one argv compared with one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgMatch {
    Yes,
    No,
    /// The globs matched, but only by letting a wildcard stand for a `..`
    /// path component.
    OnlyThroughDotDot,
}

/// The `**` that ends an argument list: any further arguments.
const REST_OF_ARGS: &str = "**";

impl ArgRule {
    fn check(&self, args: &[String]) -> ArgMatch {
        let ArgRule::Patterns { each, rest } = self else {
            return ArgMatch::Yes;
        };
        let count_fits = if *rest {
            args.len() >= each.len()
        } else {
            args.len() == each.len()
        };
        if !count_fits {
            return ArgMatch::No;
        }
        let mut result = ArgMatch::Yes;
        for (pattern, arg) in each.iter().zip(args) {
            if !pattern.matches(arg) {
                return ArgMatch::No;
            }
            if count_dot_dot(arg) > count_dot_dot(&pattern.pattern) {
                result = ArgMatch::OnlyThroughDotDot;
            }
        }
        result
    }

    fn describe(&self, program: &str) -> String {
        match self {
            ArgRule::Any => format!("{program} <any arguments>"),
            ArgRule::Patterns { each, rest } => {
                let mut words = vec![program.to_string()];
                words.extend(each.iter().map(|g| g.pattern.clone()));
                if *rest {
                    words.push(REST_OF_ARGS.to_string());
                }
                words.join(" ")
            }
        }
    }
}

/// The number of `..` components in a `/`-separated path.
///
/// A literal `..` component in a pattern can only match a `..` component of
/// the argument, each at its own place. So if the argument has more of them
/// than the pattern, a wildcard produced at least one: `/root/data/*` must not
/// match `/root/data/../../etc/shadow` or `/root/data/..`.
fn count_dot_dot(path: &str) -> usize {
    path.split('/')
        .filter(|component| *component == "..")
        .count()
}

fn parse_exec_rule(entry: &ExecProgramConfig, path: &str) -> Result<ExecRule, PolicyError> {
    let program = entry.program.as_str();
    let program_path = format!("{path}.program");
    if program.is_empty() {
        return Err(PolicyError::invalid(&program_path, "empty program name"));
    }
    if program.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(PolicyError::invalid(
            &program_path,
            format!(
                "{program:?} contains whitespace; give the program alone and put its arguments in \"args\""
            ),
        ));
    }
    if program.contains(['*', '?']) {
        return Err(PolicyError::invalid(
            &program_path,
            format!("{program:?} contains a wildcard; programs are matched by exact name"),
        ));
    }
    let args = match &entry.args {
        None => ArgRule::Any,
        Some(patterns) => {
            let mut each = Vec::with_capacity(patterns.len());
            let mut rest = false;
            for (index, pattern) in patterns.iter().enumerate() {
                if pattern == REST_OF_ARGS {
                    if index + 1 != patterns.len() {
                        return Err(PolicyError::invalid(
                            &format!("{path}.args[{index}]"),
                            "\"**\" (any further arguments) may only be the last entry of args",
                        ));
                    }
                    rest = true;
                } else {
                    each.push(Glob::new(pattern));
                }
            }
            ArgRule::Patterns { each, rest }
        }
    };
    Ok(ExecRule {
        program: program.to_string(),
        args,
    })
}

// ---------------------------------------------------------------------------
// The validated policy

fn parse_container_patterns(patterns: &[String], path: &str) -> Result<Vec<Glob>, PolicyError> {
    patterns
        .iter()
        .enumerate()
        .map(|(index, pattern)| parse_container_pattern(pattern, &format!("{path}[{index}]")))
        .collect()
}

/// `policy.allow`, as one optional scope per entry of [`KNOWN_COMMANDS`].
fn parse_allow(
    entries: &[AllowEntryConfig],
) -> Result<[Option<Scope>; KNOWN_COMMANDS.len()], PolicyError> {
    let mut allowed: [Option<Scope>; KNOWN_COMMANDS.len()] = Default::default();
    // Where each command was first listed, to reject repeats.
    let mut listed_at: [Option<usize>; KNOWN_COMMANDS.len()] = Default::default();
    for (entry_index, entry) in entries.iter().enumerate() {
        let path = format!("policy.allow[{entry_index}]");
        let (command, command_path) = match entry {
            AllowEntryConfig::Command(command) => (command, path.clone()),
            AllowEntryConfig::Restricted { command, .. } => (command, format!("{path}.command")),
        };
        let Some(index) = command_index(command) else {
            return Err(PolicyError::invalid(
                &command_path,
                format!(
                    "unknown command {command:?} (known: {})",
                    KNOWN_COMMANDS.join(", ")
                ),
            ));
        };
        // A second entry for the same command is refused rather than merged:
        // an operator who adds a restricted entry while a bare one remains
        // would believe the command is restricted when it is not.
        if let Some(first) = listed_at[index] {
            return Err(PolicyError::invalid(
                &path,
                format!(
                    "{command:?} is already listed at policy.allow[{first}]; give each command one entry"
                ),
            ));
        }
        listed_at[index] = Some(entry_index);
        allowed[index] = Some(match entry {
            AllowEntryConfig::Command(_) => Scope::Everywhere,
            AllowEntryConfig::Restricted { containers, .. } => {
                let json_path = format!("{path}.containers");
                if containers.is_empty() {
                    return Err(PolicyError::invalid(
                        &json_path,
                        format!(
                            "lists no containers; to forbid {command:?} everywhere, remove this entry"
                        ),
                    ));
                }
                Scope::Only {
                    containers: parse_container_patterns(containers, &json_path)?,
                    json_path,
                }
            }
        });
    }
    Ok(allowed)
}

fn parse_payout(payout: &PayoutConfig) -> Result<PayoutPolicy, PolicyError> {
    if !Path::new(&payout.script).is_absolute() {
        return Err(PolicyError::invalid(
            "policy.payout.script",
            format!(
                "{:?} is not an absolute path; give the script's full path",
                payout.script
            ),
        ));
    }
    let timeout_s = payout.timeout_s.unwrap_or(DEFAULT_PAYOUT_TIMEOUT_S);
    check_seconds_range(timeout_s, MAX_PAYOUT_TIMEOUT_S, "policy.payout.timeout_s")?;
    Ok(PayoutPolicy {
        script: PathBuf::from(&payout.script),
        timeout: Duration::from_secs(timeout_s),
    })
}

fn check_seconds_range(seconds: u64, max: u64, path: &str) -> Result<(), PolicyError> {
    if (1..=max).contains(&seconds) {
        Ok(())
    } else {
        Err(PolicyError::invalid(
            path,
            format!("{seconds} is out of range (1 to {max} seconds)"),
        ))
    }
}

/// Where an allowed command may run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// Every managed container.
    Everywhere,
    /// Only managed containers that match one of these patterns; `json_path`
    /// names the entry for the operator.
    Only {
        containers: Vec<Glob>,
        json_path: String,
    },
}

/// The payout script the agent may run, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutPolicy {
    script: PathBuf,
    timeout: Duration,
}

impl PayoutPolicy {
    /// Absolute path of the script on the agent's host.
    pub fn script(&self) -> &Path {
        &self.script
    }

    /// How long the script may run before the agent kills it.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// The agent's answer to "may this command run on this container?".
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// The policy forbids it; the wire code is `not_permitted`.
    Denied {
        reason: String,
    },
    /// The target is not a container this agent manages; the wire code is
    /// `unknown_target`.
    NotManaged {
        reason: String,
    },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }

    /// The sentence for the operator, unless allowed.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Decision::Allowed => None,
            Decision::Denied { reason } | Decision::NotManaged { reason } => Some(reason),
        }
    }
}

/// What target `all` comes to for one command: see [`Policy::decide_all`].
#[must_use]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllDecision<'a> {
    /// Managed containers the command may run on, in the order given.
    pub allowed: Vec<&'a str>,
    /// Managed containers the policy excludes, each with the reason.
    pub denied: Vec<(&'a str, String)>,
}

/// The validated policy. Build it with [`Policy::load`],
/// [`Policy::from_json_value`], [`Policy::from_config`] or `Policy::default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    containers: Vec<Glob>,
    /// Indexed like [`KNOWN_COMMANDS`]; `None` = not allowed.
    allowed: [Option<Scope>; KNOWN_COMMANDS.len()],
    exec: Vec<ExecRule>,
    /// Only kept when `payout` is allowed.
    payout: Option<PayoutPolicy>,
    max_command_age_s: u64,
}

fn command_index(command: &str) -> Option<usize> {
    KNOWN_COMMANDS.iter().position(|known| *known == command)
}

impl Default for Policy {
    /// Manages `3node*` and `node*`; allows every command except `exec` and
    /// `payout`; refuses commands older than 300 s.
    fn default() -> Policy {
        Policy::from_config(&PolicyConfig::default()).expect("the default policy config is valid")
    }
}

impl Policy {
    /// Reads the agent's config file and returns the policy in its `"policy"`
    /// object (the default policy if there is none).
    pub fn load(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|source| PolicyError::Syntax {
            file: path.to_path_buf(),
            source,
        })?;
        Policy::from_json_value(&value).map_err(|error| error.in_file(path))
    }

    /// Takes the whole config file's JSON object and reads only its
    /// `"policy"` key; other top-level keys belong to other parts of the
    /// agent and are not looked at. No `"policy"` key means the default.
    pub fn from_json_value(config_file: &Value) -> Result<Policy, PolicyError> {
        let Value::Object(top) = config_file else {
            return Err(PolicyError::invalid(
                "(top level)",
                format!(
                    "the config file must be a JSON object, found {}",
                    describe(config_file)
                ),
            ));
        };
        match top.get("policy") {
            None => Ok(Policy::default()),
            Some(policy) => Policy::from_config(&PolicyConfig::from_value(policy)?),
        }
    }

    /// Validates the meaning of a [`PolicyConfig`].
    pub fn from_config(config: &PolicyConfig) -> Result<Policy, PolicyError> {
        let containers = match &config.containers {
            None => DEFAULT_CONTAINER_PATTERNS.map(Glob::new).to_vec(),
            Some(patterns) if patterns.is_empty() => {
                return Err(PolicyError::invalid(
                    "policy.containers",
                    "lists no containers, so the agent would manage nothing; list names or patterns such as \"3node*\", or leave the key out for the default [\"3node*\", \"node*\"]",
                ));
            }
            Some(patterns) => parse_container_patterns(patterns, "policy.containers")?,
        };
        let allowed = match &config.allow {
            None => KNOWN_COMMANDS
                .map(|command| (!DEFAULT_DENIED.contains(&command)).then_some(Scope::Everywhere)),
            Some(entries) => parse_allow(entries)?,
        };
        let is_allowed =
            |command: &str| command_index(command).is_some_and(|index| allowed[index].is_some());

        let mut exec = Vec::new();
        if let Some(exec_config) = &config.exec {
            for (index, entry) in exec_config.programs.iter().enumerate() {
                exec.push(parse_exec_rule(
                    entry,
                    &format!("policy.exec.programs[{index}]"),
                )?);
            }
        }
        if is_allowed("exec") && exec.is_empty() {
            return Err(PolicyError::invalid(
                "policy.exec",
                "exec is allowed but no programs are listed (list them under policy.exec.programs, or remove \"exec\" from policy.allow)",
            ));
        }

        let payout = match &config.payout {
            None => None,
            Some(payout) => Some(parse_payout(payout)?),
        };
        let payout = match (is_allowed("payout"), payout) {
            (true, None) => {
                return Err(PolicyError::invalid(
                    "policy.payout",
                    "payout is allowed but no script is configured (set policy.payout.script, or remove \"payout\" from policy.allow)",
                ));
            }
            // A script that is configured but not allowed is kept out of reach.
            (false, _) => None,
            (true, payout) => payout,
        };

        let max_command_age_s = config
            .max_command_age_s
            .unwrap_or(DEFAULT_MAX_COMMAND_AGE_S);
        check_seconds_range(
            max_command_age_s,
            MAX_MAX_COMMAND_AGE_S,
            "policy.max_command_age_s",
        )?;

        Ok(Policy {
            containers,
            allowed,
            exec,
            payout,
            max_command_age_s,
        })
    }

    /// Whether this agent manages the container: its name is a valid Docker
    /// container name, is not `"all"`, and matches one of `policy.containers`.
    pub fn manages(&self, container: &str) -> bool {
        container != ALL_TARGET
            && is_valid_container_name(container)
            && self.containers.iter().any(|glob| glob.matches(container))
    }

    /// The commands this agent permits on at least one container, in
    /// protocol order: what the agent announces in its `hello`.
    pub fn permitted_commands(&self) -> Vec<&'static str> {
        KNOWN_COMMANDS
            .iter()
            .zip(&self.allowed)
            .filter(|(_, scope)| scope.is_some())
            .map(|(command, _)| *command)
            .collect()
    }

    /// The payout script and its timeout, if `payout` is allowed.
    pub fn payout(&self) -> Option<&PayoutPolicy> {
        self.payout.as_ref()
    }

    /// `policy.max_command_age_s`.
    pub fn max_command_age(&self) -> Duration {
        Duration::from_secs(self.max_command_age_s)
    }

    /// Whether a command stamped `command_ts_ms` must be refused at `now_ms`
    /// (code `timeout`): older than `policy.max_command_age_s`, or more than
    /// [`MAX_CLOCK_SKEW_AHEAD_MS`] in the future. A refused command is never
    /// run late.
    pub fn command_too_old(&self, command_ts_ms: i64, now_ms: i64) -> bool {
        self.command_time_problem(command_ts_ms, now_ms).is_some()
    }

    /// Like [`Policy::command_too_old`], with the sentence for the operator.
    pub fn command_time_problem(&self, command_ts_ms: i64, now_ms: i64) -> Option<String> {
        // i128: a forged i64::MIN or i64::MAX timestamp must not overflow.
        let age_ms = i128::from(now_ms) - i128::from(command_ts_ms);
        let max_age_ms = i128::from(self.max_command_age_s) * 1000;
        if age_ms > max_age_ms {
            Some(format!(
                "the command is {} s old and this agent refuses commands older than {} s (policy.max_command_age_s); it was not run",
                age_ms / 1000,
                self.max_command_age_s
            ))
        } else if -age_ms > i128::from(MAX_CLOCK_SKEW_AHEAD_MS) {
            Some(format!(
                "the command's timestamp is {} s ahead of this agent's clock (at most {} s is accepted); check both clocks; it was not run",
                -age_ms / 1000,
                MAX_CLOCK_SKEW_AHEAD_MS / 1000
            ))
        } else {
            None
        }
    }

    /// May `command` run on `container`? For `exec`, `exec_argv` is the
    /// command line already split into argv (no shell is involved); it is
    /// ignored for other commands.
    ///
    /// For target `all`, use [`Policy::decide_all`]: `"all"` itself is never
    /// a managed container.
    pub fn decide(&self, command: &str, container: &str, exec_argv: Option<&[String]>) -> Decision {
        let Some(index) = command_index(command) else {
            return Decision::Denied {
                reason: format!(
                    "{command:?} is not a command this agent knows (known: {})",
                    KNOWN_COMMANDS.join(", ")
                ),
            };
        };
        if !self.manages(container) {
            return Decision::NotManaged {
                reason: format!(
                    "container {container:?} is not managed by this agent (policy.containers is {})",
                    list_patterns(&self.containers)
                ),
            };
        }
        match &self.allowed[index] {
            None => {
                let reason = match command {
                    "exec" => "exec is not enabled in this agent's policy (add \"exec\" to policy.allow and list programs under policy.exec.programs)".to_string(),
                    "payout" => "payout is not enabled in this agent's policy (add \"payout\" to policy.allow and set policy.payout.script)".to_string(),
                    _ => format!("{command} is not allowed by this agent's policy (add \"{command}\" to policy.allow)"),
                };
                return Decision::Denied { reason };
            }
            Some(Scope::Everywhere) => {}
            Some(Scope::Only {
                containers,
                json_path,
            }) => {
                if !containers.iter().any(|glob| glob.matches(container)) {
                    return Decision::Denied {
                        reason: format!(
                            "{command} is allowed only on some containers and {container:?} is not one of them ({json_path} is {})",
                            list_patterns(containers)
                        ),
                    };
                }
            }
        }
        if command == "exec" {
            return self.decide_exec(exec_argv.unwrap_or_default());
        }
        Decision::Allowed
    }

    fn decide_exec(&self, argv: &[String]) -> Decision {
        let Some((program, args)) = argv.split_first() else {
            return Decision::Denied {
                reason: "exec needs a command to run".to_string(),
            };
        };
        let rules: Vec<&ExecRule> = self.exec.iter().filter(|r| &r.program == program).collect();
        if rules.is_empty() {
            let mut listed: Vec<&str> = Vec::new();
            for rule in &self.exec {
                if !listed.contains(&rule.program.as_str()) {
                    listed.push(&rule.program);
                }
            }
            return Decision::Denied {
                reason: format!(
                    "program {program:?} is not listed in policy.exec.programs (programs are matched by their exact name; listed: {})",
                    listed.join(", ")
                ),
            };
        }
        let mut through_dot_dot = false;
        for rule in &rules {
            match rule.args.check(args) {
                ArgMatch::Yes => return Decision::Allowed,
                ArgMatch::OnlyThroughDotDot => through_dot_dot = true,
                ArgMatch::No => {}
            }
        }
        let accepted: Vec<String> = rules.iter().map(|r| r.args.describe(program)).collect();
        let mut reason = format!(
            "the arguments {args:?} match no entry for {program:?} in policy.exec.programs (accepted: {})",
            accepted.join("; ")
        );
        if through_dot_dot {
            reason.push_str("; a wildcard never matches a \"..\" path component");
        }
        Decision::Denied { reason }
    }

    /// Target `all`: decides `command` for each of `containers` (typically
    /// every container on the host). Containers the agent does not manage are
    /// not part of `all` and are left out silently.
    ///
    /// The caller runs the command on `allowed`. If `allowed` is empty and
    /// `denied` is not, the command fails with `not_permitted` and the first
    /// reason.
    pub fn decide_all<'a>(
        &self,
        command: &str,
        containers: impl IntoIterator<Item = &'a str>,
    ) -> AllDecision<'a> {
        let mut decision = AllDecision::default();
        for container in containers {
            if !self.manages(container) {
                continue;
            }
            match self.decide(command, container, None) {
                Decision::Allowed => decision.allowed.push(container),
                Decision::Denied { reason } => decision.denied.push((container, reason)),
                Decision::NotManaged { .. } => {}
            }
        }
        decision
    }
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decide_all_leaves_out_unmanaged_containers_for_any_command() {
        // Found by fuzz/policy_file: for an unknown command, `decide` answers
        // Denied before it looks at the container, so `decide_all` listed
        // "all" and "../x" among the denied managed containers.
        let p = Policy::default();
        let all = p.decide_all("frobnicate", ["3node0", "all", "../x"]);
        assert!(all.allowed.is_empty());
        let denied: Vec<&str> = all.denied.iter().map(|(c, _)| *c).collect();
        assert_eq!(denied, ["3node0"]);
    }

    /// A policy from the `"policy"` object alone.
    fn policy(policy: Value) -> Policy {
        Policy::from_json_value(&json!({ "policy": policy }))
            .unwrap_or_else(|e| panic!("policy should load: {e}"))
    }

    fn load_error(policy: Value) -> String {
        match Policy::from_json_value(&json!({ "policy": policy })) {
            Ok(p) => panic!("policy should not load: {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn glob_matching() {
        let table: &[(&str, &str, bool)] = &[
            // exact
            ("3node0", "3node0", true),
            ("3node0", "3node1", false),
            ("3node0", "3node01", false),
            ("3node0", "", false),
            ("", "", true),
            ("", "a", false),
            // `*` matches the empty string too
            ("3node*", "3node", true),
            ("3node*", "3node0", true),
            ("3node*", "3node12", true),
            ("3node*", "x3node0", false),
            ("*", "", true),
            ("*", "anything/at all", true),
            ("**", "x", true),
            ("*node*", "node", true),
            ("*node*", "3node0", true),
            ("*node", "3node0", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("a*b", "abab", true),
            ("a*b", "abba", false),
            // `?` is exactly one character
            ("node?", "node1", true),
            ("node?", "node", false),
            ("node?", "node12", false),
            ("node??", "node12", true),
            ("?", "é", true),
            ("?*", "", false),
            ("*?", "x", true),
            // dots are literal; no regex semantics anywhere
            ("node.1", "node.1", true),
            ("node.1", "nodeX1", false),
            ("node.*", "nodeX1", false),
            ("node.*", "node.", true),
            ("n[0-9]", "n1", false),
            ("n[0-9]", "n[0-9]", true),
            ("a+", "aa", false),
            ("^a$", "a", false),
            ("a|b", "a", false),
            ("\\*", "\\x", true),
            // backtracking: many stars stay fast and correct
            ("*a*a*a*a*a*a*b", &"a".repeat(100), false),
            ("*a*a*a*a*a*a*b", &format!("{}b", "a".repeat(100)), true),
        ];
        for (pattern, text, expected) in table {
            assert_eq!(
                glob_match(pattern, text),
                *expected,
                "glob {pattern:?} against {text:?}"
            );
        }
    }

    #[test]
    fn container_names() {
        let table: &[(&str, bool)] = &[
            ("3node0", true),
            ("node1", true),
            ("a.b_c-d", true),
            ("ab", true),
            ("a", false),
            ("", false),
            ("-node", false),
            ("_node", false),
            (".node", false),
            ("/3node0", false),
            ("node 1", false),
            ("node/1", false),
            ("3node0/../x", false),
            ("3node0\n", false),
            ("nödé", false),
        ];
        for (name, expected) in table {
            assert_eq!(is_valid_container_name(name), *expected, "{name:?}");
        }
    }

    #[test]
    fn manages() {
        let default = Policy::default();
        let custom = policy(json!({ "containers": ["validator-?", "cc3.main", "*"] }));
        let narrow = policy(json!({ "containers": ["cc3.main"] }));
        let table: &[(&Policy, &str, bool)] = &[
            (&default, "3node0", true),
            (&default, "3node12", true),
            (&default, "node1", true),
            (&default, "3node", true),
            (&default, "xnode1", false),
            (&default, "postgres", false),
            (&default, "all", false),
            // a `*` never lets through what is not a container name
            (&default, "3node0 --privileged", false),
            (&default, "node1/../../etc", false),
            (&default, "3node0\n", false),
            (&default, "", false),
            (&custom, "validator-1", true),
            (&custom, "--privileged", false),
            (&custom, "-v", false),
            (&custom, "all", false),
            (&custom, "anything", true),
            (&narrow, "cc3.main", true),
            (&narrow, "cc3xmain", false),
            (&narrow, "cc3.main2", false),
        ];
        for (policy, name, expected) in table {
            assert_eq!(policy.manages(name), *expected, "{name:?}");
        }
    }

    #[test]
    fn defaults() {
        let default = Policy::default();
        assert_eq!(default, policy(json!({})));
        assert_eq!(default, Policy::from_json_value(&json!({})).unwrap());
        assert_eq!(
            default,
            Policy::from_json_value(&json!({"server": "wss://x/agent", "other": [1, 2]})).unwrap(),
            "other top-level keys belong to someone else and are ignored"
        );
        assert_eq!(
            default.permitted_commands(),
            vec![
                "start",
                "stop",
                "restart",
                "logs",
                "status",
                "backup_keys",
                "restore_keys",
                "rotate_keys",
                "check_keys",
                "has_session_keys",
                "has_key",
                "find_validator",
            ]
        );
        assert_eq!(default.max_command_age(), Duration::from_secs(300));
        assert!(default.payout().is_none());
        assert!(default.decide("stop", "3node0", None).is_allowed());
        assert!(
            !default
                .decide("exec", "3node0", Some(&argv(&["ls"])))
                .is_allowed()
        );
        assert!(!default.decide("payout", "3node0", None).is_allowed());
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Outcome {
        Allowed,
        Denied,
        NotManaged,
    }

    #[test]
    fn decisions() {
        let p = policy(json!({
            "containers": ["3node*", "node?"],
            "allow": [
                "status",
                "logs",
                {"command": "stop", "containers": ["3node1", "3node2*"]},
                {"command": "start", "containers": ["*"]},
                {"command": "exec", "containers": ["3node0"]},
                "payout",
            ],
            "exec": {"programs": [{"program": "df"}]},
            "payout": {"script": "/opt/payout.sh"},
        }));
        use Outcome::*;
        let table: &[(&str, &str, Option<&[&str]>, Outcome)] = &[
            ("status", "3node0", None, Allowed),
            ("logs", "node1", None, Allowed),
            ("logs", "node12", None, NotManaged),
            ("logs", "postgres", None, NotManaged),
            ("stop", "3node1", None, Allowed),
            ("stop", "3node20", None, Allowed),
            ("stop", "3node0", None, Denied),
            ("stop", "3node3", None, Denied),
            ("stop", "3node2x", None, Allowed),
            ("start", "node1", None, Allowed),
            // a restricted entry cannot reach past policy.containers
            ("start", "other", None, NotManaged),
            ("restart", "3node0", None, Denied),
            ("rotate_keys", "3node0", None, Denied),
            ("exec", "3node0", Some(&["df", "-h"]), Allowed),
            ("exec", "3node1", Some(&["df", "-h"]), Denied),
            ("exec", "3node0", None, Denied),
            ("exec", "3node0", Some(&[]), Denied),
            ("payout", "3node0", None, Allowed),
            ("payout", "unmanaged", None, NotManaged),
            ("frobnicate", "3node0", None, Denied),
        ];
        for (command, container, exec_argv, expected) in table {
            let exec_argv = exec_argv.map(argv);
            let decision = p.decide(command, container, exec_argv.as_deref());
            let kind = match &decision {
                Decision::Allowed => Allowed,
                Decision::Denied { .. } => Denied,
                Decision::NotManaged { .. } => NotManaged,
            };
            assert_eq!(kind, *expected, "{command} on {container}: {decision:?}");
            assert_eq!(decision.is_allowed(), *expected == Allowed);
        }
        assert_eq!(
            p.permitted_commands(),
            vec!["start", "stop", "logs", "status", "exec", "payout"]
        );
    }

    #[test]
    fn denial_reasons_name_the_key_to_change() {
        let p = policy(json!({
            "allow": ["status", {"command": "stop", "containers": ["3node1"]}, "exec"],
            "exec": {"programs": [{"program": "ls", "args": ["-la", "/root/data/*"]}, {"program": "df"}]},
        }));
        let table: &[(&str, &str, &[&str], &str)] = &[
            (
                "exec",
                "3node0",
                &["cat", "/etc/shadow"],
                "program \"cat\" is not listed in policy.exec.programs (programs are matched by their exact name; listed: ls, df)",
            ),
            (
                "exec",
                "3node0",
                &["ls", "-la", "/root/data/../../etc"],
                "the arguments [\"-la\", \"/root/data/../../etc\"] match no entry for \"ls\" in policy.exec.programs (accepted: ls -la /root/data/*); a wildcard never matches a \"..\" path component",
            ),
            (
                "exec",
                "3node0",
                &["ls", "/"],
                "the arguments [\"/\"] match no entry for \"ls\" in policy.exec.programs (accepted: ls -la /root/data/*)",
            ),
            ("exec", "3node0", &[], "exec needs a command to run"),
            (
                "stop",
                "3node0",
                &[],
                "stop is allowed only on some containers and \"3node0\" is not one of them (policy.allow[1].containers is [\"3node1\"])",
            ),
            (
                "restart",
                "3node0",
                &[],
                "restart is not allowed by this agent's policy (add \"restart\" to policy.allow)",
            ),
            (
                "payout",
                "3node0",
                &[],
                "payout is not enabled in this agent's policy (add \"payout\" to policy.allow and set policy.payout.script)",
            ),
            (
                "status",
                "db",
                &[],
                "container \"db\" is not managed by this agent (policy.containers is [\"3node*\", \"node*\"])",
            ),
            (
                "exce",
                "3node0",
                &[],
                "\"exce\" is not a command this agent knows (known: start, stop, restart, logs, status, exec, backup_keys, restore_keys, payout, rotate_keys, check_keys, has_session_keys, has_key, find_validator)",
            ),
        ];
        for (command, container, words, expected) in table {
            let words = argv(words);
            let decision = p.decide(command, container, Some(&words));
            assert_eq!(decision.reason(), Some(*expected), "{command} {words:?}");
        }
        let default = Policy::default();
        assert_eq!(
            default
                .decide("exec", "3node0", Some(&argv(&["ls"])))
                .reason(),
            Some(
                "exec is not enabled in this agent's policy (add \"exec\" to policy.allow and list programs under policy.exec.programs)"
            )
        );
    }

    #[test]
    fn exec_argv_matching() {
        let p = policy(json!({
            "allow": ["exec"],
            "exec": {"programs": [
                {"program": "ls", "args": ["-la", "/root/data/*"]},
                {"program": "ls", "args": []},
                {"program": "df"},
                {"program": "du", "args": ["-sh", "**"]},
                {"program": "cat", "args": ["../shared/*.log"]},
                {"program": "stat", "args": ["**"]},
                {"program": "/usr/bin/uptime"},
                {"program": "echo", "args": ["a?c", "*.txt"]},
                {"program": "tail", "args": ["/var/log/??"]},
            ]},
        }));
        let table: &[(&[&str], bool)] = &[
            // exact program, glob args, same count
            (&["ls", "-la", "/root/data/chains"], true),
            (&["ls", "-la", "/root/data/"], true),
            (&["ls", "-la", "/root/data/a/b"], true),
            (&["ls"], true),
            (&["ls", "-la"], false),
            (&["ls", "-la", "/root/data/x", "/etc"], false),
            (&["ls", "-l", "/root/data/x"], false),
            (&["ls", "/root/data/x", "-la"], false),
            (&["ls", "-la", "/root/database"], false),
            // path tricks on argv[0]: matched by exact name only
            (&["/bin/ls", "-la", "/root/data/x"], false),
            (&["./ls"], false),
            (&["../bin/ls"], false),
            (&["ls "], false),
            (&["LS"], false),
            (&["/usr/bin/uptime"], true),
            (&["uptime"], false),
            (&["sh", "-c", "ls"], false),
            (&["/bin/sh", "-c", "ls"], false),
            // path tricks in args: a wildcard never stands for `..`
            (&["ls", "-la", "/root/data/../../etc/shadow"], false),
            (&["ls", "-la", "/root/data/.."], false),
            (&["ls", "-la", "/root/data/x/../.."], false),
            (&["ls", "-la", "/root/data/x/.."], false),
            (&["tail", "/var/log/ab"], true),
            (&["tail", "/var/log/.."], false),
            (&["ls", "-la", "/root/data/..hidden"], true),
            (&["ls", "-la", "/root/data/x.."], true),
            (&["ls", "-la", "/root/data/."], true),
            // a literal `..` in the pattern is the operator's own choice
            (&["cat", "../shared/node.log"], true),
            (&["cat", "../shared/../../x.log"], false),
            // no args key: anything goes (wide)
            (&["df"], true),
            (&["df", "-h", "/", "--output=source"], true),
            (&["df", "../../.."], true),
            // trailing `**`: zero or more further arguments, taken as they are
            (&["du", "-sh"], true),
            (&["du", "-sh", "/root/data"], true),
            (&["du", "-sh", "a", "b", "../c"], true),
            (&["du"], false),
            (&["du", "-h"], false),
            (&["stat"], true),
            (&["stat", "a", "b"], true),
            // `?` and literal dots in args
            (&["echo", "abc", "notes.txt"], true),
            (&["echo", "ac", "notes.txt"], false),
            (&["echo", "abc", "notes_txt"], false),
            (&["echo", "abc", ".txt"], true),
            // no shell: metacharacters are just characters
            (&["echo", "a;c", "x.txt"], true),
            (&["echo", "abc", "$(reboot).txt"], true),
            (&["rm", "-rf", "/"], false),
        ];
        for (words, expected) in table {
            let words = argv(words);
            let decision = p.decide("exec", "3node0", Some(&words));
            assert_eq!(decision.is_allowed(), *expected, "{words:?}: {decision:?}");
        }
    }

    #[test]
    fn payout_policy() {
        let p = policy(json!({
            "allow": ["payout"],
            "payout": {"script": "/opt/cc/payout.sh", "timeout_s": 120},
        }));
        let payout = p.payout().expect("payout is configured");
        assert_eq!(payout.script(), Path::new("/opt/cc/payout.sh"));
        assert_eq!(payout.timeout(), Duration::from_secs(120));
        assert_eq!(p.permitted_commands(), vec!["payout"]);

        let p = policy(json!({"allow": ["payout"], "payout": {"script": "/p"}}));
        assert_eq!(p.payout().unwrap().timeout(), Duration::from_secs(600));
        let p = policy(json!({"payout": {"script": "/p", "timeout_s": 3600}}));
        assert!(p.payout().is_none(), "configured but not allowed");
        assert!(!p.decide("payout", "3node0", None).is_allowed());
    }

    #[test]
    fn command_age() {
        let p = Policy::default();
        let strict = policy(json!({"max_command_age_s": 5}));
        let now = 1_736_300_000_000;
        let table: &[(&Policy, i64, i64, bool)] = &[
            (&p, now, now, false),
            (&p, now - 300_000, now, false),
            (&p, now - 300_001, now, true),
            (&p, now - 86_400_000, now, true),
            (&p, now + 60_000, now, false),
            (&p, now + 60_001, now, true),
            (&p, 0, now, true),
            (&p, i64::MIN, now, true),
            (&p, i64::MAX, now, true),
            (&p, i64::MIN, i64::MAX, true),
            (&p, i64::MAX, i64::MIN, true),
            (&strict, now - 5_000, now, false),
            (&strict, now - 5_001, now, true),
        ];
        for (policy, ts, now, expected) in table {
            assert_eq!(
                policy.command_too_old(*ts, *now),
                *expected,
                "ts {ts} now {now}"
            );
        }
        assert_eq!(
            p.command_time_problem(now - 412_000, now).as_deref(),
            Some(
                "the command is 412 s old and this agent refuses commands older than 300 s (policy.max_command_age_s); it was not run"
            )
        );
        assert_eq!(
            p.command_time_problem(now + 120_000, now).as_deref(),
            Some(
                "the command's timestamp is 120 s ahead of this agent's clock (at most 60 s is accepted); check both clocks; it was not run"
            )
        );
    }

    #[test]
    fn target_all() {
        let p = policy(json!({
            "allow": ["status", {"command": "stop", "containers": ["3node1"]}],
        }));
        let host = ["3node0", "3node1", "postgres", "node2"];
        let status = p.decide_all("status", host);
        assert_eq!(status.allowed, vec!["3node0", "3node1", "node2"]);
        assert!(status.denied.is_empty());
        let stop = p.decide_all("stop", host);
        assert_eq!(stop.allowed, vec!["3node1"]);
        assert_eq!(
            stop.denied.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            vec!["3node0", "node2"]
        );
        let start = p.decide_all("start", host);
        assert!(start.allowed.is_empty());
        assert_eq!(start.denied.len(), 3);
        assert_eq!(
            start.denied[0].1,
            "start is not allowed by this agent's policy (add \"start\" to policy.allow)"
        );
        assert_eq!(p.decide_all("status", []), AllDecision::default());
        assert!(matches!(
            p.decide("status", "all", None),
            Decision::NotManaged { .. }
        ));
    }

    #[test]
    fn load_errors() {
        let known = "known: start, stop, restart, logs, status, exec, backup_keys, restore_keys, payout, rotate_keys, check_keys, has_session_keys, has_key, find_validator";
        let table: Vec<(Value, String)> = vec![
            // unknown keys, at every level
            (
                json!({"alow": ["stop"]}),
                "policy: unknown key \"alow\" (known: containers, allow, exec, payout, max_command_age_s)".into(),
            ),
            (
                json!({"allow": [{"command": "stop", "containers": ["3node1"], "except": []}]}),
                "policy.allow[0]: unknown key \"except\" (known: command, containers)".into(),
            ),
            (
                json!({"exec": {"programs": [], "shell": true}}),
                "policy.exec: unknown key \"shell\" (known: programs)".into(),
            ),
            (
                json!({"exec": {"programs": [{"program": "ls"}, {"program": "ls", "arg": []}]}}),
                "policy.exec.programs[1]: unknown key \"arg\" (known: program, args)".into(),
            ),
            (
                json!({"payout": {"script": "/p", "timeout": 5}}),
                "policy.payout: unknown key \"timeout\" (known: script, timeout_s)".into(),
            ),
            // wrong types
            (json!([]), "policy: expected an object, found an array".into()),
            (json!(null), "policy: expected an object, found null".into()),
            (
                json!({"containers": "3node*"}),
                "policy.containers: expected an array, found a string".into(),
            ),
            (
                json!({"containers": ["3node*", 7]}),
                "policy.containers[1]: expected a string, found a number".into(),
            ),
            (
                json!({"allow": ["stop", 3]}),
                "policy.allow[1]: expected a command name or an object {\"command\", \"containers\"}, found a number".into(),
            ),
            (
                json!({"allow": [{"command": ["stop"], "containers": []}]}),
                "policy.allow[0].command: expected a string, found an array".into(),
            ),
            (
                json!({"allow": [{"command": "stop"}]}),
                "policy.allow[0]: missing key \"containers\"".into(),
            ),
            (
                json!({"allow": [{"containers": ["x*"]}]}),
                "policy.allow[0]: missing key \"command\"".into(),
            ),
            (
                json!({"exec": {"programs": [{"args": []}]}}),
                "policy.exec.programs[0]: missing key \"program\"".into(),
            ),
            (
                json!({"exec": {"programs": [{"program": "ls", "args": "-la"}]}}),
                "policy.exec.programs[0].args: expected an array, found a string".into(),
            ),
            (
                json!({"exec": {"programs": {"program": "ls"}}}),
                "policy.exec.programs: expected an array, found an object".into(),
            ),
            (
                json!({"exec": ["ls"]}),
                "policy.exec: expected an object, found an array".into(),
            ),
            (
                json!({"payout": "/p.sh"}),
                "policy.payout: expected an object, found a string".into(),
            ),
            (
                json!({"payout": {"timeout_s": 5}}),
                "policy.payout: missing key \"script\"".into(),
            ),
            (
                json!({"max_command_age_s": "300"}),
                "policy.max_command_age_s: expected a whole number of seconds, found a string".into(),
            ),
            (
                json!({"max_command_age_s": 1.5}),
                "policy.max_command_age_s: expected a whole number of seconds, found 1.5".into(),
            ),
            (
                json!({"max_command_age_s": -1}),
                "policy.max_command_age_s: expected a whole number of seconds, found -1".into(),
            ),
            (
                json!({"payout": {"script": "/p", "timeout_s": true}}),
                "policy.payout.timeout_s: expected a whole number of seconds, found a boolean".into(),
            ),
            // meanings
            (
                json!({"allow": ["stop", "start", "exce"]}),
                format!("policy.allow[2]: unknown command \"exce\" ({known})"),
            ),
            (
                json!({"allow": [{"command": "Stop", "containers": ["x*"]}]}),
                format!("policy.allow[0].command: unknown command \"Stop\" ({known})"),
            ),
            (
                json!({"allow": ["stop", {"command": "stop", "containers": ["3node1"]}]}),
                "policy.allow[1]: \"stop\" is already listed at policy.allow[0]; give each command one entry".into(),
            ),
            (
                json!({"allow": [{"command": "stop", "containers": []}]}),
                "policy.allow[0].containers: lists no containers; to forbid \"stop\" everywhere, remove this entry".into(),
            ),
            (
                json!({"allow": [{"command": "stop", "containers": ["3node[12]"]}]}),
                "policy.allow[0].containers[0]: \"3node[12]\" is not a valid container name pattern: '[' is not allowed (allowed: A-Z a-z 0-9 _ . - and the wildcards * ?)".into(),
            ),
            (
                json!({"containers": ["3node*", "node/1"]}),
                "policy.containers[1]: \"node/1\" is not a valid container name pattern: '/' is not allowed (allowed: A-Z a-z 0-9 _ . - and the wildcards * ?)".into(),
            ),
            (
                json!({"containers": ["node 1"]}),
                "policy.containers[0]: \"node 1\" is not a valid container name pattern: ' ' is not allowed (allowed: A-Z a-z 0-9 _ . - and the wildcards * ?)".into(),
            ),
            (
                json!({"containers": ["node.+"]}),
                "policy.containers[0]: \"node.+\" is not a valid container name pattern: '+' is not allowed (allowed: A-Z a-z 0-9 _ . - and the wildcards * ?)".into(),
            ),
            (
                json!({"containers": [""]}),
                "policy.containers[0]: empty container pattern (it would match no container)".into(),
            ),
            (
                json!({"containers": ["all"]}),
                "policy.containers[0]: \"all\" is the protocol's word for every managed container and cannot be a container name here; use \"*\" to match every container".into(),
            ),
            (
                json!({"containers": []}),
                "policy.containers: lists no containers, so the agent would manage nothing; list names or patterns such as \"3node*\", or leave the key out for the default [\"3node*\", \"node*\"]".into(),
            ),
            (
                json!({"allow": ["exec"]}),
                "policy.exec: exec is allowed but no programs are listed (list them under policy.exec.programs, or remove \"exec\" from policy.allow)".into(),
            ),
            (
                json!({"allow": ["exec"], "exec": {}}),
                "policy.exec: exec is allowed but no programs are listed (list them under policy.exec.programs, or remove \"exec\" from policy.allow)".into(),
            ),
            (
                json!({"allow": [{"command": "exec", "containers": ["3node0"]}], "exec": {"programs": []}}),
                "policy.exec: exec is allowed but no programs are listed (list them under policy.exec.programs, or remove \"exec\" from policy.allow)".into(),
            ),
            (
                json!({"exec": {"programs": [{"program": "ls -la"}]}}),
                "policy.exec.programs[0].program: \"ls -la\" contains whitespace; give the program alone and put its arguments in \"args\"".into(),
            ),
            (
                json!({"exec": {"programs": [{"program": ""}]}}),
                "policy.exec.programs[0].program: empty program name".into(),
            ),
            (
                json!({"exec": {"programs": [{"program": "l*"}]}}),
                "policy.exec.programs[0].program: \"l*\" contains a wildcard; programs are matched by exact name".into(),
            ),
            (
                json!({"exec": {"programs": [{"program": "du", "args": ["**", "-sh"]}]}}),
                "policy.exec.programs[0].args[0]: \"**\" (any further arguments) may only be the last entry of args".into(),
            ),
            (
                json!({"allow": ["payout"]}),
                "policy.payout: payout is allowed but no script is configured (set policy.payout.script, or remove \"payout\" from policy.allow)".into(),
            ),
            (
                json!({"payout": {"script": "payout.sh"}}),
                "policy.payout.script: \"payout.sh\" is not an absolute path; give the script's full path".into(),
            ),
            (
                json!({"payout": {"script": "/p", "timeout_s": 3601}}),
                "policy.payout.timeout_s: 3601 is out of range (1 to 3600 seconds)".into(),
            ),
            (
                json!({"payout": {"script": "/p", "timeout_s": 0}}),
                "policy.payout.timeout_s: 0 is out of range (1 to 3600 seconds)".into(),
            ),
            (
                json!({"max_command_age_s": 0}),
                "policy.max_command_age_s: 0 is out of range (1 to 3600 seconds)".into(),
            ),
            (
                json!({"max_command_age_s": 86400}),
                "policy.max_command_age_s: 86400 is out of range (1 to 3600 seconds)".into(),
            ),
        ];
        for (policy, expected) in table {
            assert_eq!(load_error(policy.clone()), expected, "{policy}");
        }
        let top = Policy::from_json_value(&json!(["policy"])).unwrap_err();
        assert_eq!(
            top.to_string(),
            "(top level): the config file must be a JSON object, found an array"
        );
    }

    #[test]
    fn accepted_edge_cases() {
        // exec configured but not allowed: kept, harmless, denied with a reason
        let p = policy(json!({"exec": {"programs": [{"program": "ls"}]}}));
        assert!(
            !p.decide("exec", "3node0", Some(&argv(&["ls"])))
                .is_allowed()
        );
        // an empty allow list is a read-only agent
        let p = policy(json!({"allow": []}));
        assert!(p.permitted_commands().is_empty());
        assert!(!p.decide("status", "3node0", None).is_allowed());
        // the same program may be listed with several argument shapes
        let p = policy(json!({
            "allow": ["exec"],
            "exec": {"programs": [{"program": "ls", "args": ["-l"]}, {"program": "ls", "args": ["-a"]}]},
        }));
        assert!(
            p.decide("exec", "3node0", Some(&argv(&["ls", "-a"])))
                .is_allowed()
        );
    }

    #[test]
    fn policy_config_deserializes_inside_a_larger_config() {
        #[derive(Deserialize)]
        struct AgentConfig {
            #[serde(default)]
            policy: PolicyConfig,
            #[allow(dead_code)]
            data_dir: String,
        }
        let config: AgentConfig = serde_json::from_str(
            r#"{"data_dir": "/var/lib/warden", "policy": {"allow": ["status"], "max_command_age_s": 60}}"#,
        )
        .unwrap();
        assert_eq!(
            config.policy.allow,
            Some(vec![AllowEntryConfig::Command("status".into())])
        );
        let p = Policy::from_config(&config.policy).unwrap();
        assert_eq!(p.permitted_commands(), vec!["status"]);

        let config: AgentConfig = serde_json::from_str(r#"{"data_dir": "/x"}"#).unwrap();
        assert_eq!(
            Policy::from_config(&config.policy).unwrap(),
            Policy::default()
        );

        let error = serde_json::from_str::<AgentConfig>(
            r#"{"data_dir": "/x", "policy": {"exec": {"programs": [{"program": "ls", "arg": []}]}}}"#,
        )
        .err()
        .unwrap();
        assert!(
            error
                .to_string()
                .starts_with("policy.exec.programs[0]: unknown key \"arg\" (known: program, args)"),
            "{error}"
        );
    }

    #[test]
    fn load_reads_the_file() {
        let dir = std::env::temp_dir().join(format!("warden-policy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json");
        std::fs::write(&good, r#"{"policy": {"allow": ["status"]}, "server": "x"}"#).unwrap();
        assert_eq!(
            Policy::load(&good).unwrap().permitted_commands(),
            vec!["status"]
        );

        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"{"policy": {"allow": ["exce"]}}"#).unwrap();
        let error = Policy::load(&bad).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "{}: policy.allow[0]: unknown command \"exce\"",
                bad.display()
            )),
            "{error}"
        );

        let broken = dir.join("broken.json");
        std::fs::write(&broken, r#"{"policy": "#).unwrap();
        let error = Policy::load(&broken).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "config file {} is not valid JSON: ",
                broken.display()
            )),
            "{error}"
        );

        let missing = dir.join("missing.json");
        let error = Policy::load(&missing).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("cannot read config file {}: ", missing.display())),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The example in docs/policy.md must load and mean what the doc says.
    #[test]
    fn documented_example() {
        let doc = include_str!("../docs/policy.md");
        let start = doc
            .find("```json\n")
            .expect("docs/policy.md has a json block")
            + 8;
        let end = start + doc[start..].find("```").unwrap();
        let config: Value = serde_json::from_str(&doc[start..end]).unwrap();
        let p = Policy::from_json_value(&config).unwrap();
        assert_eq!(
            p.permitted_commands(),
            vec![
                "start",
                "stop",
                "restart",
                "logs",
                "status",
                "exec",
                "backup_keys",
                "payout",
                "rotate_keys",
                "check_keys",
                "has_session_keys",
                "has_key",
                "find_validator",
            ]
        );
        assert!(p.manages("3node0") && p.manages("3node12") && !p.manages("node1"));
        assert!(p.decide("stop", "3node1", None).is_allowed());
        assert!(!p.decide("stop", "3node0", None).is_allowed());
        assert!(
            p.decide("exec", "3node0", Some(&argv(&["df", "-h"])))
                .is_allowed()
        );
        assert!(
            p.decide(
                "exec",
                "3node0",
                Some(&argv(&["ls", "-la", "/root/data/chains"]))
            )
            .is_allowed()
        );
        assert!(
            !p.decide(
                "exec",
                "3node0",
                Some(&argv(&["ls", "-la", "/root/data/../.."]))
            )
            .is_allowed()
        );
        assert!(
            p.decide(
                "exec",
                "3node0",
                Some(&argv(&["du", "-sh", "/root/data", "/tmp"]))
            )
            .is_allowed()
        );
        assert_eq!(p.payout().unwrap().timeout(), Duration::from_secs(900));
        assert_eq!(p.max_command_age(), Duration::from_secs(120));
    }
}
