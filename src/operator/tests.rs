use super::lexer::Lexer;
use super::parse::*;
use super::*;
use serde_json::json;

const KEY: &str = "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn named(name: &str) -> TargetWord {
    TargetWord::Named(name.to_owned())
}

fn request(command: &str, target: TargetWord, params: Value) -> CommandRequest {
    CommandRequest {
        command: command.parse().unwrap(),
        target,
        params: object(params),
        controls: Controls::default(),
    }
}

fn send(agent: &str, command: &str, target: TargetWord, params: Value) -> OperatorCommand {
    OperatorCommand::Send {
        agent: agent.to_owned(),
        request: request(command, target, params),
    }
}

fn broadcast(command: &str, target: TargetWord, params: Value) -> OperatorCommand {
    OperatorCommand::Broadcast {
        request: request(command, target, params),
    }
}

fn parsed(line: &str) -> OperatorCommand {
    match parse_line(line) {
        Ok(Some(command)) => command,
        Ok(None) => panic!("{line:?}: blank"),
        Err(err) => panic!("{line:?}: {err}"),
    }
}

fn the_request(line: &str) -> CommandRequest {
    match parsed(line) {
        OperatorCommand::Send { request, .. } | OperatorCommand::Broadcast { request } => request,
        other => panic!("{line:?}: not a request: {other:?}"),
    }
}

#[test]
fn blank_lines_are_nothing() {
    for line in ["", " ", "\t", "\n", "\r\n", "  \t  \r\n"] {
        assert_eq!(parse_line(line), Ok(None), "{line:?}");
    }
}

