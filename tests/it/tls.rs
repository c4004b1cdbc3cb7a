//! wss:// with a private CA, mutual TLS and certificate pinning. The
//! certificates are made here with the openssl CLI.
use crate::support::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn make_ca(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{ca}-ca.key"),
            "-out",
            &format!("{ca}-ca.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca} test CA"),
        ],
    );
}

/// `<name>.pem`/`<name>.key` signed by `ca`, for `san` (e.g. `IP:127.0.0.1`).
fn make_cert(dir: &Path, ca: &str, name: &str, san: &str, usage: &str) {
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

fn path(dir: &TempDir, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// A server with the certificate and key `NAME.pem` and `NAME.key` of `dir`,
/// and `extra` flags.
fn tls_server(dir: &TempDir, data_dir: &Path, name: &str, extra: &[&str]) -> ServerProc {
    let cert = path(dir, &format!("{name}.pem"));
    let key = path(dir, &format!("{name}.key"));
    let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    ServerProc::start(data_dir, &args)
}

/// Wait until `log()` contains `needle`.
fn wait_log(agent: &AgentProc, needle: &str) {
    let deadline = Instant::now() + WAIT;
    while !agent.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "agent log never said {needle:?}:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_agent_trusts_a_private_ca_and_refuses_an_unverifiable_server() {
    let dir = TempDir::new("tls");
    make_ca(dir.path(), "good");
    make_ca(dir.path(), "evil");
    make_cert(
        dir.path(),
        "good",
        "server",
        "IP:127.0.0.1,DNS:localhost",
        "serverAuth",
    );
    let data_dir = dir.join("server");
    let agent_id = unique("tls");
    let token = token_add(&data_dir, &agent_id);
    let mut server = tls_server(&dir, &data_dir, "server", &[]);
    let url = format!("wss://{}/agent", server.addr);
    let config = config_for(&["3node-none"], json!({}));

    // Another CA's trust store (and the public roots) cannot verify this server.
    let sub = TempDir::new("tls-evil");
    let evil = AgentProc::start(
        sub.path(),
        &url,
        &agent_id,
        &token,
        &config,
        &["--ca-file", &path(&dir, "evil-ca.pem")],
    );
    let sub2 = TempDir::new("tls-public");
    let public = AgentProc::start(sub2.path(), &url, &agent_id, &token, &config, &[]);
    wait_log(&evil, "UnknownIssuer");
    wait_log(&public, "UnknownIssuer");
    drop((evil, public));

    let _agent = AgentProc::start(
        dir.path(),
        &url,
        &agent_id,
        &token,
        &config,
        &["--ca-file", &path(&dir, "good-ca.pem")],
    );
    server
        .out
        .wait_for(&format!("* {agent_id} connected"), WAIT);
    assert!(
        !server.out.seen.iter().any(|l| l.contains(&token)),
        "the token never shows"
    );
}

#[test]
fn mutual_tls_maps_the_client_certificate_to_the_agent_id() {
    let dir = TempDir::new("mtls");
    make_ca(dir.path(), "good");
    make_ca(dir.path(), "evil");
    make_cert(dir.path(), "good", "server", "IP:127.0.0.1", "serverAuth");
    let data_dir = dir.join("server");
    let agent_id = unique("mtls");
    let other_id = unique("other");
    let token = token_add(&data_dir, &agent_id);
    make_cert(
        dir.path(),
        "good",
        "mine",
        &format!("DNS:{agent_id}"),
        "clientAuth",
    );
    make_cert(
        dir.path(),
        "good",
        "theirs",
        &format!("DNS:{other_id}"),
        "clientAuth",
    );
    make_cert(
        dir.path(),
        "evil",
        "forged",
        &format!("DNS:{agent_id}"),
        "clientAuth",
    );
    let mut server = tls_server(
        &dir,
        &data_dir,
        "server",
        &["--client-ca", &path(&dir, "good-ca.pem")],
    );
    let url = format!("wss://{}/agent", server.addr);
    let config = config_for(&["3node-none"], json!({}));
    let ca = path(&dir, "good-ca.pem");
    let start = |name: &str, extra: &[&str]| {
        let sub = TempDir::new(name);
        let mut args = vec!["--ca-file", ca.as_str()];
        args.extend_from_slice(extra);
        let agent = AgentProc::start(sub.path(), &url, &agent_id, &token, &config, &args);
        (sub, agent)
    };

    let (_d1, no_cert) = start("nocert", &[]);
    let (mine_pem, mine_key) = (path(&dir, "mine.pem"), path(&dir, "mine.key"));
    let (theirs_pem, theirs_key) = (path(&dir, "theirs.pem"), path(&dir, "theirs.key"));
    let (forged_pem, forged_key) = (path(&dir, "forged.pem"), path(&dir, "forged.key"));
    let (_d2, forged) = start(
        "forged",
        &["--client-cert", &forged_pem, "--client-key", &forged_key],
    );
    let (_d3, theirs) = start(
        "theirs",
        &["--client-cert", &theirs_pem, "--client-key", &theirs_key],
    );
    wait_log(&no_cert, "cannot connect");
    wait_log(&forged, "cannot connect");
    wait_log(&theirs, "HTTP 401");
    assert!(
        !server.out.seen.iter().any(|l| l.contains(" connected")),
        "{:?}",
        server.out.seen
    );
    drop((no_cert, forged, theirs));

    let (_d4, _mine) = start(
        "mine",
        &["--client-cert", &mine_pem, "--client-key", &mine_key],
    );
    server
        .out
        .wait_for(&format!("* {agent_id} connected"), WAIT);
    let audit = std::fs::read_to_string(data_dir.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("client certificate does not name agent"),
        "{audit}"
    );
}

#[test]
fn a_pinned_fingerprint_detects_a_swapped_server_certificate() {
    let dir = TempDir::new("pin");
    make_ca(dir.path(), "good");
    make_cert(dir.path(), "good", "server", "IP:127.0.0.1", "serverAuth");
    make_cert(dir.path(), "good", "swapped", "IP:127.0.0.1", "serverAuth");
    let printed = openssl(
        dir.path(),
        &[
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            "server.pem",
        ],
    );
    let pin = printed.trim().split('=').nth(1).unwrap().to_string();
    let data_dir = dir.join("server");
    let agent_id = unique("pin");
    let token = token_add(&data_dir, &agent_id);
    let config = config_for(&["3node-none"], json!({}));
    let ca = path(&dir, "good-ca.pem");

    // An agent trusting the CA and pinning the server's fingerprint.
    let pinned_agent = |server: &ServerProc, sub: &TempDir| {
        let url = format!("wss://{}/agent", server.addr);
        let args = ["--ca-file", &ca, "--server-fingerprint", &pin];
        AgentProc::start(sub.path(), &url, &agent_id, &token, &config, &args)
    };

    let mut server = tls_server(&dir, &data_dir, "server", &[]);
    let sub = TempDir::new("pin-ok");
    let agent = pinned_agent(&server, &sub);
    server
        .out
        .wait_for(&format!("* {agent_id} connected"), WAIT);
    drop(agent);
    drop(server);

    // Same CA, another key: chain verification alone would accept it.
    let swapped = tls_server(&dir, &data_dir, "swapped", &[]);
    let sub = TempDir::new("pin-bad");
    let agent = pinned_agent(&swapped, &sub);
    wait_log(&agent, "does not match the pinned");
}
