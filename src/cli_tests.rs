//! Raw arguments into `Cli`, as tables of argument arrays.
use super::*;

fn parse(args: &[&str]) -> Result<Cli, String> {
    parse_args(args.iter().copied()).map_err(|e| e.to_string())
}

#[test]
fn server_flags() {
    let Cli::Server(c) = parse(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        "/tmp/d",
        "--heartbeat-s",
        "2",
    ])
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        (
            c.listen.as_str(),
            c.data_dir.to_str().unwrap(),
            c.heartbeat_s
        ),
        ("127.0.0.1:0", "/tmp/d", 2)
    );
    let Cli::Server(c) = parse(&["server"]).unwrap() else {
        panic!()
    };
    assert_eq!(c.listen, "127.0.0.1:7443");
    assert!(
        parse(&["server", "--tls-cert", "a.pem"])
            .unwrap_err()
            .contains("go together")
    );
    assert!(parse(&["server", "--heartbeat-s", "0"]).is_err());
    assert!(
        parse(&["server", "--bogus"])
            .unwrap_err()
            .contains("--bogus")
    );
}

#[test]
fn agent_flags() {
    let Cli::Agent(a) = parse(&[
        "agent",
        "--server",
        "ws://h:1/agent",
        "--agent-id",
        "a1",
        "--token-file",
        "t",
    ])
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        (
            a.server_url.as_str(),
            a.agent_id.as_str(),
            a.token_file.to_str().unwrap()
        ),
        ("ws://h:1/agent", "a1", "t")
    );
    assert!(
        parse(&["agent", "--agent-id", "a1", "--token-file", "t"])
            .unwrap_err()
            .contains("--server")
    );
    assert!(
        parse(&["agent", "--token", "x"])
            .unwrap_err()
            .contains("--token-file")
    );
}

#[test]
fn cron_forms() {
    let Cli::BackupKeys(b) = parse(&[
        "backup-keys",
        "--container",
        "a",
        "--container",
        "b",
        "--keep",
        "3",
        "--notify",
    ])
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        (b.containers.len(), b.keep, b.notify, b.all),
        (2, Some(3), true, false)
    );
    assert!(parse(&["backup-keys"]).unwrap_err().contains("--all"));
    assert!(parse(&["backup-keys", "--all", "--container", "a"]).is_err());
    assert!(parse(&["backup-keys", "--all", "--keep", "0"]).is_err());
    assert!(
        parse(&["restore-keys", "--container", "a"])
            .unwrap_err()
            .contains("--file")
    );
}

#[test]
fn approve_is_ctl_approve_with_a_key() {
    let Cli::Ctl(ctl) = parse(&["approve", "c17-3", "--key", "/k", "--data-dir", "/d"]).unwrap()
    else {
        panic!("not ctl")
    };
    assert_eq!(ctl.line, "approve c17-3");
    assert_eq!(ctl.key.as_deref(), Some(std::path::Path::new("/k")));
    assert!(parse(&["approve", "c17-3"]).is_err(), "a key is required");
    assert!(
        parse(&["approve", "--key", "/k"]).is_err(),
        "an id is required"
    );
}

#[test]
fn token_forms() {
    let Cli::Token { action, data_dir } =
        parse(&["token", "add", "host1", "--data-dir", "/d"]).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (action, data_dir.to_str().unwrap()),
        (TokenAction::Add("host1".into()), "/d")
    );
    assert!(matches!(
        parse(&["token", "list"]).unwrap(),
        Cli::Token {
            action: TokenAction::List,
            ..
        }
    ));
    assert!(parse(&["token", "add"]).is_err());
    assert!(matches!(
        parse(&["token", "add", "--operator", "ann", "--read-only"]).unwrap(),
        Cli::Token {
            action: TokenAction::AddOperator { ref name, read_only: true },
            ..
        } if name == "ann"
    ));
    assert!(parse(&["token", "add", "host1", "--read-only"]).is_err());
    assert!(parse(&["token", "list", "--operators", "--read-only"]).is_err());
    assert!(
        parse(&["frobnicate"])
            .unwrap_err()
            .contains("unknown subcommand")
    );
    assert!(matches!(parse(&[]).unwrap(), Cli::Help(_)));
    let Cli::Ctl(ctl) = parse(&[
        "ctl", "--json", "--wait=5", "send", "h1", "exec", "n0", "ls", "-la",
    ])
    .unwrap() else {
        panic!("not ctl")
    };
    assert!(ctl.json);
    assert_eq!(ctl.wait_s, Some(5));
    assert_eq!(ctl.line, "send h1 exec n0 ls -la");
    let Cli::Ctl(ctl) = parse(&["ctl", "--wait", "send", "val-*", "status", "a b"]).unwrap() else {
        panic!("not ctl")
    };
    assert_eq!(ctl.wait_s, Some(CTL_DEFAULT_WAIT_S));
    assert_eq!(ctl.line, "send 'val-*' status 'a b'");
    assert!(parse(&["ctl"]).is_err());
    assert!(
        matches!(parse(&["help", "agent"]).unwrap(), Cli::Help(h) if h.contains("--token-file"))
    );
}
