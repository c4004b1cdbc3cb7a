//! SS58 addresses for 32-byte account ids.
//!
//! base58(prefix ‖ account ‖ checksum), the checksum being the first two bytes of
//! blake2b-512("SS58PRE" ‖ prefix ‖ account). A prefix below 64 takes one byte; 64 to
//! 16383 take two, in sp-core's bit layout (`sp_core::crypto::Ss58Codec`,
//! polkadot-sdk `substrate/primitives/core/src/crypto.rs`). Creditcoin 2 and 3 both use
//! the generic prefix 42.
//!
//! Not done on purpose: sp-core's refusal of the reserved prefixes 46 and 47 when
//! decoding; no Creditcoin address uses them, and the checksum still protects them.

use std::fmt;

use super::hashing::blake2_512;
use super::types::AccountId32;

/// The generic Substrate prefix, Creditcoin's.
pub const DEFAULT_PREFIX: u16 = 42;

/// The largest prefix the two-byte format can carry.
pub const MAX_PREFIX: u16 = 16383;

const CHECKSUM_PREAMBLE: &[u8] = b"SS58PRE";
const CHECKSUM_LEN: usize = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ss58Error {
    /// A prefix above 16383 cannot be encoded.
    PrefixTooLarge(u16),
    /// The text is not base58.
    NotBase58(String),
    /// The first byte is 128 or more: no SS58 format starts so.
    InvalidPrefixByte(u8),
    /// Decoded length does not fit a 32-byte account id with this prefix.
    WrongLength { decoded_bytes: usize },
    /// The checksum does not match: a typo, or not an SS58 address.
    BadChecksum,
    /// Valid, but for another network than the one expected.
    WrongPrefix { expected: u16, found: u16 },
}

impl fmt::Display for Ss58Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ss58Error::PrefixTooLarge(prefix) => {
                write!(f, "ss58 prefix {prefix} is above {MAX_PREFIX}")
            }
            Ss58Error::NotBase58(detail) => write!(f, "not a base58 string: {detail}"),
            Ss58Error::InvalidPrefixByte(byte) => {
                write!(f, "ss58 address starts with byte {byte}, not a prefix")
            }
            Ss58Error::WrongLength { decoded_bytes } => write!(
                f,
                "ss58 address decodes to {decoded_bytes} bytes, not a 32-byte account id"
            ),
            Ss58Error::BadChecksum => write!(f, "ss58 checksum does not match"),
            Ss58Error::WrongPrefix { expected, found } => {
                write!(f, "ss58 address has prefix {found}, expected {expected}")
            }
        }
    }
}

impl std::error::Error for Ss58Error {}

fn prefix_bytes(prefix: u16) -> Result<Vec<u8>, Ss58Error> {
    match prefix {
        0..=63 => Ok(vec![prefix as u8]),
        64..=MAX_PREFIX => {
            // sp-core: the low 6 bits of the prefix's low byte after 0b01, then the
            // high byte with the low byte's two lowest bits on top.
            let first = (((prefix & 0b0000_0000_1111_1100) as u8) >> 2) | 0b0100_0000;
            let second = ((prefix >> 8) as u8) | (((prefix & 0b0000_0000_0000_0011) as u8) << 6);
            Ok(vec![first, second])
        }
        _ => Err(Ss58Error::PrefixTooLarge(prefix)),
    }
}

fn checksum(payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut preimage = Vec::with_capacity(CHECKSUM_PREAMBLE.len() + payload.len());
    preimage.extend_from_slice(CHECKSUM_PREAMBLE);
    preimage.extend_from_slice(payload);
    let hash = blake2_512(&preimage);
    [hash[0], hash[1]]
}

/// The SS58 address of `account` under `prefix` (0 to 16383).
pub fn encode(account: &AccountId32, prefix: u16) -> Result<String, Ss58Error> {
    let mut payload = prefix_bytes(prefix)?;
    payload.extend_from_slice(account.as_bytes());
    let check = checksum(&payload);
    payload.extend_from_slice(&check);
    Ok(bs58::encode(payload).into_string())
}

/// Decodes an address of any prefix, checking its checksum: (account, prefix).
pub fn decode(address: &str) -> Result<(AccountId32, u16), Ss58Error> {
    let data = bs58::decode(address)
        .into_vec()
        .map_err(|e| Ss58Error::NotBase58(e.to_string()))?;
    let (prefix_len, prefix) = match data.first() {
        None => return Err(Ss58Error::WrongLength { decoded_bytes: 0 }),
        Some(&first @ 0..=63) => (1, u16::from(first)),
        Some(&first @ 64..=127) => {
            let Some(&second) = data.get(1) else {
                return Err(Ss58Error::WrongLength { decoded_bytes: 1 });
            };
            let lower = (first << 2) | (second >> 6);
            let upper = second & 0b0011_1111;
            (2, u16::from(lower) | (u16::from(upper) << 8))
        }
        Some(&first) => return Err(Ss58Error::InvalidPrefixByte(first)),
    };
    if data.len() != prefix_len + 32 + CHECKSUM_LEN {
        return Err(Ss58Error::WrongLength {
            decoded_bytes: data.len(),
        });
    }
    let (payload, check) = data.split_at(prefix_len + 32);
    if checksum(payload) != check {
        return Err(Ss58Error::BadChecksum);
    }
    let mut account = [0u8; 32];
    account.copy_from_slice(&payload[prefix_len..]);
    Ok((AccountId32(account), prefix))
}

/// Decodes an address that must carry `expected_prefix`.
pub fn decode_with_prefix(address: &str, expected_prefix: u16) -> Result<AccountId32, Ss58Error> {
    let (account, found) = decode(address)?;
    if found != expected_prefix {
        return Err(Ss58Error::WrongPrefix {
            expected: expected_prefix,
            found,
        });
    }
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

    #[test]
    fn alice_round_trips_and_other_prefixes_are_refused_when_one_is_expected() {
        let (account, prefix) = decode(ALICE).unwrap();
        assert_eq!(prefix, 42);
        assert_eq!(
            account.to_hex(),
            "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
        );
        assert_eq!(encode(&account, 42).unwrap(), ALICE);
        assert_eq!(account.to_string(), ALICE);
        let polkadot = encode(&account, 0).unwrap();
        assert_eq!(
            decode_with_prefix(&polkadot, 42),
            Err(Ss58Error::WrongPrefix {
                expected: 42,
                found: 0
            })
        );
    }

    #[test]
    fn prefixes_above_16383_cannot_be_encoded() {
        assert_eq!(
            encode(&AccountId32([0; 32]), 16384),
            Err(Ss58Error::PrefixTooLarge(16384))
        );
    }

    #[test]
    fn malformed_addresses_say_why() {
        assert!(matches!(decode("0OIl"), Err(Ss58Error::NotBase58(_))));
        assert_eq!(decode(""), Err(Ss58Error::WrongLength { decoded_bytes: 0 }));
        // A valid base58 string of a 20-byte payload.
        let short = bs58::encode([42u8; 20]).into_string();
        assert_eq!(
            decode(&short),
            Err(Ss58Error::WrongLength { decoded_bytes: 20 })
        );
        let high = bs58::encode([200u8; 35]).into_string();
        assert_eq!(decode(&high), Err(Ss58Error::InvalidPrefixByte(200)));
    }
}
