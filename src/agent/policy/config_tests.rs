//! Loading: every refused policy file names its JSON path; edge cases that load.
use super::tests::{argv, c, load_error, policy};
use super::*;
use serde::Deserialize;
use serde_json::json;

#[test]
fn load_errors() {
    let known = "known: start, stop, restart, logs, status, exec, backup_keys, restore_keys, payout, rotate_keys, check_keys, has_session_keys, has_key, find_validator";
    let table: Vec<(Value, String)> = vec![
        // unknown keys, at every level
        (
            json!({"alow": ["stop"]}),
            "policy: unknown key \"alow\" (known: containers, allow, exec, payout, max_command_age_s, operators, require_signatures)".into(),
        ),
        (
            json!({"allow": [{"command": "stop", "containers": ["3node1"], "except": []}]}),
            "policy.allow[0]: unknown key \"except\" (known: command, containers)".into(),
        ),
        (
            json!({"exec": {"programs": [], "shell": true}}),
            "policy.exec: unknown key \"shell\" (known: programs)".into(),
        ),
        (
            json!({"exec": {"programs": [{"program": "ls"}, {"program": "ls", "arg": []}]}}),
            "policy.exec.programs[1]: unknown key \"arg\" (known: program, args, unsafe_any_args)".into(),
        ),
        (
            json!({"payout": {"script": "/p", "timeout": 5}}),
            "policy.payout: unknown key \"timeout\" (known: script, timeout_s)".into(),
        ),
        // wrong types
        (json!([]), "policy: expected an object, found an array".into()),
        (json!(null), "policy: expected an object, found null".into()),
        (
            json!({"containers": "3node*"}),
            "policy.containers: expected an array, found a string".into(),
        ),
        (
            json!({"containers": ["3node*", 7]}),
            "policy.containers[1]: expected a string, found a number".into(),
        ),
        (
            json!({"allow": ["stop", 3]}),
            "policy.allow[1]: expected a command name or an object {\"command\", \"containers\"}, found a number".into(),
        ),
        (
            json!({"allow": [{"command": ["stop"], "containers": []}]}),
            "policy.allow[0].command: expected a string, found an array".into(),
        ),
        (
            json!({"allow": [{"command": "stop"}]}),
            "policy.allow[0]: missing key \"containers\"".into(),
        ),
        (
            json!({"allow": [{"containers": ["x*"]}]}),
            "policy.allow[0]: missing key \"command\"".into(),
        ),
        (
            json!({"exec": {"programs": [{"args": []}]}}),
            "policy.exec.programs[0]: missing key \"program\"".into(),
        ),
        (
            json!({"exec": {"programs": [{"program": "ls", "args": "-la"}]}}),
            "policy.exec.programs[0].args: expected an array, found a string".into(),
        ),
        (
            json!({"exec": {"programs": {"program": "ls"}}}),
            "policy.exec.programs: expected an array, found an object".into(),
        ),
        (
            json!({"exec": ["ls"]}),
            "policy.exec: expected an object, found an array".into(),
        ),
        (
            json!({"payout": "/p.sh"}),
            "policy.payout: expected an object, found a string".into(),
        ),
        (
            json!({"payout": {"timeout_s": 5}}),
            "policy.payout: missing key \"script\"".into(),
        ),
        (
            json!({"max_command_age_s": "300"}),
            "policy.max_command_age_s: expected a whole number of seconds, found a string".into(),
        ),
        (
            json!({"max_command_age_s": 1.5}),
            "policy.max_command_age_s: expected a whole number of seconds, found 1.5".into(),
        ),
        (
            json!({"max_command_age_s": -1}),
            "policy.max_command_age_s: expected a whole number of seconds, found -1".into(),
        ),
        (
            json!({"payout": {"script": "/p", "timeout_s": true}}),
            "policy.payout.timeout_s: expected a whole number of seconds, found a boolean".into(),
        ),
        // meanings
        (
            json!({"allow": ["stop", "start", "exce"]}),
            format!("policy.allow[2]: unknown command \"exce\" ({known})"),
        ),
        (
            json!({"allow": [{"command": "Stop", "containers": ["x*"]}]}),
            format!("policy.allow[0].command: unknown command \"Stop\" ({known})"),
        ),
        (
            json!({"allow": ["stop", {"command": "stop", "containers": ["3node1"]}]}),
            "policy.allow[1]: \"stop\" is already listed at policy.allow[0]; give each command one entry".into(),
        ),
        (
            json!({"allow": [{"command": "stop", "containers": []}]}),
            "policy.allow[0].containers: lists no containers; to forbid \"stop\" everywhere, remove this entry".into(),
        ),
        (
            json!({"allow": [{"command": "stop", "containers": ["3node[12]"]}]}),
            "policy.allow[0].containers[0]: \"3node[12]\" is not a valid container name pattern: '[' is not allowed (allowed: A-Z a-z 0-9 _ . - and the wildcards * ?)".into(),
        ),
        (
            json!({"containers": ["3node*", "node/1"]}),
            "policy.containers[1]: \"node/1\" is not a valid container name pattern: '/' is not allowed (allowed: A-Z a-z 0-9 _ . - and the wildcards * ?)".into(),
        ),
        (
            json!({"containers": ["node 1"]}),
            "policy.containers[0]: \"node 1\" is not a valid container name pattern: ' ' is not allowed (allowed: A-Z a-z 0-9 _ . - and the wildcards * ?)".into(),
        ),
        (
            json!({"containers": ["node.+"]}),
            "policy.containers[0]: \"node.+\" is not a valid container name pattern: '+' is not allowed (allowed: A-Z a-z 0-9 _ . - and the wildcards * ?)".into(),
        ),
        (
            json!({"containers": [""]}),
            "policy.containers[0]: empty container pattern (it would match no container)".into(),
        ),
        (
            json!({"containers": ["all"]}),
            "policy.containers[0]: \"all\" is the protocol's word for every managed container and cannot be a container name here; use \"*\" to match every container".into(),
        ),
        (
            json!({"containers": []}),
            "policy.containers: lists no containers, so the agent would manage nothing; list names or patterns such as \"3node*\", or leave the key out for the default [\"3node*\", \"node*\"]".into(),
        ),
        (
            json!({"allow": ["exec"]}),
            "policy.exec: exec is allowed but no programs are listed (list them under policy.exec.programs, or remove \"exec\" from policy.allow)".into(),
        ),
        (
            json!({"allow": ["exec"], "exec": {}}),
            "policy.exec: exec is allowed but no programs are listed (list them under policy.exec.programs, or remove \"exec\" from policy.allow)".into(),
        ),
        (
            json!({"allow": [{"command": "exec", "containers": ["3node0"]}], "exec": {"programs": []}}),
            "policy.exec: exec is allowed but no programs are listed (list them under policy.exec.programs, or remove \"exec\" from policy.allow)".into(),
        ),
        (
            json!({"exec": {"programs": [{"program": "ls -la"}]}}),
            "policy.exec.programs[0].program: \"ls -la\" contains whitespace; give the program alone and put its arguments in \"args\"".into(),
        ),
        (
            json!({"exec": {"programs": [{"program": ""}]}}),
            "policy.exec.programs[0].program: empty program name".into(),
        ),
        (
            json!({"exec": {"programs": [{"program": "l*"}]}}),
            "policy.exec.programs[0].program: \"l*\" contains a wildcard; programs are matched by exact name".into(),
        ),
        (
            json!({"exec": {"programs": [{"program": "du", "args": ["**", "-sh"], "unsafe_any_args": true}]}}),
            "policy.exec.programs[0].args[0]: \"**\" (any further arguments) may only be the last entry of args".into(),
        ),
        (
            json!({"allow": ["payout"]}),
            "policy.payout: payout is allowed but no script is configured (set policy.payout.script, or remove \"payout\" from policy.allow)".into(),
        ),
        (
            json!({"payout": {"script": "payout.sh"}}),
            "policy.payout.script: \"payout.sh\" is not an absolute path; give the script's full path".into(),
        ),
        (
            json!({"payout": {"script": "/p", "timeout_s": 3601}}),
            "policy.payout.timeout_s: 3601 is out of range (1 to 3600 seconds)".into(),
        ),
        (
            json!({"payout": {"script": "/p", "timeout_s": 0}}),
            "policy.payout.timeout_s: 0 is out of range (1 to 3600 seconds)".into(),
        ),
        (
            json!({"max_command_age_s": 0}),
            "policy.max_command_age_s: 0 is out of range (1 to 3600 seconds)".into(),
        ),
        (
            json!({"max_command_age_s": 86400}),
            "policy.max_command_age_s: 86400 is out of range (1 to 3600 seconds)".into(),
        ),
    ];
    for (policy, expected) in table {
        assert_eq!(load_error(policy.clone()), expected, "{policy}");
    }
    let top = Policy::from_json_value(&json!(["policy"])).unwrap_err();
    assert_eq!(
        top.to_string(),
        "(top level): the config file must be a JSON object, found an array"
    );
}

