//! The Prometheus text a real node serves on `/metrics` (substrate-prometheus-endpoint), for
//! the handful of metrics warden reads.
//!
//! Names, help texts and label sets follow sc-service `metrics.rs` (`substrate_block_height`
//! with `status`, `substrate_build_info` with `name` and `version`, `substrate_node_roles`:
//! 1 = full, 4 = authority) and sc-network (`substrate_sub_libp2p_peers_count`,
//! `substrate_sub_libp2p_is_major_syncing`). The node's registry adds the constant label
//! `chain="<chain spec id>"`, which the text encoder prints after a metric's own labels.
//! Families come sorted by name, as `Registry::gather` returns them.

use std::fmt::Write;

/// Everything the metrics page shows, captured at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub chain: String,
    pub node_name: String,
    pub version: String,
    pub best: u64,
    pub finalized: u64,
    pub sync_target: u64,
    pub peers: u32,
    pub major_syncing: bool,
    pub authority: bool,
    pub start_time_secs: u64,
}

/// Prometheus text exposition format 0.0.4 (the content type the endpoint sends).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Escapes a label value for the text format: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(s: &Snapshot) -> String {
    let chain = format!("chain=\"{}\"", escape(&s.chain));
    let mut out = String::new();
    let mut family = |name: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    family(
        "substrate_block_height",
        "Block height info of the chain",
        &[
            (format!("status=\"best\",{chain}"), s.best),
            (format!("status=\"finalized\",{chain}"), s.finalized),
            (format!("status=\"sync_target\",{chain}"), s.sync_target),
        ],
    );
    family(
        "substrate_build_info",
        "A metric with a constant '1' value labeled by name, version",
        &[(
            format!(
                "name=\"{}\",version=\"{}\",{chain}",
                escape(&s.node_name),
                escape(&s.version)
            ),
            1,
        )],
    );
    family(
        "substrate_node_roles",
        "The roles the node is running as",
        &[(chain.clone(), if s.authority { 4 } else { 1 })],
    );
    family(
        "substrate_process_start_time_seconds",
        "Number of seconds between the UNIX epoch and the moment the process started",
        &[(chain.clone(), s.start_time_secs)],
    );
    family(
        "substrate_sub_libp2p_is_major_syncing",
        "Whether the node is performing a major sync or not.",
        &[(chain.clone(), u64::from(s.major_syncing))],
    );
    family(
        "substrate_sub_libp2p_peers_count",
        "Number of connected peers",
        &[(chain.clone(), u64::from(s.peers))],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            chain: "creditcoin3".into(),
            node_name: "3node0".into(),
            version: "3.39.0-testnode".into(),
            best: 120,
            finalized: 118,
            sync_target: 120,
            peers: 3,
            major_syncing: false,
            authority: true,
            start_time_secs: 1_700_000_000,
        }
    }

    #[test]
    fn renders_the_metrics_warden_reads_with_chain_label_last() {
        let text = render(&snapshot());
        for line in [
            "# HELP substrate_block_height Block height info of the chain",
            "# TYPE substrate_block_height gauge",
            "substrate_block_height{status=\"best\",chain=\"creditcoin3\"} 120",
            "substrate_block_height{status=\"finalized\",chain=\"creditcoin3\"} 118",
            "substrate_block_height{status=\"sync_target\",chain=\"creditcoin3\"} 120",
            "substrate_build_info{name=\"3node0\",version=\"3.39.0-testnode\",chain=\"creditcoin3\"} 1",
            "substrate_node_roles{chain=\"creditcoin3\"} 4",
            "substrate_sub_libp2p_is_major_syncing{chain=\"creditcoin3\"} 0",
            "substrate_sub_libp2p_peers_count{chain=\"creditcoin3\"} 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn full_node_and_syncing_values() {
        let mut s = snapshot();
        s.authority = false;
        s.major_syncing = true;
        let text = render(&s);
        assert!(text.contains("substrate_node_roles{chain=\"creditcoin3\"} 1\n"));
        assert!(text.contains("substrate_sub_libp2p_is_major_syncing{chain=\"creditcoin3\"} 1\n"));
    }

    #[test]
    fn families_are_sorted_and_each_has_help_and_type() {
        let text = render(&snapshot());
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(text.matches("# HELP ").count(), names.len());
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = snapshot();
        s.node_name = "a\"b\\c".into();
        assert!(render(&s).contains("name=\"a\\\"b\\\\c\""));
    }
}
