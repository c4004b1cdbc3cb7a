//! Whether a validator node holds the session keys the chain will use, and when they
//! take effect.
//!
//! pallet-session keeps two sets per validator (pallet-session 38.0.0 `rotate_session`):
//! `QueuedKeys` holds the keys the *next* session runs with (queued at the last session
//! change), and `NextKeys(validator)` the keys last given to `session.setKeys`, which the
//! next change queues and the session after it uses. So keys set now take effect at the
//! current session + 2 (about 36 h on Creditcoin 3: 2,880-block sessions of 15 s blocks,
//! 12 h each, with up to 12 h left of the current one).
//!
//! A node whose keystore lacks the queued keys stops authoring at the next session
//! change; one that lacks `NextKeys` stops one session later. Either is the loud case:
//! keys rotated without `setKeys`, or restored to the wrong host. Pure: the storage is
//! read through [`StorageReader`], the keystore is a list of file-name public keys.

use super::keys;
use super::reader::{ChainError, StorageReader, read};
use super::types::{AccountId32, KeyTypeId, SessionKeys};

/// Blocks per session (= BABE epoch) on Creditcoin 3.
pub const SESSION_BLOCKS: u32 = 2_880;
/// Target block time on Creditcoin 3.
pub const BLOCK_TIME_S: u64 = 15;

/// What the chain says about one validator's keys, at one block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainKeys {
    /// `Session.CurrentIndex`.
    pub session_index: u32,
    /// `Session.NextKeys(validator)`.
    pub next_keys: Option<SessionKeys>,
    /// The validator's entry of `Session.QueuedKeys`.
    pub queued_keys: Option<SessionKeys>,
    /// `Babe.EpochStart.1`: the block the current session started in.
    pub session_start_block: Option<u32>,
}

/// Reads [`ChainKeys`] of `validator`.
pub fn read_chain_keys<R: StorageReader>(
    reader: &R,
    validator: &AccountId32,
) -> Result<ChainKeys, ChainError<R::Error>> {
    let session_index = super::validator::current_session_index(reader)?;
    let next_keys: Option<SessionKeys> = read(
        reader,
        "Session.NextKeys",
        &keys::session_next_keys(validator),
    )?;
    let queued: Vec<(AccountId32, SessionKeys)> =
        read(reader, "Session.QueuedKeys", &keys::session_queued_keys())?.unwrap_or_default();
    let epoch_start: Option<(u32, u32)> =
        read(reader, "Babe.EpochStart", &keys::babe_epoch_start())?;
    Ok(ChainKeys {
        session_index,
        next_keys,
        queued_keys: queued
            .into_iter()
            .find(|(who, _)| who == validator)
            .map(|(_, keys)| keys),
        // ValueQuery: (0, 0) before the first epoch change means "unknown".
        session_start_block: epoch_start.map(|(_, current)| current).filter(|b| *b > 0),
    })
}

/// How a node's keystore compares with [`ChainKeys`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KeyVerdict {
    pub session_index: u32,
    /// The queued keys (next session) are all in the keystore; `None` when the
    /// validator is not queued.
    pub queued_in_keystore: Option<bool>,
    /// `NextKeys` are all in the keystore; `None` when the validator set none.
    pub next_in_keystore: Option<bool>,
    /// Seconds to the next session change, from the block times; `None` when the
    /// session's start is not known.
    pub session_change_in_s: Option<u64>,
    /// `NextKeys` differ from the queued keys: a rotation is on its way.
    pub rotation_pending: bool,
    /// The session `NextKeys` take effect in (current + 2) when a rotation is
    /// pending, with the seconds until then.
    pub new_keys_session: Option<u32>,
    pub new_keys_in_s: Option<u64>,
    /// The keys last rotated on the node are not `NextKeys`: `session.setKeys` was
    /// not sent (or not yet finalized). Until it is, they never take effect.
    pub rotated_not_set: bool,
    /// For those: the session they would take effect in if set now (current + 2),
    /// and the seconds until then.
    pub rotated_effective_session: Option<u32>,
    pub rotated_effective_in_s: Option<u64>,
    /// The loud case, in words, with the time left.
    pub warning: Option<String>,
}

fn all_in(keys: &SessionKeys, keystore: &[(KeyTypeId, [u8; 32])]) -> bool {
    keys.public_keys()
        .iter()
        .all(|wanted| keystore.iter().any(|held| held == wanted))
}

/// `3h05m`, `1d02h`: time left as an operator reads it.
pub fn human_duration(seconds: u64) -> String {
    let minutes = seconds / 60;
    let (days, hours, mins) = (minutes / 1440, (minutes / 60) % 24, minutes % 60);
    if days > 0 {
        format!("{days}d{hours:02}h")
    } else {
        format!("{hours}h{mins:02}m")
    }
}

