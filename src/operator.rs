//! The operator command language: one line of the server's stdin (or control
//! socket) in, one [`OperatorCommand`] out. Pure: no I/O, no knowledge of which
//! agents are connected.
//!
//! Parsing happens in two steps because the second needs the agent's state:
//! 1. [`parse_line`] turns the line into words and the words into a command.
//!    For `send`/`broadcast` this is a [`CommandRequest`] whose target is only a
//!    word ([`TargetWord`]); its params are already checked with
//!    [`commands::validate_params`], so a bad param is reported once, even for
//!    a broadcast.
//! 2. [`resolve`] checks the target word against one agent's containers (as it
//!    last reported them) and yields what goes on the wire. For `broadcast` the
//!    server resolves once per agent.
//!
//! The verbs live in one table (`VERBS`) that also feeds `help`; a new verb
//! is a new row and a new [`OperatorCommand`] variant.
//!
//! # Words
//! Words are separated by blanks (space, tab, CR, LF) and quoted like a POSIX shell:
//! `'…'` is literal, `"…"` honours `\"`, `\\`, `\$` and `` \` ``, a backslash
//! outside quotes escapes the next character. Nothing is expanded.
//!
//! # Requests: `send <agent> <command> [target] [params...]`
//! - A word with an unquoted `=` whose key part is unquoted is a param
//!   `key=value`; a map entry is `key.entry=value` (`public_keys.babe=0x…`).
//!   A key given twice, or as both a value and a map, is refused. Docker
//!   container names cannot contain `=`, so a param is never a container.
//! - A value that is written as a JSON integer (`-?(0|[1-9][0-9]*)`, fitting an
//!   i64) becomes a number, `true`/`false` a boolean, anything else a string.
//!   Any quoting in a value keeps it a string (`backup_file="20250108"`), and
//!   so does a leading zero (`010` is the string "010", which `lines` then
//!   refuses: no silent octal or decimal guess).
//! - Every other word is positional. The first is always the target: `all`, or
//!   the name of a container, checked later by [`resolve`] (a word that names
//!   no container of the agent is refused there with `unknown_target`). `all`
//!   is reserved: a container named `all` cannot be addressed by name.
//! - Shorthands: after `logs`' target one more positional word is `lines`
//!   (coerced as above: `logs 3node0 100`); after `exec`'s target the rest of
//!   the line, verbatim and trimmed, is `command` (`=` and quotes included; the
//!   agent splits it into argv). Any other positional word is refused
//!   (`invalid_params`) with the command's usage.
//! - No positional word: the target is the agent's only container; an agent
//!   with none or several gets a [`ResolveError::NoTarget`] listing them. The
//!   shorthands need an explicit target (`logs 100` names a container "100").
//!
//! # Error codes
//! Every error carries the wire code it maps to and, where one applies, the
//! usage line to type instead: a bad line or missing/extra argument of a verb
//! is `bad_request`; an unknown verb or agent command `unknown_command`; any
//! param problem, an unexpected positional word, and `all` for a command that
//! does not allow it (a property of the command, true of every agent) are
//! `invalid_params`; a target that is not one of the agent's containers, or no
//! target when the agent does not have exactly one container, `unknown_target`.

use std::fmt;

use serde_json::{Map, Value};

use crate::commands::{self, CommandName, ParamError, Params, UnknownCommand};

/// Longest line accepted, in bytes (newline excluded): 64 KiB.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One parsed operator line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorCommand {
    Help,
    List,
    Send {
        agent: String,
        request: CommandRequest,
    },
    Broadcast {
        request: CommandRequest,
    },
    Show {
        id: String,
    },
    History {
        agent: Option<String>,
    },
    Keys {
        agent: Option<String>,
    },
    /// Every node of the fleet (or of one agent) in one table.
    Nodes {
        agent: Option<String>,
    },
    /// Key backups the agents reported, newest first, and how old the newest is.
    Backups {
        agent: Option<String>,
    },
    /// What fires now.
    Alerts,
    /// The schedule file and its state.
    Schedules,
    /// Co-sign a command the server holds until it has its signatures.
    Approve {
        id: String,
    },
    Quit,
}

