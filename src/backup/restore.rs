//! The order of things in a restore (see the module docs of `backup` for why):
//! checks before anything is touched, the current keys saved, then for a running node
//! stage + swap by renames + restart ([`RestoreRun::running`]), for a stopped one a copy
//! over ([`RestoreRun::stopped`]), and the result read back and compared.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use super::archive::{self, Entry, Origin, ValidArchive};
use super::chain::{ChainDir, is_missing_path};
use super::engine::Engine;
use super::error::{BackupError, Cause, KeysState, NodeState, Operation};
use super::flow::{
    EXEC_TIMEOUT, Hooks, check_container, contained, failed, find_chain, inspect,
    node_state_after_start, panic_message, remove_marker, running_state, settle_stale_marker,
    start_again, take_marker, with_keys,
};
use super::marker::{self, Marker, OpGuard};
use super::owner;
use super::store::{self, ReadError, Scratch};
use super::{BackupConfig, RestoreOptions, RestoreReport};

const OP: Operation = Operation::Restore;

fn check_owner(
    name: &str,
    archive: &ValidArchive,
    container: &str,
    host: &str,
    options: RestoreOptions,
) -> Result<(), BackupError> {
    // The keys the header says the archive holds must be the ones it holds, whoever
    // restores it: the list is what an operator (or a guard) reads without extracting.
    if let Some(recorded) = archive.origin.as_ref().and_then(|o| o.keys.as_ref())
        && *recorded != archive.keystore_names()
    {
        return Err(BackupError::UnsafeArchive {
            name: name.to_owned(),
            problem: "the public keys its header records differ from the keystore it holds"
                .to_owned(),
        });
    }
    if options.allow_other_container {
        return Ok(());
    }
    let refuse = |backed_up: Option<String>| BackupError::OtherContainer {
        name: name.to_owned(),
        container: container.to_owned(),
        backed_up,
    };
    match store::parse_archive_name(name) {
        Some(parsed) if parsed.container == container => {}
        Some(parsed) => return Err(refuse(Some(parsed.container))),
        None => return Err(refuse(None)),
    }
    match &archive.origin {
        Some(origin) if origin.container != container => {
            Err(refuse(Some(origin.container.clone())))
        }
        // `3node0` exists on every host: the same name on another host is another node.
        Some(Origin {
            host: Some(other), ..
        }) if other != host => Err(refuse(Some(format!("{container} on host {other}")))),
        _ => Ok(()),
    }
}

/// Reads, checksums and validates the named backup. Nothing is written.
fn load_backup(
    cfg: &BackupConfig,
    name: &str,
    container: &str,
    options: RestoreOptions,
) -> Result<ValidArchive, BackupError> {
    store::check_backup_name(name).map_err(|reason| BackupError::InvalidBackupName {
        name: name.to_owned(),
        reason,
    })?;
    let bytes = store::read_backup(&cfg.dir, name).map_err(|error| match error {
        ReadError::NotFound => BackupError::BackupNotFound {
            name: name.to_owned(),
        },
        ReadError::NotRegular(reason) => BackupError::InvalidBackupName {
            name: name.to_owned(),
            reason,
        },
        ReadError::TooLarge => BackupError::UnsafeArchive {
            name: name.to_owned(),
            problem: format!("it is larger than {} bytes", archive::MAX_ARCHIVE_BYTES),
        },
        ReadError::Io(error) => failed(
            Operation::Restore,
            container,
            "reading the backup",
            error,
            NodeState::NotStopped,
        ),
    })?;
    store::check_checksum(&cfg.dir, name, &bytes).map_err(|problem| BackupError::Checksum {
        name: name.to_owned(),
        problem,
    })?;
    let archive = archive::read_archive(&bytes).map_err(|problem| BackupError::UnsafeArchive {
        name: name.to_owned(),
        problem,
    })?;
    check_owner(name, &archive, container, &cfg.host, options)?;
    Ok(archive)
}

fn in_tops(entry: &Entry, tops: &[&str]) -> bool {
    tops.iter()
        .any(|top| entry.path == *top || entry.path.starts_with(&format!("{top}/")))
}

fn run_in(engine: &dyn Engine, container: &str, argv: &[&str]) -> Result<(), Cause> {
    let output = engine.exec(container, argv, EXEC_TIMEOUT)?;
    if output.exit_code == 0 {
        Ok(())
    } else {
        Err(Cause::InContainer(format!(
            "`{}` exited {}: {}",
            argv.join(" "),
            output.exit_code,
            output.stderr.trim()
        )))
    }
}

