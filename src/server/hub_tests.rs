//! The hub without a socket: agents are `AgentLink` recorders, so what the
//! hub sends, and when, is checked directly.
use super::*;
use crate::server::{
    AgentLink, ByteBudget, HubEvent, LiveAgent, ServerConfig, journal, ops, tokens,
};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

/// An agent's end of the hub: the frames queued for it.
#[derive(Default)]
struct Recorder {
    frames: Mutex<Vec<serde_json::Value>>,
}

impl AgentLink for Recorder {
    fn send_text(&self, text: &str) -> std::io::Result<()> {
        self.frames
            .lock()
            .unwrap()
            .push(serde_json::from_str(text).unwrap());
        Ok(())
    }
    fn close(&self, _code: u16, _reason: &str) {}
    fn peer(&self) -> String {
        "test".into()
    }
}

impl Recorder {
    fn types(&self) -> Vec<String> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .map(|f| f["type"].as_str().unwrap().to_string())
            .collect()
    }
}

fn hub(dir: &std::path::Path) -> Hub {
    let config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        tls_cert: None,
        tls_key: None,
        client_ca: None,
        heartbeat_s: 15,
        max_message_bytes: 1 << 20,
        admin_listen: None,
        alerts_file: None,
        schedules_file: None,
        rotation: Default::default(),
        operator_key: None,
    };
    let store = Store::open(dir).unwrap();
    let journal = Journal::start(journal::Files::open(dir).unwrap()).unwrap();
    let (tx, _rx) = std::sync::mpsc::sync_channel(16);
    let alerts = ops::start_alerts(dir, None, "", tx).unwrap();
    Hub::new(
        config,
        store,
        journal,
        tokens::TokenStore::new(dir),
        Out::new(),
        Arc::new(ByteBudget::new(1 << 20)),
        ops::Ops::new(alerts, None),
    )
}

#[test]
fn an_outcome_is_acked_only_once_it_is_on_disk() {
    let dir = std::env::temp_dir().join(format!("warden-hub-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut hub = hub(&dir);
    let link = Arc::new(Recorder::default());
    let session = Arc::new(LiveAgent {
        agent_id: "a1".into(),
        conn_id: 1,
        link: link.clone(),
        hello: crate::protocol::Hello {
            agent_id: "a1".into(),
            host_name: "h".into(),
            version: "t".into(),
            protocol: 1,
            containers: vec!["n0".into()],
            commands: vec!["status".into()],
        },
        connected_ms: 0,
        last_seen_ms: AtomicI64::new(0),
        token_sha256: String::new(),
    });
    hub.handle(HubEvent::Connected(session));
    assert_eq!(link.types(), ["welcome"], "welcomed at once");

    hub.handle(HubEvent::Operator("send a1 status n0".into()));
    assert_eq!(
        link.types(),
        ["welcome"],
        "not sent before the record is on disk"
    );
    hub.commit();
    // The journal thread syncs, then sends: wait for it (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while link.types().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the command was never sent"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let command = link.frames.lock().unwrap()[1].clone();
    assert_eq!(command["type"], "command");
    let id = command["data"]["id"].as_str().unwrap().to_string();
    let history = std::fs::read_to_string(dir.join("commands.jsonl")).unwrap();
    assert!(history.contains(&id), "recorded before it was sent");

    let response = crate::protocol::Message::parse(
        &serde_json::json!({"type": "command_response", "data": {"id": id, "status": "completed",
            "result": "ok", "timestamp": 1}})
        .to_string(),
    )
    .unwrap();
    hub.handle(HubEvent::Message {
        agent: "a1".into(),
        conn_id: 1,
        message: response,
        cost: 0,
    });
    assert_eq!(link.types().len(), 2, "no ack before the commit");
    hub.commit();
    hub.journal.finish();
    assert_eq!(link.types(), ["welcome", "command", "command_ack"]);
    let history = std::fs::read_to_string(dir.join("commands.jsonl")).unwrap();
    assert!(
        history.contains("\"kind\":\"outcome\""),
        "on disk before the ack"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
