//! `docker ps`, `inspect` and `stats` output captured from a real engine
//! (tests/fixtures/docker/), and the display strings they carry, as tables.
use super::*;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/docker/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn by_name<'a>(all: &'a [ContainerInspect], name: &str) -> &'a ContainerInspect {
    all.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn ps_fixture_from_engine_20_10() {
    let all = parse_ps(&fixture("ps.jsonl")).unwrap();
    assert_eq!(all.len(), 5);
    let run = all
        .iter()
        .find(|c| c.names == ["dockerrs-probe-run"])
        .unwrap();
    assert_eq!(
        run.id,
        "b24b5d2cbfab5cbf34f421795650c4100e3d9e5e32cde9c6c8e66ab5ec3a6674"
    );
    assert_eq!(run.image, "warden-dockerrs-probe");
    assert_eq!(run.state, "running");
    assert!(
        run.status.starts_with("Up ") && run.status.ends_with("(healthy)"),
        "{}",
        run.status
    );
    assert_eq!(run.networks, ["bridge"]);
    let states: BTreeMap<&str, &str> = all
        .iter()
        .map(|c| (c.names[0].as_str(), c.state.as_str()))
        .collect();
    assert_eq!(states["dockerrs-probe-exited"], "exited");
    assert_eq!(states["dockerrs-probe-created"], "created");
    let hostnet = all
        .iter()
        .find(|c| c.names == ["dockerrs-probe-hostnet"])
        .unwrap();
    assert_eq!(hostnet.networks, ["host"]);
    assert_eq!(parse_ps("").unwrap(), []);
    assert_eq!(parse_ps("\n").unwrap(), []);
}

#[test]
fn ps_garbage_is_a_parse_error() {
    let error = parse_ps("{\"ID\":\"x\"}\nnot json\n").unwrap_err();
    assert!(
        matches!(&error, DockerError::Parse { detail, .. } if detail.starts_with("line 1")),
        "{error}"
    );
    let error = parse_ps("{\"ID\":\"x\",\"Names\":\"a\",\"Image\":\"i\",\"State\":\"running\",\"Status\":\"Up\"}\nnot json\n").unwrap_err();
    assert!(
        matches!(&error, DockerError::Parse { detail, .. } if detail.starts_with("line 2")),
        "{error}"
    );
}

#[test]
fn inspect_fixture_from_engine_20_10() {
    let text = fixture("inspect.json");
    let all = parse_inspect(&text).unwrap();
    assert_eq!(all.len(), 5);

    let run = by_name(&all, "dockerrs-probe-run");
    assert_eq!(
        run.id,
        "b24b5d2cbfab5cbf34f421795650c4100e3d9e5e32cde9c6c8e66ab5ec3a6674"
    );
    assert_eq!(run.path, "/bin/sh");
    assert_eq!(
        run.args[2..],
        [
            "node",
            "--base-path",
            "/data",
            "--chain",
            "mainnet",
            "--rpc-port",
            "9944"
        ]
    );
    assert_eq!(run.command_line_value("--base-path"), Some("/data"));
    assert_eq!(run.command_line_value("--rpc-port"), Some("9944"));
    assert_eq!(run.command_line_value("--chain"), Some("mainnet"));
    assert_eq!(run.command_line_value("--name"), None);
    assert_eq!(run.state.status, "running");
    assert!(run.state.running);
    assert!(run.state.pid > 0);
    assert_eq!(run.state.health.as_deref(), Some("healthy"));
    assert!(run.state.started_at_ms().unwrap() > 1_700_000_000_000);
    // It was stopped and started again before the capture.
    assert!(run.state.finished_at_ms().unwrap() < run.state.started_at_ms().unwrap());
    assert_eq!(run.image, "warden-dockerrs-probe");
    assert!(run.image_id.starts_with("sha256:"));
    assert_eq!(run.config.entrypoint, ["/bin/sh"]);
    assert_eq!(run.config.cmd[0], "-c");
    assert_eq!(run.config.labels["warden.role"], "validator");
    assert_eq!(
        run.mounts,
        [Mount {
            kind: "bind".to_owned(),
            name: None,
            source: "/tmp/dockerrs-vol".to_owned(),
            destination: "/data".to_owned(),
            read_write: true,
        }]
    );
    assert_eq!(run.host_config.network_mode, "default");
    assert_eq!(run.host_config.restart_policy, "unless-stopped");

    // The container was started with `-e SECRET_SEED=do-not-read`: it is in
    // docker's output and must not be in ours.
    assert!(text.contains("do-not-read"));
    assert!(!format!("{all:?}").contains("do-not-read"));
    assert!(!serde_json::to_string(&all).unwrap().contains("do-not-read"));

    let exited = by_name(&all, "dockerrs-probe-exited");
    assert_eq!(
        (exited.state.status.as_str(), exited.state.running),
        ("exited", false)
    );
    assert_eq!((exited.state.exit_code, exited.state.pid), (3, 0));
    assert_eq!(exited.state.health, None);
    assert!(exited.state.finished_at_ms() >= exited.state.started_at_ms());
    assert!(exited.config.labels.is_empty(), "null Labels read as empty");
    assert_eq!(
        exited.config.entrypoint,
        Vec::<String>::new(),
        "null Entrypoint read as empty"
    );

    let created = by_name(&all, "dockerrs-probe-created");
    assert_eq!(created.state.status, "created");
    assert_eq!(created.state.started_at, "0001-01-01T00:00:00Z");
    assert_eq!(
        created.state.started_at_ms(),
        None,
        "never started: Go's zero time"
    );

    assert_eq!(
        by_name(&all, "dockerrs-probe-hostnet")
            .host_config
            .network_mode,
        "host"
    );
    assert_eq!(by_name(&all, "dockerrs-probe-mem").config.user, "1000:1000");
}

