//! Command-line parsing: raw arguments into one plain [`Cli`] value.
//! Validation that needs files (tokens, config) happens later, in one place
//! per subcommand.
use crate::agent::config::AgentArgs;
use crate::server::ServerConfig;
use lexopt::prelude::*;
use std::ffi::OsString;
use std::path::PathBuf;

pub const USAGE: &str = "\
warden: run a fleet of Substrate validator nodes (Docker containers) from one place

USAGE:
    warden server [--listen ADDR:PORT] [--data-dir DIR] [--tls-cert PEM --tls-key PEM]
                  [--client-ca PEM] [--heartbeat-s N] [--max-frame-bytes N]
                  [--admin-listen ADDR:PORT] [--alerts FILE] [--schedules FILE]
                  [--operator-key FILE]
    warden agent  --server ws[s]://HOST:PORT/agent --agent-id ID --token-file FILE
                  [--config FILE] [--ca-file PEM] [--client-cert PEM --client-key PEM]
                  [--server-fingerprint SHA256] [--state-dir DIR]
    warden token add <agent id> [--data-dir DIR]
    warden token remove <agent id> [--data-dir DIR]
    warden token list [--data-dir DIR]
    warden backup-keys (--container NAME... | --all) [--dest DIR] [--keep N] [--notify]
                       [--config FILE] [--state-dir DIR]
    warden restore-keys --container NAME --file NAME [--dest DIR] [--config FILE] [--state-dir DIR]
    warden ctl [--data-dir DIR] [--json] [--wait[=SECS]] [--yes] [--key FILE] <operator line...>
    warden config check [--kind agent|alerts|schedules] FILE
    warden operator-key new --out FILE
    warden approve <command id> --key FILE [--data-dir DIR]
    warden help [COMMAND] | --help | --version

Start here:
    warden token add host1 > host1.token          # on the server host
    warden server                                   # then type `help` at its prompt
    warden agent --server ws://SERVER:7443/agent --agent-id host1 --token-file host1.token

The server's data dir defaults to ~/.warden/server, the agent's state dir to
~/.warden/agent. Run `warden help server` (or agent, token, backup-keys) for details.
";

const SERVER_HELP: &str = "\
warden server: hold the agents' connections and drive them from stdin

USAGE:
    warden server [--listen ADDR:PORT] [--data-dir DIR] [--tls-cert PEM --tls-key PEM]
                  [--client-ca PEM] [--heartbeat-s N] [--max-frame-bytes N]
                  [--admin-listen ADDR:PORT] [--alerts FILE] [--schedules FILE]
                  [--operator-key FILE]

OPTIONS:
    --listen ADDR:PORT     where agents connect (default 127.0.0.1:7443; port 0 picks a
                           free port). The first line on stdout is the bound address.
    --data-dir DIR         agent registry, command history, audit log (default ~/.warden/server)
    --tls-cert PEM         certificate chain; with --tls-key, agents must use wss://
    --tls-key PEM          the certificate's private key
    --client-ca PEM        mutual TLS: agents must present a certificate from this CA whose
                           DNS subject alternative name is their agent id (tokens still apply)
    --heartbeat-s N        ping agents every N seconds; a silent one is dropped after 3N (default 15)
    --max-frame-bytes N    largest message accepted (default 1048576)
    --admin-listen ADDR:PORT
                           serve GET /metrics (Prometheus), /healthz and the web dashboard
                           (docs/dashboard.md) there (off when
                           absent; port 0 picks one, printed as `admin: http://…` on the
                           second line). Keep it on a private address.
    --alerts FILE          alert rules' settings and sinks (webhook, Slack, Discord,
                           Telegram; docs/operations.md). Without it the rules still run
                           and show in `alerts` and on stdout.
    --schedules FILE       commands the server runs on its own, e.g. a nightly staggered
                           backup_keys of every validator (docs/operations.md)
    --log-max-mb N         rotate commands.jsonl, events.jsonl, audit.jsonl and keys.jsonl
                           past N MiB (default 64)
    --log-keep N           rotated generations kept, FILE.1 .. FILE.N (default 4)
    --log-max-age-days N   delete rotated generations older than N days (default 365; 0: never)
    --operator-key FILE    sign every command typed on stdin with this operator key
                           (`warden operator-key new`); `signatures=K` on a line holds the
                           command until K operators signed (`warden ctl --key F approve <id>`)

