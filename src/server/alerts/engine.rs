//! The alert state machine: conditions from [`rules::evaluate`] become
//! notices.
//!
//! Per alert (rule + labels): `pending` while its condition holds for less
//! than `for_s`; `firing` after, with one `Firing` notice to every sink whose
//! `min_severity` it meets; a `Repeat` to a sink `repeat_interval_s` after
//! that sink last *accepted* a notice of it (never while one is still in its
//! queue); one `Resolved` notice when the condition is gone and not held, to
//! the sinks that were sent the firing. A pending alert that clears is
//! forgotten silently.
//!
//! Invariants:
//! - The state (alerts, per-sink acceptance, height marks) is saved in
//!   `<data dir>/alerts/state.json` (atomic replace) by [`Engine::save`],
//!   which the hub calls after the notices are in the delivery queues, so a
//!   crash between the two repeats a notice rather than loses one.
//! - Restored at start: a firing alert is not sent again; one whose
//!   condition cleared while the server was down resolves at the first
//!   evaluation that can tell (held alerts wait for their facts).
use super::config::{AlertsConfig, RuleName, Severity};
use super::notice::{Notice, NoticeKind};
use super::rules::{self, AlertKey, Condition, HeightMark, Heights};
use super::view::FleetView;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Alerts tracked at most (firing and pending): 5,000 agents × 4 nodes all
/// low on peers and stalled is 40,000. Beyond, new alerts are not tracked
/// (the hub logs [`Engine::overflowed`]) except `AgentDown`, at most one
/// per agent, so a host going away is always told.
pub const MAX_ALERTS: usize = 250_000;
const STATE_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Pending,
    Firing,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    key: AlertKey,
    phase: Phase,
    /// Pending: when the condition was first seen. Firing: `startsAt`.
    since_ms: i64,
    severity: Severity,
    summary: String,
    facts: Vec<String>,
    help: Option<String>,
    /// Sinks sent (queued) the firing: they get the resolved notice.
    notified: BTreeSet<String>,
    /// Per sink, when it last accepted a notice of this alert.
    accepted_ms: BTreeMap<String, i64>,
    /// Sinks holding a notice of this alert in their queue.
    queued: BTreeSet<String>,
    /// Last notice for the console (when there is no sink, repeats are
    /// printed on this clock).
    printed_ms: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    alerts: BTreeMap<String, Record>,
    heights: Vec<(String, String, HeightMark)>,
}

/// What `alerts` lists and `/metrics` counts: one firing alert.
#[derive(Clone, Debug, PartialEq)]
pub struct FiringAlert {
    pub fingerprint: String,
    pub alertname: String,
    pub severity: Severity,
    pub agent: String,
    pub container: Option<String>,
    pub since_ms: i64,
    pub summary: String,
}

pub struct Engine {
    config: AlertsConfig,
    path: PathBuf,
    alerts: BTreeMap<String, Record>,
    heights: Heights,
    dirty: bool,
    overflowed: bool,
}

#[derive(Debug)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}