#[test]
fn accepted_edge_cases() {
    // exec configured but not allowed: kept, harmless, denied with a reason
    let p = policy(json!({"exec": {"programs": [{"program": "ls"}]}}));
    assert!(
        !p.decide(c("exec"), "3node0", Some(&argv(&["ls"])))
            .is_allowed()
    );
    // an empty allow list is a read-only agent
    let p = policy(json!({"allow": []}));
    assert!(p.permitted_commands().is_empty());
    assert!(!p.decide(c("status"), "3node0", None).is_allowed());
    // the same program may be listed with several argument shapes
    let p = policy(json!({
        "allow": ["exec"],
        "exec": {"programs": [{"program": "ls", "args": ["-l"]}, {"program": "ls", "args": ["-a"]}]},
    }));
    assert!(
        p.decide(c("exec"), "3node0", Some(&argv(&["ls", "-a"])))
            .is_allowed()
    );
}

#[test]
fn policy_config_deserializes_inside_a_larger_config() {
    #[derive(Deserialize)]
    struct AgentConfig {
        #[serde(default)]
        policy: PolicyConfig,
        #[allow(
            dead_code,
            reason = "present to show the policy parses inside a whole config"
        )]
        data_dir: String,
    }
    let config: AgentConfig = serde_json::from_str(
        r#"{"data_dir": "/var/lib/warden", "policy": {"allow": ["status"], "max_command_age_s": 60}}"#,
    )
    .unwrap();
    assert_eq!(
        config.policy.allow,
        Some(vec![AllowEntryConfig::Command("status".into())])
    );
    let p = Policy::from_config(&config.policy).unwrap();
    assert_eq!(p.permitted_commands(), vec!["status"]);

    let config: AgentConfig = serde_json::from_str(r#"{"data_dir": "/x"}"#).unwrap();
    assert_eq!(
        Policy::from_config(&config.policy).unwrap(),
        Policy::default()
    );

    let error = serde_json::from_str::<AgentConfig>(
        r#"{"data_dir": "/x", "policy": {"exec": {"programs": [{"program": "ls", "arg": []}]}}}"#,
    )
    .err()
    .unwrap();
    assert!(
        error.to_string().starts_with(
            "policy.exec.programs[0]: unknown key \"arg\" (known: program, args, unsafe_any_args)"
        ),
        "{error}"
    );
}