Operator commands are read from stdin, one per line; type `help` at the prompt.
End of input does not stop the server (under systemd there is no terminal): `quit` does.
";

const CTL_HELP: &str = "\
warden ctl: one operator line to the running server, for scripts and cron

USAGE:
    warden ctl [--data-dir DIR] [--json] [--wait[=SECS]] [--yes] [--key FILE] <operator line...>

The line is the language of the server's prompt (`list`, `nodes`, `send host1 status
3node0`, `send 'val-*' backup_keys 3node0`, `broadcast status all`, `history`, ...) and
prints what the prompt would. It goes through <data dir>/control.sock (mode 0600: only
the server's user), and is written to the audit log with your uid.

OPTIONS:
    --data-dir DIR   the server's data dir (default ~/.warden/server)
    --json           print one JSON document instead of text; for send and broadcast it
                     lists every command (agent, id, command, target, and with --wait its
                     status, code, error and result)
    --wait[=SECS]    return only once every command the line issued has an outcome
                     (default 60 s)
    --yes            confirm a broadcast that changes nodes (start, stop, restart,
                     backup_keys, ...): without it such a broadcast is refused (exit 1).
                     `batch=N` on the line rolls it N agents at a time, stopping at the
                     first failure
    --key FILE       sign the line's commands with this operator key (made by
                     `warden operator-key new`); the key never leaves this process: the
                     server holds the commands, this client checks and signs each payload.
                     `signatures=K` on the line holds a command until K operators signed;
                     others co-sign with `warden ctl --key FILE approve <id>`

EXIT CODES:
    0  done, and nothing failed
    1  a command failed, or was refused (not connected, unknown target, skipped)
    2  usage error, or no server answers on the socket (`quit` is refused too)
    3  --wait ran out of time

EXAMPLES:
    warden ctl nodes
    warden ctl --wait=600 --json send host1 backup_keys 3node0
    warden ctl send 'host*' status all
";

const AGENT_HELP: &str = "\
warden agent: run on a validator host; report to the server and run its commands

USAGE:
    warden agent --server ws[s]://HOST:PORT/agent --agent-id ID --token-file FILE
                 [--config FILE] [--ca-file PEM] [--client-cert PEM --client-key PEM]
                 [--server-fingerprint SHA256] [--state-dir DIR]

OPTIONS:
    --server URL       the server's agent endpoint, ws:// or wss://
    --agent-id ID      this agent's id, as registered with `warden token add ID`
    --token-file FILE  file holding the token `warden token add` printed (keep it 0600)
    --config FILE      JSON settings and policy: which containers it manages and which
                       commands it permits (see docs/policy.md); defaults are safe:
                       no exec, no payout, containers named 3node* or node*
    --ca-file PEM      trust only these CA certificates for wss:// (a private CA)
    --client-cert PEM  present this certificate to a server that requires mutual TLS
    --client-key PEM   its private key
    --server-fingerprint SHA256
                       also require the server certificate's SHA-256 (64 hex digits, as
                       `openssl x509 -noout -fingerprint -sha256` prints it): a swapped
                       server key is refused even if a trusted CA signed it
    --state-dir DIR    ledger of commands and unacknowledged messages (default ~/.warden/agent)

The agent reconnects forever with exponential backoff; nothing it must deliver
is lost while it is disconnected or restarted.
";

const TOKEN_HELP: &str = "\
warden token: manage the agents allowed to connect

USAGE:
    warden token add <agent id> [--data-dir DIR]      print a new token for the agent (replaces an old one)
    warden token remove <agent id> [--data-dir DIR]   forget the agent; a running server cuts it off
    warden token list [--data-dir DIR]                registered agent ids
    warden token add --operator NAME [--read-only]    print a dashboard login token (read-only: sees, never acts)
    warden token remove --operator NAME               forget the operator; its sessions end
    warden token list --operators                     registered operators

The token is printed once, alone on one line; only its SHA-256 is stored.
A running server with the same --data-dir picks changes up within a second.
";

const BACKUP_HELP: &str = "\
warden backup-keys: back up validator keys on this host, without a server (for cron)

USAGE:
    warden backup-keys (--container NAME... | --all) [--dest DIR] [--keep N] [--notify]
                       [--config FILE] [--state-dir DIR]
    warden restore-keys --container NAME --file NAME [--dest DIR] [--config FILE] [--state-dir DIR]

backup-keys stops each node gracefully, copies chains/<id>/keystore and network out,
starts it again (on every path, even when something fails), and writes
<container>-keys-YYYYMMDD-HHMM.tar.gz (0600, with a .sha256 beside it) into the
backup dir: --dest, else backup.dir of the agent's --config, else <state dir>/backups.
It keeps the newest N per container (--keep, default 7). One line per backup on
stdout; on failure one line per failure on stderr and exit status 1.

OPTIONS:
    --container NAME   back up this container (repeat for several); it must match the
                       policy's containers (default 3node* and node*)
    --all              every container the policy manages
    --notify           also hand a backup_complete event to this host's agent (same
                       --state-dir), which delivers it to the server
    --file NAME        (restore-keys) a backup file NAME in the backup dir, never a path;
                       its sha256 is checked and the archive validated before anything changes

crontab, nightly at 03:17:
    17 3 * * * /usr/local/bin/warden backup-keys --all --config /etc/warden/agent.json --notify
";

#[derive(Debug, PartialEq)]
pub enum TokenAction {
    Add(String),
    Remove(String),
    List,
    /// `--operator NAME [--read-only]`: a dashboard login.
    AddOperator {
        name: String,
        read_only: bool,
    },
    RemoveOperator(String),
    ListOperators,
}

#[derive(Debug)]
pub enum Cli {
    Help(&'static str),
    Version,
    Server(ServerConfig),
    Agent(AgentArgs),
    Token {
        action: TokenAction,
        data_dir: PathBuf,
    },
    BackupKeys(crate::cron::BackupArgs),
    RestoreKeys(crate::cron::RestoreArgs),
    /// `warden config check`: validate a file, print what it would do.
    ConfigCheck {
        file: PathBuf,
        kind: Option<crate::configcheck::Kind>,
    },
    /// `operator-key new --out FILE`.
    OperatorKeyNew {
        out: PathBuf,
    },
    Ctl(CtlArgs),
}

/// `warden ctl`: where the server is, and one operator line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlArgs {
    pub data_dir: PathBuf,
    pub json: bool,
    /// `--wait[=SECS]`.
    pub wait_s: Option<u64>,
    /// `--yes`: confirms a broadcast that changes nodes.
    pub yes: bool,
    /// `--key FILE`: sign the line's commands with this operator key.
    pub key: Option<PathBuf>,
    pub line: String,
}

impl CtlArgs {
    /// No flags given: the default data dir, text output, no wait.
    fn new() -> CtlArgs {
        CtlArgs {
            data_dir: default_server_dir(),
            json: false,
            wait_s: None,
            yes: false,
            key: None,
            line: String::new(),
        }
    }
}

pub fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib"))
        .join(".warden")
}

pub fn default_server_dir() -> PathBuf {
    default_home().join("server")
}

fn help_for(topic: &str) -> Result<&'static str, lexopt::Error> {
    match topic {
        "server" => Ok(SERVER_HELP),
        "agent" => Ok(AGENT_HELP),
        "token" => Ok(TOKEN_HELP),
        "backup-keys" | "restore-keys" => Ok(BACKUP_HELP),
        "ctl" => Ok(CTL_HELP),
        other => {
            Err(format!("no help on {other:?}: try server, agent, token or backup-keys").into())
        }
    }
}

pub fn parse_args<I>(args: I) -> Result<Cli, lexopt::Error>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut parser = lexopt::Parser::from_iter(
        std::iter::once(OsString::from("warden")).chain(args.into_iter().map(Into::into)),
    );
    let Some(arg) = parser.next()? else {
        return Ok(Cli::Help(USAGE));
    };
    match arg {
        Short('h') | Long("help") => Ok(Cli::Help(USAGE)),
        Short('V') | Long("version") => Ok(Cli::Version),
        Value(word) => match word.string()?.as_str() {
            "help" => match parser.next()? {
                Some(Value(topic)) => Ok(Cli::Help(help_for(&topic.string()?)?)),
                Some(other) => Err(other.unexpected()),
                None => Ok(Cli::Help(USAGE)),
            },
            "server" => parse_server(&mut parser),
            "agent" => parse_agent(&mut parser),
            "token" => parse_token(&mut parser),
            "backup-keys" => parse_backup(&mut parser),
            "restore-keys" => parse_restore(&mut parser),
            "ctl" => parse_ctl(&mut parser),
            "approve" => parse_approve(&mut parser),
            "config" => parse_config(&mut parser),
            "operator-key" => parse_operator_key(&mut parser),
            other => Err(format!("unknown subcommand {other:?}: use server, agent, token, backup-keys, restore-keys, ctl, approve, config or operator-key (see warden --help)")
            .into()),
        },
        other => Err(other.unexpected()),
    }
}

/// Default `--wait`, in seconds.
pub const CTL_DEFAULT_WAIT_S: u64 = 60;

fn parse_ctl(parser: &mut lexopt::Parser) -> Result<Cli, lexopt::Error> {
    let mut args = CtlArgs::new();
    let mut words: Vec<String> = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") if words.is_empty() => return Ok(Cli::Help(CTL_HELP)),
            Long("data-dir") if words.is_empty() => args.data_dir = parser.value()?.into(),
            Long("json") if words.is_empty() => args.json = true,
            Long("yes") if words.is_empty() => args.yes = true,
            Long("key") if words.is_empty() => args.key = Some(parser.value()?.into()),
            Long("wait") if words.is_empty() => {
                args.wait_s = Some(match parser.optional_value() {
                    Some(v) => v.parse()?,
                    None => CTL_DEFAULT_WAIT_S,
                });
            }
            Value(word) => {
                // The operator line starts here: everything after it is its
                // words, taken verbatim (an exec line may hold `-x`).
                words.push(word.string()?);
                for raw in parser.raw_args()? {
                    words.push(raw.string()?);
                }
            }
            other => return Err(other.unexpected()),
        }
    }
    if words.is_empty() {
        return Err(
            "ctl needs an operator line, e.g. `warden ctl list` (see warden help ctl)".into(),
        );
    }
    // Quote each word back, so one holding blanks stays one word.
    args.line =
        shlex::try_join(words.iter().map(String::as_str)).map_err(|e| format!("ctl: {e}"))?;
    Ok(Cli::Ctl(args))
}

/// `approve <id> --key FILE [--data-dir DIR]`: `warden ctl --key FILE
/// approve <id>`, co-signing a command the server holds.
fn parse_approve(parser: &mut lexopt::Parser) -> Result<Cli, lexopt::Error> {
    let mut args = CtlArgs::new();
    let mut id = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("data-dir") => args.data_dir = parser.value()?.into(),
            Long("key") => args.key = Some(parser.value()?.into()),
            Value(word) if id.is_none() => id = Some(word.string()?),
            other => return Err(other.unexpected()),
        }
    }
    let (Some(id), Some(_)) = (id, &args.key) else {
        return Err("usage: warden approve <command id> --key FILE [--data-dir DIR]".into());
    };
    args.line = shlex::try_join(["approve", id.as_str()]).map_err(|e| format!("approve: {e}"))?;
    Ok(Cli::Ctl(args))
}

