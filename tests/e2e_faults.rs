//! Broker faults, injected with librdkafka's mock cluster (TESTING.md: tansu cannot inject
//! faults, and fails over a killed group member badly; the mock cluster does both right but
//! keeps only a few thousand messages per partition, so these tests use small volumes). The
//! mock cluster runs in the test process and listens on loopback; the compiled courier binary
//! connects to it like to any broker.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::Value;

const TOPIC: &str = "event-logs";
const FAILURES: &str = "courier-failures";
const CATCH_UP: Duration = Duration::from_secs(60);

type Cluster = MockCluster<'static, DefaultProducerContext>;

fn cluster() -> Cluster {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, 2, 1).unwrap();
    cluster.create_topic(FAILURES, 1, 1).unwrap();
    cluster.create_topic("courier-retry", 2, 1).unwrap();
    cluster
}

/// `n` ordinary events of `proj_0001` generated from `seed`.
fn events(n: usize, seed: u64) -> Vec<Vec<u8>> {
    ordinary_events(&mut generator(seed, 1), n, &["proj_0001"])
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect()
}

fn produce_all(brokers: &str, events: &[Vec<u8>]) -> HashMap<i32, i64> {
    let positions = produce_spread(brokers, TOPIC, 2, events.iter().cloned());
    end_offsets(&positions)
}

fn committed_all(brokers: &str, ends: &HashMap<i32, i64>) -> bool {
    let committed = committed_offsets(brokers, "courier-test", TOPIC);
    ends.iter().all(|(p, e)| committed.get(p) == Some(e))
}

fn wait_for(what: &str, courier: &Courier, cond: impl FnMut() -> bool) {
    wait_explained(what, CATCH_UP, Duration::from_millis(200), cond, || {
        courier.log_tail()
    });
}

fn reported_ids(brokers: &str) -> HashSet<String> {
    read_all(brokers, FAILURES, Duration::from_secs(2))
        .into_iter()
        .filter_map(|(_, _, b)| serde_json::from_slice::<Value>(&b).ok())
        .filter_map(|v| v["payload"]["eventIds"].as_array().cloned())
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect()
}

/// Broker: mock cluster (fault injection). Every batch is rejected (400), so each needs a
/// failure event — but every produce request fails for a while. Nothing may complete while
/// the failure events cannot be written; once the broker accepts them again, every event is
/// reported and the offsets complete.
#[test]
fn unwritable_failures_topic_holds_the_commit_point_until_it_recovers() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    hook.set_behaviour(Behaviour::Always(400));
    let events = events(60, 5);
    let ends = produce_all(&brokers, &events);
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 400],
    );
    let cfg = CourierConfig::new(&brokers)
        .kafka_option("topic.metadata.refresh.interval.ms", "1000")
        .destination(hook.destination_toml("proj_0001", "hook-1"));
    let courier = Courier::start_ready(&cfg);
    wait_for("the destination rejects the events", &courier, || {
        hook.request_count() > 0
    });
    std::thread::sleep(Duration::from_secs(3));
    let committed = committed_offsets(&brokers, "courier-test", TOPIC);
    assert!(
        ends.iter()
            .all(|(p, e)| committed.get(p).copied().unwrap_or(0) < *e),
        "offsets {committed:?} completed although no failure event could be written\n{}",
        courier.log_tail()
    );
    cluster.clear_request_errors(RDKafkaApiKey::Produce);
    wait_for(
        "offsets complete after the broker recovers",
        &courier,
        || committed_all(&brokers, &ends),
    );
    let expected: HashSet<String> = events.iter().map(|e| event_id(e)).collect();
    let mut reported = HashSet::new();
    wait_for("every event is reported", &courier, || {
        reported = reported_ids(&brokers);
        expected.is_subset(&reported)
    });
    assert_eq!(reported, expected);
}

/// Broker: mock cluster (fault injection). Offset commits fail for a while; the commit point
/// is sent again until it sticks.
#[test]
fn failed_commits_are_retried() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 20],
    );
    let cfg =
        CourierConfig::new(&brokers).destination(hook.destination_toml("proj_0001", "hook-1"));
    let courier = Courier::start_ready(&cfg);
    let events = events(50, 9);
    let ends = produce_all(&brokers, &events);
    wait_for("every event delivered", &courier, || {
        hook.event_count() >= 50
    });
    wait_for("offsets committed despite failed commits", &courier, || {
        committed_all(&brokers, &ends)
    });
    let failures = metric_sum(&courier.metrics(), "courier_commit_failures_total", &[]).unwrap();
    assert!(failures > 0.0, "commits did fail: {failures}");
}

/// Broker: mock cluster — a killed group member's partitions move to the survivor after its
/// session expires (on tansu they stay unassigned, TESTING.md quirk 8). Two courier processes
/// share the group; one is killed mid-stream; every event is still delivered.
#[test]
fn a_killed_replica_fails_over_to_the_survivor() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    hook.set_behaviour(Behaviour::Slow(Duration::from_millis(30)));
    let cfg = CourierConfig::new(&brokers)
        .delivery("batch_max_events", "10")
        .destination(hook.destination_toml("proj_0001", "hook-1"));
    let mut first = Courier::start_ready(&cfg);
    let second = Courier::start_ready(&cfg);
    let events = events(1500, 13);
    let ends = produce_all(&brokers, &events);
    wait_for("deliveries under way", &second, || hook.event_count() > 100);
    first.kill9();
    wait_for("the survivor delivers everything", &second, || {
        let got: HashSet<Vec<u8>> = hook.events().into_iter().collect();
        events.iter().all(|e| got.contains(e))
    });
    wait_for("the survivor commits to the end", &second, || {
        committed_all(&brokers, &ends)
    });
    assert!(hook.violations().is_empty(), "{:?}", hook.violations());
}

