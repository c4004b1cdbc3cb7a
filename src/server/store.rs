//! What the server keeps on disk under its data dir, and its in-memory index.
//!
//! - `commands.jsonl`: every command issued (`issued`) and its terminal
//!   outcome (`outcome`), appended; the index is rebuilt from it on start, so
//!   a response that arrives after a server restart is still recognised and
//!   recorded once.
//! - `audit.jsonl`: who did what to whom, when, and the outcome.
//! - `events.jsonl`: durable agent events (key updates, backups, validator
//!   changes), deduplicated on (agent id, event id).
//!
//! - `keys.jsonl`: every session-key report, one line each (appended, never
//!   rewritten).
//!
//! The store owns the in-memory index; it writes nothing itself. Each
//! `record_*` method updates the index and adds its lines to the hub's
//! [`Batch`], which the journal writes and syncs before anything that
//! depends on it (an ack, a send) happens.
use super::journal::{Batch, Log};
use crate::chain::PublicKey;
use crate::fsutil;
use crate::protocol::events::{BackupComplete, KeyUpdate, Payload};
use crate::protocol::{CommandResponse, CommandStatus, ErrorCode, Event, EventKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: CommandStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// When the server recorded it.
    pub recorded_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub id: String,
    pub agent: String,
    pub command: String,
    pub target: String,
    pub params: Map<String, Value>,
    pub issued_ms: i64,
    /// Who issued it: `stdin` or the control socket.
    pub by: String,
    /// Operator signatures it was sent with, kept with the record so a
    /// resend after a reconnect or a server restart carries them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<crate::operator_keys::CommandSignature>,
    #[serde(skip)]
    pub outcome: Option<Outcome>,
    /// The last non-terminal status the agent reported.
    #[serde(skip)]
    pub progress: Option<CommandStatus>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum HistoryLine {
    Issued(CommandRecord),
    Outcome {
        id: String,
        #[serde(flatten)]
        outcome: Outcome,
    },
}

/// One finished key backup an agent reported.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupRecord {
    pub agent: String,
    pub container: String,
    pub file: String,
    pub bytes: u64,
    /// When the agent finished it (the event's timestamp).
    pub at_ms: i64,
    /// The archive's public keys, when the event listed them.
    pub keys: Option<Vec<String>>,
}

/// One session-key report from an agent, as `keys` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    pub agent: String,
    pub container: String,
    pub session_key: String,
    /// Per key type (`gran`, `babe`, `imon`), when the agent split them.
    pub keys: Option<BTreeMap<String, PublicKey>>,
    pub action: String,
    pub received_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct EventLine {
    agent: String,
    #[serde(rename = "type")]
    kind: String,
    event_id: String,
    received_ms: i64,
    data: Map<String, Value>,
}

impl EventLine {
    /// The line's typed payload: `None` for the server's own alerts, and
    /// for an event whose data did not match its kind (kept, not read).
    fn payload(&self) -> Option<Payload> {
        Payload::decode(EventKind::parse(&self.kind)?, &self.data).ok()
    }
}

fn backup_record(agent: &str, backup: &BackupComplete) -> BackupRecord {
    BackupRecord {
        agent: agent.to_string(),
        container: backup.container.clone(),
        file: backup.backup_file.clone(),
        bytes: backup.bytes,
        at_ms: backup.timestamp,
        keys: backup
            .keys
            .as_ref()
            .map(|keys| keys.iter().map(PublicKey::to_string).collect()),
    }
}

fn key_record(agent: &str, update: &KeyUpdate, received_ms: i64) -> KeyRecord {
    KeyRecord {
        agent: agent.to_string(),
        container: update.container.clone(),
        session_key: update.session_key.clone(),
        keys: update.keys.clone(),
        action: update.action.clone(),
        received_ms,
    }
}

/// Every record of a journal file and its rotated generations, oldest first.
fn read_generations<T: serde::de::DeserializeOwned>(
    path: &Path,
    keep: u32,
) -> io::Result<(Vec<T>, usize)> {
    let mut records = Vec::new();
    let mut skipped = 0;
    for file in super::journal::generations(path, keep) {
        let (mut more, torn) = fsutil::read_json_lines::<T>(&file)?;
        records.append(&mut more);
        skipped += torn;
    }
    Ok((records, skipped))
}

/// What happened to a terminal response the agent sent.
#[derive(Debug, PartialEq)]
pub enum ResponseVerdict {
    /// First terminal response for a command this server issued to this agent.
    Recorded,
    /// Already recorded: ack again, record nothing.
    Duplicate,
    /// An id this server never issued: ack, record nowhere.
    NeverIssued,
    /// Issued to another agent: refuse with `bad_request`.
    OtherAgent,
}

