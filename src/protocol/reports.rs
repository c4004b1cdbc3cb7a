//! The agent's periodic reports, typed: `stats` ([`StatsReport`]) and
//! `summary` ([`SummaryReport`]). The agent builds them; the server decodes
//! each once, on the connection's thread, and every reader (the hub's views,
//! alerts, `/metrics`, the dashboard, the safety checks) reads these fields.
//!
//! Invariants:
//! - Encoding is what the agent sent before these types existed, byte for
//!   byte (pinned by literal-JSON tests in `reports_tests.rs`): a frame goes
//!   through `serde_json::Value`, so keys come out sorted.
//! - Decoding is tolerant, as the readers' `as_u64`/`as_str` were: a value of
//!   the wrong type reads as absent, unknown keys are ignored, and no field
//!   but an integer `timestamp` (checked by the server before the ack) is
//!   needed. An odd report is read as far as it makes sense, never refused.
//! - Decoding is bounded: at most [`MAX_REPORT_ENTRIES`] container rows,
//!   nodes and payout checks are read from one report (the hub tracks 256
//!   containers an agent), so a 1 MiB frame of tiny entries cannot become
//!   tens of MB of structs.
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// Container rows, nodes and payout checks read from one report, at most.
pub const MAX_REPORT_ENTRIES: usize = 512;

/// A value of the wrong type reads as the type's default (absent).
fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = Value::deserialize(d)?;
    Ok(T::deserialize(value).unwrap_or_default())
}

/// A list read item by item (an odd item reads as the default), bounded;
/// `None` when it is not a list.
fn lenient_items<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => Some(
            items
                .into_iter()
                .take(MAX_REPORT_ENTRIES)
                .map(|v| T::deserialize(v).unwrap_or_default())
                .collect(),
        ),
        _ => None,
    })
}

/// A JSON object of reports by container name, kept as a sorted list: a
/// B-tree allocates room for 11 entries even for the one or two nodes of a
/// typical host, several times the text it replaces.
#[derive(Clone, Debug, PartialEq)]
pub struct Entries<T>(Vec<(String, T)>);

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<T> Entries<T> {
    pub fn get(&self, name: &str) -> Option<&T> {
        let at = self
            .0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()?;
        Some(&self.0[at].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &T)> {
        self.0.iter().map(|(n, t)| (n, t))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T> FromIterator<(String, T)> for Entries<T> {
    fn from_iter<I: IntoIterator<Item = (String, T)>>(iter: I) -> Self {
        let mut entries: Vec<(String, T)> = iter.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        entries.shrink_to_fit();
        Entries(entries)
    }
}

impl<T: Serialize> Serialize for Entries<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(n, t)| (n, t)))
    }
}

impl<'de, T: DeserializeOwned + Default> Deserialize<'de> for Entries<T> {
    /// Entry by entry (an odd entry reads as the default), bounded; not an
    /// object: none.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Object(entries) => entries
                .into_iter()
                .take(MAX_REPORT_ENTRIES)
                .map(|(k, v)| (k, T::deserialize(v).unwrap_or_default()))
                .collect(),
            _ => Entries::default(),
        })
    }
}

/// `stats`: the agent's containers and nodes, every `stats_interval_s`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    /// When the agent made it (ms); echoed by the ack. `None` (absent or not
    /// an integer): the server refuses the report with `bad_request`.
    #[serde(default, deserialize_with = "lenient")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub host: Host,
    /// One row per managed container, stopped ones included. `None` (not
    /// a list): the report says nothing of them, which is not "none".
    #[serde(default, deserialize_with = "lenient_items")]
    pub containers: Option<Vec<ContainerRow>>,
    /// Container → its node, as far as it could be read.
    #[serde(default)]
    pub nodes: Entries<NodeReport>,
    /// Why Docker could not be used (then `containers` is empty).
    #[serde(default, deserialize_with = "lenient")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `stats.host`. The server reads only `name`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Host {
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    /// Sent by the agent, not kept by the server (it reads none of it).
    #[serde(flatten, skip_deserializing)]
    pub detail: Option<Box<HostDetail>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostDetail {
    /// `/proc/loadavg`'s three averages.
    #[serde(deserialize_with = "lenient")]
    pub load: Vec<f64>,
    #[serde(deserialize_with = "lenient")]
    pub mem_total_bytes: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub mem_available_bytes: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub state_dir: Option<StateDir>,
}

