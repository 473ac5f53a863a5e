//! Lane behaviour against a scripted sink, with failure events written to librdkafka's mock
//! cluster (a real Kafka protocol peer in-process: failure events must really be produced
//! before offsets complete).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::parking::retention::{ParkingDecision, ParkingState};
use crate::parking::Parker;

use super::*;
use crate::config;
use crate::sinks::{DeliveryError, EncodedBatch, ErrorKind, Outcome, RejectScope, Sink};

/// Answers with the scripted outcomes in order, then `Delivered`; records what it was sent.
#[derive(Default)]
struct ScriptedSink {
    script: Mutex<VecDeque<Outcome>>,
    sent: Mutex<Vec<Vec<i64>>>,
}

impl ScriptedSink {
    fn new(script: Vec<Outcome>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into()),
            sent: Mutex::default(),
        })
    }

    fn sent(&self) -> Vec<Vec<i64>> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Sink for ScriptedSink {
    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError> {
        Ok(EncodedBatch {
            body: Bytes::new(),
            id: "b".into(),
            events: events.len(),
            uncompressed_bytes: 0,
            verbatim: None,
        })
    }

    async fn send(&self, events: &[Event], _batch: &EncodedBatch) -> Outcome {
        self.sent
            .lock()
            .unwrap()
            .push(events.iter().map(|e| e.offset).collect());
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Outcome::Delivered)
    }
}

fn http(status: u16) -> DeliveryError {
    DeliveryError {
        kind: ErrorKind::HttpStatus,
        http_status: Some(status),
        message: format!("HTTP {status}"),
    }
}

fn retry() -> Outcome {
    Outcome::Retry {
        error: http(503),
        retry_after: None,
    }
}

fn rejected(scope: RejectScope, status: u16) -> Outcome {
    Outcome::Rejected {
        error: http(status),
        scope,
    }
}

pub(crate) struct Harness {
    _cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    brokers: String,
    pub(crate) config: config::Config,
    acker: Acker,
    pub(crate) context: LaneContext,
}

/// One destination `p/d` over a mock cluster; also used by the topology's tests.
pub(crate) fn harness(batch_max_events: usize) -> Harness {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("failures", 1, 1).unwrap();
    cluster.create_topic("retry", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let text = format!(
        r#"
[kafka]
brokers = "{brokers}"
[failures]
topic = "failures"
retry_topic = "retry"
[security]
allow_networks = ["127.0.0.0/8"]
[delivery]
batch_max_events = {batch_max_events}
batch_timeout = "20ms"
max_in_flight = 1
retry_max_elapsed = "2s"
retry_initial_backoff = "5ms"
retry_max_backoff = "20ms"
circuit_failure_threshold = 3
probe_interval = "1h"
[[destinations]]
project = "p"
id = "d"
type = "webhook"
url = "http://127.0.0.1:9/"
"#
    );
    let config = config::parse("lane-test.toml", &text, &BTreeMap::new()).unwrap();
    let metrics = Arc::new(Metrics::new());
    let acker = Acker::new();
    let failures =
        Arc::new(FailureReporter::new(&config, metrics.clone(), CancellationToken::new()).unwrap());
    let parking = ParkingState::decided(ParkingDecision::copy("lane tests park copies"));
    let parker = Arc::new(Parker::new(&config, CancellationToken::new(), parking).unwrap());
    Harness {
        _cluster: cluster,
        brokers,
        context: LaneContext {
            acker: acker.clone(),
            failures,
            metrics,
            parker,
            source_topic: "event-logs".into(),
            abandon: CancellationToken::new(),
            spill_budget: None,
            daily_caps: true,
        },
        acker,
        config,
    }
}

impl Harness {
    /// Feeds offsets 0..n of partition 0 through a lane with `sink`, waits for it to finish.
    /// Sends `n` events through a lane of a destination that has not answered yet.
    async fn run(&self, sink: Arc<impl Sink + 'static>, n: i64) {
        self.run_with(sink, n, false).await;
    }

    /// Sends `n` events through a lane of a destination that has answered before (so its
    /// first request is a whole batch).
    async fn run_answered(&self, sink: Arc<impl Sink + 'static>, n: i64) {
        self.run_with(sink, n, true).await;
    }

    async fn run_with(&self, sink: Arc<impl Sink + 'static>, n: i64, answered: bool) {
        let health = self.health(&self.config.destinations[0]);
        if answered {
            health.record(&Outcome::Delivered).await;
        }
        let lane = spawn(
            &self.config.destinations[0],
            sink,
            health,
            self.context.clone(),
        );
        for offset in 0..n {
            let raw = Bytes::from(format!(r#"{{"id":"e{offset}","projectId":"p"}}"#));
            self.feed(&lane.queue, offset, raw).await;
        }
        drop(lane.queue);
        tokio::time::timeout(Duration::from_secs(10), lane.task)
            .await
            .expect("the lane finishes")
            .unwrap();
    }

    /// Hands the event at `offset` of partition 0 to a lane as the source does: tracked for
    /// acknowledgement and counted in the in-flight budget.
    async fn feed(&self, queue: &tokio::sync::mpsc::Sender<Event>, offset: i64, raw: Bytes) {
        let ack = self.acker.track(0, offset, 1);
        self.context.metrics.hold_event(raw.len());
        let event = Event {
            raw,
            partition: 0,
            offset,
            failure_event: false,
            ack,
        };
        queue.send(event).await.unwrap();
    }

    /// Failure events written so far.
    fn failure_events(&self) -> Vec<serde_json::Value> {
        self.read("failures")
            .into_iter()
            .map(|(value, _)| serde_json::from_slice(&value).unwrap())
            .collect()
    }

    /// Parked records so far: (event bytes, headers).
    fn parked(&self) -> Vec<(Vec<u8>, crate::parking::Parked)> {
        self.read("retry")
            .into_iter()
            .map(|(value, headers)| (value, headers.unwrap()))
            .collect()
    }

    fn read(&self, topic: &str) -> Vec<(Vec<u8>, Option<crate::parking::Parked>)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", "reader")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => out.push((
                    m.payload().unwrap().to_vec(),
                    crate::parking::Parked::from_headers(m.headers()).ok(),
                )),
                Some(Err(e)) => panic!("{e}"),
                None if !out.is_empty() => break,
                None => {}
            }
        }
        out
    }

    fn health(&self, d: &config::DestinationConfig) -> Arc<DestinationHealth> {
        Arc::new(DestinationHealth::new(
            d,
            self.context.failures.clone(),
            self.context.metrics.clone(),
        ))
    }

    fn position(&self) -> Option<i64> {
        self.acker.snapshot().first().and_then(|(_, pos, _)| *pos)
    }
}

