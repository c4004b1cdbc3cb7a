//! What the hub does with one operator line (from stdin or `warden ctl`):
//! read-only views answered at once, and commands recorded then sent (once
//! the record is on disk). Replies go through [`Hub::say`], so a ctl client
//! gets exactly what stdin would have printed.
use super::control::{ControlRequest, Issued, Update, exit};
use super::hub::{Flow, Hub};
use super::render;
use super::store::CommandRecord;
use crate::operator::{self, OperatorCommand, TargetWord};
use crate::protocol::{CommandRequest, Message, now_ms};
use serde_json::json;
use std::sync::atomic::Ordering;

/// Agents one `send` may name with a list, at most.
const MAX_LISTED_AGENTS: usize = 1000;

impl Hub {
    /// A reply to the operator: to the ctl client being served, else stdout.
    pub(super) fn say(&mut self, text: &str) {
        match &self.reply {
            Some(tx) => {
                let _ = tx.send(Update::Text(text.to_string()));
            }
            None => self.out.line(text),
        }
    }

    /// A reply that refuses the line (ctl exit code 1, or 2 for usage).
    pub(super) fn refuse(&mut self, code: u8, text: &str) {
        if let Some(tx) = &self.reply {
            let _ = tx.send(Update::Exit(code));
        }
        self.say(text);
    }

    fn tell(&self, update: Update) {
        if let Some(tx) = &self.reply {
            let _ = tx.send(update);
        }
    }

    /// One line from `warden ctl`: audited with the peer's uid, answered
    /// through the request's channel. `quit` is refused: only the server's
    /// own stdin or a signal stops it.
    pub(super) fn on_control(&mut self, request: ControlRequest) {
        self.audit(json!({
            "ts": now_ms(), "action": "ctl", "by": "ctl", "uid": request.uid, "line": request.line,
        }));
        self.out.line(&format!(
            "ctl (uid {}): {}",
            request.uid,
            super::console::inline(&request.line)
        ));
        let updates = request.updates.clone();
        if matches!(
            operator::parse_line(&request.line),
            Ok(Some(OperatorCommand::Quit))
        ) {
            let _ = updates.send(Update::Exit(exit::USAGE));
            let _ = updates.send(Update::Text(
                "error (bad_request): `quit` is refused over the control socket; stop the server \
                 at its stdin or with SIGTERM"
                    .into(),
            ));
            let _ = updates.send(Update::Done);
            return;
        }
        self.reply = Some(request.updates);
        self.ctl_wait = request.wait_until;
        self.safety.ctl_yes = request.yes;
        self.safety.ctl_key = request.key.clone();
        self.safety.ctl_signature = request.signature.clone();
        let _ = self.on_operator_line(&request.line);
        self.reply = None;
        self.ctl_wait = None;
        self.safety.ctl_yes = false;
        self.safety.ctl_key = None;
        self.safety.ctl_signature = None;
        // After the commands' records are on disk and they are queued.
        self.batch.then(move || {
            let _ = updates.send(Update::Done);
        });
    }

    pub(super) fn on_operator_line(&mut self, line: &str) -> Flow {
        if self.answer_confirmation(line).is_some() {
            return Flow::Continue;
        }
        let parsed = match operator::parse_line(line) {
            Ok(Some(c)) => c,
            Ok(None) => return Flow::Continue,
            Err(e) => {
                self.refuse(exit::USAGE, &format!("error ({}): {e}", e.code()));
                return Flow::Continue;
            }
        };
        self.tell(Update::Verb(verb_name(&parsed)));
        match parsed {
            OperatorCommand::Help => self.say(&operator::help_text()),
            OperatorCommand::Quit => return Flow::Quit,
            OperatorCommand::List => {
                let list = self.render_list();
                self.say(&list);
            }
            OperatorCommand::Show { id } => match self.store.get(&id) {
                Some(record) => {
                    let text = render::show(record);
                    self.say(&text);
                }
                None => self.refuse(
                    exit::FAILED,
                    &format!("error: no command {id} (see `history`)"),
                ),
            },
            OperatorCommand::History { agent } => {
                let recent = self.store.recent(agent.as_deref(), 20);
                let text = render::history(&recent);
                self.say(&text);
            }
            OperatorCommand::Nodes { agent } => {
                let reports: Vec<render::NodeReports<'_>> = self
                    .live
                    .iter()
                    .filter(|(id, _)| agent.as_deref().is_none_or(|a| a == id.as_str()))
                    .filter_map(|(id, live)| {
                        Some(render::NodeReports {
                            agent: id,
                            stats: live.stats()?,
                            announced: Box::new(|c| live.announced(c)),
                            summary: live.summary(),
                        })
                    })
                    .collect();
                let text = render::nodes(&reports);
                drop(reports);
                self.say(&text);
            }
            OperatorCommand::Backups { agent } => {
                let backups = self.store.backups(agent.as_deref());
                let text = render::backups(&backups, now_ms());
                self.say(&text);
            }
            OperatorCommand::Keys { agent } => {
                let keys = self.store.key_updates(agent.as_deref());
                let text = render::keys(&keys);
                self.say(&text);
            }
            OperatorCommand::Alerts => {
                let text = self.render_alerts();
                self.say(&text);
            }
            OperatorCommand::Schedules => {
                let text = self.render_schedules();
                self.say(&text);
            }
            OperatorCommand::Approve { id } => self.approve(&id),
            OperatorCommand::Send { agent, request } => self.send(agent, request),
            OperatorCommand::Broadcast { request } => self.broadcast(request),
        }
        Flow::Continue
    }