#[test]
fn load_reads_the_file() {
    let dir = std::env::temp_dir().join(format!("warden-policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    std::fs::write(&good, r#"{"policy": {"allow": ["status"]}, "server": "x"}"#).unwrap();
    assert_eq!(
        Policy::load(&good).unwrap().permitted_commands(),
        vec!["status"]
    );

    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"policy": {"allow": ["exce"]}}"#).unwrap();
    let error = Policy::load(&bad).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!(
            "{}: policy.allow[0]: unknown command \"exce\"",
            bad.display()
        )),
        "{error}"
    );

    let broken = dir.join("broken.json");
    std::fs::write(&broken, r#"{"policy": "#).unwrap();
    let error = Policy::load(&broken).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!(
            "config file {} is not valid JSON: ",
            broken.display()
        )),
        "{error}"
    );

    let missing = dir.join("missing.json");
    let error = Policy::load(&missing).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("cannot read config file {}: ", missing.display())),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The example in docs/policy.md must load and mean what the doc says.
#[test]
fn documented_example() {
    let doc = include_str!("../../../docs/policy.md");
    let start = doc
        .find("```json\n")
        .expect("docs/policy.md has a json block")
        + 8;
    let end = start + doc[start..].find("```").unwrap();
    let config: Value = serde_json::from_str(&doc[start..end]).unwrap();
    let p = Policy::from_json_value(&config).unwrap();
    assert_eq!(
        p.permitted_commands(),
        vec![
            "start",
            "stop",
            "restart",
            "logs",
            "status",
            "exec",
            "backup_keys",
            "payout",
            "rotate_keys",
            "check_keys",
            "has_session_keys",
            "has_key",
            "find_validator",
        ]
    );
    assert!(p.manages("3node0") && p.manages("3node12") && !p.manages("node1"));
    assert!(p.decide(c("stop"), "3node1", None).is_allowed());
    assert!(!p.decide(c("stop"), "3node0", None).is_allowed());
    assert!(
        p.decide(c("exec"), "3node0", Some(&argv(&["df", "-h"])))
            .is_allowed()
    );
    assert!(
        p.decide(
            c("exec"),
            "3node0",
            Some(&argv(&["ls", "-la", "/root/data/chains"]))
        )
        .is_allowed()
    );
    assert!(
        !p.decide(
            c("exec"),
            "3node0",
            Some(&argv(&["ls", "-la", "/root/data/../.."]))
        )
        .is_allowed()
    );
    assert!(
        p.decide(
            c("exec"),
            "3node0",
            Some(&argv(&["du", "-sh", "/root/data"]))
        )
        .is_allowed()
    );
    // The example that leaked keys: du reading a keystore file as its list
    // of names, and printing it in its error.
    for words in [
        &["du", "-sh", "/root/data", "/tmp"][..],
        &[
            "du",
            "-sh",
            "--files0-from=/root/data/chains/cc3/keystore/6772616e00",
        ],
        &["du", "--files0-from=/etc/shadow"],
        &["df", "-h", "/"],
        &["uptime", "-p"],
    ] {
        assert!(
            !p.decide(c("exec"), "3node0", Some(&argv(words)))
                .is_allowed(),
            "{words:?}"
        );
    }
    assert_eq!(p.payout().unwrap().timeout(), Duration::from_secs(900));
    assert_eq!(p.max_command_age(), Duration::from_secs(120));
}

