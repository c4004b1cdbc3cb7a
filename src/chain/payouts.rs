//! Which past eras still hold rewards a validator can claim, read from storage the way
//! pallet-staking decides it when `payout_stakers` is called (Creditcoin 3 has no
//! staking runtime API for it).
//!
//! Mirrors pallet-staking 38.0.1 (polkadot-sdk stable2409, storage version 15):
//!
//! - `Pallet::do_payout_stakers` (`src/pallet/impls.rs`): the ledger is found through
//!   `Bonded(stash)` → controller → `Ledger(controller)`; no `Bonded` entry means
//!   `NotStash`: nothing can be claimed for that stash.
//! - `Pallet::do_payout_stakers_by_page`: the era must be within `HistoryDepth` eras of
//!   `CurrentEra`, and `ErasValidatorReward(era)` must exist (it is written when the era
//!   ends and removed with the rest of the era's data `HistoryDepth + 1` eras later,
//!   `clear_era_information`). A validator without reward points in
//!   `ErasRewardPoints(era)` is paid nothing, so such an era is not counted.
//! - `EraInfo::get_page_count` (`src/lib.rs`): `ErasStakersOverview(era, stash)`'s
//!   `page_count`, except that a validator with own stake and no nominators
//!   (`page_count == 0 && own > 0`) still has one page, its own stake; without an
//!   overview the exposure is the legacy non-paged one: one page.
//! - `EraInfo::pending_rewards`: without an overview, the era has a (legacy) exposure
//!   only if `ErasStakers(era, stash)` exists; otherwise there is nothing to claim.
//! - `EraInfo::is_rewards_claimed_with_legacy_fallback`: an era in the ledger's
//!   `legacy_claimed_rewards` is fully claimed; otherwise a page is claimed when
//!   `ClaimedRewards(era, stash)` lists it.
//!
//! Taking the window from the active era rather than from `CurrentEra` loses nothing:
//! rewards exist only for ended eras (≤ active − 1), and the oldest era of the window
//! has already been cleared whenever `CurrentEra` is one ahead of the active era.

use super::keys;
use super::reader::{ChainError, StorageReader, exists, read};
use super::types::{AccountId32, EraRewardPoints, PagedExposureMetadata, StakingLedger};

/// Where one era stands for one validator's rewards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EraPayout {
    /// No `ErasValidatorReward(era)`: the era has not ended, or was pruned.
    NoReward,
    /// The stash earned no reward points in the era.
    NoPoints,
    /// The stash has no exposure (paged or legacy) in the era.
    NoExposure,
    /// The era is in the ledger's `legacy_claimed_rewards`.
    LegacyClaimed,
    /// Every page is in `ClaimedRewards(era, stash)`.
    Claimed { page_count: u32 },
    /// Some pages are not claimed yet.
    Unclaimed {
        page_count: u32,
        unclaimed_pages: Vec<u32>,
    },
}

/// The staking ledger of a stash, through `Bonded(stash)` → `Ledger(controller)`.
/// None when the stash is not bonded.
pub fn stash_ledger<R: StorageReader>(
    reader: &R,
    stash: &AccountId32,
) -> Result<Option<StakingLedger>, ChainError<R::Error>> {
    let Some(controller) =
        read::<_, AccountId32>(reader, "Staking.Bonded", &keys::staking_bonded(stash))?
    else {
        return Ok(None);
    };
    let ledger: Option<StakingLedger> =
        read(reader, "Staking.Ledger", &keys::staking_ledger(&controller))?;
    match ledger {
        Some(ledger) if ledger.stash == *stash => Ok(Some(ledger)),
        other => Err(ChainError::CorruptLedger {
            stash: *stash,
            controller,
            ledger_stash: other.map(|ledger| ledger.stash),
        }),
    }
}

