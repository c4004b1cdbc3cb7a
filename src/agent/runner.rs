//! Runs one command: checks it against the catalog and the agent's policy,
//! claims its containers if it mutates them, does the work through
//! `docker.rs`, and audits the decision and the outcome.
use super::Agent;
use super::policy::Decision;
use crate::commands::{self, CommandName, Params};
use crate::process::{Keep, Limits, RunError};
use crate::protocol::{CommandRequest, CommandResponse, ErrorCode, now_ms};
use serde_json::{Value, json};
use std::str::FromStr;

pub use super::failure::Failure;

/// Text a result may carry: a response must fit in the server's frame
/// limit (1 MiB by default) with room for JSON escaping, or it could never
/// be delivered and would be resent forever.
const MAX_RESULT_TEXT: usize = 384 * 1024;
/// Beyond this the serialized response is replaced by a failure.
const MAX_RESPONSE_BYTES: usize = 900 * 1024;

/// Keep the first `max` bytes of `text` (at a char boundary), marking the cut.
fn keep_head(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[truncated by the agent: {} more bytes]",
        &text[..end],
        text.len() - end
    )
}

/// Keep the last `max` bytes of `text` (newest log lines), marking the cut.
fn keep_tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!(
        "[truncated by the agent: {} earlier bytes]\n{}",
        start,
        &text[start..]
    )
}

/// The last line of defence for the frame limit.
fn within_frame_limit(response: CommandResponse) -> CommandResponse {
    let size = serde_json::to_vec(&response)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size <= MAX_RESPONSE_BYTES {
        return response;
    }
    CommandResponse::failed(
        &response.id,
        ErrorCode::Internal,
        format!("the result is too large to send ({size} bytes once encoded); narrow the command"),
    )
}

/// Runs `request`; `claimed` holds its container if the dispatcher claimed
/// it already (see `dispatch.rs`).
pub fn run(
    agent: &Agent,
    request: &CommandRequest,
    claimed: Option<super::BusyGuard>,
) -> CommandResponse {
    let outcome = execute(agent, request, claimed);
    let response = match outcome {
        Ok(result) => CommandResponse::completed(&request.id, result),
        Err(failure) => CommandResponse::failed(&request.id, failure.code, failure.message),
    };
    let response = within_frame_limit(response);
    let mut record = audit_record(request, &response);
    if !request.signatures.is_empty() {
        // Who vouched for it, by the names in policy.operators.
        record["signed_by"] = json!(signers_of(agent, request));
    }
    agent.audit(&record);
    response
}

