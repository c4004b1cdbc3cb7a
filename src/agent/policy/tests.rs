//! Decisions: containers, commands, exec argv, payout, age, target `all`.
use super::glob::glob_match;
use super::*;
use serde_json::json;

#[test]
fn decide_all_leaves_out_unmanaged_containers_for_any_command() {
    // Found by fuzz/policy_file: for a command it refuses, `decide` once
    // answered Denied before it looked at the container, so `decide_all`
    // listed "all" and "../x" among the denied managed containers.
    let p = Policy::default();
    let all = p.decide_all(c("exec"), ["3node0", "all", "../x"]);
    assert!(all.allowed.is_empty());
    let denied: Vec<&str> = all.denied.iter().map(|(c, _)| *c).collect();
    assert_eq!(denied, ["3node0"]);
}

/// A policy from the `"policy"` object alone.
pub(super) fn policy(policy: Value) -> Policy {
    Policy::from_json_value(&json!({ "policy": policy }))
        .unwrap_or_else(|e| panic!("policy should load: {e}"))
}

pub(super) fn load_error(policy: Value) -> String {
    match Policy::from_json_value(&json!({ "policy": policy })) {
        Ok(p) => panic!("policy should not load: {p:?}"),
        Err(e) => e.to_string(),
    }
}

/// A command by its wire name.
pub(super) fn c(name: &str) -> CommandName {
    name.parse().unwrap()
}

pub(super) fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[test]
fn glob_matching() {
    let table: &[(&str, &str, bool)] = &[
        // exact
        ("3node0", "3node0", true),
        ("3node0", "3node1", false),
        ("3node0", "3node01", false),
        ("3node0", "", false),
        ("", "", true),
        ("", "a", false),
        // `*` matches the empty string too
        ("3node*", "3node", true),
        ("3node*", "3node0", true),
        ("3node*", "3node12", true),
        ("3node*", "x3node0", false),
        ("*", "", true),
        ("*", "anything/at all", true),
        ("**", "x", true),
        ("*node*", "node", true),
        ("*node*", "3node0", true),
        ("*node", "3node0", false),
        ("a*b*c", "abc", true),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "aXcYb", false),
        ("a*b", "abab", true),
        ("a*b", "abba", false),
        // `?` is exactly one character
        ("node?", "node1", true),
        ("node?", "node", false),
        ("node?", "node12", false),
        ("node??", "node12", true),
        ("?", "é", true),
        ("?*", "", false),
        ("*?", "x", true),
        // dots are literal; no regex semantics anywhere
        ("node.1", "node.1", true),
        ("node.1", "nodeX1", false),
        ("node.*", "nodeX1", false),
        ("node.*", "node.", true),
        ("n[0-9]", "n1", false),
        ("n[0-9]", "n[0-9]", true),
        ("a+", "aa", false),
        ("^a$", "a", false),
        ("a|b", "a", false),
        ("\\*", "\\x", true),
        // backtracking: many stars stay fast and correct
        ("*a*a*a*a*a*a*b", &"a".repeat(100), false),
        ("*a*a*a*a*a*a*b", &format!("{}b", "a".repeat(100)), true),
    ];
    for (pattern, text, expected) in table {
        assert_eq!(
            glob_match(pattern, text),
            *expected,
            "glob {pattern:?} against {text:?}"
        );
    }
}

#[test]
fn container_names() {
    let table: &[(&str, bool)] = &[
        ("3node0", true),
        ("node1", true),
        ("a.b_c-d", true),
        ("ab", true),
        ("a", false),
        ("", false),
        ("-node", false),
        ("_node", false),
        (".node", false),
        ("/3node0", false),
        ("node 1", false),
        ("node/1", false),
        ("3node0/../x", false),
        ("3node0\n", false),
        ("nödé", false),
    ];
    for (name, expected) in table {
        assert_eq!(
            crate::docker::validate_container_name(name).is_ok(),
            *expected,
            "{name:?}"
        );
    }
}

