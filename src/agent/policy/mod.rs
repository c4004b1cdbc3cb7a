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

//!
//! Files: `config.rs` reads the file's JSON into [`PolicyConfig`] (shape
//! only, every error with its JSON path); `glob.rs` is the pattern matcher;
//! `exec.rs` holds the exec argument rules; this file makes the decisions.

mod config;
#[cfg(test)]
mod config_tests;
mod exec;
mod glob;
mod signers;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::commands::CommandName;
use serde_json::Value;

use config::describe;
pub use config::{
    AllowEntryConfig, ExecConfig, ExecProgramConfig, PayoutConfig, PolicyConfig, PolicyError,
};
use exec::{ArgMatch, ExecRule, parse_exec_rule};
use glob::{Glob, list_patterns, parse_container_pattern};

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
const DEFAULT_DENIED: [&str; 5] = ["start", "exec", "restore_keys", "payout", "rotate_keys"];

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
    signers: signers::Signers,
}

/// Where `command` sits in [`KNOWN_COMMANDS`] (the same order as
/// [`CommandName::ALL`]).
fn command_position(command: CommandName) -> usize {
    CommandName::ALL
        .iter()
        .position(|known| *known == command)
        .unwrap_or_default()
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

        let signers = signers::parse_signers(config)?;

        Ok(Policy {
            containers,
            allowed,
            exec,
            payout,
            max_command_age_s,
            signers,
        })
    }

    /// Whether this agent manages the container: its name is a valid Docker
    /// container name, is not `"all"`, and matches one of `policy.containers`.
    pub fn manages(&self, container: &str) -> bool {
        container != ALL_TARGET
            && crate::docker::validate_container_name(container).is_ok()
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

    /// How many trusted operators must sign `command` (0: none).
    pub fn required_signatures(&self, command: CommandName) -> usize {
        self.signers.required_at(command_position(command))
    }

    /// The operator keys this agent trusts (`policy.operators`).
    pub fn operators(&self) -> &crate::operator_keys::Requirement {
        self.signers.requirement()
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
    pub fn decide(
        &self,
        command: CommandName,
        container: &str,
        exec_argv: Option<&[String]>,
    ) -> Decision {
        let index = command_position(command);
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
                    CommandName::Exec => "exec is not enabled in this agent's policy (add \"exec\" to policy.allow and list programs under policy.exec.programs)".to_string(),
                    CommandName::Payout => "payout is not enabled in this agent's policy (add \"payout\" to policy.allow and set policy.payout.script)".to_string(),
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
        if command == CommandName::Exec {
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
        command: CommandName,
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
