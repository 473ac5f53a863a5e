//! One scheduled attempt of a parked batch — read back first when it was parked by
//! reference — settled as the lane settles its batches ([`crate::settle`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tokio_util::sync::CancellationToken;

use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::references::{lost_error, Scheduled};
use super::{BatchKey, Pending, Shared, Target};
use crate::event::Event;
use crate::lane::Decision;
use crate::metrics::DestinationStats;
use crate::parking::reference::ParkedReference;
use crate::settle::Settler;
use crate::sinks::{DeliveryError, ErrorKind, Outcome, RejectScope};

/// One scheduled attempt of a parked reference: its events are read back from the source
/// topic (until that works or courier stops), those gone are reported, the rest attempted.
pub(super) async fn attempt_reference(
    shared: &Shared,
    target: Option<Arc<Target>>,
    slot: Option<OwnedSemaphorePermit>,
    reference: ParkedReference,
    ack: crate::event::AckId,
    stop: &CancellationToken,
    later: &mpsc::UnboundedSender<Scheduled>,
) {
    // An open circuit is probed once per probe interval, by the lane or by a parked batch;
    // any other batch due meanwhile waits (in memory, without a connection or a read) until
    // the circuit may have closed. Its scheduled attempt is not spent.
    let decision = match &target {
        Some(t) => t.health.decide().await,
        None => Decision::Attempt,
    };
    if let Some(t) = &target {
        if decision == Decision::Park {
            let mut reference = reference;
            reference.due_ms =
                crate::clock::wall_deadline(Utc::now(), t.config.delivery.probe_interval)
                    .timestamp_millis();
            // The worker is gone only when it stops; the reference is then read again.
            let _ = later.send(Scheduled { reference, ack });
            return;
        }
    }
    let mut wait = Duration::from_secs(1);
    let back = loop {
        match shared.readers.read(&reference, ack, stop).await {
            Ok(back) => break back,
            Err(e) => {
                if stop.is_cancelled() {
                    return;
                }
                tracing::warn!(error = %e, "cannot read parked events back from the source topic; trying again (the reference stays uncommitted)");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => return,
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    };
    let key = (
        reference.project.clone(),
        reference.destination.clone(),
        reference.attempt,
    );
    if !back.lost.is_empty() {
        let error = lost_error(&reference, &back.lost);
        tracing::warn!(events = back.lost.len(), error = %error, "parked events are gone from the source topic; reporting them");
        let first_failure = Utc
            .timestamp_millis_opt(reference.first_failure_ms)
            .single()
            .unwrap_or_else(Utc::now);
        let (kind, schedule, stats) = match &target {
            Some(t) => (
                t.config.sink.type_name(),
                t.config.delivery.retry_schedule.as_slice(),
                Some(t.stats.as_ref()),
            ),
            None => ("unknown", &[][..], None),
        };
        settler(shared, &key, kind, schedule, stats, first_failure)
            .fail(&back.lost, &error, reference.attempt.saturating_sub(1))
            .await;
    }
    if back.found.is_empty() {
        return;
    }
    let batch = Pending {
        events: back.found,
        first_failure_ms: reference.first_failure_ms,
        last_error: reference.last_error,
    };
    attempt(shared, target, slot, key, batch, decision, stop).await;
}

/// One scheduled attempt of a batch of parked copies. While the destination's circuit is
/// open and no probe is due, the batch is parked for its next attempt without a request, as
/// its lane parks (copies cannot wait in memory for the probe, as references do, and
/// postponing them would write them again every probe interval). It waits for one of the
/// destination's request slots only while the destination answers: when its slots are taken
/// and it has answered none of their requests for half its `request_timeout` (or its last one
/// failed), the batch is postponed by a `request_timeout` — parked again for the same attempt,
/// which is not spent. Before, a destination that hung held a batch in each of the worker's
/// attempt slots until its requests timed out, 4 at a time, and no other tenant's parked
/// copies were read meanwhile. A paused destination's batch is reported without a request.
pub(super) async fn attempt_copies(
    shared: &Shared,
    target: Option<Arc<Target>>,
    key: BatchKey,
    batch: Pending,
    stop: &CancellationToken,
) {
    let Some(t) = &target else {
        return attempt(shared, target, None, key, batch, Decision::Attempt, stop).await;
    };
    let first_failure = Utc
        .timestamp_millis_opt(batch.first_failure_ms)
        .single()
        .unwrap_or_else(Utc::now);
    let delivery = &t.config.delivery;
    let settler = settler(
        shared,
        &key,
        t.config.sink.type_name(),
        &delivery.retry_schedule,
        Some(&t.stats),
        first_failure,
    );
    let decision = t.health.decide().await;
    match decision {
        Decision::Park => {
            let error = t
                .health
                .last_error()
                .unwrap_or_else(|| crate::lane::circuit_open(&t.config.id));
            return settler.park(&batch.events, &error).await;
        }
        // Reported without a request (and without a slot).
        Decision::Report => {
            return attempt(
                shared,
                target.clone(),
                None,
                key.clone(),
                batch,
                decision,
                stop,
            )
            .await
        }
        Decision::Attempt | Decision::Probe => {}
    }
    match slot_while_answering(t).await {
        Ok(slot) => {
            attempt(
                shared,
                target.clone(),
                Some(slot),
                key.clone(),
                batch,
                decision,
                stop,
            )
            .await
        }
        Err(()) => {
            let error = crate::lane::not_answering(
                &t.config.id,
                delivery.request_timeout,
                "and has every request slot taken; the parked batch was postponed without an attempt",
            );
            let delay = delivery.request_timeout.max(SHORTEST_POSTPONEMENT);
            settler.postpone(&batch.events, &error, delay).await;
        }
    }
}

/// The shortest a batch of copies is postponed: a re-written copy is read back at once.
const SHORTEST_POSTPONEMENT: Duration = Duration::from_secs(1);

/// How often a batch waiting for one of its destination's request slots looks whether the
/// destination has stopped answering.
const SUSPICION_CHECK: Duration = Duration::from_millis(250);

/// One of `target`'s request slots, waited for while the destination answers; `Err` once it
/// is suspect ([`crate::source::divert::ParkWindow::suspect`]).
async fn slot_while_answering(target: &Target) -> Result<OwnedSemaphorePermit, ()> {
    loop {
        tokio::select! {
            slot = target.slots.clone().acquire_owned() => {
                return Ok(slot.expect("a target's semaphore is never closed"));
            }
            () = tokio::time::sleep(SUSPICION_CHECK) => {}
        }
        if target.health.window().suspect(tokio::time::Instant::now) {
            return Err(());
        }
    }
}

/// The settler of a retry attempt of `key` (project, destination, attempt).
fn settler<'a>(
    shared: &'a Shared,
    key: &'a BatchKey,
    destination_type: &'a str,
    schedule: &'a [Duration],
    stats: Option<&'a DestinationStats>,
    first_attempt: chrono::DateTime<Utc>,
) -> Settler<'a> {
    Settler {
        project: &key.0,
        destination: &key.1,
        destination_type,
        stats,
        schedule,
        attempt: key.2,
        first_attempt,
        source_topic: &shared.source_topic,
        acker: &shared.acker,
        failures: &shared.failures,
        parker: &shared.parker,
        metrics: &shared.metrics,
    }
}

