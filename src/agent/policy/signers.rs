//! `policy.operators` and `policy.require_signatures`: whose Ed25519 keys
//! this agent trusts, and how many of them must sign each command (k of n).
//! The signatures themselves are checked in `agent/runner.rs` with
//! `operator_keys`.

use super::{KNOWN_COMMANDS, PolicyConfig, PolicyError, command_index};
use crate::operator_keys::{Requirement, parse_hex};

/// Longest operator name: it is shown in messages and the audit log.
const MAX_OPERATOR_NAME: usize = 64;
/// Most operators one agent trusts.
const MAX_OPERATORS: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signers {
    requirement: Requirement,
    /// Indexed like [`KNOWN_COMMANDS`]; 0 = no signature needed.
    required: [usize; KNOWN_COMMANDS.len()],
}

impl Signers {
    pub fn requirement(&self) -> &Requirement {
        &self.requirement
    }

    pub(super) fn required_at(&self, index: usize) -> usize {
        self.required[index]
    }
}

pub(super) fn parse_signers(config: &PolicyConfig) -> Result<Signers, PolicyError> {
    let mut signers = Signers::default();
    let operators = config.operators.as_deref().unwrap_or_default();
    if operators.len() > MAX_OPERATORS {
        return Err(PolicyError::invalid(
            "policy.operators",
            format!(
                "lists {} operators; at most {MAX_OPERATORS}",
                operators.len()
            ),
        ));
    }
    for (name, key) in operators {
        let path = format!("policy.operators.{name}");
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@');
        if name.is_empty() || name.len() > MAX_OPERATOR_NAME || !name.chars().all(plain) {
            return Err(PolicyError::invalid(
                &path,
                format!(
                    "{name:?} is not an operator name (1 to {MAX_OPERATOR_NAME} of A-Z a-z 0-9 _ . - @)"
                ),
            ));
        }
        let Some(bytes) = parse_hex(key, 32) else {
            return Err(PolicyError::invalid(
                &path,
                "expected an Ed25519 public key, 0x followed by 64 hex digits (as `warden operator-key new` prints it)",
            ));
        };
        if let Some((other, _)) = signers
            .requirement
            .operators
            .iter()
            .find(|(_, k)| *k == bytes)
        {
            return Err(PolicyError::invalid(
                &path,
                format!("the same key as policy.operators.{other}: one key counts as one operator"),
            ));
        }
        signers.requirement.operators.push((name.clone(), bytes));
    }
    let n = signers.requirement.operators.len();
    for (command, count) in config.require_signatures.as_deref().unwrap_or_default() {
        let path = format!("policy.require_signatures.{command}");
        let Some(index) = command_index(command) else {
            return Err(PolicyError::invalid(
                &path,
                format!(
                    "unknown command {command:?} (known: {})",
                    KNOWN_COMMANDS.join(", ")
                ),
            ));
        };
        let count = usize::try_from(*count).unwrap_or(usize::MAX);
        if count == 0 || count > n {
            return Err(PolicyError::invalid(
                &path,
                format!(
                    "{count} signatures cannot be met by the {n} operator(s) in policy.operators (1 to {n})"
                ),
            ));
        }
        signers.required[index] = count;
    }
    Ok(signers)
}
