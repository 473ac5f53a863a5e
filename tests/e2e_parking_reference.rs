//! End-to-end tests of parking by reference (`failures.parking = "reference"`): a parked batch
//! is one small retry-topic record naming its events' offsets, and the retry worker reads the
//! events back from the Event Logs topic when the batch is due.
//!
//! - A destination down and then recovering (tansu, records produced one per batch, quirk 2):
//!   its events are parked as references, fewer records than batches' events, and after the
//!   recovery each is delivered exactly once; the healthy destination of another project gets
//!   exactly its own events; both groups commit everything.
//! - An event of one project routed to a healthy destination and, after it, to one whose
//!   circuit is open: the healthy one gets it whole, the other's position is parked.
//! - Referenced records gone before the attempt (librdkafka's mock cluster, which keeps only
//!   the newest few thousand messages of a partition and moves the log start past older ones,
//!   TESTING.md — the same thing retention does on a real cluster): the lost events are
//!   reported in failure events of kind `parked_events_lost` naming exactly their offsets.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::*;
use courier::parking::reference::ParkedReference;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use serde_json::Value;

const TOPIC: &str = "event-logs";
const FAILURES: &str = "courier-failures";
const RETRY_TOPIC: &str = "courier-retry";
const CATCH_UP: Duration = Duration::from_secs(90);

fn wait_for(what: &str, courier: &Courier, cond: impl FnMut() -> bool) {
    wait_explained(what, CATCH_UP, Duration::from_millis(200), cond, || {
        courier.log_tail()
    });
}

fn metric(courier: &Courier, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_sum(&courier.metrics(), name, labels).unwrap_or(0.0)
}

/// librdkafka's mock cluster with the Event Logs and retry topics of `partitions` partitions
/// and a one-partition failures topic.
fn mock_cluster(partitions: i32) -> MockCluster<'static, DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, partitions, 1).unwrap();
    cluster.create_topic(FAILURES, 1, 1).unwrap();
    cluster.create_topic(RETRY_TOPIC, partitions, 1).unwrap();
    cluster
}

fn failure_events(brokers: &str) -> Vec<Value> {
    read_all(brokers, FAILURES, Duration::from_secs(2))
        .into_iter()
        .map(|(_, _, b)| serde_json::from_slice(&b).expect("failure events are JSON"))
        .collect()
}

/// A tansu broker with the Event Logs topic (`partitions` partitions) and the failures topic,
/// its address, and two signed receivers: one answering 503 to everything, and a healthy one.
fn broker_and_receivers(partitions: i32) -> (Tansu, String, WebhookReceiver, WebhookReceiver) {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, partitions);
    create_topic(&brokers, FAILURES, 1);
    let down = WebhookReceiver::start(ReceiverConfig::default().signed());
    let healthy = WebhookReceiver::start(ReceiverConfig::default().signed());
    down.set_behaviour(Behaviour::Always(503));
    (tansu, brokers, down, healthy)
}

/// Parking by reference, with delivery settings under which one failed batch opens a
/// destination's circuit (a 200 ms in-line budget, batches of 10 events or 100 ms, a 1 s
/// request timeout); `schedule` and `probe` are `retry_schedule` and `probe_interval`, as TOML.
fn one_failure_opens(brokers: &str, schedule: &str, probe: &str) -> CourierConfig {
    CourierConfig::new(brokers)
        .parking("reference")
        .delivery("retry_max_elapsed", "\"200ms\"")
        .delivery("retry_schedule", schedule)
        .delivery("circuit_failure_threshold", "1")
        .delivery("probe_interval", probe)
        .delivery("request_timeout", "\"1s\"")
        .delivery("batch_max_events", "10")
        .delivery("batch_timeout", "\"100ms\"")
}

/// Produces `events` (their bodies) spread over the Event Logs topic's two partitions; their
/// positions.
fn produce_two(brokers: &str, events: &[(String, Vec<u8>)]) -> Vec<(i32, i64)> {
    produce_spread(brokers, TOPIC, 2, events.iter().map(|(_, b)| b.clone()))
}

/// Produces five events of `proj_0001`, whose failing destination opens its circuit on its
/// first failure ([`one_failure_opens`]), and waits until they are parked; the events.
fn open_the_circuit(
    courier: &Courier,
    brokers: &str,
    gen: &mut courier::generator::Generator,
) -> Vec<(String, Vec<u8>)> {
    let opening = ordinary_events(gen, 5, &["proj_0001"]);
    produce_two(brokers, &opening);
    wait_for("the first batch is parked", courier, || {
        metric(courier, "courier_events_parked_total", &[]) >= 5.0
    });
    opening
}

