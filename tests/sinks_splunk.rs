//! The Splunk HEC sink driven through the `Sink` trait against a fake HTTP Event Collector in
//! the test process that enforces HEC's contract (`tests/common/fakes/splunk.rs`) and misbehaves on
//! purpose (code 6 with an invalid-event-number, busy collectors, 429 with Retry-After,
//! acknowledgements that confirm late or never, slow answers, 413).

mod common;

use std::time::{Duration, Instant};

use common::fakes::splunk::{AckPolicy, FakeSplunk, HecSetup, HookAnswer};
use common::fakes::Reply;
use common::generated_sink_events;
use courier::config::{DeliveryConfig, SecurityConfig};
use courier::event::Event;
use courier::sinks::splunk::{SplunkConfig, SplunkSink};
use courier::sinks::{ErrorKind, Outcome, RejectScope, Sink};
use serde_json::{json, Value};

const TOKEN: &str = "11111111-2222-3333-4444-555555555555";

fn sink_with(
    fake: &FakeSplunk,
    token: &str,
    extra: Value,
    delivery: &DeliveryConfig,
) -> SplunkSink {
    let mut config = json!({ "endpoint": fake.url(), "token": token });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        config[k] = v;
    }
    let config: SplunkConfig = serde_json::from_value(config).expect("config");
    config.validate().expect("valid config");
    // The fake listens on 127.0.0.1: allow loopback past the SSRF guard.
    SplunkSink::new(
        &config,
        delivery,
        &SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap(),
    )
    .expect("sink")
}

fn new_sink(fake: &FakeSplunk, extra: Value) -> SplunkSink {
    sink_with(fake, TOKEN, extra, &DeliveryConfig::default())
}

async fn deliver(sink: &SplunkSink, events: &[Event]) -> Outcome {
    let batch = sink.encode(events).expect("encode");
    sink.send(events, &batch).await
}

fn class(o: &Outcome) -> &'static str {
    match o {
        Outcome::Delivered => "delivered",
        Outcome::Retry { .. } => "retry",
        Outcome::Rejected {
            scope: RejectScope::Data,
            ..
        } => "rejected",
        Outcome::Rejected {
            scope: RejectScope::Destination,
            ..
        } => "configuration",
        Outcome::Partial(_) => "partial",
    }
}

fn parts(outcome: &Outcome) -> Vec<(std::ops::Range<usize>, &'static str)> {
    let Outcome::Partial(parts) = outcome else {
        panic!("expected a partial outcome, got {outcome:?}")
    };
    parts.iter().map(|(r, o)| (r.clone(), class(o))).collect()
}

fn raw_of(events: &[Event]) -> Vec<Vec<u8>> {
    events.iter().map(|e| e.raw.to_vec()).collect()
}

#[tokio::test]
async fn events_arrive_byte_identical_in_hec_envelopes() {
    let fake = FakeSplunk::start(HecSetup {
        allowed_indexes: vec!["courier".into()],
        ..HecSetup::new(TOKEN)
    })
    .await;
    let sink = new_sink(
        &fake,
        json!({ "index": "courier", "host": "courier-1", "source": "event-logs", "sourcetype": "paragon:event" }),
    );
    let events = generated_sink_events(40, 1);
    assert_eq!(deliver(&sink, &events).await, Outcome::Delivered);
    let records = fake.records();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].status, records[0].code), (200, 0));
    assert_eq!(records[0].channel, None, "no channel without ack");
    // The event member is the original bytes, unchanged.
    assert_eq!(fake.indexed_raw(), raw_of(&events));
    for (got, e) in fake.indexed().iter().zip(&events) {
        let original: Value = serde_json::from_slice(&e.raw).unwrap();
        let env = &got.envelope;
        assert_eq!(env["index"], "courier");
        assert_eq!(env["host"], "courier-1");
        assert_eq!(env["source"], "event-logs");
        assert_eq!(env["sourcetype"], "paragon:event");
        let ts =
            chrono::DateTime::parse_from_rfc3339(original["timestamp"].as_str().unwrap()).unwrap();
        assert_eq!(
            env["time"].as_f64().unwrap(),
            ts.timestamp_millis() as f64 / 1000.0
        );
        assert_eq!(env["fields"]["projectId"], original["projectId"]);
        assert_eq!(env["fields"]["type"], original["type"]);
        assert_eq!(env["fields"]["level"], original["level"]);
        assert_eq!(
            env["fields"]["integrationId"],
            original
                .get("integrationId")
                .cloned()
                .unwrap_or(Value::Null)
        );
    }
}