pub struct Store {
    commands: HashMap<String, CommandRecord>,
    order: Vec<String>,
    seen_events: HashSet<(String, String)>,
    /// Key updates in the order received.
    key_updates: Vec<KeyRecord>,
    backups: Vec<BackupRecord>,
    /// Alerts raised by this process: makes their event ids unique.
    alerts_raised: u64,
    pub skipped_lines: usize,
}

impl Store {
    pub fn open(data_dir: &Path) -> io::Result<Store> {
        Store::open_keeping(data_dir, super::journal::Rotation::default().keep)
    }

    /// Open, reading back `keep` rotated generations of each file.
    pub fn open_keeping(data_dir: &Path, keep: u32) -> io::Result<Store> {
        fsutil::ensure_private_dir(data_dir)?;
        let history_path = data_dir.join("commands.jsonl");
        let events_path = data_dir.join("events.jsonl");
        let (lines, skipped_history) = read_generations::<HistoryLine>(&history_path, keep)?;
        let mut commands = HashMap::new();
        let mut order = Vec::new();
        for line in lines {
            match line {
                HistoryLine::Issued(record) => {
                    order.push(record.id.clone());
                    commands.insert(record.id.clone(), record);
                }
                HistoryLine::Outcome { id, outcome } => {
                    if let Some(record) = commands.get_mut(&id) {
                        record.outcome.get_or_insert(outcome);
                    }
                }
            }
        }
        let (events, skipped_events) = read_generations::<EventLine>(&events_path, keep)?;
        let mut key_updates = Vec::new();
        let mut backups = Vec::new();
        for line in &events {
            match line.payload() {
                Some(Payload::KeyUpdate(update)) => {
                    key_updates.push(key_record(&line.agent, &update, line.received_ms));
                }
                Some(Payload::BackupComplete(backup)) => {
                    backups.push(backup_record(&line.agent, &backup));
                }
                _ => {}
            }
        }
        let seen_events = events.into_iter().map(|e| (e.agent, e.event_id)).collect();
        Ok(Store {
            commands,
            order,
            seen_events,
            key_updates,
            backups,
            alerts_raised: 0,
            skipped_lines: skipped_history + skipped_events,
        })
    }

    pub fn contains(&self, id: &str) -> bool {
        self.commands.contains_key(id)
    }

    pub fn get(&self, id: &str) -> Option<&CommandRecord> {
        self.commands.get(id)
    }

    /// Record commands; the caller sends them only once `batch` is on disk,
    /// so a crash right after the send still recognises the responses.
    pub fn record_issued(&mut self, records: Vec<CommandRecord>, batch: &mut Batch) {
        for record in records {
            batch.write(Log::Commands, &HistoryLine::Issued(record.clone()));
            batch.write(
                Log::Audit,
                &serde_json::json!({
                    "ts": record.issued_ms, "action": "command", "by": record.by, "agent": record.agent,
                    "id": record.id, "command": record.command, "target": record.target, "params": record.params,
                }),
            );
            self.order.push(record.id.clone());
            self.commands.insert(record.id.clone(), record);
        }
    }

    pub fn record_progress(&mut self, agent: &str, response: &CommandResponse) {
        if let Some(record) = self.commands.get_mut(&response.id)
            && record.agent == agent
            && record.outcome.is_none()
        {
            record.progress = Some(response.status);
        }
    }

    pub fn record_response(
        &mut self,
        agent: &str,
        response: &CommandResponse,
        batch: &mut Batch,
    ) -> ResponseVerdict {
        let Some(record) = self.commands.get_mut(&response.id) else {
            return ResponseVerdict::NeverIssued;
        };
        if record.agent != agent {
            return ResponseVerdict::OtherAgent;
        }
        if record.outcome.is_some() {
            return ResponseVerdict::Duplicate;
        }
        let outcome = Outcome {
            status: response.status,
            result: response.result.clone(),
            error: response.error.clone(),
            code: response.code,
            recorded_ms: crate::protocol::now_ms(),
        };
        batch.write(
            Log::Commands,
            &HistoryLine::Outcome {
                id: response.id.clone(),
                outcome: outcome.clone(),
            },
        );
        batch.write(
            Log::Audit,
            &serde_json::json!({
                "ts": outcome.recorded_ms, "action": "outcome", "agent": agent, "id": response.id,
                "command": record.command, "target": record.target, "status": outcome.status,
                "code": outcome.code, "error": outcome.error,
            }),
        );
        record.outcome = Some(outcome);
        ResponseVerdict::Recorded
    }

