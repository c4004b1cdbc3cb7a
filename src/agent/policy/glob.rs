//! Glob patterns over whole strings, and container-name patterns.

use super::{ALL_TARGET, PolicyError};

/// A glob over whole strings: `*` matches any run of characters (also none,
/// also `/`), `?` matches exactly one character, every other character
/// matches itself. No character classes, no escapes, no regex: `.` is a dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Glob {
    pub(super) pattern: String,
}

impl Glob {
    pub(super) fn new(pattern: &str) -> Glob {
        Glob {
            pattern: pattern.to_string(),
        }
    }

    pub(super) fn matches(&self, text: &str) -> bool {
        glob_match(&self.pattern, text)
    }
}

/// The one glob engine (`*` and `?` only), shared with agent targeting.
pub(super) use crate::glob::glob_match;

pub(super) fn parse_container_pattern(pattern: &str, path: &str) -> Result<Glob, PolicyError> {
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

pub(super) fn list_patterns(patterns: &[Glob]) -> String {
    let quoted: Vec<String> = patterns
        .iter()
        .map(|g| format!("{:?}", g.pattern))
        .collect();
    format!("[{}]", quoted.join(", "))
}