/// `host.state_dir`: the agent's free space, and whether it takes commands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateDir {
    #[serde(deserialize_with = "lenient")]
    pub path: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub free_bytes: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub min_free_bytes: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub accepting_commands: Option<bool>,
    #[serde(deserialize_with = "lenient")]
    pub error: Option<String>,
}

/// One row of `stats.containers`. Resource fields are `None` unless running.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerRow {
    #[serde(deserialize_with = "lenient")]
    pub name: Option<String>,
    /// Docker's state word: `running`, `exited`, `restarting`, …
    #[serde(deserialize_with = "lenient")]
    pub state: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub restart_count: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub cpu_percent: Option<f64>,
    #[serde(deserialize_with = "lenient")]
    pub mem_used_bytes: Option<u64>,
    /// Sent by the agent, not kept by the server (it reads none of it: a
    /// fleet's rows cost half as much).
    #[serde(flatten, skip_deserializing)]
    pub detail: Option<Box<RowDetail>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RowDetail {
    #[serde(deserialize_with = "lenient")]
    pub health: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub started_at: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub uptime_s: Option<i64>,
    #[serde(deserialize_with = "lenient")]
    pub image: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub mem_limit_bytes: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub data_free_bytes: Option<u64>,
}

impl StatsReport {
    /// Its container rows (none when it gave no list).
    pub fn rows(&self) -> &[ContainerRow] {
        self.containers.as_deref().unwrap_or_default()
    }
}

impl ContainerRow {
    pub fn is_running(&self) -> bool {
        self.state.as_deref() == Some("running")
    }
}

/// One entry of `stats.nodes`. On the wire its keys are flat; here they are
/// grouped by what the agent could learn, because a group is either sent
/// whole (a `null` for each value it lacks) or not at all: `read` when the
/// node answered, `identity` for a running node, `note` for a stopped one.
/// Decoding sets a group when any of its keys is there.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NodeReport {
    #[serde(flatten)]
    pub read: Option<Box<NodeRead>>,
    #[serde(flatten)]
    pub identity: Option<Box<NodeIdentity>>,
    /// Why the node could not be read (`null` when it was).
    pub rpc_error: Option<String>,
    /// The error code of `rpc_error`: `unavailable`, `timeout`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_code: Option<String>,
    /// `not running` for a stopped container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The node's keystore public keys (from its key file names), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keystore: Option<Vec<KeystoreEntry>>,
}

/// What the node said of itself (Prometheus or RPC).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NodeRead {
    pub best: Option<u64>,
    pub finalized: Option<u64>,
    pub sync_target: Option<u64>,
    pub peers: Option<u64>,
    pub syncing: Option<bool>,
    pub roles: Option<Vec<String>>,
    pub version: Option<String>,
    pub chain: Option<String>,
    /// `prometheus` or `rpc`.
    pub source: Option<String>,
}

impl NodeRead {
    pub fn is_authority(&self) -> Option<bool> {
        self.roles
            .as_ref()
            .map(|r| r.iter().any(|r| r == "Authority"))
    }
}

/// A running node's network identity: peer id, and whether it has a
/// network key (`None`: could not be told).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NodeIdentity {
    pub peer_id: Option<String>,
    pub network_key: Option<bool>,
}

/// One keystore entry: key type (`gran`, `babe`, …) and `0x` public key.
/// Kept compact: an entry as our agent lists them (4 ASCII bytes, `0x` and
/// 64 lowercase hex digits) is 36 bytes and no allocation, a fifth of its
/// text; any other is kept as sent (the readers check them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeystoreEntry(Entry);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Key {
        key_type: [u8; 4],
        public: [u8; 32],
    },
    Text {
        key_type: Box<str>,
        public: Box<str>,
    },
}

impl KeystoreEntry {
    pub fn new(key_type: &str, public: &str) -> Self {
        let key_type_bytes = <[u8; 4]>::try_from(key_type.as_bytes()).ok();
        let canonical = public
            .strip_prefix("0x")
            .filter(|hex| !hex.bytes().any(|b| b.is_ascii_uppercase()))
            .and_then(|hex| <[u8; 32]>::try_from(hex::decode(hex).ok()?.as_slice()).ok());
        match (key_type_bytes, canonical) {
            (Some(t), Some(public)) if t.is_ascii() => KeystoreEntry(Entry::Key {
                key_type: t,
                public,
            }),
            _ => KeystoreEntry(Entry::Text {
                key_type: key_type.into(),
                public: public.into(),
            }),
        }
    }

