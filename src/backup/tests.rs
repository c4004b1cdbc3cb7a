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

mod backup;
mod recovery;
mod restore;
