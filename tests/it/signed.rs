//! Commands signed by operators (issue 10): an agent whose policy requires
//! 2 of 3 operator signatures for `stop`, against a raw server that signs
//! (or forges) them.
use crate::support::*;
use serde_json::{Value, json};
use warden::operator_keys::{self, CommandSignature};

/// [`operator_key_file`], loaded as the key pair it holds.
fn operator_key(dir: &TempDir, name: &str) -> (ring::signature::Ed25519KeyPair, String) {
    let (file, public) = operator_key_file(dir, name);
    let pair = operator_keys::load(&file).unwrap();
    assert_eq!(operator_keys::public_hex(&pair), public);
    (pair, public)
}

/// `frame` signed by `signers` for `agent_id`.
fn signed(mut frame: Value, agent_id: &str, signers: &[&ring::signature::Ed25519KeyPair]) -> Value {
    let data = &frame["data"];
    let payload = operator_keys::signing_payload(
        agent_id,
        data["id"].as_str().unwrap(),
        data["command"].as_str().unwrap(),
        data["target"].as_str().unwrap(),
        data["params"].as_object().unwrap(),
        data["timestamp"].as_i64().unwrap(),
    );
    let signatures: Vec<CommandSignature> = signers
        .iter()
        .map(|pair| operator_keys::sign(pair, &payload))
        .collect();
    frame["data"]["signatures"] = serde_json::to_value(signatures).unwrap();
    frame
}

#[test]
fn two_of_three_operators_must_sign_and_nothing_else_will_do() {
    let n0 = Node::start("agent-hardening-3node0");
    let n1 = Node::start("agent-hardening-3node1");
    let dir = TempDir::new("ah-signed");
    let (alice, alice_pub) = operator_key(&dir, "alice");
    let (bob, bob_pub) = operator_key(&dir, "bob");
    let (_carol, carol_pub) = operator_key(&dir, "carol");
    let (mallory, _) = operator_key(&dir, "mallory");
    let server = RawServer::new();
    let policy = json!({
        "allow": ["stop", "status"],
        "operators": {"alice": alice_pub, "bob": bob_pub, "carol": carol_pub},
        "require_signatures": {"stop": 2},
    });
    let agent = start_agent(&dir, &server, &[&n0.name, &n1.name], policy);
    let (mut ws, hello) = server.accept();
    let agent_id = hello["agent_id"].as_str().unwrap().to_string();
    let expect_refused = |ws: &mut Ws, id: &str| {
        let r = response_to(ws, id);
        assert_eq!(r["code"], "not_permitted", "{id}: {r}");
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .contains("needs 2 operator signature"),
            "{r}"
        );
    };

    // Unsigned, signed by one, by one plus an untrusted key, by one twice.
    send(&mut ws, command("u1", "stop", &n1.name, json!({})));
    expect_refused(&mut ws, "u1");
    let one = signed(
        command("u2", "stop", &n1.name, json!({})),
        &agent_id,
        &[&alice],
    );
    send(&mut ws, one);
    expect_refused(&mut ws, "u2");
    let untrusted = signed(
        command("u3", "stop", &n1.name, json!({})),
        &agent_id,
        &[&alice, &mallory],
    );
    send(&mut ws, untrusted);
    expect_refused(&mut ws, "u3");
    let twice = signed(
        command("u4", "stop", &n1.name, json!({})),
        &agent_id,
        &[&alice, &alice],
    );
    send(&mut ws, twice);
    expect_refused(&mut ws, "u4");
    // Signed for another agent.
    let elsewhere = signed(
        command("u5", "stop", &n1.name, json!({})),
        "another-agent",
        &[&alice, &bob],
    );
    send(&mut ws, elsewhere);
    expect_refused(&mut ws, "u5");
    assert_eq!(n1.state(), "running");

    // Two of three: it runs.
    let good = signed(
        command("s1", "stop", &n0.name, json!({})),
        &agent_id,
        &[&alice, &bob],
    );
    send(&mut ws, good.clone());
    let first = response_to(&mut ws, "s1");
    assert_eq!(first["status"], "completed", "{first}");
    assert_eq!(n0.state(), "exited");

    // Replayed with another target, under a new id: the signatures no
    // longer match.
    let mut moved = good.clone();
    moved["data"]["id"] = json!("s2");
    moved["data"]["target"] = json!(n1.name);
    send(&mut ws, moved);
    expect_refused(&mut ws, "s2");
    // Under its own id: the stored outcome, not a second run.
    let mut same_id = good;
    same_id["data"]["target"] = json!(n1.name);
    send(&mut ws, same_id);
    assert_eq!(response_to(&mut ws, "s1"), first);
    assert_eq!(n1.state(), "running");
    let audit = std::fs::read_to_string(agent.state_dir.join("audit.jsonl")).unwrap();
    let s1 = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["id"] == "s1")
        .unwrap();
    assert_eq!(s1["signed_by"], json!(["alice", "bob"]), "{s1}");
    // Commands the policy does not ask signatures of run as before.
    send(&mut ws, command("st", "status", &n1.name, json!({})));
    assert_eq!(response_to(&mut ws, "st")["status"], "completed");
}