    /// `send` to one agent, a comma list (`val1,val2`) or a glob
    /// (`'val-*'`, matched against connected agents).
    fn send(&mut self, spec: String, request: operator::CommandRequest) {
        let (targets, single) = if crate::glob::is_pattern(&spec) {
            let matched: Vec<String> = self
                .live
                .keys()
                .filter(|id| crate::glob::glob_match(&spec, id))
                .cloned()
                .collect();
            (matched, false)
        } else if spec.contains(',') {
            let mut listed: Vec<String> = Vec::new();
            for id in spec.split(',').map(str::trim).filter(|id| !id.is_empty()) {
                if !listed.iter().any(|l| l == id) {
                    listed.push(id.to_string());
                }
            }
            (listed, false)
        } else {
            (vec![spec.clone()], true)
        };
        if targets.is_empty() || targets.len() > MAX_LISTED_AGENTS {
            let why = if targets.is_empty() {
                format!("error: no connected agent matches {spec:?} (see `list`)")
            } else {
                format!("error: {spec:?} names more than {MAX_LISTED_AGENTS} agents")
            };
            self.refuse(exit::FAILED, &why);
            return;
        }
        self.tell(Update::Targeted(targets.len()));
        let mut plan = Vec::new();
        let mut refused = Vec::new();
        for agent in &targets {
            let Some(live) = self.live.get(agent) else {
                refused.push(if single {
                    let connected: Vec<&str> = self.live.keys().map(String::as_str).collect();
                    format!(
                        "error: agent {agent} is not connected (connected: {})",
                        if connected.is_empty() {
                            "none".to_string()
                        } else {
                            connected.join(", ")
                        }
                    )
                } else {
                    format!("error: agent {agent} is not connected")
                });
                continue;
            };
            match operator::resolve(&request, &live.containers) {
                Ok(resolved) => plan.push((agent.clone(), resolved)),
                Err(e) => refused.push(format!("error ({}): {agent}: {e}", e.code())),
            }
        }
        for why in refused {
            self.refuse(exit::FAILED, &why);
        }
        if !single {
            let summary = format!(
                "{spec}: {} targeted, {} to be sent",
                targets.len(),
                plan.len()
            );
            self.say(&summary);
        }
        let plan = self.double_sign_gate(plan, &request.controls);
        self.safety.wanted = request.controls.signatures;
        let _ = self.issue(plan);
        self.safety.wanted = None;
    }

    fn broadcast(&mut self, request: operator::CommandRequest) {
        // A command that changes nodes, sent to every agent's only
        // container, would stop or restart every validator of the fleet at
        // once: it must name its target.
        if request.command.is_mutating() && request.target == TargetWord::Unspecified {
            self.refuse(
                exit::FAILED,
                &format!(
                    "error (invalid_params): broadcast {0} changes nodes and needs a target: \
                 name a container (`broadcast {0} 3node0`){1}",
                    request.command.as_str(),
                    if request.command.allows_all_target() {
                        format!(" or `all` (`broadcast {} all`)", request.command.as_str())
                    } else {
                        String::new()
                    }
                ),
            );
            return;
        }
        if self.live.is_empty() {
            self.refuse(exit::FAILED, "error: no agent is connected");
            return;
        }
        if request.command.is_mutating() {
            self.confirm_broadcast(request);
        } else {
            self.run_broadcast(request, None);
        }
    }

    /// Send a (confirmed) broadcast to every connected agent, or only to
    /// those in `only` (the agents its confirmation announced).
    pub(super) fn run_broadcast(
        &mut self,
        request: operator::CommandRequest,
        only: Option<&std::collections::BTreeSet<String>>,
    ) {
        let mut plan = Vec::new();
        let mut skipped = Vec::new();
        for (agent, live) in &self.live {
            if only.is_some_and(|o| !o.contains(agent)) {
                continue;
            }
            match operator::resolve(&request, &live.containers) {
                Ok(resolved) => plan.push((agent.clone(), resolved)),
                Err(e) => skipped.push(format!("{agent} ({e})")),
            }
        }
        self.tell(Update::Targeted(plan.len() + skipped.len()));
        let plan = self.double_sign_gate(plan, &request.controls);
        let label = format!("broadcast {}", request.command.as_str());
        self.safety.wanted = request.controls.signatures;
        self.issue_or_roll(plan, request.controls.batch, label);
        self.safety.wanted = None;
        if !skipped.is_empty() {
            self.refuse(exit::FAILED, &format!("skipped: {}", skipped.join("; ")));
        }
    }

