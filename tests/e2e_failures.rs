//! End-to-end tests of failure handling and tenant isolation: parking in the retry topic, the
//! retry schedule, circuit breakers and per-partition backpressure. The compiled binary runs
//! against tansu (one broker per test; records produced one per batch, TESTING.md quirk 2) with
//! webhook receivers in the test process that misbehave on purpose.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const TOPIC: &str = "event-logs";
const FAILURES: &str = "courier-failures";
const PARTITIONS: i32 = 4;
const CATCH_UP: Duration = Duration::from_secs(60);

fn broker() -> Tansu {
    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), TOPIC, PARTITIONS);
    create_topic(&tansu.brokers(), FAILURES, 1);
    tansu
}

/// Produced events: bytes, id, project and where the broker put each.
struct Produced {
    events: Vec<(Vec<u8>, String, String)>,
    positions: Vec<(i32, i64)>,
}

impl Produced {
    fn of_project(&self, project: &str) -> HashMap<Vec<u8>, usize> {
        multiset(
            self.events
                .iter()
                .filter(|(_, _, p)| p == project)
                .map(|(b, _, _)| b.clone()),
        )
    }

    fn ids_of_project(&self, project: &str) -> HashMap<String, (i32, i64)> {
        self.events
            .iter()
            .zip(&self.positions)
            .filter(|((_, _, p), _)| p == project)
            .map(|((_, id, _), pos)| (id.clone(), *pos))
            .collect()
    }
}

/// `per_project` events for each project, round-robin over the partitions. Generated
/// delivery-failure events are left out: this test counts ordinary events only.
fn produce_for(brokers: &str, projects: &[String], per_project: usize, seed: u64) -> Produced {
    let mut gen = generator(seed, projects.len());
    let events: Vec<(Vec<u8>, String, String)> =
        ordinary_events(&mut gen, per_project * projects.len(), projects)
            .into_iter()
            .map(|(project, bytes)| {
                let id = event_id(&bytes);
                (bytes, id, project)
            })
            .collect();
    let positions = produce_spread(
        brokers,
        TOPIC,
        PARTITIONS,
        events.iter().map(|(b, _, _)| b.clone()),
    );
    Produced { events, positions }
}

fn failure_events(brokers: &str) -> Vec<Value> {
    read_all(brokers, FAILURES, Duration::from_secs(2))
        .into_iter()
        .map(|(_, _, b)| serde_json::from_slice(&b).expect("failure events are JSON"))
        .collect()
}

/// Delivery-failure events (with event ids) about `destination`.
fn delivery_failures<'a>(events: &'a [Value], destination: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["destinationId"] == destination && e["payload"]["eventIds"].is_array())
        .collect()
}

fn state_messages(events: &[Value], destination: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["destinationId"] == destination && e["payload"]["state"].is_string())
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

