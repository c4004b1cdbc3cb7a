//! The verbs table (which also feeds `help`) and [`parse_line`]: words into
//! an [`OperatorCommand`].
use serde_json::{Map, Value};

use super::error::{ParseError, ParseErrorKind};
use super::lexer::Lexer;
use super::*;
use crate::commands::{self, CommandName};

/// One verb of the language: its name, usage and `help` line, and its parser
/// (which gets the words after the verb).
pub(super) struct Verb {
    pub(super) name: &'static str,
    pub(super) usage: &'static str,
    pub(super) description: &'static str,
    pub(super) parse: fn(&mut Lexer<'_>, &Verb) -> Result<OperatorCommand, ParseError>,
}

/// The language, in `help` order.
pub(super) const VERBS: &[Verb] = &[
    Verb {
        name: "help",
        usage: "help",
        description: "list commands",
        parse: parse_help,
    },
    Verb {
        name: "list",
        usage: "list",
        description: "connected agents: id, host, version, since, last seen, containers",
        parse: parse_list,
    },
    Verb {
        name: "send",
        usage: "send <agent> <command> [target] [params...]",
        description: "run a command on one agent",
        parse: parse_send,
    },
    Verb {
        name: "broadcast",
        usage: "broadcast <command> [target] [params...]",
        description: "run a command on every connected agent",
        parse: parse_broadcast,
    },
    Verb {
        name: "show",
        usage: "show <command id>",
        description: "a command's status, result or error",
        parse: parse_show,
    },
    Verb {
        name: "approve",
        usage: "approve <command id>",
        description: "co-sign a command held for more operator signatures (with a key)",
        parse: parse_approve,
    },
    Verb {
        name: "history",
        usage: "history [agent]",
        description: "recent commands and their outcome",
        parse: parse_history,
    },
    Verb {
        name: "keys",
        usage: "keys [agent]",
        description: "stored session keys, newest first",
        parse: parse_keys,
    },
    Verb {
        name: "nodes",
        usage: "nodes [agent]",
        description: "every node of the fleet: state, heights, peers, sync, role, version",
        parse: parse_nodes,
    },
    Verb {
        name: "backups",
        usage: "backups [agent]",
        description: "key backups each agent reported, and how old the newest one is",
        parse: parse_backups,
    },
    Verb {
        name: "alerts",
        usage: "alerts",
        description: "alerts firing now: severity, since when, agent and container",
        parse: parse_alerts,
    },
    Verb {
        name: "schedules",
        usage: "schedules",
        description: "the server's schedules, their next slot and what they are doing",
        parse: parse_schedules,
    },
    Verb {
        name: "quit",
        usage: "quit",
        description: "stop the server",
        parse: parse_quit,
    },
];

/// How each agent command is written after `send <agent>` or `broadcast`
/// (alternatives, if several) and what it does, for `help` and usage lines.
pub(super) fn command_syntax(command: CommandName) -> (&'static [&'static str], &'static str) {
    match command {
        CommandName::Start => (&["[<container>|all]"], "start the container(s)"),
        CommandName::Stop => (&["[<container>|all]"], "stop the container(s)"),
        CommandName::Restart => (&["[<container>]"], "restart the container"),
        CommandName::Logs => (
            &["[<container> [<lines>]] [lines=<1-10000>]"],
            "the container's last log lines (default 50)",
        ),
        CommandName::Status => (
            &["[<container>|all]"],
            "state, health, uptime, image, restart count",
        ),
        CommandName::Exec => (
            &[
                "<container> <command line…>",
                "[<container>] command=<text>",
            ],
            "run a program in the container, no shell (if the agent permits it)",
        ),
        CommandName::BackupKeys => (
            &["[<container>]"],
            "archive keystore and network dirs (node stopped meanwhile)",
        ),
        CommandName::RestoreKeys => (
            &["[<container>] backup_file=<name>"],
            "restore a key backup (node stopped meanwhile)",
        ),
        CommandName::Payout => (&["[<container>]"], "run the agent's payout script"),
        CommandName::RotateKeys => (&["[<container>]"], "generate new session keys"),
        CommandName::CheckKeys => (
            &["[<container>] [rotate_to_check=true|false] [public_keys.<type>=0x…]..."],
            "whether the node holds its session keys",
        ),
        CommandName::HasSessionKeys => (
            &["[<container>] [session_keys=0x…]"],
            "whether the node holds these session keys (default: the last known)",
        ),
        CommandName::HasKey => (
            &["[<container>] public_key=0x… [key_type=<type, default aura>]"],
            "whether the node holds one public key",
        ),
        CommandName::FindValidator => (
            &["[<container>] [session_keys=0x…] [deep_search=true|false]"],
            "the validator account behind the session keys",
        ),
    }
}