/// Where `era` stands for `stash`'s rewards, given the stash's ledger.
pub fn era_payout<R: StorageReader>(
    reader: &R,
    stash: &AccountId32,
    era: u32,
    ledger: &StakingLedger,
) -> Result<EraPayout, ChainError<R::Error>> {
    if !exists(
        reader,
        "Staking.ErasValidatorReward",
        &keys::staking_eras_validator_reward(era),
    )? {
        return Ok(EraPayout::NoReward);
    }
    // ValueQuery: an absent entry reads as no points at all.
    let points: EraRewardPoints = read(
        reader,
        "Staking.ErasRewardPoints",
        &keys::staking_eras_reward_points(era),
    )?
    .unwrap_or_default();
    if points.individual.get(stash).copied().unwrap_or(0) == 0 {
        return Ok(EraPayout::NoPoints);
    }

    let overview: Option<PagedExposureMetadata> = read(
        reader,
        "Staking.ErasStakersOverview",
        &keys::staking_eras_stakers_overview(era, stash),
    )?;
    let page_count = match overview {
        Some(overview) if overview.page_count == 0 && overview.own > 0 => 1,
        Some(overview) => overview.page_count,
        None => {
            if !exists(
                reader,
                "Staking.ErasStakers",
                &keys::staking_eras_stakers(era, stash),
            )? {
                return Ok(EraPayout::NoExposure);
            }
            1
        }
    };
    if page_count == 0 {
        // An overview with neither nominators nor own stake: no page to claim.
        return Ok(EraPayout::NoExposure);
    }

    if ledger.legacy_claimed_rewards.contains(&era) {
        return Ok(EraPayout::LegacyClaimed);
    }
    // ValueQuery: absent means no page claimed.
    let claimed: Vec<u32> = read(
        reader,
        "Staking.ClaimedRewards",
        &keys::staking_claimed_rewards(era, stash),
    )?
    .unwrap_or_default();
    let unclaimed_pages: Vec<u32> = (0..page_count).filter(|p| !claimed.contains(p)).collect();
    if unclaimed_pages.is_empty() {
        Ok(EraPayout::Claimed { page_count })
    } else {
        Ok(EraPayout::Unclaimed {
            page_count,
            unclaimed_pages,
        })
    }
}

/// One era whose rewards a stash can still claim.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnclaimedEra {
    pub era: u32,
    /// The exposure pages not claimed yet (`payoutStakersByPage`), ascending.
    pub pages: Vec<u32>,
    pub page_count: u32,
    /// The first era in which it can no longer be claimed: pallet-staking's
    /// `do_payout_stakers` refuses `era < current_era − history_depth`
    /// (`InvalidEraToReward`), so once the era is `era + history_depth + 1`.
    pub expires_at_era: u32,
}

/// The eras in `[active_era − history_depth, active_era − 1]` (saturating at 0) for which
/// `stash` still has rewards to claim, oldest first, with their pages and expiry. Empty
/// when the stash is not bonded (pallet-staking refuses its payouts with `NotStash`) and
/// in era 0, which has no ended era before it.
pub fn unclaimed_payouts<R: StorageReader>(
    reader: &R,
    stash: &AccountId32,
    active_era: u32,
    history_depth: u32,
) -> Result<Vec<UnclaimedEra>, ChainError<R::Error>> {
    if active_era == 0 {
        return Ok(Vec::new());
    }
    let Some(ledger) = stash_ledger(reader, stash)? else {
        return Ok(Vec::new());
    };
    let first = active_era.saturating_sub(history_depth);
    let mut eras = Vec::new();
    for era in first..active_era {
        if let EraPayout::Unclaimed {
            page_count,
            unclaimed_pages,
        } = era_payout(reader, stash, era, &ledger)?
        {
            eras.push(UnclaimedEra {
                era,
                pages: unclaimed_pages,
                page_count,
                expires_at_era: era.saturating_add(history_depth).saturating_add(1),
            });
        }
    }
    Ok(eras)
}