/// One scheduled attempt of a parked batch, settled as the lane settles its batches
/// ([`crate::settle`]): what fails again waits for the next scheduled attempt.
///
/// `slot` is one of the destination's request slots when the caller took it already; without
/// one the attempt waits for one. `decision` is the destination's circuit's for this batch
/// ([`Decision::Park`] is handled by the callers): a paused destination's parked events are
/// reported without a request, as its lane reports its batches.
pub(super) async fn attempt(
    shared: &Shared,
    target: Option<Arc<Target>>,
    slot: Option<OwnedSemaphorePermit>,
    key: BatchKey,
    batch: Pending,
    decision: Decision,
    stop: &CancellationToken,
) {
    // The batch's events count in the in-flight budget while it is attempted: many parked
    // batches due at once (after an outage) slow reading instead of growing memory.
    let _held = shared
        .metrics
        .held_bytes(batch.events.iter().map(|e| e.raw.len()).sum());
    let first_failure = Utc
        .timestamp_millis_opt(batch.first_failure_ms)
        .single()
        .unwrap_or_else(Utc::now);
    let (project, destination, attempt) = (&key.0, &key.1, key.2);
    let settler = |destination_type, schedule, stats| {
        settler(
            shared,
            &key,
            destination_type,
            schedule,
            stats,
            first_failure,
        )
    };
    let Some(target) = target else {
        let error = DeliveryError {
            kind: ErrorKind::DestinationRemoved,
            http_status: None,
            message: format!(
                "destination {destination} of project {project} no longer exists or is disabled; its parked events cannot be delivered"
            ),
        };
        settler("unknown", &[], None)
            .fail(&batch.events, &error, attempt)
            .await;
        return;
    };
    if decision == Decision::Report {
        let error = crate::lane::paused(&target.config.id, target.config.delivery.pause_after);
        settler(
            target.config.sink.type_name(),
            &target.config.delivery.retry_schedule,
            Some(&target.stats),
        )
        .fail(&batch.events, &error, attempt)
        .await;
        return;
    }
    let _slot = match slot {
        Some(slot) => slot,
        None => target
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("a target's semaphore is never closed"),
    };
    let settler = settler(
        target.config.sink.type_name(),
        &target.config.delivery.retry_schedule,
        Some(&target.stats),
    );
    let delivery = &target.config.delivery;
    let requests = request_ranges(
        &batch.events,
        delivery.batch_max_events,
        delivery.batch_max_bytes,
    );
    let started = tokio::time::Instant::now();
    for range in requests {
        if range.start > 0 {
            if let Some((error, delay)) = interrupted(&target, stop, started) {
                let rest = &batch.events[range.start..];
                settler.postpone(rest, &error, delay).await;
                return;
            }
        }
        let sent = send_request(
            shared,
            &target,
            &settler,
            &batch.events[range.clone()],
            attempt,
        )
        .await;
        if let Err(error) = sent {
            // The destination failed this request: the rest are not sent now (each would
            // wait for the same failure), but settled as it was — parked for the next
            // attempt, or reported after the last, with its error.
            let rest = &batch.events[range.end..];
            if !rest.is_empty() {
                let outcome = Outcome::Retry {
                    error,
                    retry_after: None,
                };
                settler.settle(rest, outcome, attempt).await;
            }
            return;
        }
    }
}

