//! Cron mode: `warden backup-keys` and `warden restore-keys` run the agent's
//! own backup code on the host, with no server. One line per backup on
//! stdout; on failure one line per failure on stderr and exit status 1.
use crate::agent::backups;
use crate::agent::config::LocalConfig;
use crate::backup::{self, RestoreOptions};
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Default, PartialEq)]
pub struct BackupArgs {
    pub containers: Vec<String>,
    pub all: bool,
    pub dest: Option<PathBuf>,
    pub keep: Option<usize>,
    /// Also queue a `backup_complete` event for the agent to deliver.
    pub notify: bool,
    pub config: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Default, PartialEq)]
pub struct RestoreArgs {
    pub container: String,
    pub file: String,
    pub dest: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
}

/// Cron mode failed; the lines were already printed.
#[derive(Debug)]
pub struct CronFailed(pub String);

impl fmt::Display for CronFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CronFailed {}

fn local(
    config: Option<&std::path::Path>,
    state_dir: Option<PathBuf>,
    dest: Option<PathBuf>,
) -> Result<LocalConfig, CronFailed> {
    let mut local = LocalConfig::load(config, state_dir).map_err(CronFailed)?;
    if let Some(dest) = dest {
        local.backup.dir = dest;
    }
    Ok(local)
}

pub fn backup_keys(args: BackupArgs) -> Result<(), CronFailed> {
    let mut local = local(args.config.as_deref(), args.state_dir, args.dest)?;
    if let Some(keep) = args.keep {
        local.backup.keep = keep;
    }
    let docker = local.docker();
    let containers = if args.all {
        let mut names: Vec<String> = docker
            .list_containers()
            .map_err(|e| CronFailed(format!("cannot list containers: {e}")))?
            .into_iter()
            .flat_map(|c| c.names)
            .filter(|n| local.policy.manages(n))
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(CronFailed(
                "no container here matches policy.containers: nothing to back up".into(),
            ));
        }
        names
    } else {
        for name in &args.containers {
            if !local.policy.manages(name) {
                return Err(CronFailed(format!(
                    "{name} is not a container this host's policy manages (policy.containers); nothing was done"
                )));
            }
        }
        args.containers
    };
    for line in backups::recover_lines(&docker, &local.backup) {
        eprintln!("warden: {line}");
    }
    let mut failures = 0;
    for container in &containers {
        match backup::backup_keys(&docker, container, &local.backup, &mut |_| {}) {
            Ok(report) => {
                println!(
                    "{container}: {} ({} bytes, sha256 {}, node {})",
                    report.path.display(),
                    report.bytes,
                    report.sha256,
                    if report.was_running {
                        "running again"
                    } else {
                        "was stopped, left stopped"
                    }
                );
                for warning in &report.warnings {
                    eprintln!("warden: {container}: warning: {warning}");
                }
                if args.notify {
                    let event = backups::backup_event(&report, 0);
                    if let Err(e) = backups::drop_event(&local.state_dir, &event) {
                        eprintln!(
                            "warden: {container}: backed up, but the agent could not be notified: {e}"
                        );
                        failures += 1;
                    }
                }
            }
            Err(e) => {
                eprintln!("warden: backup of {container} failed: {e}");
                failures += 1;
            }
        }
    }
    if failures > 0 {
        return Err(CronFailed(format!(
            "{failures} of {} backups failed",
            containers.len()
        )));
    }
    Ok(())
}

pub fn restore_keys(args: RestoreArgs) -> Result<(), CronFailed> {
    let local = local(args.config.as_deref(), args.state_dir, args.dest)?;
    if !local.policy.manages(&args.container) {
        return Err(CronFailed(format!(
            "{} is not a container this host's policy manages (policy.containers); nothing was done",
            args.container
        )));
    }
    let docker = local.docker();
    let report = backup::restore_keys(
        &docker,
        &args.container,
        &args.file,
        &local.backup,
        RestoreOptions::default(),
        &mut |step| eprintln!("warden: {}: {step}", args.container),
    )
    .map_err(|e| CronFailed(format!("restore of {} failed: {e}", args.container)))?;
    let what = if report.changed {
        format!("restored {} entries from", report.restored.len())
    } else {
        "already had exactly the keys of".to_string()
    };
    println!(
        "{}: {what} {}{}{}",
        args.container,
        report.backup_file,
        report
            .pre_restore_backup
            .map(|p| format!("; previous keys saved as {p}"))
            .unwrap_or_default(),
        if report.restarted {
            "; node restarted"
        } else {
            ""
        }
    );
    Ok(())
}
