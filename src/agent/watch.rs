//! The agent's view of its managed containers, kept by `docker events`: one
//! `docker ps` and one `docker inspect` (of all of them) when an event says a
//! managed container changed, instead of both every stats interval.
//!
//! Invariants:
//! - a snapshot is served only while the events stream runs; while it is down
//!   (Docker unreachable, the stream just restarted) every call reads Docker
//!   afresh, exactly as before the stream existed;
//! - an event about a managed container (or a container whose new or old name
//!   the policy manages) drops the snapshot before the next read, and bumps
//!   that container's generation, which the keystore cache checks;
//! - a snapshot read while an event arrived is returned but not kept;
//! - even with a quiet stream, nothing is served older than [`MAX_AGE`]:
//!   a missed event costs at most that much staleness.
//!
//! The `docker events` process is restarted with backoff when it ends; it is
//! the agent's only long-lived child.
use super::Agent;
use super::keystore_cache::KeystoreCache;
use crate::docker::{ContainerInspect, DockerError, EventLine};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest a snapshot is served without an event.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// Waits before restarting a stream that ended, doubling up to the max.
const RESTART_START: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(60);
/// Events replayed from before the stream's start, to cover its start-up.
const SINCE_SLACK_S: i64 = 2;

#[derive(Default)]
pub struct ContainerWatch {
    state: Mutex<State>,
    /// Keystore listings, kept until their container's generation moves.
    pub keystores: KeystoreCache,
}

#[derive(Default)]
struct State {
    stream_up: bool,
    snapshot: Option<(Instant, Vec<ContainerInspect>)>,
    /// Bumped by every relevant event; a refresh that saw it move keeps nothing.
    events_seen: u64,
    /// Bumped at every (re)start of the stream: events may have been missed
    /// while it was down, so nothing cached before is good after.
    epoch: u64,
    generations: HashMap<String, u64>,
}

/// A container's place in the event history: (stream epoch, events about it).
pub type Generation = (u64, u64);

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ContainerWatch {
    /// The managed containers, inspected, sorted by name: the snapshot when
    /// one is valid, else one `docker ps` and one `docker inspect`.
    pub fn containers(&self, agent: &Agent) -> Result<Vec<ContainerInspect>, DockerError> {
        let seen_before = {
            let state = lock(&self.state);
            if state.stream_up
                && let Some((taken, snapshot)) = &state.snapshot
                && taken.elapsed() < MAX_AGE
            {
                return Ok(snapshot.clone());
            }
            state.events_seen
        };
        let names = agent.managed_containers()?;
        let inspected = agent.docker.inspect(&names)?;
        let mut state = lock(&self.state);
        if state.stream_up && state.events_seen == seen_before {
            state.snapshot = Some((Instant::now(), inspected.clone()));
        }
        Ok(inspected)
    }

    /// How many relevant events `container` has had since the stream
    /// started; `None` while the stream is down (nothing may be cached then).
    pub fn generation(&self, container: &str) -> Option<Generation> {
        let state = lock(&self.state);
        state.stream_up.then(|| {
            let events = state.generations.get(container).copied().unwrap_or(0);
            (state.epoch, events)
        })
    }

    /// One line of the stream; `manages` is the agent's policy.
    fn on_line(&self, line: EventLine, manages: impl Fn(&str) -> bool) {
        let mut state = lock(&self.state);
        match line {
            EventLine::Event(event) => {
                if !(manages(&event.name) || event.old_name.as_deref().is_some_and(&manages)) {
                    return;
                }
                state.events_seen += 1;
                state.snapshot = None;
                for name in std::iter::once(event.name).chain(event.old_name) {
                    *state.generations.entry(name).or_default() += 1;
                }
            }
            EventLine::Unreadable => {}
            EventLine::Ended => {
                state.stream_up = false;
                state.snapshot = None;
            }
        }
    }

    fn stream_started(&self) {
        let mut state = lock(&self.state);
        // Whatever was cached before may have missed events: start clean.
        state.stream_up = true;
        state.snapshot = None;
        state.events_seen += 1;
        state.epoch += 1;
        state.generations.clear();
    }
}

