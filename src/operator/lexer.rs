//! Words, quoted like a POSIX shell (see docs/operator-language.md).
use super::error::ParseErrorKind;

/// One word of a line, quotes removed.
#[derive(Debug)]
pub(super) struct Word {
    pub(super) text: String,
    /// Byte offset in `text` of the first `=` that was not quoted or escaped.
    pub(super) equals: Option<usize>,
    /// Whether any quote or backslash appeared before that `=`.
    pub(super) quoted_before_equals: bool,
    /// Whether any quote or backslash appeared in the word.
    pub(super) quoted: bool,
}

impl Word {
    /// `(key, value)` if the word is a param: an unquoted `=` after an
    /// unquoted key.
    pub(super) fn as_param(&self) -> Option<(&str, &str)> {
        let equals = self.equals.filter(|_| !self.quoted_before_equals)?;
        Some((&self.text[..equals], &self.text[equals + 1..]))
    }
}

/// Splits a line into words on demand, so that `exec` can take the rest of the
/// line raw instead of as words.
pub(super) struct Lexer<'a> {
    pub(super) line: &'a str,
    pub(super) pos: usize,
}

pub(super) fn is_blank(c: char) -> bool {
    c.is_ascii_whitespace()
}

impl<'a> Lexer<'a> {
    /// The unread part of the line, without surrounding blanks.
    pub(super) fn rest(&self) -> &'a str {
        self.line[self.pos..].trim_matches(is_blank)
    }

    pub(super) fn next_word(&mut self) -> Result<Option<Word>, ParseErrorKind> {
        let rest = &self.line[self.pos..];
        let Some(start) = rest.find(|c| !is_blank(c)) else {
            self.pos = self.line.len();
            return Ok(None);
        };
        let mut word = Word {
            text: String::new(),
            equals: None,
            quoted_before_equals: false,
            quoted: false,
        };
        let mut end = rest.len();
        let mut chars = rest[start..].char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                c if is_blank(c) => {
                    end = start + offset;
                    break;
                }
                '\'' => {
                    word.quoted = true;
                    loop {
                        match chars.next() {
                            None => return Err(ParseErrorKind::UnterminatedQuote { quote: '\'' }),
                            Some((_, '\'')) => break,
                            Some((_, c)) => word.text.push(c),
                        }
                    }
                }
                '"' => {
                    word.quoted = true;
                    loop {
                        match chars.next() {
                            None => return Err(ParseErrorKind::UnterminatedQuote { quote: '"' }),
                            Some((_, '"')) => break,
                            Some((_, '\\')) => match chars.next() {
                                None => {
                                    return Err(ParseErrorKind::UnterminatedQuote { quote: '"' });
                                }
                                Some((_, c @ ('"' | '\\' | '$' | '`'))) => word.text.push(c),
                                Some((_, c)) => {
                                    word.text.push('\\');
                                    word.text.push(c);
                                }
                            },
                            Some((_, c)) => word.text.push(c),
                        }
                    }
                }
                '\\' => {
                    word.quoted = true;
                    match chars.next() {
                        None => return Err(ParseErrorKind::TrailingBackslash),
                        Some((_, c)) => word.text.push(c),
                    }
                }
                '=' if word.equals.is_none() => {
                    word.equals = Some(word.text.len());
                    word.quoted_before_equals = word.quoted;
                    word.text.push('=');
                }
                c => word.text.push(c),
            }
        }
        self.pos += end;
        Ok(Some(word))
    }
}
