//! Every alert rule end to end (issue 12): real agent, server with
//! `--alerts`, real test-node containers, and the local receiver of
//! [`crate::alert_support`]. Each condition is produced for real on the
//! node: its control file (peers, syncing, hang_rpc, finality_lag), a block time of an
//! hour (a height that does not move), keystore files copied between
//! containers, a backup directory that cannot be created. Each notice must
//! reach the receiver exactly once as firing and once as resolved; one rule
//! repeats on schedule. Rules not covered here, and why: docs/operations.md.
use crate::alert_support::*;
use crate::support::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden::chain::{AccountId32, SessionKeys};

/// How long a condition may take to reach the receiver (stats every 1 s,
/// short `for_s`, a loaded machine).
const FIRE: Duration = Duration::from_secs(60);
/// How long to keep listening for a notice that must not come.
const QUIET: Duration = Duration::from_secs(4);

/// The test node's database, inside the container.
const GENESIS: &str = "/root/data/chains/creditcoin3/paritydb/full/testnode-genesis";

fn expect_exactly(bodies: &Mutex<Vec<Value>>, expected: &[(&str, &str)]) {
    let mut want = std::collections::BTreeMap::new();
    for (rule, container) in expected {
        for status in ["firing", "resolved"] {
            want.insert(
                (rule.to_string(), container.to_string(), status.to_string()),
                1,
            );
        }
    }
    assert_eq!(tally(bodies), want, "each notice exactly once");
}

#[test]
fn node_rules_fire_once_and_resolve_once_on_real_nodes() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(0, bodies.clone());
    let dir = TempDir::new("alert-rules-node");
    let lonely = Node::start("alert-rules-peers");
    let syncing = Node::start("alert-rules-sync");
    let hung = Node::start("alert-rules-hang");
    let frozen = frozen_node("alert-rules-stall");
    write_control(&lonely, &dir, &json!({"peers": 0}));
    write_control(&syncing, &dir, &json!({"syncing": true}));
    write_control(&hung, &dir, &json!({"hang_rpc": true}));
    let alerts = alerts_file(
        &dir,
        &receiver,
        3600,
        json!({
            "NodeLowPeers": {"threshold": 2, "for_s": 1},
            "NodeSyncing": {"for_s": 1},
            "NodeRpcUnreachable": {"for_s": 3},
            "NodeStalled": {"threshold": STALL_S},
        }),
    );
    let mut f = alert_fleet(
        &[&lonely, &syncing, &hung, &frozen],
        json!({"allow": ["status"]}),
        &alerts,
    );
    let low = wait_count(&bodies, "NodeLowPeers", &lonely.name, "firing", 1, FIRE);
    let summary = low["alerts"][0]["annotations"]["summary"].as_str().unwrap();
    assert!(summary.contains("has 0 peers"), "{summary}");
    wait_count(&bodies, "NodeSyncing", &syncing.name, "firing", 1, FIRE);
    wait_count(&bodies, "NodeRpcUnreachable", &hung.name, "firing", 1, FIRE);
    let stalled = wait_count(&bodies, "NodeStalled", &frozen.name, "firing", 1, FIRE);
    let summary = stalled["alerts"][0]["annotations"]["summary"]
        .as_str()
        .unwrap();
    assert!(summary.contains("is stuck at #0"), "{summary}");

    // The conditions clear for real: peers back, sync done, RPC answering,
    // and the frozen node restarted on a genesis two hours old (best #2).
    for node in [&lonely, &syncing, &hung] {
        write_control(node, &dir, &json!({}));
    }
    unfreeze(&frozen, &dir);
    wait_count(&bodies, "NodeLowPeers", &lonely.name, "resolved", 1, FIRE);
    wait_count(&bodies, "NodeSyncing", &syncing.name, "resolved", 1, FIRE);
    wait_count(
        &bodies,
        "NodeRpcUnreachable",
        &hung.name,
        "resolved",
        1,
        FIRE,
    );
    wait_count(&bodies, "NodeStalled", &frozen.name, "resolved", 1, FIRE);
    f.server.out.drain_for(QUIET);
    expect_exactly(
        &bodies,
        &[
            ("NodeLowPeers", &lonely.name),
            ("NodeSyncing", &syncing.name),
            ("NodeRpcUnreachable", &hung.name),
            ("NodeStalled", &frozen.name),
        ],
    );
    drop(receiver);
}

