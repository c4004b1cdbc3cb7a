//! One notice (a firing, a repeat or the resolved notice of one alert) and
//! the payload each sink kind posts for it: the Alertmanager webhook
//! (version 4), Slack, Discord and Telegram. Pure: tested as literal JSON.
use super::config::Severity;
use crate::log::format_utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Alertmanager's `endsAt` of an alert that still fires.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// Bounds of the services' message fields (Discord content 2000, embed
/// description 4096; Telegram 4096; Slack section text 3000).
const DISCORD_CONTENT: usize = 2000;
const DISCORD_EMBED: usize = 4096;
const TELEGRAM_TEXT: usize = 4096;
const SLACK_SECTION: usize = 3000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    /// The alert fired (its condition held for `for_s`).
    Firing,
    /// It still holds, `repeat_interval_s` after the last accepted notice.
    Repeat,
    Resolved,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub fingerprint: String,
    pub alertname: String,
    pub severity: Severity,
    pub kind: NoticeKind,
    pub agent: String,
    pub container: Option<String>,
    pub summary: String,
    pub facts: Vec<String>,
    /// The command that would help, in the operator language.
    pub help: Option<String>,
    pub starts_at_ms: i64,
    /// Set on the resolved notice.
    pub ends_at_ms: Option<i64>,
    pub issued_ms: i64,
    /// The sinks (by name) this notice goes to; empty: the console only.
    #[serde(default)]
    pub sinks: Vec<String>,
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

impl Notice {
    pub fn status(&self) -> &'static str {
        match self.kind {
            NoticeKind::Resolved => "resolved",
            _ => "firing",
        }
    }

    /// The facts and the helpful command, as the annotation `description`.
    pub fn description(&self) -> String {
        let mut out = self.facts.join("\n");
        if let Some(help) = &self.help {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str("what helps: ");
            out.push_str(help);
        }
        out
    }

    /// One line for the server's output and the `alerts` history.
    pub fn line(&self) -> String {
        let tag = match self.kind {
            NoticeKind::Firing => "FIRING",
            NoticeKind::Repeat => "STILL FIRING",
            NoticeKind::Resolved => "RESOLVED",
        };
        format!(
            "[alert {} {}] {} {}: {}",
            self.alertname,
            self.severity.as_str(),
            tag,
            self.fingerprint,
            self.summary
        )
    }

    /// A human text: title line, facts, help (Slack, Discord, Telegram).
    pub fn text(&self) -> String {
        let mut title = match self.kind {
            NoticeKind::Firing => format!(
                "🔥 [{}] {}",
                self.severity.as_str().to_uppercase(),
                self.alertname
            ),
            NoticeKind::Repeat => format!(
                "🔁 [{}] still firing: {}",
                self.severity.as_str().to_uppercase(),
                self.alertname
            ),
            NoticeKind::Resolved => format!("✅ [RESOLVED] {}", self.alertname),
        };
        title.push_str(&format!("\n{}", self.summary));
        let since = format!("since {}", format_utc(self.starts_at_ms / 1000));
        let mut body = vec![title, since];
        if self.kind == NoticeKind::Resolved {
            if let Some(end) = self.ends_at_ms {
                body.push(format!("resolved at {}", format_utc(end / 1000)));
            }
        } else {
            let d = self.description();
            if !d.is_empty() {
                body.push(d);
            }
        }
        body.join("\n")
    }

    fn labels(&self) -> Value {
        let mut labels = json!({
            "alertname": self.alertname,
            "severity": self.severity.as_str(),
            "agent": self.agent,
        });
        if let Some(c) = &self.container {
            labels["container"] = json!(c);
        }
        labels
    }

    /// The Alertmanager webhook payload, version 4: one alert per notice,
    /// `groupKey` its fingerprint, `receiver` "warden".
    pub fn webhook_payload(&self, external_url: &str) -> Value {
        let labels = self.labels();
        let annotations = json!({"summary": self.summary, "description": self.description()});
        let ends_at = match (self.kind, self.ends_at_ms) {
            (NoticeKind::Resolved, Some(end)) => format_utc(end / 1000),
            (NoticeKind::Resolved, None) => format_utc(self.issued_ms / 1000),
            _ => ZERO_TIME.to_string(),
        };
        json!({
            "version": "4",
            "status": self.status(),
            "receiver": "warden",
            "groupKey": self.fingerprint,
            "truncatedAlerts": 0,
            "groupLabels": {"alertname": self.alertname},
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": external_url,
            "alerts": [{
                "status": self.status(),
                "labels": labels,
                "annotations": annotations,
                "startsAt": format_utc(self.starts_at_ms / 1000),
                "endsAt": ends_at,
                "generatorURL": external_url,
                "fingerprint": self.fingerprint,
            }],
        })
    }

    /// Slack incoming webhook: `text` (notifications, fallback) and one
    /// section block.
    pub fn slack_payload(&self) -> Value {
        let text = self.text();
        json!({
            "text": cut(&format!("{} {}", self.status(), self.summary), SLACK_SECTION),
            "blocks": [{"type": "section", "text": {"type": "plain_text", "text": cut(&text, SLACK_SECTION)}}],
        })
    }

    /// Discord webhook: short `content`, one embed (red firing, green resolved).
    pub fn discord_payload(&self) -> Value {
        let color = match (self.kind, self.severity) {
            (NoticeKind::Resolved, _) => 0x2e_cc_71,
            (_, Severity::Critical) => 0xe7_4c_3c,
            (_, Severity::Warning) => 0xf3_9c_12,
            (_, Severity::Info) => 0x34_98_db,
        };
        json!({
            "content": cut(&format!("[{}] {}", self.status(), self.summary), DISCORD_CONTENT),
            "embeds": [{"title": cut(&self.alertname, 256), "description": cut(&self.text(), DISCORD_EMBED), "color": color}],
            "allowed_mentions": {"parse": []},
        })
    }

    /// Telegram Bot API `sendMessage`: plain text (no parse mode, so nothing
    /// from a node's log can be taken for markup).
    pub fn telegram_payload(&self, chat_id: &str) -> Value {
        json!({
            "chat_id": chat_id,
            "text": cut(&self.text(), TELEGRAM_TEXT),
            "disable_web_page_preview": true,
        })
    }
}
