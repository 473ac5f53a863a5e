//! A lane per destination: its own queue, batches, concurrency limit and retry state, so one
//! destination's trouble stays its own.
//!
//! Events come in on a bounded queue (a full queue makes the source wait: backpressure);
//! batches go out through the destination's sink, at most `max_in_flight` at a time; each
//! batch ends delivered, or reported in a failure event, and only then are its events
//! acknowledged to the source.
//!
//! This module runs the queue and forms the batches; [`deliver`] attempts each batch as the
//! circuit allows and settles it ([`crate::settle`]).

mod batch;
mod circuit;
mod deliver;
mod health;
pub(crate) mod rate;
mod retry;
mod slots;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use batch::Batcher;
pub use circuit::{Circuit, Decision, State as CircuitState, Transition};
pub use deliver::{circuit_open, not_answering, paused, rate_limited};
pub use health::DestinationHealth;
pub use retry::{RetryPolicy, RetrySchedule, MAX_RETRY_AFTER};

use crate::config::{DeliveryConfig, DestinationConfig};
use crate::event::Event;
use crate::failures::FailureReporter;
use crate::metrics::{DestinationStats, Metrics};
use crate::parking::Parker;
use crate::sinks::Sink;
use crate::source::divert::{Budget, Divert, ParkBatch, MIN_DIVERT_AGE};
use crate::source::Acker;
use courier_core::daily_cap::{Admit, DailyCap, DailyCount};
use courier_core::shape::{Sample, Shaper};
use slots::{acquire_slot, Slot, Slots};

/// What every lane shares with the rest of the pipeline.
#[derive(Clone)]
pub struct LaneContext {
    /// Where completions go.
    pub acker: Acker,
    /// Where final failures are recorded.
    pub failures: Arc<FailureReporter>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Where batches wait when the in-line budget is spent or the circuit is open.
    pub parker: Arc<Parker>,
    /// The topic events are read from (recorded with parked events).
    pub source_topic: String,
    /// Cancelled when the process gives up draining: retries stop, nothing more completes.
    pub abandon: CancellationToken,
    /// The in-flight budget whose spill threshold makes a failing destination whose request
    /// slots are all busy park its next batches at once instead of holding them
    /// ([`dispatch`]); `None` never spills (replays).
    pub spill_budget: Option<Budget>,
    /// Whether destinations' `daily_cap` applies: live traffic only. A replay delivers what an
    /// operator or customer asked for, capped or not.
    pub daily_caps: bool,
}

/// The sending side of a running lane.
pub struct Lane {
    /// The lane's queue.
    pub queue: mpsc::Sender<Event>,
    /// How the source parks the destination's events without the lane while its circuit is
    /// open; `None` when the lane must see every event ([`divertible`]).
    pub divert: Option<Divert>,
    /// Ends when the queue is closed and every batch has finished.
    pub task: JoinHandle<()>,
}

struct LaneShared {
    project: String,
    destination_id: String,
    destination_type: &'static str,
    sink: Arc<dyn Sink>,
    delivery: DeliveryConfig,
    context: LaneContext,
    stats: Arc<DestinationStats>,
    /// Circuit breaker and last error, shared with the retry worker.
    health: Arc<DestinationHealth>,
    /// Redaction and field selection applied before each encoding ([`crate::shaping`]).
    shape: Option<Arc<Shaper>>,
    /// Which events of each level are kept ([`sampled_out`]).
    sample: Option<Sample>,
    /// The day's count of the destination's `daily_cap` ([`capped`]); only the lane's own
    /// task takes it.
    cap: Option<(DailyCap, std::sync::Mutex<DailyCount>)>,
}

