//! Around the lane of a failing destination: while a destination's circuit is open and no
//! probe is due, its lane would only park what it receives. The source then parks those
//! events itself, by reference, without passing them through the lane. The same way around
//! takes a slow destination's overflow (below).
//!
//! Why: in the stalled benchmark (1,000 tenants, each with a healthy destination and one
//! that never answers) a broken destination's events cost about as much CPU as a delivery —
//! a queue operation and a wake-up per event, batching, a task per batch — and held their
//! payloads in the shared in-flight budget until parked. A diverted event costs an atomic
//! read and a push of its position here: the payload is not kept (a reference names where
//! the event already is), and a second's worth of the destination's events becomes one
//! retry-topic record.
//!
//! What keeps it safe:
//! - only while the parking mode in force is *reference* (copies need the payload; those
//!   are parked by the lane as before), and only for destinations whose events the lane would
//!   park untouched: no `sample`, no `daily_cap`, a retry schedule with a first step;
//! - only inside the window the destination's circuit publishes ([`ParkWindow`]): from the
//!   moment it opens (or its last probe) until its next probe or its pause is due. Then
//!   events reach the lane again, whose next batch is the probe (or is reported, paused);
//! - or, before the circuit opens, while the destination is *suspect* — its last request
//!   failed, or the requests it has out have gone unanswered for half its `request_timeout`
//!   ([`ANSWER_PATIENCE`]) — and the lanes
//!   hold more than the spill threshold ([`Budget::under_pressure`]) or its own queue is
//!   [`crowded`] (a full one pauses the partitions other tenants share): then its lane would
//!   park each batch at once anyway (the lane's *spill*), after holding its payloads for a
//!   batch's time. In the stalled benchmark the black holes' circuits take three request
//!   timeouts to open, and for that long their batches held the budget every tenant reads
//!   with;
//! - or, for a destination that answers but cannot keep up, when its queue is full and the
//!   partition of the event also carries other destinations' events ([`Diversion::Overflow`],
//!   [`super::sharing`]): queueing it would pause that partition, and every tenant in it would
//!   wait for the slowest. The overflow is parked without an attempt, like a spilled batch, and
//!   the retry worker delivers it when the destination has a free request slot. A partition
//!   of that destination's events alone still pauses (backpressure: nothing reordered, nothing
//!   read twice);
//! - each diverted event is tracked like any other: its offset completes when its reference
//!   is in the retry topic, and the batch's positions count in the in-flight byte budget
//!   until then. A position is kept as a [`Position`] (32 bytes, against an [`Event`]'s 72);
//!   the parking task makes the events the settler takes from them;
//! - what is collected is parked before the routing changes (a reload) and when the source
//!   stops, so the drain waits for it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::sync::{Mutex, MutexGuard};

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::event::{AckId, Event};
use crate::metrics::Metrics;

/// Most events one diverted batch collects before it is parked (a reference of 10,000
/// scattered offsets stays well under a reference record's size limit).
pub const MAX_DIVERTED_EVENTS: usize = 10_000;

/// Shortest time a diverted batch collects events before it is parked: a second's worth of a
/// failing destination's events is one retry-topic record.
pub const MIN_DIVERT_AGE: Duration = Duration::from_secs(1);

/// What a diverted event counts in the in-flight byte budget: its position, not its payload.
pub const DIVERTED_EVENT_BYTES: usize = std::mem::size_of::<Position>();

/// Where a diverted event is, and what completes it: all a reference and the acknowledgement
/// need. Its partition and offset are its acknowledgement's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// What completes its offset (partition, generation, offset).
    pub ack: AckId,
    /// Whether it is a delivery-failure event.
    pub failure_event: bool,
}

impl Position {
    /// The event the settler parks: this position, without its payload.
    fn event(self) -> Event {
        Event {
            raw: bytes::Bytes::new(),
            partition: self.ack.partition,
            offset: self.ack.offset,
            failure_event: self.failure_event,
            ack: self.ack,
        }
    }
}