/// `send` or `broadcast`: the words before the agent command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RequestVerb {
    Send,
    Broadcast,
}

impl RequestVerb {
    fn prefix(self) -> &'static str {
        match self {
            RequestVerb::Send => "send <agent>",
            RequestVerb::Broadcast => "broadcast",
        }
    }
}

/// The usage line of one agent command, e.g.
/// `send <agent> logs [<container> [<lines>]] [lines=<1-10000>]`.
fn command_usage(verb: RequestVerb, command: CommandName) -> String {
    let (forms, _) = command_syntax(command);
    forms
        .iter()
        .map(|form| format!("{} {command} {form}", verb.prefix()))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The text `help` prints: verbs, agent commands, param syntax.
pub fn help_text() -> String {
    // One entry per line, its description indented below: the usages are
    // too wide for two columns in 80-column terminals.
    let mut text = String::from("commands:\n");
    for verb in VERBS {
        text.push_str(&format!("  {}\n      {}\n", verb.usage, verb.description));
    }
    text.push_str("\nagent commands, after `send <agent>` or `broadcast`:\n");
    for command in CommandName::ALL {
        let (forms, description) = command_syntax(command);
        for form in forms {
            text.push_str(&format!("  {command} {form}\n"));
        }
        text.push_str(&format!("      {description}\n"));
    }
    text.push_str(
        "\nthe target is a container of the agent, or all (start, stop, status); without one,\n\
         the agent's only container. params are key=value words; integers and true/false are\n\
         typed unless quoted; a map entry is key.entry=value (public_keys.babe=0x…).\n\
         `logs <container> 100` means lines=100; after `exec <container>` the rest of the line\n\
         is the command.\n",
    );
    text
}

/// Parse one operator line. `Ok(None)` for a blank line.
pub fn parse_line(line: &str) -> Result<Option<OperatorCommand>, ParseError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(ParseError::new(
            ParseErrorKind::LineTooLong { bytes: line.len() },
            None,
        ));
    }
    let mut lexer = Lexer { line, pos: 0 };
    let Some(first) = lexer
        .next_word()
        .map_err(|kind| ParseError::new(kind, None))?
    else {
        return Ok(None);
    };
    let verb = VERBS
        .iter()
        .find(|verb| verb.name == first.text)
        .ok_or_else(|| ParseError::new(ParseErrorKind::UnknownVerb { verb: first.text }, None))?;
    (verb.parse)(&mut lexer, verb).map(Some)
}

fn verb_error(verb: &Verb) -> impl Fn(ParseErrorKind) -> ParseError + '_ {
    |kind| ParseError::new(kind, Some(verb.usage.to_owned()))
}

