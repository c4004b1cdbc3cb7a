//! backup_keys and restore_keys as agent commands, the crash recovery of a
//! backup cut short, and the drop-box through which `warden backup-keys
//! --notify` (cron mode, another process) hands its `backup_complete`
//! events to the running agent.
use super::Agent;
use super::failure::Failure;
use crate::backup::{self, BackupReport, RestoreOptions};
use crate::chain::PublicKey;
use crate::protocol::events::{BackupComplete, Payload};
use crate::protocol::{Event, now_ms};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Public keys a `backup_complete` event lists, at most.
const MAX_EVENT_KEYS: usize = 512;

/// The `backup_complete` event for a finished backup.
pub fn backup_event(report: &BackupReport, seq: u64) -> Event {
    let timestamp = now_ms();
    let event_id = format!("backup-{}-{timestamp}-{seq}", report.container);
    // The archive's public keys, so the server can refuse a restore that
    // would make two nodes sign with them (left out past a bound: the
    // server then refuses such a restore unless forced).
    let keys: Vec<PublicKey> = report
        .entries
        .iter()
        .filter_map(|e| e.strip_prefix("keystore/"))
        .filter_map(|name| crate::chain::parse_keystore_file_name(name).ok())
        .filter_map(|e| PublicKey::try_from(e.public_key.as_slice()).ok())
        .collect();
    Payload::BackupComplete(BackupComplete {
        event_id,
        container: report.container.clone(),
        backup_file: report.file_name.clone(),
        bytes: report.bytes,
        sha256: report.sha256.clone(),
        keys: (keys.len() <= MAX_EVENT_KEYS).then_some(keys),
        timestamp,
    })
    .into()
}

fn log_progress(container: &str) -> impl FnMut(&str) + '_ {
    move |step: &str| crate::log::info(&format!("{container}: {step}"))
}

pub fn backup_keys(agent: &Agent, container: &str) -> Result<Value, Failure> {
    let report = backup::backup_keys(
        &agent.docker,
        container,
        &agent.config.backup,
        &mut log_progress(container),
    )?;
    for warning in &report.warnings {
        crate::log::warn(&format!("{container}: {warning}"));
    }
    agent.raise(backup_event(&report, agent.next_event_seq()));
    Ok(Value::String(report.file_name))
}

pub fn restore_keys(agent: &Agent, container: &str, backup_file: &str) -> Result<Value, Failure> {
    let report = backup::restore_keys(
        &agent.docker,
        container,
        backup_file,
        &agent.config.backup,
        RestoreOptions::default(),
        &mut log_progress(container),
    )?;
    // List the keystore again now, so the server's duplicate-key guard sees
    // the restored keys at the next stats report.
    if let Ok(Some(inspect)) = agent
        .docker
        .inspect(&[container])
        .map(|v| v.into_iter().next())
        && let Ok(keys) = super::node::keystore_keys(agent, &inspect)
    {
        agent.remember_keystore(container, &keys);
    }
    let mut message = if report.changed {
        format!(
            "restored {} entries into {container} from {}",
            report.restored.len(),
            report.backup_file
        )
    } else {
        format!(
            "{container} already had exactly the keys of {}; nothing changed",
            report.backup_file
        )
    };
    if let Some(saved) = &report.pre_restore_backup {
        message.push_str(&format!("; the keys it had before are saved as {saved}"));
    }
    if report.restarted {
        message.push_str("; the node was restarted to load them");
    }
    for warning in &report.warnings {
        message.push_str(&format!("; warning: {warning}"));
    }
    message.push_str(
        ". The same keys must never run on two nodes: the server warns if another node reports them.",
    );
    Ok(Value::String(message))
}

/// On start: restart a node a killed backup or restore left stopped.
pub fn recover(agent: &Agent) {
    for line in recover_lines(&agent.docker, &agent.config.backup) {
        crate::log::warn(&line);
    }
}

/// Settle what a killed backup or restore left (restart the node it
/// stopped), as lines to show.
pub fn recover_lines(docker: &crate::docker::Docker, cfg: &backup::BackupConfig) -> Vec<String> {
    backup::recover_inflight(docker, cfg, &mut |_| {})
        .into_iter()
        .map(|line| format!("recovered after an interrupted key backup or restore: {line}"))
        .collect()
}

/// Where cron mode drops events for the agent: `<state dir>/notify/`.
pub fn notify_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("notify")
}

/// Queue `event` for the agent that owns `state_dir` (written atomically;
/// the agent moves it into its ledger and deletes the file).
pub fn drop_event(state_dir: &Path, event: &Event) -> std::io::Result<PathBuf> {
    let dir = notify_dir(state_dir);
    crate::fsutil::ensure_private_dir(&dir)?;
    let path = dir.join(format!("{}.json", event.event_id));
    let body = json!({ "type": event.kind.as_str(), "data": event.data });
    crate::fsutil::write_json_atomic(&path, &body)?;
    Ok(path)
}

/// Move events dropped by cron mode into the ledger (durable), then delete
/// their files. A crash in between raises one twice; the ledger and the
/// server both deduplicate on the event id.
pub fn pick_up_dropped_events(agent: &Agent) {
    let Ok(entries) = std::fs::read_dir(notify_dir(&agent.config.state_dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let parsed = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| crate::protocol::Message::parse(&text).ok());
        match parsed {
            Some(crate::protocol::Message::Event(event)) => {
                agent.raise(event);
                let _ = std::fs::remove_file(&path);
            }
            _ => crate::log::warn(&format!(
                "ignoring {}: not an event warden can deliver",
                path.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_reported_byte_for_byte() {
        let report = BackupReport {
            container: "3node0".into(),
            file_name: "3node0-keys-20250108-1430.tar.gz".into(),
            path: PathBuf::from("/backups/3node0-keys-20250108-1430.tar.gz"),
            bytes: 10240,
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            entries: vec![
                "keystore/".into(),
                format!("keystore/6772616e{}", "22".repeat(32)),
                format!("keystore/62616265{}aa", "11".repeat(31)),
                "network/".into(),
                "keystore/not-a-key".into(),
            ],
            keystore_files: 2,
            network_files: 0,
            chain: crate::backup::ChainDir {
                base_path: "/data".into(),
                chain_id: "local".into(),
            },
            was_running: true,
            stopped_ms: Some(5),
            deleted: vec![],
            warnings: vec![],
        };
        let event = backup_event(&report, 3);
        let timestamp = event.data["timestamp"].as_i64().unwrap();
        let expected = crate::protocol::events::tests::BACKUP_COMPLETE
            .replace("1733312345678", &timestamp.to_string());
        assert_eq!(crate::protocol::Message::Event(event).to_json(), expected);
    }
}
