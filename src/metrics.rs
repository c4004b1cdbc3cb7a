//! A node's Prometheus metrics: reading the text exposition format, and the few
//! values warden reports ([`NodeMetrics`]).
//!
//! The node serves them on `GET /metrics`, port 9615 unless `--prometheus-port`
//! says otherwise, bound to 127.0.0.1 unless `--prometheus-external`. Names and
//! labels are those of polkadot-sdk (sc-service `metrics.rs`, sc-network):
//! `substrate_block_height{status="best"|"finalized"|"sync_target"}`,
//! `substrate_sub_libp2p_peers_count`, `substrate_sub_libp2p_is_major_syncing`,
//! `substrate_node_roles` (a bit set: 1 full, 2 light, 4 authority) and
//! `substrate_build_info{name,version}`. The node's registry adds
//! `chain="<chain spec id>"` to every metric, printed after the metric's own
//! labels (`{status="best",chain="creditcoin3"}`) but before a histogram's `le`:
//! labels are read in any order.
//!
//! Parsing is lenient by design: a line that does not parse is skipped, not an
//! error, so one odd metric from a newer node never hides the ones warden reads;
//! a value warden reads but cannot use (`NaN`, negative, `+Inf`) is `None`.
//!
//! Left out on purpose: scraping through `docker exec` for nodes whose metrics
//! port is on a bridge network's loopback (the RPC gives the same heights,
//! peers and roles), histograms and summaries (warden reads gauges only), and
//! OpenMetrics-only syntax beyond what the text format 0.0.4 shares with it.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::docker::ContainerInspect;
use crate::protocol::ErrorCode;

/// A Substrate node's Prometheus port when its command line names none.
pub const DEFAULT_PROMETHEUS_PORT: u16 = 9615;

/// Largest metrics page read. A validator's page is some 100–300 KB.
const MAX_PAGE_BYTES: u64 = 8 * 1024 * 1024;

/// `substrate_node_roles`' bit for an authority (sc-service `Role`).
pub const ROLE_AUTHORITY: u64 = 4;

/// What warden reads from a node's metrics; `None` where the page does not
/// say (older node, metric renamed, value unusable).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeMetrics {
    pub best: Option<u64>,
    pub finalized: Option<u64>,
    pub sync_target: Option<u64>,
    pub peers: Option<u64>,
    pub is_major_syncing: Option<bool>,
    /// 4 for an authority, 1 for a full node.
    pub node_roles: Option<u64>,
    /// `substrate_build_info`'s `version` label (`3.39.0-8f1b2c3d4e5`).
    pub version: Option<String>,
    /// The `chain` label: the chain spec's id (`creditcoin3`).
    pub chain: Option<String>,
}

impl NodeMetrics {
    /// Whether the node runs as an authority (validator), if the page says.
    pub fn is_authority(&self) -> Option<bool> {
        self.node_roles.map(|roles| roles & ROLE_AUTHORITY != 0)
    }
}

/// One sample line: `name{labels} value [timestamp_ms]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(label, _)| label == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The values warden reads from a metrics page. For each, the first sample
/// that carries it counts.
pub fn parse(text: &str) -> NodeMetrics {
    let mut metrics = NodeMetrics::default();
    let mut chain_seen = false;
    for sample in text.lines().filter_map(parse_sample) {
        let slot = match sample.name.as_str() {
            "substrate_block_height" => match sample.label("status") {
                Some("best") => &mut metrics.best,
                Some("finalized") => &mut metrics.finalized,
                Some("sync_target") => &mut metrics.sync_target,
                _ => continue,
            },
            "substrate_sub_libp2p_peers_count" => &mut metrics.peers,
            "substrate_node_roles" => &mut metrics.node_roles,
            "substrate_sub_libp2p_is_major_syncing" => {
                if metrics.is_major_syncing.is_none() && !sample.value.is_nan() {
                    metrics.is_major_syncing = Some(sample.value != 0.0);
                }
                note_chain(&mut metrics, &mut chain_seen, &sample);
                continue;
            }
            "substrate_build_info" => {
                if metrics.version.is_none() {
                    metrics.version = sample.label("version").map(str::to_owned);
                }
                note_chain(&mut metrics, &mut chain_seen, &sample);
                continue;
            }
            _ => continue,
        };
        if slot.is_none() {
            *slot = as_count(sample.value);
        }
        note_chain(&mut metrics, &mut chain_seen, &sample);
    }
    metrics
}