#[tokio::test]
async fn partial_outcomes_ack_report_and_retry_each_part() {
    let h = harness(4);
    let sink = ScriptedSink::new(vec![Outcome::Partial(vec![
        (0..2, Outcome::Delivered),
        (2..3, rejected(RejectScope::Data, 400)),
        (3..4, retry()),
    ])]);
    h.run_answered(sink.clone(), 4).await;
    assert_eq!(sink.sent(), vec![vec![0, 1, 2, 3], vec![3]]);
    let failures = h.failure_events();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        failures[0]["payload"]["eventIds"],
        serde_json::json!(["e2"])
    );
    assert_eq!(failures[0]["payload"]["source"]["firstOffset"], 2);
    assert_eq!(failures[0]["error"]["httpStatus"], 400);
    assert_eq!(h.position(), Some(4));
    let (_, delivered, failed, _) = h.context.metrics.destination("p", "d").read();
    assert_eq!((delivered, failed), (3, 1));
    // Events and request bodies alike leave the in-flight budget once settled.
    assert_eq!(h.context.metrics.in_flight_events.get(), 0);
    assert_eq!(h.context.metrics.in_flight_bytes.get(), 0);
}

#[test]
fn a_request_body_counts_in_the_budget_while_it_exists() {
    let metrics = Metrics::new();
    metrics.hold_bytes(10);
    {
        let _body = metrics.held_bytes(1500);
        assert_eq!(metrics.in_flight_bytes.get(), 1510);
    }
    assert_eq!(metrics.in_flight_bytes.get(), 10);
}

