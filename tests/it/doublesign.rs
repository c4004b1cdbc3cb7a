//! Never double-sign, server side (issue 10): two real test-node containers
//! holding the same session keys; `start` of the stopped one is refused with
//! a message naming the other, and goes through only with `force=true
//! reason=…`, which the audit log keeps.
use crate::support::*;
use serde_json::{Value, json};

#[test]
fn start_of_a_node_whose_keys_another_holds_is_refused_unless_forced() {
    let n0 = Node::start("server-safety-3node0");
    let n1 = Node::start("server-safety-3node1");
    let dir = TempDir::new("server-safety-dsign");
    let mut f = Fleet::start(&[&n0, &n1], lifecycle_policy(), &[]);
    // Running nodes' keystores are listed by the summary: every second here.
    f.reconfigure(|c| c["summary_interval_s"] = json!(1));
    let a = f.agent_id.clone();
    let id = f.server.send(&format!("send {a} rotate_keys {}", n0.name));
    assert!(f.server.outcome(&id, WAIT).contains("completed"));
    // n1 becomes a cold standby with n0's keys, stopped.
    assert!(docker(&["stop", "-t", "1", &n1.name]).status.success());
    n0.copy_keystore_to(&n1, &dir);

    // Refused (never sent) while the server's view fills in: then refused
    // because n0 holds the keys, naming it.
    let start = format!("send {a} start {}", n1.name);
    let named = format!("{} on ", n0.name);
    let refused = f.server.poll_line(&start, |l| l.contains(&named));
    assert!(refused.contains("refused:"), "{refused}");
    assert!(refused.contains(&format!("{} on ", n0.name)), "{refused}");
    assert!(refused.contains("double-sign"), "{refused}");
    assert!(refused.contains("force=true reason="), "{refused}");
    assert!(!f.server.out.seen.iter().any(|l| l.contains("] sent start")));
    assert_eq!(n1.state(), "exited", "nothing was started");

    // force without a reason is a usage error; with one, it goes through.
    f.server.type_line(&format!("{start} force=true"));
    f.server.out.wait_for("force=true and reason=", WAIT);
    let id = f.server.send(&format!(
        "{start} force=true reason=\"planned failover drill\""
    ));
    assert!(f.server.outcome(&id, WAIT).contains("completed"));
    n1.wait_state("running", WAIT);
    let audit = std::fs::read_to_string(f.server.data_dir.join("audit.jsonl")).unwrap();
    let forced: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["action"] == "force")
        .collect();
    assert_eq!(forced.len(), 1, "{audit}");
    assert_eq!(forced[0]["reason"], "planned failover drill");
    assert_eq!(forced[0]["target"], n1.name.as_str());
    assert!(forced[0]["refused"].to_string().contains(&n0.name));
    // The agent never saw the server's words.
    let commands = std::fs::read_to_string(f.server.data_dir.join("commands.jsonl")).unwrap();
    assert!(!commands.contains("planned failover drill"), "{commands}");
}