    /// Store an agent's durable event once, as it came, and index what its
    /// `payload` says (`None`: data that does not match its kind, kept but
    /// not read). Returns false for a resend.
    pub fn record_event(
        &mut self,
        agent: &str,
        event: &Event,
        payload: Option<&Payload>,
        batch: &mut Batch,
    ) -> bool {
        let key = (agent.to_string(), event.event_id.clone());
        if self.seen_events.contains(&key) {
            return false;
        }
        let line = EventLine {
            agent: agent.to_string(),
            kind: event.kind.as_str().to_string(),
            event_id: event.event_id.clone(),
            received_ms: crate::protocol::now_ms(),
            data: event.data.clone(),
        };
        batch.write(Log::Events, &line);
        self.seen_events.insert(key);
        match payload {
            Some(Payload::BackupComplete(backup)) => {
                self.backups.push(backup_record(agent, backup))
            }
            Some(Payload::KeyUpdate(update)) => {
                let record = key_record(agent, update, line.received_ms);
                batch.write(
                Log::Keys,
                &serde_json::json!({
                    "agent": record.agent, "container": record.container, "session_key": record.session_key,
                    "keys": record.keys, "action": record.action, "received_ms": record.received_ms,
                }),
            );
                self.key_updates.push(record);
            }
            _ => {}
        }
        true
    }

    /// Backups, newest first, optionally for one agent.
    pub fn backups(&self, agent: Option<&str>) -> Vec<&BackupRecord> {
        let mut out: Vec<&BackupRecord> = self
            .backups
            .iter()
            .filter(|b| agent.is_none_or(|a| b.agent == a))
            .collect();
        out.sort_by_key(|b| std::cmp::Reverse(b.at_ms));
        out
    }

    /// Key updates, newest first, optionally for one agent.
    pub fn key_updates(&self, agent: Option<&str>) -> Vec<&KeyRecord> {
        self.key_updates
            .iter()
            .rev()
            .filter(|k| agent.is_none_or(|a| k.agent == a))
            .collect()
    }

    /// A server-side alert (a duplicate key): kept in the event log under
    /// the agent id `server` for later alerting, and in the audit log.
    pub fn record_alert(&mut self, alert: &Value, batch: &mut Batch) {
        let now = crate::protocol::now_ms();
        let mut data = alert.as_object().cloned().unwrap_or_default();
        data.insert("timestamp".into(), Value::from(now));
        let line = EventLine {
            agent: "server".into(),
            kind: data
                .get("alert")
                .and_then(Value::as_str)
                .unwrap_or("alert")
                .to_string(),
            event_id: format!("alert-{now}-{}", self.alerts_raised),
            received_ms: now,
            data: data.clone(),
        };
        batch.write(Log::Events, &line);
        self.alerts_raised += 1;
        let mut entry = data;
        entry.insert("action".into(), Value::from("alert"));
        batch.write(Log::Audit, &Value::Object(entry));
    }

    /// Commands issued to `agent` since `since_ms` that have no outcome yet,
    /// oldest first: resent after the agent (re)connects, since the agent
    /// runs an id at most once and answers a repeat with what it knows.
    pub fn unfinished(&self, agent: &str, since_ms: i64) -> Vec<&CommandRecord> {
        self.order
            .iter()
            .filter_map(|id| self.commands.get(id))
            .filter(|r| r.agent == agent && r.outcome.is_none() && r.issued_ms >= since_ms)
            .collect()
    }