    pub fn key_type(&self) -> &str {
        match &self.0 {
            Entry::Key { key_type, .. } => std::str::from_utf8(key_type).unwrap_or_default(),
            Entry::Text { key_type, .. } => key_type,
        }
    }

    /// The public key as sent (`0x` and hex, for our agent).
    pub fn public(&self) -> std::borrow::Cow<'_, str> {
        match &self.0 {
            Entry::Key { public, .. } => format!("0x{}", hex::encode(public)).into(),
            Entry::Text { public, .. } => std::borrow::Cow::Borrowed(public),
        }
    }
}

/// `{"public", "type"}` on the wire.
#[derive(Serialize, Deserialize)]
struct EntryText<'a> {
    #[serde(borrow)]
    public: std::borrow::Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    key_type: std::borrow::Cow<'a, str>,
}

impl Serialize for KeystoreEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EntryText {
            public: self.public(),
            key_type: self.key_type().into(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for KeystoreEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let e = EntryText::deserialize(d)?;
        Ok(KeystoreEntry::new(&e.key_type, &e.public))
    }
}

impl<'de> Deserialize<'de> for NodeReport {
    /// Flat on the wire: a group is there when any of its keys is (even as
    /// `null`), so what our agent sent encodes again byte for byte. Values
    /// are read as the readers' `as_u64`/`as_str` did: a value of another
    /// type is absent.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Value::Object(mut n) = Value::deserialize(d)? else {
            return Err(serde::de::Error::custom("a node report is not an object"));
        };
        let any = |n: &Map<String, Value>, keys: &[&str]| keys.iter().any(|k| n.contains_key(*k));
        let has_read = any(
            &n,
            &[
                "best",
                "finalized",
                "sync_target",
                "peers",
                "syncing",
                "roles",
                "version",
                "chain",
                "source",
            ],
        );
        let has_identity = any(&n, &["peer_id", "network_key"]);
        let mut take = |key: &str| n.remove(key).unwrap_or(Value::Null);
        let num = |v: Value| v.as_u64();
        let text = |v: Value| match v {
            Value::String(s) => Some(s),
            _ => None,
        };
        let read = NodeRead {
            best: num(take("best")),
            finalized: num(take("finalized")),
            sync_target: num(take("sync_target")),
            peers: num(take("peers")),
            syncing: take("syncing").as_bool(),
            roles: match take("roles") {
                // The strings of the list (others skipped), as they were shown.
                Value::Array(items) => Some(items.into_iter().filter_map(text).collect()),
                _ => None,
            },
            version: text(take("version")),
            chain: text(take("chain")),
            source: text(take("source")),
        };
        let identity = NodeIdentity {
            peer_id: text(take("peer_id")),
            network_key: take("network_key").as_bool(),
        };
        Ok(NodeReport {
            read: has_read.then(|| Box::new(read)),
            identity: has_identity.then(|| Box::new(identity)),
            // Any value but `null` is an error (the health verdict's rule),
            // said as its JSON when it is not a sentence.
            rpc_error: match take("rpc_error") {
                Value::Null => None,
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            },
            rpc_code: text(take("rpc_code")),
            note: text(take("note")),
            // The entries with a string `type` and `public`; others skipped.
            keystore: match take("keystore") {
                Value::Array(items) => {
                    let mut keys: Vec<KeystoreEntry> = items
                        .into_iter()
                        .filter_map(|v| KeystoreEntry::deserialize(v).ok())
                        .collect();
                    keys.shrink_to_fit();
                    Some(keys)
                }
                _ => None,
            },
        })
    }
}

impl NodeReport {
    pub fn read(&self) -> &NodeRead {
        static NOTHING: NodeRead = NodeRead {
            best: None,
            finalized: None,
            sync_target: None,
            peers: None,
            syncing: None,
            roles: None,
            version: None,
            chain: None,
            source: None,
        };
        self.read.as_deref().unwrap_or(&NOTHING)
    }

    pub fn peer_id(&self) -> Option<&str> {
        self.identity.as_ref()?.peer_id.as_deref()
    }

    pub fn network_key(&self) -> Option<bool> {
        self.identity.as_ref()?.network_key
    }
}

/// `summary`: the active era and each running node's payouts, every
/// `summary_interval_s`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryReport {
    /// As in [`StatsReport::timestamp`].
    #[serde(default, deserialize_with = "lenient")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    pub era: Option<EraInfo>,
    #[serde(default, deserialize_with = "lenient")]
    pub payout_info: Option<PayoutInfo>,
}

