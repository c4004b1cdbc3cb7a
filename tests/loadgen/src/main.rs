//! loadgen: measures `warden server` (or the original design's Python
//! server) under N simulated agents speaking protocol 1, on loopback.
//!
//! One run: register N tokens, start the server, connect N agents (one thread
//! each, small stacks), wait idle, type `broadcast status all` R times and
//! `send aK status 3nodeJ` S times on the server's stdin, and print one table
//! row: connect time, broadcast fan-out and every-ack time (p50/p99/max),
//! single-send round trip, server CPU and RSS idle and under the rounds.
//!
//! Invariants: only 127.0.0.1 is ever connected to; every wait has a deadline
//! (the whole run is bounded by --max-s); the server is stopped on every path.
#![forbid(unsafe_code)]

mod dashboard;
mod server;
mod sim;
mod tls;

use server::{Kind, Server, TICKS_PER_S, cpu_ticks, rss_kib};
use sim::{Report, Shared};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

struct Args {
    kind: Kind,
    agents: usize,
    rounds: u64,
    sends: u64,
    idle_s: u64,
    max_s: u64,
    work_dir: PathBuf,
    tokens_dir: Option<PathBuf>,
    tls: Option<(PathBuf, PathBuf)>,
    header: bool,
    /// `--dashboard`: measure the web dashboard in Chromium instead.
    dashboard: Option<dashboard::Options>,
}

const USAGE: &str =
    "usage: loadgen (--warden BIN | --python PY --python-server SCRIPT) --work-dir DIR
       [--agents N] [--rounds R] [--sends S] [--idle-s S] [--max-s S] [--tokens-dir DIR]
       [--tls-cert PEM --tls-key PEM] [--no-header]
       [--dashboard [--samples K] [--steady-s S]]";

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let (mut warden, mut python, mut script) = (None, None, None);
    let (mut cert, mut key) = (None, None);
    let mut args = Args {
        kind: Kind::Warden(PathBuf::new()),
        agents: 100,
        rounds: 10,
        sends: 1000,
        idle_s: 10,
        max_s: 900,
        work_dir: PathBuf::new(),
        tokens_dir: None,
        tls: None,
        header: true,
        dashboard: None,
    };
    let mut dashboard = dashboard::Options::default();
    let mut with_dashboard = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("warden") => warden = Some(PathBuf::from(parser.value()?)),
            Long("python") => python = Some(PathBuf::from(parser.value()?)),
            Long("python-server") => script = Some(PathBuf::from(parser.value()?)),
            Long("agents") => args.agents = parser.value()?.parse()?,
            Long("rounds") => args.rounds = parser.value()?.parse()?,
            Long("sends") => args.sends = parser.value()?.parse()?,
            Long("idle-s") => args.idle_s = parser.value()?.parse()?,
            Long("max-s") => args.max_s = parser.value()?.parse()?,
            Long("work-dir") => args.work_dir = parser.value()?.into(),
            Long("tokens-dir") => args.tokens_dir = Some(parser.value()?.into()),
            Long("tls-cert") => cert = Some(PathBuf::from(parser.value()?)),
            Long("tls-key") => key = Some(PathBuf::from(parser.value()?)),
            Long("no-header") => args.header = false,
            Long("dashboard") => with_dashboard = true,
            Long("samples") => dashboard.samples = parser.value()?.parse()?,
            Long("steady-s") => dashboard.steady_s = parser.value()?.parse()?,
            Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    args.kind = match (warden, python, script) {
        (Some(w), None, None) => Kind::Warden(w),
        (None, Some(p), Some(s)) => Kind::Python(p, s),
        _ => return Err("give --warden BIN, or --python PY with --python-server SCRIPT".into()),
    };
    if let (Some(c), Some(k)) = (cert, key) {
        args.tls = Some((c, k));
    }
    if args.work_dir.as_os_str().is_empty() {
        return Err("--work-dir is required".into());
    }
    if !(1..=20_000).contains(&args.agents) || args.rounds > 1000 || args.sends > 100_000 {
        return Err("at most 20,000 agents, 1,000 rounds and 100,000 sends".into());
    }
    if with_dashboard {
        if !matches!(args.kind, Kind::Warden(_)) {
            return Err("--dashboard measures warden's own dashboard: give --warden".into());
        }
        if !(1..=100).contains(&dashboard.samples) || !(5..=600).contains(&dashboard.steady_s) {
            return Err("--samples is 1 to 100, --steady-s 5 to 600".into());
        }
        args.dashboard = Some(dashboard);
    }
    args.max_s = args.max_s.clamp(10, 3600);
    args.idle_s = args.idle_s.min(600);
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match run(&args) {
        Ok(out) => println!("{out}"),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
    // Agent threads end at their next read timeout; no need to wait for them.
    std::process::exit(0);
}

