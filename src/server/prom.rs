//! `/metrics`: the fleet as Prometheus text exposition format 0.0.4, with
//! the contract's metric names, types and labels (docs/operations.md).
//!
//! Invariants: a value that is unknown (node unreachable, never reported)
//! has no sample; it is never shown as zero or as its last known value. The
//! container and node series of an agent that is away are absent while
//! `warden_agent_up` stays, at 0. Label values are escaped per the format
//! (`\\`, `\"`, `\n`). Pure: rendered from a [`FleetView`] and counters.
use super::alerts::engine::FiringAlert;
use super::alerts::view::FleetView;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Distinct (command, outcome) pairs counted at most: command names come
/// from the catalog, outcomes from a fixed set, so this is never reached by
/// a well-behaved hub; it bounds the page if a bug feeds it free text.
const MAX_COUNTER_SERIES: usize = 256;

/// `warden_commands_total`: commands by name and terminal outcome.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommandCounters {
    counts: BTreeMap<(String, String), u64>,
}

/// The outcomes the contract names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandOutcome {
    Completed,
    Failed,
    Timeout,
}

impl CommandOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandOutcome::Completed => "completed",
            CommandOutcome::Failed => "failed",
            CommandOutcome::Timeout => "timeout",
        }
    }
}

impl CommandCounters {
    pub fn record(&mut self, command: &str, outcome: CommandOutcome) {
        let key = (command.to_string(), outcome.as_str().to_string());
        if self.counts.len() >= MAX_COUNTER_SERIES && !self.counts.contains_key(&key) {
            return;
        }
        *self.counts.entry(key).or_insert(0) += 1;
    }
}

/// A label value escaped per the text format.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Page {
    text: String,
}

impl Page {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The page. `firing`: the engine's firing alerts, counted by name and
/// severity.
pub fn render(view: &FleetView, commands: &CommandCounters, firing: &[FiringAlert]) -> String {
    let mut p = Page {
        text: String::new(),
    };
    let present: Vec<(&String, &super::alerts::view::AgentView)> = view
        .agents
        .iter()
        .filter(|(_, a)| !super::alerts::rules::agent_away(view, a) && a.stats_seen)
        .collect();
    p.family(
        "warden_build_info",
        "gauge",
        "Version of this warden server.",
    );
    p.sample(
        "warden_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    p.family("warden_agents_connected", "gauge", "Agents connected now.");
    p.sample(
        "warden_agents_connected",
        &[],
        view.agents.values().filter(|a| a.connected).count() as f64,
    );
    p.family(
        "warden_agent_up",
        "gauge",
        "1 if the agent is connected and not silent, else 0.",
    );
    for (id, a) in &view.agents {
        p.sample(
            "warden_agent_up",
            &[("agent", id)],
            flag(!super::alerts::rules::agent_away(view, a)),
        );
    }
    p.family(
        "warden_agent_last_seen_timestamp_seconds",
        "gauge",
        "When the agent last sent anything (Unix seconds).",
    );
    for (id, a) in &view.agents {
        if let Some(ms) = a.last_seen_ms {
            p.sample(
                "warden_agent_last_seen_timestamp_seconds",
                &[("agent", id)],
                ms as f64 / 1000.0,
            );
        }
    }
    p.family(
        "warden_container_running",
        "gauge",
        "1 if the managed container is running, else 0.",
    );
    for (id, a) in &present {
        for (name, c) in &a.containers {
            p.sample(
                "warden_container_running",
                &[("agent", id), ("container", name)],
                flag(c.running()),
            );
        }
    }
    type Pick = fn(&super::alerts::view::ContainerView) -> Option<f64>;
    let node_metrics: [(&str, &str, Pick); 8] = [
        ("warden_node_best_height", "Best block the node has.", |c| {
            c.node.best.map(|v| v as f64)
        }),
        (
            "warden_node_finalized_height",
            "Finalized block the node has.",
            |c| c.node.finalized.map(|v| v as f64),
        ),
        (
            "warden_node_sync_target_height",
            "Highest block the node's peers claim.",
            |c| c.node.sync_target.map(|v| v as f64),
        ),
        (
            "warden_node_peers",
            "Peers the node is connected to.",
            |c| c.node.peers.map(|v| v as f64),
        ),
        (
            "warden_node_syncing",
            "1 if the node is major-syncing, else 0.",
            |c| c.node.syncing.map(flag),
        ),
        (
            "warden_validator_active",
            "1 if the node's validator is in the active set, else 0.",
            |c| c.validator.active.map(flag),
        ),
        (
            "warden_node_unclaimed_payouts",
            "Eras of the last 84 with rewards the node's validator has not claimed.",
            |c| c.validator.unclaimed_eras.map(|v| v as f64),
        ),
        (
            "warden_container_restarts",
            "Docker's restart count of the container.",
            |c| c.restart_count.map(|v| v as f64),
        ),
    ];
    // The view holds no value of a node that is not running or could not be
    // read (see alerts::view): `pick` returns None and the sample is absent.
    for (name, help, pick) in node_metrics {
        p.family(name, "gauge", help);
        for (id, a) in &present {
            for (cname, c) in &a.containers {
                if let Some(v) = pick(c) {
                    p.sample(name, &[("agent", id), ("container", cname)], v);
                }
            }
        }
    }
    p.family(
        "warden_key_backup_age_seconds",
        "gauge",
        "Seconds since the newest key backup of the container.",
    );
    for (id, a) in &present {
        for (cname, c) in &a.containers {
            if let Some(newest) = c.backup.newest_ms {
                p.sample(
                    "warden_key_backup_age_seconds",
                    &[("agent", id), ("container", cname)],
                    ((view.now_ms - newest).max(0) / 1000) as f64,
                );
            }
        }
    }
    p.family(
        "warden_commands_total",
        "counter",
        "Commands by name and terminal outcome.",
    );
    for ((command, outcome), n) in &commands.counts {
        p.sample(
            "warden_commands_total",
            &[("command", command), ("outcome", outcome)],
            *n as f64,
        );
    }
    p.family(
        "warden_alerts_firing",
        "gauge",
        "Alerts firing now, by name and severity.",
    );
    let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for a in firing {
        *counts
            .entry((a.alertname.as_str(), a.severity.as_str()))
            .or_insert(0) += 1;
    }
    for ((name, severity), n) in counts {
        p.sample(
            "warden_alerts_firing",
            &[("alertname", name), ("severity", severity)],
            n as f64,
        );
    }
    p.text
}

#[cfg(test)]
#[path = "prom_tests.rs"]
mod tests;
