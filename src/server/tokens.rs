//! Agent registry: which agent ids exist and the SHA-256 of each one's token.
//!
//! Tokens are generated here (256 random bits), printed once, and never
//! stored: only their hash is, in `<data dir>/agents.json`. Writers (`warden
//! token add/remove`, possibly several at once) serialise on an exclusive
//! lock of `agents.lock` and replace the file atomically, so a running server
//! can re-read it at any time without a lock.
//!
//! Operator tokens (the dashboard's logins, `warden token add --operator
//! NAME [--read-only]`) live in a sibling file, `operators.json`, hashed the
//! same way and written under the same lock. The two registries never mix:
//! an agent is looked up only in `agents.json` and an operator only in
//! `operators.json`, so an operator token can never authenticate an agent
//! and an agent token can never log in.
use crate::fsutil;
use ring::digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

const FILE_NAME: &str = "agents.json";
const LOCK_NAME: &str = "agents.lock";
const OPERATORS_FILE: &str = "operators.json";

pub use crate::identity::Token;

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub token_sha256: String,
    pub created_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    pub agents: BTreeMap<String, AgentRecord>,
}

/// One operator allowed to log in to the dashboard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatorRecord {
    pub token_sha256: String,
    pub created_ms: i64,
    /// Sees everything, acts on nothing.
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatorRegistry {
    pub operators: BTreeMap<String, OperatorRecord>,
}

/// Who a dashboard login is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorIdentity {
    pub name: String,
    pub read_only: bool,
}

