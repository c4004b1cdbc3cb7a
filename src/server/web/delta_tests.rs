use super::*;
use serde_json::json;

fn agent(id: &str, last_seen_ms: i64) -> AgentRow {
    AgentRow {
        id: id.into(),
        connected: true,
        last_seen_ms,
        ..AgentRow::default()
    }
}

fn node(agent: &str, container: &str, state: &str) -> NodeRow {
    NodeRow {
        agent: agent.into(),
        container: container.into(),
        state: state.into(),
        ..NodeRow::default()
    }
}

/// Ten agents with two nodes each, all running.
fn fleet(ts: i64) -> Snapshot {
    fleet_of(10, ts)
}

fn fleet_of(agents: usize, ts: i64) -> Snapshot {
    let mut s = Snapshot {
        ts,
        ..Snapshot::default()
    };
    for i in 0..agents {
        let id = format!("a{i}");
        s.agents.push(agent(&id, 1000));
        s.nodes.push(node(&id, "n0", "running"));
        s.nodes.push(node(&id, "n1", "running"));
    }
    s
}

#[test]
fn an_unchanged_fleet_is_an_empty_delta_whatever_its_time() {
    let (old, new) = (fleet(1), fleet(2));
    let d = diff(&old, &new, 7);
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        json!({"type": "delta", "seq": 7, "ts": 2}),
        "empty lists are left out"
    );
}

#[test]
fn only_changed_rows_and_gone_keys_travel() {
    let old = fleet(1);
    let mut new = fleet(2);
    new.nodes[4].state = "exited".into(); // a2/n0
    new.agents[9].last_seen_ms = 2000;
    new.nodes
        .retain(|n| !(n.agent == "a5" && n.container == "n1"));
    new.agents.push(agent("b0", 5));
    new.nodes.push(node("b0", "n0", "running"));
    new.alerts
        .push(json!({"rule": "NodeDown", "agent": "a2", "container": "n0"}));
    new.commands.push(json!({"id": "c1", "status": "issued"}));
    let d = diff(&old, &new, 3);
    let agents: Vec<&str> = d.agents.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(agents, ["a9", "b0"]);
    let nodes: Vec<[&str; 2]> = d
        .nodes
        .iter()
        .map(|n| [n.agent.as_str(), n.container.as_str()])
        .collect();
    assert_eq!(nodes, [["a2", "n0"], ["b0", "n0"]]);
    assert_eq!(d.nodes_gone, [["a5", "n1"]]);
    assert!(d.agents_gone.is_empty());
    assert_eq!(d.alerts.len(), 1);
    assert_eq!(d.commands.map(<[Value]>::len), Some(1));
    assert_eq!(d.rows(), 7);

    // And back: the alert goes, by its key; the command list is the same.
    let back = diff(&new, &old, 4);
    assert_eq!(
        serde_json::to_value(&back).unwrap()["alerts_gone"],
        json!([["NodeDown", "a2", "n0"]])
    );
    assert_eq!(back.agents_gone, ["b0"]);
    assert_eq!(back.nodes_gone, [["b0", "n0"]]);
    assert!(back.commands.is_some(), "the list changed again");
    let same = diff(&new, &new, 5);
    assert!(same.is_empty());
}

#[test]
fn an_alert_changing_in_place_is_sent_again_not_gone() {
    let mut old = fleet(1);
    old.alerts
        .push(json!({"rule": "Lag", "agent": "a1", "container": null, "summary": "10 behind"}));
    let mut new = fleet(1);
    new.alerts
        .push(json!({"rule": "Lag", "agent": "a1", "container": null, "summary": "20 behind"}));
    let d = diff(&old, &new, 1);
    assert_eq!(d.alerts.len(), 1);
    assert!(d.alerts_gone.is_empty());
}