pub fn restore_with(
    engine: &dyn Engine,
    container: &str,
    backup_file: &str,
    cfg: &BackupConfig,
    options: RestoreOptions,
    hooks: &Hooks,
    progress: &mut dyn FnMut(&str),
) -> Result<RestoreReport, BackupError> {
    check_container(container)?;
    let _guard = OpGuard::acquire(container)?;
    let archive = load_backup(cfg, backup_file, container, options)?;
    let tops = archive.top_dirs();
    progress(&format!(
        "{backup_file}: checksum and {} entries verified",
        archive.entries.len()
    ));
    let not_stopped =
        |step: &str, cause: Cause| failed(OP, container, step, cause, NodeState::NotStopped);
    store::prepare_dir(&cfg.dir)
        .map_err(|error| not_stopped("preparing the backup directory", error.into()))?;
    settle_stale_marker(engine, cfg, container, OP, progress)?;
    let inspect = inspect(engine, container, OP)?;
    let was_running = running_state(&inspect, container)?;
    let scratch = Scratch::new(&cfg.dir, "restore")
        .map_err(|error| not_stopped("creating a private temp directory", error.into()))?;
    let user = owner::node_user(engine, &inspect, scratch.path()).map_err(|reason| {
        BackupError::NotPossible {
            container: container.to_owned(),
            reason: format!("the owner of its restored files is unknown: {reason}"),
        }
    })?;
    let chain = find_chain(
        engine,
        container,
        &inspect,
        cfg,
        was_running,
        scratch.path(),
        &user.home,
        OP,
        progress,
    )?;

    // The backup's tree, as it will be copied in: the archive's modes (0700, 0600) and
    // the node user's ownership, which `docker cp` carries into the container (see
    // `owner`).
    let payload = scratch
        .subdir("payload")
        .map_err(|error| not_stopped("extracting the backup", error.into()))?;
    archive
        .extract_to(&payload)
        .map_err(|error| not_stopped("extracting the backup", error.into()))?;
    if let Err(error) = owner::chown_tree(&payload, user.uid, user.gid) {
        return Err(BackupError::NotPossible {
            container: container.to_owned(),
            reason: format!(
                "its node runs as uid {} gid {}, and the restored files cannot be given to \
                 that user ({error}); run warden as root (it needs CAP_CHOWN)",
                user.uid, user.gid
            ),
        });
    }

    // The keys in place now.
    let current = scratch
        .subdir("current")
        .map_err(|error| not_stopped("copying the current keys out", error.into()))?;
    let mut present: Vec<&str> = Vec::new();
    for top in archive::TOP_DIRS {
        match engine.cp_from(container, &chain.path_of(top), &current) {
            Ok(()) => present.push(top),
            Err(error) if is_missing_path(&error) => {}
            Err(error) => return Err(not_stopped("copying the current keys out", error.into())),
        }
    }
    let current_entries = match archive::scan_tree(&current) {
        Ok(entries) => entries,
        Err(archive::TreeError::Unsupported(problem)) => {
            return Err(BackupError::NotPossible {
                container: container.to_owned(),
                reason: format!("its current keys cannot be saved first: {problem}"),
            });
        }
        Err(archive::TreeError::Io(error)) => {
            return Err(not_stopped("copying the current keys out", error.into()));
        }
    };
    let archive_names = archive.names();
    let removed: Vec<String> = current_entries
        .iter()
        .filter(|e| in_tops(e, &tops))
        .map(Entry::display_name)
        .filter(|name| !archive_names.contains(name))
        .collect();
    let identical =
        archive::compare_tree(&current, &archive.entries, &archive.contents, &tops, false)
            .map_err(|error| not_stopped("comparing the current keys", error.into()))?
            .is_none();
    let mut report = RestoreReport {
        container: container.to_owned(),
        backup_file: backup_file.to_owned(),
        chain: chain.clone(),
        restored: archive_names.clone(),
        removed: removed.clone(),
        changed: false,
        pre_restore_backup: None,
        was_running,
        restarted: false,
        warnings: Vec::new(),
    };
    if identical {
        progress(&format!(
            "{container} already has exactly the keys of {backup_file}; nothing to do"
        ));
        return Ok(report);
    }
    if !was_running && !removed.is_empty() {
        return Err(BackupError::NotPossible {
            container: container.to_owned(),
            reason: format!(
                "it is stopped, and its key directories hold {} entr{} the backup does not \
                 ({}); replacing them exactly needs the container running (docker cannot \
                 delete files in a stopped container, and warden never starts a stopped \
                 validator by itself): start it and restore again",
                removed.len(),
                if removed.len() == 1 { "y" } else { "ies" },
                removed.join(", ")
            ),
        });
    }

    let now = hooks.now();
    let run = RestoreRun {
        engine,
        container,
        cfg,
        hooks,
        chain: &chain,
        scratch: &scratch,
        payload: &payload,
        current: &current,
        tops: &tops,
        present: &present,
        id: format!("{}-{}", store::compact_stamp(now), std::process::id()),
    };
    // The keys it has now, saved before anything changes.
    if !current_entries.is_empty() {
        report.pre_restore_backup = Some(run.save_current(now, progress)?);
    }
    let mut marker = Marker::new(OP, container, was_running, now);
    marker.backup_file = Some(backup_file.to_owned());
    marker.chain_path = Some(chain.chain_path());
    if was_running {
        run.running(marker, &mut report, progress)?;
    } else {
        run.stopped(marker, &mut report, progress)?;
    }
    report.changed = true;
    run.verify(&archive, backup_file, was_running)?;
    progress(&format!(
        "{container}: {} now holds exactly the keys of {backup_file}",
        chain.chain_path()
    ));
    Ok(report)
}

