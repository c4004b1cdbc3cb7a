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
use super::failure::Failure;
use crate::chain::{self, AccountId32, KeyTypeId, PublicKey, SessionKeys, StorageReader};
use crate::docker::ContainerInspect;
use crate::protocol::events::{KeyUpdate, Payload};
use crate::protocol::{ErrorCode, Event, now_ms};
use crate::rpc::{RpcClient, RpcStorage};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

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

/// Each public key by its key type (`gran`, `babe`, `imon`).
fn keys_by_type(keys: &SessionKeys) -> BTreeMap<String, PublicKey> {
    (keys.public_keys())
        .map(|(t, k)| (t.to_string(), PublicKey::from(k)))
        .into()
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
    agent.raise(key_update_event(
        container,
        &session_key,
        &keys,
        now_ms(),
        agent.next_event_seq(),
    ));
    Ok(json!({ "session_key": session_key, "keys": keys_by_type(&keys) }))
}

/// The `key_update` event for a rotation of `container`'s keys.
fn key_update_event(
    container: &str,
    session_key: &str,
    keys: &SessionKeys,
    timestamp: i64,
    seq: u64,
) -> Event {
    Payload::KeyUpdate(KeyUpdate {
        event_id: format!("key-{container}-{timestamp}-{seq}"),
        container: container.to_string(),
        session_key: session_key.to_string(),
        keys: Some(keys_by_type(keys)),
        action: "rotate_keys".into(),
        timestamp,
    })
    .into()
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
            keys_pairs(&json!(keys_by_type(&split(&known)?)))
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

/// Where a set of session keys to look a validator up by came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The command's `session_keys`.
    Given,
    /// The set last rotated (or confirmed) through warden (`session_keys.json`).
    LastRotated,
    /// Every public key in the node's keystore (file names).
    Keystore,
}

impl KeySource {
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Given => "given",
            KeySource::LastRotated => "last_rotated",
            KeySource::Keystore => "keystore",
        }
    }
}

/// A set of public keys, and where it came from.
pub type KeySet = (KeySource, Vec<(KeyTypeId, [u8; 32])>);

/// The stash the first of `key_sets` that is registered on chain belongs
/// to, with what the chain says of it and which set matched. A set may mix
/// keys registered to the stash with older ones registered to no one (a
/// keystore keeps every rotated key): the stash is then asked about with its
/// own keys only. Keys registered to different stashes name no one validator.
pub fn identify<R: StorageReader>(
    storage: &R,
    key_sets: &[KeySet],
) -> Result<Option<(AccountId32, chain::ValidatorInfo, KeySource)>, String>
where
    R::Error: std::fmt::Display,
{
    for (source, keys) in key_sets {
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
            return Ok(Some((stash, info, *source)));
        }
        let registered: Vec<(KeyTypeId, [u8; 32])> = info
            .key_owners
            .iter()
            .filter(|k| k.owner == Some(stash))
            .map(|k| (k.key_type, k.public_key))
            .collect();
        let info = chain::find_validator(storage, &registered).map_err(|e| e.to_string())?;
        return Ok(Some((stash, info, *source)));
    }
    Ok(None)
}

