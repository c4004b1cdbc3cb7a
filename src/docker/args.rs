//! Pure argv builders: every `docker` command line warden runs is built here, as a
//! list of words (no shell ever sees it), after the container name was validated.
//! Tested as lists, without running Docker.

use std::path::Path;
use std::time::Duration;

use super::DockerError;

/// Longest container name accepted. Docker itself sets no limit; 128 keeps names
/// printable in one line of a table and in file names such as key backups.
pub const MAX_CONTAINER_NAME_LEN: usize = 128;

/// Whether `name` could be a Docker container name: Docker's own rule,
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (so at least two characters: `docker create
/// --name a` is refused), and at most [`MAX_CONTAINER_NAME_LEN`] bytes.
///
/// The one rule for container names in warden: the agent's policy, the
/// argv builders and the backup store all ask it. It rejects everything that
/// could be read as an option (`-x`), a path (`../x`, `/x`), a `docker cp`
/// container reference (`x:/path`) or shell syntax.
pub fn is_valid_container_name(name: &str) -> bool {
    name.len() >= 2
        && name.len() <= MAX_CONTAINER_NAME_LEN
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// [`is_valid_container_name`] as a typed error.
pub fn validate_container_name(name: &str) -> Result<(), DockerError> {
    if is_valid_container_name(name) {
        Ok(())
    } else {
        Err(DockerError::InvalidName {
            name: name.to_owned(),
        })
    }
}

fn validated(name: &str) -> Result<String, DockerError> {
    validate_container_name(name)?;
    Ok(name.to_owned())
}

fn words(fixed: &[&str]) -> Vec<String> {
    fixed.iter().map(|word| (*word).to_owned()).collect()
}

/// Whole seconds for `docker stop -t`, rounded up so a grace of 1.5 s is not cut to 1 s.
pub fn grace_seconds(grace: Duration) -> u64 {
    grace.as_secs() + u64::from(grace.subsec_nanos() > 0)
}

/// `docker ps -a --no-trunc --size=false --format '{{json .}}'`.
///
/// `{{json .}}` touches the `.Size` field, which makes the CLI ask the engine to
/// compute every container's disk usage (measured: 0.2 s instead of 0.03 s for
/// four tiny containers; it walks the container's files). `--size=false` turns
/// that off where the CLI supports it (Docker 23 and later); older CLIs accept the
/// flag and keep computing, which is slower but correct.
pub fn list_containers_args() -> Vec<String> {
    words(&[
        "ps",
        "-a",
        "--no-trunc",
        "--size=false",
        "--format",
        "{{json .}}",
    ])
}

/// `docker inspect --type container NAME...`
pub fn inspect_args<S: AsRef<str>>(names: &[S]) -> Result<Vec<String>, DockerError> {
    let mut argv = words(&["inspect", "--type", "container"]);
    for name in names {
        argv.push(validated(name.as_ref())?);
    }
    Ok(argv)
}

/// `docker stats --no-stream --no-trunc --format '{{json .}}' NAME...`
pub fn stats_args<S: AsRef<str>>(names: &[S]) -> Result<Vec<String>, DockerError> {
    let mut argv = words(&[
        "stats",
        "--no-stream",
        "--no-trunc",
        "--format",
        "{{json .}}",
    ]);
    for name in names {
        argv.push(validated(name.as_ref())?);
    }
    Ok(argv)
}

/// `docker start NAME`
pub fn start_args(name: &str) -> Result<Vec<String>, DockerError> {
    Ok(vec!["start".to_owned(), validated(name)?])
}

/// `docker stop -t SECONDS NAME` (`-t` is spelled the same by the 20.10 and 28 CLIs).
pub fn stop_args(name: &str, grace: Duration) -> Result<Vec<String>, DockerError> {
    Ok(vec![
        "stop".to_owned(),
        "-t".to_owned(),
        grace_seconds(grace).to_string(),
        validated(name)?,
    ])
}

/// `docker restart -t SECONDS NAME`
pub fn restart_args(name: &str, grace: Duration) -> Result<Vec<String>, DockerError> {
    Ok(vec![
        "restart".to_owned(),
        "-t".to_owned(),
        grace_seconds(grace).to_string(),
        validated(name)?,
    ])
}

/// `docker logs [--timestamps] --tail N NAME`
pub fn logs_args(
    name: &str,
    tail_lines: usize,
    timestamps: bool,
) -> Result<Vec<String>, DockerError> {
    let mut argv = vec!["logs".to_owned()];
    if timestamps {
        argv.push("--timestamps".to_owned());
    }
    argv.extend([
        "--tail".to_owned(),
        tail_lines.to_string(),
        validated(name)?,
    ]);
    Ok(argv)
}

/// `docker exec NAME PROGRAM ARGS...`: no `-i` (stdin stays detached) and no `-t`
/// (a TTY would merge stderr into stdout and add carriage returns).
///
/// Nothing after the container name is read as a `docker` option (the CLI stops
/// parsing its flags at the first positional word), so `argv` may hold words
/// starting with `-`.
pub fn exec_args(name: &str, argv: &[String]) -> Result<Vec<String>, DockerError> {
    let Some(program) = argv.first() else {
        return Err(DockerError::InvalidArgument {
            what: "exec command",
            detail: "the command is empty; give a program and its arguments".to_owned(),
        });
    };
    if program.is_empty() {
        return Err(DockerError::InvalidArgument {
            what: "exec command",
            detail: "the program name is empty".to_owned(),
        });
    }
    if let Some(word) = argv.iter().find(|word| word.contains('\0')) {
        return Err(DockerError::InvalidArgument {
            what: "exec command",
            detail: format!("the word {word:?} contains a NUL byte"),
        });
    }
    let mut full = vec!["exec".to_owned(), validated(name)?];
    full.extend(argv.iter().cloned());
    Ok(full)
}

/// `docker cp NAME:PATH HOST_DEST`
///
/// `docker cp` semantics: if `host_dest` is an existing directory, the source is
/// copied *into* it (`host_dest/<last component>`); otherwise it is created with
/// that name, and its parent must exist. Files land owned by the user running
/// `docker` (not by their owner inside the container).
pub fn cp_from_args(
    name: &str,
    path_in_container: &str,
    host_dest: &Path,
) -> Result<Vec<String>, DockerError> {
    Ok(vec![
        "cp".to_owned(),
        container_path(name, path_in_container)?,
        host_path(host_dest)?,
    ])
}

/// `docker cp NAME:PATH -`: a tar stream of PATH on stdout (works on stopped
/// containers), for reading names from its headers without writing anything.
pub fn cp_stream_args(name: &str, path_in_container: &str) -> Result<Vec<String>, DockerError> {
    Ok(vec![
        "cp".to_owned(),
        container_path(name, path_in_container)?,
        "-".to_owned(),
    ])
}

/// `docker cp HOST_SRC NAME:PATH`
///
/// Files copied into a container are owned by root (uid 0) there, whatever
/// their owner on the host (observed with Docker 20.10; `docker cp -a` would copy
/// the host uid/gid, but needs the image to resolve them and is not used).
pub fn cp_to_args(
    host_src: &Path,
    name: &str,
    path_in_container: &str,
) -> Result<Vec<String>, DockerError> {
    Ok(vec![
        "cp".to_owned(),
        host_path(host_src)?,
        container_path(name, path_in_container)?,
    ])
}

fn container_path(name: &str, path: &str) -> Result<String, DockerError> {
    validate_container_name(name)?;
    if path.is_empty() || path.contains('\0') {
        return Err(DockerError::InvalidArgument {
            what: "path in container",
            detail: format!("{path:?} is empty or contains a NUL byte"),
        });
    }
    Ok(format!("{name}:{path}"))
}

/// A host path as one `docker cp` word. `docker cp` reads `-` as "a tar stream on
/// stdin/stdout" and `a:b` as "path b in container a"; a relative path is therefore
/// written `./path`, which it reads as a local path whatever follows.
fn host_path(path: &Path) -> Result<String, DockerError> {
    let Some(text) = path.to_str() else {
        return Err(DockerError::InvalidArgument {
            what: "host path",
            detail: format!("{} is not valid UTF-8", path.display()),
        });
    };
    if text.is_empty() || text.contains('\0') {
        return Err(DockerError::InvalidArgument {
            what: "host path",
            detail: format!("{text:?} is empty or contains a NUL byte"),
        });
    }
    if path.is_absolute() || text.starts_with("./") {
        Ok(text.to_owned())
    } else {
        Ok(format!("./{text}"))
    }
}

/// `docker version --format '{{.Server.Version}}'`: asks the engine, so it doubles
/// as the availability probe (the CLI alone answers `docker --version`).
pub fn server_version_args() -> Vec<String> {
    words(&["version", "--format", "{{.Server.Version}}"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn container_names_follow_dockers_rule() {
        let long_ok = "a".repeat(MAX_CONTAINER_NAME_LEN);
        for good in [
            "3node0",
            "ab",
            "A_b.c-d",
            "dockerrs-probe-run",
            "b24b5d2cbfab",
            long_ok.as_str(),
        ] {
            assert_eq!(validate_container_name(good), Ok(()), "{good:?}");
        }
        let long_bad = "a".repeat(MAX_CONTAINER_NAME_LEN + 1);
        for bad in [
            "",
            "a",
            "../x",
            "a;rm -rf /",
            "-rm",
            "--help",
            "_x",
            ".x",
            "/node0",
            "node0:/data",
            "a b",
            "a\nb",
            "a\0b",
            "nöde",
            "$(id)",
            long_bad.as_str(),
        ] {
            assert_eq!(
                validate_container_name(bad),
                Err(DockerError::InvalidName {
                    name: bad.to_owned()
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn argv_table() {
        let secs = Duration::from_secs;
        let table: Vec<(Vec<String>, Vec<&str>)> = vec![
            (
                list_containers_args(),
                vec![
                    "ps",
                    "-a",
                    "--no-trunc",
                    "--size=false",
                    "--format",
                    "{{json .}}",
                ],
            ),
            (
                inspect_args(&["n0", "n1"]).unwrap(),
                vec!["inspect", "--type", "container", "n0", "n1"],
            ),
            (
                stats_args(&["n0".to_owned()]).unwrap(),
                vec![
                    "stats",
                    "--no-stream",
                    "--no-trunc",
                    "--format",
                    "{{json .}}",
                    "n0",
                ],
            ),
            (start_args("n0").unwrap(), vec!["start", "n0"]),
            (
                stop_args("n0", secs(30)).unwrap(),
                vec!["stop", "-t", "30", "n0"],
            ),
            (
                stop_args("n0", Duration::from_millis(1500)).unwrap(),
                vec!["stop", "-t", "2", "n0"],
            ),
            (
                stop_args("n0", Duration::ZERO).unwrap(),
                vec!["stop", "-t", "0", "n0"],
            ),
            (
                restart_args("n0", secs(10)).unwrap(),
                vec!["restart", "-t", "10", "n0"],
            ),
            (
                logs_args("n0", 50, false).unwrap(),
                vec!["logs", "--tail", "50", "n0"],
            ),
            (
                logs_args("n0", 7, true).unwrap(),
                vec!["logs", "--timestamps", "--tail", "7", "n0"],
            ),
            (
                exec_args("n0", &s(&["curl", "-s", "-d", "{\"id\":1}", "x; rm -rf /"])).unwrap(),
                vec![
                    "exec",
                    "n0",
                    "curl",
                    "-s",
                    "-d",
                    "{\"id\":1}",
                    "x; rm -rf /",
                ],
            ),
            (
                exec_args("n0", &s(&["-x"])).unwrap(),
                vec!["exec", "n0", "-x"],
            ),
            (
                cp_from_args("n0", "/data/chains", Path::new("/var/backup/n0")).unwrap(),
                vec!["cp", "n0:/data/chains", "/var/backup/n0"],
            ),
            (
                cp_to_args(Path::new("/var/backup/n0/keystore"), "n0", "/data/chains/x").unwrap(),
                vec!["cp", "/var/backup/n0/keystore", "n0:/data/chains/x"],
            ),
            (
                cp_from_args("n0", "/d", Path::new("-")).unwrap(),
                vec!["cp", "n0:/d", "./-"],
            ),
            (
                cp_from_args("n0", "/d", Path::new("a:b")).unwrap(),
                vec!["cp", "n0:/d", "./a:b"],
            ),
            (
                cp_to_args(Path::new("./k"), "n0", "/d").unwrap(),
                vec!["cp", "./k", "n0:/d"],
            ),
            (
                server_version_args(),
                vec!["version", "--format", "{{.Server.Version}}"],
            ),
        ];
        for (got, want) in table {
            assert_eq!(got, s(&want));
        }
    }

    #[test]
    fn every_builder_rejects_a_bad_name() {
        let bad = "a;rm -rf /";
        let want = Err(DockerError::InvalidName {
            name: bad.to_owned(),
        });
        let grace = Duration::from_secs(1);
        assert_eq!(inspect_args(&["ok", bad]), want);
        assert_eq!(stats_args(&[bad]), want);
        assert_eq!(start_args(bad), want);
        assert_eq!(stop_args(bad, grace), want);
        assert_eq!(restart_args(bad, grace), want);
        assert_eq!(logs_args(bad, 1, false), want);
        assert_eq!(exec_args(bad, &s(&["true"])), want);
        assert_eq!(cp_from_args(bad, "/d", Path::new("/h")), want);
        assert_eq!(cp_to_args(Path::new("/h"), bad, "/d"), want);
    }

    #[test]
    fn bad_exec_commands_and_paths_are_invalid_arguments() {
        let invalid = |r: Result<Vec<String>, DockerError>| {
            matches!(r, Err(DockerError::InvalidArgument { .. }))
        };
        assert!(invalid(exec_args("n0", &[])));
        assert!(invalid(exec_args("n0", &s(&[""]))));
        assert!(invalid(exec_args("n0", &s(&["echo", "a\0b"]))));
        assert!(invalid(cp_from_args("n0", "", Path::new("/h"))));
        assert!(invalid(cp_to_args(Path::new(""), "n0", "/d")));
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let not_utf8 = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/\xff"));
            assert!(invalid(cp_to_args(&not_utf8, "n0", "/d")));
        }
    }
}
