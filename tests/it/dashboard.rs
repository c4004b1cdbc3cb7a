//! The web dashboard in a real headless Chromium, against a live server
//! with an agent and a test-node container: log in and see the fleet, stop
//! the container and watch its row turn red, start it again, read logs,
//! rotate keys and see the key history grow. Then a read-only operator in
//! the same browser: sees the fleet, has no action controls, and an action
//! forced from the page (its own cookie and CSRF token) is refused, audited
//! and not run. Over plain HTTP: no session, or a forged CSRF token, is
//! refused. Screenshots go to docs/ (the README links them).
use super::dashboard_cdp::Browser;
use super::support::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

const SLOW: Duration = Duration::from_secs(60);

fn operator_token(data_dir: &Path, name: &str, read_only: bool) -> String {
    let mut cmd = warden();
    cmd.args(["token", "add", "--operator", name, "--data-dir"])
        .arg(data_dir);
    if read_only {
        cmd.arg("--read-only");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// One HTTP/1.1 request; the status and the whole answer.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, out)
}

/// The `live` WebSocket, opened with a session cookie.
fn live_socket(addr: &str, cookie: &str) -> ClientWs {
    use tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/live").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Cookie", cookie.parse().unwrap());
    let (ws, _) = tungstenite::connect(request).expect("the live upgrade");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(SLOW)).unwrap();
    }
    ws
}

