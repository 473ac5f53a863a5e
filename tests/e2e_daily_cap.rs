//! End-to-end `daily_cap`: the compiled `courier` binary against tansu (one broker, records
//! produced one per batch, TESTING.md quirk 2; no broker fault is injected).
//!
//! A destination capped at 100 events a day receives the first 100 of 300 — the first of each
//! partition, in partition order (the lane takes events as they arrive; partitions interleave,
//! so which partition gives how many of the 100 varies, but within one no later event is sent
//! while an earlier is skipped) — and an uncapped destination of the same project receives all
//! 300. The skipped 200 complete (the commit point reaches the end of the topic), leave the
//! in-flight budget, are counted in `courier_capped_events_total`, and the destination's
//! `daily_cap_reached` state event is written to the failures topic once. A replay of the
//! range afterwards is not capped and delivers the skipped events.
//!
//! The test assumes it does not run across UTC midnight (a new day would reopen the cap).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use serde_json::Value;

const TOPIC: &str = "event-logs";
const FAILURES: &str = "courier-failures";
const PROJECT: &str = "proj_cap";
const CATCH_UP: Duration = Duration::from_secs(60);

#[test]
fn a_capped_destination_gets_the_first_events_and_one_state_event() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 2);
    create_topic(&brokers, FAILURES, 1);
    let n = 300;
    let cap = 100;
    // Event i goes to partition i % 2, so within a partition a smaller i is an earlier offset.
    let positions = produce(
        &brokers,
        TOPIC,
        (0..n).map(|i| {
            let event = event_log(PROJECT, &format!("evt-{i}"));
            (Some(i as i32 % 2), event.to_string().into_bytes())
        }),
    );
    let ends = end_offsets(&positions);

    let capped = WebhookReceiver::start(ReceiverConfig::default());
    let plain = WebhookReceiver::start(ReceiverConfig::default());
    let cfg = CourierConfig::new(&brokers)
        .destination(format!(
            "{}daily_cap = {{ events = {cap} }}\n",
            capped.destination_toml(PROJECT, "capped")
        ))
        .destination(plain.destination_toml(PROJECT, "plain"));
    let mut courier = Courier::start_ready(&cfg);

    wait_explained(
        "committed offsets reach the end of the topic",
        CATCH_UP,
        Duration::from_millis(200),
        || {
            let committed = committed_offsets(&brokers, "courier-test", TOPIC);
            ends.iter().all(|(p, e)| committed.get(p) == Some(e))
        },
        || courier.log_tail(),
    );
    wait_explained(
        "the uncapped destination received every event",
        CATCH_UP,
        Duration::from_millis(100),
        || plain.event_count() >= n,
        || courier.log_tail(),
    );
    let cap_events = || -> Vec<Value> {
        read_all(&brokers, FAILURES, Duration::from_secs(2))
            .into_iter()
            .map(|(_, _, v)| serde_json::from_slice::<Value>(&v).unwrap())
            .filter(|v| v["payload"]["state"] == "daily_cap_reached")
            .collect()
    };
    wait_explained(
        "the daily cap's state event is written",
        CATCH_UP,
        Duration::from_millis(200),
        || !cap_events().is_empty(),
        || courier.log_tail(),
    );
    // Anything still on its way would have arrived by now.
    std::thread::sleep(Duration::from_millis(500));

    // Exactly `cap` events, each once, and in each partition the earliest ones.
    let delivered: Vec<usize> = capped
        .events()
        .iter()
        .map(|b| event_id(b)["evt-".len()..].parse().unwrap())
        .collect();
    assert_eq!(delivered.len(), cap, "{delivered:?}");
    let mut by_partition: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in &delivered {
        by_partition.entry(i % 2).or_default().push(*i);
    }
    for (partition, mut got) in by_partition {
        got.sort_unstable();
        let prefix: Vec<usize> = (0..got.len()).map(|k| k * 2 + partition).collect();
        assert_eq!(
            got, prefix,
            "partition {partition}: the first events, no hole"
        );
    }
    assert_eq!(
        plain.event_count(),
        n,
        "the uncapped destination is untouched"
    );

    let metrics = courier.metrics();
    assert_eq!(
        metric_sum(
            &metrics,
            "courier_capped_events_total",
            &[("destination_type", "webhook")]
        ),
        Some((n - cap) as f64),
        "{metrics}"
    );
    assert_eq!(
        metric_sum(&metrics, "courier_in_flight_events", &[]),
        Some(0.0),
        "skipped events left the in-flight budget"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "courier_failure_events_total",
            &[("kind", "daily_cap_reached")]
        ),
        Some(1.0)
    );

    let states = cap_events();
    assert_eq!(states.len(), 1, "one state event a day: {states:?}");
    let state = &states[0];
    assert_eq!(state["projectId"], PROJECT);
    assert_eq!(state["destinationId"], "capped");
    assert_eq!(state["destinationType"], "webhook");
    assert_eq!(state["type"], "EVENT_DESTINATION");
    assert_eq!(state["level"], "WARN");
    assert_eq!(state["payload"]["cap"]["events"], cap);
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(state["payload"]["day"], today.as_str());
    assert!(
        state["message"]
            .as_str()
            .unwrap()
            .starts_with("Destination capped reached its daily cap"),
        "{state}"
    );
    // The skipped events are not delivery failures: no failure event names them.
    let failures = read_all(&brokers, FAILURES, Duration::from_secs(1));
    assert_eq!(failures.len(), 1, "only the state event");
    courier.terminate(Duration::from_secs(30));

    // A replay of the whole range is not capped: it delivers the skipped 200 (and the first
    // 100 again), with no new state event.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_courier"))
        .arg("replay")
        .arg("--config")
        .arg(courier.config_path())
        .args([
            "--from",
            "0",
            "--to",
            &(n / 2).to_string(),
            "--destination",
            "capped",
        ])
        .output()
        .expect("run courier replay");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: HashSet<String> = capped.events().iter().map(|b| event_id(b)).collect();
    assert_eq!(ids.len(), n, "every event delivered once the replay ran");
    assert_eq!(capped.event_count(), n + cap);
    let states = read_all(&brokers, FAILURES, Duration::from_secs(1));
    assert_eq!(states.len(), 1, "the replay wrote no state event");
}
