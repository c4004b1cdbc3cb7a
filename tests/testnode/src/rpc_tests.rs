use super::*;
use crate::cli::Config;
use std::path::PathBuf;

struct TempNode {
    node: Node,
    base: PathBuf,
}

impl Drop for TempNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn temp_node(tag: &str, validator: bool) -> TempNode {
    let base = std::env::temp_dir().join(format!("testnode-rpc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let node = Node::open(Config {
        base_path: base.clone(),
        validator,
        ..Config::default()
    })
    .unwrap();
    TempNode { node, base }
}

fn ctx<'a>(node: &'a Node, control: &str, deny_unsafe: bool) -> CallContext<'a> {
    // Genesis is "now" for a fresh node; 100 blocks later makes hashes to look up.
    let now_ms = node.chain.block_time_of(node.starting_block + 100);
    CallContext {
        node,
        control: Control::parse(control).unwrap(),
        deny_unsafe,
        now_ms,
    }
}

fn ask(ctx: &CallContext, request: &str) -> Value {
    serde_json::from_str(&handle_body(ctx, request.as_bytes()).unwrap()).unwrap()
}

fn call(ctx: &CallContext, method: &str, params: Value) -> Value {
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    ask(ctx, &request.to_string())
}

#[test]
fn envelope_keeps_id_and_field_order() {
    assert_eq!(
        envelope(&json!(7), Ok("true".to_string())),
        r#"{"jsonrpc":"2.0","id":7,"result":true}"#
    );
    assert_eq!(
        envelope(&json!("a"), Err(RpcError::method_not_found())),
        r#"{"jsonrpc":"2.0","id":"a","error":{"code":-32601,"message":"Method not found"}}"#
    );
}

#[test]
fn system_methods() {
    let t = temp_node("system", true);
    let c = ctx(&t.node, r#"{"peers": 5, "syncing": true}"#, false);
    assert_eq!(
        call(&c, "system_health", json!([]))["result"],
        json!({"peers": 5, "isSyncing": true, "shouldHavePeers": true})
    );
    assert_eq!(
        call(&c, "system_nodeRoles", json!([]))["result"],
        json!(["Authority"])
    );
    assert_eq!(
        call(&c, "system_properties", json!([]))["result"],
        json!({"ss58Format": 42, "tokenDecimals": 18, "tokenSymbol": "CTC"})
    );
    let sync = &call(&c, "system_syncState", json!([]))["result"];
    assert_eq!(sync["currentBlock"], json!(t.node.starting_block + 100));
    assert_eq!(
        sync["highestBlock"],
        json!(t.node.starting_block + 100 + node::SYNC_GAP)
    );
    assert_eq!(
        call(&c, "system_version", json!([]))["result"],
        json!(node::IMPL_VERSION)
    );
    assert_eq!(
        call(&c, "system_chain", json!([]))["result"],
        json!("Creditcoin3")
    );
}

#[test]
fn chain_methods() {
    let t = temp_node("chain", false);
    let c = ctx(&t.node, "{}", false);
    let best = t.node.starting_block + 100;
    let header = &call(&c, "chain_getHeader", json!([]))["result"];
    assert_eq!(header["number"], json!(format!("0x{best:x}")));
    let hash_of = |n: u64| json!(hex::encode_prefixed(&t.node.chain.block_hash(n)));
    assert_eq!(
        call(&c, "chain_getBlockHash", json!([]))["result"],
        hash_of(best)
    );
    assert_eq!(
        call(&c, "chain_getBlockHash", json!([3]))["result"],
        hash_of(3)
    );
    assert_eq!(
        call(&c, "chain_getBlockHash", json!(["0x3"]))["result"],
        hash_of(3)
    );
    assert_eq!(
        call(&c, "chain_getBlockHash", json!([[1, 2]]))["result"],
        json!([hash_of(1), hash_of(2)])
    );
    assert_eq!(
        call(&c, "chain_getBlockHash", json!([best + 1]))["result"],
        Value::Null
    );
    assert_eq!(
        call(&c, "chain_getFinalizedHead", json!([]))["result"],
        hash_of(best - 2)
    );
    let by_hash = &call(&c, "chain_getHeader", json!([hash_of(5)]))["result"];
    assert_eq!(by_hash["number"], json!("0x5"));
    assert_eq!(by_hash["parentHash"], hash_of(4));
    let unknown = call(
        &c,
        "chain_getHeader",
        json!([format!("0x{}", "11".repeat(32))]),
    );
    assert_eq!(unknown["result"], Value::Null);
    assert_eq!(
        call(&c, "chain_getHeader", json!(["0x12"]))["error"]["code"],
        json!(-32602)
    );
}

#[test]
fn storage_comes_from_the_control_file() {
    let t = temp_node("storage", false);
    let c = ctx(
        &t.node,
        r#"{"storage": {"0xAA01": "0x0102", "0xaa02": "0x03", "0xbb": "0x04"}}"#,
        false,
    );
    assert_eq!(
        call(&c, "state_getStorage", json!(["0xaa01"]))["result"],
        json!("0x0102")
    );
    assert_eq!(
        call(&c, "state_getStorage", json!(["0xaa03"]))["result"],
        Value::Null
    );
    let best_hash = hex::encode_prefixed(&t.node.chain.block_hash(t.node.starting_block + 100));
    assert_eq!(
        call(
            &c,
            "state_getStorage",
            json!({"key": "0xaa02", "hash": best_hash})
        )["result"],
        json!("0x03")
    );
    let set = &call(
        &c,
        "state_queryStorageAt",
        json!([["0xaa01", "0xAA03"], best_hash]),
    )["result"][0];
    assert_eq!(set["block"], json!(best_hash));
    assert_eq!(
        set["changes"],
        json!([["0xaa01", "0x0102"], ["0xaa03", null]])
    );
    assert_eq!(
        call(&c, "state_getKeysPaged", json!(["0xaa", 10]))["result"],
        json!(["0xaa01", "0xaa02"])
    );
    assert_eq!(
        call(&c, "state_getKeysPaged", json!(["0xaa", 10, "0xaa01"]))["result"],
        json!(["0xaa02"])
    );
    assert_eq!(
        call(&c, "state_getKeysPaged", json!(["0x", 1001]))["error"]["code"],
        json!(4002)
    );
    let unknown = call(
        &c,
        "state_getStorage",
        json!(["0xaa01", format!("0x{}", "11".repeat(32))]),
    );
    assert_eq!(unknown["error"]["code"], json!(4003));
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Client error: UnknownBlock: ")
    );
}

