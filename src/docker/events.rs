//! `docker events`: one long-lived `docker` process whose output says when a
//! container was created, started, died, renamed, removed or changed health,
//! so the agent re-reads `docker ps`/`inspect` only then instead of every
//! stats interval.
//!
//! Invariants:
//! - only container events of the lifecycle actions in [`ACTIONS`] are asked
//!   for: `exec_*` events (every `docker exec`, warden's own included) are
//!   left out by the engine's filter, so the stream is quiet while nothing
//!   changes;
//! - a line is at most [`MAX_EVENT_LINE`] bytes; a longer one is cut and then
//!   fails to parse (skipped, never a panic);
//! - the stream starts `--since` a moment before it was started, so an event
//!   that happened while it was starting is replayed, not lost (a replayed
//!   event only costs one refresh).
use super::{Docker, DockerError, validate_container_name};
use crate::process::{LineChild, RunError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The lifecycle actions that change what `ps`/`inspect` say about a
/// container, and `extract-to-dir` (a `docker cp` into it, which may bring
/// keystore files). `stop` and `kill` are always followed by `die`;
/// `health_status` is matched by prefix by the engine (`health_status: healthy`).
pub const ACTIONS: [&str; 11] = [
    "create",
    "start",
    "restart",
    "die",
    "destroy",
    "rename",
    "pause",
    "unpause",
    "update",
    "health_status",
    "extract-to-dir",
];

/// Longest event line kept (events carry the container's labels, which are
/// usually short).
pub const MAX_EVENT_LINE: usize = 64 * 1024;

/// One container event, as much of it as warden uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// `die`, `start`, `health_status: healthy`, …
    pub action: String,
    /// The container's name (its new name for `rename`).
    pub name: String,
    /// The name before a `rename`, without Docker's leading `/`.
    pub old_name: Option<String>,
}

/// What the stream reports: an event, or its end (the `docker` process
/// exited: the engine went away, or the stream was dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventLine {
    Event(ContainerEvent),
    /// A line that was not a container event warden can read; skipped.
    Unreadable,
    Ended,
}

/// A running `docker events` process; dropping it stops it.
#[derive(Debug)]
pub struct EventStream {
    child: LineChild,
}

impl EventStream {
    /// Whether the `docker events` process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }
}

/// argv of the events stream, from `since_unix_s` (seconds since the epoch).
pub fn events_args(since_unix_s: i64) -> Vec<String> {
    let mut argv: Vec<String> = [
        "events",
        "--format",
        "{{json .}}",
        "--filter",
        "type=container",
    ]
    .map(String::from)
    .to_vec();
    for action in ACTIONS {
        argv.push("--filter".into());
        argv.push(format!("event={action}"));
    }
    argv.push("--since".into());
    argv.push(since_unix_s.to_string());
    argv
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "Actor", default)]
    actor: RawActor,
}

#[derive(Deserialize, Default)]
struct RawActor {
    #[serde(rename = "Attributes", default)]
    attributes: BTreeMap<String, String>,
}

/// One line of `docker events --format '{{json .}}'`; `None` for anything
/// that is not a container event with a valid container name.
pub fn parse_event(line: &str) -> Option<ContainerEvent> {
    let raw: RawEvent = serde_json::from_str(line).ok()?;
    if raw.kind != "container" || raw.action.is_empty() {
        return None;
    }
    let name = raw.actor.attributes.get("name")?.clone();
    validate_container_name(&name).ok()?;
    let old_name = raw
        .actor
        .attributes
        .get("oldName")
        .map(|n| n.trim_start_matches('/').to_owned())
        .filter(|n| validate_container_name(n).is_ok());
    Some(ContainerEvent {
        action: raw.action,
        name,
        old_name,
    })
}

impl Docker {
    /// Starts `docker events` for container lifecycle changes since
    /// `since_unix_s` and calls `on_event` with each (on a thread of its own),
    /// then once with [`EventLine::Ended`]. `on_event` must return quickly.
    pub fn watch_events(
        &self,
        since_unix_s: i64,
        mut on_event: impl FnMut(EventLine) + Send + 'static,
    ) -> Result<EventStream, DockerError> {
        let argv = events_args(since_unix_s);
        let child = crate::process::spawn_lines(
            self.program(),
            &argv,
            "docker-events",
            MAX_EVENT_LINE,
            move |line| {
                on_event(match line {
                    None => EventLine::Ended,
                    Some(text) => parse_event(text).map_or(EventLine::Unreadable, EventLine::Event),
                })
            },
        )
        .map_err(|error| match error {
            RunError::Spawn(error) => DockerError::Unavailable {
                detail: super::spawn_failure(self.program(), &error),
            },
            RunError::TimedOut | RunError::Io(_) => DockerError::Unavailable {
                detail: format!("cannot start `docker events`: {error:?}"),
            },
        })?;
        Ok(EventStream { child })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Docker CLI 28.2 / Engine 20.10.24.
    const DIE: &str = r#"{"status":"die","id":"577a0926a8ad37d75a6789a9a4c3bb1dd4e93a98f4a568f5f845ef3ff312e5d6","from":"warden-testnode:latest","Type":"container","Action":"die","Actor":{"ID":"577a0926a8ad37d75a6789a9a4c3bb1dd4e93a98f4a568f5f845ef3ff312e5d6","Attributes":{"exitCode":"137","image":"warden-testnode:latest","loadgen-bench-4121":"","name":"loadgen-bench-4121-0"}},"scope":"local","time":1796402923,"timeNano":1796402923966606616}"#;

    #[test]
    fn reads_lifecycle_events() {
        assert_eq!(
            parse_event(DIE),
            Some(ContainerEvent {
                action: "die".into(),
                name: "loadgen-bench-4121-0".into(),
                old_name: None
            })
        );
        let rename = r#"{"Type":"container","Action":"rename","Actor":{"Attributes":{"name":"3node1","oldName":"/3node0"}}}"#;
        assert_eq!(
            parse_event(rename).and_then(|e| e.old_name),
            Some("3node0".into())
        );
        let health = r#"{"Type":"container","Action":"health_status: healthy","Actor":{"Attributes":{"name":"n0"}}}"#;
        assert_eq!(
            parse_event(health).map(|e| e.action),
            Some("health_status: healthy".into())
        );
    }

    #[test]
    fn skips_what_is_not_a_container_event() {
        for line in [
            "",
            "not json",
            r#"{"Type":"network","Action":"connect","Actor":{"Attributes":{"name":"bridge"}}}"#,
            r#"{"Type":"container","Action":"die","Actor":{"Attributes":{}}}"#,
            r#"{"Type":"container","Action":"die","Actor":{"Attributes":{"name":"-rf"}}}"#,
            r#"{"Type":"container","Action":"","Actor":{"Attributes":{"name":"n"}}}"#,
        ] {
            assert_eq!(parse_event(line), None, "{line}");
        }
    }

    #[test]
    fn asks_only_for_lifecycle_events_since_a_time() {
        let argv = events_args(1_796_402_923);
        assert_eq!(
            argv[..5],
            [
                "events",
                "--format",
                "{{json .}}",
                "--filter",
                "type=container"
            ]
        );
        assert!(argv.iter().all(|a| !a.contains("exec")), "{argv:?}");
        assert!(argv.contains(&"event=die".to_string()));
        assert!(argv.contains(&"event=extract-to-dir".to_string()));
        assert_eq!(argv[argv.len() - 2..], ["--since", "1796402923"]);
    }
}
