//! The operator's console: stdout (one writer at a time, escapes made
//! harmless) and the stdin reader (bounded lines into the hub).
use super::HubEvent;
use std::borrow::Cow;
use std::io::{self, BufRead, Write};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::thread;

/// Operator-facing output: stdout, one writer at a time.
#[derive(Clone)]
pub struct Out {
    stdout: Arc<Mutex<io::Stdout>>,
}

impl Out {
    pub fn new() -> Out {
        Out {
            stdout: Arc::new(Mutex::new(io::stdout())),
        }
    }

    /// Print `text` (warden's own words, which may embed agents' text made
    /// [`printable`] first) and a newline.
    pub fn line(&self, text: &str) {
        let text = neutralise_controls(text);
        let stdout = self.stdout.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = stdout.lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    pub fn prompt(&self) {
        let stdout = self.stdout.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = stdout.lock();
        let _ = write!(out, "warden> ");
        let _ = out.flush();
    }
}

impl Default for Out {
    fn default() -> Self {
        Out::new()
    }
}

/// Characters that could rewrite the operator's screen: C0/C1 controls
/// (escape sequences, carriage return) and the Unicode bidi overrides and
/// isolates (which reorder what a line appears to say).
fn is_unsafe(c: char, keep_newlines: bool) -> bool {
    let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}');
    (c.is_control() && c != '\t' && !(keep_newlines && c == '\n')) || bidi
}

fn replace_unsafe(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c, keep_newlines)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if is_unsafe(c, keep_newlines) { '?' } else { c })
            .collect(),
    )
}

/// The last line of defence for everything printed: no escape sequence or
/// bidi control reaches the terminal; newlines stay (warden prints tables).
fn neutralise_controls(text: &str) -> Cow<'_, str> {
    replace_unsafe(text, true)
}

/// Text from agents and containers (results, logs, errors) shown inside a
/// block: controls and bidi characters become `?`; newlines stay, because
/// results are multi-line, and callers indent each line so no agent text
/// can pass for a line of warden's own (see `render::indent`).
pub fn printable(text: &str) -> Cow<'_, str> {
    replace_unsafe(text, true)
}

/// Agent text shown inline within one line of warden's own (an id, a host
/// name, an error sentence): newlines become `?` too, so it cannot start a
/// line that looks like warden's.
pub fn inline(text: &str) -> Cow<'_, str> {
    replace_unsafe(text, false)
}

/// Read operator lines on the `stdin` thread until end of input.
pub fn spawn_stdin_reader(tx: SyncSender<HubEvent>, max_line_bytes: usize) {
    let spawned = thread::Builder::new().name("stdin".into()).spawn(move || {
        let stdin = io::stdin();
        let mut reader = stdin.lock();
        while let Some(line) = read_bounded_line(&mut reader, max_line_bytes) {
            if tx.send(HubEvent::Operator(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(HubEvent::OperatorClosed);
    });
    if let Err(e) = spawned {
        crate::log::error(&format!("cannot read operator commands from stdin: {e}"));
    }
}

/// One line of at most `max` bytes; a longer one is consumed whole and
/// returned cut at `max + 1` bytes, so the parser refuses it as too long
/// without the server ever buffering it. `None` at end of input.
pub fn read_bounded_line(reader: &mut impl BufRead, max: usize) -> Option<String> {
    let mut line = Vec::new();
    let mut overflowed = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) => {
                return if line.is_empty() && !overflowed {
                    None
                } else {
                    Some(String::from_utf8_lossy(&line).into_owned())
                };
            }
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1),
            None => (chunk, chunk.len()),
        };
        let room = (max + 1).saturating_sub(line.len());
        line.extend_from_slice(&part[..part.len().min(room)]);
        overflowed |= part.len() > room;
        let found_newline = done > part.len();
        reader.consume(done);
        if found_newline {
            return Some(String::from_utf8_lossy(&line).into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_are_neutralised() {
        assert_eq!(printable("ok\tline\nnext"), "ok\tline\nnext");
        assert_eq!(
            printable("\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}x"),
            "?]0;pwned??[2J?x"
        );
        assert_eq!(printable("a\rb"), "a?b");
    }

    #[test]
    fn bidi_controls_and_inline_newlines_are_neutralised() {
        assert_eq!(printable("evil\u{202e}txt.exe"), "evil?txt.exe");
        assert_eq!(printable("x\u{2066}y\u{2069}"), "x?y?");
        assert_eq!(
            inline("id\n[host1 c1] completed"),
            "id?[host1 c1] completed"
        );
        assert_eq!(inline("plain"), "plain");
    }

    #[test]
    fn stdin_lines_are_bounded() {
        let input = format!("short\n{}\nnext\nlast", "x".repeat(100));
        let mut reader = std::io::BufReader::with_capacity(7, input.as_bytes());
        assert_eq!(read_bounded_line(&mut reader, 10).as_deref(), Some("short"));
        assert_eq!(
            read_bounded_line(&mut reader, 10).map(|l| l.len()),
            Some(11)
        );
        assert_eq!(read_bounded_line(&mut reader, 10).as_deref(), Some("next"));
        assert_eq!(read_bounded_line(&mut reader, 10).as_deref(), Some("last"));
        assert_eq!(read_bounded_line(&mut reader, 10), None);
    }
}