    /// Record validated commands (one per agent), then send them once the
    /// record is on disk. Returns the ids issued.
    pub(super) fn issue(&mut self, plan: Vec<(String, operator::ResolvedCommand)>) -> Vec<String> {
        let mut requests = Vec::with_capacity(plan.len());
        for (agent, resolved) in plan {
            let request = CommandRequest {
                id: self.new_command_id(),
                command: resolved.command().as_str().to_string(),
                target: resolved.target.as_str().to_string(),
                params: resolved.params.to_json(),
                timestamp: now_ms(),
                signatures: Vec::new(),
            };
            requests.push((agent, request));
        }
        let wanted = self.safety.wanted;
        let held_ids: Vec<String> = requests.iter().map(|(_, r)| r.id.clone()).collect();
        let requests = self.sign_or_hold(requests, wanted);
        let _ = self.record_and_send(requests);
        held_ids
    }

    /// Record commands ready to go, then send them once the record is on
    /// disk. Returns their ids.
    pub(super) fn record_and_send(
        &mut self,
        requests: Vec<(String, CommandRequest)>,
    ) -> Vec<String> {
        let records = requests
            .iter()
            .map(|(agent, r)| CommandRecord {
                id: r.id.clone(),
                agent: agent.clone(),
                command: r.command.clone(),
                target: r.target.clone(),
                params: r.params.clone(),
                issued_ms: r.timestamp,
                by: self
                    .issued_by
                    .unwrap_or(if self.reply.is_some() { "ctl" } else { "stdin" })
                    .into(),
                signatures: r.signatures.clone(),
                outcome: None,
                progress: None,
            })
            .collect();
        self.store.record_issued(records, &mut self.batch);
        if self.reply.is_some() {
            let issued = requests
                .iter()
                .map(|(agent, r)| Issued {
                    agent: agent.clone(),
                    id: r.id.clone(),
                    command: r.command.clone(),
                    target: r.target.clone(),
                })
                .collect();
            self.tell(Update::Issued(issued));
            if let (Some(tx), Some(until)) = (&self.reply, self.ctl_wait) {
                for (_, r) in &requests {
                    self.watchers.insert(r.id.clone(), (tx.clone(), until));
                }
            }
        }
        let ids: Vec<String> = requests.iter().map(|(_, r)| r.id.clone()).collect();
        // Queued per agent once on disk: a stuck agent holds back nobody.
        let mut sends = Vec::with_capacity(requests.len());
        for (agent, request) in requests {
            if let Some(live) = self.live.get(&agent) {
                sends.push((agent, live.session.clone(), request));
            }
        }
        let out = self.out.clone();
        let reply = self.reply.clone();
        self.batch.then(move || {
            let mut lines = String::new();
            let mut reached = 0;
            for (agent, session, request) in sends {
                let (id, command, target) = (
                    request.id.clone(),
                    request.command.clone(),
                    request.target.clone(),
                );
                let line = match session.send(&Message::Command(request)) {
                    Ok(()) => {
                        reached += 1;
                        format!("[{agent} {id}] sent {command} {target}")
                    }
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
            match reply {
                Some(tx) => {
                    let _ = tx.send(Update::Reached(reached));
                    if !lines.is_empty() {
                        let _ = tx.send(Update::Text(lines));
                    }
                }
                None if !lines.is_empty() => out.line(&lines),
                None => {}
            }
        });
        ids
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
                render::health(live.stats(), &|c| live.announced(c)),
                live.containers.join(" "),
            ]);
        }
        render::table(&rows)
    }
}

fn verb_name(command: &OperatorCommand) -> &'static str {
    match command {
        OperatorCommand::Help => "help",
        OperatorCommand::List => "list",
        OperatorCommand::Send { .. } => "send",
        OperatorCommand::Broadcast { .. } => "broadcast",
        OperatorCommand::Show { .. } => "show",
        OperatorCommand::History { .. } => "history",
        OperatorCommand::Keys { .. } => "keys",
        OperatorCommand::Nodes { .. } => "nodes",
        OperatorCommand::Backups { .. } => "backups",
        OperatorCommand::Alerts => "alerts",
        OperatorCommand::Schedules => "schedules",
        OperatorCommand::Approve { .. } => "approve",
        OperatorCommand::Quit => "quit",
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
