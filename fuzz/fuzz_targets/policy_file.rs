//! The agent's policy file: any bytes → `serde_json::Value` →
//! `Policy::from_json_value`, and, when a policy loads, every question the
//! agent asks it, with commands, containers and exec argv taken from the
//! strings of the same input (a policy that names `3node*` is then asked
//! about the names the fuzzer put beside it).
//!
//! Beyond "never panics", it checks the module's promises:
//! - only valid Docker container names other than `all` are managed;
//! - `Allowed` implies managed and announced in `permitted_commands`;
//! - `decide_all` only returns managed containers;
//! - an allowed exec runs a program listed in the file, by its exact name,
//!   and when every listed program has an `args` list without `**` and the
//!   file has no `..` anywhere, never an argument with a `..` path component;
//! - the age check is exact at its two edges and does not overflow on
//!   extreme timestamps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use warden::agent::policy::{Decision, KNOWN_COMMANDS, MAX_CLOCK_SKEW_AHEAD_MS, Policy};
use warden::commands::CommandName;

fn is_valid_container_name(name: &str) -> bool {
    warden::docker::validate_container_name(name).is_ok()
}

/// At most this many strings of the input are used as probes, so that one
/// input costs O(probes²) decisions, not O(size²).
const MAX_PROBES: usize = 12;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let policy = match Policy::from_json_value(&file) {
        Ok(policy) => policy,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };

    let mut strings = Vec::new();
    collect_strings(&file, &mut strings);
    let mut numbers = Vec::new();
    collect_numbers(&file, &mut numbers);

    let mut containers: Vec<&str> = vec!["3node0", "node1", "all", "", "a", "../x", "-x"];
    containers.extend(strings.iter().map(String::as_str));
    // `decide` takes a `CommandName`: a name the catalog does not know never
    // reaches the policy.
    let command_names: Vec<CommandName> = CommandName::ALL.to_vec();

    let permitted = policy.permitted_commands();
    for command in &permitted {
        assert!(KNOWN_COMMANDS.contains(command));
    }
    for container in &containers {
        if policy.manages(container) {
            assert!(is_valid_container_name(container) && *container != "all");
        }
        for command in &command_names {
            let decision = policy.decide(*command, container, None);
            check_decision(&policy, &permitted, command.as_str(), container, &decision);
        }
    }
    for command in CommandName::ALL {
        let all = policy.decide_all(command, containers.iter().copied());
        for container in all
            .allowed
            .iter()
            .chain(all.denied.iter().map(|(container, _)| container))
        {
            assert!(
                policy.manages(container),
                "decide_all returned {container:?}"
            );
        }
    }

    check_exec(&policy, &file, &strings, &containers);
    check_age(&policy, &numbers);
    if let Some(payout) = policy.payout() {
        assert!(payout.script().is_absolute());
        assert!(!payout.timeout().is_zero());
    }
});

fn check_decision(
    policy: &Policy,
    permitted: &[&str],
    command: &str,
    container: &str,
    decision: &Decision,
) {
    match decision {
        Decision::Allowed => {
            assert!(
                policy.manages(container),
                "allowed on unmanaged {container:?}"
            );
            assert!(
                permitted.contains(&command),
                "allowed {command:?} not announced"
            );
        }
        Decision::NotManaged { .. } => assert!(!policy.manages(container)),
        Decision::Denied { .. } => {}
    }
    assert_eq!(decision.is_allowed(), decision.reason().is_none());
}