/// Whether a parked batch's attempt stops before its next request, and what becomes of the
/// rest: postponed — parked again for the same attempt, not spent — with this error, due after
/// this delay. While the destination's circuit is open, until its next probe (its lane opened
/// it meanwhile: the one probe per `probe_interval` holds for the worker too); when courier
/// stops, or once the attempt has sent for a `request_timeout`, a second later. An attempt
/// holds the destination's request slot and its retry-topic record uncommitted: a reference
/// of 10,000 events, in requests of 20 answered in 400 ms, would hold them for over three
/// minutes, past the drain's and a revocation's waits.
fn interrupted(
    target: &Target,
    stop: &CancellationToken,
    started: tokio::time::Instant,
) -> Option<(DeliveryError, Duration)> {
    let delivery = &target.config.delivery;
    if target.health.is_open() {
        let error = crate::lane::circuit_open(&target.config.id);
        return Some((error, delivery.probe_interval));
    }
    let message = if stop.is_cancelled() {
        format!(
            "courier stopped during destination {}'s attempt; the rest of its parked batch was parked again for the same attempt",
            target.config.id
        )
    } else if started.elapsed() >= delivery.request_timeout {
        format!(
            "destination {}'s parked batch is larger than one attempt sends (requests for at most its request_timeout, {}); the rest was parked again for the same attempt",
            target.config.id,
            humantime::format_duration(delivery.request_timeout)
        )
    } else {
        return None;
    };
    let error = DeliveryError {
        kind: ErrorKind::Overflow,
        http_status: None,
        message,
    };
    Some((error, Duration::from_secs(1)))
}

