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
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// The one lock both registry files are written under.
const LOCK_NAME: &str = "agents.lock";

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

/// One record of a registry: what a presented token is checked against.
trait TokenRecord {
    fn token_sha256(&self) -> &str;
}

impl TokenRecord for AgentRecord {
    fn token_sha256(&self) -> &str {
        &self.token_sha256
    }
}

impl TokenRecord for OperatorRecord {
    fn token_sha256(&self) -> &str {
        &self.token_sha256
    }
}

/// One registry file in the data dir (`agents.json`, `operators.json`): the
/// names it holds and their records. Loading, locking, saving and the
/// constant-time lookup are written once, for both, in [`TokenStore`] and
/// [`RegistryFile::find`]; the on-disk shape stays each type's own.
trait RegistryFile: Default + Serialize + DeserializeOwned {
    type Record: TokenRecord;
    const FILE_NAME: &'static str;
    fn records(&self) -> &BTreeMap<String, Self::Record>;
    fn records_mut(&mut self) -> &mut BTreeMap<String, Self::Record>;
    /// The error for removing a name the file does not hold.
    fn unknown(name: &str) -> TokenError;

    /// The name and record a presented token belongs to. Every stored hash is
    /// compared, in constant time, so timing says nothing about which matched.
    fn find(&self, presented: &str) -> Option<(&String, &Self::Record)> {
        let presented_hash = token_hash(presented);
        let mut found = None;
        for (name, record) in self.records() {
            if bool::from(
                record
                    .token_sha256()
                    .as_bytes()
                    .ct_eq(presented_hash.as_bytes()),
            ) {
                found = Some((name, record));
            }
        }
        found
    }
}

impl RegistryFile for Registry {
    type Record = AgentRecord;
    const FILE_NAME: &'static str = "agents.json";
    fn records(&self) -> &BTreeMap<String, AgentRecord> {
        &self.agents
    }
    fn records_mut(&mut self) -> &mut BTreeMap<String, AgentRecord> {
        &mut self.agents
    }
    fn unknown(name: &str) -> TokenError {
        TokenError::UnknownAgent(name.to_string())
    }
}

impl RegistryFile for OperatorRegistry {
    type Record = OperatorRecord;
    const FILE_NAME: &'static str = "operators.json";
    fn records(&self) -> &BTreeMap<String, OperatorRecord> {
        &self.operators
    }
    fn records_mut(&mut self) -> &mut BTreeMap<String, OperatorRecord> {
        &mut self.operators
    }
    fn unknown(name: &str) -> TokenError {
        TokenError::UnknownOperator(name.to_string())
    }
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
        self.dir.join(Registry::FILE_NAME)
    }

    pub fn operators_path(&self) -> PathBuf {
        self.dir.join(OperatorRegistry::FILE_NAME)
    }

    fn io_err(&self, path: PathBuf) -> impl FnOnce(io::Error) -> TokenError {
        move |source| TokenError::Io { path, source }
    }

    pub fn load(&self) -> Result<Registry, TokenError> {
        self.load_file()
    }

    pub fn load_operators(&self) -> Result<OperatorRegistry, TokenError> {
        self.load_file()
    }

    /// Register `agent_id` (or replace its token) and return the new token.
    pub fn add(&self, agent_id: &str) -> Result<Token, TokenError> {
        self.add_to::<Registry>(agent_id, |token_sha256, created_ms| AgentRecord {
            token_sha256,
            created_ms,
        })
    }

    pub fn remove(&self, agent_id: &str) -> Result<(), TokenError> {
        self.remove_from::<Registry>(agent_id)
    }

    /// Register operator `name` (or replace its token) and return the token.
    /// Names follow the agent-id rule: they go into the audit log.
    pub fn add_operator(&self, name: &str, read_only: bool) -> Result<Token, TokenError> {
        self.add_to::<OperatorRegistry>(name, |token_sha256, created_ms| OperatorRecord {
            token_sha256,
            created_ms,
            read_only,
        })
    }

    pub fn remove_operator(&self, name: &str) -> Result<(), TokenError> {
        self.remove_from::<OperatorRegistry>(name)
    }

    /// A registry file; none yet is an empty registry.
    fn load_file<R: RegistryFile>(&self) -> Result<R, TokenError> {
        let path = self.dir.join(R::FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TokenError::Corrupt {
                path,
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(R::default()),
            Err(e) => Err(TokenError::Io { path, source: e }),
        }
    }

    /// Run `change` on a registry file under the exclusive lock (one lock for
    /// both files: one writer at a time), then save it atomically.
    fn modify<R: RegistryFile, T>(
        &self,
        change: impl FnOnce(&mut R) -> Result<T, TokenError>,
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
        let mut registry = self.load_file::<R>()?;
        let value = change(&mut registry)?;
        let path = self.dir.join(R::FILE_NAME);
        fsutil::write_json_atomic(&path, &registry).map_err(self.io_err(path))?;
        Ok(value)
    }

    /// Insert (or replace) `name` with a new token's record, made by
    /// `record(token_sha256, created_ms)`; returns the token.
    fn add_to<R: RegistryFile>(
        &self,
        name: &str,
        record: impl FnOnce(String, i64) -> R::Record,
    ) -> Result<Token, TokenError> {
        validate_agent_id(name)?;
        let token = Token::generate().map_err(self.io_err(self.dir.join(R::FILE_NAME)))?;
        let hash = token_hash(token.expose());
        self.modify(|registry: &mut R| {
            let record = record(hash, crate::protocol::now_ms());
            registry.records_mut().insert(name.to_string(), record);
            Ok(())
        })?;
        Ok(token)
    }

    fn remove_from<R: RegistryFile>(&self, name: &str) -> Result<(), TokenError> {
        self.modify(
            |registry: &mut R| match registry.records_mut().remove(name) {
                Some(_) => Ok(()),
                None => Err(R::unknown(name)),
            },
        )
    }
}