fn check_exec(policy: &Policy, file: &Value, strings: &[String], containers: &[&str]) {
    let programs: Vec<&Value> = file
        .pointer("/policy/exec/programs")
        .and_then(Value::as_array)
        .map(|programs| programs.iter().collect())
        .unwrap_or_default();
    let listed: Vec<&str> = programs
        .iter()
        .filter_map(|p| p.get("program").and_then(Value::as_str))
        .collect();
    let args_are_globs_only = programs.iter().all(|p| {
        p.get("args")
            .and_then(Value::as_array)
            .is_some_and(|args| args.iter().all(|a| a.as_str() != Some("**")))
    });
    let file_has_dot_dot = any_string(file, &|s| s.contains(".."));

    // Argv candidates: each listed program (or probe string) followed by
    // up to three probe strings, and a few fixed path tricks.
    let mut argvs: Vec<Vec<String>> = vec![vec![]];
    let tails: Vec<Vec<String>> = {
        let mut tails = vec![
            vec![],
            vec!["..".into()],
            vec!["-la".into(), "/root/data/..".into()],
            vec!["-la".into(), "/root/data/../../etc/shadow".into()],
        ];
        for window in strings.windows(3).take(MAX_PROBES) {
            tails.push(window.to_vec());
        }
        for s in strings.iter().take(MAX_PROBES) {
            tails.push(vec![s.clone()]);
        }
        tails
    };
    for program in listed
        .iter()
        .copied()
        .chain(strings.iter().map(String::as_str))
        .take(MAX_PROBES)
    {
        for tail in &tails {
            let mut argv = vec![program.to_owned()];
            argv.extend(tail.iter().cloned());
            argvs.push(argv);
        }
    }
    // Managed containers are where exec rules are consulted; one that is not
    // managed checks the early refusal.
    let mut exec_containers: Vec<&str> = containers
        .iter()
        .copied()
        .filter(|c| policy.manages(c))
        .take(3)
        .collect();
    exec_containers.push("all");
    for container in exec_containers {
        for argv in &argvs {
            let decision = policy.decide(CommandName::Exec, container, Some(argv));
            if decision.is_allowed() {
                assert!(
                    listed.contains(&argv[0].as_str()),
                    "exec of unlisted program {:?}",
                    argv[0]
                );
                if args_are_globs_only && !file_has_dot_dot {
                    for arg in &argv[1..] {
                        assert!(
                            !arg.split('/').any(|c| c == ".."),
                            "exec allowed through '..': {argv:?}"
                        );
                    }
                }
            }
        }
    }
}

fn check_age(policy: &Policy, numbers: &[i64]) {
    let max_age_ms = i64::try_from(policy.max_command_age().as_millis()).unwrap();
    let mut nows = vec![0, 1, -1, i64::MIN, i64::MAX, 1_736_346_600_000];
    nows.extend(numbers.iter().take(MAX_PROBES));
    for &now in &nows {
        let mut stamps = vec![0, i64::MIN, i64::MAX, now];
        stamps.extend(numbers.iter().take(MAX_PROBES));
        for &stamp in &stamps {
            let too_old = policy.command_too_old(stamp, now);
            let age = i128::from(now) - i128::from(stamp);
            let expected =
                age > i128::from(max_age_ms) || -age > i128::from(MAX_CLOCK_SKEW_AHEAD_MS);
            assert_eq!(too_old, expected, "command_too_old({stamp}, {now})");
            assert_eq!(too_old, policy.command_time_problem(stamp, now).is_some());
        }
        // The two edges, where they fit in an i64.
        if let Some(oldest) = now.checked_sub(max_age_ms) {
            assert!(!policy.command_too_old(oldest, now));
            if let Some(older) = oldest.checked_sub(1) {
                assert!(policy.command_too_old(older, now));
            }
        }
        if let Some(newest) = now.checked_add(MAX_CLOCK_SKEW_AHEAD_MS) {
            assert!(!policy.command_too_old(newest, now));
            if let Some(newer) = newest.checked_add(1) {
                assert!(policy.command_too_old(newer, now));
            }
        }
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    if out.len() >= MAX_PROBES {
        return;
    }
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            if out.len() < MAX_PROBES {
                out.push(k.clone());
            }
            collect_strings(v, out);
        }),
        _ => {}
    }
}

/// Whether any string or key anywhere in `value` satisfies `predicate`.
fn any_string(value: &Value, predicate: &dyn Fn(&str) -> bool) -> bool {
    match value {
        Value::String(s) => predicate(s),
        Value::Array(items) => items.iter().any(|v| any_string(v, predicate)),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| predicate(k) || any_string(v, predicate)),
        _ => false,
    }
}

fn collect_numbers(value: &Value, out: &mut Vec<i64>) {
    match value {
        Value::Number(n) => out.extend(n.as_i64()),
        Value::Array(items) => items.iter().for_each(|v| collect_numbers(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_numbers(v, out)),
        _ => {}
    }
}
