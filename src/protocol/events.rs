//! The payloads of protocol 1's durable events (`key_update`,
//! `backup_complete`, `validator_*`), typed: the agent builds them, the
//! server reads them, and [`Payload`] is the one place their field names are
//! written.
//!
//! On the wire an event stays a [`Event`] (kind, id, data object): the server
//! stores and the agent's ledger keeps that object as it came, so a payload
//! that does not match its schema is still acked and kept, only not read
//! ([`Event::payload`] says why). Unknown extra keys are ignored.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Event, EventKind};
use crate::chain::PublicKey;

/// `key_update`: a node's session keys were rotated (or reported).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyUpdate {
    pub event_id: String,
    pub container: String,
    /// The whole session key blob, as `author_rotateKeys` answered.
    pub session_key: String,
    /// Per key type (`gran`, `babe`, `imon`), when the agent split them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<BTreeMap<String, PublicKey>>,
    /// What caused it: `rotate_keys`.
    pub action: String,
    pub timestamp: i64,
}

/// `backup_complete`: an archive of a node's keys was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupComplete {
    pub event_id: String,
    pub container: String,
    pub backup_file: String,
    pub bytes: u64,
    pub sha256: String,
    /// The archive's public keys; absent past the agent's bound (the server
    /// then refuses a restore of it unless forced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<PublicKey>>,
    pub timestamp: i64,
}

/// `validator_activated` / `validator_changed` / `validator_deactivated`:
/// which validator a node's keys belong to changed at an era.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidatorChange {
    pub event_id: String,
    pub node: String,
    pub era: u32,
    /// The stash now validating with the node's keys (SS58).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator_account: Option<String>,
    /// The stash before the change (SS58).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_validator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_authority: Option<bool>,
    pub timestamp: i64,
}

/// A durable event's payload, one variant per [`EventKind`].
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    KeyUpdate(KeyUpdate),
    BackupComplete(BackupComplete),
    ValidatorActivated(ValidatorChange),
    ValidatorChanged(ValidatorChange),
    ValidatorDeactivated(ValidatorChange),
}

impl Payload {
    pub fn kind(&self) -> EventKind {
        match self {
            Payload::KeyUpdate(_) => EventKind::KeyUpdate,
            Payload::BackupComplete(_) => EventKind::BackupComplete,
            Payload::ValidatorActivated(_) => EventKind::ValidatorActivated,
            Payload::ValidatorChanged(_) => EventKind::ValidatorChanged,
            Payload::ValidatorDeactivated(_) => EventKind::ValidatorDeactivated,
        }
    }

    /// Read `data` as the payload of a `kind` event.
    pub fn decode(
        kind: EventKind,
        data: &Map<String, Value>,
    ) -> Result<Payload, serde_json::Error> {
        fn to<T: serde::de::DeserializeOwned>(
            data: &Map<String, Value>,
        ) -> Result<T, serde_json::Error> {
            serde_json::from_value(Value::Object(data.clone()))
        }
        Ok(match kind {
            EventKind::KeyUpdate => Payload::KeyUpdate(to(data)?),
            EventKind::BackupComplete => Payload::BackupComplete(to(data)?),
            EventKind::ValidatorActivated => Payload::ValidatorActivated(to(data)?),
            EventKind::ValidatorChanged => Payload::ValidatorChanged(to(data)?),
            EventKind::ValidatorDeactivated => Payload::ValidatorDeactivated(to(data)?),
        })
    }

    fn event_id(&self) -> &str {
        match self {
            Payload::KeyUpdate(p) => &p.event_id,
            Payload::BackupComplete(p) => &p.event_id,
            Payload::ValidatorActivated(p)
            | Payload::ValidatorChanged(p)
            | Payload::ValidatorDeactivated(p) => &p.event_id,
        }
    }

