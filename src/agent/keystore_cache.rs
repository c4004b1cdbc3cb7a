//! Keystore listings (the public keys in each node's keystore, from file
//! names), kept until `docker events` says the container changed, instead of
//! two `docker exec ls` per node per summary.
//!
//! Invariants:
//! - a listing is served only while the events stream runs and the
//!   container's generation (see `watch.rs`) is the one it was listed at;
//! - a `docker cp` into the container (`extract-to-dir`) is an event too;
//! - nothing is served older than [`MAX_AGE`]: keys added without any
//!   container event (`author_rotateKeys` over RPC by someone else, files
//!   written through a host volume) show up within that time;
//! - failures are not cached: the next call lists again.
use super::Agent;
use super::watch::Generation;
use crate::chain::KeyTypeId;
use crate::docker::ContainerInspect;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest a listing is served without a change event: keys that
/// arrive without one (written through a host volume, or by an `exec`) reach
/// the duplicate-key guard within this time.
pub const MAX_AGE: Duration = Duration::from_secs(300);

pub type Keys = Vec<(KeyTypeId, [u8; 32])>;

#[derive(Default)]
pub struct KeystoreCache {
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    generation: Generation,
    listed: Instant,
    keys: Keys,
}

impl KeystoreCache {
    fn cached(&self, container: &str, generation: Generation) -> Option<Keys> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(container)
            .filter(|e| e.generation == generation && e.listed.elapsed() < MAX_AGE)
            .map(|e| e.keys.clone())
    }

    /// Drops `container`'s listing: warden itself just changed its keystore
    /// (rotate, restore), which no container event announces.
    pub fn forget(&self, container: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(container);
    }

    fn keep(&self, container: &str, generation: Generation, keys: &Keys) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Names are managed containers; the cap only guards against a policy
        // pattern that matches ever-new names.
        if entries.len() >= 1024 {
            entries.clear();
        }
        entries.insert(
            container.to_owned(),
            Entry {
                generation,
                listed: Instant::now(),
                keys: keys.clone(),
            },
        );
    }
}

/// The node's keystore public keys, as `node::keystore_keys` lists them,
/// from the cache when it is still good.
pub fn keystore_keys(agent: &Agent, inspect: &ContainerInspect) -> Result<Keys, String> {
    let generation = agent.watch.generation(&inspect.name);
    if let Some(generation) = generation
        && let Some(keys) = agent.watch.keystores.cached(&inspect.name, generation)
    {
        return Ok(keys);
    }
    let keys = super::node::keystore_keys(agent, inspect)?;
    // Kept only if no event came while listing.
    if let Some(generation) = generation
        && agent.watch.generation(&inspect.name) == Some(generation)
    {
        agent.watch.keystores.keep(&inspect.name, generation, &keys);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_served_only_for_its_generation_and_until_forgotten() {
        let cache = KeystoreCache::default();
        let keys: Keys = vec![(KeyTypeId(*b"babe"), [7; 32])];
        assert_eq!(cache.cached("3node0", (1, 0)), None);
        cache.keep("3node0", (1, 0), &keys);
        assert_eq!(cache.cached("3node0", (1, 0)), Some(keys.clone()));
        assert_eq!(cache.cached("3node0", (1, 1)), None, "an event since");
        assert_eq!(cache.cached("3node0", (2, 0)), None, "the stream restarted");
        assert_eq!(cache.cached("3node1", (1, 0)), None);
        cache.forget("3node0");
        assert_eq!(
            cache.cached("3node0", (1, 0)),
            None,
            "rotated through warden"
        );
    }
}
