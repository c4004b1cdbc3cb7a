//! Who an agent is, in terms both sides share: its id's rule and its bearer
//! token (a secret: never shown). The server's registry (`server/tokens.rs`)
//! and the agent's config (`agent/config.rs`) both build on this, so the
//! agent needs nothing from the server.
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use std::io;

/// What [`is_valid_agent_id`] accepts, for error messages.
pub const AGENT_ID_RULE: &str =
    "use 1 to 64 characters from A-Z a-z 0-9 . _ - (starting with a letter or digit)";

/// Agent ids travel in commands, file names and log lines: 1 to 64
/// characters of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
pub fn is_valid_agent_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// A bearer token. Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(secret: String) -> Token {
        Token(secret)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// 256 random bits, as 64 hex digits.
    pub fn generate() -> io::Result<Token> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| io::Error::other("the system random generator failed"))?;
        Ok(Token(hex::encode(bytes)))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
