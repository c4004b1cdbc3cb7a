//! Delivery against local HTTP receivers (std TcpListener, port 0): exactly
//! once, repeats, resolve, a receiver down then back, every sink kind's
//! request, and no secret in any file written or report made.
use super::config::AlertsConfig;
use super::delivery::{Backoff, Delivery, DeliveryObserver, DeliveryReport, Outcome};
use super::engine::Engine;
use super::notice::NoticeKind;
use super::tests_engine::temp_dir;
use super::tests_rules::{NOW, agent, fleet, node};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

/// Requests received (path, JSON body), and a signal for each.
type Received = Arc<(Mutex<Vec<(String, Value)>>, Condvar)>;

/// A local HTTP receiver: records (path, JSON body) of each request and
/// answers with `status`.
pub struct Receiver {
    pub port: u16,
    pub status: Arc<AtomicU16>,
    got: Received,
}

fn handle(stream: TcpStream, status: &AtomicU16) -> Option<(String, Value)> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let code = status.load(Ordering::SeqCst);
    let mut w = stream;
    let _ = write!(
        w,
        "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
    Some((path, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

impl Receiver {
    pub fn start() -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn on(listener: TcpListener) -> Receiver {
        let port = listener.local_addr().unwrap().port();
        let status = Arc::new(AtomicU16::new(200));
        let got: Received = Arc::default();
        let (s, g) = (status.clone(), got.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let code = s.load(Ordering::SeqCst);
                if code == 0 {
                    return; // told to go away: the listener closes
                }
                if let Some(req) = handle(stream, &s)
                    && (200..300).contains(&code)
                {
                    g.0.lock().unwrap().push(req);
                    g.1.notify_all();
                }
            }
        });
        Receiver { port, status, got }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Wait until `n` requests were accepted; return them all.
    pub fn wait_for(&self, n: usize) -> Vec<(String, Value)> {
        let deadline = Instant::now() + DEADLINE;
        let mut got = self.got.0.lock().unwrap();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "receiver got {} of {n} requests: {got:?}",
                got.len()
            );
            got = self.got.1.wait_timeout(got, left).unwrap().0;
        }
        got.clone()
    }

    pub fn count(&self) -> usize {
        self.got.0.lock().unwrap().len()
    }
}

#[derive(Default)]
struct Reports(Mutex<Vec<DeliveryReport>>, Condvar);

impl DeliveryObserver for Arc<Reports> {
    fn report(&self, report: DeliveryReport) {
        self.0.lock().unwrap().push(report);
        self.1.notify_all();
    }
}

impl Reports {
    fn wait(&self, what: &str, pred: impl Fn(&[DeliveryReport]) -> bool) -> Vec<DeliveryReport> {
        let deadline = Instant::now() + DEADLINE;
        let mut got = self.0.lock().unwrap();
        while !pred(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}: {got:?}");
            got = self.1.wait_timeout(got, left).unwrap().0;
        }
        got.clone()
    }
    fn delivered(&self, n: usize) -> Vec<DeliveryReport> {
        self.wait(&format!("{n} deliveries"), |r| {
            r.iter()
                .filter(|r| matches!(r.outcome, Outcome::Delivered { .. }))
                .count()
                >= n
        })
        .into_iter()
        .filter(|r| matches!(r.outcome, Outcome::Delivered { .. }))
        .collect()
    }
}

fn fast() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(5),
    }
}

fn down_view(now: i64) -> super::view::FleetView {
    let mut c = node(1, 1, 9, false);
    c.state = "exited".into();
    let mut v = fleet(vec![("h1", agent(vec![("3node0", c)]))]);
    v.now_ms = now;
    v.agents.get_mut("h1").unwrap().last_seen_ms = Some(now);
    v
}

fn up_view(now: i64) -> super::view::FleetView {
    let best = 2 + (now - NOW) as u64 / 1000;
    let mut v = fleet(vec![(
        "h1",
        agent(vec![("3node0", node(best, best - 1, 9, false))]),
    )]);
    v.now_ms = now;
    v.agents.get_mut("h1").unwrap().last_seen_ms = Some(now);
    v
}

