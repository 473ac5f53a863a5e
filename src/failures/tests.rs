use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;

use super::event::{delivery_reports, stable_id, Report};
use super::size::{budget, reported_id};
use super::*;
use crate::sinks::ErrorKind;

#[test]
fn stable_ids_depend_on_every_part() {
    let a = stable_id("fail", &["p", "d", "t", "0", "1", "2"]);
    assert_eq!(a, stable_id("fail", &["p", "d", "t", "0", "1", "2"]));
    assert_ne!(a, stable_id("fail", &["p", "d", "t", "0", "1", "3"]));
    assert_ne!(
        stable_id("x", &["ab", "c"]),
        stable_id("x", &["a", "bc"]),
        "parts are delimited"
    );
}

fn error(message: &str) -> DeliveryError {
    DeliveryError {
        kind: ErrorKind::HttpStatus,
        http_status: Some(400),
        message: message.into(),
    }
}

/// Events with the given ids, over `partitions` partitions, offsets counting up.
fn events(ids: &[String], partitions: i32) -> Vec<Event> {
    let acker = crate::source::Acker::new();
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let i = i as i64;
            let partition = (i % i64::from(partitions)) as i32;
            let raw = serde_json::json!({"id": id, "projectId": "proj_a", "message": "m"});
            Event {
                raw: Bytes::from(serde_json::to_vec(&raw).unwrap()),
                partition,
                offset: 1000 + i,
                failure_event: false,
                ack: acker.track(partition, 1000 + i, 1),
            }
        })
        .collect()
}

fn reports(events: &[Event], error: &DeliveryError, budget: usize) -> Vec<Report> {
    let f = DeliveryFailure {
        project: "proj_a",
        destination_id: "hook-1",
        destination_type: "webhook",
        error,
        attempts: 3,
        first_attempt: Utc::now(),
        last_attempt: Utc::now(),
        events,
    };
    delivery_reports("event-logs", budget, &f, Utc::now())
}

/// Checks that `reports` are within `budget`, each consistent with itself, and list every
/// event of `events` exactly once (by the id replay computes), inside their own source range.
fn check_cover(reports: &[Report], events: &[Event], budget: usize) {
    let mut by_id: HashMap<(i32, String), Vec<i64>> = HashMap::new();
    for e in events {
        let id = reported_id(&e.raw, "event-logs", e.partition, e.offset);
        by_id.entry((e.partition, id)).or_default().push(e.offset);
    }
    let mut listed = HashSet::new();
    let mut ids = HashSet::new();
    for r in reports {
        assert!(r.bytes.len() <= budget, "{} > {budget}", r.bytes.len());
        let v: Value = serde_json::from_slice(&r.bytes).unwrap();
        assert!(
            ids.insert(v["id"].as_str().unwrap().to_owned()),
            "ids differ"
        );
        let list = v["payload"]["eventIds"].as_array().expect("listed");
        assert_eq!(v["payload"]["count"], list.len());
        assert_eq!(
            v["message"],
            format!(
                "Unable to deliver {} events to destination hook-1",
                list.len()
            )
        );
        let source = &v["payload"]["source"];
        let (first, last) = (
            source["firstOffset"].as_i64().unwrap(),
            source["lastOffset"].as_i64().unwrap(),
        );
        let partition = source["partition"].as_i64().unwrap() as i32;
        for id in list {
            // Ids may repeat: each listed id takes one not yet listed event of the range.
            let offsets = by_id
                .get(&(partition, id.as_str().unwrap().to_owned()))
                .unwrap_or_else(|| panic!("{id} names no event of partition {partition}"));
            let offset = offsets
                .iter()
                .find(|&&o| (first..=last).contains(&o) && !listed.contains(&(partition, o)))
                .unwrap_or_else(|| panic!("{id} names no unlisted event of {source}"));
            listed.insert((partition, *offset));
        }
        let bare: Value = serde_json::from_slice(r.bare.as_ref().unwrap()).unwrap();
        assert_eq!(bare["id"], v["id"]);
        assert_eq!(bare["payload"]["source"], v["payload"]["source"]);
        assert!(bare["payload"].get("eventIds").is_none());
    }
    assert_eq!(listed.len(), events.len(), "every event listed");
}

/// 100,000 events of one partition failing at once: one failure event would be about 1.9 MB,
/// over librdkafka's default `message.max.bytes`; split, each part fits and every id is
/// listed once.
#[test]
fn a_large_batch_is_reported_in_failure_events_that_each_fit() {
    let ids: Vec<String> = (0..100_000).map(|i| format!("evt_{i:012}")).collect();
    let events = events(&ids, 1);
    let budget = budget(1_000_000, "proj_a".len());
    let reports = reports(&events, &error("bad request"), budget);
    assert!(reports.len() >= 2, "{} failure events", reports.len());
    check_cover(&reports, &events, budget);
}