#[test]
fn a_snapshot_frame_wraps_the_fleet_json() {
    let text = snapshot_frame(1, r#"{"ts":5}"#);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v, json!({"type": "snapshot", "seq": 1, "fleet": {"ts": 5}}));
}

fn frame(push: &mut Push, s: &Arc<Snapshot>, at: Instant) -> Option<Value> {
    push.next(s, || Some(serde_json::to_string(&**s).unwrap().into()), at)
        .map(|t| serde_json::from_str(&t).unwrap())
}

#[test]
fn a_connection_gets_a_snapshot_then_numbered_deltas() {
    let t0 = Instant::now();
    let mut push = Push::default();
    let first = Arc::new(fleet(1));
    let f = frame(&mut push, &first, t0).unwrap();
    assert_eq!(
        (f["type"].clone(), f["seq"].clone()),
        (json!("snapshot"), json!(1))
    );
    assert_eq!(f["fleet"]["nodes"].as_array().unwrap().len(), 20);

    // The same snapshot, or an equal one, soon after: nothing to send.
    assert_eq!(frame(&mut push, &first, t0), None);
    let equal = Arc::new(fleet(2));
    assert_eq!(
        frame(&mut push, &equal, t0 + Duration::from_millis(500)),
        None
    );

    // One node stops: a delta with that row only, numbered next.
    let mut stopped = fleet(3);
    stopped.nodes[0].state = "exited".into();
    let stopped = Arc::new(stopped);
    let f = frame(&mut push, &stopped, t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(f["type"], "delta");
    assert_eq!(f["seq"], 2);
    assert_eq!(
        f["nodes"],
        json!([serde_json::to_value(&stopped.nodes[0]).unwrap()])
    );

    // Quiet for KEEPALIVE: a delta of just the time, so ages keep counting.
    let later = t0 + Duration::from_secs(1) + KEEPALIVE;
    let f = frame(&mut push, &stopped, later).unwrap();
    assert_eq!(f, json!({"type": "delta", "seq": 3, "ts": 3}));

    // The page saw a gap: the next frame is a snapshot, numbered on.
    push.resync();
    let f = frame(&mut push, &stopped, later).unwrap();
    assert_eq!(
        (f["type"].clone(), f["seq"].clone()),
        (json!("snapshot"), json!(4))
    );
}

#[test]
fn a_delta_bigger_than_half_a_big_fleet_goes_as_a_snapshot() {
    let stop = |s: &mut Snapshot, count: usize| {
        for n in s.nodes.iter_mut().take(count) {
            n.state = "exited".into();
        }
    };
    let kind = |f: &Value| (f["type"].clone(), f["seq"].clone());
    let t0 = Instant::now();

    // A small fleet: a delta however much changed (it is small anyway).
    let mut push = Push::default();
    frame(&mut push, &Arc::new(fleet(1)), t0).unwrap();
    let mut most = fleet(2);
    stop(&mut most, 16);
    let f = frame(&mut push, &Arc::new(most), t0).unwrap();
    assert_eq!(kind(&f), (json!("delta"), json!(2)));

    // 100 agents, 200 nodes: 160 changed rows go as a snapshot.
    let mut push = Push::default();
    frame(&mut push, &Arc::new(fleet_of(100, 1)), t0).unwrap();
    let mut most = fleet_of(100, 2);
    stop(&mut most, 160);
    let f = frame(&mut push, &Arc::new(most), t0).unwrap();
    assert_eq!(kind(&f), (json!("snapshot"), json!(2)));

    // Without the fleet's JSON (the hub did not answer) nothing is sent
    // and the count does not move.
    assert_eq!(push.next(&Arc::new(Snapshot::default()), || None, t0), None);
    let mut one = fleet_of(100, 4);
    stop(&mut one, 160);
    one.nodes[199].state = "paused".into();
    let f = frame(&mut push, &Arc::new(one), t0).unwrap();
    assert_eq!(kind(&f), (json!("delta"), json!(3)));
    assert_eq!(f["nodes"].as_array().map(Vec::len), Some(1));
}
