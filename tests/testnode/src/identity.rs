//! The node's network identity and default name.
//!
//! A real node reads the 32-byte ed25519 secret in `<base>/chains/<chain>/network/secret_ed25519`
//! (sc-network `config.rs`, `NodeKeyConfig::Ed25519(Secret::File)`), derives the public key and
//! prints the libp2p PeerId: base58 of the identity multihash of the protobuf-encoded public
//! key, which is why every ed25519 PeerId starts with `12D3KooW`.
//! Difference: computing an ed25519 public key needs curve arithmetic this crate does not carry,
//! so the "public key" here is a stable hash of the secret. The PeerId has the real shape and
//! stays the same as long as the secret file does, which is what a backup/restore test checks.

use crate::chain::mix;

/// Bytes before the 32 key bytes in an ed25519 PeerId: multihash identity code (0x00),
/// length 36 (0x24), then protobuf `PublicKey { Type = Ed25519 (0x08 0x01), Data (0x12 0x20) }`.
const PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/// The stand-in public key for a network secret.
pub fn public_key_of(secret: &[u8]) -> [u8; 32] {
    let mut seed = 0x5eed_u64;
    for chunk in secret.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        seed = mix(seed ^ u64::from_le_bytes(word));
    }
    let mut key = [0u8; 32];
    for (i, part) in key.chunks_mut(8).enumerate() {
        part.copy_from_slice(&mix(seed.wrapping_add(i as u64)).to_le_bytes());
    }
    key
}

/// The libp2p PeerId text for a network secret, e.g. `12D3KooW…`.
pub fn peer_id_of(secret: &[u8]) -> String {
    let mut bytes = PEER_ID_PREFIX.to_vec();
    bytes.extend_from_slice(&public_key_of(secret));
    base58(&bytes)
}

/// Bitcoin-alphabet base58, as libp2p prints PeerIds.
pub fn base58(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    // Little-endian base-58 digits of the big-endian number `bytes`.
    let mut digits: Vec<u8> = Vec::new();
    for &byte in bytes {
        let mut carry = u32::from(byte);
        for digit in digits.iter_mut() {
            carry += u32::from(*digit) << 8;
            *digit = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let leading_zeros = bytes.iter().take_while(|&&b| b == 0).count();
    let mut out = String::with_capacity(leading_zeros + digits.len());
    out.extend(std::iter::repeat_n('1', leading_zeros));
    out.extend(
        digits
            .iter()
            .rev()
            .map(|&d| ALPHABET[usize::from(d)] as char),
    );
    out
}

/// A default node name in a real node's style (`adjective-noun-NNNN`, sc-cli
/// `generate_node_name`), stable for a given network secret.
pub fn default_node_name(secret: &[u8]) -> String {
    const ADJECTIVES: [&str; 8] = [
        "ruddy",
        "jolly",
        "greasy",
        "available",
        "quiet",
        "brave",
        "shiny",
        "tidy",
    ];
    const NOUNS: [&str; 8] = [
        "afternoon",
        "rod",
        "bee",
        "vacation",
        "river",
        "lamp",
        "orchard",
        "kettle",
    ];
    let key = public_key_of(secret);
    format!(
        "{}-{}-{:04}",
        ADJECTIVES[usize::from(key[0]) % ADJECTIVES.len()],
        NOUNS[usize::from(key[1]) % NOUNS.len()],
        u16::from_le_bytes([key[2], key[3]]) % 10_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base58_matches_known_vectors() {
        assert_eq!(base58(b""), "");
        assert_eq!(base58(&[0]), "1");
        assert_eq!(base58(&[0, 0, 1]), "112");
        assert_eq!(base58(b"hello world"), "StV1DL6CwTryKyV");
    }

    #[test]
    fn peer_id_has_the_ed25519_shape_and_is_stable() {
        let secret = [7u8; 32];
        let id = peer_id_of(&secret);
        assert!(id.starts_with("12D3KooW"), "{id}");
        assert_eq!(id.len(), 52);
        assert_eq!(id, peer_id_of(&secret));
        assert_ne!(id, peer_id_of(&[8u8; 32]));
    }

    #[test]
    fn node_name_looks_generated() {
        let name = default_node_name(&[1u8; 32]);
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert_eq!(parts[2].len(), 4);
    }
}
