//! `DockerError`, and reading Docker's stderr into it.
//!
//! Docker reports every failure as free text on stderr with exit status 1, so the
//! classification below is by message. The messages matched were captured from
//! the Docker 28.2 CLI against Engine 20.10 (tests/fixtures/docker/stderr/) and
//! checked against the wording of the 20.10 CLI ("Got permission denied while
//! trying to connect…"); matching is case-insensitive and on fragments that both
//! versions share.

use crate::protocol::ErrorCode;
use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

/// Longest stderr excerpt kept in an error: Docker's messages are one or two
/// lines; anything longer is a program's output and would flood a reply.
const STDERR_EXCERPT_MAX: usize = 1000;

/// What went wrong running `docker`. Display is one lowercase line that names the
/// container or command, carries Docker's own message, and says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerError {
    /// The name is not a valid Docker container name; nothing was run.
    InvalidName { name: String },
    /// A caller-supplied argument other than a name is unusable (empty exec
    /// command, NUL byte, non-UTF-8 path); nothing was run.
    InvalidArgument { what: &'static str, detail: String },
    /// Docker does not know this container.
    NoSuchContainer { container: String },
    /// The container exists but is not running, and the command needs it running
    /// (`docker exec`). `detail` is Docker's word for its state: `not running`,
    /// `paused` or `restarting`.
    NotRunning { container: String, detail: String },
    /// `docker exec` could not start the program in the container (not found,
    /// not executable). The program's own non-zero exit is not an error.
    ExecStart {
        container: String,
        program: String,
        detail: String,
    },
    /// The Docker engine cannot be used: the daemon is not reachable, its socket
    /// refuses this user, or the `docker` program itself cannot be run.
    Unavailable { detail: String },
    /// The command did not finish in time; `docker` was killed and reaped.
    Timeout { argv: Vec<String>, after: Duration },
    /// `docker` exited unsuccessfully for a reason not classified above.
    Failed {
        argv: Vec<String>,
        status: ExitStatus,
        stderr: String,
    },
    /// Waiting for `docker` or reading its output failed (an operating system
    /// error, not Docker's).
    Io { argv: Vec<String>, detail: String },
    /// `docker` succeeded but its output could not be read.
    Parse { what: &'static str, detail: String },
}

impl DockerError {
    /// The wire protocol's error code for this error; the one place that mapping
    /// lives.
    ///
    /// `NotRunning` is `unavailable`: the node behind the container cannot be
    /// reached. `ExecStart` and `InvalidArgument` are `invalid_params`: the
    /// operator's command names a program the container cannot run, or is empty.
    pub fn code(&self) -> ErrorCode {
        match self {
            DockerError::InvalidName { .. } | DockerError::NoSuchContainer { .. } => {
                ErrorCode::UnknownTarget
            }
            DockerError::InvalidArgument { .. } | DockerError::ExecStart { .. } => {
                ErrorCode::InvalidParams
            }
            DockerError::NotRunning { .. } | DockerError::Unavailable { .. } => {
                ErrorCode::Unavailable
            }
            DockerError::Timeout { .. } => ErrorCode::Timeout,
            DockerError::Failed { .. } | DockerError::Io { .. } | DockerError::Parse { .. } => {
                ErrorCode::Internal
            }
        }
    }

    /// True when the Docker engine (or the `docker` program) cannot be used at
    /// all, as opposed to a failure concerning one container.
    pub fn is_engine_unavailable(&self) -> bool {
        matches!(self, DockerError::Unavailable { .. })
    }
}

impl fmt::Display for DockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerError::InvalidName { name } => write!(
                f,
                "invalid container name {name:?}: a name is 1 to {} characters from \
                 [a-zA-Z0-9_.-], starting with a letter or digit",
                super::args::MAX_CONTAINER_NAME_LEN
            ),
            DockerError::InvalidArgument { what, detail } => write!(f, "invalid {what}: {detail}"),
            DockerError::NoSuchContainer { container } => write!(
                f,
                "no such container {container:?}: docker does not know it on this host; \
                 check the name against `docker ps -a`"
            ),
            DockerError::NotRunning { container, detail } => match detail.as_str() {
                "paused" => write!(
                    f,
                    "container {container:?} is paused; resume it with `docker unpause {container}` first"
                ),
                "restarting" => write!(
                    f,
                    "container {container:?} is restarting; try again once it is running"
                ),
                _ => write!(f, "container {container:?} is not running; start it first"),
            },
            DockerError::ExecStart {
                container,
                program,
                detail,
            } => write!(
                f,
                "cannot start {program:?} in container {container:?}: {detail}; check that \
                 the program exists in the container's image and is executable"
            ),
            DockerError::Unavailable { detail } => write!(f, "docker is unavailable: {detail}"),
            DockerError::Timeout { argv, after } => {
                write!(
                    f,
                    "`{}` did not finish within {} and was killed; ",
                    display_argv(argv),
                    display_duration(*after)
                )?;
                if argv.first().map(String::as_str) == Some("exec") {
                    // Killing the CLI does not stop what it started in the container.
                    write!(f, "the program may still be running inside the container")
                } else {
                    write!(
                        f,
                        "the docker engine may be overloaded or hung: check `docker info`"
                    )
                }
            }
            DockerError::Failed {
                argv,
                status,
                stderr,
            } => {
                write!(f, "`{}` failed ({status})", display_argv(argv))?;
                if stderr.is_empty() {
                    write!(
                        f,
                        " without a message on stderr; see the docker daemon's log"
                    )
                } else {
                    write!(f, ": {stderr}")
                }
            }
            DockerError::Io { argv, detail } => write!(
                f,
                "running `{}` failed: {detail}; check the host's process and file limits",
                display_argv(argv)
            ),
            DockerError::Parse { what, detail } => write!(
                f,
                "cannot read the output of {what}: {detail}; this docker version may print \
                 another format (warden reads docker 20.10 and later)"
            ),
        }
    }
}