/// The target as written, before it is checked against an agent's containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetWord {
    /// A word that should name one of the agent's containers.
    Named(String),
    /// The word `all`; [`parse_line`] only accepts it for commands that allow it.
    All,
    /// No positional word: the agent's only container, if it has exactly one.
    Unspecified,
}

/// An agent command as the operator wrote it, params checked, target not yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRequest {
    pub command: CommandName,
    pub target: TargetWord,
    /// The params as written (after coercion and shorthands), without
    /// defaults; [`resolve`] gives the canonical form.
    pub params: Map<String, Value>,
    /// Words for the server, never sent to the agent (see [`Controls`]).
    pub controls: Controls,
}

/// Words of a request line that the server acts on and strips before the
/// params reach the agent (which refuses params it does not know):
/// - `force=true reason="…"` (only for `start` and `restore_keys`): send
///   although the double-sign check refuses; both words are needed, and
///   the reason goes into the audit log.
/// - `batch=N` (only for `broadcast`): roll the command N agents at a time,
///   stopping at the first failure.
/// - `signatures=K` (any command): hold it until K operator signatures are
///   collected (`approve <id>`), then send it with them.
///
/// For any other command these words stay params and are refused as such.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Controls {
    pub force: bool,
    pub reason: Option<String>,
    pub batch: Option<usize>,
    /// `signatures=K` (1 to 16): hold the command until K operators signed
    /// it (`approve <id>`), then send it.
    pub signatures: Option<usize>,
}

/// Largest `batch=N`.
pub const MAX_BATCH: usize = 1000;
/// Longest `reason=…`, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// A target checked against one agent's containers: the wire's `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolvedTarget {
    Container(String),
    All,
}

impl ResolvedTarget {
    /// The wire value: the container name, or `"all"`.
    pub fn as_str(&self) -> &str {
        match self {
            ResolvedTarget::Container(name) => name,
            ResolvedTarget::All => "all",
        }
    }
}

/// A request resolved for one agent: everything a wire `command` needs but
/// its id and timestamp. `params.to_json()` is the wire's `params`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedCommand {
    pub target: ResolvedTarget,
    pub params: Params,
}

impl ResolvedCommand {
    pub fn command(&self) -> CommandName {
        self.params.command()
    }
}

/// Check `request`'s target against the containers one agent last reported,
/// and its params once more (a hand-built request is not trusted either).
pub fn resolve(
    request: &CommandRequest,
    containers: &[String],
) -> Result<ResolvedCommand, ResolveError> {
    let command = request.command;
    let params =
        commands::validate_params(command, &request.params).map_err(ResolveError::InvalidParams)?;
    let target = match &request.target {
        TargetWord::All if command.allows_all_target() => ResolvedTarget::All,
        TargetWord::All => return Err(ResolveError::AllNotAllowed { command }),
        TargetWord::Named(name) if containers.contains(name) => {
            ResolvedTarget::Container(name.clone())
        }
        TargetWord::Named(name) => {
            return Err(ResolveError::UnknownTarget {
                target: name.clone(),
                containers: containers.to_vec(),
            });
        }
        TargetWord::Unspecified => match containers {
            [only] => ResolvedTarget::Container(only.clone()),
            _ => {
                return Err(ResolveError::NoTarget {
                    containers: containers.to_vec(),
                });
            }
        },
    };
    Ok(ResolvedCommand { target, params })
}

/// Why a request cannot go to a given agent. The server prefixes the agent id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// No target written, and the agent does not have exactly one container.
    NoTarget {
        containers: Vec<String>,
    },
    /// The target word names none of the agent's containers.
    UnknownTarget {
        target: String,
        containers: Vec<String>,
    },
    /// `all` for a command that takes one container.
    AllNotAllowed {
        command: CommandName,
    },
    InvalidParams(ParamError),
}

