//! A node's JSON-RPC over HTTP: where to reach it ([`Endpoint`]) and calls to it
//! ([`RpcClient`]), each with a deadline, each failure an [`RpcError`].
//!
//! Two ways in, because a node's RPC listens on its own loopback:
//! - [`Endpoint::Http`]: the container runs with host networking, so its
//!   loopback is the host's, and warden POSTs with ureq;
//! - [`Endpoint::DockerExec`]: the container has its own network namespace
//!   (bridge), so warden runs `docker exec <container> curl …` against
//!   `127.0.0.1:<port>` inside it, as the original guide did.
//!
//! What the node demands of a request (sc-rpc-server, polkadot-sdk stable2409):
//! POST with `Content-Type: application/json` (else 405/415), and a Host header
//! naming `localhost`, `127.0.0.1` or `[::1]` with the port the node itself
//! listens on (else 403 "Provided Host header is not whitelisted."). ureq would
//! send the URL's authority, leaving out a scheme's default port; warden sets
//! Host itself, always with the port, so what goes out does not depend on that.
//! curl sends the URL's authority, which is `127.0.0.1:<port>`: right.
//!
//! Invariants:
//! - an unsafe method ([`is_unsafe_method`]) is never sent to an `Http` URL whose
//!   host is not 127.0.0.1, ::1 or localhost: [`RpcError::NotLoopback`] comes back
//!   before any byte is sent; `DockerExec` always targets 127.0.0.1;
//! - no proxy: the environment's `HTTP_PROXY`/`ALL_PROXY`, which ureq would
//!   otherwise honour, could carry a loopback call off the host;
//! - every call is bounded: `Http` by the client's timeout (connect, send and
//!   the whole reply), `DockerExec` by the timeout (curl's `--max-time`) plus
//!   [`EXEC_MARGIN`] for `docker exec` itself;
//! - one ureq agent per client and its clones: connections to a node are kept
//!   alive and reused;
//! - call parameters never appear in an error (`author_insertKey` carries a seed).
//!
//! Known gap: curl in the container honours the container's own `http_proxy` /
//! `ALL_PROXY` variables; `--noproxy '*'` would close that, but the test node's
//! curl does not accept it yet. A node container rarely sets a proxy.
//!
//! Left out on purpose: WebSocket RPC and subscriptions (warden polls), batches,
//! redirects (a node does not send them; a 3xx is an [`RpcError::Http`]).

mod error;
pub mod storage;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::docker::{ContainerInspect, Docker, DockerError, ExecOutput};

pub(crate) use error::display_duration;
pub(crate) use error::excerpt;
pub use error::{METHOD_NOT_FOUND, RpcError, UNSAFE_DENIED_MESSAGE};
pub use storage::RpcStorage;

/// A Substrate node's RPC port when its command line names none.
pub const DEFAULT_RPC_PORT: u16 = 9944;

/// What `docker exec` may take beyond curl's own `--max-time`: starting the
/// exec in the container (typically 50–300 ms; more on a loaded host).
pub const EXEC_MARGIN: Duration = Duration::from_secs(2);

/// The remedy for a node that does not answer at all.
const CHECK_LISTENING: &str = "check that the node runs and listens on that port (--rpc-port)";

/// Longest reply read over HTTP. `state_getStorage(":code")` is the largest
/// answer a caller might ask for: a runtime of a few MB, twice that in hex.
const MAX_REPLY_BYTES: u64 = 16 * 1024 * 1024;

/// The original design's port scheme: `3nodeN` listens on 33980 + N and
/// `nodeN` (Creditcoin 2) on 33880 + N, both with host networking.
const CC3_BASE_PORT: u16 = 33980;
const CC2_BASE_PORT: u16 = 33880;

/// Where a node's RPC is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Endpoint {
    /// Straight from this host: `http://127.0.0.1:33980/`.
    Http { url: String },
    /// Inside the container: `docker exec <container> curl http://127.0.0.1:<port>/`.
    DockerExec { container: String, port: u16 },
}

/// How container names map to endpoints: the original port rule
/// ([`port_by_name`]), unless the operator configured an endpoint for the name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointRule {
    overrides: BTreeMap<String, Endpoint>,
}

impl EndpointRule {
    pub fn new() -> EndpointRule {
        EndpointRule::default()
    }

