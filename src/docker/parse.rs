//! Reading what `docker ps`, `docker inspect` and `docker stats` print into
//! warden's types. Pure functions over text, tested with output captured from
//! a real engine (tests/fixtures/docker/).
//!
//! `docker inspect` prints the engine's JSON as is (PascalCase keys); `docker ps`
//! and `docker stats` with `{{json .}}` print one object per line built by the
//! CLI, whose values are display strings ("1.5MiB / 7.6GiB", "12.34%").
//! Unknown keys are ignored everywhere, so newer versions that add fields parse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DockerError;

/// One line of `docker ps -a`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSummary {
    /// Full id (64 hex digits).
    pub id: String,
    /// Usually one name; legacy links add more.
    pub names: Vec<String>,
    /// The image as the container was created from it (`parity/polkadot:v1.0`),
    /// or an image id if that tag has since moved.
    pub image: String,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    pub state: String,
    /// Human text: `Up 3 seconds (healthy)`, `Exited (3) 2 minutes ago`.
    pub status: String,
    /// `2026-11-25 21:28:47 +0000 UTC`, as the CLI prints it.
    pub created_at: String,
    /// Network names (`bridge`, `host`, user networks).
    pub networks: Vec<String>,
    /// Published ports as the CLI prints them (`0.0.0.0:30333->30333/tcp, …`).
    pub ports: String,
}