/// Percentiles of a set of durations, in milliseconds.
fn pct(samples: &mut [Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i.min(samples.len() - 1)].as_secs_f64() * 1000.0
}

struct Row {
    server: &'static str,
    agents: usize,
    transport: &'static str,
    connected: usize,
    connect_all: Option<Duration>,
    fanout: Vec<Duration>,
    all_acks: Vec<Duration>,
    incomplete_rounds: u64,
    sends: Vec<Duration>,
    lost_sends: u64,
    idle_cpu_percent: f64,
    rounds_cpu_s: f64,
    rss_base_kib: u64,
    rss_idle_kib: u64,
    rss_peak_kib: u64,
}

impl Row {
    const HEADER: &str = "| server | N | transport | connected | connect all | broadcast fan-out p50/p99/max | every ack p50/p99/max | send round trip p50/p99 | idle CPU | CPU, rounds | RSS idle / peak | per agent |\n|---|---|---|---|---|---|---|---|---|---|---|---|";
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let three = |v: &[Duration]| {
            let mut v = v.to_vec();
            format!(
                "{:.1} / {:.1} / {:.1} ms",
                pct(&mut v, 0.5),
                pct(&mut v, 0.99),
                pct(&mut v, 1.0)
            )
        };
        let mut sends = self.sends.clone();
        let per_agent = self.rss_idle_kib.saturating_sub(self.rss_base_kib) as f64
            / self.connected.max(1) as f64;
        let incomplete = if self.incomplete_rounds > 0 {
            format!(" ({} rounds incomplete)", self.incomplete_rounds)
        } else {
            String::new()
        };
        let lost = if self.lost_sends > 0 {
            format!(" ({} lost)", self.lost_sends)
        } else {
            String::new()
        };
        write!(
            f,
            "| {} | {} | {} | {} | {} | {} | {}{incomplete} | {:.2} / {:.2} ms{lost} | {:.1} % | {:.2} s | {:.0} / {:.0} MB | {:.0} KB |",
            self.server,
            self.agents,
            self.transport,
            self.connected,
            self.connect_all.map_or("not all".into(), |d| format!(
                "{:.0} ms",
                d.as_secs_f64() * 1000.0
            )),
            three(&self.fanout),
            three(&self.all_acks),
            pct(&mut sends, 0.5),
            pct(&mut sends, 0.99),
            self.idle_cpu_percent,
            self.rounds_cpu_s,
            self.rss_idle_kib as f64 / 1024.0,
            self.rss_peak_kib as f64 / 1024.0,
            per_agent,
        )
    }
}

