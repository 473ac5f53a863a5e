//! The retry worker against a broker that skips the rest of a record batch fetched from its
//! middle (tansu, TESTING.md quirk 2). Parked records that share a batch with earlier,
//! already-due records are rewound to when they are not due yet: the worker must notice
//! that the broker did not return them and rewind further back, or they stay parked for
//! ever (what made the recovering-destination test hang now and then).
//!
//! Broker: tansu, on purpose (the mock cluster and Kafka return whole batches). The parked
//! records are written by the test itself, in one batch per partition, with the headers
//! courier's parker writes.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use courier::parking::header;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::json;

const RETRY: &str = "courier-retry";

fn parked_headers(next_attempt_at_ms: i64, source_offset: i64) -> OwnedHeaders {
    let now = chrono::Utc::now().timestamp_millis().to_string();
    let next = next_attempt_at_ms.to_string();
    let offset = source_offset.to_string();
    let pairs = [
        (header::PROJECT, "proj_0001"),
        (header::DESTINATION, "hook-1"),
        (header::ATTEMPT, "1"),
        (header::NEXT_ATTEMPT_AT, next.as_str()),
        (header::FIRST_FAILURE_AT, now.as_str()),
        (header::LAST_ERROR, "HTTP 503"),
        (header::SOURCE_TOPIC, "event-logs"),
        (header::SOURCE_PARTITION, "0"),
        (header::SOURCE_OFFSET, offset.as_str()),
    ];
    pairs.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        })
    })
}

/// Event number `n` of `proj_0001` (a failed webhook trigger), with an id no other test event
/// has.
fn event(n: i64) -> Vec<u8> {
    let mut event = event_log("proj_0001", &format!("evt-parked-{n}-{}", unique_number()));
    event["timestamp"] = json!("2026-11-22T08:00:00.000Z");
    event["level"] = json!("WARN");
    event["type"] = json!("WEBHOOK_TRIGGER");
    event["message"] = json!("Webhook delivery failed");
    event.to_string().into_bytes()
}

/// Writes `records` (`(partition, due ms, value)`) to the retry topic: those of one call
/// share one record batch per partition (a long linger, sent together).
fn park(brokers: &str, records: &[(i32, i64, Vec<u8>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "200")
        .set("batch.num.messages", "10000")
        .set("acks", "all")
        .create()
        .unwrap();
    rt().block_on(async {
        let sends = records
            .iter()
            .enumerate()
            .map(|(i, (partition, due, value))| {
                let record = FutureRecord::<str, [u8]>::to(RETRY)
                    .partition(*partition)
                    .key("proj_0001/hook-1/1")
                    .payload(value.as_slice())
                    .headers(parked_headers(*due, i as i64));
                producer.send(record, Duration::from_secs(30))
            });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| e).unwrap();
        }
    });
}

#[test]
fn parked_records_after_a_rewind_into_a_batch_are_delivered() {
    parked_copies_after_a_rewind_are_delivered(None);
}

/// The upgrade path: copies parked by an older courier (or before a mode change) are still
/// delivered by a courier that parks by reference itself.
#[test]
fn copies_parked_before_references_are_delivered_by_a_reference_mode_courier() {
    parked_copies_after_a_rewind_are_delivered(Some("reference"));
}

fn parked_copies_after_a_rewind_are_delivered(parking: Option<&str>) {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, "event-logs", 1);
    create_topic(&brokers, "courier-failures", 1);
    create_topic(&brokers, RETRY, 2);
    let now = chrono::Utc::now().timestamp_millis();
    let (due, later) = (now - 1000, now + 4000);
    // Per partition, one batch: three due records, then three due in 4 s. The worker
    // delivers the first three and rewinds to the fourth, in the middle of the batch.
    let mut first = Vec::new();
    for partition in 0..2 {
        for (i, at) in [due, due, due, later, later, later].into_iter().enumerate() {
            first.push((partition, at, event(partition as i64 * 100 + i as i64)));
        }
    }
    park(&brokers, &first);
    // Partition 1 also holds a later batch (due now): after the rewind tansu returns it
    // instead of the skipped records. Partition 0 holds nothing more: tansu returns nothing.
    let second: Vec<_> = (0..3).map(|i| (1, due, event(200 + i))).collect();
    park(&brokers, &second);

    let receiver = WebhookReceiver::start(ReceiverConfig::default());
    let mut cfg =
        CourierConfig::new(&brokers).destination(receiver.destination_toml("proj_0001", "hook-1"));
    if let Some(mode) = parking {
        cfg = cfg.parking(mode);
    }
    let courier = Courier::start_ready(&cfg);
    let expected: HashSet<Vec<u8>> = first
        .iter()
        .chain(&second)
        .map(|(_, _, v)| v.clone())
        .collect();
    wait_until(
        "every parked record is delivered",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let got: HashSet<Vec<u8>> = receiver.events().into_iter().collect();
            got.is_superset(&expected)
        },
    );
    let got = receiver.events();
    assert_eq!(
        got.len(),
        expected.len(),
        "each parked record delivered once\n{}",
        courier.log_tail()
    );
    assert!(
        receiver.violations().is_empty(),
        "{:?}",
        receiver.violations()
    );
    // Every event here was delivered by the retry worker: its bytes are counted in
    // courier_delivered_bytes_total as the lane's are (they were not, before the lane and
    // the retry worker settled through one function).
    let webhook = [("destination_type", "webhook")];
    wait_until(
        "the deliveries are counted",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || {
            metric_sum(
                &courier.metrics(),
                "courier_events_delivered_total",
                &webhook,
            ) == Some(expected.len() as f64)
        },
    );
    let bytes: usize = expected.iter().map(Vec::len).sum();
    assert_eq!(
        metric_sum(
            &courier.metrics(),
            "courier_delivered_bytes_total",
            &webhook
        ),
        Some(bytes as f64),
        "bytes of the parked events the retry worker delivered"
    );
    wait_until(
        "the retry group commits past every parked record",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || {
            let committed = committed_offsets(&brokers, "courier-test-retry", RETRY);
            committed.get(&0) == Some(&6) && committed.get(&1) == Some(&9)
        },
    );
}
