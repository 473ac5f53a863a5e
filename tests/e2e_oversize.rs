//! End-to-end tests of records over the producer's size limit (`message.max.bytes`, 1,000,000
//! by default): a failure event about a large batch, and an event too large to wait in the
//! retry topic. librdkafka refuses such a message for good (`MessageSizeTooLarge`); before
//! the fix courier retried it forever and the partition's commit point never moved.
//!
//! The compiled binary runs against tansu (one broker per test; records produced one per
//! batch, TESTING.md quirk 2) with webhook receivers in the test process.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const TOPIC: &str = "event-logs";
const FAILURES: &str = "courier-failures";
const CATCH_UP: Duration = Duration::from_secs(120);
/// librdkafka's default `message.max.bytes` (courier's config does not change it here).
const MESSAGE_MAX_BYTES: usize = 1_000_000;

fn broker(partitions: i32) -> Tansu {
    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), TOPIC, partitions);
    create_topic(&tansu.brokers(), FAILURES, 1);
    tansu
}

/// An Event Log of `project` with id `id` and `pad` bytes of payload.
fn event(project: &str, id: &str, pad: usize) -> Vec<u8> {
    let mut event = event_log(project, id);
    event["message"] = json!("order synced");
    event["timestamp"] = json!("2026-12-06T05:00:00.000Z");
    event["payload"] = json!({"pad": "p".repeat(pad)});
    serde_json::to_vec(&event).unwrap()
}

/// Every message of the failures topic: (value size, JSON).
fn failure_events(brokers: &str) -> Vec<(usize, Value)> {
    read_all(brokers, FAILURES, Duration::from_secs(2))
        .into_iter()
        .map(|(_, _, b)| (b.len(), serde_json::from_slice(&b).expect("JSON")))
        .collect()
}

fn wait_committed(brokers: &str, ends: &HashMap<i32, i64>, courier: &Courier, tansu: &Tansu) {
    wait_explained(
        "the partitions are committed to their end",
        CATCH_UP,
        Duration::from_millis(300),
        || {
            let committed = committed_offsets(brokers, "courier-test", TOPIC);
            ends.iter().all(|(p, e)| committed.get(p) == Some(e))
        },
        || {
            format!(
                "committed {:?}, ends {ends:?}\n{}\n--- broker ---\n{}",
                committed_offsets(brokers, "courier-test", TOPIC),
                courier.log_tail(),
                tansu.log_tail(20)
            )
        },
    );
}

fn replay(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_courier"))
        .arg("replay")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run courier replay")
}

/// Broker: tansu. 20,000 events of one project (ids of 120 characters, so one partition's
/// list is about 1.3 MB) are read as one batch by a webhook destination that answers 400.
/// Figures checked: every failure event is under 1,000,000 bytes; each of the two partitions
/// needed at least two; together they list each of the 20,000 ids exactly once, each inside
/// its event's source range with `count` equal to its list; and both partitions are committed
/// to their end (before the fix: `MessageSizeTooLarge` retried forever, 0 ids reported,
/// nothing committed).
///
/// Then `courier replay --from-failures` re-delivers exactly those 20,000 events — and not
/// the two events of another project placed around one of them with the same id (before the
/// replay checked `projectId`, one of them was delivered to this project's destination).
#[test]
fn a_large_rejected_batch_is_reported_in_failure_events_that_fit_and_replays_exactly() {
    let tansu = broker(2);
    let brokers = tansu.brokers();
    const N: usize = 20_000;
    let ids: Vec<String> = (0..N)
        .map(|i| format!("evt_{i:06}_{}", "x".repeat(109)))
        .collect();
    assert_eq!(ids[0].len(), 120);
    // (partition, id, bytes)
    let mut messages: Vec<(i32, Option<usize>, Vec<u8>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| ((i % 2) as i32, Some(i), event("proj_a", id, 40)))
        .collect();
    // Another project's events with the id of a proj_a event, just before and just after
    // it in its partition: one of them is inside the source range that lists the id.
    let twin = 2 * 2_345;
    let collision = event("proj_b", &ids[twin], 40);
    messages.insert(twin + 2, (0, None, collision.clone()));
    messages.insert(twin, (0, None, collision.clone()));
    // Produced before courier starts, so its first batch takes all 20,000.
    let positions = produce(
        &brokers,
        TOPIC,
        messages.iter().map(|(p, _, b)| (Some(*p), b.clone())),
    );
    let ends = end_offsets(&positions);
    let offsets: HashMap<&str, (i32, i64)> = messages
        .iter()
        .zip(&positions)
        .filter_map(|((_, i, _), pos)| i.map(|i| (ids[i].as_str(), *pos)))
        .collect();
    assert_eq!(offsets.len(), N);

    let hook = WebhookReceiver::start(ReceiverConfig::default());
    hook.set_behaviour(Behaviour::Always(400));
    let cfg = CourierConfig::new(&brokers)
        .delivery("batch_max_events", "20000")
        .delivery("batch_max_bytes", "67108864")
        .delivery("batch_timeout", "\"20s\"")
        .delivery("queue_max_events", "20000")
        .destination(hook.destination_toml("proj_a", "hook-a"));
    let courier = Courier::start_ready(&cfg);
    wait_committed(&brokers, &ends, &courier, &tansu);

    let failures = failure_events(&brokers);
    let end = failures.len().to_string();
    let mut listed: HashSet<String> = HashSet::new();
    let mut per_partition: HashMap<i64, usize> = HashMap::new();
    // Delivery failures only (a destination state change may be there too).
    for (bytes, f) in failures
        .iter()
        .filter(|(_, f)| f["payload"]["source"].is_object())
    {
        assert!(
            *bytes < MESSAGE_MAX_BYTES,
            "a failure event of {bytes} bytes"
        );
        assert_eq!(f["destinationId"], "hook-a", "{}", f["message"]);
        assert_eq!(f["error"]["kind"], "http_status");
        assert_eq!(f["error"]["httpStatus"], 400);
        let list = f["payload"]["eventIds"].as_array().expect("ids listed");
        assert_eq!(f["payload"]["count"], list.len());
        assert_eq!(
            f["message"],
            format!(
                "Unable to deliver {} events to destination hook-a",
                list.len()
            )
        );
        let source = &f["payload"]["source"];
        *per_partition
            .entry(source["partition"].as_i64().unwrap())
            .or_default() += 1;
        for id in list {
            let id = id.as_str().unwrap();
            let (partition, offset) = offsets[id];
            assert_eq!(source["partition"], partition);
            assert!(source["firstOffset"].as_i64().unwrap() <= offset);
            assert!(offset <= source["lastOffset"].as_i64().unwrap());
            assert!(listed.insert(id.to_owned()), "{id} listed twice");
        }
    }
    assert_eq!(listed.len(), N, "every id once");
    assert!(
        per_partition.values().all(|&n| n >= 2) && per_partition.len() == 2,
        "each partition's list needed splitting: {per_partition:?}"
    );
    let ids_of =
        |r: &WebhookReceiver| -> Vec<String> { r.events().iter().map(|e| event_id(e)).collect() };
    assert!(hook.events().is_empty());
    drop(courier);

    hook.set_behaviour(Behaviour::Ok);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("courier.toml");
    std::fs::write(&path, cfg.to_toml("127.0.0.1:1")).unwrap();
    let out = replay(&path, &["--from-failures", "--from", "0", "--to", &end]);
    let describe = format!(
        "exit {:?}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{describe}");
    let got = hook.events();
    assert!(
        !got.contains(&collision),
        "another project's event was replayed to hook-a"
    );
    assert_eq!(got.len(), N, "{describe}");
    let replayed: HashSet<String> = ids_of(&hook).into_iter().collect();
    assert_eq!(replayed, listed);
}

