//! Which validator a node's session keys belong to, and whether it validates now.
//!
//! `Session.KeyOwner` maps each registered session public key to the validator (stash)
//! that registered it with `session.set_keys`; pallet-session writes an entry for every
//! key type of the key set at once and removes the old set's entries (pallet-session
//! 38.0.0 `inner_set_keys`), so the keys of one `author_rotateKeys` call either all
//! point to one stash or all to none.

use super::keys;
use super::reader::{ChainError, StorageReader, read};
use super::types::{AccountId32, ActiveEraInfo, DisabledValidators, KeyTypeId, SessionKeys};

/// Who owns one session public key on chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyOwnership {
    pub key_type: KeyTypeId,
    pub public_key: [u8; 32],
    /// `Session.KeyOwner((key_type, public_key))`, if registered.
    pub owner: Option<AccountId32>,
}

/// How the owners of the keys looked up relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// No key is registered: the keys were never set with `session.set_keys`, or were
    /// replaced by another set since.
    Unregistered,
    /// Every key is registered to the same stash.
    Unanimous,
    /// Some keys are registered to one stash, others to nobody: keys of different sets
    /// were mixed.
    Partial,
    /// Keys are registered to different stashes.
    Conflict,
}

/// What the chain says about a set of session public keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorInfo {
    /// The stash every key is registered to; None unless `agreement` is `Unanimous`.
    pub validator_account: Option<AccountId32>,
    /// The stash is in `Session.Validators` and its index is not in
    /// `Session.DisabledValidators`.
    pub is_active_validator: bool,
    /// The stash is in `Session.QueuedKeys`: it validates in the next session.
    pub in_queued_keys: bool,
    /// The keys queued for the stash include every key looked up: after a rotation,
    /// true once the new keys are queued for the next session.
    pub queued_keys_match: bool,
    /// The stash's keys in `Session.QueuedKeys`, if queued.
    pub queued_keys: Option<SessionKeys>,
    pub agreement: Agreement,
    /// Each key looked up, with its owner, in the order given.
    pub key_owners: Vec<KeyOwnership>,
}

/// Looks up the owner of each session public key in `Session.KeyOwner` and, when they
/// all agree on one stash, whether that stash validates now and next session.
pub fn find_validator<R: StorageReader>(
    reader: &R,
    session_public_keys: &[(KeyTypeId, [u8; 32])],
) -> Result<ValidatorInfo, ChainError<R::Error>> {
    if session_public_keys.is_empty() {
        return Err(ChainError::NoSessionKeys);
    }
    let mut key_owners = Vec::with_capacity(session_public_keys.len());
    for (key_type, public_key) in session_public_keys {
        let owner = read::<_, AccountId32>(
            reader,
            "Session.KeyOwner",
            &keys::session_key_owner(*key_type, public_key),
        )?;
        key_owners.push(KeyOwnership {
            key_type: *key_type,
            public_key: *public_key,
            owner,
        });
    }

    let mut owners: Vec<AccountId32> = key_owners.iter().filter_map(|k| k.owner).collect();
    owners.sort();
    owners.dedup();
    let registered = key_owners.iter().filter(|k| k.owner.is_some()).count();
    let agreement = match owners.len() {
        0 => Agreement::Unregistered,
        1 if registered == key_owners.len() => Agreement::Unanimous,
        1 => Agreement::Partial,
        _ => Agreement::Conflict,
    };
    let mut info = ValidatorInfo {
        validator_account: None,
        is_active_validator: false,
        in_queued_keys: false,
        queued_keys_match: false,
        queued_keys: None,
        agreement,
        key_owners,
    };
    if agreement != Agreement::Unanimous {
        return Ok(info);
    }
    let stash = owners[0];
    info.validator_account = Some(stash);

    let validators: Vec<AccountId32> =
        read(reader, "Session.Validators", &keys::session_validators())?.unwrap_or_default();
    if let Some(index) = validators.iter().position(|v| *v == stash) {
        let disabled: DisabledValidators = read(
            reader,
            "Session.DisabledValidators",
            &keys::session_disabled_validators(),
        )?
        .unwrap_or_default();
        // The index fits u32: the runtime's validator indices are u32.
        info.is_active_validator = !disabled.contains(index as u32);
    }

    let queued: Vec<(AccountId32, SessionKeys)> =
        read(reader, "Session.QueuedKeys", &keys::session_queued_keys())?.unwrap_or_default();
    info.queued_keys = queued
        .into_iter()
        .find(|(who, _)| *who == stash)
        .map(|(_, keys)| keys);
    info.in_queued_keys = info.queued_keys.is_some();
    info.queued_keys_match = info.queued_keys.is_some_and(|queued| {
        session_public_keys
            .iter()
            .all(|(key_type, public_key)| queued.get(*key_type) == Some(*public_key))
    });
    Ok(info)
}

