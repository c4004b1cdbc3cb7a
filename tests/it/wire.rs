//! Protocol 1 at the server, driven by raw WebSocket peers: the upgrade,
//! tokens, hello, envelope errors, size limit, replacement, revocation.
use crate::support::*;
use serde_json::{Value, json};
use std::time::Duration;
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

fn hello(agent_id: &str) -> Value {
    json!({"type": "hello", "data": {"agent_id": agent_id, "host_name": "h", "version": "t",
        "protocol": 1, "containers": ["3node0", "3node1"], "commands": ["status"]}})
}

struct Bed {
    _dir: TempDir,
    server: ServerProc,
    token: String,
    agent_id: String,
}

fn bed(extra: &[&str]) -> Bed {
    let dir = TempDir::new("wire");
    let data_dir = dir.join("server");
    let agent_id = unique("a");
    let token = token_add(&data_dir, &agent_id);
    let server = ServerProc::start(&data_dir, extra);
    Bed {
        _dir: dir,
        server,
        token,
        agent_id,
    }
}

fn session(b: &mut Bed) -> ClientWs {
    let mut ws = upgrade(&b.server.url(), Some(&b.token)).unwrap();
    send(&mut ws, hello(&b.agent_id));
    let welcome = recv_skip_pings(&mut ws);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    b.server
        .out
        .wait_for(&format!("* {} connected", b.agent_id), WAIT);
    ws
}

#[test]
fn upgrade_is_refused_without_the_right_token_or_path() {
    let b = bed(&[]);
    let url = b.server.url();
    assert_eq!(upgrade(&url, None).err(), Some(401));
    assert_eq!(upgrade(&url, Some("not-a-token")).err(), Some(401));
    let other_path = url.replace("/agent", "/admin");
    assert_eq!(
        upgrade(&other_path, None).err(),
        Some(404),
        "404 comes before the token check"
    );
    assert!(upgrade(&url, Some(&b.token)).is_ok());
}

#[test]
fn hello_must_come_first_and_match_the_token() {
    let mut b = bed(&[]);
    let url = b.server.url();

    let mut ws = upgrade(&url, Some(&b.token)).unwrap();
    send(&mut ws, hello("somebody-else"));
    let error = recv_skip_pings(&mut ws);
    assert_eq!(
        (error["type"].as_str(), error["data"]["code"].as_str()),
        (Some("error"), Some("unauthorized")),
        "{error}"
    );
    assert_eq!(close_code(&mut ws), Some(CloseCode::Policy));

    let mut ws = upgrade(&url, Some(&b.token)).unwrap();
    send(&mut ws, json!({"type": "stats", "data": {"timestamp": 1}}));
    assert_eq!(recv_skip_pings(&mut ws)["data"]["code"], "bad_request");
    assert_eq!(close_code(&mut ws), Some(CloseCode::Policy));

    let mut ws = upgrade(&url, Some(&b.token)).unwrap();
    let mut wrong_protocol = hello(&b.agent_id);
    wrong_protocol["data"]["protocol"] = json!(2);
    send(&mut ws, wrong_protocol);
    assert_eq!(recv_skip_pings(&mut ws)["type"], "error");
    assert_eq!(close_code(&mut ws), Some(CloseCode::Policy));

    let mut ws = session(&mut b);
    send(&mut ws, json!({"type": "ping", "data": {"timestamp": 42}}));
    assert_eq!(
        recv_skip_pings(&mut ws),
        json!({"type": "pong", "data": {"timestamp": 42}})
    );
}

