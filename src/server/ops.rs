//! The hub's unattended duties: alert rules and their delivery, `/metrics`
//! and `/healthz` on the admin listener, and scheduled commands. The
//! engines live in `alerts/`, `prom.rs`, `admin.rs` and `schedule.rs`; this
//! file feeds them from what the hub sees and acts on what they decide.
//!
//! Memory: the facts the alert rules read (`AgentFacts`) keep no parsed
//! report. Each agent's last `stats`/`summary` stays as text (also while it
//! is away, so its containers' alerts hold) and is parsed only to build a
//! view: every few seconds, and for a `/metrics` scrape.
use super::admin::{AdminQuery, AdminRequest};
use super::alerts::{
    self, AgentFacts, Alerts, AlertsConfig, DeliveryObserver, DeliveryReport, FleetView,
};
use super::control::Update;
use super::hub::Hub;
use super::prom::{self, CommandCounters, CommandOutcome};
use super::schedule::{Planner, Run};
use super::{HubEvent, store::CommandRecord};
use crate::protocol::events::Payload;
use crate::protocol::{CommandResponse, CommandStatus, ErrorCode, now_ms};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender};
use std::time::{Duration, Instant};

/// Alert rules run this often at least, and at most every second: the
/// evaluation is linear in the fleet (~0.1 s at 5,000 agents).
const MAX_EVAL_INTERVAL: Duration = Duration::from_secs(10);
const AGENTS_PER_EVAL_SECOND: usize = 1000;
/// After a start, schedules wait at most this long (beyond two heartbeats)
/// for every registered agent to be back before taking a slot.
const SCHEDULE_SETTLE_MAX: Duration = Duration::from_secs(120);

/// An agent's last `stats` and `summary` frames, as text.
type Reports = (Option<Arc<str>>, Option<Arc<str>>);

/// What the hub keeps for the alert rules, metrics and schedules.
pub(super) struct Ops {
    pub started_ms: i64,
    pub facts: BTreeMap<String, AgentFacts>,
    /// Each agent's last `stats` and `summary` frames, as text.
    pub reports: BTreeMap<String, Reports>,
    pub alerts: Alerts,
    pub counters: CommandCounters,
    pub planner: Option<Planner>,
    /// Scheduled commands in flight: command id → the run.
    pub scheduled: HashMap<String, Run>,
    pub last_eval: Option<Instant>,
}

/// Delivery reports go back to the hub as events.
pub(super) struct Observer(pub SyncSender<HubEvent>);

impl DeliveryObserver for Observer {
    fn report(&self, report: DeliveryReport) {
        let _ = self.0.try_send(HubEvent::AlertDelivery(report));
    }
}

impl Ops {
    pub fn new(alerts: Alerts, planner: Option<Planner>) -> Ops {
        Ops {
            started_ms: now_ms(),
            facts: BTreeMap::new(),
            reports: BTreeMap::new(),
            alerts,
            counters: CommandCounters::default(),
            planner,
            scheduled: HashMap::new(),
            last_eval: None,
        }
    }
}

/// The frame's `data`, for the alert facts.
fn data_of(frame: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(frame).ok()?;
    value.get("data").cloned()
}

impl Hub {
    /// At start: facts for every registered agent, and the backups already
    /// on record (for `BackupStale`).
    pub(super) fn ops_start(&mut self) {
        if let Ok(registry) = self.tokens.load() {
            self.ops_sync_registry(registry.agents.keys().cloned());
        }
        for b in self.store.backups(None) {
            if let Some(facts) = self.ops.facts.get_mut(&b.agent) {
                facts.on_backup(&b.container, b.at_ms);
            }
        }
    }

    /// Every agent with a token has facts (never seen: `last_seen_ms` none),
    /// so `AgentDown` covers one that does not come back after a restart.
    pub(super) fn ops_sync_registry(&mut self, agents: impl Iterator<Item = String>) {
        let registered: Vec<String> = agents.collect();
        self.ops
            .facts
            .retain(|id, _| registered.iter().any(|r| r == id));
        self.ops
            .reports
            .retain(|id, _| registered.iter().any(|r| r == id));
        for id in registered {
            self.ops.facts.entry(id).or_default();
        }
    }

