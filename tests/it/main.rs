//! Integration tests: one binary, driving the real `warden` executable
//! against real containers under the real Docker Engine.
mod agent_limits;
mod agent_wire;
mod backups;
mod chain_cmds;
mod chainkeys;
mod ctl;
mod dashboard;
mod dashboard_cdp;
mod durability;
mod era;
mod faults;
mod fleet;
mod hub_scale;
mod netkey;
mod official;
mod packaging;
mod readme;
mod secrets;
mod signed;
mod support;
mod tls;
mod wire;
