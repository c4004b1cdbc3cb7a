//! Fleet benchmark: one real `warden server` process and N in-process raw
//! agents on loopback. Measures (1) how fast a command typed at the server
//! reaches an idle agent and its response comes back, for `send` and for
//! `broadcast`, and (2) the server's CPU use while N agents sit idle.
//!
//! Run: `cargo bench --bench fleet` (AGENTS=100 SAMPLES=200 IDLE_S=10 by default).
//! Prints medians and p99s; docs/performance.md quotes one run.
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::{Duration, Instant};
use warden::protocol::{CommandResponse, Hello, Message};
use warden::server::tokens::TokenStore;
use warden::transport::{self, Connection, Incoming, ReadOutcome};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// (utime + stime) in clock ticks, threads, VmRSS in KiB.
fn proc_usage(pid: u32) -> (u64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (ticks, field("Threads:"), field("VmRSS:"))
}

fn clock_ticks_per_s() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

/// A raw agent: answers every command at once, reporting when it got it.
fn run_agent(conn: Arc<Connection>, index: usize, received: Sender<(usize, Instant)>) {
    let mut buf = Connection::read_buffer();
    conn.set_read_timeout(Duration::from_secs(3600)).unwrap();
    loop {
        let ReadOutcome::Frames(frames) = conn.read_batch(&mut buf) else {
            continue;
        };
        for frame in frames {
            match frame {
                Incoming::Text(text) => match Message::parse(&text) {
                    Ok(Message::Command(c)) => {
                        let _ = received.send((index, Instant::now()));
                        let response = CommandResponse::completed(&c.id, json!({"containers": []}));
                        let _ = conn.send_text(&Message::CommandResponse(response).to_json());
                    }
                    Ok(Message::Ping(t)) => {
                        let _ = conn.send_text(&Message::Pong(t).to_json());
                    }
                    _ => {}
                },
                Incoming::Closed => return,
                _ => {}
            }
        }
    }
}