/// `operator-key new --out FILE`: an Ed25519 key for signing commands
/// (`operator_keys`).
fn parse_operator_key(parser: &mut lexopt::Parser) -> Result<Cli, lexopt::Error> {
    match parser.next()? {
        Some(Value(word)) if word == "new" => {}
        _ => return Err("usage: warden operator-key new --out FILE".into()),
    }
    let mut out = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("out") => out = Some(parser.value()?.into()),
            other => return Err(other.unexpected()),
        }
    }
    let out = out.ok_or("operator-key new needs --out FILE (the private key goes there)")?;
    Ok(Cli::OperatorKeyNew { out })
}

fn parse_server(parser: &mut lexopt::Parser) -> Result<Cli, lexopt::Error> {
    let mut config = ServerConfig {
        listen: crate::server::DEFAULT_LISTEN.into(),
        data_dir: default_server_dir(),
        tls_cert: None,
        tls_key: None,
        client_ca: None,
        heartbeat_s: crate::server::DEFAULT_HEARTBEAT_S,
        max_message_bytes: crate::protocol::DEFAULT_MAX_FRAME_BYTES,
        admin_listen: None,
        alerts_file: None,
        schedules_file: None,
        rotation: Default::default(),
        operator_key: None,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Cli::Help(SERVER_HELP)),
            Long("listen") => config.listen = parser.value()?.string()?,
            Long("data-dir") => config.data_dir = parser.value()?.into(),
            Long("tls-cert") => config.tls_cert = Some(parser.value()?.into()),
            Long("tls-key") => config.tls_key = Some(parser.value()?.into()),
            Long("client-ca") => config.client_ca = Some(parser.value()?.into()),
            Long("admin-listen") => config.admin_listen = Some(parser.value()?.string()?),
            Long("alerts") => config.alerts_file = Some(parser.value()?.into()),
            Long("schedules") => config.schedules_file = Some(parser.value()?.into()),
            Long("log-max-mb") => {
                let mb: u64 = parser.value()?.parse()?;
                if mb == 0 {
                    return Err("--log-max-mb must be at least 1".into());
                }
                config.rotation.max_bytes = mb.saturating_mul(1024 * 1024);
            }
            Long("log-keep") => {
                config.rotation.keep = parser.value()?.parse()?;
                if !(1..=100).contains(&config.rotation.keep) {
                    return Err("--log-keep must be between 1 and 100".into());
                }
            }
            Long("log-max-age-days") => config.rotation.max_age_days = parser.value()?.parse()?,
            Long("operator-key") => {
                let file: PathBuf = parser.value()?.into();
                // Checked now: a server that cannot sign must not start.
                crate::operator_keys::load(&file).map_err(|e| e.to_string())?;
                config.operator_key = Some(file);
            }
            Long("heartbeat-s") => {
                config.heartbeat_s = parser.value()?.parse()?;
                if config.heartbeat_s == 0 || config.heartbeat_s > 3600 {
                    return Err("--heartbeat-s must be between 1 and 3600".into());
                }
            }
            Long("max-frame-bytes") => {
                config.max_message_bytes = parser.value()?.parse()?;
                if config.max_message_bytes < 1024 {
                    return Err("--max-frame-bytes must be at least 1024".into());
                }
            }
            other => return Err(other.unexpected()),
        }
    }
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    if config.client_ca.is_some() && config.tls_cert.is_none() {
        return Err("--client-ca (mutual TLS) needs --tls-cert and --tls-key".into());
    }
    Ok(Cli::Server(config))
}