impl Registry {
    /// The agent id a presented token belongs to (constant time, see
    /// [`RegistryFile::find`]).
    pub fn authenticate(&self, presented: &str) -> Option<String> {
        self.find(presented).map(|(id, _)| id.clone())
    }
}

impl OperatorRegistry {
    /// The operator a presented token belongs to; compared as for agents.
    pub fn authenticate(&self, presented: &str) -> Option<OperatorIdentity> {
        self.find(presented).map(|(name, record)| OperatorIdentity {
            name: name.clone(),
            read_only: record.read_only,
        })
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

    /// Both files' shapes, literally: files written by earlier versions load,
    /// and what is written now has the same keys.
    #[test]
    fn registry_files_keep_their_shapes() {
        let dir = std::env::temp_dir().join(format!("warden-tokens-shape-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let store = TokenStore::new(&dir);
        let hash = token_hash("t1");
        let agents = format!(r#"{{"agents":{{"h1":{{"token_sha256":"{hash}","created_ms":5}}}}}}"#);
        fs::write(store.path(), agents).unwrap();
        let operators = format!(
            r#"{{"operators":{{"ann":{{"token_sha256":"{hash}","created_ms":6,"read_only":true}},"bo":{{"token_sha256":"x","created_ms":7}}}}}}"#
        );
        fs::write(store.operators_path(), operators).unwrap();
        assert_eq!(
            store.load().unwrap().authenticate("t1").as_deref(),
            Some("h1")
        );
        let ops = store.load_operators().unwrap();
        assert!(
            !ops.operators["bo"].read_only,
            "read_only defaults to false"
        );
        assert_eq!(
            ops.authenticate("t1"),
            Some(OperatorIdentity {
                name: "ann".into(),
                read_only: true
            })
        );

        store.add("h2").unwrap();
        store.add_operator("cy", false).unwrap();
        let read = |path: PathBuf| -> serde_json::Value {
            serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
        };
        let agents = read(store.path());
        assert_eq!(agents["agents"]["h1"]["token_sha256"], hash.as_str());
        assert_eq!(agents["agents"]["h1"]["created_ms"], 5);
        let record = agents["agents"]["h2"].as_object().unwrap();
        let keys: Vec<&str> = record.keys().map(String::as_str).collect();
        assert_eq!(keys, ["created_ms", "token_sha256"]);
        let operators = read(store.operators_path());
        assert_eq!(operators.as_object().unwrap().len(), 1, "{operators}");
        let record = operators["operators"]["cy"].as_object().unwrap();
        let keys: Vec<&str> = record.keys().map(String::as_str).collect();
        assert_eq!(keys, ["created_ms", "read_only", "token_sha256"]);
        assert_eq!(
            store.remove_operator("h2").unwrap_err().to_string(),
            "no operator \"h2\" is registered (see `warden token list --operators`)"
        );
        assert_eq!(
            store.remove("cy").unwrap_err().to_string(),
            "no agent \"cy\" is registered (see `warden token list`)"
        );
        let _ = fs::remove_dir_all(&dir);
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
