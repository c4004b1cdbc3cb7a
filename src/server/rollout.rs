//! Operator safety for `broadcast`s that change nodes:
//! - a typed confirmation: at the stdin prompt the server says what will
//!   happen to how many agents and holds the broadcast until the next stdin
//!   line; `yes` sends it, anything else (or nothing within
//!   [`CONFIRM_WINDOW`]) cancels it. Over `warden ctl` the confirmation is
//!   the `--yes` flag: a mutating broadcast without it is refused (exit 1).
//! - `batch=N`: the broadcast rolls N agents at a time; the next N are sent
//!   once every command of the current batch completed, and the rollout
//!   stops at the first failure, saying what ran and what did not.
//!
//! Invariants: at most one confirmation and one rollout are pending (a new
//! one replaces the old, which is said); a confirmed broadcast only reaches
//! agents that were announced when it was asked for.
use super::control::exit;
use super::hub::Hub;
use crate::operator::{self, ResolvedCommand};
use serde_json::json;
use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// How long a broadcast waits for its `yes`.
pub const CONFIRM_WINDOW: Duration = Duration::from_secs(120);

/// The hub's pending confirmation and rollout (one field of the hub).
#[derive(Default)]
pub struct SafetyState {
    /// The ctl request being handled carried `--yes`.
    pub ctl_yes: bool,
    /// Its `--key` (public key: the client signs), and its signature (for
    /// `approve`).
    pub ctl_key: Option<String>,
    pub ctl_signature: Option<crate::operator_keys::CommandSignature>,
    /// The line's `signatures=K`, while it is issued.
    pub wanted: Option<usize>,
    /// The operator key and the commands held for signatures.
    pub signing: super::signing::Signing,
    confirming: Option<Confirming>,
    rollout: Option<Rollout>,
}

struct Confirming {
    request: operator::CommandRequest,
    agents: BTreeSet<String>,
    asked: Instant,
}

struct Rollout {
    label: String,
    batch: usize,
    waiting: VecDeque<(String, ResolvedCommand)>,
    in_flight: BTreeSet<String>,
    done: Vec<String>,
}

impl Hub {
    /// A stdin line while a broadcast waits for its `yes`: `Some(())` when
    /// the line was the answer (consumed).
    pub(super) fn answer_confirmation(&mut self, line: &str) -> Option<()> {
        if self.reply.is_some() {
            return None;
        }
        let pending = self.safety.confirming.take()?;
        let verb = pending.request.command.as_str();
        if pending.asked.elapsed() > CONFIRM_WINDOW {
            self.say(&format!(
                "broadcast {verb} cancelled: not confirmed within {} s",
                CONFIRM_WINDOW.as_secs()
            ));
            return None;
        }
        if line.trim() != "yes" {
            self.say(&format!("broadcast {verb} cancelled (only `yes` confirms)"));
            return Some(());
        }
        self.audit(json!({
            "ts": crate::protocol::now_ms(), "action": "confirm", "by": "stdin",
            "command": verb, "agents": pending.agents.len(),
        }));
        self.run_broadcast(pending.request, Some(&pending.agents));
        Some(())
    }

    /// A mutating broadcast, targeted: ask (stdin), check `--yes` (ctl),
    /// then run it.
    pub(super) fn confirm_broadcast(&mut self, request: operator::CommandRequest) {
        let agents: BTreeSet<String> = self.live.keys().cloned().collect();
        let what = format!(
            "broadcast {} {} reaches {} agent{}{}",
            request.command.as_str(),
            match &request.target {
                operator::TargetWord::All => "all".to_string(),
                operator::TargetWord::Named(n) => n.clone(),
                operator::TargetWord::Unspecified => String::new(),
            },
            agents.len(),
            if agents.len() == 1 { "" } else { "s" },
            match request.controls.batch {
                Some(n) => format!(", {n} at a time, stopping at the first failure"),
                None => ", all at once".to_string(),
            }
        );
        if self.reply.is_some() {
            if !self.safety.ctl_yes {
                self.refuse(
                    exit::FAILED,
                    &format!(
                        "error: {what}: it changes nodes, so add --yes to confirm \
                         (`warden ctl --yes broadcast …`)"
                    ),
                );
                return;
            }
            self.run_broadcast(request, None);
            return;
        }
        if let Some(old) = self.safety.confirming.take() {
            self.say(&format!(
                "broadcast {} cancelled: another broadcast replaced it",
                old.request.command.as_str()
            ));
        }
        self.say(&format!(
            "{what} ({}). Type yes to proceed; anything else cancels.",
            agents.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
        self.safety.confirming = Some(Confirming {
            request,
            agents,
            asked: Instant::now(),
        });
    }

    /// Issue `plan` at once, or its first batch when `batch=N` was given.
    pub(super) fn issue_or_roll(
        &mut self,
        plan: Vec<(String, ResolvedCommand)>,
        batch: Option<usize>,
        label: String,
    ) {
        let Some(batch) = batch.filter(|n| *n < plan.len()) else {
            self.issue(plan);
            return;
        };
        if let Some(old) = self.safety.rollout.take() {
            self.say(&format!(
                "rollout {} abandoned: {} agent(s) not sent ({})",
                old.label,
                old.waiting.len(),
                names(&old.waiting)
            ));
        }
        self.safety.rollout = Some(Rollout {
            label,
            batch,
            waiting: plan.into(),
            in_flight: BTreeSet::new(),
            done: Vec::new(),
        });
        self.roll_next();
    }

    fn roll_next(&mut self) {
        let Some(rollout) = self.safety.rollout.as_mut() else {
            return;
        };
        let take = rollout.batch.min(rollout.waiting.len());
        let next: Vec<(String, ResolvedCommand)> = rollout.waiting.drain(..take).collect();
        let left = rollout.waiting.len();
        let label = rollout.label.clone();
        let agents = next.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>();
        let ids = self.issue(next);
        self.say(&format!(
            "rollout {label}: sending to {} ({left} waiting)",
            agents.join(", ")
        ));
        if let Some(rollout) = self.safety.rollout.as_mut() {
            rollout.in_flight.extend(ids);
            if rollout.in_flight.is_empty() {
                // Nothing could be recorded: do not wait for outcomes.
                self.safety.rollout = None;
            }
        }
    }

    /// A command's terminal outcome: moves a rollout on, or stops it.
    pub(super) fn rollout_outcome(&mut self, agent: &str, id: &str, completed: bool) {
        let Some(rollout) = self.safety.rollout.as_mut() else {
            return;
        };
        if !rollout.in_flight.remove(id) {
            return;
        }
        if !completed {
            let Some(r) = self.safety.rollout.take() else {
                return;
            };
            let text = format!(
                "rollout {} stopped: {agent} failed ({id}). Ran on: {}. In flight: {}. Not sent: {}",
                r.label,
                list(&r.done),
                list(&r.in_flight.iter().cloned().collect::<Vec<_>>()),
                names(&r.waiting)
            );
            self.line_after_commit(text);
            return;
        }
        rollout.done.push(agent.to_string());
        if !rollout.in_flight.is_empty() {
            return;
        }
        if rollout.waiting.is_empty() {
            if let Some(r) = self.safety.rollout.take() {
                self.line_after_commit(format!(
                    "rollout {} done: ran on {}",
                    r.label,
                    list(&r.done)
                ));
            }
            return;
        }
        self.roll_next();
    }
}

fn names(waiting: &VecDeque<(String, ResolvedCommand)>) -> String {
    list(&waiting.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>())
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