#[test]
fn manages() {
    let default = Policy::default();
    let custom = policy(json!({ "containers": ["validator-?", "cc3.main", "*"] }));
    let narrow = policy(json!({ "containers": ["cc3.main"] }));
    let table: &[(&Policy, &str, bool)] = &[
        (&default, "3node0", true),
        (&default, "3node12", true),
        (&default, "node1", true),
        (&default, "3node", true),
        (&default, "xnode1", false),
        (&default, "postgres", false),
        (&default, "all", false),
        // a `*` never lets through what is not a container name
        (&default, "3node0 --privileged", false),
        (&default, "node1/../../etc", false),
        (&default, "3node0\n", false),
        (&default, "", false),
        (&custom, "validator-1", true),
        (&custom, "--privileged", false),
        (&custom, "-v", false),
        (&custom, "all", false),
        (&custom, "anything", true),
        (&narrow, "cc3.main", true),
        (&narrow, "cc3xmain", false),
        (&narrow, "cc3.main2", false),
    ];
    for (policy, name, expected) in table {
        assert_eq!(policy.manages(name), *expected, "{name:?}");
    }
}

#[test]
fn defaults() {
    let default = Policy::default();
    assert_eq!(default, policy(json!({})));
    assert_eq!(default, Policy::from_json_value(&json!({})).unwrap());
    assert_eq!(
        default,
        Policy::from_json_value(&json!({"server": "wss://x/agent", "other": [1, 2]})).unwrap(),
        "other top-level keys belong to someone else and are ignored"
    );
    assert_eq!(
        default.permitted_commands(),
        vec![
            "stop",
            "restart",
            "logs",
            "status",
            "backup_keys",
            "check_keys",
            "has_session_keys",
            "has_key",
            "find_validator",
        ]
    );
    assert_eq!(default.max_command_age(), Duration::from_secs(300));
    assert!(default.payout().is_none());
    assert!(default.decide(c("stop"), "3node0", None).is_allowed());
    assert!(
        !default
            .decide(c("exec"), "3node0", Some(&argv(&["ls"])))
            .is_allowed()
    );
    assert!(!default.decide(c("payout"), "3node0", None).is_allowed());
    // A node started, restored or rotated in the wrong place signs twice:
    // only a policy that names them allows them.
    for command in ["start", "restore_keys", "rotate_keys"] {
        let decision = default.decide(c(command), "3node0", None);
        assert!(
            decision.reason().unwrap().contains("add \""),
            "{command}: {decision:?}"
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Denied,
    NotManaged,
}

#[test]
fn decisions() {
    let p = policy(json!({
        "containers": ["3node*", "node?"],
        "allow": [
            "status",
            "logs",
            {"command": "stop", "containers": ["3node1", "3node2*"]},
            {"command": "start", "containers": ["*"]},
            {"command": "exec", "containers": ["3node0"]},
            "payout",
        ],
        "exec": {"programs": [{"program": "df", "args": ["-h"]}]},
        "payout": {"script": "/opt/payout.sh"},
    }));
    use Outcome::*;
    let table: &[(&str, &str, Option<&[&str]>, Outcome)] = &[
        ("status", "3node0", None, Allowed),
        ("logs", "node1", None, Allowed),
        ("logs", "node12", None, NotManaged),
        ("logs", "postgres", None, NotManaged),
        ("stop", "3node1", None, Allowed),
        ("stop", "3node20", None, Allowed),
        ("stop", "3node0", None, Denied),
        ("stop", "3node3", None, Denied),
        ("stop", "3node2x", None, Allowed),
        ("start", "node1", None, Allowed),
        // a restricted entry cannot reach past policy.containers
        ("start", "other", None, NotManaged),
        ("restart", "3node0", None, Denied),
        ("rotate_keys", "3node0", None, Denied),
        ("exec", "3node0", Some(&["df", "-h"]), Allowed),
        ("exec", "3node1", Some(&["df", "-h"]), Denied),
        ("exec", "3node0", Some(&["df"]), Denied),
        ("exec", "3node0", Some(&["df", "-h", "/"]), Denied),
        ("exec", "3node0", None, Denied),
        ("exec", "3node0", Some(&[]), Denied),
        ("payout", "3node0", None, Allowed),
        ("payout", "unmanaged", None, NotManaged),
    ];
    for (command, container, exec_argv, expected) in table {
        let exec_argv = exec_argv.map(argv);
        let decision = p.decide(c(command), container, exec_argv.as_deref());
        let kind = match &decision {
            Decision::Allowed => Allowed,
            Decision::Denied { .. } => Denied,
            Decision::NotManaged { .. } => NotManaged,
        };
        assert_eq!(kind, *expected, "{command} on {container}: {decision:?}");
        assert_eq!(decision.is_allowed(), *expected == Allowed);
    }
    assert_eq!(
        p.permitted_commands(),
        vec!["start", "stop", "logs", "status", "exec", "payout"]
    );
}

#[test]
fn denial_reasons_name_the_key_to_change() {
    let p = policy(json!({
        "allow": ["status", {"command": "stop", "containers": ["3node1"]}, "exec"],
        "exec": {"programs": [{"program": "ls", "args": ["-la", "/root/data/*"], "unsafe_any_args": true}, {"program": "df"}]},
    }));
    let table: &[(&str, &str, &[&str], &str)] = &[
        (
            "exec",
            "3node0",
            &["cat", "/etc/shadow"],
            "program \"cat\" is not listed in policy.exec.programs (programs are matched by their exact name; listed: ls, df)",
        ),
        (
            "exec",
            "3node0",
            &["ls", "-la", "/root/data/../../etc"],
            "the arguments [\"-la\", \"/root/data/../../etc\"] match no entry for \"ls\" in policy.exec.programs (accepted: ls -la /root/data/*); a wildcard never matches a \"..\" path component",
        ),
        (
            "exec",
            "3node0",
            &["ls", "/"],
            "the arguments [\"/\"] match no entry for \"ls\" in policy.exec.programs (accepted: ls -la /root/data/*)",
        ),
        ("exec", "3node0", &[], "exec needs a command to run"),
        (
            "stop",
            "3node0",
            &[],
            "stop is allowed only on some containers and \"3node0\" is not one of them (policy.allow[1].containers is [\"3node1\"])",
        ),
        (
            "restart",
            "3node0",
            &[],
            "restart is not allowed by this agent's policy (add \"restart\" to policy.allow)",
        ),
        (
            "payout",
            "3node0",
            &[],
            "payout is not enabled in this agent's policy (add \"payout\" to policy.allow and set policy.payout.script)",
        ),
        (
            "status",
            "db",
            &[],
            "container \"db\" is not managed by this agent (policy.containers is [\"3node*\", \"node*\"])",
        ),
    ];
    for (command, container, words, expected) in table {
        let words = argv(words);
        let decision = p.decide(c(command), container, Some(&words));
        assert_eq!(decision.reason(), Some(*expected), "{command} {words:?}");
    }
    let default = Policy::default();
    assert_eq!(
        default
            .decide(c("exec"), "3node0", Some(&argv(&["ls"])))
            .reason(),
        Some(
            "exec is not enabled in this agent's policy (add \"exec\" to policy.allow and list programs under policy.exec.programs)"
        )
    );
}

#[test]
fn exec_argv_matching() {
    let p = policy(json!({
        "allow": ["exec"],
        "exec": {"programs": [
            {"program": "ls", "args": ["-la", "/root/data/*"], "unsafe_any_args": true},
            {"program": "ls", "args": []},
            {"program": "df", "unsafe_any_args": true},
            {"program": "du", "args": ["-sh", "**"], "unsafe_any_args": true},
            {"program": "cat", "args": ["../shared/*.log"], "unsafe_any_args": true},
            {"program": "stat", "args": ["**"], "unsafe_any_args": true},
            {"program": "/usr/bin/uptime"},
            {"program": "echo", "args": ["a?c", "*.txt"], "unsafe_any_args": true},
            {"program": "tail", "args": ["/var/log/??"], "unsafe_any_args": true},
        ]},
    }));
    let table: &[(&[&str], bool)] = &[
        // exact program, glob args, same count
        (&["ls", "-la", "/root/data/chains"], true),
        (&["ls", "-la", "/root/data/"], true),
        (&["ls", "-la", "/root/data/a/b"], true),
        (&["ls"], true),
        (&["ls", "-la"], false),
        (&["ls", "-la", "/root/data/x", "/etc"], false),
        (&["ls", "-l", "/root/data/x"], false),
        (&["ls", "/root/data/x", "-la"], false),
        (&["ls", "-la", "/root/database"], false),
        // path tricks on argv[0]: matched by exact name only
        (&["/bin/ls", "-la", "/root/data/x"], false),
        (&["./ls"], false),
        (&["../bin/ls"], false),
        (&["ls "], false),
        (&["LS"], false),
        (&["/usr/bin/uptime"], true),
        (&["uptime"], false),
        (&["sh", "-c", "ls"], false),
        (&["/bin/sh", "-c", "ls"], false),
        // path tricks in args: a wildcard never stands for `..`
        (&["ls", "-la", "/root/data/../../etc/shadow"], false),
        (&["ls", "-la", "/root/data/.."], false),
        (&["ls", "-la", "/root/data/x/../.."], false),
        (&["ls", "-la", "/root/data/x/.."], false),
        (&["tail", "/var/log/ab"], true),
        (&["tail", "/var/log/.."], false),
        (&["ls", "-la", "/root/data/..hidden"], true),
        (&["ls", "-la", "/root/data/x.."], true),
        (&["ls", "-la", "/root/data/."], true),
        // a literal `..` in the pattern is the operator's own choice
        (&["cat", "../shared/node.log"], true),
        (&["cat", "../shared/../../x.log"], false),
        // no args key, unsafe_any_args: anything goes (wide)
        (&["df"], true),
        (&["df", "-h", "/", "--output=source"], true),
        (&["df", "../../.."], true),
        // trailing `**`: zero or more further arguments, taken as they are
        (&["du", "-sh"], true),
        (&["du", "-sh", "/root/data"], true),
        (&["du", "-sh", "a", "b", "../c"], true),
        (&["du"], false),
        (&["du", "-h"], false),
        (&["stat"], true),
        (&["stat", "a", "b"], true),
        // `?` and literal dots in args
        (&["echo", "abc", "notes.txt"], true),
        (&["echo", "ac", "notes.txt"], false),
        (&["echo", "abc", "notes_txt"], false),
        (&["echo", "abc", ".txt"], true),
        // no shell: metacharacters are just characters
        (&["echo", "a;c", "x.txt"], true),
        (&["echo", "abc", "$(reboot).txt"], true),
        (&["rm", "-rf", "/"], false),
    ];
    for (words, expected) in table {
        let words = argv(words);
        let decision = p.decide(c("exec"), "3node0", Some(&words));
        assert_eq!(decision.is_allowed(), *expected, "{words:?}: {decision:?}");
    }
}

#[test]
fn exec_entries_accept_only_their_fixed_argv_by_default() {
    let p = policy(json!({
        "allow": ["exec"],
        "exec": {"programs": [
            {"program": "df", "args": ["-h"]},
            {"program": "uptime"},
            {"program": "du", "args": ["-sh", "/root/data"]},
        ]},
    }));
    let table: &[(&[&str], bool)] = &[
        (&["df", "-h"], true),
        (&["df"], false),
        (&["df", "-h", "/"], false),
        (&["uptime"], true),
        (&["uptime", "-p"], false),
        (&["du", "-sh", "/root/data"], true),
        // GNU du prints the contents of a file it cannot use as a name
        // list in its error message: a keystore file's secret seed.
        (
            &[
                "du",
                "-sh",
                "--files0-from=/root/data/chains/x/keystore/6772616e",
            ],
            false,
        ),
        (&["du", "--files0-from=/etc/shadow"], false),
        (
            &["du", "-sh", "/root/data", "--exclude-from=/etc/shadow"],
            false,
        ),
    ];
    for (words, expected) in table {
        let words = argv(words);
        let decision = p.decide(c("exec"), "3node0", Some(&words));
        assert_eq!(decision.is_allowed(), *expected, "{words:?}: {decision:?}");
    }
    for args in [json!(["-sh", "**"]), json!(["/root/*"]), json!(["a?"])] {
        let error = load_error(json!({
            "allow": ["exec"],
            "exec": {"programs": [{"program": "du", "args": args}]},
        }));
        assert!(error.contains("unsafe_any_args"), "{error}");
    }
}

#[test]
fn payout_policy() {
    let p = policy(json!({
        "allow": ["payout"],
        "payout": {"script": "/opt/cc/payout.sh", "timeout_s": 120},
    }));
    let payout = p.payout().expect("payout is configured");
    assert_eq!(payout.script(), Path::new("/opt/cc/payout.sh"));
    assert_eq!(payout.timeout(), Duration::from_secs(120));
    assert_eq!(p.permitted_commands(), vec!["payout"]);

    let p = policy(json!({"allow": ["payout"], "payout": {"script": "/p"}}));
    assert_eq!(p.payout().unwrap().timeout(), Duration::from_secs(600));
    let p = policy(json!({"payout": {"script": "/p", "timeout_s": 3600}}));
    assert!(p.payout().is_none(), "configured but not allowed");
    assert!(!p.decide(c("payout"), "3node0", None).is_allowed());
}

#[test]
fn command_age() {
    let p = Policy::default();
    let strict = policy(json!({"max_command_age_s": 5}));
    let now = 1_736_300_000_000;
    let table: &[(&Policy, i64, i64, bool)] = &[
        (&p, now, now, false),
        (&p, now - 300_000, now, false),
        (&p, now - 300_001, now, true),
        (&p, now - 86_400_000, now, true),
        (&p, now + 60_000, now, false),
        (&p, now + 60_001, now, true),
        (&p, 0, now, true),
        (&p, i64::MIN, now, true),
        (&p, i64::MAX, now, true),
        (&p, i64::MIN, i64::MAX, true),
        (&p, i64::MAX, i64::MIN, true),
        (&strict, now - 5_000, now, false),
        (&strict, now - 5_001, now, true),
    ];
    for (policy, ts, now, expected) in table {
        assert_eq!(
            policy.command_too_old(*ts, *now),
            *expected,
            "ts {ts} now {now}"
        );
    }
    assert_eq!(
        p.command_time_problem(now - 412_000, now).as_deref(),
        Some(
            "the command is 412 s old and this agent refuses commands older than 300 s (policy.max_command_age_s); it was not run"
        )
    );
    assert_eq!(
        p.command_time_problem(now + 120_000, now).as_deref(),
        Some(
            "the command's timestamp is 120 s ahead of this agent's clock (at most 60 s is accepted); check both clocks; it was not run"
        )
    );
}

#[test]
fn target_all() {
    let p = policy(json!({
        "allow": ["status", {"command": "stop", "containers": ["3node1"]}],
    }));
    let host = ["3node0", "3node1", "postgres", "node2"];
    let status = p.decide_all(c("status"), host);
    assert_eq!(status.allowed, vec!["3node0", "3node1", "node2"]);
    assert!(status.denied.is_empty());
    let stop = p.decide_all(c("stop"), host);
    assert_eq!(stop.allowed, vec!["3node1"]);
    assert_eq!(
        stop.denied.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        vec!["3node0", "node2"]
    );
    let start = p.decide_all(c("start"), host);
    assert!(start.allowed.is_empty());
    assert_eq!(start.denied.len(), 3);
    assert_eq!(
        start.denied[0].1,
        "start is not allowed by this agent's policy (add \"start\" to policy.allow)"
    );
    assert_eq!(p.decide_all(c("status"), []), AllDecision::default());
    assert!(matches!(
        p.decide(c("status"), "all", None),
        Decision::NotManaged { .. }
    ));
}
