//! The catalog and param validation, as tables.
use super::*;
use serde_json::json;

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn names_round_trip_and_are_unique() {
    let wire: Vec<&str> = CommandName::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        wire,
        [
            "start",
            "stop",
            "restart",
            "logs",
            "status",
            "exec",
            "backup_keys",
            "restore_keys",
            "payout",
            "rotate_keys",
            "check_keys",
            "has_session_keys",
            "has_key",
            "find_validator",
        ]
    );
    for command in CommandName::ALL {
        assert_eq!(command.as_str().parse::<CommandName>(), Ok(command));
        assert_eq!(command.to_string(), command.as_str());
        let json = serde_json::to_value(command).unwrap();
        assert_eq!(json, Value::from(command.as_str()));
        assert_eq!(
            serde_json::from_value::<CommandName>(json).unwrap(),
            command
        );
    }
}

#[test]
fn unknown_names_are_refused() {
    for name in [
        "",
        "Start",
        "START",
        "backup-keys",
        "backupKeys",
        "start ",
        "nodes",
    ] {
        let err = name.parse::<CommandName>().unwrap_err();
        assert_eq!(err.code().as_str(), "unknown_command");
        assert_eq!(err.name, name);
        assert!(err.to_string().contains("find_validator"), "{err}");
    }
    assert!(serde_json::from_value::<CommandName>(json!("bogus")).is_err());
    assert!(serde_json::from_value::<CommandName>(json!(3)).is_err());
}

#[rustfmt::skip]
#[test]
fn classification_table() {
    // (command, allows all, mutating, read-only)
    let table = [
        (CommandName::Start, true, true, false),
        (CommandName::Stop, true, true, false),
        (CommandName::Restart, false, true, false),
        (CommandName::Logs, false, false, true),
        (CommandName::Status, true, false, true),
        (CommandName::Exec, false, true, false),
        (CommandName::BackupKeys, false, true, false),
        (CommandName::RestoreKeys, false, true, false),
        (CommandName::Payout, false, true, false),
        (CommandName::RotateKeys, false, true, false),
        (CommandName::CheckKeys, false, false, false),
        (CommandName::HasSessionKeys, false, false, true),
        (CommandName::HasKey, false, false, true),
        (CommandName::FindValidator, false, false, true),
    ];
    assert_eq!(table.len(), CommandName::ALL.len());
    for (command, all, mutating, read_only) in table {
        assert_eq!(command.allows_all_target(), all, "{command}");
        assert_eq!(command.is_mutating(), mutating, "{command}");
        assert_eq!(command.is_read_only(), read_only, "{command}");
    }
}

#[test]
fn params_decide_whether_check_keys_mutates() {
    let check = |rotate| Params::CheckKeys {
        rotate_to_check: rotate,
        public_keys: None,
    };
    assert!(check(true).is_mutating());
    assert!(!check(false).is_mutating());
    assert!(
        Params::Exec {
            command: "ls".into(),
            argv: vec!["ls".into()],
        }
        .is_mutating()
    );
    assert!(!Params::Logs { lines: 5 }.is_mutating());
    assert!(Params::Start.is_mutating());
}

const KEY: &str = "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";