/// line → command. Includes every example of protocol.md's "Operator
/// command language".
#[rustfmt::skip]
#[test]
fn accepted_lines_table() {
    use OperatorCommand::*;
    use TargetWord::{All, Unspecified};
    let table: Vec<(&str, OperatorCommand)> = vec![
        // The verbs without requests.
        ("help", Help),
        ("  help  ", Help),
        ("help\n", Help),
        ("list", List),
        ("list\r\n", List),
        ("quit", Quit),
        ("show 42", Show { id: "42".into() }),
        ("show   cmd-17-a  ", Show { id: "cmd-17-a".into() }),
        ("show 'id with space'", Show { id: "id with space".into() }),
        ("history", History { agent: None }),
        ("history host1", History { agent: Some("host1".into()) }),
        ("keys", Keys { agent: None }),
        ("nodes", Nodes { agent: None }),
        ("nodes host1", Nodes { agent: Some("host1".into()) }),
        ("keys\thost1", Keys { agent: Some("host1".into()) }),
        // protocol.md's shorthand example, and its longhand.
        ("send host1 logs 3node0 100", send("host1", "logs", named("3node0"), json!({"lines": 100}))),
        ("send host1 logs 3node0 lines=100", send("host1", "logs", named("3node0"), json!({"lines": 100}))),
        ("send host1 logs lines=100 3node0", send("host1", "logs", named("3node0"), json!({"lines": 100}))),
        ("send host1 logs 3node0", send("host1", "logs", named("3node0"), json!({}))),
        ("send host1 logs", send("host1", "logs", Unspecified, json!({}))),
        ("send host1 logs lines=10000", send("host1", "logs", Unspecified, json!({"lines": 10000}))),
        ("send host1 logs 3node0 1", send("host1", "logs", named("3node0"), json!({"lines": 1}))),
        // The first positional word is the target, even when it reads as a number.
        ("send host1 logs 100", send("host1", "logs", named("100"), json!({}))),
        // `all`, for the commands that take it.
        ("send host1 start all", send("host1", "start", All, json!({}))),
        ("send host1 stop all", send("host1", "stop", All, json!({}))),
        ("send host1 status all", send("host1", "status", All, json!({}))),
        ("send host1 start \"all\"", send("host1", "start", All, json!({}))),
        ("broadcast status all", broadcast("status", All, json!({}))),
        ("broadcast status", broadcast("status", Unspecified, json!({}))),
        ("broadcast stop 3node0", broadcast("stop", named("3node0"), json!({}))),
        ("broadcast logs 3node0 20", broadcast("logs", named("3node0"), json!({"lines": 20}))),
        // Spacing and quoting.
        ("send host1 status", send("host1", "status", Unspecified, json!({}))),
        ("   send   host1    status   3node0   ", send("host1", "status", named("3node0"), json!({}))),
        ("send\thost1\tstatus\t3node0", send("host1", "status", named("3node0"), json!({}))),
        ("send 'my host' status", send("my host", "status", Unspecified, json!({}))),
        ("send my\\ host status", send("my host", "status", Unspecified, json!({}))),
        ("send host1 status \"3node0\"", send("host1", "status", named("3node0"), json!({}))),
        ("send host1 status 3no'de'0", send("host1", "status", named("3node0"), json!({}))),
        ("send host1 status \"\"", send("host1", "status", named(""), json!({}))),
        ("send host1 status 3node9", send("host1", "status", named("3node9"), json!({}))),
        // An escaped or quoted `=` makes a positional word, not a param.
        ("send host1 status a\\=b", send("host1", "status", named("a=b"), json!({}))),
        ("send host1 status \"a=b\"", send("host1", "status", named("a=b"), json!({}))),
        // exec: the rest of the line after the target, verbatim.
        ("send host1 exec 3node0 ls -la /data", send("host1", "exec", named("3node0"), json!({"command": "ls -la /data"}))),
        ("send host1 exec 3node0 env FOO=bar printenv FOO", send("host1", "exec", named("3node0"), json!({"command": "env FOO=bar printenv FOO"}))),
        ("send host1 exec 3node0    sh -c 'echo \"a=b\"'   ", send("host1", "exec", named("3node0"), json!({"command": "sh -c 'echo \"a=b\"'"}))),
        ("send host1 exec 3node0 command=ls", send("host1", "exec", named("3node0"), json!({"command": "command=ls"}))),
        ("send host1 exec 3node0 echo lines=5 all \\n", send("host1", "exec", named("3node0"), json!({"command": "echo lines=5 all \\n"}))),
        ("send host1 exec 3node0 echo a  b\t\tc", send("host1", "exec", named("3node0"), json!({"command": "echo a  b\t\tc"}))),
        ("send host1 exec command=\"ls -la\"", send("host1", "exec", Unspecified, json!({"command": "ls -la"}))),
        ("send host1 exec command='df -h' 3node0", send("host1", "exec", named("3node0"), json!({"command": "df -h"}))),
        ("broadcast exec 3node0 uptime", broadcast("exec", named("3node0"), json!({"command": "uptime"}))),
        // The other commands.
        ("send host1 restart 3node0", send("host1", "restart", named("3node0"), json!({}))),
        ("send host1 backup_keys 3node0", send("host1", "backup_keys", named("3node0"), json!({}))),
        ("send host1 restore_keys 3node0 backup_file=3node0-keys-20250108-1430.tar.gz", send("host1", "restore_keys", named("3node0"), json!({"backup_file": "3node0-keys-20250108-1430.tar.gz"}))),
        // Quoting keeps a value that reads as an integer a string.
        ("send host1 restore_keys backup_file=\"20250108\"", send("host1", "restore_keys", Unspecified, json!({"backup_file": "20250108"}))),
        ("send host1 restore_keys backup_file=2025'0108'", send("host1", "restore_keys", Unspecified, json!({"backup_file": "20250108"}))),
        ("send host1 payout 3node0", send("host1", "payout", named("3node0"), json!({}))),
        ("send host1 rotate_keys 3node0", send("host1", "rotate_keys", named("3node0"), json!({}))),
        ("send host1 check_keys 3node0", send("host1", "check_keys", named("3node0"), json!({}))),
        ("send host1 check_keys 3node0 rotate_to_check=true", send("host1", "check_keys", named("3node0"), json!({"rotate_to_check": true}))),
        ("send host1 check_keys 3node0 rotate_to_check=false", send("host1", "check_keys", named("3node0"), json!({"rotate_to_check": false}))),
        // Map params.
        ("send host1 check_keys 3node0 public_keys.babe=0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d", send("host1", "check_keys", named("3node0"), json!({"public_keys": {"babe": KEY}}))),
        ("send host1 check_keys public_keys.babe=0xab public_keys.gran=0xcd rotate_to_check=true 3node0", send("host1", "check_keys", named("3node0"), json!({"rotate_to_check": true, "public_keys": {"babe": "0xab", "gran": "0xcd"}}))),
        ("send host1 has_session_keys 3node0", send("host1", "has_session_keys", named("3node0"), json!({}))),
        ("send host1 has_session_keys 3node0 session_keys=", send("host1", "has_session_keys", named("3node0"), json!({"session_keys": ""}))),
        ("send host1 has_session_keys 3node0 session_keys=\"\"", send("host1", "has_session_keys", named("3node0"), json!({"session_keys": ""}))),
        ("send host1 has_session_keys 3node0 session_keys=0xABcd", send("host1", "has_session_keys", named("3node0"), json!({"session_keys": "0xABcd"}))),
        ("send host1 has_key 3node0 public_key=0xab", send("host1", "has_key", named("3node0"), json!({"public_key": "0xab"}))),
        ("send host1 has_key 3node0 public_key=0xab key_type=gran", send("host1", "has_key", named("3node0"), json!({"public_key": "0xab", "key_type": "gran"}))),
        ("send host1 find_validator 3node0", send("host1", "find_validator", named("3node0"), json!({}))),
        ("send host1 find_validator 3node0 deep_search=false", send("host1", "find_validator", named("3node0"), json!({"deep_search": false}))),
        ("send host1 find_validator session_keys=0x0102 deep_search=true", send("host1", "find_validator", Unspecified, json!({"session_keys": "0x0102", "deep_search": true}))),
    ];
    for (line, expected) in table {
        assert_eq!(parsed(line), expected, "{line:?}");
    }
}

