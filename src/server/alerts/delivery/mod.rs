//! Delivery of notices to sinks: one durable [`queue::Queue`] and one thread
//! per sink, posting the oldest notice first and retrying it with
//! exponential backoff until the sink accepts it (HTTP 2xx). A sink that is
//! down delays only itself; its notices wait on disk, in order, across
//! restarts.
//!
//! Every outcome (delivered, failed attempt, refused enqueue) goes to the
//! [`DeliveryObserver`] the hub implements: it writes the audit log and feeds
//! acceptances back to the engine ([`super::Engine::delivered`]), which
//! counts repeats from them. Reports name the sink by its name and never
//! carry its URL or token: error texts are scrubbed of both.
pub mod queue;

use super::config::{Sink, SinkKind};
use super::notice::{Notice, NoticeKind};
use queue::{Queue, Queued};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The sink accepted it (HTTP 2xx) after this many attempts.
    Delivered { attempts: u32 },
    /// This attempt failed; the next comes in `retry_in`.
    Failed {
        attempt: u32,
        error: String,
        retry_in: Duration,
    },
    /// It could not be queued at all (disk error, queue full).
    NotQueued { error: String },
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryReport {
    pub sink: String,
    pub fingerprint: String,
    pub alertname: String,
    pub kind: NoticeKind,
    pub outcome: Outcome,
    pub at_ms: i64,
}

impl DeliveryReport {
    /// The audit log entry for this report (no URL, no token: the sink is
    /// named, the error already scrubbed).
    pub fn audit_entry(&self) -> serde_json::Value {
        let mut entry = serde_json::json!({
            "type": "alert_delivery",
            "sink": self.sink,
            "alertname": self.alertname,
            "fingerprint": self.fingerprint,
            "notice": self.kind,
            "timestamp": self.at_ms,
        });
        match &self.outcome {
            Outcome::Delivered { attempts } => {
                entry["outcome"] = "delivered".into();
                entry["attempts"] = (*attempts).into();
            }
            Outcome::Failed {
                attempt,
                error,
                retry_in,
            } => {
                entry["outcome"] = "failed".into();
                entry["attempt"] = (*attempt).into();
                entry["error"] = error.clone().into();
                entry["retry_in_s"] = retry_in.as_secs().into();
            }
            Outcome::NotQueued { error } => {
                entry["outcome"] = "not_queued".into();
                entry["error"] = error.clone().into();
            }
        }
        entry
    }

    /// Whether the engine must hear of it ([`super::Engine::delivered`]):
    /// the notice left the queue, accepted or not.
    pub fn settles(&self) -> Option<bool> {
        match self.outcome {
            Outcome::Delivered { .. } => Some(true),
            Outcome::NotQueued { .. } => Some(false),
            Outcome::Failed { .. } => None,
        }
    }
}

/// Implemented by the hub: audit every report; on `Delivered` (and on
/// `NotQueued`) tell the engine through the hub's event channel.
pub trait DeliveryObserver: Send + Sync + 'static {
    fn report(&self, report: DeliveryReport);
}

/// Retry timing: `initial`, doubling, at most `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Bound on one HTTP request.
    pub request_timeout: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    stop: Mutex<bool>,
}

struct Worker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

pub struct Delivery {
    workers: BTreeMap<String, Worker>,
    observer: Arc<dyn DeliveryObserver>,
}

#[derive(Debug)]
pub struct DeliveryError(pub String);

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeliveryError {}

impl Delivery {
    /// Open each sink's queue under `<data_dir>/alerts/queue/<sink name>/`
    /// and start its thread (which first sends what an earlier run left).
    /// `external_url`: the admin listener's URL, or "".
    pub fn start(
        data_dir: &Path,
        sinks: &[Sink],
        external_url: &str,
        observer: Arc<dyn DeliveryObserver>,
        backoff: Backoff,
    ) -> Result<Delivery, DeliveryError> {
        let mut workers = BTreeMap::new();
        for sink in sinks {
            let dir = data_dir.join("alerts").join("queue").join(&sink.name);
            let queue = Queue::open(&dir).map_err(|e| {
                DeliveryError(format!(
                    "cannot open the queue of sink {} ({}): {e}; check the data dir",
                    sink.name,
                    dir.display()
                ))
            })?;
            let shared = Arc::new(Shared {
                queue: Mutex::new(queue),
                wake: Condvar::new(),
                stop: Mutex::new(false),
            });
            let poster = Poster::new(
                sink.clone(),
                external_url.to_string(),
                backoff.request_timeout,
            );
            let (s, o) = (shared.clone(), observer.clone());
            let thread = std::thread::Builder::new()
                .name(format!("alerts-{}", sink.name))
                .spawn(move || run(&s, &poster, o.as_ref(), backoff))
                .map_err(|e| DeliveryError(format!("cannot start a delivery thread: {e}")))?;
            workers.insert(
                sink.name.clone(),
                Worker {
                    shared,
                    thread: Some(thread),
                },
            );
        }
        Ok(Delivery { workers, observer })
    }

