//! Fault injection with real processes: a network cut (a network namespace
//! whose link the test takes down) while a broadcast runs, and a Docker
//! Engine the agent cannot reach. Nothing may run twice, be lost, be
//! recorded twice or be left without an outcome; both sides recover alone.
use crate::support::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace joined to the host by a veth pair, removed on drop.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
}

impl Netns {
    fn new() -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let k = (std::process::id() % 200) as u32 * 8 + N.fetch_add(1, Ordering::Relaxed) % 8;
        let (a, b) = (k / 250 % 250, k % 250);
        let name = format!("wdn{k}");
        let host_if = format!("wdh{k}");
        let ns_if = format!("wdp{k}");
        let host_ip = format!("10.{}.{}.1", 100 + a, b);
        let ns_ip = format!("10.{}.{}.2", 100 + a, b);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        run(&["ip", "netns", "add", &name]);
        run(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        run(&["ip", "link", "set", &ns_if, "netns", &name]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/30"),
            "dev",
            &host_if,
        ]);
        run(&["ip", "link", "set", &host_if, "up"]);
        run(&[
            "ip",
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("{ns_ip}/30"),
            "dev",
            &ns_if,
        ]);
        run(&[
            "ip", "netns", "exec", &name, "ip", "link", "set", &ns_if, "up",
        ]);
        run(&[
            "ip", "netns", "exec", &name, "ip", "link", "set", "lo", "up",
        ]);
        Netns {
            name,
            host_if,
            host_ip,
        }
    }

    fn cut(&self) {
        run(&["ip", "link", "set", &self.host_if, "down"]);
    }

    fn heal(&self) {
        run(&["ip", "link", "set", &self.host_if, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn outcomes(data_dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(data_dir.join("commands.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "outcome")
        .collect()
}

#[test]
fn a_network_cut_during_a_broadcast_loses_nothing_and_runs_nothing_twice() {
    let net = Netns::new();
    let dir = TempDir::new("cut");
    let runs = dir.join("runs.log");
    let script = dir.join("payout.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nsleep 2\necho \"$1\" >> {}\necho paid $1\n",
            runs.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nodes = [Node::start("3node0"), Node::start("3node1")];
    let data_dir = dir.join("server");
    let ids = [unique("near"), unique("far")];
    let tokens: Vec<String> = ids.iter().map(|id| token_add(&data_dir, id)).collect();
    let mut server = ServerProc::start_on(
        &data_dir,
        &format!("{}:0", net.host_ip),
        &["--heartbeat-s", "1"],
    );
    let url = server.url();
    let mut agents = Vec::new();
    for (i, (id, token)) in ids.iter().zip(&tokens).enumerate() {
        let policy = json!({"allow": ["payout", "status"], "payout": {"script": script.display().to_string(), "timeout_s": 30}});
        let config = config_for(&[&nodes[i].name], policy);
        let prefix: Vec<&str> = if i == 1 {
            vec!["ip", "netns", "exec", &net.name]
        } else {
            vec![]
        };
        agents.push(AgentProc::start_under(
            &prefix,
            dir.path(),
            &url,
            id,
            token,
            &config,
            &[],
        ));
        server.out.wait_for(&format!("* {id} connected"), WAIT);
    }

    // One command per agent: a mutating broadcast must name its target, and
    // each agent's container has its own name.
    let sent: Vec<String> = ids
        .iter()
        .map(|id| server.send(&format!("send {id} payout")))
        .collect();
    net.cut();
    server
        .out
        .wait_for(&format!("* {} disconnected", ids[1]), WAIT);
    // The near agent's outcome arrives; the far one finishes while cut off.
    let deadline = Instant::now() + WAIT;
    while std::fs::read_to_string(&runs)
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "the payouts did not run");
        std::thread::sleep(Duration::from_millis(100));
    }
    net.heal();
    server
        .out
        .wait_for(&format!("* {} connected", ids[1]), Duration::from_secs(90));
    let deadline = Instant::now() + WAIT;
    loop {
        let recorded = outcomes(&data_dir);
        if sent
            .iter()
            .all(|id| recorded.iter().any(|o| o["id"] == id.as_str()))
        {
            for id in &sent {
                let n = recorded.iter().filter(|o| o["id"] == id.as_str()).count();
                assert_eq!(n, 1, "{id} recorded {n} times");
                let o = recorded.iter().find(|o| o["id"] == id.as_str()).unwrap();
                assert_eq!(o["status"], "completed", "{o}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "outcomes missing: {recorded:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ran = std::fs::read_to_string(&runs).unwrap();
    for n in &nodes {
        assert_eq!(
            ran.lines().filter(|l| *l == n.name).count(),
            1,
            "payout for {} ran once:\n{ran}",
            n.name
        );
    }
    drop(agents);
}

#[test]
fn an_unreachable_docker_engine_fails_commands_cleanly_and_the_agent_recovers() {
    let n0 = Node::start("3node0");
    let dir = TempDir::new("nodocker");
    // A docker CLI that cannot reach its engine, then can again.
    let switch = dir.join("engine-down");
    let shim = dir.join("docker");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\nif [ -e {} ]; then export DOCKER_HOST=unix:///nonexistent/docker.sock; fi\nexec docker \"$@\"\n",
            switch.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = dir.join("server");
    let id = unique("nodocker");
    let token = token_add(&data_dir, &id);
    let mut server = ServerProc::start(&data_dir, &[]);
    let mut config = config_for(&[&n0.name], json!({}));
    config["docker"]["program"] = json!(shim.display().to_string());
    let agent = AgentProc::start(dir.path(), &server.url(), &id, &token, &config, &[]);
    server.out.wait_for(&format!("* {id} connected"), WAIT);
    std::fs::write(&switch, "").unwrap();
    let cmd = server.send(&format!("send {id} status {}", n0.name));
    let line = server.outcome(&cmd, WAIT);
    assert!(line.contains("failed (unavailable)"), "{line}");
    std::fs::remove_file(&switch).unwrap();
    let cmd = server.send(&format!("send {id} stop {}", n0.name));
    assert!(server.outcome(&cmd, WAIT).contains("completed"));
    assert_eq!(n0.state(), "exited");
    assert!(agent.child.id() > 0);
}
