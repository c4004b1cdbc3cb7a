//! Why an operator line could not be parsed, with the wire code it maps to
//! and the usage line to type instead.
use std::fmt;

use super::{MAX_LINE_BYTES, write_all_not_allowed};
use crate::commands::{CommandName, ParamError, UnknownCommand};
use crate::protocol::ErrorCode;

/// A line that cannot be parsed: what is wrong, and the usage line to follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    kind: ParseErrorKind,
    usage: Option<String>,
}

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    LineTooLong {
        bytes: usize,
    },
    UnterminatedQuote {
        quote: char,
    },
    TrailingBackslash,
    /// The first word is no verb of the language.
    UnknownVerb {
        verb: String,
    },
    /// `send`/`broadcast` name a command outside the catalog.
    UnknownCommand(UnknownCommand),
    /// A verb's argument is absent (`what`: "the agent id", …).
    MissingArgument {
        what: &'static str,
    },
    /// A verb's argument is the empty string (`""`).
    EmptyArgument {
        what: &'static str,
    },
    /// A verb got more words than it takes.
    UnexpectedArgument {
        word: String,
    },
    /// A word with `=` whose key is not a param name.
    BadParamName {
        word: String,
    },
    DuplicateParam {
        key: String,
    },
    /// `key=…` and `key.entry=…` both given.
    MixedMapParam {
        key: String,
    },
    /// A positional word after the target (and shorthand) of a request.
    UnexpectedWord {
        command: CommandName,
        word: String,
    },
    AllNotAllowed {
        command: CommandName,
    },
    InvalidParams(ParamError),
    /// A bad `force=`, `reason=` or `batch=` word (see [`Controls`]).
    BadControl {
        detail: String,
    },
}

impl ParseError {
    pub(super) fn new(kind: ParseErrorKind, usage: Option<String>) -> Self {
        ParseError { kind, usage }
    }

    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// The usage line of the verb or command the error is about, if any.
    pub fn usage(&self) -> Option<&str> {
        self.usage.as_deref()
    }

    /// The wire error code this maps to.
    pub fn code(&self) -> ErrorCode {
        match &self.kind {
            ParseErrorKind::LineTooLong { .. }
            | ParseErrorKind::UnterminatedQuote { .. }
            | ParseErrorKind::TrailingBackslash
            | ParseErrorKind::MissingArgument { .. }
            | ParseErrorKind::EmptyArgument { .. }
            | ParseErrorKind::UnexpectedArgument { .. } => ErrorCode::BadRequest,
            ParseErrorKind::UnknownVerb { .. } | ParseErrorKind::UnknownCommand(_) => {
                ErrorCode::UnknownCommand
            }
            ParseErrorKind::BadParamName { .. }
            | ParseErrorKind::DuplicateParam { .. }
            | ParseErrorKind::MixedMapParam { .. }
            | ParseErrorKind::UnexpectedWord { .. }
            | ParseErrorKind::AllNotAllowed { .. }
            | ParseErrorKind::BadControl { .. }
            | ParseErrorKind::InvalidParams(_) => ErrorCode::InvalidParams,
        }
    }
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseErrorKind::LineTooLong { bytes } => write!(
                f,
                "the line is {bytes} bytes long, more than the {MAX_LINE_BYTES} allowed"
            ),
            ParseErrorKind::UnterminatedQuote { quote } => {
                write!(f, "a {quote} quote is never closed")
            }
            ParseErrorKind::TrailingBackslash => {
                f.write_str("the line ends with a backslash that escapes nothing")
            }
            ParseErrorKind::UnknownVerb { verb } => {
                write!(
                    f,
                    "{verb:?} is not an operator command; type help to list them"
                )
            }
            ParseErrorKind::UnknownCommand(err) => err.fmt(f),
            ParseErrorKind::MissingArgument { what } => write!(f, "{what} is missing"),
            ParseErrorKind::EmptyArgument { what } => write!(f, "{what} must not be empty"),
            ParseErrorKind::UnexpectedArgument { word } => write!(f, "unexpected word {word:?}"),
            ParseErrorKind::BadParamName { word } => write!(
                f,
                "{word:?} is not a param; write key=value, or key.entry=value for a map"
            ),
            ParseErrorKind::DuplicateParam { key } => write!(f, "{key} is given twice"),
            ParseErrorKind::BadControl { detail } => f.write_str(detail),
            ParseErrorKind::MixedMapParam { key } => write!(
                f,
                "{key} is given both as one value and as a map ({key}.entry=value)"
            ),
            ParseErrorKind::UnexpectedWord { command, word } => write!(
                f,
                "unexpected word {word:?}: {command} takes one target, and params are written key=value"
            ),
            ParseErrorKind::AllNotAllowed { command } => write_all_not_allowed(f, *command),
            ParseErrorKind::InvalidParams(err) => err.fmt(f),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)?;
        if let Some(usage) = &self.usage {
            write!(f, "; usage: {usage}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}