/// Broker: tansu. proj_0001's webhook answers 503 until every one of its events is parked,
/// then recovers; proj_0002's webhook is healthy throughout.
#[test]
fn a_recovering_destination_gets_each_event_parked_by_reference_once() {
    const PARTITIONS: i32 = 4;
    const PER_PROJECT: usize = 300;
    let (_tansu, brokers, down, healthy) = broker_and_receivers(PARTITIONS);
    let cfg = CourierConfig::new(&brokers)
        .parking("reference")
        .delivery("retry_max_elapsed", "\"500ms\"")
        // The first scheduled attempt comes 20 s after parking: the test reads the retry
        // topic meanwhile (its reader stops after 2 s without a new record).
        .delivery("retry_schedule", "[\"20s\", \"1s\", \"1s\", \"1s\"]")
        .delivery("circuit_failure_threshold", "3")
        .delivery("probe_interval", "\"300ms\"")
        .delivery("request_timeout", "\"1s\"")
        .destination(down.destination_toml("proj_0001", "hook-1"))
        .destination(healthy.destination_toml("proj_0002", "hook-2"));
    let courier = Courier::start_ready(&cfg);
    let projects = ["proj_0001", "proj_0002"];
    let events = ordinary_events(&mut generator(41, 2), PER_PROJECT * 2, &projects);
    let positions = produce_spread(
        &brokers,
        TOPIC,
        PARTITIONS,
        events.iter().map(|(_, b)| b.clone()),
    );
    let of = |project: &str| -> HashMap<Vec<u8>, usize> {
        multiset(
            events
                .iter()
                .filter(|(p, _)| p == project)
                .map(|(_, b)| b.clone()),
        )
    };
    let (first, second) = (of("proj_0001"), of("proj_0002"));
    assert_eq!(first.len(), PER_PROJECT);

    wait_for(
        "every event of the broken destination is parked",
        &courier,
        || metric(&courier, "courier_events_parked_total", &[]) >= PER_PROJECT as f64,
    );
    let references = metric(
        &courier,
        "courier_parked_records_total",
        &[("encoding", "reference")],
    );
    let copies = metric(
        &courier,
        "courier_parked_records_total",
        &[("encoding", "copy")],
    );
    eprintln!("{PER_PROJECT} events parked in {references} reference records, {copies} copies");
    assert_eq!(copies, 0.0, "copies written in reference mode");
    assert!(
        references >= 1.0 && references < (PER_PROJECT / 4) as f64,
        "{references} reference records for {PER_PROJECT} parked events"
    );
    // The retry topic holds references only, naming proj_0001's events (at least each once).
    let mut named: HashSet<(i32, i64)> = HashSet::new();
    for (_, _, value) in read_all(&brokers, RETRY_TOPIC, Duration::from_secs(2)) {
        let r = ParkedReference::decode(b"1", &value).expect("a version-1 reference");
        assert_eq!(r.project, "proj_0001");
        assert_eq!(r.topic, TOPIC);
        for p in &r.partitions {
            named.extend(p.iter().map(|o| (p.partition, o)));
        }
    }
    let first_positions: HashSet<(i32, i64)> = events
        .iter()
        .zip(&positions)
        .filter(|((p, _), _)| p == "proj_0001")
        .map(|(_, pos)| *pos)
        .collect();
    assert!(
        first_positions.is_subset(&named),
        "the references do not name every parked event"
    );
    assert!(
        named.is_subset(&first_positions),
        "a reference names a foreign event"
    );

    down.set_behaviour(Behaviour::Ok);
    wait_for("every parked event is delivered", &courier, || {
        let got: HashSet<Vec<u8>> = down.events().into_iter().collect();
        first.keys().all(|e| got.contains(e))
    });
    let ends = end_offsets(&positions);
    wait_for("the Event Logs group commits everything", &courier, || {
        let committed = committed_offsets(&brokers, "courier-test", TOPIC);
        ends.iter().all(|(p, e)| committed.get(p) == Some(e))
    });
    let retry_ends = end_offsets(
        &read_all(&brokers, RETRY_TOPIC, Duration::from_secs(2))
            .iter()
            .map(|(p, o, _)| (*p, *o))
            .collect::<Vec<_>>(),
    );
    wait_for(
        "the retry group commits past every reference",
        &courier,
        || {
            let committed = committed_offsets(&brokers, "courier-test-retry", RETRY_TOPIC);
            retry_ends
                .iter()
                .all(|(p, e)| committed.get(p).is_some_and(|c| c >= e))
        },
    );
    assert_eq!(
        multiset(down.events()),
        first,
        "the recovered destination got each of its events exactly once: {}",
        describe_difference(&first, &multiset(down.events()))
    );
    assert_eq!(
        multiset(healthy.events()),
        second,
        "the healthy destination got exactly its own events, once: {}",
        describe_difference(&second, &multiset(healthy.events()))
    );
    // What the retry worker held in the in-flight budget while attempting is given back.
    wait_for("the in-flight budget is free again", &courier, || {
        metric(&courier, "courier_in_flight_bytes", &[]) == 0.0
            && metric(&courier, "courier_in_flight_events", &[]) == 0.0
    });
    assert!(down.violations().is_empty(), "{:?}", down.violations());
    let failures = failure_events(&brokers);
    assert!(
        failures
            .iter()
            .all(|f| !f["payload"]["eventIds"].is_array()),
        "unexpected delivery-failure events: {failures:?}"
    );
}

/// Broker: tansu. Due means due, whatever was parked before: with one retry partition,
/// proj_0001's destination parks its events for 40 s, then proj_0002's parks its own for 2 s
/// behind them in the same partition. proj_0002's events arrive a few seconds after they
/// were parked, while proj_0001's still wait. (As copies, proj_0002's records would wait in
/// that partition behind proj_0001's until the 40 s had passed.)
#[test]
fn a_short_retry_is_not_held_behind_a_long_one() {
    due_order("reference");
}

fn due_order(parking: &str) {
    const N: usize = 100;
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 2);
    create_topic(&brokers, FAILURES, 1);
    let slow = WebhookReceiver::start(ReceiverConfig::default().signed());
    let fast = WebhookReceiver::start(ReceiverConfig::default().signed());
    slow.set_behaviour(Behaviour::Always(503));
    fast.set_behaviour(Behaviour::Always(503));
    let with_schedule = |table: String, schedule: &str| {
        format!("{table}\n[destinations.delivery]\nretry_schedule = {schedule}\n")
    };
    let cfg = CourierConfig::new(&brokers)
        .parking(parking)
        .retry_partitions(1)
        .delivery("retry_max_elapsed", "\"500ms\"")
        .delivery("circuit_failure_threshold", "3")
        .delivery("probe_interval", "\"300ms\"")
        .delivery("request_timeout", "\"1s\"")
        .destination(with_schedule(
            slow.destination_toml("proj_0001", "hook-slow"),
            "[\"40s\", \"1s\"]",
        ))
        .destination(with_schedule(
            fast.destination_toml("proj_0002", "hook-fast"),
            "[\"2s\", \"1s\", \"1s\", \"1s\"]",
        ));
    let courier = Courier::start_ready(&cfg);
    let produce_project = |project: &str, seed: u64| -> HashSet<Vec<u8>> {
        let events: Vec<Vec<u8>> = ordinary_events(&mut generator(seed, 1), N, &[project])
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        produce_spread(&brokers, TOPIC, 2, events.iter().cloned());
        events.into_iter().collect()
    };
    produce_project("proj_0001", 51);
    wait_for("the slow destination's events are parked", &courier, || {
        metric(&courier, "courier_events_parked_total", &[]) >= N as f64
    });
    let slow_parked = std::time::Instant::now();
    let fast_events = produce_project("proj_0002", 52);
    wait_for("the fast destination's events are parked", &courier, || {
        metric(&courier, "courier_events_parked_total", &[]) >= 2.0 * N as f64
    });
    let fast_parked = std::time::Instant::now();
    fast.set_behaviour(Behaviour::Ok);
    wait_for("the fast destination gets its events", &courier, || {
        let got: HashSet<Vec<u8>> = fast.events().into_iter().collect();
        fast_events.iter().all(|e| got.contains(e))
    });
    let waited = fast_parked.elapsed();
    let slow_waited = slow_parked.elapsed();
    eprintln!(
        "the 2 s retries were delivered {waited:?} after parking, {slow_waited:?} after the 40 s ones were parked"
    );
    // The 40 s records are due no earlier than 36 s after they were parked (jitter ±10%).
    assert!(
        slow_waited < Duration::from_secs(36),
        "the 2 s retries waited for the 40 s ones: delivered {waited:?} after parking\n{}",
        courier.log_tail()
    );
    assert_eq!(
        slow.requests().iter().filter(|r| r.status == 200).count(),
        0
    );
}

