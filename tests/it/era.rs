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
use std::time::{Duration, Instant};
use warden::chain::types::{EraRewardPoints, PagedExposureMetadata};
use warden::chain::{AccountId32, SessionKeys, keys};

/// How long to watch for something that must not happen: several summaries
/// at `summary_interval_s: 1`.
const QUIET: Duration = Duration::from_secs(4);

fn ss58(account: &AccountId32) -> String {
    warden::chain::ss58::encode(account, 42).unwrap()
}

/// The agent's config: the harness's, with a summary every second.
fn agent_config(nodes: &[&Node]) -> Value {
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let mut config = config_for(&names, lifecycle_policy());
    config["summary_interval_s"] = json!(1);
    config
}

/// The test playing the server of an agent that watches `nodes` with a
/// summary every second: the agent connected and welcomed. Everything is
/// returned so that it lives as long as the test.
fn watch(dir_prefix: &str, nodes: &[&Node]) -> (TempDir, RawServer, AgentProc, Peer) {
    let dir = TempDir::new(dir_prefix);
    let server = RawServer::new();
    let agent = server.start_agent(&dir, &agent_config(nodes));
    let peer = Peer::accept(&server);
    (dir, server, agent, peer)
}

fn is_validator_event(frame: &Value) -> bool {
    frame["type"]
        .as_str()
        .is_some_and(|t| t.starts_with("validator_"))
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
    let (dir, _server, _agent, mut peer) = watch("era-pay", &[&node]);

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
    let mut chain = ChainState::default();
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
fn chain_at(
    era: u32,
    a: (&SessionKeys, AccountId32),
    b: (&SessionKeys, AccountId32),
) -> ChainState {
    let mut chain = ChainState::default();
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
    let (dir, server, mut agent, mut peer) = watch("era-watch", &nodes);
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
    let mut peer = Peer::accept(&server);
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
    let mut peer = Peer::accept(&server);
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
    let mut peer = Peer::accept(&server);
    let events = collect_events(&mut peer, &[("validator_changed", &na.name)]);
    assert_eq!(events.len(), 1, "{events:?}");
    let changed = event_of(&events, "validator_changed", &na);
    assert_eq!(changed["era"], 102, "{changed}");
    assert_eq!(changed["validator_account"], ss58(&s.c), "{changed}");
    assert_eq!(changed["previous_validator"], ss58(&s.a), "{changed}");
    assert_eq!(changed["is_authority"], true, "{changed}");
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
    let keys_a = server.rotated_keys(&agent_id, &na);
    let keys_b = server.rotated_keys(&agent_id, &nb);
    let s = STASHES;

    let mut chain = chain_at(100, (&keys_a, s.a), (&keys_b, s.b));
    chain.session_validators(&[s.b]);
    chain.write_to_all(&nodes, &dir);
    agent.wait_watch_era(100, WAIT);

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
fn unreadable_validators(chain: &mut ChainState) {
    chain.put_raw(keys::session_validators(), &[0x04, 0x01]);
}

#[test]
fn a_node_unreadable_when_the_era_changes_is_reported_once_it_reads_again() {
    let node = host_node("3node0");
    let (dir, _server, _agent, mut peer) = watch("era-retry", &[&node]);
    let session_keys = peer.rotate_keys(&node);
    let stash = STASHES.a;
    let mut chain = ChainState::default();
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
    let (dir, _server, _agent, mut peer) = watch("era-sync", &nodes);
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
    let (dir, _server, _agent, mut peer) = watch("era-rot", &[&node]);
    let first = peer.rotate_keys(&node);
    let stash = STASHES.a;
    let mut chain = ChainState::default();
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
    let (node, port) = Node::start_on_host("3node0");
    // Keys made by hand, twice (rotation deletes no key): warden knows
    // neither set and finds them in the keystore.
    rotate_by_hand(&node, port);
    let registered = rotate_by_hand(&node, port);
    let (dir, _server, _agent, mut peer) = watch("era-keystore", &[&node]);
    let stash = STASHES.a;
    let mut chain = ChainState::default();
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
    let (dir, _server, _agent, mut peer) = watch("era-base", &nodes);
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
