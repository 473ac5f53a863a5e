//! The Kafka side: a consumer in the group, decoding and routing each message to lanes, and
//! committing what completed.
//!
//! Small pieces: [`consumer`] creates the group consumers, [`ack`] tracks completions and the
//! contiguous commit point, [`rebalance`] reacts to assignments and revocations, [`divert`]
//! parks a failing destination's events around its lane, and this module reads and
//! dispatches.

mod ack;
mod commit;
mod consumer;
pub mod continuity;
pub mod divert;
pub mod ranges;
mod rebalance;
pub mod sharing;
mod stall;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt as _;
use prometheus::IntCounter;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use crate::event::AckId;
pub use ack::{Acker, OffsetTracker};
pub use commit::Committer;
pub use consumer::{consumer, new_partition_start, Input, SourceConsumer};
pub use rebalance::{commit_list, start_of, SourceContext, Start};
pub use stall::{Offer, Stalls, WaitLimits};

use continuity::{SharedContinuity, Verdict};

use crate::config::Config;
use crate::event::{Decoded, Event};
use crate::failures::FailureReporter;
use crate::metrics::{DestinationStats, Metrics};
use crate::parking::retention::{Parking, ParkingState};
use crate::routing::Router;

/// What the source routes with: the router and the lanes its numbers refer to. Replaced as a
/// whole on a configuration reload.
pub struct Topology {
    /// Destinations by project, with their filters.
    pub router: Router,
    /// Lane inputs, indexed as the router's lane numbers.
    pub lanes: Vec<LaneInput>,
    /// Lane numbers by (project, destination id).
    pub index: std::collections::HashMap<(String, String), usize>,
}

/// The input side of one lane, as the source sees it.
#[derive(Clone)]
pub struct LaneInput {
    /// The lane's queue.
    pub queue: mpsc::Sender<Event>,
    /// `courier_events_routed_total` for the lane's destination type (resolved once).
    pub routed: IntCounter,
    /// The destination's counters.
    pub stats: Arc<DestinationStats>,
    /// The way around the lane while the destination's circuit is open ([`divert`]).
    pub divert: Option<divert::Divert>,
}

/// A message copied out of librdkafka's buffer, so nothing borrowed from the consumer is
/// held across an await.
struct Incoming {
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
    payload: Option<Bytes>,
}

impl Incoming {
    fn copy(m: &rdkafka::message::BorrowedMessage<'_>) -> Self {
        Incoming {
            partition: m.partition(),
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis(),
            payload: m.payload().map(Bytes::copy_from_slice),
        }
    }
}

/// Most messages dispatched in a row without checking for a stop, a commit tick or a reload.
const BURST: usize = 256;

/// Reads the topic and dispatches each message.
pub struct Source {
    /// The consumer.
    pub consumer: Arc<SourceConsumer>,
    /// The topic.
    pub topic: String,
    /// Routing and lanes of the current configuration.
    topology: Arc<Topology>,
    /// New topologies from configuration reloads.
    updates: watch::Receiver<Arc<Topology>>,
    /// Completion tracking.
    pub acker: Acker,
    /// Where unroutable messages are reported.
    pub failures: Arc<FailureReporter>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// `limits.max_event_bytes`.
    pub max_event_bytes: usize,
    /// `limits.max_in_flight_events`.
    pub max_in_flight_events: usize,
    /// `limits.max_in_flight_bytes`.
    pub max_in_flight_bytes: usize,
    /// How often to commit.
    pub commit_interval: Duration,
    /// Commits completed positions.
    pub committer: Committer,
    /// Reports of unroutable messages being written.
    pub side_tasks: JoinSet<()>,
    /// Bounds concurrent unroutable reports (a burst of poison waits instead of piling up).
    pub side_slots: Arc<Semaphore>,
    /// The lanes an event is routed to (the buffer is reused from event to event).
    targets: Vec<usize>,
    /// Of those, the lanes it is queued in (the others are diverted), reused likewise.
    queued: Vec<usize>,
    stalls: Stalls,
    /// Partitions paused for backpressure.
    paused: HashSet<i32>,
    /// Partitions whose next record is checked (after an assignment, a resume or a rewind).
    continuity: Arc<SharedContinuity>,
    /// Failing destinations' events collected around their lanes ([`divert`]).
    diverted: Arc<divert::Collector>,
    /// Which partitions carry more than one lane's events ([`sharing`]): where a full queue
    /// overflows instead of pausing the partition.
    sharing: sharing::Sharing,
    /// The parking mode in force ([`crate::parking::retention`]): events are diverted only
    /// while it is *reference*.
    parking: Arc<ParkingState>,
    /// Whether parking is by reference, as of this turn of the loop.
    by_reference: bool,
    /// Whether the lanes hold more than the spill threshold, as of this turn of the loop.
    pressure: bool,
    /// The time of this turn of the loop, read when first needed.
    now: Option<tokio::time::Instant>,
}

