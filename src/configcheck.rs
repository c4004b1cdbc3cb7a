//! `warden config check FILE`: validate an agent config, an alerts file or
//! a schedule file the way the agent or server would load it, and print
//! what it would do. Reads secret files (to check them) but never prints
//! their contents.
//!
//! The kind is taken from `--kind`, else from the file's top-level keys:
//! `sinks`/`rules`/`repeat_interval_s` make an alerts file, `schedules` a
//! schedule file, anything else an agent config.
use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Agent,
    Alerts,
    Schedules,
}

impl Kind {
    pub fn parse(word: &str) -> Option<Kind> {
        match word {
            "agent" => Some(Kind::Agent),
            "alerts" => Some(Kind::Alerts),
            "schedules" => Some(Kind::Schedules),
            _ => None,
        }
    }
}

const MAX_FILE_BYTES: u64 = 1 << 20;

/// Which kind of file this JSON is, by its top-level keys.
pub fn detect(whole: &Value) -> Kind {
    let has = |k: &str| whole.get(k).is_some();
    if has("schedules") {
        Kind::Schedules
    } else if has("sinks") || has("rules") || has("repeat_interval_s") {
        Kind::Alerts
    } else {
        Kind::Agent
    }
}

/// Check `path`; on success, the text describing what it would do.
pub fn check(path: &Path, kind: Option<Kind>) -> Result<String, String> {
    let bytes = crate::server::alerts::config::read_bounded(path, MAX_FILE_BYTES)
        .map_err(|e| e.to_string())?;
    let whole: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not JSON ({e}); fix the file", path.display()))?;
    let kind = kind.unwrap_or_else(|| detect(&whole));
    let body = match kind {
        Kind::Alerts => crate::server::alerts::AlertsConfig::from_json(&bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .describe(),
        Kind::Schedules => crate::server::schedule::ScheduleFile::from_json(&bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .describe(),
        Kind::Agent => describe_agent(path, &whole)?,
    };
    Ok(format!("{}: ok\n{body}", path.display()))
}

fn describe_agent(path: &Path, whole: &Value) -> Result<String, String> {
    let config = crate::agent::config::LocalConfig::load(Some(path), None)?;
    let mut out = String::from("agent config:\n");
    let _ = writeln!(out, "  state dir {}", config.state_dir.display());
    let _ = writeln!(
        out,
        "  stats every {} s, summary (era, payouts) every {} s",
        config.stats_interval.as_secs(),
        config.summary_interval.as_secs()
    );
    let _ = writeln!(
        out,
        "  docker: {} (timeout {} s, stop grace {} s)",
        config.docker.program.display(),
        config.docker.timeout_s,
        config.docker.stop_grace_s
    );
    let _ = writeln!(
        out,
        "  key backups in {}, {} kept per container",
        config.backup.dir.display(),
        config.backup.keep
    );
    let _ = writeln!(
        out,
        "  rpc timeout {} s, {} endpoint overrides",
        config.rpc.timeout_s,
        config.rpc.endpoints.len()
    );
    let containers: Vec<String> = whole
        .pointer("/policy/containers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if containers.is_empty() {
        let _ = writeln!(
            out,
            "  manages no container (policy.containers is empty or absent)"
        );
    } else {
        let _ = writeln!(
            out,
            "  manages containers matching: {}",
            containers.join(" ")
        );
    }
    let permitted = config.policy.permitted_commands();
    let _ = writeln!(
        out,
        "  allows: {}",
        if permitted.is_empty() {
            "nothing (read-only reports)".to_string()
        } else {
            permitted.join(" ")
        }
    );
    if let Some(p) = config.policy.payout() {
        let _ = writeln!(
            out,
            "  payout script {} (timeout {} s)",
            p.script().display(),
            p.timeout().as_secs()
        );
    }
    Ok(out)
}
