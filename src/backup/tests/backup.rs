//! Backups: the archive, the node started again on every path, retention.
use super::*;

#[test]
fn backup_of_a_running_node_stops_copies_starts_and_archives() {
    let temp = TempDir::new("flow-backup");
    let fake = Fake::new(&temp, "t-backup-run");
    let cfg = config(&temp);
    let report = backup(&fake, &cfg, &hooks()).unwrap();

    assert_eq!(report.file_name, "t-backup-run-keys-20250108-1430.tar.gz");
    assert_eq!(report.path, cfg.dir.join(&report.file_name));
    assert_eq!((report.keystore_files, report.network_files), (3, 1));
    assert_eq!(report.chain.chain_path(), CHAIN);
    assert!(report.was_running && report.stopped_ms.is_some());
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        report.entries,
        [
            "keystore/".to_owned(),
            format!("keystore/{}", key_name("babe", 1)),
            format!("keystore/{}", key_name("gran", 1)),
            format!("keystore/{}", key_name("imon", 1)),
            "network/".to_owned(),
            "network/secret_ed25519".to_owned(),
        ]
    );
    assert_eq!(
        fake.calls(),
        [
            "inspect".to_owned(),
            "exec ls -1 -- /root/data/chains".to_owned(),
            "stop".to_owned(),
            format!("cp_from {CHAIN}/keystore"),
            format!("cp_from {CHAIN}/network"),
            "start".to_owned(),
        ]
    );
    assert_eq!(fake.state().marker_at_stop, [true]);
    assert!(fake.running());
    assert_no_leftovers(&cfg);
    assert_eq!(
        listing(&cfg.dir),
        [
            report.file_name.clone(),
            format!("{}.sha256", report.file_name)
        ]
    );

    // The archive holds exactly the container's files, byte for byte.
    let bytes = fs::read(&report.path).unwrap();
    assert_eq!(bytes.len() as u64, report.bytes);
    assert_eq!(store::sha256_hex(&bytes), report.sha256);
    assert_eq!(
        fs::read_to_string(cfg.dir.join(format!("{}.sha256", report.file_name))).unwrap(),
        format!("{}  {}\n", report.sha256, report.file_name)
    );
    let archive = archive::read_archive(&bytes).unwrap();
    assert_eq!(
        archive.origin,
        Some(Origin {
            container: "t-backup-run".to_owned(),
            chain_id: "creditcoin3".to_owned(),
            host: Some("test-host".to_owned()),
            keys: Some(archive.keystore_names()),
        })
    );
    assert_eq!(archive.keystore_names().len(), 3);
    let keystore = fake.files(&format!("{CHAIN}/keystore"));
    for (name, data) in keystore.iter().filter(|(n, _)| !n.ends_with('/')) {
        assert_eq!(&archive.contents[&format!("keystore/{name}")], data);
    }
    assert_eq!(archive.contents["network/secret_ed25519"], vec![42u8; 32]);
    assert_eq!(
        fs::metadata(&report.path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn backup_of_a_stopped_node_leaves_it_stopped() {
    let temp = TempDir::new("flow-backup-stopped");
    let fake = Fake::new(&temp, "t-backup-stopped");
    fake.state().running = false;
    let cfg = config(&temp);
    let report = backup(&fake, &cfg, &hooks()).unwrap();
    assert!(!report.was_running && report.stopped_ms.is_none());
    // No exec on a stopped container: the chain is found by probing with docker cp.
    let calls = fake.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c == "stop" || c == "start" || c.starts_with("exec")),
        "{calls:?}"
    );
    assert!(calls.contains(&format!("cp_from {CHAIN}/keystore")));
    assert!(!fake.running());
    assert_no_leftovers(&cfg);
}

#[test]
fn backup_without_a_network_directory_says_so() {
    let temp = TempDir::new("flow-backup-nonet");
    let fake = Fake::new(&temp, "t-backup-nonet");
    fs::remove_dir_all(fake.host(&format!("{CHAIN}/network"))).unwrap();
    let cfg = config(&temp);
    let report = backup(&fake, &cfg, &hooks()).unwrap();
    assert_eq!((report.keystore_files, report.network_files), (3, 0));
    assert!(
        report.warnings[0].contains("only the keystore"),
        "{:?}",
        report.warnings
    );
}

#[test]
fn a_failed_copy_still_starts_the_node() {
    let temp = TempDir::new("flow-cp-fails");
    let fake = Fake::new(&temp, "t-cp-fails");
    fake.fail(
        &format!("cp_from {CHAIN}/network"),
        daemon_error("Error response from daemon: injected".to_owned()),
    );
    let cfg = config(&temp);
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("copying the network directory out"), "{text}");
    assert!(text.ends_with("the node was started again"), "{text}");
    assert_eq!(error.node_state(), Some(&NodeState::StartedAgain));
    assert_eq!(error.code().as_str(), "internal");
    assert!(fake.running());
    assert_eq!(fake.calls().last().unwrap(), "start");
    assert_no_leftovers(&cfg);
    assert!(listing(&cfg.dir).is_empty(), "{:?}", listing(&cfg.dir));
}

