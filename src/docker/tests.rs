//! [`Docker`] against `tests/fixtures/docker/fake-docker`, a shell script that
//! plays the CLI: process handling (timeouts, caps, reaping) and the mapping of
//! outcomes to results, without an engine. Every call has a deadline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

fn fake() -> Docker {
    Docker::new()
        .with_program(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/docker/fake-docker"
        ))
        .with_timeout(Duration::from_secs(20))
}

fn words(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// A directory of this test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("warden-docker-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn defaults() {
    let docker = Docker::new();
    assert_eq!(docker.program(), "docker");
    assert_eq!(docker.timeout(), Duration::from_secs(30));
    assert_eq!(docker.output_cap(), 1024 * 1024);
}

#[test]
fn reads_what_the_cli_prints() {
    let docker = fake();
    assert_eq!(docker.server_version().unwrap(), "20.10.24+dfsg1");
    assert_eq!(docker.list_containers().unwrap().len(), 5);
    let inspected = docker.inspect(&["dockerrs-probe-run"]).unwrap();
    assert!(inspected.iter().any(|c| c.name == "dockerrs-probe-run"));
    assert_eq!(docker.stats(&["dockerrs-probe-run"]).unwrap().len(), 4);
    assert_eq!(docker.inspect::<&str>(&[]).unwrap(), []);
    assert_eq!(docker.stats::<String>(&[]).unwrap(), []);
    docker.start("n0").unwrap();
    docker.stop("n0", Duration::from_secs(1)).unwrap();
    docker.restart("n0", Duration::from_secs(1)).unwrap();
    docker.cp_from("n0", "/data", Path::new("/tmp/x")).unwrap();
    docker.cp_to(Path::new("/tmp/x"), "n0", "/data").unwrap();
}

#[test]
fn unknown_containers_are_named() {
    let docker = fake();
    let want = |name: &str| {
        Some(DockerError::NoSuchContainer {
            container: name.to_owned(),
        })
    };
    assert_eq!(
        docker.inspect(&["n0", "missing-b"]).err(),
        want("missing-b")
    );
    assert_eq!(docker.stats(&["missing-c", "n0"]).err(), want("missing-c"));
    assert_eq!(docker.start("missing-d").err(), want("missing-d"));
    assert_eq!(
        docker.stop("missing-e", Duration::ZERO).err(),
        want("missing-e")
    );
    assert_eq!(docker.logs("missing-f", 5, false).err(), want("missing-f"));
    assert_eq!(
        docker
            .exec("missing-g", &words(&["true"]), Duration::from_secs(5))
            .err(),
        want("missing-g")
    );
    assert_eq!(
        docker.cp_from("missing-x", "/d", Path::new("/tmp/x")).err(),
        want("missing-x")
    );
    let error = docker.start("missing-d").unwrap_err();
    assert_eq!(error.code().as_str(), "unknown_target");
}

#[test]
fn stderr_is_carried_into_the_error() {
    let error = fake().stop("fail-n0", Duration::from_secs(3)).unwrap_err();
    let DockerError::Failed {
        argv,
        status,
        stderr,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(argv, &words(&["stop", "-t", "3", "fail-n0"]));
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        stderr,
        "Error response from daemon: cannot stop container: fail-n0: tried to kill container, but did not receive an exit event"
    );
    assert_eq!(
        error.to_string(),
        "`docker stop -t 3 fail-n0` failed (exit status: 1): Error response from daemon: cannot stop container: \
         fail-n0: tried to kill container, but did not receive an exit event"
    );
    assert_eq!(error.code().as_str(), "internal");
}

#[test]
fn an_unreachable_engine_is_unavailable() {
    let error = fake().restart("down-n0", Duration::ZERO).unwrap_err();
    assert!(error.is_engine_unavailable(), "{error:?}");
    assert_eq!(error.code().as_str(), "unavailable");
    assert!(
        error
            .to_string()
            .contains("Cannot connect to the Docker daemon"),
        "{error}"
    );
}

#[test]
fn a_missing_program_is_unavailable() {
    let docker = Docker::new().with_program("/nonexistent/warden-test/docker");
    let error = docker.server_version().unwrap_err();
    assert!(error.is_engine_unavailable(), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("/nonexistent/warden-test/docker` program was not found"),
        "{error}"
    );
    let not_executable = Docker::new().with_program(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/docker/ps.jsonl"
    ));
    assert!(
        not_executable
            .list_containers()
            .unwrap_err()
            .is_engine_unavailable()
    );
}

#[test]
fn invalid_names_never_reach_docker() {
    // The missing program would make any run Unavailable; InvalidName proves none happened.
    let docker = Docker::new().with_program("/nonexistent/warden-test/docker");
    let bad = "../x";
    let want = Some(DockerError::InvalidName {
        name: bad.to_owned(),
    });
    assert_eq!(docker.start(bad).err(), want);
    assert_eq!(docker.inspect(&["ok", bad]).err(), want);
    assert_eq!(
        docker
            .exec(bad, &words(&["true"]), Duration::from_secs(1))
            .err(),
        want
    );
    assert_eq!(
        docker.start(bad).unwrap_err().code().as_str(),
        "unknown_target"
    );
}

