//! The on-chain types warden reads, with their SCALE layouts.
//!
//! Transcribed from the polkadot-sdk stable2409 sources, as published on crates.io:
//! pallet-staking 38.0.1 `src/lib.rs` (storage version 15), sp-staking 36.0.0
//! `src/lib.rs`, pallet-session 38.0.0 `src/lib.rs`, and the Creditcoin 3 runtime's
//! `impl_opaque_keys!` (gluwa/creditcoin3 `runtime/src/lib.rs`). A `#[codec(compact)]`
//! field is a [`Compact`] here; a `BoundedVec` encodes exactly as a `Vec`.

use std::collections::BTreeMap;
use std::fmt;

use super::scale::{
    Compact, Decode, DecodeError, DecodeErrorReason, Encode, Input, decode_field, decode_length,
    encode_compact,
};

/// A 32-byte account id (`sp_runtime::AccountId32`): what stashes, controllers and
/// validator ids are on Creditcoin 3 (its `AccountId` is `MultiSignature`'s signer).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AccountId32(pub [u8; 32]);

impl AccountId32 {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// "0x" + 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }

    /// The SS58 address with the generic Substrate prefix 42 (Creditcoin's).
    pub fn to_ss58(&self) -> String {
        super::ss58::encode(self, super::ss58::DEFAULT_PREFIX)
            .expect("prefix 42 is a valid SS58 prefix")
    }
}

impl fmt::Debug for AccountId32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId32({})", self.to_hex())
    }
}

/// Shows the SS58 address (prefix 42), as explorers and wallets do.
impl fmt::Display for AccountId32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_ss58())
    }
}

impl Decode for AccountId32 {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(AccountId32(input.read_array()?))
    }
}

impl Encode for AccountId32 {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

/// A session key type (`sp_core::crypto::KeyTypeId`): four ASCII bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyTypeId(pub [u8; 4]);

impl KeyTypeId {
    /// GRANDPA finality (ed25519).
    pub const GRANDPA: KeyTypeId = KeyTypeId(*b"gran");
    /// BABE block production (sr25519).
    pub const BABE: KeyTypeId = KeyTypeId(*b"babe");
    /// I'm-online heartbeats (sr25519).
    pub const IM_ONLINE: KeyTypeId = KeyTypeId(*b"imon");

    /// The four bytes as text, when they are printable ASCII.
    pub fn as_str(&self) -> Option<&str> {
        let printable = self.0.iter().all(|b| b.is_ascii_graphic());
        if printable {
            std::str::from_utf8(&self.0).ok()
        } else {
            None
        }
    }
}

impl fmt::Debug for KeyTypeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyTypeId({self})")
    }
}

/// The ASCII name (`gran`), or "0x" + hex when the bytes are not printable.
impl fmt::Display for KeyTypeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(text) => f.write_str(text),
            None => write!(f, "0x{}", hex::encode(self.0)),
        }
    }
}

impl Decode for KeyTypeId {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(KeyTypeId(input.read_array()?))
    }
}

impl Encode for KeyTypeId {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

/// Creditcoin 3's `SessionKeys` (`impl_opaque_keys! { grandpa, babe, im_online }`): three
/// 32-byte public keys back to back, 96 bytes with no length prefixes. It is both
/// what `author_rotateKeys` returns and the `Keys` in `Session.NextKeys`/`QueuedKeys`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SessionKeys {
    /// GRANDPA (`gran`, ed25519).
    pub gran: [u8; 32],
    /// BABE (`babe`, sr25519).
    pub babe: [u8; 32],
    /// I'm-online (`imon`, sr25519).
    pub imon: [u8; 32],
}

impl SessionKeys {
    pub const ENCODED_LEN: usize = 96;

    /// The keys with their key types, in the runtime's order.
    pub fn public_keys(&self) -> [(KeyTypeId, [u8; 32]); 3] {
        [
            (KeyTypeId::GRANDPA, self.gran),
            (KeyTypeId::BABE, self.babe),
            (KeyTypeId::IM_ONLINE, self.imon),
        ]
    }

