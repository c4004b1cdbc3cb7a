//! Feeding the duplicate-key guard ([`super::keyguard`]) from what agents
//! report, checked and bounded first, and raising its alerts.
use super::hub::Hub;
use super::keyguard::Duplicate;
use super::store::CommandRecord;
use crate::chain::PublicKey;
use crate::protocol::CommandResponse;
use crate::protocol::events::KeyUpdate;
use serde_json::Value;

/// Keystore entries taken from one node's listing, at most. A keystore
/// holds a few key sets; a listing beyond this is cut (and said).
pub const MAX_KEYSTORE_ENTRIES: usize = 256;

/// A session key's type: four lowercase ASCII letters or digits (`gran`,
/// `babe`, `imon`, …), as Substrate's `KeyTypeId` is written in keystores.
fn is_key_type(t: &str) -> bool {
    t.len() == 4
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A 32-byte public key (sr25519 or ed25519, as session keys are), with or
/// without `0x`, either case.
fn is_public_key(k: &str) -> bool {
    k.parse::<PublicKey>().is_ok_and(|k| k.len() == 32)
}

/// A libp2p peer id as a node prints it: base58, at most 128 characters.
fn is_peer_id(p: &str) -> bool {
    !p.is_empty() && p.len() <= 128 && p.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The valid (type, key) pairs of `pairs`, at most [`MAX_KEYSTORE_ENTRIES`].
fn checked_keys<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    pairs
        .filter(|(t, k)| is_key_type(t) && is_public_key(k))
        .take(MAX_KEYSTORE_ENTRIES)
        .map(|(t, k)| (t.to_string(), k.to_string()))
        .collect()
}

impl Hub {
    /// Feed a rotation's keys to the duplicate-key guard.
    pub(super) fn guard_key_update(&mut self, agent: &str, update: &KeyUpdate) {
        let listed: Vec<(&str, String)> = (update.keys.iter().flatten())
            .map(|(t, k)| (t.as_str(), k.to_string()))
            .collect();
        let keys = checked_keys(listed.iter().map(|(t, k)| (*t, k.as_str())));
        let found = self
            .keyguard
            .observe(&(agent.to_string(), update.container.clone()), &keys);
        self.raise_duplicates(found);
    }

    /// A `has_session_keys` that answered true confirms the node holds
    /// those keys: the duplicate-key guard learns them too.
    pub(super) fn guard_confirmed_keys(
        &mut self,
        agent: &str,
        record: &CommandRecord,
        response: &CommandResponse,
    ) {
        let given = record
            .params
            .get("session_keys")
            .and_then(Value::as_str)
            .unwrap_or("");
        if record.command != "has_session_keys"
            || given.is_empty()
            || response.result != Some(Value::Bool(true))
        {
            return;
        }
        let Ok(keys) = crate::chain::split_session_keys(given) else {
            return;
        };
        let keys: Vec<(String, String)> = keys
            .public_keys()
            .iter()
            .map(|(t, k)| (t.to_string(), PublicKey::from(*k).to_string()))
            .collect();
        let found = self
            .keyguard
            .observe(&(agent.to_string(), record.target.clone()), &keys);
        self.raise_duplicates(found);
    }

    /// Feed each node's keystore listing (from its stats) to the guard.
    pub(super) fn guard_keystores<'a>(
        &mut self,
        agent: &str,
        nodes: impl Iterator<Item = (&'a String, &'a Value)> + Clone,
    ) {
        let nodes_again = nodes.clone();
        for (container, node) in nodes {
            let Some(listing) = node.get("keystore").and_then(Value::as_array) else {
                continue;
            };
            let keys = checked_keys(
                listing
                    .iter()
                    .filter_map(|k| Some((k.get("type")?.as_str()?, k.get("public")?.as_str()?))),
            );
            if listing.len() > MAX_KEYSTORE_ENTRIES {
                crate::log::warn(&format!(
                    "{agent}/{container} listed {} keystore entries; the duplicate-key guard \
                     takes the first {MAX_KEYSTORE_ENTRIES}",
                    listing.len()
                ));
            }
            let found = self
                .keyguard
                .replace(&(agent.to_string(), container.clone()), &keys);
            self.raise_duplicates(found);
        }
        for (container, node) in nodes_again {
            let peer_id = node
                .get("peer_id")
                .and_then(Value::as_str)
                .filter(|p| is_peer_id(p));
            let found = self
                .keyguard
                .replace_peer(&(agent.to_string(), container.clone()), peer_id);
            self.raise_duplicates(found);
        }
    }

    pub(super) fn raise_duplicates(&mut self, found: Vec<Duplicate>) {
        for dup in found {
            let nodes: Vec<String> = dup
                .holders
                .iter()
                .map(|(a, c)| format!("{a}/{c}"))
                .collect();
            // On disk first, then shown: whoever sees the line finds the record.
            self.store.record_alert(
                &serde_json::json!({
                    "alert": "duplicate_key", "key_type": dup.key_type, "public_key": dup.public_key, "nodes": nodes,
                }),
                &mut self.batch,
            );
            self.line_after_commit(format!(
                "!!! DUPLICATE {}: {} key {} is held by {}. {}",
                dup.what(),
                dup.key_type,
                dup.public_key,
                nodes.join(" and "),
                dup.advice()
            ));
            crate::log::error(&format!(
                "duplicate session key {} on {}",
                dup.public_key,
                nodes.join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_keys_are_taken() {
        let good = format!("0x{}", "ab".repeat(32));
        let pairs = [
            ("gran", good.as_str()),
            ("GRAN", good.as_str()),
            ("gra", good.as_str()),
            ("babe", "0x1234"),
            ("imon", &good[2..]),
            ("bab€", good.as_str()),
        ];
        let kept = checked_keys(pairs.iter().copied());
        assert_eq!(
            kept,
            vec![
                ("gran".to_string(), good.clone()),
                ("imon".to_string(), good[2..].to_string())
            ]
        );
        let many: Vec<(String, String)> = (0..1000)
            .map(|n| ("gran".to_string(), format!("0x{n:064x}")))
            .collect();
        assert_eq!(
            checked_keys(many.iter().map(|(t, k)| (t.as_str(), k.as_str()))).len(),
            MAX_KEYSTORE_ENTRIES
        );
    }
}