#[test]
fn old_state_is_discarded() {
    let t = temp_node("pruned", false);
    let mut c = ctx(&t.node, "{}", false);
    c.now_ms = t.node.chain.block_time_of(1000);
    let old = hex::encode_prefixed(&t.node.chain.block_hash(100));
    let answer = call(&c, "state_getStorage", json!(["0x00", old]));
    assert_eq!(answer["error"]["code"], json!(4003));
    assert_eq!(
        answer["error"]["message"],
        json!(format!(
            "Client error: UnknownBlock: State already discarded for {old}"
        ))
    );
    let recent = hex::encode_prefixed(&t.node.chain.block_hash(900));
    assert_eq!(
        call(&c, "state_getStorage", json!(["0x00", recent]))["result"],
        Value::Null
    );
}

#[test]
fn rotate_then_check_session_keys() {
    let t = temp_node("author", true);
    let c = ctx(&t.node, "{}", false);
    let keys = call(&c, "author_rotateKeys", json!([]))["result"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(keys.len(), 2 + 192);
    assert_eq!(
        call(&c, "author_hasSessionKeys", json!([keys]))["result"],
        json!(true)
    );
    let babe = format!("0x{}", &keys[2 + 64..2 + 128]);
    assert_eq!(
        call(&c, "author_hasKey", json!([babe, "babe"]))["result"],
        json!(true)
    );
    assert_eq!(
        call(&c, "author_hasKey", json!([babe, "gran"]))["result"],
        json!(false)
    );
    assert_eq!(
        call(&c, "author_hasKey", json!([babe, "aura"]))["result"],
        json!(false)
    );
    let other = format!("0x{}", "00".repeat(96));
    assert_eq!(
        call(&c, "author_hasSessionKeys", json!([other]))["result"],
        json!(false)
    );
    let short = call(&c, "author_hasSessionKeys", json!(["0x1234"]));
    assert_eq!(
        short["error"],
        json!({"code": 1040, "message": "Session keys are not encoded correctly"})
    );
    assert_eq!(
        call(&c, "author_hasSessionKeys", json!(["0xzz"]))["error"]["code"],
        json!(-32602)
    );
    assert_eq!(
        call(&c, "author_hasKey", json!([babe, "bab"]))["error"]["code"],
        json!(1040)
    );
    assert_eq!(
        call(&c, "author_insertKey", json!(["aura", "//Alice", "0x0101"]))["result"],
        Value::Null
    );
    assert_eq!(
        call(&c, "author_hasKey", json!(["0x0101", "aura"]))["result"],
        json!(true)
    );
}

#[test]
fn unsafe_methods_are_denied_with_the_real_message() {
    let t = temp_node("deny", true);
    let c = ctx(&t.node, "{}", true);
    for (method, params) in [
        ("author_rotateKeys", json!([])),
        (
            "author_hasSessionKeys",
            json!([format!("0x{}", "00".repeat(96))]),
        ),
        ("author_hasKey", json!(["0x00", "babe"])),
    ] {
        assert_eq!(
            call(&c, method, params)["error"],
            json!({"code": -32601, "message": "RPC call is unsafe to be called externally"}),
            "{method}"
        );
    }
    assert_eq!(
        std::fs::read_dir(t.node.config.chain_dir().join("keystore"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        call(&c, "system_health", json!([]))["result"]["peers"],
        json!(3)
    );
}

#[test]
fn envelope_errors_and_batches() {
    let t = temp_node("envelope", false);
    let c = ctx(&t.node, "{}", false);
    assert_eq!(ask(&c, "{not json")["error"]["code"], json!(-32700));
    assert_eq!(ask(&c, "[]")["error"]["code"], json!(-32600));
    assert_eq!(
        ask(&c, r#"{"id": 1, "method": "system_name"}"#)["error"]["code"],
        json!(-32600)
    );
    assert_eq!(ask(&c, r#"{"jsonrpc": "2.0", "id": 4}"#)["id"], json!(4));
    let unknown = ask(&c, r#"{"jsonrpc": "2.0", "id": 2, "method": "foo_bar"}"#);
    assert_eq!(
        unknown["error"],
        json!({"code": -32601, "message": "Method not found"})
    );
    let batch = ask(
        &c,
        r#"[{"jsonrpc":"2.0","id":1,"method":"system_name"},
            {"jsonrpc":"2.0","method":"system_name"},
            {"jsonrpc":"2.0","id":"x","method":"system_chainType"}]"#,
    );
    assert_eq!(
        batch,
        json!([
            {"jsonrpc": "2.0", "id": 1, "result": node::IMPL_NAME},
            {"jsonrpc": "2.0", "id": "x", "result": "Live"},
        ])
    );
    assert_eq!(
        handle_body(&c, br#"{"jsonrpc":"2.0","method":"system_name"}"#),
        None
    );
}
