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
//! Anything acknowledged to an agent is on disk first (`sync_data`).
use crate::fsutil::{self, JsonLog};
use crate::protocol::{CommandResponse, CommandStatus, ErrorCode, Event};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
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
}

/// One session-key report from an agent, as `keys` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    pub agent: String,
    pub container: String,
    pub session_key: String,
    /// Per key type (`gran`, `babe`, `imon`), when the agent split them.
    pub keys: Value,
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
    fn backup_record(&self) -> Option<BackupRecord> {
        if self.kind != "backup_complete" {
            return None;
        }
        Some(BackupRecord {
            agent: self.agent.clone(),
            container: self.data.get("container")?.as_str()?.to_string(),
            file: self
                .data
                .get("backup_file")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            bytes: self.data.get("bytes").and_then(Value::as_u64).unwrap_or(0),
            at_ms: self
                .data
                .get("timestamp")
                .and_then(Value::as_i64)
                .unwrap_or(self.received_ms),
        })
    }

    fn key_record(&self) -> Option<KeyRecord> {
        if self.kind != "key_update" {
            return None;
        }
        let text = |k: &str| {
            self.data
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Some(KeyRecord {
            agent: self.agent.clone(),
            container: text("container"),
            session_key: text("session_key"),
            keys: self.data.get("keys").cloned().unwrap_or(Value::Null),
            action: text("action"),
            received_ms: self.received_ms,
        })
    }
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
    history: JsonLog,
    audit: JsonLog,
    events: JsonLog,
    commands: HashMap<String, CommandRecord>,
    order: Vec<String>,
    seen_events: HashSet<(String, String)>,
    /// Key updates in the order received.
    key_updates: Vec<KeyRecord>,
    backups: Vec<BackupRecord>,
    key_store_path: std::path::PathBuf,
    /// Alerts raised by this process: makes their event ids unique.
    alerts_raised: u64,
    pub skipped_lines: usize,
}

