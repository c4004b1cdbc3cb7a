//! Exec argument rules: what one entry of `policy.exec.programs` accepts.

use super::PolicyError;
use super::config::ExecProgramConfig;
use super::glob::Glob;

/// What `exec` may run: one entry of `policy.exec.programs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ExecRule {
    pub(super) program: String,
    pub(super) args: ArgRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ArgRule {
    /// `unsafe_any_args` without an `args` key: any arguments at all.
    Any,
    /// One glob per argument; with `rest`, the list ended in `"**"` and any
    /// further arguments (none included) are accepted as they are.
    Patterns { each: Vec<Glob>, rest: bool },
}

/// How one argv compared with one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArgMatch {
    Yes,
    No,
    /// The globs matched, but only by letting a wildcard stand for a `..`
    /// path component.
    OnlyThroughDotDot,
}

/// The `**` that ends an argument list: any further arguments.
pub(super) const REST_OF_ARGS: &str = "**";

impl ArgRule {
    pub(super) fn check(&self, args: &[String]) -> ArgMatch {
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

    pub(super) fn describe(&self, program: &str) -> String {
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
pub(super) fn count_dot_dot(path: &str) -> usize {
    path.split('/')
        .filter(|component| *component == "..")
        .count()
}

pub(super) fn parse_exec_rule(
    entry: &ExecProgramConfig,
    path: &str,
) -> Result<ExecRule, PolicyError> {
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
    if !entry.unsafe_any_args {
        // Fixed argv: every argument written out, none a pattern. GNU tools
        // read files named in options (`du --files0-from=F` prints what it
        // read in its error message), so a wildcard lets the server read
        // any file the program can, keystore seeds included.
        let fixed = entry.args.clone().unwrap_or_default();
        if let Some((index, word)) = fixed
            .iter()
            .enumerate()
            .find(|(_, word)| word.contains(['*', '?']))
        {
            return Err(PolicyError::invalid(
                &format!("{path}.args[{index}]"),
                format!(
                    "{word:?} is a pattern; an exec entry accepts only its fixed arguments unless it says \"unsafe_any_args\": true (read docs/policy.md first: options such as --files0-from make a program read any file)"
                ),
            ));
        }
        return Ok(ExecRule {
            program: program.to_string(),
            args: ArgRule::Patterns {
                each: fixed.iter().map(|word| Glob::new(word)).collect(),
                rest: false,
            },
        });
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
