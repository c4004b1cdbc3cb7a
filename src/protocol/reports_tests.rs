//! Literal-JSON tests of `stats` and `summary`, both ways: what our agent
//! sends is decoded and encoded again byte for byte, and odd reports are
//! read as far as they make sense (never refused).
use super::*;
use crate::protocol::Message;
use serde_json::json;

/// A `stats` frame as our agent sends it, one node of each shape: read from
/// Prometheus with its keystore, unreachable, stopped, panicked.
pub const STATS: &str = concat!(
    r#"{"data":{"containers":["#,
    r#"{"cpu_percent":3.2,"data_free_bytes":83886080,"health":null,"image":"gluwa/creditcoin3:3.32.0","mem_limit_bytes":8233394176,"mem_used_bytes":412000000,"name":"3node0","restart_count":0,"started_at":"2025-01-08T12:00:00.123456789Z","state":"running","uptime_s":9000},"#,
    r#"{"cpu_percent":null,"data_free_bytes":null,"health":"healthy","image":"gluwa/creditcoin3:3.32.0","mem_limit_bytes":null,"mem_used_bytes":null,"name":"3node1","restart_count":2,"started_at":"0001-01-01T00:00:00Z","state":"exited","uptime_s":null},"#,
    r#"{"cpu_percent":0.0,"data_free_bytes":null,"health":null,"image":"x","mem_limit_bytes":1,"mem_used_bytes":1,"name":"3node2","restart_count":0,"started_at":"s","state":"running","uptime_s":0}"#,
    r#"],"host":{"load":[0.12,0.2,0.18],"mem_available_bytes":5120000000,"mem_total_bytes":8233394176,"name":"val-eu-1","state_dir":{"accepting_commands":true,"error":null,"free_bytes":1000,"min_free_bytes":100,"path":"/var/lib/warden"}},"#,
    r#""nodes":{"#,
    r#""3node0":{"best":4021337,"chain":"creditcoin3","finalized":4021335,"keystore":[{"public":"0x88dc","type":"gran"},{"public":"0xd435","type":"babe"}],"network_key":true,"peer_id":"12D3KooWabc","peers":24,"roles":["Authority"],"rpc_error":null,"source":"prometheus","sync_target":4021337,"syncing":false,"version":"3.32.0-2b1c"},"#,
    r#""3node1":{"keystore":[],"note":"not running","rpc_error":null},"#,
    r#""3node2":{"network_key":null,"peer_id":null,"rpc_code":"timeout","rpc_error":"RPC timed out"},"#,
    r#""3node3":{"rpc_error":"probe panicked"}"#,
    r#"},"timestamp":1736346600000},"type":"stats"}"#
);

/// The same with Docker unusable, and a node read over RPC whose RPC then
/// failed its check (Prometheus inside the container).
pub const STATS_DOCKER_ERROR: &str = concat!(
    r#"{"data":{"containers":[],"error":"cannot run docker","host":{"load":[],"mem_available_bytes":null,"mem_total_bytes":null,"name":"h","state_dir":{"accepting_commands":false,"error":"statvfs failed","free_bytes":null,"min_free_bytes":0,"path":"/s"}},"#,
    r#""nodes":{"a":{"best":null,"chain":null,"finalized":null,"network_key":false,"peer_id":"12D3","peers":null,"roles":null,"rpc_code":"unavailable","rpc_error":"refused","source":"rpc","sync_target":null,"syncing":null,"version":null}},"timestamp":-5},"type":"stats"}"#
);

/// A `summary` frame as our agent sends it: one validator node, one node in
/// error.
pub const SUMMARY: &str = concat!(
    r#"{"data":{"era":{"active_era":512},"payout_info":{"payout_checks":{"#,
    r#""3node0":{"chain_keys":{"epoch_authorship":{"primary":1,"secondary":0,"secondary_vrf":2,"total":3},"next_in_keystore":true,"next_keys":{"gran":"0x88"},"queued_keys":null,"session_index":7,"warning":null},"current_era":512,"error":null,"oldest_expires_in_eras":3,"synced":true,"unclaimed_eras":[{"era":430,"expires_at_era":515,"page_count":1,"pages":[0]}],"unclaimed_payouts":1,"validator_account":"5Grw"},"#,
    r#""3node1":{"chain_keys":null,"current_era":null,"error":"rpc down","oldest_expires_in_eras":null,"synced":false,"unclaimed_eras":null,"unclaimed_payouts":null,"validator_account":null}"#,
    r#"},"timestamp":1736346600000},"timestamp":1736346600000},"type":"summary"}"#
);

