//! Restores: exact replacement, refusals, ownership, verification.
use super::*;

/// A backup of the fake's current keys, then a changed keystore.
fn backed_up_then_changed(temp: &TempDir, name: &str) -> (Fake, BackupConfig, String) {
    let fake = Fake::new(temp, name);
    let cfg = config(temp);
    let report = backup(&fake, &cfg, &hooks()).unwrap();
    // After the backup: a new key set (rotateKeys adds, never deletes) and a new identity.
    fake.write_key("gran", 2);
    fake.write_key("babe", 2);
    fake.write_key("imon", 2);
    fake.write(
        &format!("{CHAIN}/network/secret_ed25519"),
        &[7u8; 32],
        0o600,
    );
    fake.state().calls.clear();
    fake.state().marker_at_stop.clear();
    (fake, cfg, report.file_name)
}

fn files_of_archive(cfg: &BackupConfig, name: &str) -> BTreeMap<String, Vec<u8>> {
    let archive = archive::read_archive(&fs::read(cfg.dir.join(name)).unwrap()).unwrap();
    archive
        .entries
        .iter()
        .map(|e| {
            let data = archive.contents.get(&e.path).cloned().unwrap_or_default();
            (e.display_name(), data)
        })
        .collect()
}

fn container_keys(fake: &Fake) -> BTreeMap<String, Vec<u8>> {
    let mut all = BTreeMap::new();
    for top in ["keystore", "network"] {
        if fake.host(&format!("{CHAIN}/{top}")).exists() {
            all.insert(format!("{top}/"), Vec::new());
        }
        for (name, data) in fake.files(&format!("{CHAIN}/{top}")) {
            all.insert(format!("{top}/{name}"), data);
        }
    }
    all
}

#[test]
fn restore_into_a_running_node_makes_the_keys_exactly_the_backup() {
    let temp = TempDir::new("flow-restore-run");
    let (fake, cfg, file) = backed_up_then_changed(&temp, "t-restore-run");
    let before = container_keys(&fake);
    let report = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap();

    assert!(report.changed && report.was_running && report.restarted);
    assert_eq!(container_keys(&fake), files_of_archive(&cfg, &file));
    assert_eq!(
        report.removed,
        [
            format!("keystore/{}", key_name("babe", 2)),
            format!("keystore/{}", key_name("gran", 2)),
            format!("keystore/{}", key_name("imon", 2)),
        ]
    );
    // Modes as archived.
    let keystore = fake.host(&format!("{CHAIN}/keystore"));
    assert_eq!(
        fs::metadata(&keystore).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let network = fake.host(&format!("{CHAIN}/network"));
    assert_eq!(
        fs::metadata(&network).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // Nothing left in the container's chain directory but what was there.
    assert_eq!(
        listing(&fake.host(CHAIN)),
        ["keystore", "network", "paritydb"]
    );
    assert!(fake.running());
    // The keys it had are in the pre-restore archive, which a restore accepts.
    let saved = report.pre_restore_backup.clone().unwrap();
    assert_eq!(saved, "t-restore-run-keys-20250108-1430-2.tar.gz");
    assert_eq!(files_of_archive(&cfg, &saved), before);
    assert_no_leftovers(&cfg);

    let calls = fake.calls();
    let position = |prefix: &str| calls.iter().position(|c| c.starts_with(prefix)).unwrap();
    assert!(position("cp_to") < position("exec mv"));
    assert!(position("exec mv") < position("stop"));
    assert!(position("stop") < position("start"));
    assert_eq!(fake.state().marker_at_stop, [true]);

    // Back again to the keys it had: also exact, and `removed` is empty.
    let report = restore(&fake, &cfg, &saved, RestoreOptions::default()).unwrap();
    assert!(report.changed && report.removed.is_empty());
    assert_eq!(container_keys(&fake), before);
}

#[test]
fn keys_added_during_a_restore_are_not_deleted() {
    let temp = TempDir::new("flow-restore-race");
    let (fake, cfg, file) = backed_up_then_changed(&temp, "t-restore-race");
    fake.state().add_key_before = Some(format!("exec mv -- {CHAIN}/keystore "));
    let report = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap();
    assert_eq!(container_keys(&fake), files_of_archive(&cfg, &file));
    let kept = format!(
        "{CHAIN}/keystore.warden-old-20250108143000-{}",
        std::process::id()
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with(&format!("kept {kept}"))),
        "{:?}",
        report.warnings
    );
    assert!(fake.files(&kept).contains_key(&key_name("gran", 0xee)));
    // The network directory set aside matched the saved copy and is gone.
    assert_eq!(
        listing(&fake.host(CHAIN)),
        [
            "keystore".to_owned(),
            format!("keystore.warden-old-20250108143000-{}", std::process::id()),
            "network".to_owned(),
            "paritydb".to_owned()
        ]
    );
}

#[test]
fn restoring_the_keys_a_node_already_has_changes_nothing() {
    let temp = TempDir::new("flow-restore-same");
    let fake = Fake::new(&temp, "t-restore-same");
    let cfg = config(&temp);
    let file = backup(&fake, &cfg, &hooks()).unwrap().file_name;
    fake.state().calls.clear();
    let report = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap();
    assert!(!report.changed && !report.restarted);
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| c == "stop" || c.starts_with("cp_to"))
    );
    assert_no_leftovers(&cfg);
}

