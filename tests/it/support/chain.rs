//! On-chain storage for a test node's control file: one builder for the
//! chain states the tests need (era, session keys and validators, bonds,
//! rewards and payouts), and the `docker cp` that puts a control file in place.
use super::*;
use warden::chain::keys;
use warden::chain::scale::Encode;
use warden::chain::types::{
    ActiveEraInfo, DisabledValidators, EraRewardPoints, PagedExposureMetadata, StakingLedger,
};
use warden::chain::{AccountId32, SessionKeys};

/// Where the test image's node reads its control file.
pub const TESTNODE_CONTROL: &str = "/root/data/testnode.json";

/// Chain storage for a test node's control file (`{"storage": {"0x…": "0x…"}}`),
/// keys and SCALE values made with warden's chain module (itself checked against
/// substrate-interface vectors).
#[derive(Clone, Default)]
pub struct ChainState {
    pub items: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    /// Whether the node reports a major sync (it then serves an old state).
    pub syncing: bool,
}

impl ChainState {
    pub fn put(&mut self, key: Vec<u8>, value: &impl Encode) -> &mut Self {
        self.items.insert(key, value.encode());
        self
    }

    /// Bytes as they are, for values no type of warden's would encode.
    pub fn put_raw(&mut self, key: Vec<u8>, bytes: &[u8]) -> &mut Self {
        self.items.insert(key, bytes.to_vec());
        self
    }

    /// `Staking.ActiveEra`, started a day per era after a fixed moment.
    pub fn active_era(&mut self, era: u32) -> &mut Self {
        let info = ActiveEraInfo {
            index: era,
            start: Some(1_718_000_000_000 + u64::from(era) * 86_400_000),
        };
        self.put(keys::staking_active_era(), &info)
    }

    /// `session.set_keys`: every key of the set is owned by `stash`.
    pub fn set_keys(&mut self, stash: AccountId32, session_keys: &SessionKeys) -> &mut Self {
        for (key_type, public_key) in session_keys.public_keys() {
            self.put(keys::session_key_owner(key_type, &public_key), &stash);
        }
        self
    }

    /// The current session's validators, none disabled.
    pub fn session_validators(&mut self, validators: &[AccountId32]) -> &mut Self {
        self.put(keys::session_validators(), &validators.to_vec())
            .put(
                keys::session_disabled_validators(),
                &DisabledValidators::Indices(vec![]),
            )
    }

    /// `stash` bonded by `controller` with 5,000 staked.
    pub fn bond(
        &mut self,
        stash: AccountId32,
        controller: AccountId32,
        legacy_claimed_rewards: Vec<u32>,
    ) -> &mut Self {
        let ledger = StakingLedger {
            stash,
            total: 5_000,
            active: 5_000,
            unlocking: vec![],
            legacy_claimed_rewards,
        };
        self.put(keys::staking_bonded(&stash), &controller)
            .put(keys::staking_ledger(&controller), &ledger)
    }

    /// Reward points for `stash` (and someone else) in `era`, and its exposure
    /// in `page_count` pages (0: own stake only, still one page).
    pub fn points_and_exposure(
        &mut self,
        era: u32,
        stash: AccountId32,
        page_count: u32,
    ) -> &mut Self {
        let overview = PagedExposureMetadata {
            total: 1_000 + u128::from(page_count) * 500,
            own: 1_000,
            nominator_count: page_count * 2,
            page_count,
        };
        self.points(era, stash)
            .put(keys::staking_eras_stakers_overview(era, &stash), &overview)
    }

    /// Reward points in `era`: 20 for `stash`, 40 for someone else.
    pub fn points(&mut self, era: u32, stash: AccountId32) -> &mut Self {
        let someone = AccountId32([0xEE; 32]);
        let points = EraRewardPoints {
            total: 60,
            individual: [(stash, 20), (someone, 40)].into(),
        };
        self.put(keys::staking_eras_reward_points(era), &points)
    }

    /// An era that has ended: its reward is set.
    pub fn reward(&mut self, era: u32) -> &mut Self {
        self.put(keys::staking_eras_validator_reward(era), &7_000_000u128)
    }

    /// `stash`'s payout pages claimed in `era`.
    pub fn claimed(&mut self, era: u32, stash: AccountId32, pages: Vec<u32>) -> &mut Self {
        self.put(keys::staking_claimed_rewards(era, &stash), &pages)
    }

    /// The control file's JSON (`syncing` only when set, as the node's default
    /// is not syncing).
    pub fn control_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .items
            .iter()
            .map(|(k, v)| (keys::to_hex(k), json!(format!("0x{}", hex::encode(v)))))
            .collect();
        let mut control = json!({ "storage": map });
        if self.syncing {
            control["syncing"] = json!(true);
        }
        control
    }

    /// Replaces `node`'s control file (at the test image's path) with this state.
    pub fn write_to(&self, node: &Node, dir: &TempDir) {
        self.write_at(node, TESTNODE_CONTROL, dir);
    }

    /// Writes the control file to `path` in `node` (its base path's `testnode.json`).
    pub fn write_at(&self, node: &Node, path: &str, dir: &TempDir) {
        write_control_at(node, path, dir, &self.control_json());
    }

    /// [`ChainState::write_to`] each of `nodes`.
    pub fn write_to_all(&self, nodes: &[&Node], dir: &TempDir) {
        for node in nodes {
            self.write_to(node, dir);
        }
    }
}

/// Replaces a test node's control file at the test image's path.
pub fn write_control(node: &Node, dir: &TempDir, control: &Value) {
    write_control_at(node, TESTNODE_CONTROL, dir, control);
}

/// Replaces the control file at `path` in `node` (`docker cp`, so the node
/// sees the whole file or its last good one).
pub fn write_control_at(node: &Node, path: &str, dir: &TempDir, control: &Value) {
    let file = dir.join(&unique("control"));
    std::fs::write(&file, control.to_string()).unwrap();
    let out = docker(&[
        "cp",
        &file.display().to_string(),
        &format!("{}:{path}", node.name),
    ]);
    assert!(
        out.status.success(),
        "docker cp to {}: {}",
        node.name,
        String::from_utf8_lossy(&out.stderr)
    );
}
