//! Key backup and restore with real containers: the archive's contents byte
//! for byte, the node running afterwards on every path, the restore round
//! trip, refused archives, retention, cron mode, and an interrupted backup.
use crate::support::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const CHAIN: &str = "/root/data/chains/creditcoin3";

/// Every regular file under `dir` (relative path → bytes).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// The node's keystore and network files, copied out with docker cp.
fn node_key_files(node: &Node, scratch: &TempDir) -> BTreeMap<String, Vec<u8>> {
    let dest = scratch.join(&unique("copy"));
    std::fs::create_dir_all(&dest).unwrap();
    for sub in ["keystore", "network"] {
        let out = docker(&[
            "cp",
            &format!("{}:{CHAIN}/{sub}", node.name),
            &dest.display().to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    files(&dest)
}

/// The regular files in a .tar.gz (path → bytes).
fn archive_files(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
    let mut tar = tar::Archive::new(gz);
    let mut out = BTreeMap::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let name = entry.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            out.insert(name, bytes);
        }
    }
    out
}

fn fleet_with_backups(nodes: &[&Node], dir: &TempDir, keep: usize) -> Fleet {
    let mut f = Fleet::start(nodes, lifecycle_policy(), &[]);
    f.reconfigure(|c| {
        c["backup"] = json!({"dir": dir.join("backups").display().to_string(), "keep": keep})
    });
    f
}

#[test]
fn backup_then_restore_gives_back_exactly_the_backed_up_keystore() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("bk");
    let mut f = fleet_with_backups(&[&n0], &dir, 5);
    let a = f.agent_id.clone();
    let id = f.server.send(&format!("send {a} rotate_keys {}", n0.name));
    f.server.outcome(&id, WAIT);
    let before = node_key_files(&n0, &dir);
    assert_eq!(
        before.keys().filter(|k| k.starts_with("keystore/")).count(),
        3,
        "{:?}",
        before.keys()
    );

    let id = f.server.send(&format!("send {a} backup_keys {}", n0.name));
    let line = f.server.outcome(&id, Duration::from_secs(60));
    let file = line
        .rsplit("completed: ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert!(
        file.starts_with(&format!("{}-keys-", n0.name)) && file.ends_with(".tar.gz"),
        "{line}"
    );
    assert_eq!(n0.state(), "running", "the node runs after the backup");
    let path = dir.join("backups").join(&file);
    assert_eq!(
        archive_files(&path),
        before,
        "the archive holds exactly the keystore and network files"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let sha = std::fs::read_to_string(format!("{}.sha256", path.display())).unwrap();
    assert!(sha.ends_with(&format!("  {file}\n")), "{sha}");
    if !f
        .server
        .out
        .seen
        .iter()
        .any(|l| l.contains("] backup_complete"))
    {
        f.server.out.wait_for("] backup_complete", WAIT);
    }
    f.server.type_line(&format!("backups {a}"));
    let row = f.server.out.wait_until(
        |l| l.contains(&n0.name) && l.contains(&file),
        WAIT,
        "backups row",
    );
    assert!(row.contains(&a), "{row}");

    // New keys, then back to the backed-up ones.
    let id = f.server.send(&format!("send {a} rotate_keys {}", n0.name));
    f.server.outcome(&id, WAIT);
    assert_eq!(
        node_key_files(&n0, &dir)
            .keys()
            .filter(|k| k.starts_with("keystore/"))
            .count(),
        6
    );
    f.wait_stats(&n0.name);
    let id = f.server.send(&format!(
        "send {a} restore_keys {} backup_file={file}",
        n0.name
    ));
    let line = f.server.outcome(&id, Duration::from_secs(60));
    assert!(line.contains("completed"), "{line}");
    f.server.out.wait_for("restored", WAIT);
    assert_eq!(
        node_key_files(&n0, &dir),
        before,
        "the keystore is exactly the backed-up one"
    );
    assert_eq!(n0.state(), "running");
}

#[test]
fn unsafe_or_tampered_archives_are_refused_with_nothing_changed() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("bad");
    let mut f = fleet_with_backups(&[&n0], &dir, 5);
    let a = f.agent_id.clone();
    let id = f.server.send(&format!("send {a} rotate_keys {}", n0.name));
    f.server.outcome(&id, WAIT);
    let before = node_key_files(&n0, &dir);
    let backups = dir.join("backups");
    std::fs::create_dir_all(&backups).unwrap();

    // A path-traversal archive with a correct checksum beside it.
    let evil = format!("{}-keys-20250101-0000.tar.gz", n0.name);
    {
        let file = std::fs::File::create(backups.join(&evil)).unwrap();
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::default(),
        ));
        let mut header = tar::Header::new_gnu();
        let payload = b"pwned";
        header.set_size(payload.len() as u64);
        header.set_mode(0o600);
        header.as_gnu_mut().unwrap().name[..14].copy_from_slice(b"../../etc/evil");
        header.set_cksum();
        builder.append(&header, &payload[..]).unwrap();
        builder.into_inner().unwrap().finish().unwrap();
    }
    let digest = {
        let out = std::process::Command::new("sha256sum")
            .arg(backups.join(&evil))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    std::fs::write(
        backups.join(format!("{evil}.sha256")),
        format!("{digest}  {evil}\n"),
    )
    .unwrap();
    // A good-looking archive whose checksum does not match.
    let tampered = format!("{}-keys-20250101-0001.tar.gz", n0.name);
    std::fs::copy(backups.join(&evil), backups.join(&tampered)).unwrap();
    std::fs::write(
        backups.join(format!("{tampered}.sha256")),
        format!("{}  {tampered}\n", "0".repeat(64)),
    )
    .unwrap();

    // A path is refused by the server before anything is sent.
    f.server.type_line(&format!(
        "send {a} restore_keys {} backup_file=../../etc/passwd",
        n0.name
    ));
    let refusal = f
        .server
        .out
        .wait_until(|l| l.starts_with("error"), WAIT, "refusal");
    assert!(refusal.contains("invalid_params"), "{refusal}");
    for (name, why) in [
        (evil.as_str(), "traversal"),
        (tampered.as_str(), "checksum"),
    ] {
        // Past the server's double-sign check (no backup_complete lists
        // these archives' keys): what is under test is the agent's refusal.
        let id = f.server.send(&format!(
            "send {a} restore_keys {} backup_file={name} force=true reason=test",
            n0.name
        ));
        let line = f.server.outcome(&id, WAIT);
        assert!(line.contains("failed (invalid_params)"), "{why}: {line}");
    }
    assert_eq!(node_key_files(&n0, &dir), before, "nothing was written");
    assert_eq!(n0.state(), "running");
    assert!(!Path::new("/etc/evil").exists());
}