    pub(super) fn ops_seen(&mut self, agent: &str, connected: bool) {
        let facts = self.ops.facts.entry(agent.to_string()).or_default();
        facts.connected = connected;
        facts.last_seen_ms = Some(now_ms());
    }

    pub(super) fn ops_on_report(&mut self, agent: &str, stats: bool, raw: Option<Arc<str>>) {
        let entry = self.ops.reports.entry(agent.to_string()).or_default();
        if stats {
            entry.0 = raw;
        } else {
            entry.1 = raw;
        }
    }

    pub(super) fn ops_on_event(&mut self, agent: &str, payload: &Payload) {
        self.ops
            .facts
            .entry(agent.to_string())
            .or_default()
            .on_event(payload);
    }

    /// A terminal outcome: counters, backup failures, log lines for
    /// notices, and the end of a scheduled run.
    pub(super) fn ops_on_outcome(
        &mut self,
        agent: &str,
        record: &CommandRecord,
        response: &CommandResponse,
    ) {
        let outcome = match (response.status, response.code) {
            (CommandStatus::Completed, _) => CommandOutcome::Completed,
            (_, Some(ErrorCode::Timeout)) => CommandOutcome::Timeout,
            _ => CommandOutcome::Failed,
        };
        self.ops.counters.record(&record.command, outcome);
        let facts = self.ops.facts.entry(agent.to_string()).or_default();
        match (record.command.as_str(), response.status) {
            ("backup_keys", CommandStatus::Failed) => facts.on_backup_failed(
                &record.target,
                now_ms(),
                response.error.as_deref().unwrap_or("failed"),
            ),
            ("logs", CommandStatus::Completed) => {
                if let Some(text) = response.result.as_ref().and_then(Value::as_str) {
                    facts.on_logs(&record.target, text);
                }
            }
            _ => {}
        }
        if let Some(run) = self.ops.scheduled.remove(&record.id)
            && let Some(planner) = self.ops.planner.as_mut()
        {
            planner.finished(&run, now_ms());
            if let Err(e) = planner.save() {
                crate::log::error(&format!("cannot save the schedule state: {e}"));
            }
        }
    }

    /// The fleet as the rules see it now (reports parsed for the occasion).
    pub(super) fn fleet_view(&mut self) -> FleetView {
        for (agent, (stats, summary)) in &self.ops.reports {
            if let Some(facts) = self.ops.facts.get_mut(agent) {
                facts.stats = stats.as_deref().and_then(data_of);
                facts.summary = summary.as_deref().and_then(data_of);
            }
        }
        let view = alerts::fleet_view_from_stats(
            now_ms(),
            self.ops.started_ms,
            self.config.heartbeat_s.max(1),
            &self.ops.facts,
            &[],
        );
        for facts in self.ops.facts.values_mut() {
            facts.stats = None;
            facts.summary = None;
        }
        view
    }

    /// Once a second: evaluate the rules when due, start a scheduled run.
    pub(super) fn ops_tick(&mut self) {
        let every = Duration::from_secs((self.ops.facts.len() / AGENTS_PER_EVAL_SECOND) as u64)
            .clamp(Duration::from_secs(1), MAX_EVAL_INTERVAL);
        if self.ops.last_eval.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.ops.last_eval = Some(Instant::now());
        let view = self.fleet_view();
        match self.ops.alerts.step(&view) {
            Ok(notices) => {
                for notice in notices {
                    self.line_after_commit(notice.line());
                    if let Ok(value) = serde_json::to_value(&notice) {
                        self.store.record_alert(&value, &mut self.batch);
                    }
                }
            }
            Err(e) => crate::log::error(&e),
        }
        if self.ops.alerts.engine.overflowed() {
            crate::log::error("more alerts fire than the engine keeps; see `alerts`");
        }
        self.run_schedule(&view);
    }

