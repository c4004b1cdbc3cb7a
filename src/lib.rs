//! warden: run a fleet of Substrate validator nodes from one place.
//!
//! The binary's entry point is `main.rs`; everything lives in this library so
//! that unit tests, benches and the integration tests share one build.
pub mod agent;
pub mod backup;
pub mod chain;
pub mod cli;
pub mod commands;
pub mod cron;
pub mod docker;
pub mod fsutil;
pub mod log;
pub mod metrics;
pub mod operator;
pub mod policy;
pub mod process;
pub mod protocol;
pub mod rpc;
pub mod server;
pub mod session;
pub mod signals;
pub mod transport;

// The server's alert engine, metrics and admin listener live under
// src/server/ but are declared here until the hub's module list (in
// src/server/mod.rs, being rebuilt) takes them: they refer to each other
// only through `super::`, so moving these lines there changes nothing else.
#[path = "server/admin.rs"]
pub mod admin;
#[path = "server/alerts/mod.rs"]
pub mod alerts;
pub mod configcheck;
#[path = "server/prom.rs"]
pub mod prom;
#[path = "server/schedule.rs"]
pub mod schedule;