impl ResolveError {
    /// The wire error code this maps to.
    pub fn code(&self) -> &'static str {
        match self {
            ResolveError::NoTarget { .. } | ResolveError::UnknownTarget { .. } => "unknown_target",
            ResolveError::AllNotAllowed { .. } | ResolveError::InvalidParams(_) => "invalid_params",
        }
    }

    /// The containers the operator can choose from (empty when not relevant).
    pub fn choices(&self) -> &[String] {
        match self {
            ResolveError::NoTarget { containers }
            | ResolveError::UnknownTarget { containers, .. } => containers,
            ResolveError::AllNotAllowed { .. } | ResolveError::InvalidParams(_) => &[],
        }
    }
}

fn write_containers(f: &mut fmt::Formatter<'_>, containers: &[String]) -> fmt::Result {
    for (i, name) in containers.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        f.write_str(name)?;
    }
    Ok(())
}

fn write_all_not_allowed(f: &mut fmt::Formatter<'_>, command: CommandName) -> fmt::Result {
    write!(
        f,
        "all is a target only for start, stop and status; {command} needs one container"
    )
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NoTarget { containers } if containers.is_empty() => {
                f.write_str("no container named, and the agent reports no containers")
            }
            ResolveError::NoTarget { containers } => {
                write!(
                    f,
                    "no container named, and the agent runs {}: ",
                    containers.len()
                )?;
                write_containers(f, containers)?;
                f.write_str("; name one after the command")
            }
            ResolveError::UnknownTarget { target, containers } if containers.is_empty() => {
                write!(
                    f,
                    "the agent has no container {target:?}; it reports no containers"
                )
            }
            ResolveError::UnknownTarget { target, containers } => {
                write!(f, "the agent has no container {target:?}; its containers: ")?;
                write_containers(f, containers)
            }
            ResolveError::AllNotAllowed { command } => write_all_not_allowed(f, *command),
            ResolveError::InvalidParams(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for ResolveError {}

/// A line that cannot be parsed: what is wrong, and the usage line to follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    kind: ParseErrorKind,
    usage: Option<String>,
}

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseErrorKind {
    LineTooLong {
        bytes: usize,
    },
    UnterminatedQuote {
        quote: char,
    },
    TrailingBackslash,
    /// The first word is no verb of the language.
    UnknownVerb {
        verb: String,
    },
    /// `send`/`broadcast` name a command outside the catalog.
    UnknownCommand(UnknownCommand),
    /// A verb's argument is absent (`what`: "the agent id", …).
    MissingArgument {
        what: &'static str,
    },
    /// A verb's argument is the empty string (`""`).
    EmptyArgument {
        what: &'static str,
    },
    /// A verb got more words than it takes.
    UnexpectedArgument {
        word: String,
    },
    /// A word with `=` whose key is not a param name.
    BadParamName {
        word: String,
    },
    DuplicateParam {
        key: String,
    },
    /// `key=…` and `key.entry=…` both given.
    MixedMapParam {
        key: String,
    },
    /// A positional word after the target (and shorthand) of a request.
    UnexpectedWord {
        command: CommandName,
        word: String,
    },
    AllNotAllowed {
        command: CommandName,
    },
    InvalidParams(ParamError),
    /// A bad `force=`, `reason=` or `batch=` word (see [`Controls`]).
    BadControl {
        detail: String,
    },
}

impl ParseError {
    fn new(kind: ParseErrorKind, usage: Option<String>) -> Self {
        ParseError { kind, usage }
    }

    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// The usage line of the verb or command the error is about, if any.
    pub fn usage(&self) -> Option<&str> {
        self.usage.as_deref()
    }

    /// The wire error code this maps to.
    pub fn code(&self) -> &'static str {
        match &self.kind {
            ParseErrorKind::LineTooLong { .. }
            | ParseErrorKind::UnterminatedQuote { .. }
            | ParseErrorKind::TrailingBackslash
            | ParseErrorKind::MissingArgument { .. }
            | ParseErrorKind::EmptyArgument { .. }
            | ParseErrorKind::UnexpectedArgument { .. } => "bad_request",
            ParseErrorKind::UnknownVerb { .. } | ParseErrorKind::UnknownCommand(_) => {
                "unknown_command"
            }
            ParseErrorKind::BadParamName { .. }
            | ParseErrorKind::DuplicateParam { .. }
            | ParseErrorKind::MixedMapParam { .. }
            | ParseErrorKind::UnexpectedWord { .. }
            | ParseErrorKind::AllNotAllowed { .. }
            | ParseErrorKind::BadControl { .. }
            | ParseErrorKind::InvalidParams(_) => "invalid_params",
        }
    }
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseErrorKind::LineTooLong { bytes } => write!(
                f,
                "the line is {bytes} bytes long, more than the {MAX_LINE_BYTES} allowed"
            ),
            ParseErrorKind::UnterminatedQuote { quote } => {
                write!(f, "a {quote} quote is never closed")
            }
            ParseErrorKind::TrailingBackslash => {
                f.write_str("the line ends with a backslash that escapes nothing")
            }
            ParseErrorKind::UnknownVerb { verb } => {
                write!(
                    f,
                    "{verb:?} is not an operator command; type help to list them"
                )
            }
            ParseErrorKind::UnknownCommand(err) => err.fmt(f),
            ParseErrorKind::MissingArgument { what } => write!(f, "{what} is missing"),
            ParseErrorKind::EmptyArgument { what } => write!(f, "{what} must not be empty"),
            ParseErrorKind::UnexpectedArgument { word } => write!(f, "unexpected word {word:?}"),
            ParseErrorKind::BadParamName { word } => write!(
                f,
                "{word:?} is not a param; write key=value, or key.entry=value for a map"
            ),
            ParseErrorKind::DuplicateParam { key } => write!(f, "{key} is given twice"),
            ParseErrorKind::BadControl { detail } => f.write_str(detail),
            ParseErrorKind::MixedMapParam { key } => write!(
                f,
                "{key} is given both as one value and as a map ({key}.entry=value)"
            ),
            ParseErrorKind::UnexpectedWord { command, word } => write!(
                f,
                "unexpected word {word:?}: {command} takes one target, and params are written key=value"
            ),
            ParseErrorKind::AllNotAllowed { command } => write_all_not_allowed(f, *command),
            ParseErrorKind::InvalidParams(err) => err.fmt(f),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)?;
        if let Some(usage) = &self.usage {
            write!(f, "; usage: {usage}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// One verb of the language: its name, usage and `help` line, and its parser
/// (which gets the words after the verb).
struct Verb {
    name: &'static str,
    usage: &'static str,
    description: &'static str,
    parse: fn(&mut Lexer<'_>, &Verb) -> Result<OperatorCommand, ParseError>,
}

/// The language, in `help` order.
const VERBS: &[Verb] = &[
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
fn command_syntax(command: CommandName) -> (&'static [&'static str], &'static str) {
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
fn coerce(text: &str, quoted: bool) -> Value {
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

/// One word of a line, quotes removed.
#[derive(Debug)]
struct Word {
    text: String,
    /// Byte offset in `text` of the first `=` that was not quoted or escaped.
    equals: Option<usize>,
    /// Whether any quote or backslash appeared before that `=`.
    quoted_before_equals: bool,
    /// Whether any quote or backslash appeared in the word.
    quoted: bool,
}

impl Word {
    /// `(key, value)` if the word is a param: an unquoted `=` after an
    /// unquoted key.
    fn as_param(&self) -> Option<(&str, &str)> {
        let equals = self.equals.filter(|_| !self.quoted_before_equals)?;
        Some((&self.text[..equals], &self.text[equals + 1..]))
    }
}

/// Splits a line into words on demand, so that `exec` can take the rest of the
/// line raw instead of as words.
struct Lexer<'a> {
    line: &'a str,
    pos: usize,
}

fn is_blank(c: char) -> bool {
    c.is_ascii_whitespace()
}

impl<'a> Lexer<'a> {
    /// The unread part of the line, without surrounding blanks.
    fn rest(&self) -> &'a str {
        self.line[self.pos..].trim_matches(is_blank)
    }

    fn next_word(&mut self) -> Result<Option<Word>, ParseErrorKind> {
        let rest = &self.line[self.pos..];
        let Some(start) = rest.find(|c| !is_blank(c)) else {
            self.pos = self.line.len();
            return Ok(None);
        };
        let mut word = Word {
            text: String::new(),
            equals: None,
            quoted_before_equals: false,
            quoted: false,
        };
        let mut end = rest.len();
        let mut chars = rest[start..].char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                c if is_blank(c) => {
                    end = start + offset;
                    break;
                }
                '\'' => {
                    word.quoted = true;
                    loop {
                        match chars.next() {
                            None => return Err(ParseErrorKind::UnterminatedQuote { quote: '\'' }),
                            Some((_, '\'')) => break,
                            Some((_, c)) => word.text.push(c),
                        }
                    }
                }
                '"' => {
                    word.quoted = true;
                    loop {
                        match chars.next() {
                            None => return Err(ParseErrorKind::UnterminatedQuote { quote: '"' }),
                            Some((_, '"')) => break,
                            Some((_, '\\')) => match chars.next() {
                                None => {
                                    return Err(ParseErrorKind::UnterminatedQuote { quote: '"' });
                                }
                                Some((_, c @ ('"' | '\\' | '$' | '`'))) => word.text.push(c),
                                Some((_, c)) => {
                                    word.text.push('\\');
                                    word.text.push(c);
                                }
                            },
                            Some((_, c)) => word.text.push(c),
                        }
                    }
                }
                '\\' => {
                    word.quoted = true;
                    match chars.next() {
                        None => return Err(ParseErrorKind::TrailingBackslash),
                        Some((_, c)) => word.text.push(c),
                    }
                }
                '=' if word.equals.is_none() => {
                    word.equals = Some(word.text.len());
                    word.quoted_before_equals = word.quoted;
                    word.text.push('=');
                }
                c => word.text.push(c),
            }
        }
        self.pos += end;
        Ok(Some(word))
    }
}

#[cfg(test)]
mod tests {
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
            OperatorCommand::Send { request, .. } | OperatorCommand::Broadcast { request } => {
                request
            }
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
            assert_eq!(err.code(), *code, "{line:?}: {err}");
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
            assert_eq!(err.code(), "invalid_params", "{line}");
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
        assert_eq!(err.code(), "bad_request");
        assert_eq!(
            err.to_string(),
            "the line is 65537 bytes long, more than the 65536 allowed"
        );
        // Refused before anything else, even a blank line.
        assert_eq!(
            parse_line(&" ".repeat(MAX_LINE_BYTES + 1))
                .unwrap_err()
                .code(),
            "bad_request"
        );
        // Multi-byte characters count in bytes.
        let wide = "é".repeat(MAX_LINE_BYTES / 2 + 1);
        assert_eq!(parse_line(&wide).unwrap_err().code(), "bad_request");
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
                    assert_eq!(err.code(), code, "{line:?}: {err}");
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
        assert_eq!(err.code(), "invalid_params");
        assert!(err.choices().is_empty());

        let too_many = request("logs", named("3node0"), json!({"lines": 20000}));
        let err = resolve(&too_many, &containers).unwrap_err();
        assert!(matches!(err, ResolveError::InvalidParams(_)), "{err:?}");
        assert_eq!(err.code(), "invalid_params");
        assert_eq!(
            err.to_string(),
            "lines must be an integer from 1 to 10000, got 20000"
        );

        // Params are judged before the target, so a broadcast with bad params
        // fails the same way on every agent.
        let both_bad = request("logs", named("nope"), json!({"lines": 0}));
        assert_eq!(
            resolve(&both_bad, &containers).unwrap_err().code(),
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
}

#[cfg(test)]
#[path = "operator_controls_tests.rs"]
mod controls_tests;