/// Broker: tansu. A damaged reference (written here, as a hand-edited or corrupted record
/// would be) names two real events and an offset far past the partition's end: the real ones
/// are delivered, the missing one is reported as lost, and the reference completes — the read
/// stops at the partition's end instead of waiting for records that cannot come.
#[test]
fn a_reference_past_the_partition_end_delivers_what_exists_and_reports_the_rest() {
    use rdkafka::producer::FutureProducer;

    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 1);
    create_topic(&brokers, FAILURES, 1);
    create_topic(&brokers, RETRY_TOPIC, 1);
    let events: Vec<Vec<u8>> = ordinary_events(&mut generator(61, 1), 3, &["proj_0001"])
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let positions = produce(&brokers, TOPIC, events.iter().map(|b| (Some(0), b.clone())));
    let far = 1_000_000_i64;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    write_reference(
        &producer,
        "proj_0001",
        "hook-1",
        vec![(positions[0].1, positions[1].1 + 1), (far, far + 1)],
        chrono::Utc::now().timestamp_millis(),
    );
    let hook = WebhookReceiver::start(ReceiverConfig::default().signed());
    // Start after the Event Logs: only the retry topic's reference is of interest.
    let cfg = CourierConfig::new(&brokers)
        .kafka_option("auto.offset.reset", "latest")
        .destination(hook.destination_toml("proj_0001", "hook-1"));
    let courier = Courier::start_ready(&cfg);
    wait_for("the two existing events are delivered", &courier, || {
        hook.event_count() >= 2
    });
    let mut lost = Vec::new();
    wait_for("the missing offset is reported", &courier, || {
        lost = failure_events(&brokers)
            .into_iter()
            .filter(|f| f["error"]["kind"] == "parked_events_lost")
            .collect();
        !lost.is_empty()
    });
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["payload"]["source"]["firstOffset"], far);
    assert_eq!(lost[0]["payload"]["count"], 1);
    assert_eq!(
        multiset(hook.events()),
        multiset(events[..2].iter().cloned()),
        "exactly the two referenced events that exist"
    );
    wait_for(
        "the retry group commits past the reference",
        &courier,
        || committed_offsets(&brokers, "courier-test-retry", RETRY_TOPIC).get(&0) == Some(&1),
    );
}

/// Writes a reference record for `project`'s `destination` naming `offsets` of partition 0 of
/// the Event Logs topic, due at `due_ms`, to the retry topic (as courier parks them).
fn write_reference(
    producer: &rdkafka::producer::FutureProducer,
    project: &str,
    destination: &str,
    offsets: Vec<(i64, i64)>,
    due_ms: i64,
) {
    use courier::parking::reference::{PartitionOffsets, REFERENCE_HEADER, VERSION};
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::FutureRecord;
    let reference = ParkedReference {
        v: VERSION,
        project: project.into(),
        destination: destination.into(),
        attempt: 1,
        due_ms,
        first_failure_ms: chrono::Utc::now().timestamp_millis(),
        last_error: "HTTP 503".into(),
        topic: TOPIC.into(),
        partitions: vec![PartitionOffsets {
            partition: 0,
            offsets,
        }],
    };
    let value = reference.encode();
    let key = format!("{project}/{destination}/1");
    rt().block_on(
        producer.send(
            FutureRecord::<str, [u8]>::to(RETRY_TOPIC)
                .key(&key)
                .payload(value.as_slice())
                .headers(OwnedHeaders::new().insert(Header {
                    key: REFERENCE_HEADER,
                    value: Some("1"),
                })),
            Duration::from_secs(10),
        ),
    )
    .unwrap();
}

/// Broker: tansu. A destination that hangs has 80 parked references due at once, one event
/// each; another tenant's 5 are due a second later. The hanging destination may have 4 attempts
/// out (its `max_in_flight`), each waiting out its 30 s `request_timeout`; the other tenant's
/// references must still be attempted when due. Before, the hanging destination's references
/// took all 64 of the retry worker's attempt slots, each waiting for one of its own 4, and the
/// other tenant's waited for its timeouts, 4 at a time (minutes).
#[test]
fn a_hanging_destinations_due_references_do_not_hold_back_another_tenants() {
    use rdkafka::producer::FutureProducer;
    const HANGING: usize = 80;
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 1);
    create_topic(&brokers, FAILURES, 1);
    create_topic(&brokers, RETRY_TOPIC, 1);
    let mut gen = generator(63, 2);
    let hanging_events = ordinary_events(&mut gen, HANGING, &["proj_0001"]);
    let healthy_events: Vec<Vec<u8>> = ordinary_events(&mut gen, 5, &["proj_0002"])
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let hanging_at = produce(
        &brokers,
        TOPIC,
        hanging_events.iter().map(|(_, b)| (Some(0), b.clone())),
    );
    let healthy_at = produce(
        &brokers,
        TOPIC,
        healthy_events.iter().map(|b| (Some(0), b.clone())),
    );
    let hole = WebhookReceiver::start(ReceiverConfig::default().signed());
    hole.set_behaviour(Behaviour::Hang);
    let healthy = WebhookReceiver::start(ReceiverConfig::default().signed());
    // Start after the Event Logs: only the retry topic's references are of interest.
    let cfg = CourierConfig::new(&brokers)
        .parking("reference")
        .kafka_option("auto.offset.reset", "latest")
        .destination(format!(
            "{}\n[destinations.delivery]\nrequest_timeout = \"30s\"\nmax_in_flight = 4\n\
             circuit_failure_threshold = 1000\nretry_schedule = [\"1h\", \"1h\"]\n",
            hole.destination_toml("proj_0001", "black-hole")
        ))
        .destination(healthy.destination_toml("proj_0002", "hook-2"));
    let courier = Courier::start_ready(&cfg);
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let due = chrono::Utc::now().timestamp_millis() + 2_000;
    for &(_, offset) in &hanging_at {
        write_reference(
            &producer,
            "proj_0001",
            "black-hole",
            vec![(offset, offset + 1)],
            due,
        );
    }
    for &(_, offset) in &healthy_at {
        write_reference(
            &producer,
            "proj_0002",
            "hook-2",
            vec![(offset, offset + 1)],
            due + 1_000,
        );
    }
    wait_for("the other tenant gets its parked events", &courier, || {
        healthy.event_count() >= healthy_events.len()
    });
    let hanging_requests = hole.request_count();
    eprintln!("{hanging_requests} requests had reached the hanging destination");
    assert!(
        hanging_requests <= 4,
        "{hanging_requests} requests reached the hanging destination before the other tenant got its \
         events: they waited for its timeouts\n{}",
        courier.log_tail()
    );
    assert_eq!(
        multiset(healthy.events()),
        multiset(healthy_events.iter().cloned()),
        "each of the other tenant's parked events once"
    );
}