#[test]
fn a_stopped_container_reports_unhealthy() {
    let all = parse_inspect(&fixture("inspect-stopped-with-healthcheck.json")).unwrap();
    assert_eq!(all[0].state.status, "exited");
    assert_eq!(all[0].state.health.as_deref(), Some("unhealthy"));
}

#[test]
fn inspect_of_nothing_and_garbage() {
    assert_eq!(parse_inspect("[]").unwrap(), []);
    assert!(matches!(
        parse_inspect("").unwrap_err(),
        DockerError::Parse { .. }
    ));
    assert!(matches!(
        parse_inspect("[{\"Id\":1}]").unwrap_err(),
        DockerError::Parse { .. }
    ));
}

#[test]
fn stats_fixture_from_engine_20_10() {
    let all = parse_stats(&fixture("stats.jsonl")).unwrap();
    assert_eq!(all.len(), 4);
    let mem = all.iter().find(|s| s.name == "dockerrs-probe-mem").unwrap();
    // {"MemUsage":"2.211MiB / 64MiB","MemPerc":"3.45%","NetIO":"586B / 0B","PIDs":"2"}
    assert_eq!(mem.mem_limit_bytes, Some(64 * 1024 * 1024));
    assert_eq!(
        mem.mem_used_bytes,
        Some((2.211_f64 * 1024.0 * 1024.0).round() as u64)
    );
    assert_eq!(mem.mem_percent, Some(3.45));
    assert_eq!((mem.net_rx_bytes, mem.net_tx_bytes), (Some(586), Some(0)));
    assert_eq!(mem.pids, Some(2));
    let run = all.iter().find(|s| s.name == "dockerrs-probe-run").unwrap();
    assert!(run.cpu_percent.unwrap() >= 0.0);
    assert!(
        run.mem_limit_bytes.unwrap() > 1 << 30,
        "no limit: the host's memory"
    );
    assert_eq!(run.id.len(), 64);
    let exited = all
        .iter()
        .find(|s| s.name == "dockerrs-probe-exited")
        .unwrap();
    assert_eq!(
        (
            exited.cpu_percent,
            exited.mem_used_bytes,
            exited.mem_limit_bytes,
            exited.pids
        ),
        (Some(0.0), Some(0), Some(0), Some(0))
    );
}