    /// Reach `container` at `endpoint`, whatever its name or command line says.
    pub fn with_override(mut self, container: impl Into<String>, endpoint: Endpoint) -> Self {
        self.overrides.insert(container.into(), endpoint);
        self
    }

    /// The configured endpoint for `container`, if any.
    pub fn override_for(&self, container: &str) -> Option<&Endpoint> {
        self.overrides.get(container)
    }
}

/// The RPC port the original design gives a container by its name: `3nodeN` →
/// 33980 + N, `nodeN` → 33880 + N (N decimal digits); `None` for other names or
/// a port past 65535.
pub fn port_by_name(container: &str) -> Option<u16> {
    let (base, digits) = if let Some(digits) = container.strip_prefix("3node") {
        (CC3_BASE_PORT, digits)
    } else if let Some(digits) = container.strip_prefix("node") {
        (CC2_BASE_PORT, digits)
    } else {
        return None;
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = digits.parse().ok()?;
    u16::try_from(u32::from(base).checked_add(n)?).ok()
}

impl Endpoint {
    /// `http://127.0.0.1:PORT/`.
    pub fn loopback(port: u16) -> Endpoint {
        Endpoint::Http {
            url: format!("http://127.0.0.1:{port}/"),
        }
    }

    /// By name alone: the configured override, else the original port rule
    /// (host networking assumed). `None` when neither applies.
    pub fn for_container(container: &str, rule: &EndpointRule) -> Option<Endpoint> {
        if let Some(endpoint) = rule.override_for(container) {
            return Some(endpoint.clone());
        }
        port_by_name(container).map(Endpoint::loopback)
    }

    /// From what the container runs: its `--rpc-port` (default
    /// [`DEFAULT_RPC_PORT`]); `Http` on the host's 127.0.0.1 with host
    /// networking, `DockerExec` otherwise (bridge, user networks, `none`,
    /// `container:…`), where the node's loopback is the container's own.
    ///
    /// Reads the port only from a separate word on the command line: a node
    /// started by a shell script (`sh -c "node --rpc-port …"`) shows no
    /// `--rpc-port` word, and the default is assumed; configure an override then.
    pub fn from_inspect(inspect: &ContainerInspect) -> Result<Endpoint, RpcError> {
        let port = match inspect.command_line_value("--rpc-port") {
            None => DEFAULT_RPC_PORT,
            Some(text) => text
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| RpcError::Unavailable {
                    endpoint: format!("container {}", inspect.name),
                    detail: format!(
                        "its command line has --rpc-port {text:?}, which is not a port number"
                    ),
                })?,
        };
        Ok(if inspect.host_config.network_mode == "host" {
            Endpoint::loopback(port)
        } else {
            Endpoint::DockerExec {
                container: inspect.name.clone(),
                port,
            }
        })
    }

    /// The endpoint warden uses for `container`: the configured override, else
    /// what its command line and network say (when it was inspected), else the
    /// original port rule by name.
    pub fn resolve(
        container: &str,
        rule: &EndpointRule,
        inspect: Option<&ContainerInspect>,
    ) -> Result<Endpoint, RpcError> {
        if let Some(endpoint) = rule.override_for(container) {
            return Ok(endpoint.clone());
        }
        if let Some(inspect) = inspect {
            return Endpoint::from_inspect(inspect);
        }
        port_by_name(container)
            .map(Endpoint::loopback)
            .ok_or_else(|| RpcError::Unavailable {
                endpoint: format!("container {container}"),
                detail: "no rpc endpoint is known for it: its name is not 3nodeN or nodeN, \
                         and none is configured; configure one"
                    .to_owned(),
            })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Http { url } => f.write_str(url),
            Endpoint::DockerExec { container, port } => {
                write!(f, "http://127.0.0.1:{port}/ in container {container}")
            }
        }
    }
}

/// Methods the node runs only for callers it trusts (sc-rpc `deny_unsafe`):
/// all of `author_*` (key management; `author_submitExtrinsic` is safe but
/// warden never sends it, so the rule stays simple), `offchain_*`, and the
/// `system_*` calls that change or reveal the node's networking and logging.
pub fn is_unsafe_method(method: &str) -> bool {
    method.starts_with("author_")
        || method.starts_with("offchain_")
        || matches!(
            method,
            "system_addReservedPeer"
                | "system_removeReservedPeer"
                | "system_addLogFilter"
                | "system_resetLogFilter"
                | "system_peers"
                | "system_unstable_networkState"
        )
}