/// `summary.era`: the active era of the first synced node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EraInfo {
    #[serde(deserialize_with = "lenient")]
    pub active_era: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PayoutInfo {
    /// Container → its node's payouts, validator and keys.
    pub payout_checks: Entries<PayoutCheck>,
    #[serde(deserialize_with = "lenient")]
    pub timestamp: Option<i64>,
}

impl SummaryReport {
    /// The payout check of `container`, if the summary has one.
    pub fn check(&self, container: &str) -> Option<&PayoutCheck> {
        self.payout_info.as_ref()?.payout_checks.get(container)
    }
}

/// One node's entry of `payout_info.payout_checks`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PayoutCheck {
    /// The chain's active era, read at the finalized block.
    #[serde(deserialize_with = "lenient")]
    pub current_era: Option<u64>,
    /// Eras in the last 84 with rewards not claimed (`None`: not synced, or
    /// no single stash).
    #[serde(deserialize_with = "lenient")]
    pub unclaimed_payouts: Option<u64>,
    /// Each unclaimed era, oldest first.
    #[serde(deserialize_with = "lenient")]
    pub unclaimed_eras: Option<Vec<crate::chain::UnclaimedEra>>,
    /// The older form of `unclaimed_eras[0].era` (agents before 0.4).
    #[serde(deserialize_with = "lenient")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_unclaimed_era: Option<u64>,
    /// Whole eras (a day each) left to claim the oldest.
    #[serde(deserialize_with = "lenient")]
    pub oldest_expires_in_eras: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub synced: Option<bool>,
    /// The stash (SS58) the node's session keys belong to.
    #[serde(deserialize_with = "lenient")]
    pub validator_account: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub chain_keys: Option<Box<ChainKeys>>,
    #[serde(deserialize_with = "lenient")]
    pub error: Option<String>,
}

impl PayoutCheck {
    /// The oldest era still to be claimed.
    pub fn oldest_unclaimed_era(&self) -> Option<u64> {
        self.oldest_unclaimed_era.or_else(|| {
            self.unclaimed_eras
                .as_ref()?
                .first()
                .map(|e| u64::from(e.era))
        })
    }
}

/// `payout_checks.<c>.chain_keys`: the chain's keys against the node's
/// keystore, an open object on the wire (see `find_validator` in
/// docs/protocol.md). The agent sends `report` as it built it; the server
/// keeps only the fields below (its `report` is empty).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChainKeys {
    pub report: Map<String, Value>,
    /// Keys the chain will use that the keystore lacks (a sentence).
    pub warning: Option<String>,
    pub rotated_not_set: Option<bool>,
    pub rotated_effective_session: Option<u64>,
    pub rotated_effective_in_s: Option<u64>,
    pub rotation_pending: Option<bool>,
    pub new_keys_session: Option<u64>,
    pub new_keys_in_s: Option<u64>,
    pub next_in_keystore: Option<bool>,
    /// The node's slots this epoch (`epoch_authorship.total`).
    pub epoch_slots: Option<u64>,
}

impl ChainKeys {
    /// What the agent sends: `report`, as built.
    pub fn sent(report: Map<String, Value>) -> Self {
        ChainKeys {
            report,
            ..ChainKeys::default()
        }
    }
}

impl Serialize for ChainKeys {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.report.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ChainKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Value::Object(k) = Value::deserialize(d)? else {
            return Err(serde::de::Error::custom("chain_keys is not an object"));
        };
        let num = |key: &str| k.get(key).and_then(Value::as_u64);
        let flag = |key: &str| k.get(key).and_then(Value::as_bool);
        Ok(ChainKeys {
            report: Map::new(),
            warning: k.get("warning").and_then(Value::as_str).map(str::to_owned),
            rotated_not_set: flag("rotated_not_set"),
            rotated_effective_session: num("rotated_effective_session"),
            rotated_effective_in_s: num("rotated_effective_in_s"),
            rotation_pending: flag("rotation_pending"),
            new_keys_session: num("new_keys_session"),
            new_keys_in_s: num("new_keys_in_s"),
            next_in_keystore: flag("next_in_keystore"),
            epoch_slots: k
                .get("epoch_authorship")
                .and_then(|a| a.get("total"))
                .and_then(Value::as_u64),
        })
    }
}

#[cfg(test)]
#[path = "reports_tests.rs"]
mod tests;