/// One restore once everything is checked and the current keys are copied out: what
/// its steps share.
struct RestoreRun<'a> {
    engine: &'a dyn Engine,
    container: &'a str,
    cfg: &'a BackupConfig,
    hooks: &'a Hooks,
    chain: &'a ChainDir,
    scratch: &'a Scratch,
    /// The backup's tree, as it will be copied in (modes and owner set).
    payload: &'a Path,
    /// The keys in place before, as copied out (what the pre-restore archive holds).
    current: &'a Path,
    /// The archive's top directories (`keystore`, and `network` if it has one).
    tops: &'a [&'static str],
    /// Which of them the node has now.
    present: &'a [&'static str],
    /// Names the staging and set-aside directories of this restore.
    id: String,
}

impl RestoreRun<'_> {
    /// Saves the current keys as an ordinary archive; returns its file name.
    fn save_current(
        &self,
        now: u64,
        progress: &mut dyn FnMut(&str),
    ) -> Result<String, BackupError> {
        let not_stopped = |cause: Cause| {
            failed(
                OP,
                self.container,
                "saving the current keys first",
                cause,
                NodeState::NotStopped,
            )
        };
        progress("saving the current keys first");
        if !self.present.contains(&"keystore") {
            // An archive always has a keystore/; this one says "there was none".
            self.scratch
                .subdir("current/keystore")
                .map_err(|error| not_stopped(error.into()))?;
        }
        let origin = Origin {
            container: self.container.to_owned(),
            chain_id: self.chain.chain_id.clone(),
            host: Some(self.cfg.host.clone()),
            keys: None,
        };
        let published = match panic::catch_unwind(AssertUnwindSafe(|| {
            store::publish_archive(
                &self.cfg.dir,
                &origin,
                self.current,
                now,
                self.hooks.archive_writer.as_deref(),
            )
        })) {
            Ok(result) => result,
            Err(payload) => Err(Cause::Panic(panic_message(&*payload))),
        }
        .map_err(not_stopped)?;
        progress(&format!("current keys saved in {}", published.file_name));
        Ok(published.file_name)
    }

    /// Reads back what the container now holds and compares it with the archive.
    fn verify(
        &self,
        archive: &ValidArchive,
        backup_file: &str,
        was_running: bool,
    ) -> Result<(), BackupError> {
        let node_now = if was_running {
            NodeState::StartedAgain
        } else {
            NodeState::LeftStopped
        };
        let step = "verifying the restored keys";
        let fail = |cause: Cause| {
            with_keys(
                failed(OP, self.container, step, cause, node_now.clone()),
                KeysState::Restored,
            )
        };
        let after = self.scratch.subdir("after").map_err(|e| fail(e.into()))?;
        for top in self.tops {
            if let Err(error) =
                self.engine
                    .cp_from(self.container, &self.chain.path_of(top), &after)
                && !is_missing_path(&error)
            {
                return Err(fail(error.into()));
            }
        }
        let difference =
            archive::compare_tree(&after, &archive.entries, &archive.contents, self.tops, true)
                .map_err(|e| fail(e.into()))?;
        match difference {
            None => Ok(()),
            Some(difference) => Err(with_keys(
                failed(
                    OP,
                    self.container,
                    step,
                    Cause::Verify(format!("{}: {difference}", self.chain.chain_path())),
                    node_now.clone(),
                ),
                KeysState::InDoubt {
                    detail: format!(
                        "{} differs from {backup_file}; restore again",
                        self.chain.chain_path()
                    ),
                },
            )),
        }
    }
    /// Running node: stage, swap by renames, restart, clean up. See the module docs.
    fn running(
        &self,
        mut marker: Marker,
        report: &mut RestoreReport,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), BackupError> {
        let RestoreRun {
            engine,
            container,
            cfg,
            hooks,
            chain,
            scratch,
            payload,
            current,
            tops,
            present,
            ..
        } = *self;
        let id = self.id.as_str();
        let stage = chain.path_of(&format!(".warden-restore-{id}"));
        let aside = |top: &str| chain.path_of(&format!("{top}.warden-old-{id}"));
        marker.phase = Some("staging".to_owned());
        marker.stage = Some(stage.clone());
        take_marker(cfg, &marker, OP)?;
        let mut warnings = Vec::new();
        let fail_unchanged = |step: &str, cause: Cause, warnings: &mut Vec<String>| {
            remove_marker(cfg, container, warnings);
            failed(OP, container, step, cause, NodeState::NotStopped)
        };

        // 1. The backup's tree goes in beside the keystore, under a new name.
        progress(&format!("copying the backup into {stage}"));
        let staged = contained(|| {
            engine.cp_to(payload, container, &stage).map_err(|error| {
                (
                    "copying the backup into the container".to_owned(),
                    error.into(),
                )
            })
        });
        if let Err((step, cause)) = staged {
            let _ = run_in(engine, container, &["rm", "-rf", "--", &stage]);
            return Err(fail_unchanged(&step, cause, &mut warnings));
        }

        // 2. Swap: current directories aside, staged ones into place.
        marker.phase = Some("swapping".to_owned());
        marker.aside = tops
            .iter()
            .filter(|top| present.contains(top))
            .map(|top| aside(top))
            .collect();
        if let Err(error) = marker::update(&cfg.dir, &marker) {
            let _ = run_in(engine, container, &["rm", "-rf", "--", &stage]);
            return Err(fail_unchanged(
                "updating the in-flight marker",
                error.into(),
                &mut warnings,
            ));
        }
        progress("replacing the key directories");
        let mut done: Vec<(String, String)> = Vec::new();
        let swapped = contained(|| {
            for top in tops {
                if present.contains(top) {
                    let from = chain.path_of(top);
                    let to = aside(top);
                    run_in(engine, container, &["mv", "--", &from, &to])
                        .map_err(|cause| ("moving the current keys aside".to_owned(), cause))?;
                    done.push((from, to));
                }
                let from = format!("{stage}/{top}");
                let to = chain.path_of(top);
                run_in(engine, container, &["mv", "--", &from, &to])
                    .map_err(|cause| ("moving the backup's keys into place".to_owned(), cause))?;
                done.push((from, to));
            }
            Ok(())
        });
        if let Err((step, cause)) = swapped {
            // Undo in reverse order; what cannot be undone is reported.
            let mut undo_failures = Vec::new();
            for (from, to) in done.iter().rev() {
                if let Err(cause) = run_in(engine, container, &["mv", "--", to, from]) {
                    undo_failures.push(format!("{to} → {from}: {cause}"));
                }
            }
            let keys = if undo_failures.is_empty() {
                let _ = run_in(engine, container, &["rm", "-rf", "--", &stage]);
                KeysState::Unchanged
            } else {
                KeysState::InDoubt {
                    detail: format!(
                        "putting the previous keys back failed ({}); the previous keys are in {} \
                     and in the backup directory",
                        undo_failures.join("; "),
                        marker.aside.join(", ")
                    ),
                }
            };
            remove_marker(cfg, container, &mut warnings);
            return Err(with_keys(
                failed(OP, container, &step, cause, NodeState::NotStopped),
                keys,
            ));
        }

        // 3. Restart so the node loads them (the network key is read only at start).
        marker.phase = Some("restarting".to_owned());
        if let Err(error) = marker::update(&cfg.dir, &marker) {
            warnings.push(format!("cannot update the in-flight marker: {error}"));
        }
        progress(&format!(
            "stopping {container} (grace {}s) to load the restored keys",
            crate::docker::grace_seconds(cfg.stop_grace)
        ));
        let stopped = contained(|| {
            engine.stop(container, cfg.stop_grace).map_err(|error| {
                (
                    "stopping the node to load the restored keys".to_owned(),
                    error.into(),
                )
            })
        });
        let started = start_again(engine, container, hooks, progress);
        remove_marker(cfg, container, &mut warnings);
        if let Err((step, cause)) = stopped {
            let node = match &started {
                // It was running (the stop failed) or has been started: either way it
                // may still run with what it loaded before.
                Ok(()) => NodeState::NotReloaded {
                    detail: cause.to_string(),
                },
                Err(error) => NodeState::NotStarted {
                    detail: error.to_string(),
                },
            };
            return Err(with_keys(
                failed(OP, container, &step, cause, node),
                KeysState::Restored,
            ));
        }
        if let Err(error) = started {
            let node = node_state_after_start(&Err(error.clone()));
            return Err(with_keys(
                failed(OP, container, "starting the node again", error, node),
                KeysState::Restored,
            ));
        }
        report.restarted = true;

        // 4. The staging directory goes, and each set-aside directory once it is checked to
        //    be exactly what the pre-restore archive holds (a key added in between, by an
        //    `author_rotateKeys` during the restore, would exist nowhere else).
        if let Err(cause) = run_in(engine, container, &["rm", "-rf", "--", &stage]) {
            warnings.push(format!("cannot remove {stage} in {container}: {cause}"));
        }
        for top in tops.iter().filter(|top| present.contains(top)) {
            let path = aside(top);
            match aside_matches_saved(engine, container, &path, top, scratch, current) {
                Ok(true) => {
                    if let Err(cause) = run_in(engine, container, &["rm", "-rf", "--", &path]) {
                        warnings.push(format!("cannot remove {path} in {container}: {cause}"));
                    }
                }
                Ok(false) => warnings.push(format!(
                    "kept {path} in {container}: it differs from the keys saved before the restore \
                 (keys added meanwhile?); look at it, then remove it by hand"
                )),
                Err(problem) => warnings.push(format!(
                    "kept {path} in {container}: cannot check it against the saved keys ({problem})"
                )),
            }
        }
        report.warnings.extend(warnings);
        Ok(())
    }
}