#[test]
fn what_our_agent_sends_comes_out_byte_for_byte() {
    // The server keeps only the fields it reads, so what is encoded is the
    // agent's value: the decoded one with what the server drops put back.
    for frame in [STATS, STATS_DOCKER_ERROR] {
        assert_eq!(Message::Stats(agent_stats(frame)).to_json(), frame);
    }
    assert_eq!(Message::Summary(agent_summary()).to_json(), SUMMARY);
}

/// `frame` as the agent built it: decoded, with the details the server
/// does not keep read from the same JSON.
fn agent_stats(frame: &str) -> StatsReport {
    let Message::Stats(mut stats) = Message::parse(frame).unwrap() else {
        panic!("not stats");
    };
    let v: serde_json::Value = serde_json::from_str(frame).unwrap();
    fn detail<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> T {
        serde_json::from_value(v.clone()).unwrap()
    }
    stats.host.detail = Some(Box::new(detail(&v["data"]["host"])));
    for (n, row) in stats.containers.iter_mut().flatten().enumerate() {
        row.detail = Some(Box::new(detail(&v["data"]["containers"][n])));
    }
    stats
}

fn read(best: u64, peers: u64) -> NodeRead {
    NodeRead {
        best: Some(best),
        finalized: Some(best - 2),
        sync_target: Some(best),
        peers: Some(peers),
        syncing: Some(false),
        roles: Some(vec!["Authority".into()]),
        version: Some("3.32.0-2b1c".into()),
        chain: Some("creditcoin3".into()),
        source: Some("prometheus".into()),
    }
}

fn entry(key_type: &str, public: &str) -> KeystoreEntry {
    KeystoreEntry::new(key_type, public)
}

/// [`SUMMARY`] as the agent builds it.
fn agent_summary() -> SummaryReport {
    let chain_keys = json!({"epoch_authorship":{"primary":1,"secondary":0,"secondary_vrf":2,"total":3},
        "next_in_keystore":true,"next_keys":{"gran":"0x88"},"queued_keys":null,"session_index":7,"warning":null});
    let validator = PayoutCheck {
        current_era: Some(512),
        unclaimed_payouts: Some(1),
        unclaimed_eras: Some(vec![crate::chain::UnclaimedEra {
            era: 430,
            pages: vec![0],
            page_count: 1,
            expires_at_era: 515,
        }]),
        oldest_unclaimed_era: None,
        oldest_expires_in_eras: Some(3),
        synced: Some(true),
        validator_account: Some("5Grw".into()),
        chain_keys: Some(Box::new(ChainKeys::sent(
            chain_keys.as_object().unwrap().clone(),
        ))),
        error: None,
    };
    let failed = PayoutCheck {
        synced: Some(false),
        error: Some("rpc down".into()),
        ..PayoutCheck::default()
    };
    SummaryReport {
        timestamp: Some(1736346600000),
        era: Some(EraInfo {
            active_era: Some(512),
        }),
        payout_info: Some(PayoutInfo {
            payout_checks: [("3node0".into(), validator), ("3node1".into(), failed)]
                .into_iter()
                .collect(),
            timestamp: Some(1736346600000),
        }),
    }
}