#[test]
fn restore_into_a_stopped_node_copies_over_when_that_is_exact() {
    let temp = TempDir::new("flow-restore-stopped");
    let fake = Fake::new(&temp, "t-restore-stopped");
    let cfg = config(&temp);
    let file = backup(&fake, &cfg, &hooks()).unwrap().file_name;
    // Same key files, other contents; and the network key lost.
    fake.write(
        &format!("{CHAIN}/keystore/{}", key_name("gran", 1)),
        b"\"damaged\"",
        0o644,
    );
    fs::set_permissions(
        fake.host(&format!("{CHAIN}/keystore")),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::remove_dir_all(fake.host(&format!("{CHAIN}/network"))).unwrap();
    fake.state().running = false;
    fake.state().calls.clear();
    let report = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap();
    assert!(report.changed && !report.restarted && !report.was_running);
    assert_eq!(container_keys(&fake), files_of_archive(&cfg, &file));
    assert!(!fake.running());
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| c == "stop" || c == "start" || c.starts_with("exec"))
    );
    assert_no_leftovers(&cfg);
}

#[test]
fn restore_into_a_stopped_node_that_lost_its_keystore() {
    let temp = TempDir::new("flow-restore-lost");
    let fake = Fake::new(&temp, "t-restore-lost");
    let cfg = config(&temp);
    let file = backup(&fake, &cfg, &hooks()).unwrap().file_name;
    fs::remove_dir_all(fake.host(&format!("{CHAIN}/keystore"))).unwrap();
    fake.state().running = false;
    let report = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap();
    assert!(report.changed);
    assert_eq!(container_keys(&fake), files_of_archive(&cfg, &file));
    // What it had (the network key, no keystore) is saved first.
    let saved = files_of_archive(&cfg, &report.pre_restore_backup.unwrap());
    assert_eq!(
        saved.keys().collect::<Vec<_>>(),
        ["keystore/", "network/", "network/secret_ed25519"]
    );
    assert!(!fake.running());
    assert_no_leftovers(&cfg);
}

#[test]
fn restore_into_a_stopped_node_with_extra_keys_is_refused() {
    let temp = TempDir::new("flow-restore-extra");
    let (fake, cfg, file) = backed_up_then_changed(&temp, "t-restore-extra");
    fake.state().running = false;
    let before = container_keys(&fake);
    let error = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("it is stopped") && text.contains("3 entries"),
        "{text}"
    );
    assert_eq!(error.code().as_str(), "unavailable");
    assert_eq!(container_keys(&fake), before);
    assert!(!fake.calls().iter().any(|c| c.starts_with("cp_to")));
    assert_no_leftovers(&cfg);
    assert_eq!(
        listing(&cfg.dir).len(),
        2,
        "no pre-restore archive: {:?}",
        listing(&cfg.dir)
    );
}

