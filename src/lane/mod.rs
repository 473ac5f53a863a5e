//! A lane per destination: its own queue, batches, concurrency limit and retry state, so one
//! destination's trouble stays its own.
//!
//! Events come in on a bounded queue (a full queue makes the source wait: backpressure);
//! batches go out through the destination's sink, at most `max_in_flight` at a time; each
//! batch ends delivered, or reported in a failure event, and only then are its events
//! acknowledged to the source.

mod batch;
mod circuit;
mod health;
mod retry;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use batch::Batcher;
pub use circuit::{Circuit, Decision, State as CircuitState, Transition};
pub use health::DestinationHealth;
pub use retry::{RetryPolicy, RetrySchedule, MAX_RETRY_AFTER};

use crate::config::{DeliveryConfig, DestinationConfig};
use crate::event::Event;
use crate::failures::FailureReporter;
use crate::metrics::{DestinationStats, Metrics};
use crate::parking::Parker;
use crate::settle::{nested_parts, Settler};
use crate::sinks::{DeliveryError, ErrorKind, Outcome, Sink};
use crate::source::Acker;

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
}

/// The sending side of a running lane.
pub struct Lane {
    /// The lane's queue.
    pub queue: mpsc::Sender<Event>,
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
    });
    let span = tracing::info_span!("lane", project = %shared.project, destination = %shared.destination_id);
    let task = tokio::spawn(supervise(shared, rx).instrument(span));
    Lane { queue, task }
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