#[test]
fn failures_leave_the_node_running_and_say_why() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("fail");
    // The backup dir cannot be created: a regular file stands in its way.
    let blocker = dir.join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let mut f = Fleet::start(&[&n0], lifecycle_policy(), &[]);
    f.reconfigure(|c| c["backup"] = json!({"dir": blocker.join("backups").display().to_string()}));
    let id = f
        .server
        .send(&format!("send {} backup_keys {}", f.agent_id, n0.name));
    let line = f.server.outcome(&id, Duration::from_secs(60));
    assert!(line.contains("failed ("), "{line}");
    assert_eq!(n0.state(), "running", "{line}");

    // A container that is gone (with a usable backup dir).
    let n1 = Node::start("3node1");
    let mut f = fleet_with_backups(&[&n1], &dir, 3);
    let gone = n1.name.clone();
    drop(n1);
    let id = f
        .server
        .send(&format!("send {} backup_keys {gone}", f.agent_id));
    let line = f.server.outcome(&id, WAIT);
    assert!(line.contains("failed (unknown_target)"), "{line}");
}

fn cron(args: &[&str]) -> std::process::Output {
    warden().arg("backup-keys").args(args).output().unwrap()
}

#[test]
fn cron_mode_backs_up_keeps_n_and_reports_in_its_exit_code() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("cron");
    let config = dir.join("agent.json");
    std::fs::write(
        &config,
        json!({"policy": {"containers": [n0.name.clone()]}}).to_string(),
    )
    .unwrap();
    let dest = dir.join("dest");
    let base = [
        "--config",
        config.to_str().unwrap(),
        "--dest",
        dest.to_str().unwrap(),
        "--keep",
        "2",
    ];
    for _ in 0..3 {
        let mut args = base.to_vec();
        args.extend(["--container", &n0.name]);
        let out = cron(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        assert!(
            stdout.starts_with(&format!("{}: ", n0.name)) && stdout.contains("sha256"),
            "{stdout}"
        );
    }
    let archives: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.gz"))
        .collect();
    assert_eq!(archives.len(), 2, "--keep 2 keeps exactly 2: {archives:?}");
    assert_eq!(n0.state(), "running");

    let mut args = base.to_vec();
    args.extend(["--container", "outsider9"]);
    let out = cron(&args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(stderr.contains("policy"), "{stderr}");
    assert_eq!(
        cron(&["--all", "--container", "x"]).status.code(),
        Some(2),
        "usage error"
    );
}

#[test]
fn cron_notify_reaches_the_server_through_the_running_agent() {
    let n0 = Node::start("3node0");
    let mut f = Fleet::start(&[&n0], lifecycle_policy(), &[]);
    let config = f.dir.join(&format!("{}.json", f.agent_id));
    let out = cron(&[
        "--container",
        &n0.name,
        "--notify",
        "--config",
        config.to_str().unwrap(),
        "--state-dir",
        f.agent.state_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = f.server.out.wait_for("] backup_complete", WAIT);
    assert!(
        line.contains(&n0.name) && line.contains(&f.agent_id),
        "{line}"
    );
}

#[test]
fn a_backup_killed_after_stopping_the_node_is_recovered_on_the_next_start() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("killed");
    // A docker that stalls on `cp`: the window in which the node is stopped.
    let shim = dir.join("docker");
    std::fs::write(
        &shim,
        "#!/bin/sh\nif [ \"$1\" = cp ]; then sleep 30; fi\nexec docker \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let slow = dir.join("slow.json");
    let policy = json!({"containers": [n0.name.clone()]});
    std::fs::write(&slow, json!({"docker": {"program": shim.display().to_string(), "stop_grace_s": 5}, "policy": policy}).to_string()).unwrap();
    let dest = dir.join("dest");
    let mut cron = warden()
        .args([
            "backup-keys",
            "--container",
            &n0.name,
            "--config",
            slow.to_str().unwrap(),
            "--dest",
            dest.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    n0.wait_state("exited", WAIT);
    let _ = cron.kill();
    let _ = cron.wait();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        n0.state(),
        "exited",
        "killed mid-backup: the node is left stopped"
    );
    let marker = std::fs::read_dir(&dest)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(".inflight-"));
    assert!(marker, "the backup left its marker");
    let archives = std::fs::read_dir(&dest)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tar.gz"))
        .count();
    assert_eq!(archives, 0, "no partial archive is left");

    // The next run with a working docker finds the marker and starts the node.
    let fine = dir.join("fine.json");
    std::fs::write(&fine, json!({"policy": policy}).to_string()).unwrap();
    let out = warden()
        .args([
            "backup-keys",
            "--container",
            &n0.name,
            "--config",
            fine.to_str().unwrap(),
            "--dest",
            dest.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("recovered"), "says so: {stderr}");
    let deadline = Instant::now() + WAIT;
    while n0.state() != "running" {
        assert!(Instant::now() < deadline, "not started again");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(out.status.success(), "{stderr}");
}