#[test]
fn envelope_errors_keep_the_connection_open() {
    let mut b = bed(&[]);
    let mut ws = session(&mut b);
    let cases = [
        ("not json", "bad_request", Value::Null),
        ("[1,2]", "bad_request", Value::Null),
        (r#"{"type":"stats"}"#, "bad_request", Value::Null),
        (r#"{"type":"stats","data":7}"#, "bad_request", Value::Null),
        (
            r#"{"type":"frobnicate","data":{}}"#,
            "unknown_type",
            json!("frobnicate"),
        ),
        (
            r#"{"type":"command_response","data":{"id":"x1","status":"bogus","timestamp":1}}"#,
            "bad_request",
            json!("x1"),
        ),
    ];
    for (frame, code, reference) in cases {
        ws.send(Message::text(frame)).unwrap();
        let error = recv_skip_pings(&mut ws);
        assert_eq!(error["type"], "error", "{frame}");
        assert_eq!(error["data"]["code"], code, "{frame}: {error}");
        assert_eq!(
            error["data"].get("ref").cloned().unwrap_or(Value::Null),
            reference,
            "{frame}: {error}"
        );
    }
    // Frames an agent never sends are refused, naming their id.
    ws.send(Message::text(r#"{"type":"command","data":{"id":"x2","command":"stop","target":"a","params":{},"timestamp":1}}"#)).unwrap();
    let error = recv_skip_pings(&mut ws);
    assert_eq!(
        (
            error["data"]["code"].as_str(),
            error["data"]["ref"].as_str()
        ),
        (Some("bad_request"), Some("x2")),
        "{error}"
    );
    // A malformed error is not answered: the next frame is the pong.
    ws.send(Message::text(
        r#"{"type":"error","data":{"code":"no-such-code"}}"#,
    ))
    .unwrap();
    send(&mut ws, json!({"type": "ping", "data": {"timestamp": 9}}));
    assert_eq!(recv_skip_pings(&mut ws)["type"], "pong");
    ws.send(Message::binary(vec![1, 2, 3])).unwrap();
    assert_eq!(recv_skip_pings(&mut ws)["data"]["code"], "bad_request");
    // Still open, and acks stats with the same timestamp.
    send(
        &mut ws,
        json!({"type": "stats", "data": {"timestamp": 77, "containers": [], "extra": true}}),
    );
    assert_eq!(
        recv_skip_pings(&mut ws),
        json!({"type": "stats_ack", "data": {"timestamp": 77}})
    );
}

#[test]
fn a_frame_over_the_limit_closes_with_1009_and_exactly_the_limit_passes() {
    let mut b = bed(&["--max-frame-bytes", "4096"]);
    let mut ws = session(&mut b);
    // Exactly 4096 bytes of payload: a stats frame padded to size.
    let base = json!({"type": "stats", "data": {"timestamp": 5, "pad": ""}}).to_string();
    let pad = "x".repeat(4096 - base.len());
    let exact = json!({"type": "stats", "data": {"timestamp": 5, "pad": pad}}).to_string();
    assert_eq!(exact.len(), 4096);
    ws.send(Message::text(exact)).unwrap();
    assert_eq!(recv_skip_pings(&mut ws)["type"], "stats_ack");
    let over = format!(
        "{}x",
        &json!({"type": "stats", "data": {"timestamp": 5, "pad": pad}}).to_string()
    );
    let _ = ws.send(Message::text(over));
    assert_eq!(close_code(&mut ws), Some(CloseCode::Size));
}

#[test]
fn a_second_connection_replaces_the_first_only_after_a_valid_hello() {
    let mut b = bed(&[]);
    let mut first = session(&mut b);
    // A second upgrade with a bad hello does not disturb the first.
    let mut bad = upgrade(&b.server.url(), Some(&b.token)).unwrap();
    send(&mut bad, json!({"type": "ping", "data": {"timestamp": 1}}));
    assert_eq!(close_code(&mut bad), Some(CloseCode::Policy));
    send(
        &mut first,
        json!({"type": "ping", "data": {"timestamp": 2}}),
    );
    assert_eq!(recv_skip_pings(&mut first)["type"], "pong");

    let mut second = upgrade(&b.server.url(), Some(&b.token)).unwrap();
    send(&mut second, hello(&b.agent_id));
    assert_eq!(recv_skip_pings(&mut second)["type"], "welcome");
    assert_eq!(close_code(&mut first), Some(CloseCode::Normal));
    send(
        &mut second,
        json!({"type": "ping", "data": {"timestamp": 3}}),
    );
    assert_eq!(recv_skip_pings(&mut second)["type"], "pong");
}

#[test]
fn removing_or_replacing_a_token_cuts_the_live_connection() {
    let mut b = bed(&[]);
    let mut ws = session(&mut b);
    token_remove(&b.server.data_dir, &b.agent_id);
    assert_eq!(close_code(&mut ws), Some(CloseCode::Policy));
    assert_eq!(upgrade(&b.server.url(), Some(&b.token)).err(), Some(401));

    // Re-adding gives a new token, accepted without a server restart.
    let new_token = token_add(&b.server.data_dir, &b.agent_id);
    b.token = new_token;
    let mut ws = session(&mut b);
    let newer = token_add(&b.server.data_dir, &b.agent_id);
    assert_eq!(
        close_code(&mut ws),
        Some(CloseCode::Policy),
        "a replaced token cuts the old session"
    );
    assert!(upgrade(&b.server.url(), Some(&newer)).is_ok());
}

#[test]
fn a_silent_agent_is_dropped_after_three_heartbeats() {
    let mut b = bed(&["--heartbeat-s", "1"]);
    let mut ws = session(&mut b);
    // Read pings but never answer: control frames are not signs of life either.
    let started = std::time::Instant::now();
    let mut pings = 0;
    let code = loop {
        match ws.read() {
            Ok(Message::Text(t)) if t.as_str().contains("\"ping\"") => pings += 1,
            Ok(Message::Close(frame)) => break frame.map(|f| f.code),
            Ok(_) => {}
            Err(_) => break None,
        }
        assert!(started.elapsed() < Duration::from_secs(15), "never dropped");
    };
    assert_eq!(code, Some(CloseCode::Away));
    assert!(
        pings >= 2,
        "the server pings every heartbeat ({pings} pings)"
    );
    b.server
        .out
        .wait_for(&format!("* {} disconnected", b.agent_id), WAIT);
}

#[test]
fn responses_the_server_did_not_expect_are_acked_and_recorded_nowhere() {
    let mut b = bed(&[]);
    let mut ws = session(&mut b);
    send(
        &mut ws,
        json!({"type": "command_response", "data": {"id": "never-issued", "status": "completed", "result": "x", "timestamp": 1}}),
    );
    assert_eq!(
        recv_skip_pings(&mut ws),
        json!({"type": "command_ack", "data": {"id": "never-issued"}})
    );
    // A durable event is acked, and a resend is acked again but stored once.
    for _ in 0..2 {
        send(
            &mut ws,
            json!({"type": "backup_complete", "data": {"event_id": "e-1", "container": "3node0",
            "backup_file": "3node0-keys-20250108-1430.tar.gz", "bytes": 10, "sha256": "00", "timestamp": 1}}),
        );
        assert_eq!(
            recv_skip_pings(&mut ws),
            json!({"type": "event_ack", "data": {"event_id": "e-1"}})
        );
    }
    send(
        &mut ws,
        json!({"type": "key_update", "data": {"event_id": "k-1", "container": "3node0",
        "session_key": "0x00", "action": "rotate_keys", "timestamp": 1}}),
    );
    assert_eq!(
        recv_skip_pings(&mut ws),
        json!({"type": "key_update_ack", "data": {"event_id": "k-1", "status": "stored"}})
    );
    b.server.type_line("keys");
    let row = b.server.out.wait_until(
        |l| l.contains("rotate_keys") && l.contains("0x00"),
        WAIT,
        "keys row",
    );
    assert!(row.contains(&b.agent_id), "{row}");
    let events = std::fs::read_to_string(b.server.data_dir.join("events.jsonl")).unwrap();
    assert_eq!(
        events.lines().filter(|l| l.contains("\"e-1\"")).count(),
        1,
        "{events}"
    );
    let history =
        std::fs::read_to_string(b.server.data_dir.join("commands.jsonl")).unwrap_or_default();
    assert!(!history.contains("never-issued"));
}

#[test]
fn a_command_reaches_a_raw_agent_and_its_response_is_recorded_once() {
    let mut b = bed(&[]);
    let mut ws = session(&mut b);
    let id = b.server.send(&format!("send {} logs 3node1 7", b.agent_id));
    let command = recv_skip_pings(&mut ws);
    assert_eq!(command["type"], "command");
    assert_eq!(command["data"]["id"], id.as_str());
    assert_eq!(command["data"]["command"], "logs");
    assert_eq!(command["data"]["target"], "3node1");
    assert_eq!(command["data"]["params"], json!({"lines": 7}));
    assert!(command["data"]["timestamp"].is_i64());

    let response = json!({"type": "command_response", "data": {"id": id, "status": "completed", "result": "line one\nline two", "timestamp": 2}});
    send(&mut ws, response.clone());
    assert_eq!(
        recv_skip_pings(&mut ws),
        json!({"type": "command_ack", "data": {"id": id}})
    );
    b.server.outcome(&id, WAIT);
    b.server.out.wait_for("line two", WAIT);
    // A resend (and a different late outcome) is acked, not recorded again.
    send(&mut ws, response);
    assert_eq!(recv_skip_pings(&mut ws)["type"], "command_ack");
    send(
        &mut ws,
        json!({"type": "command_response", "data": {"id": id, "status": "failed", "error": "late", "code": "internal", "timestamp": 3}}),
    );
    assert_eq!(recv_skip_pings(&mut ws)["type"], "command_ack");
    let history = std::fs::read_to_string(b.server.data_dir.join("commands.jsonl")).unwrap();
    assert_eq!(
        history.matches("\"kind\":\"outcome\"").count(),
        1,
        "{history}"
    );
    b.server.type_line(&format!("show {id}"));
    b.server.out.wait_for("status: completed", WAIT);
}

#[test]
fn a_response_for_another_agents_command_is_refused() {
    let mut b = bed(&[]);
    let other_id = unique("b");
    let other_token = token_add(&b.server.data_dir, &other_id);
    let mut ws = session(&mut b);
    let mut other = upgrade(&b.server.url(), Some(&other_token)).unwrap();
    send(&mut other, hello(&other_id));
    assert_eq!(recv_skip_pings(&mut other)["type"], "welcome");
    let id = b.server.send(&format!("send {} status 3node0", b.agent_id));
    assert_eq!(recv_skip_pings(&mut ws)["data"]["id"], id.as_str());
    send(
        &mut other,
        json!({"type": "command_response", "data": {"id": id, "status": "completed", "result": "x", "timestamp": 1}}),
    );
    let error = recv_skip_pings(&mut other);
    assert_eq!(
        (
            error["data"]["code"].as_str(),
            error["data"]["ref"].as_str()
        ),
        (Some("bad_request"), Some(id.as_str()))
    );
}

#[test]
fn operator_input_is_checked_before_anything_is_sent() {
    let mut b = bed(&[]);
    let mut ws = session(&mut b);
    let a = b.agent_id.clone();
    for (line, expect) in [
        (format!("send {a} frobnicate 3node0"), "unknown_command"),
        (format!("send {a} stop ../x"), "unknown_target"),
        (format!("send {a} stop a;rm"), "unknown_target"),
        (format!("send {a} stop 3node9"), "unknown_target"),
        (format!("send {a} logs 3node0 lines=abc"), "invalid_params"),
        (format!("send {a} logs 3node0 10001"), "invalid_params"),
        (format!("send {a} restart all"), "invalid_params"),
        (format!("send {a} status"), "unknown_target"),
        ("send nobody status 3node0".to_string(), "not connected"),
    ] {
        b.server.type_line(&line);
        let reply = b
            .server
            .out
            .wait_until(|l| l.starts_with("error"), WAIT, &line);
        assert!(reply.contains(expect), "{line:?} → {reply}");
    }
    // Nothing reached the agent: the next frame it sees is the one we ask for.
    let id = b.server.send(&format!("send {a} status all"));
    assert_eq!(recv_skip_pings(&mut ws)["data"]["id"], id.as_str());
}

#[test]
fn a_flooding_agent_is_throttled_while_others_get_commands_promptly() {
    let mut b = bed(&[]);
    let mut calm = session(&mut b);
    let flooder_id = unique("flood");
    let flooder_token = token_add(&b.server.data_dir, &flooder_id);
    let mut flooder = upgrade(&b.server.url(), Some(&flooder_token)).unwrap();
    send(&mut flooder, hello(&flooder_id));
    assert_eq!(recv_skip_pings(&mut flooder)["type"], "welcome");
    // 1400 pings at once: the server takes a burst of 1000, then 200 a
    // second, so the last pong cannot come back before ~2 s.
    let flood = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        for i in 0..1400 {
            flooder
                .write(Message::text(format!(
                    r#"{{"type":"ping","data":{{"timestamp":{i}}}}}"#
                )))
                .unwrap();
        }
        flooder.flush().unwrap();
        let mut pongs = 0;
        while pongs < 1400 {
            if recv_skip_pings(&mut flooder)["type"] == "pong" {
                pongs += 1;
            }
        }
        started.elapsed()
    });
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let id = b.server.send(&format!("send {} status 3node0", b.agent_id));
        assert_eq!(recv_skip_pings(&mut calm)["data"]["id"], id.as_str());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a command took {:?} during the flood",
            started.elapsed()
        );
    }
    let flood_took = flood.join().unwrap();
    assert!(
        flood_took >= Duration::from_millis(1500),
        "the flooder was not paced: 1400 pongs in {flood_took:?}"
    );
}

