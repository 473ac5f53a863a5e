//! End-to-end tests: the compiled `courier` binary, run as a user would run it, against a real
//! Kafka-protocol broker (`tansu`, one broker process per test so tests are independent and
//! run in parallel) and webhook receivers in the test process that enforce the webhook
//! contract. Test data comes from `courier::generator`.
//!
//! Every message is produced one record per batch (TESTING.md quirk 2) and end offsets are
//! computed from what the producer got back (quirk 3).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use courier::generator::{GeneratedMessage, Generator, GeneratorConfig};
use serde_json::Value;

const TOPIC: &str = "event-logs";
const FAILURES: &str = "courier-failures";
const PARTITIONS: i32 = 4;

/// How long a test waits for the pipeline to catch up before failing.
const CATCH_UP: Duration = Duration::from_secs(45);
const POLL: Duration = Duration::from_millis(100);

/// A broker with the input topic (4 partitions) and the failures topic (1 partition).
fn broker() -> Tansu {
    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), TOPIC, PARTITIONS);
    create_topic(&tansu.brokers(), FAILURES, 1);
    tansu
}

/// Generated messages and where the broker put them.
struct Produced {
    messages: Vec<GeneratedMessage>,
    positions: Vec<(i32, i64)>,
}

impl Produced {
    fn ends(&self) -> HashMap<i32, i64> {
        end_offsets(&self.positions)
    }

    /// Indices of the messages routed to destination `dest` of `project`: the project's
    /// valid events, except delivery-failure events that report on `dest` itself (invariant 6:
    /// those never go to the destination they report on; the generator makes some).
    fn routed_to<'a>(
        &'a self,
        project: &'a str,
        dest: &'a str,
    ) -> impl Iterator<Item = usize> + 'a {
        self.messages
            .iter()
            .enumerate()
            .filter(move |(_, m)| {
                m.poison.is_none()
                    && m.project.as_deref() == Some(project)
                    && reports_on(&m.bytes).as_deref() != Some(dest)
            })
            .map(|(i, _)| i)
    }

    /// The multiset of the bytes of the messages routed to destination `dest` of `project`.
    fn expected_for(&self, project: &str, dest: &str) -> HashMap<Vec<u8>, usize> {
        multiset(
            self.routed_to(project, dest)
                .map(|i| self.messages[i].bytes.clone()),
        )
    }
}

/// The `destinationId` a delivery-failure event (`type: EVENT_DESTINATION`) reports on.
fn reports_on(event: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(event).ok()?;
    if v.get("type")?.as_str()? != "EVENT_DESTINATION" {
        return None;
    }
    Some(v.get("destinationId")?.as_str()?.to_string())
}

/// Produces `messages` round-robin over the partitions.
fn produce_messages(brokers: &str, messages: Vec<GeneratedMessage>) -> Produced {
    let positions = produce_spread(
        brokers,
        TOPIC,
        PARTITIONS,
        messages.iter().map(|m| m.bytes.clone()),
    );
    Produced {
        messages,
        positions,
    }
}

/// `n` routable events (delivery-failure events included), spread over `projects` in turn.
fn events_for(gen: &mut Generator, n: usize, projects: &[&str]) -> Vec<GeneratedMessage> {
    events_in_turn(gen, n, projects, |_| true)
        .into_iter()
        .map(|(project, bytes)| GeneratedMessage {
            bytes,
            project: Some(project),
            poison: None,
        })
        .collect()
}