/// The eras of [`unclaimed_payouts`] alone.
pub fn unclaimed_payout_eras<R: StorageReader>(
    reader: &R,
    stash: &AccountId32,
    active_era: u32,
    history_depth: u32,
) -> Result<Vec<u32>, ChainError<R::Error>> {
    Ok(unclaimed_payouts(reader, stash, active_era, history_depth)?
        .into_iter()
        .map(|unclaimed| unclaimed.era)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::fixture::{Chain, account};
    use crate::chain::keys::HISTORY_DEPTH;

    const ERA: u32 = 90;

    fn stash() -> AccountId32 {
        account(1)
    }

    /// A controller distinct from the stash, so that reading through `Bonded` is tested.
    fn controller() -> AccountId32 {
        account(2)
    }

    fn other_validator() -> AccountId32 {
        account(3)
    }

    fn status(chain: &Chain) -> EraPayout {
        let ledger = stash_ledger(&chain.storage, &stash())
            .unwrap()
            .expect("bonded");
        era_payout(&chain.storage, &stash(), ERA, &ledger).unwrap()
    }

    fn unclaimed(page_count: u32, unclaimed_pages: Vec<u32>) -> EraPayout {
        EraPayout::Unclaimed {
            page_count,
            unclaimed_pages,
        }
    }

    #[test]
    fn era_payout_table() {
        type Setup = fn(&mut Chain);
        let table: Vec<(&str, Setup, EraPayout)> = vec![
            (
                "one page, nothing claimed",
                |c| {
                    c.ended_era(ERA, &[(stash(), 20)])
                        .overview(ERA, stash(), 100, 1);
                },
                unclaimed(1, vec![0]),
            ),
            (
                "one page, claimed",
                |c| {
                    c.ended_era(ERA, &[(stash(), 20)])
                        .overview(ERA, stash(), 100, 1)
                        .claimed(ERA, stash(), vec![0]);
                },
                EraPayout::Claimed { page_count: 1 },
            ),
            (
                "three pages, two claimed",
                |c| {
                    c.ended_era(ERA, &[(stash(), 20)])
                        .overview(ERA, stash(), 100, 3)
                        .claimed(ERA, stash(), vec![0, 2]);
                },
                unclaimed(3, vec![1]),
            ),
            (
                "three pages, all claimed out of order",
                |c| {
                    c.ended_era(ERA, &[(stash(), 20)])
                        .overview(ERA, stash(), 100, 3)
                        .claimed(ERA, stash(), vec![2, 0, 1]);
                },
                EraPayout::Claimed { page_count: 3 },
            ),
            (
                "pruned era: exposure left but no ErasValidatorReward",
                |c| {
                    c.overview(ERA, stash(), 100, 1);
                },
                EraPayout::NoReward,
            ),
            (
                "no reward points for the stash",
                |c| {
                    c.ended_era(ERA, &[(other_validator(), 20)])
                        .overview(ERA, stash(), 100, 1);
                },
                EraPayout::NoPoints,
            ),
            (
                "zero reward points for the stash",
                |c| {
                    c.ended_era(ERA, &[(stash(), 0), (other_validator(), 20)])
                        .overview(ERA, stash(), 100, 1);
                },
                EraPayout::NoPoints,
            ),
            (
                "era in legacy_claimed_rewards",
                |c| {
                    c.bond(stash(), controller(), vec![ERA - 1, ERA])
                        .ended_era(ERA, &[(stash(), 20)])
                        .overview(ERA, stash(), 100, 2);
                },
                EraPayout::LegacyClaimed,
            ),
            (
                "own stake only: page_count 0 is still one page",
                |c| {
                    c.ended_era(ERA, &[(stash(), 20)])
                        .overview(ERA, stash(), 100, 0);
                },
                unclaimed(1, vec![0]),
            ),
            (
                "own stake only, its page claimed",
                |c| {
                    c.ended_era(ERA, &[(stash(), 20)])
                        .overview(ERA, stash(), 100, 0)
                        .claimed(ERA, stash(), vec![0]);
                },
                EraPayout::Claimed { page_count: 1 },
            ),
            (
                "overview with neither own stake nor nominators",
                |c| {
                    c.ended_era(ERA, &[(stash(), 20)])
                        .overview(ERA, stash(), 0, 0);
                },
                EraPayout::NoExposure,
            ),
            (
                "legacy exposure, not claimed",
                |c| {
                    c.ended_era(ERA, &[(stash(), 20)])
                        .legacy_exposure(ERA, stash());
                },
                unclaimed(1, vec![0]),
            ),
            (
                "legacy exposure, claimed in the ledger",
                |c| {
                    c.bond(stash(), controller(), vec![ERA])
                        .ended_era(ERA, &[(stash(), 20)])
                        .legacy_exposure(ERA, stash());
                },
                EraPayout::LegacyClaimed,
            ),
            (
                "legacy exposure, claimed as page 0",
                |c| {
                    c.ended_era(ERA, &[(stash(), 20)])
                        .legacy_exposure(ERA, stash())
                        .claimed(ERA, stash(), vec![0]);
                },
                EraPayout::Claimed { page_count: 1 },
            ),
            (
                "points but no exposure of either kind",
                |c| {
                    c.ended_era(ERA, &[(stash(), 20)]);
                },
                EraPayout::NoExposure,
            ),
        ];
        for (name, setup, expected) in table {
            let mut chain = Chain::default();
            chain.bond(stash(), controller(), vec![]);
            setup(&mut chain);
            assert_eq!(status(&chain), expected, "{name}");
        }
    }

    /// An era the stash has points and one unclaimed page in.
    fn unclaimed_era(chain: &mut Chain, era: u32) {
        chain
            .ended_era(era, &[(stash(), 20), (other_validator(), 40)])
            .overview(era, stash(), 100, 1);
    }

    #[test]
    fn only_ended_eras_within_history_depth_are_counted() {
        let mut chain = Chain::default();
        chain.bond(stash(), controller(), vec![]);
        for era in [15, 16, 50, 99, 100] {
            unclaimed_era(&mut chain, era);
        }
        chain.claimed(50, stash(), vec![0]);
        let eras = unclaimed_payout_eras(&chain.storage, &stash(), 100, HISTORY_DEPTH).unwrap();
        // 15 is older than 100 - 84; 100 is the active era, not ended.
        assert_eq!(eras, vec![16, 99]);
        let detailed = unclaimed_payouts(&chain.storage, &stash(), 100, HISTORY_DEPTH).unwrap();
        assert_eq!(
            detailed,
            vec![
                // 16 can be claimed in era 100 (16 >= 100 - 84), no longer in 101.
                UnclaimedEra {
                    era: 16,
                    pages: vec![0],
                    page_count: 1,
                    expires_at_era: 101
                },
                UnclaimedEra {
                    era: 99,
                    pages: vec![0],
                    page_count: 1,
                    expires_at_era: 184
                },
            ]
        );
    }

    #[test]
    fn era_zero_has_no_ended_era_and_era_one_has_era_zero() {
        let mut chain = Chain::default();
        chain.bond(stash(), controller(), vec![]);
        unclaimed_era(&mut chain, 0);
        assert_eq!(
            unclaimed_payout_eras(&chain.storage, &stash(), 0, HISTORY_DEPTH).unwrap(),
            Vec::<u32>::new()
        );
        assert_eq!(
            unclaimed_payout_eras(&chain.storage, &stash(), 1, HISTORY_DEPTH).unwrap(),
            vec![0]
        );
        unclaimed_era(&mut chain, 4);
        assert_eq!(
            unclaimed_payout_eras(&chain.storage, &stash(), 5, HISTORY_DEPTH).unwrap(),
            vec![0, 4]
        );
    }

    #[test]
    fn an_unbonded_stash_has_nothing_to_claim() {
        let mut chain = Chain::default();
        unclaimed_era(&mut chain, 90);
        assert_eq!(
            unclaimed_payout_eras(&chain.storage, &stash(), 100, HISTORY_DEPTH).unwrap(),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn a_corrupt_ledger_is_an_error_not_an_empty_answer() {
        let mut chain = Chain::default();
        chain.put(keys::staking_bonded(&stash()), &controller());
        let error =
            unclaimed_payout_eras(&chain.storage, &stash(), 100, HISTORY_DEPTH).unwrap_err();
        assert!(matches!(
            error,
            ChainError::CorruptLedger {
                ledger_stash: None,
                ..
            }
        ));
        assert!(
            error.to_string().contains("has no staking ledger"),
            "{error}"
        );

        chain.bond(other_validator(), controller(), vec![]);
        chain.put(keys::staking_bonded(&stash()), &controller());
        let error =
            unclaimed_payout_eras(&chain.storage, &stash(), 100, HISTORY_DEPTH).unwrap_err();
        assert!(matches!(
            error,
            ChainError::CorruptLedger {
                ledger_stash: Some(found),
                ..
            } if found == other_validator()
        ));
    }

    #[test]
    fn an_undecodable_value_names_the_item_and_key() {
        let mut chain = Chain::default();
        chain.bond(stash(), controller(), vec![]);
        unclaimed_era(&mut chain, 90);
        // Reward points cut short in the middle of the map.
        let key = keys::staking_eras_reward_points(90);
        let mut bytes = chain.storage[&key].clone();
        bytes.truncate(bytes.len() - 2);
        chain.put_raw(key.clone(), &bytes);
        let error =
            unclaimed_payout_eras(&chain.storage, &stash(), 100, HISTORY_DEPTH).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "bad value of Staking.ErasRewardPoints (storage key {}): cannot decode \
                 Staking.ErasRewardPoints.individual[1].1 at byte",
                keys::to_hex(&key)
            )),
            "{message}"
        );
    }

    struct Unreachable;

    impl StorageReader for Unreachable {
        type Error = String;

        fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, String> {
            Err("connection refused".to_owned())
        }
    }

    #[test]
    fn a_read_failure_is_an_error_not_an_absent_value() {
        let error = unclaimed_payout_eras(&Unreachable, &stash(), 100, HISTORY_DEPTH).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read Staking.Bonded (storage key {}): connection refused",
                keys::to_hex(&keys::staking_bonded(&stash()))
            )
        );
    }
}
