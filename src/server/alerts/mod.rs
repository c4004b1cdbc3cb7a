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
pub use engine::{Engine, FiringAlert};
pub use notice::Notice;
pub use view::{AgentFacts, FleetView, fleet_view_from_stats};
