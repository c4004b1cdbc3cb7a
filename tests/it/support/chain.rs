//! On-chain storage for a test node's control file.
use super::*;

/// Chain storage for a test node's control file (`{"storage": {"0x…": "0x…"}}`),
/// keys and SCALE values made with warden's chain module (itself checked against
/// substrate-interface vectors).
#[derive(Clone, Default)]
pub struct ChainState {
    pub items: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
}

impl ChainState {
    pub fn put(&mut self, key: Vec<u8>, value: &impl warden::chain::scale::Encode) -> &mut Self {
        self.items.insert(key, value.encode());
        self
    }

    /// The control file's JSON.
    pub fn control_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .items
            .iter()
            .map(|(k, v)| {
                (
                    warden::chain::keys::to_hex(k),
                    serde_json::json!(format!("0x{}", hex::encode(v))),
                )
            })
            .collect();
        serde_json::json!({ "storage": map })
    }

    /// Writes the control file to `path` in `node` (its base path's `testnode.json`).
    pub fn write_to(&self, node: &Node, path: &str, dir: &TempDir) {
        let file = dir.join(&unique("control"));
        std::fs::write(&file, self.control_json().to_string()).unwrap();
        let out = docker(&[
            "cp",
            &file.display().to_string(),
            &format!("{}:{path}", node.name),
        ]);
        assert!(
            out.status.success(),
            "docker cp to {}: {}",
            node.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
