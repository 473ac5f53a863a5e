//! Backpressure end to end (tansu, the compiled binary): a partition paused for a full
//! destination queue goes on while other partitions stream, and resumes exactly where it
//! stopped, even on a broker that skips records.
//!
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

const TOPIC: &str = "event-logs";
const PARTITIONS: i32 = 2;
const EVENTS: usize = 20_000;

#[test]
fn every_event_arrives_when_the_broker_skips_the_rest_of_a_batch_after_a_resume() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, PARTITIONS);
    create_topic(&brokers, "courier-failures", 1);

    // Every id once, so that each event can be told apart.
    let mut ids = HashSet::new();
    let events: Vec<(i32, Vec<u8>)> =
        events_in_turn(&mut generator(12, 1), EVENTS, &["proj_a"], |e| {
            ids.insert(event_id(e))
        })
        .into_iter()
        .enumerate()
        .map(|(i, (_, bytes))| ((i % PARTITIONS as usize) as i32, bytes))
        .collect();
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

/// A partition waiting for room in a slow destination's queue is drained, resumed and
/// re-checked over and over while another partition streams a long backlog: both destinations
/// get every event exactly once. (The source's drain timer used to be created anew on every
/// turn of its loop, so it could not fire while messages kept arriving; it is a persistent
/// interval now. How much the slow destination gets *during* the stream depends on the
/// machine's load, so this test checks the outcome, not that timing.)
#[test]
fn a_stalled_partition_is_drained_while_other_partitions_stream() {
    const BUSY: usize = 60_000;
    const SLOW: usize = 3_000;
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, PARTITIONS);
    create_topic(&brokers, "courier-failures", 1);

    let mut gen = generator(7, 1);
    // Partition 0: the slow destination's project, one record per batch, so that its resumes
    // cost no rewinds on tansu (quirk 2) and it goes at the destination's pace; partition 1: a
    // long backlog of a busy project, in large batches.
    let slow_events = events_in_turn(&mut gen, SLOW, &["proj_slow"], |_| true);
    produce(
        &brokers,
        TOPIC,
        slow_events.into_iter().map(|(_, bytes)| (Some(0), bytes)),
    );
    let busy_events: Vec<(i32, Vec<u8>)> = events_in_turn(&mut gen, BUSY, &["proj_busy"], |_| true)
        .into_iter()
        .map(|(_, bytes)| (1, bytes))
        .collect();
    produce_batched(&brokers, TOPIC, busy_events);

    let slow = WebhookReceiver::start(ReceiverConfig::default());
    slow.set_behaviour(Behaviour::Slow(Duration::from_millis(5)));
    let busy = WebhookReceiver::start(ReceiverConfig::default());
    let slow_table = slow.destination_toml("proj_slow", "slow-hook")
        + "[destinations.delivery]\nbatch_max_events = 50\nqueue_max_events = 100\nmax_in_flight = 1\n";
    let busy_table = busy.destination_toml("proj_busy", "busy-hook")
        + "[destinations.delivery]\nbatch_max_events = 1000\nqueue_max_events = 200000\nmax_in_flight = 8\n";
    // A small prefetch queue: a resumed partition's records then come soon, instead of
    // behind megabytes of the busy partition's prefetched backlog.
    let mut cfg = CourierConfig::new(&brokers)
        .kafka_option("queued.max.messages.kbytes", "1024")
        .destination(slow_table)
        .destination(busy_table);
    // The global budget must not pause reading (a pause would give the drain its turn).
    cfg.extra
        .push_str("[limits]\nmax_in_flight_events = 1000000\nmax_in_flight_bytes = 1073741824\n");
    let courier = Courier::start_ready(&cfg);

    wait_explained(
        "the busy destination receives its backlog",
        Duration::from_secs(240),
        Duration::from_millis(50),
        || busy.event_count() >= BUSY,
        || courier.log_tail(),
    );
    let slow_during = slow.event_count();
    wait_explained(
        "the slow destination receives every event",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || slow.event_count() >= SLOW,
        || courier.log_tail(),
    );
    // Exactly once each: the stalls, resumes and any rewinds neither lose nor repeat events.
    let once = |r: &WebhookReceiver, n: usize, what: &str| {
        let ids: HashSet<String> = r.events().iter().map(|e| event_id(e)).collect();
        assert_eq!(
            (ids.len(), r.event_count()),
            (n, n),
            "{what}: distinct and delivered"
        );
    };
    once(&slow, SLOW, "slow destination");
    once(&busy, BUSY, "busy destination");
    eprintln!("slow destination: {slow_during} of {SLOW} events delivered while the busy partition streamed");
}
