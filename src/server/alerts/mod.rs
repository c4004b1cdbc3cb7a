//! The alert engine: the contract's rules over a snapshot of the fleet, a
//! state machine that turns conditions into notices, and their durable
//! delivery to sinks (Alertmanager webhook, Slack, Discord, Telegram).
//!
//! The parts, each with one job:
//! - [`config`]: the alerts file (`--alerts FILE`) and every rule's defaults.
//! - [`view`]: [`FleetView`], the snapshot the rules read, and
//!   [`AgentFacts`], what the hub remembers of each agent to build it.
//! - [`rules`]: the pure evaluation of every rule over a view.
//! - [`engine`]: hold-down (`for_s`), repeats, one resolved notice, state
//!   persisted in the data dir so a restart neither repeats nor sticks.
//! - [`notice`]: what one notice says, and each sink's payload.
//! - [`delivery`]: per-sink durable queues and the threads that post them.
//!
//! Driving it from the hub (the whole contract of this module with it):
//! - keep an [`AgentFacts`] per agent that has a token (registered ones not
//!   yet seen too): set `connected`/`last_seen_ms` on connect, any frame and
//!   disconnect; call `on_stats`, `on_summary`, `on_event` (backup_complete,
//!   validator_*; also for stored backups at start), `on_backup_failed` (a
//!   failed `backup_keys`), `on_logs` (a `logs` result);
//! - on every tick: `fleet_view_from_stats(now, started, heartbeat, &facts,
//!   &[])`, then [`Alerts::step`]; print each notice's `line()` and record it;
//! - on each [`DeliveryReport`] (sent by the [`DeliveryObserver`] into the
//!   hub's channel): audit `report.audit_entry()`, then [`Alerts::on_report`].
//!
//! Invariants: nothing here blocks the hub except the engine's small state
//! file write; secrets read from `url_file`/`bot_token_file` live only in
//! [`config::Secret`] and in the request sent to the sink, never in a file
//! warden writes or a line it prints (a sink is named by `name` or index).
pub mod config;
pub mod delivery;
pub mod engine;
pub mod notice;
pub mod rules;
pub mod view;

#[cfg(test)]
mod tests_delivery;
#[cfg(test)]
mod tests_engine;
#[cfg(test)]
mod tests_rules;

pub use config::{AlertsConfig, ConfigError, RuleName, Severity};
pub use delivery::{Backoff, Delivery, DeliveryObserver, DeliveryReport};
pub use engine::{Engine, FiringAlert};
pub use notice::Notice;
pub use view::{AgentFacts, FleetView, fleet_view_from_stats};

/// The engine and its delivery together, in the order that keeps the
/// at-least-once promise: evaluate, queue every notice durably, then save
/// the engine's state. What the hub holds.
pub struct Alerts {
    pub engine: Engine,
    pub delivery: Delivery,
}

impl Alerts {
    /// Restore the engine's state and start one delivery thread per sink
    /// (which first sends what an earlier run left queued).
    pub fn start(
        data_dir: &std::path::Path,
        config: AlertsConfig,
        external_url: &str,
        observer: std::sync::Arc<dyn DeliveryObserver>,
    ) -> Result<Alerts, String> {
        let delivery = Delivery::start(
            data_dir,
            &config.sinks,
            external_url,
            observer,
            Backoff::default(),
        )
        .map_err(|e| e.to_string())?;
        let engine = Engine::open(data_dir, config).map_err(|e| e.to_string())?;
        Ok(Alerts { engine, delivery })
    }

    /// One evaluation: returns the notices (for the server's output and
    /// history) after they are queued and the state saved.
    pub fn step(&mut self, view: &FleetView) -> Result<Vec<Notice>, String> {
        let notices = self.engine.evaluate(view);
        for n in &notices {
            self.delivery.enqueue(n, view.now_ms);
        }
        self.engine
            .save()
            .map_err(|e| format!("cannot save the alert state: {e}; check the data dir"))?;
        Ok(notices)
    }

    /// A delivery report reached the hub: settle it in the engine.
    pub fn on_report(&mut self, report: &DeliveryReport) {
        if let Some(accepted) = report.settles() {
            self.engine
                .delivered(&report.fingerprint, &report.sink, accepted, report.at_ms);
        }
    }
}
