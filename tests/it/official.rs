//! The official image's shape (`gluwa/creditcoin3`): the node runs as the non-root user
//! `creditcoin`, data under `/creditcoin-node/data` (or sc-cli's default base path), the
//! chain given as a spec file. Backup, restore (owner and modes checked inside the
//! container), and the network key kept byte for byte.
use crate::support::*;
use std::time::Duration;

const DATA: &str = "/creditcoin-node/data";
const CHAIN: &str = "/creditcoin-node/data/chains/creditcoin3";

/// An official-shaped validator as Gluwa's docs run it.
pub fn official_node(prefix: &str) -> Node {
    Node::start_image(
        prefix,
        &official_image(),
        &[
            "--validator",
            "--chain",
            "/mainnetSpecRaw.json",
            "--base-path",
            DATA,
        ],
    )
}

/// `uid:gid mode path` of each path below `dir`, as the container sees them.
fn owners_and_modes(node: &Node, dir: &str) -> Vec<String> {
    node.exec_root(&["find", dir, "-exec", "stat", "-c", "%u:%g %a %n", "{}", ";"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn secret(node: &Node) -> String {
    // The test reads the network secret only to compare it before and after.
    node.exec_root(&[
        "od",
        "-An",
        "-tx1",
        &format!("{CHAIN}/network/secret_ed25519"),
    ])
}

fn completed_file(line: &str) -> String {
    line.rsplit("completed: ")
        .next()
        .unwrap()
        .trim()
        .to_string()
}

fn fleet_with_backups(nodes: &[&Node], dir: &TempDir) -> Fleet {
    let mut f = Fleet::start(nodes, allow_all(), &[]);
    f.reconfigure(|c| {
        c["backup"] = serde_json::json!({"dir": dir.join("backups").display().to_string()})
    });
    f
}

#[test]
fn official_shape_backup_and_restore_give_the_node_its_own_files() {
    let n0 = official_node("real-nodes-3node0");
    let dir = TempDir::new("real-nodes-official");
    let mut f = fleet_with_backups(&[&n0], &dir);
    let a = f.agent_id.clone();
    let id = f.server.send(&format!("send {a} rotate_keys {}", n0.name));
    f.server.outcome(&id, WAIT);
    let secret_before = secret(&n0);
    let keystore_before = n0.exec_root(&["ls", "-1", &format!("{CHAIN}/keystore")]);
    assert_eq!(keystore_before.lines().count(), 3, "{keystore_before}");

    let id = f.server.send(&format!("send {a} backup_keys {}", n0.name));
    let line = f.server.outcome(&id, Duration::from_secs(60));
    assert!(line.contains("completed"), "{line}");
    let file = completed_file(&line);
    n0.wait_state("running", WAIT);

    // New keys, a lost network key, then back to the backup.
    let id = f.server.send(&format!("send {a} rotate_keys {}", n0.name));
    f.server.outcome(&id, WAIT);
    n0.exec_root(&["rm", &format!("{CHAIN}/network/secret_ed25519")]);
    f.wait_stats(&n0.name);
    let id = f.server.send(&format!(
        "send {a} restore_keys {} backup_file={file}",
        n0.name
    ));
    let line = f.server.outcome(&id, Duration::from_secs(60));
    assert!(line.contains("completed"), "{line}");
    n0.wait_state("running", WAIT);

    assert_eq!(
        n0.exec_root(&["ls", "-1", &format!("{CHAIN}/keystore")]),
        keystore_before
    );
    assert_eq!(secret(&n0), secret_before, "secret_ed25519 byte for byte");
    for sub in ["keystore", "network"] {
        let listed = owners_and_modes(&n0, &format!("{CHAIN}/{sub}"));
        assert!(listed.len() >= 2, "{listed:?}");
        for row in &listed {
            let want_mode = if row.ends_with(&format!("/{sub}")) {
                "700"
            } else {
                "600"
            };
            assert!(
                row.starts_with(&format!("1000:1000 {want_mode} ")),
                "owned by creditcoin with the node's modes: {row}"
            );
        }
    }
    // The node, as user creditcoin, can read its restored keys: check_keys goes
    // through its RPC (author_hasKey), which reads the keystore.
    wait_rpc_in(&n0);
    let id = f.server.send(&format!("send {a} check_keys {}", n0.name));
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains("completed"), "{line}");
}

#[test]
fn official_shape_without_base_path_uses_the_nodes_own_default() {
    // No --base-path: sc-cli's default, $HOME/.local/share/creditcoin3-node.
    let n0 = Node::start_image(
        "real-nodes-3node0",
        &official_image(),
        &["--validator", "--chain", "/mainnetSpecRaw.json"],
    );
    let dir = TempDir::new("real-nodes-default-base");
    let mut f = fleet_with_backups(&[&n0], &dir);
    let a = f.agent_id.clone();
    let id = f.server.send(&format!("send {a} rotate_keys {}", n0.name));
    f.server.outcome(&id, WAIT);
    let id = f.server.send(&format!("send {a} backup_keys {}", n0.name));
    let line = f.server.outcome(&id, Duration::from_secs(60));
    assert!(line.contains("completed"), "{line}");
    let file = completed_file(&line);
    let archive = dir.join("backups").join(&file);
    let listed = std::process::Command::new("tar")
        .args(["-tzf", &archive.display().to_string()])
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(
        names
            .lines()
            .filter(|l| l.starts_with("keystore/") && l.len() > 9)
            .count(),
        3,
        "{names}"
    );
    assert!(names.contains("network/secret_ed25519"), "{names}");
    let base = "/creditcoin-node/.local/share/creditcoin3-node/chains/creditcoin3";
    assert_eq!(
        n0.exec_root(&["ls", "-1", &format!("{base}/keystore")])
            .lines()
            .count(),
        3
    );
}

#[test]
fn a_restore_killed_between_its_renames_is_recovered_to_a_node_with_a_keystore() {
    let n0 = official_node("real-nodes-3node0");
    let dir = TempDir::new("real-nodes-killed-swap");
    rotate_by_hand_in(&n0);
    let before = n0.exec_root(&["ls", "-1", &format!("{CHAIN}/keystore")]);
    assert_eq!(before.lines().count(), 3);
    // The state a restore leaves when killed after moving the keystore aside and
    // before moving the backup's in: the node runs without keystore/.
    let stage = format!("{CHAIN}/.warden-restore-20250108143000-1");
    let aside = format!("{CHAIN}/keystore.warden-old-20250108143000-1");
    for argv in [
        vec!["mkdir", "-p", stage.as_str()],
        vec!["mv", &format!("{CHAIN}/keystore"), aside.as_str()],
    ] {
        let mut args = vec!["exec", n0.name.as_str()];
        args.extend(argv);
        assert!(docker(&args).status.success(), "{args:?}");
    }
    // A dead process's marker.
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    let backups = dir.join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    std::fs::set_permissions(
        &backups,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let marker = serde_json::json!({
        "version": 1, "operation": "restore", "container": n0.name, "was_running": true,
        "at": "2025-01-08T14:30:00Z", "at_unix": 1736346600u64, "pid": pid,
        "backup_file": format!("{}-keys-20250107-0300.tar.gz", n0.name),
        "phase": "swapping", "chain_path": CHAIN, "stage": stage, "aside": [aside],
        "note": "test"
    });
    std::fs::write(
        backups.join(format!(".inflight-{}.json", n0.name)),
        marker.to_string(),
    )
    .unwrap();
    let config = dir.join("agent.json");
    std::fs::write(
        &config,
        serde_json::json!({"policy": {"containers": [n0.name.clone()]}}).to_string(),
    )
    .unwrap();
    // Any backup run recovers first.
    let out = warden()
        .args([
            "backup-keys",
            "--config",
            config.to_str().unwrap(),
            "--dest",
            backups.to_str().unwrap(),
            "--container",
            &n0.name,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("were put back in place"), "{stderr}");
    assert_eq!(
        n0.exec_root(&["ls", "-1", &format!("{CHAIN}/keystore")]),
        before,
        "the node has its keystore again"
    );
    let left = n0.exec_root(&["ls", "-1a", CHAIN]);
    assert!(
        !left.contains("warden-old") && !left.contains("warden-restore"),
        "{left}"
    );
    assert_eq!(n0.state(), "running");
}