/// line → (wire code, fragment of the message, fragment of the usage).
#[rustfmt::skip]
#[test]
fn refused_lines_table() {
    let table: &[(&str, &str, &str, Option<&str>)] = &[
        // Unknown verbs, including ones reserved for later.
        ("frobnicate", "unknown_command", "\"frobnicate\" is not an operator command; type help", None),
        ("HELP", "unknown_command", "type help", None),
        ("Send host1 status", "unknown_command", "type help", None),
        ("logs 3node0", "unknown_command", "type help", None),
        // Verbs with arguments they do not take, or missing ones.
        ("help me", "bad_request", "unexpected word \"me\"", Some("help")),
        ("list all", "bad_request", "unexpected word \"all\"", Some("list")),
        ("quit now", "bad_request", "unexpected word", Some("quit")),
        ("show", "bad_request", "the command id is missing", Some("show <command id>")),
        ("show ''", "bad_request", "the command id must not be empty", Some("show <command id>")),
        ("show a b", "bad_request", "unexpected word \"b\"", Some("show <command id>")),
        ("history a b", "bad_request", "unexpected word \"b\"", Some("history [agent]")),
        ("history \"\"", "bad_request", "the agent id must not be empty", Some("history [agent]")),
        ("keys a b", "bad_request", "unexpected word", Some("keys [agent]")),
        // Missing agent or command.
        ("send", "bad_request", "the agent id is missing", Some("send <agent> <command> [target] [params...]")),
        ("send   ", "bad_request", "the agent id is missing", Some("send <agent> <command>")),
        ("send \"\" status", "bad_request", "the agent id must not be empty", Some("send <agent>")),
        ("send host1", "bad_request", "the command is missing", Some("send <agent> <command> [target] [params...]")),
        ("broadcast", "bad_request", "the command is missing", Some("broadcast <command> [target] [params...]")),
        // Unknown agent commands.
        ("send host1 frobnicate 3node0", "unknown_command", "unknown command \"frobnicate\"; the commands are start, stop", Some("send <agent> <command>")),
        ("send host1 Logs 3node0", "unknown_command", "unknown command \"Logs\"", None),
        ("send host1 backup-keys 3node0", "unknown_command", "backup_keys", None),
        ("broadcast reboot", "unknown_command", "unknown command \"reboot\"", Some("broadcast <command>")),
        // lines: range and coercion.
        ("send host1 logs 3node0 20000", "invalid_params", "lines must be an integer from 1 to 10000, got 20000", Some("send <agent> logs [<container> [<lines>]] [lines=<1-10000>]")),
        ("send host1 logs 3node0 10001", "invalid_params", "got 10001", None),
        ("send host1 logs 3node0 lines=10001", "invalid_params", "got 10001", None),
        ("send host1 logs 3node0 lines=0", "invalid_params", "got 0", None),
        ("send host1 logs 3node0 lines=-5", "invalid_params", "got -5", None),
        ("send host1 logs 3node0 -5", "invalid_params", "got -5", None),
        ("send host1 logs 3node0 lines=010", "invalid_params", "got \"010\"", None),
        ("send host1 logs 3node0 lines=+5", "invalid_params", "got \"+5\"", None),
        ("send host1 logs 3node0 lines=1e3", "invalid_params", "got \"1e3\"", None),
        ("send host1 logs 3node0 lines=5.0", "invalid_params", "got \"5.0\"", None),
        ("send host1 logs 3node0 lines=\"100\"", "invalid_params", "got \"100\"", None),
        ("send host1 logs 3node0 '100'", "invalid_params", "got \"100\"", None),
        ("send host1 logs 3node0 lines=abc", "invalid_params", "got \"abc\"", None),
        ("send host1 logs 3node0 lines=", "invalid_params", "got \"\"", None),
        ("send host1 logs 3node0 lines=true", "invalid_params", "got true", None),
        ("send host1 logs 3node0 lines=99999999999999999999", "invalid_params", "got \"99999999999999999999\"", None),
        ("send host1 logs 3node0 tail", "invalid_params", "got \"tail\"", None),
        ("broadcast logs 3node0 lines=20000", "invalid_params", "got 20000", Some("broadcast logs [<container>")),
        // Duplicates and stray words.
        ("send host1 logs 3node0 100 lines=100", "invalid_params", "lines is given twice", None),
        ("send host1 logs 3node0 lines=5 100", "invalid_params", "lines is given twice", None),
        ("send host1 logs 3node0 lines=5 lines=6", "invalid_params", "lines is given twice", None),
        ("send host1 logs 3node0 100 200", "invalid_params", "unexpected word \"200\": logs takes one target", None),
        ("send host1 status 3node0 3node1", "invalid_params", "unexpected word \"3node1\"", Some("send <agent> status [<container>|all]")),
        ("send host1 restore_keys 3node0 backup.tar.gz", "invalid_params", "unexpected word \"backup.tar.gz\"", Some("backup_file=<name>")),
        ("send host1 restart 3node0 now", "invalid_params", "unexpected word \"now\"", Some("send <agent> restart [<container>]")),
        // Unknown params are refused, not ignored.
        ("send host1 status force=true", "invalid_params", "status takes no params, got \"force\"", None),
        ("send host1 logs 3node0 line=100", "invalid_params", "logs has no param \"line\"; it takes lines", None),
        ("send host1 check_keys 3node0 rotate_to_chek=true", "invalid_params", "it takes rotate_to_check, public_keys", None),
        // Malformed param words.
        ("send host1 status =5", "invalid_params", "\"=5\" is not a param", None),
        ("send host1 status --force=1", "invalid_params", "\"--force=1\" is not a param", None),
        ("send host1 check_keys 3node0 public_keys.babe.x=0xab", "invalid_params", "\"public_keys.babe.x=0xab\" is not a param", None),
        ("send host1 check_keys 3node0 public_keys.=0xab", "invalid_params", "is not a param", None),
        ("send host1 check_keys 3node0 .babe=0xab", "invalid_params", "is not a param", None),
        // Map params: mixing, duplicates, content.
        ("send host1 check_keys 3node0 public_keys=0xab public_keys.babe=0xcd", "invalid_params", "public_keys is given both as one value and as a map", None),
        ("send host1 check_keys 3node0 public_keys.babe=0xcd public_keys=0xab", "invalid_params", "public_keys is given both", None),
        ("send host1 check_keys 3node0 public_keys.babe=0xab public_keys.babe=0xcd", "invalid_params", "public_keys.babe is given twice", None),
        ("send host1 check_keys 3node0 public_keys.BABE=0xab", "invalid_params", "public_keys.BABE must be 4 lowercase", None),
        ("send host1 check_keys 3node0 public_keys.babe=123", "invalid_params", "public_keys.babe must be a hex string 0x…", None),
        ("send host1 check_keys 3node0 public_keys.babe=0x…", "invalid_params", "public_keys.babe must be a hex string", None),
        ("send host1 check_keys 3node0 public_keys=0xab", "invalid_params", "public_keys must be a map from key type", None),
        ("send host1 check_keys 3node0 rotate_to_check=yes", "invalid_params", "rotate_to_check must be true or false, got \"yes\"", None),
        ("send host1 check_keys 3node0 rotate_to_check=True", "invalid_params", "got \"True\"", None),
        ("send host1 check_keys 3node0 rotate_to_check=\"true\"", "invalid_params", "got \"true\"", None),
        ("send host1 check_keys 3node0 rotate_to_check=1", "invalid_params", "got 1", None),
        // Other commands' params.
        ("send host1 restore_keys 3node0", "invalid_params", "restore_keys needs backup_file", Some("send <agent> restore_keys [<container>] backup_file=<name>")),
        ("send host1 restore_keys 3node0 backup_file=../x.tar.gz", "invalid_params", "backup_file must be a backup file name", None),
        ("send host1 restore_keys 3node0 backup_file=.x", "invalid_params", "backup_file must be", None),
        ("send host1 restore_keys 3node0 backup_file=20250108", "invalid_params", "got 20250108", None),
        ("send host1 has_session_keys 3node0 session_keys=0x", "invalid_params", "session_keys must be a hex string", None),
        ("send host1 has_session_keys 3node0 session_keys=abc", "invalid_params", "session_keys must be", None),
        ("send host1 has_key 3node0", "invalid_params", "has_key needs public_key", Some("public_key=0x…")),
        ("send host1 has_key 3node0 public_key=ab", "invalid_params", "public_key must be a hex string", None),
        ("send host1 has_key 3node0 public_key=0xab key_type=AURA", "invalid_params", "key_type must be 4 lowercase", None),
        ("send host1 find_validator 3node0 deep_search=no", "invalid_params", "deep_search must be true or false", None),
        // `all` only for start, stop and status.
        ("send host1 logs all", "invalid_params", "all is a target only for start, stop and status; logs needs one container", Some("send <agent> logs")),
        ("send host1 restart all", "invalid_params", "restart needs one container", None),
        ("broadcast rotate_keys all", "invalid_params", "rotate_keys needs one container", Some("broadcast rotate_keys [<container>]")),
        ("send host1 exec all uptime", "invalid_params", "exec needs one container", None),
        // exec without a command, or with one that cannot be split.
        (
            "send host1 exec",
            "invalid_params",
            "exec needs command",
            Some(
                "send <agent> exec <container> <command line…> or send <agent> exec [<container>] command=<text>",
            ),
        ),
        ("send host1 exec 3node0", "invalid_params", "exec needs command", None),
        ("send host1 exec 3node0    ", "invalid_params", "exec needs command", None),
        ("send host1 exec command=", "invalid_params", "command must be a non-empty command line", None),
        ("send host1 exec 3node0 echo 'unterminated", "invalid_params", "command must be", None),
        ("send host1 exec 3node0 echo x\\", "invalid_params", "command must be", None),
        ("send host1 exec command=ls 3node0 -la", "invalid_params", "command is given twice", None),
        // Broken quoting.
        ("send host1 status \"3node0", "bad_request", "a \" quote is never closed", Some("send <agent> status")),
        ("send host1 status '3node0", "bad_request", "a ' quote is never closed", None),
        ("send host1 status 3node0\\", "bad_request", "the line ends with a backslash", None),
        ("send host1 status \"3node0\\", "bad_request", "quote is never closed", None),
        ("send 'host1 status", "bad_request", "quote is never closed", Some("send <agent> <command>")),
        ("help \"", "bad_request", "quote is never closed", Some("help")),
        ("\"send", "bad_request", "quote is never closed", None),
    ];
    for (line, code, fragment, usage) in table {
        let err = match parse_line(line) {
            Err(err) => err,
            Ok(parsed) => panic!("{line:?} should be refused, got {parsed:?}"),
        };
        assert_eq!(err.code().as_str(), *code, "{line:?}: {err}");
        let message = err.to_string();
        assert!(
            message.contains(fragment),
            "{line:?}: {message:?} lacks {fragment:?}"
        );
        if let Some(usage) = usage {
            let got = err.usage().unwrap_or_else(|| panic!("{line:?}: no usage"));
            assert!(
                got.contains(usage),
                "{line:?}: usage {got:?} lacks {usage:?}"
            );
            assert!(message.ends_with(&format!("; usage: {got}")), "{message}");
        }
        let problem = err.kind().to_string();
        assert!(!problem.ends_with('.'), "{problem}");
        assert!(!problem.starts_with(char::is_uppercase), "{problem}");
    }
}

