//! The Datadog sink driven through the `Sink` trait against a fake logs intake in the test
//! process that enforces Datadog's Logs API v2 contract (`tests/common/fakes/datadog.rs`) and
//! misbehaves on purpose (413 once, 429 with Retry-After, 503 storms, slow answers).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fakes::datadog::FakeDatadog;
use common::fakes::Reply;
use common::{generated_sink_events, sink_event};
use courier::config::{DeliveryConfig, SecurityConfig};
use courier::event::Event;
use courier::sinks::datadog::{DatadogConfig, DatadogSink, MAX_ITEM_BYTES};
use courier::sinks::{ErrorKind, Outcome, RejectScope, Sink};
use serde_json::{json, Value};

const KEY: &str = "dd-test-key-0123456789abcdef";

fn sink_with(
    fake: &FakeDatadog,
    key: &str,
    extra: Value,
    delivery: &DeliveryConfig,
) -> DatadogSink {
    let mut config = json!({ "api_key": key, "endpoint": fake.url() });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        config[k] = v;
    }
    let config: DatadogConfig = serde_json::from_value(config).expect("config");
    config.validate().expect("valid config");
    // The fake listens on 127.0.0.1: allow loopback past the SSRF guard.
    DatadogSink::new(
        &config,
        delivery,
        &SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap(),
    )
    .expect("sink")
}

fn new_sink(fake: &FakeDatadog, extra: Value) -> DatadogSink {
    sink_with(fake, KEY, extra, &DeliveryConfig::default())
}

async fn deliver(sink: &DatadogSink, events: &[Event]) -> Outcome {
    let batch = sink.encode(events).expect("encode");
    sink.send(events, &batch).await
}

/// The parts of a partial outcome as (range, class).
fn parts(outcome: &Outcome) -> Vec<(std::ops::Range<usize>, &'static str)> {
    let Outcome::Partial(parts) = outcome else {
        panic!("expected a partial outcome, got {outcome:?}")
    };
    parts.iter().map(|(r, o)| (r.clone(), class(o))).collect()
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

#[tokio::test]
async fn logs_arrive_complete_in_the_documented_shape() {
    let fake = FakeDatadog::start(KEY).await;
    let sink = new_sink(
        &fake,
        json!({ "service": "paragon", "source": "courier-test", "hostname": "h1", "tags": ["env:test"] }),
    );
    let events = generated_sink_events(50, 1);
    assert_eq!(deliver(&sink, &events).await, Outcome::Delivered);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let records = fake.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, 202);
    // gzip by default.
    assert_eq!(&records[0].body[..2], &[0x1f, 0x8b]);

    let logs = fake.logs();
    assert_eq!(logs.len(), events.len());
    for (log, e) in logs.iter().zip(&events) {
        let original: Value = serde_json::from_slice(&e.raw).unwrap();
        let o = original.as_object().unwrap();
        // Every field of the event is an attribute, unchanged; the two Datadog reserves are
        // kept under event_*.
        for (k, v) in o {
            let key = match k.as_str() {
                "status" | "timestamp" => format!("event_{k}"),
                _ => k.clone(),
            };
            assert_eq!(&log[&key], v, "attribute {key} of {log}");
        }
        assert_eq!(log["message"], original["message"]);
        let status = match original["level"].as_str().unwrap() {
            "ERROR" => "error",
            "WARN" => "warn",
            "INFO" => "info",
            "DEBUG" => "debug",
            other => panic!("level {other}"),
        };
        assert_eq!(log["status"], status);
        let ts =
            chrono::DateTime::parse_from_rfc3339(original["timestamp"].as_str().unwrap()).unwrap();
        if chrono::Utc::now().signed_duration_since(ts) < chrono::Duration::hours(17) {
            assert_eq!(log["timestamp"], ts.timestamp_millis());
        } else {
            // Datadog drops logs more than 18 hours old: filed at arrival instead.
            assert!(log.get("timestamp").is_none(), "{log}");
        }
        assert_eq!(log["service"], "paragon");
        assert_eq!(log["ddsource"], "courier-test");
        assert_eq!(log["hostname"], "h1");
        let tags = log["ddtags"].as_str().unwrap();
        assert!(tags.starts_with("env:test,project:"), "{tags}");
        assert!(
            tags.contains(&format!(
                "project:{}",
                original["projectId"].as_str().unwrap()
            )),
            "{tags}"
        );
        assert!(
            tags.contains(&format!(
                "type:{}",
                original["type"].as_str().unwrap().to_lowercase()
            )),
            "{tags}"
        );
        assert!(tags.contains(&format!("level:{status}")), "{tags}");
        if let Some(i) = original["integrationId"].as_str() {
            assert!(tags.contains(&format!("integration:{i}")), "{tags}");
        }
    }
}

