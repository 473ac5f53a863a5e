//! The one step every sending path (lanes, the retry worker, replays through lanes, the test
//! endpoint and `courier test-destination`) takes between a batch and `Sink::encode`: the
//! destination's redaction and field selection ([`courier_core::shape`]).
//!
//! A destination without rules has its events sent as they are (the byte-identical
//! fast path). A shaped one gets a copy with shaped bytes, in the same order, so a sink's
//! per-event results (`Outcome::Partial`) still index the original batch, which is what gets
//! settled, parked and replayed: the retry topic keeps the original events, and each later
//! attempt shapes them again with the rules in force then.

use courier_core::shape::Shaper;

use crate::event::Event;
use crate::sinks::{DeliveryError, ErrorKind};

/// `events` as the destination may receive them: `None` when it has no rules (send `events`
/// themselves), else the shaped copy. An event that cannot be shaped is never sent unshaped:
/// the batch is refused as data that cannot be encoded.
pub fn shaped(
    shape: Option<&Shaper>,
    events: &[Event],
) -> Result<Option<Vec<Event>>, DeliveryError> {
    let Some(shaper) = shape else {
        return Ok(None);
    };
    shaper
        .shape_batch(events)
        .map(Some)
        .map_err(|e| DeliveryError {
            kind: ErrorKind::Encode,
            http_status: None,
            message: format!(
            "courier could not apply the destination's redaction rules, so nothing was sent: {e}"
        ),
        })
}