#[test]
fn every_request_error_names_the_commands_usage() {
    for command in CommandName::ALL {
        // exec takes the rest of the line; make its split fail instead.
        let line = match command {
            CommandName::Exec => "send host1 exec 3node0 'a".to_owned(),
            _ => format!("send host1 {command} 3node0 a b c"),
        };
        let err = parse_line(&line).unwrap_err();
        assert_eq!(err.code().as_str(), "invalid_params", "{line}");
        let usage = err.usage().unwrap();
        assert!(
            usage.starts_with(&format!("send <agent> {command} ")),
            "{usage}"
        );
    }
}

#[test]
fn line_length_is_bounded() {
    let head = "send host1 exec 3node0 echo ";
    let exactly = format!("{head}{}", "x".repeat(MAX_LINE_BYTES - head.len()));
    assert_eq!(exactly.len(), MAX_LINE_BYTES);
    let request = the_request(&exactly);
    assert_eq!(
        request.params["command"].as_str().unwrap().len(),
        MAX_LINE_BYTES - 23
    );

    let over = format!("{exactly}x");
    let err = parse_line(&over).unwrap_err();
    assert_eq!(err.code().as_str(), "bad_request");
    assert_eq!(
        err.to_string(),
        "the line is 65537 bytes long, more than the 65536 allowed"
    );
    // Refused before anything else, even a blank line.
    assert_eq!(
        parse_line(&" ".repeat(MAX_LINE_BYTES + 1))
            .unwrap_err()
            .code()
            .as_str(),
        "bad_request"
    );
    // Multi-byte characters count in bytes.
    let wide = "é".repeat(MAX_LINE_BYTES / 2 + 1);
    assert_eq!(
        parse_line(&wide).unwrap_err().code().as_str(),
        "bad_request"
    );
}

