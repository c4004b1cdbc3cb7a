use super::http::{Request, percent_decode, read_request};
use super::snapshot::{NodeRow, Snapshot, classify};
use super::*;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("warden-web-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A web module whose hub answers snapshots with an empty fleet, records
/// audit entries and action lines, and answers actions with one issued id.
fn web(name: &str) -> (Web, TokenStore, Arc<Mutex<Vec<String>>>) {
    let tokens = TokenStore::new(&dir(name));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let submit: Submit = Arc::new(move |request| {
        match request {
            WebRequest::Snapshot(reply) => {
                let _ = reply.send(Snapshot::default());
            }
            WebRequest::Node { reply, .. } => {
                let _ = reply.send(json!({}));
            }
            WebRequest::Audit(entry) => lock(&s).push(entry["action"].to_string()),
            WebRequest::Action { line, by, updates } => {
                lock(&s).push(format!("{by}: {line}"));
                let _ = updates.send(super::super::control::Update::Done);
            }
        }
        true
    });
    (Web::new(tokens.clone(), submit), tokens, seen)
}

fn req(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        query: String::new(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        body: body.as_bytes().to_vec(),
    }
}

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));

fn login(web: &Web, token: &str) -> (String, String) {
    let r = web.handle(&req("POST", "/login", &[], &format!("token={token}")), PEER);
    assert_eq!(r.code, 303, "{}", r.body_text());
    let cookie = r
        .headers
        .iter()
        .find(|(k, _)| *k == "Set-Cookie")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP from a non-proxy: no Secure"
    );
    let id = cookie
        .trim_start_matches("warden_session=")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = web.handle(
        &req(
            "GET",
            "/",
            &[("cookie", &format!("warden_session={id}"))],
            "",
        ),
        PEER,
    );
    let text = page.body_text();
    let csrf = text
        .split("name=\"csrf\" content=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    (id, csrf)
}

#[test]
fn login_csrf_read_only_and_revocation() {
    let (web, tokens, seen) = web("flow");
    let admin = tokens.add_operator("ann", false).unwrap();
    let viewer = tokens.add_operator("rob", true).unwrap();
    let agent = tokens.add("host1").unwrap();
    // No session: the login page, and every API refused.
    assert!(
        web.handle(&req("GET", "/", &[], ""), PEER)
            .body_text()
            .contains("Operator token")
    );
    assert_eq!(
        web.handle(&req("GET", "/api/fleet", &[], ""), PEER).code,
        401
    );
    assert_eq!(
        web.handle(&req("POST", "/api/action", &[], "{}"), PEER)
            .code,
        401
    );
    // An agent token is no login.
    let r = web.handle(
        &req("POST", "/login", &[], &format!("token={}", agent.expose())),
        PEER,
    );
    assert_eq!(r.code, 401);
    let (id, csrf) = login(&web, admin.expose());
    let cookie = format!("warden_session={id}");
    assert_eq!(
        web.handle(&req("GET", "/api/fleet", &[("cookie", &cookie)], ""), PEER)
            .code,
        200
    );
    let body = r#"{"agent":"host1","command":"logs","target":"n0","params":{"lines":5}}"#;
    let forged = req(
        "POST",
        "/api/action",
        &[("cookie", &cookie), ("x-csrf-token", "forged")],
        body,
    );
    assert_eq!(web.handle(&forged, PEER).code, 403);
    let missing = req("POST", "/api/action", &[("cookie", &cookie)], body);
    assert_eq!(web.handle(&missing, PEER).code, 403);
    let ok = req(
        "POST",
        "/api/action",
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        body,
    );
    assert_eq!(web.handle(&ok, PEER).code, 200);
    let cross = req(
        "POST",
        "/api/action",
        &[
            ("cookie", &cookie),
            ("x-csrf-token", &csrf),
            ("origin", "https://evil.example"),
            ("host", "warden:9"),
        ],
        body,
    );
    assert_eq!(web.handle(&cross, PEER).code, 403, "another site's Origin");
    // Read-only: sees, never acts.
    let (rid, rcsrf) = login(&web, viewer.expose());
    let rcookie = format!("warden_session={rid}");
    assert_eq!(
        web.handle(&req("GET", "/api/fleet", &[("cookie", &rcookie)], ""), PEER)
            .code,
        200
    );
    let act = req(
        "POST",
        "/api/action",
        &[("cookie", &rcookie), ("x-csrf-token", &rcsrf)],
        body,
    );
    assert_eq!(web.handle(&act, PEER).code, 403);
    // A replaced token ends the session.
    tokens.add_operator("ann", false).unwrap();
    assert_eq!(
        web.handle(&req("GET", "/api/fleet", &[("cookie", &cookie)], ""), PEER)
            .code,
        401
    );
    let log = lock(&seen).join("\n");
    assert!(log.contains("ann: send host1 logs n0 lines=5"), "{log}");
    assert_eq!(
        log.matches("ann: send").count(),
        1,
        "refused actions never reach the hub: {log}"
    );
    assert!(
        log.contains("dashboard_login_failed") && log.contains("\"dashboard_login\""),
        "{log}"
    );
    assert_eq!(
        log.matches("\"dashboard_refused\"").count(),
        1,
        "the read-only attempt is audited: {log}"
    );
}

