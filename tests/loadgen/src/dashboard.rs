//! `--dashboard`: the web dashboard under a simulated fleet, in a real
//! headless Chromium (driven as tests/it/dashboard.rs drives it; the
//! driver is that test's own file). One run: connect the agents, log in,
//! then
//! - a steady span (`--steady-s`, no state change but the fleet's own
//!   reports): Chromium's CPU from /proc (the browser and every process
//!   under it), the page's main-thread task and script time
//!   (`Performance.getMetrics`), the frames and bytes pushed, and each
//!   draw's time (the page's `render`, timed by a wrapper);
//! - `--samples` state changes: agent a0 reports container 3node0 `exited`,
//!   then `running` again, alternately; each is timed from the moment the
//!   agent sent that `stats` (Unix ms) to the moment a MutationObserver in
//!   the page sees the row turn red, or leave red
//!   (`performance.timeOrigin + performance.now()`).
//!
//! Invariants: every wait has a deadline; the browser is killed on every
//! path (its Drop).
#[allow(dead_code, reason = "the test's driver; the bench uses a part of it")]
#[path = "../../it/dashboard_cdp.rs"]
mod cdp;

use super::server::{Server, TICKS_PER_S, cpu_ticks};
use super::sim::{Report, STATS_INTERVAL};
use super::{Args, connect_all, pct, shared, wait_quietly};
use cdp::Browser;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

pub struct Options {
    pub samples: usize,
    pub steady_s: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            samples: 10,
            steady_s: 60,
        }
    }
}

/// Installed before the page's own script: counts the pushed frames, times
/// each draw, and notes when a0/3node0's row turns red or leaves red.
const PROBE: &str = r#"
window.__bench = {frames: 0, bytes: 0, first: 0, draws: [], changes: []};
(() => {
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...a) {
      super(...a);
      this.addEventListener("message", (m) => {
        const b = window.__bench; b.frames++; b.bytes += m.data.length; if (!b.first) b.first = m.data.length;
      });
    }
  };
  addEventListener("DOMContentLoaded", () => {
    let red = null;
    new MutationObserver(() => {
      const row = document.querySelector('#fleet tr[data-agent="a0"][data-container="3node0"]');
      if (!row) return;
      const now = row.className === "sev2";
      if (now !== red) { red = now; window.__bench.changes.push([now, performance.timeOrigin + performance.now()]); }
    }).observe(document.body, {childList: true, subtree: true});
    const draw = window.render;
    window.render = function () { const t = performance.now(); draw(); window.__bench.draws.push(performance.now() - t); };
  });
})();
"#;

const SLOW: Duration = Duration::from_secs(120);