#[rustfmt::skip]
#[test]
fn coercion_table() {
    let table: &[(&str, bool, Value)] = &[
        ("100", false, json!(100)),
        ("0", false, json!(0)),
        ("-0", false, json!(0)),
        ("-5", false, json!(-5)),
        ("9223372036854775807", false, json!(i64::MAX)),
        ("-9223372036854775808", false, json!(i64::MIN)),
        ("9223372036854775808", false, json!("9223372036854775808")),
        ("010", false, json!("010")),
        ("00", false, json!("00")),
        ("+5", false, json!("+5")),
        ("-", false, json!("-")),
        ("--5", false, json!("--5")),
        ("5.0", false, json!("5.0")),
        ("1e3", false, json!("1e3")),
        ("0x10", false, json!("0x10")),
        (" 5", false, json!(" 5")),
        ("٣", false, json!("٣")),
        ("true", false, json!(true)),
        ("false", false, json!(false)),
        ("True", false, json!("True")),
        ("FALSE", false, json!("FALSE")),
        ("null", false, json!("null")),
        ("", false, json!("")),
        ("abc", false, json!("abc")),
        ("100", true, json!("100")),
        ("true", true, json!("true")),
    ];
    for (text, quoted, expected) in table {
        assert_eq!(&coerce(text, *quoted), expected, "{text:?} quoted={quoted}");
    }
}

