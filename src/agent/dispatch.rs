//! From a `command` frame to its one terminal response: the ledger check
//! (never run an id twice), the agent's own limits (rate, disk, running
//! count, shutdown), then the command on its own thread under its deadline.
//!
//! Threads: each accepted command runs on a `cmd-<n>` thread, watched by a
//! `cmd-<n>-deadline` thread that fails it with `timeout` if it overstays.
//! Names are counters, never wire data.
//!
//! Invariants:
//! - Every accepted command gets exactly one terminal response, also when
//!   its work panics, overstays its deadline (`timeout`, its processes
//!   killed) or no thread can be started for it.
//! - A command refused by the rate limit or for lack of disk has written
//!   nothing (see `limits.rs`); every other refusal is a terminal response
//!   stored in the ledger and audited like any outcome.
use super::{Agent, lock, runner};
use crate::commands::CommandName;
use crate::protocol::{CommandRequest, CommandResponse, CommandStatus, ErrorCode, Message};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Commands running at once; more are refused with `busy`, so a flood of
/// commands cannot exhaust the host's threads or Docker.
pub const MAX_RUNNING: usize = 16;
/// Past a command's deadline, how long its work may take to notice (its
/// processes are killed at the deadline) before the timeout is reported
/// without it.
const REPORT_GRACE: Duration = Duration::from_secs(5);

/// Audit a command refused before it could run.
fn audit_refusal(agent: &Agent, request: &CommandRequest, response: &CommandResponse) {
    agent.audit(&runner::audit_record(request, response));
}

/// The overall deadline of `request` on this agent (see
/// [`CommandName::deadline`]); an unknown command is refused at once, so
/// any bound does for it.
pub fn deadline_of(agent: &Agent, request: &CommandRequest) -> Duration {
    let Ok(command) = CommandName::from_str(&request.command) else {
        return Duration::from_secs(60);
    };
    let base = command.deadline();
    match command {
        CommandName::Stop | CommandName::Restart => base + agent.config.stop_grace(),
        CommandName::Payout => agent
            .config
            .policy
            .payout()
            .map(|p| base.max(p.timeout() + Duration::from_secs(60)))
            .unwrap_or(base),
        // Past a long docker timeout: the deadline inside the container
        // fires first, so the program is killed where it runs.
        CommandName::Exec => base.max(
            agent.config.docker.timeout()
                + crate::docker::EXEC_CLIENT_GRACE
                + Duration::from_secs(10),
        ),
        _ => base,
    }
}

