use super::*;

type Keys<'a> = &'a [(&'a str, &'a str)];
type Case<'a> = (
    &'a str,
    FleetKeys,
    &'a str,
    Planned<'a>,
    Result<(), &'a str>,
);

const GRAN: &str = "0x88dc3417d5058ec4b4503e0c12ea1a0a89be200fe98922423d4334014fa6b0ee";
const BABE: &str = "0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";

fn host(agent: &str, name: &str, age: Option<i64>, nodes: &[(&str, Option<Keys<'_>>)]) -> HostView {
    HostView {
        agent: agent.into(),
        host: name.into(),
        stats_age_ms: age,
        nodes: nodes
            .iter()
            .map(|(c, keys)| {
                (
                    c.to_string(),
                    keys.map(|k| {
                        k.iter()
                            .map(|(t, p)| (t.to_string(), p.to_string()))
                            .collect()
                    }),
                )
            })
            .collect(),
    }
}

fn fleet(hosts: Vec<HostView>) -> FleetKeys {
    FleetKeys {
        hosts,
        observed: Vec::new(),
        fresh_ms: 30_000,
    }
}

#[test]
fn the_table() {
    let both: &[(&str, &str)] = &[("gran", GRAN), ("babe", BABE)];
    let other: &[(&str, &str)] = &[("gran", "0x01")];
    let upper = GRAN.to_ascii_uppercase().replace("0X", "0x");
    let upper_keys: &[(&str, &str)] = &[("gran", &upper)];
    let archive = vec![BABE.to_string()];
    let cases: Vec<Case<'_>> = vec![
        (
            "a stopped copy on another host is named",
            fleet(vec![
                host("a1", "host1", Some(1000), &[("3node0", Some(both))]),
                host("a2", "host2", Some(1000), &[("3node1", Some(both))]),
            ]),
            "3node1",
            Planned::Start,
            Err("3node0 on host1 holds babe"),
        ),
        (
            "no other holder: clear",
            fleet(vec![
                host("a1", "host1", Some(1000), &[("3node0", Some(other))]),
                host("a2", "host2", Some(1000), &[("3node1", Some(both))]),
            ]),
            "3node1",
            Planned::Start,
            Ok(()),
        ),
        (
            "hex case does not hide a holder",
            fleet(vec![
                host("a1", "host1", Some(1000), &[("3node0", Some(upper_keys))]),
                host("a2", "host2", Some(1000), &[("3node1", Some(both))]),
            ]),
            "3node1",
            Planned::Start,
            Err("3node0 on host1 holds gran 0x88dc"),
        ),
        (
            "stale target host fails closed",
            fleet(vec![host(
                "a2",
                "host2",
                Some(31_000),
                &[("3node1", Some(both))],
            )]),
            "3node1",
            Planned::Start,
            Err("stale (last stats 31 s ago)"),
        ),
        (
            "never any stats fails closed",
            fleet(vec![host("a2", "host2", None, &[("3node1", Some(both))])]),
            "3node1",
            Planned::Start,
            Err("no stats yet"),
        ),
        (
            "an unknown agent fails closed",
            fleet(vec![]),
            "3node1",
            Planned::Start,
            Err("stale"),
        ),
        (
            "a keystore never listed fails closed",
            fleet(vec![host("a2", "host2", Some(1), &[("3node1", None)])]),
            "3node1",
            Planned::Start,
            Err("never listed 3node1's keystore"),
        ),
        (
            "another node never listed fails closed",
            fleet(vec![
                host("a1", "host1", Some(1), &[("3node0", None)]),
                host("a2", "host2", Some(1), &[("3node1", Some(both))]),
            ]),
            "3node1",
            Planned::Start,
            Err("the keystore of 3node0 on host1 was never listed"),
        ),
        (
            "a second node on the same host counts",
            fleet(vec![host(
                "a2",
                "host2",
                Some(1),
                &[("3node0", Some(both)), ("3node1", Some(both))],
            )]),
            "3node1",
            Planned::Start,
            Err("3node0 on host2 holds"),
        ),
        (
            "restore: the archive's keys against a running node",
            fleet(vec![
                host("a1", "host1", Some(1), &[("3node0", Some(both))]),
                host("a2", "host2", Some(1), &[("3node1", Some(other))]),
            ]),
            "3node1",
            Planned::Restore {
                file: "f.tar.gz",
                keys: Some(&archive),
            },
            Err("3node0 on host1 holds babe 0xd435"),
        ),
        (
            "restore: an archive of unknown keys fails closed",
            fleet(vec![host(
                "a2",
                "host2",
                Some(1),
                &[("3node1", Some(other))],
            )]),
            "3node1",
            Planned::Restore {
                file: "f.tar.gz",
                keys: None,
            },
            Err("no record of which keys f.tar.gz holds"),
        ),
        (
            "restore onto the node that holds them already: clear",
            fleet(vec![host(
                "a2",
                "host2",
                Some(1),
                &[("3node1", Some(both))],
            )]),
            "3node1",
            Planned::Restore {
                file: "f.tar.gz",
                keys: Some(&archive),
            },
            Ok(()),
        ),
    ];
    for (name, view, container, planned, want) in cases {
        let got = check(&view, "a2", container, &planned);
        match (got, want) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(text)) => {
                let shown = e.to_string();
                assert!(shown.contains(text), "{name}: {shown:?} lacks {text:?}");
                assert!(shown.contains("force=true reason="), "{name}: {shown}");
            }
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn a_rotated_key_the_keyguard_saw_counts() {
    let both: &[(&str, &str)] = &[("gran", GRAN)];
    let mut view = fleet(vec![host(
        "a2",
        "host2",
        Some(1),
        &[("3node1", Some(both))],
    )]);
    view.observed
        .push(("gran".into(), GRAN.into(), "a9".into(), "3node7".into()));
    // The target's own rotation does not count against it.
    view.observed
        .push(("gran".into(), GRAN.into(), "a2".into(), "3node1".into()));
    let e = check(&view, "a2", "3node1", &Planned::Start).unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("3node7 on a9 holds gran"), "{shown}");
    assert!(!shown.contains("3node1 on"), "{shown}");
}

#[test]
fn every_holder_is_named_once() {
    let keys: &[(&str, &str)] = &[("gran", GRAN), ("babe", BABE)];
    let mut view = fleet(vec![
        host("a1", "host1", Some(1), &[("3node0", Some(keys))]),
        host("a2", "host2", Some(1), &[("3node1", Some(keys))]),
    ]);
    view.observed
        .push(("gran".into(), GRAN.into(), "a1".into(), "3node0".into()));
    let Err(Refusal::Held { holders, .. }) = check(&view, "a2", "3node1", &Planned::Start) else {
        panic!("not held");
    };
    assert_eq!(holders.len(), 2, "{holders:?}");
}
