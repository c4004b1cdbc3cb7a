//! The `summary` report and the era watch, end to end: real agent and server
//! processes, real test-node containers whose on-chain storage is a fixture
//! the test writes into each node's control file (keys and SCALE values made
//! with warden's own chain module, itself checked against substrate-interface
//! vectors). Where the test must see the agent's frames (summaries are not
//! printed by the server), it plays the server itself.
//!
//! The nodes run with host networking on a free port, so the agent reaches
//! their RPC over plain HTTP: one summary reads ~100 storage items per node,
//! and through `docker exec curl` (bridge networking) that alone takes ~10 s.
use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};
use warden::chain::scale::Encode;
use warden::chain::types::{
    ActiveEraInfo, DisabledValidators, EraRewardPoints, PagedExposureMetadata, StakingLedger,
};
use warden::chain::{AccountId32, SessionKeys, keys};

/// How long to watch for something that must not happen: several summaries
/// at `summary_interval_s: 1`.
const QUIET: Duration = Duration::from_secs(4);

// --- Nodes and their storage ---------------------------------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test node with host networking on a free RPC port (no Prometheus).
fn host_node(prefix: &str) -> Node {
    host_node_on(prefix).0
}

/// `host_node`, and its RPC port.
fn host_node_on(prefix: &str) -> (Node, u16) {
    let name = unique(prefix);
    let rpc_port = free_port();
    let port = rpc_port.to_string();
    let image = image();
    let out = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "warden-test=1",
        "--network",
        "host",
        &image,
        "--validator",
        "--rpc-port",
        &port,
        "--no-prometheus",
    ]);
    assert!(
        out.status.success(),
        "docker run {name} failed: {} (did scripts/build-test-image run?)",
        String::from_utf8_lossy(&out.stderr)
    );
    (Node { name }, rpc_port)
}