    fn data(&self) -> Value {
        let data = match self {
            Payload::KeyUpdate(p) => serde_json::to_value(p),
            Payload::BackupComplete(p) => serde_json::to_value(p),
            Payload::ValidatorActivated(p)
            | Payload::ValidatorChanged(p)
            | Payload::ValidatorDeactivated(p) => serde_json::to_value(p),
        };
        data.expect("event payloads serialize")
    }
}

impl From<Payload> for Event {
    fn from(payload: Payload) -> Event {
        let Value::Object(data) = payload.data() else {
            unreachable!("an event payload is a struct, so an object")
        };
        Event {
            kind: payload.kind(),
            event_id: payload.event_id().to_string(),
            data,
        }
    }
}

impl Event {
    /// The typed payload, or why `data` does not match this kind's schema.
    pub fn payload(&self) -> Result<Payload, serde_json::Error> {
        Payload::decode(self.kind, &self.data)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::Message;

    /// Each event as agents send it, byte for byte: data keys sorted (a
    /// `serde_json::Map` is ordered), the envelope's `data` before `type`.
    pub const KEY_UPDATE: &str = r#"{"data":{"action":"rotate_keys","container":"3node0","event_id":"key-3node0-1733312345678-7","keys":{"babe":"0x2222222222222222222222222222222222222222222222222222222222222222","gran":"0x1111111111111111111111111111111111111111111111111111111111111111","imon":"0x3333333333333333333333333333333333333333333333333333333333333333"},"session_key":"0x111111111111111111111111111111111111111111111111111111111111111122222222222222222222222222222222222222222222222222222222222222223333333333333333333333333333333333333333333333333333333333333333","timestamp":1733312345678},"type":"key_update"}"#;
    pub const BACKUP_COMPLETE: &str = r#"{"data":{"backup_file":"3node0-keys-20250108-1430.tar.gz","bytes":10240,"container":"3node0","event_id":"backup-3node0-1733312345678-3","keys":["0x2222222222222222222222222222222222222222222222222222222222222222","0x11111111111111111111111111111111111111111111111111111111111111aa"],"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","timestamp":1733312345678},"type":"backup_complete"}"#;
    pub const VALIDATOR_CHANGED: &str = r#"{"data":{"era":11,"event_id":"validator_changed-3node0-11","is_authority":true,"node":"3node0","previous_validator":"5A","timestamp":1733312345678,"validator_account":"5E"},"type":"validator_changed"}"#;
    pub const VALIDATOR_ACTIVATED: &str = r#"{"data":{"era":11,"event_id":"validator_activated-3node0-11","is_authority":true,"node":"3node0","timestamp":1733312345678,"validator_account":"5D"},"type":"validator_activated"}"#;
    pub const VALIDATOR_DEACTIVATED: &str = r#"{"data":{"era":11,"event_id":"validator_deactivated-3node0-11","node":"3node0","previous_validator":"5B","timestamp":1733312345678},"type":"validator_deactivated"}"#;

    #[test]
    fn events_go_through_the_codec_byte_for_byte() {
        for (text, kind) in [
            (KEY_UPDATE, EventKind::KeyUpdate),
            (BACKUP_COMPLETE, EventKind::BackupComplete),
            (VALIDATOR_CHANGED, EventKind::ValidatorChanged),
            (VALIDATOR_ACTIVATED, EventKind::ValidatorActivated),
            (VALIDATOR_DEACTIVATED, EventKind::ValidatorDeactivated),
        ] {
            let message = Message::parse(text).unwrap();
            let Message::Event(event) = &message else {
                panic!("{text}")
            };
            assert_eq!(event.kind, kind);
            assert_eq!(message.to_json(), text);
        }
    }

    fn key(byte: u8) -> PublicKey {
        PublicKey::from([byte; 32])
    }

    /// The payloads the literals above carry.
    fn payloads() -> Vec<(&'static str, Payload)> {
        let at = 1733312345678;
        let change = |kind: &str, account: Option<&str>, previous: Option<&str>, authority| {
            ValidatorChange {
                event_id: format!("{kind}-3node0-11"),
                node: "3node0".into(),
                era: 11,
                validator_account: account.map(str::to_string),
                previous_validator: previous.map(str::to_string),
                is_authority: authority,
                timestamp: at,
            }
        };
        vec![
            (
                KEY_UPDATE,
                Payload::KeyUpdate(KeyUpdate {
                    event_id: "key-3node0-1733312345678-7".into(),
                    container: "3node0".into(),
                    session_key: format!(
                        "0x{}{}{}",
                        "11".repeat(32),
                        "22".repeat(32),
                        "33".repeat(32)
                    ),
                    keys: Some(
                        [
                            ("gran", key(0x11)),
                            ("babe", key(0x22)),
                            ("imon", key(0x33)),
                        ]
                        .map(|(t, k)| (t.to_string(), k))
                        .into(),
                    ),
                    action: "rotate_keys".into(),
                    timestamp: at,
                }),
            ),
            (
                BACKUP_COMPLETE,
                Payload::BackupComplete(BackupComplete {
                    event_id: "backup-3node0-1733312345678-3".into(),
                    container: "3node0".into(),
                    backup_file: "3node0-keys-20250108-1430.tar.gz".into(),
                    bytes: 10240,
                    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                        .into(),
                    keys: Some(vec![
                        key(0x22),
                        format!("0x{}aa", "11".repeat(31)).parse().unwrap(),
                    ]),
                    timestamp: at,
                }),
            ),
            (
                VALIDATOR_CHANGED,
                Payload::ValidatorChanged(change(
                    "validator_changed",
                    Some("5E"),
                    Some("5A"),
                    Some(true),
                )),
            ),
            (
                VALIDATOR_ACTIVATED,
                Payload::ValidatorActivated(change(
                    "validator_activated",
                    Some("5D"),
                    None,
                    Some(true),
                )),
            ),
            (
                VALIDATOR_DEACTIVATED,
                Payload::ValidatorDeactivated(change(
                    "validator_deactivated",
                    None,
                    Some("5B"),
                    None,
                )),
            ),
        ]
    }

    #[test]
    fn payloads_encode_to_the_pinned_bytes() {
        for (text, payload) in payloads() {
            assert_eq!(Message::Event(payload.into()).to_json(), text);
        }
    }

    #[test]
    fn the_pinned_bytes_decode_to_payloads() {
        for (text, payload) in payloads() {
            let Message::Event(event) = Message::parse(text).unwrap() else {
                panic!("{text}")
            };
            assert_eq!(event.event_id, payload.event_id());
            assert_eq!(event.payload().unwrap(), payload);
        }
    }

    #[test]
    fn extra_keys_are_ignored_and_a_misfit_is_still_an_event() {
        let extra = KEY_UPDATE.replace(r#""action":"#, r#""agent_note":[1,2],"action":"#);
        let Message::Event(event) = Message::parse(&extra).unwrap() else {
            panic!()
        };
        assert_eq!(event.payload().unwrap(), payloads()[0].1);
        assert_eq!(
            event.data["agent_note"],
            serde_json::json!([1, 2]),
            "kept as it came"
        );

        // Only the id is the codec's business: the rest is read later, and a
        // payload that does not fit is kept (and acked) but not read.
        for misfit in [
            r#"{"type":"key_update","data":{"event_id":"k1","container":"3node0"}}"#,
            r#"{"type":"backup_complete","data":{"event_id":"b1","container":"3node0","backup_file":"f","bytes":"ten","sha256":"00","timestamp":1}}"#,
            r#"{"type":"key_update","data":{"event_id":"k2","container":"3node0","session_key":"0x00","keys":{"gran":"0xzz"},"action":"rotate_keys","timestamp":1}}"#,
            r#"{"type":"validator_changed","data":{"event_id":"v1","node":"3node0","era":-1,"timestamp":1}}"#,
        ] {
            let Message::Event(event) = Message::parse(misfit).unwrap() else {
                panic!("{misfit}")
            };
            assert!(event.payload().is_err(), "{misfit}");
        }
    }
}
