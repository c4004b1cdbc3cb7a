//! What ships beside the binary: the systemd units pass `systemd-analyze
//! verify` with no warning, and `warden config check` validates each kind of
//! file, prints what it would do, and never prints a secret.
use crate::support::{TempDir, warden};
use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn systemd_units_verify_cleanly() {
    let dir = TempDir::new("ops-units");
    let exe = env!("CARGO_BIN_EXE_warden");
    let mut units = Vec::new();
    for name in ["warden-server.service", "warden-agent.service"] {
        let text = std::fs::read_to_string(repo().join("packaging/systemd").join(name)).unwrap();
        assert!(text.contains("ExecStart=/usr/local/bin/warden "), "{name}");
        for option in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=",
            "PrivateTmp=yes",
            "ProtectHome=yes",
            "RestrictAddressFamilies=",
            "CapabilityBoundingSet=\n",
            "SystemCallFilter=@system-service",
            "Restart=on-failure",
        ] {
            assert!(text.contains(option), "{name} lacks {option:?}");
        }
        // verify checks that ExecStart is executable: point it at this build.
        let path = dir.join(name);
        std::fs::write(&path, text.replace("/usr/local/bin/warden", exe)).unwrap();
        units.push(path);
    }
    let agent = std::fs::read_to_string(&units[1]).unwrap();
    assert!(
        agent.contains("SupplementaryGroups=docker"),
        "the agent needs the docker socket"
    );
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .expect(
            "systemd-analyze is needed by this test: apt-get install -y systemd (.ci/run does)",
        );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Unknown keys and bad values are only warnings: any output is a failure.
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_crontab_example_runs_backup_keys_with_notify() {
    let text = std::fs::read_to_string(repo().join("packaging/cron/warden-backup-keys")).unwrap();
    let line = text
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&fields[..6], &["17", "3", "*", "*", "*", "warden-agent"]);
    assert!(
        line.contains("/usr/local/bin/warden backup-keys --all ") && line.contains("--notify"),
        "{line}"
    );
}

fn check(args: &[&str]) -> (i32, String, String) {
    let out = warden()
        .args(["config", "check"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_each_kind_of_file() {
    let dir = TempDir::new("ops-check");
    std::fs::write(dir.join("tg.token"), "123:TOKENSECRET\n").unwrap();
    let alerts = dir.join("alerts.json");
    let body = serde_json::json!({"rules": {"BackupStale": {"enabled": false}},
        "sinks": [{"kind": "telegram", "name": "phone", "bot_token_file": dir.join("tg.token"), "chat_id": "-1"}]});
    std::fs::write(&alerts, body.to_string()).unwrap();
    let (code, out, err) = check(&[alerts.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("alerts file: 12 rules, 1 sinks") && out.contains("sink phone (telegram)"),
        "{out}"
    );
    assert!(
        out.contains("BackupStale") && out.contains("disabled"),
        "{out}"
    );
    assert!(!out.contains("TOKENSECRET") && !err.contains("TOKENSECRET"));

    let sched = dir.join("schedules.json");
    std::fs::write(
        &sched,
        r#"{"schedules": [{"name": "nightly", "command": "backup_keys", "at": "03:17"}]}"#,
    )
    .unwrap();
    let (code, out, _) = check(&[sched.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("nightly (on): backup_keys every 1 day(s) at 03:17 UTC"),
        "{out}"
    );

    let agent = dir.join("agent.json");
    std::fs::write(&agent, r#"{"stats_interval_s": 5, "policy": {"containers": ["3node*"], "allow": ["status", "logs"]}}"#).unwrap();
    let (code, out, err) = check(&["--kind", "agent", agent.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("manages containers matching: 3node*") && out.contains("stats every 5 s"),
        "{out}"
    );

    // Refusals: exit 1 with the reason; usage errors exit 2.
    std::fs::write(&agent, r#"{"stats_interval": 5}"#).unwrap();
    let (code, _, err) = check(&[agent.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown field"), "{err}");
    std::fs::write(&alerts, r#"{"rules": {"NodeLowPeer": {}}}"#).unwrap();
    let (code, _, err) = check(&[alerts.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown rule \"NodeLowPeer\""), "{err}");
    assert_eq!(check(&[]).0, 2);
    assert_eq!(check(&["--kind", "nope", "x"]).0, 2);
}