#[test]
fn a_panic_while_the_node_is_stopped_still_starts_it() {
    let temp = TempDir::new("flow-panic-copy");
    let fake = Fake::new(&temp, "t-panic-copy");
    fake.state().panic_on = Some(format!("cp_from {CHAIN}/keystore"));
    let cfg = config(&temp);
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    let BackupError::Failed(failure) = &error else {
        panic!("{error:?}");
    };
    assert!(
        matches!(&failure.cause, Cause::Panic(message) if message.contains("injected panic")),
        "{error:?}"
    );
    assert_eq!(failure.node, NodeState::StartedAgain);
    assert!(fake.running());
    assert_no_leftovers(&cfg);
    assert!(listing(&cfg.dir).is_empty());
}

#[test]
fn a_full_disk_or_a_panic_while_archiving_leaves_no_partial_file() {
    for panic in [false, true] {
        let temp = TempDir::new("flow-archive-fails");
        let fake = Fake::new(&temp, &format!("t-archive-fails-{panic}"));
        // Enough data that the gzip stream reaches the failing writer mid-way.
        fake.write(
            &format!("{CHAIN}/keystore/{}", key_name("beef", 9)),
            &store::tests::noise(300_000),
            0o600,
        );
        let cfg = config(&temp);
        let mut hooks = hooks();
        hooks.archive_writer = Some(store::tests::failing_writer(20_000, panic));
        let error = backup(&fake, &cfg, &hooks).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("writing the archive"), "{text}");
        assert!(text.ends_with("the node was started again"), "{text}");
        if panic {
            assert!(text.contains("panicked"), "{text}");
        } else {
            assert!(text.contains("disk is full"), "{text}");
        }
        assert!(fake.running());
        assert!(listing(&cfg.dir).is_empty(), "{:?}", listing(&cfg.dir));
    }
}

#[test]
fn a_node_that_will_not_start_is_reported_and_its_keys_saved() {
    let temp = TempDir::new("flow-no-start");
    let fake = Fake::new(&temp, "t-no-start");
    fake.state().start_failures = 100;
    let cfg = config(&temp);
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("could NOT be started again")
            && text.ends_with("start it by hand with `docker start t-no-start`"),
        "{text}"
    );
    assert!(
        text.contains("the keys were saved in t-no-start-keys-20250108-1430.tar.gz"),
        "{text}"
    );
    // Three attempts, then the operator is told.
    assert_eq!(fake.calls().iter().filter(|c| *c == "start").count(), 3);
    assert!(!fake.running());
    assert_no_leftovers(&cfg);
}

#[test]
fn a_start_that_fails_once_is_retried() {
    let temp = TempDir::new("flow-start-retry");
    let fake = Fake::new(&temp, "t-start-retry");
    fake.state().start_failures = 1;
    let cfg = config(&temp);
    backup(&fake, &cfg, &hooks()).unwrap();
    assert!(fake.running());
}

#[test]
fn a_failed_stop_still_tries_to_start() {
    let temp = TempDir::new("flow-stop-fails");
    let fake = Fake::new(&temp, "t-stop-fails");
    fake.fail(
        "stop",
        DockerError::Timeout {
            argv: vec!["stop".to_owned()],
            after: Duration::from_secs(61),
        },
    );
    let cfg = config(&temp);
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    assert_eq!(error.code().as_str(), "timeout");
    assert!(
        error.to_string().contains("while stopping the node"),
        "{error}"
    );
    assert_eq!(fake.calls().last().unwrap(), "start");
    assert_no_leftovers(&cfg);
}

#[test]
fn refusals_before_anything_is_touched() {
    let temp = TempDir::new("flow-refusals");
    let cfg = config(&temp);

    let fake = Fake::new(&temp, "t-missing");
    fake.state().exists = false;
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    assert_eq!(
        error,
        BackupError::NoSuchContainer {
            container: "t-missing".to_owned()
        }
    );
    assert_eq!(error.code().as_str(), "unknown_target");

    let fake = Fake::new(&temp, "t-paused");
    fake.state().paused = true;
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    assert!(
        error.to_string().contains("docker unpause t-paused"),
        "{error}"
    );
    assert_eq!(error.code().as_str(), "unavailable");
    assert_eq!(fake.calls(), ["inspect"]);

    let fake = Fake::new(&temp, "-bad");
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    assert!(matches!(error, BackupError::InvalidContainerName { .. }));
    assert!(fake.calls().is_empty());

    let fake = Fake::new(&temp, "t-busy");
    let guard = OpGuard::acquire("t-busy").unwrap();
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    assert_eq!(
        error,
        BackupError::Busy {
            container: "t-busy".to_owned()
        }
    );
    drop(guard);
    assert!(fake.calls().is_empty());
}