/// How long a destination may leave the requests it has out unanswered — none of them
/// answered, nor any other — before, under pressure, it is treated like a failing one: this
/// fraction of its own `request_timeout` ([`ParkWindow::new`]).
///
/// Why: a destination that has not answered any request yet gets one request at a time (the
/// lane's cautious slot), and its other batches wait in its lane; one that worked and then
/// hangs holds all its slots. Either way its first failure comes only when a request times
/// out — 30 s at the default `request_timeout`, 1 s in the stalled benchmark, where the 1,000
/// black holes' waiting batches held the byte budget for that whole second and reading stopped
/// for every tenant. Half its timeout halves that wait. A healthy destination whose answers
/// take that long (15 s by default) loses nothing: while the lanes are under pressure its
/// events are parked (by reference) and delivered by the retry worker, and its next answer
/// ends it. (A fixed half second was tried: under a profiler, healthy destinations' first
/// answers took longer, and their events waited for the retry schedule.)
pub const ANSWER_PATIENCE: f64 = 0.5;

/// Until when a failing destination's events are parked without an attempt — published by
/// its circuit on every change, read by the source for every event routed to it.
pub struct ParkWindow {
    base: Instant,
    /// Nanoseconds after `base` when the window closes; 0 when it is closed.
    until: AtomicU64,
    /// Whether the destination's last request failed (and it is not paused).
    failing: AtomicBool,
    /// Requests out now.
    outstanding: AtomicUsize,
    /// Nanoseconds after `base` since when the destination has had requests out and answered
    /// none: when the first of them went out, or its last answer since; 0 before any.
    silent_since: AtomicU64,
    /// How long it may stay silent so before it is [`suspect`](Self::suspect).
    patience: Duration,
}

impl Default for ParkWindow {
    /// The window of a destination with the default `request_timeout` (30 s).
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

impl ParkWindow {
    /// A closed window for a destination whose requests time out after `request_timeout`.
    pub fn new(request_timeout: Duration) -> Self {
        Self {
            base: Instant::now(),
            until: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            outstanding: AtomicUsize::new(0),
            silent_since: AtomicU64::new(0),
            patience: request_timeout.mul_f64(ANSWER_PATIENCE),
        }
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Opens the window until `until`, or closes it (`None`).
    pub fn set(&self, until: Option<Instant>) {
        let nanos = until.map_or(0, |t| self.nanos(t));
        self.until.store(nanos, Ordering::Release);
    }

    /// Records whether the destination's last request failed (and it is not paused).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Release);
    }

    /// Records a request that goes out at `at`; it counts as out until the returned guard is
    /// dropped.
    pub fn sending(&self, at: Instant) -> Sending<'_> {
        if self.outstanding.fetch_add(1, Ordering::AcqRel) == 0 {
            self.silent_since.store(self.nanos(at), Ordering::Release);
        }
        Sending(self)
    }

    /// Records an answer (a success or a failure) at `at`: the requests still out have been
    /// silent only since then.
    pub fn answered(&self, at: Instant) {
        if self.outstanding.load(Ordering::Acquire) > 0 {
            self.silent_since.store(self.nanos(at), Ordering::Release);
        }
    }

    /// Whether the destination's last request failed (and it is not paused): under budget
    /// pressure its lane would park its batches at once (spill), so the source may too.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Whether the destination is treated as failing under pressure: its last request failed,
    /// or it has had requests out and answered none of them (nor any other) for longer than
    /// [`ANSWER_PATIENCE`] of its `request_timeout` (`now` is read only then).
    pub fn suspect(&self, now: impl FnOnce() -> Instant) -> bool {
        if self.failing() {
            return true;
        }
        if self.outstanding.load(Ordering::Acquire) == 0 {
            return false;
        }
        let since = self.silent_since.load(Ordering::Acquire);
        since != 0
            && self
                .nanos(now())
                .saturating_sub(since)
                .gt(&u64::try_from(self.patience.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Whether the window is closed (no clock read needed).
    pub fn is_closed(&self) -> bool {
        self.until.load(Ordering::Acquire) == 0
    }

    /// Whether `now` is inside the window.
    pub fn covers(&self, now: Instant) -> bool {
        let until = self.until.load(Ordering::Acquire);
        until != 0
            && u64::try_from(now.saturating_duration_since(self.base).as_nanos())
                .is_ok_and(|n| n < until)
    }
}

/// A request out ([`ParkWindow::sending`]).
pub struct Sending<'a>(&'a ParkWindow);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The in-flight budget (`limits.max_in_flight_events`, `limits.max_in_flight_bytes`), for
/// the spill threshold: above it, lanes spill a failing destination's batches
/// ([`crate::lane`]) and the source diverts a failing destination's events.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// `limits.max_in_flight_events`.
    pub max_events: usize,
    /// `limits.max_in_flight_bytes`.
    pub max_bytes: usize,
}

impl Budget {
    /// Whether the lanes, holding `events` events and `bytes` bytes, are above the spill
    /// threshold: more than half the event budget, or more than a quarter of the byte budget
    /// (half of where reading waits).
    pub fn under_pressure(&self, events: usize, bytes: usize) -> bool {
        events > self.max_events / 2 || bytes > self.max_bytes / 4
    }