async fn run(shared: Arc<LaneShared>, rx: &mut mpsc::Receiver<Event>) {
    let delivery = &shared.delivery;
    let by_partition = shared.sink.batch_by_partition();
    // One batcher, or one per partition for sinks whose batches must not mix partitions.
    let mut batchers: HashMap<Option<i32>, Batcher> = HashMap::new();
    let semaphore = Arc::new(Semaphore::new(
        delivery.max_in_flight.clamp(1, MAX_QUEUE_CAPACITY),
    ));
    let mut tasks = JoinSet::new();
    // One timer for the oldest open batch, moved only when that deadline changes (a fresh
    // timer per received event cost a timer-wheel insert and removal each time).
    let mut timer = std::pin::pin!(tokio::time::sleep(delivery.batch_timeout));
    let mut armed: Option<Instant> = None;
    // Events are taken from the queue as many at a time as are waiting.
    let mut received = Vec::with_capacity(RECEIVE_CHUNK);
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
    let linger = (delivery.batch_timeout / 10).min(MAX_LINGER);
    let mut linger_timer = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    let mut lingering_since: Option<Instant> = None;
    let mut arrived_since: Option<Instant> = None;
    macro_rules! take {
        ($event:expr, $at:expr) => {{
            let event: Event = $event;
            let key = by_partition.then_some(event.partition);
            let batcher = batchers.entry(key).or_insert_with(|| {
                Batcher::new(delivery.batch_max_events, delivery.batch_max_bytes)
            });
            if let Some(batch) = batcher.push(event, $at) {
                dispatch(&shared, batch, &semaphore, &mut tasks).await;
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
                        let batch = batcher.take();
                        dispatch(&shared, batch, &semaphore, &mut tasks).await;
                    }
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    for batcher in batchers.values_mut() {
        if !batcher.is_empty() {
            let batch = batcher.take();
            dispatch(&shared, batch, &semaphore, &mut tasks).await;
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Waits for a free request slot, then delivers the batch in its own task.
async fn dispatch(
    shared: &Arc<LaneShared>,
    batch: Vec<Event>,
    semaphore: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
) {
    // Reap finished deliveries so the set does not grow with the lane's lifetime.
    while tasks.try_join_next().is_some() {}
    let permit = semaphore
        .clone()
        .acquire_owned()
        .await
        .expect("the lane's semaphore is never closed");
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
            contained(&shared, &batch).await;
            shared
                .context
                .metrics
                .release_events(batch.len(), batch.iter().map(|e| e.raw.len()).sum());
            drop(permit);
        }
        .instrument(span),
    );
}

/// Delivers one batch, containing a panic to it: a bug that a batch's data or a sink's answer
/// triggers must not take the other lanes, or the process, with it. The batch's events are
/// then reported in a failure event (kind `internal`, replayable), so their offsets complete.
async fn contained(shared: &LaneShared, events: &[Event]) {
    use futures::FutureExt as _;
    let started = Utc::now();
    let attempt = std::panic::AssertUnwindSafe(deliver(shared, events)).catch_unwind();
    if let Err(panic) = attempt.await {
        let what = panic_text(panic.as_ref());
        shared.context.metrics.lane_panics.inc();
        tracing::error!(events = events.len(), panic = %what, "delivering a batch failed inside courier; reporting its events");
        let error = DeliveryError {
            kind: ErrorKind::Internal,
            http_status: None,
            message: "courier failed while delivering these events (an internal error, logged); they can be replayed".into(),
        };
        settler(shared, started).fail(events, &error, 0).await;
    }
}

/// The message of a caught panic, when it has one.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Delivers one batch, as the destination's circuit allows: attempts with in-line retries
/// until delivered, rejected, out of budget or the circuit opens. Delivered events complete;
/// rejected data is reported in a failure event; what could not be delivered is parked in
/// the retry topic ([`crate::settle`]). Only then do the events complete. When the sink
/// reports parts of the batch separately, each part is settled on its own and only the rest
/// is retried.
async fn deliver(shared: &LaneShared, events: &[Event]) {
    let settler = settler(shared, Utc::now());
    let decision = shared.health.decide().await;
    match decision {
        Decision::Park => {
            let error = shared
                .health
                .last_error()
                .unwrap_or_else(|| circuit_error(shared));
            return settler.park(events, &error).await;
        }
        Decision::Report => {
            return settler.fail(events, &paused_error(shared), 0).await;
        }
        Decision::Attempt | Decision::Probe => {}
    }
    let probe = decision == Decision::Probe;
    let policy = RetryPolicy {
        initial: shared.delivery.retry_initial_backoff,
        max: shared.delivery.retry_max_backoff,
        budget: shared.delivery.retry_max_elapsed,
    };
    let mut schedule = policy.start(Instant::now());
    let mut attempts = 0;
    let mut remaining: std::borrow::Cow<'_, [Event]> = std::borrow::Cow::Borrowed(events);
    loop {
        let encoded = match shared.sink.encode(&remaining) {
            Ok(b) => b,
            Err(error) => return settler.fail(&remaining, &error, attempts).await,
        };
        let _body = HeldBody::new(&shared.context.metrics, encoded.body.len());
        // Attempts of this encoded batch until it is settled, out of budget, or the circuit
        // says to stop trying in line.
        let outcome = loop {
            attempts += 1;
            shared.stats.requests.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let outcome = shared.sink.send(&remaining, &encoded).await;
            shared
                .context
                .metrics
                .request_duration
                .with_label_values(&[shared.destination_type])
                .observe(started.elapsed().as_secs_f64());
            count_request(shared, &outcome);
            shared.health.record(&outcome).await;
            let Outcome::Retry { error, retry_after } = outcome else {
                break outcome;
            };
            if probe || shared.health.is_open() {
                break Outcome::Retry { error, retry_after };
            }
            match schedule.next_delay(retry_after, Instant::now()) {
                Some(delay) => {
                    count_retry(shared);
                    tracing::info!(attempt = attempts, retry_in = ?delay, error = %error, "delivery failed; will retry");
                    if !wait(shared, delay).await {
                        return;
                    }
                }
                None => break Outcome::Retry { error, retry_after },
            }
        };
        let parts = match outcome {
            Outcome::Partial(parts) if covers_exactly(&parts, remaining.len()) => parts,
            Outcome::Partial(parts) => {
                tracing::error!(?parts, events = remaining.len(), "sink reported parts that do not cover the batch exactly; retrying the whole batch");
                let error = DeliveryError {
                    kind: ErrorKind::Encode,
                    http_status: None,
                    message: "the sink reported an invalid split of the batch".into(),
                };
                vec![(
                    0..remaining.len(),
                    Outcome::Retry {
                        error,
                        retry_after: None,
                    },
                )]
            }
            Outcome::Retry { error, .. } => {
                // Out of in-line budget, or the circuit opened: park.
                return settler.park(&remaining, &error).await;
            }
            whole => vec![(0..remaining.len(), whole)],
        };
        let mut retry = Vec::new();
        let mut retry_after = None;
        let mut retry_error = None;
        for (range, outcome) in parts {
            let part = &remaining[range];
            match outcome {
                Outcome::Retry {
                    error,
                    retry_after: after,
                } => {
                    retry.extend_from_slice(part);
                    retry_after = retry_after.max(after);
                    retry_error = Some(error);
                }
                Outcome::Partial(_) => {
                    // Sinks never nest parts; retrying is the safe reading.
                    retry.extend_from_slice(part);
                    retry_error.get_or_insert_with(nested_parts);
                }
                settled => settler.settle(part, settled, attempts).await,
            }
        }
        let Some(error) = retry_error else { return };
        let delay = if probe || shared.health.is_open() {
            None
        } else {
            schedule.next_delay(retry_after, Instant::now())
        };
        match delay {
            Some(delay) => {
                count_retry(shared);
                tracing::info!(attempt = attempts, events = retry.len(), retry_in = ?delay, error = %error, "part of the batch failed; will retry it");
                if !wait(shared, delay).await {
                    return;
                }
                remaining = std::borrow::Cow::Owned(retry);
            }
            None => return settler.park(&retry, &error).await,
        }
    }
}

/// How the lane settles its batches: first attempts, parked for scheduled attempt 1.
fn settler(shared: &LaneShared, first_attempt: chrono::DateTime<Utc>) -> Settler<'_> {
    let context = &shared.context;
    Settler {
        project: &shared.project,
        destination: &shared.destination_id,
        destination_type: shared.destination_type,
        stats: Some(&shared.stats),
        schedule: &shared.delivery.retry_schedule,
        attempt: 0,
        first_attempt,
        source_topic: &context.source_topic,
        acker: &context.acker,
        failures: &context.failures,
        parker: &context.parker,
        metrics: &context.metrics,
    }
}

fn circuit_error(shared: &LaneShared) -> DeliveryError {
    DeliveryError {
        kind: ErrorKind::CircuitOpen,
        http_status: None,
        message: format!(
            "destination {} is failing (circuit open); the batch was parked without an attempt",
            shared.destination_id
        ),
    }
}

fn paused_error(shared: &LaneShared) -> DeliveryError {
    DeliveryError {
        kind: ErrorKind::Paused,
        http_status: None,
        message: format!(
            "destination {} was paused after failing for {}; fix it and replay these events",
            shared.destination_id,
            humantime::format_duration(shared.delivery.pause_after)
        ),
    }
}

/// Whether `parts` cover `0..len` exactly once, in any order.
fn covers_exactly(parts: &[(std::ops::Range<usize>, Outcome)], len: usize) -> bool {
    let mut ranges: Vec<_> = parts.iter().map(|(r, _)| r.clone()).collect();
    ranges.sort_by_key(|r| r.start);
    let mut next = 0;
    for r in ranges {
        if r.start != next || r.end <= r.start {
            return false;
        }
        next = r.end;
    }
    next == len
}

/// A request body counted in the global in-flight budget while it exists: it is a second
/// copy of its events (a destination that hangs holds it for `request_timeout`), so reading
/// pauses for it as for the events themselves.
struct HeldBody<'a> {
    metrics: &'a Metrics,
    bytes: usize,
}

impl<'a> HeldBody<'a> {
    fn new(metrics: &'a Metrics, bytes: usize) -> Self {
        metrics.hold_bytes(bytes);
        Self { metrics, bytes }
    }
}

impl Drop for HeldBody<'_> {
    fn drop(&mut self) {
        self.metrics.release_bytes(self.bytes);
    }
}

/// Sleeps before a retry; false when the process abandoned the work meanwhile.
async fn wait(shared: &LaneShared, delay: std::time::Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = shared.context.abandon.cancelled() => false,
    }
}

fn count_request(shared: &LaneShared, outcome: &Outcome) {
    let label = match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Retry { .. } => "retry",
        Outcome::Rejected { .. } => "rejected",
        Outcome::Partial(_) => "partial",
    };
    shared
        .context
        .metrics
        .requests
        .with_label_values(&[shared.destination_type, label])
        .inc();
}

fn count_retry(shared: &LaneShared) {
    shared
        .context
        .metrics
        .retries
        .with_label_values(&[shared.destination_type])
        .inc();
}

#[cfg(test)]
mod tests;