fn unix_now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Keeps a `docker events` stream running for `agent.watch`, restarting it
/// with backoff whenever it ends.
pub fn spawn(agent: Arc<Agent>) {
    thread::Builder::new()
        .name("docker-events".into())
        .spawn(move || {
            let mut backoff = RESTART_START;
            loop {
                let (ended_tx, ended_rx) = mpsc::channel::<()>();
                let for_stream = agent.clone();
                let since = unix_now_s() - SINCE_SLACK_S;
                let started = Instant::now();
                // Up before the process starts, so that its end (which may come
                // at once) is always the later word.
                agent.watch.stream_started();
                let stream = agent.docker.watch_events(since, move |line| {
                    let ended = line == EventLine::Ended;
                    let policy = &for_stream.config.policy;
                    for_stream.watch.on_line(line, |n| policy.manages(n));
                    if ended {
                        let _ = ended_tx.send(());
                    }
                });
                match stream {
                    Ok(_stream) => {
                        // Blocks until the process ends; `_stream` reaps it.
                        let _ = ended_rx.recv();
                        crate::log::warn("the docker events stream ended; restarting it");
                    }
                    Err(e) => {
                        agent.watch.on_line(EventLine::Ended, |_| false);
                        crate::log::warn(&format!(
                            "cannot watch docker events ({e}); reading docker every interval"
                        ));
                    }
                }
                // A stream that ran a while was healthy: restart soon.
                if started.elapsed() > RESTART_MAX {
                    backoff = RESTART_START;
                }
                thread::sleep(backoff);
                backoff = (backoff * 2).min(RESTART_MAX);
            }
        })
        .expect("spawn docker-events thread");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::ContainerEvent;

    fn event(action: &str, name: &str, old_name: Option<&str>) -> EventLine {
        EventLine::Event(ContainerEvent {
            action: action.into(),
            name: name.into(),
            old_name: old_name.map(Into::into),
        })
    }

    fn has_snapshot(watch: &ContainerWatch) -> bool {
        lock(&watch.state).snapshot.is_some()
    }

    fn put_snapshot(watch: &ContainerWatch) {
        lock(&watch.state).snapshot = Some((Instant::now(), Vec::new()));
    }

    #[test]
    fn only_events_about_managed_containers_drop_the_snapshot() {
        let watch = ContainerWatch::default();
        let manages = |n: &str| n.starts_with("3node");
        assert_eq!(
            watch.generation("3node0"),
            None,
            "nothing is cached before the stream"
        );
        watch.stream_started();
        put_snapshot(&watch);
        let before = watch.generation("3node0");
        watch.on_line(event("die", "other", None), manages);
        watch.on_line(EventLine::Unreadable, manages);
        assert!(has_snapshot(&watch));
        assert_eq!(watch.generation("3node0"), before);

        watch.on_line(event("die", "3node0", None), manages);
        assert!(!has_snapshot(&watch));
        assert_ne!(watch.generation("3node0"), before);
        assert_eq!(watch.generation("3node1").map(|g| g.1), Some(0));

        // A managed container renamed away is still news.
        put_snapshot(&watch);
        let old = watch.generation("3node1");
        watch.on_line(event("rename", "elsewhere", Some("3node1")), manages);
        assert!(!has_snapshot(&watch));
        assert_ne!(watch.generation("3node1"), old);
    }

    #[test]
    fn a_stream_that_ends_or_restarts_invalidates_everything() {
        let watch = ContainerWatch::default();
        let manages = |_: &str| true;
        watch.stream_started();
        put_snapshot(&watch);
        let first = watch.generation("3node0");
        watch.on_line(EventLine::Ended, manages);
        assert!(!has_snapshot(&watch));
        assert_eq!(watch.generation("3node0"), None, "no caching while down");
        watch.stream_started();
        assert_ne!(
            watch.generation("3node0"),
            first,
            "events may have been missed while it was down"
        );
    }
}
