//! Integration tests: one binary, driving the real `warden` executable
//! against real containers under the real Docker Engine.
mod agent_limits;
mod agent_wire;
mod alert_rules;
mod alert_support;
mod alerts;
mod backups;
mod chain_cmds;
mod chainkeys;
mod ctl;
mod durability;
mod era;
mod faults;
mod fleet;
mod hub_scale;
mod layers;
mod netkey;
mod official;
mod packaging;
mod readme;
mod secrets;
mod signed;
mod stats_events;
mod support;
mod tls;
mod wire;