    /// [`Budget::under_pressure`] with what `metrics` count as held now.
    pub fn pressed(&self, metrics: &Metrics) -> bool {
        self.under_pressure(
            usize::try_from(metrics.in_flight_events.get()).unwrap_or(0),
            usize::try_from(metrics.in_flight_bytes.get()).unwrap_or(0),
        )
    }
}

/// Whether a lane's queue, holding `queued` of at most `capacity` events, is crowded: at least
/// half full. For a suspect or failing destination this counts as pressure, as the shared
/// budget's spill threshold does: a lane whose destination holds its request slots does not
/// take from its queue, and once the queue is full the source pauses every partition carrying
/// the destination's events — and with them every other tenant whose events share those
/// partitions — while the shared budget may be far from its threshold (one busy tenant's
/// black hole, a 10,000-event queue, a 100,000-event budget).
pub fn crowded(queued: usize, capacity: usize) -> bool {
    queued.saturating_mul(2) >= capacity.max(1)
}

/// Why a destination's events go around its lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diversion {
    /// Its circuit is open, or it is suspect under pressure: its lane would park them anyway.
    Failing,
    /// It answers, but its queue is full, and a pause would hold back the other destinations
    /// whose events share the partition ([`super::sharing`]): they are parked for the retry
    /// worker, which delivers them when the destination has a free request slot.
    Overflow,
}

/// Parks a diverted batch by reference, as its lane's settler would (the future completes
/// the events' offsets once the reference is written).
pub type ParkBatch = Arc<dyn Fn(Vec<Event>, Diversion) -> BoxFuture<'static, ()> + Send + Sync>;

/// A lane's way around itself, for the source: present for destinations whose events may be
/// diverted (see the module's conditions).
#[derive(Clone)]
pub struct Divert {
    /// The destination's parking window.
    pub window: Arc<ParkWindow>,
    /// Parks a batch.
    pub park: ParkBatch,
    /// How long a diverted batch collects events: the destination's `batch_timeout`, at least
    /// [`MIN_DIVERT_AGE`].
    pub max_age: Duration,
}

/// The diverted batches being collected, shared by the source, which adds to them and parks
/// those that are due, and the consumer's rebalance callback, which parks them all before it
/// waits for the revoked partitions' events to complete. (Held by the source alone, they
/// could not be parked while that wait blocks the source, and every revocation during a
/// destination's outage would last the whole `kafka.revoke_timeout`.)
pub struct Collector {
    batches: Mutex<Diverted>,
    /// The parking tasks, waited for when the pipeline drains.
    tasks: TaskTracker,
    /// Bounds the parkings written at once.
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// Most diverted batches parked at once.
const PARKING_SLOTS: usize = 256;

impl Collector {
    /// An empty collector counting what it holds in `metrics`' in-flight bytes.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            batches: Mutex::new(Diverted::default()),
            tasks: TaskTracker::new(),
            slots: Arc::new(Semaphore::new(PARKING_SLOTS)),
            metrics,
        })
    }

    fn batches(&self) -> MutexGuard<'_, Diverted> {
        // `Diverted` stays consistent whatever panicked while it was held.
        self.batches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether nothing is being collected.
    pub fn is_empty(&self) -> bool {
        self.batches().is_empty()
    }

    /// Adds an event's position to lane `lane`'s batch, parking the batch when it is full (or
    /// when the event goes around the lane for another reason than the batch's).
    pub fn push(
        &self,
        lane: usize,
        divert: &Divert,
        position: Position,
        reason: Diversion,
        now: Instant,
    ) {
        self.metrics.hold_bytes(DIVERTED_EVENT_BYTES);
        let full = self.batches().push(lane, divert, position, reason, now);
        if let Some(ready) = full {
            self.park(ready);
        }
    }

    /// Parks the batches that are due at `now`.
    pub fn park_due(&self, now: Instant) {
        let due = self.batches().due(now);
        due.into_iter().for_each(|r| self.park(r));
    }

    /// Parks every batch: before the routing changes (batches are kept by lane number), when
    /// partitions are revoked, and when the source stops.
    pub fn park_all(&self) {
        let all = self.batches().all();
        all.into_iter().for_each(|r| self.park(r));
    }

    /// Waits until every parking started has ended.
    pub async fn drained(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn park(&self, ready: Ready) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Only outside a runtime (never in courier): the positions stay uncommitted and
            // are read again after a restart.
            tracing::error!(
                events = ready.positions.len(),
                "no runtime to park diverted events on"
            );
            return;
        };
        let bytes = ready.positions.len() * DIVERTED_EVENT_BYTES;
        let (slots, metrics) = (self.slots.clone(), self.metrics.clone());
        self.tasks.spawn_on(
            async move {
                let permit = slots.acquire_owned().await;
                ready.parking().await;
                metrics.release_bytes(bytes);
                drop(permit);
            },
            &runtime,
        );
    }
}

