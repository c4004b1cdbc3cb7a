//! The simulated chain: a block every `block_time`, counted from a genesis time.
//!
//! A real node imports blocks from the network (or authors them) and finalizes with GRANDPA a
//! couple of blocks behind. Here the best block is simply the number of block times elapsed
//! since genesis, finalized is best − 2, and block hashes are a pure function of the chain and
//! the number. Nothing is stored per block, so any past hash can be recomputed, and the chain
//! keeps counting across restarts because the genesis time is kept in the database directory.

use serde::Serialize;
use serde_json::Value;

use crate::hex;

/// How many blocks behind best GRANDPA finality is shown.
pub const FINALITY_LAG: u64 = 2;

/// State kept for this many blocks below finalized; older state is "discarded", as with a
/// real node's default `--state-pruning 256`.
pub const STATE_PRUNING_BLOCKS: u64 = 256;

/// The splitmix64 finalizer: a cheap, well-mixed 64-bit permutation. Used for block hashes and
/// anything else that must look random yet be reproducible.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Which of a block's 32-byte values to derive.
#[derive(Clone, Copy)]
enum Field {
    Hash = 1,
    StateRoot = 2,
    ExtrinsicsRoot = 3,
    PreSealHash = 4,
}

#[derive(Debug, Clone)]
pub struct Chain {
    seed: u64,
    genesis_unix_ms: u64,
    block_time_ms: u64,
}

/// A block header as `chain_getHeader` returns it (sp-runtime `generic::Header` serialized
/// with camelCase names and the number as hex).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderJson {
    pub parent_hash: String,
    pub number: String,
    pub state_root: String,
    pub extrinsics_root: String,
    pub digest: DigestJson,
}

#[derive(Debug, Serialize)]
pub struct DigestJson {
    pub logs: Vec<Value>,
}

impl Chain {
    pub fn new(chain_id: &str, genesis_unix_ms: u64, block_time_ms: u64) -> Chain {
        let seed = chain_id
            .bytes()
            .fold(0xc0ffee_u64, |acc, b| mix(acc ^ u64::from(b)));
        Chain {
            seed,
            genesis_unix_ms,
            block_time_ms: block_time_ms.max(1),
        }
    }

    /// Best block number at `now_unix_ms`.
    pub fn best_at(&self, now_unix_ms: u64) -> u64 {
        now_unix_ms.saturating_sub(self.genesis_unix_ms) / self.block_time_ms
    }

    /// When block `number` is (or was) produced, in Unix milliseconds.
    pub fn block_time_of(&self, number: u64) -> u64 {
        self.genesis_unix_ms + number * self.block_time_ms
    }

    pub fn finalized_of(best: u64) -> u64 {
        best.saturating_sub(FINALITY_LAG)
    }

    fn derive(&self, number: u64, field: Field) -> [u8; 32] {
        let base = mix(self.seed ^ mix(number) ^ ((field as u64) << 56));
        let mut out = [0u8; 32];
        for (i, part) in out.chunks_mut(8).enumerate() {
            part.copy_from_slice(&mix(base.wrapping_add(i as u64)).to_be_bytes());
        }
        out
    }

    pub fn block_hash(&self, number: u64) -> [u8; 32] {
        self.derive(number, Field::Hash)
    }

    /// The hash a block had before its seal was added (the "previously" of a 🔖 line).
    pub fn pre_seal_hash(&self, number: u64) -> [u8; 32] {
        self.derive(number, Field::PreSealHash)
    }

    pub fn header(&self, number: u64) -> HeaderJson {
        let parent = if number == 0 {
            [0u8; 32]
        } else {
            self.block_hash(number - 1)
        };
        HeaderJson {
            parent_hash: hex::encode_prefixed(&parent),
            number: format!("0x{number:x}"),
            state_root: hex::encode_prefixed(&self.derive(number, Field::StateRoot)),
            extrinsics_root: hex::encode_prefixed(&self.derive(number, Field::ExtrinsicsRoot)),
            digest: DigestJson { logs: Vec::new() },
        }
    }

    /// The number of the block with `hash`, if it is one of blocks `0..=best`.
    /// Scans downwards: recent blocks are the ones asked about.
    pub fn number_of_hash(&self, hash: &[u8], best: u64) -> Option<u64> {
        if hash.len() != 32 {
            return None;
        }
        (0..=best).rev().find(|&n| self.block_hash(n) == hash)
    }
}

/// A hash as sp-core's `H256` `Display` shows it in the informant line: `0x4ca8…51b8`.
pub fn short_hash(hash: &[u8; 32]) -> String {
    format!("0x{}…{}", hex::encode(&hash[..2]), hex::encode(&hash[30..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_counts_block_times_since_genesis() {
        let chain = Chain::new("creditcoin3", 10_000, 1000);
        assert_eq!(chain.best_at(5_000), 0);
        assert_eq!(chain.best_at(10_999), 0);
        assert_eq!(chain.best_at(11_000), 1);
        assert_eq!(chain.best_at(70_500), 60);
        assert_eq!(chain.block_time_of(60), 70_000);
        assert_eq!(Chain::finalized_of(1), 0);
        assert_eq!(Chain::finalized_of(60), 58);
    }

    #[test]
    fn hashes_are_stable_distinct_and_chain_specific() {
        let a = Chain::new("creditcoin3", 0, 1000);
        let b = Chain::new("creditcoin3-testnet", 0, 1000);
        assert_eq!(
            a.block_hash(5),
            Chain::new("creditcoin3", 99, 15).block_hash(5)
        );
        assert_ne!(a.block_hash(5), a.block_hash(6));
        assert_ne!(a.block_hash(5), b.block_hash(5));
        assert_ne!(a.block_hash(5), a.pre_seal_hash(5));
    }

    #[test]
    fn header_links_to_parent_and_numbers_in_hex() {
        let chain = Chain::new("creditcoin3", 0, 1000);
        let header = serde_json::to_value(chain.header(26)).unwrap();
        assert_eq!(header["number"], "0x1a");
        assert_eq!(
            header["parentHash"],
            hex::encode_prefixed(&chain.block_hash(25))
        );
        assert_eq!(header["digest"], serde_json::json!({"logs": []}));
        let genesis = serde_json::to_value(chain.header(0)).unwrap();
        assert_eq!(genesis["number"], "0x0");
        assert_eq!(genesis["parentHash"], format!("0x{}", "0".repeat(64)));
    }

    #[test]
    fn finds_block_numbers_by_hash() {
        let chain = Chain::new("creditcoin3", 0, 1000);
        assert_eq!(chain.number_of_hash(&chain.block_hash(0), 100), Some(0));
        assert_eq!(chain.number_of_hash(&chain.block_hash(77), 100), Some(77));
        assert_eq!(chain.number_of_hash(&chain.block_hash(101), 100), None);
        assert_eq!(chain.number_of_hash(&[1, 2, 3], 100), None);
    }

    #[test]
    fn short_hash_is_first_and_last_two_bytes() {
        let mut hash = [0u8; 32];
        hash[0] = 0x4c;
        hash[1] = 0xa8;
        hash[30] = 0x51;
        hash[31] = 0xb8;
        assert_eq!(short_hash(&hash), "0x4ca8…51b8");
    }
}
