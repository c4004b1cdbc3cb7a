//! The fleet-wide duplicate-key guard. Running the same session keys on two
//! nodes makes them sign conflicting blocks: the validator gets slashed. The
//! server sees every key the fleet reports (rotations, and each node's
//! keystore public keys in its stats) and raises an alert the moment one
//! public key is held by two containers.
//!
//! Network keys too: two nodes started from one `secret_ed25519` share a
//! libp2p peer id and break each other's networking. Each node's peer id (from
//! its stats) is held in the same table under `peer:<id>`, with key type
//! [`PEER_ID`], and raises the same kind of alert. Peer ids are base58, so they
//! are compared exactly, never case-folded as hex keys are.
use crate::chain::public_key::key_text;
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

/// Keys one node is remembered to hold from rotations and confirmations,
/// at most (the newest are kept): a few key sets, never an unbounded list.
pub const MAX_OBSERVED_PER_NODE: usize = 64;

/// A node: (agent id, container).
pub type Holder = (String, String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub key_type: String,
    pub public_key: String,
    pub holders: Vec<Holder>,
}

/// The key type of a duplicate network key (the value is the peer id).
pub const PEER_ID: &str = "peer_id";
/// Prefix of peer ids in the table, so they cannot meet a hex key.
const PEER_PREFIX: &str = "peer:";

impl Duplicate {
    /// What is duplicated, for the operator's alert line.
    pub fn what(&self) -> &'static str {
        if self.key_type == PEER_ID {
            "NETWORK KEY (peer id)"
        } else {
            "SESSION KEY"
        }
    }

    /// What the operator should do about it.
    pub fn advice(&self) -> &'static str {
        if self.key_type == PEER_ID {
            "Two nodes with one network key break each other's networking: give all but one \
             a new key (`creditcoin3-node key generate-node-key`) and restart them."
        } else {
            "Two nodes signing with the same keys get the validator slashed: stop all but one \
             of them now."
        }
    }
}

#[derive(Default)]
pub struct KeyGuard {
    /// Each node's last reported peer id.
    peers: BTreeMap<Holder, String>,
    /// Public key (lowercase 0x hex) → key type and who holds it.
    holders: BTreeMap<String, (String, BTreeSet<Holder>)>,
    /// What each node's last keystore report said it holds.
    reported: BTreeMap<Holder, BTreeSet<String>>,
    /// Keys each node was seen with outside a listing (rotations), oldest
    /// first, bounded by [`MAX_OBSERVED_PER_NODE`].
    observed: BTreeMap<Holder, VecDeque<String>>,
    /// Alerts already raised, so a standing duplicate is not repeated at
    /// every stats report.
    raised: HashSet<(String, Vec<Holder>)>,
}

impl KeyGuard {
    /// `holder` holds these keys (from a rotation): added to what is known.
    pub fn observe(&mut self, holder: &Holder, keys: &[(String, String)]) -> Vec<Duplicate> {
        let mut dropped = Vec::new();
        for (key_type, public) in keys {
            let key = key_text(public);
            self.add_holder(&key, key_type, holder);
            let seen = self.observed.entry(holder.clone()).or_default();
            if !seen.contains(&key) {
                seen.push_back(key);
            }
            while seen.len() > MAX_OBSERVED_PER_NODE {
                if let Some(old) = seen.pop_front() {
                    dropped.push(old);
                }
            }
        }
        for key in &dropped {
            if !self.reported.get(holder).is_some_and(|r| r.contains(key)) {
                self.remove_holder(key, holder);
            }
        }
        let mut found = self.check(keys.iter().map(|(_, k)| key_text(k)));
        found.extend(self.check(dropped.into_iter()));
        found
    }

    fn add_holder(&mut self, key: &str, key_type: &str, holder: &Holder) {
        self.holders
            .entry(key.to_string())
            .or_insert_with(|| (key_type.to_string(), BTreeSet::new()))
            .1
            .insert(holder.clone());
    }

    /// Remove `holder` from `key`, and the key itself once nobody holds it,
    /// so memory follows what is held now, not everything ever seen.
    fn remove_holder(&mut self, key: &str, holder: &Holder) {
        if let Some((_, set)) = self.holders.get_mut(key) {
            set.remove(holder);
            if set.is_empty() {
                self.holders.remove(key);
            }
        }
    }

