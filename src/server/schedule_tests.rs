//! The planner over hand-built fleets and a moving clock: one at a time,
//! once per slot, a missed slot caught up once, restarts mid-run.
use super::super::alerts::view::{AgentView, ContainerView, FleetView, NodeView};
use super::*;

const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;
/// 2023-11-14T00:00:00Z.
const MIDNIGHT: i64 = 1_699_920_000_000;

fn validator() -> ContainerView {
    ContainerView {
        state: "running".into(),
        node: NodeView {
            is_authority: Some(true),
            ..NodeView::default()
        },
        ..ContainerView::default()
    }
}

fn fleet(now: i64) -> FleetView {
    let agent = |names: &[&str]| AgentView {
        connected: true,
        last_seen_ms: Some(now),
        stats_seen: true,
        containers: names.iter().map(|n| (n.to_string(), validator())).collect(),
        ..AgentView::default()
    };
    let mut full = agent(&["full0"]);
    full.containers.get_mut("full0").unwrap().node.is_authority = Some(false);
    FleetView {
        now_ms: now,
        started_ms: now,
        heartbeat_s: 15,
        agents: [
            ("val-1".to_string(), agent(&["n0", "n1"])),
            ("val-2".to_string(), agent(&["n2"])),
            ("rpc-1".to_string(), full),
        ]
        .into(),
        duplicate_keys: vec![],
    }
}

fn nightly() -> ScheduleFile {
    ScheduleFile::from_json(br#"{"schedules": [{"name": "nightly", "command": "backup_keys", "at": "03:00", "gap_s": 120}]}"#).unwrap()
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("warden-ops-sched-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Drive the planner from `from` to `to` minute by minute; each run ends
/// `takes` after it starts. Returns (minute offset from `from`, agent/container).
fn drive(p: &mut Planner, from: i64, to: i64, takes: i64) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut t = from;
    let mut open: Option<(Run, i64)> = None;
    while t <= to {
        if let Some((run, ends)) = &open
            && *ends <= t
        {
            p.finished(run, t);
            open = None;
        }
        if let Some(run) = p.next(&fleet(t)) {
            assert!(open.is_none(), "two runs at once");
            out.push(((t - from) / MIN, format!("{}/{}", run.agent, run.container)));
            open = Some((run, t + takes));
        }
        t += MIN;
    }
    out
}

#[test]
fn the_file_has_safe_defaults_and_refuses_typos() {
    let f = ScheduleFile::from_json(
        br#"{"schedules": [{"name": "b", "command": "backup_keys", "at": "03:17"},
                            {"name": "r", "command": "rotate_keys", "at": "04:00", "every_days": 30}]}"#,
    )
    .unwrap();
    assert_eq!(
        (
            f.schedules[0].at_min,
            f.schedules[0].every_days,
            f.schedules[0].enabled
        ),
        (197, 1, true)
    );
    assert!(
        !f.schedules[1].enabled,
        "rotation is off unless enabled says so"
    );
    assert!(
        f.describe()
            .contains("take effect after the current session and two more")
    );
    for (bad, want) in [
        (
            r#"{"schedules": [{"name": "b", "command": "backup_keys", "at": "3:17"}]}"#,
            "HH:MM",
        ),
        (
            r#"{"schedules": [{"name": "b", "command": "stop", "at": "03:17"}]}"#,
            "cannot be scheduled",
        ),
        (
            r#"{"schedules": [{"name": "b", "command": "backup_keys", "at": "03:17", "when": 1}]}"#,
            "unknown field",
        ),
        (
            r#"{"schedules": [{"name": "b", "command": "payout", "at": "03:17", "targets": "some"}]}"#,
            "validators or all",
        ),
        (
            r#"{"schedules": [{"name": "b", "command": "payout", "at": "24:00"}]}"#,
            "HH:MM",
        ),
    ] {
        let err = ScheduleFile::from_json(bad.as_bytes()).unwrap_err();
        assert!(err.contains(want), "{bad}: {err}");
    }
}

