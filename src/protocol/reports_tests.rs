//! Literal-JSON tests of `stats` and `summary`, both ways: what our agent
//! sends is decoded and encoded again byte for byte, and odd reports are
//! read as far as they make sense (never refused).
use crate::protocol::Message;

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
    for frame in [STATS, STATS_DOCKER_ERROR, SUMMARY] {
        let m = Message::parse(frame).unwrap();
        assert_eq!(m.to_json(), frame);
    }
}
