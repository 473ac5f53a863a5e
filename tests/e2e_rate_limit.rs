//! End-to-end `rate_limit`: the compiled `courier` binary against tansu (one broker per test,
//! records produced one per batch, TESTING.md quirk 2; no broker fault is injected).
//!
//! The rate is measured where it matters, at the receiver: the arrival times of the requests
//! of a limited webhook destination, beside an unlimited one on the same topic and project
//! that must not be slowed by it. A limit whose waits cannot fit in the in-line budget parks
//! its batches instead of holding them.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

const TOPIC: &str = "event-logs";
const PROJECT: &str = "proj_a";

fn broker() -> Tansu {
    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), TOPIC, 2);
    create_topic(&tansu.brokers(), "courier-failures", 1);
    tansu
}

fn produce_events(brokers: &str, n: usize) {
    let events = (0..n).map(|i| {
        let e = json!({
            "id": format!("evt-{i}"), "timestamp": "2026-01-01T00:00:00Z",
            "level": "INFO", "type": "APP_EVENT", "message": format!("event {i}"),
            "projectId": PROJECT, "payload": {"n": i}
        });
        (Some(i as i32 % 2), e.to_string().into_bytes())
    });
    produce(brokers, TOPIC, events);
}

/// 1,050 events: the destination limited to 50 events/s (burst 50) receives them at 50/s —
/// measured from the receiver's arrival times after the first burst, over about 20 s, within
/// 10 % — while the unlimited destination on the same topic has them all long before.
#[test]
fn a_limited_destination_receives_at_its_rate_and_the_other_at_full_speed() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let limited = WebhookReceiver::start(ReceiverConfig::default());
    let fast = WebhookReceiver::start(ReceiverConfig::default());
    let cfg = CourierConfig::new(&brokers)
        .destination(format!(
            "{}rate_limit = {{ events_per_second = 50 }}\n[destinations.delivery]\nbatch_max_events = 10\n",
            limited.destination_toml(PROJECT, "limited")
        ))
        .destination(fast.destination_toml(PROJECT, "fast"));
    let courier = Courier::start_ready(&cfg);
    let n = 1050;
    produce_events(&brokers, n);
    wait_explained(
        "the limited destination receives every event",
        Duration::from_secs(90),
        Duration::from_millis(200),
        || limited.event_count() >= n,
        || format!("{:?}\n{}", limited.violations(), courier.log_tail()),
    );
    assert_eq!(fast.event_count(), n, "{:?}", fast.violations());

    let mut requests = limited.requests();
    requests.retain(|r| r.status == 200);
    requests.sort_by_key(|r| r.at);
    // Leave the first burst (50 events, taken at once) out: count from the request that
    // completed it.
    let mut seen = 0;
    let start = requests
        .iter()
        .position(|r| {
            seen += r.events;
            seen >= 50
        })
        .unwrap();
    let after: usize = requests[start + 1..].iter().map(|r| r.events).sum();
    let span = requests.last().unwrap().at - requests[start].at;
    let rate = after as f64 / span.as_secs_f64();
    eprintln!("limited destination: {after} events in {span:?} after the first burst = {rate:.2} events/s");
    assert!(
        span > Duration::from_secs(18),
        "1,000 events at 50/s take about 20 s, took {span:?}"
    );
    assert!(
        (rate - 50.0).abs() <= 5.0,
        "{after} events in {span:?}: {rate:.1} events/s, the limit is 50"
    );

    // The other destination was not held back by the limited one's waits.
    let fast_requests = fast.requests();
    let fast_last = fast_requests.iter().map(|r| r.at).max().unwrap();
    let limited_first = requests[0].at;
    assert!(
        fast_last < limited_first + Duration::from_secs(5),
        "the unlimited destination finished {:?} after the limited one started",
        fast_last.saturating_duration_since(limited_first)
    );
    assert_eq!(
        metric_sum(
            &courier.metrics(),
            "courier_rate_limited_batches_total",
            &[]
        )
        .unwrap_or(0.0),
        0.0
    );
}

/// One event per second with a 2 s in-line budget and batches of 20: a batch would wait about
/// 19 s, so it is parked at once (kind `rate_limited`) rather than held; the destination
/// receives no more than its burst plus what the rate allows meanwhile.
#[test]
fn a_wait_past_the_in_line_budget_parks_the_batch() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    let cfg = CourierConfig::new(&brokers)
        .delivery("retry_max_elapsed", "\"2s\"")
        .delivery("retry_schedule", "[\"1h\"]")
        .destination(format!(
            "{}rate_limit = {{ events_per_second = 1, burst = 1 }}\n[destinations.delivery]\nbatch_max_events = 20\nbatch_timeout = \"1s\"\n",
            hook.destination_toml(PROJECT, "slow")
        ));
    let courier = Courier::start_ready(&cfg);
    produce_events(&brokers, 60);
    wait_explained(
        "batches are parked for the rate limit",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let m = courier.metrics();
            metric_sum(&m, "courier_rate_limited_batches_total", &[]).is_some_and(|p| p >= 2.0)
                && metric_sum(&m, "courier_parked_batches_total", &[]).is_some_and(|p| p >= 2.0)
        },
        || courier.log_tail(),
    );
    assert!(
        hook.event_count() < 20,
        "a batch of 20 at 1 event/s cannot be sent within 2 s; received {}",
        hook.event_count()
    );
}

/// The API's definitions go through the same checks as the file's: out-of-bounds numbers are
/// refused with 422, each naming its key.
#[test]
fn the_api_refuses_out_of_bounds_rate_limits() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let mut cfg = CourierConfig::new(&brokers);
    let admin = "admin-token-rate-0123456789";
    let key_env = "COURIER_RATE_TEST_KEY";
    cfg.extra = format!(
        "\n[limits]\nmax_destination_events_per_second = 100\n\n[api]\nencryption_key_env = {}\ntokens = [{{ token = {} }}]\n",
        toml_str(key_env),
        toml_str(admin)
    );
    cfg.env.push((
        key_env.into(),
        base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
    ));
    let courier = Courier::start_ready(&cfg);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let put = |body: Value| -> (u16, Value) {
        let url = format!(
            "http://{}/v1/projects/{PROJECT}/destinations/api-hook",
            courier.listen()
        );
        rt().block_on(async {
            let resp = client
                .put(&url)
                .bearer_auth(admin)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    };
    let (status, body) = put(json!({
        "type": "webhook", "url": "http://127.0.0.1:9/x",
        "rate_limit": {"events_per_second": 0, "burst": 2_000_000}
    }));
    assert_eq!(status, 422, "{body}");
    let text = body.to_string();
    assert!(text.contains("/rate_limit/events_per_second"), "{text}");
    assert!(text.contains("/rate_limit/burst"), "{text}");
}
