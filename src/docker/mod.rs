//! Docker: the only place in warden that runs `docker`.
//!
//! warden drives the Docker Engine through the `docker` CLI (no HTTP client for
//! the engine API, no async): each call builds an argv (`args.rs`), runs it with
//! a deadline (`process.rs`), and reads its output into typed values (`parse.rs`)
//! or a [`DockerError`] (`error.rs`) whose message carries Docker's own words.
//!
//! Invariants:
//! - nothing else in warden spawns `docker`; callers get [`Docker`]'s methods;
//! - no shell: every command is an argv list, and every container name in it has
//!   passed [`validate_container_name`] (so no word is read as an option or a path);
//! - every call has a timeout; on expiry the `docker` process is killed and reaped
//!   (the events stream alone runs until dropped, and is then killed and reaped);
//! - captured output is bounded per stream ([`Docker::with_output_cap`]); the
//!   child is always drained, so it never blocks writing;
//! - stdin is null: no call can wait for input;
//! - the container environment (`Config.Env`, which can hold secrets) is never
//!   read, and `docker exec` arguments are left out of error messages.
//!
//! Versions: the fixtures in `tests/fixtures/docker/` were captured from the
//! Docker 28.2 CLI talking to Engine 20.10.24 (API 1.41). The JSON of `docker ps`
//! and `docker stats` is built by the CLI, that of `docker inspect` by the engine.
//!
//! `docker events` (`events.rs`) is the one long-lived call: a stream of container
//! lifecycle changes that tells the agent when to re-read `ps`/`inspect`, so an idle
//! agent runs one `docker stats` per interval and nothing else. It is killed and
//! reaped when dropped.
//!
//! Left out on purpose: `docker run`/`rm`/`pull` (warden manages containers the
//! operator created, it does not create them), and the engine's HTTP API (the CLI
//! brings contexts, TLS and ssh for free).

mod args;
mod error;
mod events;
mod exec;
mod parse;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

pub use args::{
    MAX_CONTAINER_NAME_LEN, cp_from_args, cp_stream_args, cp_to_args, exec_args, grace_seconds,
    inspect_args, list_containers_args, logs_args, restart_args, server_version_args, start_args,
    stats_args, stop_args, validate_container_name,
};
pub use error::DockerError;
pub use events::{
    ACTIONS as EVENT_ACTIONS, ContainerEvent, EventLine, EventStream, events_args, parse_event,
};
pub use exec::CLIENT_GRACE as EXEC_CLIENT_GRACE;
pub use parse::{
    ContainerConfig, ContainerInspect, ContainerState, ContainerStats, ContainerSummary,
    HostConfig, Mount, parse_docker_time, parse_inspect, parse_percent, parse_ps, parse_size,
    parse_size_pair, parse_stats,
};

use crate::process::{Captured, Keep, Limits, RunError};
use error::{argv_for_errors, classify_failure, exec_start_failure, is_docker_own_exec_failure};

/// Default deadline of one `docker` call (`stop` and `restart` add their grace).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default bound on the bytes kept from each of a call's stdout and stderr.
pub const DEFAULT_OUTPUT_CAP: usize = 1024 * 1024;

/// `docker logs` output.
///
/// The container's stdout arrives on `docker logs`'s stdout and its stderr on
/// `docker logs`'s stderr; the two are returned apart, and their interleaving is
/// lost. Substrate nodes log to stderr, so that is where their lines are. With
/// timestamps on, each line starts with an RFC 3339 time, by which the two
/// streams can be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsOutput {
    pub stdout: String,
    pub stderr: String,
    /// Output went beyond the output cap; the *newest* lines were kept, starting
    /// at a whole line.
    pub truncated: bool,
}

/// What a program run with `docker exec` did. Its non-zero exit is not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The program's exit code; 128 + N when signal N killed it.
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Either stream went beyond the output cap and was cut (its start is kept).
    pub truncated: bool,
}

/// A handle on the Docker CLI: which program, how long a call may take, how much
/// output is kept. Cheap to clone; holds no process or connection.
#[derive(Debug, Clone)]
pub struct Docker {
    program: OsString,
    timeout: Duration,
    output_cap: usize,
}

impl Default for Docker {
    fn default() -> Self {
        Docker::new()
    }
}

impl Docker {
    /// `docker` from `PATH`, [`DEFAULT_TIMEOUT`], [`DEFAULT_OUTPUT_CAP`].
    pub fn new() -> Docker {
        Docker {
            program: OsString::from("docker"),
            timeout: DEFAULT_TIMEOUT,
            output_cap: DEFAULT_OUTPUT_CAP,
        }
    }

    /// The program to run instead of `docker` from `PATH`.
    pub fn with_program(mut self, program: impl Into<OsString>) -> Docker {
        self.program = program.into();
        self
    }

    /// The deadline of each call (except `exec`, which takes its own).
    pub fn with_timeout(mut self, timeout: Duration) -> Docker {
        self.timeout = timeout;
        self
    }

    /// Bytes kept of each stream of a call; the rest is read and dropped.
    pub fn with_output_cap(mut self, bytes: usize) -> Docker {
        self.output_cap = bytes;
        self
    }

