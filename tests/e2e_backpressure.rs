//! A broker that skips records must not make courier commit them as delivered.
//!
//! tansu answers a fetch that starts inside a record batch with the *next* batch (TESTING.md
//! quirk 2), and librdkafka resumes a paused partition exactly there. Here the events are
//! produced in large multi-record batches and a slow destination with a small queue makes
//! courier pause and resume its partitions over and over: every event must still arrive, and
//! the committed offsets must reach the end only when they have. Before courier checked the
//! offset that follows a resume, such runs committed every partition to its end while tens of
//! thousands of events were never read.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use courier::generator::{Generator, GeneratorConfig};

const TOPIC: &str = "event-logs";
const PARTITIONS: i32 = 2;
const EVENTS: usize = 20_000;

#[test]
fn every_event_arrives_when_the_broker_skips_the_rest_of_a_batch_after_a_resume() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, PARTITIONS);
    create_topic(&brokers, "courier-failures", 1);

    let mut gen = Generator::new(GeneratorConfig {
        seed: 12,
        projects: 1,
        poison_every: None,
        target_bytes: None,
    });
    let mut events = Vec::with_capacity(EVENTS);
    let mut ids = HashSet::new();
    while events.len() < EVENTS {
        let bytes = gen.event_for_project("proj_a");
        if !ids.insert(event_id(&bytes)) {
            continue;
        }
        events.push(((events.len() % PARTITIONS as usize) as i32, bytes));
    }
    let produced = produce_batched(&brokers, TOPIC, events);
    let ends = end_offsets(&produced);

    // 20 ms per request, one request at a time and a queue of 200 events: the lane is always
    // full, so both partitions pause and resume hundreds of times, mostly inside a batch.
    let receiver = WebhookReceiver::start(ReceiverConfig::default());
    receiver.set_behaviour(Behaviour::Slow(Duration::from_millis(20)));
    let cfg = CourierConfig::new(&brokers)
        .delivery("batch_max_events", "100")
        .delivery("max_in_flight", "1")
        .delivery("queue_max_events", "200")
        .destination(receiver.destination_toml("proj_a", "slow-hook"));
    let courier = Courier::start_ready(&cfg);

    let start = Instant::now();
    let committed = loop {
        let committed = committed_offsets(&brokers, "courier-test", TOPIC);
        if ends.iter().all(|(p, e)| committed.get(p) == Some(e)) {
            break committed;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "committed offsets {committed:?} never reached {ends:?}; {} of {EVENTS} events delivered\n{}",
            receiver.event_count(),
            courier.log_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    };

    // Committed to the end: every event must have arrived.
    let delivered: HashSet<String> = receiver.events().iter().map(|e| event_id(e)).collect();
    let missing = ids.difference(&delivered).count();
    assert_eq!(
        missing, 0,
        "committed {committed:?} (the end) but {missing} of {EVENTS} events never arrived"
    );
    assert!(
        receiver.violations().is_empty(),
        "{:?}",
        receiver.violations()
    );
    let metrics = courier.metrics();
    let rewinds = metric_sum(&metrics, "courier_partition_rewinds_total", &[]).unwrap_or(0.0);
    let paused = receiver.request_count();
    eprintln!("requests {paused}, rewinds after skipped records {rewinds}");
    assert_eq!(
        metric_sum(&metrics, "courier_skipped_offsets_total", &[]).unwrap_or(0.0),
        0.0,
        "no offset of this topic is really missing"
    );
}
