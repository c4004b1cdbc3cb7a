use super::*;
use serde_json::json;

fn params(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("warden-opkeys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn the_payload_bytes_are_pinned() {
    // Keys in any order, nested too, come out sorted; no whitespace.
    let p = params(json!({"z": 1, "public_keys": {"gran": "0x02", "babe": "0x01"}, "a": "é\"\n"}));
    let payload = signing_payload("host-1", "c17-3", "check_keys", "3node0", &p, 1733312345678);
    assert_eq!(
        String::from_utf8(payload).unwrap(),
        r#"["warden-command-v1","host-1","c17-3","check_keys","3node0",{"a":"é\"\n","public_keys":{"babe":"0x01","gran":"0x02"},"z":1},1733312345678]"#
    );
    let empty = signing_payload("a", "b", "stop", "all", &Map::new(), -1);
    assert_eq!(
        String::from_utf8(empty).unwrap(),
        r#"["warden-command-v1","a","b","stop","all",{},-1]"#
    );
}

#[test]
fn a_new_key_file_is_private_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let path = temp("alice.key");
    let public = generate(&path).unwrap();
    assert!(parse_hex(&public, 32).is_some(), "{public}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pair = load(&path).unwrap();
    assert_eq!(public_hex(&pair), public);
    let again = generate(&path).unwrap_err().to_string();
    assert!(again.contains("never overwritten"), "{again}");
    let junk = temp("junk2.key");
    std::fs::write(&junk, b"not a key").unwrap();
    let error = load(&junk).err().unwrap().to_string();
    assert!(error.contains("not an operator key"), "{error}");
}

fn pair() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

#[test]
fn only_valid_signatures_by_distinct_trusted_keys_count() {
    let (alice, bob, carol, mallory) = (pair(), pair(), pair(), pair());
    let trust = Requirement {
        operators: [("alice", &alice), ("bob", &bob), ("carol", &carol)]
            .into_iter()
            .map(|(name, p)| (name.to_string(), p.public_key().as_ref().to_vec()))
            .collect(),
    };
    let p = params(json!({"backup_file": "3node0-keys-20250108-1430.tar.gz"}));
    let payload = signing_payload("h1", "c1", "restore_keys", "3node0", &p, 5);
    let other_target = signing_payload("h1", "c1", "restore_keys", "3node1", &p, 5);
    let signed = |who: &Ed25519KeyPair, what: &[u8]| sign(who, what);

    let two = [signed(&alice, &payload), signed(&bob, &payload)];
    assert_eq!(trust.valid_signers(&payload, &two), ["alice", "bob"]);
    // The same signatures on a command with another target verify for none.
    assert!(trust.valid_signers(&other_target, &two).is_empty());
    // A key not trusted, a repeat, a signature over something else, junk.
    let mixed = [
        signed(&mallory, &payload),
        signed(&alice, &payload),
        signed(&alice, &payload),
        signed(&carol, &other_target),
        CommandSignature {
            key: "0xzz".into(),
            sig: "0x00".into(),
        },
    ];
    assert_eq!(trust.valid_signers(&payload, &mixed), ["alice"]);
    // A trusted key claimed with someone else's signature.
    let forged = [CommandSignature {
        key: public_hex(&bob),
        sig: signed(&mallory, &payload).sig,
    }];
    assert!(trust.valid_signers(&payload, &forged).is_empty());
}
