//! JSON-RPC 2.0: the envelope as jsonrpsee handles it, and the methods warden calls, answered
//! as sc-rpc answers them.
//!
//! Error codes and messages are the real ones:
//! - -32700 "Parse error", -32600 "Invalid request", -32601 "Method not found",
//!   -32602 "Invalid params" (jsonrpsee-types `ErrorCode`);
//! - -32601 "RPC call is unsafe to be called externally" (sc-rpc-api `policy.rs`,
//!   `UnsafeRpcError`: the same code as method-not-found, told apart by its message);
//! - 1040 "Session keys are not encoded correctly" and "Invalid key type ID format (should be
//!   of length four)" (sc-rpc-api `author/error.rs`: `base::AUTHOR` 1000 + 40, `OTHER_ERR`);
//! - 4002 "count exceeds maximum value. value: N, max: 1000" and 4003 "Client error: …"
//!   (sc-rpc-api `state/error.rs`: `base::STATE` 4000 + 2 / + 3).

use serde::Serialize;
use serde_json::{Value, json};

use crate::chain::{Chain, STATE_PRUNING_BLOCKS};
use crate::control::{Control, normalize_key};
use crate::hex;
use crate::keystore;
use crate::node::{self, Node};

#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn parse_error() -> RpcError {
        RpcError::new(-32700, "Parse error")
    }

    pub fn invalid_request() -> RpcError {
        RpcError::new(-32600, "Invalid request")
    }

    pub fn method_not_found() -> RpcError {
        RpcError::new(-32601, "Method not found")
    }

    pub fn unsafe_denied() -> RpcError {
        RpcError::new(-32601, "RPC call is unsafe to be called externally")
    }

    pub fn invalid_params(detail: impl Into<String>) -> RpcError {
        RpcError {
            data: Some(Value::String(detail.into())),
            ..RpcError::new(-32602, "Invalid params")
        }
    }

    fn author_other(message: &str) -> RpcError {
        RpcError::new(1040, message)
    }

    fn state_client(message: String) -> RpcError {
        RpcError::new(4003, format!("Client error: {message}"))
    }

    fn to_json(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        error
    }
}

/// The most keys `state_getKeysPaged` returns at once (sc-rpc `STORAGE_KEYS_PAGED_MAX_COUNT`).
const KEYS_PAGED_MAX: u64 = 1000;

/// Methods answered, in `rpc_methods` order (sorted, as sc-rpc-server lists them).
pub const METHODS: &[&str] = &[
    "author_hasKey",
    "author_hasSessionKeys",
    "author_insertKey",
    "author_rotateKeys",
    "babe_epochAuthorship",
    "chain_getBlockHash",
    "chain_getFinalisedHead",
    "chain_getFinalizedHead",
    "chain_getHead",
    "chain_getHeader",
    "rpc_methods",
    "state_getKeysPaged",
    "state_getKeysPagedAt",
    "state_getStorage",
    "state_getStorageAt",
    "state_queryStorageAt",
    "system_chain",
    "system_chainType",
    "system_health",
    "system_localPeerId",
    "system_name",
    "system_nodeRoles",
    "system_properties",
    "system_syncState",
    "system_version",
];

/// What one call may see: the node, the control values read for this request, and whether
/// this RPC socket denies unsafe methods.
pub struct CallContext<'a> {
    pub node: &'a Node,
    pub control: Control,
    pub deny_unsafe: bool,
    pub now_ms: u64,
}

/// Positional (array) or named (object) parameters, as jsonrpsee's server macros accept.
struct Params<'a>(Option<&'a Value>);