#[tokio::test]
async fn exhausted_budget_parks_the_batch_with_its_source_positions() {
    let h = harness(10);
    // two failures, below the circuit threshold of 3, then the budget ends: use a sink that
    // fails until the budget is spent but never three times in a row is impossible, so give
    // the circuit a high threshold here
    let mut config = (*h.config.destinations[0]).clone();
    config.delivery.circuit_failure_threshold = 1000;
    let sink = ScriptedSink::new(vec![retry(); 1000]);
    let lane = spawn(&config, sink.clone(), h.health(&config), h.context.clone());
    for offset in 0..3 {
        let ack = h.acker.track(0, offset, 1);
        lane.queue
            .send(Event {
                raw: Bytes::from(format!(r#"{{"id":"e{offset}","projectId":"p"}}"#)),
                partition: 0,
                offset,
                failure_event: false,
                ack,
            })
            .await
            .unwrap();
    }
    drop(lane.queue);
    lane.task.await.unwrap();
    assert!(sink.sent().len() > 2, "retried within the budget");
    let parked = h.parked();
    assert_eq!(parked.len(), 3);
    for (i, (value, p)) in parked.iter().enumerate() {
        assert_eq!(
            value,
            format!(r#"{{"id":"e{i}","projectId":"p"}}"#).as_bytes()
        );
        assert_eq!((p.source_partition, p.source_offset), (0, i as i64));
        assert_eq!((p.project.as_str(), p.destination.as_str()), ("p", "d"));
        assert_eq!(p.attempt, 1);
        assert_eq!(p.source_topic, "event-logs");
        assert!(p.last_error.contains("503"), "{}", p.last_error);
        assert!(p.next_attempt_at_ms > chrono::Utc::now().timestamp_millis());
    }
    assert!(h.failure_events().is_empty(), "parked, not failed");
    assert_eq!(h.position(), Some(3), "parked events complete");
}

#[tokio::test]
async fn consecutive_failures_open_the_circuit_and_park_without_attempts() {
    let h = harness(1);
    let sink = ScriptedSink::new(vec![retry(); 1000]);
    h.run(sink.clone(), 6).await;
    // batch 0 fails three times in line (threshold 3) and the circuit opens; the other
    // batches are parked without an attempt (the next probe is an hour away)
    assert_eq!(sink.sent(), vec![vec![0], vec![0], vec![0]]);
    assert_eq!(h.parked().len(), 6);
    let events = h.failure_events();
    assert_eq!(events.len(), 1, "one state event: {events:?}");
    assert_eq!(
        events[0]["message"],
        "Destination d is failing; deliveries are being retried"
    );
    assert_eq!(events[0]["type"], "EVENT_DESTINATION");
    assert_eq!(events[0]["destinationId"], "d");
    assert_eq!(h.position(), Some(6));
}

#[tokio::test]
async fn gone_opens_the_circuit_at_once() {
    let h = harness(2);
    let sink = ScriptedSink::new(vec![rejected(RejectScope::Destination, 410)]);
    h.run_answered(sink.clone(), 4).await;
    assert_eq!(sink.sent(), vec![vec![0, 1]], "no request after the 410");
    assert_eq!(h.parked().len(), 4, "all parked for later attempts");
    let events = h.failure_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["error"]["httpStatus"], 410);
    assert_eq!(h.position(), Some(4));
}

#[tokio::test]
async fn a_successful_probe_closes_the_circuit() {
    let h = harness(1);
    let mut config = (*h.config.destinations[0]).clone();
    config.delivery.probe_interval = Duration::from_millis(1);
    let sink = ScriptedSink::new(vec![rejected(RejectScope::Destination, 401)]);
    let lane = spawn(&config, sink.clone(), h.health(&config), h.context.clone());
    for offset in 0..3 {
        let ack = h.acker.track(0, offset, 1);
        lane.queue
            .send(Event {
                raw: Bytes::from_static(br#"{"projectId":"p"}"#),
                partition: 0,
                offset,
                failure_event: false,
                ack,
            })
            .await
            .unwrap();
        // one batch at a time, each after the probe interval
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    drop(lane.queue);
    lane.task.await.unwrap();
    assert_eq!(sink.sent().len(), 3, "batch 0 rejected, then probes");
    let messages: Vec<_> = h
        .failure_events()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        messages,
        vec![
            "Destination d is failing; deliveries are being retried",
            "Destination d recovered"
        ]
    );
    assert_eq!(h.parked().len(), 1);
    assert_eq!(h.position(), Some(3));
}

#[tokio::test]
async fn an_invalid_split_is_retried_whole() {
    let h = harness(3);
    let sink = ScriptedSink::new(vec![Outcome::Partial(vec![(0..1, Outcome::Delivered)])]);
    h.run_answered(sink.clone(), 3).await;
    assert_eq!(sink.sent(), vec![vec![0, 1, 2], vec![0, 1, 2]]);
    assert!(h.failure_events().is_empty());
    assert_eq!(h.position(), Some(3));
}

#[tokio::test]
async fn a_retried_event_holds_the_commit_point() {
    let h = harness(1);
    // offset 0 fails twice before it is delivered; offsets 1 and 2 go through at once
    let sink = ScriptedSink::new(vec![retry(), retry()]);
    let lane = spawn(
        &h.config.destinations[0],
        sink.clone(),
        h.health(&h.config.destinations[0]),
        h.context.clone(),
    );
    let ack0 = h.acker.track(0, 0, 1);
    lane.queue
        .send(Event {
            raw: Bytes::from_static(br#"{"projectId":"p"}"#),
            partition: 0,
            offset: 0,
            failure_event: false,
            ack: ack0,
        })
        .await
        .unwrap();
    drop(lane.queue);
    lane.task.await.unwrap();
    assert_eq!(sink.sent().len(), 3);
    assert_eq!(h.position(), Some(1));
}

/// Panics while sending the batch that holds offset `at`, delivers every other one.
struct PanickingSink {
    at: i64,
}

#[async_trait]
impl Sink for PanickingSink {
    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError> {
        Ok(EncodedBatch {
            body: Bytes::new(),
            id: "b".into(),
            events: events.len(),
            uncompressed_bytes: 0,
            verbatim: None,
        })
    }

    async fn send(&self, events: &[Event], _batch: &EncodedBatch) -> Outcome {
        assert!(
            events.iter().all(|e| e.offset != self.at),
            "a bug triggered by offset {}",
            self.at
        );
        Outcome::Delivered
    }
}

#[tokio::test]
async fn a_panic_while_delivering_is_contained_to_its_batch_and_reported() {
    let h = harness(2);
    let lane = spawn(
        &h.config.destinations[0],
        Arc::new(PanickingSink { at: 2 }),
        h.health(&h.config.destinations[0]),
        h.context.clone(),
    );
    for offset in 0..6 {
        let raw = Bytes::from(format!(r#"{{"id":"e{offset}","projectId":"p"}}"#));
        h.feed(&lane.queue, offset, raw).await;
    }
    drop(lane.queue);
    tokio::time::timeout(Duration::from_secs(10), lane.task)
        .await
        .expect("the lane finishes")
        .expect("the lane's task did not panic");
    let failures = h.failure_events();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["error"]["kind"], "internal");
    assert_eq!(
        failures[0]["payload"]["eventIds"],
        serde_json::json!(["e2", "e3"])
    );
    assert_eq!(h.position(), Some(6), "every offset completed");
    assert_eq!(h.context.metrics.lane_panics.get(), 1);
    assert_eq!(h.context.metrics.in_flight_events.get(), 0);
}

#[tokio::test]
async fn absurd_queue_and_concurrency_settings_do_not_panic_the_caller() {
    let h = harness(2);
    let mut destination = (*h.config.destinations[0]).clone();
    // The figures from the report: more permits than tokio's semaphores hold.
    destination.delivery.queue_max_events = 2_305_843_009_213_693_952;
    destination.delivery.max_in_flight = 2_305_843_009_213_693_952;
    destination.delivery.retry_max_elapsed =
        humantime::parse_duration("300000000000years").unwrap();
    destination.delivery.batch_timeout = humantime::parse_duration("300000000000years").unwrap();
    let lane = spawn(
        &destination,
        ScriptedSink::new(vec![retry()]),
        h.health(&destination),
        h.context.clone(),
    );
    for offset in 0..4 {
        let ack = h.acker.track(0, offset, 1);
        let raw = Bytes::from(format!(r#"{{"id":"e{offset}","projectId":"p"}}"#));
        h.context.metrics.hold_event(raw.len());
        lane.queue
            .send(Event {
                raw,
                partition: 0,
                offset,
                failure_event: false,
                ack,
            })
            .await
            .unwrap();
    }
    drop(lane.queue);
    tokio::time::timeout(Duration::from_secs(10), lane.task)
        .await
        .expect("the lane finishes")
        .expect("the lane's task did not panic");
    assert_eq!(h.position(), Some(4), "every offset completed");
    assert_eq!(h.context.metrics.lane_panics.get(), 0);
}

/// Sleeps on every request, counts the requests in flight at once before and after the first
/// success; the first `failures` requests fail.
struct ConcurrencySink {
    failures: usize,
    requests: std::sync::atomic::AtomicUsize,
    in_flight: std::sync::atomic::AtomicUsize,
    succeeded: std::sync::atomic::AtomicBool,
    most_before_success: std::sync::atomic::AtomicUsize,
    most_after_success: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Sink for ConcurrencySink {
    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError> {
        ScriptedSink::default().encode(events)
    }

    async fn send(&self, _events: &[Event], _batch: &EncodedBatch) -> Outcome {
        use std::sync::atomic::Ordering::SeqCst;
        let n = self.requests.fetch_add(1, SeqCst);
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        let most = if self.succeeded.load(SeqCst) {
            &self.most_after_success
        } else {
            &self.most_before_success
        };
        most.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.in_flight.fetch_sub(1, SeqCst);
        if n < self.failures {
            retry()
        } else {
            self.succeeded.store(true, SeqCst);
            Outcome::Delivered
        }
    }
}

#[tokio::test]
async fn a_destination_sends_one_request_at_a_time_until_it_has_answered_successfully() {
    let mut h = harness(1);
    Arc::make_mut(&mut h.config.destinations[0])
        .delivery
        .max_in_flight = 4;
    let sink = Arc::new(ConcurrencySink {
        failures: 2,
        requests: Default::default(),
        in_flight: Default::default(),
        succeeded: Default::default(),
        most_before_success: Default::default(),
        most_after_success: Default::default(),
    });
    h.run(sink.clone(), 40).await;
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(
        sink.most_before_success.load(SeqCst),
        1,
        "a destination that has not answered successfully gets one request at a time"
    );
    assert!(
        sink.most_after_success.load(SeqCst) >= 2,
        "after its first success every slot is used: {}",
        sink.most_after_success.load(SeqCst)
    );
    assert_eq!(h.position(), Some(40));
}

/// Encodes as a JSON array (saying so when `verbatim`), and records, while each request is
/// out, what the batch's events and the in-flight budget looked like.
struct BodySink {
    verbatim: bool,
    /// Clones of the payloads as the source read them.
    originals: Vec<Bytes>,
    metrics: Arc<Metrics>,
    /// Per request: whether the events read from inside the body, whether nobody but the test
    /// holds the buffers they were read into, and the in-flight bytes.
    seen: Mutex<Vec<(bool, bool, i64)>>,
}

#[async_trait]
impl Sink for BodySink {
    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError> {
        let mut body = b"[".to_vec();
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&e.raw);
        }
        body.push(b']');
        Ok(EncodedBatch {
            uncompressed_bytes: body.len(),
            body: Bytes::from(body),
            id: "b".into(),
            events: events.len(),
            verbatim: self
                .verbatim
                .then_some(crate::sinks::Verbatim { start: 1, gap: 1 }),
        })
    }

    async fn send(&self, events: &[Event], batch: &EncodedBatch) -> Outcome {
        let body = batch.body.as_ptr() as usize..batch.body.as_ptr() as usize + batch.body.len();
        let inside = events
            .iter()
            .all(|e| body.contains(&(e.raw.as_ptr() as usize)));
        let freed = self.originals.iter().all(|b| b.is_unique());
        let held = self.metrics.in_flight_bytes.get();
        self.seen.lock().unwrap().push((inside, freed, held));
        Outcome::Delivered
    }
}

/// Sends four events through a lane whose sink encodes them into one body, verbatim or not;
/// returns what the sink saw during the request, and the bytes of the events.
async fn send_through_body_sink(verbatim: bool) -> ((bool, bool, i64), i64) {
    let h = harness(4);
    // The sink holds the test's only clones (a second one would never be unique).
    let sink = Arc::new(BodySink {
        verbatim,
        originals: (0..4)
            .map(|o| Bytes::from(format!(r#"{{"id":"e{o}","projectId":"p"}}"#)))
            .collect(),
        metrics: h.context.metrics.clone(),
        seen: Mutex::default(),
    });
    let health = h.health(&h.config.destinations[0]);
    health.record(&Outcome::Delivered).await;
    let lane = spawn(
        &h.config.destinations[0],
        sink.clone(),
        health,
        h.context.clone(),
    );
    for (offset, raw) in sink.originals.iter().enumerate() {
        h.feed(&lane.queue, offset as i64, raw.clone()).await;
    }
    drop(lane.queue);
    lane.task.await.unwrap();
    assert_eq!(h.position(), Some(4));
    assert_eq!(h.context.metrics.in_flight_bytes.get(), 0);
    let seen = sink.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one request for the batch: {seen:?}");
    let events_bytes = sink.originals.iter().map(|r| r.len() as i64).sum();
    (seen[0], events_bytes)
}

#[tokio::test]
async fn a_body_that_holds_its_events_verbatim_is_their_only_copy() {
    let ((inside, freed, held), events_bytes) = send_through_body_sink(true).await;
    assert!(inside, "the events read their bytes from the body");
    assert!(
        freed,
        "the buffers the events were read into are let go once encoded"
    );
    assert_eq!(held, events_bytes, "the body is not counted a second time");
}

#[tokio::test]
async fn any_other_body_is_a_second_copy_and_counts_as_one() {
    let ((inside, freed, held), events_bytes) = send_through_body_sink(false).await;
    assert!(!inside && !freed, "the events keep their own buffers");
    // The body: the events, three commas and two brackets.
    assert_eq!(held, 2 * events_bytes + 5);
}

/// Never answers (a request that hangs until the lane is dropped).
struct HangingSink;

#[async_trait]
impl Sink for HangingSink {
    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError> {
        ScriptedSink::new(Vec::new()).encode(events)
    }

    async fn send(&self, _events: &[Event], _batch: &EncodedBatch) -> Outcome {
        std::future::pending().await
    }
}

/// A destination whose requests hang, with a queue of 4 events and a shared budget that is
/// never under pressure: once its requests have gone unanswered for half its
/// `request_timeout` the lane's own crowded queue is pressure enough, and the batches behind
/// them are parked at once. Before, the lane waited for a request slot without taking from its
/// queue, and a full queue pauses every partition that carries the destination's events —
/// here `feed` would wait forever.
#[tokio::test]
async fn a_suspect_destination_whose_queue_is_crowded_spills_without_shared_pressure() {
    spills_behind_hanging_requests(false).await;
}

/// The same for a destination that has answered before and then hangs with every one of its
/// request slots taken: silence for half its `request_timeout` makes it suspect as well
/// (before, only a failed request did — after a whole `request_timeout`).
#[tokio::test]
async fn a_proven_destination_that_goes_silent_spills_when_its_queue_is_crowded() {
    spills_behind_hanging_requests(true).await;
}

async fn spills_behind_hanging_requests(answered_before: bool) {
    let mut h = harness(1);
    let delivery = &mut Arc::make_mut(&mut h.config.destinations[0]).delivery;
    delivery.queue_max_events = 4;
    delivery.max_in_flight = 2;
    delivery.request_timeout = Duration::from_millis(200);
    h.context.spill_budget = Some(crate::source::divert::Budget {
        max_events: 1_000_000,
        max_bytes: 1 << 40,
    });
    let health = h.health(&h.config.destinations[0]);
    if answered_before {
        health.record(&Outcome::Delivered).await;
    }
    let lane = spawn(
        &h.config.destinations[0],
        Arc::new(HangingSink),
        health,
        h.context.clone(),
    );
    let fed = async {
        for offset in 0..20 {
            let raw = Bytes::from(format!(r#"{{"id":"e{offset}","projectId":"p"}}"#));
            h.feed(&lane.queue, offset, raw).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), fed)
        .await
        .expect("the queue of a hanging destination did not drain by spilling");
    let spilled = || {
        h.context
            .metrics
            .spilled_batches
            .with_label_values(&["webhook"])
            .get()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while spilled() < 14 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // All but the batches in the hanging requests, and what is still queued or batching.
    assert!(spilled() >= 14, "{} batches spilled", spilled());
    lane.task.abort();
}

/// A busy lane — its batches close full, not by age — does not linger a tenth of
/// `batch_timeout` while its queue fills: one destination taking every event at the defaults
/// sat idle 50 ms with a full queue after each partial chunk, one queue per 50 ms at most.
/// Virtual time (paused), so this measures the lane's waits, not the machine.
#[tokio::test(start_paused = true)]
async fn a_busy_lane_does_not_sit_on_a_full_queue() {
    let mut h = harness(10);
    let delivery = &mut Arc::make_mut(&mut h.config.destinations[0]).delivery;
    delivery.batch_timeout = Duration::from_secs(1);
    delivery.queue_max_events = 20;
    delivery.max_in_flight = 4;
    let sink = ScriptedSink::new(vec![]);
    let started = tokio::time::Instant::now();
    h.run_answered(sink.clone(), 1000).await;
    let took = started.elapsed();
    let sent = sink.sent();
    assert_eq!(sent.iter().map(Vec::len).sum::<usize>(), 1000);
    assert!(sent.iter().all(|b| b.len() == 10), "every batch full");
    // Lingering 50 ms per queue of 20 takes 2.5 s; a busy lane's millisecond, about 50 ms.
    assert!(
        took < Duration::from_millis(500),
        "1,000 events through a queue of 20 took {took:?}"
    );
}
