//! The Docker calls backup and restore make, behind a trait so the orchestration (stop,
//! copy, start on every path) is tested against a stand-in that can fail any step.
//! [`crate::docker::Docker`] is the only production implementation.

use std::path::Path;
use std::time::Duration;

use crate::docker::{ContainerInspect, Docker, DockerError, ExecOutput};

/// Largest tar stream read to list a directory: a keystore of 65,536 key files is ~64 MiB
/// of tar blocks.
pub const MAX_LIST_STREAM_BYTES: usize = 80 * 1024 * 1024;

/// The names directly under the top directory of a `docker cp … -` tar stream
/// (`keystore/`, `keystore/6772…` → `6772…`), sorted. Only headers are read; the
/// tar reader skips each entry's data.
pub fn tar_child_names(stream: &[u8]) -> Result<Vec<String>, String> {
    let mut archive = tar::Archive::new(stream);
    let mut names = Vec::new();
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let mut parts = path.components();
        parts.next();
        if let (Some(child), None) = (parts.next(), parts.next()) {
            names.push(child.as_os_str().to_string_lossy().into_owned());
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

pub trait Engine {
    /// `docker inspect` of one container.
    fn inspect(&self, container: &str) -> Result<ContainerInspect, DockerError>;
    fn stop(&self, container: &str, grace: Duration) -> Result<(), DockerError>;
    fn start(&self, container: &str) -> Result<(), DockerError>;
    /// `docker cp <container>:<path> <dest>` (see [`Docker::cp_from`]).
    fn cp_from(&self, container: &str, path: &str, dest: &Path) -> Result<(), DockerError>;
    /// The names of the entries directly under `path` (a directory), from the tar
    /// headers of `docker cp <container>:<path> -`: works on stopped containers and on
    /// images without `ls`, and writes nothing to disk (key files stay unread).
    fn list_dir(&self, container: &str, path: &str) -> Result<Vec<String>, DockerError>;
    /// `docker cp <src> <container>:<path>` (see [`Docker::cp_to`]).
    fn cp_to(&self, src: &Path, container: &str, path: &str) -> Result<(), DockerError>;
    /// `docker exec <container> argv…`; the program's exit code is in the output.
    fn exec(
        &self,
        container: &str,
        argv: &[&str],
        timeout: Duration,
    ) -> Result<ExecOutput, DockerError>;
}

impl Engine for Docker {
    fn inspect(&self, container: &str) -> Result<ContainerInspect, DockerError> {
        let mut all = Docker::inspect(self, &[container])?;
        if all.len() == 1 {
            Ok(all.remove(0))
        } else {
            Err(DockerError::Parse {
                what: "`docker inspect`",
                detail: format!("expected one container, got {}", all.len()),
            })
        }
    }

    fn stop(&self, container: &str, grace: Duration) -> Result<(), DockerError> {
        Docker::stop(self, container, grace)
    }

    fn start(&self, container: &str) -> Result<(), DockerError> {
        Docker::start(self, container)
    }

    fn cp_from(&self, container: &str, path: &str, dest: &Path) -> Result<(), DockerError> {
        Docker::cp_from(self, container, path, dest)
    }

    fn list_dir(&self, container: &str, path: &str) -> Result<Vec<String>, DockerError> {
        let stream = self.cp_from_stream(container, path, MAX_LIST_STREAM_BYTES)?;
        tar_child_names(&stream).map_err(|detail| DockerError::Parse {
            what: "`docker cp` stream",
            detail,
        })
    }

    fn cp_to(&self, src: &Path, container: &str, path: &str) -> Result<(), DockerError> {
        Docker::cp_to(self, src, container, path)
    }

    fn exec(
        &self,
        container: &str,
        argv: &[&str],
        timeout: Duration,
    ) -> Result<ExecOutput, DockerError> {
        let argv: Vec<String> = argv.iter().map(|word| (*word).to_owned()).collect();
        Docker::exec(self, container, &argv, timeout)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn child_names_come_from_headers() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        builder
            .append_data(&mut dir.clone(), "keystore", std::io::empty())
            .unwrap();
        builder
            .append_data(&mut dir, "keystore/sub", std::io::empty())
            .unwrap();
        for name in ["6772616e01", "62616265ff"] {
            let mut file = tar::Header::new_gnu();
            file.set_size(6);
            builder
                .append_data(&mut file, format!("keystore/{name}"), &b"secret"[..])
                .unwrap();
        }
        let mut deep = tar::Header::new_gnu();
        deep.set_size(0);
        builder
            .append_data(&mut deep, "keystore/sub/x", std::io::empty())
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        assert_eq!(
            super::tar_child_names(&bytes).unwrap(),
            ["62616265ff", "6772616e01", "sub"]
        );
        assert!(super::tar_child_names(&bytes[..700]).is_err());
    }
}
