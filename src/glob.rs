//! Glob patterns over whole strings: `*` matches any run of characters
//! (also none), `?` exactly one, every other character itself. No classes,
//! no escapes. Used for agent targeting (`send 'val-*' …`).

/// Iterative matching with one backtrack point: on a mismatch, the most
/// recent `*` absorbs one more character. Earlier stars never need to be
/// revisited, so this is O(pattern × text) at worst, with no exponential
/// blow-up on patterns like `*a*a*a*b`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
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

/// Whether `word` is a pattern rather than a plain name.
pub fn is_pattern(word: &str) -> bool {
    word.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_whole_strings() {
        for (pattern, text, expected) in [
            ("val-*", "val-1", true),
            ("val-*", "val-", true),
            ("val-*", "xval-1", false),
            ("val-?", "val-12", false),
            ("*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaac", false),
            ("*", "", true),
            ("a.b", "axb", false),
        ] {
            assert_eq!(glob_match(pattern, text), expected, "{pattern} ~ {text}");
        }
    }
}