/// Every storage key [`identify`] may read for `key_sets`, for one bulk fetch
/// (`RpcStorage::prefetch`): through `docker exec curl` each single read is a
/// process, and a keystore can hold many keys.
pub fn identify_storage_keys(key_sets: &[KeySet]) -> Vec<Vec<u8>> {
    use chain::keys;
    let mut out = vec![
        keys::session_validators(),
        keys::session_disabled_validators(),
        keys::session_queued_keys(),
    ];
    for (_, set) in key_sets {
        for (key_type, public_key) in set {
            out.push(keys::session_key_owner(*key_type, public_key));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The keys registered to `stash` among those looked up, one per type:
/// `{"gran": "0x…", "babe": "0x…", "imon": "0x…"}`, and the whole set as
/// `author_rotateKeys` writes it when every type of it matched.
fn matched_keys(
    info: &chain::ValidatorInfo,
    stash: &AccountId32,
) -> (Map<String, Value>, Option<String>) {
    let matched: Vec<(KeyTypeId, [u8; 32])> = info
        .key_owners
        .iter()
        .filter(|k| k.owner == Some(*stash))
        .map(|k| (k.key_type, k.public_key))
        .collect();
    let by_type = matched
        .iter()
        .map(|(t, k)| {
            (
                t.to_string(),
                Value::String(PublicKey::from(*k).to_string()),
            )
        })
        .collect();
    let get = |t: KeyTypeId| matched.iter().find(|(kt, _)| *kt == t).map(|(_, k)| *k);
    let whole = match (
        get(KeyTypeId::GRANDPA),
        get(KeyTypeId::BABE),
        get(KeyTypeId::IM_ONLINE),
    ) {
        (Some(gran), Some(babe), Some(imon)) => Some(SessionKeys { gran, babe, imon }.to_hex()),
        _ => None,
    };
    (by_type, whole)
}

/// Slots this node authors in the current epoch, from `babe_epochAuthorship`
/// (an unsafe method: answered only over the node's loopback RPC). `None`
/// when the node does not offer it. The answer maps each local BABE
/// authority key to its `primary`, `secondary` and `secondary_vrf` slots.
pub fn epoch_authorship(rpc: &RpcClient) -> Option<Value> {
    let answer = rpc.call("babe_epochAuthorship", json!([])).ok()?;
    let mut counts = [0usize; 3];
    for slots in answer.as_object()?.values() {
        for (i, kind) in ["primary", "secondary", "secondary_vrf"].iter().enumerate() {
            counts[i] += slots
                .get(kind)
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
        }
    }
    Some(json!({
        "primary": counts[0], "secondary": counts[1], "secondary_vrf": counts[2],
        "total": counts.iter().sum::<usize>(),
    }))
}

/// What the chain will use for `stash` compared with the node's keystore
/// (see [`chain::key_check`]), and the node's slots this epoch.
pub fn chain_keys_report(
    rpc: &RpcClient,
    storage: &RpcStorage<'_>,
    stash: &AccountId32,
    keystore: Option<&[(KeyTypeId, [u8; 32])]>,
    last_rotated: Option<&str>,
) -> Result<Value, String> {
    use chain::{key_check, keys};
    // One bulk read instead of four (each is a process through `docker exec curl`).
    storage.prefetch(&[
        keys::session_current_index(),
        keys::session_next_keys(stash),
        keys::session_queued_keys(),
        keys::babe_epoch_start(),
    ]);
    let read = key_check::read_chain_keys(storage, stash).map_err(|e| e.to_string())?;
    let finalized = storage.block_number().map_err(|e| e.to_string())?;
    let keys_hex = |k: &Option<SessionKeys>| k.as_ref().map(|k| json!(keys_by_type(k)));
    let mut report = json!({
        "session_index": read.session_index,
        "next_keys": keys_hex(&read.next_keys),
        "queued_keys": keys_hex(&read.queued_keys),
        "epoch_authorship": epoch_authorship(rpc),
    });
    if let Some(keystore) = keystore {
        let rotated = last_rotated.and_then(|k| chain::split_session_keys(k).ok());
        let verdict = key_check::judge(&read, keystore, rotated.as_ref(), finalized);
        if let (Value::Object(out), Ok(Value::Object(more))) =
            (&mut report, serde_json::to_value(&verdict))
        {
            out.extend(more);
        }
    } else {
        report["warning"] = Value::Null;
        report["note"] = json!("the node's keystore could not be listed: keys not compared");
    }
    Ok(report)
}

/// The key sets to look a node's validator up by, in order: the set last
/// rotated through warden, then every public key in its keystore (names
/// only). The keystore is needed even when a set is known: `author_rotateKeys`
/// deletes no key, and until `session.setKeys` registers the new set, the
/// node's stash is found only through an older one.
pub(super) fn session_key_sets(agent: &Agent, inspect: &ContainerInspect) -> KeySets {
    let keystore = super::keystore_cache::keystore_keys(agent, inspect).ok();
    if let Some(keys) = &keystore {
        agent.remember_keystore(&inspect.name, keys);
    }
    let mut sets = Vec::new();
    if let Some(known) = known_keys(agent, &inspect.name)
        && let Ok(keys) = chain::split_session_keys(&known)
    {
        sets.push((KeySource::LastRotated, keys.public_keys().to_vec()));
    }
    if let Some(keys) = &keystore
        && !keys.is_empty()
    {
        sets.push((KeySource::Keystore, keys.clone()));
    }
    KeySets { sets, keystore }
}

/// The key sets to look a node's validator up by, and its keystore listing
/// (`None` when it could not be listed).
pub(super) struct KeySets {
    pub sets: Vec<KeySet>,
    pub keystore: Option<Vec<(KeyTypeId, [u8; 32])>>,
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
    let listed = inspect.as_ref().map(|i| session_key_sets(agent, i));
    let keystore = listed.as_ref().and_then(|l| l.keystore.clone());
    let (key_sets, shown_keys) = match session_keys {
        Some(given) => (
            vec![(KeySource::Given, typed_keys(&split(given)?))],
            Some(given.to_string()),
        ),
        None => (
            listed.map(|l| l.sets).unwrap_or_default(),
            load_known_keys(agent).remove(container),
        ),
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
    storage.prefetch(&identify_storage_keys(&key_sets));
    let prefix = agent.config.ss58_prefix;
    let account = |a: &AccountId32| chain::ss58::encode(a, prefix).unwrap_or_else(|_| a.to_hex());
    let found = identify(&storage, &key_sets).map_err(|message| Failure {
        code: ErrorCode::Internal,
        message,
    })?;
    let Some((stash, info, source)) = found else {
        let all: Vec<(KeyTypeId, [u8; 32])> =
            key_sets.into_iter().flat_map(|(_, keys)| keys).collect();
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
    let (matched, whole) = matched_keys(&info, &stash);
    let last_rotated = known_keys(agent, container);
    let chain_keys = chain_keys_report(
        &rpc,
        &storage,
        &stash,
        keystore.as_deref(),
        last_rotated.as_deref(),
    )
    .unwrap_or_else(|error| json!({ "error": error }));
    Ok(json!({
        "validator_account": account(&stash),
        "session_keys": whole.or(shown_keys),
        "matched_keys": matched,
        "keys_from": source.as_str(),
        "is_authority": is_authority,
        "is_active_validator": info.is_active_validator,
        "in_queued_keys": info.in_queued_keys,
        "key_owners": owners,
        "chain_keys": chain_keys,
        "note": "these keys are registered to this stash",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_is_reported_byte_for_byte() {
        let session_key = format!(
            "0x{}{}{}",
            "11".repeat(32),
            "22".repeat(32),
            "33".repeat(32)
        );
        let keys = chain::split_session_keys(&session_key).unwrap();
        let event = key_update_event("3node0", &session_key, &keys, 1733312345678, 7);
        assert_eq!(
            crate::protocol::Message::Event(event).to_json(),
            crate::protocol::events::tests::KEY_UPDATE
        );
    }
}