/// Decide what to do with a command, then run it on its own thread. Runs on
/// the connection's thread: it never waits for the command.
pub fn dispatch(agent: &Arc<Agent>, request: CommandRequest) {
    let refused =
        |code: ErrorCode, message: String| CommandResponse::failed(&request.id, code, message);
    let claimed = {
        let mut ledger = lock(&agent.ledger);
        match ledger.seen(&request.id) {
            super::ledger::Seen::Done(response) => {
                // Seen before: never run twice, resend the stored outcome.
                let response = response.clone();
                drop(ledger);
                agent.send(&Message::CommandResponse(response));
                return;
            }
            super::ledger::Seen::Running => {
                let progress = CommandResponse::progress(&request.id, CommandStatus::Running);
                drop(ledger);
                agent.send(&Message::CommandResponse(progress));
                return;
            }
            super::ledger::Seen::New => {}
        }
        // Refusals that write nothing: a flood, or a full disk, must not
        // cost the host disk or memory.
        let unstored = if !lock(&agent.rate).take(Instant::now()) {
            Some(refused(
                ErrorCode::Busy,
                format!(
                    "the agent takes at most {} commands at once and {} a second after that; this one was not run, send it again in a moment",
                    super::limits::COMMAND_BURST,
                    super::limits::COMMANDS_PER_S
                ),
            ))
        } else {
            agent
                .disk
                .refusal()
                .map(|message| refused(ErrorCode::Unavailable, message))
        };
        if let Some(response) = unstored {
            drop(ledger);
            agent.send(&Message::CommandResponse(response));
            return;
        }
        // Refusals are terminal responses like any other: kept in the
        // ledger (the id is never run later) and audited.
        let refusal = if agent.shutting_down.load(Ordering::SeqCst) {
            Some(refused(
                ErrorCode::Unavailable,
                "the agent is shutting down; send the command again once it is back".into(),
            ))
        } else if agent.running.load(Ordering::SeqCst) >= MAX_RUNNING {
            Some(refused(
                ErrorCode::Busy,
                format!(
                    "{MAX_RUNNING} commands are already running on this agent; try again when they are done"
                ),
            ))
        } else {
            None
        };
        // A mutating command on one container claims it here, in the order
        // commands arrive, not when its thread gets round to it.
        let claimed = match refusal {
            Some(_) => None,
            None => match claim_early(agent, &request) {
                Ok(claimed) => claimed,
                Err(busy) => {
                    drop(ledger);
                    audit_refusal(agent, &request, &busy);
                    agent.finish(busy);
                    return;
                }
            },
        };
        if let Some(response) = refusal {
            drop(ledger);
            audit_refusal(agent, &request, &response);
            agent.finish(response);
            return;
        }
        // Marked running in memory at once (a resend meanwhile is answered
        // `running`); on disk before it runs, the fsync outside the lock.
        let started = ledger.start(&request.id);
        drop(ledger);
        if let Err(e) = started.and_then(|ticket| ticket.wait()) {
            // Cannot promise at-most-once without the ledger: refuse.
            let response = refused(
                ErrorCode::Internal,
                format!("the agent cannot write its ledger ({e}); command not run"),
            );
            lock(&agent.ledger).remember_unsaved(response.clone());
            audit_refusal(agent, &request, &response);
            agent.send(&Message::CommandResponse(response));
            return;
        }
        claimed
    };
    agent.running.fetch_add(1, Ordering::SeqCst);
    let seq = agent.command_seq.fetch_add(1, Ordering::Relaxed);
    let limit = deadline_of(agent, &request);
    let deadline = Instant::now() + limit;
    let kills = CommandName::from_str(&request.command)
        .map(CommandName::deadline_kills_processes)
        .unwrap_or(true);
    // The worker holds `alive` until it is done; the watchdog waits on it.
    let (alive, watched) = mpsc::channel::<()>();
    let spawned = thread::Builder::new().name(format!("cmd-{seq}")).spawn({
        let agent = agent.clone();
        let request = request.clone();
        move || {
            let _alive = alive;
            let _running = RunningGuard(agent.clone());
            let response = run_caught(&agent, &request, claimed, kills.then_some(deadline));
            agent.finish(response);
        }
    });
    if let Err(e) = spawned {
        agent.running.fetch_sub(1, Ordering::SeqCst);
        agent.finish(CommandResponse::failed(
            &request.id,
            ErrorCode::Internal,
            format!("cannot start a thread for the command: {e}"),
        ));
        return;
    }
    let watchdog = thread::Builder::new()
        .name(format!("cmd-{seq}-deadline"))
        .spawn({
            let agent = agent.clone();
            move || watch(&agent, &request, limit, kills, &watched)
        });
    if let Err(e) = watchdog {
        // The command still runs, its processes bounded by the deadline.
        crate::log::warn(&format!(
            "cannot start the deadline thread of a command: {e}; it runs without one"
        ));
    }
}

/// Claims the one container of a mutating command (`Ok(None)` for any other
/// command, or one the runner will refuse anyway); `Err` is the `busy`
/// refusal.
fn claim_early(
    agent: &Agent,
    request: &CommandRequest,
) -> Result<Option<super::BusyGuard>, CommandResponse> {
    let Ok(command) = CommandName::from_str(&request.command) else {
        return Ok(None);
    };
    let mutating = crate::commands::validate_params(command, &request.params)
        .is_ok_and(|params| params.is_mutating());
    if !mutating
        || request.target == "all"
        || crate::docker::validate_container_name(&request.target).is_err()
    {
        return Ok(None);
    }
    let target = [request.target.clone()];
    agent.claim(&target).map(Some).ok_or_else(|| {
        CommandResponse::failed(
            &request.id,
            ErrorCode::Busy,
            format!(
                "another command is changing {} right now; try again when it is done",
                request.target
            ),
        )
    })
}

