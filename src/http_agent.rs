//! The one way warden builds an HTTP client (ureq): node RPC and Prometheus
//! pages on the host's loopback, and alert sinks.

use std::time::Duration;

/// A client whose every request ends within `timeout`; statuses are
/// returned, not raised; no redirect is followed; and no proxy from the
/// environment is used: a proxy is for the internet, not for 127.0.0.1, and
/// would see alert payloads on their way to a sink.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}