/// Broker: tansu. An open circuit is probed, not hammered: a destination that keeps answering
/// 503 has several parked batches due every second, but with its circuit open only one
/// request per probe interval (3 s) reaches it; the others wait without a connection, and
/// their scheduled attempts are not spent.
#[test]
fn parked_batches_of_an_open_circuit_wait_for_its_probes() {
    open_circuit_probed_not_hammered("reference");
}

/// As above with copies: a due batch of copies whose circuit is open is parked for its next
/// attempt without a request (the attempt is spent, as when its lane parks). Before, every
/// due batch of copies sent its request to the open circuit.
#[test]
fn parked_copies_of_an_open_circuit_are_parked_again_without_a_request() {
    open_circuit_probed_not_hammered("copy");
}

fn open_circuit_probed_not_hammered(parking: &str) {
    let (_tansu, brokers, hook, _healthy) = broker_and_receivers(2);
    // Copies spend an attempt each second while the circuit is open: enough steps that none
    // has spent them all during the test.
    let steps = if parking == "copy" { 30 } else { 6 };
    let cfg = CourierConfig::new(&brokers)
        .parking(parking)
        .delivery("retry_max_elapsed", "\"300ms\"")
        .delivery(
            "retry_schedule",
            &format!("[{}]", vec!["\"1s\""; steps].join(", ")),
        )
        .delivery("circuit_failure_threshold", "2")
        .delivery("probe_interval", "\"3s\"")
        .delivery("request_timeout", "\"1s\"")
        .destination(hook.destination_toml("proj_0001", "hook-1"));
    let courier = Courier::start_ready(&cfg);
    let events: Vec<Vec<u8>> = ordinary_events(&mut generator(71, 1), 600, &["proj_0001"])
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    produce_spread(&brokers, TOPIC, 2, events.iter().cloned());
    wait_for("the events are parked", &courier, || {
        metric(&courier, "courier_events_parked_total", &[]) >= 600.0
    });
    let batches = metric(&courier, "courier_parked_batches_total", &[]);
    let before = hook.request_count();
    std::thread::sleep(Duration::from_secs(9));
    let during = hook.request_count() - before;
    eprintln!("{during} requests in 9 s with {batches} parked batches due every second");
    assert!(
        batches >= 4.0,
        "{batches} parked batches: the test needs several"
    );
    assert!(
        during <= 5,
        "{during} requests reached a destination whose circuit is open (probe interval 3 s)\n{}",
        courier.log_tail()
    );
    assert_eq!(
        metric(&courier, "courier_events_failed_total", &[]),
        0.0,
        "scheduled attempts were spent without a request"
    );
}

/// A hanging webhook destination (proj_0001, its `[destinations.delivery]` given) beside a
/// healthy one (proj_0002), `n` events of each project over two partitions: a 400-event
/// in-flight budget and each project in a partition of its own (`start`), or courier's default
/// budget and both projects in each partition (`with_default_budget`). Both return once the
/// healthy destination has every one of its events.
struct BlackHoleBeside {
    _tansu: Tansu,
    hole: WebhookReceiver,
    _healthy: WebhookReceiver,
    courier: Courier,
}

impl BlackHoleBeside {
    /// What the tests of a black hole that never answered check once the healthy tenant has
    /// all its events: no request had failed yet (it did not wait for the black hole's
    /// timeout), something of the black hole was parked around its lane, and the black hole
    /// got one request (one at a time until it has answered); then that at least `parked` of
    /// its events are parked.
    fn parked_around_before_its_first_timeout(&self, parked: usize) {
        let courier = &self.courier;
        let failed_requests = metric(
            courier,
            "courier_requests_total",
            &[("destination_type", "webhook"), ("outcome", "retry")],
        );
        assert_eq!(
            failed_requests,
            0.0,
            "the healthy destination got its events only after the black hole's request timed out\n{}",
            courier.log_tail()
        );
        // Diverted and overflowing events are counted when their batch is parked, up to a
        // second after the first of them.
        let around = || {
            ["spilled_batches", "diverted_events", "overflow_events"]
                .map(|m| metric(courier, &format!("courier_{m}_total"), &[]))
        };
        wait_for(
            "something of the black hole is parked around it",
            courier,
            || around().iter().sum::<f64>() >= 1.0,
        );
        let [spilled, diverted, overflow] = around();
        eprintln!("{spilled} batches spilled, {diverted} events diverted, {overflow} overflowed");
        assert_eq!(
            self.hole.request_count(),
            1,
            "one request at a time while it has not answered"
        );
        wait_for("the black hole's events are parked", courier, || {
            metric(courier, "courier_events_parked_total", &[]) >= parked as f64
        });
    }

    fn start(n: usize, seed: u64, hole_delivery: &str) -> Self {
        let limits = "[limits]\nmax_in_flight_events = 400\n";
        Self::with_limits(n, seed, hole_delivery, limits, |i| (i % 2) as i32)
    }

