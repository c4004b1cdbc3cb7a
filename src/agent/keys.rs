//! Session keys and validator identity: rotate_keys, check_keys,
//! has_session_keys, has_key and find_validator, through the node's RPC and
//! on-chain storage read at the node's finalized block.
//!
//! Invariants:
//! - Only public keys are handled: keystore file contents are never read.
//! - A rotation is reported as a durable `key_update` event.
//! - Storage reads are pinned to one block (the finalized head), inside the
//!   node's pruning window, so a lookup sees one consistent state.
use super::Agent;
use super::runner::Failure;
use crate::chain::{self, AccountId32, KeyTypeId, SessionKeys, StorageReader};
use crate::protocol::{ErrorCode, Event, EventKind, now_ms};
use crate::rpc::{RpcClient, RpcError};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The one mapping from RPC errors to the wire's codes.
impl From<RpcError> for Failure {
    fn from(e: RpcError) -> Failure {
        let code = ErrorCode::from_wire(e.wire_code());
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

impl<E: std::fmt::Display> From<chain::ChainError<E>> for Failure {
    fn from(e: chain::ChainError<E>) -> Failure {
        Failure {
            code: ErrorCode::Internal,
            message: e.to_string(),
        }
    }
}

/// On-chain storage through `state_getStorage`, all reads at one block,
/// with values fetched in bulk beforehand (`prefetch`) served from memory.
pub struct RpcStorage<'a> {
    client: &'a RpcClient,
    at: String,
    prefetched: std::cell::RefCell<std::collections::HashMap<Vec<u8>, Option<Vec<u8>>>>,
}

/// Keys per `state_queryStorageAt` call.
const PREFETCH_CHUNK: usize = 128;

impl<'a> RpcStorage<'a> {
    pub fn at_finalized(client: &'a RpcClient) -> Result<RpcStorage<'a>, RpcError> {
        Ok(RpcStorage {
            at: client.chain_get_finalized_head()?,
            client,
            prefetched: Default::default(),
        })
    }

    /// Fetch many values in a few calls: through `docker exec curl` each call
    /// costs a process, and a payout check reads hundreds of keys. A node
    /// without `state_queryStorageAt` is read key by key instead.
    pub fn prefetch(&self, keys: &[Vec<u8>]) {
        for chunk in keys.chunks(PREFETCH_CHUNK) {
            let hex: Vec<String> = chunk.iter().map(|k| chain::keys::to_hex(k)).collect();
            let Ok(values) = self.client.state_query_storage_at(&hex, &self.at) else {
                return;
            };
            let mut cache = self.prefetched.borrow_mut();
            // Keys the node did not list have no value at this block.
            for key in chunk {
                cache.insert(key.clone(), None);
            }
            for (key_hex, value) in values {
                if let Ok(key) = hex::decode(key_hex.trim_start_matches("0x")) {
                    cache.insert(key, value);
                }
            }
        }
    }
}

impl StorageReader for RpcStorage<'_> {
    type Error = RpcError;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, RpcError> {
        if let Some(value) = self.prefetched.borrow().get(key) {
            return Ok(value.clone());
        }
        self.client
            .state_get_storage(&chain::keys::to_hex(key), Some(&self.at))
    }
}

/// The session keys each container last rotated or was checked with
/// (public keys only), so `has_session_keys` with no keys has a default.
fn known_keys_path(agent: &Agent) -> PathBuf {
    agent.config.state_dir.join("session_keys.json")
}

fn load_known_keys(agent: &Agent) -> BTreeMap<String, String> {
    std::fs::read(known_keys_path(agent))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The session keys last rotated or confirmed on `container`, if any.
pub fn known_keys(agent: &Agent, container: &str) -> Option<String> {
    load_known_keys(agent).remove(container)
}

fn remember_keys(agent: &Agent, container: &str, session_keys: &str) {
    let _guard = agent.known_keys_lock.lock();
    let mut known = load_known_keys(agent);
    known.insert(container.to_string(), session_keys.to_string());
    if let Err(e) = crate::fsutil::write_json_atomic(&known_keys_path(agent), &known) {
        crate::log::warn(&format!(
            "cannot remember the session keys of {container}: {e}"
        ));
    }
}

fn split(session_keys: &str) -> Result<SessionKeys, Failure> {
    chain::split_session_keys(session_keys).map_err(|e| Failure {
        code: ErrorCode::InvalidParams,
        message: format!("session_keys: {e}"),
    })
}

fn keys_json(keys: &SessionKeys) -> Map<String, Value> {
    keys.public_keys()
        .iter()
        .map(|(t, k)| {
            (
                t.to_string(),
                Value::String(format!("0x{}", hex::encode(k))),
            )
        })
        .collect()
}

fn client(agent: &Agent, container: &str) -> Result<RpcClient, Failure> {
    let inspect = agent.docker.inspect(&[container])?.into_iter().next();
    Ok(super::node::rpc_for(agent, container, inspect.as_ref())?)
}

pub fn rotate_keys(agent: &Agent, container: &str) -> Result<Value, Failure> {
    let rpc = client(agent, container)?;
    let session_key = rpc.author_rotate_keys()?;
    agent.watch.keystores.forget(container);
    let keys = split(&session_key).map_err(|f| Failure {
        code: ErrorCode::Internal,
        message: format!(
            "the node answered author_rotateKeys with keys warden cannot split: {}",
            f.message
        ),
    })?;
    remember_keys(agent, container, &session_key);
    let keys = keys_json(&keys);
    let timestamp = now_ms();
    let event_id = format!("key-{container}-{timestamp}-{}", agent.next_event_seq());
    let mut data = Map::new();
    data.insert("event_id".into(), json!(event_id));
    data.insert("container".into(), json!(container));
    data.insert("session_key".into(), json!(session_key));
    data.insert("keys".into(), Value::Object(keys.clone()));
    data.insert("action".into(), json!("rotate_keys"));
    data.insert("timestamp".into(), json!(timestamp));
    agent.raise(Event {
        kind: EventKind::KeyUpdate,
        event_id,
        data,
    });
    Ok(json!({ "session_key": session_key, "keys": keys }))
}

/// `session_keys` as given, else the container's last known keys.
fn keys_or_known(agent: &Agent, container: &str, given: &str) -> Result<String, Failure> {
    if !given.is_empty() {
        return Ok(given.to_string());
    }
    load_known_keys(agent).remove(container).ok_or_else(|| Failure {
        code: ErrorCode::InvalidParams,
        message: format!(
            "no session keys are known for {container} (none rotated through warden yet): pass session_keys=0x…"
        ),
    })
}

pub fn has_session_keys(
    agent: &Agent,
    container: &str,
    session_keys: &str,
) -> Result<Value, Failure> {
    let session_keys = keys_or_known(agent, container, session_keys)?;
    split(&session_keys)?;
    let present = client(agent, container)?.author_has_session_keys(&session_keys)?;
    if present {
        remember_keys(agent, container, &session_keys);
    }
    Ok(Value::Bool(present))
}

pub fn has_key(
    agent: &Agent,
    container: &str,
    public_key: &str,
    key_type: &str,
) -> Result<Value, Failure> {
    Ok(Value::Bool(
        client(agent, container)?.author_has_key(public_key, key_type)?,
    ))
}

pub fn check_keys(
    agent: &Agent,
    container: &str,
    rotate_to_check: bool,
    public_keys: Option<&BTreeMap<String, String>>,
) -> Result<Value, Failure> {
    let mut rotated = None;
    let to_check: Vec<(String, String)> = match public_keys {
        Some(map) => map.iter().map(|(t, k)| (t.clone(), k.clone())).collect(),
        None if rotate_to_check => {
            let result = rotate_keys(agent, container)?;
            rotated = result.get("session_key").cloned();
            keys_pairs(&result["keys"])
        }
        None => {
            let known = keys_or_known(agent, container, "").map_err(|_| Failure {
                code: ErrorCode::InvalidParams,
                message: format!(
                    "no keys to check on {container}: pass public_keys.gran=0x… (and babe, imon), or \
                     rotate_to_check=true to make new ones (that changes the node's keys)"
                ),
            })?;
            keys_pairs(&Value::Object(keys_json(&split(&known)?)))
        }
    };
    let rpc = client(agent, container)?;
    let mut report = Map::new();
    let mut missing = Vec::new();
    for (key_type, public_key) in &to_check {
        let present = rpc.author_has_key(public_key, key_type)?;
        if !present {
            missing.push(key_type.clone());
        }
        report.insert(
            key_type.clone(),
            json!({ "public_key": public_key, "present": present }),
        );
    }
    let verdict = if missing.is_empty() {
        format!("all {} keys are in {container}'s keystore", to_check.len())
    } else {
        format!(
            "missing from {container}'s keystore: {}",
            missing.join(", ")
        )
    };
    Ok(
        json!({ "keys": report, "all_present": missing.is_empty(), "rotated": rotated, "verdict": verdict }),
    )
}

fn keys_pairs(keys: &Value) -> Vec<(String, String)> {
    keys.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(t, k)| k.as_str().map(|k| (t.clone(), k.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The stash the first of `key_sets` that is registered on chain belongs
/// to, with what the chain says of it. A set may mix keys registered to the
/// stash with older ones registered to no one (a keystore keeps every
/// rotated key): the stash is then asked about with its own keys only.
/// Keys registered to different stashes name no one validator.
pub fn identify<R: StorageReader>(
    storage: &R,
    key_sets: &[Vec<(KeyTypeId, [u8; 32])>],
) -> Result<Option<(AccountId32, chain::ValidatorInfo)>, String>
where
    R::Error: std::fmt::Display,
{
    for keys in key_sets {
        let info = chain::find_validator(storage, keys).map_err(|e| e.to_string())?;
        let mut owners: Vec<AccountId32> = info.key_owners.iter().filter_map(|k| k.owner).collect();
        owners.sort();
        owners.dedup();
        let stash = match owners.as_slice() {
            [] => continue,
            [stash] => *stash,
            _ => return Ok(None),
        };
        if info.agreement == chain::Agreement::Unanimous {
            return Ok(Some((stash, info)));
        }
        let registered: Vec<(KeyTypeId, [u8; 32])> = info
            .key_owners
            .iter()
            .filter(|k| k.owner == Some(stash))
            .map(|k| (k.key_type, k.public_key))
            .collect();
        let info = chain::find_validator(storage, &registered).map_err(|e| e.to_string())?;
        return Ok(Some((stash, info)));
    }
    Ok(None)
}

/// Public keys of the given hex session keys, typed for storage lookups.
fn typed_keys(keys: &SessionKeys) -> Vec<(KeyTypeId, [u8; 32])> {
    keys.public_keys().to_vec()
}

pub fn find_validator(
    agent: &Agent,
    container: &str,
    session_keys: Option<&str>,
    deep_search: bool,
) -> Result<Value, Failure> {
    if !deep_search {
        // The fast hint: the node's startup log names its role. Logs never
        // name the validator account, which only the chain knows.
        let logs = agent.docker.logs(container, 5000, false)?;
        let is_authority = format!("{}\n{}", logs.stdout, logs.stderr).contains("Role: AUTHORITY");
        return Ok(json!({
            "validator_account": null, "session_keys": null, "is_authority": is_authority,
            "is_active_validator": null,
            "note": "deep_search=false reads only the node's log (its role); the validator account is on chain: deep_search=true",
        }));
    }
    let inspect = agent.docker.inspect(&[container])?.into_iter().next();
    let rpc = super::node::rpc_for(agent, container, inspect.as_ref())?;
    let is_authority = rpc.system_node_roles()?.iter().any(|r| r == "Authority");
    // Keys to look up: as given, else the last rotated set and the keystore.
    let (key_sets, shown_keys) = match session_keys {
        Some(given) => (vec![typed_keys(&split(given)?)], Some(given.to_string())),
        None => {
            let sets = inspect
                .as_ref()
                .map(|i| super::summary::session_key_sets(agent, i))
                .unwrap_or_default();
            (sets, load_known_keys(agent).remove(container))
        }
    };
    if key_sets.is_empty() {
        return Err(Failure {
            code: ErrorCode::InvalidParams,
            message: format!(
                "no session keys found for {container} (none rotated through warden, none in its keystore): \
                 pass session_keys=0x…"
            ),
        });
    }
    let storage = RpcStorage::at_finalized(&rpc)?;
    let prefix = agent.config.ss58_prefix;
    let account = |a: &AccountId32| chain::ss58::encode(a, prefix).unwrap_or_else(|_| a.to_hex());
    let found = identify(&storage, &key_sets).map_err(|message| Failure {
        code: ErrorCode::Internal,
        message,
    })?;
    let Some((stash, info)) = found else {
        let all: Vec<(KeyTypeId, [u8; 32])> = key_sets.concat();
        let owners = chain::find_validator(&storage, &all)?;
        let conflict = owners.agreement == chain::Agreement::Conflict;
        return Ok(json!({
            "validator_account": null, "session_keys": shown_keys, "is_authority": is_authority,
            "is_active_validator": false, "in_queued_keys": false,
            "note": if conflict {
                "these keys are registered to different stashes: check them at once"
            } else {
                "these session keys belong to no one: Session.KeyOwner has no owner for any of them \
                 (never set with session.setKeys, or replaced since)"
            },
        }));
    };
    let owners: Vec<Value> = info
        .key_owners
        .iter()
        .map(
            |k| json!({"key_type": k.key_type.to_string(), "owner": k.owner.as_ref().map(account)}),
        )
        .collect();
    Ok(json!({
        "validator_account": account(&stash),
        "session_keys": shown_keys,
        "is_authority": is_authority,
        "is_active_validator": info.is_active_validator,
        "in_queued_keys": info.in_queued_keys,
        "key_owners": owners,
        "note": "these keys are registered to this stash",
    }))
}