    /// Forget every key an agent's nodes hold (the agent went away, or is
    /// gone for good): it reports them again when it is back.
    pub fn forget_agent(&mut self, agent: &str) -> Vec<Duplicate> {
        let gone: Vec<Holder> = self
            .reported
            .keys()
            .chain(self.observed.keys())
            .filter(|(a, _)| a == agent)
            .cloned()
            .collect();
        let mut touched = BTreeSet::new();
        for holder in gone {
            let keys: Vec<String> = self
                .reported
                .remove(&holder)
                .into_iter()
                .flatten()
                .chain(self.observed.remove(&holder).into_iter().flatten())
                .collect();
            for key in keys {
                self.remove_holder(&key, &holder);
                touched.insert(key);
            }
        }
        self.raised
            .retain(|(_, holders)| holders.iter().all(|(a, _)| a != agent));
        self.check(touched.into_iter())
    }

    /// Every key held, as `(key type, public key, agent, container)`, for the
    /// double-sign check before `start` and `restore_keys` (peer ids left out).
    pub fn holdings(&self) -> Vec<(String, String, String, String)> {
        self.holders
            .iter()
            .filter(|(key, _)| !key.starts_with(PEER_PREFIX))
            .flat_map(|(key, (key_type, set))| {
                set.iter()
                    .map(move |(a, c)| (key_type.clone(), key.clone(), a.clone(), c.clone()))
            })
            .collect()
    }

    /// Public keys tracked: what bounds this structure's memory.
    pub fn tracked_keys(&self) -> usize {
        self.holders.len()
    }

    /// `holder`'s keystore holds exactly these keys now (a full listing).
    pub fn replace(&mut self, holder: &Holder, keys: &[(String, String)]) -> Vec<Duplicate> {
        let now: BTreeSet<String> = keys.iter().map(|(_, k)| key_text(k)).collect();
        // The common case, every stats interval: nothing changed.
        if self.reported.get(holder) == Some(&now) {
            return Vec::new();
        }
        let gone: Vec<String> = self
            .reported
            .get(holder)
            .map(|b| b.difference(&now).cloned().collect())
            .unwrap_or_default();
        for key in &gone {
            let still_observed = self.observed.get(holder).is_some_and(|o| o.contains(key));
            if !still_observed {
                self.remove_holder(key, holder);
            }
        }
        self.reported.insert(holder.clone(), now);
        for (key_type, public) in keys {
            self.add_holder(&key_text(public), key_type, holder);
        }
        let mut found = self.check(keys.iter().map(|(_, k)| key_text(k)));
        // Keys that left this keystore may have stopped being duplicates.
        found.extend(self.check(gone.into_iter()));
        found
    }

    /// `holder` runs with this peer id now (`None`: not known, e.g. stopped; the
    /// last known one is kept, since its key file still exists).
    pub fn replace_peer(&mut self, holder: &Holder, peer_id: Option<&str>) -> Vec<Duplicate> {
        let Some(peer_id) = peer_id.map(str::trim).filter(|p| !p.is_empty()) else {
            return Vec::new();
        };
        let key = format!("{PEER_PREFIX}{peer_id}");
        let old = self.peers.insert(holder.clone(), key.clone());
        let mut touched = vec![key.clone()];
        if let Some(old) = old.filter(|old| *old != key) {
            self.remove_holder(&old, holder);
            touched.push(old);
        }
        self.holders
            .entry(key)
            .or_insert_with(|| (PEER_ID.to_owned(), BTreeSet::new()))
            .1
            .insert(holder.clone());
        self.check(touched.into_iter())
    }

