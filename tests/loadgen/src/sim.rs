//! One simulated agent: a thread that connects, says `hello` with three
//! containers, sends a ~1.7 KB `stats` every 5 s (the shape of
//! src/agent/stats.rs), answers `ping`, and answers each `command` with
//! accepted/running/completed `command_response`s, reporting to the
//! coordinator when it received the command and when its `command_ack` came.
//!
//! Invariants: the thread ends by the run's deadline or when the coordinator
//! says stop; it never busy-waits (a blocking read whose timeout is the time to
//! the next `stats`); it only ever connects to the loopback address it is given.
use serde_json::{Value, json};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

pub const CONTAINERS: [&str; 3] = ["3node0", "3node1", "3node2"];
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);

/// What a simulated agent tells the coordinator, with when it happened.
#[derive(Debug)]
pub enum Report {
    Welcome(Instant),
    /// A `command` arrived: the round tag at that moment.
    Command(u64, Instant),
    /// Its `command_ack` arrived.
    Ack(usize, u64, Instant),
    /// The agent gave up (connect or protocol failure); the reason.
    Failed(usize, String),
    /// Agent 0 sent a `stats`: when (Unix ms), and whether its first
    /// container was reported stopped in it.
    Stats(f64, bool),
}

/// Shared by every simulated agent.
pub struct Shared {
    pub addr: SocketAddr,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub deadline: Instant,
    pub stop: AtomicBool,
    /// The coordinator's current round, echoed in reports so a late event of
    /// an earlier round is told apart.
    pub round: AtomicU64,
    /// Connection attempts that failed and were retried.
    pub retries: AtomicU64,
    pub reports: Sender<Report>,
    /// While set, agent 0 reports its first container `exited` (the
    /// dashboard bench's state change).
    pub stop_first: AtomicBool,
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Runs agent `index` with `token` until the deadline or stop.
pub fn run(index: usize, token: String, shared: Arc<Shared>) {
    if let Err(e) = serve(index, &token, &shared) {
        let _ = shared.reports.send(Report::Failed(index, e));
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Connects, upgrades and says `hello`, retrying as the real agent does
/// (backoff from 0.5 s, doubling, with jitter) when the server refuses or
/// resets the connection: a fleet connecting at once overflows accept
/// backlogs and pre-upgrade caps.
fn open(index: usize, token: &str, shared: &Shared) -> Result<(Ws, TcpStream), String> {
    let mut backoff = Duration::from_millis(500);
    loop {
        match open_once(index, token, shared) {
            Ok(opened) => return Ok(opened),
            Err(e) => {
                // Jitter from the index: agents do not retry in lockstep.
                let jitter = backoff.mul_f64(((index * 7919) % 1000) as f64 / 1000.0);
                let wait = backoff / 2 + jitter;
                if shared.stop.load(Ordering::Relaxed) || Instant::now() + wait >= shared.deadline {
                    return Err(e);
                }
                shared.retries.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(wait);
                backoff = (backoff * 2).min(Duration::from_secs(8));
            }
        }
    }
}

fn open_once(index: usize, token: &str, shared: &Shared) -> Result<(Ws, TcpStream), String> {
    let tcp = TcpStream::connect_timeout(&shared.addr, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let reader = tcp.try_clone().map_err(|e| e.to_string())?;
    let stream: Box<dyn Stream> = match &shared.tls {
        None => Box::new(tcp),
        Some(config) => {
            let name = rustls::pki_types::ServerName::IpAddress(shared.addr.ip().into());
            let conn =
                rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
    };
    let scheme = if shared.tls.is_some() { "wss" } else { "ws" };
    let request = tungstenite::http::Request::builder()
        .uri(format!("{scheme}://{}/agent", shared.addr))
        .header("Host", shared.addr.to_string())
        .header("Authorization", format!("Bearer {token}"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .map_err(|e| e.to_string())?;
    // Small buffers: 5,000 of these share the machine with the server.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tungstenite::client::client_with_config(request, stream, Some(config))
        .map_err(|e| format!("upgrade: {e}"))?;
    send(
        &mut ws,
        "hello",
        json!({"agent_id": format!("a{index}"), "host_name": format!("host-{index}"),
               "version": "loadgen", "protocol": 1, "containers": CONTAINERS,
               "commands": ["status", "logs", "start", "stop", "restart"]}),
    )?;
    Ok((ws, reader))
}

fn serve(index: usize, token: &str, shared: &Shared) -> Result<(), String> {
    let (mut ws, reader) = open(index, token, shared)?;
    let mut welcomed = false;
    // Spread the fleet's stats over the interval, as independent agents would
    // be; the first one is due that long after `welcome`.
    let first_stats = STATS_INTERVAL.mul_f64((index % 97) as f64 / 97.0 + 0.01);
    let mut next_stats = Instant::now() + first_stats;
    // A command id whose terminal response awaits its ack, with its round.
    let mut pending: Vec<(String, u64)> = Vec::new();
    loop {
        let now = Instant::now();
        if now >= shared.deadline || shared.stop.load(Ordering::Relaxed) {
            let _ = ws.close(None);
            let _ = ws.flush();
            return Ok(());
        }
        if welcomed && now >= next_stats {
            let stopped = index == 0 && shared.stop_first.load(Ordering::Relaxed);
            send(&mut ws, "stats", stats(index, stopped))?;
            if index == 0 {
                let sent_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
                let _ = shared.reports.send(Report::Stats(sent_ms, stopped));
            }
            next_stats = now + STATS_INTERVAL;
        }
        // Until `welcome` no stats are due: wait for it (or the stop check),
        // never wake every millisecond for a stats time already passed.
        let wake = if welcomed {
            next_stats
        } else {
            Instant::now() + Duration::from_secs(1)
        };
        let wait = wake
            .min(shared.deadline)
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        reader
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        let text = match ws.read() {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(frame)) => return Err(format!("closed by the server: {frame:?}")),
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(format!("read: {e}")),
        };
        let at = Instant::now();
        let frame: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
        let data = &frame["data"];
        match frame["type"].as_str().unwrap_or("") {
            "welcome" => {
                welcomed = true;
                next_stats = at + first_stats;
                let _ = shared.reports.send(Report::Welcome(at));
            }
            "ping" => send(&mut ws, "pong", json!({"timestamp": data["timestamp"]}))?,
            "command" => {
                let round = shared.round.load(Ordering::Relaxed);
                let _ = shared.reports.send(Report::Command(round, at));
                let id = data["id"].as_str().unwrap_or("").to_string();
                let target = data["target"].clone();
                respond(&mut ws, &id, &target)?;
                if pending.len() < 64 {
                    pending.push((id, round));
                }
            }
            "command_ack" => {
                let id = data["id"].as_str().unwrap_or("");
                if let Some(i) = pending.iter().position(|(p, _)| p == id) {
                    let (_, round) = pending.swap_remove(i);
                    let _ = shared.reports.send(Report::Ack(index, round, at));
                }
            }
            "error" => return Err(format!("error from the server: {data}")),
            _ => {}
        }
    }
}

type Ws = WebSocket<Box<dyn Stream>>;

fn send(ws: &mut Ws, kind: &str, data: Value) -> Result<(), String> {
    let text = json!({"type": kind, "data": data}).to_string();
    ws.send(Message::text(text))
        .map_err(|e| format!("send {kind}: {e}"))
}

/// accepted, running, then completed with a `status` table, as the real
/// agent answers `status`; written together and flushed once.
fn respond(ws: &mut Ws, id: &str, target: &Value) -> Result<(), String> {
    let names: Vec<&str> = match target.as_str() {
        Some("all") | None => CONTAINERS.to_vec(),
        Some(one) => vec![one],
    };
    let rows: Vec<Value> = names
        .iter()
        .map(|n| {
            json!({"name": n, "state": "running", "health": null, "uptime_s": 86400,
                   "image": "gluwa/creditcoin3:3.52.0", "restart_count": 0})
        })
        .collect();
    for (status, result) in [
        ("accepted", None),
        ("running", None),
        ("completed", Some(json!({"containers": rows}))),
    ] {
        let mut data = json!({"id": id, "status": status, "timestamp": now_ms()});
        if let Some(result) = result {
            data["result"] = result;
        }
        let text = json!({"type": "command_response", "data": data}).to_string();
        ws.write(Message::text(text))
            .map_err(|e| format!("send command_response: {e}"))?;
    }
    ws.flush().map_err(|e| format!("flush: {e}"))
}

/// A deterministic 32-byte public key, unique per agent, container and key type.
fn public_key(index: usize, container: usize, key_type: usize) -> String {
    let mut x = (index as u64) << 8 | (container as u64) << 4 | key_type as u64;
    let mut out = String::with_capacity(66);
    out.push_str("0x");
    for _ in 0..4 {
        // splitmix64: spread the bits so keys look like keys.
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.push_str(&format!("{:016x}", z ^ (z >> 31)));
    }
    out
}

/// The body of a `stats` as src/agent/stats.rs builds it, for three running
/// nodes with Prometheus metrics, one of them a validator with its three
/// session keys in its keystore. The static
/// part is built once; only the timestamp and the keys vary (and the first
/// container's state, `exited` when `first_stopped`).
pub fn stats(index: usize, first_stopped: bool) -> Value {
    static ROWS: OnceLock<Value> = OnceLock::new();
    let rows = ROWS.get_or_init(|| {
        Value::Array(
            CONTAINERS
                .iter()
                .map(|n| {
                    json!({"name": n, "state": "running", "health": null,
                           "started_at": "2026-11-20T08:00:00.123456789Z", "uptime_s": 86400,
                           "restart_count": 0, "image": "gluwa/creditcoin3:3.52.0",
                           "cpu_percent": 3.25, "mem_used_bytes": 812_345_344u64,
                           "mem_limit_bytes": 16_777_216_000u64,
                           "data_free_bytes": 85_899_345_920u64})
                })
                .collect(),
        )
    });
    let mut nodes = serde_json::Map::new();
    for (c, name) in CONTAINERS.iter().enumerate() {
        // One validator with its session keys, two standbys with none.
        let keystore: Vec<Value> = ["gran", "babe", "imon"]
            .iter()
            .enumerate()
            .filter(|_| c == 0)
            .map(|(t, kind)| json!({"type": kind, "public": public_key(index, c, t)}))
            .collect();
        nodes.insert(
            (*name).to_string(),
            json!({"best": 1_234_567, "finalized": 1_234_565, "sync_target": 1_234_567,
                   "peers": 12, "syncing": false, "roles": ["Authority"],
                   "version": "3.52.0-a1b2c3d4", "chain": "creditcoin3",
                   "source": "prometheus", "rpc_error": null, "keystore": keystore}),
        );
    }
    let mut rows = rows.clone();
    if first_stopped {
        rows[0]["state"] = Value::from("exited");
    }
    json!({
        "timestamp": now_ms(),
        "host": {"load": [0.42, 0.38, 0.35], "mem_total_bytes": 33_554_432_000u64,
                 "mem_available_bytes": 21_474_836_480u64, "name": format!("host-{index}")},
        "containers": rows,
        "nodes": nodes,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn stats_is_about_1_7_kb_and_keys_are_unique() {
        let frame =
            serde_json::json!({"type": "stats", "data": super::stats(4321, false)}).to_string();
        assert!(
            (1500..2100).contains(&frame.len()),
            "stats frame is {} bytes",
            frame.len()
        );
        let a = super::public_key(1, 0, 0);
        assert_eq!(a.len(), 66);
        assert_ne!(a, super::public_key(1, 0, 1));
        assert_ne!(a, super::public_key(2, 0, 0));
    }
}