impl std::error::Error for DockerError {}

/// `docker ARGS…` for messages, each word quoted as a POSIX shell would need.
pub(crate) fn display_argv(argv: &[String]) -> String {
    let mut text = String::from("docker");
    for word in argv {
        text.push(' ');
        match shlex::try_quote(word) {
            Ok(quoted) => text.push_str(&quoted),
            Err(_) => text.push_str(&format!("{word:?}")),
        }
    }
    text
}

fn display_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// The argv kept in an error: for `docker exec`, the program's arguments are
/// replaced by a count, since an operator's command line may carry a secret
/// (a seed passed to `author_insertKey`) and errors travel to the server.
pub(crate) fn argv_for_errors(argv: &[String]) -> Vec<String> {
    if argv.first().map(String::as_str) == Some("exec") && argv.len() > 3 {
        let hidden = argv.len() - 3;
        let mut kept = argv[..3].to_vec();
        kept.push(format!(
            "<{hidden} argument{} hidden>",
            if hidden == 1 { "" } else { "s" }
        ));
        kept
    } else {
        argv.to_vec()
    }
}

/// Docker's stderr, trimmed, control characters other than newlines dropped (the
/// exec start failure ends in `\r\n`), cut to [`STDERR_EXCERPT_MAX`] bytes.
pub(crate) fn excerpt(stderr: &str) -> String {
    let cleaned: String = stderr
        .trim()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect();
    if cleaned.len() <= STDERR_EXCERPT_MAX {
        return cleaned;
    }
    let mut end = STDERR_EXCERPT_MAX;
    while !cleaned.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &cleaned[..end])
}

/// True when the message says the engine itself cannot be reached or used.
pub(crate) fn says_engine_unavailable(stderr: &str) -> bool {
    let lower = stderr.to_ascii_lowercase();
    [
        // "Cannot connect to the Docker daemon at unix:///…. Is the docker daemon running?"
        "cannot connect to the docker daemon",
        "is the docker daemon running",
        // Windows named pipes, ssh:// hosts, proxies: "error during connect: …"
        "error during connect",
        // 28: "permission denied while trying to connect to the Docker daemon socket at …"
        // 20.10: "Got permission denied while trying to connect to the Docker daemon socket at …"
        "permission denied while trying to connect to the docker daemon",
        // a bad DOCKER_HOST: "Failed to initialize: unable to resolve docker endpoint: …"
        "unable to resolve docker endpoint",
    ]
    .iter()
    .any(|fragment| lower.contains(fragment))
}

