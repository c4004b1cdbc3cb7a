//! The alerts file (`warden server --alerts FILE`) and every rule's defaults.
//!
//! ```json
//! { "repeat_interval_s": 14400,
//!   "rules": { "NodeLowPeers": { "threshold": 3, "for_s": 300, "severity": "warning" },
//!              "BackupStale": { "enabled": false } },
//!   "sinks": [ { "kind": "webhook", "url": "http://127.0.0.1:9099/alerts" },
//!              { "kind": "slack", "url_file": "/etc/warden/slack.url", "min_severity": "warning" } ] }
//! ```
//! Every key is optional; unknown keys, rule names and sink kinds are refused
//! (like the agent's config) so a typo never silently turns an alert off.
//! Only `webhook` may hold its URL inline (a local receiver); the contents of
//! `url_file` and `bot_token_file` are secrets, held in [`Secret`], whose
//! Debug and Display print `<redacted>`.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// An alerts file larger than this is refused (a typo'd path to a big file).
const MAX_FILE_BYTES: u64 = 1 << 20;
/// A secret file larger than this is refused: URLs and tokens are short.
const MAX_SECRET_BYTES: u64 = 4096;
const MAX_SINKS: usize = 16;
pub const DEFAULT_REPEAT_INTERVAL_S: u64 = 4 * 3600;
const MAX_DURATION_S: u64 = 30 * 86_400;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The contract's rule names, fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RuleName {
    AgentDown,
    ContainerDown,
    NodeSyncing,
    NodeLowPeers,
    NodeStalled,
    NodeFinalityLag,
    NodeRpcUnreachable,
    ValidatorInactive,
    ValidatorChanged,
    UnclaimedPayouts,
    DuplicateSessionKeys,
    BackupFailed,
    BackupStale,
}

impl RuleName {
    pub const ALL: [RuleName; 13] = [
        RuleName::AgentDown,
        RuleName::ContainerDown,
        RuleName::NodeSyncing,
        RuleName::NodeLowPeers,
        RuleName::NodeStalled,
        RuleName::NodeFinalityLag,
        RuleName::NodeRpcUnreachable,
        RuleName::ValidatorInactive,
        RuleName::ValidatorChanged,
        RuleName::UnclaimedPayouts,
        RuleName::DuplicateSessionKeys,
        RuleName::BackupFailed,
        RuleName::BackupStale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleName::AgentDown => "AgentDown",
            RuleName::ContainerDown => "ContainerDown",
            RuleName::NodeSyncing => "NodeSyncing",
            RuleName::NodeLowPeers => "NodeLowPeers",
            RuleName::NodeStalled => "NodeStalled",
            RuleName::NodeFinalityLag => "NodeFinalityLag",
            RuleName::NodeRpcUnreachable => "NodeRpcUnreachable",
            RuleName::ValidatorInactive => "ValidatorInactive",
            RuleName::ValidatorChanged => "ValidatorChanged",
            RuleName::UnclaimedPayouts => "UnclaimedPayouts",
            RuleName::DuplicateSessionKeys => "DuplicateSessionKeys",
            RuleName::BackupFailed => "BackupFailed",
            RuleName::BackupStale => "BackupStale",
        }
    }

    pub fn from_name(name: &str) -> Option<RuleName> {
        RuleName::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// What `threshold` means for this rule, for docs and `config check`.
    pub fn threshold_meaning(self) -> &'static str {
        match self {
            RuleName::AgentDown => "unused: silent longer than 2 x heartbeat",
            RuleName::ContainerDown
            | RuleName::NodeSyncing
            | RuleName::NodeRpcUnreachable
            | RuleName::ValidatorInactive
            | RuleName::DuplicateSessionKeys
            | RuleName::BackupFailed => "unused",
            RuleName::NodeLowPeers => "fires when peers < threshold",
            RuleName::NodeStalled => "seconds without a new best block",
            RuleName::NodeFinalityLag => "fires when best - finalized > threshold blocks",
            RuleName::ValidatorChanged => "seconds the alert stays up after the change",
            RuleName::UnclaimedPayouts => "eras left before the oldest unclaimed era expires",
            RuleName::BackupStale => "seconds since the newest key backup",
        }
    }

    /// The documented defaults (docs/operations.md has the same table).
    pub fn defaults(self) -> RuleSettings {
        let (threshold, for_s, severity) = match self {
            RuleName::AgentDown => (0.0, 0, Severity::Critical),
            RuleName::ContainerDown => (0.0, 60, Severity::Critical),
            RuleName::NodeSyncing => (0.0, 600, Severity::Warning),
            RuleName::NodeLowPeers => (3.0, 300, Severity::Warning),
            RuleName::NodeStalled => (180.0, 0, Severity::Critical),
            RuleName::NodeFinalityLag => (20.0, 300, Severity::Warning),
            RuleName::NodeRpcUnreachable => (0.0, 120, Severity::Warning),
            RuleName::ValidatorInactive => (0.0, 0, Severity::Critical),
            RuleName::ValidatorChanged => (86_400.0, 0, Severity::Warning),
            RuleName::UnclaimedPayouts => (14.0, 0, Severity::Warning),
            RuleName::DuplicateSessionKeys => (0.0, 0, Severity::Critical),
            RuleName::BackupFailed => (0.0, 0, Severity::Warning),
            RuleName::BackupStale => (172_800.0, 0, Severity::Warning),
        };
        RuleSettings {
            enabled: true,
            threshold,
            for_s,
            severity,
            max_unclaimed: DEFAULT_MAX_UNCLAIMED,
        }
    }
}