#[test]
fn slots_and_globs() {
    let s = &nightly().schedules[0];
    assert_eq!(
        s.slot_at_or_before(MIDNIGHT + 3 * 60 * MIN),
        Some(MIDNIGHT + 3 * 60 * MIN)
    );
    assert_eq!(
        s.slot_at_or_before(MIDNIGHT + 3 * 60 * MIN - 1),
        Some(MIDNIGHT - DAY + 3 * 60 * MIN)
    );
    assert!(
        crate::glob::glob_match("val-*", "val-1")
            && crate::glob::glob_match("*", "x")
            && crate::glob::glob_match("a*b*c", "aXbYc")
    );
    assert!(!crate::glob::glob_match("val-*", "rpc-1") && !crate::glob::glob_match("a*c", "ab"));
}

#[test]
fn validators_one_at_a_time_once_per_slot() {
    let d = dir("serial");
    let start = MIDNIGHT + 60 * MIN; // 01:00: the first start runs nothing
    let mut p = Planner::open(&d, nightly(), start).unwrap();
    // Each backup takes 5 minutes; 2 minutes' gap after each.
    let runs = drive(&mut p, start, start + DAY, 5 * MIN);
    assert_eq!(
        runs,
        vec![
            (120, "val-1/n0".to_string()),
            (127, "val-1/n1".to_string()),
            (134, "val-2/n2".to_string())
        ],
        "02:00 after start is 03:00; the full node is not a validator"
    );
    assert!(p.render(start + DAY).contains("nightly"));
}

#[test]
fn a_missed_slot_runs_once_at_start_never_a_burst() {
    let d = dir("missed");
    let start = MIDNIGHT + 60 * MIN;
    let mut p = Planner::open(&d, nightly(), start).unwrap();
    drive(&mut p, start, start + 200 * MIN, MIN);
    p.save().unwrap();
    drop(p);
    // Down for three nights; back at noon of the fourth day.
    let back = MIDNIGHT + 3 * DAY + 12 * 60 * MIN;
    let mut p = Planner::open(&d, nightly(), back).unwrap();
    let runs = drive(&mut p, back, back + 10 * 60 * MIN, MIN);
    assert_eq!(
        runs.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![0, 3, 6],
        "one slot's runs, at start: {runs:?}"
    );
}

#[test]
fn a_restart_mid_run_goes_on_with_the_targets_left() {
    let d = dir("midrun");
    let start = MIDNIGHT + 60 * MIN;
    let mut p = Planner::open(&d, nightly(), start).unwrap();
    let at3 = MIDNIGHT + 180 * MIN;
    let first = p.next(&fleet(at3)).unwrap();
    assert_eq!(first.container, "n0");
    p.finished(&first, at3 + MIN);
    p.save().unwrap();
    drop(p);
    let mut p = Planner::open(&d, nightly(), at3 + 2 * MIN).unwrap();
    let runs = drive(&mut p, at3 + 2 * MIN, at3 + 60 * MIN, MIN);
    assert_eq!(
        runs.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        vec!["val-1/n1", "val-2/n2"]
    );
}

#[test]
fn a_run_that_never_finishes_times_out() {
    let d = dir("timeout");
    let start = MIDNIGHT + 60 * MIN;
    let mut p = Planner::open(&d, nightly(), start).unwrap();
    let at3 = MIDNIGHT + 180 * MIN;
    assert!(p.next(&fleet(at3)).is_some());
    assert!(p.next(&fleet(at3 + 14 * MIN)).is_none(), "still running");
    assert!(
        p.next(&fleet(at3 + 15 * MIN)).is_none(),
        "timed out now: the gap follows"
    );
    assert_eq!(
        p.next(&fleet(at3 + 17 * MIN)).map(|r| r.container),
        Some("n1".to_string())
    );
}