/// The diverted batches being collected, one per lane of the current routing.
#[derive(Default)]
pub struct Diverted {
    batches: Vec<Option<Collecting>>,
    /// Events collected over all batches.
    events: usize,
}

struct Collecting {
    since: Instant,
    max_age: Duration,
    park: ParkBatch,
    reason: Diversion,
    positions: Vec<Position>,
}

/// A batch ready to be parked.
pub struct Ready {
    /// Parks it.
    pub park: ParkBatch,
    /// Why its events went around their lane.
    pub reason: Diversion,
    /// Its events' positions.
    pub positions: Vec<Position>,
}

impl Ready {
    /// The parking of this batch, to run as its own task (which makes its events, off the
    /// source's thread).
    pub fn parking(self) -> BoxFuture<'static, ()> {
        let events = self.positions.into_iter().map(Position::event).collect();
        (self.park)(events, self.reason)
    }
}

impl Diverted {
    /// Whether nothing is being collected.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Adds `position` to lane `lane`'s batch; returns the batch when it is full, or the
    /// batch collected so far when it was collected for another reason (a batch is parked for
    /// one reason: its metric and its error say which).
    pub fn push(
        &mut self,
        lane: usize,
        divert: &Divert,
        position: Position,
        reason: Diversion,
        now: Instant,
    ) -> Option<Ready> {
        if self.batches.len() <= lane {
            self.batches.resize_with(lane + 1, || None);
        }
        let other = self.batches[lane]
            .take_if(|b| b.reason != reason)
            .map(|b| self.ready(b));
        let slot = &mut self.batches[lane];
        let batch = slot.get_or_insert_with(|| Collecting {
            since: now,
            max_age: divert.max_age,
            park: divert.park.clone(),
            reason,
            positions: Vec::new(),
        });
        batch.positions.push(position);
        self.events += 1;
        if batch.positions.len() >= MAX_DIVERTED_EVENTS {
            return slot.take().map(|b| self.ready(b));
        }
        other
    }

    /// Takes the batches that have collected for their whole age by `now`.
    pub fn due(&mut self, now: Instant) -> Vec<Ready> {
        let mut out = Vec::new();
        for slot in &mut self.batches {
            if slot
                .as_ref()
                .is_some_and(|b| now.saturating_duration_since(b.since) >= b.max_age)
            {
                out.extend(slot.take());
            }
        }
        out.into_iter().map(|b| self.ready(b)).collect()
    }

    /// Takes every batch (before the routing changes, and when the source stops).
    pub fn all(&mut self) -> Vec<Ready> {
        let taken: Vec<Collecting> = self.batches.drain(..).flatten().collect();
        taken.into_iter().map(|b| self.ready(b)).collect()
    }

    fn ready(&mut self, batch: Collecting) -> Ready {
        self.events -= batch.positions.len();
        Ready {
            park: batch.park,
            reason: batch.reason,
            positions: batch.positions,
        }
    }
}

/// Whether an event routed to a lane with `divert` goes around the lane: parking is by
/// reference, and the destination is suspect (failing, or not answering its first request)
/// while `pressed` (the lanes are above the spill threshold, or its own queue is crowded), or
/// its parking window covers `now` (the loop's turn's time, read here when first needed; a
/// closed window needs no clock).
pub(super) fn diverts(
    divert: &Divert,
    by_reference: bool,
    pressed: impl FnOnce() -> bool,
    now: &mut Option<tokio::time::Instant>,
) -> bool {
    if !by_reference {
        return false;
    }
    if divert
        .window
        .suspect(|| *now.get_or_insert_with(tokio::time::Instant::now))
        && pressed()
    {
        return true;
    }
    if divert.window.is_closed() {
        return false;
    }
    divert
        .window
        .covers(*now.get_or_insert_with(tokio::time::Instant::now))
}

