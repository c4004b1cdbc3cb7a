//! wss:// with a private CA, made here with the openssl CLI.
use crate::support::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
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
}

/// A CA named `name` and a server certificate it signs for 127.0.0.1.
fn make_ca_and_cert(dir: &Path, name: &str) {
    let ca_key = format!("{name}-ca.key");
    let ca_pem = format!("{name}-ca.pem");
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
            &ca_key,
            "-out",
            &ca_pem,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
        ],
    );
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n").unwrap();
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
            &format!("{name}-server.key"),
            "-out",
            &format!("{name}-server.csr"),
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}-server.csr"),
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &format!("{name}-server.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

#[test]
fn an_agent_trusts_a_private_ca_and_refuses_an_unverifiable_server() {
    let dir = TempDir::new("tls");
    make_ca_and_cert(dir.path(), "good");
    make_ca_and_cert(dir.path(), "evil");
    let data_dir = dir.join("server");
    let agent_id = unique("tls");
    let token = token_add(&data_dir, &agent_id);
    let cert = dir.join("good-server.pem").display().to_string();
    let key = dir.join("good-server.key").display().to_string();
    let mut server = ServerProc::start(&data_dir, &["--tls-cert", &cert, "--tls-key", &key]);
    let url = format!("wss://{}/agent", server.addr);
    let config = config_for(&["3node-none"], json!({}));

    // Another CA's trust store (and the public roots) cannot verify this server.
    let wrong_ca = dir.join("evil-ca.pem").display().to_string();
    let sub = TempDir::new("tls-evil");
    let evil = AgentProc::start(
        sub.path(),
        &url,
        &agent_id,
        &token,
        &config,
        &["--ca-file", &wrong_ca],
    );
    let sub2 = TempDir::new("tls-public");
    let public = AgentProc::start(sub2.path(), &url, &agent_id, &token, &config, &[]);
    let deadline = std::time::Instant::now() + WAIT;
    while !(evil.log().contains("UnknownIssuer") && public.log().contains("UnknownIssuer")) {
        assert!(
            std::time::Instant::now() < deadline,
            "agents did not report the bad certificate:\n{}\n{}",
            evil.log(),
            public.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop((evil, public));

    let good_ca = dir.join("good-ca.pem").display().to_string();
    let _agent = AgentProc::start(
        dir.path(),
        &url,
        &agent_id,
        &token,
        &config,
        &["--ca-file", &good_ca],
    );
    server
        .out
        .wait_for(&format!("* {agent_id} connected"), WAIT);
    assert!(
        !server.out.seen.iter().any(|l| l.contains(&token)),
        "the token never shows"
    );
}