/// How often waiting events are moved into lanes that have room.
const STALL_DRAIN_INTERVAL: Duration = Duration::from_millis(5);
/// How often diverted batches are checked for being due.
const DIVERT_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// How often watched partitions are checked for silence.
const SILENCE_CHECK_INTERVAL: Duration = Duration::from_millis(250);

impl Source {
    /// A source over a subscribed consumer.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        consumer: Arc<SourceConsumer>,
        topic: String,
        mut updates: watch::Receiver<Arc<Topology>>,
        acker: Acker,
        failures: Arc<FailureReporter>,
        metrics: Arc<Metrics>,
        parking: Arc<ParkingState>,
        diverted: Arc<divert::Collector>,
        config: &Config,
    ) -> Self {
        let topology = updates.borrow_and_update().clone();
        let stalls = Stalls::new(
            metrics.clone(),
            WaitLimits::for_budget(
                config.limits.max_in_flight_events,
                config.limits.max_in_flight_bytes,
            ),
        );
        let continuity = consumer.context().continuity();
        // Exported at 0 from the start, so that a rate over it sees the first pause.
        metrics
            .partition_pauses
            .with_label_values(&[&topic])
            .inc_by(0);
        Self {
            committer: Committer::new(consumer.clone(), &topic, acker.clone(), metrics.clone()),
            consumer,
            topic,
            topology,
            updates,
            acker,
            failures,
            metrics,
            max_event_bytes: config.limits.max_event_bytes,
            max_in_flight_events: config.limits.max_in_flight_events,
            max_in_flight_bytes: config.limits.max_in_flight_bytes,
            commit_interval: config.kafka.commit_interval,
            side_tasks: JoinSet::new(),
            side_slots: Arc::new(Semaphore::new(256)),
            targets: Vec::new(),
            queued: Vec::new(),
            stalls,
            paused: HashSet::new(),
            continuity,
            diverted,
            sharing: sharing::Sharing::default(),
            parking,
            by_reference: false,
            pressure: false,
            now: None,
        }
    }

    /// Reads and dispatches until `stop` is cancelled, committing periodically.
    pub async fn run(&mut self, stop: &CancellationToken) {
        let mut commit_tick = tokio::time::interval(self.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Persistent timers: a sleep created anew on every turn of the loop never fires while
        // messages keep arriving sooner, and stalled partitions would wait for a lull.
        let mut stall_tick = tokio::time::interval(STALL_DRAIN_INTERVAL);
        stall_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut silence_tick = tokio::time::interval(SILENCE_CHECK_INTERVAL);
        silence_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut divert_tick = tokio::time::interval(DIVERT_CHECK_INTERVAL);
        divert_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let consumer = self.consumer.clone();
        loop {
            let watching = !self.continuity.is_idle();
            self.by_reference = self.parking.parking() == Parking::Reference;
            self.pressure = divert::Budget {
                max_events: self.max_in_flight_events,
                max_bytes: self.max_in_flight_bytes,
            }
            .pressed(&self.metrics);
            self.now = None;
            let incoming = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                _ = commit_tick.tick() => {
                    self.committer.tick();
                    while self.side_tasks.try_join_next().is_some() {}
                    continue;
                }
                Ok(()) = self.updates.changed() => {
                    // Between two messages: each message is routed by one configuration.
                    // Diverted batches are collected by lane number, which the new routing
                    // reassigns: park them first.
                    self.diverted.park_all();
                    self.sharing.forget_lanes();
                    self.topology = self.updates.borrow_and_update().clone();
                    continue;
                }
                _ = divert_tick.tick(), if !self.diverted.is_empty() => {
                    self.diverted.park_due(tokio::time::Instant::now());
                    continue;
                }
                _ = stall_tick.tick(), if !self.stalls.is_empty() => {
                    self.drain_stalls();
                    continue;
                }
                _ = silence_tick.tick(), if watching => {
                    let rewinds = self
                        .continuity
                        .with(|c| c.silent(std::time::Instant::now()));
                    for (partition, to) in rewinds {
                        tracing::debug!(topic = %self.topic, partition, to, "a watched partition stayed silent; rewinding");
                        self.rewind(partition, to);
                    }
                    continue;
                }
                () = tokio::time::sleep(Duration::from_millis(5)), if self.over_budget() => continue,
                message = consumer.recv(), if !self.over_budget() => message.map(|m| Incoming::copy(&m)),
            };
            match incoming {
                Ok(m) => {
                    self.dispatch(m).await;
                    // Messages librdkafka already holds are dispatched at once, without going
                    // back through the select (whose futures register and drop wakers on each
                    // call). A burst is short, so a stop, a commit tick or a reload waits for
                    // at most `BURST` messages.
                    for _ in 0..BURST {
                        match consumer.recv().now_or_never() {
                            Some(Ok(m)) => {
                                let m = Incoming::copy(&m);
                                self.dispatch(m).await;
                            }
                            Some(Err(e)) => {
                                tracing::warn!(topic = %self.topic, error = %e, "consumer error");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                break;
                            }
                            None => break,
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        // What was collected is parked now; the drain waits for it.
        self.diverted.park_all();
    }

    /// Whether reading waits for the lanes to give back part of the global in-flight budget
    /// ([`reading_waits`]; librdkafka's own prefetch is bounded by
    /// `queued.max.messages.kbytes`).
    fn over_budget(&self) -> bool {
        let events = usize::try_from(self.metrics.in_flight_events.get()).unwrap_or(0);
        let bytes = usize::try_from(self.metrics.in_flight_bytes.get()).unwrap_or(0);
        reading_waits(
            events,
            bytes,
            self.max_in_flight_events,
            self.max_in_flight_bytes,
        )
    }

    /// Seeks `partition` back to `to`; what comes before the watched offset is ignored.
    /// False when the seek failed (the caller then must not drop the record at hand).
    fn rewind(&self, partition: i32, to: i64) -> bool {
        self.metrics
            .partition_rewinds
            .with_label_values(&[&self.topic])
            .inc();
        // A zero timeout makes the seek asynchronous (a blocking one would hold a runtime
        // thread); records fetched before it are dropped by librdkafka.
        match self.consumer.seek(
            &self.topic,
            partition,
            rdkafka::Offset::Offset(to),
            Duration::ZERO,
        ) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition, offset = to, error = %e, "cannot rewind a partition to read records the broker skipped");
                self.continuity.with(|c| c.forget(partition));
                false
            }
        }
    }

    /// Judges a message against the partition's watch; false when it is to be ignored. Free
    /// while no partition is watched.
    fn in_sequence(&mut self, partition: i32, offset: i64) -> bool {
        if self.continuity.is_idle() {
            return true;
        }
        let generation = self.acker.generation(partition).unwrap_or(0);
        let verdict = self
            .continuity
            .with(|c| c.check(partition, generation, offset));
        match verdict {
            Verdict::Take => true,
            Verdict::Seen => false,
            Verdict::Rewind { to } => {
                tracing::debug!(topic = %self.topic, partition, offset, to,
                    "the broker did not return the offset courier asked for; rewinding");
                !self.rewind(partition, to)
            }
            Verdict::Gap { from, to } => {
                self.metrics
                    .skipped_offsets
                    .with_label_values(&[&self.topic, "gap"])
                    .inc_by(u64::try_from(to - from).unwrap_or(0));
                tracing::warn!(topic = %self.topic, partition, first_offset = from, last_offset = to - 1,
                    "offsets not returned by the broker even after rewinding (compaction, transaction markers or deleted records); going on without them");
                true
            }
        }
    }

    /// Pauses (or resumes) fetching one partition.
    fn pause(&mut self, partition: i32, pause: bool) {
        let changed = if pause {
            self.paused.insert(partition)
        } else {
            self.paused.remove(&partition)
        };
        if !changed {
            return;
        }
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition(&self.topic, partition);
        let result = if pause {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        self.metrics
            .paused_partitions
            .add(if pause { 1 } else { -1 });
        if pause {
            self.metrics
                .partition_pauses
                .with_label_values(&[&self.topic])
                .inc();
        }
        match result {
            Ok(()) => {
                tracing::debug!(topic = %self.topic, partition, pause, "partition backpressure")
            }
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition, pause, error = %e, "cannot pause or resume a partition")
            }
        }
    }

    fn drain_stalls(&mut self) {
        let acker = &self.acker;
        let resumed = self.stalls.drain(|p| acker.generation(p));
        for partition in resumed {
            self.pause(partition, false);
            // The broker must go on exactly after the last record read; one that resumes
            // further on (inside a record batch, tansu skips the rest of it) is noticed.
            if let Some((generation, last)) = self.acker.last_tracked(partition) {
                // A rewind below the log start is safe: librdkafka's reset re-reads from
                // the earliest offset (see `consumer`).
                self.continuity
                    .with(|c| c.expect(partition, generation, last + 1, 0));
            }
        }
    }

    async fn dispatch(&mut self, mut m: Incoming) {
        if !self.in_sequence(m.partition, m.offset) {
            return;
        }
        self.metrics.consumed.inc();
        let has_payload = m.payload.is_some();
        let payload = m.payload.take().unwrap_or_default();
        self.metrics.consumed_bytes.inc_by(payload.len() as u64);
        let decoded = self.topology.router.decode_and_route(
            has_payload.then_some(&payload[..]),
            self.max_event_bytes,
            m.timestamp_ms,
            &mut self.targets,
        );
        match decoded {
            Decoded::Routable(fields) => {
                let failure_event = fields.is_failure_event();
                let ack = self
                    .acker
                    .track(m.partition, m.offset, self.targets.len() as u32);
                if ack.generation == 0 {
                    // Read before in this assignment (a rewind brings such records back):
                    // delivering it again would only duplicate it.
                    return;
                }
                // Destinations whose events go around their lanes take only the position
                // (a reference names where the payload already is); the others are queued
                // after them, so that the last of those takes the payload itself: a clone
                // would allocate the buffer's shared reference count, for nothing when there
                // is one (or when the destination it was made for is diverted).
                let mut queued = std::mem::take(&mut self.queued);
                queued.clear();
                let now = &mut self.now;
                self.sharing.saw(m.partition, &self.targets, || {
                    *now.get_or_insert_with(tokio::time::Instant::now)
                });
                for &lane in &self.targets {
                    let input = &self.topology.lanes[lane];
                    input.routed.inc();
                    input.stats.routed.fetch_add(1, Ordering::Relaxed);
                    let Some(divert) = input.divert.as_ref() else {
                        queued.push(lane);
                        continue;
                    };
                    let pressed = || self.pressure || divert::queue_crowded(&input.queue);
                    let reason =
                        if divert::diverts(divert, self.by_reference, pressed, &mut self.now) {
                            divert::Diversion::Failing
                        } else if divert::overflows(self.by_reference, &input.queue, || {
                            let now = *self.now.get_or_insert_with(tokio::time::Instant::now);
                            self.sharing.shared(m.partition, now)
                        }) {
                            divert::Diversion::Overflow
                        } else {
                            queued.push(lane);
                            continue;
                        };
                    let position = divert::Position { ack, failure_event };
                    let now = *self.now.get_or_insert_with(tokio::time::Instant::now);
                    self.diverted.push(lane, divert, position, reason, now);
                }
                let mut payload = Some(payload);
                let mut stalled = false;
                let last = queued.len().saturating_sub(1);
                for (i, &lane) in queued.iter().enumerate() {
                    let input = &self.topology.lanes[lane];
                    let payload_bytes = payload.as_ref().map_or(0, Bytes::len);
                    self.metrics.hold_event(payload_bytes);
                    let raw = if i == last {
                        payload.take().unwrap_or_default()
                    } else {
                        payload.clone().unwrap_or_default()
                    };
                    let event = Event {
                        raw,
                        partition: m.partition,
                        offset: m.offset,
                        failure_event,
                        ack,
                    };
                    match self.stalls.offer(&input.queue, event, ack.generation) {
                        Offer::Queued | Offer::Stalled(false) => {}
                        Offer::Stalled(true) => stalled = true,
                        Offer::Closed => {
                            // Lanes close only after the source stops; reaching this is a
                            // bug, and the offset stays incomplete rather than being skipped
                            // (the stall queue gave the event back to the budget).
                            tracing::error!(topic = %self.topic, partition = m.partition, offset = m.offset, "lane closed while the source runs");
                        }
                    }
                }
                self.queued = queued;
                if stalled {
                    self.pause(m.partition, true);
                }
            }
            Decoded::Unroutable {
                reason,
                detail,
                project,
                failure_event,
            } => {
                self.metrics
                    .unroutable
                    .with_label_values(&[reason.as_str()])
                    .inc();
                tracing::warn!(topic = %self.topic, partition = m.partition, offset = m.offset,
                    reason = reason.as_str(), project = project.as_deref().unwrap_or(""), "unroutable message: {detail}");
                if failure_event {
                    // An unroutable failure event never produces another one.
                    self.acker.track(m.partition, m.offset, 0);
                    return;
                }
                let ack = self.acker.track(m.partition, m.offset, 1);
                if ack.generation == 0 {
                    return;
                }
                let permit = self
                    .side_slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the side-task semaphore is never closed");
                let failures = self.failures.clone();
                let acker = self.acker.clone();
                self.side_tasks.spawn(async move {
                    let reported = failures
                        .unroutable(m.partition, m.offset, reason, &detail, project.as_deref())
                        .await;
                    if reported.is_ok() {
                        acker.complete([ack]);
                    }
                    drop(permit);
                });
            }
        }
    }
}