    /// The newest `limit` commands, newest last, optionally for one agent.
    pub fn recent(&self, agent: Option<&str>, limit: usize) -> Vec<&CommandRecord> {
        let mut out: Vec<&CommandRecord> = self
            .order
            .iter()
            .rev()
            .filter_map(|id| self.commands.get(id))
            .filter(|r| agent.is_none_or(|a| r.agent == a))
            .take(limit)
            .collect();
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::now_ms;

    fn record(id: &str, agent: &str) -> CommandRecord {
        CommandRecord {
            id: id.into(),
            agent: agent.into(),
            command: "stop".into(),
            target: "3node0".into(),
            params: Map::new(),
            issued_ms: now_ms(),
            by: "stdin".into(),
            signatures: Vec::new(),
            outcome: None,
            progress: None,
        }
    }

    /// Writes a batch the way the journal does, synchronously.
    fn commit(dir: &std::path::Path, batch: Batch) {
        let mut journal = crate::server::journal::Journal::start(
            crate::server::journal::Files::open(dir).unwrap(),
        )
        .unwrap();
        journal.submit(batch);
        journal.finish();
    }

    #[test]
    fn first_terminal_response_wins_and_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("warden-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::open(&dir).unwrap();
        let mut batch = Batch::default();
        store.record_issued(vec![record("c1", "host1")], &mut batch);
        let done = CommandResponse::completed("c1", Value::from("ok"));
        assert_eq!(
            store.record_response("host2", &done, &mut batch),
            ResponseVerdict::OtherAgent
        );
        assert_eq!(
            store.record_response("host1", &done, &mut batch),
            ResponseVerdict::Recorded
        );
        let late = CommandResponse::failed("c1", ErrorCode::Internal, "late");
        assert_eq!(
            store.record_response("host1", &late, &mut batch),
            ResponseVerdict::Duplicate
        );
        assert_eq!(
            store.record_response(
                "host1",
                &CommandResponse::completed("zz", Value::Null),
                &mut batch
            ),
            ResponseVerdict::NeverIssued
        );
        commit(&dir, batch);
        drop(store);

        let mut store = Store::open(&dir).unwrap();
        let mut batch = Batch::default();
        assert_eq!(
            store.get("c1").unwrap().outcome.as_ref().unwrap().result,
            Some(Value::from("ok"))
        );
        assert_eq!(
            store.record_response("host1", &late, &mut batch),
            ResponseVerdict::Duplicate
        );
        let event = crate::protocol::Event {
            kind: crate::protocol::EventKind::BackupComplete,
            event_id: "e1".into(),
            data: Map::new(),
        };
        assert!(store.record_event("host1", &event, None, &mut batch));
        assert!(!store.record_event("host1", &event, None, &mut batch));
        assert!(
            store.record_event("host2", &event, None, &mut batch),
            "event ids are per agent"
        );
        commit(&dir, batch);
        drop(store);
        let mut store = Store::open(&dir).unwrap();
        assert!(
            !store.record_event("host1", &event, None, &mut Batch::default()),
            "dedup survives a restart"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn backups_and_key_updates_are_indexed_from_their_payloads_and_reread() {
        let dir = std::env::temp_dir().join(format!("warden-store-ev-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let parse = |text: &str| match crate::protocol::Message::parse(text).unwrap() {
            crate::protocol::Message::Event(event) => event,
            other => panic!("{other:?}"),
        };
        let backup = parse(
            r#"{"type":"backup_complete","data":{"event_id":"b1","container":"3node0","backup_file":"f.tar.gz","bytes":7,"sha256":"00","keys":["0xAB"],"timestamp":5,"extra":true}}"#,
        );
        let update = parse(
            r#"{"type":"key_update","data":{"event_id":"k1","container":"3node0","session_key":"0x00","action":"rotate_keys","timestamp":6}}"#,
        );
        let misfit = parse(
            r#"{"type":"backup_complete","data":{"event_id":"b2","container":"3node1","bytes":"ten"}}"#,
        );
        let mut store = Store::open(&dir).unwrap();
        let mut batch = Batch::default();
        for event in [&backup, &update, &misfit] {
            let payload = event.payload().ok();
            assert!(store.record_event("host1", event, payload.as_ref(), &mut batch));
        }
        commit(&dir, batch);
        for store in [store, Store::open(&dir).unwrap()] {
            let backups = store.backups(None);
            assert_eq!(backups.len(), 1, "the misfit is kept, not indexed");
            assert_eq!(
                (backups[0].file.as_str(), backups[0].bytes, backups[0].at_ms),
                ("f.tar.gz", 7, 5)
            );
            assert_eq!(backups[0].keys, Some(vec!["0xab".to_string()]));
            let keys = store.key_updates(Some("host1"));
            assert_eq!(keys.len(), 1);
            assert_eq!(
                (keys[0].session_key.as_str(), keys[0].keys.as_ref()),
                ("0x00", None)
            );
        }
        let kept = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
        assert!(
            kept.contains(r#""extra":true"#) && kept.contains(r#""bytes":"ten""#),
            "{kept}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unfinished_command_keeps_its_signatures_across_a_restart() {
        let dir = std::env::temp_dir().join(format!("warden-store-sig-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::open(&dir).unwrap();
        let mut batch = Batch::default();
        let mut signed = record("c1", "host1");
        signed.signatures = vec![crate::operator_keys::CommandSignature {
            key: format!("0x{}", "ab".repeat(32)),
            sig: format!("0x{}", "cd".repeat(64)),
        }];
        store.record_issued(vec![signed.clone(), record("c2", "host1")], &mut batch);
        commit(&dir, batch);
        drop(store);

        let history = std::fs::read_to_string(dir.join("commands.jsonl")).unwrap();
        assert_eq!(
            history.matches("\"signatures\"").count(),
            1,
            "an unsigned record is written as before: {history}"
        );
        let store = Store::open(&dir).unwrap();
        let unfinished = store.unfinished("host1", 0);
        assert_eq!(unfinished.len(), 2);
        assert_eq!(unfinished[0].signatures, signed.signatures);
        assert!(unfinished[1].signatures.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