/// True when `url` is an `http(s)` URL whose host is 127.0.0.1, ::1 or
/// localhost (no other name: one that resolves to loopback today need not
/// tomorrow).
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<ureq::http::Uri>() else {
        return false;
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return false;
    }
    matches!(
        uri.host().map(|host| host.to_ascii_lowercase()).as_deref(),
        Some("127.0.0.1" | "[::1]" | "::1" | "localhost")
    )
}

/// The Host header for `url`: its host and port, the port written even when it
/// is the scheme's default, because the node compares `host:port` strings.
pub fn host_header(url: &str) -> Result<String, String> {
    let uri = url
        .parse::<ureq::http::Uri>()
        .map_err(|error| format!("{url:?} is not a URL: {error}"))?;
    let default_port = match uri.scheme_str() {
        Some("http") => 80,
        Some("https") => 443,
        _ => return Err(format!("{url:?} is not an http:// URL")),
    };
    let host = uri
        .host()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| format!("{url:?} names no host"))?;
    let port = uri.port_u16().unwrap_or(default_port);
    Ok(format!("{host}:{port}"))
}

/// `system_health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub peers: u64,
    pub is_syncing: bool,
    pub should_have_peers: bool,
}

/// `system_syncState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    pub starting_block: u64,
    pub current_block: u64,
    pub highest_block: u64,
}

/// `chain_getHeader`, without the digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub parent_hash: String,
    pub number: u64,
    pub state_root: String,
    pub extrinsics_root: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHeader {
    parent_hash: String,
    /// `0x`-prefixed hex, as Substrate serialises block numbers.
    number: String,
    state_root: String,
    extrinsics_root: String,
}

/// Calls to one node's RPC. Cheap to clone; clones share the connection pool
/// and the request-id counter. Safe to use from several threads.
#[derive(Debug, Clone)]
pub struct RpcClient {
    endpoint: Endpoint,
    timeout: Duration,
    agent: ureq::Agent,
    docker: Docker,
    next_id: Arc<AtomicU64>,
}

