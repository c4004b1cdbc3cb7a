//! Integration tests: one binary, driving the real `warden` executable
//! against real containers under the real Docker Engine.
mod agent_limits;
mod agent_wire;
mod backups;
mod bounded;
mod chain_cmds;
mod chainkeys;
mod ctl;
mod doublesign;
mod durability;
mod era;
mod faults;
mod fleet;
mod hub_scale;
mod netkey;
mod official;
mod packaging;
mod readme;
mod rollout;
mod secrets;
mod signed;
mod signed_server;
mod support;
mod tls;
mod wire;