    pub fn program(&self) -> &OsString {
        &self.program
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn output_cap(&self) -> usize {
        self.output_cap
    }

    /// The engine's version (`20.10.24+dfsg1`). Asks the engine, so this is the
    /// availability probe: an unreachable engine gives [`DockerError::Unavailable`].
    pub fn server_version(&self) -> Result<String, DockerError> {
        let argv = server_version_args();
        let captured = self.run_ok(&argv, &[], self.timeout)?;
        let version = String::from_utf8_lossy(&captured.stdout.bytes)
            .trim()
            .to_owned();
        if version.is_empty() {
            return Err(DockerError::Parse {
                what: "`docker version`",
                detail: "the engine's version is empty".to_owned(),
            });
        }
        Ok(version)
    }

    /// All containers on this engine, running or not (`docker ps -a`).
    pub fn list_containers(&self) -> Result<Vec<ContainerSummary>, DockerError> {
        let captured = self.run_ok(&list_containers_args(), &[], self.timeout)?;
        parse_ps(&String::from_utf8_lossy(&captured.stdout.bytes))
    }

    /// `docker inspect` of the named containers, in the order given. A name
    /// Docker does not know fails the whole call with
    /// [`DockerError::NoSuchContainer`] naming it.
    pub fn inspect<S: AsRef<str>>(
        &self,
        names: &[S],
    ) -> Result<Vec<ContainerInspect>, DockerError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let argv = inspect_args(names)?;
        let captured = self.run_ok(&argv, &as_strs(names), self.timeout)?;
        parse_inspect(&String::from_utf8_lossy(&captured.stdout.bytes))
    }

    /// One `docker stats --no-stream` sample of the named containers (stopped
    /// ones report zeros). Takes about two seconds: the CLI waits for two samples
    /// to compute CPU use.
    pub fn stats<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<ContainerStats>, DockerError> {
        // Without names, `docker stats` would report every running container.
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let argv = stats_args(names)?;
        let captured = self.run_ok(&argv, &as_strs(names), self.timeout)?;
        parse_stats(&String::from_utf8_lossy(&captured.stdout.bytes))
    }

    /// `docker start`; starting a running container succeeds and does nothing.
    pub fn start(&self, name: &str) -> Result<(), DockerError> {
        self.run_ok(&start_args(name)?, &[name], self.timeout)
            .map(drop)
    }

    /// `docker stop -t GRACE`: SIGTERM (or the image's stop signal), then SIGKILL
    /// after `grace`. Stopping a stopped container succeeds. The call's deadline
    /// is the grace plus the handle's timeout.
    pub fn stop(&self, name: &str, grace: Duration) -> Result<(), DockerError> {
        self.run_ok(
            &stop_args(name, grace)?,
            &[name],
            self.timeout.saturating_add(grace),
        )
        .map(drop)
    }

    /// `docker restart -t GRACE`: stop as [`Docker::stop`], then start. It does not
    /// count in [`ContainerInspect::restart_count`].
    pub fn restart(&self, name: &str, grace: Duration) -> Result<(), DockerError> {
        self.run_ok(
            &restart_args(name, grace)?,
            &[name],
            self.timeout.saturating_add(grace),
        )
        .map(drop)
    }

    /// The last `tail_lines` lines of the container's log (`docker logs --tail`),
    /// counted over both streams together. See [`LogsOutput`] for how the
    /// streams come back. Works on stopped containers.
    pub fn logs(
        &self,
        name: &str,
        tail_lines: usize,
        timestamps: bool,
    ) -> Result<LogsOutput, DockerError> {
        let argv = logs_args(name, tail_lines, timestamps)?;
        let captured = self.run(&argv, self.timeout, Keep::Tail)?;
        if !captured.status.success() {
            return Err(failure(&argv, &[name], &captured));
        }
        let (stdout, stderr) = (captured.stdout, captured.stderr);
        Ok(LogsOutput {
            truncated: stdout.truncated || stderr.truncated,
            stdout: whole_lines_tail(stdout),
            stderr: whole_lines_tail(stderr),
        })
    }