/// (command, params in, canonical params out). Defaults are filled in and
/// hex is lower-cased; validating the output again gives the same output.
#[rustfmt::skip]
#[test]
fn accepted_params_table() {
    let table: Vec<(CommandName, Value, Value)> = vec![
        (CommandName::Start, json!({}), json!({})),
        (CommandName::Stop, json!({}), json!({})),
        (CommandName::Restart, json!({}), json!({})),
        (CommandName::Status, json!({}), json!({})),
        (CommandName::BackupKeys, json!({}), json!({})),
        (CommandName::Payout, json!({}), json!({})),
        (CommandName::RotateKeys, json!({}), json!({})),
        (CommandName::Logs, json!({}), json!({"lines": 50})),
        (CommandName::Logs, json!({"lines": 1}), json!({"lines": 1})),
        (CommandName::Logs, json!({"lines": 100}), json!({"lines": 100})),
        (CommandName::Logs, json!({"lines": 10000}), json!({"lines": 10000})),
        (CommandName::Exec, json!({"command": "ls -la /data"}), json!({"command": "ls -la /data"})),
        (CommandName::Exec, json!({"command": "env FOO=bar sh -c 'echo \"$FOO\"'"}), json!({"command": "env FOO=bar sh -c 'echo \"$FOO\"'"})),
        (CommandName::RestoreKeys, json!({"backup_file": "3node0-keys-20250108-1430.tar.gz"}), json!({"backup_file": "3node0-keys-20250108-1430.tar.gz"})),
        (CommandName::CheckKeys, json!({}), json!({"rotate_to_check": false})),
        (CommandName::CheckKeys, json!({"rotate_to_check": true}), json!({"rotate_to_check": true})),
        (
            CommandName::CheckKeys,
            json!({"public_keys": {"babe": "0xAB12", "gran": "0x00ff", "imon": KEY}}),
            json!({"rotate_to_check": false,
                   "public_keys": {"babe": "0xab12", "gran": "0x00ff", "imon": KEY}}),
        ),
        (
            CommandName::CheckKeys,
            json!({"public_keys": {"aura": "0x01", "audi": "0x02", "beef": "0x03", "k3y2": "0x04"}}),
            json!({"rotate_to_check": false,
                   "public_keys": {"aura": "0x01", "audi": "0x02", "beef": "0x03", "k3y2": "0x04"}}),
        ),
        (CommandName::HasSessionKeys, json!({}), json!({"session_keys": ""})),
        (CommandName::HasSessionKeys, json!({"session_keys": ""}), json!({"session_keys": ""})),
        (CommandName::HasSessionKeys, json!({"session_keys": "0xDEADbeef"}), json!({"session_keys": "0xdeadbeef"})),
        (CommandName::HasKey, json!({"public_key": KEY}), json!({"public_key": KEY, "key_type": "aura"})),
        (CommandName::HasKey, json!({"public_key": "0xAA", "key_type": "gran"}), json!({"public_key": "0xaa", "key_type": "gran"})),
        (CommandName::FindValidator, json!({}), json!({"deep_search": true})),
        (CommandName::FindValidator, json!({"session_keys": "", "deep_search": false}), json!({"deep_search": false})),
        (CommandName::FindValidator, json!({"session_keys": "0x0102"}), json!({"session_keys": "0x0102", "deep_search": true})),
    ];
    for (command, input, expected) in table {
        let params = validate_params(command, &object(input.clone()))
            .unwrap_or_else(|e| panic!("{command} {input}: {e}"));
        assert_eq!(params.command(), command);
        assert_eq!(
            Value::Object(params.to_json()),
            expected,
            "{command} {input}"
        );
        let again = validate_params(command, &params.to_json()).unwrap();
        assert_eq!(again, params, "{command}: canonical form is a fixed point");
    }
}

#[test]
fn typed_params_carry_the_values() {
    let params = validate_params(CommandName::HasKey, &object(json!({"public_key": "0xAB"})));
    assert_eq!(
        params,
        Ok(Params::HasKey {
            public_key: "0xab".into(),
            key_type: "aura".into()
        })
    );
    let params = validate_params(CommandName::Logs, &Map::new());
    assert_eq!(params, Ok(Params::Logs { lines: 50 }));
}

/// (command, params, the key the error names, a fragment of its message).
#[rustfmt::skip]
fn many_public_keys(n: usize) -> Value {
    let map: Map<String, Value> = (0..n)
        .map(|i| (format!("k{i:03}"), Value::from("0xab")))
        .collect();
    Value::Object(map)
}

#[test]
fn params_at_their_caps_pass() {
    let at_cap = [
        (
            CommandName::CheckKeys,
            json!({"public_keys": many_public_keys(MAX_PUBLIC_KEYS)}),
        ),
        (
            CommandName::HasKey,
            json!({"public_key": format!("0x{}", "ab".repeat(MAX_HEX_DIGITS / 2))}),
        ),
        (
            CommandName::Exec,
            json!({"command": "x".repeat(MAX_EXEC_COMMAND_BYTES)}),
        ),
    ];
    for (command, input) in at_cap {
        assert!(
            validate_params(command, &object(input.clone())).is_ok(),
            "{command} {input}"
        );
    }
}

