//! The part of a protocol-1 connection both sides share once the session is
//! open: read frames until the connection ends, answer what the protocol
//! answers the same way on both sides (binary frames, oversized messages),
//! and keep the heartbeat. What a text frame means is the caller's.
use crate::protocol::{ErrorBody, ErrorCode, Message, Timestamp, close_code, now_ms};
use crate::transport::{Connection, Incoming};
use std::time::{Duration, Instant};

/// When to send an application-level `ping`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PingWhen {
    /// Every heartbeat, whatever arrives (the server).
    Always,
    /// After a heartbeat without a word from the peer (the agent).
    WhenSilent,
}

/// Why the loop ended.
#[derive(Debug, PartialEq)]
pub enum End {
    /// The peer closed, or the socket failed.
    Closed,
    /// The peer sent a message over the size limit (closed with 1009).
    TooBig,
    /// No data frame for three heartbeats.
    Silent,
}

/// How much of a peer's own words an `error` echoes back, at most: an
/// oversized `type` or id must not make the answer as large as the frame.
pub const MAX_ECHO_BYTES: usize = 128;
const MAX_ERROR_MESSAGE_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes at a character boundary, with `…`.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

pub fn send_error(conn: &Connection, code: ErrorCode, message: String, reference: Option<String>) {
    let message = cut(message, MAX_ERROR_MESSAGE_BYTES);
    let reference = reference.map(|r| cut(r, MAX_ECHO_BYTES));
    let _ = conn.send_text(
        &Message::Error(ErrorBody {
            code,
            message,
            reference,
        })
        .to_json(),
    );
}

/// Read frames (those left over from the handshake first) until the
/// connection ends. Any data frame is a sign of life; control frames are
/// not. On silence the connection is closed with 1001.
pub fn run(
    conn: &Connection,
    mut unread: Vec<Incoming>,
    heartbeat: Duration,
    ping: PingWhen,
    mut on_text: impl FnMut(&str),
) -> End {
    if conn.set_read_timeout(heartbeat).is_err() {
        return End::Closed;
    }
    let mut buf = Connection::read_buffer();
    let mut last_data = Instant::now();
    let mut last_ping = Instant::now();
    loop {
        for frame in conn.next_frames(&mut buf, &mut unread) {
            match frame {
                Incoming::Control => {}
                Incoming::Closed => return End::Closed,
                Incoming::TooBig => {
                    conn.close(close_code::TOO_BIG, "message too big");
                    return End::TooBig;
                }
                Incoming::Binary => {
                    last_data = Instant::now();
                    send_error(
                        conn,
                        ErrorCode::BadRequest,
                        "binary frames are not part of protocol 1".into(),
                        None,
                    );
                }
                Incoming::Text(text) => {
                    last_data = Instant::now();
                    on_text(&text);
                }
            }
        }
        let due = match ping {
            PingWhen::Always => last_ping.elapsed() >= heartbeat,
            PingWhen::WhenSilent => {
                last_data.elapsed() >= heartbeat && last_ping.elapsed() >= heartbeat
            }
        };
        if due {
            last_ping = Instant::now();
            let _ = conn.send_text(
                &Message::Ping(Timestamp {
                    timestamp: now_ms(),
                })
                .to_json(),
            );
        }
        if last_data.elapsed() >= heartbeat * 3 {
            conn.close(close_code::GOING_AWAY, "heartbeat timeout");
            return End::Silent;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn echoes_are_cut_at_a_char_boundary() {
        assert_eq!(super::cut("short".into(), 10), "short");
        assert_eq!(super::cut("ééé".into(), 3), "é…");
        assert_eq!(super::cut("x".repeat(500), 128).len(), 128 + '…'.len_utf8());
    }
}