/// Waits until the group has committed `ends` on every partition.
fn wait_committed(brokers: &str, group: &str, ends: &HashMap<i32, i64>, courier: &Courier) {
    let start = Instant::now();
    loop {
        let committed = committed_offsets(brokers, group, TOPIC);
        if ends.iter().all(|(p, e)| committed.get(p) == Some(e)) {
            return;
        }
        if let Some((p, c)) = committed
            .iter()
            .find(|(p, c)| **c > ends.get(p).copied().unwrap_or(0))
        {
            panic!(
                "partition {p}: committed offset {c} is beyond the end offset {:?}\n{}",
                ends.get(p),
                courier.log_tail()
            );
        }
        if start.elapsed() > CATCH_UP {
            panic!(
                "committed offsets {committed:?} never reached the end offsets {ends:?}\n{}",
                courier.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `receiver` has accepted at least one copy of every event in `expected`.
fn wait_received_all(
    receiver: &WebhookReceiver,
    expected: &HashMap<Vec<u8>, usize>,
    courier: &Courier,
) {
    let start = Instant::now();
    loop {
        let got: HashSet<Vec<u8>> = receiver.events().into_iter().collect();
        let missing = expected.keys().filter(|e| !got.contains(*e)).count();
        if missing == 0 {
            return;
        }
        if start.elapsed() > CATCH_UP {
            panic!(
                "{missing} of {} events never reached {} (violations: {:?})\n{}",
                expected.len(),
                receiver.url(),
                receiver.violations(),
                courier.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
}

fn assert_no_violations(receiver: &WebhookReceiver, courier: &Courier) {
    let v = receiver.violations();
    assert!(
        v.is_empty(),
        "{} webhook contract violations at {}, first ones: {:#?}\n{}",
        v.len(),
        receiver.url(),
        &v[..v.len().min(5)],
        courier.log_tail()
    );
}

/// Asserts the receiver accepted exactly `expected`: every event, byte-identical, exactly as
/// many times as produced, and nothing else.
fn assert_exactly(
    receiver: &WebhookReceiver,
    expected: &HashMap<Vec<u8>, usize>,
    courier: &Courier,
) {
    let got = multiset(receiver.events());
    assert!(
        &got == expected,
        "{} did not receive exactly the produced events: {}\n{}",
        receiver.url(),
        describe_difference(expected, &got),
        courier.log_tail()
    );
}

/// Asserts the receiver accepted every event of `expected` at least once and nothing else.
fn assert_at_least_once(
    receiver: &WebhookReceiver,
    expected: &HashMap<Vec<u8>, usize>,
    courier: &Courier,
) {
    let got = multiset(receiver.events());
    let missing = expected.keys().filter(|e| !got.contains_key(*e)).count();
    let foreign = got.keys().filter(|e| !expected.contains_key(*e)).count();
    assert!(
        missing == 0 && foreign == 0,
        "{}: {missing} produced events never received, {foreign} received events never produced: {}\n{}",
        receiver.url(),
        describe_difference(expected, &got),
        courier.log_tail()
    );
}

/// Invariant 1 (nothing is lost): for every committed offset `c` of partition `p`, every event
/// routed to `receiver` that was produced on `p` below `c` has been accepted by the receiver.
fn assert_commits_covered(
    committed: &HashMap<i32, i64>,
    produced: &Produced,
    (project, dest): (&str, &str),
    receiver: &WebhookReceiver,
    courier: &Courier,
) {
    let received: HashSet<Vec<u8>> = receiver.events().into_iter().collect();
    let mut lost = Vec::new();
    for i in produced.routed_to(project, dest) {
        let (p, o) = produced.positions[i];
        if let Some(&c) = committed.get(&p) {
            if o < c && !received.contains(&produced.messages[i].bytes) {
                lost.push((p, o));
            }
        }
    }
    lost.sort();
    assert!(
        lost.is_empty(),
        "offsets committed ({committed:?}) past {} events the receiver never accepted, e.g. \
         partition/offset {:?}\n{}",
        lost.len(),
        &lost[..lost.len().min(10)],
        courier.log_tail()
    );
}

/// Every event `receiver` accepted lies below the committed offset of its partition.
fn assert_received_all_committed(
    committed: &HashMap<i32, i64>,
    produced: &Produced,
    receiver: &WebhookReceiver,
    courier: &Courier,
) {
    let position: HashMap<&[u8], (i32, i64)> = produced
        .messages
        .iter()
        .zip(&produced.positions)
        .map(|(m, &pos)| (m.bytes.as_slice(), pos))
        .collect();
    let mut uncommitted: Vec<(i32, i64)> = receiver
        .events()
        .iter()
        .map(|e| position[e.as_slice()])
        .filter(|(p, o)| *o >= committed.get(p).copied().unwrap_or(0))
        .collect();
    uncommitted.sort();
    assert!(
        uncommitted.is_empty(),
        "{} delivered events are not covered by the committed offsets {committed:?} after a \
         drained shutdown, e.g. (partition, offset) {:?}\n{}",
        uncommitted.len(),
        &uncommitted[..uncommitted.len().min(10)],
        courier.log_tail()
    );
}

/// Invariant 2 (duplicates bounded): an event received more than once must have been at or
/// above the committed offset of its partition when the previous process stopped.
fn assert_duplicates_only_above(
    committed_at_stop: &HashMap<i32, i64>,
    produced: &Produced,
    (project, dest): (&str, &str),
    receiver: &WebhookReceiver,
    courier: &Courier,
) {
    let got = multiset(receiver.events());
    let mut bad = Vec::new();
    for i in produced.routed_to(project, dest) {
        let (p, o) = produced.positions[i];
        let copies = got.get(&produced.messages[i].bytes).copied().unwrap_or(0);
        if copies > 1 && o < committed_at_stop.get(&p).copied().unwrap_or(0) {
            bad.push((p, o, copies));
        }
    }
    bad.sort();
    assert!(
        bad.is_empty(),
        "{} events below the committed offsets {committed_at_stop:?} were delivered again after \
         the restart (partition, offset, copies): {:?}\n{}",
        bad.len(),
        &bad[..bad.len().min(10)],
        courier.log_tail()
    );
}

/// Parses the failures topic.
fn failure_events(brokers: &str) -> Vec<(i64, Value)> {
    read_all(brokers, FAILURES, Duration::from_secs(1))
        .into_iter()
        .map(|(_, offset, bytes)| {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "failure event at offset {offset} is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            });
            (offset, v)
        })
        .collect()
}

fn metric(courier: &Courier, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = courier.metrics();
    metric_sum(&text, name, labels).unwrap_or_else(|| {
        panic!(
            "/metrics has no {name}{labels:?}; exposition:\n{}",
            text.lines()
                .filter(|l| l.starts_with("courier_"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// Checks the fields every delivery-failure Event Log carries (CONTRACT.md).
fn assert_failure_common(v: &Value) {
    assert_eq!(v["type"], "EVENT_DESTINATION", "type of {v}");
    assert_eq!(v["level"], "ERROR", "level of {v}");
    assert_eq!(v["status"], "EVENT_STATUS.FAILED", "status of {v}");
    assert!(v["id"].as_str().is_some_and(|s| !s.is_empty()), "id of {v}");
    assert!(
        v["timestamp"]
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
        "timestamp of {v} is not RFC 3339"
    );
    assert_eq!(
        v["payload"]["source"]["topic"], TOPIC,
        "source topic of {v}"
    );
}

// -------------------------------------------------------------------------------------------------

/// Broker: tansu (real Kafka protocol in its own process) — the test needs volume (3,000
/// messages on 4 partitions), a consumer group that commits, and a second topic to read the
/// failure events from; no broker fault is injected, so the mock cluster is not needed.
///
/// proj_0001 → signed JSON-array webhook; proj_0002 → NDJSON + gzip webhook; proj_0003 has no
/// destination (its events complete without delivery); every 50th message is poison.
#[test]
fn delivers_every_routed_event_byte_identical() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook1 = WebhookReceiver::start(ReceiverConfig::default().signed());
    let hook2 = WebhookReceiver::start(ReceiverConfig::default().format(Format::Ndjson).gzip());
    let cfg = CourierConfig::new(&brokers)
        .destination(hook1.destination_toml("proj_0001", "hook-1"))
        .destination(hook2.destination_toml("proj_0002", "hook-2"));
    let courier = Courier::start_ready(&cfg);

    let mut gen = Generator::new(GeneratorConfig {
        seed: 11,
        projects: 3,
        poison_every: Some(50),
        target_bytes: None,
    });
    let messages: Vec<GeneratedMessage> = (0..3000).map(|_| gen.next_message()).collect();
    let poison_count = messages.iter().filter(|m| m.poison.is_some()).count();
    assert!(
        poison_count >= 40,
        "generator made only {poison_count} poison messages"
    );
    let produced = produce_messages(&brokers, messages);
    let expected1 = produced.expected_for("proj_0001", "hook-1");
    let expected2 = produced.expected_for("proj_0002", "hook-2");
    let expected3 = produced.expected_for("proj_0003", "");
    assert!(
        expected1.len() > 500 && expected2.len() > 500 && expected3.len() > 500,
        "generator should spread events over 3 projects: {} / {} / {}",
        expected1.len(),
        expected2.len(),
        expected3.len()
    );

    wait_received_all(&hook1, &expected1, &courier);
    wait_received_all(&hook2, &expected2, &courier);
    wait_committed(&brokers, "courier-test", &produced.ends(), &courier);
    // Anything still in flight (a duplicate would be a bug here: nothing failed) arrives now.
    std::thread::sleep(Duration::from_millis(500));

    assert_no_violations(&hook1, &courier);
    assert_no_violations(&hook2, &courier);
    assert_exactly(&hook1, &expected1, &courier);
    assert_exactly(&hook2, &expected2, &courier);
    assert!(hook1
        .requests()
        .iter()
        .all(|r| r.status == 200 && r.webhook_id.is_some()));

    // One unroutable failure event per poison message, with the right kind and offsets.
    let mut poison: HashMap<(i32, i64), &'static str> = HashMap::new();
    for (i, m) in produced.messages.iter().enumerate() {
        if let Some(kind) = &m.poison {
            poison.insert(produced.positions[i], kind.reason());
        }
    }
    let failures = failure_events(&brokers);
    let mut seen: HashMap<(i32, i64), usize> = HashMap::new();
    for (offset, v) in &failures {
        assert_failure_common(v);
        let message = v["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Event could not be routed: "),
            "failure event at {offset} is not an unroutable event: {v}"
        );
        assert!(
            v.get("destinationId").is_none(),
            "unroutable event has a destinationId: {v}"
        );
        let source = &v["payload"]["source"];
        let p = source["partition"].as_i64().expect("partition") as i32;
        let first = source["firstOffset"].as_i64().expect("firstOffset");
        let last = source["lastOffset"].as_i64().expect("lastOffset");
        assert_eq!(first, last, "unroutable event covers one message: {v}");
        let kind = poison.get(&(p, first)).unwrap_or_else(|| {
            panic!("failure event for partition {p} offset {first}, which is not poison: {v}")
        });
        assert_eq!(v["error"]["kind"], *kind, "error.kind of {v}");
        *seen.entry((p, first)).or_insert(0) += 1;
    }
    let missing: Vec<_> = poison.keys().filter(|k| !seen.contains_key(*k)).collect();
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty() && doubled.is_empty(),
        "{} poison messages without a failure event (e.g. {:?}), {} with several: {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        doubled.len(),
        &doubled[..doubled.len().min(5)],
        courier.log_tail()
    );
    assert_eq!(failures.len(), poison.len(), "failure events: {failures:?}");

    assert_eq!(
        metric(&courier, "courier_events_consumed_total", &[]),
        3000.0,
        "courier_events_consumed_total"
    );
    assert_eq!(
        metric(&courier, "courier_events_unroutable_total", &[]),
        poison_count as f64,
        "courier_events_unroutable_total"
    );
    assert_eq!(
        metric(
            &courier,
            "courier_events_delivered_total",
            &[("destination_type", "webhook")]
        ),
        (expected1.len() + expected2.len()) as f64,
        "courier_events_delivered_total{{destination_type=\"webhook\"}}"
    );
}

/// Broker: tansu — the daemon is stopped and restarted with the same consumer group, so the
/// test needs a broker that outlives it and keeps committed offsets; data is produced one
/// record per batch so the restart from the committed offset skips nothing (quirk 2).
///
/// A slow receiver keeps batches in flight; SIGTERM must drain them, commit only what was
/// delivered, and exit 0; a restart then delivers the rest.
#[test]
fn sigterm_drains_and_commits() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default().signed());
    hook.set_behaviour(Behaviour::Slow(Duration::from_millis(200)));
    let cfg = CourierConfig::new(&brokers)
        .delivery("batch_max_events", "20")
        .destination(hook.destination_toml("proj_0001", "hook-1"));
    // Produced before the daemon starts, so the slow receiver alone sets the pace (at most
    // 4 requests × 20 events per 200 ms) however long producing takes on a loaded machine.
    let mut gen = generator(21, 3);
    let produced = produce_messages(
        &brokers,
        events_for(&mut gen, 1600, &["proj_0001", "proj_0001", "proj_0002"]),
    );
    let expected = produced.expected_for("proj_0001", "hook-1");
    let mut courier = Courier::start_ready(&cfg);

    wait_until(
        "the receiver got 100 events",
        CATCH_UP,
        Duration::from_millis(20),
        || hook.event_count() >= 100,
    );
    assert!(
        hook.event_count() < expected.len(),
        "everything was delivered before SIGTERM; the test needs a slower receiver"
    );
    let status = courier.terminate(Duration::from_secs(40));
    assert!(
        status.success(),
        "courier exited with {status} after SIGTERM\n{}",
        courier.log_tail()
    );
    let committed = committed_offsets(&brokers, "courier-test", TOPIC);
    assert!(
        !committed.is_empty(),
        "nothing committed after a drained shutdown\n{}",
        courier.log_tail()
    );
    assert_commits_covered(
        &committed,
        &produced,
        ("proj_0001", "hook-1"),
        &hook,
        &courier,
    );
    // A drained shutdown completes what it had taken up: nothing the receiver accepted is
    // left above the committed offsets (it would be delivered again after the restart).
    assert_received_all_committed(&committed, &produced, &hook, &courier);
    assert_no_violations(&hook, &courier);
    drop(courier);

    hook.set_behaviour(Behaviour::Ok);
    let courier = Courier::start_ready(&cfg);
    wait_received_all(&hook, &expected, &courier);
    wait_committed(&brokers, "courier-test", &produced.ends(), &courier);
    std::thread::sleep(Duration::from_millis(300));
    assert_no_violations(&hook, &courier);
    assert_at_least_once(&hook, &expected, &courier);
    assert_duplicates_only_above(
        &committed,
        &produced,
        ("proj_0001", "hook-1"),
        &hook,
        &courier,
    );
}

/// Broker: tansu — the daemon is killed with SIGKILL and restarted in the same group; the
/// restart waits out the dead member's session (`session.timeout.ms=6000`, quirk 4) and data
/// is one record per batch (quirk 2).
///
/// Offsets committed before the kill must never be past undelivered events, and after the
/// restart every event arrives at least once, redelivering only what was above the commit.
#[test]
fn kill9_then_restart_delivers_everything() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default().format(Format::Ndjson));
    hook.set_behaviour(Behaviour::Slow(Duration::from_millis(200)));
    let cfg = CourierConfig::new(&brokers)
        .delivery("batch_max_events", "20")
        .destination(hook.destination_toml("proj_0001", "hook-1"));
    // Produced before the daemon starts, so the slow receiver alone sets the pace (at most
    // 4 requests × 20 events per 200 ms) however long producing takes on a loaded machine.
    let mut gen = generator(31, 3);
    let produced = produce_messages(
        &brokers,
        events_for(&mut gen, 2000, &["proj_0001", "proj_0001", "proj_0003"]),
    );
    let expected = produced.expected_for("proj_0001", "hook-1");
    let mut courier = Courier::start_ready(&cfg);

    wait_until(
        "the receiver got 150 events",
        CATCH_UP,
        Duration::from_millis(20),
        || hook.event_count() >= 150,
    );
    // Let at least one commit interval pass so there is something committed to check.
    std::thread::sleep(Duration::from_millis(500));
    courier.kill9();
    let before_kill = hook.event_count();
    assert!(
        before_kill < expected.len(),
        "everything was delivered before the kill; the test needs a slower receiver"
    );
    let committed = committed_offsets(&brokers, "courier-test", TOPIC);
    assert!(
        !committed.is_empty(),
        "nothing committed although {before_kill} events were delivered\n{}",
        courier.log_tail()
    );
    assert_commits_covered(
        &committed,
        &produced,
        ("proj_0001", "hook-1"),
        &hook,
        &courier,
    );
    assert_no_violations(&hook, &courier);
    drop(courier);

    // Quirk 4: restart only after the killed member's session has expired.
    std::thread::sleep(Duration::from_millis(7000));
    hook.set_behaviour(Behaviour::Ok);
    let courier = Courier::start_ready(&cfg);
    wait_received_all(&hook, &expected, &courier);
    wait_committed(&brokers, "courier-test", &produced.ends(), &courier);
    std::thread::sleep(Duration::from_millis(300));
    assert_no_violations(&hook, &courier);
    assert_at_least_once(&hook, &expected, &courier);
    assert_duplicates_only_above(
        &committed,
        &produced,
        ("proj_0001", "hook-1"),
        &hook,
        &courier,
    );
    let failures = failure_events(&brokers);
    assert!(
        failures.is_empty(),
        "unexpected failure events: {failures:?}"
    );
}

/// Broker: tansu — a plain run with one consumer; the receiver, not the broker, misbehaves.
///
/// The first three requests get 503: the batches are retried with the same `webhook-id`, every
/// event arrives exactly once (failed requests are not accepted) and no failure event is
/// written.
#[test]
fn retries_503_then_succeeds() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default().signed());
    hook.set_behaviour(Behaviour::FailFirst { n: 3, status: 503 });
    let cfg =
        CourierConfig::new(&brokers).destination(hook.destination_toml("proj_0001", "hook-1"));
    let courier = Courier::start_ready(&cfg);

    let mut gen = generator(41, 3);
    let produced = produce_messages(&brokers, events_for(&mut gen, 400, &["proj_0001"]));
    let expected = produced.expected_for("proj_0001", "hook-1");

    wait_received_all(&hook, &expected, &courier);
    wait_committed(&brokers, "courier-test", &produced.ends(), &courier);
    std::thread::sleep(Duration::from_millis(300));
    assert_no_violations(&hook, &courier);
    assert_exactly(&hook, &expected, &courier);

    let requests = hook.requests();
    let failed: Vec<_> = requests.iter().filter(|r| r.status == 503).collect();
    let ok: Vec<_> = requests.iter().filter(|r| r.status == 200).collect();
    assert_eq!(failed.len(), 3, "requests: {requests:?}");
    assert_eq!(
        requests.len(),
        ok.len() + 3,
        "every request is a 503 or a 200: {requests:?}"
    );
    assert!(
        requests[..3].iter().all(|r| r.status == 503),
        "the first three requests got 503: {requests:?}"
    );
    for f in &failed {
        let id = f
            .webhook_id
            .as_deref()
            .expect("signed request has a webhook-id");
        assert!(
            ok.iter().any(|r| r.webhook_id.as_deref() == Some(id)),
            "the batch rejected with 503 as webhook-id {id} was never retried with the same id: \
             {requests:?}"
        );
    }
    let failures = failure_events(&brokers);
    assert!(
        failures.is_empty(),
        "unexpected failure events: {failures:?}"
    );
}

/// Broker: tansu — one consumer, a second topic to read failure events from.
///
/// The receiver rejects everything with 400: every routed event must be reported in exactly
/// one delivery-failure event whose `payload.source` range contains it, and the offsets still
/// complete. proj_0002's events (no destination) appear in no failure event, nor do routed
/// events that are themselves delivery-failure events (`type: EVENT_DESTINATION`, which the
/// generator makes): failing to deliver a failure event never produces another (invariant 6).
#[test]
fn rejected_400_produces_failure_events_with_source_range() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    hook.set_behaviour(Behaviour::Always(400));
    let cfg =
        CourierConfig::new(&brokers).destination(hook.destination_toml("proj_0001", "hook-1"));
    let courier = Courier::start_ready(&cfg);

    let mut gen = generator(51, 3);
    let produced = produce_messages(
        &brokers,
        events_for(&mut gen, 400, &["proj_0001", "proj_0001", "proj_0002"]),
    );
    // event id → (partition, offset) of every routed event that must be reported.
    let routed_count = produced.routed_to("proj_0001", "hook-1").count();
    let routed: HashMap<String, (i32, i64)> = produced
        .routed_to("proj_0001", "hook-1")
        .filter(|&i| !is_failure_event(&produced.messages[i].bytes))
        .map(|i| (event_id(&produced.messages[i].bytes), produced.positions[i]))
        .collect();
    assert!(
        routed.len() < routed_count,
        "the generator made no EVENT_DESTINATION events for proj_0001; the loop rule goes untested"
    );
    assert_eq!(
        routed.len(),
        produced
            .routed_to("proj_0001", "hook-1")
            .filter(|&i| !is_failure_event(&produced.messages[i].bytes))
            .count(),
        "event ids are unique"
    );

    wait_committed(&brokers, "courier-test", &produced.ends(), &courier);
    assert_no_violations(&hook, &courier);
    assert_eq!(hook.event_count(), 0, "the receiver accepted nothing");
    assert!(hook.request_count() > 0, "the destination was tried");

    let failures = failure_events(&brokers);
    let mut reported: HashMap<String, usize> = HashMap::new();
    for (offset, v) in &failures {
        assert_failure_common(v);
        assert_eq!(v["projectId"], "proj_0001", "projectId of {v}");
        assert_eq!(v["destinationId"], "hook-1", "destinationId of {v}");
        assert_eq!(v["destinationType"], "webhook", "destinationType of {v}");
        assert_eq!(v["error"]["httpStatus"], 400, "error.httpStatus of {v}");
        assert_eq!(v["error"]["kind"], "http_status", "error.kind of {v}");
        let ids: Vec<String> = v["payload"]["eventIds"]
            .as_array()
            .unwrap_or_else(|| panic!("failure event at {offset} has no payload.eventIds: {v}"))
            .iter()
            .map(|i| i.as_str().expect("event id is a string").to_string())
            .collect();
        assert_eq!(
            v["payload"]["count"].as_u64(),
            Some(ids.len() as u64),
            "payload.count of {v}"
        );
        assert_eq!(
            v["message"].as_str(),
            Some(
                format!(
                    "Unable to deliver {} events to destination hook-1",
                    ids.len()
                )
                .as_str()
            ),
            "message of {v}"
        );
        let source = &v["payload"]["source"];
        let p = source["partition"].as_i64().expect("partition") as i32;
        let first = source["firstOffset"].as_i64().expect("firstOffset");
        let last = source["lastOffset"].as_i64().expect("lastOffset");
        assert!(first <= last, "source range of {v}");
        for id in ids {
            let &(ep, eo) = routed.get(&id).unwrap_or_else(|| {
                panic!(
                    "failure event reports {id}, which was not routed to hook-1 or is itself a \
                     failure event: {v}"
                )
            });
            assert!(
                ep == p && first <= eo && eo <= last,
                "event {id} (partition {ep}, offset {eo}) is outside the source range of {v}"
            );
            *reported.entry(id).or_insert(0) += 1;
        }
    }
    let missing: Vec<_> = routed
        .keys()
        .filter(|id| !reported.contains_key(*id))
        .collect();
    let doubled: Vec<_> = reported.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty() && doubled.is_empty(),
        "{} of {} rejected events are in no failure event (e.g. {:?}); {} in several: {:?}\n{}",
        missing.len(),
        routed.len(),
        &missing[..missing.len().min(5)],
        doubled.len(),
        &doubled[..doubled.len().min(5)],
        courier.log_tail()
    );
    assert_eq!(
        metric(
            &courier,
            "courier_events_failed_total",
            &[("destination_type", "webhook")]
        ),
        routed_count as f64,
        "courier_events_failed_total{{destination_type=\"webhook\"}}"
    );
}

/// Broker: tansu — one consumer, one event; the receiver answers the first request 429 with
/// `Retry-After: 1`.
///
/// The retry of the same batch (same `webhook-id`) must come at least a second later, although
/// the configured backoff starts at 50 ms.
#[test]
fn retry_after_is_honoured() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default().signed());
    hook.set_behaviour(Behaviour::RetryAfter { n: 1, seconds: 1 });
    let cfg =
        CourierConfig::new(&brokers).destination(hook.destination_toml("proj_0001", "hook-1"));
    let courier = Courier::start_ready(&cfg);

    let mut gen = generator(61, 3);
    let produced = produce_messages(&brokers, events_for(&mut gen, 1, &["proj_0001"]));
    let expected = produced.expected_for("proj_0001", "hook-1");

    wait_received_all(&hook, &expected, &courier);
    wait_committed(&brokers, "courier-test", &produced.ends(), &courier);
    std::thread::sleep(Duration::from_millis(300));
    assert_no_violations(&hook, &courier);
    assert_exactly(&hook, &expected, &courier);

    let requests = hook.requests();
    assert_eq!(requests.len(), 2, "one 429, then one 200: {requests:?}");
    assert_eq!(requests[0].status, 429, "{requests:?}");
    assert_eq!(requests[1].status, 200, "{requests:?}");
    assert!(requests[0].webhook_id.is_some());
    assert_eq!(
        requests[0].webhook_id, requests[1].webhook_id,
        "the retry carries the same webhook-id"
    );
    let gap = requests[1].at.duration_since(requests[0].at);
    assert!(
        gap >= Duration::from_millis(990),
        "the retry came {gap:?} after a 429 with Retry-After: 1\n{}",
        courier.log_tail()
    );
    assert!(
        gap < Duration::from_secs(5),
        "the retry came {gap:?} after a 429 with Retry-After: 1 (far more than asked)"
    );
    let failures = failure_events(&brokers);
    assert!(
        failures.is_empty(),
        "unexpected failure events: {failures:?}"
    );
}

