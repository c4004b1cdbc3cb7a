//! What the hub does with one operator line: read-only views answered at
//! once, and commands recorded then sent (once the record is on disk).
use super::hub::{Flow, Hub};
use super::render;
use super::store::CommandRecord;
use crate::operator::{self, OperatorCommand, TargetWord};
use crate::protocol::{CommandRequest, Message, now_ms};
use std::sync::atomic::Ordering;

impl Hub {
    pub(super) fn on_operator_line(&mut self, line: &str) -> Flow {
        let parsed = match operator::parse_line(line) {
            Ok(Some(c)) => c,
            Ok(None) => return Flow::Continue,
            Err(e) => {
                self.out.line(&format!("error ({}): {e}", e.code()));
                return Flow::Continue;
            }
        };
        match parsed {
            OperatorCommand::Help => self.out.line(&operator::help_text()),
            OperatorCommand::Quit => return Flow::Quit,
            OperatorCommand::List => self.out.line(&self.render_list()),
            OperatorCommand::Show { id } => match self.store.get(&id) {
                Some(record) => self.out.line(&render::show(record)),
                None => self
                    .out
                    .line(&format!("error: no command {id} (see `history`)")),
            },
            OperatorCommand::History { agent } => {
                let recent = self.store.recent(agent.as_deref(), 20);
                self.out.line(&render::history(&recent));
            }
            OperatorCommand::Nodes { agent } => {
                let reports: Vec<render::NodeReport<'_>> = self
                    .live
                    .iter()
                    .filter(|(id, _)| agent.as_deref().is_none_or(|a| a == id.as_str()))
                    .filter_map(|(id, live)| {
                        live.last_stats.as_ref().map(|stats| render::NodeReport {
                            agent: id.as_str(),
                            stats,
                            summary: live.last_summary.as_ref(),
                        })
                    })
                    .collect();
                self.out.line(&render::nodes(&reports));
            }
            OperatorCommand::Backups { agent } => {
                let backups = self.store.backups(agent.as_deref());
                self.out.line(&render::backups(&backups, now_ms()));
            }
            OperatorCommand::Keys { agent } => {
                let keys = self.store.key_updates(agent.as_deref());
                self.out.line(&render::keys(&keys));
            }
            OperatorCommand::Send { agent, request } => self.send(agent, request),
            OperatorCommand::Broadcast { request } => self.broadcast(request),
        }
        Flow::Continue
    }

    fn send(&mut self, agent: String, request: operator::CommandRequest) {
        let Some(live) = self.live.get(&agent) else {
            let connected: Vec<&str> = self.live.keys().map(String::as_str).collect();
            self.out.line(&format!(
                "error: agent {agent} is not connected (connected: {})",
                if connected.is_empty() {
                    "none".to_string()
                } else {
                    connected.join(", ")
                }
            ));
            return;
        };
        match operator::resolve(&request, &live.containers) {
            Ok(resolved) => self.issue(vec![(agent, resolved)]),
            Err(e) => self
                .out
                .line(&format!("error ({}): {agent}: {e}", e.code())),
        }
    }

    fn broadcast(&mut self, request: operator::CommandRequest) {
        // A command that changes nodes, sent to every agent's only
        // container, would stop or restart every validator of the fleet at
        // once: it must name its target.
        if request.command.is_mutating() && request.target == TargetWord::Unspecified {
            self.out.line(&format!(
                "error (invalid_params): broadcast {0} changes nodes and needs a target: \
                 name a container (`broadcast {0} 3node0`){1}",
                request.command.as_str(),
                if request.command.allows_all_target() {
                    format!(" or `all` (`broadcast {} all`)", request.command.as_str())
                } else {
                    String::new()
                }
            ));
            return;
        }
        if self.live.is_empty() {
            self.out.line("error: no agent is connected");
            return;
        }
        let mut plan = Vec::new();
        let mut skipped = Vec::new();
        for (agent, live) in &self.live {
            match operator::resolve(&request, &live.containers) {
                Ok(resolved) => plan.push((agent.clone(), resolved)),
                Err(e) => skipped.push(format!("{agent} ({e})")),
            }
        }
        self.issue(plan);
        if !skipped.is_empty() {
            self.out.line(&format!("skipped: {}", skipped.join("; ")));
        }
    }

    /// Record validated commands (one per agent), then send them once the
    /// record is on disk.
    fn issue(&mut self, plan: Vec<(String, operator::ResolvedCommand)>) {
        let mut requests = Vec::with_capacity(plan.len());
        for (agent, resolved) in plan {
            let request = CommandRequest {
                id: self.new_command_id(),
                command: resolved.command().as_str().to_string(),
                target: resolved.target.as_str().to_string(),
                params: resolved.params.to_json(),
                timestamp: now_ms(),
            };
            requests.push((agent, request));
        }
        let records = requests
            .iter()
            .map(|(agent, r)| CommandRecord {
                id: r.id.clone(),
                agent: agent.clone(),
                command: r.command.clone(),
                target: r.target.clone(),
                params: r.params.clone(),
                issued_ms: r.timestamp,
                by: "stdin".into(),
                outcome: None,
                progress: None,
            })
            .collect();
        self.store.record_issued(records, &mut self.batch);
        // Queued per agent once on disk: a stuck agent holds back nobody.
        let mut sends = Vec::with_capacity(requests.len());
        for (agent, request) in requests {
            if let Some(live) = self.live.get(&agent) {
                sends.push((agent, live.session.clone(), request));
            }
        }
        let out = self.out.clone();
        self.batch.then(move || {
            let mut lines = String::new();
            for (agent, session, request) in sends {
                let (id, command, target) = (
                    request.id.clone(),
                    request.command.clone(),
                    request.target.clone(),
                );
                let line = match session.send(&Message::Command(request)) {
                    Ok(()) => format!("[{agent} {id}] sent {command} {target}"),
                    Err(e) => format!(
                        "[{agent} {id}] not delivered ({e}); the agent will reconnect. \
                         Check with `show {id}` before sending it again"
                    ),
                };
                if !lines.is_empty() {
                    lines.push('\n');
                }
                lines.push_str(&line);
            }
            if !lines.is_empty() {
                out.line(&lines);
            }
        });
    }

    fn render_list(&self) -> String {
        if self.live.is_empty() {
            return "no agent is connected".into();
        }
        let now = now_ms();
        let mut rows = vec![vec![
            "AGENT".to_string(),
            "HOST".into(),
            "VERSION".into(),
            "SINCE".into(),
            "LAST SEEN".into(),
            "HEALTH".into(),
            "CONTAINERS".into(),
        ]];
        for (id, live) in &self.live {
            let s = &live.session;
            rows.push(vec![
                id.clone(),
                s.hello.host_name.clone(),
                s.hello.version.clone(),
                format!("{} ago", format_age(now - s.connected_ms)),
                format!(
                    "{} ago",
                    format_age(now - s.last_seen_ms.load(Ordering::Relaxed))
                ),
                render::health(live.last_stats.as_ref()),
                live.containers.join(" "),
            ]);
        }
        render::table(&rows)
    }
}

pub(crate) fn format_age(ms: i64) -> String {
    let s = (ms.max(0) / 1000) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}
