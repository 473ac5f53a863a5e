//! The retry worker: reads parked batches from the retry topic (its own consumer group) and
//! attempts each once when it is due; a batch that fails again is parked for the next
//! scheduled attempt, and after the last one its delivery-failure event is written.
//!
//! Parked batches come in two encodings ([`crate::parking`]). A *reference* names the events'
//! offsets in the source topic: it is held in a schedule ordered by due time and its events
//! are read back when it is due ([`references`]), so it is tried when due whatever else
//! waits. A *copy* (one record per event, written when retention does not allow references,
//! and by couriers before references existed) is too large to hold: a partition whose next
//! copy is not due yet is paused and rewound to it, and resumed when it is due — such a
//! record waits behind earlier, later-due records of its partition.
//!
//! After a rewind the worker checks that the broker returns the record it rewound to, with the
//! same watch the source uses after its resumes ([`crate::source::continuity`]): a broker
//! that skips the rest of a batch fetched from its middle (tansu, TESTING.md quirk 2) would
//! otherwise silently lose parked events.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DestinationConfig};
use crate::event::Event;
use crate::failures::FailureReporter;
use crate::lane::DestinationHealth;
use crate::metrics::{DestinationStats, Metrics};
use crate::parking::reference::{ParkedReference, REFERENCE_HEADER};
use crate::parking::{Parked, Parker};
use crate::sinks::Sink;
use crate::source::continuity::{Continuity, Verdict};
use crate::source::{Acker, Committer, SourceConsumer};

mod attempt;
mod references;

use attempt::{attempt_copies, attempt_reference};
use references::{Schedule, Scheduled, SourceReaders, MAX_SCHEDULED};

/// A destination parked events can be delivered to.
pub struct Target {
    /// Its configuration (the one copy, shared with the running set).
    pub config: Arc<DestinationConfig>,
    /// Its sink.
    pub sink: Arc<dyn Sink>,
    /// Its circuit breaker, shared with its lane: a parked batch that goes through closes it.
    pub health: Arc<DestinationHealth>,
    /// Its counters.
    pub stats: Arc<DestinationStats>,
    slots: Arc<Semaphore>,
}

impl Target {
    /// A target delivering through `sink`.
    pub fn new(
        config: Arc<DestinationConfig>,
        sink: Arc<dyn Sink>,
        health: Arc<DestinationHealth>,
        stats: Arc<DestinationStats>,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(
            config
                .delivery
                .max_in_flight
                .clamp(1, crate::lane::MAX_QUEUE_CAPACITY),
        ));
        Self {
            config,
            sink,
            health,
            stats,
            slots,
        }
    }

    /// The same target (sink, circuit, counters and request slots) holding `config`, an
    /// equal configuration from a reload, so that the copy it replaces can be freed.
    pub fn with_config(&self, config: Arc<DestinationConfig>) -> Self {
        Self {
            config,
            sink: self.sink.clone(),
            health: self.health.clone(),
            stats: self.stats.clone(),
            slots: self.slots.clone(),
        }
    }
}

/// The destinations parked events can go to, by (project, id); replaced on reload.
pub type Targets = HashMap<(String, String), Arc<Target>>;

type BatchKey = (String, String, u32);

/// How long a corrective rewind pauses the partition: long enough for records fetched before
/// the rewind to be dropped.
const STEP_BACK_PAUSE_MS: i64 = 50;

#[derive(Default)]
struct Pending {
    events: Vec<Event>,
    first_failure_ms: i64,
    last_error: String,
}

/// Everything a retry attempt needs, shared by the worker's tasks.
struct Shared {
    parker: Arc<Parker>,
    failures: Arc<FailureReporter>,
    metrics: Arc<Metrics>,
    acker: Acker,
    source_topic: String,
    readers: SourceReaders,
}

