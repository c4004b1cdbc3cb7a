//! Schedules (`warden server --schedules FILE`): commands the server issues
//! on its own, e.g. a nightly `backup_keys` of every validator. A pure
//! planner: the hub asks [`Planner::next`] what to issue now and reports
//! each outcome with [`Planner::finished`].
//!
//! ```json
//! { "schedules": [
//!     { "name": "nightly-backup", "command": "backup_keys", "at": "03:17" },
//!     { "name": "rotate", "command": "rotate_keys", "at": "04:00", "every_days": 30, "enabled": true } ] }
//! ```
//! Invariants:
//! - One scheduled command runs at a time across the whole fleet, and the
//!   next waits `gap_s` after it ended: a `backup_keys` stops its node for a
//!   moment, and two validators must never be down at once.
//! - Each schedule runs once per slot (`at` UTC, every `every_days` days).
//!   A slot missed while the server was down runs once at start (only the
//!   latest missed slot: never a burst), then the schedule waits for its
//!   next slot. State (the slot done, the targets left) is saved in
//!   `<data dir>/schedules.json`, so a restart mid-run neither repeats a
//!   target that finished nor skips one that did not.
//! - `rotate_keys` is off unless its entry says `"enabled": true`: new keys
//!   must then be set on chain (`session.setKeys`) and take effect after the
//!   current session and two more (about 36 h on Creditcoin 3).
use super::alerts::view::FleetView;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const DAY_MS: i64 = 86_400_000;
const MAX_SCHEDULES: usize = 64;
/// Commands a schedule may issue. `payout` and `check_keys` change nothing
/// on the node; `backup_keys` stops it briefly; `rotate_keys` is opt-in.
pub const SCHEDULABLE: [&str; 4] = ["backup_keys", "payout", "check_keys", "rotate_keys"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    command: String,
    /// `HH:MM`, UTC.
    at: String,
    every_days: Option<u32>,
    /// Agent ids or globs (`val-*`); default every agent.
    agents: Option<Vec<String>>,
    /// `validators` (default: nodes with the authority role or a stash) or `all`.
    targets: Option<String>,
    gap_s: Option<u64>,
    timeout_s: Option<u64>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    schedules: Vec<FileEntry>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub name: String,
    pub command: String,
    /// Minutes after 00:00 UTC.
    pub at_min: u32,
    pub every_days: u32,
    pub agents: Vec<String>,
    pub all_containers: bool,
    pub gap_s: u64,
    pub timeout_s: u64,
    pub enabled: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScheduleFile {
    pub schedules: Vec<Schedule>,
}

fn parse_at(at: &str) -> Option<u32> {
    let (h, m) = at.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && at.len() == 5).then_some(h * 60 + m)
}