#[test]
fn a_stats_frame_decodes_to_its_fields() {
    let Message::Stats(stats) = Message::parse(STATS).unwrap() else {
        panic!("not stats");
    };
    assert_eq!(stats.timestamp, Some(1736346600000));
    assert_eq!(stats.host.name.as_deref(), Some("val-eu-1"));
    assert_eq!(stats.host.detail, None, "not kept");
    assert_eq!(
        stats.rows()[0],
        ContainerRow {
            name: Some("3node0".into()),
            state: Some("running".into()),
            restart_count: Some(0),
            cpu_percent: Some(3.2),
            mem_used_bytes: Some(412000000),
            detail: None,
        }
    );
    assert!(!stats.rows()[1].is_running());
    assert_eq!(
        *stats.nodes.get("3node0").unwrap(),
        NodeReport {
            read: Some(Box::new(NodeRead {
                finalized: Some(4021335),
                ..read(4021337, 24)
            })),
            identity: Some(Box::new(NodeIdentity {
                peer_id: Some("12D3KooWabc".into()),
                network_key: Some(true),
            })),
            keystore: Some(vec![entry("gran", "0x88dc"), entry("babe", "0xd435")]),
            ..NodeReport::default()
        }
    );
    assert_eq!(
        *stats.nodes.get("3node1").unwrap(),
        NodeReport {
            note: Some("not running".into()),
            keystore: Some(Vec::new()),
            ..NodeReport::default()
        }
    );
    assert_eq!(
        *stats.nodes.get("3node2").unwrap(),
        NodeReport {
            identity: Some(Box::default()),
            rpc_error: Some("RPC timed out".into()),
            rpc_code: Some("timeout".into()),
            ..NodeReport::default()
        }
    );
    assert_eq!(
        stats.nodes.get("3node2").unwrap().read(),
        &NodeRead::default()
    );
    assert_eq!(stats.error, None);
}

#[test]
fn a_summary_frame_decodes_to_the_fields_the_server_reads() {
    let Message::Summary(summary) = Message::parse(SUMMARY).unwrap() else {
        panic!("not summary");
    };
    let mut expected = agent_summary();
    let check = expected
        .payout_info
        .as_mut()
        .unwrap()
        .payout_checks
        .0
        .first_mut()
        .unwrap();
    check.1.chain_keys = Some(Box::new(ChainKeys {
        next_in_keystore: Some(true),
        epoch_slots: Some(3),
        ..ChainKeys::default()
    }));
    assert_eq!(summary, expected);
    assert_eq!(
        summary.check("3node0").unwrap().oldest_unclaimed_era(),
        Some(430)
    );
    assert_eq!(summary.check("nope"), None);
}