/// Turns a failed `docker` run into the most specific error its stderr allows.
///
/// `names` are the containers the command was about; the one Docker names in a
/// "No such container" message is reported, else the first.
pub(crate) fn classify_failure(
    argv: &[String],
    names: &[&str],
    status: ExitStatus,
    stderr: &str,
) -> DockerError {
    let message = excerpt(stderr);
    if says_engine_unavailable(&message) {
        let first_line = message.lines().next().unwrap_or_default();
        return DockerError::Unavailable {
            detail: format!(
                "{first_line}; check that the docker daemon is running and that this user may \
                 use its socket (root, or a member of the `docker` group)"
            ),
        };
    }
    if let Some(container) = missing_container(&message, names) {
        return DockerError::NoSuchContainer { container };
    }
    if let (Some(detail), Some(container)) = (not_running(&message), names.first()) {
        return DockerError::NotRunning {
            container: (*container).to_owned(),
            detail,
        };
    }
    DockerError::Failed {
        argv: argv_for_errors(argv),
        status,
        stderr: message,
    }
}

/// "Error response from daemon: No such container: NAME" (inspect, start, stop,
/// logs, exec, stats, cp). Older CLIs print "Error: No such container: NAME".
fn missing_container(message: &str, names: &[&str]) -> Option<String> {
    const MARKER: &str = "no such container";
    let lower = message.to_ascii_lowercase();
    let at = lower.find(MARKER)?;
    // ASCII lowercasing keeps byte offsets, so `at` indexes `message` too.
    let rest = message[at + MARKER.len()..]
        .trim_start_matches(':')
        .trim_start();
    let mentioned = rest.lines().next().unwrap_or_default().trim();
    // "NAME", or in old `docker cp` errors "path: NAME:/data".
    let known = names.iter().find(|name| {
        mentioned
            .split(|c: char| c == ':' || c.is_whitespace())
            .any(|word| word == **name)
    });
    match (known, names.first()) {
        (Some(name), _) => Some((*name).to_owned()),
        (None, Some(first)) => Some((*first).to_owned()),
        (None, None) => Some(mentioned.to_owned()),
    }
}

/// "Error response from daemon: Container ID is not running" (also "is paused,
/// unpause the container before exec", "is restarting, wait until the container
/// is running"). Returns the state phrase.
fn not_running(message: &str) -> Option<String> {
    let line = message.lines().find(|line| {
        line.to_ascii_lowercase()
            .contains("error response from daemon: container ")
    })?;
    ["is not running", "is paused", "is restarting"]
        .iter()
        .find(|phrase| line.contains(*phrase))
        .map(|phrase| phrase.trim_start_matches("is ").to_owned())
}

/// Whether a `docker exec` exit of 126/127 with this output is Docker failing to
/// start the program, rather than the program exiting so.
///
/// Engine 20.10 writes the runtime's message into the *stdout* stream, ending in
/// `\r\n`, and `docker exec` exits 126 for every start failure (not found too):
/// `OCI runtime exec failed: exec failed: unable to start container process:
/// exec: "nosuchprog": executable file not found in $PATH: unknown`.
/// Newer engines return it as an API error, which the CLI prints on stderr with
/// 126 or 127. Both places are checked; the message is the first line.
pub(crate) fn exec_start_failure(exit_code: i32, stdout: &str, stderr: &str) -> Option<String> {
    if exit_code != 126 && exit_code != 127 {
        return None;
    }
    [stdout, stderr].iter().find_map(|text| {
        let first_line = text.trim_start().lines().next()?.trim();
        let lower = first_line.to_ascii_lowercase();
        let from_runtime = lower.contains("oci runtime exec failed")
            || (lower.starts_with("error response from daemon:") && lower.contains("exec failed"));
        from_runtime.then(|| excerpt(first_line))
    })
}