#[test]
fn refused_params_table() {
    let table: Vec<(CommandName, Value, &str, &str)> = vec![
        // Unknown keys, also on commands without params.
        (
            CommandName::Start,
            json!({"force": true}),
            "force",
            "start takes no params, got \"force\"",
        ),
        (
            CommandName::Status,
            json!({"lines": 5}),
            "lines",
            "status takes no params",
        ),
        (
            CommandName::Logs,
            json!({"line": 100}),
            "line",
            "logs has no param \"line\"; it takes lines",
        ),
        (
            CommandName::Logs,
            json!({"lines": 5, "follow": true}),
            "follow",
            "it takes lines",
        ),
        (
            CommandName::CheckKeys,
            json!({"rotate_to_chek": true}),
            "rotate_to_chek",
            "it takes rotate_to_check, public_keys",
        ),
        // lines: type and range.
        (
            CommandName::Logs,
            json!({"lines": 0}),
            "lines",
            "lines must be an integer from 1 to 10000, got 0",
        ),
        (CommandName::Logs, json!({"lines": -5}), "lines", "got -5"),
        (
            CommandName::Logs,
            json!({"lines": 10001}),
            "lines",
            "got 10001",
        ),
        (
            CommandName::Logs,
            json!({"lines": 20000}),
            "lines",
            "got 20000",
        ),
        (
            CommandName::Logs,
            json!({"lines": u64::MAX}),
            "lines",
            "got 18446744073709551615",
        ),
        (
            CommandName::Logs,
            json!({"lines": 50.0}),
            "lines",
            "got 50.0",
        ),
        (
            CommandName::Logs,
            json!({"lines": "50"}),
            "lines",
            "got \"50\"",
        ),
        (
            CommandName::Logs,
            json!({"lines": "010"}),
            "lines",
            "got \"010\"",
        ),
        (
            CommandName::Logs,
            json!({"lines": null}),
            "lines",
            "got null",
        ),
        (
            CommandName::Logs,
            json!({"lines": true}),
            "lines",
            "got true",
        ),
        // exec command.
        (
            CommandName::Exec,
            json!({}),
            "command",
            "exec needs command",
        ),
        (
            CommandName::Exec,
            json!({"command": ""}),
            "command",
            "command must be a non-empty",
        ),
        (
            CommandName::Exec,
            json!({"command": "   "}),
            "command",
            "command must be",
        ),
        (
            CommandName::Exec,
            json!({"command": "echo 'unbalanced"}),
            "command",
            "command must be",
        ),
        (
            CommandName::Exec,
            json!({"command": "echo a\u{0}b"}),
            "command",
            "command must be",
        ),
        (
            CommandName::Exec,
            json!({"command": ["ls", "-la"]}),
            "command",
            "got [\"ls\",\"-la\"]",
        ),
        (CommandName::Exec, json!({"command": 5}), "command", "got 5"),
        // restore_keys backup_file: a plain file name.
        (
            CommandName::RestoreKeys,
            json!({}),
            "backup_file",
            "restore_keys needs backup_file",
        ),
        (
            CommandName::RestoreKeys,
            json!({"backup_file": ""}),
            "backup_file",
            "backup_file must be",
        ),
        (
            CommandName::RestoreKeys,
            json!({"backup_file": "../etc/passwd"}),
            "backup_file",
            "no '/'",
        ),
        (
            CommandName::RestoreKeys,
            json!({"backup_file": "a/b.tar.gz"}),
            "backup_file",
            "backup_file",
        ),
        (
            CommandName::RestoreKeys,
            json!({"backup_file": "/abs.tar.gz"}),
            "backup_file",
            "backup_file",
        ),
        (
            CommandName::RestoreKeys,
            json!({"backup_file": "a\\b.tar.gz"}),
            "backup_file",
            "backup_file",
        ),
        (
            CommandName::RestoreKeys,
            json!({"backup_file": ".."}),
            "backup_file",
            "backup_file",
        ),
        (
            CommandName::RestoreKeys,
            json!({"backup_file": "x..tar.gz"}),
            "backup_file",
            "backup_file",
        ),
        (
            CommandName::RestoreKeys,
            json!({"backup_file": ".hidden"}),
            "backup_file",
            "backup_file",
        ),
        (
            CommandName::RestoreKeys,
            json!({"backup_file": "a\u{0}b"}),
            "backup_file",
            "backup_file",
        ),
        (
            CommandName::RestoreKeys,
            json!({"backup_file": "a\nb"}),
            "backup_file",
            "backup_file",
        ),
        (
            CommandName::RestoreKeys,
            json!({"backup_file": "x".repeat(256)}),
            "backup_file",
            "…",
        ),
        (
            CommandName::RestoreKeys,
            json!({"backup_file": 20250108}),
            "backup_file",
            "got 20250108",
        ),
        // check_keys.
        (
            CommandName::CheckKeys,
            json!({"rotate_to_check": "true"}),
            "rotate_to_check",
            "must be true or false, got \"true\"",
        ),
        (
            CommandName::CheckKeys,
            json!({"rotate_to_check": 1}),
            "rotate_to_check",
            "got 1",
        ),
        (
            CommandName::CheckKeys,
            json!({"public_keys": "0xab"}),
            "public_keys",
            "public_keys must be a map",
        ),
        (
            CommandName::CheckKeys,
            json!({"public_keys": {}}),
            "public_keys",
            "public_keys must be a map",
        ),
        (
            CommandName::CheckKeys,
            json!({"public_keys": {"babe": "ab"}}),
            "public_keys.babe",
            "public_keys.babe must be a hex string",
        ),
        (
            CommandName::CheckKeys,
            json!({"public_keys": {"babe": 12}}),
            "public_keys.babe",
            "got 12",
        ),
        (
            CommandName::CheckKeys,
            json!({"public_keys": {"BABE": "0xab"}}),
            "public_keys.BABE",
            "4 lowercase",
        ),
        (
            CommandName::CheckKeys,
            json!({"public_keys": {"bab": "0xab"}}),
            "public_keys.bab",
            "4 lowercase",
        ),
        (
            CommandName::CheckKeys,
            json!({"public_keys": {"babes": "0xab"}}),
            "public_keys.babes",
            "4 lowercase",
        ),
        (
            CommandName::CheckKeys,
            json!({"public_keys": {"bäb": "0xab"}}),
            "public_keys.bäb",
            "4 lowercase",
        ),
        // Hex strings.
        (
            CommandName::HasSessionKeys,
            json!({"session_keys": "0x"}),
            "session_keys",
            "or empty for the last known keys",
        ),
        (
            CommandName::HasSessionKeys,
            json!({"session_keys": "0xabc"}),
            "session_keys",
            "got \"0xabc\"",
        ),
        (
            CommandName::HasSessionKeys,
            json!({"session_keys": "abcd"}),
            "session_keys",
            "session_keys must be",
        ),
        (
            CommandName::HasSessionKeys,
            json!({"session_keys": "0Xabcd"}),
            "session_keys",
            "session_keys must be",
        ),
        (
            CommandName::HasSessionKeys,
            json!({"session_keys": "0xzz"}),
            "session_keys",
            "session_keys must be",
        ),
        (
            CommandName::HasSessionKeys,
            json!({"session_keys": "0x ab"}),
            "session_keys",
            "session_keys must be",
        ),
        (
            CommandName::HasSessionKeys,
            json!({"session_keys": null}),
            "session_keys",
            "got null",
        ),
        (
            CommandName::HasKey,
            json!({}),
            "public_key",
            "has_key needs public_key: a hex string",
        ),
        (
            CommandName::HasKey,
            json!({"key_type": "aura"}),
            "public_key",
            "has_key needs public_key",
        ),
        (
            CommandName::HasKey,
            json!({"public_key": ""}),
            "public_key",
            "public_key must be a hex string",
        ),
        (
            CommandName::HasKey,
            json!({"public_key": "0x"}),
            "public_key",
            "public_key must be",
        ),
        (
            CommandName::HasKey,
            json!({"public_key": "0x1"}),
            "public_key",
            "public_key must be",
        ),
        (
            CommandName::HasKey,
            json!({"public_key": "0xab", "key_type": "Aura"}),
            "key_type",
            "key_type must be 4 lowercase",
        ),
        (
            CommandName::HasKey,
            json!({"public_key": "0xab", "key_type": "auras"}),
            "key_type",
            "key_type",
        ),
        (
            CommandName::HasKey,
            json!({"public_key": "0xab", "key_type": ""}),
            "key_type",
            "key_type",
        ),
        (
            CommandName::HasKey,
            json!({"public_key": "0xab", "key_type": 1234}),
            "key_type",
            "got 1234",
        ),
        (
            CommandName::FindValidator,
            json!({"session_keys": "0x1"}),
            "session_keys",
            "session_keys must be",
        ),
        (
            CommandName::FindValidator,
            json!({"deep_search": "yes"}),
            "deep_search",
            "deep_search must be true or false",
        ),
        // Caps: one frame must not buy unbounded work.
        (
            CommandName::CheckKeys,
            json!({"public_keys": many_public_keys(MAX_PUBLIC_KEYS + 1)}),
            "public_keys",
            "with 1 to 8 entries",
        ),
        (
            CommandName::HasKey,
            json!({"public_key": format!("0x{}", "ab".repeat(MAX_HEX_DIGITS / 2 + 1))}),
            "public_key",
            "at most 1024",
        ),
        (
            CommandName::HasSessionKeys,
            json!({"session_keys": format!("0x{}", "ab".repeat(MAX_HEX_DIGITS / 2 + 1))}),
            "session_keys",
            "at most 1024",
        ),
        (
            CommandName::Exec,
            json!({"command": "x".repeat(MAX_EXEC_COMMAND_BYTES + 1)}),
            "command",
            "at most 65536 bytes",
        ),
    ];
    for (command, input, key, fragment) in table {
        let err = validate_params(command, &object(input.clone()))
            .expect_err(&format!("{command} {input} should be refused"));
        assert_eq!(err.code().as_str(), "invalid_params");
        assert_eq!(err.key(), key, "{command} {input}: {err}");
        let message = err.to_string();
        assert!(
            message.contains(fragment),
            "{command} {input}: {message:?} lacks {fragment:?}"
        );
        assert!(!message.ends_with('.'), "{message}");
        assert!(message.chars().count() < 300, "{message}");
    }
}

