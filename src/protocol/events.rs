//! The payloads of protocol 1's durable events (`key_update`,
//! `backup_complete`, `validator_*`).

#[cfg(test)]
pub(crate) mod tests {
    use crate::protocol::{EventKind, Message};

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
}
