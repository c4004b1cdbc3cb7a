//! The hub's side of the double-sign check: builds a
//! [`FleetKeys`](super::doublesign::FleetKeys) from the live agents' stats
//! and the KeyGuard, runs [`doublesign::check`] on every `start` and
//! `restore_keys` of a plan, and lets a refused one through only with
//! `force=true reason=…`, which goes into the audit log first.
use super::control::exit;
use super::doublesign::{self, FleetKeys, HostView, Planned};
use super::hub::Hub;
use crate::commands::Params;
use crate::operator::{Controls, ResolvedCommand, ResolvedTarget};
use crate::protocol::now_ms;
use crate::protocol::reports::NodeReport;
use serde_json::json;

impl Hub {
    fn fleet_keys(&self) -> FleetKeys {
        let now = now_ms();
        let hosts = self
            .live
            .iter()
            .map(|(agent, live)| {
                let nodes = live
                    .nodes()
                    .map(|(name, node)| (name.clone(), listed_keys(node)))
                    .collect();
                HostView {
                    agent: agent.clone(),
                    host: live.session.hello.host_name.clone(),
                    stats_age_ms: (live.stats_ms > 0).then(|| now - live.stats_ms),
                    nodes,
                }
            })
            .collect();
        FleetKeys {
            hosts,
            observed: self.keyguard.holdings(),
            fresh_ms: 2 * 1000 * self.config.heartbeat_s.max(1) as i64,
        }
    }

    /// The plan without what the double-sign check refuses (each refusal
    /// said to the operator); forced ones are kept and audited.
    pub(super) fn double_sign_gate(
        &mut self,
        plan: Vec<(String, ResolvedCommand)>,
        controls: &Controls,
    ) -> Vec<(String, ResolvedCommand)> {
        let checked =
            |r: &ResolvedCommand| matches!(r.params, Params::Start | Params::RestoreKeys { .. });
        if !plan.iter().any(|(_, r)| checked(r)) {
            return plan;
        }
        let fleet = self.fleet_keys();
        let mut kept = Vec::with_capacity(plan.len());
        for (agent, resolved) in plan {
            if !checked(&resolved) {
                kept.push((agent, resolved));
                continue;
            }
            let containers: Vec<String> = match &resolved.target {
                ResolvedTarget::Container(c) => vec![c.clone()],
                ResolvedTarget::All => self
                    .live
                    .get(&agent)
                    .map(|l| l.containers.clone())
                    .unwrap_or_default(),
            };
            let keys = match &resolved.params {
                Params::RestoreKeys { backup_file } => self
                    .store
                    .backups(Some(&agent))
                    .into_iter()
                    .find(|b| b.file == *backup_file)
                    .and_then(|b| b.keys.clone()),
                _ => None,
            };
            let planned = match &resolved.params {
                Params::RestoreKeys { backup_file } => Planned::Restore {
                    file: backup_file,
                    keys: keys.as_deref(),
                },
                _ => Planned::Start,
            };
            let refusals: Vec<String> = containers
                .iter()
                .filter_map(|c| doublesign::check(&fleet, &agent, c, &planned).err())
                .map(|r| r.to_string())
                .collect();
            if refusals.is_empty() {
                kept.push((agent, resolved));
                continue;
            }
            let command = resolved.command().as_str();
            let target = resolved.target.as_str().to_string();
            match (&controls.force, &controls.reason) {
                (true, Some(reason)) => {
                    self.audit(json!({
                        "ts": now_ms(), "action": "force", "by": self.speaker(),
                        "agent": agent, "command": command, "target": target,
                        "reason": reason, "refused": refusals,
                    }));
                    let text = format!(
                        "[{agent}] forced {command} {target} past the double-sign check \
                         (reason: {}): {}",
                        super::console::inline(reason),
                        refusals.join("; ")
                    );
                    self.say(&text);
                    kept.push((agent, resolved));
                }
                _ => {
                    for why in refusals {
                        self.refuse(
                            exit::FAILED,
                            &format!("error: {agent}: {command} {target} {why}"),
                        );
                    }
                }
            }
        }
        kept
    }

    /// Who typed the line being handled.
    pub(super) fn speaker(&self) -> &'static str {
        if self.reply.is_some() { "ctl" } else { "stdin" }
    }
}

/// A node report's `keystore` listing as `(type, public)`; `None` when the
/// agent did not list it.
fn listed_keys(node: &NodeReport) -> Option<Vec<(String, String)>> {
    let list = node.keystore.as_ref()?;
    Some(
        list.iter()
            .map(|k| (k.key_type().to_string(), k.public().into_owned()))
            .collect(),
    )
}
