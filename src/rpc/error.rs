//! `RpcError`: what went wrong calling a node's JSON-RPC, and its wire code.

use crate::protocol::ErrorCode;
use std::fmt;
use std::time::Duration;

/// JSON-RPC's "method not found" code. Substrate also answers it for an unsafe
/// method it refuses to run (sc-rpc-api `UnsafeRpcError` → `METHOD_NOT_FOUND_CODE`),
/// so the two are told apart by message.
pub const METHOD_NOT_FOUND: i64 = -32601;

/// The node's message for an unsafe call it refuses (sc-rpc-api `policy.rs`).
pub const UNSAFE_DENIED_MESSAGE: &str = "RPC call is unsafe to be called externally";

/// Longest excerpt of a reply body kept in an error: enough for a node's or a
/// proxy's one-line message, not a page of HTML.
const BODY_EXCERPT_MAX: usize = 300;

/// What went wrong calling a node's RPC. Display is one lowercase line naming
/// the method and the endpoint, with the node's own words and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcError {
    /// Nothing answers: connection refused or reset, no such host, the container
    /// is stopped or unknown, `docker` unusable, curl exit 7. `detail` says what
    /// happened and what to check.
    Unavailable { endpoint: String, detail: String },
    /// No complete answer within the client's timeout (curl exit 28, or the
    /// `docker exec` deadline).
    Timeout {
        method: String,
        endpoint: String,
        after: Duration,
    },
    /// The node answered with a JSON-RPC error; `message` is the node's own.
    Node {
        method: String,
        endpoint: String,
        code: i64,
        message: String,
    },
    /// The HTTP layer refused the request (403 from the Host filter, 405, 415,
    /// 5xx); `body` is an excerpt of what came back.
    Http {
        method: String,
        endpoint: String,
        status: u16,
        body: String,
    },
    /// Something answered, but not with JSON-RPC (or with a result of the wrong
    /// shape for the method).
    Protocol {
        method: String,
        endpoint: String,
        detail: String,
    },
    /// An unsafe method (`author_*`) was not sent: the endpoint is not a loopback
    /// address, and the node would either refuse it or be exposing unsafe RPC.
    NotLoopback { method: String, endpoint: String },
}

impl RpcError {
    /// The wire protocol's error code for this error; the one place that mapping
    /// lives. A node's own refusal (JSON-RPC error, HTTP status) is `internal`:
    /// the node is up, and warden's request or the node's setup needs a look.
    pub fn code(&self) -> ErrorCode {
        match self {
            RpcError::Unavailable { .. } => ErrorCode::Unavailable,
            RpcError::Timeout { .. } => ErrorCode::Timeout,
            RpcError::NotLoopback { .. } => ErrorCode::NotPermitted,
            RpcError::Node { .. } | RpcError::Http { .. } | RpcError::Protocol { .. } => {
                ErrorCode::Internal
            }
        }
    }

    /// The node refused an unsafe method: its RPC is not on loopback, or it runs
    /// with `--rpc-methods safe`.
    pub fn is_unsafe_denied(&self) -> bool {
        matches!(self, RpcError::Node { code, message, .. }
            if *code == METHOD_NOT_FOUND && message.trim() == UNSAFE_DENIED_MESSAGE)
    }

    /// The node does not serve this method at all.
    pub fn is_method_not_found(&self) -> bool {
        matches!(self, RpcError::Node { code, message, .. }
            if *code == METHOD_NOT_FOUND && message.trim() == "Method not found")
    }

    /// The node's Host filter refused the request (sc-rpc-server answers 403
    /// "Provided Host header is not whitelisted.").
    pub fn is_host_refused(&self) -> bool {
        matches!(self, RpcError::Http { status: 403, .. })
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Unavailable { endpoint, detail } => {
                write!(f, "cannot reach the node's rpc at {endpoint}: {detail}")
            }
            RpcError::Timeout {
                method,
                endpoint,
                after,
            } => write!(
                f,
                "{method} at {endpoint} got no answer within {}; the node may be overloaded \
                 or stuck: check its logs",
                display_duration(*after)
            ),
            RpcError::Node {
                method,
                endpoint,
                code,
                message,
            } => {
                write!(
                    f,
                    "{method} at {endpoint}: the node answered {code} {message:?}"
                )?;
                if self.is_unsafe_denied() {
                    write!(
                        f,
                        "; it refuses unsafe calls on this socket: reach its rpc on \
                         127.0.0.1 (docker exec with bridge networking) and run it with \
                         --rpc-methods auto or unsafe"
                    )
                } else if self.is_method_not_found() {
                    write!(
                        f,
                        "; this node does not serve the method: check its version \
                         (`rpc_methods` lists what it serves)"
                    )
                } else {
                    Ok(())
                }
            }
            RpcError::Http {
                method,
                endpoint,
                status,
                body,
            } => {
                if *status == 403 {
                    write!(
                        f,
                        "{method} at {endpoint}: the node refused the Host header (http 403 \
                         {body:?}): reach it on its own rpc port or through docker exec"
                    )
                } else {
                    write!(
                        f,
                        "{method} at {endpoint}: http {status} {body:?}; check that this \
                         is the node's rpc port"
                    )
                }
            }
            RpcError::Protocol {
                method,
                endpoint,
                detail,
            } => write!(
                f,
                "{method} at {endpoint}: the answer is not what a substrate node sends \
                 ({detail}); check that this is the node's rpc port"
            ),
            RpcError::NotLoopback { method, endpoint } => write!(
                f,
                "refused to send the unsafe call {method} to {endpoint}: unsafe calls go \
                 only to 127.0.0.1, ::1 or localhost; use host networking or docker exec"
            ),
        }
    }
}

impl std::error::Error for RpcError {}

pub(crate) fn display_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// A reply body for an error message: trimmed, control characters dropped, cut
/// to [`BODY_EXCERPT_MAX`] bytes on a character boundary.
pub(crate) fn excerpt(body: &str) -> String {
    let cleaned: String = body
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cleaned.len() <= BODY_EXCERPT_MAX {
        return cleaned;
    }
    let mut end = BODY_EXCERPT_MAX;
    while !cleaned.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &cleaned[..end])
}