impl<'a> Params<'a> {
    /// The parameter at `index`, or named `name`; JSON `null` counts as absent.
    fn get(&self, index: usize, name: &str) -> Option<&'a Value> {
        let value = match self.0 {
            Some(Value::Array(items)) => items.get(index),
            Some(Value::Object(fields)) => fields.get(name),
            _ => None,
        };
        value.filter(|v| !v.is_null())
    }

    fn required(&self, index: usize, name: &str) -> Result<&'a Value, RpcError> {
        self.get(index, name).ok_or_else(|| {
            RpcError::invalid_params(format!("missing value for required argument `{name}`"))
        })
    }

    fn string(&self, index: usize, name: &str) -> Result<&'a str, RpcError> {
        self.required(index, name)?.as_str().ok_or_else(|| {
            RpcError::invalid_params(format!("invalid type for `{name}`: expected a string"))
        })
    }

    /// A hex byte string (sp-core `Bytes`: `0x` optional).
    fn bytes(&self, index: usize, name: &str) -> Result<Vec<u8>, RpcError> {
        hex::decode(self.string(index, name)?).map_err(|e| RpcError::invalid_params(e.to_string()))
    }

    /// An optional block hash (`H256`: exactly 32 bytes of `0x`-prefixed hex).
    fn block_hash(&self, index: usize, name: &str) -> Result<Option<[u8; 32]>, RpcError> {
        let Some(value) = self.get(index, name) else {
            return Ok(None);
        };
        let text = value.as_str().ok_or_else(|| {
            RpcError::invalid_params(format!("invalid type for `{name}`: expected a hash"))
        })?;
        let bytes = text
            .strip_prefix("0x")
            .ok_or_else(|| RpcError::invalid_params("invalid hex: missing 0x prefix"))
            .and_then(|digits| {
                hex::decode(digits).map_err(|e| RpcError::invalid_params(e.to_string()))
            })?;
        bytes
            .try_into()
            .map(Some)
            .map_err(|_| RpcError::invalid_params("invalid length for a 32-byte hash"))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    peers: u32,
    is_syncing: bool,
    should_have_peers: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncState {
    starting_block: u64,
    current_block: u64,
    highest_block: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Properties {
    ss58_format: u16,
    token_decimals: u8,
    token_symbol: &'static str,
}

/// A call's outcome: the result as JSON text (serialized straight from the types, so fields
/// keep the order a real node sends them in), or an error.
pub type Answer = Result<String, RpcError>;

fn ok<T: Serialize>(value: T) -> Answer {
    Ok(serde_json::to_string(&value).expect("plain data serializes"))
}

/// `system_health` (sc-rpc-api `system/helpers.rs`, `Health`).
pub fn health(ctx: &CallContext) -> String {
    serde_json::to_string(&Health {
        peers: ctx.control.peers,
        is_syncing: ctx.control.syncing,
        should_have_peers: ctx.node.should_have_peers(),
    })
    .expect("plain data serializes")
}

impl CallContext<'_> {
    fn chain(&self) -> &Chain {
        &self.node.chain
    }

    fn best(&self) -> u64 {
        self.chain().best_at(self.now_ms)
    }

    fn check_if_safe(&self) -> Result<(), RpcError> {
        if self.deny_unsafe {
            Err(RpcError::unsafe_denied())
        } else {
            Ok(())
        }
    }

    /// The block a state query reads: best when not given; an error as the client backend
    /// gives one for unknown blocks and for state pruned away.
    fn state_block(&self, at: Option<[u8; 32]>) -> Result<u64, RpcError> {
        let best = self.best();
        let Some(hash) = at else {
            return Ok(best);
        };
        let shown = hex::encode_prefixed(&hash);
        let number = self.chain().number_of_hash(&hash, best).ok_or_else(|| {
            RpcError::state_client(format!(
                "UnknownBlock: Header was not found in the database: {shown}"
            ))
        })?;
        if number + STATE_PRUNING_BLOCKS < Chain::finalized_of(best) {
            return Err(RpcError::state_client(format!(
                "UnknownBlock: State already discarded for {shown}"
            )));
        }
        Ok(number)
    }

    /// One call. Parameters are checked before the unsafe check, as jsonrpsee decodes them
    /// before the method body (where `check_if_safe` sits) runs.
    pub fn call(&self, method: &str, params: Option<&Value>) -> Answer {
        let params = Params(params);
        let node = self.node;
        match method {
            "system_name" => ok(json!(node::IMPL_NAME)),
            "system_version" => ok(json!(node::IMPL_VERSION)),
            "system_chain" => ok(json!(node::chain_spec_name(&node.config.chain))),
            "system_chainType" => ok(json!("Live")),
            "system_properties" => ok(Properties {
                ss58_format: 42,
                token_decimals: 18,
                token_symbol: "CTC",
            }),
            "system_health" => Ok(health(self)),
            "system_localPeerId" => ok(json!(node.peer_id)),
            "system_nodeRoles" => ok(json!([if node.config.validator {
                "Authority"
            } else {
                "Full"
            }])),
            "system_syncState" => {
                let status = node.status(&self.control, self.now_ms);
                ok(SyncState {
                    starting_block: node.starting_block,
                    current_block: status.best,
                    highest_block: status.sync_target,
                })
            }
            "rpc_methods" => ok(json!({ "methods": METHODS })),
            "chain_getHeader" => {
                let best = self.best();
                let number = match params.block_hash(0, "hash")? {
                    None => Some(best),
                    Some(hash) => self.chain().number_of_hash(&hash, best),
                };
                ok(number.map(|n| self.chain().header(n)))
            }
            "chain_getFinalizedHead" | "chain_getFinalisedHead" => {
                let finalized = self.control.finalized(self.best());
                ok(hex::encode_prefixed(&self.chain().block_hash(finalized)))
            }
            "chain_getBlockHash" | "chain_getHead" => self
                .block_hashes(params.get(0, "hash"))
                .map(|v| v.to_string()),
            "state_getStorage" | "state_getStorageAt" => {
                let key = params.bytes(0, "key")?;
                self.state_block(params.block_hash(1, "hash")?)?;
                ok(self
                    .control
                    .storage_value(&hex::encode(&key))
                    .map(normalize_key))
            }
            // sc-rpc state: `state_queryStorageAt(keys, at)` answers one
            // StorageChangeSet `{block, changes: [[key, value|null]…]}`.
            "state_queryStorageAt" => {
                let keys = params
                    .required(0, "keys")?
                    .as_array()
                    .cloned()
                    .ok_or_else(|| {
                        RpcError::invalid_params("invalid type for `keys`: expected a sequence")
                    })?;
                let at = params.block_hash(1, "at")?;
                let block = match &at {
                    Some(hash) => hex::encode_prefixed(hash),
                    None => hex::encode_prefixed(&self.chain().block_hash(self.best())),
                };
                self.state_block(at)?;
                let mut changes = Vec::new();
                for key in keys {
                    let text = key.as_str().unwrap_or("").to_ascii_lowercase();
                    let value = self
                        .control
                        .storage_value(text.trim_start_matches("0x"))
                        .map(normalize_key);
                    changes.push(serde_json::json!([text, value]));
                }
                ok(vec![
                    serde_json::json!({ "block": block, "changes": changes }),
                ])
            }
            "state_getKeysPaged" | "state_getKeysPagedAt" => {
                let prefix = normalize_key(&hex::encode(&params.bytes(0, "prefix")?));
                let count = params.required(1, "count")?.as_u64().ok_or_else(|| {
                    RpcError::invalid_params("invalid type for `count`: expected u32")
                })?;
                let start = match params.get(2, "start_key") {
                    Some(_) => Some(normalize_key(&hex::encode(&params.bytes(2, "start_key")?))),
                    None => None,
                };
                self.state_block(params.block_hash(3, "hash")?)?;
                if count > KEYS_PAGED_MAX {
                    return Err(RpcError::new(
                        4002,
                        format!(
                            "count exceeds maximum value. value: {count}, max: {KEYS_PAGED_MAX}"
                        ),
                    ));
                }
                let keys: Vec<&String> = self
                    .control
                    .storage
                    .keys()
                    .filter(|k| k.starts_with(&prefix))
                    .filter(|k| start.as_ref().is_none_or(|s| *k > s))
                    .take(count as usize)
                    .collect();
                ok(keys)
            }
            "author_rotateKeys" => {
                self.check_if_safe()?;
                let keys = node
                    .keystore
                    .rotate()
                    .map_err(|e| RpcError::author_other(&format!("Client error: {e}")))?;
                ok(hex::encode_prefixed(&keys))
            }
            "babe_epochAuthorship" => {
                // sc-consensus-babe-rpc: unsafe; maps each BABE key of the local keystore
                // that is an authority of the epoch to its slots. Stand-in: a key is an
                // authority when the chain state (the control file's storage) holds it,
                // e.g. in Session.QueuedKeys; its slots are a function of the key.
                // Difference: keys are shown as 0x hex, not SS58.
                self.check_if_safe()?;
                let mut out = serde_json::Map::new();
                for public in node.keystore.public_keys_of(b"babe") {
                    let needle = hex::encode(&public);
                    let in_state = self
                        .control
                        .storage
                        .values()
                        .any(|value| value.to_ascii_lowercase().contains(&needle));
                    if !in_state || public.len() < 2 {
                        continue;
                    }
                    let primary: Vec<u64> = (0..1 + u64::from(public[0] % 4))
                        .map(|i| 10 + 7 * i)
                        .collect();
                    let secondary: Vec<u64> =
                        (0..u64::from(public[1] % 3)).map(|i| 13 + 11 * i).collect();
                    out.insert(
                        hex::encode_prefixed(&public),
                        json!({"primary": primary, "secondary": secondary, "secondary_vrf": []}),
                    );
                }
                ok(Value::Object(out))
            }
            "author_hasSessionKeys" => {
                let encoded = params.bytes(0, "session_keys")?;
                self.check_if_safe()?;
                let keys = keystore::split_session_keys(&encoded).ok_or_else(|| {
                    RpcError::author_other("Session keys are not encoded correctly")
                })?;
                ok(node.keystore.has_keys(&keys))
            }
            "author_hasKey" => {
                let public = params.bytes(0, "public_key")?;
                let key_type = params.string(1, "key_type")?;
                self.check_if_safe()?;
                let key_type = keystore::parse_key_type(key_type).ok_or_else(bad_key_type)?;
                ok(node.keystore.has_keys(&[(key_type, public)]))
            }
            "author_insertKey" => {
                let key_type = params.string(0, "key_type")?;
                let suri = params.string(1, "suri")?;
                let public = params.bytes(2, "public")?;
                self.check_if_safe()?;
                let key_type = keystore::parse_key_type(key_type).ok_or_else(bad_key_type)?;
                node.keystore
                    .insert(&key_type, suri, &public)
                    .map_err(|_| RpcError::author_other("The key store is unavailable"))?;
                ok(())
            }
            _ => Err(RpcError::method_not_found()),
        }
    }

    /// `chain_getBlockHash`: best when no number; one number (JSON number or hex string) or a
    /// list of them (sc-rpc `ListOrValue<NumberOrHex>`); `null` for blocks not yet produced.
    fn block_hashes(&self, numbers: Option<&Value>) -> Result<Value, RpcError> {
        let best = self.best();
        let hash_of = |value: &Value| -> Result<Value, RpcError> {
            let number = match value {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s
                    .strip_prefix("0x")
                    .and_then(|digits| u64::from_str_radix(digits, 16).ok()),
                _ => None,
            }
            .ok_or_else(|| {
                RpcError::invalid_params("expected a block number or 0x-prefixed hex")
            })?;
            Ok(if number <= best {
                json!(hex::encode_prefixed(&self.chain().block_hash(number)))
            } else {
                Value::Null
            })
        };
        match numbers {
            None => Ok(json!(hex::encode_prefixed(&self.chain().block_hash(best)))),
            Some(Value::Array(list)) => list
                .iter()
                .map(hash_of)
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Some(value) => hash_of(value),
        }
    }
}

fn bad_key_type() -> RpcError {
    RpcError::author_other("Invalid key type ID format (should be of length four)")
}

/// `{"jsonrpc":"2.0","id":…,"result":…}` or `…,"error":{…}}`, fields in jsonrpsee's order.
fn envelope(id: &Value, outcome: Answer) -> String {
    match outcome {
        Ok(result) => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
        Err(error) => format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{}}}"#,
            error.to_json()
        ),
    }
}

