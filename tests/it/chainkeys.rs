//! Keys checked against the chain, and payouts with their expiry, on the official
//! image's shape: `find_validator` with no keys given names the validator and the keys it
//! matched (found in the keystore), `nodes` shows the chain's keys against the keystore
//! (present, then absent: loud), the epoch's slots, and the unclaimed eras with the days
//! left for the oldest.
use crate::official::official_node;
use crate::support::*;
use serde_json::json;
use warden::chain::types::{ActiveEraInfo, PagedExposureMetadata};
use warden::chain::{AccountId32, SessionKeys, keys};

const CONTROL: &str = "/creditcoin-node/data/testnode.json";

fn ss58(account: &AccountId32) -> String {
    warden::chain::ss58::encode(account, 42).unwrap()
}

/// A validator `stash` whose registered keys are `registered`, with `queued` for the next
/// session and `next` set on chain; in era 100, with era 16 unclaimed (its one page) and
/// era 99 half claimed (page 1 of 2 left).
pub fn staking_state(
    stash: AccountId32,
    registered: &SessionKeys,
    queued: &SessionKeys,
    next: &SessionKeys,
) -> ChainState {
    let mut state = ChainState::default();
    state
        .set_keys(stash, registered)
        .session_validators(&[stash])
        .put(keys::session_queued_keys(), &vec![(stash, *queued)])
        .put(keys::session_next_keys(&stash), next)
        .put(keys::session_current_index(), &40u32)
        .put(keys::babe_epoch_start(), &(0u32, 1u32))
        .put(
            keys::staking_active_era(),
            &ActiveEraInfo {
                index: 100,
                start: Some(1_718_000_000_000),
            },
        )
        .bond(stash, AccountId32([0xC0; 32]), vec![]);
    for (era, pages) in [(16u32, 1u32), (99, 2)] {
        state.reward(era).points(era, stash).put(
            keys::staking_eras_stakers_overview(era, &stash),
            &PagedExposureMetadata {
                total: 2_000,
                own: 1_000,
                nominator_count: pages * 2,
                page_count: pages,
            },
        );
    }
    state.claimed(99, stash, vec![0]);
    state
}

fn fleet_with_summaries(nodes: &[&Node]) -> Fleet {
    let mut f = Fleet::start(nodes, allow_all(), &[]);
    f.reconfigure(|c| c["summary_interval_s"] = json!(1));
    f
}

/// The whole pretty-printed JSON result of command `id`: its outcome line and the lines
/// up to the closing brace.
fn result_of(f: &mut Fleet, id: &str) -> String {
    let head = f.server.outcome(id, WAIT);
    if !head.ends_with("completed:") {
        return head;
    }
    f.server
        .out
        .wait_until(|l| l == "}", WAIT, "the end of the result");
    let seen = &f.server.out.seen;
    let start = seen.iter().rposition(|l| *l == head).unwrap();
    seen[start..].join("\n")
}

fn hex32(key: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(key))
}

#[test]
fn the_chains_keys_against_the_keystore_and_payouts_with_expiry() {
    let n0 = official_node("real-nodes-3node0");
    let dir = TempDir::new("real-nodes-chainkeys");
    // Keys made by hand: warden knows them only from the keystore's file names.
    let keys = rotate_by_hand_in(&n0);
    let stash = AccountId32([0x51; 32]);
    staking_state(stash, &keys, &keys, &keys).write_at(&n0, CONTROL, &dir);
    let mut f = fleet_with_summaries(&[&n0]);
    let a = f.agent_id.clone();

    // find_validator with no keys: the stash, and the keys it matched, per type.
    let id = f
        .server
        .send(&format!("send {a} find_validator {}", n0.name));
    let line = result_of(&mut f, &id);
    assert!(line.contains(&ss58(&stash)), "{line}");
    assert!(line.contains(r#""keys_from": "keystore""#), "{line}");
    for (key_type, public) in keys.public_keys() {
        assert!(
            line.contains(&key_type.to_string()) && line.contains(&hex32(&public)),
            "{key_type} {line}"
        );
    }
    assert!(line.contains(&keys.to_hex()), "the whole set: {line}");
    // Its slots this epoch (babe_epochAuthorship), proof the keys are live.
    assert!(line.contains(r#""primary": "#), "{line}");
    assert!(line.contains(r#""next_in_keystore": true"#), "{line}");

    // nodes: keys ok, slots this epoch, two unclaimed eras, the oldest (16) expiring
    // at era 101: one day left.
    let row = f.server.poll_line(&format!("nodes {a}"), |l| {
        l.contains(&n0.name) && l.contains(" ok ")
    });
    assert!(row.contains("2 (oldest 1d)"), "{row}");
    assert!(!row.contains("MISSING"), "{row}");
    // stats on this shape: the peer id, and the network key found.
    assert!(row.contains("12D3KooW"), "{row}");
    assert!(!row.contains("NO NETWORK KEY"), "{row}");

    // The chain now wants keys this node does not hold (rotated elsewhere, or the
    // keys restored to the wrong host): loud, with the time left.
    let elsewhere = SessionKeys {
        gran: [0xA1; 32],
        babe: [0xA2; 32],
        imon: [0xA3; 32],
    };
    staking_state(stash, &keys, &elsewhere, &elsewhere).write_at(&n0, CONTROL, &dir);
    let row = f.server.poll_line(&format!("nodes {a}"), |l| {
        l.contains(&n0.name) && l.contains("MISSING")
    });
    assert!(
        row.contains("!!! the keys queued for the next session are NOT"),
        "{row}"
    );
    assert!(row.contains("in about"), "{row}");
    let id = f
        .server
        .send(&format!("send {a} find_validator {}", n0.name));
    let line = result_of(&mut f, &id);
    assert!(line.contains("NOT in this node's keystore"), "{line}");
}

#[test]
fn an_image_without_ls_is_listed_from_tar_headers() {
    let n0 = Node::start("real-nodes-nols");
    let dir = TempDir::new("real-nodes-nols");
    let keys = rotate_by_hand_in(&n0);
    // No `ls` in the image: the keystore is listed from `docker cp … -` headers.
    n0.exec_root(&["rm", "/bin/ls"]);
    assert!(!docker(&["exec", &n0.name, "ls", "/"]).status.success());
    let stash = AccountId32([0x52; 32]);
    staking_state(stash, &keys, &keys, &keys).write_to(&n0, &dir);
    let mut f = fleet_with_summaries(&[&n0]);
    let a = f.agent_id.clone();
    let id = f
        .server
        .send(&format!("send {a} find_validator {}", n0.name));
    let line = result_of(&mut f, &id);
    assert!(line.contains(&ss58(&stash)), "{line}");
    assert!(line.contains(r#""keys_from": "keystore""#), "{line}");
    // The network key is still seen (stats), without ls.
    let row = f.server.poll_line(&format!("nodes {a}"), |l| {
        l.contains(&n0.name) && l.contains("12D3KooW") && l.contains(" ok ")
    });
    assert!(!row.contains("NO NETWORK KEY"), "{row}");
}