const CONFIG_USAGE: &str = "usage: warden config check [--kind agent|alerts|schedules] FILE";

fn parse_config(parser: &mut lexopt::Parser) -> Result<Cli, lexopt::Error> {
    match parser.next()? {
        Some(Value(w)) if w == "check" => {}
        _ => return Err(CONFIG_USAGE.into()),
    }
    let (mut file, mut kind) = (None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("kind") => {
                let word = parser.value()?.string()?;
                kind = Some(crate::configcheck::Kind::parse(&word).ok_or(CONFIG_USAGE)?);
            }
            Value(path) if file.is_none() => file = Some(PathBuf::from(path)),
            other => return Err(other.unexpected()),
        }
    }
    let file = file.ok_or(CONFIG_USAGE)?;
    Ok(Cli::ConfigCheck { file, kind })
}

fn parse_agent(parser: &mut lexopt::Parser) -> Result<Cli, lexopt::Error> {
    let mut args = AgentArgs::default();
    let mut token_file = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Cli::Help(AGENT_HELP)),
            Long("server") => args.server_url = parser.value()?.string()?,
            Long("agent-id") => args.agent_id = parser.value()?.string()?,
            Long("token-file") => token_file = Some(PathBuf::from(parser.value()?)),
            Long("config") => args.config_file = Some(parser.value()?.into()),
            Long("ca-file") => args.ca_file = Some(parser.value()?.into()),
            Long("client-cert") => args.client_cert = Some(parser.value()?.into()),
            Long("client-key") => args.client_key = Some(parser.value()?.into()),
            Long("server-fingerprint") => args.server_fingerprint = Some(parser.value()?.string()?),
            Long("state-dir") => args.state_dir = Some(parser.value()?.into()),
            Long("token") => {
                return Err(
                    "--token is not accepted: a token on the command line shows in `ps`; \
                            put it in a file and use --token-file"
                        .into(),
                );
            }
            other => return Err(other.unexpected()),
        }
    }
    for (given, flag) in [
        (!args.server_url.is_empty(), "--server"),
        (!args.agent_id.is_empty(), "--agent-id"),
        (token_file.is_some(), "--token-file"),
    ] {
        if !given {
            return Err(format!("warden agent needs {flag} (see warden help agent)").into());
        }
    }
    if args.client_cert.is_some() != args.client_key.is_some() {
        return Err("--client-cert and --client-key go together".into());
    }
    args.token_file = token_file.unwrap_or_default();
    Ok(Cli::Agent(args))
}