/// Answers one request object; `None` for a notification (no `id`), which gets no answer.
fn handle_one(ctx: &CallContext, request: &Value) -> Option<String> {
    let Some(object) = request.as_object() else {
        return Some(envelope(&Value::Null, Err(RpcError::invalid_request())));
    };
    let id = object.get("id");
    let method = object.get("method").and_then(Value::as_str);
    let version_ok = object.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    let id_ok = id.is_none_or(|id| id.is_number() || id.is_string() || id.is_null());
    let (Some(method), true, true) = (method, version_ok, id_ok) else {
        let id = id.filter(|_| id_ok).cloned().unwrap_or(Value::Null);
        return Some(envelope(&id, Err(RpcError::invalid_request())));
    };
    let outcome = ctx.call(method, object.get("params"));
    id.map(|id| envelope(id, outcome))
}

/// Answers a request body: one call or a batch. `None` when nothing is to be sent back
/// (notifications only), which HTTP answers with an empty body.
pub fn handle_body(ctx: &CallContext, body: &[u8]) -> Option<String> {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => return Some(envelope(&Value::Null, Err(RpcError::parse_error()))),
    };
    match parsed {
        Value::Array(batch) if batch.is_empty() => {
            Some(envelope(&Value::Null, Err(RpcError::invalid_request())))
        }
        Value::Array(batch) => {
            let answers: Vec<String> = batch.iter().filter_map(|r| handle_one(ctx, r)).collect();
            (!answers.is_empty()).then(|| format!("[{}]", answers.join(",")))
        }
        single => handle_one(ctx, &single),
    }
}

#[cfg(test)]
#[path = "rpc_tests.rs"]
mod tests;
