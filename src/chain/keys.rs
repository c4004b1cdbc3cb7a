//! Storage keys of the items warden reads.
//!
//! A key is twox_128(pallet prefix) ‖ twox_128(item name), then, for a map, each map
//! key SCALE-encoded and hashed with the hasher the item declares. The declarations
//! below are from the polkadot-sdk stable2409 sources, as published on crates.io:
//!
//! - pallet-session 38.0.0 `src/lib.rs` (polkadot-sdk `substrate/frame/session/src/lib.rs`):
//!   `Validators`, `CurrentIndex`, `QueuedKeys`, `DisabledValidators` are values;
//!   `NextKeys: StorageMap<Twox64Concat, ValidatorId, Keys>`;
//!   `KeyOwner: StorageMap<Twox64Concat, (KeyTypeId, Vec<u8>), ValidatorId>`.
//! - pallet-staking 38.0.1 `src/pallet/mod.rs` (polkadot-sdk
//!   `substrate/frame/staking/src/pallet/mod.rs`, storage version 15):
//!   `ActiveEra`, `CurrentEra` are values; `Bonded: Twox64Concat(stash)`;
//!   `Ledger: Blake2_128Concat(controller)`; `Validators: Twox64Concat(stash)` (a
//!   `CountedStorageMap`, same key layout); `ErasValidatorReward` and `ErasRewardPoints`:
//!   `Twox64Concat(era)`; `ErasStakersOverview`, `ClaimedRewards` and the deprecated
//!   `ErasStakers`: `Twox64Concat(era), Twox64Concat(stash)`.
//! - `Staking.HistoryDepth` was a `StorageValue` before pallet-staking storage version 13
//!   (older runtimes); since then it is the constant `Config::HistoryDepth`, 84 on
//!   Creditcoin 3 ([`HISTORY_DEPTH`]).
//!
//! The pallet prefix is the pallet's name in the runtime's `construct_runtime!`:
//! `Session` and `Staking` on Creditcoin 3.

use super::hashing::{StorageHasher, twox_128};
use super::scale::Encode;
use super::types::{AccountId32, KeyTypeId};

/// Creditcoin 3's `pallet_staking::Config::HistoryDepth`: how many past eras keep their
/// rewards claimable.
pub const HISTORY_DEPTH: u32 = 84;

const SESSION: &str = "Session";
const BABE: &str = "Babe";

/// `Babe.EpochStart`: (block the previous epoch started in, block the current one
/// started in). On Creditcoin 3 an epoch is a session (2,880 blocks).
pub fn babe_epoch_start() -> Vec<u8> {
    storage_prefix(BABE, "EpochStart")
}
const STAKING: &str = "Staking";

/// twox_128(pallet) ‖ twox_128(item): the whole key of a value, the prefix of a map.
pub fn storage_prefix(pallet: &str, item: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(&twox_128(pallet.as_bytes()));
    key.extend_from_slice(&twox_128(item.as_bytes()));
    key
}

/// The key of a map entry: prefix, then each (hasher, encoded map key) in order.
pub fn map_key(pallet: &str, item: &str, parts: &[(StorageHasher, &[u8])]) -> Vec<u8> {
    let mut key = storage_prefix(pallet, item);
    for (hasher, encoded) in parts {
        hasher.hash_into(encoded, &mut key);
    }
    key
}

/// "0x" + lower-case hex, the form `state_getStorage` takes.
pub fn to_hex(key: &[u8]) -> String {
    format!("0x{}", hex::encode(key))
}

// --- Session ---------------------------------------------------------------------------

/// `Session.Validators: Vec<AccountId>`, the current session's validator set.
pub fn session_validators() -> Vec<u8> {
    storage_prefix(SESSION, "Validators")
}

/// `Session.CurrentIndex: u32`.
pub fn session_current_index() -> Vec<u8> {
    storage_prefix(SESSION, "CurrentIndex")
}

/// `Session.QueuedKeys: Vec<(AccountId, SessionKeys)>`, the next session's validators
/// and keys.
pub fn session_queued_keys() -> Vec<u8> {
    storage_prefix(SESSION, "QueuedKeys")
}

/// `Session.DisabledValidators`, indices into `Session.Validators`.
pub fn session_disabled_validators() -> Vec<u8> {
    storage_prefix(SESSION, "DisabledValidators")
}