/// Compares `chain` with the public keys in the node's keystore, at block `finalized`;
/// `last_rotated` is the set last made on the node (`author_rotateKeys`), if known.
pub fn judge(
    chain: &ChainKeys,
    keystore: &[(KeyTypeId, [u8; 32])],
    last_rotated: Option<&SessionKeys>,
    finalized: u32,
) -> KeyVerdict {
    let session_s = u64::from(SESSION_BLOCKS) * BLOCK_TIME_S;
    let change_in_s = chain.session_start_block.map(|start| {
        let end = start.saturating_add(SESSION_BLOCKS);
        u64::from(end.saturating_sub(finalized)) * BLOCK_TIME_S
    });
    let queued_in = chain.queued_keys.as_ref().map(|k| all_in(k, keystore));
    let next_in = chain.next_keys.as_ref().map(|k| all_in(k, keystore));
    let rotation_pending = matches!(
        (&chain.next_keys, &chain.queued_keys),
        (Some(next), Some(queued)) if next != queued
    );
    let in_text = |s: Option<u64>| match s {
        Some(s) => format!("in about {}", human_duration(s)),
        None => "at a coming session change".to_owned(),
    };
    let warning = if queued_in == Some(false) {
        Some(format!(
            "the keys queued for the next session are NOT in this node's keystore: it stops \
             authoring at the session change {} (session {}); restore the right keys, or \
             set this node's keys with session.setKeys (effective one session later)",
            in_text(change_in_s),
            chain.session_index + 1
        ))
    } else if next_in == Some(false) {
        Some(format!(
            "the keys set on chain (Session.NextKeys) are NOT in this node's keystore: it \
             stops authoring at session {}, {} (keys rotated elsewhere, or restored to the \
             wrong host?)",
            chain.session_index + 2,
            in_text(change_in_s.map(|s| s + session_s))
        ))
    } else {
        None
    };
    let rotated_not_set = last_rotated.is_some_and(|rotated| {
        chain.next_keys.as_ref() != Some(rotated) && chain.queued_keys.as_ref() != Some(rotated)
    });
    KeyVerdict {
        rotated_not_set,
        rotated_effective_session: rotated_not_set.then_some(chain.session_index + 2),
        rotated_effective_in_s: if rotated_not_set {
            change_in_s.map(|s| s + session_s)
        } else {
            None
        },
        session_index: chain.session_index,
        queued_in_keystore: queued_in,
        next_in_keystore: next_in,
        session_change_in_s: change_in_s,
        rotation_pending,
        new_keys_session: rotation_pending.then_some(chain.session_index + 2),
        new_keys_in_s: if rotation_pending {
            change_in_s.map(|s| s + session_s)
        } else {
            None
        },
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::fixture::{Chain, account, keys_of};

    fn held(keys: &SessionKeys) -> Vec<(KeyTypeId, [u8; 32])> {
        keys.public_keys().to_vec()
    }

    fn chain_keys(next: Option<SessionKeys>, queued: Option<SessionKeys>) -> ChainKeys {
        ChainKeys {
            session_index: 40,
            next_keys: next,
            queued_keys: queued,
            session_start_block: Some(1_000),
        }
    }

    #[test]
    fn verdicts() {
        let old = keys_of(1);
        let new = keys_of(2);
        let both: Vec<_> = held(&old).into_iter().chain(held(&new)).collect();
        // Steady state: the node holds what the chain uses.
        let v = judge(
            &chain_keys(Some(old), Some(old)),
            &held(&old),
            Some(&old),
            1_000 + 2_880 - 240,
        );
        assert_eq!(v.queued_in_keystore, Some(true));
        assert_eq!(v.next_in_keystore, Some(true));
        assert_eq!(v.session_change_in_s, Some(240 * 15));
        assert!(!v.rotation_pending && v.warning.is_none() && v.new_keys_session.is_none());
        assert!(!v.rotated_not_set);
        // Rotated on the node, setKeys never sent: the new keys never take effect
        // until it is; set now, at session + 2.
        let v = judge(&chain_keys(Some(old), Some(old)), &both, Some(&new), 1_000);
        assert!(v.rotated_not_set && v.warning.is_none());
        assert_eq!(v.rotated_effective_session, Some(42));
        assert_eq!(v.rotated_effective_in_s, Some(2 * 2_880 * 15));
        // Rotated and set: both sets held; the new ones take effect at session + 2.
        let v = judge(&chain_keys(Some(new), Some(old)), &both, Some(&new), 1_000);
        assert!(v.rotation_pending && v.warning.is_none());
        assert_eq!(v.new_keys_session, Some(42));
        assert_eq!(
            v.new_keys_in_s,
            Some(2 * 2_880 * 15),
            "36 h from a session's start"
        );
        // Keys restored to the wrong host: the queued ones are missing: loud.
        let v = judge(
            &chain_keys(Some(old), Some(old)),
            &held(&new),
            None,
            1_000 + 2_760,
        );
        assert_eq!(v.queued_in_keystore, Some(false));
        let warning = v.warning.unwrap();
        assert!(warning.contains("NOT in this node's keystore"), "{warning}");
        assert!(warning.contains("in about 0h30m"), "{warning}");
        // Set on chain from another node's rotation: the next keys are missing.
        let v = judge(&chain_keys(Some(new), Some(old)), &held(&old), None, 1_000);
        assert_eq!(v.next_in_keystore, Some(false));
        assert!(v.warning.unwrap().contains("session 42"));
        // Not a validator: nothing to judge.
        let v = judge(&ChainKeys::default(), &held(&old), None, 5);
        assert_eq!((v.queued_in_keystore, v.next_in_keystore), (None, None));
        assert!(v.warning.is_none() && v.session_change_in_s.is_none());
    }

    #[test]
    fn chain_keys_are_read_from_storage() {
        let stash = account(1);
        let mut chain = Chain::default();
        chain
            .set_keys(stash, keys_of(2))
            .queued(&[(account(9), keys_of(9)), (stash, keys_of(1))])
            .session_index(40)
            .epoch_start(4_000, 6_880);
        let read = read_chain_keys(&chain.storage, &stash).unwrap();
        assert_eq!(
            read,
            ChainKeys {
                session_index: 40,
                next_keys: Some(keys_of(2)),
                queued_keys: Some(keys_of(1)),
                session_start_block: Some(6_880),
            }
        );
        let none = read_chain_keys(&Chain::default().storage, &stash).unwrap();
        assert_eq!(none, ChainKeys::default());
    }

    #[test]
    fn durations_read_as_operators_write_them() {
        assert_eq!(human_duration(0), "0h00m");
        assert_eq!(human_duration(3_660), "1h01m");
        assert_eq!(human_duration(36 * 3_600), "1d12h");
    }
}