/// Whether a `docker exec` exit is `docker` itself failing before the program
/// ran (no such container, not running, engine unreachable): the CLI exits 1
/// (125 for its own usage errors), prints nothing on stdout and one message on
/// stderr. A program that exits 1 after printing exactly such a message would be
/// taken for Docker; no better signal exists in the CLI's output.
pub(crate) fn is_docker_own_exec_failure(exit_code: i32, stdout: &str, stderr: &str) -> bool {
    let message = stderr.trim();
    (exit_code == 1 || exit_code == 125)
        && stdout.is_empty()
        && (says_engine_unavailable(message)
            || message.starts_with("Error response from daemon:")
            || message.starts_with("Error: "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/docker/stderr/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn exit(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn real_stderr_samples_are_classified() {
        let stop = argv(&["stop", "-t", "1", "dockerrs-probe-nope"]);
        let nope = ["dockerrs-probe-nope"];
        let no_such = DockerError::NoSuchContainer {
            container: "dockerrs-probe-nope".to_owned(),
        };
        for sample in [
            "inspect-no-such-container.txt",
            "start-no-such-container.txt",
            "stop-no-such-container.txt",
            "stats-no-such-container.txt",
        ] {
            assert_eq!(
                classify_failure(&stop, &nope, exit(1), &fixture(sample)),
                no_such,
                "{sample}"
            );
        }
        for sample in ["cannot-connect.txt", "permission-denied.txt"] {
            let error = classify_failure(&stop, &nope, exit(1), &fixture(sample));
            assert!(error.is_engine_unavailable(), "{sample}: {error:?}");
            assert_eq!(error.code().as_str(), "unavailable");
        }
        let error = classify_failure(
            &argv(&["exec", "n0", "true"]),
            &["n0"],
            exit(1),
            &fixture("exec-not-running.txt"),
        );
        assert_eq!(
            error,
            DockerError::NotRunning {
                container: "n0".to_owned(),
                detail: "not running".to_owned()
            }
        );
        let cp = argv(&["cp", "dockerrs-probe-exited:/nope", "/tmp/x"]);
        let error = classify_failure(
            &cp,
            &["dockerrs-probe-exited"],
            exit(1),
            &fixture("cp-missing-path.txt"),
        );
        assert_eq!(
            error,
            DockerError::Failed {
                argv: cp,
                status: exit(1),
                stderr: "Error response from daemon: Could not find the file /nope in container \
                         dockerrs-probe-exited"
                    .to_owned()
            }
        );
    }

    #[test]
    fn older_cli_wordings_are_classified() {
        let names = ["n0", "n1"];
        let stop = argv(&["stop", "-t", "1", "n0"]);
        let cases = [
            (
                "Got permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.24/version\": dial unix /var/run/docker.sock: connect: permission denied",
                "unavailable",
            ),
            (
                "error during connect: Get \"http://%2F%2F.%2Fpipe%2Fdocker_engine/v1.24/version\": open //./pipe/docker_engine: The system cannot find the file specified.",
                "unavailable",
            ),
            (
                "Failed to initialize: unable to resolve docker endpoint: invalid bind address format: foo://x",
                "unavailable",
            ),
            ("Error: No such container: n1", "unknown_target"),
            ("Error: No such container:path: n1:/data", "unknown_target"),
            (
                "Error response from daemon: Container abc is paused, unpause the container before exec",
                "unavailable",
            ),
            (
                "Error response from daemon: Container abc is restarting, wait until the container is running",
                "unavailable",
            ),
            (
                "Error response from daemon: driver failed programming external connectivity",
                "internal",
            ),
            ("", "internal"),
        ];
        for (stderr, code) in cases {
            assert_eq!(
                classify_failure(&stop, &names, exit(1), stderr)
                    .code()
                    .as_str(),
                code,
                "{stderr}"
            );
        }
        assert_eq!(
            classify_failure(
                &stop,
                &names,
                exit(1),
                "Error: No such container:path: n1:/data"
            ),
            DockerError::NoSuchContainer {
                container: "n1".to_owned()
            }
        );
        let paused = classify_failure(
            &stop,
            &names,
            exit(1),
            "Error response from daemon: Container abc is paused, unpause the container before exec",
        );
        assert_eq!(
            paused.to_string(),
            "container \"n0\" is paused; resume it with `docker unpause n0` first"
        );
    }

    #[test]
    fn exec_start_failures_are_told_from_program_exits() {
        let not_found = fixture("exec-not-found.stdout.txt");
        assert!(
            not_found.ends_with("\r\n"),
            "engine 20.10 ends the line with CRLF"
        );
        assert_eq!(
            exec_start_failure(126, &not_found, "").as_deref(),
            Some(
                "OCI runtime exec failed: exec failed: unable to start container process: exec: \
                 \"nosuchprog\": executable file not found in $PATH: unknown"
            )
        );
        assert!(
            exec_start_failure(126, &fixture("exec-permission-denied.stdout.txt"), "").is_some()
        );
        assert!(exec_start_failure(127, "", "Error response from daemon: failed to create task: OCI runtime exec failed: exec failed: x").is_some());
        // A program that exits 126 or 127 by itself, or says something else.
        assert_eq!(exec_start_failure(127, "", "sh: nosuch: not found\n"), None);
        assert_eq!(exec_start_failure(126, "", ""), None);
        assert_eq!(exec_start_failure(1, &not_found, ""), None);

        let not_running = fixture("exec-not-running.txt");
        assert!(is_docker_own_exec_failure(1, "", &not_running));
        assert!(is_docker_own_exec_failure(
            1,
            "",
            &fixture("cannot-connect.txt")
        ));
        assert!(!is_docker_own_exec_failure(
            1,
            "partial output",
            &not_running
        ));
        assert!(!is_docker_own_exec_failure(
            1,
            "",
            "grep: /x: No such file or directory"
        ));
        assert!(!is_docker_own_exec_failure(2, "", &not_running));
    }

    #[test]
    fn display_is_one_actionable_lowercase_line() {
        let errors = [
            DockerError::InvalidName {
                name: "a;b".to_owned(),
            },
            DockerError::InvalidArgument {
                what: "exec command",
                detail: "the command is empty".to_owned(),
            },
            DockerError::NoSuchContainer {
                container: "n0".to_owned(),
            },
            DockerError::NotRunning {
                container: "n0".to_owned(),
                detail: "not running".to_owned(),
            },
            DockerError::ExecStart {
                container: "n0".to_owned(),
                program: "curl".to_owned(),
                detail: "OCI runtime exec failed: x".to_owned(),
            },
            DockerError::Unavailable {
                detail: "x".to_owned(),
            },
            DockerError::Timeout {
                argv: argv(&["stats", "--no-stream", "n0"]),
                after: Duration::from_secs(30),
            },
            DockerError::Failed {
                argv: argv(&["stop", "-t", "10", "n0"]),
                status: exit(1),
                stderr: "Error response from daemon: boom".to_owned(),
            },
            DockerError::Io {
                argv: argv(&["ps"]),
                detail: "Too many open files (os error 24)".to_owned(),
            },
            DockerError::Parse {
                what: "`docker ps`",
                detail: "line 1: expected value".to_owned(),
            },
        ];
        for error in errors {
            let text = error.to_string();
            let first = text.chars().next().unwrap();
            assert!(!first.is_uppercase(), "{text}");
            assert!(!text.ends_with('.') && !text.contains('\n'), "{text}");
        }
        assert_eq!(
            DockerError::Failed {
                argv: argv(&["stop", "-t", "10", "n0"]),
                status: exit(1),
                stderr: "Error response from daemon: boom".to_owned()
            }
            .to_string(),
            "`docker stop -t 10 n0` failed (exit status: 1): Error response from daemon: boom"
        );
        assert_eq!(
            DockerError::Timeout {
                argv: argv(&["exec", "n0", "sleep", "99"]),
                after: Duration::from_millis(1500)
            }
            .to_string(),
            "`docker exec n0 sleep 99` did not finish within 1.5s and was killed; the program may still be running inside the container"
        );
    }

    #[test]
    fn exec_arguments_are_hidden_in_errors() {
        assert_eq!(
            argv_for_errors(&argv(&[
                "exec",
                "n0",
                "curl",
                "-d",
                "{\"params\":[\"seed\"]}"
            ])),
            argv(&["exec", "n0", "curl", "<2 arguments hidden>"])
        );
        assert_eq!(
            argv_for_errors(&argv(&["exec", "n0", "true"])),
            argv(&["exec", "n0", "true"])
        );
        assert_eq!(
            argv_for_errors(&argv(&["exec", "n0", "cat", "x"])),
            argv(&["exec", "n0", "cat", "<1 argument hidden>"])
        );
        assert_eq!(
            argv_for_errors(&argv(&["stop", "-t", "1", "n0"])),
            argv(&["stop", "-t", "1", "n0"])
        );
    }

    #[test]
    fn excerpt_trims_and_bounds() {
        assert_eq!(excerpt("  x\r\n"), "x");
        let long = "é".repeat(2000);
        let cut = excerpt(&long);
        assert!(cut.len() <= STDERR_EXCERPT_MAX + "…".len());
        assert!(cut.ends_with('…'));
    }
}
