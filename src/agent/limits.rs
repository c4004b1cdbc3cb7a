//! What the agent refuses to take on, whatever the server sends: commands
//! faster than a token bucket refills, and any command while the disk of its
//! state dir is nearly full (the ledger and audit log live there, and it is
//! usually the chain database's disk too).
//!
//! Invariants:
//! - A command refused here has written nothing: it is answered `busy` or
//!   `unavailable` and neither stored nor audited, so a flood of frames costs
//!   no disk and no memory.
//! - The free-space check reads the filesystem (statvfs) at most once per
//!   [`DISK_CHECK_INTERVAL`]; the last answer is what `stats` reports.
use crate::protocol::reports::StateDir;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Commands a burst may bring at once.
pub const COMMAND_BURST: u32 = 60;
/// Commands per second sustained, once the burst is spent.
pub const COMMANDS_PER_S: u32 = 2;
/// Default of `limits.min_free_mb`: below this many MiB available to the
/// agent on its state dir's filesystem, commands are refused.
pub const DEFAULT_MIN_FREE_MB: u64 = 256;
/// How long one free-space reading is trusted.
pub const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// A token bucket: `burst` tokens, refilled at `per_s` a second.
#[derive(Debug)]
pub struct TokenBucket {
    burst: f64,
    per_s: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(burst: u32, per_s: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            burst: f64::from(burst),
            per_s: f64::from(per_s),
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_s).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The last free-space reading of the state dir's filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskReading {
    /// Bytes available to an unprivileged writer; `None` if unreadable.
    pub free_bytes: Option<u64>,
    pub error: Option<String>,
}

/// Watches the state dir's free space.
pub struct DiskGuard {
    state_dir: PathBuf,
    min_free_bytes: u64,
    last: Mutex<Option<(Instant, DiskReading)>>,
}

impl DiskGuard {
    pub fn new(state_dir: &Path, min_free_mb: u64) -> DiskGuard {
        DiskGuard {
            state_dir: state_dir.to_path_buf(),
            min_free_bytes: min_free_mb.saturating_mul(1024 * 1024),
            last: Mutex::new(None),
        }
    }

    fn reading(&self) -> DiskReading {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, reading)) = &*last
            && at.elapsed() < DISK_CHECK_INTERVAL
        {
            return reading.clone();
        }
        let reading = match free_bytes(&self.state_dir) {
            Ok(bytes) => DiskReading {
                free_bytes: Some(bytes),
                error: None,
            },
            Err(e) => DiskReading {
                free_bytes: None,
                error: Some(e.to_string()),
            },
        };
        *last = Some((Instant::now(), reading.clone()));
        reading
    }

    /// `Some(sentence)` when commands must be refused for lack of space. An
    /// unreadable filesystem does not stop the agent: the ledger's own
    /// writes then say what is wrong.
    pub fn refusal(&self) -> Option<String> {
        let free = self.reading().free_bytes?;
        (free < self.min_free_bytes).then(|| {
            format!(
                "the agent's disk is nearly full ({} MiB free under {}, less than limits.min_free_mb = {} MiB); it takes no commands until space is freed",
                free / (1024 * 1024),
                self.state_dir.display(),
                self.min_free_bytes / (1024 * 1024)
            )
        })
    }

    /// For `stats` (host.state_dir): free space and whether commands are taken.
    pub fn report(&self) -> StateDir {
        let reading = self.reading();
        let accepting = reading
            .free_bytes
            .is_none_or(|free| free >= self.min_free_bytes);
        StateDir {
            path: Some(self.state_dir.display().to_string()),
            free_bytes: reading.free_bytes,
            min_free_bytes: Some(self.min_free_bytes),
            accepting_commands: Some(accepting),
            error: reading.error,
        }
    }
}

/// Bytes available to an unprivileged writer on `path`'s filesystem.
fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// `host.state_dir` of the agent's `stats`: see [`DiskGuard::report`].
pub fn disk_report(agent: &super::Agent) -> StateDir {
    agent.disk.report()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(3, 2, t0);
        assert!((0..3).all(|_| bucket.take(t0)));
        assert!(!bucket.take(t0));
        // Half a second brings one token back, not more.
        let t1 = t0 + Duration::from_millis(500);
        assert!(bucket.take(t1));
        assert!(!bucket.take(t1));
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::from_secs(3600);
        assert!((0..3).all(|_| bucket.take(t2)));
        assert!(!bucket.take(t2));
    }

    #[test]
    fn the_disk_guard_refuses_below_its_threshold() {
        let dir = std::env::temp_dir();
        let free = free_bytes(&dir).unwrap();
        assert!(free > 0);
        assert_eq!(DiskGuard::new(&dir, 0).refusal(), None);
        let guard = DiskGuard::new(&dir, u64::MAX);
        let refusal = guard.refusal().unwrap();
        assert!(refusal.contains("limits.min_free_mb"), "{refusal}");
        assert_eq!(guard.report().accepting_commands, Some(false));
        let missing = DiskGuard::new(Path::new("/nonexistent/warden"), u64::MAX);
        assert_eq!(missing.refusal(), None);
        assert!(missing.report().error.is_some());
    }
}
