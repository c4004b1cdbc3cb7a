//! The node's key store: one file per key, as sc-keystore's `LocalKeystore` keeps them.
//!
//! File name = hex(key type, 4 ASCII bytes) ‖ hex(raw public key) (`KeystoreInner::key_file_path`
//! in sc-keystore `local.rs`); contents = the secret phrase or seed as a JSON string, written
//! with mode 0600 (`write_to_file`). `author_rotateKeys` only ever adds files, so a keystore
//! holds every key set ever rotated.
//! Difference: the "public keys" are random bytes and the secret is a random seed that does
//! not derive them; nothing here signs, so nothing can tell.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::hex;

/// A 4-byte key type id (`sp_core::crypto::KeyTypeId`), e.g. `gran`.
pub type KeyType = [u8; 4];

/// Creditcoin 3's `SessionKeys` (its runtime's `impl_opaque_keys!`): GRANDPA (ed25519),
/// BABE (sr25519), ImOnline (sr25519), in this order, 32 bytes each, SCALE-encoded with no
/// length prefixes.
pub const SESSION_KEY_TYPES: [KeyType; 3] = [*b"gran", *b"babe", *b"imon"];

/// Length of one raw public key in the session keys (ed25519 and sr25519 alike).
pub const PUBLIC_KEY_LEN: usize = 32;

/// Length of the encoded session keys `author_rotateKeys` returns.
pub const SESSION_KEYS_LEN: usize = PUBLIC_KEY_LEN * SESSION_KEY_TYPES.len();

/// `hex(key type) ‖ hex(public key)`, e.g. `6772616e` followed by 64 hex digits.
pub fn key_file_name(key_type: &KeyType, public: &[u8]) -> String {
    format!("{}{}", hex::encode(key_type), hex::encode(public))
}

/// Splits encoded session keys into (key type, public key) pairs, as the runtime's
/// `decode_session_keys` does: SCALE `Decode` of three 32-byte arrays, so too few bytes fail
/// and bytes past the 96th are ignored (the decode does not check for trailing input).
pub fn split_session_keys(encoded: &[u8]) -> Option<Vec<(KeyType, Vec<u8>)>> {
    if encoded.len() < SESSION_KEYS_LEN {
        return None;
    }
    Some(
        SESSION_KEY_TYPES
            .iter()
            .zip(encoded.chunks_exact(PUBLIC_KEY_LEN))
            .map(|(key_type, public)| (*key_type, public.to_vec()))
            .collect(),
    )
}

/// Parses a key type given as text: exactly four bytes, as `KeyTypeId::try_from(&str)`.
pub fn parse_key_type(text: &str) -> Option<KeyType> {
    text.as_bytes().try_into().ok()
}