/// Log in over HTTP: the session cookie and the page's CSRF token.
fn http_login(addr: &str, token: &str) -> (String, String) {
    let (code, out) = http(addr, "POST", "/login", &[], &format!("token={token}"));
    assert_eq!(code, 303, "{out}");
    let cookie = out
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (_, page) = http(addr, "GET", "/", &[("Cookie", &cookie)], "");
    let csrf = page
        .split("name=\"csrf\" content=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    (cookie, csrf)
}

fn row_class(b: &mut Browser, container: &str) -> String {
    b.eval(&format!(
        "(document.querySelector('#fleet tr[data-container=\"{container}\"]') || {{}}).className || ''"
    ))
    .as_str()
    .unwrap_or("")
    .to_string()
}

#[test]
fn the_fleet_live_in_a_real_browser() {
    let n0 = Node::start("dashboard-n0");
    let mut f = Fleet::start(
        &[&n0],
        lifecycle_policy(),
        &["--admin-listen", "127.0.0.1:0"],
    );
    let admin = f
        .server
        .out
        .seen
        .iter()
        .find_map(|l| l.strip_prefix("admin: http://"))
        .expect("the server printed its admin address")
        .to_string();
    let data_dir = f.server.data_dir.clone();
    let ann = operator_token(&data_dir, "ann", false);
    let rob = operator_token(&data_dir, "rob", true);
    let agent = f.agent_id.clone();
    let node = n0.name.clone();
    let base = format!("http://{admin}/");

    let profile = TempDir::new("dashboard-chromium");
    let mut b = Browser::launch(1400, 900, profile.path());
    b.navigate(&base);
    b.log_in(&ann);
    // Logged in: the live stream brings the node's row.
    b.wait_for(
        "document.querySelector('#conn') && document.querySelector('#conn').textContent === 'live'",
        SLOW,
        "the live stream",
    );
    b.wait_for(
        &format!("document.querySelector('#fleet tr[data-container=\"{node}\"] td:nth-child(4)').textContent === 'running'"),
        SLOW,
        "the running node's row",
    );
    assert!(
        !row_class(&mut b, &node).contains("sev2"),
        "a running node is not red"
    );
    let who = b.eval("document.querySelector('.who').textContent");
    assert!(who.as_str().unwrap().contains("ann"), "{who}");
    b.screenshot(&screenshot_path(&f.dir, "dashboard-fleet.png"));

    // Stop the container behind warden's back: the row turns red, in words.
    let out = docker(&["stop", "-t", "1", &node]);
    assert!(out.status.success());
    b.wait_for(
        &format!("(document.querySelector('#fleet tr[data-container=\"{node}\"]') || {{}}).className === 'sev2'"),
        SLOW,
        "the stopped node's row to turn red",
    );
    let problem = b.eval(&format!(
        "document.querySelector('#fleet tr[data-container=\"{node}\"] td').textContent"
    ));
    assert!(problem.as_str().unwrap().starts_with("DOWN"), "{problem}");
    let first = b.eval("document.querySelector('#fleet tbody tr').dataset.container");
    assert_eq!(first, json!(node), "problems sort to the top");
    // A frame numbered past the next is a gap: not applied (the page asks
    // for a snapshot instead).
    let gap = b.eval(
        "(() => { const s = live.seq; return apply({type: 'delta', seq: s + 2, ts: 0, nodes: []}) === false && live.seq === s; })()",
    );
    assert_eq!(gap, json!(true), "a gap is seen, not applied");
    let out = docker(&["start", &node]);
    assert!(out.status.success());
    b.wait_for(
        &format!("(document.querySelector('#fleet tr[data-container=\"{node}\"]') || {{}}).className !== 'sev2'"),
        SLOW,
        "the restarted node's row to leave red",
    );

    // The node's page: logs.
    b.eval(&format!("location.hash = '#node/{agent}/{node}'; true"));
    b.wait_for(
        "!document.querySelector('#node-view').hidden",
        SLOW,
        "the node page",
    );
    b.eval("document.querySelector('#load-logs').click(); true");
    b.wait_for(
        "document.querySelector('#logs').textContent.length > 0",
        SLOW,
        "log lines",
    );

    // rotate_keys from the form, confirmed: the key history grows.
    let keys_before = b
        .eval("document.querySelectorAll('#keys tbody tr td:nth-child(3)').length")
        .as_u64()
        .unwrap();
    b.eval("const s = document.querySelector('#command'); s.value = 'rotate_keys'; s.dispatchEvent(new Event('change')); document.querySelector('#action button[type=submit]').click(); true");
    let text = b.wait_for("document.querySelector('#confirm').open && document.querySelector('#confirm-text').textContent", SLOW, "the confirmation");
    assert!(
        text.as_str().unwrap().contains(&node) && text.as_str().unwrap().contains(&agent),
        "{text}"
    );
    b.eval("document.querySelector('#confirm-ok').click(); true");
    b.wait_for(
        "document.querySelector('#action-status').textContent.includes('completed')",
        SLOW,
        "rotate_keys to complete",
    );
    b.wait_for(
        &format!(
            "document.querySelectorAll('#keys tbody tr td:nth-child(3)').length > {keys_before}"
        ),
        SLOW,
        "the key history to grow",
    );
    b.screenshot(&screenshot_path(&f.dir, "dashboard-node.png"));

    // A read-only operator, in the same browser: log out, log in as rob.
    b.eval("document.querySelector('#logout').click(); true");
    b.log_in(&rob);
    b.wait_for(
        &format!("document.querySelector('#fleet tr[data-container=\"{node}\"] td:nth-child(4)').textContent === 'running'"),
        SLOW,
        "the fleet, seen read-only",
    );
    let who = b.eval("document.querySelector('.who').textContent");
    assert!(who.as_str().unwrap().contains("rob (read-only)"), "{who}");
    b.eval(&format!("location.hash = '#node/{agent}/{node}'; true"));
    b.wait_for(
        "!document.querySelector('#node-view').hidden",
        SLOW,
        "the node page, read-only",
    );
    let controls = b.eval(
        "[document.querySelector('#action-box').hidden, document.querySelector('#load-logs').hidden]",
    );
    assert_eq!(controls, json!([true, true]), "no action controls");
    // Forced from the page anyway, with its own cookie and CSRF token.
    let forced = b.eval(&format!(
        "fetch('api/action', {{method: 'POST', credentials: 'same-origin', headers: {{'Content-Type': 'application/json', 'X-CSRF-Token': document.querySelector('meta[name=csrf]').content}}, body: JSON.stringify({})}}).then(async (r) => [r.status, await r.text()])",
        json!({"agent": agent, "command": "stop", "target": node})
    ));
    assert_eq!(forced[0], 403, "{forced}");
    assert!(
        forced[1].as_str().unwrap().contains("read-only"),
        "{forced}"
    );
    drop(b);

    // Refusals over plain HTTP.
    let body = json!({"agent": agent, "command": "stop", "target": node}).to_string();
    let (code, _) = http(&admin, "POST", "/api/action", &[], &body);
    assert_eq!(code, 401, "no session");
    let (code, _) = http(&admin, "GET", "/api/fleet", &[], "");
    assert_eq!(code, 401, "no session");
    let (cookie, csrf) = http_login(&admin, &ann);
    let (code, _) = http(
        &admin,
        "POST",
        "/api/action",
        &[("Cookie", &cookie), ("X-CSRF-Token", "0000")],
        &body,
    );
    assert_eq!(code, 403, "forged CSRF token");
    let (rcookie, rcsrf) = http_login(&admin, &rob);
    let (code, _) = http(&admin, "GET", "/api/fleet", &[("Cookie", &rcookie)], "");
    assert_eq!(code, 200, "read-only sees");
    let (code, out) = http(
        &admin,
        "POST",
        "/api/action",
        &[("Cookie", &rcookie), ("X-CSRF-Token", &rcsrf)],
        &body,
    );
    assert_eq!(code, 403, "read-only cannot act: {out}");
    assert_eq!(n0.state(), "running", "none of the refused stops ran");
    let commands = std::fs::read_to_string(data_dir.join("commands.jsonl")).unwrap_or_default();
    assert!(
        !commands.contains("\"stop\""),
        "no stop was issued: {commands}"
    );
    let _ = csrf;
    // The live stream itself: a snapshot, numbered frames, and `resync`
    // (what a page that saw a gap sends) brings a snapshot again.
    let mut ws = live_socket(&admin, &cookie);
    let first = recv_skip_pings(&mut ws);
    assert_eq!(first["type"], "snapshot", "{first}");
    assert_eq!(first["seq"], 1);
    let nodes = first["fleet"]["nodes"].as_array().unwrap();
    assert!(
        nodes.iter().any(|n| n["container"] == node.as_str()),
        "{first}"
    );
    ws.send(tungstenite::Message::text("resync")).unwrap();
    let mut seq = 1;
    let again = loop {
        let f = recv_skip_pings(&mut ws);
        seq += 1;
        assert_eq!(f["seq"], seq, "frames are numbered one by one: {f}");
        if f["type"] == "snapshot" {
            break f;
        }
        assert_eq!(f["type"], "delta", "{f}");
    };
    assert!(again["fleet"]["agents"].as_array().is_some(), "{again}");
    drop(ws);
    // Everything a person did is in the audit log, with the name.
    let audit = std::fs::read_to_string(data_dir.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"by\":\"ann\"") && audit.contains("rotate_keys"),
        "{audit}"
    );
    assert!(
        audit.contains("dashboard_login") && audit.contains("\"by\":\"rob\""),
        "{audit}"
    );
    let refusals = audit
        .lines()
        .filter(|l| l.contains("dashboard_refused") && l.contains("\"by\":\"rob\""))
        .count();
    assert_eq!(
        refusals, 2,
        "both of rob's stops are audited as refused: {audit}"
    );
    f.server.kill();
}

/// Where a screenshot goes: docs/ (the ones the README links) only when
/// `WARDEN_SCREENSHOTS=docs` asks for it, so a test run leaves the checkout
/// as it was; otherwise the test's own temp dir.
fn screenshot_path(dir: &TempDir, name: &str) -> std::path::PathBuf {
    if std::env::var("WARDEN_SCREENSHOTS").as_deref() == Ok("docs") {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(name)
    } else {
        dir.join(name)
    }
}