/// The events of a parked batch in requests of at most the destination's `batch_max_events`
/// and `batch_max_bytes` (at least one event each). A reference holds up to a second's worth
/// of a busy destination's events — up to 10,000 — and was sent as one request.
fn request_ranges(
    events: &[Event],
    max_events: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let (max_events, mut ranges, mut start, mut bytes) = (max_events.max(1), Vec::new(), 0, 0);
    for (i, event) in events.iter().enumerate() {
        let size = event.raw.len();
        if i > start && (i - start >= max_events || bytes + size > max_bytes) {
            ranges.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < events.len() {
        ranges.push(start..events.len());
    }
    ranges
}

/// Sends one request of a parked batch's events and settles them; the error of the first
/// part the destination failed (a retry, or a rejection of the destination itself), if any.
async fn send_request(
    shared: &Shared,
    target: &Target,
    settler: &Settler<'_>,
    originals: &[Event],
    attempt: u32,
) -> Result<(), DeliveryError> {
    target.stats.requests.fetch_add(1, Ordering::Relaxed);
    // Parked events are the originals: the destination's redaction applies again here.
    let shaped = crate::shaping::shaped(target.config.shape.as_deref(), originals);
    let sending = match &shaped {
        Ok(s) => Ok(s.as_deref().unwrap_or(originals)),
        Err(error) => Err(error.clone()),
    };
    // The destination's rate limit binds parked batches as well (the lane's buckets, shared
    // through its health); a wait longer than the in-line budget parks the batch again.
    if let Some(rate) = target.health.rate() {
        let budget = target.config.delivery.retry_max_elapsed;
        if let Err(limited) = rate
            .acquire(originals.len(), budget, tokio::time::sleep)
            .await
        {
            shared
                .metrics
                .rate_limited_batches
                .with_label_values(&[target.config.sink.type_name()])
                .inc();
            let error = crate::lane::rate_limited(&target.config.id, budget, limited);
            let outcome = Outcome::Retry {
                error: error.clone(),
                retry_after: None,
            };
            settler.settle(originals, outcome, attempt).await;
            return Err(error);
        }
    }
    // Events the sink cannot encode (a body template failing on their data) are reported one
    // by one, as in a lane; the others are sent.
    let mut originals = std::borrow::Cow::Borrowed(originals);
    let encoded = sending.and_then(|events| Ok((events, target.sink.encode_checked(events)?)));
    // The request counts as out for the destination's suspicion (its lane's and this worker's
    // batches wait on it).
    let out = target.health.window().sending(tokio::time::Instant::now());
    let outcome = match encoded {
        Ok((events, (encoded, refused))) if refused.is_empty() => {
            target.sink.send(events, &encoded).await
        }
        Ok((events, (encoded, refused))) => {
            let refused: std::collections::HashMap<usize, DeliveryError> =
                refused.into_iter().collect();
            let mut kept = Vec::new();
            let mut kept_originals = Vec::new();
            for (i, (event, original)) in events.iter().zip(originals.iter()).enumerate() {
                match refused.get(&i) {
                    Some(error) => {
                        settler
                            .fail(std::slice::from_ref(original), error, attempt)
                            .await;
                    }
                    None => {
                        kept.push(event.clone());
                        kept_originals.push(original.clone());
                    }
                }
            }
            if kept.is_empty() {
                return Ok(());
            }
            originals = std::borrow::Cow::Owned(kept_originals);
            target.sink.send(&kept, &encoded).await
        }
        Err(error) => Outcome::Rejected {
            error,
            scope: RejectScope::Data,
        },
    };
    drop(out);
    target.health.record(&outcome).await;
    let parts = match outcome {
        Outcome::Partial(parts) => parts,
        whole => vec![(0..originals.len(), whole)],
    };
    let mut failed = None;
    for (range, outcome) in parts {
        let Some(events) = originals.get(range) else {
            continue;
        };
        match &outcome {
            Outcome::Retry { error, .. }
            | Outcome::Rejected {
                error,
                scope: RejectScope::Destination,
            } => {
                failed.get_or_insert_with(|| error.clone());
            }
            // Delivered, or these events' own data refused: the next request may go.
            _ => {}
        }
        settler.settle(events, outcome, attempt).await;
    }
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::request_ranges;
    use crate::event::test_event;

    #[test]
    fn a_parked_batch_goes_out_in_requests_of_the_destinations_batch_size() {
        let events: Vec<_> = (0..7).map(|i| test_event(vec![b'x'; 10], 0, i)).collect();
        assert_eq!(request_ranges(&events, 3, 1_000), vec![0..3, 3..6, 6..7]);
        assert_eq!(
            request_ranges(&events, 100, 25),
            vec![0..2, 2..4, 4..6, 6..7]
        );
        // An event over the byte limit still goes, on its own.
        assert_eq!(request_ranges(&events[..2], 100, 5), vec![0..1, 1..2]);
        assert_eq!(
            request_ranges(&events, 0, 1_000).len(),
            7,
            "at least one event each"
        );
        assert!(request_ranges(&[], 3, 1_000).is_empty());
    }
}