/// Broker: tansu. A batch of ten small events and one of 1,000,000 bytes (allowed by
/// `limits.max_event_bytes`, 1 MiB) goes to a destination that answers 503: the batch is
/// parked (the schedule's one attempt is an hour away). As a retry-topic record (the event plus nine headers) the large one is over
/// `message.max.bytes`: it is reported in a failure event with `error.kind =
/// too_large_to_park`, the ten others are parked (`courier_events_parked_total` = 10), and
/// the partition is committed to its end (before the fix: the parker retried the large
/// record forever and the partition's commit point never moved).
#[test]
fn an_event_too_large_to_park_is_reported_and_the_rest_of_its_batch_parked() {
    let tansu = broker(1);
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    hook.set_behaviour(Behaviour::Always(503));
    let mut messages: Vec<Vec<u8>> = (0..10)
        .map(|i| event("proj_a", &format!("small-{i}"), 100))
        .collect();
    let skeleton = event("proj_a", "large", 0).len();
    let large = event("proj_a", "large", 1_000_000 - skeleton);
    assert_eq!(large.len(), 1_000_000);
    messages.insert(5, large);
    let positions = produce(
        &brokers,
        TOPIC,
        messages.iter().map(|b| (Some(0), b.clone())),
    );
    let ends = end_offsets(&positions);

    let cfg = CourierConfig::new(&brokers)
        .delivery("batch_max_events", "100")
        .delivery("batch_max_bytes", "16777216")
        .delivery("batch_timeout", "\"2s\"")
        .delivery("retry_max_elapsed", "\"300ms\"")
        .delivery("retry_schedule", "[\"1h\"]")
        .destination(hook.destination_toml("proj_a", "hook-a"));
    let courier = Courier::start_ready(&cfg);
    wait_committed(&brokers, &ends, &courier, &tansu);

    let mut reported = Vec::new();
    wait_explained(
        "the large event is reported",
        CATCH_UP,
        Duration::from_millis(300),
        || {
            reported = failure_events(&brokers)
                .into_iter()
                .map(|(_, f)| f)
                .filter(|f| f["payload"]["eventIds"].is_array())
                .collect();
            !reported.is_empty()
        },
        || courier.log_tail(),
    );
    assert_eq!(reported.len(), 1, "{reported:?}");
    let f = &reported[0];
    assert_eq!(f["error"]["kind"], "too_large_to_park", "{f}");
    assert_eq!(f["payload"]["eventIds"], json!(["large"]));
    assert_eq!(f["payload"]["source"]["firstOffset"], positions[5].1);
    assert_eq!(f["destinationId"], "hook-a");
    let metrics = courier.metrics();
    assert_eq!(
        metric_sum(&metrics, "courier_events_parked_total", &[]),
        Some(10.0),
        "the ten small events are parked, the large one is not"
    );
    assert_eq!(
        metric_sum(&metrics, "courier_events_failed_total", &[]),
        Some(1.0)
    );
}