/// The parts of `docker inspect` warden uses. The container's environment is
/// deliberately not read: `Config.Env` can hold secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInspect {
    pub id: String,
    /// Without the leading `/` the engine stores.
    pub name: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// The program the container runs (the entrypoint's first word, or the
    /// command's), and its arguments: the node's command line, where `--base-path`,
    /// `--chain`, `--rpc-port` are read from.
    pub path: String,
    pub args: Vec<String>,
    pub state: ContainerState,
    /// Restarts done by the engine's restart policy; `docker restart` and
    /// `docker start` do not count (observed on 20.10).
    pub restart_count: u64,
    /// `Config.Image`: the image as the operator named it (`gluwa/creditcoin3:3.32.0`).
    pub image: String,
    /// The image id (`sha256:…`).
    pub image_id: String,
    pub config: ContainerConfig,
    pub mounts: Vec<Mount>,
    pub host_config: HostConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerState {
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    pub oom_killed: bool,
    pub dead: bool,
    /// Host pid of the container's first process; 0 when not running.
    pub pid: u32,
    /// Exit code of the last run; 0 if it never ran.
    pub exit_code: i64,
    /// The engine's error for the last start, if any (empty otherwise).
    pub error: String,
    /// `starting`, `healthy` or `unhealthy` when the image or `docker run` defines
    /// a health check, else `None`. Only meaningful while running: the engine sets
    /// `unhealthy` when the container stops (observed on 20.10).
    pub health: Option<String>,
    /// RFC 3339; `0001-01-01T00:00:00Z` when it never happened. See
    /// [`parse_docker_time`].
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerConfig {
    pub labels: BTreeMap<String, String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub user: String,
    pub working_dir: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`, …
    pub kind: String,
    /// Volume name for `volume` mounts.
    pub name: Option<String>,
    /// Host path (for a volume: its directory under the engine's data root).
    pub source: String,
    /// Path inside the container.
    pub destination: String,
    pub read_write: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostConfig {
    /// `default` (the engine reports the default bridge so), `bridge`, `host`,
    /// `none`, `container:<id>`, or a user network's name.
    pub network_mode: String,
    /// `no`, `always`, `unless-stopped`, `on-failure` (empty on old containers).
    pub restart_policy: String,
}

/// One line of `docker stats --no-stream`. Values are the CLI's rounded display
/// figures (4 significant digits for memory, 3 for I/O). `None` where the CLI
/// printed `--`: it had no sample for the container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerStats {
    pub name: String,
    pub id: String,
    /// Percent of one CPU: 200.0 is two CPUs busy.
    pub cpu_percent: Option<f64>,
    pub mem_used_bytes: Option<u64>,
    /// The container's limit, or the host's memory when it has none.
    pub mem_limit_bytes: Option<u64>,
    pub mem_percent: Option<f64>,
    pub net_rx_bytes: Option<u64>,
    pub net_tx_bytes: Option<u64>,
    pub block_read_bytes: Option<u64>,
    pub block_write_bytes: Option<u64>,
    pub pids: Option<u64>,
}

// ---- docker ps ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawSummary {
    #[serde(rename = "ID")]
    id: String,
    names: String,
    image: String,
    state: String,
    status: String,
    #[serde(default)]
    created_at: String,
    #[serde(default)]
    networks: String,
    #[serde(default)]
    ports: String,
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `docker ps --format '{{json .}}'`: one JSON object per line.
pub fn parse_ps(text: &str) -> Result<Vec<ContainerSummary>, DockerError> {
    json_lines::<RawSummary>(text, "`docker ps`")?
        .into_iter()
        .map(|raw| {
            Ok(ContainerSummary {
                id: raw.id,
                names: split_list(&raw.names),
                image: raw.image,
                state: raw.state,
                status: raw.status,
                created_at: raw.created_at,
                networks: split_list(&raw.networks),
                ports: raw.ports,
            })
        })
        .collect()
}

fn json_lines<T: for<'de> Deserialize<'de>>(
    text: &str,
    what: &'static str,
) -> Result<Vec<T>, DockerError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|error| DockerError::Parse {
                what,
                detail: format!("line {}: {error}", index + 1),
            })
        })
        .collect()
}

// ---- docker inspect ----

/// Engine JSON may hold `null` where a list or map is empty; these read both.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawInspect {
    id: String,
    name: String,
    #[serde(default)]
    created: String,
    #[serde(default)]
    path: String,
    #[serde(default, deserialize_with = "null_as_default")]
    args: Vec<String>,
    state: RawState,
    #[serde(default)]
    restart_count: u64,
    #[serde(default)]
    image: String,
    config: RawConfig,
    #[serde(default, deserialize_with = "null_as_default")]
    mounts: Vec<RawMount>,
    host_config: RawHostConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawState {
    status: String,
    running: bool,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    restarting: bool,
    #[serde(default, rename = "OOMKilled")]
    oom_killed: bool,
    #[serde(default)]
    dead: bool,
    #[serde(default)]
    pid: u32,
    #[serde(default)]
    exit_code: i64,
    #[serde(default)]
    error: String,
    #[serde(default)]
    started_at: String,
    #[serde(default)]
    finished_at: String,
    #[serde(default)]
    health: Option<RawHealth>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawHealth {
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    #[serde(default)]
    image: String,
    #[serde(default, deserialize_with = "null_as_default")]
    labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    cmd: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    entrypoint: Vec<String>,
    #[serde(default)]
    user: String,
    #[serde(default)]
    working_dir: String,
    // `Env` is not declared on purpose: it is never deserialized, so secrets
    // passed with `-e` do not end up in warden's memory, logs or replies.
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawMount {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    source: String,
    destination: String,
    #[serde(rename = "RW", default)]
    read_write: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawHostConfig {
    #[serde(default)]
    network_mode: String,
    #[serde(default)]
    restart_policy: Option<RawRestartPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRestartPolicy {
    #[serde(default)]
    name: String,
}

/// Parses `docker inspect --type container` output: a JSON array.
pub fn parse_inspect(text: &str) -> Result<Vec<ContainerInspect>, DockerError> {
    let raws: Vec<RawInspect> = serde_json::from_str(text).map_err(|error| DockerError::Parse {
        what: "`docker inspect`",
        detail: error.to_string(),
    })?;
    Ok(raws
        .into_iter()
        .map(|raw| ContainerInspect {
            id: raw.id,
            name: raw.name.strip_prefix('/').unwrap_or(&raw.name).to_owned(),
            created: raw.created,
            path: raw.path,
            args: raw.args,
            state: ContainerState {
                status: raw.state.status,
                running: raw.state.running,
                paused: raw.state.paused,
                restarting: raw.state.restarting,
                oom_killed: raw.state.oom_killed,
                dead: raw.state.dead,
                pid: raw.state.pid,
                exit_code: raw.state.exit_code,
                error: raw.state.error,
                health: raw.state.health.map(|health| health.status),
                started_at: raw.state.started_at,
                finished_at: raw.state.finished_at,
            },
            restart_count: raw.restart_count,
            image: raw.config.image,
            image_id: raw.image,
            config: ContainerConfig {
                labels: raw.config.labels,
                cmd: raw.config.cmd,
                entrypoint: raw.config.entrypoint,
                user: raw.config.user,
                working_dir: raw.config.working_dir,
            },
            mounts: raw
                .mounts
                .into_iter()
                .map(|mount| Mount {
                    kind: mount.kind,
                    name: mount.name.filter(|name| !name.is_empty()),
                    source: mount.source,
                    destination: mount.destination,
                    read_write: mount.read_write,
                })
                .collect(),
            host_config: HostConfig {
                network_mode: raw.host_config.network_mode,
                restart_policy: raw
                    .host_config
                    .restart_policy
                    .map(|policy| policy.name)
                    .unwrap_or_default(),
            },
        })
        .collect())
}

impl ContainerInspect {
    /// The value of `--flag VALUE` or `--flag=VALUE` on the container's command
    /// line (`args`); if the flag appears twice, the last one wins.
    pub fn command_line_value(&self, flag: &str) -> Option<&str> {
        let mut found = None;
        let mut words = self.args.iter().map(String::as_str);
        while let Some(word) = words.next() {
            if word == flag {
                found = words.next().or(found);
            } else if let Some(value) = word
                .strip_prefix(flag)
                .and_then(|rest| rest.strip_prefix('='))
            {
                found = Some(value);
            }
        }
        found
    }
}

impl ContainerState {
    /// [`ContainerState::started_at`] in milliseconds since the Unix epoch.
    pub fn started_at_ms(&self) -> Option<i64> {
        parse_docker_time(&self.started_at)
    }

    /// [`ContainerState::finished_at`] in milliseconds since the Unix epoch.
    pub fn finished_at_ms(&self) -> Option<i64> {
        parse_docker_time(&self.finished_at)
    }
}

/// Milliseconds since the Unix epoch for an RFC 3339 time as the engine writes
/// it (`2026-11-25T21:28:47.996535154Z`, or with a `+hh:mm` offset). `None` for
/// Go's zero time `0001-01-01T00:00:00Z` ("never") and for anything unreadable.
pub fn parse_docker_time(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if year <= 1
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let first3: String = fraction[..digits]
            .chars()
            .chain("00".chars())
            .take(3)
            .collect();
        millis = first3.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest.as_bytes() {
        [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |b: &u8| b.is_ascii_digit().then(|| i64::from(b - b'0'));
            let minutes = (digit(h1)? * 10 + digit(h2)?) * 60 + digit(m1)? * 10 + digit(m2)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

// ---- docker stats ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawStats {
    #[serde(default)]
    container: String,
    #[serde(default)]
    name: String,
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "CPUPerc")]
    cpu_perc: String,
    mem_usage: String,
    #[serde(default)]
    mem_perc: String,
    #[serde(rename = "NetIO", default)]
    net_io: String,
    #[serde(rename = "BlockIO", default)]
    block_io: String,
    #[serde(rename = "PIDs", default)]
    pids: String,
}

/// Parses `docker stats --no-stream --format '{{json .}}'`: one object per line.
pub fn parse_stats(text: &str) -> Result<Vec<ContainerStats>, DockerError> {
    json_lines::<RawStats>(text, "`docker stats`")?
        .into_iter()
        .map(|raw| {
            let bad = |field: &str, value: &str| DockerError::Parse {
                what: "`docker stats`",
                detail: format!("{field} {value:?} of {}", raw.container),
            };
            let (mem_used_bytes, mem_limit_bytes) =
                parse_size_pair(&raw.mem_usage).ok_or_else(|| bad("MemUsage", &raw.mem_usage))?;
            let (net_rx_bytes, net_tx_bytes) =
                parse_size_pair(&raw.net_io).ok_or_else(|| bad("NetIO", &raw.net_io))?;
            let (block_read_bytes, block_write_bytes) =
                parse_size_pair(&raw.block_io).ok_or_else(|| bad("BlockIO", &raw.block_io))?;
            let pids = match raw.pids.trim() {
                "" | "--" => None,
                text => Some(text.parse::<u64>().map_err(|_| bad("PIDs", &raw.pids))?),
            };
            Ok(ContainerStats {
                // The CLI prints `--` as the name when the engine sent none; the
                // word the caller asked for is then the best name there is.
                name: if raw.name.is_empty() || raw.name == "--" {
                    raw.container.clone()
                } else {
                    raw.name.clone()
                },
                id: raw.id.clone(),
                cpu_percent: parse_percent(&raw.cpu_perc)
                    .ok_or_else(|| bad("CPUPerc", &raw.cpu_perc))?,
                mem_used_bytes,
                mem_limit_bytes,
                mem_percent: parse_percent(&raw.mem_perc)
                    .ok_or_else(|| bad("MemPerc", &raw.mem_perc))?,
                net_rx_bytes,
                net_tx_bytes,
                block_read_bytes,
                block_write_bytes,
                pids,
            })
        })
        .collect()
}

/// `"12.34%"` → `Some(Some(12.34))`; `"--"` (no sample) or empty → `Some(None)`;
/// anything else → `None`.
pub fn parse_percent(text: &str) -> Option<Option<f64>> {
    let text = text.trim();
    if text.is_empty() || text == "--" {
        return Some(None);
    }
    let value: f64 = text.strip_suffix('%')?.trim().parse().ok()?;
    value.is_finite().then_some(Some(value))
}

/// `"1.5MiB / 7.6GiB"` → both sides in bytes; `"-- / --"` or `"--"` → `(None, None)`;
/// a single size (Windows memory) → `(Some, None)`.
pub fn parse_size_pair(text: &str) -> Option<(Option<u64>, Option<u64>)> {
    let text = text.trim();
    if text.is_empty() || text == "--" {
        return Some((None, None));
    }
    let side = |part: &str| -> Option<Option<u64>> {
        match part.trim() {
            "--" => Some(None),
            part => parse_size(part).map(Some),
        }
    };
    match text.split_once(" / ") {
        Some((left, right)) => Some((side(left)?, side(right)?)),
        None => Some((side(text)?, None)),
    }
}

/// A size as Docker prints it, in bytes. Memory uses binary units with 4
/// significant digits (`1.926MiB`, `23.54GiB`: go-units `BytesSize`); network
/// and block I/O use decimal units with 3 (`1.18kB`, `266B`, and `1e+03kB` for
/// 999.5 kB: go-units `HumanSizeWithPrecision`). Both families, any case.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .char_indices()
        .find(|(index, c)| c.is_ascii_alphabetic() && !is_exponent_at(text, *index))
        .map_or(text.len(), |(index, _)| index);
    let (number, unit) = text.split_at(split);
    let value: f64 = number.trim().parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let unit = unit.trim().to_ascii_lowercase();
    let (prefix, base) = if let Some(prefix) = unit.strip_suffix("ib") {
        (prefix, 1024.0_f64)
    } else if let Some(prefix) = unit.strip_suffix('b') {
        (prefix, 1000.0)
    } else {
        (unit.as_str(), 1000.0)
    };
    let power = match prefix {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        "e" => 6,
        "z" => 7,
        "y" => 8,
        _ => return None,
    };
    let bytes = (value * base.powi(power)).round();
    // f64 → u64 saturates; sizes beyond u64 are not real.
    Some(bytes as u64)
}

/// Whether the letter at `index` is the `e` of an exponent (`1e+03kB`).
fn is_exponent_at(text: &str, index: usize) -> bool {
    let bytes = text.as_bytes();
    matches!(bytes[index], b'e' | b'E')
        && index > 0
        && bytes[index - 1].is_ascii_digit()
        && matches!(bytes.get(index + 1), Some(b'+' | b'-' | b'0'..=b'9'))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