    /// The key of one type, if the runtime has that type.
    pub fn get(&self, key_type: KeyTypeId) -> Option<[u8; 32]> {
        self.public_keys()
            .into_iter()
            .find(|(t, _)| *t == key_type)
            .map(|(_, key)| key)
    }

    /// "0x" + 192 hex digits, as `author_rotateKeys` answers.
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.encode()))
    }
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("gran", &format_args!("0x{}", hex::encode(self.gran)))
            .field("babe", &format_args!("0x{}", hex::encode(self.babe)))
            .field("imon", &format_args!("0x{}", hex::encode(self.imon)))
            .finish()
    }
}

impl Decode for SessionKeys {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(SessionKeys {
            gran: decode_field(input, "grandpa")?,
            babe: decode_field(input, "babe")?,
            imon: decode_field(input, "im_online")?,
        })
    }
}

impl Encode for SessionKeys {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.gran);
        out.extend_from_slice(&self.babe);
        out.extend_from_slice(&self.imon);
    }
}

/// `Session.DisabledValidators`: indices into `Session.Validators` of the validators
/// disabled for the rest of the session.
///
/// pallet-session 38.0.0 (stable2409) stores `Vec<u32>`, kept sorted. Later releases
/// (pallet-session 50.0.0, seen on a later Creditcoin 3 branch) store
/// `Vec<(u32, OffenceSeverity)>`, the severity a `Perbill` (a plain u32). Decoding takes
/// whichever the length fits: after the compact count n, 4n bytes remain for the first
/// layout and 8n for the second, which never coincide for n > 0. It must therefore be
/// given the whole storage value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisabledValidators {
    /// `Vec<u32>`: the stable2409 layout.
    Indices(Vec<u32>),
    /// `Vec<(u32, Perbill parts)>`: the layout of later releases.
    WithSeverity(Vec<(u32, u32)>),
}

impl DisabledValidators {
    pub fn contains(&self, validator_index: u32) -> bool {
        match self {
            DisabledValidators::Indices(indices) => indices.contains(&validator_index),
            DisabledValidators::WithSeverity(entries) => {
                entries.iter().any(|(index, _)| *index == validator_index)
            }
        }
    }

    pub fn indices(&self) -> Vec<u32> {
        match self {
            DisabledValidators::Indices(indices) => indices.clone(),
            DisabledValidators::WithSeverity(entries) => entries.iter().map(|e| e.0).collect(),
        }
    }
}

impl Default for DisabledValidators {
    /// The `ValueQuery` default when the item is absent: nobody disabled.
    fn default() -> Self {
        DisabledValidators::Indices(Vec::new())
    }
}

impl Decode for DisabledValidators {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let start = input.position();
        let count = decode_length(input)?;
        let rest = input.remaining();
        if rest == count * 4 {
            let mut indices = Vec::with_capacity(count);
            for index in 0..count {
                indices.push(decode_field(input, &format!("[{index}]"))?);
            }
            Ok(DisabledValidators::Indices(indices))
        } else if rest == count * 8 {
            let mut entries = Vec::with_capacity(count);
            for index in 0..count {
                entries.push(decode_field(input, &format!("[{index}]"))?);
            }
            Ok(DisabledValidators::WithSeverity(entries))
        } else {
            Err(DecodeError::new(
                start,
                DecodeErrorReason::LengthMismatch {
                    detail: format!(
                        "{count} entries with {rest} bytes left fit neither Vec<u32> \
                         ({} bytes) nor Vec<(u32, Perbill)> ({} bytes)",
                        count * 4,
                        count * 8
                    ),
                },
            ))
        }
    }
}

impl Encode for DisabledValidators {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            DisabledValidators::Indices(indices) => indices.encode_to(out),
            DisabledValidators::WithSeverity(entries) => entries.encode_to(out),
        }
    }
}