#[test]
fn the_same_session_key_on_two_nodes_raises_the_duplicate_alert() {
    let mut b = bed(&[]);
    let mut first = session(&mut b);
    let other_id = unique("b");
    let other_token = token_add(&b.server.data_dir, &other_id);
    let mut second = upgrade(&b.server.url(), Some(&other_token)).unwrap();
    send(&mut second, hello(&other_id));
    assert_eq!(recv_skip_pings(&mut second)["type"], "welcome");
    let update = |event_id: &str, container: &str, gran: &str| {
        json!({"type": "key_update", "data": {"event_id": event_id, "container": container, "action": "rotate_keys",
            "session_key": format!("{gran}{}", "22".repeat(64)), "keys": {"gran": gran, "babe": format!("0x{}", "22".repeat(32))},
            "timestamp": 1}})
    };
    let gran_a = format!("0x{}", "aa".repeat(32));
    let gran_b = format!("0x{}", "bb".repeat(32));
    send(&mut first, update("k1", "3node0", &gran_a));
    assert_eq!(recv_skip_pings(&mut first)["type"], "key_update_ack");
    // Different gran, but the same babe key on another node: an alert.
    send(&mut second, update("k2", "3node1", &gran_b));
    assert_eq!(recv_skip_pings(&mut second)["type"], "key_update_ack");
    let alert = b.server.out.wait_for("DUPLICATE SESSION KEY", WAIT);
    assert!(
        alert.contains("babe") && alert.contains(&b.agent_id) && alert.contains(&other_id),
        "{alert}"
    );
    assert!(
        !alert.contains(&gran_a) && !alert.contains(&gran_b),
        "distinct keys are not flagged: {alert}"
    );
    // A keystore listing in stats counts too.
    send(
        &mut second,
        json!({"type": "stats", "data": {"timestamp": 3, "containers": [], "nodes": {"3node1": {
        "keystore": [{"type": "gran", "public": gran_a}]}}}}),
    );
    let alert = b.server.out.wait_for("DUPLICATE SESSION KEY", WAIT);
    assert!(alert.contains(&gran_a), "{alert}");
    // The key history is appended, one line per report, mode 0600.
    let path = b.server.data_dir.join("keys.jsonl");
    let lines: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["agent"], b.agent_id.as_str());
    assert_eq!(lines[0]["container"], "3node0");
    assert_eq!(lines[0]["keys"]["gran"], gran_a.as_str());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let events = std::fs::read_to_string(b.server.data_dir.join("events.jsonl")).unwrap();
    assert_eq!(
        events
            .lines()
            .filter(|l| l.contains("\"duplicate_key\""))
            .count(),
        2,
        "{events}"
    );
}