/// A retry-topic record, read.
enum Record {
    /// A copy of one event (headers say where it goes).
    Copy(Parked),
    /// A parked batch by reference.
    Reference(ParkedReference),
    /// Not something courier parked, or damaged.
    Unreadable(String),
}

impl Record {
    fn read<M: Message>(m: &M) -> Self {
        let reference: Option<Vec<u8>> = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == REFERENCE_HEADER)
                .map(|h| h.value.unwrap_or_default().to_vec())
        });
        match reference {
            Some(version) => {
                match ParkedReference::decode(&version, m.payload().unwrap_or_default()) {
                    Ok(r) => Record::Reference(r),
                    Err(e) => Record::Unreadable(e.to_string()),
                }
            }
            None => match Parked::from_headers(m.headers()) {
                Ok(p) => Record::Copy(p),
                Err(e) => Record::Unreadable(e.to_string()),
            },
        }
    }
}

/// Reads the retry topic and re-attempts parked batches when due.
pub struct RetryWorker {
    consumer: Arc<SourceConsumer>,
    topic: String,
    targets: watch::Receiver<Arc<Targets>>,
    shared: Arc<Shared>,
    commit_interval: Duration,
    committer: Committer,
    tasks: JoinSet<()>,
    slots: Arc<Semaphore>,
    pending: HashMap<BatchKey, Pending>,
    /// Paused partitions: (due ms, generation when paused, offset to resume from).
    paused: HashMap<i32, (i64, u64, i64)>,
    /// Resumed partitions whose next record is not confirmed yet.
    continuity: Continuity,
    timers: BinaryHeap<Reverse<(i64, i32)>>,
    /// Parked references waiting for their due time.
    schedule: Schedule,
    /// References an open circuit sent back, to wait for its next probe.
    later: (
        mpsc::UnboundedSender<Scheduled>,
        mpsc::UnboundedReceiver<Scheduled>,
    ),
    stop: CancellationToken,
}

impl RetryWorker {
    /// A worker over a subscribed consumer of the retry topic.
    pub fn new(
        consumer: Arc<SourceConsumer>,
        config: &Arc<Config>,
        targets: watch::Receiver<Arc<Targets>>,
        parker: Arc<Parker>,
        failures: Arc<FailureReporter>,
        metrics: Arc<Metrics>,
        acker: Acker,
    ) -> Self {
        Self {
            committer: Committer::new(
                consumer.clone(),
                &config.failures.retry_topic,
                acker.clone(),
                metrics.clone(),
            ),
            consumer,
            topic: config.failures.retry_topic.clone(),
            targets,
            shared: Arc::new(Shared {
                parker,
                failures,
                metrics,
                acker,
                source_topic: config.kafka.topic.clone(),
                readers: SourceReaders::new(config.clone()),
            }),
            commit_interval: config.kafka.commit_interval,
            tasks: JoinSet::new(),
            slots: Arc::new(Semaphore::new(64)),
            pending: HashMap::new(),
            paused: HashMap::new(),
            continuity: Continuity::default(),
            timers: BinaryHeap::new(),
            schedule: Schedule::default(),
            later: mpsc::unbounded_channel(),
            stop: CancellationToken::new(),
        }
    }