    /// Each partition carries both projects' events (in pairs, one of each).
    fn with_default_budget(n: usize, seed: u64, hole_delivery: &str) -> Self {
        Self::with_limits(n, seed, hole_delivery, "", |i| (i / 2 % 2) as i32)
    }

    /// `partition(i)` is where the `i`-th event goes; the projects take turns.
    fn with_limits(
        n: usize,
        seed: u64,
        hole_delivery: &str,
        limits: &str,
        partition: impl Fn(usize) -> i32,
    ) -> Self {
        let tansu = Tansu::start();
        let brokers = tansu.brokers();
        create_topic(&brokers, TOPIC, 2);
        create_topic(&brokers, FAILURES, 1);
        let hole = WebhookReceiver::start(ReceiverConfig::default().signed());
        hole.set_behaviour(Behaviour::Hang);
        let healthy = WebhookReceiver::start(ReceiverConfig::default().signed());
        let mut cfg = CourierConfig::new(&brokers)
            .parking("reference")
            .destination(format!(
                "{}\n[destinations.delivery]\n{hole_delivery}",
                hole.destination_toml("proj_0001", "black-hole")
            ))
            .destination(healthy.destination_toml("proj_0002", "hook-2"));
        cfg.extra = limits.into();
        let courier = Courier::start_ready(&cfg);
        let projects = ["proj_0001", "proj_0002"];
        let events = ordinary_events(&mut generator(seed, 2), 2 * n, &projects);
        let spread = events.iter().enumerate();
        produce(
            &brokers,
            TOPIC,
            spread.map(|(i, (_, b))| (Some(partition(i)), b.clone())),
        );
        let expected: HashSet<Vec<u8>> = events
            .iter()
            .filter(|(p, _)| p == "proj_0002")
            .map(|(_, b)| b.clone())
            .collect();
        wait_for("the healthy destination gets its events", &courier, || {
            let got: HashSet<Vec<u8>> = healthy.events().into_iter().collect();
            expected.iter().all(|e| got.contains(e))
        });
        Self {
            _tansu: tansu,
            hole,
            _healthy: healthy,
            courier,
        }
    }
}

/// Broker: tansu. A destination that never answers does not hold every tenant's reading: its
/// lane has one request slot, a 20 s in-line budget and a circuit that never opens, and the
/// in-flight budget is 400 events. Once its first request has failed, the batches that find
/// its slot taken are parked at once (spilled) instead of holding the budget (and events read
/// while the lanes stay above the spill threshold go around its lane), so the healthy
/// destination of another project gets all its events within seconds. Without the spill the
/// black hole's queued batches would each hold the budget for their 20 s in turn.
#[test]
fn a_black_hole_gives_the_shared_budget_back() {
    const N: usize = 600;
    let started = std::time::Instant::now();
    let run = BlackHoleBeside::start(
        N,
        81,
        "max_in_flight = 1\nrequest_timeout = \"2s\"\nretry_max_elapsed = \"20s\"\n\
         circuit_failure_threshold = 1000\nretry_schedule = [\"1h\"]\n",
    );
    let BlackHoleBeside {
        _tansu, courier, ..
    } = run;
    let took = started.elapsed();
    let spilled = metric(&courier, "courier_spilled_batches_total", &[]);
    let diverted = metric(&courier, "courier_diverted_events_total", &[]);
    eprintln!("healthy destination complete {took:?} after producing; {spilled} batches spilled, {diverted} events diverted");

    assert!(
        spilled >= 1.0,
        "nothing was spilled\n{}",
        courier.log_tail()
    );
    assert!(
        took < Duration::from_secs(40),
        "the healthy destination waited {took:?} behind the black hole"
    );
    wait_for("the black hole's events are parked", &courier, || {
        metric(&courier, "courier_events_parked_total", &[]) >= N as f64
    });
}

/// A black hole that has never answered holds its first request until `request_timeout`
/// (20 s here), and until then nothing of it *failed*. Its other batches are parked, and the
/// healthy tenant gets all its events, once that request has gone unanswered for half its
/// timeout — before any request failed. (Before, nothing was spilled until the first timeout,
/// and the healthy tenant waited behind it for those 20 s.)
#[test]
fn a_black_hole_that_never_answered_gives_the_budget_back_before_its_first_timeout() {
    const N: usize = 600;
    let run = BlackHoleBeside::start(
        N,
        82,
        "request_timeout = \"20s\"\nretry_max_elapsed = \"60s\"\nretry_schedule = [\"1h\"]\n",
    );
    run.parked_around_before_its_first_timeout(N);
}

/// Broker: tansu. A black hole's own queue, not the shared budget, is what fills: courier's
/// default in-flight budget (100,000 events) is never under pressure with 2,000 events of each
/// project, but the black hole's queue holds 50. Once it is full, every partition carrying
/// its events paused — and with them the healthy tenant whose events share those partitions.
/// Before, nothing was spilled or diverted without pressure on the shared budget, so the
/// healthy tenant waited for the black hole's circuit (which never opens here) or its 60 s
/// in-line budget. A crowded queue then counted as pressure for a destination that is suspect
/// (its first request unanswered for half its 20 s timeout); now, with both tenants in each
/// partition, the full queue's events overflow around the lane before that. Either way the
/// healthy tenant gets all its events before any request has failed.
#[test]
fn a_black_hole_whose_queue_fills_does_not_pause_the_other_tenants() {
    // More than the black hole's lane takes in while its batch waits for the request slot
    // (two batches of 100, a chunk of up to 256 events, and its queue of 50).
    const N: usize = 2_000;
    let run = BlackHoleBeside::with_default_budget(
        N,
        83,
        "queue_max_events = 50\nrequest_timeout = \"20s\"\nretry_max_elapsed = \"60s\"\n\
         circuit_failure_threshold = 1000\nretry_schedule = [\"1h\"]\n",
    );
    // All but what its one request slot holds: that batch is retried in line (60 s), and the
    // next one then takes the slot.
    run.parked_around_before_its_first_timeout(N - 100);
    assert_eq!(
        metric(&run.courier, "courier_events_failed_total", &[]),
        0.0,
        "parked, not failed"
    );
}

