//! The orchestration (stop, copy, start on every path; restore's checks, swap and
//! verification; recovery) against a stand-in engine whose container file system is a
//! host directory and whose every step can be made to fail or panic.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::archive::{self, Origin};
use super::engine::Engine;
use super::flow::{self, Hooks};
use super::marker::{self, Marker, OpGuard};
use super::store;
use super::testutil::TempDir;
use super::*;
use crate::docker::{ContainerInspect, DockerError, ExecOutput, parse_inspect};

const CHAIN: &str = "/root/data/chains/creditcoin3";
const NOW: u64 = 1_736_346_600; // 2025-01-08 14:30:00 UTC

fn key_name(key_type: &str, byte: u8) -> String {
    format!("{}{}", hex::encode(key_type), hex::encode([byte; 32]))
}

#[derive(Default)]
struct FakeState {
    exists: bool,
    running: bool,
    paused: bool,
    user: String,
    args: Vec<String>,
    calls: Vec<String>,
    /// A call whose description starts with the prefix fails so.
    fail: Vec<(String, DockerError)>,
    /// A call whose description starts with this panics.
    panic_on: Option<String>,
    /// How many `start` calls fail before one succeeds.
    start_failures: u32,
    /// `exec` calls starting with the prefix exit with the code.
    exec_exit: Vec<(String, i32)>,
    /// No `ls` in the image.
    no_ls: bool,
    /// At each `stop`: was the in-flight marker there, saying "it was running"?
    marker_at_stop: Vec<bool>,
    /// Before a call starting with this, a new key file appears in the keystore (an
    /// `author_rotateKeys` racing the operation).
    add_key_before: Option<String>,
}

/// A container whose file system is `root` on the host.
struct Fake {
    name: String,
    root: PathBuf,
    backup_dir: PathBuf,
    state: Mutex<FakeState>,
}

fn daemon_error(message: String) -> DockerError {
    DockerError::Failed {
        argv: vec!["fake".to_owned()],
        status: ExitStatus::from_raw(1 << 8),
        stderr: message,
    }
}

fn copy_tree(src: &Path, dst: &Path) {
    let meta = fs::symlink_metadata(src).unwrap();
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src).unwrap(), dst).unwrap();
    } else if meta.is_dir() {
        if !dst.exists() {
            fs::create_dir(dst).unwrap();
        }
        fs::set_permissions(dst, meta.permissions()).unwrap();
        for item in fs::read_dir(src).unwrap() {
            let item = item.unwrap();
            copy_tree(&item.path(), &dst.join(item.file_name()));
        }
    } else {
        fs::copy(src, dst).unwrap();
        fs::set_permissions(dst, meta.permissions()).unwrap();
    }
}