/// `NodeStalled`'s threshold in these tests. A node "unfrozen" by
/// [`unfreeze`] moves once (#0 to #2) and then stays at #2: it would be
/// stalled again this long after, so every check that follows an unfreeze
/// must end well within it.
const STALL_S: u64 = 15;

/// Starts a test node whose height stays where it starts: one block an hour.
fn frozen_node(prefix: &str) -> Node {
    Node::start_with(prefix, &["--validator", "--block-time-ms", "3600000"])
}

/// Restarts `node` on a genesis two hours old: its height moves (#2).
fn unfreeze(node: &Node, dir: &TempDir) {
    let genesis = dir.join(&unique("genesis"));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    std::fs::write(&genesis, (now_ms - 2 * 3_600_000 - 60_000).to_string()).unwrap();
    let into = format!("{}:{GENESIS}", node.name);
    let out = docker(&["cp", &genesis.display().to_string(), &into]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(docker(&["restart", "-t", "1", &node.name]).status.success());
}

#[test]
fn every_node_of_a_chain_stuck_at_one_height_is_named_a_chain_stall() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(0, bodies.clone());
    let dir = TempDir::new("alert-rules-chain");
    let (n0, n1) = (
        frozen_node("alert-rules-chain0"),
        frozen_node("alert-rules-chain1"),
    );
    let alerts = alerts_file(
        &dir,
        &receiver,
        3600,
        json!({"NodeStalled": {"threshold": STALL_S}, "NodeRpcUnreachable": {"for_s": 5}}),
    );
    let mut f = alert_fleet(&[&n0, &n1], json!({"allow": ["status"]}), &alerts);
    for n in [&n0, &n1] {
        let notice = wait_count(&bodies, "NodeStalled", &n.name, "firing", 1, FIRE);
        let summary = notice["alerts"][0]["annotations"]["summary"]
            .as_str()
            .unwrap();
        assert!(
            summary.starts_with("chain stalled: every node of"),
            "{summary}"
        );
        assert!(summary.contains("stopped at #0 (2 nodes"), "{summary}");
    }
    for n in [&n0, &n1] {
        unfreeze(n, &dir);
    }
    for n in [&n0, &n1] {
        wait_count(&bodies, "NodeStalled", &n.name, "resolved", 1, FIRE);
    }
    f.server.out.drain_for(QUIET);
    expect_exactly(
        &bodies,
        &[("NodeStalled", &n0.name), ("NodeStalled", &n1.name)],
    );
    drop(receiver);
}

