//! A lane's request slots: how many requests a destination has out, and when a batch that
//! finds them all taken is parked at once instead of waiting (the *spill*).
//!
//! Why a module of its own: the slots decide what a destination that is slow, failing or
//! not yet proven may hold of the in-flight budget every tenant reads with — one request
//! until it answers; nothing more under pressure once it is suspect — and that rule is
//! easier to keep in one place than spread through the lane's loop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::LaneShared;

/// A lane's request slots: `max_in_flight` in all, and one for a destination that has not
/// shown it works ([`DestinationHealth::proven`](super::health::DestinationHealth::proven)).
pub(super) struct Slots {
    pub(super) all: Arc<Semaphore>,
    pub(super) cautious: Arc<Semaphore>,
}

/// Held while a batch is being delivered; with the one slot of a destination that has not
/// shown it works when it has not.
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    _cautious: Option<OwnedSemaphorePermit>,
}

/// Waits for a request slot; `None` when the batch is to be spilled (parked at once) instead.
///
/// A destination that has not answered successfully since the lane started, or whose last
/// request failed, gets one request at a time: a black hole then holds one connection and one
/// request body instead of `max_in_flight` of each (4,000 connections for 1,000 of them, about
/// 100 MB, in the stalled benchmark), and its other batches wait in the lane — where, under
/// budget pressure, they are spilled. The first success opens every slot.
///
/// `crowded` tells whether the lane's own queue is [crowded](crate::source::divert::crowded):
/// pressure of its own, as the shared budget's spill threshold is. The lane does not take
/// from its queue while a batch waits here, and a full queue pauses the partitions that carry
/// the destination's events — every tenant's on them — with the shared budget far from its
/// threshold.
pub(super) async fn acquire_slot(
    shared: &LaneShared,
    slots: &Slots,
    crowded: impl Fn() -> bool,
) -> Option<Slot> {
    loop {
        let careful = !shared.health.proven();
        let cautious = if careful {
            slots.cautious.clone().try_acquire_owned().ok()
        } else {
            None
        };
        let cautious_taken = careful && cautious.is_none();
        if !cautious_taken {
            if let Ok(permit) = slots.all.clone().try_acquire_owned() {
                return Some(Slot {
                    _permit: permit,
                    _cautious: cautious,
                });
            }
        }
        drop(cautious);
        // A destination that is failing and has every request slot taken would hold this
        // batch — and, through the shared in-flight budget, every other tenant's reading —
        // until a slot frees (its in-line retries, its timeouts). Under budget pressure the
        // batch is parked at once instead (one record, by reference): a broken destination
        // must not cost the healthy ones their pace.
        if suspect(shared) && pressed(shared, &crowded) {
            return None;
        }
        // Wait until the slot that was missing frees (only this task takes slots, so it is
        // still free when looked at again), looking again now and then: the pressure, or the
        // destination's recovery or failing, may come while this batch waits.
        let missing = if cautious_taken {
            &slots.cautious
        } else {
            &slots.all
        };
        tokio::select! {
            permit = missing.clone().acquire_owned() => {
                drop(permit.expect("the lane's semaphores are never closed"));
            }
            () = tokio::time::sleep(SPILL_CHECK) => {}
        }
    }
}

/// How often a batch waiting for a request slot looks again whether it should be spilled.
const SPILL_CHECK: Duration = Duration::from_millis(100);

/// Whether a batch that finds every request slot taken is parked at once: the destination's
/// last request failed, or its requests out have gone unanswered for longer than half its
/// `request_timeout` ([`ParkWindow::suspect`](crate::source::divert::ParkWindow::suspect)),
/// and the lanes together hold more than the spill threshold — in events or in bytes
/// ([`Budget::under_pressure`](crate::source::divert::Budget::under_pressure)).
///
/// The byte threshold is half of where reading waits (half the byte budget, see
/// `crate::source`): with only the event threshold (half of `max_in_flight_events`, 50,000
/// events of ~1 KB), the stalled benchmark's black holes held ~50 MB while their circuits
/// were opening, leaving the healthy lanes 14 MB below the point where reading waits.
pub(super) fn spills(shared: &LaneShared) -> bool {
    suspect(shared) && pressed(shared, || false)
}

/// Whether the destination's last request failed, or its requests out have gone unanswered
/// for longer than half its `request_timeout`.
fn suspect(shared: &LaneShared) -> bool {
    shared.health.consecutive_failures() > 0 || shared.health.window().suspect(Instant::now)
}

/// Whether the lanes together hold more than the spill threshold, or the lane's own queue is
/// `crowded` (never for replays, whose lanes have no spill budget).
fn pressed(shared: &LaneShared, crowded: impl Fn() -> bool) -> bool {
    shared
        .context
        .spill_budget
        .is_some_and(|budget| budget.pressed(&shared.context.metrics) || crowded())
}
