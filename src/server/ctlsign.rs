//! The ctl client's side of signed commands (`warden ctl --key FILE`): the
//! private key never leaves this process.
//!
//! 1. The line goes to the server with the key's PUBLIC half; the server
//!    plans its commands, holds them, and answers each one's payload.
//! 2. This client checks every payload against the line it was given (the
//!    command, a named target, each param written, the agent for `send`
//!    to one agent, the id for `approve`), so a compromised server cannot
//!    get a different command signed; then signs it and sends
//!    `approve <id>` with the signature.
use super::control::{self, PendingPayload, Reply, Request};
use crate::operator::{self, OperatorCommand, TargetWord};
use crate::operator_keys;
use serde_json::Value;
use std::path::Path;

/// Run `request` signed with the key in `key_file`.
pub fn run(data_dir: &Path, mut request: Request, key_file: &Path) -> Result<Reply, String> {
    let pair = operator_keys::load(key_file).map_err(|e| e.to_string())?;
    request.key = Some(operator_keys::public_hex(&pair));
    request.signature = None;
    let expected = operator::parse_line(&request.line).map_err(|e| e.to_string())?;
    let first = control::request(data_dir, &request)?;
    let mut reply = Reply {
        exit: first.exit,
        stdout: first.stdout,
        pending: Vec::new(),
    };
    for pending in first.pending {
        if let Err(why) = matches_line(&pending, expected.as_ref()) {
            reply.exit = reply.exit.max(control::exit::FAILED);
            reply.stdout.push_str(&format!(
                "not signed: {} does not match the line ({why}): {}\n",
                pending.id, pending.payload
            ));
            continue;
        }
        let signature = operator_keys::sign(&pair, pending.payload.as_bytes());
        let approve = Request {
            line: format!("approve {}", pending.id),
            json: false,
            wait_s: request.wait_s,
            yes: false,
            key: request.key.clone(),
            signature: Some(signature),
        };
        let second = control::request(data_dir, &approve)?;
        reply.exit = reply.exit.max(second.exit);
        reply
            .stdout
            .push_str(&format!("signed {}: {}\n", pending.id, pending.payload));
        reply.stdout.push_str(&second.stdout);
    }
    Ok(reply)
}

/// Whether the payload is the command the operator's line asked for.
fn matches_line(pending: &PendingPayload, line: Option<&OperatorCommand>) -> Result<(), String> {
    let fields: Vec<Value> =
        serde_json::from_str(&pending.payload).map_err(|_| "not a payload".to_string())?;
    let text = |i: usize| fields.get(i).and_then(Value::as_str).unwrap_or_default();
    if fields.len() != 7 || text(0) != operator_keys::PAYLOAD_DOMAIN {
        return Err("not a warden-command-v1 payload".into());
    }
    if text(1) != pending.agent || text(2) != pending.id {
        return Err("agent or id differs from what the server announced".into());
    }
    let (agent, request) = match line {
        Some(OperatorCommand::Approve { id }) => {
            return if text(2) == id {
                Ok(())
            } else {
                Err(format!("it is not command {id}"))
            };
        }
        Some(OperatorCommand::Send { agent, request }) => (Some(agent), request),
        Some(OperatorCommand::Broadcast { request }) => (None, request),
        _ => return Err("the line issues no command".into()),
    };
    if let Some(agent) = agent
        && !crate::glob::is_pattern(agent)
        && !agent.contains(',')
        && text(1) != agent
    {
        return Err(format!("agent {} is not {agent}", text(1)));
    }
    if text(3) != request.command.as_str() {
        return Err(format!(
            "command {} is not {}",
            text(3),
            request.command.as_str()
        ));
    }
    match &request.target {
        TargetWord::Named(name) if text(4) != name => {
            return Err(format!("target {} is not {name}", text(4)));
        }
        TargetWord::All if text(4) != "all" => return Err("target is not all".into()),
        _ => {}
    }
    let params = fields.get(5).and_then(Value::as_object);
    for (key, value) in &request.params {
        if params.and_then(|p| p.get(key)) != Some(value) {
            return Err(format!("param {key} differs"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(agent: &str, id: &str, command: &str, target: &str, params: &str) -> PendingPayload {
        PendingPayload {
            id: id.into(),
            agent: agent.into(),
            payload: format!(
                "[\"warden-command-v1\",\"{agent}\",\"{id}\",\"{command}\",\"{target}\",{params},1]"
            ),
        }
    }

    fn line(text: &str) -> Option<OperatorCommand> {
        operator::parse_line(text).unwrap()
    }

    #[test]
    fn a_payload_other_than_the_line_is_never_signed() {
        let sent = line("send h1 logs n0 lines=100");
        let ok = pending("h1", "c1", "logs", "n0", "{\"lines\":100}");
        assert_eq!(matches_line(&ok, sent.as_ref()), Ok(()));
        for (bad, why) in [
            (
                pending("h2", "c1", "logs", "n0", "{\"lines\":100}"),
                "agent",
            ),
            (pending("h1", "c1", "stop", "n0", "{}"), "command"),
            (
                pending("h1", "c1", "logs", "n1", "{\"lines\":100}"),
                "target",
            ),
            (
                pending("h1", "c1", "logs", "n0", "{\"lines\":5000}"),
                "param",
            ),
        ] {
            let e = matches_line(&bad, sent.as_ref()).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
        // The server announced one agent and id, the payload says another.
        let mut lying = ok.clone();
        lying.id = "c2".into();
        assert!(matches_line(&lying, sent.as_ref()).is_err());
        // A glob's agents are the server's to choose; the rest is checked.
        let glob = line("send 'h*' status n0");
        assert_eq!(
            matches_line(&pending("h9", "c3", "status", "n0", "{}"), glob.as_ref()),
            Ok(())
        );
        // approve signs only the id it names.
        let approve = line("approve c1");
        assert_eq!(matches_line(&ok, approve.as_ref()), Ok(()));
        let other = pending("h1", "c7", "stop", "n0", "{}");
        assert!(matches_line(&other, approve.as_ref()).is_err());
        // Not a payload at all.
        let mut junk = ok;
        junk.payload = "[\"other-domain\"]".into();
        assert!(matches_line(&junk, sent.as_ref()).is_err());
    }
}
