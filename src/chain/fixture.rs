//! Test storage: a map filled through the same key functions and encoders the logic
//! reads with. (The key functions and encoders themselves are checked against the
//! Python-generated vectors in `vectors.rs`.)

use std::collections::HashMap;

use super::keys;
use super::scale::Encode;
use super::types::{
    AccountId32, DisabledValidators, EraRewardPoints, Exposure, KeyTypeId, PagedExposureMetadata,
    SessionKeys, StakingLedger,
};

#[derive(Default)]
pub struct Chain {
    pub storage: HashMap<Vec<u8>, Vec<u8>>,
}

pub fn account(n: u8) -> AccountId32 {
    AccountId32([n; 32])
}

pub fn keys_of(n: u8) -> SessionKeys {
    SessionKeys {
        gran: [n; 32],
        babe: [n.wrapping_add(1); 32],
        imon: [n.wrapping_add(2); 32],
    }
}

impl Chain {
    pub fn put(&mut self, key: Vec<u8>, value: &impl Encode) -> &mut Self {
        self.storage.insert(key, value.encode());
        self
    }

    pub fn put_raw(&mut self, key: Vec<u8>, bytes: &[u8]) -> &mut Self {
        self.storage.insert(key, bytes.to_vec());
        self
    }

    /// Bonded(stash) = controller and Ledger(controller) for stash.
    pub fn bond(
        &mut self,
        stash: AccountId32,
        controller: AccountId32,
        legacy_claimed_rewards: Vec<u32>,
    ) -> &mut Self {
        let ledger = StakingLedger {
            stash,
            total: 1_000,
            active: 1_000,
            unlocking: vec![],
            legacy_claimed_rewards,
        };
        self.put(keys::staking_bonded(&stash), &controller)
            .put(keys::staking_ledger(&controller), &ledger)
    }

    /// An ended era: ErasValidatorReward and the reward points of each validator.
    pub fn ended_era(&mut self, era: u32, points: &[(AccountId32, u32)]) -> &mut Self {
        let points = EraRewardPoints {
            total: points.iter().map(|p| p.1).sum(),
            individual: points.iter().copied().collect(),
        };
        self.put(keys::staking_eras_validator_reward(era), &1_000_000u128)
            .put(keys::staking_eras_reward_points(era), &points)
    }

    pub fn overview(
        &mut self,
        era: u32,
        stash: AccountId32,
        own: u128,
        page_count: u32,
    ) -> &mut Self {
        let overview = PagedExposureMetadata {
            total: own + u128::from(page_count) * 500,
            own,
            nominator_count: page_count * 2,
            page_count,
        };
        self.put(keys::staking_eras_stakers_overview(era, &stash), &overview)
    }

    pub fn claimed(&mut self, era: u32, stash: AccountId32, pages: Vec<u32>) -> &mut Self {
        self.put(keys::staking_claimed_rewards(era, &stash), &pages)
    }

    pub fn legacy_exposure(&mut self, era: u32, stash: AccountId32) -> &mut Self {
        let exposure = Exposure {
            total: 700,
            own: 700,
            others: vec![],
        };
        self.put(keys::staking_eras_stakers(era, &stash), &exposure)
    }

    /// Session.KeyOwner for every key of the set, and Session.NextKeys.
    pub fn set_keys(&mut self, stash: AccountId32, session_keys: SessionKeys) -> &mut Self {
        for (key_type, public_key) in session_keys.public_keys() {
            self.key_owner(key_type, public_key, stash);
        }
        self.put(keys::session_next_keys(&stash), &session_keys)
    }

    pub fn key_owner(
        &mut self,
        key_type: KeyTypeId,
        public_key: [u8; 32],
        stash: AccountId32,
    ) -> &mut Self {
        self.put(keys::session_key_owner(key_type, &public_key), &stash)
    }

    pub fn session_validators(&mut self, validators: &[AccountId32]) -> &mut Self {
        self.put(keys::session_validators(), &validators.to_vec())
    }

    pub fn disabled(&mut self, disabled: DisabledValidators) -> &mut Self {
        self.put(keys::session_disabled_validators(), &disabled)
    }

    pub fn queued(&mut self, queued: &[(AccountId32, SessionKeys)]) -> &mut Self {
        self.put(keys::session_queued_keys(), &queued.to_vec())
    }

    pub fn session_index(&mut self, index: u32) -> &mut Self {
        self.put(keys::session_current_index(), &index)
    }

    pub fn epoch_start(&mut self, previous: u32, current: u32) -> &mut Self {
        self.put(keys::babe_epoch_start(), &(previous, current))
    }
}
