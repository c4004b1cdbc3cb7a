//! The server's hub under hostile or heavy peers (issue 8): a slow reader
//! that provokes large frames and reconnects, a flood of unique keys, a
//! token revoked between upgrade and hello, a crowd of idle unauthenticated
//! sockets, and a kill -9 in the middle of a broadcast.
use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

fn hello_with(agent_id: &str, containers: &[&str]) -> Value {
    json!({"type": "hello", "data": {"agent_id": agent_id, "host_name": "h", "version": "t",
        "protocol": 1, "containers": containers, "commands": ["status"]}})
}

/// A raw agent that says hello and waits for its welcome; returns the
/// session and how long the welcome took.
fn join(server: &mut ServerProc, agent_id: &str, token: &str) -> (ClientWs, Duration) {
    let started = Instant::now();
    let mut ws = upgrade(&server.url(), Some(token)).unwrap();
    send(&mut ws, hello_with(agent_id, &["n0"]));
    let welcome = recv_skip_pings(&mut ws);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (ws, started.elapsed())
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Answer commands with `completed` until the server goes away; record
/// every command id the server acked.
fn answer_commands(mut ws: ClientWs, acked: Arc<Mutex<BTreeSet<String>>>) {
    loop {
        let frame = match ws.read() {
            Ok(Message::Text(t)) => serde_json::from_str::<Value>(t.as_str()).unwrap(),
            Ok(Message::Close(_)) | Err(_) => return,
            Ok(_) => continue,
        };
        match frame["type"].as_str() {
            Some("command") => {
                let id = frame["data"]["id"].as_str().unwrap().to_string();
                let reply = json!({"type": "command_response", "data": {"id": id,
                    "status": "completed", "result": "ok", "timestamp": 1}});
                if ws.send(Message::text(reply.to_string())).is_err() {
                    return;
                }
            }
            Some("command_ack") => {
                let id = frame["data"]["id"].as_str().unwrap().to_string();
                acked.lock().unwrap().insert(id);
            }
            _ => {}
        }
    }
}

#[test]
fn a_slow_reader_that_provokes_large_frames_and_reconnects_delays_nobody() {
    let dir = TempDir::new("slow");
    let data_dir = dir.join("server");
    let healthy_id = unique("healthy");
    let healthy_token = token_add(&data_dir, &healthy_id);
    let slow_id = unique("slow");
    let slow_token = token_add(&data_dir, &slow_id);
    let mut server = ServerProc::start(&data_dir, &[]);
    let (healthy, _) = join(&mut server, &healthy_id, &healthy_token);
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let answering = {
        let acked = acked.clone();
        std::thread::spawn(move || answer_commands(healthy, acked))
    };

    // The slow agent never reads. Each frame has a 512 KiB unknown `type`,
    // which the server answers with an `error` echoing it: frames pile up
    // towards a peer that takes nothing.
    let (mut slow, _) = join(&mut server, &slow_id, &slow_token);
    let big_type = "t".repeat(512 * 1024);
    for _ in 0..40 {
        let frame = json!({"type": big_type, "data": {}}).to_string();
        if slow.send(Message::text(frame)).is_err() {
            break;
        }
    }
    // Reconnect while the old connection is still stuffed: the hub closes
    // the old one, which must not hold it up.
    let (_slow_again, welcome_took) = join(&mut server, &slow_id, &slow_token);
    assert!(
        welcome_took < Duration::from_millis(500),
        "the reconnect's welcome took {welcome_took:?}"
    );
    // An operator command to the healthy agent goes through at once.
    let started = Instant::now();
    let id = server.send(&format!("send {healthy_id} status n0"));
    let deadline = Instant::now() + WAIT;
    while !acked.lock().unwrap().contains(&id) {
        assert!(
            Instant::now() < deadline,
            "the healthy agent's command never completed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let round_trip = started.elapsed();
    assert!(
        round_trip < Duration::from_millis(500),
        "a command to a healthy agent took {round_trip:?} next to the slow one"
    );
    server.kill();
    answering.join().unwrap();
}

#[test]
fn a_flood_of_unique_keys_leaves_memory_bounded_and_reused() {
    let dir = TempDir::new("keyflood");
    let data_dir = dir.join("server");
    let id = unique("flood");
    let token = token_add(&data_dir, &id);
    // One malloc arena: memory freed by the hub is then reused by the next
    // connection thread, so RSS shows what the server keeps rather than how
    // many per-thread arenas glibc opened.
    let mut server =
        ServerProc::start_with_env(&data_dir, "127.0.0.1:0", &[], &[("MALLOC_ARENA_MAX", "1")]);
    let pid = server.child.id();
    let mut counter = 0u64;
    // One round: 100 stats frames (~180 KB each), each listing 2,000
    // never-seen keys for the announced node, and 20 nodes the agent never
    // announced.
    let mut flood = |server: &mut ServerProc| {
        let (mut ws, _) = join(server, &id, &token);
        for _ in 0..100 {
            let mut keystore = Vec::new();
            for _ in 0..2000 {
                counter += 1;
                keystore.push(json!({"type": "gran", "public": format!("0x{counter:064x}")}));
            }
            let mut nodes = serde_json::Map::new();
            nodes.insert("n0".into(), json!({"keystore": keystore}));
            for n in 0..20 {
                nodes.insert(format!("ghost{n}-{counter}"), json!({"keystore": []}));
            }
            let stats = json!({"type": "stats", "data": {"timestamp": counter, "containers": [{"name": "n0"}],
                "nodes": nodes}});
            send(&mut ws, stats);
            assert_eq!(recv_skip_pings(&mut ws)["type"], "stats_ack");
        }
        drop(ws);
        server.out.wait_for(&format!("* {id} disconnected"), WAIT);
    };
    let before = rss_kib(pid);
    flood(&mut server);
    let after_one = rss_kib(pid);
    flood(&mut server);
    flood(&mut server);
    let after_three = rss_kib(pid);
    // Each round sends 200,000 distinct keys (~18 MB of frames); kept, they
    // would cost tens of MB a round. The server keeps 256 keys a node and
    // forgets an agent's listings when it leaves, and its queue of frames is
    // bounded (16 MiB): memory stops growing after the first round.
    assert!(
        after_one < before + 48 * 1024,
        "one flood grew the server from {before} KiB to {after_one} KiB"
    );
    assert!(
        after_three < after_one + 8 * 1024,
        "two more floods after the agent left grew it again: {after_one} KiB → {after_three} KiB"
    );
}

#[test]
fn a_token_revoked_after_the_upgrade_is_refused_at_hello() {
    let dir = TempDir::new("revoke");
    let data_dir = dir.join("server");
    let id = unique("revoked");
    let token = token_add(&data_dir, &id);
    let server = ServerProc::start(&data_dir, &[]);
    let mut ws = upgrade(&server.url(), Some(&token)).unwrap();
    token_remove(&data_dir, &id);
    send(&mut ws, hello_with(&id, &["n0"]));
    let error = recv_skip_pings(&mut ws);
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["data"]["code"], "unauthorized", "{error}");
    assert_eq!(close_code(&mut ws), Some(CloseCode::Policy));
}

#[test]
fn idle_unauthenticated_connections_do_not_keep_an_agent_out() {
    let dir = TempDir::new("idle");
    let data_dir = dir.join("server");
    let id = unique("real");
    let token = token_add(&data_dir, &id);
    let mut server = ServerProc::start(&data_dir, &[]);
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    // Let the server accept them all before the real agent comes.
    std::thread::sleep(Duration::from_millis(300));
    let (_ws, welcome_took) = join(&mut server, &id, &token);
    assert!(
        welcome_took < Duration::from_secs(2),
        "the welcome took {welcome_took:?} behind 300 idle sockets"
    );
    drop(idle);
}

#[test]
fn a_server_killed_during_a_broadcast_loses_no_acked_outcome() {
    let dir = TempDir::new("kill9");
    let data_dir = dir.join("server");
    let mut server = ServerProc::start(&data_dir, &[]);
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut agents = Vec::new();
    for n in 0..40 {
        let id = unique(&format!("k{n}"));
        let token = token_add(&data_dir, &id);
        let (ws, _) = join(&mut server, &id, &token);
        let acked = acked.clone();
        agents.push(std::thread::spawn(move || answer_commands(ws, acked)));
    }
    for _ in 0..40 {
        server.out.wait_for("connected from", WAIT);
    }
    for _ in 0..5 {
        server.type_line("broadcast status all");
    }
    // Kill as soon as some outcomes are acked, while others are in flight.
    let deadline = Instant::now() + WAIT;
    while acked.lock().unwrap().len() < 20 {
        assert!(Instant::now() < deadline, "no outcome was ever acked");
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = server.child.kill();
    let _ = server.child.wait();
    for agent in agents {
        agent.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let history = std::fs::read_to_string(data_dir.join("commands.jsonl")).unwrap();
    let recorded: BTreeSet<String> = history
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "outcome")
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = acked.difference(&recorded).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acked outcomes are not on disk: {lost:?}",
        lost.len(),
        acked.len()
    );
}