/// Broker: librdkafka's mock cluster (it moves a partition's log start past all but its newest
/// few thousand messages). proj_0001's 100 events are parked by reference for 12 s; meanwhile
/// 12,000 events of another project push the log start past them. When the reference is due
/// its events are gone: failure events of kind `parked_events_lost` name exactly their
/// offsets, nothing is delivered, and the offsets still complete.
#[test]
fn references_whose_records_are_gone_end_in_failure_events_naming_them() {
    let cluster = mock_cluster(1);
    let brokers = cluster.bootstrap_servers();
    let hook = WebhookReceiver::start(ReceiverConfig::default().signed());
    hook.set_behaviour(Behaviour::Always(503));
    let cfg = CourierConfig::new(&brokers)
        .parking("reference")
        .delivery("retry_max_elapsed", "\"300ms\"")
        .delivery("retry_schedule", "[\"12s\", \"1s\"]")
        .delivery("circuit_failure_threshold", "2")
        .delivery("probe_interval", "\"300ms\"")
        .delivery("request_timeout", "\"1s\"")
        .destination(hook.destination_toml("proj_0001", "hook-1"));
    let courier = Courier::start_ready(&cfg);
    let doomed: Vec<Vec<u8>> = ordinary_events(&mut generator(43, 1), 100, &["proj_0001"])
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let positions = produce_batched(
        &brokers,
        TOPIC,
        doomed.iter().map(|e| (0, e.clone())).collect(),
    );
    let doomed_offsets: HashSet<i64> = positions.iter().map(|(_, o)| *o).collect();
    wait_for("the events are parked", &courier, || {
        metric(&courier, "courier_events_parked_total", &[]) >= 100.0
    });
    // Another project's traffic pushes the log start past the parked events.
    let filler: Vec<(i32, Vec<u8>)> =
        ordinary_events(&mut generator(44, 1), 12_000, &["proj_0999"])
            .into_iter()
            .map(|(_, b)| (0, b))
            .collect();
    produce_batched(&brokers, TOPIC, filler);
    let (low, _) = watermarks(&brokers, TOPIC, 0);
    let last_doomed = *doomed_offsets.iter().max().unwrap();
    assert!(
        low > last_doomed,
        "the mock cluster kept the parked events (log start {low}); the test needs more filler"
    );
    let mut lost: Vec<Value> = Vec::new();
    wait_for("the lost events are reported", &courier, || {
        lost = failure_events(&brokers)
            .into_iter()
            .filter(|f| f["error"]["kind"] == "parked_events_lost")
            .collect();
        lost.iter()
            .map(|f| f["payload"]["count"].as_u64().unwrap_or(0))
            .sum::<u64>()
            >= 100
    });
    let mut reported: Vec<i64> = Vec::new();
    for f in &lost {
        assert_eq!(f["destinationId"], "hook-1");
        assert_eq!(f["projectId"], "proj_0001");
        let source = &f["payload"]["source"];
        assert_eq!(source["topic"], TOPIC);
        let (first, last) = (
            source["firstOffset"].as_i64().unwrap(),
            source["lastOffset"].as_i64().unwrap(),
        );
        assert_eq!(
            f["payload"]["count"].as_i64().unwrap(),
            last - first + 1,
            "{f}"
        );
        reported.extend(first..=last);
        let message = f["error"]["message"].as_str().unwrap();
        assert!(
            // "offset 0" for a single one (the destination's first request carries one
            // event, parked as its own reference), "offsets 1-99" for a range.
            message.contains("no longer in topic event-logs") && message.contains("offset"),
            "{message}"
        );
    }
    reported.sort_unstable();
    let mut want: Vec<i64> = doomed_offsets.into_iter().collect();
    want.sort_unstable();
    assert_eq!(
        reported, want,
        "the failure events name exactly the lost offsets"
    );
    assert_eq!(hook.event_count(), 0);
    assert_eq!(
        metric(&courier, "courier_events_failed_total", &[]),
        100.0,
        "{}",
        courier.log_tail()
    );
}

