//! Log lines on stdout in a real node's shape.
//!
//! sc-cli's default logger prints `YYYY-MM-DD HH:MM:SS <message>` for the `info` level
//! (sc-tracing `logging/event_format.rs`: time, then the message; the level and target are
//! only shown at debug level or with `--detailed-log-output`). Recent polkadot-sdk builds end
//! every line with four spaces, visible in any `docker logs` of a node; they are kept so that
//! whoever parses these lines must trim, as they would for a real node.
//!
//! Every line is flushed at once: with stdout not a terminal, Rust would otherwise keep lines
//! in a buffer and `docker logs` would show nothing until it fills.

use std::io::Write;

use crate::clock;

/// What a real node puts after every message.
const TRAILER: &str = "    ";

/// The full line for `message` logged at `unix_secs`, without the newline.
pub fn format_line(unix_secs: u64, message: &str) -> String {
    format!("{} {message}{TRAILER}", clock::format_utc(unix_secs))
}

/// Prints one info line now.
pub fn info(message: &str) {
    let line = format_line(clock::now_unix_ms() / 1000, message);
    let mut out = std::io::stdout().lock();
    // A closed stdout (the log reader went away) must not take the node down.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints one warning line now; a real node shows `WARN` before warnings.
pub fn warn(message: &str) {
    info(&format!("WARN {message}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_timestamp_message_and_trailer() {
        assert_eq!(
            format_line(1_591_193_661, "👤 Role: AUTHORITY"),
            "2020-06-03 14:14:21 👤 Role: AUTHORITY    "
        );
    }
}
