//! The operator command language: `parse_line` on any line, then `resolve`
//! of every `send`/`broadcast` request against a few agents' containers.
//!
//! The first input byte picks a mode so that the 64 KiB line limit is reached
//! although libFuzzer's inputs are only a few KiB:
//! - `0xFF`: the rest, repeated to just over `MAX_LINE_BYTES` — must be an error;
//! - `0xFE`: the rest, padded with blanks to exactly `MAX_LINE_BYTES` — must not
//!   be refused for its length;
//! - anything else: the whole input is the line.
//!
//! Beyond "never panics", it checks what the module promises: params that
//! `parse_line` accepted are never refused by `resolve` (they are validated
//! the same way), `all` only gets through for commands that allow it, a named
//! target that is one of the agent's containers resolves to it, and resolved
//! params are canonical (validating `to_json()` gives them back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::commands::{self, CommandName, Params};
use warden::operator::{
    self, CommandRequest, MAX_LINE_BYTES, OperatorCommand, ParseErrorKind, ResolveError,
    ResolvedTarget, TargetWord,
};

fuzz_target!(|data: &[u8]| {
    let (mode, rest) = data.split_first().map_or((0, data), |(m, r)| (*m, r));
    let rest = String::from_utf8_lossy(rest);
    match mode {
        0xFF => {
            let line = over_limit(&rest);
            match operator::parse_line(&line) {
                Err(err) => {
                    assert!(
                        matches!(err.kind(), ParseErrorKind::LineTooLong { .. }),
                        "{} bytes refused for another reason: {err}",
                        line.len()
                    );
                    let _ = (err.to_string(), err.code());
                }
                Ok(command) => panic!("{} bytes accepted: {command:?}", line.len()),
            }
        }
        0xFE => {
            if rest.len() <= MAX_LINE_BYTES {
                let mut line = rest.into_owned();
                line.extend(std::iter::repeat_n(' ', MAX_LINE_BYTES - line.len()));
                assert_eq!(line.len(), MAX_LINE_BYTES);
                check_line(&line);
            }
        }
        _ => check_line(&String::from_utf8_lossy(data)),
    }
});

/// `text` repeated until the line is longer than the limit (a non-empty tail
/// keeps the fuzzer's bytes in it; an empty one gives blanks).
fn over_limit(text: &str) -> String {
    let unit = if text.is_empty() { " " } else { text };
    let mut line = String::with_capacity(MAX_LINE_BYTES + unit.len() + 1);
    while line.len() <= MAX_LINE_BYTES {
        line.push_str(unit);
    }
    line
}

fn check_line(line: &str) {
    match operator::parse_line(line) {
        Ok(None) => assert!(
            line.trim_matches(|c: char| c.is_ascii_whitespace())
                .is_empty(),
            "a line with words parsed as blank: {line:?}"
        ),
        Ok(Some(OperatorCommand::Send { agent, request })) => {
            assert!(!agent.is_empty(), "empty agent id accepted: {line:?}");
            check_request(&request);
        }
        Ok(Some(OperatorCommand::Broadcast { request })) => check_request(&request),
        Ok(Some(_)) => {}
        Err(err) => {
            assert!(
                !matches!(err.kind(), ParseErrorKind::LineTooLong { .. }),
                "{} bytes refused as too long",
                line.len()
            );
            let _ = (err.to_string(), err.code(), err.usage());
        }
    }
}

fn check_request(request: &CommandRequest) {
    if request.target == TargetWord::All {
        assert!(
            request.command.allows_all_target(),
            "all accepted for {}",
            request.command
        );
    }
    let named = match &request.target {
        TargetWord::Named(name) => Some(name.clone()),
        _ => None,
    };
    let mut agents: Vec<Vec<String>> = vec![
        vec![],
        vec!["3node0".into()],
        vec!["3node0".into(), "3node1".into(), "all".into()],
    ];
    if let Some(name) = &named {
        agents.push(vec![name.clone()]);
        agents.push(vec!["node7".into(), name.clone()]);
    }
    for containers in &agents {
        match operator::resolve(request, containers) {
            Ok(resolved) => {
                assert_eq!(resolved.command(), request.command);
                match (&request.target, &resolved.target) {
                    (TargetWord::All, ResolvedTarget::All) => {}
                    (TargetWord::Named(name), ResolvedTarget::Container(got)) => {
                        assert_eq!(name, got);
                        assert!(containers.contains(got));
                    }
                    (TargetWord::Unspecified, ResolvedTarget::Container(got)) => {
                        assert_eq!(containers.as_slice(), std::slice::from_ref(got));
                    }
                    (word, target) => panic!("{word:?} resolved to {target:?}"),
                }
                check_canonical(&resolved.params);
            }
            Err(err) => {
                match &err {
                    ResolveError::InvalidParams(param_err) => panic!(
                        "params accepted by parse_line refused by resolve: {param_err} ({request:?})"
                    ),
                    ResolveError::AllNotAllowed { command } => {
                        panic!("parse_line let all through for {command}")
                    }
                    ResolveError::UnknownTarget { target, .. } => {
                        assert!(!containers.contains(target), "{target:?} is a container")
                    }
                    ResolveError::NoTarget { .. } => {
                        assert_eq!(request.target, TargetWord::Unspecified);
                        assert_ne!(containers.len(), 1);
                    }
                }
                let _ = (err.to_string(), err.code(), err.choices());
            }
        }
    }
}

fn check_canonical(params: &Params) {
    let again = commands::validate_params(params.command(), &params.to_json());
    assert_eq!(again.as_ref(), Ok(params), "params are not canonical");
    if let Params::Exec { command, .. } = params {
        commands::split_command(command).expect("a validated exec command splits");
    }
    let _: CommandName = params.command();
}
