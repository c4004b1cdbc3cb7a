//! Running one child process (docker, or an operator script): no shell, stdin null, a deadline, bounded capture.
//!
//! Invariants:
//! - the child is always reaped: on success by `try_wait`, on timeout or error by
//!   `kill` then `wait` (no zombie is left behind);
//! - stdout and stderr are drained on their own named threads from the start, so
//!   the child never blocks on a full pipe, whatever it prints;
//! - at most `cap` bytes per stream are kept; the rest is read and discarded, and
//!   the capture says it was truncated;
//! - no wait is unbounded: the call returns by `deadline` plus [`DRAIN_GRACE`]
//!   at the latest;
//! - each child leads its own process group, and a child that overstays its
//!   deadline is killed with its whole group (a script's own children too);
//! - a thread that runs under [`with_deadline`] (an agent command) never has a
//!   child outlive that deadline, and spawns none once it has passed.
//!
//! std has no "wait with timeout" for a child, and this crate has no unsafe code
//! to call `waitpid`/`pidfd`; so the waiting thread polls `try_wait`, sleeping on
//! the reader channel between polls: a child that closes its pipes as it exits
//! (the usual case) wakes the waiter at once, and the poll interval only bounds
//! how late a timeout or an exit with pipes still open is noticed.

use std::cell::Cell;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Longest sleep between two `try_wait` polls.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// After the child was killed, or exited, how long its pipes may stay open. They
/// stay open only if the child left a process behind that inherited them (the
/// `docker` CLI does not); past this the reader threads are left to finish on
/// their own rather than make the caller wait.
pub(crate) const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Which part of an over-long stream to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The first `cap` bytes (command output: its start says what happened).
    Head,
    /// The last `cap` bytes (logs: the newest lines matter).
    Tail,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub cap: usize,
    pub keep: Keep,
}

/// What one stream produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stream {
    pub bytes: Vec<u8>,
    pub truncated: bool,
}

#[derive(Debug)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: Stream,
    pub stderr: Stream,
}

#[derive(Debug)]
pub enum RunError {
    /// The program could not be started (not found, not executable, no resources).
    Spawn(io::Error),
    /// The deadline passed; the child was killed and reaped.
    TimedOut,
    /// Waiting for the child or reading its output failed.
    Io(io::Error),
}

type ReaderMessage = (usize, io::Result<Stream>);

thread_local! {
    /// The deadline of the command this thread runs, if any.
    static THREAD_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Runs `work` with every child it spawns on this thread bounded by
/// `deadline` as well as by its own limits: the agent's overall deadline of
/// a command, whatever docker calls or scripts the command makes.
pub fn with_deadline<R>(deadline: Instant, work: impl FnOnce() -> R) -> R {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_DEADLINE.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(THREAD_DEADLINE.with(|d| d.replace(Some(deadline))));
    work()
}

/// Runs `program args…` under `limits`.
pub fn run(program: &OsStr, args: &[String], limits: &Limits) -> Result<Captured, RunError> {
    let started = Instant::now();
    // A timeout too large for Instant arithmetic means "practically never".
    let own_deadline = started
        .checked_add(limits.timeout)
        .unwrap_or_else(|| started + Duration::from_secs(365 * 24 * 3600));
    let deadline = match THREAD_DEADLINE.with(Cell::get) {
        Some(command_deadline) if command_deadline <= started => {
            return Err(RunError::TimedOut);
        }
        Some(command_deadline) => own_deadline.min(command_deadline),
        None => own_deadline,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so that a timeout kills what it started as well.
        .process_group(0)
        .spawn()
        .map_err(RunError::Spawn)?;

    let (sender, receiver) = mpsc::channel::<ReaderMessage>();
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_and_reap(&mut child);
        return Err(RunError::Io(io::Error::other(
            "the child's pipes are missing",
        )));
    };
    let mut readers: [Option<JoinHandle<()>>; 2] = [None, None];
    let spawn_readers = || -> io::Result<()> {
        readers[0] = Some(spawn_reader("docker-stdout", 0, stdout, &sender, limits)?);
        readers[1] = Some(spawn_reader("docker-stderr", 1, stderr, &sender, limits)?);
        Ok(())
    };
    if let Err(error) = spawn_readers() {
        // Killing the child closes its pipes, which ends a reader already started.
        kill_and_reap(&mut child);
        return Err(RunError::Io(error));
    }
    drop(sender);

    let mut results: [Option<io::Result<Stream>>; 2] = [None, None];
    let exited = wait_until(&mut child, &receiver, &mut results, deadline);
    let status = match exited {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill_and_reap(&mut child);
            collect(&receiver, &mut results, Instant::now() + DRAIN_GRACE);
            join_finished(&mut readers, &results);
            return Err(RunError::TimedOut);
        }
        Err(error) => {
            kill_and_reap(&mut child);
            collect(&receiver, &mut results, Instant::now() + DRAIN_GRACE);
            join_finished(&mut readers, &results);
            return Err(RunError::Io(error));
        }
    };
    // The child is gone; its pipes close with it unless it left a process
    // holding them. Waiting for them is still bounded by the deadline.
    collect(
        &receiver,
        &mut results,
        deadline.max(Instant::now() + DRAIN_GRACE),
    );
    join_finished(&mut readers, &results);
    let [stdout, stderr] = results;
    match (stdout, stderr) {
        (Some(stdout), Some(stderr)) => Ok(Captured {
            status,
            stdout: stdout.map_err(RunError::Io)?,
            stderr: stderr.map_err(RunError::Io)?,
        }),
        _ => Err(RunError::TimedOut),
    }
}