fn expect_end(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<(), ParseError> {
    match lexer.next_word().map_err(verb_error(verb))? {
        None => Ok(()),
        Some(word) => Err(verb_error(verb)(ParseErrorKind::UnexpectedArgument {
            word: word.text,
        })),
    }
}

fn optional_argument(
    lexer: &mut Lexer<'_>,
    verb: &Verb,
    what: &'static str,
) -> Result<Option<String>, ParseError> {
    let word = lexer.next_word().map_err(verb_error(verb))?;
    if word.as_ref().is_some_and(|word| word.text.is_empty()) {
        return Err(verb_error(verb)(ParseErrorKind::EmptyArgument { what }));
    }
    Ok(word.map(|word| word.text))
}

fn required_argument(
    lexer: &mut Lexer<'_>,
    verb: &Verb,
    what: &'static str,
) -> Result<String, ParseError> {
    optional_argument(lexer, verb, what)?
        .ok_or_else(|| verb_error(verb)(ParseErrorKind::MissingArgument { what }))
}

fn parse_help(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<OperatorCommand, ParseError> {
    expect_end(lexer, verb)?;
    Ok(OperatorCommand::Help)
}

fn parse_list(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<OperatorCommand, ParseError> {
    expect_end(lexer, verb)?;
    Ok(OperatorCommand::List)
}

fn parse_alerts(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<OperatorCommand, ParseError> {
    expect_end(lexer, verb)?;
    Ok(OperatorCommand::Alerts)
}

fn parse_schedules(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<OperatorCommand, ParseError> {
    expect_end(lexer, verb)?;
    Ok(OperatorCommand::Schedules)
}

fn parse_quit(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<OperatorCommand, ParseError> {
    expect_end(lexer, verb)?;
    Ok(OperatorCommand::Quit)
}

fn parse_show(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<OperatorCommand, ParseError> {
    let id = required_argument(lexer, verb, "the command id")?;
    expect_end(lexer, verb)?;
    Ok(OperatorCommand::Show { id })
}

fn parse_approve(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<OperatorCommand, ParseError> {
    let id = required_argument(lexer, verb, "the command id")?;
    expect_end(lexer, verb)?;
    Ok(OperatorCommand::Approve { id })
}

fn parse_history(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<OperatorCommand, ParseError> {
    let agent = optional_argument(lexer, verb, "the agent id")?;
    expect_end(lexer, verb)?;
    Ok(OperatorCommand::History { agent })
}

fn parse_keys(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<OperatorCommand, ParseError> {
    let agent = optional_argument(lexer, verb, "the agent id")?;
    expect_end(lexer, verb)?;
    Ok(OperatorCommand::Keys { agent })
}

fn parse_nodes(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<OperatorCommand, ParseError> {
    let agent = optional_argument(lexer, verb, "the agent id")?;
    expect_end(lexer, verb)?;
    Ok(OperatorCommand::Nodes { agent })
}

fn parse_backups(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<OperatorCommand, ParseError> {
    let agent = optional_argument(lexer, verb, "the agent id")?;
    expect_end(lexer, verb)?;
    Ok(OperatorCommand::Backups { agent })
}

fn parse_send(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<OperatorCommand, ParseError> {
    let agent = required_argument(lexer, verb, "the agent id")?;
    let request = parse_request(lexer, verb, RequestVerb::Send)?;
    Ok(OperatorCommand::Send { agent, request })
}

fn parse_broadcast(lexer: &mut Lexer<'_>, verb: &Verb) -> Result<OperatorCommand, ParseError> {
    let request = parse_request(lexer, verb, RequestVerb::Broadcast)?;
    Ok(OperatorCommand::Broadcast { request })
}

/// The words after `send <agent>` or `broadcast`: see the module docs.
fn parse_request(
    lexer: &mut Lexer<'_>,
    verb: &Verb,
    request_verb: RequestVerb,
) -> Result<CommandRequest, ParseError> {
    let name = lexer
        .next_word()
        .map_err(verb_error(verb))?
        .ok_or_else(|| {
            verb_error(verb)(ParseErrorKind::MissingArgument {
                what: "the command",
            })
        })?;
    let command: CommandName = name
        .text
        .parse()
        .map_err(|err| verb_error(verb)(ParseErrorKind::UnknownCommand(err)))?;
    let usage = command_usage(request_verb, command);
    let error = |kind| ParseError::new(kind, Some(usage.clone()));

    let mut params = Map::new();
    let mut controls = Controls::default();
    let mut target = TargetWord::Unspecified;
    let mut took_lines_shorthand = false;
    while let Some(word) = lexer.next_word().map_err(error)? {
        if let Some((key, value)) = word.as_param()
            && take_control(&mut controls, command, request_verb, key, value).map_err(error)?
        {
            continue;
        }
        if let Some((key, value)) = word.as_param() {
            add_param(&mut params, key, coerce(value, word.quoted)).map_err(error)?;
        } else if target == TargetWord::Unspecified {
            target = if word.text == "all" {
                TargetWord::All
            } else {
                TargetWord::Named(word.text)
            };
            if command == CommandName::Exec {
                // The rest of the line is the command, not words of ours: it
                // keeps its quotes, `=` signs and even unbalanced quotes (which
                // validation then refuses, as the agent's split would).
                let rest = lexer.rest();
                if !rest.is_empty() {
                    add_param(&mut params, "command", Value::from(rest)).map_err(error)?;
                }
                break;
            }
        } else if command == CommandName::Logs && !took_lines_shorthand {
            took_lines_shorthand = true;
            add_param(&mut params, "lines", coerce(&word.text, word.quoted)).map_err(error)?;
        } else {
            return Err(error(ParseErrorKind::UnexpectedWord {
                command,
                word: word.text,
            }));
        }
    }
    if target == TargetWord::All && !command.allows_all_target() {
        return Err(error(ParseErrorKind::AllNotAllowed { command }));
    }
    if controls.force != controls.reason.is_some() {
        return Err(error(ParseErrorKind::BadControl {
            detail: "force=true and reason=\"…\" go together: the reason is recorded in the \
                     audit log"
                .into(),
        }));
    }
    commands::validate_params(command, &params)
        .map_err(|err| error(ParseErrorKind::InvalidParams(err)))?;
    Ok(CommandRequest {
        command,
        target,
        params,
        controls,
    })
}

/// Take `key=value` into `controls` when it is one of the server's words
/// for this command (`Ok(true)`); `Ok(false)` leaves it a param.
fn take_control(
    controls: &mut Controls,
    command: CommandName,
    request_verb: RequestVerb,
    key: &str,
    value: &str,
) -> Result<bool, ParseErrorKind> {
    let bad = |detail: String| Err(ParseErrorKind::BadControl { detail });
    let forcible = matches!(command, CommandName::Start | CommandName::RestoreKeys);
    match key {
        "force" if forcible => {
            if value != "true" || controls.force {
                return bad("force takes one value, true (`force=true reason=\"…\"`)".into());
            }
            controls.force = true;
        }
        "reason" if forcible => {
            let reason = value.trim();
            if reason.is_empty() || reason.len() > MAX_REASON_BYTES || controls.reason.is_some() {
                return bad(format!(
                    "reason= takes one non-empty text of at most {MAX_REASON_BYTES} bytes"
                ));
            }
            controls.reason = Some(reason.to_owned());
        }
        "batch" if request_verb == RequestVerb::Broadcast => match value.parse::<usize>() {
            Ok(n) if (1..=MAX_BATCH).contains(&n) && controls.batch.is_none() => {
                controls.batch = Some(n)
            }
            _ => return bad(format!("batch= takes one number from 1 to {MAX_BATCH}")),
        },
        "signatures" => match value.parse::<usize>() {
            Ok(k)
                if (1..=crate::operator_keys::MAX_SIGNATURES).contains(&k)
                    && controls.signatures.is_none() =>
            {
                controls.signatures = Some(k)
            }
            _ => {
                return bad(format!(
                    "signatures= takes one number from 1 to {}",
                    crate::operator_keys::MAX_SIGNATURES
                ));
            }
        },
        _ => return Ok(false),
    }
    Ok(true)
}

fn is_param_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Add `key=value` or `key.entry=value` to `params`.
fn add_param(
    params: &mut Map<String, Value>,
    key: &str,
    value: Value,
) -> Result<(), ParseErrorKind> {
    let bad_name = || ParseErrorKind::BadParamName {
        word: format!("{key}={}", value_text(&value)),
    };
    let (name, entry) = match key.split_once('.') {
        None => (key, None),
        Some((name, entry)) => (name, Some(entry)),
    };
    // Entries are checked for shape only; validate_params judges their
    // content (a key type must be 4 lowercase characters, …).
    if !is_param_name(name) || entry.is_some_and(|entry| entry.is_empty() || entry.contains('.')) {
        return Err(bad_name());
    }
    match (entry, params.get_mut(name)) {
        (None, None) => {
            params.insert(name.to_owned(), value);
        }
        // Words never make objects, so an object here came from `name.entry=`.
        (None, Some(Value::Object(_))) => {
            return Err(ParseErrorKind::MixedMapParam {
                key: name.to_owned(),
            });
        }
        (None, Some(_)) => {
            return Err(ParseErrorKind::DuplicateParam {
                key: name.to_owned(),
            });
        }
        (Some(entry), None) => {
            let mut map = Map::new();
            map.insert(entry.to_owned(), value);
            params.insert(name.to_owned(), Value::Object(map));
        }
        (Some(entry), Some(Value::Object(map))) => {
            if map.contains_key(entry) {
                return Err(ParseErrorKind::DuplicateParam {
                    key: key.to_owned(),
                });
            }
            map.insert(entry.to_owned(), value);
        }
        (Some(_), Some(_)) => {
            return Err(ParseErrorKind::MixedMapParam {
                key: name.to_owned(),
            });
        }
    }
    Ok(())
}

/// A coerced value back as the operator wrote it, for error messages.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The type a written value gets: see the module docs.
pub(super) fn coerce(text: &str, quoted: bool) -> Value {
    if quoted {
        return Value::from(text);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ if is_json_integer(text) => text
            .parse::<i64>()
            .map_or_else(|_| Value::from(text), Value::from),
        _ => Value::from(text),
    }
}

/// `-?(0|[1-9][0-9]*)`: an integer as JSON writes it.
fn is_json_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    match digits.as_bytes() {
        [b'0'] => true,
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
        [] => false,
    }
}