#[test]
fn a_failed_swap_is_rolled_back_and_the_node_never_stopped() {
    let temp = TempDir::new("flow-restore-swap");
    let (fake, cfg, file) = backed_up_then_changed(&temp, "t-restore-swap");
    let before = container_keys(&fake);
    // The second directory's move into place fails.
    fake.state().exec_exit.push((
        format!(
            "exec mv -- {CHAIN}/.warden-restore-20250108143000-{}/network",
            std::process::id()
        ),
        1,
    ));
    let error = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("moving the backup's keys into place"),
        "{text}"
    );
    assert!(text.contains("the node's keys were not changed"), "{text}");
    assert!(text.ends_with("the node was not stopped"), "{text}");
    assert_eq!(container_keys(&fake), before);
    assert_eq!(
        listing(&fake.host(CHAIN)),
        ["keystore", "network", "paritydb"]
    );
    assert!(!fake.calls().contains(&"stop".to_owned()));
    assert!(fake.running());
    assert_no_leftovers(&cfg);
}

#[test]
fn a_restore_whose_node_will_not_start_says_so() {
    let temp = TempDir::new("flow-restore-nostart");
    let (fake, cfg, file) = backed_up_then_changed(&temp, "t-restore-nostart");
    fake.state().start_failures = 100;
    let error = restore(&fake, &cfg, &file, RestoreOptions::default()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("the backup's keys are in place"), "{text}");
    assert!(
        text.ends_with("start it by hand with `docker start t-restore-nostart`"),
        "{text}"
    );
    assert!(!fake.running());
    assert_no_leftovers(&cfg);
}