    /// Queue `notice` for each of its sinks (durably, before returning).
    /// A sink that cannot take it is reported as `NotQueued`.
    pub fn enqueue(&self, notice: &Notice, now_ms: i64) {
        for name in &notice.sinks {
            let Some(worker) = self.workers.get(name) else {
                continue;
            };
            let item = Queued {
                notice: notice.clone(),
                enqueued_ms: now_ms,
            };
            let pushed = worker
                .shared
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(&item);
            match pushed {
                Ok(()) => worker.shared.wake.notify_all(),
                Err(e) => self.observer.report(DeliveryReport {
                    sink: name.clone(),
                    fingerprint: notice.fingerprint.clone(),
                    alertname: notice.alertname.clone(),
                    kind: notice.kind,
                    outcome: Outcome::NotQueued {
                        error: e.to_string(),
                    },
                    at_ms: now_ms,
                }),
            }
        }
    }

    /// Notices waiting per sink.
    pub fn queued(&self) -> BTreeMap<String, usize> {
        self.workers
            .iter()
            .map(|(n, w)| {
                (
                    n.clone(),
                    w.shared
                        .queue
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .len(),
                )
            })
            .collect()
    }

    /// Stop the threads (a post in flight finishes within its timeout).
    pub fn shutdown(mut self) {
        for w in self.workers.values() {
            *w.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
            w.shared.wake.notify_all();
        }
        for w in self.workers.values_mut() {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

fn stopped(shared: &Shared) -> bool {
    *shared.stop.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wait until `deadline`, or a stop; with `for_new`, also until the queue
/// is no longer empty.
fn wait(shared: &Shared, deadline: Instant, for_new: bool) {
    let mut queue = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if stopped(shared) || (for_new && !queue.is_empty()) {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        queue = shared
            .wake
            .wait_timeout(queue, deadline - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

fn run(shared: &Shared, poster: &Poster, observer: &dyn DeliveryObserver, backoff: Backoff) {
    let mut attempt = 0u32;
    while !stopped(shared) {
        let front = shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .front();
        let (path, item) = match front {
            Ok(Some(found)) => found,
            Ok(None) => {
                // Idle: wake on a new notice (and now and then regardless).
                wait(shared, Instant::now() + Duration::from_secs(60), true);
                continue;
            }
            Err(e) => {
                crate::log::error(&format!("alerts sink {}: {e}", poster.sink.name));
                // A broken queue dir must not spin: wait as after a failure.
                wait(shared, Instant::now() + backoff.initial, false);
                continue;
            }
        };
        attempt += 1;
        let n = &item.notice;
        let report = |outcome| DeliveryReport {
            sink: poster.sink.name.clone(),
            fingerprint: n.fingerprint.clone(),
            alertname: n.alertname.clone(),
            kind: n.kind,
            outcome,
            at_ms: crate::protocol::now_ms(),
        };
        match poster.post(n) {
            Ok(()) => {
                let removed = shared
                    .queue
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&path);
                if let Err(e) = removed {
                    // Sent again next time: at least once.
                    crate::log::error(&format!(
                        "alerts sink {}: cannot remove a delivered notice from its queue: {e}",
                        poster.sink.name
                    ));
                }
                observer.report(report(Outcome::Delivered { attempts: attempt }));
                attempt = 0;
            }
            Err(error) => {
                let retry_in = backoff.delay(attempt);
                observer.report(report(Outcome::Failed {
                    attempt,
                    error,
                    retry_in,
                }));
                wait(shared, Instant::now() + retry_in, false);
            }
        }
    }
}

/// Posts one sink's notices. Holds the sink's secret; every error text it
/// returns is scrubbed of it.
struct Poster {
    sink: Sink,
    external_url: String,
    agent: ureq::Agent,
}

impl Poster {
    fn new(sink: Sink, external_url: String, timeout: Duration) -> Poster {
        let agent = crate::http_agent::agent(timeout);
        Poster {
            sink,
            external_url,
            agent,
        }
    }

    fn payload(&self, n: &Notice) -> serde_json::Value {
        match self.sink.kind {
            SinkKind::Webhook => n.webhook_payload(&self.external_url),
            SinkKind::Slack => n.slack_payload(),
            SinkKind::Discord => n.discord_payload(),
            SinkKind::Telegram => n.telegram_payload(self.sink.chat_id.as_deref().unwrap_or("")),
        }
    }

    fn post(&self, n: &Notice) -> Result<(), String> {
        let url = self.sink.post_url();
        let result = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send_json(self.payload(n));
        match result {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!(
                "the sink answered HTTP {}; check the sink's URL or token and the receiver's log",
                response.status().as_u16()
            )),
            Err(e) => Err(scrub(&e.to_string(), &[&url, self.sink.secret.expose()])),
        }
    }
}

/// `text` with every secret replaced by `<redacted>`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "<redacted>");
    }
    out
}