#[tokio::test]
async fn gzip_and_the_default_sourcetype() {
    let fake = FakeSplunk::start(HecSetup::new(TOKEN)).await;
    let sink = new_sink(&fake, json!({ "compression": "gzip" }));
    let events = generated_sink_events(10, 2);
    assert_eq!(deliver(&sink, &events).await, Outcome::Delivered);
    assert_eq!(&fake.records()[0].body[..2], &[0x1f, 0x8b]);
    assert_eq!(fake.indexed_raw(), raw_of(&events));
    assert!(fake
        .indexed()
        .iter()
        .all(|e| e.envelope["sourcetype"] == "_json"));
}

#[tokio::test]
async fn batches_over_max_request_bytes_are_split() {
    let fake = FakeSplunk::start(HecSetup {
        max_content_length: 20_000,
        ..HecSetup::new(TOKEN)
    })
    .await;
    let sink = new_sink(&fake, json!({ "max_request_bytes": 20_000 }));
    let events = generated_sink_events(200, 3);
    let outcome = deliver(&sink, &events).await;
    let p = parts(&outcome);
    assert!(
        p.len() >= 5 && p.iter().all(|(_, c)| *c == "delivered"),
        "{p:?}"
    );
    assert!(fake
        .records()
        .iter()
        .all(|r| r.status == 200 && r.bytes <= 20_000));
    assert_eq!(fake.indexed_raw(), raw_of(&events));
}

#[tokio::test]
async fn a_413_splits_the_request_in_halves() {
    let fake = FakeSplunk::start(HecSetup {
        max_content_length: 4_000,
        ..HecSetup::new(TOKEN)
    })
    .await;
    // courier believes it may send 1 MiB; the collector says otherwise.
    let sink = new_sink(&fake, json!({}));
    let events = generated_sink_events(16, 4);
    let outcome = deliver(&sink, &events).await;
    let p = match &outcome {
        Outcome::Partial(_) => parts(&outcome),
        other => panic!("{other:?}"),
    };
    assert!(p.iter().all(|(_, c)| *c == "delivered"), "{p:?}");
    assert_eq!(fake.indexed_raw(), raw_of(&events));
    assert!(fake.records().iter().any(|r| r.status == 413));
}