/// Broker: none — this checks the test receiver itself, so that no end-to-end test can pass
/// because the receiver accepts what the contract forbids. The signature code is checked
/// against the Standard Webhooks specification's published test vector.
#[test]
fn harness_receiver_enforces_the_webhook_contract() {
    use std::io::Write as _;

    assert_eq!(
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
        )
        .unwrap(),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );

    // NDJSON + gzip + signed.
    let hook = WebhookReceiver::start(
        ReceiverConfig::default()
            .signed()
            .format(Format::Ndjson)
            .gzip(),
    );
    let events: [&[u8]; 2] = [
        br#"{"id":"a","projectId":"p"}"#,
        br#"{"id":"b", "x": [1, 2]}"#,
    ];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&[events[0], b"\n", events[1], b"\n"].concat())
        .unwrap();
    let body = gz.finish().unwrap();
    let ts = chrono::Utc::now().timestamp().to_string();
    let secret = test_secret();
    let good_sig = sign(&secret, "msg_1", &ts, &body).unwrap();
    let base = |sig: &str, ts: &str| -> Vec<(String, String)> {
        vec![
            ("content-type".into(), "application/x-ndjson".into()),
            ("content-encoding".into(), "gzip".into()),
            ("user-agent".into(), "courier/0.1.0".into()),
            ("x-test".into(), "yes".into()),
            ("webhook-id".into(), "msg_1".into()),
            ("webhook-timestamp".into(), ts.into()),
            ("webhook-signature".into(), sig.into()),
        ]
    };
    let post = |headers: Vec<(String, String)>, body: Vec<u8>| -> u16 {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        http_post(&hook.url(), &h, body).unwrap().0
    };
    assert_eq!(
        post(base(&good_sig, &ts), body.clone()),
        200,
        "{:?}",
        hook.violations()
    );
    assert_eq!(
        hook.events(),
        events.iter().map(|e| e.to_vec()).collect::<Vec<_>>()
    );
    assert!(hook.violations().is_empty());

    let without = |name: &str| -> Vec<(String, String)> {
        base(&good_sig, &ts)
            .into_iter()
            .filter(|(k, _)| k != name)
            .collect()
    };
    let with = |name: &str, value: &str| -> Vec<(String, String)> {
        let mut h = without(name);
        h.push((name.into(), value.into()));
        h
    };
    type Headers = Vec<(String, String)>;
    let bad_requests: Vec<(&str, Headers, Vec<u8>)> = vec![
        (
            "wrong signature",
            with("webhook-signature", "v1,AAAA"),
            body.clone(),
        ),
        (
            "signature of other bytes",
            base(&sign(&secret, "msg_1", &ts, b"x").unwrap(), &ts),
            body.clone(),
        ),
        (
            "stale timestamp",
            {
                let old = (chrono::Utc::now().timestamp() - 600).to_string();
                base(&sign(&secret, "msg_1", &old, &body).unwrap(), &old)
            },
            body.clone(),
        ),
        ("no webhook-id", without("webhook-id"), body.clone()),
        ("no user agent", without("user-agent"), body.clone()),
        (
            "wrong user agent",
            with("user-agent", "curl/8"),
            body.clone(),
        ),
        (
            "wrong content type",
            with("content-type", "application/json"),
            body.clone(),
        ),
        ("missing custom header", without("x-test"), body.clone()),
        ("wrong custom header", with("x-test", "no"), body.clone()),
        (
            "not compressed",
            {
                let plain = [events[0], b"\n"].concat();
                let sig = sign(&secret, "msg_1", &ts, &plain).unwrap();
                base(&sig, &ts)
                    .into_iter()
                    .filter(|(k, _)| k != "content-encoding")
                    .collect()
            },
            [events[0], b"\n"].concat(),
        ),
    ];
    let n = bad_requests.len();
    for (what, headers, body) in bad_requests {
        let before = hook.violations().len();
        assert_eq!(post(headers, body), 400, "{what} must be rejected");
        assert!(
            hook.violations().len() > before,
            "{what} must be recorded as a violation"
        );
    }
    assert_eq!(hook.event_count(), 2, "rejected requests store no events");
    assert_eq!(hook.request_count(), 1 + n);

    // JSON array: events are kept byte for byte; non-objects are violations.
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    let ok_headers = [
        ("content-type", "application/json"),
        ("user-agent", "courier/0.1.0"),
        ("x-test", "yes"),
    ];
    let post = |body: &str| http_post(&hook.url(), &ok_headers, body.as_bytes().to_vec()).unwrap();
    assert_eq!(post(r#"[{"a":1}, {"b": "x y"} ]"#).0, 200);
    assert_eq!(
        hook.events(),
        vec![br#"{"a":1}"#.to_vec(), br#"{"b": "x y"}"#.to_vec()]
    );
    assert_eq!(post(r#"[{"a":1}, 2]"#).0, 400);
    assert_eq!(post(r#"{"a":1}"#).0, 400);
    assert_eq!(post("[]").0, 400);
    assert_eq!(hook.violations().len(), 3);

    // Misbehaviour modes.
    hook.set_behaviour(Behaviour::FailFirst { n: 2, status: 503 });
    assert_eq!(post(r#"[{"c":1}]"#).0, 503);
    assert_eq!(post(r#"[{"c":1}]"#).0, 503);
    assert_eq!(post(r#"[{"c":1}]"#).0, 200);
    hook.set_behaviour(Behaviour::RetryAfter { n: 1, seconds: 7 });
    let (status, headers) = post(r#"[{"d":1}]"#);
    assert_eq!(
        (
            status,
            headers.get("retry-after").map(|v| v.to_str().unwrap())
        ),
        (429, Some("7"))
    );
    assert_eq!(post(r#"[{"d":1}]"#).0, 200);
    hook.set_behaviour(Behaviour::Always(400));
    assert_eq!(post(r#"[{"e":1}]"#).0, 400);
    assert_eq!(
        hook.violations().len(),
        3,
        "a deliberate 400 is not a violation"
    );
    assert_eq!(hook.event_count(), 4, "only 200 answers store events");

    // The metrics parser.
    let text = "# HELP x\ncourier_x_total{reason=\"a\",k=\"v\"} 2\ncourier_x_total{reason=\"b\"} 3\ncourier_x_totally 9\ncourier_y 1.5\n";
    assert_eq!(metric_sum(text, "courier_x_total", &[]), Some(5.0));
    assert_eq!(
        metric_sum(text, "courier_x_total", &[("reason", "a")]),
        Some(2.0)
    );
    assert_eq!(metric_sum(text, "courier_y", &[]), Some(1.5));
    assert_eq!(metric_sum(text, "courier_z", &[]), None);
}