/// The hub's loop in miniature: evaluate, enqueue, save.
fn step(engine: &mut Engine, delivery: &Delivery, view: &super::view::FleetView) -> usize {
    let notices = engine.evaluate(view);
    for n in &notices {
        delivery.enqueue(n, view.now_ms);
    }
    engine.save().unwrap();
    notices.len()
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn exactly_once_then_repeat_then_resolved_to_a_webhook() {
    let rx = Receiver::start();
    let dir = temp_dir("delivery-cycle");
    let config = AlertsConfig::from_json(
        json!({"repeat_interval_s": 600, "sinks": [{"kind": "webhook", "name": "am", "url": rx.url("/alerts")}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let reports = Arc::new(Reports::default());
    let delivery = Delivery::start(
        &dir,
        &config.sinks,
        "http://127.0.0.1:9100",
        Arc::new(reports.clone()),
        fast(),
    )
    .unwrap();
    let mut engine = Engine::open(&dir, config).unwrap();
    const S: i64 = 1000;
    assert_eq!(
        step(&mut engine, &delivery, &down_view(NOW)),
        0,
        "ContainerDown holds 60 s first"
    );
    assert_eq!(step(&mut engine, &delivery, &down_view(NOW + 60 * S)), 1);
    let d = reports.delivered(1);
    engine.delivered(&d[0].fingerprint, &d[0].sink, true, NOW + 61 * S);
    for t in [100, 300, 660] {
        assert_eq!(
            step(&mut engine, &delivery, &down_view(NOW + t * S)),
            0,
            "at {t} s"
        );
    }
    assert_eq!(
        step(&mut engine, &delivery, &down_view(NOW + 661 * S)),
        1,
        "repeat 600 s after acceptance"
    );
    let d = reports.delivered(2);
    engine.delivered(&d[1].fingerprint, &d[1].sink, true, NOW + 662 * S);
    assert_eq!(step(&mut engine, &delivery, &up_view(NOW + 700 * S)), 1);
    reports.delivered(3);
    assert_eq!(step(&mut engine, &delivery, &up_view(NOW + 5000 * S)), 0);
    let got = rx.wait_for(3);
    let statuses: Vec<(&str, &str)> = got
        .iter()
        .map(|(p, b)| (p.as_str(), b["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("/alerts", "firing"),
            ("/alerts", "firing"),
            ("/alerts", "resolved")
        ]
    );
    let first = &got[0].1;
    assert_eq!(first["version"], "4");
    assert_eq!(first["receiver"], "warden");
    assert_eq!(first["groupKey"], first["alerts"][0]["fingerprint"]);
    assert_eq!(first["externalURL"], "http://127.0.0.1:9100");
    assert_eq!(first["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        first["alerts"][0]["labels"],
        json!({"alertname": "ContainerDown", "severity": "critical", "agent": "h1", "container": "3node0"})
    );
    assert!(
        first["alerts"][0]["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("send h1 start 3node0")
    );
    assert_ne!(got[2].1["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    delivery.shutdown();
    assert_eq!(rx.count(), 3, "nothing more arrived");
    assert!(
        files_under(&dir.join("alerts/queue/am")).is_empty(),
        "the queue is empty once delivered"
    );
}

#[test]
fn a_receiver_down_then_back_gets_every_notice_in_order() {
    let rx = Receiver::start();
    rx.status.store(503, Ordering::SeqCst);
    let dir = temp_dir("delivery-down");
    let config = AlertsConfig::from_json(
        json!({"sinks": [{"kind": "webhook", "url": rx.url("/hook")}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let reports = Arc::new(Reports::default());
    let delivery =
        Delivery::start(&dir, &config.sinks, "", Arc::new(reports.clone()), fast()).unwrap();
    let mut engine = Engine::open(&dir, config.clone()).unwrap();
    step(&mut engine, &delivery, &down_view(NOW));
    step(&mut engine, &delivery, &down_view(NOW + 60_000));
    step(&mut engine, &delivery, &up_view(NOW + 120_000));
    // Failing: retried with backoff, each failure reported, nothing lost.
    let r = reports.wait("three failed attempts", |r| {
        r.iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
            .count()
            >= 3
    });
    let Outcome::Failed { error, .. } = &r[0].outcome else {
        panic!()
    };
    assert!(error.contains("HTTP 503"), "{error}");
    // The server stops while the sink is down: the queue is on disk.
    delivery.shutdown();
    assert_eq!(files_under(&dir.join("alerts/queue/sink0")).len(), 2);
    rx.status.store(200, Ordering::SeqCst);
    let delivery =
        Delivery::start(&dir, &config.sinks, "", Arc::new(reports.clone()), fast()).unwrap();
    let got = rx.wait_for(2);
    let statuses: Vec<&str> = got
        .iter()
        .map(|(_, b)| b["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["firing", "resolved"]);
    reports.delivered(2);
    delivery.shutdown();
    assert_eq!(rx.count(), 2);
}

#[test]
fn a_refused_connection_is_retried_until_the_receiver_listens() {
    // Find a free port, and leave nothing listening on it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = temp_dir("delivery-refused");
    let config = AlertsConfig::from_json(
        json!({"sinks": [{"kind": "webhook", "url": format!("http://127.0.0.1:{port}/x")}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let reports = Arc::new(Reports::default());
    let delivery =
        Delivery::start(&dir, &config.sinks, "", Arc::new(reports.clone()), fast()).unwrap();
    let mut engine = Engine::open(&dir, config).unwrap();
    step(&mut engine, &delivery, &down_view(NOW));
    step(&mut engine, &delivery, &down_view(NOW + 60_000));
    reports.wait("two failures", |r| {
        r.iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
            .count()
            >= 2
    });
    let rx = Receiver::on(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let got = rx.wait_for(1);
    assert_eq!(got[0].1["status"], "firing");
    let d = reports.delivered(1);
    assert_eq!(
        (d[0].kind, &d[0].alertname),
        (NoticeKind::Firing, &"ContainerDown".to_string())
    );
    delivery.shutdown();
}

#[test]
fn every_chat_kind_posts_its_format_and_no_secret_is_written_or_reported() {
    let rx = Receiver::start();
    let dir = temp_dir("delivery-kinds");
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("slack.url"), rx.url("/services/SLACKSECRET")).unwrap();
    std::fs::write(
        secrets.join("discord.url"),
        rx.url("/api/webhooks/DISCORDSECRET"),
    )
    .unwrap();
    std::fs::write(secrets.join("tg.token"), "42:TGSECRET\n").unwrap();
    // A dead Telegram too: its failure reports must not show the token.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = AlertsConfig::from_json(
        json!({"sinks": [
            {"kind": "slack", "url_file": secrets.join("slack.url")},
            {"kind": "discord", "url_file": secrets.join("discord.url")},
            {"kind": "telegram", "name": "phone", "bot_token_file": secrets.join("tg.token"), "chat_id": "-100123", "api_base": rx.url("")},
            {"kind": "telegram", "name": "dead", "bot_token_file": secrets.join("tg.token"), "chat_id": "1", "api_base": format!("http://127.0.0.1:{dead}")}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let data = dir.join("data");
    let reports = Arc::new(Reports::default());
    let delivery =
        Delivery::start(&data, &config.sinks, "", Arc::new(reports.clone()), fast()).unwrap();
    let mut engine = Engine::open(&data, config).unwrap();
    step(&mut engine, &delivery, &down_view(NOW));
    step(&mut engine, &delivery, &down_view(NOW + 60_000));
    let mut got = rx.wait_for(3);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got[0].0, "/api/webhooks/DISCORDSECRET");
    assert_eq!(got[0].1["embeds"][0]["title"], "ContainerDown");
    assert_eq!(got[1].0, "/bot42:TGSECRET/sendMessage");
    assert_eq!(got[1].1["chat_id"], "-100123");
    assert!(
        got[1].1["text"]
            .as_str()
            .unwrap()
            .contains("send h1 start 3node0")
    );
    assert_eq!(got[2].0, "/services/SLACKSECRET");
    assert!(got[2].1["text"].as_str().unwrap().starts_with("firing "));
    let all = reports.wait("the dead sink's failures", |r| {
        r.iter().filter(|r| r.sink == "dead").count() >= 2
    });
    delivery.shutdown();
    for r in &all {
        let shown = format!("{r:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
    assert!(
        all.iter()
            .any(|r| r.sink == "phone" && matches!(r.outcome, Outcome::Delivered { .. }))
    );
    for file in files_under(&data) {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("SECRET"),
            "{} holds a secret",
            file.display()
        );
    }
    assert!(
        files_under(&data)
            .iter()
            .any(|f| f.starts_with(data.join("alerts/queue/dead"))),
        "the dead sink keeps its notice"
    );
}

#[test]
fn backoff_doubles_up_to_its_bound() {
    let b = Backoff {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(300),
        request_timeout: Duration::from_secs(1),
    };
    let got: Vec<u64> = [1, 2, 3, 8, 9, 100]
        .iter()
        .map(|a| b.delay(*a).as_secs())
        .collect();
    assert_eq!(got, vec![2, 4, 8, 256, 300, 300]);
}

#[test]
fn the_alerts_facade_queues_saves_and_settles() {
    let rx = Receiver::start();
    let dir = temp_dir("delivery-facade");
    let config = AlertsConfig::from_json(
        json!({"repeat_interval_s": 60, "sinks": [{"kind": "webhook", "name": "am", "url": rx.url("/")}]}).to_string().as_bytes(),
    )
    .unwrap();
    let reports = Arc::new(Reports::default());
    let mut alerts = super::Alerts::start(&dir, config, "", Arc::new(reports.clone())).unwrap();
    assert!(alerts.step(&down_view(NOW)).unwrap().is_empty());
    assert_eq!(alerts.step(&down_view(NOW + 60_000)).unwrap().len(), 1);
    let d = reports.delivered(1);
    assert!(
        dir.join("alerts/state.json").exists(),
        "saved after queueing"
    );
    assert_eq!(d[0].audit_entry()["outcome"], "delivered");
    // Until the report is settled, no repeat however late it is.
    assert!(alerts.step(&down_view(NOW + 600_000)).unwrap().is_empty());
    alerts.on_report(&DeliveryReport {
        at_ms: NOW + 600_000,
        ..d[0].clone()
    });
    assert!(alerts.step(&down_view(NOW + 659_000)).unwrap().is_empty());
    assert_eq!(
        alerts.step(&down_view(NOW + 660_000)).unwrap()[0].kind,
        NoticeKind::Repeat
    );
    rx.wait_for(2);
    alerts.delivery.shutdown();
}