#[tokio::test]
async fn a_token_with_acknowledgement_and_no_channel_is_a_configuration_error() {
    let fake = FakeSplunk::start(HecSetup {
        ack: true,
        ..HecSetup::new(TOKEN)
    })
    .await;
    let sink = new_sink(&fake, json!({ "ack": false }));
    match deliver(&sink, &generated_sink_events(3, 5)).await {
        Outcome::Rejected { error, scope } => {
            assert_eq!(scope, RejectScope::Destination);
            assert_eq!(error.http_status, Some(400));
            assert!(
                error
                    .message
                    .contains("Data channel is missing (code 10, HTTP 400)"),
                "{}",
                error.message
            );
            assert!(
                error.message.contains("set ack = true"),
                "{}",
                error.message
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn indexer_acknowledgement_completes_a_batch_only_once_confirmed() {
    let fake = FakeSplunk::start(HecSetup {
        ack: true,
        max_content_length: 30_000,
        ..HecSetup::new(TOKEN)
    })
    .await;
    fake.set_ack_policy(AckPolicy::AfterPolls(2));
    let sink = new_sink(&fake, json!({ "ack": true, "max_request_bytes": 30_000 }));
    let events = generated_sink_events(100, 6);
    let started = Instant::now();
    let outcome = deliver(&sink, &events).await;
    let p = parts(&outcome);
    assert!(
        p.len() >= 2 && p.iter().all(|(_, c)| *c == "delivered"),
        "{p:?}"
    );
    // Three queries at least (false, false, true), with backoff: 200 + 400 + 800 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(1300),
        "{:?}",
        started.elapsed()
    );
    let queries = fake.ack_queries();
    assert!(queries.len() >= 3, "{queries:?}");
    // One channel per sink instance, on every request.
    let channel = sink.channel().to_owned();
    assert!(fake
        .records()
        .iter()
        .all(|r| r.channel.as_deref() == Some(channel.as_str())));
    assert!(queries
        .iter()
        .all(|(c, _)| c.as_deref() == Some(channel.as_str())));
    // All ackIds of the batch are asked about together.
    assert_eq!(queries[0].1.len(), p.len());
    assert_eq!(fake.indexed_raw(), raw_of(&events));
}

#[tokio::test]
async fn an_acknowledgement_that_never_comes_means_sending_again() {
    let fake = FakeSplunk::start(HecSetup {
        ack: true,
        ..HecSetup::new(TOKEN)
    })
    .await;
    fake.set_ack_policy(AckPolicy::Never);
    let sink = new_sink(&fake, json!({ "ack": true, "ack_timeout": "1s" }));
    let events = generated_sink_events(5, 7);
    let started = Instant::now();
    match deliver(&sink, &events).await {
        Outcome::Retry { error, .. } => {
            assert_eq!(error.kind, ErrorKind::Timeout);
            assert!(
                error.message.contains("did not confirm indexing"),
                "{}",
                error.message
            );
        }
        other => panic!("{other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Sent again, and this time confirmed.
    fake.set_ack_policy(AckPolicy::Immediately);
    assert_eq!(deliver(&sink, &events).await, Outcome::Delivered);
    assert_eq!(fake.records().len(), 2);
}

#[tokio::test]
async fn code_6_delivers_the_events_before_rejects_the_bad_one_and_retries_the_rest() {
    let fake = FakeSplunk::start(HecSetup::new(TOKEN)).await;
    fake.set_hook(|r| (r.index == 0).then_some(HookAnswer::InvalidEvent(2)));
    let sink = new_sink(&fake, json!({}));
    let events = generated_sink_events(5, 8);
    let outcome = deliver(&sink, &events).await;
    assert_eq!(
        parts(&outcome),
        vec![(0..2, "delivered"), (2..3, "rejected"), (3..5, "retry")]
    );
    let Outcome::Partial(list) = &outcome else {
        unreachable!()
    };
    let Outcome::Rejected { error, .. } = &list[1].1 else {
        unreachable!()
    };
    assert!(
        error
            .message
            .contains("Invalid data format (code 6, HTTP 400)"),
        "{}",
        error.message
    );
    // The lane resends only the rest.
    assert_eq!(deliver(&sink, &events[3..]).await, Outcome::Delivered);
    let mut expected = raw_of(&events[..2]);
    expected.extend(raw_of(&events[3..]));
    assert_eq!(fake.indexed_raw(), expected);
}

#[tokio::test]
async fn a_busy_collector_and_429_are_retried_with_retry_after() {
    let fake = FakeSplunk::start(HecSetup::new(TOKEN)).await;
    fake.set_hook(|r| match r.index {
        0 => Some(HookAnswer::Reply(
            Reply::new(503, r#"{"text":"Server is busy","code":9}"#).retry_after("4"),
        )),
        1 => Some(HookAnswer::Reply(
            Reply::new(429, "Too Many Requests").retry_after("2"),
        )),
        2 => Some(HookAnswer::Reply(Reply::new(
            500,
            r#"{"text":"Internal server error","code":8}"#,
        ))),
        3 => Some(HookAnswer::Reply(Reply::new(
            502,
            "<html>bad gateway</html>",
        ))),
        _ => None,
    });
    let sink = new_sink(&fake, json!({}));
    let events = generated_sink_events(3, 9);
    let batch = sink.encode(&events).unwrap();
    for (status, after) in [(503, Some(4)), (429, Some(2)), (500, None), (502, None)] {
        match sink.send(&events, &batch).await {
            Outcome::Retry { error, retry_after } => {
                assert_eq!(error.http_status, Some(status));
                assert_eq!(retry_after, after.map(Duration::from_secs));
            }
            other => panic!("{status}: {other:?}"),
        }
    }
    assert_eq!(sink.send(&events, &batch).await, Outcome::Delivered);
    let bodies: Vec<Vec<u8>> = fake.records().into_iter().map(|r| r.body).collect();
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "retries are byte-identical"
    );
}

#[tokio::test]
async fn configuration_problems_name_splunk_and_never_the_token() {
    let fake = FakeSplunk::start(HecSetup {
        allowed_indexes: vec!["main".into()],
        ..HecSetup::new(TOKEN)
    })
    .await;
    let wrong = "99999999-dead-beef-0000-000000000000";
    let bad = sink_with(&fake, wrong, json!({}), &DeliveryConfig::default());
    match deliver(&bad, &generated_sink_events(2, 10)).await {
        Outcome::Rejected { error, scope } => {
            assert_eq!(scope, RejectScope::Destination);
            assert_eq!(
                error.message,
                "Splunk HEC rejected the request: Invalid token (code 4, HTTP 403); check the destination's token"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{bad:?}").contains(wrong));
    let err = bad.check().await.unwrap_err();
    assert!(
        err.message.contains("Invalid token") && !err.message.contains(wrong),
        "{}",
        err.message
    );

    let wrong_index = new_sink(&fake, json!({ "index": "secret-index" }));
    match deliver(&wrong_index, &generated_sink_events(2, 11)).await {
        Outcome::Rejected { error, scope } => {
            assert_eq!(scope, RejectScope::Destination);
            assert!(
                error.message.contains("Incorrect index (code 7, HTTP 400)"),
                "{}",
                error.message
            );
            assert!(
                error.message.contains("index \"secret-index\""),
                "{}",
                error.message
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(fake.indexed().is_empty());
}

#[tokio::test]
async fn check_uses_the_health_endpoint() {
    let fake = FakeSplunk::start(HecSetup::new(TOKEN)).await;
    let sink = new_sink(&fake, json!({}));
    let ok = sink.check().await.unwrap();
    assert!(ok.contains("HEC is healthy"), "{ok}");
    assert_eq!(fake.health_checks(), 1);
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let fake = FakeSplunk::start(HecSetup::new(TOKEN)).await;
    fake.set_hook(|_| {
        Some(HookAnswer::Reply(
            Reply::new(200, r#"{"text":"Success","code":0}"#).after(Duration::from_secs(3)),
        ))
    });
    let delivery = DeliveryConfig {
        request_timeout: Duration::from_millis(300),
        ..DeliveryConfig::default()
    };
    let sink = sink_with(&fake, TOKEN, json!({}), &delivery);
    match deliver(&sink, &generated_sink_events(2, 12)).await {
        Outcome::Retry { error, .. } => assert_eq!(error.kind, ErrorKind::Timeout),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_success_whose_answer_never_arrives_is_sent_again_when_acknowledging() {
    // With acknowledgement the ackId is in the answer: an answer that trickles in slower than
    // the request timeout cannot be confirmed, so the events are sent again. Without
    // acknowledgement, the 200 is enough.
    let fake = FakeSplunk::start(HecSetup {
        ack: true,
        ..HecSetup::new(TOKEN)
    })
    .await;
    fake.set_hook(|r| {
        (r.index == 0).then(|| {
            HookAnswer::Reply(
                Reply::new(200, r#"{"text":"Success","code":0,"ackId":0}"#)
                    .trickle(Duration::from_secs(1)),
            )
        })
    });
    let delivery = DeliveryConfig {
        request_timeout: Duration::from_millis(500),
        ..DeliveryConfig::default()
    };
    let sink = sink_with(&fake, TOKEN, json!({ "ack": true }), &delivery);
    let events = generated_sink_events(2, 14);
    match deliver(&sink, &events).await {
        Outcome::Retry { error, .. } => assert_eq!(error.kind, ErrorKind::Timeout, "{error:?}"),
        other => panic!("{other:?}"),
    }

    let fake = FakeSplunk::start(HecSetup::new(TOKEN)).await;
    fake.set_hook(|_| {
        Some(HookAnswer::Reply(
            Reply::new(200, r#"{"text":"Success","code":0}"#).trickle(Duration::from_secs(1)),
        ))
    });
    let sink = sink_with(&fake, TOKEN, json!({}), &delivery);
    assert_eq!(deliver(&sink, &events).await, Outcome::Delivered);
}

#[tokio::test]
async fn the_fake_enforces_the_contract() {
    let fake = FakeSplunk::start(HecSetup {
        ack: true,
        ..HecSetup::new(TOKEN)
    })
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/services/collector/event", fake.url());
    let post = |auth: Option<String>, channel: Option<&str>, body: &'static str| {
        let mut r = client.post(&url).body(body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        if let Some(c) = channel {
            r = r.header("x-splunk-request-channel", c);
        }
        async move {
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            let v: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
            (status, v["code"].as_i64().unwrap())
        }
    };
    let auth = Some(format!("Splunk {TOKEN}"));
    let ch = Some("0b5e9d62-8a27-4f39-9c8a-3a4f1e2d7c60");
    assert_eq!(post(None, ch, r#"{"event":1}"#).await, (401, 2));
    assert_eq!(
        post(Some(TOKEN.into()), ch, r#"{"event":1}"#).await,
        (401, 3)
    );
    assert_eq!(
        post(Some("Splunk x".into()), ch, r#"{"event":1}"#).await,
        (403, 4)
    );
    assert_eq!(post(auth.clone(), None, r#"{"event":1}"#).await, (400, 10));
    assert_eq!(
        post(auth.clone(), Some("nope"), r#"{"event":1}"#).await,
        (400, 11)
    );
    assert_eq!(post(auth.clone(), ch, "").await, (400, 5));
    assert_eq!(
        post(auth.clone(), ch, r#"{"event":1}{"time":"x","event":2}"#).await,
        (400, 6)
    );
    assert_eq!(post(auth.clone(), ch, r#"{"time":1}"#).await, (400, 12));
    assert_eq!(post(auth.clone(), ch, r#"{"event":""}"#).await, (400, 13));
    assert_eq!(
        post(auth.clone(), ch, r#"{"event":1,"fields":{"a":1}}"#).await,
        (400, 15)
    );
    assert_eq!(
        post(auth.clone(), ch, r#"{"event":1}{"event":{"a":2}}"#).await,
        (200, 0)
    );
}

/// A TLS server with a certificate from a private CA (`openssl s_server -HTTP`, a real TLS
/// stack in its own process), answering the health endpoint.
struct TlsServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tls_server() -> Option<TlsServer> {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=courier test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(d, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(d, &csr);
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let body = r#"{"text":"HEC is healthy","code":17}"#;
    std::fs::create_dir_all(d.join("services/collector")).unwrap();
    std::fs::write(
        d.join("services/collector/health"),
        format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &port.to_string(),
            "-cert",
            "server.pem",
            "-key",
            "server.key",
            "-HTTP",
            "-quiet",
        ])
        .current_dir(d)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    let server = TlsServer { child, port, dir };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "openssl s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(server)
}

#[tokio::test]
async fn tls_trusts_a_private_ca_from_tls_ca_file() {
    let Some(server) = tls_server() else {
        eprintln!("skipped: the openssl command is not installed");
        return;
    };
    let endpoint = format!("https://localhost:{}", server.port);
    let sink = |tls: Value| {
        let config: SplunkConfig =
            serde_json::from_value(json!({ "endpoint": endpoint, "token": TOKEN, "tls": tls }))
                .unwrap();
        config.validate().expect("valid");
        SplunkSink::new(
            &config,
            &DeliveryConfig::default(),
            &SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap(),
        )
        .expect("sink")
    };
    // The system roots do not know the private CA.
    let err = sink(json!({})).check().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Connection, "{err:?}");
    assert!(
        err.message.to_lowercase().contains("certificate"),
        "{}",
        err.message
    );
    // With the CA file, the certificate verifies.
    let ca = server.dir.path().join("ca.pem");
    let ok = sink(json!({ "ca_file": ca })).check().await.unwrap();
    assert!(ok.contains("HEC is healthy"), "{ok}");
    // Not verifying at all also connects (and is logged as a warning at start-up).
    let ok = sink(json!({ "insecure_skip_verify": true }))
        .check()
        .await
        .unwrap();
    assert!(ok.contains("HEC is healthy"), "{ok}");
}