/// Broker: tansu. While a destination's circuit is open and no probe is due, its events go
/// around its lane: the source collects their positions and parks a second's worth as one
/// reference, without their payloads. proj_0001's webhook fails its first batch (threshold 1:
/// the circuit opens), then gets 300 events within the probe interval, interleaved with 300
/// of a healthy project: they are diverted (counted in `courier_diverted_events_total`) and
/// parked in a few references — through the lane, with `batch_max_events = 10`, they would
/// have been at least 30. The webhook then recovers: events produced once the probe is due
/// reach the lane, whose probe closes the circuit; events produced after that are delivered
/// at once, neither diverted nor parked; the parked ones arrive when due. Each event arrives exactly once, the groups commit everything and the
/// in-flight budget is given back, diverted positions included.
#[test]
fn a_failing_destinations_events_are_parked_around_its_lane_until_its_probe() {
    const PROBE: Duration = Duration::from_secs(10);
    let (_tansu, brokers, down, healthy) = broker_and_receivers(2);
    let probe = format!("\"{}s\"", PROBE.as_secs());
    let cfg = one_failure_opens(&brokers, "[\"12s\", \"1s\", \"1s\"]", &probe)
        .destination(down.destination_toml("proj_0001", "hook-1"))
        .destination(healthy.destination_toml("proj_0002", "hook-2"));
    let courier = Courier::start_ready(&cfg);
    let mut gen = generator(83, 2);

    // The first batch fails: the circuit opens and the lane parks it.
    let opening = open_the_circuit(&courier, &brokers, &mut gen);
    let opened = std::time::Instant::now();
    let requests_when_open = down.request_count();

    // Within the probe interval: 300 events of the failing destination among 300 others.
    let burst = ordinary_events(&mut gen, 600, &["proj_0001", "proj_0002"]);
    let burst_positions = produce_two(&brokers, &burst);
    wait_for("the burst is parked and delivered", &courier, || {
        metric(&courier, "courier_events_parked_total", &[]) >= 305.0
            && healthy.events().len() >= 300
    });
    assert!(
        opened.elapsed() < PROBE,
        "the burst took longer than the probe interval; the test proves nothing on this machine"
    );
    let diverted = metric(&courier, "courier_diverted_events_total", &[]);
    let references = metric(
        &courier,
        "courier_parked_records_total",
        &[("encoding", "reference")],
    );
    eprintln!(
        "300 events of an open circuit: {diverted} diverted, {references} reference records in all"
    );
    assert_eq!(
        diverted, 300.0,
        "every event routed to the open circuit within the probe interval goes around the lane"
    );
    assert!(
        references <= 8.0,
        "{references} reference records: a diverted second is one record, not one per batch of 10"
    );
    assert_eq!(
        down.request_count(),
        requests_when_open,
        "no request reaches an open circuit before its probe is due"
    );
    // The references name exactly proj_0001's events of the burst (and the first five).
    let mut named: HashSet<(i32, i64)> = HashSet::new();
    for (_, _, value) in read_all(&brokers, RETRY_TOPIC, Duration::from_secs(2)) {
        let r = ParkedReference::decode(b"1", &value).expect("a version-1 reference");
        assert_eq!((r.project.as_str(), r.attempt), ("proj_0001", 1));
        for p in &r.partitions {
            named.extend(p.iter().map(|o| (p.partition, o)));
        }
    }
    let diverted_positions: HashSet<(i32, i64)> = burst
        .iter()
        .zip(&burst_positions)
        .filter(|((p, _), _)| p == "proj_0001")
        .map(|(_, pos)| *pos)
        .collect();
    assert!(diverted_positions.is_subset(&named));
    assert_eq!(named.len(), 305, "the references name a foreign event");

    // Recovery: once the probe is due, events reach the lane and its probe closes the circuit.
    down.set_behaviour(Behaviour::Ok);
    std::thread::sleep(PROBE.saturating_sub(opened.elapsed()) + Duration::from_millis(200));
    let after = ordinary_events(&mut gen, 20, &["proj_0001"]);
    produce_two(&brokers, &after);
    // Events read while the probe's request is out are parked (by the lane as much as around
    // it: the probe slot is taken); the others are delivered at once.
    wait_for("the events after the probe are delivered", &courier, || {
        let got: HashSet<Vec<u8>> = down.events().into_iter().collect();
        after.iter().all(|(_, b)| got.contains(b))
    });
    // The circuit is closed now: nothing more goes around the lane, nothing more is parked.
    let (diverted, parked) = (
        metric(&courier, "courier_diverted_events_total", &[]),
        metric(&courier, "courier_events_parked_total", &[]),
    );
    let later = ordinary_events(&mut gen, 20, &["proj_0001"]);
    produce_two(&brokers, &later);
    wait_for(
        "the events after the recovery are delivered",
        &courier,
        || {
            let got: HashSet<Vec<u8>> = down.events().into_iter().collect();
            later.iter().all(|(_, b)| got.contains(b))
        },
    );
    assert_eq!(
        metric(&courier, "courier_diverted_events_total", &[]),
        diverted,
        "events were diverted after the circuit closed"
    );
    assert_eq!(
        metric(&courier, "courier_events_parked_total", &[]),
        parked,
        "events were parked after the circuit closed"
    );
    let first: HashMap<Vec<u8>, usize> = multiset(
        opening
            .iter()
            .chain(&burst)
            .chain(&after)
            .chain(&later)
            .filter(|(p, _)| p == "proj_0001")
            .map(|(_, b)| b.clone()),
    );
    wait_for("the parked events are delivered when due", &courier, || {
        down.events().len() >= 345
    });
    wait_for("the Event Logs group commits everything", &courier, || {
        let committed = committed_offsets(&brokers, "courier-test", TOPIC);
        let ends = end_offsets(&burst_positions);
        ends.iter()
            .all(|(p, e)| committed.get(p).is_some_and(|c| c >= e))
    });
    assert_eq!(
        multiset(down.events()),
        first,
        "the recovered destination got each of its events exactly once: {}",
        describe_difference(&first, &multiset(down.events()))
    );
    let second: HashMap<Vec<u8>, usize> = multiset(
        burst
            .iter()
            .filter(|(p, _)| p == "proj_0002")
            .map(|(_, b)| b.clone()),
    );
    assert_eq!(multiset(healthy.events()), second);
    wait_for("the in-flight budget is free again", &courier, || {
        metric(&courier, "courier_in_flight_bytes", &[]) == 0.0
            && metric(&courier, "courier_in_flight_events", &[]) == 0.0
    });
    let failures = failure_events(&brokers);
    assert!(
        failures
            .iter()
            .all(|f| !f["payload"]["eventIds"].is_array()),
        "delivery-failure events (only the circuit's state events are expected): {failures:?}"
    );
}

/// One project, two destinations: a healthy one and, routed after it, one whose circuit is
/// open. Each event goes to the healthy lane and around the failing one; the source hands the
/// payload to the last destination that takes it (the healthy one, although another follows
/// it), so the healthy destination must get every event whole, and the failing one's
/// positions must be parked (tansu, one record per batch).
#[test]
fn an_event_whose_last_destination_is_diverted_reaches_the_others_whole() {
    let (_tansu, brokers, down, healthy) = broker_and_receivers(2);
    let cfg = one_failure_opens(&brokers, "[\"1h\"]", "\"10m\"")
        .destination(healthy.destination_toml("proj_0001", "hook-a"))
        .destination(down.destination_toml("proj_0001", "hook-b"));
    let courier = Courier::start_ready(&cfg);
    let mut gen = generator(97, 1);

    // The first batch fails: the failing destination's circuit opens.
    let opening = open_the_circuit(&courier, &brokers, &mut gen);
    let burst = ordinary_events(&mut gen, 200, &["proj_0001"]);
    let positions = produce_two(&brokers, &burst);
    wait_for("the burst is parked", &courier, || {
        metric(&courier, "courier_events_parked_total", &[]) >= 205.0
    });
    let all: HashMap<Vec<u8>, usize> =
        multiset(opening.iter().chain(&burst).map(|(_, b)| b.clone()));
    wait_for("the healthy destination has every event", &courier, || {
        healthy.events().len() >= 205
    });
    assert_eq!(
        multiset(healthy.events()),
        all,
        "the healthy destination got each event whole and once: {}",
        describe_difference(&all, &multiset(healthy.events()))
    );
    assert_eq!(
        metric(&courier, "courier_diverted_events_total", &[]),
        200.0,
        "every event of the burst goes around the open circuit's lane (the case this test is for)"
    );
    wait_for("the Event Logs group commits everything", &courier, || {
        let committed = committed_offsets(&brokers, "courier-test", TOPIC);
        end_offsets(&positions)
            .iter()
            .all(|(p, e)| committed.get(p).is_some_and(|c| c >= e))
    });
}