#[test]
fn no_keystore_anywhere_is_reported_with_what_was_tried() {
    let temp = TempDir::new("flow-nochain");
    let fake = Fake::new(&temp, "t-nochain");
    fs::rename(fake.host(CHAIN), fake.host("/root/data/chains/other_chain")).unwrap();
    fake.write("/root/data/chains/third/keystore/x", b"x", 0o600);
    let cfg = config(&temp);
    let error = backup(&fake, &cfg, &hooks()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("tried creditcoin3, creditcoin"), "{text}");
    assert!(text.contains("it holds other_chain, third"), "{text}");
    assert!(!fake.calls().contains(&"stop".to_owned()));
    // With the hint, it is found.
    let mut cfg = config(&temp);
    cfg.chain_id_hint = Some("third".to_owned());
    let report = backup(&fake, &cfg, &hooks()).unwrap();
    assert_eq!(report.chain.chain_id, "third");
}

#[test]
fn the_only_chain_directory_is_used_and_probing_works_without_ls() {
    let temp = TempDir::new("flow-onlychain");
    let fake = Fake::new(&temp, "t-onlychain");
    fs::rename(
        fake.host(CHAIN),
        fake.host("/root/data/chains/creditcoin3_testnet"),
    )
    .unwrap();
    let cfg = config(&temp);
    let report = backup(&fake, &cfg, &hooks()).unwrap();
    assert_eq!(report.chain.chain_id, "creditcoin3_testnet");

    // No `ls` in the image: probing by docker cp, guided by --chain.
    let temp = TempDir::new("flow-nols");
    let fake = Fake::new(&temp, "t-nols");
    fs::rename(
        fake.host(CHAIN),
        fake.host("/root/data/chains/creditcoin3_testnet"),
    )
    .unwrap();
    {
        let mut state = fake.state();
        state.no_ls = true;
        state.args = vec!["--chain".to_owned(), "testnet".to_owned()];
    }
    let report = backup(&fake, &config(&temp), &hooks()).unwrap();
    assert_eq!(report.chain.chain_id, "creditcoin3_testnet");
    assert!(
        fake.calls()
            .contains(&"cp_from /root/data/chains/creditcoin3_testnet/keystore".to_owned())
    );
}

#[test]
fn a_chain_spec_file_names_the_chain() {
    let temp = TempDir::new("flow-spec");
    let fake = Fake::new(&temp, "t-spec");
    fs::rename(
        fake.host(CHAIN),
        fake.host("/root/data/chains/creditcoin3_dev"),
    )
    .unwrap();
    fake.write(
        "/root/data/chainspecs/devnetSpecRaw.json",
        br#"{"name":"Creditcoin3 Dev","id":"creditcoin3_dev","genesis":{"raw":{}}}"#,
        0o644,
    );
    // Two chain directories: only the spec tells which is the node's.
    fake.write("/root/data/chains/creditcoin3/keystore/old", b"x", 0o600);
    {
        let mut state = fake.state();
        state.running = false;
        state.args = vec![
            "--chain".to_owned(),
            "/root/data/chainspecs/devnetSpecRaw.json".to_owned(),
        ];
    }
    let report = backup(&fake, &config(&temp), &hooks()).unwrap();
    assert_eq!(report.chain.chain_id, "creditcoin3_dev");
}

#[test]
fn retention_through_backups_keeps_n_including_the_new_one() {
    let temp = TempDir::new("flow-retention");
    let fake = Fake::new(&temp, "t-retention");
    let mut cfg = config(&temp);
    cfg.keep = 2;
    let mut names = Vec::new();
    for minute in 0..4u64 {
        let mut hooks = hooks();
        hooks.now_unix = Some(NOW + minute * 60);
        let report = backup(&fake, &cfg, &hooks).unwrap();
        names.push(report.file_name.clone());
        if minute >= 2 {
            assert_eq!(report.deleted, [names[(minute - 2) as usize].clone()]);
        }
    }
    assert_eq!(
        listing(&cfg.dir),
        [
            names[2].clone(),
            format!("{}.sha256", names[2]),
            names[3].clone(),
            format!("{}.sha256", names[3]),
        ]
    );
}

#[test]
fn two_backups_in_one_minute_get_suffixes() {
    let temp = TempDir::new("flow-suffix");
    let fake = Fake::new(&temp, "t-suffix");
    let cfg = config(&temp);
    let first = backup(&fake, &cfg, &hooks()).unwrap();
    let second = backup(&fake, &cfg, &hooks()).unwrap();
    assert_eq!(first.file_name, "t-suffix-keys-20250108-1430.tar.gz");
    assert_eq!(second.file_name, "t-suffix-keys-20250108-1430-2.tar.gz");
    assert_eq!(first.sha256, second.sha256);
}