/// The trusted operators whose signatures on `request` are valid.
fn signers_of(agent: &Agent, request: &CommandRequest) -> Vec<String> {
    let payload = crate::operator_keys::signing_payload(
        &agent.config.agent_id,
        &request.id,
        &request.command,
        &request.target,
        &request.params,
        request.timestamp,
    );
    agent
        .config
        .policy
        .operators()
        .valid_signers(&payload, &request.signatures)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Params whose JSON is longer than this are audited as a digest.
pub const AUDIT_PARAMS_MAX_BYTES: usize = 1024;
/// Longest command name and target kept whole in the audit log (the wire
/// bounds neither; a valid one is far shorter).
const AUDIT_WORD_MAX_CHARS: usize = 160;

/// One line of the audit log: the command as received and its outcome.
/// Large params are kept as `{"sha256", "bytes"}` (hex digest of their
/// JSON), so a refused command cannot make the log grow by its size.
pub fn audit_record(request: &CommandRequest, response: &CommandResponse) -> Value {
    let params_json = serde_json::to_vec(&request.params).unwrap_or_default();
    let params = if params_json.len() <= AUDIT_PARAMS_MAX_BYTES {
        Value::Object(request.params.clone())
    } else {
        let digest = ring::digest::digest(&ring::digest::SHA256, &params_json);
        json!({"sha256": hex::encode(digest.as_ref()), "bytes": params_json.len()})
    };
    let short = |text: &str| -> String { text.chars().take(AUDIT_WORD_MAX_CHARS).collect() };
    json!({
        "ts": now_ms(), "id": request.id, "command": short(&request.command), "target": short(&request.target),
        "params": params, "status": response.status, "code": response.code, "error": response.error,
    })
}

fn execute(
    agent: &Agent,
    request: &CommandRequest,
    claimed: Option<super::BusyGuard>,
) -> Result<Value, Failure> {
    let command = CommandName::from_str(&request.command).map_err(|e| {
        Failure::new(
            e.code(),
            format!(
                "unknown command {:?} (see `help` on the server)",
                request.command
            ),
        )
    })?;
    if agent
        .config
        .policy
        .command_too_old(request.timestamp, now_ms())
    {
        return Err(Failure::new(
            ErrorCode::Timeout,
            "the command is too old (or from the future) by this agent's clock; refused rather than run late",
        ));
    }
    let params = commands::validate_params(command, &request.params)
        .map_err(|e| Failure::new(e.code(), e.to_string()))?;
    check_signatures(agent, request, command, &params)?;
    let exec_argv = match &params {
        Params::Exec { argv, .. } => Some(argv.as_slice()),
        _ => None,
    };
    let targets = resolve_targets(agent, command, &request.target)?;
    let targets = if request.target == "all" {
        // `all` means every managed container this command is allowed on
        // (docs/policy.md); refused only when it is allowed on none.
        let decision = agent
            .config
            .policy
            .decide_all(command, targets.iter().map(String::as_str));
        if decision.allowed.is_empty() {
            let reason = decision
                .denied
                .first()
                .map(|(_, r)| r.clone())
                .unwrap_or_default();
            return Err(Failure::new(ErrorCode::NotPermitted, reason));
        }
        decision.allowed.iter().map(|c| c.to_string()).collect()
    } else {
        match agent.config.policy.decide(command, &targets[0], exec_argv) {
            Decision::Allowed => targets,
            Decision::NotManaged { reason } => {
                return Err(Failure::new(ErrorCode::UnknownTarget, reason));
            }
            Decision::Denied { reason } => {
                return Err(Failure::new(ErrorCode::NotPermitted, reason));
            }
        }
    };
    // check_keys with rotate_to_check makes new keys: it needs rotate_keys too.
    if matches!(
        params,
        Params::CheckKeys {
            rotate_to_check: true,
            ..
        }
    ) && let Decision::Denied { reason } | Decision::NotManaged { reason } = agent
        .config
        .policy
        .decide(CommandName::RotateKeys, &targets[0], None)
    {
        return Err(Failure::new(
            ErrorCode::NotPermitted,
            format!("rotate_to_check=true rotates keys: {reason}"),
        ));
    }
    let _claim = if claimed.is_some() {
        claimed
    } else if params.is_mutating() {
        Some(agent.claim(&targets).ok_or_else(|| {
            Failure::new(
                ErrorCode::Busy,
                format!(
                    "another command is changing {} right now; try again when it is done",
                    targets.join(", ")
                ),
            )
        })?)
    } else {
        None
    };
    // Checked (again) after the claim, so that claims keep the order
    // commands arrive in.
    if request.target != "all" {
        ensure_on_host(agent, &targets[0])?;
    }
    let docker = &agent.docker;
    let grace = agent.config.stop_grace();
    match params {
        Params::Start => {
            for t in &targets {
                docker.start(t)?;
            }
            Ok(json!(targets))
        }
        Params::Stop => {
            for t in &targets {
                docker.stop(t, grace)?;
            }
            Ok(json!(targets))
        }
        Params::Restart => {
            docker.restart(&targets[0], grace)?;
            Ok(json!(format!("{} restarted", targets[0])))
        }
        Params::Logs { lines } => {
            let logs = docker.logs(&targets[0], lines as usize, true)?;
            let mut text = merge_log_streams(&logs.stdout, &logs.stderr);
            if logs.truncated {
                text.insert_str(0, "[older lines dropped: docker output cap reached]\n");
            }
            Ok(Value::String(keep_tail(&text, MAX_RESULT_TEXT)))
        }
        Params::Status => status(agent, &targets),
        Params::Exec { argv, .. } => {
            let output =
                docker.exec_with_deadline(&targets[0], &argv, agent.config.docker.timeout())?;
            Ok(json!({
                "exit_code": output.exit_code,
                "stdout": keep_head(&output.stdout, MAX_RESULT_TEXT / 2),
                "stderr": keep_head(&output.stderr, MAX_RESULT_TEXT / 2),
                "truncated": output.truncated,
            }))
        }
        Params::Payout => payout(agent, &targets[0]),
        Params::RotateKeys => super::keys::rotate_keys(agent, &targets[0]),
        Params::BackupKeys => super::backups::backup_keys(agent, &targets[0]),
        Params::RestoreKeys { backup_file } => {
            super::backups::restore_keys(agent, &targets[0], &backup_file)
        }
        Params::CheckKeys {
            rotate_to_check,
            public_keys,
        } => super::keys::check_keys(agent, &targets[0], rotate_to_check, public_keys.as_ref()),
        Params::HasSessionKeys { session_keys } => {
            super::keys::has_session_keys(agent, &targets[0], &session_keys)
        }
        Params::HasKey {
            public_key,
            key_type,
        } => super::keys::has_key(agent, &targets[0], &public_key, &key_type),
        Params::FindValidator {
            session_keys,
            deep_search,
        } => super::keys::find_validator(agent, &targets[0], session_keys.as_deref(), deep_search),
    }
}

/// The operator signatures `policy.require_signatures` asks of this command
/// (`check_keys rotate_to_check=true` also needs those of `rotate_keys`).
fn check_signatures(
    agent: &Agent,
    request: &CommandRequest,
    command: CommandName,
    params: &Params,
) -> Result<(), Failure> {
    let policy = &agent.config.policy;
    let mut required = policy.required_signatures(command);
    if params.is_mutating() && command == CommandName::CheckKeys {
        required = required.max(policy.required_signatures(CommandName::RotateKeys));
    }
    if required == 0 {
        return Ok(());
    }
    let signers = signers_of(agent, request);
    if signers.len() >= required {
        return Ok(());
    }
    Err(Failure::new(
        ErrorCode::NotPermitted,
        format!(
            "{command} needs {required} operator signature(s) on this agent (policy.require_signatures) and has {} valid{}; a signature counts only by a key in policy.operators and over this very command (agent, id, command, target, params, timestamp)",
            signers.len(),
            if signers.is_empty() {
                String::new()
            } else {
                format!(" (by {})", signers.join(", "))
            }
        ),
    ))
}

/// The containers a command acts on: `all` means every managed container.
fn resolve_targets(
    agent: &Agent,
    command: CommandName,
    target: &str,
) -> Result<Vec<String>, Failure> {
    if target == "all" {
        if !command.allows_all_target() {
            return Err(Failure::new(
                ErrorCode::InvalidParams,
                format!("{} takes one container, not all", command.as_str()),
            ));
        }
        let managed = agent.managed_containers()?;
        if managed.is_empty() {
            return Err(Failure::new(
                ErrorCode::UnknownTarget,
                "this agent manages no container right now",
            ));
        }
        return Ok(managed);
    }
    crate::docker::validate_container_name(target)?;
    if !agent.config.policy.manages(target) {
        return Err(Failure::new(
            ErrorCode::UnknownTarget,
            format!("{target} is not a container this agent manages (policy.containers)"),
        ));
    }
    ensure_on_host(agent, target)?;
    Ok(vec![target.to_string()])
}

/// Docker accepts an id prefix wherever a name goes: `docker stop 3a` stops
/// whichever container's id starts with 3a. Only an exact name from
/// `docker ps` is a target.
fn ensure_on_host(agent: &Agent, target: &str) -> Result<(), Failure> {
    if agent
        .managed_containers()?
        .iter()
        .any(|name| name == target)
    {
        Ok(())
    } else {
        Err(Failure::new(
            ErrorCode::UnknownTarget,
            format!("there is no container named {target} on this host (docker ps -a)"),
        ))
    }
}

fn status(agent: &Agent, targets: &[String]) -> Result<Value, Failure> {
    let names: Vec<&str> = targets.iter().map(String::as_str).collect();
    let inspected = agent.docker.inspect(&names)?;
    let rows: Vec<Value> = inspected
        .iter()
        .map(|c| {
            let uptime_s = super::stats::uptime_s(c, now_ms());
            json!({
                "name": c.name,
                "state": c.state.status,
                "health": c.state.health,
                "uptime_s": uptime_s,
                "image": c.image,
                "restart_count": c.restart_count,
            })
        })
        .collect();
    Ok(json!({ "containers": rows }))
}

fn payout(agent: &Agent, container: &str) -> Result<Value, Failure> {
    let Some(payout) = agent.config.policy.payout() else {
        return Err(Failure::new(
            ErrorCode::NotPermitted,
            "no payout script is configured (policy.payout.script)",
        ));
    };
    let limits = Limits {
        timeout: payout.timeout(),
        cap: crate::docker::DEFAULT_OUTPUT_CAP,
        keep: Keep::Head,
    };
    let script = payout.script();
    // The script gets the container, then the node's stash and the active
    // era when the chain says what they are.
    let mut args = vec![container.to_string()];
    if let Ok(Some(inspect)) = agent
        .docker
        .inspect(&[container])
        .map(|v| v.into_iter().next())
        && let (Some(stash), Some(era)) = super::summary::stash_and_era(agent, &inspect)
    {
        args.push(stash);
        args.push(era.to_string());
    }
    let captured =
        crate::process::run(script.as_os_str(), &args, &limits).map_err(|e| match e {
            RunError::TimedOut => Failure::new(
                ErrorCode::Timeout,
                format!(
                    "the payout script {} did not finish within {} s and was killed",
                    script.display(),
                    payout.timeout().as_secs()
                ),
            ),
            RunError::Spawn(e) => Failure::new(
                ErrorCode::Internal,
                format!("cannot run the payout script {}: {e}", script.display()),
            ),
            RunError::Io(e) => Failure::new(
                ErrorCode::Internal,
                format!("payout script {}: {e}", script.display()),
            ),
        })?;
    let mut text = String::from_utf8_lossy(&captured.stdout.bytes).into_owned();
    text.push_str(&String::from_utf8_lossy(&captured.stderr.bytes));
    if captured.stdout.truncated || captured.stderr.truncated {
        text.push_str("\n[output truncated]");
    }
    if !captured.status.success() {
        return Err(Failure::new(
            ErrorCode::Internal,
            format!(
                "the payout script exited with {}: {}",
                captured.status,
                text.trim()
            ),
        ));
    }
    Ok(Value::String(keep_head(&text, MAX_RESULT_TEXT)))
}

/// `docker logs --timestamps` gives the container's stdout and stderr apart
/// (a Substrate node logs to stderr). Docker's timestamps are fixed-width
/// RFC 3339, so sorting by them restores the order; they are then dropped,
/// since the node prints its own.
fn merge_log_streams(stdout: &str, stderr: &str) -> String {
    let mut lines: Vec<&str> = stdout.lines().chain(stderr.lines()).collect();
    lines.sort_by_key(|l| l.split_once(' ').map(|(ts, _)| ts).unwrap_or(""));
    lines
        .iter()
        .map(|l| l.split_once(' ').map(|(_, rest)| rest).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_params_are_audited_as_a_digest() {
        let request = |params: Value| CommandRequest {
            id: "c1".into(),
            command: "exec".into(),
            target: "t".repeat(10_000),
            params: params.as_object().unwrap().clone(),
            timestamp: 1,
            signatures: Vec::new(),
        };
        let response = CommandResponse::failed("c1", ErrorCode::NotPermitted, "no");
        let small = audit_record(&request(json!({"command": "ls"})), &response);
        assert_eq!(small["params"], json!({"command": "ls"}));
        let big = request(json!({"command": "x".repeat(100_000)}));
        let record = audit_record(&big, &response);
        let expected = ring::digest::digest(
            &ring::digest::SHA256,
            &serde_json::to_vec(&big.params).unwrap(),
        );
        assert_eq!(record["params"]["sha256"], hex::encode(expected.as_ref()));
        assert_eq!(record["params"]["bytes"], 100_000 + 14);
        assert!(record.to_string().len() < 1024, "{record}");
    }

    #[test]
    fn long_text_is_cut_at_char_boundaries_with_a_marker() {
        let text = "é".repeat(10);
        let head = keep_head(&text, 5);
        assert!(
            head.starts_with("éé\n[truncated by the agent: 16 more bytes]"),
            "{head}"
        );
        let tail = keep_tail(&text, 5);
        assert!(tail.ends_with("\néé"), "{tail}");
        assert_eq!(keep_head("short", 10), "short");
    }

    #[test]
    fn an_undeliverable_response_becomes_a_failure() {
        let big =
            CommandResponse::completed("c1", Value::String("\u{1}".repeat(MAX_RESPONSE_BYTES / 4)));
        let fitted = within_frame_limit(big);
        assert_eq!(fitted.code, Some(ErrorCode::Internal));
        let small = CommandResponse::completed("c2", Value::String("ok".into()));
        assert_eq!(within_frame_limit(small.clone()), small);
    }

    #[test]
    fn log_streams_merge_in_time_order() {
        let out = "2024-01-08T14:30:00.000000001Z a\n2024-01-08T14:30:00.000000003Z c\n";
        let err = "2024-01-08T14:30:00.000000002Z b\n";
        assert_eq!(super::merge_log_streams(out, err), "a\nb\nc");
    }
}