/// `len` bytes from the kernel's random source.
pub fn random_bytes(len: usize) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; len];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Writes `contents` to a new file readable by its owner only. The mode is given at creation
/// so the secret is never readable by others, not even for a moment.
pub fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    pub fn new(dir: PathBuf) -> Keystore {
        Keystore { dir }
    }

    fn key_path(&self, key_type: &KeyType, public: &[u8]) -> PathBuf {
        self.dir.join(key_file_name(key_type, public))
    }

    /// Stores a key under its public key, as `author_insertKey` does.
    pub fn insert(&self, key_type: &KeyType, suri: &str, public: &[u8]) -> io::Result<()> {
        let contents = serde_json::to_vec(suri).map_err(io::Error::other)?;
        write_private_file(&self.key_path(key_type, public), &contents)
    }

    /// Generates one new key of each session key type and returns the encoded session keys.
    pub fn rotate(&self) -> io::Result<Vec<u8>> {
        let mut encoded = Vec::with_capacity(SESSION_KEYS_LEN);
        for key_type in &SESSION_KEY_TYPES {
            let public = random_bytes(PUBLIC_KEY_LEN)?;
            // A hex seed is a valid secret URI; the real keystore stores a mnemonic phrase.
            let seed = hex::encode_prefixed(&random_bytes(32)?);
            self.insert(key_type, &seed, &public)?;
            encoded.extend_from_slice(&public);
        }
        Ok(encoded)
    }

    /// The public keys of one type held, from the file names (hex type ‖ hex public).
    pub fn public_keys_of(&self, key_type: &KeyType) -> Vec<Vec<u8>> {
        let prefix = crate::hex::encode(key_type);
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut keys: Vec<Vec<u8>> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|name| {
                name.strip_prefix(&prefix)
                    .and_then(|h| crate::hex::decode(h).ok())
            })
            .collect();
        keys.sort();
        keys
    }

    /// True iff every key is present, as `LocalKeystore::has_keys`: the file must exist and
    /// hold a JSON string (the phrase); an unreadable or garbled file counts as absent.
    pub fn has_keys(&self, keys: &[(KeyType, Vec<u8>)]) -> bool {
        keys.iter().all(|(key_type, public)| {
            fs::read(self.key_path(key_type, public))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<String>(&bytes).ok())
                .is_some()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "testnode-keystore-{tag}-{}-{}",
            std::process::id(),
            hex::encode(&random_bytes(4).unwrap())
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn file_name_is_hex_type_then_hex_key() {
        let name = key_file_name(b"gran", &[0xab; 32]);
        assert_eq!(name, format!("6772616e{}", "ab".repeat(32)));
    }

    #[test]
    fn splits_session_keys_in_runtime_order() {
        let mut encoded = vec![1u8; 32];
        encoded.extend([2u8; 32]);
        encoded.extend([3u8; 32]);
        let keys = split_session_keys(&encoded).unwrap();
        assert_eq!(
            keys,
            vec![
                (*b"gran", vec![1u8; 32]),
                (*b"babe", vec![2u8; 32]),
                (*b"imon", vec![3u8; 32]),
            ]
        );
        // Trailing bytes are ignored; too few bytes is a decode failure.
        encoded.push(9);
        assert_eq!(split_session_keys(&encoded).unwrap(), keys);
        assert_eq!(split_session_keys(&encoded[..95]), None);
        assert_eq!(split_session_keys(&[]), None);
    }

    #[test]
    fn key_type_must_be_four_bytes() {
        assert_eq!(parse_key_type("babe"), Some(*b"babe"));
        assert_eq!(parse_key_type("bab"), None);
        assert_eq!(parse_key_type("babes"), None);
    }

    #[test]
    fn rotate_adds_private_files_and_keeps_old_ones() {
        let dir = temp_dir("rotate");
        let keystore = Keystore::new(dir.clone());
        let first = keystore.rotate().unwrap();
        let second = keystore.rotate().unwrap();
        assert_eq!(first.len(), SESSION_KEYS_LEN);
        assert_ne!(first, second);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 6);
        for encoded in [&first, &second] {
            let keys = split_session_keys(encoded).unwrap();
            assert!(keystore.has_keys(&keys));
            for (key_type, public) in &keys {
                let path = dir.join(key_file_name(key_type, public));
                let mode = fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
                let phrase: String = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
                assert!(phrase.starts_with("0x"));
            }
        }
        let mut missing = split_session_keys(&first).unwrap();
        missing[2].1 = vec![0u8; 32];
        assert!(!keystore.has_keys(&missing));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn garbled_key_file_counts_as_absent() {
        let dir = temp_dir("garbled");
        let keystore = Keystore::new(dir.clone());
        fs::write(dir.join(key_file_name(b"babe", &[5u8; 32])), b"not json").unwrap();
        assert!(!keystore.has_keys(&[(*b"babe", vec![5u8; 32])]));
        keystore.insert(b"babe", "//Alice", &[5u8; 32]).unwrap();
        assert!(keystore.has_keys(&[(*b"babe", vec![5u8; 32])]));
        fs::remove_dir_all(dir).unwrap();
    }
}
