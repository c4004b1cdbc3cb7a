//! Where storage comes from: a trait the chain logic reads through, so the logic is
//! tested over a map and backed by `state_getStorage` in the agent.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::hash::BuildHasher;

use super::keys;
use super::scale::{Decode, DecodeError, decode_all};
use super::types::AccountId32;

/// Raw storage by key, all reads at one block. `Ok(None)` means no value is stored at
/// that key (what `state_getStorage` answers with `null`); an error means the value
/// could not be fetched, which the logic never mistakes for absence.
pub trait StorageReader {
    type Error;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error>;
}

impl<R: StorageReader + ?Sized> StorageReader for &R {
    type Error = R::Error;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        (**self).get(key)
    }
}

impl<S: BuildHasher> StorageReader for HashMap<Vec<u8>, Vec<u8>, S> {
    type Error = Infallible;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(HashMap::get(self, key).cloned())
    }
}

impl StorageReader for BTreeMap<Vec<u8>, Vec<u8>> {
    type Error = Infallible;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(BTreeMap::get(self, key).cloned())
    }
}

/// A chain query that failed. `E` is the reader's error.
#[derive(Debug)]
pub enum ChainError<E> {
    /// The reader could not fetch an item.
    Read {
        item: &'static str,
        key: String,
        source: E,
    },
    /// An item's bytes are not the type the runtime stores there.
    Decode {
        item: &'static str,
        key: String,
        source: DecodeError,
    },
    /// `Bonded(stash)` names a controller whose `Ledger` is missing or belongs to another
    /// stash: the state pallet-staking reports as a corrupted ledger, where
    /// `payout_stakers` fails too.
    CorruptLedger {
        stash: AccountId32,
        controller: AccountId32,
        ledger_stash: Option<AccountId32>,
    },
    /// `find_validator` needs at least one session public key.
    NoSessionKeys,
}

impl<E: fmt::Display> fmt::Display for ChainError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::Read { item, key, source } => {
                write!(f, "cannot read {item} (storage key {key}): {source}")
            }
            ChainError::Decode { item, key, source } => {
                write!(f, "bad value of {item} (storage key {key}): {source}")
            }
            ChainError::CorruptLedger {
                stash,
                controller,
                ledger_stash: None,
            } => write!(
                f,
                "stash {stash} is bonded to controller {controller}, which has no staking ledger"
            ),
            ChainError::CorruptLedger {
                stash,
                controller,
                ledger_stash: Some(other),
            } => write!(
                f,
                "stash {stash} is bonded to controller {controller}, whose ledger is for stash {other}"
            ),
            ChainError::NoSessionKeys => write!(f, "no session public keys to look up"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ChainError<E> {}

/// Reads and decodes one item: `None` when nothing is stored.
pub(crate) fn read<R: StorageReader, T: Decode>(
    reader: &R,
    item: &'static str,
    key: &[u8],
) -> Result<Option<T>, ChainError<R::Error>> {
    let bytes = reader.get(key).map_err(|source| ChainError::Read {
        item,
        key: keys::to_hex(key),
        source,
    })?;
    bytes
        .map(|bytes| {
            decode_all(&bytes, item).map_err(|source| ChainError::Decode {
                item,
                key: keys::to_hex(key),
                source,
            })
        })
        .transpose()
}

/// Whether anything is stored at the key (a map's `contains_key`).
pub(crate) fn exists<R: StorageReader>(
    reader: &R,
    item: &'static str,
    key: &[u8],
) -> Result<bool, ChainError<R::Error>> {
    reader
        .get(key)
        .map(|bytes| bytes.is_some())
        .map_err(|source| ChainError::Read {
            item,
            key: keys::to_hex(key),
            source,
        })
}
