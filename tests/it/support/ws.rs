//! Raw WebSocket peers speaking protocol 1: a test playing an agent to a
//! real server, or a server to a real agent.
use super::*;

use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A raw agent: the test speaks protocol 1 to a real server.
pub type ClientWs = WebSocket<MaybeTlsStream<TcpStream>>;

pub fn upgrade(url: &str, token: Option<&str>) -> Result<ClientWs, u16> {
    let mut request = url.into_client_request().unwrap();
    if let Some(t) = token {
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {t}").parse().unwrap());
    }
    match tungstenite::connect(request) {
        Ok((ws, _)) => {
            if let MaybeTlsStream::Plain(s) = ws.get_ref() {
                s.set_read_timeout(Some(WAIT)).unwrap();
            }
            Ok(ws)
        }
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("upgrade failed unexpectedly: {e}"),
    }
}

/// The next text frame from the server as JSON, skipping its pings.
pub fn recv_skip_pings(ws: &mut ClientWs) -> Value {
    loop {
        match ws.read().expect("a frame") {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "ping" {
                    continue;
                }
                return v;
            }
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// A server played by the test: raw WebSocket frames to and from a real agent.
pub struct RawServer {
    pub listener: std::net::TcpListener,
    pub token: String,
}

/// A raw server's side of the agent's connection.
pub type Ws = tungstenite::WebSocket<TcpStream>;

impl RawServer {
    pub fn new() -> RawServer {
        RawServer {
            listener: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            token: unique("tok"),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/agent", self.listener.local_addr().unwrap())
    }

    /// An agent with `config`, a fresh id and this server's token, connecting here.
    pub fn start_agent(&self, dir: &TempDir, config: &Value) -> AgentProc {
        AgentProc::start(
            dir.path(),
            &self.url(),
            &unique("agent"),
            &self.token,
            config,
            &[],
        )
    }

    #[allow(clippy::result_large_err)] // tungstenite fixes the callback type
    /// Accept the agent's next connection, check its token, read its hello
    /// and welcome it.
    pub fn accept(&self) -> (Ws, Value) {
        self.accept_with_heartbeat(json!(30))
    }

    #[allow(clippy::result_large_err)] // tungstenite fixes the callback type
    /// Like [`RawServer::accept`], with `heartbeat_s` (any JSON) in the welcome.
    pub fn accept_with_heartbeat(&self, heartbeat_s: Value) -> (Ws, Value) {
        self.listener.set_nonblocking(false).unwrap();
        let deadline = Instant::now() + WAIT;
        let (stream, _) = loop {
            self.listener.set_nonblocking(true).unwrap();
            match self.listener.accept() {
                Ok(s) => break s,
                Err(_) => {
                    assert!(Instant::now() < deadline, "the agent never connected");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let expected = format!("Bearer {}", self.token);
        let mut ws = tungstenite::accept_hdr(
            stream,
            |req: &tungstenite::handshake::server::Request, resp| {
                assert_eq!(req.uri().path(), "/agent");
                assert_eq!(
                    req.headers()
                        .get("authorization")
                        .unwrap()
                        .to_str()
                        .unwrap(),
                    expected
                );
                Ok(resp)
            },
        )
        .unwrap();
        let hello = recv(&mut ws);
        assert_eq!(hello["type"], "hello", "{hello}");
        let agent_id = hello["data"]["agent_id"].clone();
        send(
            &mut ws,
            json!({"type": "welcome", "data": {"agent_id": agent_id, "server_version": "test", "protocol": 1, "heartbeat_s": heartbeat_s}}),
        );
        (ws, hello["data"].clone())
    }
}

/// Send one JSON frame, on either side.
pub fn send<S: std::io::Read + std::io::Write>(ws: &mut WebSocket<S>, v: Value) {
    ws.send(tungstenite::Message::text(v.to_string())).unwrap();
}

pub fn recv(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a frame from the agent") {
            tungstenite::Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            tungstenite::Message::Close(f) => panic!("agent closed: {f:?}"),
            _ => {}
        }
    }
}

/// Read until the server closes; returns the close code.
pub fn close_code(ws: &mut ClientWs) -> Option<CloseCode> {
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => return frame.map(|f| f.code),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// The next frame of type `kind`, skipping others (stats, pings).
pub fn recv_type(ws: &mut Ws, kind: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = recv(ws);
        if v["type"] == kind {
            return v;
        }
        assert!(Instant::now() < deadline, "no {kind} frame");
    }
}

pub fn response_to(ws: &mut Ws, id: &str) -> Value {
    loop {
        let v = recv_type(ws, "command_response");
        if v["data"]["id"] == id
            && matches!(v["data"]["status"].as_str(), Some("completed" | "failed"))
        {
            return v["data"].clone();
        }
    }
}

pub fn command(id: &str, command: &str, target: &str, params: Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    json!({"type": "command", "data": {"id": id, "command": command, "target": target, "params": params, "timestamp": now}})
}

/// An agent managing `names` under `policy` (the harness's config), connecting
/// to `server`.
pub fn start_agent(dir: &TempDir, server: &RawServer, names: &[&str], policy: Value) -> AgentProc {
    server.start_agent(dir, &config_for(names, policy))
}

/// A raw agent connected to `server` as `id`, with one container `n0` and
/// `commands` in its hello. On its own thread it answers each command frame
/// with `answer(data)` as a `command_response`, or not at all where that is
/// `None`; the thread ends when the server closes.
pub fn raw_agent(
    server: &ServerProc,
    id: &str,
    token: &str,
    commands: &[&str],
    answer: impl Fn(&Value) -> Option<Value> + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let mut ws = upgrade(&server.url(), Some(token)).unwrap();
    send(
        &mut ws,
        json!({"type": "hello", "data": {"agent_id": id, "host_name": "h", "version": "t",
            "protocol": 1, "containers": ["n0"], "commands": commands}}),
    );
    assert_eq!(recv_skip_pings(&mut ws)["type"], "welcome");
    std::thread::spawn(move || {
        loop {
            let frame: Value = match ws.read() {
                Ok(Message::Text(t)) => serde_json::from_str(t.as_str()).unwrap(),
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(_) => continue,
            };
            if frame["type"] != "command" {
                continue;
            }
            let Some(reply) = answer(&frame["data"]) else {
                continue;
            };
            let frame = json!({"type": "command_response", "data": reply});
            if ws.send(Message::text(frame.to_string())).is_err() {
                return;
            }
        }
    })
}

/// One connection from the agent. Answers pings and acks stats and
/// summaries as a server does; keeps every other frame it reads.
pub struct Peer {
    pub ws: Ws,
    /// Every frame read, in order (stats and pings left out).
    pub frames: Vec<Value>,
}

impl Peer {
    /// The agent's next connection to `server`, welcomed.
    pub fn accept(server: &RawServer) -> Peer {
        let (ws, _hello) = server.accept();
        Peer { ws, frames: vec![] }
    }

    pub fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).unwrap();
    }

    /// The next frame before `deadline`, or None.
    pub fn next(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.ws.get_ref().set_read_timeout(Some(left)).unwrap();
            let frame = match self.ws.read() {
                Ok(Message::Text(t)) => serde_json::from_str::<Value>(t.as_str()).unwrap(),
                Ok(Message::Close(f)) => panic!("the agent closed the connection: {f:?}"),
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(e) => panic!("reading from the agent: {e}"),
            };
            match frame["type"].as_str() {
                Some("ping") => {
                    self.send(json!({"type": "pong", "data": frame["data"]}));
                    continue;
                }
                Some("stats") => {
                    let ts = frame["data"]["timestamp"].clone();
                    self.send(json!({"type": "stats_ack", "data": {"timestamp": ts}}));
                    continue;
                }
                Some("summary") => {
                    let ts = frame["data"]["timestamp"].clone();
                    self.send(json!({"type": "summary_ack", "data": {"timestamp": ts}}));
                }
                _ => {}
            }
            self.frames.push(frame.clone());
            return Some(frame);
        }
    }

    /// The next frame that satisfies `pred`, within `timeout`.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        while let Some(frame) = self.next(deadline) {
            if pred(&frame) {
                return frame;
            }
        }
        panic!(
            "no frame with {what} within {timeout:?}; frames so far:\n{}",
            self.tail()
        )
    }

    /// The next summary that satisfies `pred`.
    pub fn summary_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for(what, WAIT, |f| f["type"] == "summary" && pred(&f["data"]))["data"].clone()
    }

    /// Every frame within `window` (for asserting what did not happen).
    pub fn drain_for(&mut self, window: Duration) -> Vec<Value> {
        let deadline = Instant::now() + window;
        let mut got = vec![];
        while let Some(frame) = self.next(deadline) {
            got.push(frame);
        }
        got
    }

    pub fn tail(&self) -> String {
        let start = self.frames.len().saturating_sub(12);
        self.frames[start..]
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `rotate_keys` on `node`; acks its key_update. Returns the new keys.
    pub fn rotate_keys(&mut self, node: &Node) -> warden::chain::SessionKeys {
        let id = unique("rot");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        self.send(
            json!({"type": "command", "data": {"id": id, "command": "rotate_keys",
            "target": node.name, "params": {}, "timestamp": now}}),
        );
        let mut session_key = None;
        let mut key_update = None;
        let deadline = Instant::now() + WAIT;
        while session_key.is_none() || key_update.is_none() {
            let Some(frame) = self.next(deadline) else {
                panic!("rotate_keys on {}: no outcome:\n{}", node.name, self.tail());
            };
            let data = &frame["data"];
            match frame["type"].as_str() {
                Some("command_response") if data["id"] == id.as_str() => {
                    match data["status"].as_str() {
                        Some("completed") => {
                            session_key = Some(data["result"]["session_key"].clone());
                            self.send(json!({"type": "command_ack", "data": {"id": id}}));
                        }
                        Some("failed") => panic!("rotate_keys failed: {data}"),
                        _ => {}
                    }
                }
                Some("key_update") if data["container"] == node.name.as_str() => {
                    key_update = Some(data["session_key"].clone());
                    self.send(json!({"type": "key_update_ack",
                        "data": {"event_id": data["event_id"], "status": "stored"}}));
                }
                _ => {}
            }
        }
        assert_eq!(session_key, key_update);
        warden::chain::split_session_keys(session_key.unwrap().as_str().unwrap()).unwrap()
    }

    pub fn ack_event(&mut self, event: &Value) {
        self.send(json!({"type": "event_ack", "data": {"event_id": event["data"]["event_id"]}}));
    }
}