/// Gives `running` back when the work ends, however it ends.
struct RunningGuard(Arc<Agent>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs the command, its processes bounded by `deadline` when given; a
/// panic in it becomes an `internal` failure.
fn run_caught(
    agent: &Agent,
    request: &CommandRequest,
    claimed: Option<super::BusyGuard>,
    deadline: Option<Instant>,
) -> CommandResponse {
    let work = || runner::run(agent, request, claimed);
    caught(&request.id, deadline, work).unwrap_or_else(|response| {
        agent.audit(&runner::audit_record(request, &response));
        response
    })
}

/// `work` under `deadline`; a panic in it is `Err` with the `internal`
/// failure that stands for it.
fn caught(
    id: &str,
    deadline: Option<Instant>,
    work: impl FnOnce() -> CommandResponse,
) -> Result<CommandResponse, CommandResponse> {
    let run = std::panic::AssertUnwindSafe(|| match deadline {
        Some(deadline) => crate::process::with_deadline(deadline, work),
        None => work(),
    });
    std::panic::catch_unwind(run).map_err(|_| {
        crate::log::error(&format!("command {id} panicked; it is reported as failed"));
        CommandResponse::failed(
            id,
            ErrorCode::Internal,
            "the agent hit a bug running this command (see its log)",
        )
    })
}

/// Waits for the worker until the command's deadline; past it, the command
/// fails with `timeout` at once, whatever the worker is doing. The worker
/// keeps counting as running (and keeps its containers claimed) until it
/// really ends, so a late worker never overlaps a new command; its own
/// outcome is then dropped (the ledger keeps the first).
fn watch(
    agent: &Agent,
    request: &CommandRequest,
    limit: Duration,
    kills: bool,
    watched: &mpsc::Receiver<()>,
) {
    if watched.recv_timeout(limit + REPORT_GRACE) != Err(mpsc::RecvTimeoutError::Timeout) {
        return;
    }
    let what = if kills {
        "its processes were killed"
    } else {
        "it may still be finishing (each of its steps has its own timeout)"
    };
    let response = CommandResponse::failed(
        &request.id,
        ErrorCode::Timeout,
        format!(
            "{} did not finish within its deadline of {} s; {what}: check the container (status, logs) before running it again",
            request.command,
            limit.as_secs()
        ),
    );
    if agent.finish(response.clone()) {
        agent.audit(&runner::audit_record(request, &response));
    }
}

/// `Message::Command` from the connection thread: a panic anywhere in the
/// dispatch is logged and answered, never the end of the agent.
pub fn on_command(agent: &Arc<Agent>, request: CommandRequest) {
    let id = request.id.clone();
    let run = std::panic::AssertUnwindSafe(|| dispatch(agent, request));
    if std::panic::catch_unwind(run).is_err() {
        crate::log::error(&format!("the agent hit a bug dispatching command {id}"));
        agent.send(&Message::CommandResponse(CommandResponse::failed(
            &id,
            ErrorCode::Internal,
            "the agent hit a bug accepting this command (see its log)",
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_command_becomes_an_internal_failure() {
        let ok = caught("c1", None, || {
            CommandResponse::completed("c1", serde_json::Value::from(1))
        });
        assert_eq!(ok.unwrap().status, CommandStatus::Completed);
        // A deadline already past: had it outlived the panic, the process
        // below could not start.
        let deadline = Some(Instant::now());
        let panicked = caught("c2", deadline, || panic!("a bug")).unwrap_err();
        assert_eq!(
            (panicked.status, panicked.code),
            (CommandStatus::Failed, Some(ErrorCode::Internal))
        );
        // The thread's deadline is gone after the panic, too.
        let limits = crate::process::Limits {
            timeout: Duration::from_secs(10),
            cap: 16,
            keep: crate::process::Keep::Head,
        };
        assert!(crate::process::run("true".as_ref(), &[], &limits).is_ok());
    }
}