/// Waits until the node's own log line shows finality at least `lag`
/// blocks behind best: the image must carry the control file's
/// `finality_lag` (a stale `warden-testnode:latest` does not).
fn wait_logged_lag(node: &Node, lag: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = docker(&["logs", "--tail", "5", &node.name]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let number = |l: &str, key: &str| -> Option<u64> {
            let rest = l.split_once(key)?.1;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        let seen = text
            .lines()
            .rev()
            .find_map(|l| Some(number(l, "best: #")?.saturating_sub(number(l, "finalized #")?)));
        if seen.is_some_and(|d| d >= lag) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never showed finality {lag} blocks behind (run scripts/build-test-image: the \
             image must know the control file's finality_lag): {text}",
            node.name
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn finality_lag_fires_once_and_resolves_once() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(0, bodies.clone());
    let dir = TempDir::new("alert-rules-lag");
    let node = Node::start("alert-rules-lag");
    // Finality 30 blocks behind best (the test node's control field).
    write_control(&node, &dir, &json!({"finality_lag": 30}));
    let alerts = alerts_file(
        &dir,
        &receiver,
        3600,
        json!({"NodeFinalityLag": {"threshold": 5, "for_s": 1}}),
    );
    let mut f = alert_fleet(&[&node], json!({"allow": ["status"]}), &alerts);
    wait_logged_lag(&node, 6);
    let lag = wait_count(&bodies, "NodeFinalityLag", &node.name, "firing", 1, FIRE);
    let summary = lag["alerts"][0]["annotations"]["summary"].as_str().unwrap();
    assert!(summary.contains("blocks behind best"), "{summary}");
    // Finality catches up (back to 2 blocks behind).
    write_control(&node, &dir, &json!({}));
    wait_count(&bodies, "NodeFinalityLag", &node.name, "resolved", 1, FIRE);
    f.server.out.drain_for(QUIET);
    expect_exactly(&bodies, &[("NodeFinalityLag", &node.name)]);
    drop(receiver);
}

#[test]
fn a_firing_alert_repeats_on_schedule_and_resolves_once() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(0, bodies.clone());
    let dir = TempDir::new("alert-rules-repeat");
    let node = Node::start("alert-rules-repeat");
    write_control(&node, &dir, &json!({"peers": 0}));
    // 60 s is the shortest repeat the alerts file accepts.
    let alerts = alerts_file(&dir, &receiver, 60, json!({"NodeLowPeers": {"for_s": 0}}));
    let mut f = alert_fleet(&[&node], json!({"allow": ["status"]}), &alerts);
    wait_count(&bodies, "NodeLowPeers", &node.name, "firing", 1, FIRE);
    let first = Instant::now();
    wait_count(
        &bodies,
        "NodeLowPeers",
        &node.name,
        "firing",
        2,
        Duration::from_secs(90),
    );
    let gap = first.elapsed();
    assert!(gap >= Duration::from_secs(55), "repeated after {gap:?}");
    write_control(&node, &dir, &json!({}));
    wait_count(&bodies, "NodeLowPeers", &node.name, "resolved", 1, FIRE);
    f.server.out.drain_for(QUIET);
    assert_eq!(count(&bodies, "NodeLowPeers", &node.name, "firing"), 2);
    assert_eq!(count(&bodies, "NodeLowPeers", &node.name, "resolved"), 1);
    assert_eq!(tally(&bodies).len(), 2, "{:?}", tally(&bodies));
    drop(receiver);
}

#[test]
fn duplicate_session_keys_fire_for_both_holders_and_resolve_when_one_copy_goes() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(0, bodies.clone());
    let dir = TempDir::new("alert-rules-dup");
    let n0 = Node::start("alert-rules-dup0");
    let n1 = Node::start("alert-rules-dup1");
    let alerts = alerts_file(&dir, &receiver, 3600, json!({"DuplicateSessionKeys": {}}));
    let mut f = alert_fleet(&[&n0, &n1], lifecycle_policy(), &alerts);
    // Keystore listings reach the server with stats after each summary run.
    f.reconfigure(|c| c["summary_interval_s"] = json!(1));
    let a = f.agent_id.clone();
    let id = f.server.send(&format!("send {a} rotate_keys {}", n0.name));
    assert!(f.server.outcome(&id, WAIT).contains("completed"));
    // Copy n0's keystore into n1, as a careless restore would.
    n0.copy_keystore_to(&n1, &dir);
    let copied = n1.keystore_files();
    assert!(!copied.is_empty());
    for n in [&n0, &n1] {
        let notice = wait_count(&bodies, "DuplicateSessionKeys", &n.name, "firing", 1, FIRE);
        assert_eq!(notice["alerts"][0]["labels"]["severity"], "critical");
    }
    // The copy goes and n1 restarts without it: both alerts resolve. (The
    // restart is what the agent's keystore cache hears of; a file removed by
    // `docker exec` alone is seen within the cache's MAX_AGE, 300 s.)
    for file in &copied {
        let path = format!("{TESTNODE_KEYSTORE}/{file}");
        assert!(docker(&["exec", &n1.name, "rm", &path]).status.success());
    }
    assert!(docker(&["restart", "-t", "1", &n1.name]).status.success());
    for n in [&n0, &n1] {
        wait_count(
            &bodies,
            "DuplicateSessionKeys",
            &n.name,
            "resolved",
            1,
            FIRE,
        );
    }
    f.server.out.drain_for(QUIET);
    expect_exactly(
        &bodies,
        &[
            ("DuplicateSessionKeys", &n0.name),
            ("DuplicateSessionKeys", &n1.name),
        ],
    );
    drop(receiver);
}

#[test]
fn a_failed_backup_fires_until_one_succeeds_and_a_stale_backup_fires_after_the_threshold() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(0, bodies.clone());
    let dir = TempDir::new("alert-rules-backup");
    let node = Node::start("alert-rules-backup");
    // The backup dir cannot be created: a regular file stands in its way.
    let blocker = dir.join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let stale_s = 25;
    let alerts = alerts_file(
        &dir,
        &receiver,
        3600,
        json!({"BackupFailed": {}, "BackupStale": {"threshold": stale_s}}),
    );
    let started = Instant::now();
    let mut f = alert_fleet(&[&node], lifecycle_policy(), &alerts);
    let backups = blocker.join("backups").display().to_string();
    f.reconfigure(|c| c["backup"] = json!({"dir": backups}));
    let a = f.agent_id.clone();
    let backup = format!("send {a} backup_keys {}", node.name);
    let id = f.server.send(&backup);
    let line = f.server.outcome(&id, FIRE);
    assert!(line.contains("failed ("), "{line}");
    let failed = wait_count(&bodies, "BackupFailed", &node.name, "firing", 1, FIRE);
    let text = failed["alerts"][0]["annotations"]["description"].to_string();
    assert!(text.contains("error"), "{text}");

    // The way is cleared: the next backup succeeds and BackupFailed resolves.
    std::fs::remove_file(&blocker).unwrap();
    std::fs::create_dir(&blocker).unwrap();
    let id = f.server.send(&backup);
    let line = f.server.outcome(&id, FIRE);
    assert!(line.contains("completed"), "{line}");
    let backed_up = Instant::now();
    assert!(
        backed_up - started < Duration::from_secs(stale_s),
        "too slow to tell a stale backup from none: {:?}",
        backed_up - started
    );
    wait_count(&bodies, "BackupFailed", &node.name, "resolved", 1, FIRE);

    // Time passes beyond the threshold: BackupStale fires, about the backup.
    let stale = wait_count(&bodies, "BackupStale", &node.name, "firing", 1, FIRE);
    assert!(backed_up.elapsed() >= Duration::from_secs(stale_s - 2));
    let text = stale["alerts"][0]["annotations"]["description"].to_string();
    assert!(text.contains("newest backup is"), "{text}");
    let id = f.server.send(&backup);
    assert!(f.server.outcome(&id, FIRE).contains("completed"));
    wait_count(&bodies, "BackupStale", &node.name, "resolved", 1, FIRE);
    f.server.out.drain_for(QUIET);
    expect_exactly(
        &bodies,
        &[("BackupFailed", &node.name), ("BackupStale", &node.name)],
    );
    drop(receiver);
}