/// The chain label of the first metric warden reads that has one.
fn note_chain(metrics: &mut NodeMetrics, seen: &mut bool, sample: &Sample) {
    if !*seen && let Some(chain) = sample.label("chain") {
        metrics.chain = Some(chain.to_owned());
        *seen = true;
    }
}

/// A gauge value as a count: finite, not negative, fraction dropped.
fn as_count(value: f64) -> Option<u64> {
    // 2^64 is exactly representable; anything at or above it does not fit.
    // NaN and the infinities fall outside the range.
    (0.0..18_446_744_073_709_551_616.0)
        .contains(&value)
        .then_some(value as u64)
}

/// Every sample line of a page that parses, in order.
pub fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_sample).collect()
}

/// One line of the text format as a sample; `None` for comments (`# HELP`,
/// `# TYPE`, `# EOF`), blank lines and lines that do not parse.
pub fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let after_name = &line[name_end..];
    let mut labels = Vec::new();
    let rest = match after_name.trim_start().strip_prefix('{') {
        Some(after_brace) => parse_labels(after_brace, &mut labels)?,
        None => after_name,
    };
    // The value must be separated from what precedes it.
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let mut words = rest.split_whitespace();
    let value = parse_value(words.next()?)?;
    let timestamp_ms = match words.next() {
        None => None,
        Some(word) => Some(word.parse::<i64>().ok()?),
    };
    if words.next().is_some() {
        return None;
    }
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
        timestamp_ms,
    })
}

/// Reads `name="value",…}` into `labels`; returns what follows the `}`.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut Vec<(String, String)>) -> Option<&'a str> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Some(after);
        }
        let name_end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
        let name = &rest[..name_end];
        if name.is_empty() {
            return None;
        }
        rest = rest[name_end..].trim_start().strip_prefix('=')?;
        rest = rest.trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let close = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()? {
                    (_, 'n') => value.push('\n'),
                    (_, '\\') => value.push('\\'),
                    (_, '"') => value.push('"'),
                    // Not an escape the format defines: keep it as written.
                    (_, other) => {
                        value.push('\\');
                        value.push(other);
                    }
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        rest = rest[close + 1..].trim_start();
        // A comma separates labels and may also follow the last one.
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return None;
        }
    }
}

/// A sample value: a Go float, `NaN`, `+Inf` or `-Inf`.
fn parse_value(word: &str) -> Option<f64> {
    match word {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => word.parse().ok(),
    }
}

/// `http://127.0.0.1:PORT/metrics`.
pub fn metrics_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/metrics")
}

/// Where this host reaches the container's metrics: with host networking, its
/// `--prometheus-port` (default 9615) on 127.0.0.1. `None` when the node runs
/// with `--no-prometheus`, or in its own network namespace (its metrics are on
/// its own loopback there unless published; configure a URL then).
pub fn metrics_url_from_inspect(inspect: &ContainerInspect) -> Option<String> {
    if inspect.host_config.network_mode != "host" {
        return None;
    }
    prometheus_port(inspect).map(metrics_url)
}

/// The port the node serves Prometheus on, inside its own network
/// namespace: `--prometheus-port`, else Substrate's 9615; none with
/// `--no-prometheus`.
pub fn prometheus_port(inspect: &ContainerInspect) -> Option<u16> {
    if inspect.args.iter().any(|arg| arg == "--no-prometheus") {
        return None;
    }
    match inspect.command_line_value("--prometheus-port") {
        None => Some(DEFAULT_PROMETHEUS_PORT),
        Some(text) => text.parse().ok().filter(|port| *port != 0),
    }
}

/// What went wrong fetching a metrics page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsError {
    /// Nothing answers there (refused, reset, no such host).
    Unavailable { url: String, detail: String },
    /// No complete page within the timeout.
    Timeout { url: String, after: Duration },
    /// A status other than 200; `body` is an excerpt.
    Http {
        url: String,
        status: u16,
        body: String,
    },
    /// The page could not be read as text (too long, not UTF-8, bad HTTP).
    Unreadable { url: String, detail: String },
}

