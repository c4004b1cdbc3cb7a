//! The alert tests' local receiver, standing in for Alertmanager: an HTTP
//! server on loopback keeping every POSTed JSON body, which a test can take
//! down and bring back on the same port; and helpers to read and wait for
//! the notices it got (issue 12). Every wait is bounded.
use crate::support::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A webhook receiver on a fixed port that can be taken down and brought
/// back: every POSTed JSON body is kept.
pub struct Receiver {
    pub port: u16,
    pub bodies: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub fn start(port: u16, bodies: Arc<Mutex<Vec<Value>>>) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, b) = (stop.clone(), bodies.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &b),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Receiver {
            port,
            bodies,
            stop,
            thread: Some(thread),
        }
    }

    pub fn down(mut self) -> (u16, Arc<Mutex<Vec<Value>>>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (self.port, self.bodies.clone())
    }
}

fn serve(stream: TcpStream, bodies: &Mutex<Vec<Value>>) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut reader = BufReader::new(&stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    bodies
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap());
    let _ =
        (&stream).write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
}

/// Notices for `alertname` with `status`, as the receiver got them.
pub fn notices(bodies: &Mutex<Vec<Value>>, alertname: &str, status: &str) -> Vec<Value> {
    bodies
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == status && b["alerts"][0]["labels"]["alertname"] == alertname)
        .cloned()
        .collect()
}

pub fn wait_notices(
    bodies: &Mutex<Vec<Value>>,
    alertname: &str,
    status: &str,
    n: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = notices(bodies, alertname, status);
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {status} {alertname} notice; the receiver got: {:?}",
            bodies.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn http_get(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Every rule of the contract, so a test can turn off all but its own.
pub const RULES: [&str; 13] = [
    "AgentDown",
    "ContainerDown",
    "NodeSyncing",
    "NodeLowPeers",
    "NodeStalled",
    "NodeFinalityLag",
    "NodeRpcUnreachable",
    "ValidatorInactive",
    "ValidatorChanged",
    "UnclaimedPayouts",
    "DuplicateSessionKeys",
    "BackupFailed",
    "BackupStale",
];

/// Writes an alerts file sending to `receiver`, with `rules` as given and
/// every other rule disabled (so a fleet's notices are only the ones the
/// test produces); returns its path.
pub fn alerts_file(dir: &TempDir, receiver: &Receiver, repeat_s: u64, rules: Value) -> String {
    let mut all = serde_json::Map::new();
    for name in RULES {
        let settings = rules
            .get(name)
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"enabled": false}));
        all.insert(name.to_string(), settings);
    }
    let path = dir.join("alerts.json");
    std::fs::write(
        &path,
        serde_json::json!({
            "repeat_interval_s": repeat_s,
            "rules": all,
            "sinks": [{"kind": "webhook",
                       "url": format!("http://127.0.0.1:{}/alerts", receiver.port)}]
        })
        .to_string(),
    )
    .unwrap();
    path.display().to_string()
}

/// How many notices for (`rule`, `container`) with `status` the receiver got.
pub fn count(bodies: &Mutex<Vec<Value>>, rule: &str, container: &str, status: &str) -> usize {
    notices(bodies, rule, status)
        .iter()
        .filter(|n| n["alerts"][0]["labels"]["container"] == container)
        .count()
}

/// Waits, at most `timeout`, until the receiver got `n` notices for
/// (`rule`, `container`) with `status`; returns the last.
pub fn wait_count(
    bodies: &Mutex<Vec<Value>>,
    rule: &str,
    container: &str,
    status: &str,
    n: usize,
    timeout: Duration,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let found: Vec<Value> = notices(bodies, rule, status)
            .into_iter()
            .filter(|b| b["alerts"][0]["labels"]["container"] == container)
            .collect();
        if found.len() >= n {
            return found[n - 1].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {status} {rule} notice #{n} for {container} in {timeout:?}; the receiver got: {:?}",
            bodies.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every (rule, container, status) the receiver got, with how many times.
pub fn tally(
    bodies: &Mutex<Vec<Value>>,
) -> std::collections::BTreeMap<(String, String, String), usize> {
    let mut out = std::collections::BTreeMap::new();
    for b in bodies.lock().unwrap().iter() {
        let labels = &b["alerts"][0]["labels"];
        let key = (
            labels["alertname"].as_str().unwrap_or("").to_string(),
            labels["container"].as_str().unwrap_or("").to_string(),
            b["status"].as_str().unwrap_or("").to_string(),
        );
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// A fleet of `nodes` whose server runs with `--alerts alerts` (heartbeat 2 s).
pub fn alert_fleet(nodes: &[&Node], policy: Value, alerts: &str) -> Fleet {
    Fleet::start(nodes, policy, &["--heartbeat-s", "2", "--alerts", alerts])
}