#[test]
fn long_values_are_shortened_in_messages() {
    let long = "x".repeat(60_000);
    let err =
        validate_params(CommandName::HasKey, &object(json!({"public_key": long}))).unwrap_err();
    assert!(err.to_string().len() < 200, "{err}");
    assert!(err.to_string().ends_with('…'), "{err}");
}

#[rustfmt::skip]
#[test]
fn split_command_matches_a_posix_shell() {
    let table: &[(&str, &[&str])] = &[
        ("ls", &["ls"]),
        ("  ls   -la  ", &["ls", "-la"]),
        ("env FOO=bar printenv FOO", &["env", "FOO=bar", "printenv", "FOO"]),
        ("echo 'a b' \"c d\" e\\ f", &["echo", "a b", "c d", "e f"]),
        ("echo \"$HOME\" `x`", &["echo", "$HOME", "`x`"]),
        ("echo a;rm -rf /", &["echo", "a;rm", "-rf", "/"]),
    ];
    for (line, argv) in table {
        assert_eq!(split_command(line).unwrap(), *argv, "{line}");
    }
    for bad in ["", " ", "echo 'x", "echo \"x", "echo x\\", "a\u{0}"] {
        assert!(split_command(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn params_specs_cover_every_accepted_key() {
    // Every key a spec names is accepted by validate_params (given a valid
    // value), and every required key is reported missing when absent.
    for command in CommandName::ALL {
        for spec in command.params() {
            if spec.required {
                let err = validate_params(command, &Map::new()).unwrap_err();
                assert!(
                    matches!(err, ParamError::Missing { .. }),
                    "{command}: {err}"
                );
            }
            let err = validate_params(command, &object(json!({ spec.name: {"x": []} })));
            assert!(
                !matches!(err, Err(ParamError::Unknown { .. })),
                "{command} {}",
                spec.name
            );
        }
    }
}