/// `UnclaimedPayouts` when the agent reports only how many eras are
/// unclaimed, not which: fire at this many (a week of rewards).
pub const DEFAULT_MAX_UNCLAIMED: u64 = 7;

/// A rule's effective settings: its defaults with the file's overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSettings {
    pub enabled: bool,
    pub threshold: f64,
    pub for_s: u64,
    pub severity: Severity,
    pub max_unclaimed: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleOverride {
    enabled: Option<bool>,
    threshold: Option<f64>,
    for_s: Option<u64>,
    severity: Option<Severity>,
    /// `UnclaimedPayouts` only.
    max_unclaimed: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    repeat_interval_s: Option<u64>,
    #[serde(default)]
    rules: BTreeMap<String, RuleOverride>,
    #[serde(default)]
    sinks: Vec<SinkFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkFile {
    kind: String,
    name: Option<String>,
    url: Option<String>,
    url_file: Option<PathBuf>,
    bot_token_file: Option<PathBuf>,
    chat_id: Option<String>,
    /// Telegram's API base (default `https://api.telegram.org`): for tests
    /// and for a local Bot API server.
    api_base: Option<String>,
    min_severity: Option<Severity>,
}

/// A URL or token from a file: printed as `<redacted>`, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    Webhook,
    Slack,
    Discord,
    Telegram,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Slack => "slack",
            SinkKind::Discord => "discord",
            SinkKind::Telegram => "telegram",
        }
    }
}

/// One sink, secrets loaded. `name` is what logs, audit and queue
/// directories call it: its `name`, or `sink<index>`.
#[derive(Clone, Debug)]
pub struct Sink {
    pub name: String,
    pub kind: SinkKind,
    pub min_severity: Severity,
    /// Webhook, Slack and Discord: where to POST. Telegram: the bot token.
    pub secret: Secret,
    pub chat_id: Option<String>,
    pub api_base: String,
}