/// Ids of 10 KB each are listed by position (`topic-partition-offset`), so they cost no
/// more than a short id.
#[test]
fn long_event_ids_are_listed_by_position() {
    let ids: Vec<String> = (0..50)
        .map(|i| format!("{i}{}", "x".repeat(10_000)))
        .collect();
    let events = events(&ids, 2);
    let budget = budget(1_000_000, 6);
    let reports = reports(&events, &error("bad"), budget);
    assert_eq!(reports.len(), 2, "one per partition");
    for r in &reports {
        assert!(r.bytes.len() < 5_000, "{}", r.bytes.len());
        let v: Value = serde_json::from_slice(&r.bytes).unwrap();
        let first = v["payload"]["eventIds"][0].as_str().unwrap();
        assert!(first.starts_with("event-logs-"), "{first}");
    }
    check_cover(&reports, &events, budget);
}

/// The destination's answer is trimmed: a failure event never carries a megabyte of it.
#[test]
fn the_error_message_is_trimmed() {
    let events = events(&["e1".to_string()], 1);
    let reports = reports(&events, &error(&"ä".repeat(500_000)), 1_000_000);
    let v: Value = serde_json::from_slice(&reports[0].bytes).unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.chars().count() < 1100, "{}", message.len());
    assert!(message.ends_with("more bytes)"), "{message}");
}

/// When even one id does not fit (a tiny limit), the partition's events are reported in one
/// failure event without ids, whose source range names them all.
#[test]
fn without_room_for_one_id_the_range_alone_reports() {
    let events = events(&["e1".to_string(), "e2".to_string()], 1);
    let reports = reports(&events, &error("bad"), 200);
    assert_eq!(reports.len(), 1);
    assert!(reports[0].bare.is_none());
    let v: Value = serde_json::from_slice(&reports[0].bytes).unwrap();
    assert!(v["payload"].get("eventIds").is_none());
    assert_eq!(v["payload"]["count"], 2);
    assert_eq!(v["payload"]["source"]["firstOffset"], 1000);
    assert_eq!(v["payload"]["source"]["lastOffset"], 1001);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn reports_list_every_event_once_within_the_budget(
        ids in proptest::collection::vec(prop_oneof!["[a-z0-9]{0,30}", "\\PC{0,400}"], 1..300),
        partitions in 1i32..4,
        budget in 2_000usize..20_000,
    ) {
        let events = events(&ids, partitions);
        let reports = reports(&events, &error("bad"), budget);
        check_cover(&reports, &events, budget);
    }
}

#[test]
fn failure_event_has_the_contract_shape() {
    let events = events(&["e1".to_string(), "e2".to_string()], 1);
    let error = DeliveryError {
        kind: ErrorKind::HttpStatus,
        http_status: Some(503),
        message: "down".into(),
    };
    let reports = reports(&events, &error, 1_000_000);
    let v: Value = serde_json::from_slice(&reports[0].bytes).unwrap();
    assert_eq!(v["type"], "EVENT_DESTINATION");
    assert_eq!(v["level"], "ERROR");
    assert_eq!(v["status"], "EVENT_STATUS.FAILED");
    assert_eq!(
        v["message"],
        "Unable to deliver 2 events to destination hook-1"
    );
    assert_eq!(v["projectId"], "proj_a");
    assert_eq!(v["destinationId"], "hook-1");
    assert_eq!(v["destinationType"], "webhook");
    assert_eq!(v["error"]["kind"], "http_status");
    assert_eq!(v["error"]["httpStatus"], 503);
    assert_eq!(v["error"]["message"], "down");
    assert_eq!(v["error"]["attempts"], 3);
    assert_eq!(v["payload"]["count"], 2);
    assert_eq!(v["payload"]["source"]["topic"], "event-logs");
    assert_eq!(v["payload"]["source"]["partition"], 0);
    assert_eq!(v["payload"]["source"]["firstOffset"], 1000);
    assert_eq!(v["payload"]["source"]["lastOffset"], 1001);
    assert_eq!(v["payload"]["eventIds"][1], "e2");
}

/// An unroutable event keeps its detail short even when the message was huge.
#[test]
fn unroutable_events_are_small() {
    let bytes = event::unroutable_event(
        "event-logs",
        1,
        7,
        Unroutable::TooLarge,
        &"d".repeat(100_000),
        Some("proj_a"),
        Utc::now(),
    );
    assert!(bytes.len() < 4_000, "{}", bytes.len());
}