/// Starts the lane of `destination`.
pub fn spawn(
    destination: &DestinationConfig,
    sink: Arc<dyn Sink>,
    health: Arc<DestinationHealth>,
    context: LaneContext,
) -> Lane {
    // Validation bounds both settings far below tokio's limits; the clamps keep a setting that
    // slipped past it from panicking here, in the caller's task.
    let (queue, rx) = mpsc::channel(
        destination
            .delivery
            .queue_max_events
            .clamp(1, MAX_QUEUE_CAPACITY),
    );
    let cap = destination
        .daily_cap
        .filter(|_| context.daily_caps)
        .map(|cap| (cap, std::sync::Mutex::new(DailyCount::new(cap))));
    let shared = Arc::new(LaneShared {
        project: destination.project.clone(),
        destination_id: destination.id.clone(),
        destination_type: destination.sink.type_name(),
        stats: context
            .metrics
            .destination(&destination.project, &destination.id),
        sink,
        delivery: destination.delivery.clone(),
        context,
        health,
        shape: destination.shape.clone(),
        sample: destination.sample,
        cap,
    });
    // At 0 from the start, so that a rate (and the overflow alert) sees the series before its
    // first overflow.
    shared
        .context
        .metrics
        .overflow_events
        .with_label_values(&[shared.destination_type]);
    let span = tracing::info_span!("lane", project = %shared.project, destination = %shared.destination_id);
    let divert = divertible(&shared).then(|| {
        let park_shared = shared.clone();
        let park_span = span.clone();
        let park: ParkBatch = Arc::new(move |events: Vec<Event>, reason| {
            let shared = park_shared.clone();
            Box::pin(
                async move { deliver::park_diverted(&shared, &events, reason).await }
                    .instrument(park_span.clone()),
            )
        });
        Divert {
            window: shared.health.window().clone(),
            park,
            max_age: shared.delivery.batch_timeout.max(MIN_DIVERT_AGE),
        }
    });
    let task = tokio::spawn(supervise(shared, rx).instrument(span));
    Lane {
        queue,
        divert,
        task,
    }
}

/// Whether the source may park the destination's events without the lane while its circuit
/// is open: only when the lane would park them untouched — no `sample` or `daily_cap` to
/// apply first, and a retry schedule with a first step (without one, a parked batch is
/// reported at once, and a report needs the events' payloads).
fn divertible(shared: &LaneShared) -> bool {
    shared.sample.is_none()
        && shared.cap.is_none()
        && crate::parking::scheduled_delay(&shared.delivery.retry_schedule, 1).is_some()
}

/// Largest queue or request-slot count a lane creates (tokio's semaphores hold fewer than
/// 2^61 permits; validation's own bounds are far lower).
pub const MAX_QUEUE_CAPACITY: usize = 1 << 24;

/// Runs the lane, restarting it if it panics: the queue (and what waits in it) survives, and
/// other lanes never notice. Events the failed run held in open batches stay unacknowledged,
/// so their partition's commit point waits for them until they are read again (after a
/// rebalance or restart) — held back, never skipped.
async fn supervise(shared: Arc<LaneShared>, mut rx: mpsc::Receiver<Event>) {
    use futures::FutureExt as _;
    loop {
        let run = std::panic::AssertUnwindSafe(run(shared.clone(), &mut rx)).catch_unwind();
        match run.await {
            Ok(()) => return,
            Err(panic) => {
                shared.context.metrics.lane_panics.inc();
                tracing::error!(panic = %panic_text(panic.as_ref()), "the lane failed inside courier; restarting it");
            }
        }
    }
}

/// Most events taken from a lane's queue at once.
const RECEIVE_CHUNK: usize = 256;

/// Longest a lane lingers between looks at its queue.
const MAX_LINGER: Duration = Duration::from_millis(50);

/// How long a busy lane lingers: one whose last batch closed full, not by age.
const BUSY_LINGER: Duration = Duration::from_millis(1);