    fn check(&mut self, keys: impl Iterator<Item = String>) -> Vec<Duplicate> {
        let mut found = Vec::new();
        for key in keys {
            let Some((key_type, set)) = self.holders.get(&key) else {
                self.raised.retain(|(k, _)| *k != key);
                continue;
            };
            if set.len() < 2 {
                // Resolved: if it comes back, it is raised again.
                self.raised.retain(|(k, _)| *k != key);
                continue;
            }
            let holders: Vec<Holder> = set.iter().cloned().collect();
            if self.raised.insert((key.clone(), holders.clone())) {
                found.push(Duplicate {
                    key_type: key_type.clone(),
                    public_key: key
                        .strip_prefix(PEER_PREFIX)
                        .map(str::to_owned)
                        .unwrap_or(key),
                    holders,
                });
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(a: &str, c: &str) -> Holder {
        (a.into(), c.into())
    }

    fn keys(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(t, k)| (t.to_string(), k.to_string()))
            .collect()
    }

    #[test]
    fn the_same_key_on_two_nodes_is_raised_once() {
        let mut g = KeyGuard::default();
        assert!(
            g.observe(
                &h("a", "3node0"),
                &keys(&[("gran", "0xAA"), ("babe", "0xbb")])
            )
            .is_empty()
        );
        assert!(
            g.observe(&h("a", "3node0"), &keys(&[("gran", "0xaa")]))
                .is_empty(),
            "same node again"
        );
        let dup = g.replace(
            &h("b", "3node1"),
            &keys(&[("gran", "aa"), ("babe", "0xcc")]),
        );
        assert_eq!(
            dup,
            vec![Duplicate {
                key_type: "gran".into(),
                public_key: "0xaa".into(),
                holders: vec![h("a", "3node0"), h("b", "3node1")]
            }]
        );
        assert!(
            g.replace(&h("b", "3node1"), &keys(&[("gran", "0xaa")]))
                .is_empty(),
            "not repeated"
        );
    }

    #[test]
    fn a_duplicate_that_was_fixed_and_comes_back_is_raised_again() {
        let mut g = KeyGuard::default();
        g.replace(&h("a", "n0"), &keys(&[("gran", "0x01")]));
        assert_eq!(
            g.replace(&h("b", "n1"), &keys(&[("gran", "0x01")])).len(),
            1
        );
        assert!(
            g.replace(&h("b", "n1"), &keys(&[("gran", "0x02")]))
                .is_empty(),
            "fixed"
        );
        assert_eq!(
            g.replace(&h("b", "n1"), &keys(&[("gran", "0x01")])).len(),
            1,
            "back: raised again"
        );
    }

    #[test]
    fn memory_follows_what_is_held_now() {
        let mut g = KeyGuard::default();
        for n in 0..1000 {
            g.replace(&h("a", "n0"), &keys(&[("gran", &format!("0x{n:064x}"))]));
        }
        assert_eq!(g.tracked_keys(), 1, "a listing replaces the last one");
        for n in 0..1000 {
            let key = format!("0x{:064x}", 10_000 + n);
            g.observe(&h("a", "n1"), &keys(&[("babe", &key)]));
        }
        assert_eq!(g.tracked_keys(), 1 + MAX_OBSERVED_PER_NODE);
        g.replace(
            &h("b", "m0"),
            &keys(&[("babe", &format!("0x{:064x}", 999))]),
        );
        assert!(g.forget_agent("a").is_empty());
        assert_eq!(g.tracked_keys(), 1, "only b's key is left");
    }

    #[test]
    fn a_key_that_left_a_keystore_no_longer_counts() {
        let mut g = KeyGuard::default();
        g.replace(&h("a", "n0"), &keys(&[("gran", "0x01")]));
        g.replace(&h("a", "n0"), &keys(&[("gran", "0x02")]));
        assert!(
            g.replace(&h("b", "n1"), &keys(&[("gran", "0x01")]))
                .is_empty()
        );
        assert!(
            g.replace(&h("c", "n2"), &keys(&[("imon", "0x03")]))
                .is_empty(),
            "different keys"
        );
    }

    #[test]
    fn one_network_key_on_two_nodes_is_raised_as_a_peer_id() {
        let mut g = KeyGuard::default();
        let id = "12D3KooWSR7M5PQpGFDjBouNVWqqtGaNCjhsc6eWQ72nHyxCvJtm";
        assert!(g.replace_peer(&h("a", "n0"), Some(id)).is_empty());
        assert!(
            g.replace_peer(&h("a", "n0"), Some(id)).is_empty(),
            "same node"
        );
        assert!(g.replace_peer(&h("b", "n1"), None).is_empty(), "unknown");
        // Same letters, other case: another peer id (base58 is case-sensitive).
        let other_case = id.to_ascii_lowercase();
        assert!(g.replace_peer(&h("b", "n1"), Some(&other_case)).is_empty());
        let dup = g.replace_peer(&h("c", "n2"), Some(id));
        assert_eq!(
            dup,
            vec![Duplicate {
                key_type: PEER_ID.into(),
                public_key: id.into(),
                holders: vec![h("a", "n0"), h("c", "n2")]
            }]
        );
        assert_eq!(dup[0].what(), "NETWORK KEY (peer id)");
        // A new key on n2 resolves it; back again, raised again.
        assert!(
            g.replace_peer(&h("c", "n2"), Some("12D3KooWother"))
                .is_empty()
        );
        assert_eq!(g.replace_peer(&h("c", "n2"), Some(id)).len(), 1);
        // A hex key that happens to read like the id is not mixed up with it.
        assert!(g.replace(&h("d", "n3"), &keys(&[("gran", id)])).is_empty());
    }
}