/// Whether the directory set aside in the container is exactly `current/<top>` (the
/// copy taken before the restore, which the pre-restore archive holds).
fn aside_matches_saved(
    engine: &dyn Engine,
    container: &str,
    path: &str,
    top: &str,
    scratch: &Scratch,
    current: &Path,
) -> Result<bool, String> {
    let check = scratch
        .subdir(&format!("aside-{top}"))
        .map_err(|error| error.to_string())?;
    // The destination does not exist: docker creates it under that name.
    engine
        .cp_from(container, path, &check.join(top))
        .map_err(|error| error.to_string())?;
    let saved = archive::scan_tree(current).map_err(|error| format!("{error:?}"))?;
    let contents = archive::read_contents(current, &saved).map_err(|error| error.to_string())?;
    archive::compare_tree(&check, &saved, &contents, &[top], false)
        .map(|difference| difference.is_none())
        .map_err(|error| error.to_string())
}

impl RestoreRun<'_> {
    /// Stopped node: copy over the existing directories (exact, as checked before).
    fn stopped(
        &self,
        mut marker: Marker,
        report: &mut RestoreReport,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), BackupError> {
        let RestoreRun {
            engine,
            container,
            cfg,
            chain,
            payload,
            tops,
            ..
        } = *self;
        marker.phase = Some("copying".to_owned());
        take_marker(cfg, &marker, OP)?;
        // `payload/.` into the chain directory: docker merges `keystore/` and `network/`
        // into the existing ones (the backup's files overwrite theirs) and sets those
        // directories' modes from the payload, leaving the chain directory itself alone.
        // (Copying `payload/keystore/.` into `keystore` would not reset that directory's
        // mode; copying `payload/keystore` onto an existing `keystore` would nest it.)
        progress(&format!(
            "copying {} into {}",
            tops.join(" and "),
            chain.chain_path()
        ));
        let copied = contained(|| {
            engine
                .cp_to(&payload.join("."), container, &chain.chain_path())
                .map_err(|error| {
                    (
                        "copying the backup into the container".to_owned(),
                        error.into(),
                    )
                })
        });
        let mut warnings = Vec::new();
        remove_marker(cfg, container, &mut warnings);
        if let Err((step, cause)) = copied {
            let keys = KeysState::InDoubt {
                detail: format!(
                    "{} may be partly restored; restore again",
                    chain.chain_path()
                ),
            };
            return Err(with_keys(
                failed(OP, container, &step, cause, NodeState::LeftStopped),
                keys,
            ));
        }
        report.warnings.extend(warnings);
        Ok(())
    }
}