// --- Validator rules: chain state written into the node's control file -------------------

/// The chain at `era`: the node's keys owned by `owner`, `validators` the
/// session's, `owner` bonded; era 100 ended with a reward for `owner`,
/// claimed or not.
fn chain_at(
    era: u32,
    session_keys: &SessionKeys,
    owner: AccountId32,
    validators: &[AccountId32],
    claimed: bool,
) -> ChainState {
    let mut chain = ChainState::default();
    chain
        .active_era(era)
        .set_keys(owner, session_keys)
        .session_validators(validators)
        .bond(owner, AccountId32([0x52; 32]), vec![])
        .reward(100)
        .points_and_exposure(100, owner, 1);
    if claimed {
        chain.claimed(100, owner, vec![0]);
    }
    chain
}

#[test]
fn validator_rules_follow_the_era_watch_and_unclaimed_payouts_the_chain() {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(0, bodies.clone());
    let dir = TempDir::new("alert-rules-era");
    let node = host_node("alert-rules-era");
    let change_window_s = 10;
    let alerts = alerts_file(
        &dir,
        &receiver,
        3600,
        json!({
            "ValidatorInactive": {},
            "ValidatorChanged": {"threshold": change_window_s},
            // Era 100 unclaimed at era 101 expires in 83 eras: within 90.
            "UnclaimedPayouts": {"threshold": 90},
        }),
    );
    let mut f = alert_fleet(&[&node], lifecycle_policy(), &alerts);
    f.reconfigure(|c| c["summary_interval_s"] = json!(1));
    let a = f.agent_id.clone();
    let session_keys = f.server.rotated_keys(&a, &node);
    let (stash, other) = (AccountId32([0xA1; 32]), AccountId32([0xC1; 32]));

    // Era 100, the baseline: the node validates, era 100's reward claimed.
    chain_at(100, &session_keys, stash, &[stash], true).write_to(&node, &dir);
    f.agent.wait_watch_era(100, FIRE);
    // Era 101: the node has left the active set, and era 100 is unclaimed.
    chain_at(101, &session_keys, stash, &[other], false).write_to(&node, &dir);
    let inactive = wait_count(&bodies, "ValidatorInactive", &node.name, "firing", 1, FIRE);
    let summary = inactive["alerts"][0]["annotations"]["summary"]
        .as_str()
        .unwrap();
    assert!(summary.contains("not in the active set"), "{summary}");
    let unclaimed = wait_count(&bodies, "UnclaimedPayouts", &node.name, "firing", 1, FIRE);
    let summary = unclaimed["alerts"][0]["annotations"]["summary"]
        .as_str()
        .unwrap();
    assert!(summary.starts_with("1 unclaimed eras"), "{summary}");
    // The expiry form: era 100 + 84 - era 101 = 83 eras left.
    assert!(
        unclaimed.to_string().contains("expires in 83 eras"),
        "{unclaimed}"
    );
    // The payout is claimed.
    chain_at(101, &session_keys, stash, &[other], true).write_to(&node, &dir);
    wait_count(&bodies, "UnclaimedPayouts", &node.name, "resolved", 1, FIRE);
    // Era 102: back in the set.
    chain_at(102, &session_keys, stash, &[stash], true).write_to(&node, &dir);
    wait_count(
        &bodies,
        "ValidatorInactive",
        &node.name,
        "resolved",
        1,
        FIRE,
    );
    // Era 103: the node's keys now belong to another stash, which validates.
    chain_at(103, &session_keys, other, &[other], true).write_to(&node, &dir);
    let changed = wait_count(&bodies, "ValidatorChanged", &node.name, "firing", 1, FIRE);
    let text = changed["alerts"][0]["annotations"]["description"].to_string();
    let previous = warden::chain::ss58::encode(&stash, 42).unwrap();
    assert!(text.contains(&previous), "{text}");
    let fired = Instant::now();
    // It stays up for its window, then resolves.
    wait_count(&bodies, "ValidatorChanged", &node.name, "resolved", 1, FIRE);
    assert!(fired.elapsed() >= Duration::from_secs(change_window_s - 3));
    f.server.out.drain_for(QUIET);
    expect_exactly(
        &bodies,
        &[
            ("ValidatorInactive", &node.name),
            ("UnclaimedPayouts", &node.name),
            ("ValidatorChanged", &node.name),
        ],
    );
    drop(receiver);
}