/// `Staking.ActiveEra`: the era being rewarded now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveEraInfo {
    pub index: u32,
    /// Milliseconds since the Unix epoch; None until the era's first block is finalized.
    pub start: Option<u64>,
}

impl Decode for ActiveEraInfo {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(ActiveEraInfo {
            index: decode_field(input, "index")?,
            start: decode_field(input, "start")?,
        })
    }
}

impl Encode for ActiveEraInfo {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.index.encode_to(out);
        self.start.encode_to(out);
    }
}

/// Funds becoming free at an era (`UnlockChunk`, both fields compact).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnlockChunk {
    pub value: u128,
    pub era: u32,
}

impl Decode for UnlockChunk {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(UnlockChunk {
            value: decode_field::<Compact<u128>>(input, "value")?.0,
            era: decode_field::<Compact<u32>>(input, "era")?.0,
        })
    }
}

impl Encode for UnlockChunk {
    fn encode_to(&self, out: &mut Vec<u8>) {
        encode_compact(self.value, out);
        encode_compact(u128::from(self.era), out);
    }
}

/// `Staking.Ledger(controller)` (pallet-staking storage version 15). The struct's
/// `controller` field is `#[codec(skip)]`: not stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StakingLedger {
    pub stash: AccountId32,
    pub total: u128,
    pub active: u128,
    pub unlocking: Vec<UnlockChunk>,
    /// Eras whose rewards were claimed before paged rewards (v14); such an era counts
    /// as fully claimed.
    pub legacy_claimed_rewards: Vec<u32>,
}

impl Decode for StakingLedger {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(StakingLedger {
            stash: decode_field(input, "stash")?,
            total: decode_field::<Compact<u128>>(input, "total")?.0,
            active: decode_field::<Compact<u128>>(input, "active")?.0,
            unlocking: decode_field(input, "unlocking")?,
            legacy_claimed_rewards: decode_field(input, "legacy_claimed_rewards")?,
        })
    }
}

impl Encode for StakingLedger {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.stash.encode_to(out);
        encode_compact(self.total, out);
        encode_compact(self.active, out);
        self.unlocking.encode_to(out);
        self.legacy_claimed_rewards.encode_to(out);
    }
}

/// `Staking.ErasRewardPoints(era)`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EraRewardPoints {
    pub total: u32,
    pub individual: BTreeMap<AccountId32, u32>,
}

impl Decode for EraRewardPoints {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(EraRewardPoints {
            total: decode_field(input, "total")?,
            individual: decode_field(input, "individual")?,
        })
    }
}

impl Encode for EraRewardPoints {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.total.encode_to(out);
        self.individual.encode_to(out);
    }
}

/// `Staking.ErasStakersOverview(era, stash)` (sp-staking `PagedExposureMetadata`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PagedExposureMetadata {
    pub total: u128,
    pub own: u128,
    pub nominator_count: u32,
    /// Pages of nominators: 0 for a validator without nominators, who still has its own
    /// stake paid out as page 0 (see `payouts.rs`).
    pub page_count: u32,
}

impl Decode for PagedExposureMetadata {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(PagedExposureMetadata {
            total: decode_field::<Compact<u128>>(input, "total")?.0,
            own: decode_field::<Compact<u128>>(input, "own")?.0,
            nominator_count: decode_field(input, "nominator_count")?,
            page_count: decode_field(input, "page_count")?,
        })
    }
}

impl Encode for PagedExposureMetadata {
    fn encode_to(&self, out: &mut Vec<u8>) {
        encode_compact(self.total, out);
        encode_compact(self.own, out);
        self.nominator_count.encode_to(out);
        self.page_count.encode_to(out);
    }
}

/// One nominator's stake behind a validator (sp-staking `IndividualExposure`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndividualExposure {
    pub who: AccountId32,
    pub value: u128,
}

impl Decode for IndividualExposure {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(IndividualExposure {
            who: decode_field(input, "who")?,
            value: decode_field::<Compact<u128>>(input, "value")?.0,
        })
    }
}