impl MetricsError {
    /// The wire protocol's error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            MetricsError::Unavailable { .. } => ErrorCode::Unavailable,
            MetricsError::Timeout { .. } => ErrorCode::Timeout,
            MetricsError::Http { .. } | MetricsError::Unreadable { .. } => ErrorCode::Internal,
        }
    }
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::Unavailable { url, detail } => write!(
                f,
                "cannot fetch the node's metrics at {url}: {detail}; check that the node runs \
                 with prometheus on that port (--prometheus-port, not --no-prometheus)"
            ),
            MetricsError::Timeout { url, after } => write!(
                f,
                "the node's metrics at {url} did not come within {}; the node may be \
                 overloaded or stuck: check its logs",
                crate::rpc::display_duration(*after)
            ),
            MetricsError::Http { url, status, body } => write!(
                f,
                "the node's metrics at {url} answered http {status} {body:?}; check that this \
                 is the node's prometheus port and path (/metrics)"
            ),
            MetricsError::Unreadable { url, detail } => write!(
                f,
                "cannot read the metrics page at {url}: {detail}; check that this is the \
                 node's prometheus port"
            ),
        }
    }
}

impl std::error::Error for MetricsError {}

/// Fetches metrics pages with a deadline; one agent, so connections to a node
/// are kept alive across scrapes. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct MetricsClient {
    agent: ureq::Agent,
    timeout: Duration,
}