/// `Session.NextKeys(validator) -> SessionKeys`.
pub fn session_next_keys(validator: &AccountId32) -> Vec<u8> {
    map_key(
        SESSION,
        "NextKeys",
        &[(StorageHasher::Twox64Concat, validator.as_bytes())],
    )
}

/// `Session.KeyOwner((key type, public key)) -> validator`. The map key is the SCALE
/// encoding of the tuple `(KeyTypeId, Vec<u8>)`: the 4 type bytes, the key's compact
/// length, the key bytes.
pub fn session_key_owner(key_type: KeyTypeId, public_key: &[u8]) -> Vec<u8> {
    let mut encoded = key_type.encode();
    public_key.encode_to(&mut encoded);
    map_key(
        SESSION,
        "KeyOwner",
        &[(StorageHasher::Twox64Concat, &encoded)],
    )
}

// --- Staking ---------------------------------------------------------------------------

/// `Staking.ActiveEra: ActiveEraInfo`.
pub fn staking_active_era() -> Vec<u8> {
    storage_prefix(STAKING, "ActiveEra")
}

/// `Staking.CurrentEra: u32`, the latest planned era (the active era or the next one).
pub fn staking_current_era() -> Vec<u8> {
    storage_prefix(STAKING, "CurrentEra")
}

/// `Staking.HistoryDepth: u32`, a storage value only in runtimes older than staking
/// storage version 13; absent on Creditcoin 3.
pub fn staking_history_depth() -> Vec<u8> {
    storage_prefix(STAKING, "HistoryDepth")
}

/// `Staking.Bonded(stash) -> controller`.
pub fn staking_bonded(stash: &AccountId32) -> Vec<u8> {
    map_key(
        STAKING,
        "Bonded",
        &[(StorageHasher::Twox64Concat, stash.as_bytes())],
    )
}

/// `Staking.Ledger(controller) -> StakingLedger`: keyed by the controller, so read
/// `Bonded(stash)` first.
pub fn staking_ledger(controller: &AccountId32) -> Vec<u8> {
    map_key(
        STAKING,
        "Ledger",
        &[(StorageHasher::Blake2_128Concat, controller.as_bytes())],
    )
}

/// `Staking.Validators(stash) -> ValidatorPrefs`: present while the stash intends to
/// validate.
pub fn staking_validators(stash: &AccountId32) -> Vec<u8> {
    map_key(
        STAKING,
        "Validators",
        &[(StorageHasher::Twox64Concat, stash.as_bytes())],
    )
}

/// `Staking.ErasValidatorReward(era) -> u128`: the era's total validator payout; set
/// when the era ends, removed after `HISTORY_DEPTH` eras.
pub fn staking_eras_validator_reward(era: u32) -> Vec<u8> {
    map_key(
        STAKING,
        "ErasValidatorReward",
        &[(StorageHasher::Twox64Concat, &era.to_le_bytes())],
    )
}

/// `Staking.ErasRewardPoints(era) -> EraRewardPoints`.
pub fn staking_eras_reward_points(era: u32) -> Vec<u8> {
    map_key(
        STAKING,
        "ErasRewardPoints",
        &[(StorageHasher::Twox64Concat, &era.to_le_bytes())],
    )
}

/// `Staking.ErasStakersOverview(era, stash) -> PagedExposureMetadata`.
pub fn staking_eras_stakers_overview(era: u32, stash: &AccountId32) -> Vec<u8> {
    era_and_stash("ErasStakersOverview", era, stash)
}

/// `Staking.ClaimedRewards(era, stash) -> Vec<u32>`, the pages already paid out.
pub fn staking_claimed_rewards(era: u32, stash: &AccountId32) -> Vec<u8> {
    era_and_stash("ClaimedRewards", era, stash)
}

/// Legacy `Staking.ErasStakers(era, stash) -> Exposure`, from before paged exposures.
pub fn staking_eras_stakers(era: u32, stash: &AccountId32) -> Vec<u8> {
    era_and_stash("ErasStakers", era, stash)
}

fn era_and_stash(item: &str, era: u32, stash: &AccountId32) -> Vec<u8> {
    map_key(
        STAKING,
        item,
        &[
            (StorageHasher::Twox64Concat, &era.to_le_bytes()),
            (StorageHasher::Twox64Concat, stash.as_bytes()),
        ],
    )
}