/// Whether reading waits, given what the lanes hold: `events` events and `bytes` bytes
/// (events, and the request bodies encoded from them).
///
/// The byte budget is a promise about memory, and a request body is a second copy of events
/// already held: a lane encodes it after the events were read, so a source that read up to
/// the whole budget would end above it by every body being sent (the stalled benchmark's
/// gauge peaked at 173 MiB for 128 MiB). Reading therefore waits at *half* the byte budget:
/// the bodies encoded from the events held then (each about the size of its events; at most
/// one per batch in flight) fit in the other half.
fn reading_waits(events: usize, bytes: usize, max_events: usize, max_bytes: usize) -> bool {
    events >= max_events || bytes >= max_bytes / 2
}

#[cfg(test)]
mod tests {
    use super::reading_waits;

    #[test]
    fn reading_waits_at_half_the_byte_budget_to_leave_room_for_request_bodies() {
        let mib = 1024 * 1024;
        assert!(!reading_waits(10, 64 * mib - 1, 100, 128 * mib));
        assert!(reading_waits(10, 64 * mib, 100, 128 * mib));
        // Events alone are counted against their own limit, in full.
        assert!(!reading_waits(99, 0, 100, 128 * mib));
        assert!(reading_waits(100, 0, 100, 128 * mib));
    }
}
