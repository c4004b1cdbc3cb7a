//! Session keys as text: the hex blob `author_rotateKeys` answers, and the names of the
//! node's keystore files.
//!
//! Keystore file NAMES only: a file's contents are the secret key (a seed phrase or
//! raw seed), which warden never reads, logs or sends.

use std::fmt;

use super::scale::{Decode, Input};
use super::types::{KeyTypeId, SessionKeys};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionKeysError {
    /// Session keys are written "0x" + hex.
    MissingPrefix,
    /// Creditcoin 3's keys are 96 bytes: 192 hex digits.
    WrongLength { hex_digits: usize },
    /// A character that is not a hex digit, at this position after "0x".
    NotHex { position: usize },
}

impl fmt::Display for SessionKeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionKeysError::MissingPrefix => write!(f, "session keys must start with 0x"),
            SessionKeysError::WrongLength { hex_digits } => write!(
                f,
                "session keys have {hex_digits} hex digits, expected 192 (grandpa, babe, im_online)"
            ),
            SessionKeysError::NotHex { position } => {
                write!(
                    f,
                    "session keys have a non-hex character at digit {position}"
                )
            }
        }
    }
}

impl std::error::Error for SessionKeysError {}

/// Splits "0x" + 192 hex digits (what `author_rotateKeys` returns on Creditcoin 3) into
/// its three public keys: grandpa, babe, im_online, in that order. Hex digits may be
/// upper or lower case.
pub fn split_session_keys(text: &str) -> Result<SessionKeys, SessionKeysError> {
    let digits = text
        .strip_prefix("0x")
        .ok_or(SessionKeysError::MissingPrefix)?;
    if let Some(position) = digits.bytes().position(|b| !b.is_ascii_hexdigit()) {
        return Err(SessionKeysError::NotHex { position });
    }
    if digits.len() != SessionKeys::ENCODED_LEN * 2 {
        return Err(SessionKeysError::WrongLength {
            hex_digits: digits.len(),
        });
    }
    let bytes = hex::decode(digits).expect("checked: even count of hex digits");
    let keys = SessionKeys::decode(&mut Input::new(&bytes)).expect("checked: exactly 96 bytes");
    Ok(keys)
}

/// A keystore entry, from its file name: which key type, which public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeystoreEntry {
    pub key_type: KeyTypeId,
    pub public_key: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeystoreNameError {
    /// Not an even number of hex digits: not a key file (the node skips it too).
    NotHex,
    /// Hex, but no public key after the four key-type bytes.
    TooShort { bytes: usize },
}

impl fmt::Display for KeystoreNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeystoreNameError::NotHex => write!(f, "keystore file name is not hex"),
            KeystoreNameError::TooShort { bytes } => write!(
                f,
                "keystore file name holds {bytes} bytes: no public key after the key type"
            ),
        }
    }
}

impl std::error::Error for KeystoreNameError {}

/// The file name the node gives a key: hex(key type bytes) ‖ hex(public key), lower
/// case, no "0x" (sc-keystore `LocalKeystore::key_file_path`).
pub fn keystore_file_name(key_type: KeyTypeId, public_key: &[u8]) -> String {
    format!("{}{}", hex::encode(key_type.0), hex::encode(public_key))
}

/// Reads a keystore file name back into (key type, public key), accepting what the
/// node's own listing accepts (sc-keystore `LocalKeystore::raw_public_keys`: the name
/// through `array_bytes::hex2bytes`, which allows a "0x" prefix and either case, must
/// hold more than the 4 key-type bytes). Other names are not key files.
pub fn parse_keystore_file_name(name: &str) -> Result<KeystoreEntry, KeystoreNameError> {
    let digits = name.strip_prefix("0x").unwrap_or(name);
    let bytes = hex::decode(digits).map_err(|_| KeystoreNameError::NotHex)?;
    if bytes.len() <= 4 {
        return Err(KeystoreNameError::TooShort { bytes: bytes.len() });
    }
    let mut key_type = [0u8; 4];
    key_type.copy_from_slice(&bytes[..4]);
    Ok(KeystoreEntry {
        key_type: KeyTypeId(key_type),
        public_key: bytes[4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_text_must_be_0x_and_192_hex_digits() {
        let good = format!(
            "0x{}{}{}",
            "11".repeat(32),
            "22".repeat(32),
            "AB".repeat(32)
        );
        let keys = split_session_keys(&good).unwrap();
        assert_eq!(keys.gran, [0x11; 32]);
        assert_eq!(keys.babe, [0x22; 32]);
        assert_eq!(keys.imon, [0xab; 32]);
        assert_eq!(keys.to_hex(), good.to_lowercase());

        let table = [
            (good[2..].to_owned(), SessionKeysError::MissingPrefix),
            (
                format!("0x{}", "11".repeat(95)),
                SessionKeysError::WrongLength { hex_digits: 190 },
            ),
            (
                format!("{good}0"),
                SessionKeysError::WrongLength { hex_digits: 193 },
            ),
            (
                format!("0x{}zz", "11".repeat(95)),
                SessionKeysError::NotHex { position: 190 },
            ),
            (
                "0x".to_owned(),
                SessionKeysError::WrongLength { hex_digits: 0 },
            ),
        ];
        for (text, expected) in table {
            assert_eq!(split_session_keys(&text), Err(expected), "{text}");
        }
    }

    #[test]
    fn keystore_names_parse_like_the_node_lists_them() {
        let name = keystore_file_name(KeyTypeId::BABE, &[0xab; 32]);
        assert_eq!(name, format!("62616265{}", "ab".repeat(32)));
        let entry = parse_keystore_file_name(&name).unwrap();
        assert_eq!(entry.key_type, KeyTypeId::BABE);
        assert_eq!(entry.public_key, vec![0xab; 32]);
        assert_eq!(
            parse_keystore_file_name(&format!("0x{}", name.to_uppercase())).unwrap(),
            entry
        );
        assert_eq!(
            parse_keystore_file_name("6772616e"),
            Err(KeystoreNameError::TooShort { bytes: 4 })
        );
        assert_eq!(
            parse_keystore_file_name("keystore.lock"),
            Err(KeystoreNameError::NotHex)
        );
        assert_eq!(
            parse_keystore_file_name("6772616e0"),
            Err(KeystoreNameError::NotHex)
        );
    }
}