#[test]
fn exec_returns_the_programs_exit_and_output() {
    let out = fake()
        .exec(
            "n0",
            &words(&["echo", "out", "err", "3"]),
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(
        out,
        ExecOutput {
            exit_code: 3,
            stdout: "out".to_owned(),
            stderr: "err".to_owned(),
            truncated: false
        }
    );
    // A program exiting 1 with a message on stderr is the program's result.
    let out = fake()
        .exec(
            "n0",
            &words(&["echo", "", "grep: /x: No such file or directory", "1"]),
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(out.exit_code, 1);
}

#[test]
fn exec_tells_dockers_failures_apart() {
    let docker = fake();
    let timeout = Duration::from_secs(10);
    let error = docker
        .exec("n0", &words(&["oci", "nosuchprog"]), timeout)
        .unwrap_err();
    assert_eq!(
        error,
        DockerError::ExecStart {
            container: "n0".to_owned(),
            program: "oci".to_owned(),
            detail: "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nosuchprog\": \
                     executable file not found in $PATH: unknown"
                .to_owned()
        }
    );
    assert_eq!(error.code().as_str(), "invalid_params");
    let error = docker
        .exec("stopped-n0", &words(&["echo", "a", "b", "0"]), timeout)
        .unwrap_err();
    assert_eq!(
        error,
        DockerError::NotRunning {
            container: "stopped-n0".to_owned(),
            detail: "not running".to_owned()
        }
    );
    assert_eq!(
        error.to_string(),
        "container \"stopped-n0\" is not running; start it first"
    );
}

#[test]
fn timeout_kills_and_reaps_the_child() {
    let dir = TempDir::new("timeout");
    let pid_file = dir.0.join("pid");
    let timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let error = fake()
        .exec("n0", &words(&["hang", pid_file.to_str().unwrap()]), timeout)
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(
        error,
        DockerError::Timeout {
            argv: words(&["exec", "n0", "hang", "<1 argument hidden>"]),
            after: timeout
        }
    );
    assert_eq!(error.code().as_str(), "timeout");
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_secs(3),
        "{elapsed:?}"
    );
    let pid = std::fs::read_to_string(&pid_file).expect("the fake wrote its pid before sleeping");
    let proc_entry = PathBuf::from(format!("/proc/{}", pid.trim()));
    // A zombie would still have its /proc entry; a reaped child has none.
    assert!(
        !proc_entry.exists(),
        "{} still exists: child not reaped",
        proc_entry.display()
    );
}

#[test]
fn stop_waits_for_the_grace_on_top_of_the_timeout() {
    let docker = fake().with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let error = docker
        .stop("slow-n0", Duration::from_millis(700))
        .unwrap_err();
    assert!(
        matches!(error, DockerError::Timeout { after, .. } if after == Duration::from_secs(1)),
        "{error:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[test]
fn pipes_held_by_a_leftover_process_do_not_hang_the_call() {
    let timeout = Duration::from_millis(800);
    let started = Instant::now();
    let result = fake().exec("n0", &words(&["orphan"]), timeout);
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(DockerError::Timeout { .. })),
        "{result:?}"
    );
    assert!(
        elapsed < timeout + crate::process::DRAIN_GRACE + Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[test]
fn huge_output_is_capped_without_deadlock() {
    let cap = 64 * 1024;
    let flood = (8 * 1024 * 1024).to_string();
    let started = Instant::now();
    let out = fake()
        .with_output_cap(cap)
        .exec("n0", &words(&["flood", &flood]), Duration::from_secs(20))
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!((out.exit_code, out.truncated), (0, true));
    assert_eq!((out.stdout.len(), out.stderr.len()), (cap, cap));
    assert!(out.stdout.starts_with("stdout stdout stdout\n"));
    assert!(out.stderr.starts_with("stderr stderr stderr\n"));
}

#[test]
fn default_cap_is_one_mebibyte() {
    let flood = (3 * 1024 * 1024).to_string();
    let out = fake()
        .exec("n0", &words(&["flood", &flood]), Duration::from_secs(20))
        .unwrap();
    assert!(out.truncated);
    assert_eq!(
        (out.stdout.len(), out.stderr.len()),
        (1024 * 1024, 1024 * 1024)
    );
    let small = fake()
        .exec("n0", &words(&["flood", "1000"]), Duration::from_secs(20))
        .unwrap();
    assert_eq!((small.stdout.len(), small.truncated), (1000, false));
}

#[test]
fn logs_keep_both_streams_and_the_newest_lines() {
    let logs = fake().logs("n0", 3, false).unwrap();
    assert_eq!(
        logs,
        LogsOutput {
            stdout: "stdout line 1\nstdout line 2\nstdout line 3\n".to_owned(),
            stderr: "stderr line\n".to_owned(),
            truncated: false
        }
    );
    let logs = fake()
        .with_output_cap(1000)
        .logs("n0", 100_000, true)
        .unwrap();
    assert!(logs.truncated);
    assert!(logs.stdout.len() <= 1000);
    assert!(
        logs.stdout.starts_with("stdout line "),
        "starts at a whole line: {:?}",
        &logs.stdout[..20]
    );
    assert!(logs.stdout.ends_with("stdout line 100000\n"));
}