pub fn measure(
    args: &Args,
    options: &Options,
    srv: &mut Server,
    tokens: Vec<String>,
    operator: &str,
    deadline: Instant,
) -> Result<String, String> {
    let admin = srv
        .admin_addr()
        .ok_or("the server printed no admin address")?;
    let (shared, rx) = shared(args, srv, deadline)?;
    let (connected, _) = connect_all(&shared, tokens, &rx, deadline)?;
    wait_quietly(&rx, STATS_INTERVAL + Duration::from_secs(1), deadline);

    let profile = args.work_dir.join("chromium");
    let mut b = Browser::launch(1400, 900, &profile);
    b.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({"source": PROBE}),
    );
    b.call("Performance.enable", json!({}));
    b.navigate(&format!("http://{admin}/"));
    b.log_in(operator);
    b.wait_for(
        "document.querySelector('#fleet tr[data-agent=\"a0\"][data-container=\"3node0\"]')",
        SLOW,
        "a0's row",
    );
    let nodes = b.eval("document.querySelectorAll('#overview a').length");

    // The steady span.
    let before = steady_state(&mut b, srv.pid());
    wait_quietly(&rx, Duration::from_secs(options.steady_s), deadline);
    let after = steady_state(&mut b, srv.pid());
    let span = options.steady_s as f64;
    let per_s =
        |k: &str| (after[k].as_f64().unwrap_or(0.0) - before[k].as_f64().unwrap_or(0.0)) / span;
    let frames = after["frames"].as_f64().unwrap_or(0.0) - before["frames"].as_f64().unwrap_or(0.0);
    let mut draws: Vec<Duration> = b
        .eval(&format!(
            "window.__bench.draws.slice({})",
            before["draws"].as_u64().unwrap_or(0)
        ))
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .collect();

    // The state changes.
    let (mut to_red, mut from_red) = (Vec::new(), Vec::new());
    for i in 0..options.samples {
        let stop = i % 2 == 0;
        let seen = b
            .eval("window.__bench.changes.length")
            .as_u64()
            .unwrap_or(0);
        shared.stop_first.store(stop, Ordering::Relaxed);
        let sent_ms = stats_sent(&rx, stop, Instant::now() + STATS_INTERVAL * 3)
            .ok_or("agent a0 sent no stats")?;
        let change = b.wait_for(
            &format!("window.__bench.changes.length > {seen} && window.__bench.changes[{seen}]"),
            SLOW,
            "a0/3node0's row to change",
        );
        if change[0] != json!(stop) {
            return Err(format!("the row changed the wrong way: {change}"));
        }
        let ms = change[1].as_f64().unwrap_or(0.0) - sent_ms;
        let d = Duration::from_secs_f64(ms.max(0.0) / 1000.0);
        if stop {
            to_red.push(d)
        } else {
            from_red.push(d)
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut all: Vec<Duration> = to_red.iter().chain(&from_red).copied().collect();

    let header = "| agents | nodes | first frame | pushed | Chromium CPU | page main thread: tasks / script | script per frame | draw p50 / p90 / max | server CPU | change → row p50 / p90 (n) | to red / back p50 |\n|---|---|---|---|---|---|---|---|---|---|---|";
    let row = format!(
        "| {connected} | {nodes} | {:.0} KB | {:.2} frames/s, {:.1} KB/s | {:.1} % of a core | {:.1} / {:.1} % | {:.1} ms | {:.1} / {:.1} / {:.1} ms | {:.1} % | {:.0} / {:.0} ms ({}) | {:.0} / {:.0} ms |",
        after["first"].as_f64().unwrap_or(0.0) / 1000.0,
        frames / span,
        per_s("bytes") / 1000.0,
        per_s("chromium_ticks") / TICKS_PER_S * 100.0,
        per_s("TaskDuration") * 100.0,
        per_s("ScriptDuration") * 100.0,
        per_s("ScriptDuration") * span / frames.max(1.0) * 1000.0,
        pct(&mut draws, 0.5),
        pct(&mut draws, 0.9),
        pct(&mut draws, 1.0),
        per_s("server_ticks") / TICKS_PER_S * 100.0,
        pct(&mut all, 0.5),
        pct(&mut all, 0.9),
        all.len(),
        pct(&mut to_red, 0.5),
        pct(&mut from_red, 0.5),
    );
    Ok(if args.header {
        format!("{header}\n{row}")
    } else {
        row
    })
}

/// The counters the steady span is the difference of.
fn steady_state(b: &mut Browser, server_pid: u32) -> Value {
    let mut v = b.eval(
        "({frames: window.__bench.frames, bytes: window.__bench.bytes, first: window.__bench.first, draws: window.__bench.draws.length})",
    );
    let metrics = b.call("Performance.getMetrics", json!({}));
    for m in metrics["metrics"].as_array().into_iter().flatten() {
        if let Some(name @ ("TaskDuration" | "ScriptDuration")) = m["name"].as_str() {
            v[name] = m["value"].clone();
        }
    }
    v["chromium_ticks"] = json!(tree_ticks(b.pid()));
    v["server_ticks"] = json!(cpu_ticks(server_pid));
    v
}

/// When agent a0 sent its first `stats` with 3node0 stopped (or not).
fn stats_sent(rx: &Receiver<Report>, stopped: bool, until: Instant) -> Option<f64> {
    loop {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Report::Stats(ms, s)) if s == stopped => return Some(ms),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// CPU ticks of `root` and every process under it (Chromium's renderers,
/// GPU and utility processes).
fn tree_ticks(root: u32) -> u64 {
    let mut parent = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.insert(pid, ppid);
        }
    }
    let under = |mut pid: u32| {
        while pid > 1 {
            if pid == root {
                return true;
            }
            pid = parent.get(&pid).copied().unwrap_or(0);
        }
        false
    };
    parent
        .keys()
        .copied()
        .filter(|&p| under(p))
        .map(cpu_ticks)
        .sum()
}
