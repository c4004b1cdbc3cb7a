//! The agent's durable ledger: which command ids it has seen, their terminal
//! responses, the durable events it has raised, and which of those the
//! server has acknowledged. One append-only JSON Lines file,
//! `<state dir>/ledger.jsonl`, replayed on start.
//!
//! Invariants:
//! - A command is recorded as started (on disk) before it runs: after a crash
//!   it is never run again; it gets a `failed` response saying its outcome is
//!   unknown, so no command is left without an outcome.
//! - A terminal response or event is on disk before it is first sent, and is
//!   resent after every `welcome` until acknowledged.
use crate::fsutil::{self, JsonLog};
use crate::protocol::{CommandResponse, ErrorCode, Event, EventKind, Message};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "rec", rename_all = "snake_case")]
enum Record {
    Started {
        id: String,
        ts: i64,
    },
    Response {
        response: CommandResponse,
    },
    Event {
        #[serde(rename = "type")]
        kind: String,
        data: Map<String, Value>,
    },
    Acked {
        key: String,
    },
}

/// What the ledger knows of a command id.
#[derive(Debug, PartialEq)]
pub enum Seen<'a> {
    New,
    Running,
    Done(&'a CommandResponse),
}

/// A message waiting for the server's ack, keyed `cmd:<id>` or `evt:<event id>`.
#[derive(Clone, Debug)]
struct Pending {
    key: String,
    message: Message,
}

pub struct Ledger {
    log: JsonLog,
    started: HashSet<String>,
    responses: HashMap<String, CommandResponse>,
    pending: Vec<Pending>,
    pub skipped_lines: usize,
}

fn event_kind(name: &str) -> Option<EventKind> {
    EventKind::ALL.into_iter().find(|k| k.as_str() == name)
}

impl Ledger {
    /// Replay the ledger. Commands that were started but never finished (the
    /// agent died while they ran) get a terminal `failed` response now.
    pub fn open(state_dir: &Path) -> io::Result<(Ledger, Vec<String>)> {
        fsutil::ensure_private_dir(state_dir)?;
        let path = state_dir.join("ledger.jsonl");
        let (records, skipped_lines) = fsutil::read_json_lines::<Record>(&path)?;
        let mut started = HashSet::new();
        let mut started_order = Vec::new();
        let mut responses = HashMap::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut acked = HashSet::new();
        for record in records {
            match record {
                Record::Started { id, .. } => {
                    if started.insert(id.clone()) {
                        started_order.push(id);
                    }
                }
                Record::Response { response } => {
                    started.insert(response.id.clone());
                    pending.push(Pending {
                        key: format!("cmd:{}", response.id),
                        message: Message::CommandResponse(response.clone()),
                    });
                    responses.entry(response.id.clone()).or_insert(response);
                }
                Record::Event { kind, data } => {
                    let (Some(kind), Some(event_id)) = (
                        event_kind(&kind),
                        data.get("event_id")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    ) else {
                        continue;
                    };
                    pending.push(Pending {
                        key: format!("evt:{event_id}"),
                        message: Message::Event(Event {
                            kind,
                            event_id,
                            data,
                        }),
                    });
                }
                Record::Acked { key } => {
                    acked.insert(key);
                }
            }
        }
        pending.retain(|p| !acked.contains(&p.key));
        let mut seen_keys = HashSet::new();
        pending.retain(|p| seen_keys.insert(p.key.clone()));
        let mut ledger = Ledger {
            log: JsonLog::open(&path)?,
            started,
            responses,
            pending,
            skipped_lines,
        };
        let interrupted: Vec<String> = started_order
            .into_iter()
            .filter(|id| !ledger.responses.contains_key(id))
            .collect();
        for id in &interrupted {
            ledger.finish(CommandResponse::failed(
                id,
                ErrorCode::Internal,
                "the agent stopped while this command was running; its outcome is unknown: \
                 check the container (status, logs) before running it again",
            ))?;
        }
        Ok((ledger, interrupted))
    }