/// Whether a lane's queue is [crowded]: for a suspect destination, pressure
/// of its own even when the shared budget is below its spill threshold.
pub(super) fn queue_crowded(queue: &tokio::sync::mpsc::Sender<Event>) -> bool {
    let capacity = queue.max_capacity();
    crowded(capacity.saturating_sub(queue.capacity()), capacity)
}

/// Whether an event routed to a lane with `divert` overflows around it ([`Diversion::Overflow`]):
/// parking is by reference, the lane's queue has no room (queueing the event would pause its
/// partition: the source is the queue's only sender, so room seen here is room to send), and
/// the partition carries other lanes' events (`shared`, asked only then).
pub(super) fn overflows(
    by_reference: bool,
    queue: &tokio::sync::mpsc::Sender<Event>,
    shared: impl FnOnce() -> bool,
) -> bool {
    by_reference && queue.capacity() == 0 && shared()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The position of generation 1's event at `partition`/`offset`.
    fn position(partition: i32, offset: i64) -> Position {
        Position {
            ack: AckId {
                partition,
                generation: 1,
                offset,
            },
            failure_event: false,
        }
    }

    fn divert(parked: &Arc<Mutex<Vec<Vec<i64>>>>, max_age: Duration) -> Divert {
        let parked = parked.clone();
        Divert {
            window: Arc::new(ParkWindow::default()),
            park: Arc::new(move |events: Vec<Event>, _| {
                let parked = parked.clone();
                Box::pin(async move {
                    parked
                        .lock()
                        .unwrap()
                        .push(events.iter().map(|e| e.offset).collect());
                })
            }),
            max_age,
        }
    }

    #[tokio::test]
    async fn the_collector_counts_positions_until_their_batch_is_parked() {
        let metrics = Arc::new(Metrics::new());
        let parked = Arc::new(Mutex::new(Vec::new()));
        let d = divert(&parked, Duration::from_secs(1));
        let collector = Collector::new(metrics.clone());
        let t = Instant::now();
        for offset in 0..3 {
            collector.push(2, &d, position(0, offset), Diversion::Failing, t);
        }
        assert!(!collector.is_empty());
        assert_eq!(
            metrics.in_flight_bytes.get(),
            3 * DIVERTED_EVENT_BYTES as i64
        );
        collector.park_due(t + Duration::from_millis(500));
        assert!(!collector.is_empty(), "not due yet");
        collector.park_all();
        assert!(collector.is_empty());
        collector.drained().await;
        assert_eq!(*parked.lock().unwrap(), vec![vec![0, 1, 2]]);
        assert_eq!(metrics.in_flight_bytes.get(), 0, "given back once parked");
    }

    #[tokio::test]
    async fn the_window_covers_until_it_closes() {
        let w = ParkWindow::default();
        let now = Instant::now();
        assert!(w.is_closed() && !w.covers(now));
        w.set(Some(now + Duration::from_secs(10)));
        assert!(!w.is_closed());
        assert!(w.covers(now));
        assert!(w.covers(now + Duration::from_millis(9_999)));
        assert!(!w.covers(now + Duration::from_secs(10)));
        w.set(None);
        assert!(!w.covers(now));
        // A window that closes at once (a probe due now) is still a set, closed window.
        w.set(Some(now - Duration::from_secs(1)));
        assert!(!w.covers(now));
    }

    #[tokio::test]
    async fn requests_left_unanswered_make_a_destination_suspect_after_half_its_timeout() {
        let w = ParkWindow::new(Duration::from_secs(1));
        let t = Instant::now();
        let read = std::cell::Cell::new(0);
        let at = |d: u64| {
            read.set(read.get() + 1);
            t + Duration::from_millis(d)
        };
        assert!(!w.suspect(|| at(10_000)), "no request out");
        assert_eq!(read.get(), 0, "no clock read while no request is out");
        let first = w.sending(t);
        assert!(!w.suspect(|| at(500)), "within half the timeout");
        assert!(w.suspect(|| at(501)), "past half the timeout");
        // A second request does not make the first one's silence shorter …
        let second = w.sending(t + Duration::from_millis(400));
        assert!(
            w.suspect(|| at(501)),
            "the first request is still unanswered"
        );
        // … an answer does: the requests still out are silent only since then.
        w.answered(t + Duration::from_millis(450));
        drop(first);
        assert!(!w.suspect(|| at(900)), "answered 450 ms ago");
        assert!(
            w.suspect(|| at(951)),
            "nothing answered for more than 500 ms"
        );
        drop(second);
        assert!(!w.suspect(|| at(10_000)), "nothing out");
        // An answer while nothing is out leaves nothing behind for the next request.
        w.answered(t + Duration::from_millis(1_000));
        let _third = w.sending(t + Duration::from_millis(5_000));
        assert!(!w.suspect(|| at(5_400)), "the next request is new");
        w.set_failing(true);
        assert!(w.suspect(|| at(0)), "its last request failed");
    }

    #[tokio::test]
    async fn batches_are_parked_when_full_when_due_and_all_at_the_end() {
        let parked = Arc::new(Mutex::new(Vec::new()));
        let a = divert(&parked, Duration::from_secs(1));
        let b = divert(&parked, Duration::from_secs(5));
        let mut d = Diverted::default();
        let t = Instant::now();
        for offset in 0..3 {
            assert!(d
                .push(0, &a, position(0, offset), Diversion::Failing, t)
                .is_none());
        }
        assert!(d
            .push(3, &b, position(1, 7), Diversion::Failing, t)
            .is_none());
        assert!(!d.is_empty());
        assert!(d.due(t + Duration::from_millis(999)).is_empty());
        let due = d.due(t + Duration::from_secs(1));
        assert_eq!(due.len(), 1, "only lane 0's batch is a second old");
        for r in due {
            r.parking().await;
        }
        assert_eq!(*parked.lock().unwrap(), vec![vec![0, 1, 2]]);
        let mut full = None;
        for offset in 0..MAX_DIVERTED_EVENTS as i64 {
            full = d.push(0, &a, position(0, offset), Diversion::Failing, t);
            if offset + 1 < MAX_DIVERTED_EVENTS as i64 {
                assert!(full.is_none());
            }
        }
        full.expect("a full batch is parked at once")
            .parking()
            .await;
        assert_eq!(parked.lock().unwrap()[1].len(), MAX_DIVERTED_EVENTS);
        for r in d.all() {
            r.parking().await;
        }
        assert_eq!(parked.lock().unwrap()[2], vec![7]);
        assert!(d.is_empty());
        assert!(d.all().is_empty());
    }

    #[tokio::test]
    async fn a_parked_position_is_its_event_without_the_payload() {
        let parked = Arc::new(Mutex::new(Vec::new()));
        let seen = parked.clone();
        let d = Divert {
            window: Arc::new(ParkWindow::default()),
            park: Arc::new(move |events: Vec<Event>, _| {
                let seen = seen.clone();
                Box::pin(async move { seen.lock().unwrap().extend(events) })
            }),
            max_age: Duration::from_secs(1),
        };
        let mut batches = Diverted::default();
        let failure = Position {
            ack: AckId {
                partition: 3,
                generation: 9,
                offset: 41,
            },
            failure_event: true,
        };
        batches.push(0, &d, failure, Diversion::Failing, Instant::now());
        for r in batches.all() {
            r.parking().await;
        }
        let events = parked.lock().unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert!(e.raw.is_empty(), "a reference needs no payload");
        assert_eq!((e.partition, e.offset), (3, 41));
        assert_eq!(e.ack, failure.ack, "the same acknowledgement completes it");
        assert!(e.failure_event);
        assert!(
            DIVERTED_EVENT_BYTES < std::mem::size_of::<Event>() / 2,
            "a position is less than half an event ({DIVERTED_EVENT_BYTES} bytes)"
        );
    }

    #[tokio::test]
    async fn a_failing_destination_is_diverted_under_pressure_or_inside_its_window() {
        let d = Divert {
            window: Arc::new(ParkWindow::default()),
            park: Arc::new(|_, _| Box::pin(async {})),
            max_age: Duration::from_secs(1),
        };
        let mut now = None;
        let yes = || true;
        let no = || false;
        assert!(!diverts(&d, true, yes, &mut now), "a healthy destination");
        d.window.set_failing(true);
        assert!(!diverts(&d, true, no, &mut now), "failing, no pressure");
        assert!(diverts(&d, true, yes, &mut now), "failing under pressure");
        assert!(!diverts(&d, false, yes, &mut now), "parking by copy");
        d.window.set_failing(false);
        d.window
            .set(Some(tokio::time::Instant::now() + Duration::from_secs(60)));
        assert!(diverts(&d, true, no, &mut now), "inside the window");
        assert!(
            !diverts(&d, false, no, &mut now),
            "by copy, inside the window"
        );
        d.window.set(None);
        assert!(!diverts(&d, true, no, &mut now), "the window closed");
        let budget = Budget {
            max_events: 100,
            max_bytes: 1000,
        };
        assert!(budget.under_pressure(51, 0));
        assert!(budget.under_pressure(0, 251));
        assert!(!budget.under_pressure(50, 250));
    }

    /// A queue half full is crowded: pressure of its own for a suspect destination, whatever
    /// the shared budget holds.
    #[tokio::test]
    async fn a_failing_destination_whose_queue_is_half_full_is_diverted_without_shared_pressure() {
        let (queue, _rx) = tokio::sync::mpsc::channel(4);
        let d = Divert {
            window: Arc::new(ParkWindow::default()),
            park: Arc::new(|_, _| Box::pin(async {})),
            max_age: Duration::from_secs(1),
        };
        d.window.set_failing(true);
        let mut now = None;
        let pressed = || queue_crowded(&queue);
        queue
            .try_send(crate::event::test_event(bytes::Bytes::new(), 0, 0))
            .unwrap();
        assert!(!diverts(&d, true, pressed, &mut now), "a quarter full");
        queue
            .try_send(crate::event::test_event(bytes::Bytes::new(), 0, 1))
            .unwrap();
        assert!(diverts(&d, true, pressed, &mut now), "half full");
        d.window.set_failing(false);
        assert!(!diverts(&d, true, pressed, &mut now), "half full, healthy");
        assert!(crowded(1, 1) && crowded(5_000, 10_000));
        assert!(!crowded(0, 1) && !crowded(4_999, 10_000));
    }

    /// A full queue overflows only where a pause would hold back another lane's events, and
    /// only by reference; a batch holds events of one reason.
    #[tokio::test]
    async fn a_full_queue_overflows_only_in_a_shared_partition_and_by_reference() {
        let (queue, _rx) = tokio::sync::mpsc::channel(2);
        let asked = std::cell::Cell::new(0);
        let shared = |answer: bool| {
            let asked = &asked;
            move || {
                asked.set(asked.get() + 1);
                answer
            }
        };
        queue
            .try_send(crate::event::test_event(bytes::Bytes::new(), 0, 0))
            .unwrap();
        assert!(!overflows(true, &queue, shared(true)), "room left");
        assert_eq!(asked.get(), 0, "sharing is asked only of a full queue");
        queue
            .try_send(crate::event::test_event(bytes::Bytes::new(), 0, 1))
            .unwrap();
        assert!(overflows(true, &queue, shared(true)), "full, shared");
        assert!(!overflows(true, &queue, shared(false)), "full, alone");
        assert!(!overflows(false, &queue, shared(true)), "parking by copy");

        let reasons = Arc::new(Mutex::new(Vec::new()));
        let seen = reasons.clone();
        let d = Divert {
            window: Arc::new(ParkWindow::default()),
            park: Arc::new(move |_, reason| {
                let seen = seen.clone();
                Box::pin(async move { seen.lock().unwrap().push(reason) })
            }),
            max_age: Duration::from_secs(1),
        };
        let mut batches = Diverted::default();
        let t = Instant::now();
        assert!(batches
            .push(0, &d, position(0, 1), Diversion::Overflow, t)
            .is_none());
        assert!(batches
            .push(0, &d, position(0, 2), Diversion::Overflow, t)
            .is_none());
        // Another reason parks what was collected and starts a batch of its own.
        let overflow = batches
            .push(0, &d, position(0, 3), Diversion::Failing, t)
            .expect("the overflow batch is given back");
        assert_eq!(
            (overflow.reason, overflow.positions.len()),
            (Diversion::Overflow, 2)
        );
        overflow.parking().await;
        batches.push(1, &d, position(0, 4), Diversion::Failing, t);
        for r in batches.all() {
            assert_eq!(r.positions.len(), 1);
            r.parking().await;
        }
        assert_eq!(
            *reasons.lock().unwrap(),
            vec![Diversion::Overflow, Diversion::Failing, Diversion::Failing]
        );
    }
}