/// Broker: librdkafka's mock cluster (cooperative rebalancing works there, TESTING.md quirk
/// 7). A revocation does not wait on events the source collected around a failing lane: the
/// first replica's destination has its circuit open and its events diverted, collecting for
/// 30 s (its `batch_timeout`); a second replica joins, and the first parks what it collected
/// before it waits for the revoked partitions (`kafka.revoke_timeout`, 10 s) — so the
/// revocation does not wait out its timeout, and everything is parked and committed. Before,
/// the collected events could only be parked by the source, which that wait blocks: every
/// such revocation lasted the whole timeout and left the events to be read again.
#[test]
fn a_revocation_parks_the_diverted_events_instead_of_waiting_for_them() {
    let cluster = mock_cluster(2);
    let brokers = cluster.bootstrap_servers();
    let hook = WebhookReceiver::start(ReceiverConfig::default().signed());
    hook.set_behaviour(Behaviour::Always(503));
    let cfg = CourierConfig::new(&brokers)
        .parking("reference")
        .delivery("retry_max_elapsed", "\"200ms\"")
        .delivery("retry_schedule", "[\"1h\"]")
        .delivery("circuit_failure_threshold", "1")
        .delivery("probe_interval", "\"10m\"")
        .delivery("batch_max_events", "4")
        .delivery("batch_timeout", "\"30s\"")
        .destination(hook.destination_toml("proj_0001", "hook-1"));
    let first = Courier::start_ready(&cfg);
    let mut gen = generator(97, 1);
    let mut batch = |n| -> Vec<Vec<u8>> {
        ordinary_events(&mut gen, n, &["proj_0001"])
            .into_iter()
            .map(|(_, b)| b)
            .collect()
    };
    produce_spread(&brokers, TOPIC, 2, batch(4));
    wait_for(
        "the circuit opens and the first batch is parked",
        &first,
        || metric(&first, "courier_events_parked_total", &[]) >= 4.0,
    );
    let positions = produce_spread(&brokers, TOPIC, 2, batch(40));
    wait_for("the next events are read", &first, || {
        metric(&first, "courier_events_routed_total", &[]) >= 44.0
    });
    assert_eq!(
        metric(&first, "courier_events_parked_total", &[]),
        4.0,
        "the diverted events were parked before the revocation; the test proves nothing"
    );
    let joined = std::time::Instant::now();
    let _second = Courier::start_ready(&cfg);
    wait_for("the first replica parks what it collected", &first, || {
        metric(&first, "courier_events_parked_total", &[]) >= 44.0
    });
    let took = joined.elapsed();
    let ends = end_offsets(&positions);
    wait_for("the group commits everything", &first, || {
        let committed = committed_offsets(&brokers, "courier-test", TOPIC);
        ends.iter().all(|(p, e)| committed.get(p) == Some(e))
    });
    eprintln!("diverted events parked {took:?} after the second replica started");
    assert_eq!(metric(&first, "courier_diverted_events_total", &[]), 40.0);
    let log = std::fs::read_to_string(first.log_path()).unwrap();
    assert!(
        log.contains("partitions revoked"),
        "no revocation happened; the test proves nothing\n{log}"
    );
    assert!(
        !log.contains("revoke timeout passed"),
        "the revocation waited its whole timeout for events only its own source could park\n{log}"
    );
}

/// Broker: tansu. A paused destination's parked events are reported, not attempted. The
/// destination answers 503 to everything; its circuit opens at the first failure, is probed
/// every second, and the destination is paused once it has failed for 3 s (`pause_after`).
/// Its 60 events were all parked before that. Once it is paused, their scheduled attempts end
/// in failure events of kind `destination_paused` without another request, as its lane
/// reports its own batches. Before, the retry worker went on sending them to the paused
/// destination until their 20 scheduled attempts were spent, and reported them as
/// `http_status`.
#[test]
fn a_paused_destinations_parked_references_are_reported_without_a_request() {
    paused_destination_reports_its_parked_events("reference");
}

/// The same with parked copies.
#[test]
fn a_paused_destinations_parked_copies_are_reported_without_a_request() {
    paused_destination_reports_its_parked_events("copy");
}

fn paused_destination_reports_its_parked_events(parking: &str) {
    const N: u64 = 60;
    let (_tansu, brokers, hook, _healthy) = broker_and_receivers(1);
    let schedule = format!("[{}]", vec!["\"1s\""; 20].join(", "));
    let cfg = one_failure_opens(&brokers, &schedule, "\"1s\"")
        .parking(parking)
        .delivery("pause_after", "\"3s\"")
        .destination(hook.destination_toml("proj_0001", "hook-1"));
    let courier = Courier::start_ready(&cfg);
    let events = ordinary_events(&mut generator(91, 1), N as usize, &["proj_0001"]);
    produce(
        &brokers,
        TOPIC,
        events.iter().map(|(_, b)| (Some(0), b.clone())),
    );
    let reported = |failures: &[Value]| -> Vec<Value> {
        failures
            .iter()
            .filter(|f| f["destinationId"] == "hook-1" && f["payload"]["count"].is_u64())
            .cloned()
            .collect()
    };
    wait_for("every event is reported", &courier, || {
        reported(&failure_events(&brokers))
            .iter()
            .map(|f| f["payload"]["count"].as_u64().unwrap_or(0))
            .sum::<u64>()
            >= N
    });
    let requests = hook.request_count();
    let failures = reported(&failure_events(&brokers));
    let kinds: HashMap<String, u64> = failures.iter().fold(HashMap::new(), |mut m, f| {
        *m.entry(f["error"]["kind"].as_str().unwrap_or("?").to_owned())
            .or_default() += f["payload"]["count"].as_u64().unwrap_or(0);
        m
    });
    eprintln!("reported by kind: {kinds:?}; {requests} requests reached the destination");
    assert_eq!(
        kinds,
        HashMap::from([("destination_paused".to_owned(), N)]),
        "every parked event of the paused destination is reported as paused\n{}",
        courier.log_tail()
    );
    // Its first failure at once, then a probe a second until the pause at 3 s: a handful.
    assert!(
        requests <= 8,
        "{requests} requests reached a destination paused after 3 s of failures"
    );
    assert_eq!(hook.event_count(), 0);
}
