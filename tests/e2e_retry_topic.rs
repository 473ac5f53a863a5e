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
    parked_headers_for("proj_0001", "hook-1", next_attempt_at_ms, source_offset)
}

/// The headers courier's parker writes with a copy of an event of `project` parked for its
/// `destination`'s first scheduled attempt.
fn parked_headers_for(
    project: &str,
    destination: &str,
    next_attempt_at_ms: i64,
    source_offset: i64,
) -> OwnedHeaders {
    let now = chrono::Utc::now().timestamp_millis().to_string();
    let next = next_attempt_at_ms.to_string();
    let offset = source_offset.to_string();
    let pairs = [
        (header::PROJECT, project),
        (header::DESTINATION, destination),
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
    event_of("proj_0001", n)
}

/// Event number `n` of `project`, as [`event`].
fn event_of(project: &str, n: i64) -> Vec<u8> {
    let mut event = event_log(project, &format!("evt-parked-{n}-{}", unique_number()));
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

/// A tansu broker with the Event Logs and failures topics (one partition each) and the retry
/// topic in `retry_partitions` partitions; its address.
fn broker(retry_partitions: i32) -> (Tansu, String) {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, "event-logs", 1);
    create_topic(&brokers, "courier-failures", 1);
    create_topic(&brokers, RETRY, retry_partitions);
    (tansu, brokers)
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
    let (_tansu, brokers) = broker(2);
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

/// A destination that hangs has 80 parked copies due at once (one per batch: its
/// `batch_max_events` is 1); another tenant's 5 copies are due a second later, behind them in
/// the same retry partition. The hanging destination may have 4 requests out (its
/// `max_in_flight`), each waiting out its 20 s `request_timeout`; its other batches wait for a
/// slot only until it has answered nothing for half that timeout, then they are postponed
/// (parked again for the same attempt) and the other tenant's copies are read and delivered.
/// Before, each of the hanging destination's batches held one of the retry worker's 64
/// attempt slots until one of its own 4 came free, the worker stopped reading when all 64
/// were taken, and the other tenant's copies waited for the timeouts, 4 at a time (minutes).
#[test]
fn a_hanging_destinations_parked_copies_do_not_hold_back_another_tenants() {
    const HANGING: i64 = 80;
    let (_tansu, brokers) = broker(1);
    let now = chrono::Utc::now().timestamp_millis();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .create()
        .unwrap();
    let write = |project: &str, destination: &str, due: i64, n: i64| {
        let value = event_of(project, n);
        let key = format!("{project}/{destination}/1");
        let record = FutureRecord::<str, [u8]>::to(RETRY)
            .partition(0)
            .key(&key)
            .payload(value.as_slice())
            .headers(parked_headers_for(project, destination, due, n));
        rt().block_on(producer.send(record, Duration::from_secs(30)))
            .map_err(|(e, _)| e)
            .unwrap();
        value
    };
    for n in 0..HANGING {
        write("proj_0001", "black-hole", now, n);
    }
    let healthy_events: Vec<Vec<u8>> = (0..5)
        .map(|n| write("proj_0002", "hook-2", now + 1_000, 1_000 + n))
        .collect();

    let hole = WebhookReceiver::start(ReceiverConfig::default().signed());
    hole.set_behaviour(Behaviour::Hang);
    let healthy = WebhookReceiver::start(ReceiverConfig::default().signed());
    let cfg = CourierConfig::new(&brokers)
        .parking("copy")
        .destination(format!(
            "{}\n[destinations.delivery]\nrequest_timeout = \"20s\"\nmax_in_flight = 4\n\
             batch_max_events = 1\ncircuit_failure_threshold = 1000\n\
             retry_schedule = [\"1h\", \"1h\"]\n",
            hole.destination_toml("proj_0001", "black-hole")
        ))
        .destination(healthy.destination_toml("proj_0002", "hook-2"));
    let courier = Courier::start_ready(&cfg);
    let started = std::time::Instant::now();
    wait_until(
        "the other tenant gets its parked copies",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || healthy.event_count() >= healthy_events.len(),
    );
    eprintln!(
        "the other tenant had its copies {:.1} s after start; {} requests had reached the hanging destination",
        started.elapsed().as_secs_f64(),
        hole.request_count()
    );
    assert!(
        hole.request_count() <= 4,
        "{} requests reached the hanging destination (max_in_flight = 4, none answered)\n{}",
        hole.request_count(),
        courier.log_tail()
    );
    let got: HashSet<Vec<u8>> = healthy.events().into_iter().collect();
    assert_eq!(
        got,
        healthy_events.iter().cloned().collect::<HashSet<_>>(),
        "the other tenant's copies, each once"
    );
    assert_eq!(healthy.event_count(), healthy_events.len());
    // The hanging destination's batches that found no slot were postponed for the same
    // attempt (parked again), not spent: no failure event, and they are still parked.
    wait_until(
        "the hanging destination's other batches are postponed",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            metric_sum(&courier.metrics(), "courier_events_parked_total", &[])
                .is_some_and(|n| n >= (HANGING - 4) as f64)
        },
    );
    assert_eq!(
        metric_sum(&courier.metrics(), "courier_events_failed_total", &[]).unwrap_or(0.0),
        0.0,
        "postponed batches spend no attempt\n{}",
        courier.log_tail()
    );
}