/// One run: its output (a table row, with the header unless --no-header).
fn run(args: &Args) -> Result<String, String> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.max_s);
    std::fs::create_dir_all(&args.work_dir).map_err(|e| e.to_string())?;
    let tokens_dir = args
        .tokens_dir
        .clone()
        .unwrap_or_else(|| args.work_dir.join("tokens"));
    let warden_for_tokens = match &args.kind {
        Kind::Warden(bin) => bin.clone(),
        // The Python server reads the same registry's tokens from a list.
        Kind::Python(..) => std::env::var_os("WARDEN_BIN")
            .map(PathBuf::from)
            .ok_or("the Python run needs WARDEN_BIN to register tokens")?,
    };
    let tokens = server::tokens(&warden_for_tokens, &tokens_dir, args.agents, 4)?;
    let data_dir = args.work_dir.join("data");
    server::prepare_data_dir(&tokens_dir, &data_dir, &tokens)?;
    let tls_paths = args.tls.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let operator = match &args.dashboard {
        Some(_) => Some(server::operator_token(&warden_for_tokens, &data_dir)?),
        None => None,
    };
    let extra: &[&str] = match operator {
        Some(_) => &["--admin-listen", "127.0.0.1:0"],
        None => &[],
    };
    let mut srv = Server::start(
        &args.kind,
        &data_dir,
        tls_paths,
        &args.work_dir.join("server.log"),
        extra,
    )?;
    let result = match (&args.dashboard, operator) {
        (Some(options), Some(operator)) => {
            dashboard::measure(args, options, &mut srv, tokens, &operator, deadline)
        }
        _ => measure(args, &mut srv, tokens, deadline).map(|row| {
            if args.header {
                format!("{}\n{row}", Row::HEADER)
            } else {
                row.to_string()
            }
        }),
    };
    srv.stop();
    // The load generator shares the cores with the server: say what it took.
    eprintln!(
        "loadgen: N={} took {:.1} s, {:.2} s of its own CPU",
        args.agents,
        started.elapsed().as_secs_f64(),
        cpu_ticks(std::process::id()) as f64 / TICKS_PER_S
    );
    result
}

/// What every simulated agent shares, and the coordinator's end of their reports.
fn shared(
    args: &Args,
    srv: &Server,
    deadline: Instant,
) -> Result<(Arc<Shared>, Receiver<Report>), String> {
    let tls = match &args.tls {
        Some((cert, _)) => Some(tls::client_config(cert)?),
        None => None,
    };
    let (tx, rx) = mpsc::channel();
    let shared = Arc::new(Shared {
        addr: srv.addr,
        tls,
        deadline,
        stop: AtomicBool::new(false),
        round: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        reports: tx,
        stop_first: AtomicBool::new(false),
    });
    Ok((shared, rx))
}