#[test]
fn an_agent_that_stops_reading_is_cut_off_and_others_still_get_broadcasts() {
    let mut b = bed(&[]);
    let mut calm = session(&mut b);
    let stuck_id = unique("stuck");
    let stuck_token = token_add(&b.server.data_dir, &stuck_id);
    let mut stuck = upgrade(&b.server.url(), Some(&stuck_token)).unwrap();
    send(&mut stuck, hello(&stuck_id));
    assert_eq!(recv_skip_pings(&mut stuck)["type"], "welcome");
    b.server
        .out
        .wait_for(&format!("* {stuck_id} connected"), WAIT);
    // From now on the stuck agent never reads. Big commands fill its socket.
    let big = "a ".repeat(30_000);
    let started = std::time::Instant::now();
    let mut rounds = 0;
    loop {
        for _ in 0..20 {
            b.server
                .type_line(&format!("send {stuck_id} exec 3node0 {big}"));
        }
        rounds += 1;
        // Meanwhile every broadcast reaches the calm agent promptly.
        let sent_at = std::time::Instant::now();
        b.server.type_line("broadcast status 3node0");
        loop {
            let frame = recv_skip_pings(&mut calm);
            if frame["type"] == "command" {
                assert_eq!(frame["data"]["command"], "status");
                break;
            }
        }
        assert!(
            sent_at.elapsed() < Duration::from_secs(5),
            "a broadcast took {:?}",
            sent_at.elapsed()
        );
        if b.server
            .out
            .seen
            .iter()
            .any(|l| l.contains(&format!("* {stuck_id} disconnected")))
        {
            break;
        }
        let _ = b.server.out.drain_for(Duration::from_millis(50));
        assert!(
            started.elapsed() < Duration::from_secs(60) && rounds < 100,
            "the stuck agent was never cut off"
        );
    }
    drop(stuck);
}