impl Sink {
    /// The URL a notice is posted to. Holds the secret: never print it.
    pub fn post_url(&self) -> String {
        match self.kind {
            SinkKind::Telegram => format!(
                "{}/bot{}/sendMessage",
                self.api_base.trim_end_matches('/'),
                self.secret.expose()
            ),
            _ => self.secret.expose().to_string(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct AlertsConfig {
    pub repeat_interval_s: u64,
    pub rules: BTreeMap<RuleName, RuleSettings>,
    pub sinks: Vec<Sink>,
}

impl Default for AlertsConfig {
    /// Without `--alerts`: every rule at its defaults, no sink.
    fn default() -> Self {
        AlertsConfig {
            repeat_interval_s: DEFAULT_REPEAT_INTERVAL_S,
            rules: RuleName::ALL
                .into_iter()
                .map(|r| (r, r.defaults()))
                .collect(),
            sinks: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub enum ConfigError {
    Read { path: PathBuf, error: String },
    TooBig { path: PathBuf },
    Json(String),
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => {
                write!(
                    f,
                    "cannot read {}: {error}; check the path and its permissions",
                    path.display()
                )
            }
            ConfigError::TooBig { path } => {
                write!(
                    f,
                    "{} is too big for a config or secret file; check the path",
                    path.display()
                )
            }
            ConfigError::Json(e) => {
                write!(f, "alerts file: {e}; fix the JSON (see docs/operations.md)")
            }
            ConfigError::Invalid(e) => write!(f, "alerts file: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Read a whole file, refusing one larger than `max`.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let read_err = |e: std::io::Error| ConfigError::Read {
        path: path.to_path_buf(),
        error: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > max {
        return Err(ConfigError::TooBig {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

fn read_secret(path: &Path, what: &str) -> Result<Secret, ConfigError> {
    let bytes = read_bounded(path, MAX_SECRET_BYTES)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ConfigError::Invalid(format!("{what} {} is not text", path.display())))?;
    let value = text.trim();
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(ConfigError::Invalid(format!(
            "{what} {} must hold one {} on one line",
            path.display(),
            if what == "bot_token_file" {
                "token"
            } else {
                "URL"
            }
        )));
    }
    Ok(Secret::new(value))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_url(url: &str, whose: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        // The URL itself may be a secret: say where it came from, not what it is.
        Err(ConfigError::Invalid(format!(
            "{whose}: the URL must start with http:// or https://"
        )))
    }
}

impl AlertsConfig {
    /// Read and validate the alerts file, and read every secret file it names.
    pub fn load(path: &Path) -> Result<AlertsConfig, ConfigError> {
        let bytes = read_bounded(path, MAX_FILE_BYTES)?;
        AlertsConfig::from_json(&bytes)
    }

    pub fn from_json(bytes: &[u8]) -> Result<AlertsConfig, ConfigError> {
        let file: FileConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        let mut config = AlertsConfig::default();
        if let Some(r) = file.repeat_interval_s {
            if !(60..=MAX_DURATION_S).contains(&r) {
                return Err(ConfigError::Invalid(format!(
                    "repeat_interval_s must be between 60 and {MAX_DURATION_S}"
                )));
            }
            config.repeat_interval_s = r;
        }
        for (name, o) in file.rules {
            let rule = RuleName::from_name(&name).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "unknown rule {name:?}; the rules are {}",
                    RuleName::ALL.map(RuleName::as_str).join(", ")
                ))
            })?;
            let s = config
                .rules
                .get_mut(&rule)
                .expect("every rule has defaults");
            if let Some(t) = o.threshold {
                if !t.is_finite() || t < 0.0 {
                    return Err(ConfigError::Invalid(format!(
                        "{name}.threshold must be a number >= 0"
                    )));
                }
                s.threshold = t;
            }
            if let Some(f) = o.for_s {
                if f > MAX_DURATION_S {
                    return Err(ConfigError::Invalid(format!(
                        "{name}.for_s must be at most {MAX_DURATION_S}"
                    )));
                }
                s.for_s = f;
            }
            if let Some(m) = o.max_unclaimed {
                if rule != RuleName::UnclaimedPayouts {
                    return Err(ConfigError::Invalid(format!(
                        "{name}.max_unclaimed: only UnclaimedPayouts takes it"
                    )));
                }
                s.max_unclaimed = m.max(1);
            }
            s.enabled = o.enabled.unwrap_or(s.enabled);
            s.severity = o.severity.unwrap_or(s.severity);
        }
        if file.sinks.len() > MAX_SINKS {
            return Err(ConfigError::Invalid(format!("at most {MAX_SINKS} sinks")));
        }
        for (index, raw) in file.sinks.into_iter().enumerate() {
            let sink = load_sink(index, raw)?;
            if config.sinks.iter().any(|s| s.name == sink.name) {
                return Err(ConfigError::Invalid(format!(
                    "two sinks are named {:?}; give each a unique name",
                    sink.name
                )));
            }
            config.sinks.push(sink);
        }
        Ok(config)
    }

    pub fn rule(&self, rule: RuleName) -> RuleSettings {
        self.rules
            .get(&rule)
            .cloned()
            .unwrap_or_else(|| rule.defaults())
    }

    /// What the server would do with this file, for `warden config check`.
    /// Names no secret.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "alerts file: {} rules, {} sinks, repeat every {} s while firing\n",
            self.rules.values().filter(|r| r.enabled).count(),
            self.sinks.len(),
            self.repeat_interval_s
        );
        for (rule, s) in &self.rules {
            if s.enabled {
                out.push_str(&format!(
                    "  rule {:<21} {:<8} for_s={:<5} threshold={} ({})\n",
                    rule.as_str(),
                    s.severity.as_str(),
                    s.for_s,
                    s.threshold,
                    rule.threshold_meaning()
                ));
            } else {
                out.push_str(&format!("  rule {:<21} disabled\n", rule.as_str()));
            }
        }
        for s in &self.sinks {
            out.push_str(&format!(
                "  sink {} ({}): notices of severity {} and above\n",
                s.name,
                s.kind.as_str(),
                s.min_severity.as_str()
            ));
        }
        if self.sinks.is_empty() {
            out.push_str("  no sink: alerts show in `alerts` and the server's output only\n");
        }
        out
    }
}

fn load_sink(index: usize, raw: SinkFile) -> Result<Sink, ConfigError> {
    let name = raw.name.clone().unwrap_or_else(|| format!("sink{index}"));
    if !valid_name(&name) {
        return Err(ConfigError::Invalid(format!(
            "sinks[{index}].name must be 1-64 letters, digits, '-' or '_'"
        )));
    }
    let whose = format!("sink {name}");
    let kind = match raw.kind.as_str() {
        "webhook" => SinkKind::Webhook,
        "slack" => SinkKind::Slack,
        "discord" => SinkKind::Discord,
        "telegram" => SinkKind::Telegram,
        other => {
            return Err(ConfigError::Invalid(format!(
                "{whose}: unknown kind {other:?}; use webhook, slack, discord or telegram"
            )));
        }
    };
    let misplaced = |key: &str| {
        ConfigError::Invalid(format!(
            "{whose}: {key} does not apply to kind {}",
            kind.as_str()
        ))
    };
    let (secret, chat_id) = match kind {
        SinkKind::Telegram => {
            if raw.url.is_some() {
                return Err(misplaced("url"));
            }
            if raw.url_file.is_some() {
                return Err(misplaced("url_file"));
            }
            let file = raw.bot_token_file.ok_or_else(|| {
                ConfigError::Invalid(format!("{whose}: telegram needs bot_token_file"))
            })?;
            let chat = raw
                .chat_id
                .filter(|c| !c.is_empty() && c.len() <= 64)
                .ok_or_else(|| ConfigError::Invalid(format!("{whose}: telegram needs chat_id")))?;
            (read_secret(&file, "bot_token_file")?, Some(chat))
        }
        _ => {
            if raw.bot_token_file.is_some() {
                return Err(misplaced("bot_token_file"));
            }
            if raw.chat_id.is_some() {
                return Err(misplaced("chat_id"));
            }
            if raw.api_base.is_some() {
                return Err(misplaced("api_base"));
            }
            let secret = match (raw.url, raw.url_file) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::Invalid(format!(
                        "{whose}: give url or url_file, not both"
                    )));
                }
                (Some(url), None) if kind == SinkKind::Webhook => Secret::new(url),
                (Some(_), None) => {
                    return Err(ConfigError::Invalid(format!(
                        "{whose}: {} takes url_file (its URL is a secret); only webhook may hold its URL inline",
                        kind.as_str()
                    )));
                }
                (None, Some(file)) => read_secret(&file, "url_file")?,
                (None, None) => {
                    return Err(ConfigError::Invalid(format!("{whose}: needs url_file")));
                }
            };
            (secret, None)
        }
    };
    if kind != SinkKind::Telegram {
        check_url(secret.expose(), &whose)?;
    }
    let api_base = raw
        .api_base
        .unwrap_or_else(|| "https://api.telegram.org".to_string());
    check_url(&api_base, &whose)?;
    Ok(Sink {
        name,
        kind,
        min_severity: raw.min_severity.unwrap_or(Severity::Info),
        secret,
        chat_id,
        api_base,
    })
}
