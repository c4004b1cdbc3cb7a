//! How results look to the operator: every line tagged with agent and
//! command id, a table for `status`, the plain text for `logs` and `exec`.
use super::store::CommandRecord;
use crate::protocol::reports::{ChainKeys, NodeReport, PayoutCheck};
use crate::protocol::{CommandResponse, CommandStatus, Event, StatsReport, SummaryReport};
use serde_json::Value;

/// Left-aligned columns separated by two spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    if i + 1 == row.len() {
                        cell.clone()
                    } else {
                        format!("{cell:<width$}", width = widths[i])
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The body of a completed command's result, readable by a person.
pub fn result_body(command: &str, result: &Value) -> String {
    match (command, result) {
        ("status", Value::Object(map)) if map.get("containers").is_some_and(Value::is_array) => {
            let mut rows = vec![vec![
                "NAME".to_string(),
                "STATE".into(),
                "HEALTH".into(),
                "UPTIME".into(),
                "RESTARTS".into(),
                "IMAGE".into(),
            ]];
            for c in map["containers"].as_array().into_iter().flatten() {
                let field = |k: &str| c.get(k).map(text_of).unwrap_or_else(|| "-".into());
                let uptime = c
                    .get("uptime_s")
                    .and_then(Value::as_i64)
                    .map(|s| super::format_age(s * 1000))
                    .unwrap_or_else(|| "-".into());
                let health = c
                    .get("health")
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_string();
                rows.push(vec![
                    field("name"),
                    field("state"),
                    health,
                    uptime,
                    field("restart_count"),
                    field("image"),
                ]);
            }
            table(&rows)
        }
        ("exec", Value::Object(map)) => {
            let mut parts = vec![format!(
                "exit code {}",
                map.get("exit_code").map(text_of).unwrap_or_default()
            )];
            for stream in ["stdout", "stderr"] {
                let text = map.get(stream).map(text_of).unwrap_or_default();
                if !text.is_empty() {
                    parts.push(format!("{stream}:\n{}", indent(text.trim_end())));
                }
            }
            parts.join("\n")
        }
        (_, Value::String(s)) => s.trim_end().to_string(),
        (_, Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        (_, other) => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

pub fn response(agent: &str, command: &str, target: &str, response: &CommandResponse) -> String {
    let head = format!("[{agent} {}] {command} {target}", response.id);
    match response.status {
        CommandStatus::Failed => format!(
            "{head} failed ({}): {}",
            response.code.map(|c| c.as_str()).unwrap_or("internal"),
            response.error.as_deref().unwrap_or("no reason given")
        ),
        _ => {
            let body = result_body(command, response.result.as_ref().unwrap_or(&Value::Null));
            if body.contains('\n') || body.len() > 60 {
                format!("{head} completed:\n{body}")
            } else {
                format!("{head} completed: {body}")
            }
        }
    }
}

pub fn event(agent: &str, event: &Event) -> String {
    let mut fields: Vec<String> = event
        .data
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "event_id" | "timestamp" | "keys" | "session_key"
            )
        })
        .map(|(k, v)| format!("{k}={}", text_of(v)))
        .collect();
    fields.sort();
    format!("[{agent}] {} {}", event.kind.as_str(), fields.join(" "))
}

pub fn show(record: &CommandRecord) -> String {
    let params = if record.params.is_empty() {
        String::new()
    } else {
        format!(" {}", Value::Object(record.params.clone()))
    };
    let mut lines = vec![format!(
        "{} {} {} {}{params} (issued {} by {})",
        record.id,
        record.agent,
        record.command,
        record.target,
        crate::log::format_utc(record.issued_ms / 1000),
        record.by
    )];
    match &record.outcome {
        None => lines.push(format!(
            "status: {} (no terminal response yet)",
            record.progress.map(|p| p.as_str()).unwrap_or("sent")
        )),
        Some(o) if o.status == CommandStatus::Failed => lines.push(format!(
            "status: failed ({}): {}",
            o.code.map(|c| c.as_str()).unwrap_or("internal"),
            o.error.as_deref().unwrap_or("")
        )),
        Some(o) => {
            lines.push("status: completed".into());
            lines.push(result_body(
                &record.command,
                o.result.as_ref().unwrap_or(&Value::Null),
            ));
        }
    }
    lines.join("\n")
}

/// Session keys as reported, newest first. Session keys are public keys:
/// showing them in full is what an operator needs for `session.setKeys`.
pub fn keys(records: &[&super::store::KeyRecord]) -> String {
    if records.is_empty() {
        return "no session keys reported yet".into();
    }
    let mut rows = vec![vec![
        "RECEIVED".to_string(),
        "AGENT".into(),
        "CONTAINER".into(),
        "ACTION".into(),
        "SESSION KEY".into(),
    ]];
    for k in records {
        rows.push(vec![
            crate::log::format_utc(k.received_ms / 1000),
            k.agent.clone(),
            k.container.clone(),
            k.action.clone(),
            k.session_key.clone(),
        ]);
    }
    table(&rows)
}

/// One line on an agent's state from its last stats: what needs a look first.
/// Only the nodes it `announced` count (see `Live::announced`).
pub fn health(stats: Option<&StatsReport>, announced: &dyn Fn(&str) -> bool) -> String {
    let Some(stats) = stats else {
        return "waiting for stats".into();
    };
    if let Some(error) = &stats.error {
        return format!("DOCKER: {error}").chars().take(60).collect();
    }
    let down: Vec<&str> = stats
        .rows()
        .iter()
        .filter(|c| !c.is_running())
        .map(|c| c.name.as_deref().unwrap_or("?"))
        .collect();
    if !down.is_empty() {
        return format!("DOWN: {}", down.join(" "));
    }
    let with = |pred: &dyn Fn(&NodeReport) -> bool| -> Vec<&str> {
        stats
            .nodes
            .iter()
            .filter(|(c, n)| announced(c) && pred(n))
            .map(|(c, _)| c.as_str())
            .collect()
    };
    let unreachable = with(&|n| n.rpc_error.is_some());
    if !unreachable.is_empty() {
        return format!("RPC unreachable: {}", unreachable.join(" "));
    }
    let syncing = with(&|n| n.read().syncing == Some(true));
    if !syncing.is_empty() {
        return format!("syncing: {}", syncing.join(" "));
    }
    let lonely = with(&|n| n.read().peers == Some(0));
    if !lonely.is_empty() {
        return format!("no peers: {}", lonely.join(" "));
    }
    "ok".into()
}

/// What the server last heard from one agent, for `nodes`.
pub struct NodeReports<'a> {
    pub agent: &'a str,
    pub stats: &'a StatsReport,
    /// Whether the agent announced a container: only those nodes count.
    pub announced: Box<dyn Fn(&str) -> bool + 'a>,
    pub summary: Option<&'a SummaryReport>,
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn yes_no(v: Option<bool>) -> String {
    match v {
        None => "-",
        Some(true) => "yes",
        Some(false) => "no",
    }
    .to_string()
}

/// Every node of the fleet in one table, from each agent's last stats and
/// summary (era, unclaimed payouts, validator account).
pub fn nodes(reports: &[NodeReports<'_>]) -> String {
    let header = [
        "AGENT",
        "CONTAINER",
        "STATE",
        "BEST",
        "FINALIZED",
        "TARGET",
        "PEERS",
        "SYNCING",
        "ROLES",
        "VERSION",
        "ERA",
        "UNCLAIMED",
        "VALIDATOR",
        "KEYS",
        "SLOTS",
        "PEER ID",
        "NOTE",
    ];
    let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for report in reports {
        for c in report.stats.rows() {
            let name = c.name.as_deref().unwrap_or("?");
            let n = report
                .stats
                .nodes
                .get(name)
                .filter(|_| (report.announced)(name));
            let read = n.map(NodeReport::read);
            let p = report.summary.and_then(|s| s.check(name));
            let chain_keys = p.and_then(|p| p.chain_keys.as_deref());
            let mut notes = Vec::new();
            if let Some(warning) = chain_keys.and_then(|k| k.warning.as_deref()) {
                notes.push(format!("!!! {warning}"));
            }
            if let Some(error) = n.and_then(|n| n.rpc_error.as_deref()) {
                notes.push(format!(
                    "{}: {error}",
                    n.and_then(|n| n.rpc_code.as_deref()).unwrap_or("error")
                ));
            }
            if let Some(k) = chain_keys.filter(|k| k.rotated_not_set == Some(true)) {
                let when = k
                    .rotated_effective_in_s
                    .map(|s| format!(", ~{}", crate::chain::key_check::human_duration(s)))
                    .unwrap_or_default();
                notes.push(format!(
                    "keys rotated on the node are not set on chain: send session.setKeys \
                     (they take effect at session {}{when})",
                    opt(k.rotated_effective_session)
                ));
            }
            if n.and_then(NodeReport::network_key) == Some(false) {
                notes.push(
                    "NO NETWORK KEY (network/secret_ed25519): the peer id changes at each start; \
                     make one with `key generate-node-key`"
                        .to_string(),
                );
            }
            let note = notes.join("; ");
            rows.push(vec![
                report.agent.to_string(),
                name.to_string(),
                opt(c.state.as_deref()),
                opt(read.and_then(|r| r.best)),
                opt(read.and_then(|r| r.finalized)),
                opt(read.and_then(|r| r.sync_target)),
                opt(read.and_then(|r| r.peers)),
                yes_no(read.and_then(|r| r.syncing)),
                read.and_then(|r| r.roles.as_ref())
                    .map_or_else(|| "-".to_string(), |r| r.join(",")),
                opt(read.and_then(|r| r.version.as_deref())),
                opt(p.and_then(|p| p.current_era)),
                unclaimed_cell(p),
                opt(p.and_then(|p| p.validator_account.as_deref())),
                keys_cell(chain_keys),
                opt(chain_keys.and_then(|k| k.epoch_slots)),
                short_peer_id(n.and_then(NodeReport::peer_id)),
                note.chars().take(160).collect(),
            ]);
        }
    }
    if rows.len() == 1 {
        return "no node reported yet (agents send stats every few seconds)".into();
    }
    table(&rows)
}

/// `3 (oldest 5d)`: unclaimed eras, and the days left to pay out the oldest
/// before it expires (an era is a day on Creditcoin 3).
fn unclaimed_cell(check: Option<&PayoutCheck>) -> String {
    let count = check.and_then(|p| p.unclaimed_payouts);
    let left = check.and_then(|p| p.oldest_expires_in_eras);
    match (count, left) {
        (Some(n), Some(days)) if n > 0 => format!("{n} (oldest {days}d)"),
        _ => opt(count),
    }
}

/// The chain's keys against the node's keystore: `ok`, `MISSING` (see the
/// note), or a pending rotation with when it takes effect.
fn keys_cell(chain_keys: Option<&ChainKeys>) -> String {
    let Some(k) = chain_keys else {
        return "-".to_string();
    };
    if k.warning.is_some() {
        return "MISSING".to_string();
    }
    if k.rotated_not_set == Some(true) {
        return "rotated, not set".to_string();
    }
    if k.rotation_pending == Some(true) {
        let session = opt(k.new_keys_session);
        return match k.new_keys_in_s {
            Some(s) => format!(
                "new at s{session} ({})",
                crate::chain::key_check::human_duration(s)
            ),
            None => format!("new at s{session}"),
        };
    }
    match k.next_in_keystore {
        Some(true) => "ok".to_string(),
        _ => "-".to_string(),
    }
}

/// `12D3KooW…xCvJtm`: enough to tell nodes apart in a table.
fn short_peer_id(peer_id: Option<&str>) -> String {
    match peer_id {
        None => "-".to_string(),
        Some(id) if id.chars().count() <= 16 => id.to_string(),
        Some(id) => {
            let tail: String = id
                .chars()
                .rev()
                .take(6)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("{}…{tail}", id.chars().take(8).collect::<String>())
        }
    }
}

/// Per agent and container: the newest backup, how old it is, how many.
pub fn backups(records: &[&super::store::BackupRecord], now_ms: i64) -> String {
    if records.is_empty() {
        return "no key backup reported yet (send backup_keys, or run warden backup-keys --notify from cron)".into();
    }
    let mut seen: Vec<(&str, &str)> = Vec::new();
    let mut rows = vec![
        ["AGENT", "CONTAINER", "NEWEST", "AGE", "BYTES", "BACKUPS"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    ];
    for b in records {
        if seen.contains(&(b.agent.as_str(), b.container.as_str())) {
            continue;
        }
        seen.push((&b.agent, &b.container));
        let count = records
            .iter()
            .filter(|r| r.agent == b.agent && r.container == b.container)
            .count();
        rows.push(vec![
            b.agent.clone(),
            b.container.clone(),
            b.file.clone(),
            super::format_age(now_ms - b.at_ms),
            b.bytes.to_string(),
            count.to_string(),
        ]);
    }
    table(&rows)
}

pub fn history(records: &[&CommandRecord]) -> String {
    if records.is_empty() {
        return "no commands yet".into();
    }
    let mut rows = vec![vec![
        "ISSUED".to_string(),
        "ID".into(),
        "AGENT".into(),
        "COMMAND".into(),
        "TARGET".into(),
        "OUTCOME".into(),
    ]];
    for r in records {
        let outcome = match &r.outcome {
            None => r
                .progress
                .map(|p| p.as_str())
                .unwrap_or("pending")
                .to_string(),
            Some(o) => match o.code {
                Some(code) => format!("{} ({code})", o.status.as_str()),
                None => o.status.as_str().to_string(),
            },
        };
        rows.push(vec![
            crate::log::format_utc(r.issued_ms / 1000),
            r.id.clone(),
            r.agent.clone(),
            r.command.clone(),
            r.target.clone(),
            outcome,
        ]);
    }
    table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stats_of(v: Value) -> StatsReport {
        serde_json::from_value(v).unwrap()
    }

    fn summary_of(v: Value) -> SummaryReport {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn health_names_the_first_problem_of_announced_nodes() {
        let stats = stats_of(json!({"containers": [{"name": "a", "state": "running"}],
            "nodes": {"a": {"rpc_error": null, "syncing": true}, "x": {"rpc_error": "down"}}}));
        let all = |_: &str| true;
        assert_eq!(health(None, &all), "waiting for stats");
        assert_eq!(health(Some(&stats), &all), "RPC unreachable: x");
        assert_eq!(health(Some(&stats), &|c| c == "a"), "syncing: a");
        let down = stats_of(json!({"containers": [{"name": "a", "state": "exited"}, 7]}));
        assert_eq!(health(Some(&down), &all), "DOWN: a ?");
        let broken = stats_of(json!({"error": "no docker", "containers": []}));
        assert_eq!(health(Some(&broken), &all), "DOCKER: no docker");
    }

    #[test]
    fn status_renders_as_a_table() {
        let result = json!({"containers": [
            {"name": "3node0", "state": "running", "health": null, "uptime_s": 125, "restart_count": 0, "image": "warden-testnode"},
            {"name": "3node1", "state": "exited", "uptime_s": null, "restart_count": 2, "image": "warden-testnode"}
        ]});
        let text = result_body("status", &result);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME    STATE    HEALTH  UPTIME  RESTARTS  IMAGE");
        assert_eq!(
            lines[1],
            "3node0  running  -       2m05s   0         warden-testnode"
        );
        assert_eq!(
            lines[2],
            "3node1  exited   -       -       2         warden-testnode"
        );
    }

    #[test]
    fn nodes_joins_stats_and_summary() {
        let stats = json!({"containers": [{"name": "3node0", "state": "running"}],
            "nodes": {"3node0": {"best": 120, "finalized": 118, "sync_target": 120, "peers": 3, "syncing": false,
                "roles": ["Authority"], "version": "3.39.0", "rpc_error": null}}});
        let summary = json!({"payout_info": {"payout_checks": {"3node0": {"current_era": 100, "unclaimed_payouts": 4,
            "synced": true, "validator_account": "5Cxyz"}}}});
        let (stats, summary) = (stats_of(stats), summary_of(summary));
        let report = NodeReports {
            agent: "host1",
            stats: &stats,
            announced: Box::new(|_| true),
            summary: Some(&summary),
        };
        let text = nodes(&[report]);
        let row = text.lines().nth(1).unwrap();
        for part in [
            "host1",
            "3node0",
            "running",
            "120",
            "118",
            "Authority",
            "100",
            "4",
            "5Cxyz",
        ] {
            assert!(row.contains(part), "{part} missing: {row}");
        }
    }

    #[test]
    fn nodes_show_payout_expiry_and_the_keys_verdict() {
        let stats = json!({"containers": [
            {"name": "n0", "state": "running"}, {"name": "n1", "state": "running"},
            {"name": "n2", "state": "running"}]});
        let summary = json!({"payout_info": {"payout_checks": {
            "n0": {"current_era": 100, "unclaimed_payouts": 2, "oldest_expires_in_eras": 5,
                   "chain_keys": {"next_in_keystore": true, "queued_in_keystore": true,
                                  "rotation_pending": false, "warning": null,
                                  "epoch_authorship": {"total": 4}}},
            "n1": {"current_era": 100, "unclaimed_payouts": 0,
                   "chain_keys": {"next_in_keystore": false, "warning": "the keys set on chain are NOT here"}},
            "n2": {"current_era": 100, "unclaimed_payouts": 0,
                   "chain_keys": {"next_in_keystore": true, "rotation_pending": true,
                                  "new_keys_session": 42, "new_keys_in_s": 129600, "warning": null}}}}});
        let (stats, summary) = (stats_of(stats), summary_of(summary));
        let report = NodeReports {
            agent: "h",
            stats: &stats,
            announced: Box::new(|_| true),
            summary: Some(&summary),
        };
        let text = nodes(&[report]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].contains("2 (oldest 5d)") && lines[1].contains(" ok "),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains(" 4 "), "slots: {}", lines[1]);
        assert!(
            lines[2].contains("MISSING") && lines[2].contains("!!! the keys set on chain"),
            "{}",
            lines[2]
        );
        assert!(lines[3].contains("new at s42 (1d12h)"), "{}", lines[3]);
        let rotated = json!({"payout_info": {"payout_checks": {"n0": {"chain_keys": {
            "next_in_keystore": true, "warning": null, "rotated_not_set": true,
            "rotated_effective_session": 42, "rotated_effective_in_s": 129600}}}}});
        let rotated = summary_of(rotated);
        let report = NodeReports {
            agent: "h",
            stats: &stats,
            announced: Box::new(|_| true),
            summary: Some(&rotated),
        };
        let text = nodes(&[report]);
        let row = text.lines().nth(1).unwrap();
        assert!(row.contains("rotated, not set"), "{row}");
        assert!(
            row.contains("send session.setKeys (they take effect at session 42, ~1d12h)"),
            "{row}"
        );
    }

    #[test]
    fn nodes_show_the_peer_id_and_flag_a_missing_network_key() {
        let stats = json!({"containers": [{"name": "n0", "state": "running"}, {"name": "n1", "state": "running"}],
            "nodes": {
                "n0": {"peer_id": "12D3KooWSR7M5PQpGFDjBouNVWqqtGaNCjhsc6eWQ72nHyxCvJtm", "network_key": true},
                "n1": {"peer_id": "12D3KooWother0000000000000000000000000000000000abcdef", "network_key": false}}});
        let stats = stats_of(stats);
        let report = NodeReports {
            agent: "h",
            stats: &stats,
            announced: Box::new(|_| true),
            summary: None,
        };
        let text = nodes(&[report]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].contains("12D3KooW…xCvJtm"), "{}", lines[1]);
        assert!(!lines[1].contains("NO NETWORK KEY"), "{}", lines[1]);
        assert!(lines[2].contains("NO NETWORK KEY"), "{}", lines[2]);
    }

    #[test]
    fn failures_name_their_code() {
        let r = CommandResponse::failed(
            "c1",
            crate::protocol::ErrorCode::Busy,
            "stop is running on 3node0",
        );
        assert_eq!(
            response("h", "stop", "3node0", &r),
            "[h c1] stop 3node0 failed (busy): stop is running on 3node0"
        );
    }
}