#[tokio::test]
async fn log_times_are_epoch_milliseconds_unless_datadog_would_drop_them() {
    let fake = FakeDatadog::start(KEY).await;
    let sink = new_sink(&fake, json!({}));
    let now = chrono::Utc::now();
    let recent = now - chrono::Duration::minutes(5);
    let old = now - chrono::Duration::hours(19);
    let at = |t: chrono::DateTime<chrono::Utc>, i: i64| {
        let text = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        sink_event(
            json!({"projectId": "p", "message": "m", "timestamp": text})
                .to_string()
                .into_bytes(),
            0,
            i,
        )
    };
    assert_eq!(
        deliver(&sink, &[at(recent, 0), at(old, 1)]).await,
        Outcome::Delivered
    );
    let logs = fake.logs();
    assert_eq!(logs[0]["timestamp"], recent.timestamp_millis());
    assert_eq!(
        logs[0]["event_timestamp"],
        recent.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    assert!(logs[1].get("timestamp").is_none(), "{}", logs[1]);
    assert_eq!(
        logs[1]["event_timestamp"],
        old.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
}

#[tokio::test]
async fn uncompressed_bodies_are_plain_json() {
    let fake = FakeDatadog::start(KEY).await;
    let sink = new_sink(&fake, json!({ "compression": "none" }));
    let events = generated_sink_events(3, 2);
    assert_eq!(deliver(&sink, &events).await, Outcome::Delivered);
    let body = &fake.records()[0].body;
    assert_eq!(body[0], b'[');
    assert_eq!(fake.logs().len(), 3);
}

#[tokio::test]
async fn batches_over_1000_logs_or_5_mb_are_split_and_reported_per_request() {
    let fake = FakeDatadog::start(KEY).await;
    let sink = new_sink(&fake, json!({}));
    let events = generated_sink_events(2500, 3);
    let outcome = deliver(&sink, &events).await;
    assert_eq!(
        parts(&outcome),
        vec![
            (0..1000, "delivered"),
            (1000..2000, "delivered"),
            (2000..2500, "delivered")
        ]
    );
    assert_eq!(
        fake.records().iter().map(|r| r.logs).collect::<Vec<_>>(),
        vec![1000, 1000, 500]
    );
    assert_eq!(fake.logs().len(), 2500);

    // By size: 30 events of ~400 KB → requests under 5 MB (the fake refuses more with 413).
    let fake = FakeDatadog::start(KEY).await;
    let sink = new_sink(&fake, json!({}));
    let blob = "z".repeat(400_000);
    let events: Vec<Event> = (0..30)
        .map(|i| {
            sink_event(
                json!({"projectId": "p", "message": format!("m{i}"), "payload": {"blob": blob}})
                    .to_string()
                    .into_bytes(),
                0,
                i,
            )
        })
        .collect();
    let outcome = deliver(&sink, &events).await;
    let p = parts(&outcome);
    assert!(
        p.len() >= 3 && p.iter().all(|(_, c)| *c == "delivered"),
        "{p:?}"
    );
    assert!(fake
        .records()
        .iter()
        .all(|r| r.status == 202 && r.bytes <= 5_000_000));
    assert_eq!(fake.logs().len(), 30);
}

#[tokio::test]
async fn an_oversize_log_is_shrunk_counted_and_delivered() {
    let fake = FakeDatadog::start(KEY).await;
    let sink = new_sink(&fake, json!({}));
    let counter = courier::metrics::truncated_events().with_label_values(&["datadog"]);
    let before = counter.get();
    let big = json!({"projectId": "p", "level": "INFO", "message": "huge one", "payload": {"blob": "b".repeat(1_200_000)}})
        .to_string()
        .into_bytes();
    let size = big.len();
    let events = vec![
        sink_event(br#"{"projectId":"p","message":"small"}"#.to_vec(), 0, 0),
        sink_event(big, 0, 1),
    ];
    assert_eq!(deliver(&sink, &events).await, Outcome::Delivered);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    let logs = fake.logs();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[1]["message"], "huge one");
    assert_eq!(logs[1]["payload"]["truncated"], true);
    assert!(logs[1]["payload"]["originalBytes"].as_u64().unwrap() > 1_200_000);
    assert!(logs[1].to_string().len() <= MAX_ITEM_BYTES);
    assert!(logs[1]["ddtags"]
        .as_str()
        .unwrap()
        .contains("truncated:true"));
    assert!(size > MAX_ITEM_BYTES);
    // Counted once, when delivered (other tests may count too: the counter is process-wide).
    assert!(counter.get() > before);
}

#[tokio::test]
async fn a_413_splits_the_request_in_halves() {
    let fake = FakeDatadog::start(KEY).await;
    // Pretend the intake takes at most 4 logs per request.
    fake.set_hook(|r| {
        (r.logs.len() > 4).then(|| Reply::new(413, r#"{"errors":["Payload too large"]}"#))
    });
    let sink = new_sink(&fake, json!({}));
    let events = generated_sink_events(10, 4);
    let outcome = deliver(&sink, &events).await;
    assert_eq!(
        parts(&outcome),
        vec![
            (0..2, "delivered"),
            (2..5, "delivered"),
            (5..7, "delivered"),
            (7..10, "delivered")
        ]
    );
    let sizes: Vec<(usize, u16)> = fake.records().iter().map(|r| (r.logs, r.status)).collect();
    assert_eq!(
        sizes,
        vec![
            (10, 413),
            (5, 413),
            (2, 202),
            (3, 202),
            (5, 413),
            (2, 202),
            (3, 202)
        ]
    );
    assert_eq!(fake.logs().len(), 10);
    // Once: only the first request is refused.
    let fake = FakeDatadog::start(KEY).await;
    fake.set_hook(|r| (r.index == 0).then(|| Reply::new(413, "")));
    let sink = new_sink(&fake, json!({}));
    let outcome = deliver(&sink, &generated_sink_events(6, 5)).await;
    assert_eq!(
        parts(&outcome),
        vec![(0..3, "delivered"), (3..6, "delivered")]
    );
}

#[tokio::test]
async fn a_single_log_refused_with_413_is_rejected() {
    let fake = FakeDatadog::start(KEY).await;
    fake.set_hook(|_| Some(Reply::new(413, "")));
    let sink = new_sink(&fake, json!({}));
    match deliver(&sink, &generated_sink_events(1, 6)).await {
        Outcome::Rejected { error, scope } => {
            assert_eq!(scope, RejectScope::Data);
            assert_eq!(error.http_status, Some(413));
            assert!(error.message.contains("too large"), "{}", error.message);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_api_key_rejects_the_destination_without_showing_the_key() {
    let fake = FakeDatadog::start(KEY).await;
    let wrong = "wrong-key-do-not-print";
    let sink = sink_with(&fake, wrong, json!({}), &DeliveryConfig::default());
    // Several requests' worth: the first refusal stops the batch.
    let events = generated_sink_events(2500, 7);
    let outcome = deliver(&sink, &events).await;
    let p = parts(&outcome);
    assert!(p.iter().all(|(_, c)| *c == "configuration"), "{p:?}");
    assert_eq!(
        fake.records().len(),
        1,
        "requests after a refused key are not sent"
    );
    let Outcome::Partial(list) = &outcome else {
        unreachable!()
    };
    let Outcome::Rejected { error, .. } = &list[0].1 else {
        unreachable!()
    };
    assert_eq!(error.http_status, Some(403));
    assert!(
        error
            .message
            .starts_with("Datadog rejected the API key (403)"),
        "{}",
        error.message
    );
    assert!(!error.message.contains(wrong));
    assert!(!format!("{outcome:?}").contains(wrong));
    assert!(!format!("{sink:?}").contains(wrong));
    // check() says the same.
    let err = sink.check().await.unwrap_err();
    assert_eq!(err.http_status, Some(403));
    assert!(
        err.message.contains("Datadog rejected the API key (403)"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn check_validates_the_key() {
    let fake = FakeDatadog::start(KEY).await;
    let sink = new_sink(&fake, json!({}));
    let ok = sink.check().await.unwrap();
    assert!(ok.contains("Datadog accepted the API key"), "{ok}");
    assert_eq!(fake.validations(), 1);
    // Nothing listening: a connection error.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config: DatadogConfig =
        serde_json::from_value(json!({ "api_key": KEY, "endpoint": format!("http://{closed}") }))
            .unwrap();
    let sink = DatadogSink::new(
        &config,
        &DeliveryConfig::default(),
        &SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap(),
    )
    .unwrap();
    assert_eq!(sink.check().await.unwrap_err().kind, ErrorKind::Connection);
}

#[tokio::test]
async fn status_400_rejects_only_that_request() {
    let fake = FakeDatadog::start(KEY).await;
    fake.set_hook(|r| (r.index == 1).then(|| Reply::new(400, r#"{"errors":["Bad Request"]}"#)));
    let sink = new_sink(&fake, json!({}));
    let outcome = deliver(&sink, &generated_sink_events(2100, 8)).await;
    assert_eq!(
        parts(&outcome),
        vec![
            (0..1000, "delivered"),
            (1000..2000, "rejected"),
            (2000..2100, "delivered")
        ]
    );
}

#[tokio::test]
async fn status_429_is_retried_after_the_time_datadog_asks() {
    let fake = FakeDatadog::start(KEY).await;
    fake.set_hook(|r| {
        (r.index == 0)
            .then(|| Reply::new(429, r#"{"errors":["Too many requests"]}"#).retry_after("7"))
    });
    let sink = new_sink(&fake, json!({}));
    let events = generated_sink_events(5, 9);
    let batch = sink.encode(&events).unwrap();
    match sink.send(&events, &batch).await {
        Outcome::Retry { error, retry_after } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert_eq!(error.http_status, Some(429));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sink.send(&events, &batch).await, Outcome::Delivered);
    // The retried request is byte-identical.
    let r = fake.records();
    assert_eq!(r[0].body, r[1].body);
}

#[tokio::test]
async fn a_503_storm_is_retried_until_it_passes_and_nothing_is_lost() {
    let fake = FakeDatadog::start(KEY).await;
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    fake.set_hook(move |_| {
        (s.fetch_add(1, Ordering::SeqCst) < 6).then(|| Reply::new(503, "<html>unavailable</html>"))
    });
    let sink = new_sink(&fake, json!({}));
    let events = generated_sink_events(1500, 10);
    let mut remaining: Vec<Event> = events.clone();
    let mut rounds = 0;
    // Act like the lane: resend whatever is to be retried.
    while !remaining.is_empty() {
        rounds += 1;
        assert!(rounds < 20, "never got through");
        let outcome = deliver(&sink, &remaining).await;
        remaining = match outcome {
            Outcome::Delivered => Vec::new(),
            Outcome::Retry { error, .. } => {
                assert!(error.http_status == Some(503), "{error:?}");
                remaining
            }
            Outcome::Partial(parts) => parts
                .into_iter()
                .filter(|(_, o)| matches!(o, Outcome::Retry { .. }))
                .flat_map(|(r, _)| remaining[r].to_vec())
                .collect(),
            other => panic!("{other:?}"),
        };
    }
    assert_eq!(fake.logs().len(), 1500);
    let mut ids: Vec<String> = fake
        .logs()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1500, "every event exactly once");
}

#[tokio::test]
async fn transport_errors_and_timeouts_are_retried() {
    let fake = FakeDatadog::start(KEY).await;
    fake.set_hook(|_| Some(Reply::new(202, "{}").after(Duration::from_secs(3))));
    let delivery = DeliveryConfig {
        request_timeout: Duration::from_millis(300),
        ..DeliveryConfig::default()
    };
    let sink = sink_with(&fake, KEY, json!({}), &delivery);
    let started = Instant::now();
    match deliver(&sink, &generated_sink_events(2, 11)).await {
        Outcome::Retry { error, .. } => assert_eq!(error.kind, ErrorKind::Timeout, "{error:?}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config: DatadogConfig =
        serde_json::from_value(json!({ "api_key": KEY, "endpoint": format!("http://{closed}") }))
            .unwrap();
    let sink = DatadogSink::new(
        &config,
        &DeliveryConfig::default(),
        &SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap(),
    )
    .unwrap();
    match deliver(&sink, &generated_sink_events(2, 12)).await {
        Outcome::Retry { error, .. } => {
            assert_eq!(error.kind, ErrorKind::Connection);
            assert!(!error.message.contains(KEY));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn slow_answer_bodies_are_judged_by_their_status() {
    // The status line arrives at once, the body one byte per second: the status decides.
    let fake = FakeDatadog::start(KEY).await;
    fake.set_hook(|r| {
        let status = if r.index == 0 { 503 } else { 202 };
        Some(Reply::new(status, "{\"errors\":[]}").trickle(Duration::from_secs(1)))
    });
    let delivery = DeliveryConfig {
        request_timeout: Duration::from_millis(500),
        ..DeliveryConfig::default()
    };
    let sink = sink_with(&fake, KEY, json!({}), &delivery);
    let events = generated_sink_events(3, 13);
    let started = Instant::now();
    match deliver(&sink, &events).await {
        Outcome::Retry { error, .. } => assert_eq!(error.http_status, Some(503)),
        other => panic!("{other:?}"),
    }
    // Accepted: delivered, although its body never finished arriving.
    assert_eq!(deliver(&sink, &events).await, Outcome::Delivered);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_fake_enforces_the_contract() {
    // Guards the guard: requests that break Datadog's contract get its documented errors.
    let fake = FakeDatadog::start(KEY).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v2/logs", fake.url());
    let post = |key: Option<&str>, ct: &str, body: Vec<u8>| {
        let mut r = client.post(&url).header("content-type", ct).body(body);
        if let Some(k) = key {
            r = r.header("DD-API-KEY", k);
        }
        r.send()
    };
    let one = br#"[{"message":"m","ddtags":"","status":"info"}]"#.to_vec();
    assert_eq!(
        post(None, "application/json", one.clone())
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        post(Some("x"), "application/json", one.clone())
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        post(Some(KEY), "text/plain", one.clone())
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        post(Some(KEY), "application/json", b"{}".to_vec())
            .await
            .unwrap()
            .status(),
        400
    );
    let dup = br#"[{"message":"m","ddtags":"","status":"info","status":"x"}]"#.to_vec();
    assert_eq!(
        post(Some(KEY), "application/json", dup)
            .await
            .unwrap()
            .status(),
        400
    );
    let many = format!(
        "[{}]",
        vec![r#"{"ddtags":"","status":"info"}"#; 1001].join(",")
    );
    assert_eq!(
        post(Some(KEY), "application/json", many.into_bytes())
            .await
            .unwrap()
            .status(),
        400
    );
    let big = format!(
        r#"[{{"ddtags":"","status":"info","m":"{}"}}]"#,
        "x".repeat(5_000_000)
    );
    assert_eq!(
        post(Some(KEY), "application/json", big.into_bytes())
            .await
            .unwrap()
            .status(),
        413
    );
    assert_eq!(
        post(Some(KEY), "application/json", one)
            .await
            .unwrap()
            .status(),
        202
    );
}
