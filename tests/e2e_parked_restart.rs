//! End-to-end test of parked events across a crash: events waiting in the retry topic when
//! courier is killed with SIGKILL are delivered by the next process — nothing is lost.
//!
//! Broker: tansu (one broker for the test). The test restarts consumers after a `kill -9`, so
//! it works around the broker's quirks from `TESTING.md`: the Event Logs are produced one
//! record per batch (quirk 2: a fetch from the middle of a batch skips the rest of it; the
//! retry worker itself notices such skips after its rewinds and rewinds further back), the
//! daemon runs with `session.timeout.ms=6000` and is restarted only after that session has
//! expired (quirks 4 and 8: a member that rejoins while the killed member's session is still
//! open can get an empty assignment that never heals), and topic ends are computed from the
//! offsets the records were actually given, never from the broker's high watermark (quirk 3).
//! The mock cluster is not used: it drops old messages (TESTING.md), and this test needs every
//! parked record to stay in the retry topic.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use courier::parking::reference::ParkedReference;
use serde_json::Value;

const TOPIC: &str = "event-logs";
const FAILURES: &str = "courier-failures";
/// courier's default retry topic (`failures.retry_topic`), created by courier itself.
const RETRY_TOPIC: &str = "courier-retry";
const GROUP: &str = "courier-test";
/// The group courier reads the retry topic in: `<kafka.group_id>-retry`.
const RETRY_GROUP: &str = "courier-test-retry";
const PARTITIONS: i32 = 4;
const PROJECT: &str = "proj_0001";
const DESTINATION: &str = "hook-1";
const N: usize = 200;
const CATCH_UP: Duration = Duration::from_secs(60);
const SESSION_TIMEOUT_MS: u64 = 6000;
/// The first entry of the retry schedule: long enough that the parked records still wait
/// both when courier is killed and when the second process starts.
const FIRST_DELAY: Duration = Duration::from_secs(16);

/// `N` realistic events of one project (generated delivery-failure events left out), produced
/// round-robin over the partitions, one record per batch. Returns (bytes, id, position).
fn produce_events(brokers: &str) -> Vec<(Vec<u8>, String, (i32, i64))> {
    let events: Vec<Vec<u8>> = ordinary_events(&mut generator(23, 1), N, &[PROJECT])
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect();
    let positions = produce_spread(brokers, TOPIC, PARTITIONS, events.iter().cloned());
    events
        .into_iter()
        .zip(positions)
        .map(|(b, pos)| {
            let id = event_id(&b);
            (b, id, pos)
        })
        .collect()
}

/// Waits for `cond` (polling every 200 ms, up to `CATCH_UP`), failing with the courier and
/// broker logs.
fn wait_for(what: &str, courier: &Courier, tansu: &Tansu, cond: impl FnMut() -> bool) {
    wait_explained(what, CATCH_UP, Duration::from_millis(200), cond, || {
        format!(
            "{}\n--- broker ---\n{}",
            courier.log_tail(),
            tansu.log_tail(30)
        )
    });
}

/// Whether `group`'s committed offsets of `topic` reach `ends` on every partition.
fn committed_reach(brokers: &str, group: &str, topic: &str, ends: &HashMap<i32, i64>) -> bool {
    let committed = committed_offsets(brokers, group, topic);
    ends.iter()
        .all(|(p, end)| committed.get(p).is_some_and(|c| c >= end))
}

fn parked_total(courier: &Courier) -> f64 {
    metric_sum(&courier.metrics(), "courier_events_parked_total", &[]).unwrap_or(0.0)
}

/// Broker: tansu. A webhook destination answers 503, so its circuit opens and all `N` of its
/// events are parked in the retry topic for a first scheduled attempt 16 s away, and the Event
/// Logs offsets are committed past them. courier is then killed with SIGKILL while every
/// parked record still waits. After the dead member's session has expired the destination
/// recovers and a new courier starts in the same group. It waits until the parked records are
/// due (none is delivered early), then every event arrives (at least once, from the retry
/// topic alone, since the Event Logs offsets were committed before the kill),
/// no request breaks the webhook contract, no delivery-failure event is written, and both
/// the Event Logs group and the retry group commit past everything.
#[test]
fn parked_copies_survive_a_kill_9_and_are_delivered_after_the_restart() {
    parked_events_survive_a_kill_9("copy");
}

