//! Session keys and validator identity against test-node containers: the
//! node makes real keystore files; on-chain storage comes from a fixture the
//! test writes into the node's control file, with keys computed by warden's
//! chain module (itself checked against substrate-interface's vectors).
use crate::support::*;
use serde_json::json;
use warden::chain::scale::Encode;
use warden::chain::types::DisabledValidators;
use warden::chain::{AccountId32, keys};

/// Replace the node's storage fixture (`/root/data/testnode.json`) with these
/// (key, SCALE value) pairs.
fn set_storage(node: &Node, dir: &TempDir, storage: &[(Vec<u8>, Vec<u8>)]) {
    let mut chain = ChainState::default();
    for (key, value) in storage {
        chain.put_raw(key.clone(), value);
    }
    chain.write_to(node, dir);
}

#[test]
fn rotate_check_and_has_keys_round_trip_with_a_real_keystore() {
    let n0 = Node::start("3node0");
    let mut f = Fleet::start(&[&n0], lifecycle_policy(), &[]);
    let a = f.agent_id.clone();
    assert!(n0.keystore_files().is_empty());

    let id = f.server.send(&format!("send {a} rotate_keys {}", n0.name));
    let rotated = f.server.json_result(&id);
    let session_key = rotated["session_key"].as_str().unwrap().to_string();
    assert_eq!(session_key.len(), 2 + 192);
    let gran = rotated["keys"]["gran"].as_str().unwrap().to_string();
    let babe = rotated["keys"]["babe"].as_str().unwrap().to_string();
    assert_eq!(&session_key[2..66], &gran[2..], "gran comes first");
    assert_eq!(
        n0.keystore_files().len(),
        3,
        "one keystore file per key type"
    );
    assert!(
        f.server
            .out
            .seen
            .iter()
            .any(|l| l.contains("] key_update") && l.contains(&n0.name)),
        "the rotation's event"
    );
    f.server.type_line(&format!("keys {a}"));
    assert!(
        f.server
            .out
            .wait_for("rotate_keys", WAIT)
            .contains(&session_key)
    );

    for (key, key_type, expect) in [
        (&gran, "gran", "true"),
        (&babe, "babe", "true"),
        (&gran, "babe", "false"),
    ] {
        let id = f.server.send(&format!(
            "send {a} has_key {} public_key={key} key_type={key_type}",
            n0.name
        ));
        assert!(
            f.server
                .outcome(&id, WAIT)
                .ends_with(&format!("completed: {expect}")),
            "{key_type}"
        );
    }
    let id = f
        .server
        .send(&format!("send {a} has_session_keys {}", n0.name));
    assert!(
        f.server.outcome(&id, WAIT).ends_with("completed: true"),
        "defaults to the rotated keys"
    );
    let other = format!("0x{}", "ab".repeat(96));
    let id = f.server.send(&format!(
        "send {a} has_session_keys {} session_keys={other}",
        n0.name
    ));
    assert!(f.server.outcome(&id, WAIT).ends_with("completed: false"));

    let id = f.server.send(&format!("send {a} check_keys {}", n0.name));
    let check = f.server.json_result(&id);
    assert_eq!(check["all_present"], true, "{check}");
    assert_eq!(check["keys"]["imon"]["present"], true, "{check}");
    let id = f.server.send(&format!(
        "send {a} check_keys {} public_keys.gran={gran} public_keys.babe={gran}",
        n0.name
    ));
    let check = f.server.json_result(&id);
    assert_eq!(
        (
            check["keys"]["gran"]["present"].as_bool(),
            check["keys"]["babe"]["present"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert!(
        check["verdict"].as_str().unwrap().contains("babe"),
        "{check}"
    );

    // rotate_to_check makes new keys: a second key set joins the keystore.
    let id = f.server.send(&format!(
        "send {a} check_keys {} rotate_to_check=true",
        n0.name
    ));
    let check = f.server.json_result(&id);
    assert_eq!(check["all_present"], true, "{check}");
    assert_eq!(
        n0.keystore_files().len(),
        6,
        "rotation adds keys and deletes none"
    );
}

#[test]
fn find_validator_reads_the_stash_from_chain_storage() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("findval");
    let mut f = Fleet::start(&[&n0], lifecycle_policy(), &[]);
    let a = f.agent_id.clone();
    let id = f.server.send(&format!("send {a} rotate_keys {}", n0.name));
    let rotated = f.server.json_result(&id);
    let session_key = rotated["session_key"].as_str().unwrap().to_string();
    let split = warden::chain::split_session_keys(&session_key).unwrap();

    let stash = AccountId32([7; 32]);
    let someone = AccountId32([9; 32]);
    let mut storage: Vec<(Vec<u8>, Vec<u8>)> = split
        .public_keys()
        .iter()
        .map(|(t, k)| (keys::session_key_owner(*t, k), stash.encode()))
        .collect();
    storage.push((keys::session_validators(), vec![someone, stash].encode()));
    storage.push((
        keys::session_disabled_validators(),
        DisabledValidators::Indices(vec![]).encode(),
    ));
    set_storage(&n0, &dir, &storage);

    let id = f
        .server
        .send(&format!("send {a} find_validator {}", n0.name));
    let found = f.server.json_result(&id);
    assert_eq!(
        found["validator_account"],
        warden::chain::ss58::encode(&stash, 42).unwrap(),
        "{found}"
    );
    assert!(
        found["validator_account"]
            .as_str()
            .unwrap()
            .starts_with('5')
    );
    assert_eq!(
        (
            found["is_authority"].as_bool(),
            found["is_active_validator"].as_bool()
        ),
        (Some(true), Some(true)),
        "{found}"
    );

    // Disabled in this session: still the owner, no longer active.
    storage.pop();
    storage.push((
        keys::session_disabled_validators(),
        DisabledValidators::Indices(vec![1]).encode(),
    ));
    set_storage(&n0, &dir, &storage);
    let id = f
        .server
        .send(&format!("send {a} find_validator {}", n0.name));
    assert_eq!(f.server.json_result(&id)["is_active_validator"], false);

    // Keys that nobody registered.
    let nobody = format!("0x{}", "cd".repeat(96));
    let id = f.server.send(&format!(
        "send {a} find_validator {} session_keys={nobody}",
        n0.name
    ));
    let found = f.server.json_result(&id);
    assert!(found["validator_account"].is_null(), "{found}");
    assert!(
        found["note"].as_str().unwrap().contains("belong to no one"),
        "{found}"
    );
}

#[test]
fn find_validator_without_keys_reads_the_keystore_and_the_log_hint_needs_no_rpc() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("keystore-find");
    // Keys made on the node directly, never through warden (retried until its RPC is up).
    let split = rotate_by_hand_in(&n0);
    let stash = AccountId32([5; 32]);
    let mut storage: Vec<(Vec<u8>, Vec<u8>)> = split
        .public_keys()
        .iter()
        .map(|(t, k)| (keys::session_key_owner(*t, k), stash.encode()))
        .collect();
    storage.push((keys::session_validators(), vec![stash].encode()));
    storage.push((
        keys::session_disabled_validators(),
        DisabledValidators::Indices(vec![]).encode(),
    ));
    set_storage(&n0, &dir, &storage);
    let mut f = Fleet::start(&[&n0], lifecycle_policy(), &[]);
    let a = f.agent_id.clone();
    let id = f
        .server
        .send(&format!("send {a} find_validator {}", n0.name));
    let found = f.server.json_result(&id);
    assert_eq!(
        found["validator_account"],
        warden::chain::ss58::encode(&stash, 42).unwrap(),
        "{found}"
    );
    assert_eq!(found["is_active_validator"], true, "{found}");

    // The fast hint reads the log only: it works with the RPC hanging.
    let hang = docker(&[
        "exec",
        &n0.name,
        "sh",
        "-c",
        "echo '{\"hang_rpc\": true}' > /root/data/testnode.json",
    ]);
    assert!(hang.status.success());
    let id = f.server.send(&format!(
        "send {a} find_validator {} deep_search=false",
        n0.name
    ));
    let found = f.server.json_result(&id);
    assert_eq!(found["is_authority"], true, "{found}");
}

#[test]
fn a_command_to_a_node_whose_rpc_hangs_times_out_within_the_bound() {
    let n0 = Node::start("3node0");
    let mut f = Fleet::start(&[&n0], lifecycle_policy(), &[]);
    f.reconfigure(|c| c["rpc"] = json!({"timeout_s": 2}));
    let hang = docker(&[
        "exec",
        &n0.name,
        "sh",
        "-c",
        "echo '{\"hang_rpc\": true}' > /root/data/testnode.json",
    ]);
    assert!(hang.status.success());
    let started = std::time::Instant::now();
    let id = f
        .server
        .send(&format!("send {} rotate_keys {}", f.agent_id, n0.name));
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains("failed (timeout)"), "{line}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    // Down is unavailable, and the agent keeps serving.
    assert!(docker(&["stop", &n0.name]).status.success());
    let id = f.server.send(&format!(
        "send {} has_key {} public_key=0x{} key_type=gran",
        f.agent_id,
        n0.name,
        "11".repeat(32)
    ));
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains("failed (unavailable)"), "{line}");
    let id = f
        .server
        .send(&format!("send {} status {}", f.agent_id, n0.name));
    assert!(f.server.outcome(&id, WAIT).contains("completed"));
}