#[test]
fn operators_and_required_signatures() {
    let key = |b: u8| format!("0x{}", hex::encode([b; 32]));
    let p = policy(json!({
        "operators": {"alice": key(1), "bob": key(2), "carol": key(3)},
        "require_signatures": {"restore_keys": 2, "stop": 1},
    }));
    assert_eq!(p.required_signatures(c("restore_keys")), 2);
    assert_eq!(p.required_signatures(c("stop")), 1);
    assert_eq!(p.required_signatures(c("status")), 0);
    assert_eq!(p.operators().operators.len(), 3);
    assert_eq!(Policy::default().required_signatures(c("stop")), 0);
    let table = [
        (
            json!({"operators": {"alice": "0x12"}}),
            "policy.operators.alice: expected an Ed25519 public key",
        ),
        (
            json!({"operators": {"a b": key(1)}}),
            "is not an operator name",
        ),
        (
            json!({"operators": {"alice": key(1), "bob": key(1)}}),
            "the same key as policy.operators.alice",
        ),
        (
            json!({"operators": {"alice": key(1)}, "require_signatures": {"stop": 2}}),
            "policy.require_signatures.stop: 2 signatures cannot be met by the 1 operator(s)",
        ),
        (
            json!({"require_signatures": {"stop": 1}}),
            "cannot be met by the 0 operator(s)",
        ),
        (
            json!({"operators": {"alice": key(1)}, "require_signatures": {"stop": 0}}),
            "0 signatures cannot be met",
        ),
        (
            json!({"operators": {"alice": key(1)}, "require_signatures": {"stopp": 1}}),
            "unknown command \"stopp\"",
        ),
        (
            json!({"operators": {"alice": key(1)}, "require_signatures": {"stop": "2"}}),
            "policy.require_signatures.stop: expected a whole number",
        ),
    ];
    for (policy, expected) in table {
        let error = load_error(policy.clone());
        assert!(error.contains(expected), "{policy}: {error}");
    }
}