fn wait_committed(brokers: &str, ends: &HashMap<i32, i64>, courier: &Courier, within: Duration) {
    let start = Instant::now();
    loop {
        let committed = committed_offsets(brokers, "courier-test", TOPIC);
        if ends.iter().all(|(p, e)| committed.get(p) == Some(e)) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "committed offsets {committed:?} never reached {ends:?}\n{}",
            courier.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits for `cond`, failing with the courier and broker logs.
fn wait_for(what: &str, courier: &Courier, tansu: &Tansu, cond: impl FnMut() -> bool) {
    wait_explained(what, CATCH_UP, Duration::from_millis(200), cond, || {
        format!(
            "{}\n--- broker ---\n{}",
            courier.log_tail(),
            tansu.log_tail(30)
        )
    });
}

fn config(brokers: &str) -> CourierConfig {
    CourierConfig::new(brokers)
        .delivery("retry_max_elapsed", "\"500ms\"")
        .delivery("retry_schedule", "[\"1s\", \"1s\"]")
        .delivery("circuit_failure_threshold", "3")
        .delivery("probe_interval", "\"300ms\"")
        .delivery("request_timeout", "\"1s\"")
}

/// Broker: tansu. A destination answers 503 for the whole test: its events are parked,
/// retried on the (shortened) schedule, and end as delivery-failure events whose ids and
/// source ranges cover exactly its events — each once. The healthy destination of another
/// project gets everything, and the Event Logs offsets complete.
#[test]
fn a_destination_down_for_the_whole_run_ends_in_failure_events_covering_exactly_its_events() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let down = WebhookReceiver::start(ReceiverConfig::default());
    down.set_behaviour(Behaviour::Always(503));
    let ok = WebhookReceiver::start(ReceiverConfig::default());
    let cfg = config(&brokers)
        .destination(down.destination_toml("proj_0001", "hook-down"))
        .destination(ok.destination_toml("proj_0002", "hook-ok"));
    let courier = Courier::start_ready(&cfg);
    let projects = ["proj_0001".to_string(), "proj_0002".to_string()];
    let produced = produce_for(&brokers, &projects, 200, 7);
    let expected_ids = produced.ids_of_project("proj_0001");

    wait_committed(
        &brokers,
        &end_offsets(&produced.positions),
        &courier,
        CATCH_UP,
    );
    let start = Instant::now();
    let reported = loop {
        let events = failure_events(&brokers);
        let ids: Vec<String> = delivery_failures(&events, "hook-down")
            .iter()
            .flat_map(|e| e["payload"]["eventIds"].as_array().unwrap().clone())
            .map(|id| id.as_str().unwrap().to_owned())
            .collect();
        let distinct: HashSet<&String> = ids.iter().collect();
        if distinct.len() >= expected_ids.len() {
            break events;
        }
        assert!(
            start.elapsed() < CATCH_UP,
            "only {} of {} events were reported failed\n{}\n--- broker ---\n{}",
            distinct.len(),
            expected_ids.len(),
            courier.log_tail(),
            tansu.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(300));
    };

    let failures = delivery_failures(&reported, "hook-down");
    let mut seen = HashSet::new();
    for f in &failures {
        assert_eq!(f["type"], "EVENT_DESTINATION");
        assert_eq!(f["projectId"], "proj_0001");
        assert_eq!(f["error"]["kind"], "http_status", "{f}");
        assert_eq!(f["error"]["httpStatus"], 503, "{f}");
        assert_eq!(f["error"]["attempts"], 2, "the last scheduled attempt: {f}");
        let source = &f["payload"]["source"];
        assert_eq!(source["topic"], TOPIC);
        let ids = f["payload"]["eventIds"].as_array().unwrap();
        assert_eq!(f["payload"]["count"], ids.len());
        for id in ids {
            let id = id.as_str().unwrap();
            let (partition, offset) = *expected_ids
                .get(id)
                .unwrap_or_else(|| panic!("failure event names {id}, not an event of proj_0001"));
            assert_eq!(source["partition"], partition, "{f}");
            assert!(
                source["firstOffset"].as_i64().unwrap() <= offset
                    && offset <= source["lastOffset"].as_i64().unwrap(),
                "{id} at {partition}/{offset} outside the source range of {f}"
            );
            assert!(seen.insert(id.to_owned()), "{id} reported twice");
        }
    }
    assert_eq!(seen.len(), expected_ids.len());
    assert_eq!(
        state_messages(&reported, "hook-down"),
        vec!["Destination hook-down is failing; deliveries are being retried"]
    );
    assert!(down.events().is_empty());
    assert_eq!(multiset(ok.events()), produced.of_project("proj_0002"));
    assert!(delivery_failures(&reported, "hook-ok").is_empty());
    let parked = metric_sum(&courier.metrics(), "courier_events_parked_total", &[]).unwrap();
    assert!(
        parked >= expected_ids.len() as f64,
        "each event parked at least once: {parked}"
    );
}

/// Broker: tansu. A destination fails long enough for its circuit to open and its events to be
/// parked, then recovers: every parked event is delivered (at least once), one "recovered"
/// event follows one "failing" event, and no event is reported failed.
#[test]
fn a_recovering_destination_gets_its_parked_events_and_a_recovered_event() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default().signed());
    hook.set_behaviour(Behaviour::Always(503));
    let cfg = config(&brokers)
        .delivery(
            "retry_schedule",
            "[\"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\"]",
        )
        .destination(hook.destination_toml("proj_0001", "hook-1"));
    let courier = Courier::start_ready(&cfg);
    let produced = produce_for(&brokers, &["proj_0001".to_string()], 300, 11);
    wait_for("events are parked", &courier, &tansu, || {
        metric_sum(&courier.metrics(), "courier_events_parked_total", &[]).unwrap_or(0.0) >= 300.0
    });
    hook.set_behaviour(Behaviour::Ok);
    let expected = produced.of_project("proj_0001");
    wait_for("every parked event is delivered", &courier, &tansu, || {
        let got: HashSet<Vec<u8>> = hook.events().into_iter().collect();
        expected.keys().all(|e| got.contains(e))
    });
    wait_committed(
        &brokers,
        &end_offsets(&produced.positions),
        &courier,
        CATCH_UP,
    );
    let mut events = Vec::new();
    wait_for("the recovered event is written", &courier, &tansu, || {
        events = failure_events(&brokers);
        state_messages(&events, "hook-1").len() >= 2
    });
    assert_eq!(
        state_messages(&events, "hook-1"),
        vec![
            "Destination hook-1 is failing; deliveries are being retried",
            "Destination hook-1 recovered"
        ],
        "{}",
        courier.log_tail()
    );
    assert!(delivery_failures(&events, "hook-1").is_empty());
    assert!(hook.violations().is_empty(), "{:?}", hook.violations());
    let got = multiset(hook.events());
    assert!(
        got.keys().all(|e| expected.contains_key(e)),
        "nothing foreign"
    );
}