/// `author_rotateKeys` straight to the node, not through warden (as an
/// operator following the original guide does): warden does not know these.
fn rotate_by_hand(node: &Node, port: u16) -> SessionKeys {
    let url = format!("http://localhost:{port}/");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"author_rotateKeys"}"#;
    let deadline = Instant::now() + WAIT;
    loop {
        let out = docker(&[
            "exec",
            &node.name,
            "curl",
            "-s",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            &url,
        ]);
        let reply: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if let Some(keys) = reply.as_ref().and_then(|r| r["result"].as_str()) {
            return warden::chain::split_session_keys(keys).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "author_rotateKeys on {}: {reply:?} {}",
            node.name,
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ss58(account: &AccountId32) -> String {
    warden::chain::ss58::encode(account, 42).unwrap()
}

/// Chain storage as the node's control file serves it.
#[derive(Clone, Default)]
struct Storage {
    items: BTreeMap<Vec<u8>, Vec<u8>>,
    syncing: bool,
}

impl Storage {
    fn put(&mut self, key: Vec<u8>, value: &impl Encode) -> &mut Self {
        self.items.insert(key, value.encode());
        self
    }

    fn put_raw(&mut self, key: Vec<u8>, bytes: &[u8]) -> &mut Self {
        self.items.insert(key, bytes.to_vec());
        self
    }

    fn active_era(&mut self, era: u32) -> &mut Self {
        let info = ActiveEraInfo {
            index: era,
            start: Some(1_718_000_000_000 + u64::from(era) * 86_400_000),
        };
        self.put(keys::staking_active_era(), &info)
    }

    /// `session.set_keys`: every key of the set is owned by `stash`.
    fn set_keys(&mut self, stash: AccountId32, session_keys: &SessionKeys) -> &mut Self {
        for (key_type, public_key) in session_keys.public_keys() {
            self.put(keys::session_key_owner(key_type, &public_key), &stash);
        }
        self
    }

    /// The current session's validators, none disabled.
    fn session_validators(&mut self, validators: &[AccountId32]) -> &mut Self {
        self.put(keys::session_validators(), &validators.to_vec())
            .put(
                keys::session_disabled_validators(),
                &DisabledValidators::Indices(vec![]),
            )
    }

    fn bond(
        &mut self,
        stash: AccountId32,
        controller: AccountId32,
        legacy_claimed_rewards: Vec<u32>,
    ) -> &mut Self {
        let ledger = StakingLedger {
            stash,
            total: 5_000,
            active: 5_000,
            unlocking: vec![],
            legacy_claimed_rewards,
        };
        self.put(keys::staking_bonded(&stash), &controller)
            .put(keys::staking_ledger(&controller), &ledger)
    }

    /// Reward points for `stash` (and someone else) in `era`, and its exposure
    /// in `page_count` pages (0: own stake only, still one page).
    fn points_and_exposure(&mut self, era: u32, stash: AccountId32, page_count: u32) -> &mut Self {
        let someone = AccountId32([0xEE; 32]);
        let points = EraRewardPoints {
            total: 60,
            individual: [(stash, 20), (someone, 40)].into(),
        };
        let overview = PagedExposureMetadata {
            total: 1_000 + u128::from(page_count) * 500,
            own: 1_000,
            nominator_count: page_count * 2,
            page_count,
        };
        self.put(keys::staking_eras_reward_points(era), &points)
            .put(keys::staking_eras_stakers_overview(era, &stash), &overview)
    }

    /// An era that has ended: its reward is set.
    fn reward(&mut self, era: u32) -> &mut Self {
        self.put(keys::staking_eras_validator_reward(era), &7_000_000u128)
    }

    fn claimed(&mut self, era: u32, stash: AccountId32, pages: Vec<u32>) -> &mut Self {
        self.put(keys::staking_claimed_rewards(era, &stash), &pages)
    }

    /// Replace `node`'s control file with this storage (atomically for the
    /// node: it keeps its last good values while a file is half written).
    fn write_to(&self, node: &Node, dir: &TempDir) {
        let map: serde_json::Map<String, Value> = self
            .items
            .iter()
            .map(|(k, v)| (keys::to_hex(k), json!(format!("0x{}", hex::encode(v)))))
            .collect();
        let file = dir.join(&format!("{}-fixture.json", node.name));
        let control = json!({ "storage": map, "syncing": self.syncing });
        std::fs::write(&file, control.to_string()).unwrap();
        let out = docker(&[
            "cp",
            &file.display().to_string(),
            &format!("{}:/root/data/testnode.json", node.name),
        ]);
        assert!(
            out.status.success(),
            "docker cp to {}: {}",
            node.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn write_to_all(&self, nodes: &[&Node], dir: &TempDir) {
        for node in nodes {
            self.write_to(node, dir);
        }
    }
}

/// The agent's config: the harness's, with a summary every second.
fn agent_config(nodes: &[&Node]) -> Value {
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let mut config = config_for(&names, lifecycle_policy());
    config["summary_interval_s"] = json!(1);
    config
}

// --- A server played by the test --------------------------------------------------------

type Ws = WebSocket<TcpStream>;

struct RawServer {
    listener: TcpListener,
    token: String,
}

impl RawServer {
    fn new() -> RawServer {
        RawServer {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
            token: unique("tok"),
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/agent", self.listener.local_addr().unwrap())
    }

    fn start_agent(&self, dir: &TempDir, nodes: &[&Node]) -> AgentProc {
        AgentProc::start(
            dir.path(),
            &self.url(),
            &unique("agent"),
            &self.token,
            &agent_config(nodes),
            &[],
        )
    }

    /// Accept the agent's next connection, read its hello and welcome it.
    fn accept(&self) -> Peer {
        let deadline = Instant::now() + WAIT;
        self.listener.set_nonblocking(true).unwrap();
        let stream = loop {
            match self.listener.accept() {
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
        let hello = match ws.read().unwrap() {
            Message::Text(t) => serde_json::from_str::<Value>(t.as_str()).unwrap(),
            other => panic!("expected hello, got {other:?}"),
        };
        assert_eq!(hello["type"], "hello", "{hello}");
        let mut peer = Peer { ws, frames: vec![] };
        peer.send(json!({"type": "welcome", "data": {
            "agent_id": hello["data"]["agent_id"], "server_version": "test",
            "protocol": 1, "heartbeat_s": 30}}));
        peer
    }
}

/// One connection from the agent. Answers pings and acks stats and
/// summaries as a server does; keeps every other frame it reads.
struct Peer {
    ws: Ws,
    /// Every frame read, in order (stats and pings left out).
    frames: Vec<Value>,
}

fn is_validator_event(frame: &Value) -> bool {
    frame["type"]
        .as_str()
        .is_some_and(|t| t.starts_with("validator_"))
}

impl Peer {
    fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).unwrap();
    }

    /// The next frame before `deadline`, or None.
    fn next(&mut self, deadline: Instant) -> Option<Value> {
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
    fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
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
    fn summary_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for(what, WAIT, |f| f["type"] == "summary" && pred(&f["data"]))["data"].clone()
    }

    /// Every frame within `window` (for asserting what did not happen).
    fn drain_for(&mut self, window: Duration) -> Vec<Value> {
        let deadline = Instant::now() + window;
        let mut got = vec![];
        while let Some(frame) = self.next(deadline) {
            got.push(frame);
        }
        got
    }

    fn tail(&self) -> String {
        let start = self.frames.len().saturating_sub(12);
        self.frames[start..]
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `rotate_keys` on `node`; acks its key_update. Returns the new keys.
    fn rotate_keys(&mut self, node: &Node) -> SessionKeys {
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

    fn ack_event(&mut self, event: &Value) {
        self.send(json!({"type": "event_ack", "data": {"event_id": event["data"]["event_id"]}}));
    }
}

/// `(type, node)` of each validator event among `frames`.
fn validator_events(frames: &[Value]) -> Vec<(String, String)> {
    frames
        .iter()
        .filter(|f| is_validator_event(f))
        .map(|f| {
            (
                f["type"].as_str().unwrap().to_string(),
                f["data"]["node"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

/// Collect validator events until `expected` (type, node) pairs have all
/// arrived, then watch a while longer; returns every validator event seen.
fn collect_events(peer: &mut Peer, expected: &[(&str, &str)]) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    let mut events: Vec<Value> = vec![];
    let arrived = |events: &[Value]| {
        let got = validator_events(events);
        expected
            .iter()
            .all(|(t, n)| got.iter().any(|(gt, gn)| gt == t && gn == n))
    };
    while !arrived(&events) {
        let Some(frame) = peer.next(deadline) else {
            panic!(
                "expected {expected:?}, got {:?} within {WAIT:?}; frames:\n{}",
                validator_events(&events),
                peer.tail()
            );
        };
        if is_validator_event(&frame) {
            events.push(frame);
        }
    }
    events.extend(peer.drain_for(QUIET).into_iter().filter(is_validator_event));
    events
}

fn event_of<'a>(events: &'a [Value], kind: &str, node: &Node) -> &'a Value {
    let matching: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == kind && e["data"]["node"] == node.name.as_str())
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one {kind} for {}: {events:?}",
        node.name
    );
    &matching[0]["data"]
}

// --- payout_info --------------------------------------------------------------------------

#[test]
fn payout_info_counts_unclaimed_eras_including_claimed_and_pruned_ones() {
    let node = host_node("3node0");
    let dir = TempDir::new("era-pay");
    let server = RawServer::new();
    let _agent = server.start_agent(&dir, &[&node]);
    let mut peer = server.accept();

    // Before any chain data: no era, nothing counted, and no error hides it.
    let first = peer.summary_where("a check of the node", |s| {
        s["payout_info"]["payout_checks"][&node.name].is_object()
    });
    let check = &first["payout_info"]["payout_checks"][&node.name];
    assert!(check["current_era"].is_null(), "{first}");
    assert!(check["unclaimed_payouts"].is_null(), "{first}");
    assert!(first["era"]["active_era"].is_null(), "{first}");

    let session_keys = peer.rotate_keys(&node);
    let stash = AccountId32([0x51; 32]);
    let controller = AccountId32([0x52; 32]);
    let someone = AccountId32([0x53; 32]);
    let mut chain = Storage::default();
    chain
        .active_era(100)
        .set_keys(stash, &session_keys)
        .session_validators(&[someone, stash])
        .bond(stash, controller, vec![95]);
    // Counted: one page, nothing claimed.
    chain.reward(99).points_and_exposure(99, stash, 1);
    // Not counted: both pages claimed (out of order).
    chain
        .reward(98)
        .points_and_exposure(98, stash, 2)
        .claimed(98, stash, vec![1, 0]);
    // Counted: two of three pages claimed.
    chain
        .reward(97)
        .points_and_exposure(97, stash, 3)
        .claimed(97, stash, vec![0, 2]);
    // Not counted: pruned (points and exposure left, no ErasValidatorReward).
    chain.points_and_exposure(96, stash, 1);
    // Not counted: claimed before paged rewards (legacy_claimed_rewards).
    chain.reward(95).points_and_exposure(95, stash, 2);
    // Not counted: the stash earned no points.
    chain
        .reward(94)
        .put(
            keys::staking_eras_reward_points(94),
            &EraRewardPoints {
                total: 40,
                individual: [(someone, 40)].into(),
            },
        )
        .put(
            keys::staking_eras_stakers_overview(94, &stash),
            &PagedExposureMetadata {
                total: 1_000,
                own: 1_000,
                nominator_count: 0,
                page_count: 1,
            },
        );
    // Counted: own stake only (page_count 0 is one page).
    chain.reward(93).points_and_exposure(93, stash, 0);
    // Counted: the oldest era of the window (100 - 84).
    chain.reward(16).points_and_exposure(16, stash, 1);
    // Not counted: older than the history depth.
    chain.reward(15).points_and_exposure(15, stash, 1);
    // Not counted: the active era has not ended.
    chain.points_and_exposure(100, stash, 1);
    chain.write_to(&node, &dir);

    let summary = peer.summary_where("current_era 100", |s| {
        s["payout_info"]["payout_checks"][&node.name]["current_era"] == 100
    });
    let check = &summary["payout_info"]["payout_checks"][&node.name];
    assert_eq!(
        check["unclaimed_payouts"], 4,
        "eras 99, 97, 93 and 16: {summary}"
    );
    assert_eq!(check["synced"], true, "{summary}");
    assert_eq!(check["validator_account"], ss58(&stash), "{summary}");
    assert!(check["error"].is_null(), "{summary}");
    assert_eq!(summary["era"]["active_era"], 100, "{summary}");
    assert!(summary["timestamp"].is_i64(), "{summary}");
    assert_eq!(
        summary["payout_info"]["timestamp"], summary["timestamp"],
        "{summary}"
    );

    // Era 99's page is claimed: one fewer, and no other count on the way.
    chain.claimed(99, stash, vec![0]);
    chain.write_to(&node, &dir);
    let deadline = Instant::now() + WAIT;
    loop {
        let Some(frame) = peer.next(deadline) else {
            panic!("the count never went to 3:\n{}", peer.tail());
        };
        if frame["type"] != "summary" {
            continue;
        }
        let n = &frame["data"]["payout_info"]["payout_checks"][&node.name]["unclaimed_payouts"];
        if *n == 3 {
            break;
        }
        assert_eq!(*n, 4, "{frame}");
    }

    // A node that is syncing reads an old state: no count, and its era is
    // not the fleet's.
    chain.syncing = true;
    chain.write_to(&node, &dir);
    let summary = peer.summary_where("synced false", |s| {
        s["payout_info"]["payout_checks"][&node.name]["synced"] == false
    });
    let check = &summary["payout_info"]["payout_checks"][&node.name];
    assert!(check["unclaimed_payouts"].is_null(), "{summary}");
    assert!(summary["era"]["active_era"].is_null(), "{summary}");
}

// --- The era watch ------------------------------------------------------------------------

struct Stashes {
    a: AccountId32,
    b: AccountId32,
    c: AccountId32,
}

const STASHES: Stashes = Stashes {
    a: AccountId32([0xA1; 32]),
    b: AccountId32([0xB1; 32]),
    c: AccountId32([0xC1; 32]),
};

/// The fleet's chain at `era`: each node's keys registered to its stash.
fn chain_at(era: u32, a: (&SessionKeys, AccountId32), b: (&SessionKeys, AccountId32)) -> Storage {
    let mut chain = Storage::default();
    chain.active_era(era).set_keys(a.1, a.0).set_keys(b.1, b.0);
    chain
}

/// Wait until a summary reports `era` with both nodes seen without error.
fn summary_at(peer: &mut Peer, era: u32, nodes: &[&Node]) -> Value {
    peer.summary_where(&format!("era {era} and every node read"), |s| {
        s["era"]["active_era"] == era
            && nodes.iter().all(|n| {
                let check = &s["payout_info"]["payout_checks"][&n.name];
                check["current_era"] == era && check["error"].is_null()
            })
    })
}

#[test]
fn an_era_change_raises_one_event_per_changed_node_and_an_agent_restart_repeats_none() {
    let (na, nb) = (host_node("3node0"), host_node("3node1"));
    let nodes = [&na, &nb];
    let dir = TempDir::new("era-watch");
    let server = RawServer::new();
    let mut agent = server.start_agent(&dir, &nodes);
    let mut peer = server.accept();
    let keys_a = peer.rotate_keys(&na);
    let keys_b = peer.rotate_keys(&nb);
    let s = STASHES;

    // Era 100, the baseline: B validates, A is registered but waiting.
    let mut chain = chain_at(100, (&keys_a, s.a), (&keys_b, s.b));
    chain.session_validators(&[s.b]);
    chain.write_to_all(&nodes, &dir);
    let summary = summary_at(&mut peer, 100, &nodes);
    assert_eq!(
        summary["payout_info"]["payout_checks"][&na.name]["validator_account"],
        ss58(&s.a)
    );
    peer.drain_for(Duration::from_secs(2));
    assert_eq!(
        validator_events(&peer.frames),
        vec![],
        "the first era seen is only the baseline"
    );

    // Era 101: A joins the set, B leaves it.
    let mut chain = chain_at(101, (&keys_a, s.a), (&keys_b, s.b));
    chain.session_validators(&[s.a]);
    chain.write_to_all(&nodes, &dir);
    let events = collect_events(
        &mut peer,
        &[
            ("validator_activated", &na.name),
            ("validator_deactivated", &nb.name),
        ],
    );
    assert_eq!(
        events.len(),
        2,
        "exactly one event per changed node: {events:?}"
    );
    let activated = event_of(&events, "validator_activated", &na);
    assert_eq!(activated["era"], 101, "{activated}");
    assert_eq!(activated["validator_account"], ss58(&s.a), "{activated}");
    assert_eq!(activated["is_authority"], true, "{activated}");
    assert!(activated["previous_validator"].is_null(), "{activated}");
    assert!(activated["timestamp"].is_i64(), "{activated}");
    let deactivated = event_of(&events, "validator_deactivated", &nb);
    assert_eq!(deactivated["era"], 101, "{deactivated}");
    assert_eq!(
        deactivated["previous_validator"],
        ss58(&s.b),
        "{deactivated}"
    );
    assert!(deactivated["validator_account"].is_null(), "{deactivated}");
    assert_ne!(activated["event_id"], deactivated["event_id"]);
    for e in &events {
        assert_eq!(
            e["data"]["event_id"].as_str().map(str::is_empty),
            Some(false)
        );
    }

    // Not acked: an agent restart resends both, as they were, and raises
    // nothing new.
    agent.restart();
    let mut peer = server.accept();
    let resent = collect_events(
        &mut peer,
        &[
            ("validator_activated", &na.name),
            ("validator_deactivated", &nb.name),
        ],
    );
    assert_eq!(
        resent, events,
        "the unacked events, resent unchanged and once each"
    );
    for e in &resent {
        peer.ack_event(e);
    }
    summary_at(&mut peer, 101, &nodes);

    // Acked: the next restart sends no validator event at all.
    agent.restart();
    let mut peer = server.accept();
    let frames = peer.drain_for(QUIET);
    let summaries = frames.iter().filter(|f| f["type"] == "summary").count();
    assert!(summaries >= 2, "the watch ran: {frames:?}");
    assert_eq!(validator_events(&frames), vec![], "{frames:?}");

    // Era 102 begins while the agent is down: A's keys are now registered to
    // another stash (C), which validates. The watch's saved state makes it
    // validator_changed for A after the start, and nothing for B (waiting).
    agent.kill();
    drop(peer);
    let mut chain = chain_at(102, (&keys_a, s.c), (&keys_b, s.b));
    chain.session_validators(&[s.c]);
    chain.write_to_all(&nodes, &dir);
    agent.restart();
    let mut peer = server.accept();
    let events = collect_events(&mut peer, &[("validator_changed", &na.name)]);
    assert_eq!(events.len(), 1, "{events:?}");
    let changed = event_of(&events, "validator_changed", &na);
    assert_eq!(changed["era"], 102, "{changed}");
    assert_eq!(changed["validator_account"], ss58(&s.c), "{changed}");
    assert_eq!(changed["previous_validator"], ss58(&s.a), "{changed}");
    assert_eq!(changed["is_authority"], true, "{changed}");
}

/// The agent's era watch state file, once it holds `era`.
fn wait_watch_era(agent: &AgentProc, era: u32) {
    let path = agent.state_dir.join("era_watch.json");
    let deadline = Instant::now() + WAIT;
    loop {
        let state: Option<Value> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if state.as_ref().is_some_and(|s| s["era"] == era) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the era watch never reached era {era}: {state:?}\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The validator events in the server's `events.jsonl`.
fn stored_validator_events(data_dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(data_dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("validator_"))
        })
        .collect()
}

/// The `session_key` a command's result carries, from the server's output.
fn rotated_keys(server: &mut ServerProc, agent_id: &str, node: &Node) -> SessionKeys {
    let id = server.send(&format!("send {agent_id} rotate_keys {}", node.name));
    let head = server.outcome(&id, WAIT);
    assert!(head.contains("completed"), "{head}");
    let mut text = head
        .split_once("completed: ")
        .map(|(_, inline)| inline.to_string())
        .unwrap_or_default();
    let deadline = Instant::now() + WAIT;
    let result = loop {
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            break v;
        }
        assert!(Instant::now() < deadline, "no result: {text}");
        text.push_str(&server.out.wait_until(|_| true, WAIT, "result body"));
        text.push('\n');
    };
    warden::chain::split_session_keys(result["session_key"].as_str().unwrap()).unwrap()
}

#[test]
fn validator_events_are_stored_once_across_server_and_agent_restarts() {
    let (na, nb) = (host_node("3node0"), host_node("3node1"));
    let nodes = [&na, &nb];
    let dir = TempDir::new("era-durable");
    let data_dir = dir.join("server");
    let agent_id = unique("agent");
    let token = token_add(&data_dir, &agent_id);
    let mut server = ServerProc::start(&data_dir, &[]);
    let mut agent = AgentProc::start(
        dir.path(),
        &server.url(),
        &agent_id,
        &token,
        &agent_config(&nodes),
        &[],
    );
    let connected = format!("* {agent_id} connected");
    server.out.wait_for(&connected, WAIT);
    let keys_a = rotated_keys(&mut server, &agent_id, &na);
    let keys_b = rotated_keys(&mut server, &agent_id, &nb);
    let s = STASHES;

    let mut chain = chain_at(100, (&keys_a, s.a), (&keys_b, s.b));
    chain.session_validators(&[s.b]);
    chain.write_to_all(&nodes, &dir);
    wait_watch_era(&agent, 100);

    let mut chain = chain_at(101, (&keys_a, s.a), (&keys_b, s.b));
    chain.session_validators(&[s.a]);
    chain.write_to_all(&nodes, &dir);
    let printed = |kind: &str, node: &Node| {
        let (kind, node) = (kind.to_string(), format!("node={}", node.name));
        move |l: &str| l.contains(&format!("] {kind} ")) && l.contains(&node)
    };
    let line = server.out.wait_until(
        printed("validator_activated", &na),
        WAIT,
        "validator_activated for A",
    );
    assert!(
        line.contains(&format!("validator_account={}", ss58(&s.a))),
        "{line}"
    );
    assert!(line.contains("era=101"), "{line}");
    let line = server.out.wait_until(
        printed("validator_deactivated", &nb),
        WAIT,
        "validator_deactivated for B",
    );
    assert!(
        line.contains(&format!("previous_validator={}", ss58(&s.b))),
        "{line}"
    );

    // The server goes down and comes back; then the agent does.
    server.restart();
    server.out.wait_for(&connected, WAIT);
    agent.restart();
    server.out.wait_for(&connected, WAIT);
    let later = server.out.drain_for(QUIET);
    assert!(
        !later.iter().any(|l| l.contains("] validator_")),
        "no event printed again: {later:?}"
    );

    let stored = stored_validator_events(&data_dir);
    let kinds: Vec<(&str, &str)> = stored
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["data"]["node"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("validator_activated", na.name.as_str()),
            ("validator_deactivated", nb.name.as_str())
        ],
        "each event stored once: {stored:?}"
    );
    for e in &stored {
        assert_eq!(e["agent"], agent_id.as_str(), "{e}");
        assert_eq!(e["data"]["era"], 101, "{e}");
        assert_eq!(e["event_id"], e["data"]["event_id"], "{e}");
    }
    assert_eq!(stored[0]["data"]["validator_account"], ss58(&s.a));
    assert_eq!(stored[1]["data"]["previous_validator"], ss58(&s.b));
}

// --- What the watch must not get wrong -------------------------------------------------

/// `Session.Validators` that cannot be decoded: one account announced, two
/// bytes given. Reading the node's status fails after its era is read.
fn unreadable_validators(chain: &mut Storage) {
    chain.put_raw(keys::session_validators(), &[0x04, 0x01]);
}

#[test]
fn a_node_unreadable_when_the_era_changes_is_reported_once_it_reads_again() {
    let node = host_node("3node0");
    let dir = TempDir::new("era-retry");
    let server = RawServer::new();
    let _agent = server.start_agent(&dir, &[&node]);
    let mut peer = server.accept();
    let session_keys = peer.rotate_keys(&node);
    let stash = STASHES.a;
    let mut chain = Storage::default();
    chain
        .active_era(100)
        .set_keys(stash, &session_keys)
        .session_validators(&[stash]);
    chain.write_to(&node, &dir);
    summary_at(&mut peer, 100, &[&node]);

    // Era 101 begins while the node's state cannot be read.
    chain.active_era(101);
    unreadable_validators(&mut chain);
    chain.write_to(&node, &dir);
    peer.summary_where("era 101 with the node in error", |s| {
        let check = &s["payout_info"]["payout_checks"][&node.name];
        s["era"]["active_era"] == 101 && !check["error"].is_null()
    });
    // It reads again, still in era 101: the stash left the set.
    chain.session_validators(&[]);
    chain.write_to(&node, &dir);
    let events = collect_events(&mut peer, &[("validator_deactivated", &node.name)]);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["era"], 101, "{events:?}");
}

#[test]
fn a_syncing_node_raises_no_event_from_its_old_state() {
    let (na, nb) = (host_node("3node0"), host_node("3node1"));
    let nodes = [&na, &nb];
    let dir = TempDir::new("era-sync");
    let server = RawServer::new();
    let _agent = server.start_agent(&dir, &nodes);
    let mut peer = server.accept();
    let keys_a = peer.rotate_keys(&na);
    let keys_b = peer.rotate_keys(&nb);
    let s = STASHES;
    let mut chain = chain_at(100, (&keys_a, s.a), (&keys_b, s.b));
    chain.session_validators(&[s.a, s.b]);
    chain.write_to_all(&nodes, &dir);
    summary_at(&mut peer, 100, &nodes);

    // Era 101, nothing changed; B is syncing and its finalized state is
    // still era 99's, when B's stash was not in the set yet.
    let mut now = chain_at(101, (&keys_a, s.a), (&keys_b, s.b));
    now.session_validators(&[s.a, s.b]);
    now.write_to(&na, &dir);
    let mut stale = chain_at(99, (&keys_a, s.a), (&keys_b, s.b));
    stale.session_validators(&[s.a]);
    stale.syncing = true;
    stale.write_to(&nb, &dir);
    peer.summary_where("era 101 with B syncing", |s| {
        s["era"]["active_era"] == 101
            && s["payout_info"]["payout_checks"][&nb.name]["synced"] == false
    });
    // B catches up.
    now.write_to(&nb, &dir);
    summary_at(&mut peer, 101, &nodes);
    peer.drain_for(QUIET);
    assert_eq!(validator_events(&peer.frames), vec![]);
}

#[test]
fn keys_rotated_and_not_yet_registered_do_not_hide_the_validator() {
    let node = host_node("3node0");
    let dir = TempDir::new("era-rot");
    let server = RawServer::new();
    let _agent = server.start_agent(&dir, &[&node]);
    let mut peer = server.accept();
    let first = peer.rotate_keys(&node);
    let stash = STASHES.a;
    let mut chain = Storage::default();
    chain
        .active_era(100)
        .set_keys(stash, &first)
        .session_validators(&[stash]);
    chain.write_to(&node, &dir);
    summary_at(&mut peer, 100, &[&node]);

    // The operator rotates again and has not called session.setKeys yet: the
    // node still validates with the first set, which its keystore keeps.
    peer.rotate_keys(&node);
    chain.active_era(101);
    chain.write_to(&node, &dir);
    let summary = summary_at(&mut peer, 101, &[&node]);
    peer.drain_for(QUIET);
    assert_eq!(validator_events(&peer.frames), vec![]);
    assert_eq!(
        summary["payout_info"]["payout_checks"][&node.name]["validator_account"],
        ss58(&stash),
        "{summary}"
    );
}

#[test]
fn a_node_whose_keystore_holds_several_key_sets_is_seen_active() {
    let (node, port) = host_node_on("3node0");
    // Keys made by hand, twice (rotation deletes no key): warden knows
    // neither set and finds them in the keystore.
    rotate_by_hand(&node, port);
    let registered = rotate_by_hand(&node, port);
    let dir = TempDir::new("era-keystore");
    let server = RawServer::new();
    let _agent = server.start_agent(&dir, &[&node]);
    let mut peer = server.accept();
    let stash = STASHES.a;
    let mut chain = Storage::default();
    chain
        .active_era(100)
        .set_keys(stash, &registered)
        .session_validators(&[]);
    chain.write_to(&node, &dir);
    let summary = summary_at(&mut peer, 100, &[&node]);
    assert_eq!(
        summary["payout_info"]["payout_checks"][&node.name]["validator_account"],
        ss58(&stash),
        "{summary}"
    );

    chain.active_era(101).session_validators(&[stash]);
    chain.write_to(&node, &dir);
    let events = collect_events(&mut peer, &[("validator_activated", &node.name)]);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["validator_account"], ss58(&stash));
}

#[test]
fn a_node_unreadable_at_the_baseline_is_not_reported_activated_later() {
    let (na, nb) = (host_node("3node0"), host_node("3node1"));
    let nodes = [&na, &nb];
    let dir = TempDir::new("era-base");
    let server = RawServer::new();
    let _agent = server.start_agent(&dir, &nodes);
    let mut peer = server.accept();
    let keys_a = peer.rotate_keys(&na);
    let keys_b = peer.rotate_keys(&nb);
    let s = STASHES;
    // Both validate in era 100, but B's state cannot be read then.
    let mut chain = chain_at(100, (&keys_a, s.a), (&keys_b, s.b));
    chain.session_validators(&[s.a, s.b]);
    chain.write_to(&na, &dir);
    let mut broken = chain.clone();
    unreadable_validators(&mut broken);
    broken.write_to(&nb, &dir);
    peer.summary_where("era 100 with B in error", |s| {
        s["era"]["active_era"] == 100
            && !s["payout_info"]["payout_checks"][&nb.name]["error"].is_null()
    });
    // Era 101: both still validate; B reads again.
    chain.active_era(101);
    chain.write_to_all(&nodes, &dir);
    summary_at(&mut peer, 101, &nodes);
    peer.drain_for(QUIET);
    assert_eq!(
        validator_events(&peer.frames),
        vec![],
        "B was active before and after: nothing changed that the watch saw"
    );
}