#[test]
fn failed_logins_are_rate_limited_per_address() {
    let (web, tokens, _) = web("limit");
    let good = tokens.add_operator("ann", false).unwrap();
    for _ in 0..LOGIN_FAILURES {
        assert_eq!(
            web.handle(&req("POST", "/login", &[], "token=nope"), PEER)
                .code,
            401
        );
    }
    let r = web.handle(
        &req("POST", "/login", &[], &format!("token={}", good.expose())),
        PEER,
    );
    assert_eq!(r.code, 429, "even the right token waits out the window");
    let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10));
    let r = web.handle(
        &req("POST", "/login", &[], &format!("token={}", good.expose())),
        other,
    );
    assert_eq!(r.code, 303, "another address is not limited");
}

#[test]
fn behind_a_proxy_on_this_host() {
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let r = req(
        "GET",
        "/",
        &[
            ("x-forwarded-for", "1.2.3.4, 5.6.7.8"),
            ("x-forwarded-proto", "https"),
        ],
        "",
    );
    assert_eq!(
        Web::client_addr(&r, local),
        "5.6.7.8".parse::<IpAddr>().unwrap()
    );
    assert!(Web::over_tls(&r, local));
    assert_eq!(
        Web::client_addr(&r, PEER),
        PEER,
        "only a local proxy is believed"
    );
    assert!(!Web::over_tls(&r, PEER));
    let (web, tokens, _) = web("proxy");
    let t = tokens.add_operator("ann", false).unwrap();
    let r = web.handle(
        &req(
            "POST",
            "/login",
            &[("x-forwarded-proto", "https")],
            &format!("token={}", t.expose()),
        ),
        local,
    );
    let cookie = &r
        .headers
        .iter()
        .find(|(k, _)| *k == "Set-Cookie")
        .unwrap()
        .1;
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert_eq!(
        r.headers.iter().find(|(k, _)| *k == "Location").unwrap().1,
        "./"
    );
}

#[test]
fn sessions_are_bounded() {
    let (web, tokens, _) = web("bound");
    let t = tokens.add_operator("ann", false).unwrap();
    let (first, _) = login(&web, t.expose());
    for _ in 0..MAX_SESSIONS {
        login(&web, t.expose());
    }
    assert_eq!(lock(&web.sessions).len(), MAX_SESSIONS);
    let cookie = format!("warden_session={first}");
    assert_eq!(
        web.handle(&req("GET", "/api/fleet", &[("cookie", &cookie)], ""), PEER)
            .code,
        401
    );
}

#[test]
fn action_lines_are_quoted_and_checked() {
    let line = |v: Value| action_line(&v);
    assert_eq!(
        line(json!({"agent":"h1","command":"restore_keys","target":"n0","params":{"backup_file":"a'b; rm -rf /"}})).unwrap(),
        "send h1 restore_keys n0 backup_file='a'\\''b; rm -rf /'"
    );
    assert_eq!(
        line(json!({"agent":"h1","command":"check_keys","target":"n0","params":{"rotate_to_check":true,"public_keys.gran":"0x01"}})).unwrap(),
        "send h1 check_keys n0 public_keys.gran='0x01' rotate_to_check=true"
    );
    assert_eq!(
        line(json!({"agent":"h1","command":"exec","target":"n0","params":{"command":"ls -la /"}}))
            .unwrap(),
        "send h1 exec n0 ls -la /"
    );
    assert!(line(json!({"agent":"h1","command":"quit","target":"n0"})).is_err());
    assert!(line(json!({"agent":"h1 x","command":"stop","target":"n0"})).is_err());
    assert!(line(json!({"agent":"h1","command":"stop","target":"n0; quit"})).is_err());
    assert!(line(json!({"agent":"h1","command":"stop","target":"n0","params":{"a b":1}})).is_err());
    assert!(
        line(json!({"agent":"h1","command":"exec","target":"n0","params":{"command":"a\nquit"}}))
            .is_err()
    );
}

#[test]
fn problems_in_words_worst_first() {
    let mut row = NodeRow {
        state: "running".into(),
        peers: Some(5),
        lag: Some(0),
        ..NodeRow::default()
    };
    classify(&mut row, true, 0);
    assert_eq!((row.severity, row.problem.as_str()), (0, "ok"));
    row.lag = Some(50);
    classify(&mut row, true, 0);
    assert_eq!((row.severity, row.problem.as_str()), (1, "BEHIND"));
    row.state = "exited".into();
    classify(&mut row, true, 0);
    assert_eq!((row.severity, row.problem.as_str()), (2, "DOWN (exited)"));
    classify(&mut row, false, 0);
    assert_eq!(row.problem, "AGENT DISCONNECTED");
}

#[test]
fn requests_parse_bounded() {
    let r = read_request(&b"POST /login?x=1 HTTP/1.1\r\nCookie: a=1; warden_session=abc\r\nContent-Length: 7\r\n\r\ntoken=z"[..]).unwrap();
    assert_eq!((r.path.as_str(), r.query.as_str()), ("/login", "x=1"));
    assert_eq!(r.cookie("warden_session"), Some("abc"));
    assert_eq!(
        Request::field(&String::from_utf8_lossy(&r.body), "token").as_deref(),
        Some("z")
    );
    let big = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", 1 << 20);
    assert_eq!(read_request(big.as_bytes()), Err(413));
    let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(read_request(chunked.as_bytes()), Err(411));
    let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    assert_eq!(read_request(long.as_bytes()), Err(431));
    assert_eq!(percent_decode("a+b%20c%zz%e2%9c%93%"), "a b c%zz✓%");
}