impl RpcClient {
    /// A client whose every call ends within `timeout` (plus [`EXEC_MARGIN`]
    /// for `DockerExec`). `DockerExec` runs `docker` from `PATH` unless
    /// [`RpcClient::with_docker`] says otherwise.
    pub fn new(endpoint: Endpoint, timeout: Duration) -> RpcClient {
        let agent = crate::http_agent::agent(timeout);
        RpcClient {
            endpoint,
            timeout,
            agent,
            docker: Docker::new(),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The Docker handle used for `DockerExec` endpoints (its program and output
    /// cap; its timeout is not used: each exec gets the client's).
    pub fn with_docker(mut self, docker: Docker) -> RpcClient {
        self.docker = docker;
        self
    }

    /// A client for another node sharing this one's agent (pool), timeout and
    /// Docker handle.
    pub fn for_endpoint(&self, endpoint: Endpoint) -> RpcClient {
        RpcClient {
            endpoint,
            ..self.clone()
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The longest a call can take before it returns.
    pub fn max_call_duration(&self) -> Duration {
        match self.endpoint {
            Endpoint::Http { .. } => self.timeout,
            Endpoint::DockerExec { .. } => self.timeout.saturating_add(EXEC_MARGIN),
        }
    }

    /// Calls `method` with `params` (an array or object; `null` sends `[]`) and
    /// returns the `result`. Unsafe methods are refused before sending unless
    /// the endpoint is loopback.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        if is_unsafe_method(method)
            && let Endpoint::Http { url } = &self.endpoint
            && !is_loopback_url(url)
        {
            return Err(RpcError::NotLoopback {
                method: method.to_owned(),
                endpoint: self.endpoint.to_string(),
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let params = if params.is_null() { json!([]) } else { params };
        let body =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        let (status, reply) = match &self.endpoint {
            Endpoint::Http { url } => self.post_http(url, method, body)?,
            Endpoint::DockerExec { container, port } => {
                let argv = curl_argv(*port, body, self.timeout);
                let outcome =
                    self.docker
                        .exec(container, &argv, self.timeout.saturating_add(EXEC_MARGIN));
                exec_outcome(outcome, method, &self.endpoint.to_string(), self.timeout)?
            }
        };
        parse_reply(method, &self.endpoint.to_string(), id, status, &reply)
    }

    fn post_http(&self, url: &str, method: &str, body: String) -> Result<(u16, String), RpcError> {
        let endpoint = || url.to_owned();
        let host = host_header(url).map_err(|detail| RpcError::Unavailable {
            endpoint: endpoint(),
            detail,
        })?;
        let map = |error| ureq_error(error, method, url, self.timeout);
        let mut response = self
            .agent
            .post(url)
            .header("Content-Type", "application/json")
            .header("Host", host)
            .send(body)
            .map_err(map)?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_string()
            .map_err(map)?;
        Ok((status, text))
    }

    /// A call whose result is deserialised into `T`.
    fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, RpcError> {
        let result = self.call(method, params)?;
        serde_json::from_value(result).map_err(|error| self.bad_result(method, error))
    }

    fn bad_result(&self, method: &str, detail: impl fmt::Display) -> RpcError {
        RpcError::Protocol {
            method: method.to_owned(),
            endpoint: self.endpoint.to_string(),
            detail: format!("unexpected result: {detail}"),
        }
    }

    pub fn system_health(&self) -> Result<Health, RpcError> {
        self.call_as("system_health", json!([]))
    }

    pub fn system_sync_state(&self) -> Result<SyncState, RpcError> {
        self.call_as("system_syncState", json!([]))
    }

    /// `["Authority"]` for a validator, `["Full"]` otherwise.
    pub fn system_node_roles(&self) -> Result<Vec<String>, RpcError> {
        self.call_as("system_nodeRoles", json!([]))
    }

    pub fn system_version(&self) -> Result<String, RpcError> {
        self.call_as("system_version", json!([]))
    }

    /// The chain spec's name (`Creditcoin3`), not its id.
    pub fn system_chain(&self) -> Result<String, RpcError> {
        self.call_as("system_chain", json!([]))
    }

    /// The header of block `hash`, or of the best block; `None` when the node
    /// does not know the hash.
    pub fn chain_get_header(&self, hash: Option<&str>) -> Result<Option<Header>, RpcError> {
        let params = match hash {
            Some(hash) => json!([hash]),
            None => json!([]),
        };
        let raw: Option<RawHeader> = self.call_as("chain_getHeader", params)?;
        let Some(raw) = raw else { return Ok(None) };
        let number = raw
            .number
            .strip_prefix("0x")
            .and_then(|digits| u64::from_str_radix(digits, 16).ok())
            .ok_or_else(|| {
                self.bad_result("chain_getHeader", format!("block number {:?}", raw.number))
            })?;
        Ok(Some(Header {
            parent_hash: raw.parent_hash,
            number,
            state_root: raw.state_root,
            extrinsics_root: raw.extrinsics_root,
        }))
    }

    /// The hash of the last finalized block (`0x…`).
    pub fn chain_get_finalized_head(&self) -> Result<String, RpcError> {
        self.call_as("chain_getFinalizedHead", json!([]))
    }

    /// New session keys, `0x` + the public keys concatenated (on Creditcoin 3:
    /// gran ‖ babe ‖ imon, 32 bytes each). Unsafe: loopback only.
    pub fn author_rotate_keys(&self) -> Result<String, RpcError> {
        self.call_as("author_rotateKeys", json!([]))
    }

    /// Whether the keystore holds the private keys of all of `session_keys_hex`.
    /// Unsafe: loopback only.
    pub fn author_has_session_keys(&self, session_keys_hex: &str) -> Result<bool, RpcError> {
        self.call_as("author_hasSessionKeys", json!([session_keys_hex]))
    }

    /// Whether the keystore holds the private key of `public_key_hex` for
    /// `key_type` (`gran`, `babe`, `imon`). Unsafe: loopback only.
    pub fn author_has_key(&self, public_key_hex: &str, key_type: &str) -> Result<bool, RpcError> {
        self.call_as("author_hasKey", json!([public_key_hex, key_type]))
    }

    /// The raw storage value at `key_hex`, at block `at` or the best block;
    /// `None` when the key holds nothing.
    pub fn state_get_storage(
        &self,
        key_hex: &str,
        at: Option<&str>,
    ) -> Result<Option<Vec<u8>>, RpcError> {
        let params = match at {
            Some(at) => json!([key_hex, at]),
            None => json!([key_hex]),
        };
        let value: Option<String> = self.call_as("state_getStorage", params)?;
        let Some(value) = value else { return Ok(None) };
        let digits = value.strip_prefix("0x").unwrap_or(&value);
        hex::decode(digits)
            .map(Some)
            .map_err(|error| self.bad_result("state_getStorage", format!("value not hex: {error}")))
    }

    /// Many storage values at one block in one call (`state_queryStorageAt`,
    /// a safe method): `(key hex, value)` for each key, `None` where absent.
    pub fn state_query_storage_at(
        &self,
        keys_hex: &[String],
        at: &str,
    ) -> Result<StorageChanges, RpcError> {
        #[derive(serde::Deserialize)]
        struct ChangeSet {
            changes: Vec<(String, Option<String>)>,
        }
        let sets: Vec<ChangeSet> = self.call_as("state_queryStorageAt", json!([keys_hex, at]))?;
        let mut out = Vec::new();
        for (key, value) in sets.into_iter().flat_map(|set| set.changes) {
            let value = match value {
                None => None,
                Some(v) => Some(hex::decode(v.strip_prefix("0x").unwrap_or(&v)).map_err(
                    |error| {
                        self.bad_result("state_queryStorageAt", format!("value not hex: {error}"))
                    },
                )?),
            };
            out.push((key.to_ascii_lowercase(), value));
        }
        Ok(out)
    }
}

/// `(key hex, value)` pairs from `state_queryStorageAt`; `None` where absent.
pub type StorageChanges = Vec<(String, Option<Vec<u8>>)>;

/// The argv after `docker exec <container>`: one POST with curl, its status
/// code printed on a last line of its own. The body starts with `{`, so curl's
/// `-d @file` reading never applies. Without `-f`, curl exits 0 for any HTTP
/// status and prints the body, so a 403's text comes back too.
pub fn curl_argv(port: u16, body: String, timeout: Duration) -> Vec<String> {
    // `--max-time 0` would mean "no limit" to curl.
    let seconds = timeout.max(Duration::from_millis(1));
    let seconds = if seconds.subsec_nanos() == 0 {
        seconds.as_secs().to_string()
    } else {
        format!("{:.3}", seconds.as_secs_f64())
    };
    [
        "curl",
        "-sS",
        "--max-time",
        &seconds,
        "-H",
        "Content-Type: application/json",
        "-w",
        "\\n%{http_code}",
        "-d",
        &body,
        &format!("http://127.0.0.1:{port}/"),
    ]
    .iter()
    .map(|word| (*word).to_owned())
    .collect()
}

/// What a `docker exec … curl` run means: the HTTP status and body, or the
/// error. Pure, so every outcome is tested without a container.
pub(crate) fn exec_outcome(
    outcome: Result<ExecOutput, DockerError>,
    method: &str,
    endpoint: &str,
    timeout: Duration,
) -> Result<(u16, String), RpcError> {
    let unavailable = |detail: String| RpcError::Unavailable {
        endpoint: endpoint.to_owned(),
        detail,
    };
    let output = match outcome {
        Ok(output) => output,
        Err(DockerError::Timeout { .. }) => {
            return Err(RpcError::Timeout {
                method: method.to_owned(),
                endpoint: endpoint.to_owned(),
                after: timeout,
            });
        }
        Err(DockerError::ExecStart { detail, .. }) => {
            return Err(unavailable(format!(
                "curl cannot run in the container ({detail}); the image needs curl, or \
                 configure an http endpoint"
            )));
        }
        Err(error) => return Err(unavailable(error.to_string())),
    };
    let curl_said = excerpt(&output.stderr);
    match output.exit_code {
        0 => {}
        // CURLE_OPERATION_TIMEDOUT
        28 => {
            return Err(RpcError::Timeout {
                method: method.to_owned(),
                endpoint: endpoint.to_owned(),
                after: timeout,
            });
        }
        // CURLE_COULDNT_CONNECT
        7 => {
            return Err(unavailable(format!(
                "nothing listens there ({curl_said}); {CHECK_LISTENING}"
            )));
        }
        // CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR: the node closed
        // the connection (stopping, restarting).
        52 | 55 | 56 => {
            return Err(unavailable(format!(
                "the node closed the connection ({curl_said}); {CHECK_LISTENING}"
            )));
        }
        code => return Err(unavailable(format!("curl exited {code}: {curl_said}"))),
    }
    if output.truncated {
        return Err(RpcError::Protocol {
            method: method.to_owned(),
            endpoint: endpoint.to_owned(),
            detail: "the answer is longer than the docker output cap".to_owned(),
        });
    }
    let (body, status) = output
        .stdout
        .rsplit_once('\n')
        .and_then(|(body, status)| Some((body, status.trim().parse::<u16>().ok()?)))
        .ok_or_else(|| RpcError::Protocol {
            method: method.to_owned(),
            endpoint: endpoint.to_owned(),
            detail: format!("curl printed no http status: {:?}", excerpt(&output.stdout)),
        })?;
    Ok((status, body.to_owned()))
}

/// ureq's error as an [`RpcError`].
fn ureq_error(error: ureq::Error, method: &str, url: &str, timeout: Duration) -> RpcError {
    let timed_out = || RpcError::Timeout {
        method: method.to_owned(),
        endpoint: url.to_owned(),
        after: timeout,
    };
    let unavailable = |detail: String| RpcError::Unavailable {
        endpoint: url.to_owned(),
        detail,
    };
    match error {
        ureq::Error::Timeout(_) => timed_out(),
        ureq::Error::Io(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            timed_out()
        }
        ureq::Error::Io(error) => unavailable(format!("{error}; {CHECK_LISTENING}")),
        ureq::Error::HostNotFound => {
            unavailable("the host name does not resolve; check the configured URL".to_owned())
        }
        ureq::Error::ConnectionFailed => {
            unavailable(format!("the connection failed; {CHECK_LISTENING}"))
        }
        ureq::Error::BadUri(detail) => unavailable(format!(
            "not a usable URL ({detail}); check the configured URL"
        )),
        ureq::Error::Protocol(error) => RpcError::Protocol {
            method: method.to_owned(),
            endpoint: url.to_owned(),
            detail: format!("bad http: {error}"),
        },
        ureq::Error::BodyExceedsLimit(limit) => RpcError::Protocol {
            method: method.to_owned(),
            endpoint: url.to_owned(),
            detail: format!("the answer is longer than {limit} bytes"),
        },
        other => unavailable(other.to_string()),
    }
}

/// An HTTP reply as the JSON-RPC answer to request `id`. Pure.
pub(crate) fn parse_reply(
    method: &str,
    endpoint: &str,
    id: u64,
    status: u16,
    body: &str,
) -> Result<Value, RpcError> {
    let protocol = |detail: String| RpcError::Protocol {
        method: method.to_owned(),
        endpoint: endpoint.to_owned(),
        detail,
    };
    if status != 200 {
        return Err(RpcError::Http {
            method: method.to_owned(),
            endpoint: endpoint.to_owned(),
            status,
            body: excerpt(body),
        });
    }
    let reply: Value = serde_json::from_str(body)
        .map_err(|error| protocol(format!("not JSON ({error}): {:?}", excerpt(body))))?;
    let Value::Object(mut reply) = reply else {
        return Err(protocol(format!(
            "not a JSON-RPC object: {:?}",
            excerpt(body)
        )));
    };
    if let Some(error) = reply.get("error") {
        let code = error.get("code").and_then(Value::as_i64);
        let message = error.get("message").and_then(Value::as_str);
        return match (code, message) {
            (Some(code), Some(message)) => Err(RpcError::Node {
                method: method.to_owned(),
                endpoint: endpoint.to_owned(),
                code,
                message: message.to_owned(),
            }),
            _ => Err(protocol(format!("malformed error object: {error}"))),
        };
    }
    // Over a kept-alive connection a stray answer to an earlier request would
    // show up here; jsonrpsee echoes the id as sent (a number).
    if reply.get("id") != Some(&json!(id)) {
        return Err(protocol(format!(
            "the answer's id {} is not the request's {id}",
            reply.get("id").unwrap_or(&Value::Null)
        )));
    }
    reply
        .remove("result")
        .ok_or_else(|| protocol("neither result nor error in the answer".to_owned()))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "http_tests.rs"]
mod http_tests;
