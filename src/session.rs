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

pub fn send_error(conn: &Connection, code: ErrorCode, message: String, reference: Option<String>) {
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