#[rustfmt::skip]
#[test]
fn words_split_like_a_shell() {
    let table: &[(&str, &[&str])] = &[
        ("a b  c", &["a", "b", "c"]),
        ("'a b' \"c d\"", &["a b", "c d"]),
        ("a'b'\"c\"d", &["abcd"]),
        ("\"a\\\"b\" \"a\\\\b\" \"a\\$b\" \"a\\xb\"", &["a\"b", "a\\b", "a$b", "a\\xb"]),
        ("'a\\b'", &["a\\b"]),
        ("a\\ b", &["a b"]),
        ("''", &[""]),
        ("'' \"\"", &["", ""]),
        ("é ü", &["é", "ü"]),
    ];
    for (line, expected) in table {
        let mut lexer = Lexer { line, pos: 0 };
        let mut words = Vec::new();
        while let Some(word) = lexer.next_word().unwrap() {
            words.push(word.text);
        }
        assert_eq!(&words, expected, "{line:?}");
    }
}

/// (line, the agent's containers, Ok((wire target, wire params)) or
/// Err((code, fragment))).
#[rustfmt::skip]
#[test]
fn resolve_table() {
    type Expected = Result<(&'static str, Value), (&'static str, &'static str)>;
    let two = &["3node0", "3node1"][..];
    let one = &["3node0"][..];
    let none = &[][..];
    let table: Vec<(&str, &[&str], Expected)> = vec![
        ("send host1 logs 3node0 100", two, Ok(("3node0", json!({"lines": 100})))),
        ("send host1 logs 3node1", two, Ok(("3node1", json!({"lines": 50})))),
        ("send host1 logs", one, Ok(("3node0", json!({"lines": 50})))),
        ("send host1 logs lines=7", one, Ok(("3node0", json!({"lines": 7})))),
        (
            "send host1 logs",
            two,
            Err((
                "unknown_target",
                "no container named, and the agent runs 2: 3node0, 3node1; name one",
            )),
        ),
        (
            "send host1 logs",
            none,
            Err((
                "unknown_target",
                "no container named, and the agent reports no containers",
            )),
        ),
        (
            "send host1 logs 3node9 100",
            two,
            Err((
                "unknown_target",
                "the agent has no container \"3node9\"; its containers: 3node0, 3node1",
            )),
        ),
        (
            "send host1 status 3node0",
            none,
            Err((
                "unknown_target",
                "the agent has no container \"3node0\"; it reports no containers",
            )),
        ),
        ("send host1 status 3NODE0", one, Err(("unknown_target", "no container \"3NODE0\""))),
        ("send host1 status \"\"", one, Err(("unknown_target", "no container \"\""))),
        // A number where the target goes is a container name, not lines.
        ("send host1 logs 100", one, Err(("unknown_target", "no container \"100\""))),
        ("send host1 logs 100", &["100"], Ok(("100", json!({"lines": 50})))),
        ("send host1 status all", two, Ok(("all", json!({})))),
        ("send host1 status all", none, Ok(("all", json!({})))),
        ("send host1 start all", two, Ok(("all", json!({})))),
        ("broadcast stop all", one, Ok(("all", json!({})))),
        ("broadcast status", one, Ok(("3node0", json!({})))),
        ("broadcast status", two, Err(("unknown_target", "name one after the command"))),
        ("send host1 exec 3node0 ls -la", one, Ok(("3node0", json!({"command": "ls -la"})))),
        ("send host1 exec command=uptime", one, Ok(("3node0", json!({"command": "uptime"})))),
        ("send host1 restore_keys 3node1 backup_file=b.tar.gz", two, Ok(("3node1", json!({"backup_file": "b.tar.gz"})))),
        ("send host1 check_keys", one, Ok(("3node0", json!({"rotate_to_check": false})))),
        (
            "send host1 check_keys 3node0 public_keys.babe=0xAB rotate_to_check=true",
            one,
            Ok((
                "3node0",
                json!({"rotate_to_check": true, "public_keys": {"babe": "0xab"}}),
            )),
        ),
        ("send host1 has_session_keys", one, Ok(("3node0", json!({"session_keys": ""})))),
        ("send host1 has_key public_key=0xAB", one, Ok(("3node0", json!({"public_key": "0xab", "key_type": "aura"})))),
        ("send host1 find_validator", one, Ok(("3node0", json!({"deep_search": true})))),
        ("send host1 find_validator session_keys=", one, Ok(("3node0", json!({"deep_search": true})))),
    ];
    for (line, containers, expected) in table {
        let containers: Vec<String> = containers.iter().map(|c| c.to_string()).collect();
        let request = the_request(line);
        match (resolve(&request, &containers), expected) {
            (Ok(resolved), Ok((target, params))) => {
                assert_eq!(resolved.target.as_str(), target, "{line:?}");
                assert_eq!(resolved.command(), request.command, "{line:?}");
                assert_eq!(Value::Object(resolved.params.to_json()), params, "{line:?}");
            }
            (Err(err), Err((code, fragment))) => {
                assert_eq!(err.code().as_str(), code, "{line:?}: {err}");
                let message = err.to_string();
                assert!(
                    message.contains(fragment),
                    "{line:?}: {message:?} lacks {fragment:?}"
                );
                if code == "unknown_target" {
                    assert_eq!(err.choices(), containers, "{line:?}");
                }
            }
            (got, expected) => panic!("{line:?}: got {got:?}, expected {expected:?}"),
        }
    }
}

#[test]
fn resolve_does_not_trust_a_hand_built_request() {
    let containers = vec!["3node0".to_owned()];
    let all_logs = request("logs", TargetWord::All, json!({}));
    let err = resolve(&all_logs, &containers).unwrap_err();
    assert_eq!(
        err,
        ResolveError::AllNotAllowed {
            command: CommandName::Logs
        }
    );
    assert_eq!(err.code().as_str(), "invalid_params");
    assert!(err.choices().is_empty());

    let too_many = request("logs", named("3node0"), json!({"lines": 20000}));
    let err = resolve(&too_many, &containers).unwrap_err();
    assert!(matches!(err, ResolveError::InvalidParams(_)), "{err:?}");
    assert_eq!(err.code().as_str(), "invalid_params");
    assert_eq!(
        err.to_string(),
        "lines must be an integer from 1 to 10000, got 20000"
    );

    // Params are judged before the target, so a broadcast with bad params
    // fails the same way on every agent.
    let both_bad = request("logs", named("nope"), json!({"lines": 0}));
    assert_eq!(
        resolve(&both_bad, &containers).unwrap_err().code().as_str(),
        "invalid_params"
    );
}

#[test]
fn help_lists_every_verb_and_command() {
    let help = help_text();
    for verb in VERBS {
        assert!(help.contains(verb.usage), "{}", verb.usage);
        assert!(help.contains(verb.description), "{}", verb.description);
        // Every verb of the table is parsed by its own row.
        let line = match verb.name {
            "send" => "send host1 status".to_owned(),
            "broadcast" => "broadcast status".to_owned(),
            "approve" => "approve 1".to_owned(),
            "show" => "show 1".to_owned(),
            name => name.to_owned(),
        };
        assert!(parse_line(&line).is_ok(), "{line}");
    }
    for command in CommandName::ALL {
        for form in command_syntax(command).0 {
            assert!(
                help.contains(&format!("{command} {form}")),
                "{command} {form}"
            );
        }
    }
    for line in help.lines() {
        assert!(line.chars().count() <= 90, "help line too long: {line:?}");
    }
    let names: Vec<&str> = VERBS.iter().map(|verb| verb.name).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
}