fn main() {
    let n_agents = env_usize("AGENTS", 100);
    let samples = env_usize("SAMPLES", 200);
    let idle_s = env_usize("IDLE_S", 10) as u64;
    let dir = std::env::temp_dir().join(format!("warden-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tokens = TokenStore::new(&dir);
    let flood = env_usize("FLOOD", 0) == 1;
    let ids: Vec<String> = (0..n_agents).map(|i| format!("a{i}")).collect();
    let flooder_token = tokens.add("flooder").unwrap().expose().to_string();
    let secrets: Vec<String> = ids
        .iter()
        .map(|id| tokens.add(id).unwrap().expose().to_string())
        .collect();

    let mut server = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--heartbeat-s",
            "30",
            "--data-dir",
        ])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let mut stdin = server.stdin.take().unwrap();
    let (line_tx, lines) = mpsc::channel::<(String, Instant)>();
    let stdout = server.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send((line, Instant::now())).is_err() {
                break;
            }
        }
    });
    let addr = lines.recv_timeout(Duration::from_secs(10)).unwrap().0;
    let url = format!("ws://{addr}/agent");
    let tls = transport::client_tls_config(&transport::ClientTls::default()).unwrap();
    let (recv_tx, received) = mpsc::channel();
    for (i, (id, secret)) in ids.iter().zip(&secrets).enumerate() {
        let conn = Arc::new(
            transport::connect(&url, secret, &tls, 1 << 20, Duration::from_secs(10)).unwrap(),
        );
        let hello = Hello {
            agent_id: id.clone(),
            host_name: "bench".into(),
            version: "bench".into(),
            protocol: 1,
            containers: vec!["3node0".into()],
            commands: vec!["status".into()],
        };
        conn.send_text(&Message::Hello(hello).to_json()).unwrap();
        let tx = recv_tx.clone();
        thread::Builder::new()
            .name(format!("agent-{i}"))
            .spawn(move || run_agent(conn, i, tx))
            .unwrap();
    }
    let mut connected = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while connected < n_agents {
        let (line, _) = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("agents connect");
        if line.starts_with("* ") && line.contains(" connected") {
            connected += 1;
        }
    }

    // Idle: nothing to do but hold N connections.
    let hz = clock_ticks_per_s();
    let (t0, threads, rss_kib) = proc_usage(pid);
    let started = Instant::now();
    thread::sleep(Duration::from_secs(idle_s));
    let (t1, _, _) = proc_usage(pid);
    let idle_cpu = (t1 - t0) as f64 / hz / started.elapsed().as_secs_f64() * 100.0;

    // FLOOD=1: one more agent sends pings as fast as it can and never
    // reads, while the others are measured.
    let stop_flood = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if flood {
        let conn = transport::connect(&url, &flooder_token, &tls, 1 << 20, Duration::from_secs(10))
            .unwrap();
        let hello = Hello {
            agent_id: "flooder".into(),
            host_name: "bench".into(),
            version: "bench".into(),
            protocol: 1,
            containers: vec![],
            commands: vec![],
        };
        conn.send_text(&Message::Hello(hello).to_json()).unwrap();
        let stop = stop_flood.clone();
        thread::spawn(move || {
            let ping = Message::Ping(warden::protocol::Timestamp { timestamp: 1 }).to_json();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if conn.send_text(&ping).is_err() {
                    break;
                }
            }
        });
    }

    // send: operator line → agent receives → response → outcome printed.
    let mut to_agent = Vec::new();
    let mut round_trip = Vec::new();
    for s in 0..samples {
        let target = s % n_agents;
        let t_typed = Instant::now();
        writeln!(stdin, "send a{target} status 3node0").unwrap();
        stdin.flush().unwrap();
        let (who, t_received) = received
            .recv_timeout(Duration::from_secs(10))
            .expect("command arrives");
        assert_eq!(who, target);
        let t_done = loop {
            let (line, at) = lines
                .recv_timeout(Duration::from_secs(10))
                .expect("outcome printed");
            if line.contains(" completed") {
                break at;
            }
        };
        to_agent.push(t_received - t_typed);
        round_trip.push(t_done - t_typed);
    }
    to_agent.sort();
    round_trip.sort();

    // broadcast: one line, N commands out, N outcomes back.
    let mut bcast_all_received = Vec::new();
    let mut bcast_all_done = Vec::new();
    for _ in 0..5 {
        let t_typed = Instant::now();
        writeln!(stdin, "broadcast status 3node0").unwrap();
        stdin.flush().unwrap();
        let mut last_received = t_typed;
        for _ in 0..n_agents {
            last_received = received
                .recv_timeout(Duration::from_secs(30))
                .expect("broadcast arrives")
                .1;
        }
        let mut done = 0;
        let mut last_done = t_typed;
        while done < n_agents {
            let (line, at) = lines
                .recv_timeout(Duration::from_secs(30))
                .expect("broadcast outcomes");
            if line.contains(" completed") {
                done += 1;
                last_done = at;
            }
        }
        bcast_all_received.push(last_received - t_typed);
        bcast_all_done.push(last_done - t_typed);
    }
    bcast_all_received.sort();
    bcast_all_done.sort();

    stop_flood.store(true, std::sync::atomic::Ordering::Relaxed);
    println!(
        "warden fleet bench: {n_agents} agents on loopback, plain ws, {samples} sends, 5 broadcasts{}",
        if flood {
            ", plus one agent flooding pings and never reading"
        } else {
            ""
        }
    );
    println!(
        "idle server: {idle_cpu:.2} % of one core over {idle_s} s; {threads} threads; RSS {} KiB",
        rss_kib
    );
    println!(
        "send, typed → agent has it:      median {}  p99 {}",
        micros(percentile(&to_agent, 0.5)),
        micros(percentile(&to_agent, 0.99))
    );
    println!(
        "send, typed → outcome printed:   median {}  p99 {}",
        micros(percentile(&round_trip, 0.5)),
        micros(percentile(&round_trip, 0.99))
    );
    println!(
        "broadcast, typed → all {n_agents} have it:  median {}",
        micros(percentile(&bcast_all_received, 0.5))
    );
    println!(
        "broadcast, typed → all outcomes: median {}",
        micros(percentile(&bcast_all_done, 0.5))
    );
    writeln!(stdin, "quit").unwrap();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