fn parse_backup(parser: &mut lexopt::Parser) -> Result<Cli, lexopt::Error> {
    let mut args = crate::cron::BackupArgs::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Cli::Help(BACKUP_HELP)),
            Long("container") => args.containers.push(parser.value()?.string()?),
            Long("all") => args.all = true,
            Long("dest") => args.dest = Some(parser.value()?.into()),
            Long("keep") => {
                let keep: usize = parser.value()?.parse()?;
                if keep == 0 {
                    return Err(
                        "--keep must be at least 1 (the backup just written is always kept)".into(),
                    );
                }
                args.keep = Some(keep);
            }
            Long("notify") => args.notify = true,
            Long("config") => args.config = Some(parser.value()?.into()),
            Long("state-dir") => args.state_dir = Some(parser.value()?.into()),
            other => return Err(other.unexpected()),
        }
    }
    if args.all != args.containers.is_empty() {
        return Err(
            "warden backup-keys needs --container NAME (one or more) or --all, not both".into(),
        );
    }
    Ok(Cli::BackupKeys(args))
}

fn parse_restore(parser: &mut lexopt::Parser) -> Result<Cli, lexopt::Error> {
    let mut args = crate::cron::RestoreArgs::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Cli::Help(BACKUP_HELP)),
            Long("container") => args.container = parser.value()?.string()?,
            Long("file") => args.file = parser.value()?.string()?,
            Long("dest") => args.dest = Some(parser.value()?.into()),
            Long("config") => args.config = Some(parser.value()?.into()),
            Long("state-dir") => args.state_dir = Some(parser.value()?.into()),
            other => return Err(other.unexpected()),
        }
    }
    if args.container.is_empty() || args.file.is_empty() {
        return Err("warden restore-keys needs --container NAME and --file NAME (see warden help backup-keys)".into());
    }
    Ok(Cli::RestoreKeys(args))
}