    /// Runs `argv` in the running container (`docker exec`, no TTY, no stdin)
    /// with its own `timeout`.
    ///
    /// The program's exit code, whatever it is, comes back in [`ExecOutput`].
    /// Docker's own failures are errors: [`DockerError::NoSuchContainer`],
    /// [`DockerError::NotRunning`], [`DockerError::ExecStart`] (program not
    /// found or not executable: Engine 20.10 exits 126 and prints the runtime's
    /// message on *stdout*), [`DockerError::Unavailable`].
    ///
    /// On timeout the `docker exec` client is killed, but the program it started
    /// inside the container is not: Docker has no way to stop an exec'd process
    /// short of stopping the container. Give programs their own time limit
    /// (`curl --max-time`), or use [`Docker::exec_with_deadline`].
    pub fn exec(
        &self,
        name: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, DockerError> {
        let full = exec_args(name, argv)?;
        let captured = self.run(&full, timeout, Keep::Head)?;
        let Some(exit_code) = captured.status.code() else {
            // The `docker` client itself died of a signal.
            return Err(failure(&full, &[name], &captured));
        };
        let stdout = String::from_utf8_lossy(&captured.stdout.bytes).into_owned();
        let stderr = String::from_utf8_lossy(&captured.stderr.bytes).into_owned();
        if let Some(detail) = exec_start_failure(exit_code, &stdout, &stderr) {
            return Err(DockerError::ExecStart {
                container: name.to_owned(),
                program: argv[0].clone(),
                detail,
            });
        }
        if is_docker_own_exec_failure(exit_code, &stdout, &stderr) {
            return Err(classify_failure(&full, &[name], captured.status, &stderr));
        }
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
            truncated: captured.stdout.truncated || captured.stderr.truncated,
        })
    }

    /// Copies `path_in_container` out to `host_dest` (`docker cp`; works on
    /// stopped containers). If `host_dest` is an existing directory the source
    /// lands inside it; files are owned by the user running warden.
    pub fn cp_from(
        &self,
        name: &str,
        path_in_container: &str,
        host_dest: &Path,
    ) -> Result<(), DockerError> {
        let argv = cp_from_args(name, path_in_container, host_dest)?;
        self.run_ok(&argv, &[name], self.timeout).map(drop)
    }

    /// `docker cp NAME:PATH -`: the tar stream of `path_in_container`, at most `cap`
    /// bytes (more is an error, not a cut: a partial listing would be wrong). Works on
    /// stopped containers. The bytes stay in memory; callers read headers only.
    pub fn cp_from_stream(
        &self,
        name: &str,
        path_in_container: &str,
        cap: usize,
    ) -> Result<Vec<u8>, DockerError> {
        let argv = cp_stream_args(name, path_in_container)?;
        let captured = self
            .clone()
            .with_output_cap(cap)
            .run_ok(&argv, &[name], self.timeout)?;
        if captured.stdout.truncated {
            return Err(DockerError::Parse {
                what: "`docker cp` stream",
                detail: format!("{path_in_container} in {name} is larger than {cap} bytes"),
            });
        }
        Ok(captured.stdout.bytes)
    }

    /// Copies `host_src` into the container at `path_in_container` (`docker cp`;
    /// works on stopped containers). The copies are owned by root inside the
    /// container: a node running as another user may need a `chown`.
    pub fn cp_to(
        &self,
        host_src: &Path,
        name: &str,
        path_in_container: &str,
    ) -> Result<(), DockerError> {
        let argv = cp_to_args(host_src, name, path_in_container)?;
        self.run_ok(&argv, &[name], self.timeout).map(drop)
    }

    /// Runs `docker ARGV` and requires success; `names` are the containers the
    /// command is about, for error messages.
    fn run_ok(
        &self,
        argv: &[String],
        names: &[&str],
        timeout: Duration,
    ) -> Result<Captured, DockerError> {
        let captured = self.run(argv, timeout, Keep::Head)?;
        if captured.status.success() {
            Ok(captured)
        } else {
            Err(failure(argv, names, &captured))
        }
    }

    /// The one place a `docker` process is started.
    fn run(&self, argv: &[String], timeout: Duration, keep: Keep) -> Result<Captured, DockerError> {
        let limits = Limits {
            timeout,
            cap: self.output_cap,
            keep,
        };
        crate::process::run(&self.program, argv, &limits).map_err(|error| match error {
            RunError::Spawn(error) => DockerError::Unavailable {
                detail: spawn_failure(&self.program, &error),
            },
            RunError::TimedOut => DockerError::Timeout {
                argv: argv_for_errors(argv),
                after: timeout,
            },
            RunError::Io(error) => DockerError::Io {
                argv: argv_for_errors(argv),
                detail: error.to_string(),
            },
        })
    }
}

fn as_strs<S: AsRef<str>>(names: &[S]) -> Vec<&str> {
    names.iter().map(AsRef::as_ref).collect()
}

fn failure(argv: &[String], names: &[&str], captured: &Captured) -> DockerError {
    classify_failure(
        argv,
        names,
        captured.status,
        &String::from_utf8_lossy(&captured.stderr.bytes),
    )
}

fn spawn_failure(program: &OsString, error: &std::io::Error) -> String {
    let program = Path::new(program).display();
    match error.kind() {
        std::io::ErrorKind::NotFound => format!(
            "the `{program}` program was not found ({error}); install the docker CLI or \
             configure the path to it"
        ),
        std::io::ErrorKind::PermissionDenied => {
            format!("the `{program}` program cannot be run ({error}); check its permissions")
        }
        _ => format!("cannot run `{program}`: {error}"),
    }
}

/// A kept tail as text starting at a whole line: when the start was cut, the
/// partial first line is dropped.
fn whole_lines_tail(stream: crate::process::Stream) -> String {
    let bytes = if stream.truncated {
        match stream.bytes.iter().position(|&b| b == b'\n') {
            Some(newline) => &stream.bytes[newline + 1..],
            None => &stream.bytes[..],
        }
    } else {
        &stream.bytes[..]
    };
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests;
