//! Operator signatures on commands: Ed25519 keys operators hold, the exact
//! bytes a signature covers, and the agent's k-of-n check.
//!
//! A command carries its signatures in an extra key of its `data` (extra keys
//! are allowed by the contract): `"signatures": [{"key": "0x<32-byte public
//! key>", "sig": "0x<64-byte signature>"}]`. The agent's policy lists the
//! operator keys it trusts and how many must sign each command
//! (`operators`, `require_signatures`; docs/policy.md). A server that is
//! compromised, or a man in the middle, can then delay such a command but
//! cannot forge it or widen it: any change to agent, id, command, target,
//! params or timestamp breaks every signature.
//!
//! The payload ([`signing_payload`]) is the UTF-8 of one compact JSON array:
//!
//! ```text
//! ["warden-command-v1",<agent id>,<command id>,<command>,<target>,<params>,<timestamp>]
//! ```
//!
//! strings as JSON strings, `timestamp` as a JSON integer, `params` as the
//! object sent on the wire in canonical form: no whitespace, the keys of every
//! object sorted by their UTF-8 bytes, strings escaped as serde_json does
//! (`"` `\` and control characters only; other characters as raw UTF-8),
//! numbers as serde_json prints them. The agent id binds a signature to one
//! agent; the command id and timestamp make a replay either a seen id (never
//! run twice) or an old command (refused by the age check).
//!
//! Keys are made by `warden operator-key new --out FILE`: the private key is
//! a PKCS#8 document in FILE (mode 0600, never overwritten); the public key is
//! printed. All cryptography is ring's.
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The first element of every payload: a signature for anything else (or a
/// later format) never verifies as a command.
pub const PAYLOAD_DOMAIN: &str = "warden-command-v1";
/// Most signatures a command may carry; more is refused unread.
pub const MAX_SIGNATURES: usize = 16;

/// One signature as it travels in a command's `signatures` list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSignature {
    /// The signer's public key, `0x` + 64 hex digits.
    pub key: String,
    /// The Ed25519 signature, `0x` + 128 hex digits.
    pub sig: String,
}

#[derive(Debug)]
pub enum OperatorKeyError {
    /// The key file could not be written or read.
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The file is not an Ed25519 PKCS#8 private key.
    BadKeyFile { path: std::path::PathBuf },
    /// The random generator or the key generation failed.
    Generate,
}

impl fmt::Display for OperatorKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperatorKeyError::Io { path, source } => write!(
                f,
                "cannot use the operator key file {}: {source} (an existing file is never overwritten: choose a new name)",
                path.display()
            ),
            OperatorKeyError::BadKeyFile { path } => write!(
                f,
                "{} is not an operator key (an Ed25519 PKCS#8 file made by `warden operator-key new`)",
                path.display()
            ),
            OperatorKeyError::Generate => {
                f.write_str("cannot generate a key: the system's random generator failed")
            }
        }
    }
}

impl std::error::Error for OperatorKeyError {}

/// Make a new operator key: the private key into `out` (created, mode 0600,
/// never overwritten), the public key returned as `0x…` hex.
pub fn generate(out: &Path) -> Result<String, OperatorKeyError> {
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| OperatorKeyError::Generate)?;
    let pair =
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| OperatorKeyError::Generate)?;
    let io = |source| OperatorKeyError::Io {
        path: out.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(io)?;
    file.write_all(pkcs8.as_ref()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(public_hex(&pair))
}

/// An operator's key pair, loaded from its file (for signing).
pub fn load(path: &Path) -> Result<Ed25519KeyPair, OperatorKeyError> {
    let bytes = std::fs::read(path).map_err(|source| OperatorKeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ed25519KeyPair::from_pkcs8(&bytes).map_err(|_| OperatorKeyError::BadKeyFile {
        path: path.to_path_buf(),
    })
}

pub fn public_hex(pair: &Ed25519KeyPair) -> String {
    crate::chain::PublicKey::try_from(pair.public_key().as_ref())
        .expect("an Ed25519 public key is 32 bytes")
        .to_string()
}

/// Sign a command (what the server side does for an operator).
pub fn sign(pair: &Ed25519KeyPair, payload: &[u8]) -> CommandSignature {
    CommandSignature {
        key: public_hex(pair),
        sig: format!("0x{}", hex::encode(pair.sign(payload).as_ref())),
    }
}

/// `0x` + exactly `len` bytes of hex, as bytes.
pub fn parse_hex(text: &str, len: usize) -> Option<Vec<u8>> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.len() != len * 2 {
        return None;
    }
    hex::decode(digits).ok()
}

/// The bytes a command signature covers (see the module header).
pub fn signing_payload(
    agent_id: &str,
    command_id: &str,
    command: &str,
    target: &str,
    params: &Map<String, Value>,
    timestamp: i64,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(b'[');
    for (i, word) in [PAYLOAD_DOMAIN, agent_id, command_id, command, target]
        .iter()
        .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        write_string(&mut out, word);
    }
    out.push(b',');
    write_canonical(&mut out, &Value::Object(params.clone()));
    out.push(b',');
    out.extend_from_slice(timestamp.to_string().as_bytes());
    out.push(b']');
    out
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    // serde_json writes a JSON string without fail into a Vec.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Compact JSON with every object's keys sorted by their bytes, whatever
/// order the map keeps them in.
fn write_canonical(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, key);
                out.push(b':');
                write_canonical(out, &map[key]);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, item);
            }
            out.push(b']');
        }
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

/// The operators an agent trusts, and how many of them must sign what.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirement {
    /// Operator name → 32-byte public key.
    pub operators: Vec<(String, Vec<u8>)>,
}

impl Requirement {
    /// The distinct trusted operators whose signature over `payload` is
    /// valid, in the order of `operators`. Signatures by unknown keys, bad
    /// signatures and repeats count for nothing.
    pub fn valid_signers(&self, payload: &[u8], signatures: &[CommandSignature]) -> Vec<&str> {
        let mut signers: Vec<&str> = Vec::new();
        for signature in signatures.iter().take(MAX_SIGNATURES) {
            let (Some(key), Some(sig)) =
                (parse_hex(&signature.key, 32), parse_hex(&signature.sig, 64))
            else {
                continue;
            };
            let Some((name, _)) = self.operators.iter().find(|(_, k)| *k == key) else {
                continue;
            };
            if signers.contains(&name.as_str()) {
                continue;
            }
            if UnparsedPublicKey::new(&ED25519, &key)
                .verify(payload, &sig)
                .is_ok()
            {
                signers.push(name);
            }
        }
        signers
    }
}

#[cfg(test)]
#[path = "operator_keys_tests.rs"]
mod tests;
