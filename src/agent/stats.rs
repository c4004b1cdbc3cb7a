//! The `stats` report, sent every interval while connected: each managed
//! container's state and resource use, plus a few host facts.
use super::Agent;
use crate::docker::ContainerInspect;
use crate::metrics::MetricsClient;
use crate::protocol::reports::{
    ContainerRow, Entries, Host, HostDetail, KeystoreEntry, NodeReport, RowDetail, StatsReport,
};
use crate::protocol::{Message, now_ms};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub fn spawn(agent: Arc<Agent>) {
    thread::Builder::new()
        .name("stats".into())
        .spawn(move || {
            let metrics = MetricsClient::new(Duration::from_secs(agent.config.rpc.timeout_s));
            loop {
                thread::sleep(agent.config.stats_interval);
                super::backups::pick_up_dropped_events(&agent);
                if agent.is_connected() {
                    let report = collect(&agent, &metrics);
                    agent.send(&Message::Stats(report));
                }
            }
        })
        .expect("spawn stats thread");
}

fn host_facts(agent: &Agent) -> Host {
    let load: Vec<f64> = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|s| s.parse().ok())
        .collect();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v * 1024)
    };
    Host {
        name: Some(agent.config.host_name.clone()),
        detail: Some(Box::new(HostDetail {
            load,
            mem_total_bytes: kib("MemTotal:"),
            mem_available_bytes: kib("MemAvailable:"),
            state_dir: Some(super::limits::disk_report(agent)),
        })),
    }
}

pub fn collect(agent: &Agent, metrics: &MetricsClient) -> StatsReport {
    let timestamp = now_ms();
    let host = host_facts(agent);
    let (containers, inspected, error) = match container_rows(agent) {
        Ok((rows, inspected)) => (rows, inspected, None),
        Err(e) => (Vec::new(), Vec::new(), Some(e.to_string())),
    };
    StatsReport {
        timestamp: Some(timestamp),
        host,
        containers: Some(containers),
        nodes: node_reports(agent, metrics, &inspected),
        error,
    }
}

/// Every node probed at once, so one slow node delays the report by at
/// most the RPC timeout, not once per node.
fn node_reports(
    agent: &Agent,
    metrics: &MetricsClient,
    inspected: &[ContainerInspect],
) -> Entries<NodeReport> {
    thread::scope(|scope| {
        let probes: Vec<_> = inspected
            .iter()
            .map(|c| {
                let probe = scope.spawn(move || {
                    let mut status = super::node::status(agent, metrics, c);
                    // A stopped node's keystore is listed here, and a running
                    // one's until the summary lists it: the server refuses a
                    // `start` whose keys another node holds, and needs every
                    // node's keys (a node without a keystore holds none).
                    if (!c.state.running || agent.keystore_of(&c.name).is_none())
                        && let Ok(keys) = super::node::keystore_listing(agent, c)
                    {
                        agent.remember_keystore(&c.name, &keys);
                    }
                    status.keystore = agent.keystore_of(&c.name).map(|listed| {
                        listed
                            .into_iter()
                            .map(|(key_type, public)| KeystoreEntry::new(&key_type, &public))
                            .collect()
                    });
                    status
                });
                (c.name.clone(), probe)
            })
            .collect();
        probes
            .into_iter()
            .map(|(name, probe)| {
                (
                    name,
                    probe.join().unwrap_or_else(|_| NodeReport {
                        rpc_error: Some("probe panicked".into()),
                        ..NodeReport::default()
                    }),
                )
            })
            .collect()
    })
}

type Rows = (Vec<ContainerRow>, Vec<ContainerInspect>);

/// One `docker stats` for the running containers; `ps` and `inspect` only
/// when `docker events` said something changed (see `watch.rs`).
fn container_rows(agent: &Agent) -> Result<Rows, crate::docker::DockerError> {
    let inspected = agent.watch.containers(agent)?;
    if inspected.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let running: Vec<&str> = inspected
        .iter()
        .filter(|c| c.state.running)
        .map(|c| c.name.as_str())
        .collect();
    // Resource use is best effort: a container may stop between the calls.
    let usage = if running.is_empty() {
        Vec::new()
    } else {
        agent.docker.stats(&running).unwrap_or_default()
    };
    let rows = inspected
        .iter()
        .map(|c| {
            let u = usage.iter().find(|u| u.name == c.name);
            ContainerRow {
                name: Some(c.name.clone()),
                state: Some(c.state.status.clone()),
                restart_count: Some(c.restart_count),
                cpu_percent: u.and_then(|u| u.cpu_percent),
                mem_used_bytes: u.and_then(|u| u.mem_used_bytes),
                detail: Some(Box::new(RowDetail {
                    health: c.state.health.clone(),
                    started_at: Some(c.state.started_at.clone()),
                    uptime_s: uptime_s(c, now_ms()),
                    image: Some(c.image.clone()),
                    mem_limit_bytes: u.and_then(|u| u.mem_limit_bytes),
                    data_free_bytes: data_free_bytes(c),
                })),
            }
        })
        .collect();
    Ok((rows, inspected))
}

/// Free space where the node keeps its data: the host side of the mount
/// holding its base path (`--base-path`, default /root/data), from `df`.
/// `None` when the data lives in the container's own layer.
fn data_free_bytes(c: &ContainerInspect) -> Option<u64> {
    let base = c
        .command_line_value("--base-path")
        .or_else(|| c.command_line_value("-d"))
        .unwrap_or("/root/data");
    let mount = c
        .mounts
        .iter()
        .filter(|m| base.starts_with(m.destination.trim_end_matches('/')) && !m.source.is_empty())
        .max_by_key(|m| m.destination.len())?;
    let limits = crate::process::Limits {
        timeout: Duration::from_secs(5),
        cap: 4096,
        keep: crate::process::Keep::Head,
    };
    let out = crate::process::run(
        "df".as_ref(),
        &["-Pk".to_string(), mount.source.clone()],
        &limits,
    )
    .ok()?;
    parse_df_available(&String::from_utf8_lossy(&out.stdout.bytes))
}

/// The "Available" column of `df -Pk` (POSIX format), in bytes.
fn parse_df_available(text: &str) -> Option<u64> {
    let line = text.lines().nth(1)?;
    line.split_whitespace()
        .nth(3)?
        .parse::<u64>()
        .ok()
        .map(|kib| kib * 1024)
}

/// Seconds since the container started, if it is running.
pub fn uptime_s(c: &crate::docker::ContainerInspect, now_ms: i64) -> Option<i64> {
    if !c.state.running {
        return None;
    }
    c.state
        .started_at_ms()
        .map(|started| (now_ms - started).max(0) / 1000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn df_available_column() {
        let text = "Filesystem     1024-blocks      Used Available Capacity Mounted on\n/dev/vda         263174148  12345678 83886080      13% /\n";
        assert_eq!(super::parse_df_available(text), Some(83_886_080 * 1024));
        assert_eq!(super::parse_df_available("garbage"), None);
    }
}
