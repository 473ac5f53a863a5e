//! Delivering one batch: attempts with in-line retries, as the destination's circuit allows,
//! until the batch is delivered, rejected, out of its in-line budget or the circuit opens —
//! then settled ([`crate::settle`]). A panic while delivering is contained to its batch.

use std::sync::atomic::Ordering;

use chrono::Utc;
use tokio::time::Instant;

use super::{panic_text, Decision, LaneShared, RetryPolicy};
use crate::event::Event;
use crate::settle::{nested_parts, Settler};
use crate::sinks::{DeliveryError, EncodedBatch, ErrorKind, Outcome};
use crate::source::divert::Diversion;

/// Delivers one batch, containing a panic to it: a bug that a batch's data or a sink's answer
/// triggers must not take the other lanes, or the process, with it. The batch's events are
/// then reported in a failure event (kind `internal`, replayable), so their offsets complete.
pub(super) async fn contained(shared: &LaneShared, events: &mut [Event]) {
    use futures::FutureExt as _;
    let started = Utc::now();
    let attempt = std::panic::AssertUnwindSafe(deliver(shared, &mut *events)).catch_unwind();
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

/// Delivers one batch, as the destination's circuit allows: attempts with in-line retries
/// until delivered, rejected, out of budget or the circuit opens. Delivered events complete;
/// rejected data is reported in a failure event; what could not be delivered is parked in
/// the retry topic ([`crate::settle`]). Only then do the events complete. When the sink
/// reports parts of the batch separately, each part is settled on its own and only the rest
/// is retried.
async fn deliver(shared: &LaneShared, events: &mut [Event]) {
    let settler = settler(shared, Utc::now());
    let decision = shared.health.decide().await;
    match decision {
        Decision::Park => {
            let error = park_error(shared);
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
    let batch_started = Instant::now();
    let mut schedule = policy.start(batch_started);
    let mut attempts = 0;
    // What is left to deliver once it is no longer the whole batch (events the sink refused,
    // parts to retry); `None` while it is `events`.
    let mut rest: Option<Vec<Event>> = None;
    loop {
        let Some(Encoded {
            batch: encoded,
            shaped,
            kept,
        }) = encode(
            shared,
            &settler,
            rest.as_deref().unwrap_or(events),
            attempts,
        )
        .await
        else {
            return;
        };
        if kept.is_some() {
            rest = kept;
        }
        // A body that holds the whole batch byte for byte becomes its only copy: the events
        // read their bytes from it and the buffers they were read into are freed now, not
        // when the destination answers. Otherwise the body is a second copy of its events (a
        // destination that hangs holds it for `request_timeout`), and reading pauses for it
        // as for the events themselves.
        let one_copy = rest.is_none() && shaped.is_none() && encoded.share_body(events);
        let remaining: &[Event] = rest.as_deref().unwrap_or(events);
        let _body = (!one_copy).then(|| shared.context.metrics.held_bytes(encoded.body.len()));
        // A shaped batch is one more copy of its events, held as long as its body.
        let _shaped = shaped.as_ref().map(|events| {
            let bytes = events.iter().map(|e| e.raw.len()).sum();
            shared.context.metrics.held_bytes(bytes)
        });
        let sending = shaped.as_deref().unwrap_or(remaining);
        // Attempts of this encoded batch until it is settled, out of budget, or the circuit
        // says to stop trying in line.
        let outcome = loop {
            // The destination's rate limit: wait for its buckets, within what is left of
            // the batch's in-line budget; past it, the batch is parked.
            if let Some(rate) = shared.health.rate() {
                let budget = policy.budget.saturating_sub(batch_started.elapsed());
                let acquired = tokio::select! {
                    r = rate.acquire(sending.len(), budget, tokio::time::sleep) => r,
                    () = shared.context.abandon.cancelled() => return,
                };
                if let Err(limited) = acquired {
                    shared
                        .context
                        .metrics
                        .rate_limited_batches
                        .with_label_values(&[shared.destination_type])
                        .inc();
                    return settler
                        .park(remaining, &rate_limited_error(shared, limited))
                        .await;
                }
            }
            attempts += 1;
            shared.stats.requests.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let out = shared.health.window().sending(started);
            let outcome = shared.sink.send(sending, &encoded).await;
            drop(out);
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
            // Out of in-line retries: a probe, an open circuit — or a failing destination under
            // budget pressure, whose batch waiting out its retries here would hold the shared
            // in-flight budget, and so every other tenant's reading (see `super::spills`).
            if probe || shared.health.is_open() || super::slots::spills(shared) {
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
                return settler.park(remaining, &error).await;
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
                rest = Some(retry);
            }
            None => return settler.park(&retry, &error).await,
        }
    }
}

/// A batch encoded for its destination, with what encoding changed about it.
struct Encoded {
    batch: EncodedBatch,
    /// The events as the destination receives them, when it has redaction rules.
    shaped: Option<Vec<Event>>,
    /// The events still to deliver, when the sink refused some (each reported already).
    kept: Option<Vec<Event>>,
}

/// Shapes and encodes `remaining`. Events the sink cannot encode (a body template failing on
/// their data) are reported one by one and the batch goes on with the others; `None` when
/// nothing is left to send (all reported).
async fn encode(
    shared: &LaneShared,
    settler: &Settler<'_>,
    remaining: &[Event],
    attempts: u32,
) -> Option<Encoded> {
    // What the destination receives, when it has redaction rules (`remaining` itself
    // otherwise); `remaining` is what is settled, parked and replayed.
    let shaped = match crate::shaping::shaped(shared.shape.as_deref(), remaining) {
        Ok(s) => s,
        Err(error) => {
            settler.fail(remaining, &error, attempts).await;
            return None;
        }
    };
    let (batch, refused) = match shared
        .sink
        .encode_checked(shaped.as_deref().unwrap_or(remaining))
    {
        Ok(encoded) => encoded,
        Err(error) => {
            settler.fail(remaining, &error, attempts).await;
            return None;
        }
    };
    if refused.is_empty() {
        return Some(Encoded {
            batch,
            shaped,
            kept: None,
        });
    }
    let mut kept = Vec::with_capacity(remaining.len());
    let mut kept_shaped = Vec::new();
    let mut refused = refused.into_iter().peekable();
    for (i, event) in remaining.iter().enumerate() {
        match refused.next_if(|(r, _)| *r == i) {
            Some((_, error)) => {
                settler
                    .fail(std::slice::from_ref(event), &error, attempts)
                    .await;
            }
            None => {
                kept.push(event.clone());
                if let Some(s) = &shaped {
                    kept_shaped.push(s[i].clone());
                }
            }
        }
    }
    if kept.is_empty() {
        return None;
    }
    Some(Encoded {
        batch,
        shaped: shaped.map(|_| kept_shaped),
        kept: Some(kept),
    })
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

/// Parks a batch without an attempt because its failing destination's request slots are all
/// taken while the in-flight budget is under pressure ([`super::dispatch`]).
pub(super) async fn spill(shared: &LaneShared, events: &[Event]) {
    let error = park_error(shared);
    settler(shared, Utc::now()).park(events, &error).await;
}

/// Parks, by reference, a batch the source collected around the lane
/// ([`crate::source::divert`]): while the circuit was open (what [`deliver`] does with a
/// batch when told to park), while the destination was suspect under pressure, or as the
/// overflow of a full queue in a partition other destinations share.
pub(super) async fn park_diverted(shared: &LaneShared, events: &[Event], reason: Diversion) {
    let metrics = &shared.context.metrics;
    let (counter, error) = match reason {
        Diversion::Failing => (&metrics.diverted_events, park_error(shared)),
        Diversion::Overflow => (&metrics.overflow_events, overflow_error(shared)),
    };
    counter
        .with_label_values(&[shared.destination_type])
        .inc_by(events.len() as u64);
    let now = Utc::now();
    if reason == Diversion::Overflow {
        // The console shows the destination as slow while this is recent.
        shared
            .stats
            .add_overflowed(events.len() as u64, now.timestamp_millis());
    }
    settler(shared, now).park_by_reference(events, &error).await;
}

/// The error an overflow carries until its first attempt: nothing failed; the destination's
/// queue was full.
fn overflow_error(shared: &LaneShared) -> DeliveryError {
    DeliveryError {
        kind: ErrorKind::Overflow,
        http_status: None,
        message: format!(
            "destination {} could not keep up: its queue ({} events) was full and other destinations' events share the partition; the events were parked without an attempt",
            shared.destination_id, shared.delivery.queue_max_events
        ),
    }
}

/// The error a batch parked without an attempt carries: the destination's last one, or
/// that its circuit is open.
fn park_error(shared: &LaneShared) -> DeliveryError {
    shared
        .health
        .last_error()
        .unwrap_or_else(|| circuit_error(shared))
}

/// Without a last error the circuit is open (it opened on a rejected configuration) or the
/// destination has answered none of its requests for half its `request_timeout` (a spill while
/// it is suspect); the message says which.
fn circuit_error(shared: &LaneShared) -> DeliveryError {
    if shared.health.is_open() {
        return circuit_open(&shared.destination_id);
    }
    not_answering(
        &shared.destination_id,
        shared.delivery.request_timeout,
        "while courier's queues were full; the batch was parked without an attempt",
    )
}

/// A batch parked without an attempt because `destination`'s circuit is open.
pub fn circuit_open(destination: &str) -> DeliveryError {
    DeliveryError {
        kind: ErrorKind::CircuitOpen,
        http_status: None,
        message: format!(
            "destination {destination} is failing (circuit open); the batch was parked without an attempt"
        ),
    }
}

/// A batch parked without an attempt because `destination` has answered none of its requests
/// for half its `request_timeout`; `what` says when and what became of the batch.
pub fn not_answering(
    destination: &str,
    request_timeout: std::time::Duration,
    what: &str,
) -> DeliveryError {
    DeliveryError {
        kind: ErrorKind::CircuitOpen,
        http_status: None,
        message: format!(
            "destination {destination} has answered none of its requests for half its request_timeout ({}) {what}",
            humantime::format_duration(request_timeout.mul_f64(crate::source::divert::ANSWER_PATIENCE))
        ),
    }
}

/// A batch parked because its destination's rate limit would have held it past its in-line
/// budget (`retry_max_elapsed`).
fn rate_limited_error(shared: &LaneShared, limited: super::rate::RateLimited) -> DeliveryError {
    rate_limited(
        &shared.destination_id,
        shared.delivery.retry_max_elapsed,
        limited,
    )
}

/// The error of a batch parked for its destination's rate limit (lanes and retry worker).
pub fn rate_limited(
    destination: &str,
    budget: std::time::Duration,
    limited: super::rate::RateLimited,
) -> DeliveryError {
    DeliveryError {
        kind: ErrorKind::RateLimited,
        http_status: None,
        message: format!(
            "destination {destination}'s rate_limit would have held the batch {} more, past its in-line budget (retry_max_elapsed = {}); it was parked and is retried later",
            humantime::format_duration(std::time::Duration::from_millis(limited.wait.as_millis() as u64)),
            humantime::format_duration(budget)
        ),
    }
}

fn paused_error(shared: &LaneShared) -> DeliveryError {
    paused(&shared.destination_id, shared.delivery.pause_after)
}

/// Events reported without an attempt because `destination` was paused after failing for
/// `pause_after` (its lane's batches and its parked batches alike).
pub fn paused(destination: &str, pause_after: std::time::Duration) -> DeliveryError {
    DeliveryError {
        kind: ErrorKind::Paused,
        http_status: None,
        message: format!(
            "destination {destination} was paused after failing for {}; fix it and replay these events",
            humantime::format_duration(pause_after)
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