impl Engine {
    /// The engine with its state restored from `<data_dir>/alerts/state.json`.
    /// A missing file is a first start; an unreadable one is refused (moving
    /// it aside would send every firing alert again).
    pub fn open(data_dir: &Path, config: AlertsConfig) -> Result<Engine, StateError> {
        let dir = data_dir.join("alerts");
        crate::fsutil::ensure_private_dir(&dir).map_err(|e| {
            StateError(format!(
                "cannot create {}: {e}; check the data dir's permissions",
                dir.display()
            ))
        })?;
        let path = dir.join("state.json");
        let state: State = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                StateError(format!(
                    "{} is unreadable ({e}); fix or remove it (removing it sends every firing alert again)",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(StateError(format!("cannot read {}: {e}", path.display()))),
        };
        Ok(Engine {
            config,
            path,
            alerts: state.alerts,
            heights: state
                .heights
                .into_iter()
                .map(|(a, c, m)| ((a, c), m))
                .collect(),
            dirty: false,
            overflowed: false,
        })
    }

    pub fn config(&self) -> &AlertsConfig {
        &self.config
    }

    /// True once if new alerts were not tracked because [`MAX_ALERTS`] fire.
    pub fn overflowed(&mut self) -> bool {
        std::mem::take(&mut self.overflowed)
    }

    fn sinks_for(&self, severity: Severity) -> Vec<String> {
        self.config
            .sinks
            .iter()
            .filter(|s| severity >= s.min_severity)
            .map(|s| s.name.clone())
            .collect()
    }

    /// Evaluate every rule over `view` and return the notices to queue and
    /// print. Call [`Engine::save`] once they are queued.
    pub fn evaluate(&mut self, view: &FleetView) -> Vec<Notice> {
        let now = view.now_ms;
        let before = self.heights.clone();
        rules::track_heights(view, &mut self.heights);
        if self.heights != before {
            self.dirty = true;
        }
        let eval = rules::evaluate(view, &self.config, &self.heights);
        let repeat_ms = self.config.repeat_interval_s as i64 * 1000;
        let mut notices = Vec::new();
        let mut present = BTreeSet::new();
        let by_severity: BTreeMap<Severity, Vec<String>> =
            [Severity::Info, Severity::Warning, Severity::Critical]
                .into_iter()
                .map(|s| (s, self.sinks_for(s)))
                .collect();
        for cond in &eval.conditions {
            let fp = cond.key.fingerprint();
            present.insert(fp.clone());
            let settings = self.config.rule(cond.key.rule);
            let sinks = by_severity[&settings.severity].clone();
            let record = match self.alerts.get_mut(&fp) {
                Some(r) => r,
                None => {
                    if self.alerts.len() >= MAX_ALERTS && cond.key.rule != RuleName::AgentDown {
                        self.overflowed = true;
                        continue;
                    }
                    self.dirty = true;
                    self.alerts.entry(fp.clone()).or_insert(Record {
                        key: cond.key.clone(),
                        phase: Phase::Pending,
                        since_ms: now,
                        severity: settings.severity,
                        summary: String::new(),
                        facts: Vec::new(),
                        help: None,
                        notified: BTreeSet::new(),
                        accepted_ms: BTreeMap::new(),
                        queued: BTreeSet::new(),
                        printed_ms: now,
                    })
                }
            };
            update_facts(record, cond, settings.severity);
            match record.phase {
                Phase::Pending => {
                    if now - record.since_ms >= settings.for_s as i64 * 1000 {
                        record.phase = Phase::Firing;
                        record.since_ms = now;
                        record.printed_ms = now;
                        record.notified.extend(sinks.iter().cloned());
                        record.queued.extend(sinks.iter().cloned());
                        notices.push(notice(&fp, record, NoticeKind::Firing, now, sinks));
                        self.dirty = true;
                    }
                }
                Phase::Firing => {
                    // A sink added since the alert fired gets its firing now.
                    let due: Vec<String> = sinks
                        .into_iter()
                        .filter(|s| !record.queued.contains(s))
                        .filter(|s| {
                            record
                                .accepted_ms
                                .get(s)
                                .is_none_or(|at| now - at >= repeat_ms)
                        })
                        .collect();
                    let console_due = now - record.printed_ms >= repeat_ms;
                    if !due.is_empty() || (self.config.sinks.is_empty() && console_due) {
                        // A sink that never had this alert (added since it
                        // fired) gets a firing; the others a repeat.
                        let (fresh, again): (Vec<String>, Vec<String>) =
                            due.into_iter().partition(|s| !record.notified.contains(s));
                        record.notified.extend(fresh.iter().cloned());
                        record.queued.extend(fresh.iter().chain(&again).cloned());
                        record.printed_ms = now;
                        if !fresh.is_empty() {
                            notices.push(notice(&fp, record, NoticeKind::Firing, now, fresh));
                        }
                        if !again.is_empty() || self.config.sinks.is_empty() {
                            notices.push(notice(&fp, record, NoticeKind::Repeat, now, again));
                        }
                        self.dirty = true;
                    }
                }
            }
        }
        let mut gone = Vec::new();
        for (fp, record) in &self.alerts {
            if present.contains(fp) || eval.is_held(view, &record.key) {
                continue;
            }
            gone.push(fp.clone());
        }
        for fp in gone {
            let Some(record) = self.alerts.remove(&fp) else {
                continue;
            };
            self.dirty = true;
            if record.phase == Phase::Firing {
                let sinks: Vec<String> = record.notified.iter().cloned().collect();
                let mut n = notice(&fp, &record, NoticeKind::Resolved, now, sinks);
                n.ends_at_ms = Some(now);
                notices.push(n);
            }
        }
        self.expire_validator_changed(now, &mut notices);
        notices
    }

    /// A held `ValidatorChanged` (the change unknown after a restart)
    /// resolves once its window has passed.
    fn expire_validator_changed(&mut self, now: i64, notices: &mut Vec<Notice>) {
        let window_ms = (self.config.rule(RuleName::ValidatorChanged).threshold * 1000.0) as i64;
        let expired: Vec<String> = self
            .alerts
            .iter()
            .filter(|(_, r)| {
                r.key.rule == RuleName::ValidatorChanged && now - r.since_ms > window_ms
            })
            .map(|(fp, _)| fp.clone())
            .collect();
        for fp in expired {
            if let Some(record) = self.alerts.remove(&fp) {
                self.dirty = true;
                if record.phase == Phase::Firing {
                    let sinks = record.notified.iter().cloned().collect();
                    let mut n = notice(&fp, &record, NoticeKind::Resolved, now, sinks);
                    n.ends_at_ms = Some(now);
                    notices.push(n);
                }
            }
        }
    }

    /// The delivery thread's report: `sink` accepted (HTTP 2xx) the notice of
    /// alert `fingerprint` at `at_ms`, or gave it up (`accepted == false`:
    /// dropped from a full queue). Either way it is no longer queued.
    pub fn delivered(&mut self, fingerprint: &str, sink: &str, accepted: bool, at_ms: i64) {
        if let Some(record) = self.alerts.get_mut(fingerprint) {
            record.queued.remove(sink);
            if accepted {
                let entry = record.accepted_ms.entry(sink.to_string()).or_insert(at_ms);
                *entry = (*entry).max(at_ms);
            }
            self.dirty = true;
        }
    }

    /// Write the state if it changed (atomic replace, mode 0600).
    pub fn save(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let state = State {
            version: STATE_VERSION,
            alerts: self.alerts.clone(),
            heights: self
                .heights
                .iter()
                .map(|((a, c), m)| (a.clone(), c.clone(), m.clone()))
                .collect(),
        };
        crate::fsutil::write_json_atomic(&self.path, &state)?;
        self.dirty = false;
        Ok(())
    }

    /// What fires now, most severe first, then oldest.
    pub fn firing(&self) -> Vec<FiringAlert> {
        let mut out: Vec<FiringAlert> = self
            .alerts
            .iter()
            .filter(|(_, r)| r.phase == Phase::Firing)
            .map(|(fp, r)| FiringAlert {
                fingerprint: fp.clone(),
                alertname: r.key.rule.as_str().to_string(),
                severity: r.severity,
                agent: r.key.agent.clone(),
                container: r.key.container.clone(),
                since_ms: r.since_ms,
                summary: r.summary.clone(),
            })
            .collect();
        out.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.since_ms.cmp(&b.since_ms))
        });
        out
    }
}