fn measure(
    args: &Args,
    srv: &mut Server,
    tokens: Vec<String>,
    deadline: Instant,
) -> Result<Row, String> {
    let pid = srv.pid();
    let (shared, rx) = shared(args, srv, deadline)?;
    let rss_base_kib = rss_kib(pid);
    let n = args.agents;
    let mut row = Row {
        server: match args.kind {
            Kind::Warden(_) => "warden",
            Kind::Python(..) => "python (original design)",
        },
        agents: n,
        transport: if args.tls.is_some() { "TLS" } else { "plain" },
        connected: 0,
        connect_all: None,
        fanout: Vec::new(),
        all_acks: Vec::new(),
        incomplete_rounds: 0,
        sends: Vec::new(),
        lost_sends: 0,
        idle_cpu_percent: 0.0,
        rounds_cpu_s: 0.0,
        rss_base_kib,
        rss_idle_kib: 0,
        rss_peak_kib: 0,
    };

    let (connected, connect_all) = connect_all(&shared, tokens, &rx, deadline)?;
    row.connected = connected;
    row.connect_all = connect_all;

    // Idle: every agent has sent its first stats within one interval.
    wait_quietly(&rx, sim::STATS_INTERVAL + Duration::from_secs(1), deadline);
    let t0 = cpu_ticks(pid);
    wait_quietly(&rx, Duration::from_secs(args.idle_s), deadline);
    row.idle_cpu_percent =
        (cpu_ticks(pid) - t0) as f64 / TICKS_PER_S / args.idle_s.max(1) as f64 * 100.0;
    row.rss_idle_kib = rss_kib(pid);
    row.rss_peak_kib = row.rss_idle_kib;

    // Broadcast rounds.
    let t0 = cpu_ticks(pid);
    let expected = row.connected;
    for round in 1..=args.rounds {
        if Instant::now() >= deadline {
            break;
        }
        shared.round.store(round, Ordering::Relaxed);
        let typed = Instant::now();
        srv.type_line("broadcast status all")?;
        let (mut commands, mut acks) = (0, 0);
        let (mut last_command, mut last_ack) = (typed, typed);
        let round_deadline = (typed + Duration::from_secs(60)).min(deadline);
        while (commands < expected || acks < expected) && Instant::now() < round_deadline {
            match rx.recv_timeout(round_deadline.saturating_duration_since(Instant::now())) {
                Ok(Report::Command(r, at)) if r == round => {
                    commands += 1;
                    last_command = last_command.max(at);
                }
                Ok(Report::Ack(_, r, at)) if r == round => {
                    acks += 1;
                    last_ack = last_ack.max(at);
                }
                Ok(_) => {}
                Err(_) => break,
            }
            if (commands + acks) % 1024 == 0 {
                row.rss_peak_kib = row.rss_peak_kib.max(rss_kib(pid));
            }
        }
        row.rss_peak_kib = row.rss_peak_kib.max(rss_kib(pid));
        if commands == expected && acks == expected {
            row.fanout.push(last_command - typed);
            row.all_acks.push(last_ack - typed);
        } else {
            row.incomplete_rounds += 1;
            eprintln!(
                "loadgen: round {round}: {commands} commands and {acks} acks of {expected} within 60 s"
            );
        }
    }
    row.rounds_cpu_s = (cpu_ticks(pid) - t0) as f64 / TICKS_PER_S;

    // Single sends, one at a time, to agents spread over the fleet.
    for i in 0..args.sends {
        if Instant::now() >= deadline || expected == 0 {
            break;
        }
        let round = 1_000_000 + i;
        shared.round.store(round, Ordering::Relaxed);
        let agent = (i as usize * 7919) % n;
        let container = sim::CONTAINERS[i as usize % 3];
        let typed = Instant::now();
        srv.type_line(&format!("send a{agent} status {container}"))?;
        match wait_for_ack(&rx, agent, round, typed + Duration::from_secs(5)) {
            Some(at) => row.sends.push(at - typed),
            None => row.lost_sends += 1,
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    Ok(row)
}

/// Starts one thread per agent and waits (at most 120 s) for their
/// `welcome`s: how many came, and how long all of them took.
fn connect_all(
    shared: &Arc<Shared>,
    tokens: Vec<String>,
    rx: &Receiver<Report>,
    deadline: Instant,
) -> Result<(usize, Option<Duration>), String> {
    let n = tokens.len();
    let connect_started = Instant::now();
    for (index, token) in tokens.into_iter().enumerate() {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("agent-{index}"))
            .stack_size(256 * 1024)
            .spawn(move || sim::run(index, token, shared))
            .map_err(|e| format!("cannot spawn agent thread {index}: {e}"))?;
    }
    let connect_deadline = (Instant::now() + Duration::from_secs(120)).min(deadline);
    let (mut connected, mut failed) = (0, 0);
    let mut last_welcome = connect_started;
    while connected + failed < n {
        match rx.recv_timeout(connect_deadline.saturating_duration_since(Instant::now())) {
            Ok(Report::Welcome(at)) => {
                connected += 1;
                last_welcome = last_welcome.max(at);
            }
            Ok(Report::Failed(i, why)) => {
                failed += 1;
                if failed <= 5 {
                    eprintln!("loadgen: agent a{i}: {why}");
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if connected < n {
        eprintln!("loadgen: only {connected} of {n} agents connected");
    }
    let retries = shared.retries.load(Ordering::Relaxed);
    if retries > 0 {
        eprintln!("loadgen: {retries} connection attempts were refused or reset and retried");
    }
    Ok((
        connected,
        (connected == n).then(|| last_welcome - connect_started),
    ))
}

/// Receives and drops reports for `span` (bounded by `deadline`).
fn wait_quietly(rx: &Receiver<Report>, span: Duration, deadline: Instant) {
    let until = (Instant::now() + span).min(deadline);
    loop {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Report::Failed(i, why)) => eprintln!("loadgen: agent a{i}: {why}"),
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// When agent `agent` got the ack of round `round`'s command, if by `until`.
fn wait_for_ack(
    rx: &Receiver<Report>,
    agent: usize,
    round: u64,
    until: Instant,
) -> Option<Instant> {
    loop {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Report::Ack(a, r, at)) if a == agent && r == round => return Some(at),
            Ok(Report::Failed(i, why)) => eprintln!("loadgen: agent a{i}: {why}"),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}
