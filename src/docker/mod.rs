//! Docker: the only place in warden that runs `docker`.
//!
//! This first part holds the pure pieces: argv builders with name validation
//! ([`args`]), [`DockerError`] and the reading of Docker's stderr ([`error`]),
//! and the parsers of `docker ps`/`inspect`/`stats` output ([`parse`]).

mod args;
mod error;
mod parse;

pub use args::{
    MAX_CONTAINER_NAME_LEN, cp_from_args, cp_to_args, exec_args, grace_seconds, inspect_args,
    list_containers_args, logs_args, restart_args, server_version_args, start_args, stats_args,
    stop_args, validate_container_name,
};
pub use error::DockerError;
pub use parse::{
    ContainerConfig, ContainerInspect, ContainerState, ContainerStats, ContainerSummary,
    HostConfig, Mount, parse_docker_time, parse_inspect, parse_percent, parse_ps, parse_size,
    parse_size_pair, parse_stats,
};
