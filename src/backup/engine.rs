//! The Docker calls backup and restore make, behind a trait so the orchestration (stop,
//! copy, start on every path) is tested against a stand-in that can fail any step.
//! [`crate::docker::Docker`] is the only production implementation.

use std::path::Path;
use std::time::Duration;

use crate::docker::{ContainerInspect, Docker, DockerError, ExecOutput};

pub trait Engine {
    /// `docker inspect` of one container.
    fn inspect(&self, container: &str) -> Result<ContainerInspect, DockerError>;
    fn stop(&self, container: &str, grace: Duration) -> Result<(), DockerError>;
    fn start(&self, container: &str) -> Result<(), DockerError>;
    /// `docker cp <container>:<path> <dest>` (see [`Docker::cp_from`]).
    fn cp_from(&self, container: &str, path: &str, dest: &Path) -> Result<(), DockerError>;
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