#[derive(Debug)]
pub enum TokenError {
    InvalidAgentId(String),
    UnknownAgent(String),
    UnknownOperator(String),
    Io { path: PathBuf, source: io::Error },
    Corrupt { path: PathBuf, detail: String },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::InvalidAgentId(id) => write!(
                f,
                "invalid agent id {id:?}: {}",
                crate::identity::AGENT_ID_RULE
            ),
            TokenError::UnknownAgent(id) => {
                write!(f, "no agent {id:?} is registered (see `warden token list`)")
            }
            TokenError::UnknownOperator(name) => write!(
                f,
                "no operator {name:?} is registered (see `warden token list --operators`)"
            ),
            TokenError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            TokenError::Corrupt { path, detail } => {
                write!(
                    f,
                    "{} is not a valid agent registry ({detail}); restore it from a backup",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for TokenError {}

/// Agent ids travel in commands, file names and log lines: keep them plain
/// (the rule is `identity::is_valid_agent_id`, shared with the agent).
pub fn validate_agent_id(id: &str) -> Result<(), TokenError> {
    if crate::identity::is_valid_agent_id(id) {
        Ok(())
    } else {
        Err(TokenError::InvalidAgentId(id.to_string()))
    }
}

/// The registry file of one data dir.
#[derive(Clone, Debug)]
pub struct TokenStore {
    dir: PathBuf,
}

impl TokenStore {
    pub fn new(data_dir: &Path) -> TokenStore {
        TokenStore {
            dir: data_dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    fn io_err(&self, path: PathBuf) -> impl FnOnce(io::Error) -> TokenError {
        move |source| TokenError::Io { path, source }
    }

    pub fn load(&self) -> Result<Registry, TokenError> {
        let path = self.path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TokenError::Corrupt {
                path,
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(e) => Err(TokenError::Io { path, source: e }),
        }
    }

    /// Run `change` on the registry under the exclusive lock, then save it.
    fn modify<T>(
        &self,
        change: impl FnOnce(&mut Registry) -> Result<T, TokenError>,
    ) -> Result<T, TokenError> {
        fsutil::ensure_private_dir(&self.dir).map_err(self.io_err(self.dir.clone()))?;
        let lock_path = self.dir.join(LOCK_NAME);
        let lock: File = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(self.io_err(lock_path.clone()))?;
        lock.lock().map_err(self.io_err(lock_path))?;
        let mut registry = self.load()?;
        let value = change(&mut registry)?;
        fsutil::write_json_atomic(&self.path(), &registry).map_err(self.io_err(self.path()))?;
        Ok(value)
    }

    /// Register `agent_id` (or replace its token) and return the new token.
    pub fn add(&self, agent_id: &str) -> Result<Token, TokenError> {
        validate_agent_id(agent_id)?;
        let token = Token::generate().map_err(self.io_err(self.path()))?;
        let hash = token_hash(token.expose());
        self.modify(|registry| {
            registry.agents.insert(
                agent_id.to_string(),
                AgentRecord {
                    token_sha256: hash,
                    created_ms: crate::protocol::now_ms(),
                },
            );
            Ok(())
        })?;
        Ok(token)
    }

    pub fn operators_path(&self) -> PathBuf {
        self.dir.join(OPERATORS_FILE)
    }

    pub fn load_operators(&self) -> Result<OperatorRegistry, TokenError> {
        let path = self.operators_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TokenError::Corrupt {
                path,
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(OperatorRegistry::default()),
            Err(e) => Err(TokenError::Io { path, source: e }),
        }
    }

    /// Like `modify`, for the operators' file (same lock: one writer at a time).
    fn modify_operators<T>(
        &self,
        change: impl FnOnce(&mut OperatorRegistry) -> Result<T, TokenError>,
    ) -> Result<T, TokenError> {
        fsutil::ensure_private_dir(&self.dir).map_err(self.io_err(self.dir.clone()))?;
        let lock_path = self.dir.join(LOCK_NAME);
        let lock: File = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(self.io_err(lock_path.clone()))?;
        lock.lock().map_err(self.io_err(lock_path))?;
        let mut registry = self.load_operators()?;
        let value = change(&mut registry)?;
        let path = self.operators_path();
        fsutil::write_json_atomic(&path, &registry).map_err(self.io_err(path))?;
        Ok(value)
    }

    /// Register operator `name` (or replace its token) and return the token.
    /// Names follow the agent-id rule: they go into the audit log.
    pub fn add_operator(&self, name: &str, read_only: bool) -> Result<Token, TokenError> {
        validate_agent_id(name)?;
        let token = Token::generate().map_err(self.io_err(self.operators_path()))?;
        let hash = token_hash(token.expose());
        self.modify_operators(|registry| {
            registry.operators.insert(
                name.to_string(),
                OperatorRecord {
                    token_sha256: hash,
                    created_ms: crate::protocol::now_ms(),
                    read_only,
                },
            );
            Ok(())
        })?;
        Ok(token)
    }

    pub fn remove_operator(&self, name: &str) -> Result<(), TokenError> {
        self.modify_operators(|registry| match registry.operators.remove(name) {
            Some(_) => Ok(()),
            None => Err(TokenError::UnknownOperator(name.to_string())),
        })
    }

    pub fn remove(&self, agent_id: &str) -> Result<(), TokenError> {
        self.modify(|registry| match registry.agents.remove(agent_id) {
            Some(_) => Ok(()),
            None => Err(TokenError::UnknownAgent(agent_id.to_string())),
        })
    }
}

impl Registry {
    /// The agent id a presented token belongs to. Every stored hash is
    /// compared, in constant time, so timing says nothing about which matched.
    pub fn authenticate(&self, presented: &str) -> Option<String> {
        let presented_hash = token_hash(presented);
        let mut found = None;
        for (id, record) in &self.agents {
            if bool::from(
                record
                    .token_sha256
                    .as_bytes()
                    .ct_eq(presented_hash.as_bytes()),
            ) {
                found = Some(id.clone());
            }
        }
        found
    }
}

impl OperatorRegistry {
    /// The operator a presented token belongs to; every hash compared in
    /// constant time, as for agents.
    pub fn authenticate(&self, presented: &str) -> Option<OperatorIdentity> {
        let presented_hash = token_hash(presented);
        let mut found = None;
        for (name, record) in &self.operators {
            if bool::from(
                record
                    .token_sha256
                    .as_bytes()
                    .ct_eq(presented_hash.as_bytes()),
            ) {
                found = Some(OperatorIdentity {
                    name: name.clone(),
                    read_only: record.read_only,
                });
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_replace_remove_and_authenticate() {
        let dir = std::env::temp_dir().join(format!("warden-tokens-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = TokenStore::new(&dir);
        let first = store.add("host1").unwrap();
        let other = store.add("host2").unwrap();
        assert_eq!(
            store
                .load()
                .unwrap()
                .authenticate(first.expose())
                .as_deref(),
            Some("host1")
        );
        assert_eq!(
            store
                .load()
                .unwrap()
                .authenticate(other.expose())
                .as_deref(),
            Some("host2")
        );
        let second = store.add("host1").unwrap();
        let registry = store.load().unwrap();
        assert_eq!(
            registry.authenticate(first.expose()),
            None,
            "re-adding replaces the token"
        );
        assert_eq!(
            registry.authenticate(second.expose()).as_deref(),
            Some("host1")
        );
        assert_eq!(registry.authenticate(""), None);
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains(second.expose()), "only the hash is stored");
        store.remove("host1").unwrap();
        assert_eq!(store.load().unwrap().authenticate(second.expose()), None);
        assert!(matches!(
            store.remove("host1"),
            Err(TokenError::UnknownAgent(_))
        ));
        assert_eq!(
            format!("{second:?} {second}"),
            "Token(<redacted>) <redacted>"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn operator_tokens_never_cross_over_with_agents() {
        let dir = std::env::temp_dir().join(format!("warden-optokens-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = TokenStore::new(&dir);
        let agent = store.add("alice").unwrap();
        let admin = store.add_operator("alice", false).unwrap();
        let viewer = store.add_operator("bob", true).unwrap();
        let ops = store.load_operators().unwrap();
        assert_eq!(
            ops.authenticate(admin.expose()),
            Some(OperatorIdentity {
                name: "alice".into(),
                read_only: false
            })
        );
        assert!(ops.authenticate(viewer.expose()).unwrap().read_only);
        assert_eq!(
            ops.authenticate(agent.expose()),
            None,
            "an agent cannot log in"
        );
        let agents = store.load().unwrap();
        assert_eq!(
            agents.authenticate(admin.expose()),
            None,
            "an operator is no agent"
        );
        assert_eq!(agents.authenticate(viewer.expose()), None);
        let text = fs::read_to_string(store.operators_path()).unwrap();
        assert!(!text.contains(admin.expose()), "only the hash is stored");
        store.remove_operator("bob").unwrap();
        assert_eq!(
            store
                .load_operators()
                .unwrap()
                .authenticate(viewer.expose()),
            None
        );
        assert!(matches!(
            store.remove_operator("bob"),
            Err(TokenError::UnknownOperator(_))
        ));
        assert!(store.add_operator("../x", false).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn agent_ids_are_plain() {
        for ok in ["host1", "a", "val-01.eu_west"] {
            assert!(validate_agent_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "../x", "a b", "a;b", "ü", &"x".repeat(65)] {
            assert!(validate_agent_id(bad).is_err(), "{bad}");
        }
    }
}
