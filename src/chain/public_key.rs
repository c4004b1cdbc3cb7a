//! A public key as warden writes it everywhere (events, key listings,
//! alerts, operator keys): "0x" + lowercase hex. One type, one format, so a
//! key compared as text compares as bytes.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest public key accepted, in bytes: sr25519 and ed25519 keys are 32,
/// ecdsa 33; anything much longer is not a key.
pub const MAX_PUBLIC_KEY_BYTES: usize = 64;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(Vec<u8>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKeyError {
    /// A character that is not a hex digit, at this byte of the text.
    NotHex { position: usize },
    /// An odd number of hex digits.
    OddLength { hex_digits: usize },
    /// No bytes, or more than [`MAX_PUBLIC_KEY_BYTES`].
    Length { bytes: usize },
}

impl fmt::Display for PublicKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicKeyError::NotHex { position } => write!(
                f,
                "public key is not hex: character {position} is not 0-9, a-f or A-F"
            ),
            PublicKeyError::OddLength { hex_digits } => write!(
                f,
                "public key has an odd number of hex digits ({hex_digits}); write it as 0x and two digits a byte"
            ),
            PublicKeyError::Length { bytes } => write!(
                f,
                "public key is {bytes} bytes long; a key is 1 to {MAX_PUBLIC_KEY_BYTES} (32 for sr25519 and ed25519)"
            ),
        }
    }
}

impl std::error::Error for PublicKeyError {}

impl PublicKey {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Text that should be a public key, in the one format when it is one, and
/// compared as the same text in any case otherwise: trimmed, lowercase,
/// "0x" in front. For listings that reach the server unchecked (a node's
/// keystore in `stats`, an archive's keys), so that no spelling of a key
/// hides it from the double-sign checks.
pub fn key_text(text: &str) -> String {
    let text = text.trim().to_ascii_lowercase();
    if text.starts_with("0x") {
        text
    } else {
        format!("0x{text}")
    }
}

impl From<[u8; 32]> for PublicKey {
    fn from(bytes: [u8; 32]) -> PublicKey {
        PublicKey(bytes.to_vec())
    }
}

impl TryFrom<&[u8]> for PublicKey {
    type Error = PublicKeyError;
    fn try_from(bytes: &[u8]) -> Result<PublicKey, PublicKeyError> {
        if !(1..=MAX_PUBLIC_KEY_BYTES).contains(&bytes.len()) {
            return Err(PublicKeyError::Length { bytes: bytes.len() });
        }
        Ok(PublicKey(bytes.to_vec()))
    }
}

/// Hex with or without "0x", in either case, as the node's own keystore
/// accepts it (`array_bytes::hex2bytes`).
impl FromStr for PublicKey {
    type Err = PublicKeyError;
    fn from_str(text: &str) -> Result<PublicKey, PublicKeyError> {
        let (prefix, digits) = match text.strip_prefix("0x") {
            Some(digits) => (2, digits),
            None => (0, text),
        };
        if let Some(at) = digits.bytes().position(|b| !b.is_ascii_hexdigit()) {
            return Err(PublicKeyError::NotHex {
                position: prefix + at,
            });
        }
        if digits.len() % 2 == 1 {
            return Err(PublicKeyError::OddLength {
                hex_digits: digits.len(),
            });
        }
        let bytes = hex::decode(digits).expect("checked: an even count of hex digits");
        PublicKey::try_from(bytes.as_slice())
    }
}

/// "0x" + lowercase hex: the one way a key is written.
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(&self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_format_out_several_accepted_in() {
        let key = PublicKey::from([0xab; 32]);
        let lower = format!("0x{}", "ab".repeat(32));
        assert_eq!(key.to_string(), lower);
        for text in [
            lower.clone(),
            lower.to_uppercase().replacen("0X", "0x", 1),
            "ab".repeat(32),
        ] {
            assert_eq!(text.parse::<PublicKey>(), Ok(key.clone()), "{text}");
        }
        assert_eq!(serde_json::to_string(&key).unwrap(), format!("\"{lower}\""));
        assert_eq!(
            serde_json::from_str::<PublicKey>(&format!("\"{lower}\"")).unwrap(),
            key
        );
    }

    #[test]
    fn malformed_keys_are_refused_with_the_reason() {
        let too_long = format!("0x{}", "11".repeat(MAX_PUBLIC_KEY_BYTES + 1));
        let table = [
            ("0x", PublicKeyError::Length { bytes: 0 }),
            ("", PublicKeyError::Length { bytes: 0 }),
            ("0xabc", PublicKeyError::OddLength { hex_digits: 3 }),
            ("0xzz", PublicKeyError::NotHex { position: 2 }),
            ("0X11", PublicKeyError::NotHex { position: 1 }),
            (too_long.as_str(), PublicKeyError::Length { bytes: 65 }),
        ];
        for (text, error) in table {
            assert_eq!(text.parse::<PublicKey>(), Err(error), "{text}");
        }
        assert!(serde_json::from_str::<PublicKey>("\"0xzz\"").is_err());
        assert!(PublicKey::try_from(&[][..]).is_err());
    }

    #[test]
    fn key_text_is_the_one_format_for_keys_and_stable_for_anything_else() {
        let key = PublicKey::from([0xab; 32]).to_string();
        for text in [
            key.clone(),
            key.to_uppercase().replacen("0X", "0x", 1),
            format!(" {} ", &key[2..]),
        ] {
            assert_eq!(key_text(&text), key, "{text:?}");
        }
        assert_eq!(key_text("0xZZ"), key_text("zz"));
    }
}