#[test]
fn two_containers_holding_the_same_keys_raise_the_alert_and_different_keys_do_not() {
    let n0 = Node::start("3node0");
    let n1 = Node::start("3node1");
    let n2 = Node::start("3node2");
    let dir = TempDir::new("dupkeys");
    let mut f = Fleet::start(&[&n0, &n1, &n2], lifecycle_policy(), &[]);
    // Keystore listings reach the server with stats after each summary run.
    f.reconfigure(|c| c["summary_interval_s"] = json!(1));
    let a = f.agent_id.clone();
    for n in [&n0, &n2] {
        let id = f.server.send(&format!("send {a} rotate_keys {}", n.name));
        f.server.outcome(&id, WAIT);
    }
    // n0 and n2 have different keys: no alert within a few reports.
    let quiet = f.server.out.drain_for(std::time::Duration::from_secs(5));
    assert!(!quiet.iter().any(|l| l.contains("DUPLICATE")), "{quiet:?}");
    // Copy n0's keystore into n1, as a careless restore would.
    let copy = dir.join("keystore");
    assert!(
        docker(&[
            "cp",
            &format!("{}:/root/data/chains/creditcoin3/keystore", n0.name),
            &copy.display().to_string()
        ])
        .status
        .success()
    );
    assert!(
        docker(&[
            "cp",
            &format!("{}/.", copy.display()),
            &format!("{}:/root/data/chains/creditcoin3/keystore", n1.name)
        ])
        .status
        .success()
    );
    let alert = f
        .server
        .out
        .wait_for("DUPLICATE SESSION KEY", std::time::Duration::from_secs(60));
    assert!(
        alert.contains(&n0.name) && alert.contains(&n1.name) && !alert.contains(&n2.name),
        "{alert}"
    );
}