/// The same with parking by reference: the retry topic holds one small record per parked
/// batch naming the events' offsets, and the second process reads the events back from the
/// Event Logs topic when they are due.
#[test]
fn parked_references_survive_a_kill_9_and_are_delivered_after_the_restart() {
    parked_events_survive_a_kill_9("reference");
}

fn parked_events_survive_a_kill_9(parking: &str) {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, PARTITIONS);
    create_topic(&brokers, FAILURES, 1);
    let produced = produce_events(&brokers);
    let positions: Vec<(i32, i64)> = produced.iter().map(|(_, _, pos)| *pos).collect();
    let source_ends = end_offsets(&positions);
    let expected: HashSet<Vec<u8>> = produced.iter().map(|(b, _, _)| b.clone()).collect();
    assert_eq!(expected.len(), N, "the generator made {N} distinct events");
    let ids: HashSet<&str> = produced.iter().map(|(_, id, _)| id.as_str()).collect();

    let hook = WebhookReceiver::start(ReceiverConfig::default().signed());
    hook.set_behaviour(Behaviour::Always(503));
    // A short in-line budget and a circuit that opens after 3 failures park batches quickly.
    // The first scheduled attempt is 16 s (±10%) after parking: nothing is retried before the
    // kill (about 1 s after parking), and the records are still waiting when the second
    // process starts (about 9 s after parking), so it has to wait for them too. The later
    // attempts are short, should a retry after the restart fail.
    let cfg = CourierConfig::new(&brokers)
        .parking(parking)
        .kafka_option("session.timeout.ms", &SESSION_TIMEOUT_MS.to_string())
        .delivery("retry_max_elapsed", "\"500ms\"")
        .delivery(
            "retry_schedule",
            &format!(
                "[\"{}s\", \"1s\", \"1s\", \"1s\", \"1s\"]",
                FIRST_DELAY.as_secs()
            ),
        )
        .delivery("circuit_failure_threshold", "3")
        .delivery("probe_interval", "\"300ms\"")
        .delivery("request_timeout", "\"1s\"")
        .destination(hook.destination_toml(PROJECT, DESTINATION));

    // --- First process: park everything, commit the Event Logs past it, then SIGKILL. ---
    // Taken before the process starts: nothing can be parked earlier (the events are all
    // produced already, so parking may begin while `start_ready` is still waiting).
    let first_started = Instant::now();
    let mut first = Courier::start_ready(&cfg);
    wait_for("every event is parked", &first, &tansu, || {
        parked_total(&first) >= N as f64
    });
    wait_for(
        "the Event Logs offsets are committed past the parked events",
        &first,
        &tansu,
        || committed_reach(&brokers, GROUP, TOPIC, &source_ends),
    );
    // Exactly N: no batch has come back from the retry topic and been parked again yet.
    let parked_before_kill = parked_total(&first);
    assert_eq!(
        parked_before_kill,
        N as f64,
        "the first scheduled attempt ran before the kill ({:?} after the first process \
         started); the test needs a longer first delay\n{}",
        first_started.elapsed(),
        first.log_tail()
    );
    first.kill9();
    let killed_at = Instant::now();
    eprintln!(
        "killed courier {:?} after it started, {N} events parked",
        killed_at - first_started
    );
    assert_eq!(hook.event_count(), 0, "a 503 receiver accepted events");

    // What survived the kill: every event, once, in the retry topic, none of it taken up
    // (the retry group has committed nothing past any parked record).
    let retry_records = read_all(&brokers, RETRY_TOPIC, Duration::from_secs(2));
    if parking == "copy" {
        let parked = multiset(retry_records.iter().map(|(_, _, v)| v.clone()));
        assert_eq!(
            parked,
            multiset(expected.iter().cloned()),
            "the retry topic holds each event exactly once: {}",
            describe_difference(&multiset(expected.iter().cloned()), &parked)
        );
    } else {
        // Each record is a reference (version 1) and together they name every event's
        // position once.
        let mut named: Vec<(i32, i64)> = Vec::new();
        for (_, _, value) in &retry_records {
            let r = ParkedReference::decode(b"1", value).expect("a parked reference");
            assert_eq!(
                (r.project.as_str(), r.destination.as_str()),
                (PROJECT, DESTINATION)
            );
            for p in &r.partitions {
                named.extend(p.iter().map(|o| (p.partition, o)));
            }
        }
        named.sort_unstable();
        let mut want = positions.clone();
        want.sort_unstable();
        assert_eq!(named, want, "the references name each event once");
        assert!(
            retry_records.len() < N / 4,
            "{} reference records for {N} events: not one per batch",
            retry_records.len()
        );
    }
    let retry_positions: Vec<(i32, i64)> = retry_records.iter().map(|(p, o, _)| (*p, *o)).collect();
    let retry_ends = end_offsets(&retry_positions);
    let retry_committed = committed_offsets(&brokers, RETRY_GROUP, RETRY_TOPIC);
    for &(p, o) in &retry_positions {
        assert!(
            retry_committed.get(&p).is_none_or(|c| *c <= o),
            "the retry group committed {retry_committed:?} past parked record {p}/{o} before \
             it could have been attempted"
        );
    }
    drop(first);

    // --- Second process: after the dead member's session expired (quirks 4 and 8). ---
    let restart_at = killed_at + Duration::from_millis(SESSION_TIMEOUT_MS + 2000);
    std::thread::sleep(restart_at.saturating_duration_since(Instant::now()));
    hook.set_behaviour(Behaviour::Ok);
    let second = Courier::start_ready(&cfg);
    let restarted = Instant::now();
    wait_for(
        "every parked event is delivered after the restart",
        &second,
        &tansu,
        || {
            let got: HashSet<Vec<u8>> = hook.events().into_iter().collect();
            expected.iter().all(|e| got.contains(e))
        },
    );
    eprintln!(
        "all {N} events delivered {:?} after the restart",
        restarted.elapsed()
    );
    // The new process kept the schedule: no parked event went out before the earliest time
    // any of them was due. Parking began after `first_started` and the first delay is at least
    // 90% of `FIRST_DELAY` (courier's due times are wall-clock, the receiver's are monotonic;
    // the bound is seconds away from both, so only a clock step could blur it).
    let earliest_due = first_started + FIRST_DELAY.mul_f64(0.9);
    let early: Vec<RequestRecord> = hook
        .requests()
        .into_iter()
        .filter(|r| r.status == 200 && r.at < earliest_due)
        .collect();
    assert!(
        early.is_empty(),
        "{} requests delivered parked events before they were due: {early:?}",
        early.len()
    );
    if restarted >= earliest_due {
        eprintln!(
            "note: the second process was ready only after the parked records were due; \
             its waiting for them was not exercised this time"
        );
    }
    wait_for(
        "the retry group commits past every parked record",
        &second,
        &tansu,
        || committed_reach(&brokers, RETRY_GROUP, RETRY_TOPIC, &retry_ends),
    );

    // Every event arrived at least once, nothing else did; duplicates are counted.
    let got = multiset(hook.events());
    for e in &expected {
        assert!(got.contains_key(e), "an event never arrived");
    }
    let foreign: Vec<&Vec<u8>> = got.keys().filter(|e| !expected.contains(*e)).collect();
    assert!(
        foreign.is_empty(),
        "{} events arrived that were never produced, e.g. {}",
        foreign.len(),
        String::from_utf8_lossy(foreign[0])
    );
    let duplicates: usize = got.values().map(|n| n - 1).sum();
    eprintln!(
        "{} events received for {N} produced: {duplicates} duplicates",
        hook.event_count()
    );
    assert!(hook.violations().is_empty(), "{:?}", hook.violations());

    // No delivery-failure event about the destination, nor naming any of these events.
    let failures: Vec<Value> = read_all(&brokers, FAILURES, Duration::from_secs(2))
        .into_iter()
        .map(|(_, _, b)| serde_json::from_slice(&b).expect("failure events are JSON"))
        .collect();
    for f in &failures {
        assert!(
            !f["payload"]["eventIds"].is_array(),
            "unexpected delivery-failure event: {f}\n{}",
            second.log_tail()
        );
        let text = f.to_string();
        assert!(
            !ids.iter().any(|id| text.contains(id)),
            "a failure event names one of the parked events: {f}"
        );
    }

    // The Event Logs group's commits cover all N events (they were before the kill, and the
    // new process never moved them back).
    let committed = committed_offsets(&brokers, GROUP, TOPIC);
    for (p, end) in &source_ends {
        assert_eq!(
            committed.get(p),
            Some(end),
            "committed Event Logs offsets {committed:?}, produced ends {source_ends:?}\n{}",
            second.log_tail()
        );
    }
}