fn parse_token(parser: &mut lexopt::Parser) -> Result<Cli, lexopt::Error> {
    let mut data_dir = default_server_dir();
    let mut words = Vec::new();
    let mut operator: Option<String> = None;
    let mut read_only = false;
    let mut operators = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Cli::Help(TOKEN_HELP)),
            Long("data-dir") => data_dir = parser.value()?.into(),
            Long("operator") => operator = Some(parser.value()?.string()?),
            Long("read-only") => read_only = true,
            Long("operators") => operators = true,
            Value(v) => words.push(v.string()?),
            other => return Err(other.unexpected()),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    if operator.is_some() || read_only || operators {
        let action = match (words.as_slice(), operator, operators) {
            (["add"], Some(name), false) => TokenAction::AddOperator { name, read_only },
            (["remove"], Some(name), false) if !read_only => TokenAction::RemoveOperator(name),
            (["list"], None, true) if !read_only => TokenAction::ListOperators,
            _ => {
                return Err("usage: warden token add --operator NAME [--read-only] | \
                     warden token remove --operator NAME | warden token list --operators"
                    .into());
            }
        };
        return Ok(Cli::Token { action, data_dir });
    }
    let action =
        match words.as_slice() {
            ["add", id] => TokenAction::Add(id.to_string()),
            ["remove", id] => TokenAction::Remove(id.to_string()),
            ["list"] => TokenAction::List,
            _ => return Err(
                "usage: warden token add|remove <agent id> | warden token list [--data-dir DIR]"
                    .into(),
            ),
        };
    Ok(Cli::Token { action, data_dir })
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