impl Store {
    pub fn open(data_dir: &Path) -> io::Result<Store> {
        fsutil::ensure_private_dir(data_dir)?;
        let history_path = data_dir.join("commands.jsonl");
        let events_path = data_dir.join("events.jsonl");
        let (lines, skipped_history) = fsutil::read_json_lines::<HistoryLine>(&history_path)?;
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
        let (events, skipped_events) = fsutil::read_json_lines::<EventLine>(&events_path)?;
        let key_updates = events.iter().filter_map(EventLine::key_record).collect();
        let backups = events.iter().filter_map(EventLine::backup_record).collect();
        let seen_events = events.into_iter().map(|e| (e.agent, e.event_id)).collect();
        Ok(Store {
            history: JsonLog::open(&history_path)?,
            audit: JsonLog::open(&data_dir.join("audit.jsonl"))?,
            events: JsonLog::open(&events_path)?,
            commands,
            order,
            seen_events,
            key_updates,
            backups,
            key_store_path: data_dir.join("keys.json"),
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

    /// Record commands before they are sent, durably (one fsync for the
    /// batch): a crash right after the send must still recognise the
    /// agents' responses.
    pub fn record_issued(&mut self, records: Vec<CommandRecord>) -> io::Result<()> {
        for record in &records {
            self.history
                .append(&HistoryLine::Issued(record.clone()), false)?;
            self.audit.append(
                &serde_json::json!({
                    "ts": record.issued_ms, "action": "command", "by": record.by, "agent": record.agent,
                    "id": record.id, "command": record.command, "target": record.target, "params": record.params,
                }),
                false,
            )?;
        }
        self.history.sync()?;
        self.audit.sync()?;
        for record in records {
            self.order.push(record.id.clone());
            self.commands.insert(record.id.clone(), record);
        }
        Ok(())
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
    ) -> io::Result<ResponseVerdict> {
        let Some(record) = self.commands.get(&response.id) else {
            return Ok(ResponseVerdict::NeverIssued);
        };
        if record.agent != agent {
            return Ok(ResponseVerdict::OtherAgent);
        }
        if record.outcome.is_some() {
            return Ok(ResponseVerdict::Duplicate);
        }
        let outcome = Outcome {
            status: response.status,
            result: response.result.clone(),
            error: response.error.clone(),
            code: response.code,
            recorded_ms: crate::protocol::now_ms(),
        };
        self.history.append(
            &HistoryLine::Outcome {
                id: response.id.clone(),
                outcome: outcome.clone(),
            },
            true,
        )?;
        self.audit(&serde_json::json!({
            "ts": outcome.recorded_ms, "action": "outcome", "agent": agent, "id": response.id,
            "command": record.command, "target": record.target, "status": outcome.status,
            "code": outcome.code, "error": outcome.error,
        }))?;
        if let Some(record) = self.commands.get_mut(&response.id) {
            record.outcome = Some(outcome);
        }
        Ok(ResponseVerdict::Recorded)
    }

    /// Store an agent's durable event once. Returns false for a resend.
    pub fn record_event(&mut self, agent: &str, event: &Event) -> io::Result<bool> {
        let key = (agent.to_string(), event.event_id.clone());
        if self.seen_events.contains(&key) {
            return Ok(false);
        }
        let line = EventLine {
            agent: agent.to_string(),
            kind: event.kind.as_str().to_string(),
            event_id: event.event_id.clone(),
            received_ms: crate::protocol::now_ms(),
            data: event.data.clone(),
        };
        self.events.append(&line, true)?;
        // Recorded (events.jsonl is the record): from here a resend is a
        // duplicate, whatever happens to the derived keys.json.
        self.seen_events.insert(key);
        self.backups.extend(line.backup_record());
        if let Some(record) = line.key_record() {
            self.key_updates.push(record);
            if let Err(e) = self.write_key_store() {
                crate::log::error(&format!(
                    "cannot rewrite {}: {e}; the key update is in events.jsonl and keys.json is rewritten at the next one",
                    self.key_store_path.display()
                ));
            }
        }
        Ok(true)
    }

    /// `keys.json`: every agent's containers' session keys, newest first,
    /// replaced atomically (temp file, fsync, rename; mode 0600), so a crash
    /// leaves the old or the new file, never none.
    fn write_key_store(&self) -> io::Result<()> {
        let mut tree: std::collections::BTreeMap<
            &str,
            std::collections::BTreeMap<&str, Vec<Value>>,
        > = Default::default();
        for k in self.key_updates.iter().rev() {
            tree.entry(&k.agent).or_default().entry(&k.container).or_default().push(serde_json::json!({
                "session_key": k.session_key, "keys": k.keys, "action": k.action, "received_ms": k.received_ms,
            }));
        }
        fsutil::write_json_atomic(&self.key_store_path, &tree)
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
    pub fn record_alert(&mut self, alert: &Value) -> io::Result<()> {
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
        self.events.append(&line, true)?;
        self.alerts_raised += 1;
        let mut entry = data;
        entry.insert("action".into(), Value::from("alert"));
        self.audit.append(&Value::Object(entry), true)
    }

    pub fn audit(&mut self, entry: &Value) -> io::Result<()> {
        self.audit.append(entry, true)
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
            outcome: None,
            progress: None,
        }
    }

    #[test]
    fn first_terminal_response_wins_and_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("warden-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = Store::open(&dir).unwrap();
        store.record_issued(vec![record("c1", "host1")]).unwrap();
        let done = CommandResponse::completed("c1", Value::from("ok"));
        assert_eq!(
            store.record_response("host2", &done).unwrap(),
            ResponseVerdict::OtherAgent
        );
        assert_eq!(
            store.record_response("host1", &done).unwrap(),
            ResponseVerdict::Recorded
        );
        let late = CommandResponse::failed("c1", ErrorCode::Internal, "late");
        assert_eq!(
            store.record_response("host1", &late).unwrap(),
            ResponseVerdict::Duplicate
        );
        assert_eq!(
            store
                .record_response("host1", &CommandResponse::completed("zz", Value::Null))
                .unwrap(),
            ResponseVerdict::NeverIssued
        );
        drop(store);

        let mut store = Store::open(&dir).unwrap();
        assert_eq!(
            store.get("c1").unwrap().outcome.as_ref().unwrap().result,
            Some(Value::from("ok"))
        );
        assert_eq!(
            store.record_response("host1", &late).unwrap(),
            ResponseVerdict::Duplicate
        );
        let event = crate::protocol::Event {
            kind: crate::protocol::EventKind::BackupComplete,
            event_id: "e1".into(),
            data: Map::new(),
        };
        assert!(store.record_event("host1", &event).unwrap());
        assert!(!store.record_event("host1", &event).unwrap());
        assert!(
            store.record_event("host2", &event).unwrap(),
            "event ids are per agent"
        );
        drop(store);
        let mut store = Store::open(&dir).unwrap();
        assert!(
            !store.record_event("host1", &event).unwrap(),
            "dedup survives a restart"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