impl Fake {
    fn new(temp: &TempDir, name: &str) -> Fake {
        let root = temp.path().join("container");
        let fake = Fake {
            name: name.to_owned(),
            root,
            backup_dir: temp.path().join("backups"),
            state: Mutex::new(FakeState {
                exists: true,
                running: true,
                ..FakeState::default()
            }),
        };
        fake.write_key("gran", 1);
        fake.write_key("babe", 1);
        fake.write_key("imon", 1);
        fake.write(
            &format!("{CHAIN}/network/secret_ed25519"),
            &[42u8; 32],
            0o600,
        );
        fs::set_permissions(
            fake.host(&format!("{CHAIN}/network")),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        fake.write(&format!("{CHAIN}/paritydb/full/db"), b"chain data", 0o644);
        fake
    }

    fn host(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn write(&self, path: &str, bytes: &[u8], mode: u32) {
        let host = self.host(path);
        fs::create_dir_all(host.parent().unwrap()).unwrap();
        fs::write(&host, bytes).unwrap();
        fs::set_permissions(&host, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn write_key(&self, key_type: &str, byte: u8) -> String {
        let name = key_name(key_type, byte);
        let dir = format!("{CHAIN}/keystore");
        self.write(
            &format!("{dir}/{name}"),
            format!("\"0x{}\"", hex::encode([byte ^ 0x5a; 32])).as_bytes(),
            0o600,
        );
        fs::set_permissions(self.host(&dir), fs::Permissions::from_mode(0o700)).unwrap();
        name
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn running(&self) -> bool {
        self.state().running
    }

    fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    fn fail(&self, prefix: &str, error: DockerError) {
        self.state().fail.push((prefix.to_owned(), error));
    }

    /// Every file under `dir` (in the container) with its bytes.
    fn files(&self, dir: &str) -> BTreeMap<String, Vec<u8>> {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
            let Ok(items) = fs::read_dir(dir) else {
                return;
            };
            for item in items {
                let path = item.unwrap().path();
                let relative = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if path.is_dir() {
                    out.insert(format!("{relative}/"), Vec::new());
                    walk(base, &path, out);
                } else {
                    out.insert(relative, fs::read(&path).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        let base = self.host(dir);
        walk(&base, &base, &mut out);
        out
    }

    fn missing(&self, path: &str) -> DockerError {
        daemon_error(format!(
            "Error response from daemon: Could not find the file {path} in container {}",
            self.name
        ))
    }

    /// Records the call, then fails or panics as configured.
    fn call(&self, what: String) -> Result<(), DockerError> {
        let mut state = self.state();
        state.calls.push(what.clone());
        if state
            .panic_on
            .as_deref()
            .is_some_and(|prefix| what.starts_with(prefix))
        {
            drop(state);
            panic!("injected panic at {what}");
        }
        if let Some((_, error)) = state
            .fail
            .iter()
            .find(|(prefix, _)| what.starts_with(prefix))
        {
            return Err(error.clone());
        }
        if !state.exists {
            return Err(DockerError::NoSuchContainer {
                container: self.name.clone(),
            });
        }
        if state
            .add_key_before
            .as_deref()
            .is_some_and(|prefix| what.starts_with(prefix))
        {
            state.add_key_before = None;
            drop(state);
            self.write_key("gran", 0xee);
        }
        Ok(())
    }
}

fn exec_output(exit_code: i32, stdout: String, stderr: &str) -> ExecOutput {
    ExecOutput {
        exit_code,
        stdout,
        stderr: stderr.to_owned(),
        truncated: false,
    }
}

impl Engine for Fake {
    fn inspect(&self, container: &str) -> Result<ContainerInspect, DockerError> {
        assert_eq!(container, self.name);
        self.call("inspect".to_owned())?;
        let state = self.state();
        let status = if state.paused {
            "paused"
        } else if state.running {
            "running"
        } else {
            "exited"
        };
        let json = serde_json::json!([{
            "Id": "f00d",
            "Name": format!("/{}", self.name),
            "Path": "/usr/local/bin/testnode",
            "Args": state.args,
            "State": {"Status": status, "Running": state.running, "Paused": state.paused},
            "Config": {"Image": "warden-testnode:latest", "User": state.user, "WorkingDir": "/root"},
            "HostConfig": {"NetworkMode": "default"}
        }]);
        Ok(parse_inspect(&json.to_string()).unwrap().remove(0))
    }

    fn stop(&self, _container: &str, _grace: Duration) -> Result<(), DockerError> {
        let marker = marker::read(&marker::marker_path(&self.backup_dir, &self.name));
        self.state()
            .marker_at_stop
            .push(marker.is_ok_and(|m| m.was_running && m.container == self.name));
        self.call("stop".to_owned())?;
        self.state().running = false;
        Ok(())
    }

    fn start(&self, _container: &str) -> Result<(), DockerError> {
        self.call("start".to_owned())?;
        let mut state = self.state();
        if state.start_failures > 0 {
            state.start_failures -= 1;
            return Err(daemon_error(
                "Error response from daemon: failed to start: injected".to_owned(),
            ));
        }
        state.running = true;
        Ok(())
    }

    fn cp_from(&self, _container: &str, path: &str, dest: &Path) -> Result<(), DockerError> {
        self.call(format!("cp_from {path}"))?;
        let src = self.host(path);
        if fs::symlink_metadata(&src).is_err() {
            return Err(self.missing(path));
        }
        let target = if dest.is_dir() {
            dest.join(src.file_name().unwrap())
        } else {
            dest.to_path_buf()
        };
        if !target.parent().unwrap().is_dir() {
            return Err(daemon_error("no such directory on the host".to_owned()));
        }
        copy_tree(&src, &target);
        Ok(())
    }

    fn list_dir(&self, _container: &str, path: &str) -> Result<Vec<String>, DockerError> {
        self.call(format!("list_dir {path}"))?;
        let mut names: Vec<String> = fs::read_dir(self.host(path))
            .map_err(|_| self.missing(path))?
            .map(|i| i.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        Ok(names)
    }

    fn cp_to(&self, src: &Path, _container: &str, path: &str) -> Result<(), DockerError> {
        self.call(format!("cp_to {path}"))?;
        let dest = self.host(path);
        let text = src.to_str().unwrap();
        if let Some(dir) = text.strip_suffix("/.") {
            if !dest.is_dir() {
                return Err(self.missing(path));
            }
            for item in fs::read_dir(dir).unwrap() {
                let item = item.unwrap();
                copy_tree(&item.path(), &dest.join(item.file_name()));
            }
            return Ok(());
        }
        let target = if dest.is_dir() {
            dest.join(src.file_name().unwrap())
        } else {
            dest
        };
        if !target.parent().unwrap().is_dir() {
            return Err(self.missing(path));
        }
        copy_tree(src, &target);
        Ok(())
    }

    fn exec(
        &self,
        _container: &str,
        argv: &[&str],
        _timeout: Duration,
    ) -> Result<ExecOutput, DockerError> {
        let what = format!("exec {}", argv.join(" "));
        self.call(what.clone())?;
        let state = self.state();
        if !state.running {
            return Err(DockerError::NotRunning {
                container: self.name.clone(),
                detail: "not running".to_owned(),
            });
        }
        if let Some((_, code)) = state
            .exec_exit
            .iter()
            .find(|(prefix, _)| what.starts_with(prefix))
        {
            return Ok(exec_output(*code, String::new(), "injected failure"));
        }
        let no_ls = state.no_ls;
        drop(state);
        match argv {
            ["ls", "-1", "--", dir] if !no_ls => match fs::read_dir(self.host(dir)) {
                Ok(items) => {
                    let mut names: Vec<String> = items
                        .map(|i| i.unwrap().file_name().into_string().unwrap())
                        .collect();
                    names.sort();
                    Ok(exec_output(0, names.join("\n") + "\n", ""))
                }
                Err(_) => Ok(exec_output(1, String::new(), "No such file or directory")),
            },
            ["mv", "--", from, to] => {
                let from = self.host(from);
                let mut to = self.host(to);
                if !from.exists() {
                    return Ok(exec_output(1, String::new(), "No such file or directory"));
                }
                if to.is_dir() {
                    to = to.join(from.file_name().unwrap());
                }
                fs::rename(from, to).unwrap();
                Ok(exec_output(0, String::new(), ""))
            }
            ["mkdir", "-p", "--", path] => {
                fs::create_dir_all(self.host(path)).unwrap();
                Ok(exec_output(0, String::new(), ""))
            }
            ["rm", "-rf", "--", paths @ ..] => {
                for path in paths {
                    let _ = fs::remove_dir_all(self.host(path));
                    let _ = fs::remove_file(self.host(path));
                }
                Ok(exec_output(0, String::new(), ""))
            }
            _ => Err(DockerError::ExecStart {
                container: self.name.clone(),
                program: argv[0].to_owned(),
                detail: "executable file not found in $PATH".to_owned(),
            }),
        }
    }
}

fn config(temp: &TempDir) -> BackupConfig {
    BackupConfig {
        dir: temp.path().join("backups"),
        keep: DEFAULT_KEEP,
        stop_grace: Duration::from_secs(1),
        chain_id_hint: None,
        host: "test-host".to_owned(),
    }
}

fn hooks() -> Hooks {
    Hooks {
        now_unix: Some(NOW),
        archive_writer: None,
        start_retry_delay: Duration::from_millis(1),
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let Ok(items) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = items
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// No marker and no temp file in the backup directory.
fn assert_no_leftovers(cfg: &BackupConfig) {
    for name in listing(&cfg.dir) {
        assert!(
            !name.starts_with(".warden-tmp-") && !name.starts_with(".inflight-"),
            "left behind: {name} in {:?}",
            listing(&cfg.dir)
        );
    }
}

fn backup(fake: &Fake, cfg: &BackupConfig, hooks: &Hooks) -> Result<BackupReport, BackupError> {
    let mut lines = Vec::new();
    let result = flow::backup_with(fake, &fake.name, cfg, hooks, &mut |line| {
        lines.push(line.to_owned())
    });
    assert!(!lines.is_empty() || result.is_err());
    result
}

fn restore(
    fake: &Fake,
    cfg: &BackupConfig,
    file: &str,
    options: RestoreOptions,
) -> Result<RestoreReport, BackupError> {
    super::restore::restore_with(fake, &fake.name, file, cfg, options, &hooks(), &mut |_| {})
}

// ---- backup ----

#[test]
fn backup_of_a_running_node_stops_copies_starts_and_archives() {
    let temp = TempDir::new("flow-backup");
    let fake = Fake::new(&temp, "t-backup-run");
    let cfg = config(&temp);
    let report = backup(&fake, &cfg, &hooks()).unwrap();

    assert_eq!(report.file_name, "t-backup-run-keys-20250108-1430.tar.gz");
    assert_eq!(report.path, cfg.dir.join(&report.file_name));
    assert_eq!((report.keystore_files, report.network_files), (3, 1));
    assert_eq!(report.chain.chain_path(), CHAIN);
    assert!(report.was_running && report.stopped_ms.is_some());
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        report.entries,
        [
            "keystore/".to_owned(),
            format!("keystore/{}", key_name("babe", 1)),
            format!("keystore/{}", key_name("gran", 1)),
            format!("keystore/{}", key_name("imon", 1)),
            "network/".to_owned(),
            "network/secret_ed25519".to_owned(),
        ]
    );
    assert_eq!(
        fake.calls(),
        [
            "inspect".to_owned(),
            "exec ls -1 -- /root/data/chains".to_owned(),
            "stop".to_owned(),
            format!("cp_from {CHAIN}/keystore"),
            format!("cp_from {CHAIN}/network"),
            "start".to_owned(),
        ]
    );
    assert_eq!(fake.state().marker_at_stop, [true]);
    assert!(fake.running());
    assert_no_leftovers(&cfg);
    assert_eq!(
        listing(&cfg.dir),
        [
            report.file_name.clone(),
            format!("{}.sha256", report.file_name)
        ]
    );

    // The archive holds exactly the container's files, byte for byte.
    let bytes = fs::read(&report.path).unwrap();
    assert_eq!(bytes.len() as u64, report.bytes);
    assert_eq!(store::sha256_hex(&bytes), report.sha256);
    assert_eq!(
        fs::read_to_string(cfg.dir.join(format!("{}.sha256", report.file_name))).unwrap(),
        format!("{}  {}\n", report.sha256, report.file_name)
    );
    let archive = archive::read_archive(&bytes).unwrap();
    assert_eq!(
        archive.origin,
        Some(Origin {
            container: "t-backup-run".to_owned(),
            chain_id: "creditcoin3".to_owned(),
            host: Some("test-host".to_owned()),
            keys: Some(archive.keystore_names()),
        })
    );
    assert_eq!(archive.keystore_names().len(), 3);
    let keystore = fake.files(&format!("{CHAIN}/keystore"));
    for (name, data) in keystore.iter().filter(|(n, _)| !n.ends_with('/')) {
        assert_eq!(&archive.contents[&format!("keystore/{name}")], data);
    }
    assert_eq!(archive.contents["network/secret_ed25519"], vec![42u8; 32]);
    assert_eq!(
        fs::metadata(&report.path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn backup_of_a_stopped_node_leaves_it_stopped() {
    let temp = TempDir::new("flow-backup-stopped");
    let fake = Fake::new(&temp, "t-backup-stopped");
    fake.state().running = false;
    let cfg = config(&temp);
    let report = backup(&fake, &cfg, &hooks()).unwrap();
    assert!(!report.was_running && report.stopped_ms.is_none());
    // No exec on a stopped container: the chain is found by probing with docker cp.
    let calls = fake.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c == "stop" || c == "start" || c.starts_with("exec")),
        "{calls:?}"
    );
    assert!(calls.contains(&format!("cp_from {CHAIN}/keystore")));
    assert!(!fake.running());
    assert_no_leftovers(&cfg);
}

#[test]
fn backup_without_a_network_directory_says_so() {
    let temp = TempDir::new("flow-backup-nonet");
    let fake = Fake::new(&temp, "t-backup-nonet");
    fs::remove_dir_all(fake.host(&format!("{CHAIN}/network"))).unwrap();
    let cfg = config(&temp);
    let report = backup(&fake, &cfg, &hooks()).unwrap();
    assert_eq!((report.keystore_files, report.network_files), (3, 0));
    assert!(
        report.warnings[0].contains("only the keystore"),
        "{:?}",
        report.warnings
    );
}

#[test]
fn a_failed_copy_still_starts_the_node() {
    let temp = TempDir::new("flow-cp-fails");
    let fake = Fake::new(&temp, "t-cp-fails");
    fake.fail(
        &format!("cp_from {CHAIN}/network"),
        daemon_error("Error response from daemon: injected".to_owned()),
    );
    let cfg = config(&temp);
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("copying the network directory out"), "{text}");
    assert!(text.ends_with("the node was started again"), "{text}");
    assert_eq!(error.node_state(), Some(&NodeState::StartedAgain));
    assert_eq!(error.wire_code(), "internal");
    assert!(fake.running());
    assert_eq!(fake.calls().last().unwrap(), "start");
    assert_no_leftovers(&cfg);
    assert!(listing(&cfg.dir).is_empty(), "{:?}", listing(&cfg.dir));
}

#[test]
fn a_panic_while_the_node_is_stopped_still_starts_it() {
    let temp = TempDir::new("flow-panic-copy");
    let fake = Fake::new(&temp, "t-panic-copy");
    fake.state().panic_on = Some(format!("cp_from {CHAIN}/keystore"));
    let cfg = config(&temp);
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    let BackupError::Failed(failure) = &error else {
        panic!("{error:?}");
    };
    assert!(
        matches!(&failure.cause, Cause::Panic(message) if message.contains("injected panic")),
        "{error:?}"
    );
    assert_eq!(failure.node, NodeState::StartedAgain);
    assert!(fake.running());
    assert_no_leftovers(&cfg);
    assert!(listing(&cfg.dir).is_empty());
}

#[test]
fn a_full_disk_or_a_panic_while_archiving_leaves_no_partial_file() {
    for panic in [false, true] {
        let temp = TempDir::new("flow-archive-fails");
        let fake = Fake::new(&temp, &format!("t-archive-fails-{panic}"));
        // Enough data that the gzip stream reaches the failing writer mid-way.
        fake.write(
            &format!("{CHAIN}/keystore/{}", key_name("beef", 9)),
            &store::tests::noise(300_000),
            0o600,
        );
        let cfg = config(&temp);
        let mut hooks = hooks();
        hooks.archive_writer = Some(store::tests::failing_writer(20_000, panic));
        let error = backup(&fake, &cfg, &hooks).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("writing the archive"), "{text}");
        assert!(text.ends_with("the node was started again"), "{text}");
        if panic {
            assert!(text.contains("panicked"), "{text}");
        } else {
            assert!(text.contains("disk is full"), "{text}");
        }
        assert!(fake.running());
        assert!(listing(&cfg.dir).is_empty(), "{:?}", listing(&cfg.dir));
    }
}

#[test]
fn a_node_that_will_not_start_is_reported_and_its_keys_saved() {
    let temp = TempDir::new("flow-no-start");
    let fake = Fake::new(&temp, "t-no-start");
    fake.state().start_failures = 100;
    let cfg = config(&temp);
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("could NOT be started again")
            && text.ends_with("start it by hand with `docker start t-no-start`"),
        "{text}"
    );
    assert!(
        text.contains("the keys were saved in t-no-start-keys-20250108-1430.tar.gz"),
        "{text}"
    );
    // Three attempts, then the operator is told.
    assert_eq!(fake.calls().iter().filter(|c| *c == "start").count(), 3);
    assert!(!fake.running());
    assert_no_leftovers(&cfg);
}

#[test]
fn a_start_that_fails_once_is_retried() {
    let temp = TempDir::new("flow-start-retry");
    let fake = Fake::new(&temp, "t-start-retry");
    fake.state().start_failures = 1;
    let cfg = config(&temp);
    backup(&fake, &cfg, &hooks()).unwrap();
    assert!(fake.running());
}

#[test]
fn a_failed_stop_still_tries_to_start() {
    let temp = TempDir::new("flow-stop-fails");
    let fake = Fake::new(&temp, "t-stop-fails");
    fake.fail(
        "stop",
        DockerError::Timeout {
            argv: vec!["stop".to_owned()],
            after: Duration::from_secs(61),
        },
    );
    let cfg = config(&temp);
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    assert_eq!(error.wire_code(), "timeout");
    assert!(
        error.to_string().contains("while stopping the node"),
        "{error}"
    );
    assert_eq!(fake.calls().last().unwrap(), "start");
    assert_no_leftovers(&cfg);
}

#[test]
fn refusals_before_anything_is_touched() {
    let temp = TempDir::new("flow-refusals");
    let cfg = config(&temp);

    let fake = Fake::new(&temp, "t-missing");
    fake.state().exists = false;
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    assert_eq!(
        error,
        BackupError::NoSuchContainer {
            container: "t-missing".to_owned()
        }
    );
    assert_eq!(error.wire_code(), "unknown_target");

    let fake = Fake::new(&temp, "t-paused");
    fake.state().paused = true;
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    assert!(
        error.to_string().contains("docker unpause t-paused"),
        "{error}"
    );
    assert_eq!(error.wire_code(), "unavailable");
    assert_eq!(fake.calls(), ["inspect"]);

    let fake = Fake::new(&temp, "-bad");
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    assert!(matches!(error, BackupError::InvalidContainerName { .. }));
    assert!(fake.calls().is_empty());

    let fake = Fake::new(&temp, "t-busy");
    let guard = OpGuard::acquire("t-busy").unwrap();
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    assert_eq!(
        error,
        BackupError::Busy {
            container: "t-busy".to_owned()
        }
    );
    drop(guard);
    assert!(fake.calls().is_empty());
}

#[test]
fn no_keystore_anywhere_is_reported_with_what_was_tried() {
    let temp = TempDir::new("flow-nochain");
    let fake = Fake::new(&temp, "t-nochain");
    fs::rename(fake.host(CHAIN), fake.host("/root/data/chains/other_chain")).unwrap();
    fake.write("/root/data/chains/third/keystore/x", b"x", 0o600);
    let cfg = config(&temp);
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("tried creditcoin3, creditcoin"), "{text}");
    assert!(text.contains("it holds other_chain, third"), "{text}");
    assert!(!fake.calls().contains(&"stop".to_owned()));
    // With the hint, it is found.
    let mut cfg = config(&temp);
    cfg.chain_id_hint = Some("third".to_owned());
    let report = backup(&fake, &cfg, &hooks()).unwrap();
    assert_eq!(report.chain.chain_id, "third");
}

#[test]
fn the_only_chain_directory_is_used_and_probing_works_without_ls() {
    let temp = TempDir::new("flow-onlychain");
    let fake = Fake::new(&temp, "t-onlychain");
    fs::rename(
        fake.host(CHAIN),
        fake.host("/root/data/chains/creditcoin3_testnet"),
    )
    .unwrap();
    let cfg = config(&temp);
    let report = backup(&fake, &cfg, &hooks()).unwrap();
    assert_eq!(report.chain.chain_id, "creditcoin3_testnet");

    // No `ls` in the image: probing by docker cp, guided by --chain.
    let temp = TempDir::new("flow-nols");
    let fake = Fake::new(&temp, "t-nols");
    fs::rename(
        fake.host(CHAIN),
        fake.host("/root/data/chains/creditcoin3_testnet"),
    )
    .unwrap();
    {
        let mut state = fake.state();
        state.no_ls = true;
        state.args = vec!["--chain".to_owned(), "testnet".to_owned()];
    }
    let report = backup(&fake, &config(&temp), &hooks()).unwrap();
    assert_eq!(report.chain.chain_id, "creditcoin3_testnet");
    assert!(
        fake.calls()
            .contains(&"cp_from /root/data/chains/creditcoin3_testnet/keystore".to_owned())
    );
}

#[test]
fn a_chain_spec_file_names_the_chain() {
    let temp = TempDir::new("flow-spec");
    let fake = Fake::new(&temp, "t-spec");
    fs::rename(
        fake.host(CHAIN),
        fake.host("/root/data/chains/creditcoin3_dev"),
    )
    .unwrap();
    fake.write(
        "/root/data/chainspecs/devnetSpecRaw.json",
        br#"{"name":"Creditcoin3 Dev","id":"creditcoin3_dev","genesis":{"raw":{}}}"#,
        0o644,
    );
    // Two chain directories: only the spec tells which is the node's.
    fake.write("/root/data/chains/creditcoin3/keystore/old", b"x", 0o600);
    {
        let mut state = fake.state();
        state.running = false;
        state.args = vec![
            "--chain".to_owned(),
            "/root/data/chainspecs/devnetSpecRaw.json".to_owned(),
        ];
    }
    let report = backup(&fake, &config(&temp), &hooks()).unwrap();
    assert_eq!(report.chain.chain_id, "creditcoin3_dev");
}

#[test]
fn retention_through_backups_keeps_n_including_the_new_one() {
    let temp = TempDir::new("flow-retention");
    let fake = Fake::new(&temp, "t-retention");
    let mut cfg = config(&temp);
    cfg.keep = 2;
    let mut names = Vec::new();
    for minute in 0..4u64 {
        let mut hooks = hooks();
        hooks.now_unix = Some(NOW + minute * 60);
        let report = backup(&fake, &cfg, &hooks).unwrap();
        names.push(report.file_name.clone());
        if minute >= 2 {
            assert_eq!(report.deleted, [names[(minute - 2) as usize].clone()]);
        }
    }
    assert_eq!(
        listing(&cfg.dir),
        [
            names[2].clone(),
            format!("{}.sha256", names[2]),
            names[3].clone(),
            format!("{}.sha256", names[3]),
        ]
    );
}

#[test]
fn two_backups_in_one_minute_get_suffixes() {
    let temp = TempDir::new("flow-suffix");
    let fake = Fake::new(&temp, "t-suffix");
    let cfg = config(&temp);
    let first = backup(&fake, &cfg, &hooks()).unwrap();
    let second = backup(&fake, &cfg, &hooks()).unwrap();
    assert_eq!(first.file_name, "t-suffix-keys-20250108-1430.tar.gz");
    assert_eq!(second.file_name, "t-suffix-keys-20250108-1430-2.tar.gz");
    assert_eq!(first.sha256, second.sha256);
}

// ---- recovery ----

#[test]
fn a_restore_killed_between_its_renames_is_rolled_back_to_a_node_with_a_keystore() {
    for running in [true, false] {
        let temp = TempDir::new("flow-recover-swap");
        let cfg = config(&temp);
        store::prepare_dir(&cfg.dir).unwrap();
        let fake = Fake::new(&temp, "t-swap");
        let before = fs::read_dir(fake.host(&format!("{CHAIN}/keystore")))
            .unwrap()
            .count();
        // The kill: keystore moved aside, the backup's not moved in yet.
        let stage = format!("{CHAIN}/.warden-restore-1");
        let aside = format!("{CHAIN}/keystore.warden-old-1");
        fs::create_dir_all(fake.host(&format!("{stage}/keystore"))).unwrap();
        fs::rename(fake.host(&format!("{CHAIN}/keystore")), fake.host(&aside)).unwrap();
        let mut m = Marker::new(Operation::Restore, "t-swap", true, NOW);
        m.phase = Some("swapping".to_owned());
        m.chain_path = Some(CHAIN.to_owned());
        m.stage = Some(stage.clone());
        m.aside = vec![aside.clone()];
        marker::create(&cfg.dir, &m).unwrap();
        fake.state().running = running;

        let messages = flow::recover_with(&fake, &cfg, &mut |_| {});
        assert!(
            messages[0].contains("were put back in place"),
            "{messages:?}"
        );
        assert_eq!(
            fs::read_dir(fake.host(&format!("{CHAIN}/keystore")))
                .unwrap()
                .count(),
            before,
            "the keystore is back"
        );
        assert!(!fake.host(&aside).exists() && !fake.host(&stage).exists());
        assert!(fake.running());
        // Started here: restarted so it loads the keys put back.
        assert_eq!(
            messages[0].contains("was restarted to load them"),
            !running,
            "{messages:?}"
        );
        assert!(listing(&cfg.dir).is_empty());
    }
}

#[test]
fn recovery_starts_nodes_a_killed_backup_left_stopped() {
    let temp = TempDir::new("flow-recover");
    let cfg = config(&temp);
    store::prepare_dir(&cfg.dir).unwrap();
    let fake = Fake::new(&temp, "t-recover");
    fake.state().running = false;
    marker::create(
        &cfg.dir,
        &Marker::new(Operation::Backup, "t-recover", true, NOW),
    )
    .unwrap();
    fs::write(
        cfg.dir.join(".warden-tmp-999999999-3-archive.tar.gz"),
        b"partial",
    )
    .unwrap();

    let mut reported = Vec::new();
    let messages = flow::recover_with(&fake, &cfg, &mut |line| reported.push(line.to_owned()));
    assert_eq!(messages, reported);
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].contains("removed 1 temporary file"),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with("a key backup of t-recover begun at 2025-01-08T14:30:00Z (pid ")
            && messages[1].ends_with("was interrupted; t-recover was started again"),
        "{messages:?}"
    );
    assert!(fake.running());
    assert!(listing(&cfg.dir).is_empty(), "{:?}", listing(&cfg.dir));

    // Running already: the marker just goes.
    marker::create(
        &cfg.dir,
        &Marker::new(Operation::Backup, "t-recover", true, NOW),
    )
    .unwrap();
    let messages = flow::recover_with(&fake, &cfg, &mut |_| {});
    assert!(
        messages[0].ends_with("is running again already"),
        "{messages:?}"
    );
    assert_eq!(fake.calls().iter().filter(|c| *c == "start").count(), 1);
    assert!(listing(&cfg.dir).is_empty());
}

#[test]
fn recovery_keeps_the_marker_when_the_start_fails_and_never_starts_a_stopped_node() {
    let temp = TempDir::new("flow-recover-fail");
    let cfg = config(&temp);
    store::prepare_dir(&cfg.dir).unwrap();
    let fake = Fake::new(&temp, "t-recover-fail");
    {
        let mut state = fake.state();
        state.running = false;
        state.start_failures = 1;
    }
    marker::create(
        &cfg.dir,
        &Marker::new(Operation::Backup, "t-recover-fail", true, NOW),
    )
    .unwrap();
    let messages = flow::recover_with(&fake, &cfg, &mut |_| {});
    assert!(
        messages[0].contains("could NOT be started again"),
        "{messages:?}"
    );
    assert_eq!(listing(&cfg.dir), [".inflight-t-recover-fail.json"]);
    // At the next agent start it works.
    let messages = flow::recover_with(&fake, &cfg, &mut |_| {});
    assert!(messages[0].ends_with("was started again"), "{messages:?}");
    assert!(listing(&cfg.dir).is_empty());

    // A node that was not running stays stopped.
    fake.state().running = false;
    marker::create(
        &cfg.dir,
        &Marker::new(Operation::Backup, "t-recover-fail", false, NOW),
    )
    .unwrap();
    let messages = flow::recover_with(&fake, &cfg, &mut |_| {});
    assert!(messages[0].ends_with("was left stopped"), "{messages:?}");
    assert!(!fake.running());

    // A container that is gone.
    fake.state().exists = false;
    marker::create(
        &cfg.dir,
        &Marker::new(Operation::Backup, "t-recover-fail", true, NOW),
    )
    .unwrap();
    let messages = flow::recover_with(&fake, &cfg, &mut |_| {});
    assert!(messages[0].ends_with("no longer exists"), "{messages:?}");
    assert!(listing(&cfg.dir).is_empty());
}

#[test]
fn a_stale_marker_is_settled_before_the_next_backup() {
    let temp = TempDir::new("flow-stale");
    let cfg = config(&temp);
    store::prepare_dir(&cfg.dir).unwrap();
    let fake = Fake::new(&temp, "t-stale");
    fake.state().running = false;
    marker::create(
        &cfg.dir,
        &Marker::new(Operation::Backup, "t-stale", true, NOW - 3600),
    )
    .unwrap();
    let report = backup(&fake, &cfg, &hooks()).unwrap();
    // The stale marker said it was running: it was started, then backed up as a running node.
    assert!(report.was_running);
    assert!(fake.running());
    assert_no_leftovers(&cfg);
}

// ---- restore ----

/// A backup of the fake's current keys, then a changed keystore.
fn backed_up_then_changed(temp: &TempDir, name: &str) -> (Fake, BackupConfig, String) {
    let fake = Fake::new(temp, name);
    let cfg = config(temp);
    let report = backup(&fake, &cfg, &hooks()).unwrap();
    // After the backup: a new key set (rotateKeys adds, never deletes) and a new identity.
    fake.write_key("gran", 2);
    fake.write_key("babe", 2);
    fake.write_key("imon", 2);
    fake.write(
        &format!("{CHAIN}/network/secret_ed25519"),
        &[7u8; 32],
        0o600,
    );
    fake.state().calls.clear();
    fake.state().marker_at_stop.clear();
    (fake, cfg, report.file_name)
}

fn files_of_archive(cfg: &BackupConfig, name: &str) -> BTreeMap<String, Vec<u8>> {
    let archive = archive::read_archive(&fs::read(cfg.dir.join(name)).unwrap()).unwrap();
    archive
        .entries
        .iter()
        .map(|e| {
            let data = archive.contents.get(&e.path).cloned().unwrap_or_default();
            (e.display_name(), data)
        })
        .collect()
}

fn container_keys(fake: &Fake) -> BTreeMap<String, Vec<u8>> {
    let mut all = BTreeMap::new();
    for top in ["keystore", "network"] {
        if fake.host(&format!("{CHAIN}/{top}")).exists() {
            all.insert(format!("{top}/"), Vec::new());
        }
        for (name, data) in fake.files(&format!("{CHAIN}/{top}")) {
            all.insert(format!("{top}/{name}"), data);
        }
    }
    all
}

#[test]
fn restore_into_a_running_node_makes_the_keys_exactly_the_backup() {
    let temp = TempDir::new("flow-restore-run");
    let (fake, cfg, file) = backed_up_then_changed(&temp, "t-restore-run");
    let before = container_keys(&fake);
    let report = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap();

    assert!(report.changed && report.was_running && report.restarted);
    assert_eq!(container_keys(&fake), files_of_archive(&cfg, &file));
    assert_eq!(
        report.removed,
        [
            format!("keystore/{}", key_name("babe", 2)),
            format!("keystore/{}", key_name("gran", 2)),
            format!("keystore/{}", key_name("imon", 2)),
        ]
    );
    // Modes as archived.
    let keystore = fake.host(&format!("{CHAIN}/keystore"));
    assert_eq!(
        fs::metadata(&keystore).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let network = fake.host(&format!("{CHAIN}/network"));
    assert_eq!(
        fs::metadata(&network).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // Nothing left in the container's chain directory but what was there.
    assert_eq!(
        listing(&fake.host(CHAIN)),
        ["keystore", "network", "paritydb"]
    );
    assert!(fake.running());
    // The keys it had are in the pre-restore archive, which a restore accepts.
    let saved = report.pre_restore_backup.clone().unwrap();
    assert_eq!(saved, "t-restore-run-keys-20250108-1430-2.tar.gz");
    assert_eq!(files_of_archive(&cfg, &saved), before);
    assert_no_leftovers(&cfg);

    let calls = fake.calls();
    let position = |prefix: &str| calls.iter().position(|c| c.starts_with(prefix)).unwrap();
    assert!(position("cp_to") < position("exec mv"));
    assert!(position("exec mv") < position("stop"));
    assert!(position("stop") < position("start"));
    assert_eq!(fake.state().marker_at_stop, [true]);

    // Back again to the keys it had: also exact, and `removed` is empty.
    let report = restore(&fake, &cfg, &saved, RestoreOptions::default()).unwrap();
    assert!(report.changed && report.removed.is_empty());
    assert_eq!(container_keys(&fake), before);
}

#[test]
fn keys_added_during_a_restore_are_not_deleted() {
    let temp = TempDir::new("flow-restore-race");
    let (fake, cfg, file) = backed_up_then_changed(&temp, "t-restore-race");
    fake.state().add_key_before = Some(format!("exec mv -- {CHAIN}/keystore "));
    let report = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap();
    assert_eq!(container_keys(&fake), files_of_archive(&cfg, &file));
    let kept = format!(
        "{CHAIN}/keystore.warden-old-20250108143000-{}",
        std::process::id()
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with(&format!("kept {kept}"))),
        "{:?}",
        report.warnings
    );
    assert!(fake.files(&kept).contains_key(&key_name("gran", 0xee)));
    // The network directory set aside matched the saved copy and is gone.
    assert_eq!(
        listing(&fake.host(CHAIN)),
        [
            "keystore".to_owned(),
            format!("keystore.warden-old-20250108143000-{}", std::process::id()),
            "network".to_owned(),
            "paritydb".to_owned()
        ]
    );
}

#[test]
fn restoring_the_keys_a_node_already_has_changes_nothing() {
    let temp = TempDir::new("flow-restore-same");
    let fake = Fake::new(&temp, "t-restore-same");
    let cfg = config(&temp);
    let file = backup(&fake, &cfg, &hooks()).unwrap().file_name;
    fake.state().calls.clear();
    let report = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap();
    assert!(!report.changed && !report.restarted);
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| c == "stop" || c.starts_with("cp_to"))
    );
    assert_no_leftovers(&cfg);
}

#[test]
fn restore_into_a_stopped_node_copies_over_when_that_is_exact() {
    let temp = TempDir::new("flow-restore-stopped");
    let fake = Fake::new(&temp, "t-restore-stopped");
    let cfg = config(&temp);
    let file = backup(&fake, &cfg, &hooks()).unwrap().file_name;
    // Same key files, other contents; and the network key lost.
    fake.write(
        &format!("{CHAIN}/keystore/{}", key_name("gran", 1)),
        b"\"damaged\"",
        0o644,
    );
    fs::set_permissions(
        fake.host(&format!("{CHAIN}/keystore")),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::remove_dir_all(fake.host(&format!("{CHAIN}/network"))).unwrap();
    fake.state().running = false;
    fake.state().calls.clear();
    let report = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap();
    assert!(report.changed && !report.restarted && !report.was_running);
    assert_eq!(container_keys(&fake), files_of_archive(&cfg, &file));
    assert!(!fake.running());
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| c == "stop" || c == "start" || c.starts_with("exec"))
    );
    assert_no_leftovers(&cfg);
}

#[test]
fn restore_into_a_stopped_node_that_lost_its_keystore() {
    let temp = TempDir::new("flow-restore-lost");
    let fake = Fake::new(&temp, "t-restore-lost");
    let cfg = config(&temp);
    let file = backup(&fake, &cfg, &hooks()).unwrap().file_name;
    fs::remove_dir_all(fake.host(&format!("{CHAIN}/keystore"))).unwrap();
    fake.state().running = false;
    let report = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap();
    assert!(report.changed);
    assert_eq!(container_keys(&fake), files_of_archive(&cfg, &file));
    // What it had (the network key, no keystore) is saved first.
    let saved = files_of_archive(&cfg, &report.pre_restore_backup.unwrap());
    assert_eq!(
        saved.keys().collect::<Vec<_>>(),
        ["keystore/", "network/", "network/secret_ed25519"]
    );
    assert!(!fake.running());
    assert_no_leftovers(&cfg);
}

#[test]
fn restore_into_a_stopped_node_with_extra_keys_is_refused() {
    let temp = TempDir::new("flow-restore-extra");
    let (fake, cfg, file) = backed_up_then_changed(&temp, "t-restore-extra");
    fake.state().running = false;
    let before = container_keys(&fake);
    let error = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("it is stopped") && text.contains("3 entries"),
        "{text}"
    );
    assert_eq!(error.wire_code(), "unavailable");
    assert_eq!(container_keys(&fake), before);
    assert!(!fake.calls().iter().any(|c| c.starts_with("cp_to")));
    assert_no_leftovers(&cfg);
    assert_eq!(
        listing(&cfg.dir).len(),
        2,
        "no pre-restore archive: {:?}",
        listing(&cfg.dir)
    );
}

#[test]
fn a_failed_swap_is_rolled_back_and_the_node_never_stopped() {
    let temp = TempDir::new("flow-restore-swap");
    let (fake, cfg, file) = backed_up_then_changed(&temp, "t-restore-swap");
    let before = container_keys(&fake);
    // The second directory's move into place fails.
    fake.state().exec_exit.push((
        format!(
            "exec mv -- {CHAIN}/.warden-restore-20250108143000-{}/network",
            std::process::id()
        ),
        1,
    ));
    let error = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("moving the backup's keys into place"),
        "{text}"
    );
    assert!(text.contains("the node's keys were not changed"), "{text}");
    assert!(text.ends_with("the node was not stopped"), "{text}");
    assert_eq!(container_keys(&fake), before);
    assert_eq!(
        listing(&fake.host(CHAIN)),
        ["keystore", "network", "paritydb"]
    );
    assert!(!fake.calls().contains(&"stop".to_owned()));
    assert!(fake.running());
    assert_no_leftovers(&cfg);
}

#[test]
fn a_restore_whose_node_will_not_start_says_so() {
    let temp = TempDir::new("flow-restore-nostart");
    let (fake, cfg, file) = backed_up_then_changed(&temp, "t-restore-nostart");
    fake.state().start_failures = 100;
    let error = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("the backup's keys are in place"), "{text}");
    assert!(
        text.ends_with("start it by hand with `docker start t-restore-nostart`"),
        "{text}"
    );
    assert!(!fake.running());
    assert_no_leftovers(&cfg);
}

