//! Integration tests: one binary, driving the real `warden` executable
//! against real containers under the real Docker Engine.
mod agent_wire;
mod backups;
mod chain_cmds;
mod durability;
mod era;
mod faults;
mod fleet;
mod readme;
mod secrets;
mod stats_events;
mod support;
mod tls;
mod wire;
