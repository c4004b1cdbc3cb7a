//! `Failure`: why a command failed, in the protocol's terms, and the one mapping from
//! each typed error (Docker, RPC, chain, backup) to the wire's error codes.
//!
//! Its own module so that the command modules (`keys`, `backups`) and the runner that
//! calls them both import it from here: none of them imports another's.
use crate::backup::BackupError;
use crate::chain::ChainError;
use crate::docker::DockerError;
use crate::protocol::ErrorCode;
use crate::rpc::RpcError;

/// Why a command failed, in the protocol's terms.
#[derive(Debug)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl Failure {
    pub(super) fn new(code: ErrorCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<DockerError> for Failure {
    fn from(e: DockerError) -> Failure {
        Failure::new(e.code(), e.to_string())
    }
}

impl From<RpcError> for Failure {
    fn from(e: RpcError) -> Failure {
        Failure::new(e.code(), e.to_string())
    }
}

impl<E: std::fmt::Display> From<ChainError<E>> for Failure {
    fn from(e: ChainError<E>) -> Failure {
        Failure::new(ErrorCode::Internal, e.to_string())
    }
}

impl From<BackupError> for Failure {
    fn from(e: BackupError) -> Failure {
        Failure::new(e.code(), e.to_string())
    }
}