fn update_facts(record: &mut Record, cond: &Condition, severity: Severity) {
    record.summary = cond.summary.clone();
    record.facts = cond.facts.clone();
    record.help = cond.help.clone();
    record.severity = severity;
}

fn notice(fp: &str, r: &Record, kind: NoticeKind, now: i64, sinks: Vec<String>) -> Notice {
    Notice {
        fingerprint: fp.to_string(),
        alertname: r.key.rule.as_str().to_string(),
        severity: r.severity,
        kind,
        agent: r.key.agent.clone(),
        container: r.key.container.clone(),
        summary: r.summary.clone(),
        facts: r.facts.clone(),
        help: r.help.clone(),
        starts_at_ms: r.since_ms,
        ends_at_ms: None,
        issued_ms: now,
        sinks,
    }
}

/// The `alerts` verb's text: what fires now, with severity, since when and
/// labels; `now_ms` for the ages.
pub fn render_firing(firing: &[FiringAlert], now_ms: i64) -> String {
    if firing.is_empty() {
        return "no alert is firing\n".to_string();
    }
    let mut out = String::new();
    for a in firing {
        let labels = match &a.container {
            Some(c) => format!("agent={} container={c}", a.agent),
            None => format!("agent={}", a.agent),
        };
        out.push_str(&format!(
            "{:<8} {:<21} since {} ({} s)  {labels}  {}\n",
            a.severity.as_str(),
            a.alertname,
            crate::log::format_utc(a.since_ms / 1000),
            (now_ms - a.since_ms).max(0) / 1000,
            a.summary
        ));
    }
    out
}

/// The `alerts` verb's `--json` document: `{"firing": [...]}`, each with
/// its labels, severity, since (RFC 3339 and ms) and summary.
pub fn firing_json(firing: &[FiringAlert]) -> serde_json::Value {
    let alerts: Vec<serde_json::Value> = firing
        .iter()
        .map(|a| {
            let mut labels = serde_json::json!({"alertname": a.alertname, "severity": a.severity.as_str(), "agent": a.agent});
            if let Some(c) = &a.container {
                labels["container"] = c.clone().into();
            }
            serde_json::json!({
                "fingerprint": a.fingerprint,
                "labels": labels,
                "since": crate::log::format_utc(a.since_ms / 1000),
                "since_ms": a.since_ms,
                "summary": a.summary,
            })
        })
        .collect();
    serde_json::json!({ "firing": alerts })
}