impl MetricsClient {
    pub fn new(timeout: Duration) -> MetricsClient {
        let agent = crate::http_agent::agent(timeout);
        MetricsClient { agent, timeout }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET url` and [`parse`] the page.
    pub fn scrape(&self, url: &str) -> Result<NodeMetrics, MetricsError> {
        let map = |error| metrics_error(error, url, self.timeout);
        let mut response = self.agent.get(url).call().map_err(map)?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_PAGE_BYTES)
            .read_to_string()
            .map_err(map)?;
        if status != 200 {
            return Err(MetricsError::Http {
                url: url.to_owned(),
                status,
                body: crate::rpc::excerpt(&text),
            });
        }
        Ok(parse(&text))
    }
}

/// Fetches `url` (`http://127.0.0.1:9615/metrics`) within `timeout` and reads
/// it. For repeated scrapes keep a [`MetricsClient`].
pub fn scrape(url: &str, timeout: Duration) -> Result<NodeMetrics, MetricsError> {
    MetricsClient::new(timeout).scrape(url)
}

fn metrics_error(error: ureq::Error, url: &str, timeout: Duration) -> MetricsError {
    let unavailable = |detail: String| MetricsError::Unavailable {
        url: url.to_owned(),
        detail,
    };
    let unreadable = |detail: String| MetricsError::Unreadable {
        url: url.to_owned(),
        detail,
    };
    match error {
        ureq::Error::Timeout(_) => MetricsError::Timeout {
            url: url.to_owned(),
            after: timeout,
        },
        ureq::Error::Io(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            MetricsError::Timeout {
                url: url.to_owned(),
                after: timeout,
            }
        }
        ureq::Error::Io(error) if error.kind() == std::io::ErrorKind::InvalidData => {
            unreadable(error.to_string())
        }
        ureq::Error::Io(error) => unavailable(error.to_string()),
        ureq::Error::HostNotFound => unavailable("the host name does not resolve".to_owned()),
        ureq::Error::ConnectionFailed => unavailable("the connection failed".to_owned()),
        ureq::Error::BadUri(detail) => unavailable(format!("not a usable URL: {detail}")),
        ureq::Error::Protocol(error) => unreadable(format!("bad http: {error}")),
        ureq::Error::BodyExceedsLimit(limit) => {
            unreadable(format!("the page is longer than {limit} bytes"))
        }
        other => unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    /// What the test node serves (tests/testnode/src/metrics.rs), as captured
    /// from `curl http://127.0.0.1:<port>/metrics` against warden-testnode.
    const TESTNODE_PAGE: &str = "\
# HELP substrate_block_height Block height info of the chain
# TYPE substrate_block_height gauge
substrate_block_height{status=\"best\",chain=\"creditcoin3\"} 1234
substrate_block_height{status=\"finalized\",chain=\"creditcoin3\"} 1232
substrate_block_height{status=\"sync_target\",chain=\"creditcoin3\"} 1234
# HELP substrate_build_info A metric with a constant '1' value labeled by name, version
# TYPE substrate_build_info gauge
substrate_build_info{name=\"3node0\",version=\"3.39.0-testnode\",chain=\"creditcoin3\"} 1
# HELP substrate_node_roles The roles the node is running as
# TYPE substrate_node_roles gauge
substrate_node_roles{chain=\"creditcoin3\"} 4
# HELP substrate_process_start_time_seconds Number of seconds between the UNIX epoch and the moment the process started
# TYPE substrate_process_start_time_seconds gauge
substrate_process_start_time_seconds{chain=\"creditcoin3\"} 1700000000
# HELP substrate_sub_libp2p_is_major_syncing Whether the node is performing a major sync or not.
# TYPE substrate_sub_libp2p_is_major_syncing gauge
substrate_sub_libp2p_is_major_syncing{chain=\"creditcoin3\"} 0
# HELP substrate_sub_libp2p_peers_count Number of connected peers
# TYPE substrate_sub_libp2p_peers_count gauge
substrate_sub_libp2p_peers_count{chain=\"creditcoin3\"} 3
";

    /// The shape a real polkadot-sdk node prints (written for this test after
    /// published samples of `curl localhost:9615/metrics`): families sorted by
    /// name, `chain` after a metric's own labels and before a histogram's `le`,
    /// counters, histograms, a syncing full node's values.
    const REAL_NODE_PAGE: &str = "\
# HELP substrate_block_height Block height info of the chain
# TYPE substrate_block_height gauge
substrate_block_height{status=\"best\",chain=\"creditcoin3_testnet\"} 2917321
substrate_block_height{status=\"finalized\",chain=\"creditcoin3_testnet\"} 2917318
substrate_block_height{status=\"sync_target\",chain=\"creditcoin3_testnet\"} 3101544
# HELP substrate_block_verification_and_import_time Time taken to verify and import blocks
# TYPE substrate_block_verification_and_import_time histogram
substrate_block_verification_and_import_time_bucket{chain=\"creditcoin3_testnet\",le=\"0.005\"} 0
substrate_block_verification_and_import_time_bucket{chain=\"creditcoin3_testnet\",le=\"+Inf\"} 1808
substrate_block_verification_and_import_time_sum{chain=\"creditcoin3_testnet\"} 41.7
substrate_block_verification_and_import_time_count{chain=\"creditcoin3_testnet\"} 1808
# HELP substrate_build_info A metric with a constant '1' value labeled by name, version
# TYPE substrate_build_info gauge
substrate_build_info{name=\"ancient-fish-4821\",version=\"3.32.0-7bd1a9e4c2f\",chain=\"creditcoin3_testnet\"} 1
# HELP substrate_database_cache_bytes RocksDB cache size in bytes
# TYPE substrate_database_cache_bytes gauge
substrate_database_cache_bytes{chain=\"creditcoin3_testnet\"} 0
# HELP substrate_node_roles The roles the node is running as
# TYPE substrate_node_roles gauge
substrate_node_roles{chain=\"creditcoin3_testnet\"} 1
# HELP substrate_ready_transactions_number Number of transactions in the ready queue
# TYPE substrate_ready_transactions_number gauge
substrate_ready_transactions_number{chain=\"creditcoin3_testnet\"} 0
# HELP substrate_sub_libp2p_is_major_syncing Whether the node is performing a major sync or not.
# TYPE substrate_sub_libp2p_is_major_syncing gauge
substrate_sub_libp2p_is_major_syncing{chain=\"creditcoin3_testnet\"} 1
# HELP substrate_sub_libp2p_peers_count Number of connected peers
# TYPE substrate_sub_libp2p_peers_count gauge
substrate_sub_libp2p_peers_count{chain=\"creditcoin3_testnet\"} 25
# HELP substrate_tasks_polling_duration Duration in seconds of each invocation of Future::poll
# TYPE substrate_tasks_polling_duration histogram
substrate_tasks_polling_duration_bucket{task_name=\"basic-authorship-proposer\",task_group=\"default\",kind=\"blocking\",chain=\"creditcoin3_testnet\",le=\"0.001\"} 12
";

    #[test]
    fn reads_the_test_node_page() {
        assert_eq!(
            parse(TESTNODE_PAGE),
            NodeMetrics {
                best: Some(1234),
                finalized: Some(1232),
                sync_target: Some(1234),
                peers: Some(3),
                is_major_syncing: Some(false),
                node_roles: Some(4),
                version: Some("3.39.0-testnode".into()),
                chain: Some("creditcoin3".into()),
            }
        );
        assert_eq!(parse(TESTNODE_PAGE).is_authority(), Some(true));
    }

    #[test]
    fn reads_a_real_node_page() {
        let metrics = parse(REAL_NODE_PAGE);
        assert_eq!(
            metrics,
            NodeMetrics {
                best: Some(2_917_321),
                finalized: Some(2_917_318),
                sync_target: Some(3_101_544),
                peers: Some(25),
                is_major_syncing: Some(true),
                node_roles: Some(1),
                version: Some("3.32.0-7bd1a9e4c2f".into()),
                chain: Some("creditcoin3_testnet".into()),
            }
        );
        assert_eq!(metrics.is_authority(), Some(false));
        let samples = parse_samples(REAL_NODE_PAGE);
        let inf = samples
            .iter()
            .find(|s| s.label("le") == Some("+Inf"))
            .unwrap();
        assert_eq!(inf.value, 1808.0);
        assert_eq!(
            inf.labels[0],
            ("chain".into(), "creditcoin3_testnet".into())
        );
    }

    #[test]
    fn reads_an_old_node_without_chain_label_and_an_empty_page() {
        let old = "substrate_block_height{status=\"best\"} 7\n\
                   substrate_block_height{status=\"finalized\"} 4\n\
                   substrate_build_info{name=\"x\",version=\"2.0.0-4d97032-x86_64-linux-gnu\"} 1\n";
        let metrics = parse(old);
        assert_eq!((metrics.best, metrics.finalized), (Some(7), Some(4)));
        assert_eq!(metrics.chain, None);
        assert_eq!(
            metrics.version.as_deref(),
            Some("2.0.0-4d97032-x86_64-linux-gnu")
        );
        assert_eq!(metrics.peers, None);
        assert_eq!(metrics.is_authority(), None);
        assert_eq!(parse(""), NodeMetrics::default());
        assert_eq!(parse("<html>not metrics</html>\n"), NodeMetrics::default());
    }

    #[test]
    fn labels_in_any_order_with_escapes_spaces_and_timestamps() {
        let page = "\
substrate_block_height{chain=\"a\\\"b\",status=\"best\"} 10 1700000000000
substrate_block_height { status = \"finalized\" , chain=\"a\\\"b\", } 8
substrate_sub_libp2p_peers_count 5
substrate_build_info{version=\"1.0\\\\x\\nnext\",name=\"n\",chain=\"a\\\"b\"} 1
";
        let metrics = parse(page);
        assert_eq!(metrics.best, Some(10));
        assert_eq!(metrics.finalized, Some(8));
        assert_eq!(metrics.peers, Some(5));
        assert_eq!(metrics.chain.as_deref(), Some("a\"b"));
        assert_eq!(metrics.version.as_deref(), Some("1.0\\x\nnext"));
        let sample = parse_sample("m{a=\"x\"} 1.5e3 -12").unwrap();
        assert_eq!(
            sample,
            Sample {
                name: "m".into(),
                labels: vec![("a".into(), "x".into())],
                value: 1500.0,
                timestamp_ms: Some(-12),
            }
        );
        // An escape the format does not define is kept as written; `}` and `,`
        // inside a quoted value are part of it.
        let sample = parse_sample("m{a=\"c:\\\\d\\t},x\"} 1").unwrap();
        assert_eq!(sample.label("a"), Some("c:\\d\\t},x"));
    }

    #[test]
    fn special_values() {
        for (word, check) in [
            ("NaN", f64::is_nan as fn(f64) -> bool),
            ("+Inf", |v| v == f64::INFINITY),
            ("-Inf", |v| v == f64::NEG_INFINITY),
            ("-0", |v| v == 0.0),
            ("1e-3", |v| v == 0.001),
        ] {
            let sample = parse_sample(&format!("m {word}")).unwrap();
            assert!(check(sample.value), "{word}");
        }
        // Unusable values are None, and do not shadow a later good sample.
        let page = "\
substrate_block_height{status=\"best\"} NaN
substrate_block_height{status=\"finalized\"} -1
substrate_block_height{status=\"sync_target\"} +Inf
substrate_sub_libp2p_is_major_syncing NaN
substrate_node_roles 4.0
";
        let metrics = parse(page);
        assert_eq!(
            (metrics.best, metrics.finalized, metrics.sync_target),
            (None, None, None)
        );
        assert_eq!(metrics.is_major_syncing, None);
        assert_eq!(metrics.node_roles, Some(4));
        let twice = "substrate_sub_libp2p_peers_count NaN\nsubstrate_sub_libp2p_peers_count 2\n";
        assert_eq!(parse(twice).peers, Some(2));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        for line in [
            "",
            "   ",
            "# HELP m help",
            "# TYPE m gauge",
            "# EOF",
            "m",
            "m{",
            "m{a=\"x\"",
            "m{a=\"x} 1",
            "m{a=x} 1",
            "m{=\"x\"} 1",
            "m{a=\"x\"}1",
            "m{a=\"x\" b=\"y\"} 1",
            "m 1 2 3",
            "m one",
            "m 1 1.5",
            "9m 1",
            "{a=\"x\"} 1",
        ] {
            assert_eq!(parse_sample(line), None, "{line:?}");
        }
        let page = "garbage line here\nsubstrate_sub_libp2p_peers_count{chain=\"c\"} 4\n";
        assert_eq!(parse(page).peers, Some(4));
        assert_eq!(parse(page).chain.as_deref(), Some("c"));
    }

    #[test]
    fn url_from_inspect() {
        let text = include_str!("../tests/fixtures/docker/inspect.json");
        let mut inspect = crate::docker::parse_inspect(text).unwrap().remove(0);
        inspect.host_config.network_mode = "host".into();
        inspect.args = vec!["--prometheus-port".into(), "39615".into()];
        assert_eq!(
            metrics_url_from_inspect(&inspect).as_deref(),
            Some("http://127.0.0.1:39615/metrics")
        );
        inspect.args = vec!["--validator".into()];
        assert_eq!(
            metrics_url_from_inspect(&inspect).as_deref(),
            Some("http://127.0.0.1:9615/metrics")
        );
        inspect.args = vec!["--no-prometheus".into()];
        assert_eq!(metrics_url_from_inspect(&inspect), None);
        inspect.args = vec!["--prometheus-port=x".into()];
        assert_eq!(metrics_url_from_inspect(&inspect), None);
        inspect.args = vec![];
        inspect.host_config.network_mode = "bridge".into();
        assert_eq!(metrics_url_from_inspect(&inspect), None);
    }

    /// Serves one connection on 127.0.0.1:0: reads the request head, then
    /// writes `response` (or nothing, holding the socket until the client
    /// leaves). Returns the URL and the thread, which ends within 10 s.
    fn one_shot(response: Option<String>) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/metrics",
            listener.local_addr().unwrap().port()
        );
        let thread = std::thread::Builder::new()
            .name("metrics-test-server".into())
            .spawn(move || {
                let (mut stream, _) = listener.accept().unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                match response {
                    Some(response) => stream.write_all(response.as_bytes()).unwrap(),
                    // Wait for the client to give up and close.
                    None => while stream.read(&mut byte).unwrap_or(0) == 1 {},
                }
                String::from_utf8(head).unwrap()
            })
            .unwrap();
        (url, thread)
    }

    fn http_response(status: u16, body: &str) -> String {
        format!(
            "HTTP/1.1 {status} X\r\ncontent-type: text/plain; version=0.0.4\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn scrapes_a_page() {
        let (url, server) = one_shot(Some(http_response(200, TESTNODE_PAGE)));
        let metrics = scrape(&url, Duration::from_secs(5)).unwrap();
        assert_eq!(metrics, parse(TESTNODE_PAGE));
        let head = server.join().unwrap().to_ascii_lowercase();
        assert!(head.starts_with("get /metrics http/1.1\r\n"), "{head}");
    }

    #[test]
    fn scrape_errors() {
        let (url, server) = one_shot(Some(http_response(404, "Not found.")));
        let error = scrape(&url, Duration::from_secs(5)).unwrap_err();
        assert_eq!(
            error,
            MetricsError::Http {
                url: url.clone(),
                status: 404,
                body: "Not found.".into()
            }
        );
        assert_eq!(error.code().as_str(), "internal");
        assert!(error.to_string().contains("/metrics"), "{error}");
        server.join().unwrap();

        let (url, server) = one_shot(None);
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let error = scrape(&url, timeout).unwrap_err();
        assert_eq!(
            error,
            MetricsError::Timeout {
                url,
                after: timeout
            }
        );
        assert!(started.elapsed() < timeout + Duration::from_millis(500));
        assert_eq!(error.code().as_str(), "timeout");
        server.join().unwrap();

        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let started = Instant::now();
        let error = scrape(&metrics_url(port), Duration::from_secs(10)).unwrap_err();
        assert_eq!(error.code().as_str(), "unavailable", "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
        let text = error.to_string();
        assert!(
            text.starts_with("cannot fetch the node's metrics at http://127.0.0.1:"),
            "{text}"
        );
    }
}