    /// Runs until `stop` is cancelled, then hands back the attempts still running (the
    /// pipeline drains them with the lanes).
    pub async fn run(mut self, stop: &CancellationToken) -> JoinSet<()> {
        let mut tick = tokio::time::interval(self.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let consumer = self.consumer.clone();
        self.stop = stop.clone();
        loop {
            let next_due = self
                .timers
                .peek()
                .map(|Reverse((due, _))| *due)
                .into_iter()
                .chain(self.schedule.next_due())
                .min();
            let incoming = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                _ = tick.tick() => {
                    // A resumed partition that stayed silent: the broker skipped the record
                    // it was rewound to, and nothing followed it to show the gap.
                    for (partition, to) in self.continuity.silent(std::time::Instant::now()) {
                        tracing::debug!(topic = %self.topic, partition, to, "a resumed retry partition stayed silent; rewinding further back");
                        self.rewind(partition, to);
                    }
                    self.flush_all().await;
                    self.forget_revoked();
                    self.committer.tick();
                    while self.tasks.try_join_next().is_some() {}
                    continue;
                }
                Some(held) = self.later.1.recv() => {
                    self.schedule.push(held);
                    continue;
                }
                () = sleep_until_ms(next_due), if next_due.is_some() => {
                    self.resume_due();
                    self.start_due_references().await;
                    continue;
                }
                message = consumer.recv() => message.map(|m| {
                    let record = Record::read(&m);
                    let payload = match record {
                        Record::Copy(_) => m.payload().map(Bytes::copy_from_slice),
                        _ => None,
                    };
                    (m.partition(), m.offset(), payload, record)
                }),
            };
            match incoming {
                Ok((partition, offset, payload, record)) => {
                    self.handle(partition, offset, payload, record).await;
                }
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "retry consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        self.flush_all().await;
        std::mem::take(&mut self.tasks)
    }

    async fn handle(
        &mut self,
        partition: i32,
        offset: i64,
        payload: Option<Bytes>,
        record: Record,
    ) {
        let generation = self.shared.acker.generation(partition);
        if let Some(&(_, paused_in, resume_at)) = self.paused.get(&partition) {
            if Some(paused_in) == generation && offset >= resume_at {
                // Fetched before the pause took effect; it is read again after the resume.
                return;
            }
            // Re-assigned since: that pause belongs to the old assignment.
            self.paused.remove(&partition);
        }
        if !self.confirm_position(partition, offset, generation) {
            return;
        }
        let parked = match record {
            Record::Copy(p) => p,
            Record::Reference(reference) => {
                self.schedule_reference(partition, offset, reference, generation);
                return;
            }
            Record::Unreadable(e) => {
                tracing::warn!(topic = %self.topic, partition, offset, error = %e, "skipping a record that courier did not park");
                self.shared.acker.track(partition, offset, 0);
                return;
            }
        };
        let now_ms = Utc::now().timestamp_millis();
        if parked.next_attempt_at_ms > now_ms {
            self.pause(partition, offset);
            self.paused.insert(
                partition,
                (parked.next_attempt_at_ms, generation.unwrap_or(0), offset),
            );
            self.timers
                .push(Reverse((parked.next_attempt_at_ms, partition)));
            tracing::debug!(
                partition,
                offset,
                due_in_ms = parked.next_attempt_at_ms - now_ms,
                "retry partition waits for its next record"
            );
            return;
        }
        let ack = self.shared.acker.track(partition, offset, 1);
        let key = (parked.project, parked.destination, parked.attempt);
        let batch_max = self
            .targets
            .borrow()
            .get(&(key.0.clone(), key.1.clone()))
            .map_or(1000, |t| t.config.delivery.batch_max_events);
        let pending = self.pending.entry(key.clone()).or_default();
        if pending.events.is_empty() || parked.first_failure_at_ms < pending.first_failure_ms {
            pending.first_failure_ms = parked.first_failure_at_ms;
        }
        pending.last_error = parked.last_error;
        pending.events.push(Event {
            raw: payload.unwrap_or_default(),
            partition: parked.source_partition,
            offset: parked.source_offset,
            failure_event: false,
            ack,
        });
        if pending.events.len() >= batch_max {
            let batch = self.pending.remove(&key).unwrap_or_default();
            self.flush(key, batch).await;
        }
    }

    /// Holds a parked reference until it is due (or pauses the partition at it while the
    /// schedule is full).
    fn schedule_reference(
        &mut self,
        partition: i32,
        offset: i64,
        reference: ParkedReference,
        generation: Option<u64>,
    ) {
        let count = reference.count();
        let remaining = match u32::try_from(count) {
            Ok(n) if count <= crate::config::bounds::BATCH_MAX_EVENTS.1 => n,
            _ => {
                tracing::warn!(topic = %self.topic, partition, offset, events = count,
                    "skipping a parked reference that names more events than any batch holds");
                self.shared.acker.track(partition, offset, 0);
                return;
            }
        };
        if self.schedule.len() >= MAX_SCHEDULED {
            let due = Utc::now().timestamp_millis() + 1000;
            self.pause(partition, offset);
            self.paused
                .insert(partition, (due, generation.unwrap_or(0), offset));
            self.timers.push(Reverse((due, partition)));
            return;
        }
        let ack = self.shared.acker.track(partition, offset, remaining);
        if ack.generation == 0 {
            // Not tracked: read before in this assignment (a rewind brought it back).
            return;
        }
        tracing::debug!(
            partition,
            offset,
            due_ms = reference.due_ms,
            events = count,
            "parked reference scheduled"
        );
        self.schedule.push(Scheduled { reference, ack });
    }

    /// Drops scheduled references of retry partitions this worker no longer owns.
    fn forget_revoked(&mut self) {
        let acker = &self.shared.acker;
        self.schedule
            .forget_revoked(|partition| acker.generation(partition));
    }

    /// Starts the attempts of the references that are due.
    ///
    /// A reference starts only with one of its destination's request slots (`max_in_flight`,
    /// as in its lane): while they are all taken — its attempts hang until `request_timeout` —
    /// the reference goes back into the schedule for [`SLOT_RECHECK`] instead of taking one
    /// of the worker's own attempt slots to wait in. Before, a destination that hung with
    /// many references due at once (after a probe had closed its circuit) took every one of
    /// the worker's 64 slots, each waiting for one of its 4, and every other tenant's due
    /// references waited for its timeouts, 4 at a time.
    async fn start_due_references(&mut self) {
        let now_ms = Utc::now().timestamp_millis();
        let due = self.schedule.take_due(now_ms);
        for Scheduled { reference, ack } in due {
            if self.shared.acker.generation(ack.partition) != Some(ack.generation) {
                // Its partition was revoked since: the new owner reads it again.
                continue;
            }
            let target = self.target(&reference.project, &reference.destination);
            let slot = match &target {
                Some(t) => match t.slots.clone().try_acquire_owned() {
                    Ok(slot) => Some(slot),
                    Err(_) => {
                        let mut reference = reference;
                        reference.due_ms = now_ms.saturating_add(SLOT_RECHECK_MS);
                        self.schedule.push(Scheduled { reference, ack });
                        continue;
                    }
                },
                None => None,
            };
            let permit = self.attempt_slot().await;
            let shared = self.shared.clone();
            let stop = self.stop.clone();
            let later = self.later.0.clone();
            let span = tracing::info_span!("retry", project = %reference.project, destination = %reference.destination,
                attempt = reference.attempt, events = reference.count());
            self.tasks.spawn(tracing::Instrument::instrument(
                async move {
                    attempt_reference(&shared, target, slot, reference, ack, &stop, &later).await;
                    drop(permit);
                },
                span,
            ));
        }
    }

    fn pause(&self, partition: i32, offset: i64) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, partition);
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(partition, error = %e, "cannot pause a retry partition");
        }
        // A zero timeout makes the seek asynchronous: a blocking seek would hold a runtime
        // thread (for its whole timeout when the partition is paused).
        if let Err(e) = self.consumer.seek(
            &self.topic,
            partition,
            Offset::Offset(offset),
            Duration::ZERO,
        ) {
            tracing::warn!(partition, offset, error = %e, "cannot rewind a retry partition");
        }
    }

    /// Checks `offset` against the record a resumed partition must return next; false when
    /// the record is to be ignored (already handled, or a further rewind was started).
    fn confirm_position(&mut self, partition: i32, offset: i64, generation: Option<u64>) -> bool {
        match self
            .continuity
            .check(partition, generation.unwrap_or(0), offset)
        {
            Verdict::Take => true,
            Verdict::Seen => false,
            Verdict::Rewind { to } => {
                tracing::debug!(topic = %self.topic, partition, got = offset, to,
                    "a resumed retry partition skipped records; rewinding further back");
                self.rewind(partition, to);
                false
            }
            Verdict::Gap { from, to } => {
                self.shared
                    .metrics
                    .skipped_offsets
                    .with_label_values(&[&self.topic, "gap"])
                    .inc_by(u64::try_from(to - from).unwrap_or(0));
                tracing::warn!(topic = %self.topic, partition, first_offset = from, last_offset = to - 1,
                    "the broker did not return these retry-topic offsets after rewinding; going on without them");
                true
            }
        }
    }

    /// Rewinds `partition` to `to` and pauses it a moment (records fetched before the rewind
    /// drain meanwhile); the watch keeps the record it waits for.
    fn rewind(&mut self, partition: i32, to: i64) {
        let Some(generation) = self.shared.acker.generation(partition) else {
            self.continuity.forget(partition);
            return;
        };
        self.shared
            .metrics
            .partition_rewinds
            .with_label_values(&[&self.topic])
            .inc();
        self.pause(partition, to);
        let due = Utc::now().timestamp_millis() + STEP_BACK_PAUSE_MS;
        self.paused.insert(partition, (due, generation, to));
        self.timers.push(Reverse((due, partition)));
    }

    fn resume_due(&mut self) {
        let now_ms = Utc::now().timestamp_millis();
        while let Some(&Reverse((due, partition))) = self.timers.peek() {
            if due > now_ms {
                break;
            }
            self.timers.pop();
            let Some(&(d, generation, resume_at)) = self.paused.get(&partition) else {
                continue;
            };
            if d != due {
                continue;
            }
            self.paused.remove(&partition);
            // A corrective rewind keeps the record it is looking for.
            if !self.continuity.watches(partition) {
                self.continuity.expect(partition, generation, resume_at, 0);
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&self.topic, partition);
            if let Err(e) = self.consumer.resume(&tpl) {
                tracing::warn!(partition, error = %e, "cannot resume a retry partition");
            }
        }
    }

    async fn flush_all(&mut self) {
        let batches: Vec<_> = self.pending.drain().collect();
        for (key, batch) in batches {
            self.flush(key, batch).await;
        }
    }

    /// One of the worker's attempt slots (waiting for one).
    async fn attempt_slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("the retry worker's semaphore is never closed")
    }

    /// The destination parked events of `project`/`destination` go to, when it still exists
    /// and is enabled.
    fn target(&self, project: &str, destination: &str) -> Option<Arc<Target>> {
        self.targets
            .borrow()
            .get(&(project.to_owned(), destination.to_owned()))
            .filter(|t| t.config.enabled)
            .cloned()
    }

    async fn flush(&mut self, key: BatchKey, batch: Pending) {
        if batch.events.is_empty() {
            return;
        }
        let permit = self.attempt_slot().await;
        let target = self.target(&key.0, &key.1);
        let shared = self.shared.clone();
        let stop = self.stop.clone();
        let span = tracing::info_span!("retry", project = %key.0, destination = %key.1, attempt = key.2, events = batch.events.len());
        self.tasks.spawn(tracing::Instrument::instrument(
            async move {
                attempt_copies(&shared, target, key, batch, &stop).await;
                drop(permit);
            },
            span,
        ));
    }
}

/// How long a due reference whose destination has every request slot taken waits in the
/// schedule before it is looked at again ([`RetryWorker::start_due_references`]).
const SLOT_RECHECK_MS: i64 = 1_000;

async fn sleep_until_ms(due_ms: Option<i64>) {
    if let Some(due) = due_ms {
        let wait = due - Utc::now().timestamp_millis();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
        }
    }
}