/// Starts the thread that drains one pipe and reports it as `index`.
fn spawn_reader(
    thread_name: &str,
    index: usize,
    pipe: impl Read + Send + 'static,
    sender: &Sender<ReaderMessage>,
    limits: &Limits,
) -> io::Result<JoinHandle<()>> {
    let sender = sender.clone();
    let (cap, keep) = (limits.cap, limits.keep);
    thread::Builder::new()
        .name(thread_name.to_owned())
        .spawn(move || {
            // The receiver is gone only if the caller stopped waiting; nothing to do then.
            let _ = sender.send((index, drain(pipe, cap, keep)));
        })
}

/// Polls the child until it exits (`Some(status)`) or the deadline passes
/// (`None`), storing reader results as they arrive.
fn wait_until(
    child: &mut Child,
    receiver: &Receiver<ReaderMessage>,
    results: &mut [Option<io::Result<Stream>>; 2],
    deadline: Instant,
) -> io::Result<Option<ExitStatus>> {
    let mut interval = Duration::from_millis(1);
    let mut readers_open = true;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let nap = interval.min(deadline - now);
        if readers_open {
            match receiver.recv_timeout(nap) {
                Ok((index, result)) => {
                    results[index] = Some(result);
                    // A closed pipe usually means the child is exiting: look again soon.
                    interval = Duration::from_millis(1);
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => readers_open = false,
            }
        } else {
            thread::sleep(nap);
        }
        interval = (interval * 2).min(MAX_POLL_INTERVAL);
    }
}

/// Receives reader results until both are in or `until` passes.
fn collect(
    receiver: &Receiver<ReaderMessage>,
    results: &mut [Option<io::Result<Stream>>; 2],
    until: Instant,
) {
    while results.iter().any(Option::is_none) {
        let now = Instant::now();
        if now >= until {
            return;
        }
        match receiver.recv_timeout(until - now) {
            Ok((index, result)) => results[index] = Some(result),
            Err(_) => return,
        }
    }
}

/// Joins the reader threads that reported (they are returning); a reader that
/// did not report is still blocked on a pipe some leftover process holds, and
/// is detached: it ends when that process closes the pipe.
fn join_finished(
    readers: &mut [Option<JoinHandle<()>>; 2],
    results: &[Option<io::Result<Stream>>; 2],
) {
    for (reader, result) in readers.iter_mut().zip(results) {
        if result.is_some()
            && let Some(handle) = reader.take()
        {
            // A reader that panicked has already lost its output; the missing
            // result is reported by the caller.
            let _ = handle.join();
        }
    }
}

fn kill_and_reap(child: &mut Child) {
    // The group first, while the unreaped child still holds its pid (and so
    // the group id): nothing else can have taken that number. It fails only
    // if the group is already empty.
    let group = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    // `kill` fails only if the child has already exited, and `wait` then reaps it.
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads `pipe` to its end, keeping at most `cap` bytes as `keep` says.
fn drain(mut pipe: impl Read, cap: usize, keep: Keep) -> io::Result<Stream> {
    let mut stream = Stream::default();
    let mut chunk = vec![0u8; 64 * 1024];
    // Keep::Tail lets the buffer grow past `cap` by this much before shifting
    // it, so each byte is moved O(1) times on average.
    let slack = cap.max(64 * 1024);
    loop {
        let n = match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        match keep {
            Keep::Head => {
                let room = cap.saturating_sub(stream.bytes.len());
                if n > room {
                    stream.truncated = true;
                }
                stream.bytes.extend_from_slice(&chunk[..n.min(room)]);
            }
            Keep::Tail => {
                stream.bytes.extend_from_slice(&chunk[..n]);
                if stream.bytes.len() >= cap + slack {
                    let excess = stream.bytes.len() - cap;
                    stream.bytes.drain(..excess);
                    stream.truncated = true;
                }
            }
        }
    }
    if stream.bytes.len() > cap {
        let excess = stream.bytes.len() - cap;
        stream.bytes.drain(..excess);
        stream.truncated = true;
    }
    Ok(stream)
}

/// A long-lived child whose stdout is read line by line (`docker events`),
/// started by [`spawn_lines`]. Dropping it kills and reaps the child.
#[derive(Debug)]
pub struct LineChild {
    child: Child,
}

impl LineChild {
    /// Whether the child still runs; one that has exited is reaped here.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        // The reader thread ends by itself: the pipe closes with the child.
        kill_and_reap(&mut self.child);
    }
}

