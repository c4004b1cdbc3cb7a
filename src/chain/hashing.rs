//! The hash functions Substrate storage keys are built from.
//!
//! Same definitions as `sp-crypto-hashing` (polkadot-sdk `substrate/primitives/crypto/hashing`):
//! twox is xxh64 with seed 0 (twox64) or seeds 0 and 1 concatenated (twox128), each
//! half written little-endian; blake2 is Blake2b with a 128- or 256-bit output. The
//! `*_concat` hashers append the input after its hash so the key can be read back
//! (`frame_support::Twox64Concat`, `Blake2_128Concat`).

use blake2::Digest;
use twox_hash::XxHash64;

/// xxh64 with seed 0, little-endian: the 8-byte `twox_64`.
pub fn twox_64(data: &[u8]) -> [u8; 8] {
    XxHash64::oneshot(0, data).to_le_bytes()
}

/// xxh64 seed 0 ‖ xxh64 seed 1, each little-endian: the 16-byte `twox_128` that
/// hashes pallet and item names into every storage key's prefix.
pub fn twox_128(data: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&XxHash64::oneshot(0, data).to_le_bytes());
    out[8..].copy_from_slice(&XxHash64::oneshot(1, data).to_le_bytes());
    out
}

/// Blake2b with a 16-byte output.
pub fn blake2_128(data: &[u8]) -> [u8; 16] {
    blake2::Blake2b128::digest(data).into()
}

/// Blake2b with a 32-byte output.
pub fn blake2_256(data: &[u8]) -> [u8; 32] {
    blake2::Blake2b256::digest(data).into()
}

/// Blake2b with a 64-byte output (the SS58 checksum's hash).
pub fn blake2_512(data: &[u8]) -> [u8; 64] {
    blake2::Blake2b512::digest(data).into()
}

/// `Twox64Concat`: twox_64(data) ‖ data.
pub fn twox_64_concat(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&twox_64(data));
    out.extend_from_slice(data);
    out
}

/// `Blake2_128Concat`: blake2_128(data) ‖ data.
pub fn blake2_128_concat(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + data.len());
    out.extend_from_slice(&blake2_128(data));
    out.extend_from_slice(data);
    out
}

/// `Identity`: the data itself.
pub fn identity(data: &[u8]) -> Vec<u8> {
    data.to_vec()
}

/// The storage hashers a map key can be declared with in FRAME (`frame_support::hash`),
/// less `Twox256`, which no item warden reads uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageHasher {
    Blake2_128,
    Blake2_256,
    Blake2_128Concat,
    Twox128,
    Twox64Concat,
    Identity,
}

impl StorageHasher {
    /// Appends the hash of an encoded map key to `out`.
    pub fn hash_into(self, encoded_key: &[u8], out: &mut Vec<u8>) {
        match self {
            StorageHasher::Blake2_128 => out.extend_from_slice(&blake2_128(encoded_key)),
            StorageHasher::Blake2_256 => out.extend_from_slice(&blake2_256(encoded_key)),
            StorageHasher::Blake2_128Concat => out.extend(blake2_128_concat(encoded_key)),
            StorageHasher::Twox128 => out.extend_from_slice(&twox_128(encoded_key)),
            StorageHasher::Twox64Concat => out.extend(twox_64_concat(encoded_key)),
            StorageHasher::Identity => out.extend_from_slice(encoded_key),
        }
    }
}