#[test]
fn odd_reports_are_read_as_far_as_they_make_sense() {
    let table = [
        (
            json!({"timestamp": 1}),
            StatsReport {
                timestamp: Some(1),
                ..StatsReport::default()
            },
        ),
        (
            json!({"timestamp": "1", "extra": [1]}),
            StatsReport::default(),
        ),
        (
            json!({"timestamp": 1.5, "host": 7, "containers": {}, "nodes": []}),
            StatsReport::default(),
        ),
        (
            json!({"timestamp": 2, "containers": [7, {"name": 5, "state": "running", "cpu_percent": "x"}]}),
            StatsReport {
                timestamp: Some(2),
                containers: Some(vec![
                    ContainerRow::default(),
                    ContainerRow {
                        state: Some("running".into()),
                        ..ContainerRow::default()
                    },
                ]),
                ..StatsReport::default()
            },
        ),
        (
            json!({"nodes": {"a": 7, "b": {"best": "high", "peers": 3, "roles": ["Full", 1],
                "rpc_error": 404, "keystore": [{"type": "gran"}, {"type": "babe", "public": "0x1"}, 3]}}}),
            StatsReport {
                nodes: [
                    ("a".into(), NodeReport::default()),
                    (
                        "b".into(),
                        NodeReport {
                            read: Some(Box::new(NodeRead {
                                peers: Some(3),
                                roles: Some(vec!["Full".into()]),
                                ..NodeRead::default()
                            })),
                            rpc_error: Some("404".into()),
                            keystore: Some(vec![entry("babe", "0x1")]),
                            ..NodeReport::default()
                        },
                    ),
                ]
                .into_iter()
                .collect(),
                ..StatsReport::default()
            },
        ),
    ];
    for (data, expected) in table {
        let frame = json!({"type": "stats", "data": data}).to_string();
        assert_eq!(
            Message::parse(&frame).unwrap(),
            Message::Stats(expected),
            "{frame}"
        );
    }
    let summary = json!({"type": "summary", "data": {"timestamp": 3, "era": 5, "payout_info": {
        "payout_checks": {"a": {"current_era": -1, "unclaimed_eras": [{"era": "x"}], "oldest_unclaimed_era": 9,
                                "chain_keys": "odd", "validator_account": 5}}}}});
    let Message::Summary(summary) = Message::parse(&summary.to_string()).unwrap() else {
        panic!("not summary");
    };
    assert_eq!(summary.era, None);
    assert_eq!(
        summary.check("a"),
        Some(&PayoutCheck {
            oldest_unclaimed_era: Some(9),
            ..PayoutCheck::default()
        })
    );
    assert_eq!(summary.check("a").unwrap().oldest_unclaimed_era(), Some(9));
    // Only a non-object is refused, as before (by the envelope).
    assert!(Message::parse(r#"{"type":"summary","data":[]}"#).is_err());
}

#[test]
fn a_report_reads_a_bounded_number_of_entries() {
    let rows: Vec<_> = (0..MAX_REPORT_ENTRIES + 10)
        .map(|n| json!({"name": format!("c{n}")}))
        .collect();
    let nodes: serde_json::Map<String, serde_json::Value> = (0..MAX_REPORT_ENTRIES + 10)
        .map(|n| (format!("c{n:04}"), json!({})))
        .collect();
    let frame =
        json!({"type": "stats", "data": {"timestamp": 1, "containers": rows, "nodes": nodes}});
    let Message::Stats(stats) = Message::parse(&frame.to_string()).unwrap() else {
        panic!("not stats");
    };
    assert_eq!(stats.rows().len(), MAX_REPORT_ENTRIES);
    assert_eq!(stats.nodes.len(), MAX_REPORT_ENTRIES);
    assert!(stats.nodes.get("c0000").is_some());
}

/// Heap bytes of a kept report, estimated: each allocation's size plus 16
/// bytes of allocator overhead; a B-tree entry at 1.5 × its slot size.
mod footprint {
    use super::super::*;
    use std::mem::size_of;

    const ALLOC: usize = 16;

    fn text(s: &Option<String>) -> usize {
        s.as_ref().map_or(0, |s| s.capacity() + ALLOC)
    }

    fn string(s: &str) -> usize {
        s.len() + ALLOC
    }

    fn node(n: &NodeReport) -> usize {
        let mut bytes = text(&n.rpc_error) + text(&n.rpc_code) + text(&n.note);
        if let Some(r) = &n.read {
            bytes += size_of::<NodeRead>() + ALLOC;
            bytes += text(&r.version) + text(&r.chain) + text(&r.source);
            if let Some(roles) = &r.roles {
                bytes += roles.capacity() * size_of::<String>() + ALLOC;
                bytes += roles.iter().map(|s| string(s)).sum::<usize>();
            }
        }
        if let Some(i) = &n.identity {
            bytes += size_of::<NodeIdentity>() + ALLOC + text(&i.peer_id);
        }
        if let Some(keys) = &n.keystore {
            bytes += keys.capacity() * size_of::<KeystoreEntry>() + ALLOC;
            for k in keys {
                if let Entry::Text { key_type, public } = &k.0 {
                    bytes += string(key_type) + string(public);
                }
            }
        }
        bytes
    }

    pub fn summary(s: &SummaryReport) -> usize {
        let mut bytes = size_of::<SummaryReport>() + ALLOC;
        let Some(info) = &s.payout_info else {
            return bytes;
        };
        let checks = &info.payout_checks.0;
        bytes += checks.capacity() * size_of::<(String, PayoutCheck)>() + ALLOC;
        for (name, c) in checks {
            bytes += string(name) + text(&c.validator_account) + text(&c.error);
            if let Some(eras) = &c.unclaimed_eras {
                bytes += eras.capacity() * size_of::<crate::chain::UnclaimedEra>() + ALLOC;
                bytes += eras
                    .iter()
                    .map(|e| e.pages.capacity() * 4 + ALLOC)
                    .sum::<usize>();
            }
            if let Some(k) = &c.chain_keys {
                bytes += size_of::<ChainKeys>() + ALLOC + text(&k.warning);
            }
        }
        bytes
    }

    pub fn stats(s: &StatsReport) -> usize {
        let mut bytes = size_of::<StatsReport>() + ALLOC + text(&s.error);
        bytes += text(&s.host.name);
        if let Some(rows) = &s.containers {
            bytes += rows.capacity() * size_of::<ContainerRow>() + ALLOC;
            for r in rows {
                bytes += text(&r.name) + text(&r.state);
            }
        }
        bytes += s.nodes.0.capacity() * size_of::<(String, NodeReport)>() + ALLOC;
        for (name, n) in s.nodes.iter() {
            bytes += string(name) + node(n);
        }
        bytes
    }
}

/// The hub keeps one report per agent, for up to 5,000 agents: decoded, a
/// typical host's (a validator whose keystore holds two sets of four keys,
/// and a stopped spare) must not cost more than the text it replaced (one
/// `Arc<str>`). [`STATS`], with a node of each odd shape and short keys,
/// is printed for comparison.
#[test]
fn a_kept_report_costs_no_more_than_its_text() {
    let mut v: serde_json::Value = serde_json::from_str(STATS).unwrap();
    let keys: Vec<_> = (0..8)
        .map(|n| {
            let key_type = ["gran", "babe", "imon", "audi"][n % 4];
            json!({"type": key_type, "public": format!("0x{n:064x}")})
        })
        .collect();
    let data = &mut v["data"];
    data["containers"].as_array_mut().unwrap().truncate(2);
    let nodes = data["nodes"].as_object_mut().unwrap();
    nodes.retain(|name, _| name == "3node0" || name == "3node1");
    nodes["3node0"]["keystore"] = json!(keys);
    nodes["3node0"]["peer_id"] = json!("12D3KooWSR7M5PQpGFDjBouNVWqqtGaNCjhsc6eWQ72nHyxCvJtm");
    nodes["3node1"]["keystore"] = json!(keys);
    let typical = v.to_string();
    let measure = |frame: &str| {
        let Message::Stats(stats) = Message::parse(frame).unwrap() else {
            panic!("not stats");
        };
        (frame.len() + ALLOC_TEXT, footprint::stats(&stats))
    };
    let (text, typed) = measure(STATS);
    eprintln!("kept stats, odd shapes: text {text} bytes, typed {typed} bytes");
    let (text, typed) = measure(&typical);
    eprintln!("kept stats, typical host: text {text} bytes, typed {typed} bytes");
    assert!(typed <= text, "typed {typed} > text {text}");
    // A validator's `chain_keys` names its next and queued keys (four
    // each); the short ones of SUMMARY are printed for comparison.
    let set: serde_json::Map<_, _> = ["gran", "babe", "imon", "audi"]
        .iter()
        .map(|t| (t.to_string(), json!(format!("0x{:064x}", t.len()))))
        .collect();
    let mut v: serde_json::Value = serde_json::from_str(SUMMARY).unwrap();
    let keys = &mut v["data"]["payout_info"]["payout_checks"]["3node0"]["chain_keys"];
    keys["next_keys"] = json!(set);
    keys["queued_keys"] = json!(set);
    for frame in [SUMMARY, &v.to_string()] {
        let Message::Summary(summary) = Message::parse(frame).unwrap() else {
            panic!("not summary");
        };
        let (text, typed) = (frame.len() + ALLOC_TEXT, footprint::summary(&summary));
        eprintln!("kept summary: text {text} bytes, typed {typed} bytes");
        if frame != SUMMARY {
            assert!(typed <= text, "typed {typed} > text {text}");
        }
    }
}

/// An `Arc<str>`'s one allocation: its two counts, and the allocator's 16.
const ALLOC_TEXT: usize = 32;
