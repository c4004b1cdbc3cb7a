//! Integration tests: one binary, driving the real `warden` executable
//! against real containers under the real Docker Engine.
mod agent_limits;
mod agent_wire;
mod alert_rules;
mod alert_support;
mod alerts;
mod backups;
mod bounded;
mod chain_cmds;
mod chainkeys;
mod ctl;
mod dashboard;
#[allow(
    dead_code,
    reason = "shared with the load generator's dashboard bench; each uses a part"
)]
mod dashboard_cdp;
mod doublesign;
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
mod rollout;
mod secrets;
mod signed;
mod signed_server;
mod stats_events;
mod support;
mod tls;
mod wire;
