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

/// Iterative matching with one backtrack point: on a mismatch, the most
/// recent `*` absorbs one more character. Earlier stars never need to be
/// revisited, so this is O(pattern × text) at worst, with no exponential
/// blow-up on patterns like `*a*a*a*b`.
pub(super) fn glob_match(pattern: &str, text: &str) -> bool {
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
