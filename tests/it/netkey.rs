//! The network key (`<chain>/network/secret_ed25519`, the node's libp2p identity): each
//! node's peer id in `nodes`, a node without the key flagged, two nodes with one key
//! raising the duplicate alert.
use crate::support::*;

const CHAIN: &str = "/root/data/chains/creditcoin3";

#[test]
fn a_node_without_a_network_key_is_flagged() {
    let n0 = Node::start("real-nodes-netkey0");
    let mut f = Fleet::start(&[&n0], allow_all(), &[]);
    let a = f.agent_id.clone();
    // The peer id shows once stats carry it.
    let row = f.server.poll_line(&format!("nodes {a}"), |l| {
        l.contains(&n0.name) && l.contains("12D3KooW")
    });
    assert!(!row.contains("NO NETWORK KEY"), "{row}");
    // The key file goes while the node runs (it keeps its identity in memory).
    n0.exec_root(&["rm", &format!("{CHAIN}/network/secret_ed25519")]);
    let row = f.server.poll_line(&format!("nodes {a}"), |l| {
        l.contains(&n0.name) && l.contains("NO NETWORK KEY")
    });
    assert!(
        row.contains("12D3KooW"),
        "the peer id is still known: {row}"
    );
}

#[test]
fn two_nodes_with_one_network_key_raise_the_duplicate_alert() {
    let n0 = Node::start("real-nodes-netkey0");
    let n1 = Node::start("real-nodes-netkey1");
    let dir = TempDir::new("real-nodes-netkey");
    // n1 gets n0's network key, as a copied data directory would give it.
    let secret = dir.join("secret_ed25519");
    let path = secret.display().to_string();
    let out = docker(&[
        "cp",
        &format!("{}:{CHAIN}/network/secret_ed25519", n0.name),
        &path,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = docker(&[
        "cp",
        &path,
        &format!("{}:{CHAIN}/network/secret_ed25519", n1.name),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = docker(&["restart", "-t", "1", &n1.name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    n1.wait_state("running", WAIT);

    let mut f = Fleet::start(&[&n0, &n1], allow_all(), &[]);
    let alert = f.server.out.wait_until(
        |l| l.contains("!!! DUPLICATE NETWORK KEY"),
        WAIT,
        "duplicate network key alert",
    );
    assert!(
        alert.contains(&n0.name) && alert.contains(&n1.name) && alert.contains("12D3KooW"),
        "{alert}"
    );
    assert!(alert.contains("generate-node-key"), "{alert}");
}