/// Starts `program args…` (no shell, stdin and stderr null) and calls
/// `on_line` on a thread named `thread_name` with each line of its stdout,
/// without the newline and cut to `max_line` bytes, then once with `None`
/// when its output ends (it exited or was killed). `on_line` must not block
/// for long: the child waits on a full pipe meanwhile. Added for the agent's
/// `docker events` stream (the only caller); kept apart from [`run`], whose
/// children are bounded in time.
pub fn spawn_lines(
    program: &OsStr,
    args: &[String],
    thread_name: &str,
    max_line: usize,
    mut on_line: impl FnMut(Option<&str>) + Send + 'static,
) -> Result<LineChild, RunError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(RunError::Spawn)?;
    let Some(stdout) = child.stdout.take() else {
        kill_and_reap(&mut child);
        return Err(RunError::Io(io::Error::other(
            "the child's stdout is missing",
        )));
    };
    let spawned = thread::Builder::new()
        .name(thread_name.to_owned())
        .spawn(move || {
            read_lines(stdout, max_line, &mut on_line);
            on_line(None);
        });
    if let Err(error) = spawned {
        kill_and_reap(&mut child);
        return Err(RunError::Io(error));
    }
    Ok(LineChild { child })
}

/// Calls `on_line` with each line of `pipe` (at most `max_line` bytes of it)
/// until the pipe ends or fails.
fn read_lines(pipe: impl Read, max_line: usize, on_line: &mut impl FnMut(Option<&str>)) {
    use std::io::BufRead;
    let mut reader = io::BufReader::with_capacity(16 * 1024, pipe);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let buf = match reader.fill_buf() {
            Ok([]) => return,
            Ok(buf) => buf,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let (taken, ends_line) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let content = &buf[..taken - usize::from(ends_line)];
        let room = max_line.saturating_sub(line.len());
        line.extend_from_slice(&content[..content.len().min(room)]);
        reader.consume(taken);
        if ends_line {
            on_line(Some(&String::from_utf8_lossy(&line)));
            line.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> Result<Captured, RunError> {
        let limits = Limits {
            timeout,
            cap: 1024,
            keep: Keep::Head,
        };
        run(
            OsStr::new("sh"),
            &["-c".to_owned(), script.to_owned()],
            &limits,
        )
    }

    /// Whether `pid` is gone (or a zombie awaiting its reaper).
    fn gone(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
        }
    }

    #[test]
    fn a_timeout_kills_the_whole_process_group() {
        let dir = std::env::temp_dir().join(format!("warden-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("pid");
        let script = format!(
            "sleep 300 </dev/null >/dev/null 2>&1 & echo $! > {}; wait",
            pid_file.display()
        );
        let started = Instant::now();
        let result = sh(&script, Duration::from_millis(500));
        assert!(matches!(result, Err(RunError::TimedOut)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let pid = pid.trim();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone(pid) {
            assert!(
                Instant::now() < deadline,
                "the script's child {pid} outlived it"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_thread_deadline_bounds_every_child_and_then_refuses_to_spawn() {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(300);
        let (first, second) = with_deadline(deadline, || {
            let first = sh("sleep 30", Duration::from_secs(60));
            let second = sh("true", Duration::from_secs(60));
            (first, second)
        });
        assert!(matches!(first, Err(RunError::TimedOut)), "{first:?}");
        assert!(matches!(second, Err(RunError::TimedOut)), "{second:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // Outside it, the thread is unbounded again.
        assert!(sh("true", Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn drain_keeps_head_or_tail_within_cap() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let head = drain(&data[..], 1000, Keep::Head).unwrap();
        assert_eq!(
            (head.bytes.as_slice(), head.truncated),
            (&data[..1000], true)
        );
        let tail = drain(&data[..], 1000, Keep::Tail).unwrap();
        assert_eq!(
            (tail.bytes.as_slice(), tail.truncated),
            (&data[data.len() - 1000..], true)
        );
        let whole = drain(&data[..], data.len(), Keep::Tail).unwrap();
        assert_eq!((whole.bytes.len(), whole.truncated), (data.len(), false));
        let whole = drain(&data[..], data.len(), Keep::Head).unwrap();
        assert_eq!((whole.bytes.len(), whole.truncated), (data.len(), false));
        let none = drain(&data[..], 0, Keep::Tail).unwrap();
        assert_eq!((none.bytes.len(), none.truncated), (0, true));
        let empty = drain(&b""[..], 0, Keep::Head).unwrap();
        assert_eq!(empty, Stream::default());
    }

    #[test]
    fn read_lines_splits_and_bounds_lines() {
        let mut seen = Vec::new();
        read_lines(&b"one\ntwo is long\n\nthree"[..], 5, &mut |l: Option<
            &str,
        >| {
            seen.push(l.map(str::to_owned))
        });
        let expected = ["one", "two i", ""].map(|s| Some(s.to_owned()));
        assert_eq!(seen, expected, "a last line without newline is not a line");
    }
}
