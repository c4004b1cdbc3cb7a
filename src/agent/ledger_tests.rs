use super::*;
use serde_json::json;

const WINDOW: Duration = Duration::from_secs(360);

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("warden-ledger-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn open(d: &Path) -> (Ledger, Vec<String>) {
    Ledger::open(d, WINDOW).unwrap()
}

fn finish(ledger: &mut Ledger, response: CommandResponse) -> bool {
    match ledger.finish(response).unwrap() {
        Some(ticket) => {
            ticket.wait().unwrap();
            true
        }
        None => false,
    }
}

#[test]
fn responses_survive_restart_until_acked() {
    let d = dir("ack");
    let (mut ledger, interrupted) = open(&d);
    assert!(interrupted.is_empty());
    ledger.start("c1").unwrap().wait().unwrap();
    assert_eq!(ledger.seen("c1"), Seen::Running);
    assert!(finish(
        &mut ledger,
        CommandResponse::completed("c1", Value::from("ok"))
    ));
    assert!(!finish(
        &mut ledger,
        CommandResponse::completed("c1", Value::from("again"))
    ));
    drop(ledger);
    let (mut ledger, _) = open(&d);
    assert_eq!(ledger.pending().len(), 1);
    assert!(matches!(ledger.seen("c1"), Seen::Done(r) if r.result == Some(Value::from("ok"))));
    ledger.ack_command("c1").unwrap();
    drop(ledger);
    let (ledger, _) = open(&d);
    assert!(ledger.pending().is_empty());
    assert!(
        matches!(ledger.seen("c1"), Seen::Done(_)),
        "seen ids outlive the ack"
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_command_interrupted_by_a_crash_gets_a_failed_outcome_once() {
    let d = dir("crash");
    let (mut ledger, _) = open(&d);
    ledger.start("c7").unwrap().wait().unwrap();
    drop(ledger);
    let (ledger, interrupted) = open(&d);
    assert_eq!(interrupted, vec!["c7".to_string()]);
    let Seen::Done(r) = ledger.seen("c7") else {
        panic!("no outcome")
    };
    assert_eq!(r.code, Some(ErrorCode::Internal));
    drop(ledger);
    let (ledger, interrupted) = open(&d);
    assert!(interrupted.is_empty());
    assert_eq!(ledger.pending().len(), 1);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn events_are_pending_until_acked() {
    let d = dir("events");
    let (mut ledger, _) = open(&d);
    let mut data = Map::new();
    data.insert("event_id".into(), Value::from("e1"));
    let event = Event {
        kind: EventKind::BackupComplete,
        event_id: "e1".into(),
        data,
    };
    ledger
        .raise(event.clone())
        .unwrap()
        .unwrap()
        .wait()
        .unwrap();
    assert!(ledger.raise(event).unwrap().is_none(), "raised once");
    drop(ledger);
    let (mut ledger, _) = open(&d);
    assert_eq!(ledger.pending().len(), 1);
    ledger.ack_event("e1").unwrap();
    assert!(ledger.pending().is_empty());
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_restart_replays_only_the_window_and_what_is_unacked() {
    let d = dir("window");
    let (mut ledger, _) = open(&d);
    let hour_ago = now_ms() - 3_600_000;
    let old = |id: &str| CommandResponse {
        timestamp: hour_ago,
        ..CommandResponse::completed(id, Value::from("x"))
    };
    for i in 0..50 {
        assert!(finish(&mut ledger, old(&format!("old{i}"))));
        ledger.ack_command(&format!("old{i}")).unwrap();
    }
    assert!(finish(&mut ledger, old("old-unacked")));
    assert!(finish(
        &mut ledger,
        CommandResponse::completed("recent", Value::from("y"))
    ));
    ledger.ack_command("recent").unwrap();
    drop(ledger);
    let (ledger, _) = open(&d);
    assert_eq!(
        ledger.seen("old3"),
        Seen::New,
        "outside the window: forgotten"
    );
    assert!(matches!(ledger.seen("old-unacked"), Seen::Done(_)));
    assert!(matches!(ledger.seen("recent"), Seen::Done(_)));
    assert_eq!(ledger.remembered(), 2);
    assert_eq!(ledger.pending().len(), 1);
    let text = std::fs::read_to_string(d.join("ledger.jsonl")).unwrap();
    assert!(!text.contains("old3"), "compacted at start: {text}");
    assert_eq!(text.lines().count(), 3, "{text}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_large_acked_response_is_kept_as_a_stub() {
    let d = dir("stub");
    let (mut ledger, _) = open(&d);
    let big = CommandResponse::completed("big", Value::from("z".repeat(100_000)));
    assert!(finish(&mut ledger, big.clone()));
    assert_eq!(ledger.seen("big"), Seen::Done(&big), "whole until acked");
    ledger.ack_command("big").unwrap();
    let Seen::Done(kept) = ledger.seen("big") else {
        panic!("forgotten")
    };
    assert_eq!(kept.status, big.status);
    assert!(
        kept.result
            .as_ref()
            .unwrap()
            .as_str()
            .unwrap()
            .contains("acknowledged")
    );
    ledger.compact(now_ms()).unwrap();
    let len = std::fs::metadata(d.join("ledger.jsonl")).unwrap().len();
    assert!(len < 2048, "{len} bytes");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_growing_file_is_compacted_on_the_way() {
    let d = dir("grow");
    let (mut ledger, _) = open(&d);
    // Acked responses of ~40 KB each, all outside the window.
    let hour_ago = now_ms() - 3_600_000;
    for i in 0..200 {
        let id = format!("g{i}");
        let response = CommandResponse {
            timestamp: hour_ago,
            ..CommandResponse::completed(&id, Value::from("q".repeat(40_000)))
        };
        assert!(finish(&mut ledger, response));
        ledger.ack_command(&id).unwrap();
    }
    let len = std::fs::metadata(d.join("ledger.jsonl")).unwrap().len();
    assert!(len < 2 * COMPACT_MIN_BYTES, "{len} bytes");
    assert!(ledger.remembered() < 200, "{}", ledger.remembered());
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn threads_finishing_together_share_fsyncs_and_all_land_on_disk() {
    let d = dir("group");
    let (ledger, _) = open(&d);
    let ledger = Arc::new(Mutex::new(ledger));
    std::thread::scope(|scope| {
        for t in 0..8 {
            let ledger = ledger.clone();
            scope.spawn(move || {
                for i in 0..25 {
                    let id = format!("t{t}-{i}");
                    let ticket = ledger
                        .lock()
                        .unwrap()
                        .finish(CommandResponse::completed(&id, Value::from(1)))
                        .unwrap()
                        .unwrap();
                    ticket.wait().unwrap();
                }
            });
        }
    });
    drop(ledger);
    let (ledger, _) = open(&d);
    assert_eq!(ledger.pending().len(), 200);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_state_dir_others_could_have_prepared_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir("state");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    check_state_dir(&d).unwrap();

    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    let error = Ledger::open(&d, WINDOW).err().unwrap().to_string();
    assert!(error.contains("chmod go-w"), "{error}");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();

    let target = d.join("elsewhere");
    std::fs::write(&target, "x").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&target, d.join("ledger.jsonl")).unwrap();
    let error = Ledger::open(&d, WINDOW).err().unwrap().to_string();
    assert!(error.contains("symbolic link"), "{error}");
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "never chmod through the link");
    std::fs::remove_file(d.join("ledger.jsonl")).unwrap();

    // Owned by someone else (the tests run as root, which may give it away).
    std::os::unix::fs::chown(&d, Some(12345), None).unwrap();
    let error = Ledger::open(&d, WINDOW).err().unwrap().to_string();
    assert!(error.contains("belongs to uid 12345"), "{error}");
    std::os::unix::fs::chown(&d, Some(rustix::process::getuid().as_raw()), None).unwrap();
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn records_with_ids_the_wire_refuses_are_dropped_at_replay() {
    let d = dir("badids");
    std::fs::create_dir_all(&d).unwrap();
    let huge = "x".repeat(1000);
    let lines = [
        json!({"rec": "response", "response": CommandResponse::completed(&huge, Value::from(1))}),
        json!({"rec": "started", "id": "a\u{0}b", "ts": 1}),
        json!({"rec": "event", "type": "backup_complete", "data": {"event_id": "e 1"}}),
        json!({"rec": "response", "response": CommandResponse::completed("good", Value::from(1))}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(d.join("ledger.jsonl"), text).unwrap();
    let (ledger, interrupted) = open(&d);
    assert!(interrupted.is_empty());
    assert_eq!(ledger.skipped_lines, 3);
    assert_eq!(ledger.pending().len(), 1);
    assert!(matches!(ledger.seen("good"), Seen::Done(_)));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_ledger_written_before_typed_events_still_loads_them() {
    let d = dir("typed");
    std::fs::create_dir_all(&d).unwrap();
    // A line as agents have written it since the ledger's first version.
    let line = json!({"rec": "event", "type": "key_update", "data": {
        "event_id": "key-3node0-1-0", "container": "3node0", "session_key": "0x00",
        "keys": {"gran": format!("0x{}", "11".repeat(32))}, "action": "rotate_keys",
        "timestamp": 1}});
    std::fs::write(d.join("ledger.jsonl"), format!("{line}\n")).unwrap();
    let (ledger, _) = open(&d);
    let pending = ledger.pending();
    let [Message::Event(event)] = pending.as_slice() else {
        panic!("{pending:?}")
    };
    assert_eq!(event.event_id, "key-3node0-1-0");
    let crate::protocol::events::Payload::KeyUpdate(update) = event.payload().unwrap() else {
        panic!("{event:?}")
    };
    assert_eq!(
        update.keys.unwrap()["gran"],
        crate::chain::PublicKey::from([0x11; 32])
    );
}