    pub fn seen(&self, id: &str) -> Seen<'_> {
        match self.responses.get(id) {
            Some(r) => Seen::Done(r),
            None if self.started.contains(id) => Seen::Running,
            None => Seen::New,
        }
    }

    /// Durably mark `id` as started; call before running it.
    pub fn start(&mut self, id: &str) -> io::Result<()> {
        self.log.append(
            &Record::Started {
                id: id.to_string(),
                ts: crate::protocol::now_ms(),
            },
            true,
        )?;
        self.started.insert(id.to_string());
        Ok(())
    }

    /// Durably store a terminal response; it stays pending until acked.
    /// Returns false (and stores nothing) if `id` already has one.
    pub fn finish(&mut self, response: CommandResponse) -> io::Result<bool> {
        if self.responses.contains_key(&response.id) {
            return Ok(false);
        }
        self.log.append(
            &Record::Response {
                response: response.clone(),
            },
            true,
        )?;
        self.started.insert(response.id.clone());
        self.pending.push(Pending {
            key: format!("cmd:{}", response.id),
            message: Message::CommandResponse(response.clone()),
        });
        self.responses.insert(response.id.clone(), response);
        Ok(true)
    }

    /// Remember a response in memory only, when the ledger cannot be
    /// written: the id is still never run again by this process.
    pub fn remember_unsaved(&mut self, response: CommandResponse) {
        self.started.insert(response.id.clone());
        self.responses
            .entry(response.id.clone())
            .or_insert(response);
    }

    /// Durably queue an event until the server acks it.
    pub fn raise(&mut self, event: Event) -> io::Result<()> {
        let key = format!("evt:{}", event.event_id);
        if self.pending.iter().any(|p| p.key == key) {
            return Ok(());
        }
        self.log.append(
            &Record::Event {
                kind: event.kind.as_str().to_string(),
                data: event.data.clone(),
            },
            true,
        )?;
        self.pending.push(Pending {
            key,
            message: Message::Event(event),
        });
        Ok(())
    }

    fn ack(&mut self, key: String) -> io::Result<()> {
        if !self.pending.iter().any(|p| p.key == key) {
            return Ok(());
        }
        // Not synced: losing an ack record only causes a harmless resend.
        self.log
            .append(&Record::Acked { key: key.clone() }, false)?;
        self.pending.retain(|p| p.key != key);
        Ok(())
    }

    pub fn ack_command(&mut self, id: &str) -> io::Result<()> {
        self.ack(format!("cmd:{id}"))
    }

    pub fn ack_event(&mut self, event_id: &str) -> io::Result<()> {
        self.ack(format!("evt:{event_id}"))
    }

    /// Everything not yet acknowledged, oldest first.
    pub fn pending(&self) -> Vec<Message> {
        self.pending.iter().map(|p| p.message.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("warden-ledger-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn responses_survive_restart_until_acked() {
        let d = dir("ack");
        let (mut ledger, interrupted) = Ledger::open(&d).unwrap();
        assert!(interrupted.is_empty());
        ledger.start("c1").unwrap();
        assert_eq!(ledger.seen("c1"), Seen::Running);
        assert!(
            ledger
                .finish(CommandResponse::completed("c1", Value::from("ok")))
                .unwrap()
        );
        assert!(
            !ledger
                .finish(CommandResponse::completed("c1", Value::from("again")))
                .unwrap()
        );
        drop(ledger);
        let (mut ledger, _) = Ledger::open(&d).unwrap();
        assert_eq!(ledger.pending().len(), 1);
        assert!(matches!(ledger.seen("c1"), Seen::Done(r) if r.result == Some(Value::from("ok"))));
        ledger.ack_command("c1").unwrap();
        drop(ledger);
        let (ledger, _) = Ledger::open(&d).unwrap();
        assert!(ledger.pending().is_empty());
        assert!(
            matches!(ledger.seen("c1"), Seen::Done(_)),
            "seen ids outlive the ack"
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_command_interrupted_by_a_crash_gets_a_failed_outcome_once() {
        let d = dir("crash");
        let (mut ledger, _) = Ledger::open(&d).unwrap();
        ledger.start("c7").unwrap();
        drop(ledger);
        let (ledger, interrupted) = Ledger::open(&d).unwrap();
        assert_eq!(interrupted, vec!["c7".to_string()]);
        let Seen::Done(r) = ledger.seen("c7") else {
            panic!("no outcome")
        };
        assert_eq!(r.code, Some(ErrorCode::Internal));
        drop(ledger);
        let (ledger, interrupted) = Ledger::open(&d).unwrap();
        assert!(interrupted.is_empty());
        assert_eq!(ledger.pending().len(), 1);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn events_are_pending_until_acked() {
        let d = dir("events");
        let (mut ledger, _) = Ledger::open(&d).unwrap();
        let mut data = Map::new();
        data.insert("event_id".into(), Value::from("e1"));
        ledger
            .raise(Event {
                kind: EventKind::BackupComplete,
                event_id: "e1".into(),
                data,
            })
            .unwrap();
        drop(ledger);
        let (mut ledger, _) = Ledger::open(&d).unwrap();
        assert_eq!(ledger.pending().len(), 1);
        ledger.ack_event("e1").unwrap();
        assert!(ledger.pending().is_empty());
        std::fs::remove_dir_all(d).unwrap();
    }
}