    fn run_schedule(&mut self, view: &FleetView) {
        // Right after a start, agents are still reconnecting: a slot taken
        // now would find no target and be spent. Wait until every
        // registered agent is back with a report, or, for one that does not
        // come back, SCHEDULE_SETTLE_MAX.
        let waited_ms = now_ms() - self.ops.started_ms;
        let settle_ms = 2 * self.config.heartbeat_s.max(1) as i64 * 1000;
        let all_back = self.ops.facts.iter().all(|(id, facts)| {
            facts.connected && self.ops.reports.get(id).is_some_and(|r| r.0.is_some())
        });
        let max_ms = SCHEDULE_SETTLE_MAX.as_millis() as i64 + settle_ms;
        if waited_ms < settle_ms || (!all_back && waited_ms < max_ms) {
            return;
        }
        let Some(run) = self.ops.planner.as_mut().and_then(|p| p.next(view)) else {
            return;
        };
        // Issued like a ctl line, so it is recorded and sent the same way;
        // its id comes back through the channel.
        let (tx, rx) = mpsc::channel();
        self.reply = Some(tx);
        self.issued_by = Some("schedule");
        let line = format!("send {} {} {}", run.agent, run.command, run.container);
        let _ = self.on_operator_line(&line);
        self.reply = None;
        self.issued_by = None;
        let mut issued = None;
        let mut said = Vec::new();
        while let Ok(update) = rx.try_recv() {
            match update {
                Update::Issued(list) => issued = list.into_iter().next(),
                Update::Text(t) => said.push(t),
                _ => {}
            }
        }
        match issued {
            Some(command) => {
                self.out.line(&format!(
                    "schedule {}: {} {} on {} ({})",
                    run.schedule, run.command, run.container, run.agent, command.id
                ));
                self.ops.scheduled.insert(command.id, run);
            }
            None => {
                self.out.line(&format!(
                    "schedule {}: {} {} on {} could not be sent: {}",
                    run.schedule,
                    run.command,
                    run.container,
                    run.agent,
                    said.join("; ")
                ));
                if let Some(planner) = self.ops.planner.as_mut() {
                    planner.finished(&run, now_ms());
                }
            }
        }
        if let Some(planner) = self.ops.planner.as_ref()
            && let Err(e) = planner.save()
        {
            crate::log::error(&format!("cannot save the schedule state: {e}"));
        }
    }

    pub(super) fn ops_on_delivery(&mut self, report: DeliveryReport) {
        self.audit(report.audit_entry());
        self.ops.alerts.on_report(&report);
        // Saved now, not at the next evaluation: a crash in between would
        // forget that the sink accepted it and send the notice again. A
        // small atomic write, only when a sink answered.
        if report.settles().is_some()
            && let Err(e) = self.ops.alerts.engine.save()
        {
            crate::log::error(&format!("cannot save the alert state: {e}"));
        }
    }

    /// `/healthz` and `/metrics`, answered by the hub itself: a frozen hub
    /// fails its health check.
    pub(super) fn ops_on_admin(&mut self, request: AdminRequest) {
        match request.query {
            AdminQuery::Healthz => request.answer("ok\n".into()),
            AdminQuery::Metrics => {
                let view = self.fleet_view();
                let firing = self.ops.alerts.engine.firing();
                request.answer(prom::render(&view, &self.ops.counters, &firing));
            }
        }
    }

    /// `alerts`: what fires now.
    pub(super) fn render_alerts(&self) -> String {
        alerts::engine::render_firing(&self.ops.alerts.engine.firing(), now_ms())
    }

    /// `schedules`: the schedule file and its state.
    pub(super) fn render_schedules(&self) -> String {
        match &self.ops.planner {
            Some(planner) => planner.render(now_ms()),
            None => "no schedule file (start the server with --schedules FILE)".into(),
        }
    }
}

/// The alert engine and its sinks, from `--alerts` or the defaults.
pub(super) fn start_alerts(
    data_dir: &std::path::Path,
    file: Option<&std::path::Path>,
    external_url: &str,
    events: SyncSender<HubEvent>,
) -> Result<Alerts, String> {
    let config = match file {
        Some(path) => AlertsConfig::load(path).map_err(|e| e.to_string())?,
        None => AlertsConfig::default(),
    };
    Alerts::start(data_dir, config, external_url, Arc::new(Observer(events)))
}
