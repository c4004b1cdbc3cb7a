//! The control file: what a test wants the node to report, re-read on every use.
//!
//! Shape (every field optional):
//! `{"storage": {"0x<key>": "0x<value>"}, "peers": 3, "syncing": false, "hang_rpc": false,
//!   "finality_lag": 2}`.
//! Tests change it while the node runs (`docker exec`, or a bind mount). There is no real-node
//! counterpart: it stands in for the chain's state and the network's behaviour.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Deserialize;

use crate::chain::FINALITY_LAG;
use crate::log;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Control {
    /// Storage values by key, both hex; keys are compared in lowercase.
    pub storage: BTreeMap<String, String>,
    /// Connected peers to report.
    pub peers: u32,
    /// Whether the node reports a major sync.
    pub syncing: bool,
    /// Accept RPC requests and never answer them (for timeout tests).
    pub hang_rpc: bool,
    /// Blocks finality trails best by (default [`FINALITY_LAG`]): a larger value stands in for
    /// a GRANDPA stall, for the NodeFinalityLag alert.
    pub finality_lag: u64,
}

impl Default for Control {
    fn default() -> Control {
        Control {
            storage: BTreeMap::new(),
            peers: 3,
            syncing: false,
            hang_rpc: false,
            finality_lag: FINALITY_LAG,
        }
    }
}

impl Control {
    /// Parses the file's text; storage keys are lowercased so lookups ignore case.
    pub fn parse(text: &str) -> Result<Control, serde_json::Error> {
        let mut control: Control = serde_json::from_str(text)?;
        control.storage = control
            .storage
            .into_iter()
            .map(|(key, value)| (key.to_ascii_lowercase(), value))
            .collect();
        Ok(control)
    }

    /// The finalized block number when the best is `best`.
    pub fn finalized(&self, best: u64) -> u64 {
        best.saturating_sub(self.finality_lag)
    }

    /// The value stored under `key` (hex, any case, `0x` optional).
    pub fn storage_value(&self, key: &str) -> Option<&str> {
        self.storage.get(&normalize_key(key)).map(String::as_str)
    }
}

/// `0x`-prefixed lowercase form of a hex storage key.
pub fn normalize_key(key: &str) -> String {
    let digits = key.strip_prefix("0x").unwrap_or(key);
    format!("0x{}", digits.to_ascii_lowercase())
}

/// Reads the control file on demand, falling back to the last good contents when a test is
/// caught half-way through rewriting it.
#[derive(Debug)]
pub struct ControlSource {
    path: PathBuf,
    last_good: Mutex<Control>,
}

impl ControlSource {
    pub fn new(path: PathBuf) -> ControlSource {
        ControlSource {
            path,
            last_good: Mutex::new(Control::default()),
        }
    }

    /// The current control values: defaults when the file does not exist.
    pub fn load(&self) -> Control {
        let mut last_good = self.last_good.lock().unwrap_or_else(|e| e.into_inner());
        match std::fs::read_to_string(&self.path) {
            Ok(text) => match Control::parse(&text) {
                Ok(control) => *last_good = control,
                Err(e) => log::warn(&format!(
                    "testnode: ignoring unreadable control file {}: {e}",
                    self.path.display()
                )),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => *last_good = Control::default(),
            Err(e) => log::warn(&format!(
                "testnode: cannot read control file {}: {e}",
                self.path.display()
            )),
        }
        last_good.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_optional() {
        assert_eq!(Control::parse("{}").unwrap(), Control::default());
        let control = Control::parse(r#"{"peers": 0, "hang_rpc": true}"#).unwrap();
        assert_eq!(control.peers, 0);
        assert!(control.hang_rpc);
        assert!(!control.syncing);
    }

    #[test]
    fn finality_trails_best_by_the_configured_lag() {
        let default = Control::parse("{}").unwrap();
        assert_eq!(default.finalized(60), 60 - FINALITY_LAG);
        let stalled = Control::parse(r#"{"finality_lag": 30}"#).unwrap();
        assert_eq!(stalled.finalized(60), 30);
        assert_eq!(stalled.finalized(12), 0);
    }

    #[test]
    fn storage_lookup_ignores_case_and_prefix() {
        let control = Control::parse(r#"{"storage": {"0xABcd": "0x01"}}"#).unwrap();
        assert_eq!(control.storage_value("0xabcd"), Some("0x01"));
        assert_eq!(control.storage_value("ABCD"), Some("0x01"));
        assert_eq!(control.storage_value("0xabce"), None);
    }

    #[test]
    fn keeps_last_good_contents_over_a_garbled_file() {
        let path =
            std::env::temp_dir().join(format!("testnode-control-{}.json", std::process::id()));
        let source = ControlSource::new(path.clone());
        assert_eq!(source.load(), Control::default());
        std::fs::write(&path, r#"{"peers": 7}"#).unwrap();
        assert_eq!(source.load().peers, 7);
        std::fs::write(&path, r#"{"peers": "#).unwrap();
        assert_eq!(source.load().peers, 7);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(source.load().peers, 3);
    }
}