async fn run(shared: Arc<LaneShared>, rx: &mut mpsc::Receiver<Event>) {
    let delivery = &shared.delivery;
    let by_partition = shared.sink.batch_by_partition();
    // One batcher, or one per partition for sinks whose batches must not mix partitions.
    let mut batchers: HashMap<Option<i32>, Batcher> = HashMap::new();
    let slots = Slots {
        all: Arc::new(Semaphore::new(
            delivery.max_in_flight.clamp(1, MAX_QUEUE_CAPACITY),
        )),
        cautious: Arc::new(Semaphore::new(1)),
    };
    let mut tasks = JoinSet::new();
    // One timer for the oldest open batch, moved only when that deadline changes (a fresh
    // timer per received event cost a timer-wheel insert and removal each time).
    let mut timer = std::pin::pin!(tokio::time::sleep(delivery.batch_timeout));
    let mut armed: Option<Instant> = None;
    // Events are taken from the queue as many at a time as are waiting (up to RECEIVE_CHUNK).
    // The buffer grows only as far as a lane's traffic needs: reserved up front it cost 18 KB
    // per destination, 184 MB of the 684 MB peak with 10,000 destinations.
    let mut received = Vec::new();
    // The first batch waits a random 50–100% of `batch_timeout`. Destinations that start
    // together and fill their batches by time would otherwise all flush at the same moments,
    // every `batch_timeout`, for good: a burst of requests, and of memory for their bodies.
    let mut timeout = delivery.batch_timeout.mul_f64(0.5 + 0.5 * fastrand::f64());
    // After taking what was queued, a lane lingers a tenth of `batch_timeout` (at most 50 ms)
    // before it looks at its queue again: events sent meanwhile wait there without waking it
    // one by one (a task wake-up per event was the lane's main cost). A batch opened from
    // events received after lingering counts its age from the start of the lingering, so no
    // event waits longer than `batch_timeout`; a batch that is due takes what is queued first.
    // A full chunk means a busy lane: it does not linger.
    //
    // A lane whose last batch closed full (by count or bytes) lingers only BUSY_LINGER. Its
    // queue fills faster than a tenth of `batch_timeout`: lingering 50 ms, it sat idle with a
    // full queue while the source paused its partitions, and one busy destination at the
    // defaults ran at most one queue (10,000 events) per 50 ms, 200,000 events/s. A
    // millisecond still gathers a chunk at that rate instead of waking per event.
    let idle_linger = (delivery.batch_timeout / 10).min(MAX_LINGER);
    let mut linger = idle_linger;
    let mut linger_timer = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    let mut lingering_since: Option<Instant> = None;
    let mut arrived_since: Option<Instant> = None;
    macro_rules! take {
        ($event:expr, $at:expr) => {{
            let event: Event = $event;
            if sampled_out(&shared, &event) || capped(&shared, &event, &mut tasks) {
                continue;
            }
            let key = by_partition.then_some(event.partition);
            let batcher = batchers.entry(key).or_insert_with(|| {
                Batcher::new(delivery.batch_max_events, delivery.batch_max_bytes)
            });
            if let Some(batch) = batcher.push(event, $at) {
                linger = idle_linger.min(BUSY_LINGER);
                dispatch(&shared, batch, &slots, rx, &mut tasks).await;
            }
        }};
    }
    loop {
        let deadline = batchers
            .values()
            .filter_map(Batcher::opened)
            .min()
            .map(|t| crate::clock::deadline(t, timeout));
        if deadline != armed {
            if let Some(d) = deadline {
                timer.as_mut().reset(d);
            }
            armed = deadline;
        }
        tokio::select! {
            n = rx.recv_many(&mut received, RECEIVE_CHUNK), if lingering_since.is_none() => {
                if n == 0 {
                    break;
                }
                let now = Instant::now();
                let at = arrived_since.take().unwrap_or(now);
                for event in received.drain(..) {
                    take!(event, at);
                }
                if n < RECEIVE_CHUNK && !linger.is_zero() {
                    lingering_since = Some(now);
                    linger_timer.as_mut().reset(now + linger);
                }
            }
            () = &mut linger_timer, if lingering_since.is_some() => {
                // What is queued now may have waited since the lingering began; what comes
                // later wakes the lane when it arrives.
                let since = lingering_since.take();
                arrived_since = if rx.is_empty() { None } else { since };
            }
            () = &mut timer, if armed.is_some() => {
                armed = None;
                let now = Instant::now();
                let at = lingering_since.or(arrived_since).unwrap_or(now);
                while let Ok(event) = rx.try_recv() {
                    take!(event, at);
                }
                let expired = timeout;
                timeout = delivery.batch_timeout;
                for batcher in batchers.values_mut() {
                    if batcher
                        .opened()
                        .is_some_and(|t| crate::clock::deadline(t, expired) <= now)
                    {
                        linger = idle_linger;
                        let batch = batcher.take();
                        dispatch(&shared, batch, &slots, rx, &mut tasks).await;
                    }
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    for batcher in batchers.values_mut() {
        if !batcher.is_empty() {
            let batch = batcher.take();
            dispatch(&shared, batch, &slots, rx, &mut tasks).await;
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Whether the destination's `sample` leaves `event` out; if so it completes here, unsent
/// (the destination asked for it), and is counted. Taken before batching, so a sampled
/// destination's batches hold only what it sends, and a replay of the same events keeps the
/// same ones (the choice hashes the event's id).
fn sampled_out(shared: &LaneShared, event: &Event) -> bool {
    let Some(sample) = &shared.sample else {
        return false;
    };
    let topic = &shared.context.source_topic;
    if sample.keeps(&event.raw, || {
        format!("{topic}/{}/{}", event.partition, event.offset)
    }) {
        return false;
    }
    skip(shared, event, &shared.context.metrics.sampled_out_events);
    true
}

/// Completes `event` unsent — the customer chose to lose it (sampling, a daily cap) — gives
/// it back to the in-flight budget and counts it in `counter`.
fn skip(shared: &LaneShared, event: &Event, counter: &prometheus::IntCounterVec) {
    counter.with_label_values(&[shared.destination_type]).inc();
    shared.context.acker.complete([event.ack]);
    shared.context.metrics.release_events(1, event.raw.len());
}

/// Whether the destination's `daily_cap` is reached for today (UTC, by the wall clock) and
/// `event` is skipped; if so it completes here, unsent (the customer chose to lose what is over
/// the cap), and is counted. The first event over the cap each day writes the destination's
/// `daily_cap_reached` state event. Taken after sampling: what a sample leaves out is not sent,
/// so it does not count.
fn capped(shared: &Arc<LaneShared>, event: &Event, tasks: &mut JoinSet<()>) -> bool {
    let Some((cap, count)) = &shared.cap else {
        return false;
    };
    let today = chrono::Utc::now().date_naive();
    let admit = count
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .admit(today, event.raw.len());
    match admit {
        Admit::Send => return false,
        Admit::Skip => {}
        Admit::Reached => {
            tracing::warn!(project = %shared.project, destination = %shared.destination_id,
                "destination reached its daily cap; its events are skipped until the next UTC day");
            let (shared, cap) = (shared.clone(), *cap);
            tasks.spawn(
                async move {
                    let written = shared
                        .context
                        .failures
                        .daily_cap_reached(
                            &shared.project,
                            &shared.destination_id,
                            shared.destination_type,
                            cap,
                            today,
                        )
                        .await;
                    if let Err(abandoned) = written {
                        tracing::warn!(%abandoned, "daily cap state event not written");
                    }
                }
                .in_current_span(),
            );
        }
    }
    skip(shared, event, &shared.context.metrics.capped_events);
    true
}

/// Waits for a request slot, then delivers the batch in its own task (or spills it); `queue`
/// is the lane's own, whose crowding may spill the batch ([`acquire_slot`]).
async fn dispatch(
    shared: &Arc<LaneShared>,
    batch: Vec<Event>,
    slots: &Slots,
    queue: &mpsc::Receiver<Event>,
    tasks: &mut JoinSet<()>,
) {
    // Reap finished deliveries so the set does not grow with the lane's lifetime.
    while tasks.try_join_next().is_some() {}
    let crowded = || crate::source::divert::crowded(queue.len(), queue.max_capacity());
    match acquire_slot(shared, slots, crowded).await {
        Some(slot) => deliver_in_task(shared, batch, slot, tasks),
        None => spill(shared, batch, tasks),
    }
}

/// Parks `batch` at once, in its own task.
fn spill(shared: &Arc<LaneShared>, batch: Vec<Event>, tasks: &mut JoinSet<()>) {
    let shared = shared.clone();
    shared
        .context
        .metrics
        .spilled_batches
        .with_label_values(&[shared.destination_type])
        .inc();
    tasks.spawn(
        async move {
            deliver::spill(&shared, &batch).await;
            shared
                .context
                .metrics
                .release_events(batch.len(), batch.iter().map(|e| e.raw.len()).sum());
        }
        .in_current_span(),
    );
}

/// Delivers `batch` in its own task, holding `slot` until it is done.
fn deliver_in_task(
    shared: &Arc<LaneShared>,
    mut batch: Vec<Event>,
    slot: Slot,
    tasks: &mut JoinSet<()>,
) {
    let shared = shared.clone();
    shared
        .context
        .metrics
        .batch_events
        .with_label_values(&[shared.destination_type])
        .observe(batch.len() as f64);
    let span = tracing::debug_span!(
        "batch",
        events = batch.len(),
        partition = batch[0].partition,
        first_offset = batch[0].offset
    );
    tasks.spawn(
        async move {
            deliver::contained(&shared, &mut batch).await;
            shared
                .context
                .metrics
                .release_events(batch.len(), batch.iter().map(|e| e.raw.len()).sum());
            drop(slot);
        }
        .instrument(span),
    );
}

/// The message of a caught panic, when it has one.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
pub(crate) mod tests;
