//! `GET live`: the fleet pushed to a browser over a WebSocket as it changes.
//!
//! The connection thread the admin listener gave this request keeps it:
//! after the upgrade it sends the fleet snapshot whenever its text differs
//! from the last one sent, checking every [`TICK`] (the snapshot itself is
//! shared between clients, see `Web::snapshot_json`). The browser only
//! listens; anything it sends but a close is ignored.
//!
//! Bounds: at most [`MAX_LIVE`] clients (the admin listener has 32
//! connection threads in all); frames from the browser of at most 4 KiB;
//! the session is re-checked every tick, so logout, expiry or a removed
//! token ends the stream.
use super::Web;
use super::http::{self, Request, Response};
use std::net::{IpAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

pub const MAX_LIVE: usize = 8;
const TICK: Duration = Duration::from_millis(250);

struct Slot<'a>(&'a Web);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.live_clients.fetch_sub(1, Ordering::SeqCst);
    }
}

pub fn serve(web: &Web, stream: &TcpStream, req: &Request, peer: IpAddr) {
    let refuse = |r: Response| {
        let _ = http::write_response(stream, &r, false);
    };
    let _ = peer;
    if req.method != "GET" {
        return refuse(Response::text(405, "only GET\n"));
    }
    let Some(caller) = web.caller(req) else {
        return refuse(Response::text(401, "log in first\n"));
    };
    if !Web::same_origin(req) {
        return refuse(Response::text(
            403,
            "refused: the request came from another site\n",
        ));
    }
    let upgrade = req
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.header("sec-websocket-key").filter(|_| upgrade) else {
        return refuse(Response::text(
            400,
            "a WebSocket upgrade is expected here\n",
        ));
    };
    if web.live_clients.fetch_add(1, Ordering::SeqCst) >= MAX_LIVE {
        web.live_clients.fetch_sub(1, Ordering::SeqCst);
        return refuse(Response::text(503, "too many live views open; close one\n"));
    }
    let _slot = Slot(web);
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if std::io::Write::write_all(&mut &*stream, head.as_bytes()).is_err() {
        return;
    }
    let _ = stream.set_read_timeout(Some(TICK));
    let config = WebSocketConfig::default()
        .max_message_size(Some(4096))
        .max_frame_size(Some(4096));
    let mut ws = WebSocket::from_raw_socket(stream, Role::Server, Some(config));
    let mut last: Option<std::sync::Arc<str>> = None;
    loop {
        let Some(now) = web.caller(req) else {
            let _ = ws.close(None);
            let _ = ws.flush();
            return;
        };
        if now.who != caller.who {
            return;
        }
        if let Some(json) = web.snapshot_json()
            && last.as_deref() != Some(&*json)
        {
            if ws.send(Message::text(json.to_string())).is_err() {
                return;
            }
            last = Some(json);
        }
        match ws.read() {
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                return;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}