#[test]
fn restore_refusals_write_nothing_and_touch_nothing() {
    let temp = TempDir::new("flow-restore-refuse");
    let fake = Fake::new(&temp, "t-refuse");
    let cfg = config(&temp);
    let good = backup(&fake, &cfg, &hooks()).unwrap().file_name;
    let before_keys = container_keys(&fake);

    let ok_dir: archive::tests::RawEntry = (b"keystore/", tar::EntryType::Directory, b"", None);
    let crafted = archive::tests::crafted;
    let mut cases: Vec<(String, Vec<u8>, &str)> = vec![
        (
            "t-refuse-keys-20250101-0001.tar.gz".to_owned(),
            crafted(&[ok_dir, (b"../x", tar::EntryType::Regular, b"x", None)]),
            "`..`",
        ),
        (
            "t-refuse-keys-20250101-0002.tar.gz".to_owned(),
            crafted(&[ok_dir, (b"/etc/x", tar::EntryType::Regular, b"x", None)]),
            "absolute",
        ),
        (
            "t-refuse-keys-20250101-0003.tar.gz".to_owned(),
            crafted(&[
                ok_dir,
                (
                    b"keystore/x",
                    tar::EntryType::Symlink,
                    b"",
                    Some(b"/etc/passwd"),
                ),
            ]),
            "symbolic link",
        ),
        (
            "t-refuse-keys-20250101-0004.tar.gz".to_owned(),
            crafted(&[
                ok_dir,
                (
                    b"keystore/x",
                    tar::EntryType::Link,
                    b"",
                    Some(b"keystore/y"),
                ),
            ]),
            "hard link",
        ),
        (
            "t-refuse-keys-20250101-0005.tar.gz".to_owned(),
            crafted(&[ok_dir, (b"keystore/x", tar::EntryType::Char, b"", None)]),
            "device",
        ),
        (
            "t-refuse-keys-20250101-0006.tar.gz".to_owned(),
            crafted(&[ok_dir, (b"paritydb/x", tar::EntryType::Regular, b"x", None)]),
            "outside",
        ),
    ];
    // Another container's archive, by name; and by header under a renamed file.
    let other = fs::read(cfg.dir.join(&good)).unwrap();
    cases.push((
        "t-other-keys-20250101-0007.tar.gz".to_owned(),
        other.clone(),
        "t-other",
    ));
    let other_temp = TempDir::new("flow-restore-other");
    let fake_other = Fake::new(&other_temp, "t-other");
    let other_cfg = BackupConfig {
        dir: temp.path().join("other-backups"),
        ..config(&temp)
    };
    let other_file = backup(&fake_other, &other_cfg, &hooks()).unwrap().file_name;
    cases.push((
        "t-refuse-keys-20250101-0008.tar.gz".to_owned(),
        fs::read(other_cfg.dir.join(&other_file)).unwrap(),
        "holds the keys of \"t-other\"",
    ));
    cases.push(("mykeys.tar.gz".to_owned(), other, "does not say"));
    // The same container name, backed up on another host.
    let elsewhere_cfg = BackupConfig {
        dir: temp.path().join("elsewhere-backups"),
        host: "other-host".to_owned(),
        ..config(&temp)
    };
    let elsewhere = backup(&fake, &elsewhere_cfg, &hooks()).unwrap().file_name;
    cases.push((
        elsewhere.replace(".tar.gz", "-9.tar.gz"),
        fs::read(elsewhere_cfg.dir.join(&elsewhere)).unwrap(),
        "on host other-host",
    ));
    for (name, bytes, _) in &cases {
        fs::write(cfg.dir.join(name), bytes).unwrap();
        fs::write(
            cfg.dir.join(format!("{name}.sha256")),
            store::sha256_line(&store::sha256_hex(bytes), name),
        )
        .unwrap();
    }
    // Checksum problems.
    let good_bytes = fs::read(cfg.dir.join(&good)).unwrap();
    fs::write(
        cfg.dir.join("t-refuse-keys-20250101-0009.tar.gz"),
        &good_bytes,
    )
    .unwrap();
    fs::write(
        cfg.dir.join("t-refuse-keys-20250101-0010.tar.gz"),
        &good_bytes,
    )
    .unwrap();
    fs::write(
        cfg.dir.join("t-refuse-keys-20250101-0010.tar.gz.sha256"),
        store::sha256_line(
            &store::sha256_hex(b"other"),
            "t-refuse-keys-20250101-0010.tar.gz",
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        cfg.dir.join(&good),
        cfg.dir.join("t-refuse-keys-20250101-0011.tar.gz"),
    )
    .unwrap();
    let mut expectations: Vec<(String, &str)> =
        cases.iter().map(|(n, _, e)| (n.clone(), *e)).collect();
    expectations.extend([
        ("t-refuse-keys-20250101-0009.tar.gz".to_owned(), "missing"),
        ("t-refuse-keys-20250101-0010.tar.gz".to_owned(), "damaged"),
        (
            "t-refuse-keys-20250101-0011.tar.gz".to_owned(),
            "symbolic link",
        ),
        (
            "t-refuse-keys-20250101-0012.tar.gz".to_owned(),
            "no backup file",
        ),
        ("../etc/passwd".to_owned(), "not a path"),
        (format!("sub/{good}"), "not a path"),
        (".inflight-x.tar.gz".to_owned(), "temporary"),
        ("keys.zip".to_owned(), ".tar.gz"),
    ]);
    let listing_before = listing(&cfg.dir);
    fake.state().calls.clear();
    for (name, expected) in expectations {
        let error = restore(&fake, &cfg, &name, RestoreOptions::default()).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(expected),
            "{name}: {text:?} lacks {expected:?}"
        );
        assert!(
            text.contains("nothing was changed")
                || matches!(error, BackupError::InvalidBackupName { .. }),
            "{name}: {text}"
        );
        assert_eq!(error.code().as_str(), "invalid_params", "{name}: {text}");
        assert_eq!(fake.calls(), Vec::<String>::new(), "{name}");
        assert_eq!(listing(&cfg.dir), listing_before, "{name}");
        assert_eq!(container_keys(&fake), before_keys, "{name}");
    }

    // The override lets another container's (renamed) archive in.
    let report = restore(
        &fake,
        &cfg,
        "mykeys.tar.gz",
        RestoreOptions {
            allow_other_container: true,
        },
    )
    .unwrap();
    assert!(!report.changed, "the same keys");
}

#[test]
fn restore_into_a_node_of_another_user_gives_it_the_files() {
    let temp = TempDir::new("flow-restore-user");
    let (fake, cfg, file) = backed_up_then_changed(&temp, "t-restore-user");
    // Numeric: nothing to look up in the container.
    fake.state().user = "4321:4321".to_owned();
    match restore(&fake, &cfg, &file, RestoreOptions::default()) {
        Ok(report) => assert!(report.changed),
        // Without CAP_CHOWN the restore is refused before anything changes.
        Err(error) => {
            assert!(error.to_string().contains("CAP_CHOWN"), "{error}");
            assert!(!fake.calls().iter().any(|c| c.starts_with("cp_to")));
        }
    }
}