/// The `(partition → value)` of one metric's series for the Event Logs topic.
fn partition_series(courier: &Courier, metric: &str) -> HashMap<i32, f64> {
    let (status, text) = http_get(courier.listen(), "/metrics").expect("scrape /metrics");
    assert_eq!(status, 200);
    text.lines()
        .filter(|l| {
            l.starts_with(&format!("{metric}{{")) && l.contains(&format!("topic=\"{TOPIC}\""))
        })
        .filter_map(|l| {
            let partition = l
                .split("partition=\"")
                .nth(1)?
                .split('"')
                .next()?
                .parse()
                .ok()?;
            let value = l.rsplit(' ').next()?.parse().ok()?;
            Some((partition, value))
        })
        .collect()
}

/// Broker: mock cluster (cooperative rebalancing works there, TESTING.md quirk 7). A member
/// that hands a partition over stops exporting its committed offset: two members reporting
/// one partition would make the fleet's offsets and lag wrong.
#[test]
fn a_member_stops_reporting_partitions_it_handed_over() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    // Statistics (the lag) every 200 ms instead of 10 s.
    let cfg = CourierConfig::new(&brokers)
        .kafka_option("statistics.interval.ms", "200")
        .destination(hook.destination_toml("proj_0001", "hook-1"));
    let first = Courier::start_ready(&cfg);
    let ends = produce_all(&brokers, &events(40, 21));
    wait_for("the first member reports both partitions", &first, || {
        committed_all(&brokers, &ends)
            && partition_series(&first, "courier_committed_offset").len() == 2
            && partition_series(&first, "courier_consumer_lag").len() == 2
    });
    let second = Courier::start_ready(&cfg);
    let more = events(40, 22);
    let ends = produce_all(&brokers, &more);
    wait_for("both members commit the new events", &second, || {
        committed_all(&brokers, &ends)
            && !partition_series(&second, "courier_committed_offset").is_empty()
    });
    let (a, b) = (
        partition_series(&first, "courier_committed_offset"),
        partition_series(&second, "courier_committed_offset"),
    );
    assert!(
        a.keys().all(|p| !b.contains_key(p)),
        "one partition reported by both members: first {a:?}, second {b:?}\n{}",
        first.log_tail()
    );
    assert_eq!(a.len() + b.len(), 2, "first {a:?}, second {b:?}");
    // Several statistics rounds after the hand-over: lag only for what each member owns.
    std::thread::sleep(Duration::from_secs(1));
    for (member, owned) in [(&first, &a), (&second, &b)] {
        let lag = partition_series(member, "courier_consumer_lag");
        assert!(
            !lag.is_empty() && lag.keys().all(|p| owned.contains_key(p)),
            "lag {lag:?} is not that of the partitions owned ({owned:?})"
        );
    }
}

/// Broker: mock cluster (it keeps only the newest few thousand messages of a partition and
/// moves the log start past older ones — retention, on a small scale). The group committed
/// offset 5, then the log start moved far past it. librdkafka's `auto.offset.reset = latest`
/// used to apply to such an out-of-range offset as well, and courier jumped to the end: every
/// event still in the log was skipped. Now it starts at the log start, delivers everything
/// still there, and counts and logs the offsets retention deleted.
#[test]
fn a_committed_offset_below_the_log_start_starts_at_the_log_start_not_the_end() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    cluster.create_topic(FAILURES, 1, 1).unwrap();
    cluster.create_topic("courier-retry", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let first = events(10, 21);
    produce_batched(
        &brokers,
        TOPIC,
        first.iter().map(|e| (0, e.clone())).collect(),
    );
    commit_group_offsets(&brokers, "courier-test", TOPIC, &[(0, 5)]);
    let more = events(12_000, 22);
    produce_batched(
        &brokers,
        TOPIC,
        more.iter().map(|e| (0, e.clone())).collect(),
    );
    let (low, high) = watermarks(&brokers, TOPIC, 0);
    assert!(
        low > 5,
        "the mock cluster kept everything (log start {low}); nothing to test"
    );

    let hook = WebhookReceiver::start(ReceiverConfig::default());
    let cfg = CourierConfig::new(&brokers)
        // The default: where a partition the group never committed starts.
        .kafka_option("auto.offset.reset", "latest")
        .destination(hook.destination_toml("proj_0001", "hook-1"));
    let courier = Courier::start_ready(&cfg);
    let expected = usize::try_from(high - low).unwrap();
    wait_for(
        "every event still in the log is delivered",
        &courier,
        || hook.event_count() >= expected,
    );
    let kept: HashSet<String> = first
        .iter()
        .chain(&more)
        .skip(usize::try_from(low).unwrap())
        .map(|e| event_id(e))
        .collect();
    let delivered: HashSet<String> = hook.events().iter().map(|e| event_id(e)).collect();
    assert_eq!(delivered, kept, "exactly the events from the log start on");
    let metrics = courier.metrics();
    assert_eq!(
        metric_sum(
            &metrics,
            "courier_skipped_offsets_total",
            &[("reason", "retention")]
        ),
        Some((low - 5) as f64),
        "offsets deleted before courier read them are counted"
    );
    assert!(
        courier.log_tail().contains("below the log start"),
        "{}",
        courier.log_tail()
    );
}
