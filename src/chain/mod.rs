//! Creditcoin 3 / Substrate on-chain state, read exactly.
//!
//! Owns: the storage keys of the items warden reads (`keys`), the hashers they are built
//! from (`hashing`), the SCALE codec for their values (`scale`, `types`), SS58 addresses
//! (`ss58`), session keys and keystore file names (`session_keys`), public keys in
//! their one text form (`public_key`), and the questions
//! answered from storage: which validator a node's keys belong to (`validator`) and
//! which eras still have rewards to claim (`payouts`).
//!
//! Invariants:
//! - Pure: no sockets, no files, no clock. Storage arrives through [`StorageReader`],
//!   which the agent backs with `state_getStorage` and the tests with a map.
//! - Every layout and rule here is transcribed from a named source (polkadot-sdk
//!   stable2409 crates, the Creditcoin 3 runtime), cited where it is used; byte layouts
//!   are checked against `tests/vectors/substrate.json`, written by
//!   `scripts/gen-vectors` with the Python Substrate libraries.
//! - A value that does not decode is an error naming the item, its storage key, the
//!   field and the byte; it is never read as "absent".

pub mod hashing;
pub mod key_check;
pub mod keys;
pub mod payouts;
pub mod public_key;
pub mod reader;
pub mod scale;
pub mod session_keys;
pub mod ss58;
pub mod types;
pub mod validator;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod vectors;

pub use keys::HISTORY_DEPTH;
pub use payouts::{
    EraPayout, UnclaimedEra, era_payout, stash_ledger, unclaimed_payout_eras, unclaimed_payouts,
};
pub use public_key::{PublicKey, PublicKeyError};
pub use reader::{ChainError, StorageReader};
pub use scale::{DecodeError, decode_all};
pub use session_keys::{
    KeystoreEntry, keystore_file_name, parse_keystore_file_name, split_session_keys,
};
pub use types::{AccountId32, KeyTypeId, SessionKeys};
pub use validator::{
    Agreement, KeyOwnership, ValidatorInfo, active_era, current_era, current_session_index,
    find_validator,
};
