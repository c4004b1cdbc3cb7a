//! Recovery of markers left by killed operations.
use super::*;

#[test]
fn a_restore_killed_between_its_renames_is_rolled_back_to_a_node_with_a_keystore() {
    for running in [true, false] {
        let temp = TempDir::new("flow-recover-swap");
        let cfg = config(&temp);
        store::prepare_dir(&cfg.dir).unwrap();
        let fake = Fake::new(&temp, "t-swap");
        let before = fs::read_dir(fake.host(&format!("{CHAIN}/keystore")))
            .unwrap()
            .count();
        // The kill: keystore moved aside, the backup's not moved in yet.
        let stage = format!("{CHAIN}/.warden-restore-1");
        let aside = format!("{CHAIN}/keystore.warden-old-1");
        fs::create_dir_all(fake.host(&format!("{stage}/keystore"))).unwrap();
        fs::rename(fake.host(&format!("{CHAIN}/keystore")), fake.host(&aside)).unwrap();
        let mut m = Marker::new(Operation::Restore, "t-swap", true, NOW);
        m.phase = Some("swapping".to_owned());
        m.chain_path = Some(CHAIN.to_owned());
        m.stage = Some(stage.clone());
        m.aside = vec![aside.clone()];
        marker::create(&cfg.dir, &m).unwrap();
        fake.state().running = running;

        let messages = flow::recover_with(&fake, &cfg, &mut |_| {});
        assert!(
            messages[0].contains("were put back in place"),
            "{messages:?}"
        );
        assert_eq!(
            fs::read_dir(fake.host(&format!("{CHAIN}/keystore")))
                .unwrap()
                .count(),
            before,
            "the keystore is back"
        );
        assert!(!fake.host(&aside).exists() && !fake.host(&stage).exists());
        assert!(fake.running());
        // Started here: restarted so it loads the keys put back.
        assert_eq!(
            messages[0].contains("was restarted to load them"),
            !running,
            "{messages:?}"
        );
        assert!(listing(&cfg.dir).is_empty());
    }
}

#[test]
fn recovery_starts_nodes_a_killed_backup_left_stopped() {
    let temp = TempDir::new("flow-recover");
    let cfg = config(&temp);
    store::prepare_dir(&cfg.dir).unwrap();
    let fake = Fake::new(&temp, "t-recover");
    fake.state().running = false;
    marker::create(
        &cfg.dir,
        &Marker::new(Operation::Backup, "t-recover", true, NOW),
    )
    .unwrap();
    fs::write(
        cfg.dir.join(".warden-tmp-999999999-3-archive.tar.gz"),
        b"partial",
    )
    .unwrap();

    let mut reported = Vec::new();
    let messages = flow::recover_with(&fake, &cfg, &mut |line| reported.push(line.to_owned()));
    assert_eq!(messages, reported);
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].contains("removed 1 temporary file"),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with("a key backup of t-recover begun at 2025-01-08T14:30:00Z (pid ")
            && messages[1].ends_with("was interrupted; t-recover was started again"),
        "{messages:?}"
    );
    assert!(fake.running());
    assert!(listing(&cfg.dir).is_empty(), "{:?}", listing(&cfg.dir));

    // Running already: the marker just goes.
    marker::create(
        &cfg.dir,
        &Marker::new(Operation::Backup, "t-recover", true, NOW),
    )
    .unwrap();
    let messages = flow::recover_with(&fake, &cfg, &mut |_| {});
    assert!(
        messages[0].ends_with("is running again already"),
        "{messages:?}"
    );
    assert_eq!(fake.calls().iter().filter(|c| *c == "start").count(), 1);
    assert!(listing(&cfg.dir).is_empty());
}

#[test]
fn recovery_keeps_the_marker_when_the_start_fails_and_never_starts_a_stopped_node() {
    let temp = TempDir::new("flow-recover-fail");
    let cfg = config(&temp);
    store::prepare_dir(&cfg.dir).unwrap();
    let fake = Fake::new(&temp, "t-recover-fail");
    {
        let mut state = fake.state();
        state.running = false;
        state.start_failures = 1;
    }
    marker::create(
        &cfg.dir,
        &Marker::new(Operation::Backup, "t-recover-fail", true, NOW),
    )
    .unwrap();
    let messages = flow::recover_with(&fake, &cfg, &mut |_| {});
    assert!(
        messages[0].contains("could NOT be started again"),
        "{messages:?}"
    );
    assert_eq!(listing(&cfg.dir), [".inflight-t-recover-fail.json"]);
    // At the next agent start it works.
    let messages = flow::recover_with(&fake, &cfg, &mut |_| {});
    assert!(messages[0].ends_with("was started again"), "{messages:?}");
    assert!(listing(&cfg.dir).is_empty());

    // A node that was not running stays stopped.
    fake.state().running = false;
    marker::create(
        &cfg.dir,
        &Marker::new(Operation::Backup, "t-recover-fail", false, NOW),
    )
    .unwrap();
    let messages = flow::recover_with(&fake, &cfg, &mut |_| {});
    assert!(messages[0].ends_with("was left stopped"), "{messages:?}");
    assert!(!fake.running());

    // A container that is gone.
    fake.state().exists = false;
    marker::create(
        &cfg.dir,
        &Marker::new(Operation::Backup, "t-recover-fail", true, NOW),
    )
    .unwrap();
    let messages = flow::recover_with(&fake, &cfg, &mut |_| {});
    assert!(messages[0].ends_with("no longer exists"), "{messages:?}");
    assert!(listing(&cfg.dir).is_empty());
}

#[test]
fn a_stale_marker_is_settled_before_the_next_backup() {
    let temp = TempDir::new("flow-stale");
    let cfg = config(&temp);
    store::prepare_dir(&cfg.dir).unwrap();
    let fake = Fake::new(&temp, "t-stale");
    fake.state().running = false;
    marker::create(
        &cfg.dir,
        &Marker::new(Operation::Backup, "t-stale", true, NOW - 3600),
    )
    .unwrap();
    let report = backup(&fake, &cfg, &hooks()).unwrap();
    // The stale marker said it was running: it was started, then backed up as a running node.
    assert!(report.was_running);
    assert!(fake.running());
    assert_no_leftovers(&cfg);
}
