//! warden: run a fleet of Substrate validator nodes from one place.
//!
//! The binary's entry point is `main.rs`; everything lives in this library so
//! that unit tests, benches and the integration tests share one build.
pub mod agent;
pub mod backup;
pub mod chain;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod cron;
pub mod docker;
pub mod fsutil;
pub mod glob;
pub mod http_agent;
pub mod identity;
pub mod log;
pub mod metrics;
pub mod operator;
pub mod operator_keys;
pub mod peer_loop;
pub mod process;
pub mod protocol;
pub mod rpc;
pub mod server;
pub mod signals;
pub mod transport;

pub mod configcheck;