/// Broker: tansu. Twenty projects, one destination each: two answer 503 forever and one never
/// answers. The seventeen healthy destinations receive every one of their events, and the
/// Event Logs offsets complete (the broken ones' events are parked, not waited for).
#[test]
fn broken_destinations_never_stall_healthy_ones() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let projects: Vec<String> = (1..=20).map(|i| format!("proj_{i:04}")).collect();
    let receivers: Vec<WebhookReceiver> = (0..20)
        .map(|i| {
            let r = WebhookReceiver::start(ReceiverConfig::default());
            match i {
                0 | 1 => r.set_behaviour(Behaviour::Always(503)),
                2 => r.set_behaviour(Behaviour::Hang),
                _ => {}
            }
            r
        })
        .collect();
    let mut cfg = config(&brokers)
        .delivery("retry_schedule", "[\"1h\"]")
        .delivery("queue_max_events", "20");
    for (project, r) in projects.iter().zip(&receivers) {
        cfg = cfg.destination(r.destination_toml(project, "hook"));
    }
    let courier = Courier::start_ready(&cfg);
    let produced = produce_for(&brokers, &projects, 60, 3);
    let started = Instant::now();
    for (project, r) in projects.iter().zip(&receivers).skip(3) {
        let expected = produced.of_project(project);
        wait_for(
            &format!("{project} receives its events"),
            &courier,
            &tansu,
            || {
                let got: HashSet<Vec<u8>> = r.events().into_iter().collect();
                expected.keys().all(|e| got.contains(e))
            },
        );
        assert_eq!(multiset(r.events()), expected, "{project}");
    }
    let healthy_done = started.elapsed();
    wait_committed(
        &brokers,
        &end_offsets(&produced.positions),
        &courier,
        CATCH_UP,
    );
    for r in &receivers[..3] {
        assert!(r.events().is_empty());
    }
    eprintln!("healthy destinations complete after {healthy_done:?}");
}