impl Encode for IndividualExposure {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.who.encode_to(out);
        encode_compact(self.value, out);
    }
}

/// Legacy `Staking.ErasStakers(era, stash)` (sp-staking `Exposure`), written before
/// paged exposures (storage version 14).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Exposure {
    pub total: u128,
    pub own: u128,
    pub others: Vec<IndividualExposure>,
}

impl Decode for Exposure {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(Exposure {
            total: decode_field::<Compact<u128>>(input, "total")?.0,
            own: decode_field::<Compact<u128>>(input, "own")?.0,
            others: decode_field(input, "others")?,
        })
    }
}

impl Encode for Exposure {
    fn encode_to(&self, out: &mut Vec<u8>) {
        encode_compact(self.total, out);
        encode_compact(self.own, out);
        self.others.encode_to(out);
    }
}

/// `Staking.Validators(stash)`: a validator's preferences.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ValidatorPrefs {
    /// Commission in parts per billion (a compact `Perbill`).
    pub commission: u32,
    /// Whether the validator refuses new nominations.
    pub blocked: bool,
}

impl Decode for ValidatorPrefs {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok(ValidatorPrefs {
            commission: decode_field::<Compact<u32>>(input, "commission")?.0,
            blocked: decode_field(input, "blocked")?,
        })
    }
}

impl Encode for ValidatorPrefs {
    fn encode_to(&self, out: &mut Vec<u8>) {
        encode_compact(u128::from(self.commission), out);
        self.blocked.encode_to(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::scale::decode_all;

    #[test]
    fn disabled_validators_takes_the_layout_the_length_fits() {
        let old = hex::decode("0c010000000400000011000000").unwrap();
        assert_eq!(
            decode_all::<DisabledValidators>(&old, "d").unwrap(),
            DisabledValidators::Indices(vec![1, 4, 17])
        );
        let new = hex::decode("080100000000ca9a3b0400000040787d01").unwrap();
        let decoded = decode_all::<DisabledValidators>(&new, "d").unwrap();
        assert_eq!(
            decoded,
            DisabledValidators::WithSeverity(vec![(1, 1_000_000_000), (4, 25_000_000)])
        );
        assert!(decoded.contains(4) && !decoded.contains(2));
        assert_eq!(
            decode_all::<DisabledValidators>(&[0], "d").unwrap(),
            DisabledValidators::Indices(vec![])
        );
        let neither = hex::decode("08010000000200000003").unwrap();
        let error = decode_all::<DisabledValidators>(&neither, "DisabledValidators").unwrap_err();
        assert_eq!(error.offset, 0);
        assert!(error.to_string().contains("fit neither"), "{error}");
    }

    #[test]
    fn ledger_errors_point_into_the_nested_field() {
        let ledger = StakingLedger {
            stash: AccountId32([7; 32]),
            total: 100,
            active: 50,
            unlocking: vec![
                UnlockChunk { value: 10, era: 3 },
                UnlockChunk {
                    value: 40,
                    era: 70_000,
                },
            ],
            legacy_claimed_rewards: vec![],
        };
        let mut bytes = ledger.encode();
        assert_eq!(
            decode_all::<StakingLedger>(&bytes, "Staking.Ledger").unwrap(),
            ledger
        );
        // Cut inside the second chunk's era (a 4-byte compact).
        let era_offset = 32 + 2 + 1 + 1 + 2 + 1;
        bytes.truncate(era_offset + 2);
        let error = decode_all::<StakingLedger>(&bytes, "Staking.Ledger").unwrap_err();
        assert_eq!(error.path(), "Staking.Ledger.unlocking[1].era");
        assert_eq!(error.offset, era_offset);
    }

    #[test]
    fn key_type_ids_print_as_text_when_they_can() {
        assert_eq!(KeyTypeId::GRANDPA.to_string(), "gran");
        assert_eq!(KeyTypeId([0, 1, 2, 3]).to_string(), "0x00010203");
    }
}
