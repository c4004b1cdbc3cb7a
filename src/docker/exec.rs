//! `exec` whose deadline holds inside the container, not only for the client.
//!
//! Killing the `docker exec` client leaves the program it started running in
//! the container: the engine has no call to stop one exec'd process. So the
//! program runs under the image's own `timeout -s KILL SECS` (GNU coreutils
//! and busybox take the same words), which kills it where it runs; the client
//! gets a few seconds more ([`CLIENT_GRACE`]) to read the outcome. GNU
//! `timeout` kills the program's whole process group; busybox's kills the
//! program only. An image without `timeout` is run as before, bounded at the
//! client only.
use super::args::exec_args;
use super::error::argv_for_errors;
use super::{Docker, DockerError, ExecOutput};
use std::time::{Duration, Instant};

/// The program that enforces the deadline inside the container.
const TIMEOUT_PROGRAM: &str = "timeout";
/// How long the client outlives the deadline inside the container.
pub const CLIENT_GRACE: Duration = Duration::from_secs(5);

impl Docker {
    /// Like [`Docker::exec`], but the program is killed inside the container
    /// once `deadline` has passed, and that is [`DockerError::Timeout`].
    pub fn exec_with_deadline(
        &self,
        name: &str,
        argv: &[String],
        deadline: Duration,
    ) -> Result<ExecOutput, DockerError> {
        // Errors name the operator's argv, not the wrapper's.
        let shown = argv_for_errors(&exec_args(name, argv)?);
        let started = Instant::now();
        let timed_out = || DockerError::Timeout {
            argv: shown.clone(),
            after: deadline,
        };
        match self.exec(
            name,
            &deadline_argv(argv, deadline),
            deadline + CLIENT_GRACE,
        ) {
            Ok(output) => {
                if let Some(detail) = could_not_run(output.exit_code, &output.stderr) {
                    return Err(DockerError::ExecStart {
                        container: name.to_owned(),
                        program: argv[0].clone(),
                        detail,
                    });
                }
                if killed_at_deadline(output.exit_code, started.elapsed(), deadline) {
                    return Err(timed_out());
                }
                Ok(output)
            }
            Err(DockerError::ExecStart { detail, .. }) if names_timeout(&detail) => {
                self.exec(name, argv, deadline)
            }
            Err(DockerError::ExecStart {
                container, detail, ..
            }) => Err(DockerError::ExecStart {
                container,
                program: argv[0].clone(),
                detail,
            }),
            Err(DockerError::Timeout { .. }) => Err(timed_out()),
            Err(other) => Err(other),
        }
    }
}

/// `timeout -s KILL SECS PROGRAM ARGS...`, SECS rounded up, at least 1.
fn deadline_argv(argv: &[String], deadline: Duration) -> Vec<String> {
    let seconds = deadline.as_secs() + u64::from(deadline.subsec_nanos() > 0);
    let mut wrapped = vec![
        TIMEOUT_PROGRAM.to_owned(),
        "-s".to_owned(),
        "KILL".to_owned(),
        seconds.max(1).to_string(),
    ];
    wrapped.extend_from_slice(argv);
    wrapped
}

/// Whether Docker's exec-start failure is about `timeout` itself (the image
/// has none), not the operator's program.
fn names_timeout(detail: &str) -> bool {
    detail.contains(&format!("\"{TIMEOUT_PROGRAM}\""))
}

/// `timeout`'s own words when it could not start the program: exit 126 (not
/// executable) or 127 (not found) and a first stderr line from `timeout`.
fn could_not_run(exit_code: i32, stderr: &str) -> Option<String> {
    if exit_code != 126 && exit_code != 127 {
        return None;
    }
    let line = stderr.lines().next()?.trim();
    let from_timeout = line.starts_with("timeout: ")
        && (line.contains("failed to run command") || line.contains("can't execute"));
    from_timeout.then(|| line.to_owned())
}

/// Whether the program was killed by `timeout` (SIGKILL: 137; GNU exits 124
/// when it outlives its child) at the deadline, not by something else early.
fn killed_at_deadline(exit_code: i32, elapsed: Duration, deadline: Duration) -> bool {
    (exit_code == 137 || exit_code == 124) && elapsed >= deadline
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_program_runs_under_timeout_with_whole_seconds_rounded_up() {
        let argv = words(&["sleep", "-x", "30"]);
        assert_eq!(
            deadline_argv(&argv, Duration::from_millis(1500)),
            words(&["timeout", "-s", "KILL", "2", "sleep", "-x", "30"])
        );
        assert_eq!(deadline_argv(&argv, Duration::from_secs(30))[3], "30");
        assert_eq!(deadline_argv(&argv, Duration::ZERO)[3], "1");
    }

    #[test]
    fn a_missing_timeout_is_told_from_a_missing_program() {
        let no_timeout = "OCI runtime exec failed: exec failed: unable to start container process: \
                          exec: \"timeout\": executable file not found in $PATH: unknown";
        assert!(names_timeout(no_timeout));
        assert!(!names_timeout(
            "OCI runtime exec failed: exec: \"nosuchprog\": executable file not found in $PATH"
        ));
        // GNU coreutils 9.1 and busybox 1.35, program not found / not executable.
        let gnu = "timeout: failed to run command 'nosuch': No such file or directory\n";
        let busybox = "timeout: can't execute 'nosuch': No such file or directory\n";
        assert_eq!(could_not_run(127, gnu).as_deref(), Some(gnu.trim()));
        assert_eq!(could_not_run(126, busybox).as_deref(), Some(busybox.trim()));
        assert_eq!(could_not_run(127, "sh: nosuch: not found\n"), None);
        assert_eq!(could_not_run(1, gnu), None);
    }

    #[test]
    fn only_a_kill_at_or_after_the_deadline_is_a_timeout() {
        let deadline = Duration::from_secs(2);
        assert!(killed_at_deadline(
            137,
            Duration::from_millis(2100),
            deadline
        ));
        assert!(killed_at_deadline(124, Duration::from_secs(3), deadline));
        assert!(!killed_at_deadline(
            137,
            Duration::from_millis(500),
            deadline
        ));
        assert!(!killed_at_deadline(0, Duration::from_secs(3), deadline));
    }
}