/// `Staking.ActiveEra`'s index: the era being rewarded now. None before the first era.
pub fn active_era<R: StorageReader>(reader: &R) -> Result<Option<u32>, ChainError<R::Error>> {
    let info: Option<ActiveEraInfo> =
        read(reader, "Staking.ActiveEra", &keys::staking_active_era())?;
    Ok(info.map(|info| info.index))
}

/// `Staking.CurrentEra`: the latest planned era, the active one or the next.
pub fn current_era<R: StorageReader>(reader: &R) -> Result<Option<u32>, ChainError<R::Error>> {
    read(reader, "Staking.CurrentEra", &keys::staking_current_era())
}

/// `Session.CurrentIndex` (0 when never written, as its `ValueQuery` default).
pub fn current_session_index<R: StorageReader>(reader: &R) -> Result<u32, ChainError<R::Error>> {
    Ok(read(
        reader,
        "Session.CurrentIndex",
        &keys::session_current_index(),
    )?
    .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::fixture::{Chain, account, keys_of};

    fn lookup(chain: &Chain, keys: &SessionKeys) -> ValidatorInfo {
        find_validator(&chain.storage, &keys.public_keys()).unwrap()
    }

    #[test]
    fn keys_of_no_one() {
        let mut chain = Chain::default();
        chain.set_keys(account(1), keys_of(10));
        let info = lookup(&chain, &keys_of(20));
        assert_eq!(info.agreement, Agreement::Unregistered);
        assert_eq!(info.validator_account, None);
        assert!(!info.is_active_validator && !info.in_queued_keys && !info.queued_keys_match);
        assert!(info.key_owners.iter().all(|k| k.owner.is_none()));
    }

    #[test]
    fn keys_of_an_active_validator() {
        let stash = account(1);
        let mut chain = Chain::default();
        chain
            .set_keys(stash, keys_of(10))
            .session_validators(&[account(5), stash])
            .disabled(DisabledValidators::Indices(vec![0]))
            .queued(&[(account(5), keys_of(50)), (stash, keys_of(10))]);
        let info = lookup(&chain, &keys_of(10));
        assert_eq!(info.agreement, Agreement::Unanimous);
        assert_eq!(info.validator_account, Some(stash));
        assert!(info.is_active_validator);
        assert!(info.in_queued_keys && info.queued_keys_match);
        assert_eq!(info.queued_keys, Some(keys_of(10)));
    }

    #[test]
    fn keys_of_a_disabled_validator_in_either_storage_layout() {
        let stash = account(1);
        for disabled in [
            DisabledValidators::Indices(vec![0, 1]),
            DisabledValidators::WithSeverity(vec![(1, 1_000_000_000)]),
        ] {
            let mut chain = Chain::default();
            chain
                .set_keys(stash, keys_of(10))
                .session_validators(&[account(5), stash])
                .disabled(disabled.clone())
                .queued(&[(stash, keys_of(10))]);
            let info = lookup(&chain, &keys_of(10));
            assert_eq!(info.validator_account, Some(stash), "{disabled:?}");
            assert!(!info.is_active_validator, "{disabled:?}");
            assert!(info.in_queued_keys, "{disabled:?}");
        }
    }

    #[test]
    fn a_validator_outside_the_current_set_is_not_active() {
        let stash = account(1);
        let mut chain = Chain::default();
        chain
            .set_keys(stash, keys_of(10))
            .session_validators(&[account(5)])
            .queued(&[(stash, keys_of(10))]);
        let info = lookup(&chain, &keys_of(10));
        assert!(!info.is_active_validator);
        assert!(info.in_queued_keys && info.queued_keys_match);
    }

    #[test]
    fn freshly_set_keys_are_not_queued_yet() {
        // set_keys moved KeyOwner to the new keys; QueuedKeys still holds the old ones.
        let stash = account(1);
        let mut chain = Chain::default();
        chain
            .set_keys(stash, keys_of(30))
            .session_validators(&[stash])
            .queued(&[(stash, keys_of(10))]);
        let info = lookup(&chain, &keys_of(30));
        assert_eq!(info.validator_account, Some(stash));
        assert!(info.is_active_validator);
        assert!(info.in_queued_keys);
        assert!(!info.queued_keys_match);
    }

    #[test]
    fn keys_split_across_two_stashes_name_no_validator() {
        let keys = keys_of(10);
        let mut chain = Chain::default();
        chain
            .key_owner(KeyTypeId::GRANDPA, keys.gran, account(1))
            .key_owner(KeyTypeId::BABE, keys.babe, account(2))
            .key_owner(KeyTypeId::IM_ONLINE, keys.imon, account(1))
            .session_validators(&[account(1), account(2)]);
        let info = lookup(&chain, &keys);
        assert_eq!(info.agreement, Agreement::Conflict);
        assert_eq!(info.validator_account, None);
        assert!(!info.is_active_validator);
        let owners: Vec<_> = info.key_owners.iter().map(|k| k.owner).collect();
        assert_eq!(
            owners,
            vec![Some(account(1)), Some(account(2)), Some(account(1))]
        );
    }

    #[test]
    fn keys_partly_registered_name_no_validator() {
        let keys = keys_of(10);
        let mut chain = Chain::default();
        chain
            .key_owner(KeyTypeId::GRANDPA, keys.gran, account(1))
            .session_validators(&[account(1)]);
        let info = lookup(&chain, &keys);
        assert_eq!(info.agreement, Agreement::Partial);
        assert_eq!(info.validator_account, None);
    }

    #[test]
    fn a_single_key_is_enough_to_look_up() {
        let stash = account(1);
        let mut chain = Chain::default();
        chain
            .set_keys(stash, keys_of(10))
            .session_validators(&[stash]);
        let info = find_validator(&chain.storage, &[(KeyTypeId::BABE, keys_of(10).babe)]).unwrap();
        assert_eq!(info.validator_account, Some(stash));
        assert!(info.is_active_validator);
        assert!(!info.in_queued_keys);
    }

    #[test]
    fn no_keys_is_an_error() {
        let chain = Chain::default();
        assert!(matches!(
            find_validator(&chain.storage, &[]),
            Err(ChainError::NoSessionKeys)
        ));
    }

    #[test]
    fn eras_and_session_index_read_their_values() {
        let mut chain = Chain::default();
        assert_eq!(active_era(&chain.storage).unwrap(), None);
        assert_eq!(current_session_index(&chain.storage).unwrap(), 0);
        chain
            .put(
                keys::staking_active_era(),
                &ActiveEraInfo {
                    index: 312,
                    start: Some(1_718_000_000_000),
                },
            )
            .put(keys::staking_current_era(), &313u32)
            .put(keys::session_current_index(), &626u32);
        assert_eq!(active_era(&chain.storage).unwrap(), Some(312));
        assert_eq!(current_era(&chain.storage).unwrap(), Some(313));
        assert_eq!(current_session_index(&chain.storage).unwrap(), 626);
    }
}
