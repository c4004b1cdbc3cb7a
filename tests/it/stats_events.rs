//! The agent's container view follows `docker events`: a container stopped
//! or started outside warden shows so in the next `stats`, although the
//! agent no longer runs `docker ps`/`inspect` every interval.
use crate::support::*;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use tungstenite::Message;

type Ws = tungstenite::WebSocket<std::net::TcpStream>;

/// Plays the server: accepts the agent, welcomes it.
fn accept(listener: &TcpListener) -> Ws {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + WAIT;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(_) => {
                assert!(Instant::now() < deadline, "the agent never connected");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut ws = tungstenite::accept(stream).unwrap();
    let hello = next_frame(&mut ws);
    assert_eq!(hello["type"], "hello", "{hello}");
    let welcome = json!({"type": "welcome", "data": {"agent_id": hello["data"]["agent_id"],
        "server_version": "test", "protocol": 1, "heartbeat_s": 30}});
    ws.send(Message::text(welcome.to_string())).unwrap();
    ws
}

fn next_frame(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a frame from the agent") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(f) => panic!("agent closed: {f:?}"),
            _ => {}
        }
    }
}

/// Waits for a `stats` whose row for `name` satisfies `want`; returns the row.
fn stats_until(ws: &mut Ws, name: &str, within: Duration, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let frame = next_frame(ws);
        if frame["type"] != "stats" {
            continue;
        }
        if let Some(row) = frame["data"]["containers"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == name))
        {
            if want(row) {
                return row.clone();
            }
            last = row.clone();
        }
    }
    panic!("no stats with the wanted row for {name} within {within:?}; last: {last}");
}

#[test]
fn a_container_stopped_or_started_outside_warden_shows_in_the_next_stats() {
    let node = Node::start("loadgen-ev");
    let dir = TempDir::new("loadgen-ev");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/agent", listener.local_addr().unwrap());
    // stats every second (config_for), so "promptly" is a few seconds.
    let config = config_for(&[&node.name], json!({}));
    let _agent = AgentProc::start(dir.path(), &url, &unique("agent"), "tok", &config, &[]);
    let mut ws = accept(&listener);
    let running = stats_until(&mut ws, &node.name, WAIT, |r| r["state"] == "running");
    assert!(running["cpu_percent"].is_number(), "{running}");

    // Several stats go by with nothing changing: the view is served from the
    // snapshot, and an outside stop must still show up at once.
    let out = docker(&["stop", "-t", "1", &node.name]);
    assert!(out.status.success(), "{out:?}");
    let stopped = stats_until(&mut ws, &node.name, Duration::from_secs(8), |r| {
        r["state"] == "exited"
    });
    assert!(stopped["uptime_s"].is_null(), "{stopped}");
    assert!(stopped["cpu_percent"].is_null(), "{stopped}");

    let out = docker(&["start", &node.name]);
    assert!(out.status.success(), "{out:?}");
    let again = stats_until(&mut ws, &node.name, Duration::from_secs(8), |r| {
        r["state"] == "running"
    });
    assert_ne!(again["started_at"], running["started_at"], "{again}");
}