#[test]
fn restore_refusals_write_nothing_and_touch_nothing() {
    let temp = TempDir::new("flow-restore-refuse");
    let fake = Fake::new(&temp, "t-refuse");
    let cfg = config(&temp);
    let good = backup(&fake, &cfg, &hooks()).unwrap().file_name;
    let before_keys = container_keys(&fake);

    let ok_dir: archive::tests::RawEntry = (b"keystore/", tar::EntryType::Directory, b"", None);
    let crafted = archive::tests::crafted;
    let mut cases: Vec<(String, Vec<u8>, &str)> = vec![
        (
            "t-refuse-keys-20250101-0001.tar.gz".to_owned(),
            crafted(&[ok_dir, (b"../x", tar::EntryType::Regular, b"x", None)]),
            "`..`",
        ),
        (
            "t-refuse-keys-20250101-0002.tar.gz".to_owned(),
            crafted(&[ok_dir, (b"/etc/x", tar::EntryType::Regular, b"x", None)]),
            "absolute",
        ),
        (
            "t-refuse-keys-20250101-0003.tar.gz".to_owned(),
            crafted(&[
                ok_dir,
                (
                    b"keystore/x",
                    tar::EntryType::Symlink,
                    b"",
                    Some(b"/etc/passwd"),
                ),
            ]),
            "symbolic link",
        ),
        (
            "t-refuse-keys-20250101-0004.tar.gz".to_owned(),
            crafted(&[
                ok_dir,
                (
                    b"keystore/x",
                    tar::EntryType::Link,
                    b"",
                    Some(b"keystore/y"),
                ),
            ]),
            "hard link",
        ),
        (
            "t-refuse-keys-20250101-0005.tar.gz".to_owned(),
            crafted(&[ok_dir, (b"keystore/x", tar::EntryType::Char, b"", None)]),
            "device",
        ),
        (
            "t-refuse-keys-20250101-0006.tar.gz".to_owned(),
            crafted(&[ok_dir, (b"paritydb/x", tar::EntryType::Regular, b"x", None)]),
            "outside",
        ),
    ];
    // Another container's archive, by name; and by header under a renamed file.
    let other = fs::read(cfg.dir.join(&good)).unwrap();
    cases.push((
        "t-other-keys-20250101-0007.tar.gz".to_owned(),
        other.clone(),
        "t-other",
    ));
    let other_temp = TempDir::new("flow-restore-other");
    let fake_other = Fake::new(&other_temp, "t-other");
    let other_cfg = BackupConfig {
        dir: temp.path().join("other-backups"),
        ..config(&temp)
    };
    let other_file = backup(&fake_other, &other_cfg, &hooks()).unwrap().file_name;
    cases.push((
        "t-refuse-keys-20250101-0008.tar.gz".to_owned(),
        fs::read(other_cfg.dir.join(&other_file)).unwrap(),
        "holds the keys of \"t-other\"",
    ));
    cases.push(("mykeys.tar.gz".to_owned(), other, "does not say"));
    // The same container name, backed up on another host.
    let elsewhere_cfg = BackupConfig {
        dir: temp.path().join("elsewhere-backups"),
        host: "other-host".to_owned(),
        ..config(&temp)
    };
    let elsewhere = backup(&fake, &elsewhere_cfg, &hooks()).unwrap().file_name;
    cases.push((
        elsewhere.replace(".tar.gz", "-9.tar.gz"),
        fs::read(elsewhere_cfg.dir.join(&elsewhere)).unwrap(),
        "on host other-host",
    ));
    for (name, bytes, _) in &cases {
        fs::write(cfg.dir.join(name), bytes).unwrap();
        fs::write(
            cfg.dir.join(format!("{name}.sha256")),
            store::sha256_line(&store::sha256_hex(bytes), name),
        )
        .unwrap();
    }
    // Checksum problems.
    let good_bytes = fs::read(cfg.dir.join(&good)).unwrap();
    fs::write(
        cfg.dir.join("t-refuse-keys-20250101-0009.tar.gz"),
        &good_bytes,
    )
    .unwrap();
    fs::write(
        cfg.dir.join("t-refuse-keys-20250101-0010.tar.gz"),
        &good_bytes,
    )
    .unwrap();
    fs::write(
        cfg.dir.join("t-refuse-keys-20250101-0010.tar.gz.sha256"),
        store::sha256_line(
            &store::sha256_hex(b"other"),
            "t-refuse-keys-20250101-0010.tar.gz",
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        cfg.dir.join(&good),
        cfg.dir.join("t-refuse-keys-20250101-0011.tar.gz"),
    )
    .unwrap();
    let mut expectations: Vec<(String, &str)> =
        cases.iter().map(|(n, _, e)| (n.clone(), *e)).collect();
    expectations.extend([
        ("t-refuse-keys-20250101-0009.tar.gz".to_owned(), "missing"),
        ("t-refuse-keys-20250101-0010.tar.gz".to_owned(), "damaged"),
        (
            "t-refuse-keys-20250101-0011.tar.gz".to_owned(),
            "symbolic link",
        ),
        (
            "t-refuse-keys-20250101-0012.tar.gz".to_owned(),
            "no backup file",
        ),
        ("../etc/passwd".to_owned(), "not a path"),
        (format!("sub/{good}"), "not a path"),
        (".inflight-x.tar.gz".to_owned(), "temporary"),
        ("keys.zip".to_owned(), ".tar.gz"),
    ]);
    let listing_before = listing(&cfg.dir);
    fake.state().calls.clear();
    for (name, expected) in expectations {
        let error = restore(&fake, &cfg, &name, RestoreOptions::default()).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(expected),
            "{name}: {text:?} lacks {expected:?}"
        );
        assert!(
            text.contains("nothing was changed")
                || matches!(error, BackupError::InvalidBackupName { .. }),
            "{name}: {text}"
        );
        assert_eq!(error.wire_code(), "invalid_params", "{name}: {text}");
        assert_eq!(fake.calls(), Vec::<String>::new(), "{name}");
        assert_eq!(listing(&cfg.dir), listing_before, "{name}");
        assert_eq!(container_keys(&fake), before_keys, "{name}");
    }

    // The override lets another container's (renamed) archive in.
    let report = restore(
        &fake,
        &cfg,
        "mykeys.tar.gz",
        RestoreOptions {
            allow_other_container: true,
        },
    )
    .unwrap();
    assert!(!report.changed, "the same keys");
}

#[test]
fn restore_into_a_node_of_another_user_gives_it_the_files() {
    let temp = TempDir::new("flow-restore-user");
    let (fake, cfg, file) = backed_up_then_changed(&temp, "t-restore-user");
    // Numeric: nothing to look up in the container.
    fake.state().user = "4321:4321".to_owned();
    match restore(&fake, &cfg, &file, RestoreOptions::default()) {
        Ok(report) => assert!(report.changed),
        // Without CAP_CHOWN the restore is refused before anything changes.
        Err(error) => {
            assert!(error.to_string().contains("CAP_CHOWN"), "{error}");
            assert!(!fake.calls().iter().any(|c| c.starts_with("cp_to")));
        }
    }
}