impl ScheduleFile {
    pub fn load(path: &Path) -> Result<ScheduleFile, String> {
        let bytes =
            super::alerts::config::read_bounded(path, 1 << 20).map_err(|e| e.to_string())?;
        ScheduleFile::from_json(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_json(bytes: &[u8]) -> Result<ScheduleFile, String> {
        let file: File = serde_json::from_slice(bytes)
            .map_err(|e| format!("schedule file: {e}; fix the JSON (see docs/operations.md)"))?;
        if file.schedules.len() > MAX_SCHEDULES {
            return Err(format!("at most {MAX_SCHEDULES} schedules"));
        }
        let mut out = ScheduleFile::default();
        for e in file.schedules {
            let name = e.name;
            if name.is_empty() || name.len() > 64 || out.schedules.iter().any(|s| s.name == name) {
                return Err(format!(
                    "schedule names must be unique, 1-64 characters: {name:?}"
                ));
            }
            if !SCHEDULABLE.contains(&e.command.as_str()) {
                return Err(format!(
                    "schedule {name}: command {:?} cannot be scheduled; use one of {}",
                    e.command,
                    SCHEDULABLE.join(", ")
                ));
            }
            let at_min = parse_at(&e.at)
                .ok_or_else(|| format!("schedule {name}: at must be HH:MM (UTC), e.g. 03:17"))?;
            let every_days = e.every_days.unwrap_or(1);
            if !(1..=366).contains(&every_days) {
                return Err(format!("schedule {name}: every_days must be 1 to 366"));
            }
            let all_containers = match e.targets.as_deref() {
                None | Some("validators") => false,
                Some("all") => true,
                Some(other) => {
                    return Err(format!(
                        "schedule {name}: targets {other:?}: use validators or all"
                    ));
                }
            };
            let timeout_s = e.timeout_s.unwrap_or(900);
            if !(10..=86_400).contains(&timeout_s) {
                return Err(format!("schedule {name}: timeout_s must be 10 to 86400"));
            }
            let rotation = e.command == "rotate_keys";
            out.schedules.push(Schedule {
                name,
                command: e.command,
                at_min,
                every_days,
                agents: e.agents.unwrap_or_else(|| vec!["*".to_string()]),
                all_containers,
                gap_s: e.gap_s.unwrap_or(60).min(86_400),
                timeout_s,
                // Rotation only when asked for in so many words.
                enabled: e.enabled.unwrap_or(!rotation),
            });
        }
        Ok(out)
    }

    pub fn describe(&self) -> String {
        let mut out = format!(
            "schedule file: {} schedules, one command at a time across the fleet\n",
            self.schedules.len()
        );
        for s in &self.schedules {
            out.push_str(&format!(
                "  {} {}: {} every {} day(s) at {:02}:{:02} UTC on {} of agents {}; {} s between nodes, {} s timeout\n",
                s.name,
                if s.enabled { "(on)" } else { "(off)" },
                s.command,
                s.every_days,
                s.at_min / 60,
                s.at_min % 60,
                if s.all_containers { "every node" } else { "validators" },
                s.agents.join(","),
                s.gap_s,
                s.timeout_s
            ));
            if s.command == "rotate_keys" {
                out.push_str("    warning: new keys must be set on chain (session.setKeys); they take effect after the current session and two more (about 36 h on Creditcoin 3)\n");
            }
        }
        out
    }
}

impl Schedule {
    /// The latest slot at or before `now_ms` (Unix ms), or None before the first.
    pub fn slot_at_or_before(&self, now_ms: i64) -> Option<i64> {
        let period = self.every_days as i64 * DAY_MS;
        let offset = self.at_min as i64 * 60_000;
        // Slots are counted from the Unix epoch, so they are stable.
        let k = (now_ms - offset).div_euclid(period);
        let slot = k * period + offset;
        (slot >= 0).then_some(slot)
    }

    fn targets(&self, view: &FleetView) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (agent, a) in &view.agents {
            if !self
                .agents
                .iter()
                .any(|p| crate::glob::glob_match(p, agent))
                || !a.connected
            {
                continue;
            }
            for (name, c) in &a.containers {
                if c.running() && (self.all_containers || c.is_validator()) {
                    out.push((agent.clone(), name.clone()));
                }
            }
        }
        out
    }
}

/// One command to issue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub schedule: String,
    pub command: String,
    pub agent: String,
    pub container: String,
    pub slot_ms: i64,
    pub started_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Progress {
    /// The slot being run, or the last one finished.
    slot_ms: i64,
    /// Targets of that slot still to run.
    left: Vec<(String, String)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    schedules: BTreeMap<String, Progress>,
    running: Option<Run>,
    /// When the last run ended: the next waits its gap after it.
    ended_ms: i64,
}

pub struct Planner {
    file: ScheduleFile,
    path: PathBuf,
    state: State,
}

impl Planner {
    /// A first start marks every schedule's current slot as done, so a new
    /// schedule does not run at once; afterwards a missed slot runs once.
    pub fn open(data_dir: &Path, file: ScheduleFile, now_ms: i64) -> Result<Planner, String> {
        let path = data_dir.join("schedules.json");
        let mut state: State = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| format!("{} is unreadable ({e}); fix or remove it", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        for s in &file.schedules {
            state
                .schedules
                .entry(s.name.clone())
                .or_insert_with(|| Progress {
                    slot_ms: s.slot_at_or_before(now_ms).unwrap_or(0),
                    left: Vec::new(),
                });
        }
        Ok(Planner { file, path, state })
    }

    /// What to issue now, if anything: at most one command in flight.
    pub fn next(&mut self, view: &FleetView) -> Option<Run> {
        let now = view.now_ms;
        if let Some(run) = &self.state.running {
            let timeout = self.schedule(&run.schedule).map_or(900, |s| s.timeout_s);
            if now - run.started_ms < timeout as i64 * 1000 {
                return None;
            }
            let run = run.clone();
            self.finished(&run, now);
        }
        for s in self.file.schedules.iter().filter(|s| s.enabled) {
            let gap_ms = s.gap_s as i64 * 1000;
            if now - self.state.ended_ms < gap_ms {
                continue;
            }
            let progress = self.state.schedules.entry(s.name.clone()).or_default();
            if let Some(slot) = s.slot_at_or_before(now)
                && slot > progress.slot_ms
            {
                // A new slot (or the latest missed one): its targets now.
                progress.slot_ms = slot;
                progress.left = s.targets(view);
            }
            while let Some((agent, container)) = progress.left.first().cloned() {
                progress.left.remove(0);
                // Still there and connected? Else skipped for this slot.
                let present = view.agents.get(&agent).is_some_and(|a| {
                    a.connected && a.containers.get(&container).is_some_and(|c| c.running())
                });
                if !present {
                    continue;
                }
                let run = Run {
                    schedule: s.name.clone(),
                    command: s.command.clone(),
                    agent,
                    container,
                    slot_ms: progress.slot_ms,
                    started_ms: now,
                };
                self.state.running = Some(run.clone());
                return Some(run);
            }
        }
        None
    }

    fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.file.schedules.iter().find(|s| s.name == name)
    }

    /// The run's command reached a terminal status (or the hub gave up).
    pub fn finished(&mut self, run: &Run, now_ms: i64) {
        if self.state.running.as_ref() == Some(run) {
            self.state.running = None;
            self.state.ended_ms = now_ms;
        }
    }

    pub fn save(&self) -> std::io::Result<()> {
        crate::fsutil::write_json_atomic(&self.path, &self.state)
    }

    /// The `schedules` verb: each schedule, its next slot, what is left.
    pub fn render(&self, now_ms: i64) -> String {
        let mut out = String::new();
        for s in &self.file.schedules {
            let period = s.every_days as i64 * DAY_MS;
            let next = s.slot_at_or_before(now_ms).map_or(0, |slot| slot + period);
            let left = self
                .state
                .schedules
                .get(&s.name)
                .map_or(0, |p| p.left.len());
            out.push_str(&format!(
                "{:<20} {:<12} {:<4} next {}  {} node(s) left this slot\n",
                s.name,
                s.command,
                if s.enabled { "on" } else { "off" },
                crate::log::format_utc(next / 1000),
                left
            ));
        }
        if let Some(r) = &self.state.running {
            out.push_str(&format!(
                "running: {} {} on {}/{}\n",
                r.schedule, r.command, r.agent, r.container
            ));
        }
        if out.is_empty() {
            out.push_str("no schedule\n");
        }
        out
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
