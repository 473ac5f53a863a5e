//! The email sink against a real SMTP server in its own process: `tests/smtp_server.py`
//! (aiosmtpd, installed by scripts/install-deps) with STARTTLS or implicit TLS from its own CA
//! (trusted through `tls_ca_file`), AUTH, and replies of 4xx/5xx on purpose. Each delivered
//! message is parsed as MIME (`mailparse`). The sink is driven through the `Sink` trait, and
//! once end to end through the compiled binary and tansu (one broker for the test; records
//! produced one per batch, TESTING.md quirk 2), plus `courier test-destination`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use courier::config::{DeliveryConfig, SecurityConfig};
use courier::event::Event;
use courier::sinks::email::{EmailConfig, EmailSink};
use courier::sinks::{ErrorKind, Outcome, RejectScope, Sink};
use serde_json::{json, Value};

const USER: &str = "courier-mailer";
const PASSWORD: &str = "smtp-pass-7f3a9c1e";
const TOPIC: &str = "event-logs";
/// Emails are timed where the server receives them, an interval after the start of the
/// previous conversation: the previous conversation's own duration (TLS, AUTH) is allowed for.
const SLACK: f64 = 1.0;

/// `tests/smtp_server.py` in its own process, killed on drop.
struct SmtpServer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl SmtpServer {
    /// `tls`: `starttls`, `tls` or `none`; `auth`: require AUTH with [`USER`]/[`PASSWORD`].
    fn start(tls: &str, auth: bool) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_server.py"))
            .arg("--dir")
            .arg(dir.path())
            .args(["--tls", tls]);
        if auth {
            cmd.args(["--auth", &format!("{USER}:{PASSWORD}")]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs tests/smtp_server.py (scripts/install-deps installs aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the SMTP server did not start: {line:?}"));
        SmtpServer { child, dir, port }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Tells the server how to misbehave (see the script's documentation).
    fn control(&self, control: Value) {
        let tmp = self.dir.path().join("control.json.new");
        std::fs::write(&tmp, control.to_string()).unwrap();
        std::fs::rename(tmp, self.dir.path().join("control.json")).unwrap();
    }

    /// DATA commands answered, accepted or not.
    fn attempts(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("attempts"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// The accepted messages, in order: (raw message, envelope).
    fn messages(&self) -> Vec<(Vec<u8>, Value)> {
        messages_in(self.dir.path())
    }
}

fn messages_in(dir: &Path) -> Vec<(Vec<u8>, Value)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| {
            let envelope = std::fs::read(p.with_extension("json")).unwrap();
            (
                std::fs::read(&p).unwrap(),
                serde_json::from_slice(&envelope).unwrap(),
            )
        })
        .collect()
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed digest: subject, text part, HTML part.
struct Mail {
    subject: String,
    text: String,
    html: String,
}

fn parse(raw: &[u8]) -> Mail {
    let mail = mailparse::parse_mail(raw).expect("a MIME message");
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let mut text = None;
    let mut html = None;
    for part in &mail.subparts {
        match part.ctype.mimetype.as_str() {
            "text/plain" => text = Some(part.get_body().unwrap()),
            "text/html" => html = Some(part.get_body().unwrap()),
            other => panic!("unexpected part {other}"),
        }
    }
    Mail {
        subject: mail
            .headers
            .iter()
            .find(|h| h.get_key() == "Subject")
            .unwrap()
            .get_value(),
        text: text.expect("a text/plain part"),
        html: html.expect("a text/html part"),
    }
}

fn config(server: &SmtpServer, tls: &str, extra: Value) -> EmailConfig {
    let mut table = json!({
        "host": "127.0.0.1", "port": server.port, "tls_mode": tls,
        "from": "Courier Alerts <alerts@example.com>",
        "to": ["ops@example.com", "Oncall <oncall@example.com>"],
        "min_interval": "0s",
    });
    if tls != "none" {
        table["tls_ca_file"] = json!(server.ca_file());
    }
    for (k, v) in extra.as_object().unwrap() {
        table[k] = v.clone();
    }
    let config: EmailConfig = serde_json::from_value(table).expect("config");
    config.validate().expect("valid config");
    config
}

fn sink_of(config: &EmailConfig, security: &SecurityConfig) -> EmailSink {
    let delivery = DeliveryConfig {
        request_timeout: Duration::from_secs(10),
        ..DeliveryConfig::default()
    };
    EmailSink::new("proj_a", "ops-mail", config, &delivery, security).expect("sink")
}

fn loopback() -> SecurityConfig {
    SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap()
}

fn with_auth() -> Value {
    json!({"username": USER, "password": PASSWORD})
}

fn event(offset: i64, level: &str, message: &str) -> Event {
    sink_event(
        json!({"id": format!("e{offset}"), "projectId": "proj_a", "type": "MANAGED_SYNC",
            "level": level, "timestamp": "2026-12-06T10:00:00Z", "message": message})
        .to_string(),
        0,
        offset,
    )
}

fn deliver(sink: &EmailSink, events: &[Event]) -> Outcome {
    let batch = sink.encode(events).expect("encode");
    rt().block_on(sink.send(events, &batch))
}

#[test]
fn a_digest_over_starttls_with_auth_has_both_parts_escaped() {
    let server = SmtpServer::start("starttls", true);
    let sink = sink_of(&config(&server, "starttls", with_auth()), &loopback());
    let mut events: Vec<Event> = (0..12)
        .map(|i| event(i, "WARN", &format!("warning {i}")))
        .collect();
    events.push(event(20, "ERROR", "sync failed"));
    events.push(event(21, "ERROR", "token expired"));
    events.push(sink_event(
        json!({"id": "e22", "projectId": "proj_a", "type": "WEBHOOK_TRIGGER", "level": "ERROR",
            "timestamp": "2026-12-06T10:00:01Z",
            "message": "<script>alert('pwned')</script> & <b>bold</b>",
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
            "error": {"code": "E_AUTH", "detail": "<img src=x onerror=alert(1)>"}})
        .to_string(),
        0,
        22,
    ));
    assert_eq!(deliver(&sink, &events), Outcome::Delivered);
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "one email per batch");
    let (raw, envelope) = &messages[0];
    assert_eq!(
        envelope["rcpt_tos"],
        json!(["ops@example.com", "oncall@example.com"])
    );
    assert_eq!(envelope["mail_from"], "alerts@example.com");
    let mail = parse(raw);
    assert_eq!(
        mail.subject,
        "3 ERROR and 12 WARN Event Logs from project proj_a"
    );
    // Every event in both parts, errors first, with time, level, type, trace id and error.
    for i in 0..12 {
        assert!(mail.text.contains(&format!("warning {i}")), "{}", mail.text);
        assert!(mail.html.contains(&format!("warning {i}")));
    }
    let text = &mail.text;
    assert!(text.find("sync failed").unwrap() < text.find("warning 0").unwrap());
    assert!(text.contains("[2026-12-06T10:00:01Z] ERROR WEBHOOK_TRIGGER"));
    assert!(text.contains("trace id: 4bf92f3577b34da6a3ce929d0e0e4736"));
    assert!(text.contains("<script>alert('pwned')</script> & <b>bold</b>"));
    assert!(text.contains(r#"error: {"code":"E_AUTH","detail":"<img src=x onerror=alert(1)>"}"#));
    // The HTML part escapes what came from the event.
    let html = &mail.html;
    assert!(
        !html.contains("<script>") && !html.contains("<img"),
        "{html}"
    );
    assert!(!html.contains("<b>bold</b>"), "{html}");
    assert!(html.contains(
        "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
    ));
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
}

#[test]
fn implicit_tls_and_the_size_limit_with_and_n_more() {
    let server = SmtpServer::start("tls", false);
    let limit = 16 * 1024;
    let sink = sink_of(
        &config(&server, "tls", json!({"max_message_bytes": limit})),
        &loopback(),
    );
    let events: Vec<Event> = (0..300)
        .map(|i| {
            event(
                i,
                "ERROR",
                &format!("failure {i:03} {}", "detail ".repeat(80)),
            )
        })
        .collect();
    assert_eq!(deliver(&sink, &events), Outcome::Delivered);
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let raw = &messages[0].0;
    assert!(
        raw.len() <= limit,
        "{} bytes over the {limit}-byte limit",
        raw.len()
    );
    let mail = parse(raw);
    assert_eq!(mail.subject, "300 ERROR Event Logs from project proj_a");
    let listed = (0..300)
        .filter(|i| mail.text.contains(&format!("failure {i:03}")))
        .count();
    assert!(listed > 0 && listed < 300, "{listed} listed");
    let more = format!("and {} more Event Logs not listed", 300 - listed);
    assert!(mail.text.contains(&more), "{}", mail.text);
    assert!(mail.html.contains(&more));
    // The messages were cut (to the longest length that fits) before events were left out.
    assert!(!mail.text.contains(&"detail ".repeat(80)), "{}", mail.text);
    assert!(
        mail.text
            .lines()
            .any(|l| l.contains("failure 000 detail") && l.trim_end().ends_with('…')),
        "{}",
        mail.text
    );
}

#[test]
fn a_4xx_is_retried_and_the_retry_delivered() {
    let server = SmtpServer::start("starttls", true);
    let sink = sink_of(&config(&server, "starttls", with_auth()), &loopback());
    server.control(json!({"data": ["451 4.3.0 Mailbox temporarily busy"]}));
    let events = vec![event(1, "ERROR", "one")];
    let Outcome::Retry { error, .. } = deliver(&sink, &events) else {
        panic!("a 451 is retried")
    };
    assert_eq!(error.kind, ErrorKind::SmtpReply);
    assert!(error.message.contains("451"), "{}", error.message);
    assert!(
        error.message.contains("Mailbox temporarily busy"),
        "{}",
        error.message
    );
    assert!(server.messages().is_empty());
    assert_eq!(deliver(&sink, &events), Outcome::Delivered);
    assert_eq!(server.attempts(), 2);
    assert_eq!(server.messages().len(), 1);
}

#[test]
fn a_5xx_to_a_recipient_or_the_login_rejects_the_destination_with_the_scrubbed_answer() {
    let server = SmtpServer::start("starttls", true);
    let sink = sink_of(&config(&server, "starttls", with_auth()), &loopback());
    let events = vec![event(1, "ERROR", "one")];
    server.control(json!({"rcpt": "550 5.1.1 <ops@example.com>: Recipient address rejected"}));
    let Outcome::Rejected { error, scope } = deliver(&sink, &events) else {
        panic!("a 550 to RCPT is refused")
    };
    assert_eq!(scope, RejectScope::Destination);
    assert!(
        error.message.contains("RCPT TO <ops@example.com>")
            && error.message.contains("550")
            && error.message.contains("Recipient address rejected"),
        "{}",
        error.message
    );
    assert_eq!(server.attempts(), 0, "no message after a refused recipient");
    // A login refused with the password echoed back: refused, the password masked.
    server.control(json!({"auth": format!("535 5.7.8 Bad credentials {PASSWORD}")}));
    let Outcome::Rejected { error, scope } = deliver(&sink, &events) else {
        panic!("a 535 to AUTH is refused")
    };
    assert_eq!(scope, RejectScope::Destination);
    assert!(error.message.contains("535"), "{}", error.message);
    assert!(
        error.message.contains("Bad credentials ****"),
        "{}",
        error.message
    );
    assert!(!error.message.contains(PASSWORD), "{}", error.message);
    // A 5xx to the message refuses the data, not the destination.
    server.control(json!({"data": "554 5.6.0 Message content rejected"}));
    let Outcome::Rejected { error, scope } = deliver(&sink, &events) else {
        panic!("a 554 to DATA is refused")
    };
    assert_eq!(scope, RejectScope::Data);
    assert!(error.message.contains("554"), "{}", error.message);
    assert!(server.messages().is_empty());
}

#[test]
fn connection_errors_are_retried_and_the_ssrf_guard_applies_to_the_host() {
    let server = SmtpServer::start("none", false);
    // Nothing listens on the port: retried.
    let closed: EmailConfig = serde_json::from_value(json!({
        "host": "127.0.0.1", "port": free_port(), "tls_mode": "none",
        "from": "a@example.com", "to": ["b@example.com"]
    }))
    .unwrap();
    let Outcome::Retry { error, .. } =
        deliver(&sink_of(&closed, &loopback()), &[event(1, "ERROR", "x")])
    else {
        panic!("a refused connection is retried")
    };
    assert_eq!(error.kind, ErrorKind::Connection);
    // Without `allow_networks`, loopback is refused before connecting, by address and by name.
    for host in ["127.0.0.1", "localhost"] {
        let mut c = config(&server, "none", json!({}));
        c.host = host.into();
        let outcome = deliver(
            &sink_of(&c, &SecurityConfig::default()),
            &[event(1, "ERROR", "x")],
        );
        let Outcome::Rejected { error, scope } = outcome else {
            panic!("{host}: the guard refuses loopback, got {outcome:?}")
        };
        assert_eq!(scope, RejectScope::Destination);
        assert!(
            error.message.contains("allow_networks"),
            "{}",
            error.message
        );
    }
    assert_eq!(server.attempts(), 0);
    // STARTTLS required but not offered: the destination is refused.
    let c = config(&server, "starttls", json!({}));
    let Outcome::Rejected { error, scope } =
        deliver(&sink_of(&c, &loopback()), &[event(1, "ERROR", "x")])
    else {
        panic!("no STARTTLS is refused")
    };
    assert_eq!(scope, RejectScope::Destination);
    assert!(
        error.message.contains("does not offer STARTTLS"),
        "{}",
        error.message
    );
}

#[test]
fn one_email_per_interval_and_batches_meanwhile_share_the_next() {
    let server = SmtpServer::start("starttls", false);
    let interval = Duration::from_secs(2);
    let sink = Arc::new(sink_of(
        &config(&server, "starttls", json!({"min_interval": "2s"})),
        &loopback(),
    ));
    assert_eq!(
        deliver(&sink, &[event(1, "ERROR", "first")]),
        Outcome::Delivered
    );
    // Three batches while the interval runs, as a lane with free request slots sends them.
    let outcomes = rt().block_on(async {
        let mut tasks = Vec::new();
        for i in 2..5 {
            let sink = sink.clone();
            tasks.push(tokio::spawn(async move {
                let events = vec![event(i, "ERROR", &format!("batch {i}"))];
                let batch = sink.encode(&events).unwrap();
                sink.send(&events, &batch).await
            }));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        outcomes
    });
    assert!(
        outcomes.iter().all(|o| *o == Outcome::Delivered),
        "{outcomes:?}"
    );
    let messages = server.messages();
    assert_eq!(
        messages.len(),
        2,
        "the three batches went out as one digest"
    );
    let second = parse(&messages[1].0);
    assert_eq!(second.subject, "3 ERROR Event Logs from project proj_a");
    for i in 2..5 {
        assert!(
            second.text.contains(&format!("batch {i}")),
            "{}",
            second.text
        );
    }
    let at = |m: &(Vec<u8>, Value)| m.1["received_at"].as_f64().unwrap();
    let gap = at(&messages[1]) - at(&messages[0]);
    assert!(
        // Slack for the first email's own conversation (the interval counts from its start).
        gap >= interval.as_secs_f64() - SLACK,
        "emails {gap:.2} s apart"
    );
}

// ---------------------------------------------------------------------------------------------
// Through the binary
// ---------------------------------------------------------------------------------------------

fn email_toml(server: &SmtpServer, extra: &str) -> String {
    format!(
        "[[destinations]]\nproject = \"proj_a\"\nid = \"ops-mail\"\ntype = \"email\"\nhost = \"127.0.0.1\"\nport = {}\ntls_mode = \"starttls\"\ntls_ca_file = {}\nusername = {}\npassword = \"${{SMTP_PASSWORD}}\"\nfrom = \"alerts@example.com\"\nto = [\"ops@example.com\"]\n{extra}",
        server.port,
        toml_str(&server.ca_file().to_string_lossy()),
        toml_str(USER),
    )
}

#[test]
fn test_destination_sends_a_test_email_through_the_binary() {
    let server = SmtpServer::start("starttls", true);
    let dir = tempfile::tempdir().unwrap();
    let cfg = CourierConfig::new("127.0.0.1:9").destination(email_toml(&server, ""));
    let path = dir.path().join("courier.toml");
    std::fs::write(&path, cfg.to_toml("127.0.0.1:1")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["test-destination", "--config"])
        .arg(&path)
        .args(["--project", "proj_a", "--destination", "ops-mail"])
        .env("SMTP_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{text}");
    let mail = parse(&messages[0].0);
    assert_eq!(
        mail.subject,
        "Test email from courier: 1 INFO Event Log from project proj_a"
    );
}

/// End to end: ERROR events only (the default filter), one digest per `min_interval` over
/// an outage of the SMTP server (4xx to every message), every ERROR event in a digest after
/// it, and the commit point at the end of the topic.
#[test]
fn digests_end_to_end_hold_the_rate_limit_over_an_outage() {
    let server = SmtpServer::start("starttls", true);
    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), TOPIC, 1);
    create_topic(&tansu.brokers(), "courier-failures", 1);
    let interval = 3.0;
    let mut cfg = CourierConfig::new(&tansu.brokers()).destination(email_toml(
        &server,
        "min_interval = \"3s\"\n[destinations.delivery]\nbatch_timeout = \"300ms\"\nretry_max_elapsed = \"30s\"\nretry_max_backoff = \"500ms\"\ncircuit_failure_threshold = 1000\nretry_schedule = [\"1s\", \"2s\", \"5s\"]\n",
    ));
    cfg.env.push(("SMTP_PASSWORD".into(), PASSWORD.into()));
    let mut courier = Courier::start_ready(&cfg);
    let produce_round = |round: usize| {
        let mut bytes = Vec::new();
        for i in 0..6 {
            let level = if i % 2 == 0 { "ERROR" } else { "INFO" };
            let mut e = event_log("proj_a", &format!("r{round}-{i}"));
            e["level"] = json!(level);
            e["message"] = json!(format!("round {round} event {i} {level}"));
            bytes.push(e.to_string().into_bytes());
        }
        let mut other = event_log("proj_b", &format!("r{round}-other"));
        other["level"] = json!("ERROR");
        other["message"] = json!(format!("round {round} other project"));
        bytes.push(other.to_string().into_bytes());
        produce(
            &tansu.brokers(),
            TOPIC,
            bytes.into_iter().map(|b| (Some(0), b)),
        )
    };
    let mut produced = produce_round(0);
    wait_until(
        "the first digest",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || !server.messages().is_empty(),
    );
    // The outage: every message refused with a 4xx while three more rounds come in.
    server.control(json!({"data": "451 4.3.0 Service temporarily unavailable"}));
    for round in 1..4 {
        produced.extend(produce_round(round));
        std::thread::sleep(Duration::from_millis(1500));
    }
    wait_until(
        "attempts during the outage",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || server.attempts() >= 2,
    );
    server.control(json!({}));
    let expected: Vec<String> = (0..4)
        .flat_map(|r| {
            (0..6)
                .step_by(2)
                .map(move |i| format!("round {r} event {i} ERROR"))
        })
        .collect();
    let all_text = || -> String {
        server
            .messages()
            .iter()
            .map(|(raw, _)| parse(raw).text)
            .collect::<Vec<_>>()
            .join("\n")
    };
    wait_until(
        "every ERROR event in a digest",
        Duration::from_secs(90),
        Duration::from_millis(200),
        || {
            let text = all_text();
            expected.iter().all(|m| text.contains(m.as_str()))
        },
    );
    let end = end_offsets(&produced);
    wait_until(
        "the commit point at the end",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || committed_offsets(&tansu.brokers(), "courier-test", TOPIC) == end,
    );
    let messages = server.messages();
    let text = all_text();
    assert!(
        !text.contains("INFO"),
        "only ERROR events by default: {text}"
    );
    assert!(!text.contains("other project"), "{text}");
    for m in &expected {
        assert_eq!(
            text.matches(m.as_str()).count(),
            1,
            "{m} in exactly one digest: {text}"
        );
    }
    let at: Vec<f64> = messages
        .iter()
        .map(|m| m.1["received_at"].as_f64().unwrap())
        .collect();
    for pair in at.windows(2) {
        assert!(
            pair[1] - pair[0] >= interval - SLACK,
            "two emails {:.2} s apart, the interval is {interval} s",
            pair[1] - pair[0]
        );
    }
    // Four rounds, one outage: at most one email per interval, so far fewer than rounds.
    let span = at.last().unwrap() - at.first().unwrap();
    assert!(
        messages.len() as f64 <= 1.0 + span / (interval - SLACK),
        "{} emails in {span:.1} s",
        messages.len()
    );
    assert!(
        server.attempts() > messages.len(),
        "the outage refused some attempts"
    );
    courier.terminate(Duration::from_secs(30));
}

/// The destinations API: an email destination's password is write-only (masked in answers, a
/// mask sent back towards another server refused) and its test endpoint sends a test email.
#[test]
fn the_api_keeps_the_password_write_only_and_sends_a_test_email() {
    const ADMIN: &str = "admin-token-0123456789";
    const KEY_ENV: &str = "COURIER_TEST_API_KEY";
    // No TLS: an API definition cannot name a CA file, and this server's CA is private.
    let server = SmtpServer::start("none", true);
    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), TOPIC, 1);
    create_topic(&tansu.brokers(), "courier-failures", 1);
    let mut cfg = CourierConfig::new(&tansu.brokers());
    cfg.extra = format!(
        "\n[api]\nencryption_key_env = {}\ntokens = [{{ token = {} }}]\n",
        toml_str(KEY_ENV),
        toml_str(ADMIN)
    );
    cfg.env.push((
        KEY_ENV.into(),
        "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".into(),
    ));
    let courier = Courier::start_ready(&cfg);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let call = |method: &str, path: &str, body: Option<Value>| -> (u16, Value) {
        rt().block_on(async {
            let url = format!(
                "http://{}/v1/projects/proj_a/destinations{path}",
                courier.listen()
            );
            let mut req = client
                .request(method.parse().unwrap(), url)
                .bearer_auth(ADMIN);
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert!(!text.contains(PASSWORD), "{text}");
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    };
    let definition = json!({
        "type": "email", "host": "127.0.0.1", "port": server.port, "tls_mode": "none",
        "username": USER, "password": PASSWORD,
        "from": "alerts@example.com", "to": ["ops@example.com"],
    });
    let (s, created) = call("PUT", "/api-mail", Some(definition.clone()));
    assert_eq!(s, 201, "{created}");
    let masked = created["password"].as_str().unwrap().to_owned();
    assert!(masked.starts_with("****"), "{created}");
    // The mask sent back towards another server is refused; to the same one it is kept.
    let mut moved = created.clone();
    moved["port"] = json!(free_port());
    let (s, body) = call("PUT", "/api-mail", Some(moved));
    assert_eq!(s, 422, "{body}");
    assert!(body.to_string().contains("/password"), "{body}");
    let (s, body) = call("PUT", "/api-mail", Some(created));
    assert_eq!(s, 200, "{body}");
    wait_until(
        "the destination runs",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || call("GET", "/api-mail/status", None).1["running"] == true,
    );
    let (s, body) = call("POST", "/api-mail/test", None);
    assert_eq!((s, &body["outcome"]), (200, &json!("delivered")), "{body}");
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        parse(&messages[0].0).subject,
        "Test email from courier: 1 INFO Event Log from project proj_a"
    );
    // A definition naming a host file is refused without being looked at.
    let mut with_file = definition;
    with_file["tls_ca_file"] = json!("/etc/passwd");
    let (s, body) = call("PUT", "/api-mail-2", Some(with_file));
    assert_eq!(s, 422, "{body}");
    assert!(body.to_string().contains("/tls_ca_file"), "{body}");
}