#[test]
fn stats_without_a_sample() {
    // What the CLI prints for a container it could not sample (IsInvalid).
    let line = r#"{"BlockIO":"--","CPUPerc":"--","Container":"n0","ID":"","MemPerc":"--","MemUsage":"-- / --","Name":"--","NetIO":"--","PIDs":"--"}"#;
    let stats = parse_stats(line).unwrap();
    assert_eq!(
        stats,
        [ContainerStats {
            name: "n0".to_owned(),
            id: String::new(),
            cpu_percent: None,
            mem_used_bytes: None,
            mem_limit_bytes: None,
            mem_percent: None,
            net_rx_bytes: None,
            net_tx_bytes: None,
            block_read_bytes: None,
            block_write_bytes: None,
            pids: None,
        }]
    );
    let bad = line.replace(r#""CPUPerc":"--""#, r#""CPUPerc":"lots""#);
    assert!(matches!(
        parse_stats(&bad).unwrap_err(),
        DockerError::Parse { .. }
    ));
}

#[test]
fn sizes_as_docker_prints_them() {
    let table: &[(&str, Option<u64>)] = &[
        ("0B", Some(0)),
        ("266B", Some(266)),
        ("1.18kB", Some(1180)),
        ("1.926MiB", Some(2_019_557)),
        ("64MiB", Some(67_108_864)),
        ("23.54GiB", Some(25_275_882_537)),
        ("1.5MiB", Some(1_572_864)),
        ("7.6GiB", Some(8_160_437_862)),
        ("2.5MB", Some(2_500_000)),
        ("1e+03kB", Some(1_000_000)),
        ("1.2TiB", Some(1_319_413_953_331)),
        ("1.1TB", Some(1_100_000_000_000)),
        ("3KiB", Some(3072)),
        ("3 kB", Some(3000)),
        ("", None),
        ("MiB", None),
        ("1.5XiB", None),
        ("-1B", None),
        ("12%", None),
    ];
    for (text, want) in table {
        assert_eq!(parse_size(text), *want, "{text}");
    }
    assert_eq!(
        parse_size_pair("1.5MiB / 7.6GiB"),
        Some((Some(1_572_864), Some(8_160_437_862)))
    );
    assert_eq!(parse_size_pair("-- / --"), Some((None, None)));
    assert_eq!(parse_size_pair("12.5MiB"), Some((Some(13_107_200), None)));
    assert_eq!(parse_size_pair("x / 1B"), None);
    assert_eq!(parse_percent("12.34%"), Some(Some(12.34)));
    assert_eq!(parse_percent("150.00%"), Some(Some(150.0)));
    assert_eq!(parse_percent("--"), Some(None));
    assert_eq!(parse_percent("12.34"), None);
}

#[test]
fn docker_times() {
    assert_eq!(parse_docker_time("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_docker_time("2026-11-25T21:28:47.996535154Z"),
        Some(1_795_642_127_996)
    );
    assert_eq!(
        parse_docker_time("2026-11-25T21:28:47.9Z"),
        Some(1_795_642_127_900)
    );
    assert_eq!(
        parse_docker_time("2026-11-25T22:28:47+01:00"),
        Some(1_795_642_127_000)
    );
    assert_eq!(
        parse_docker_time("2000-02-29T00:00:00Z"),
        Some(951_782_400_000)
    );
    assert_eq!(parse_docker_time("0001-01-01T00:00:00Z"), None);
    for bad in [
        "",
        "2026-11-25",
        "2026-11-25 21:28:47Z",
        "2026-13-01T00:00:00Z",
        "2026-11-25T21:28:47",
        "2026-11-25T21:28:47.Z",
    ] {
        assert_eq!(parse_docker_time(bad), None, "{bad}");
    }
}

#[test]
fn command_line_values() {
    let mut inspect = parse_inspect(&fixture("inspect.json")).unwrap().remove(0);
    inspect.args = [
        "--chain=mainnet",
        "--base-path",
        "/a",
        "--base-path",
        "/b",
        "--rpc-port",
    ]
    .map(str::to_owned)
    .to_vec();
    assert_eq!(inspect.command_line_value("--chain"), Some("mainnet"));
    assert_eq!(inspect.command_line_value("--base-path"), Some("/b"));
    assert_eq!(inspect.command_line_value("--rpc-port"), None);
    assert_eq!(inspect.command_line_value("--chai"), None);
}
