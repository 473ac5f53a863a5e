//! One answer from many replicas: a destination's rows of the live replicas folded into the
//! state the API and the console show. Counters and minutes are summed (each replica counts
//! only the events it handled, so a sum counts each once), the newest success and error win,
//! the worst circuit wins (paused > open > closed), and the destination runs when any live
//! replica runs it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::minutes::{window, MinuteView};
use super::status::{Counts, DestinationRow, ErrorRow};

/// A destination's state over the live replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// Whether a live replica runs it.
    pub running: bool,
    /// How many live replicas report it.
    pub replicas: usize,
    /// The worst circuit; `None` when no live replica runs it.
    pub circuit: Option<String>,
    /// The most consecutive failures on one replica.
    pub consecutive_failures: u32,
    /// The newest success.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The newest error.
    pub last_error: Option<ErrorRow>,
    /// The newest overflow (events parked because its queue was full).
    pub last_overflow_at: Option<DateTime<Utc>>,
    /// Summed counters.
    pub events: Counts,
    /// The last hour, oldest first, summed.
    pub minutes: Vec<MinuteView>,
}

fn circuit_rank(state: &str) -> u8 {
    match state {
        "paused" => 2,
        "open" => 1,
        _ => 0,
    }
}

/// Folds one destination's rows (of live replicas only) at `now`.
pub fn aggregate<'a>(
    rows: impl IntoIterator<Item = &'a DestinationRow>,
    now: DateTime<Utc>,
) -> Aggregate {
    let rows: Vec<&DestinationRow> = rows.into_iter().collect();
    let mut events = Counts::default();
    for r in &rows {
        events.routed = events.routed.saturating_add(r.events.routed);
        events.delivered = events.delivered.saturating_add(r.events.delivered);
        events.failed = events.failed.saturating_add(r.events.failed);
        events.parked = events.parked.saturating_add(r.events.parked);
        events.overflowed = events.overflowed.saturating_add(r.events.overflowed);
    }
    Aggregate {
        running: !rows.is_empty(),
        replicas: rows.len(),
        circuit: rows
            .iter()
            .map(|r| r.circuit.as_str())
            .max_by_key(|c| circuit_rank(c))
            .map(str::to_owned),
        consecutive_failures: rows
            .iter()
            .map(|r| r.consecutive_failures)
            .max()
            .unwrap_or(0),
        last_success_at: rows.iter().filter_map(|r| r.last_success_at).max(),
        last_error: rows
            .iter()
            .filter_map(|r| r.last_error.as_ref())
            .max_by_key(|e| e.at)
            .cloned(),
        last_overflow_at: rows.iter().filter_map(|r| r.last_overflow_at).max(),
        events,
        minutes: window(rows.iter().flat_map(|r| r.minutes.iter()), now),
    }
}

/// One delivery failure as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FailureView {
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// The destination id.
    pub destination: String,
    /// The error class (`http_status`, `timeout`, `connection`, …).
    pub kind: String,
    /// The HTTP status, when there was one.
    pub http_status: Option<u16>,
    /// The explanation with the destination's answer (secrets masked), trimmed to 1024
    /// characters.
    pub message: String,
    /// How many events failed.
    pub events: u64,
    /// Their ids (at most 100; fewer when the replica's status row had to shrink).
    pub event_ids: Vec<String>,
}

/// The newest `limit` failures of `rows` (destination id, row), newest first.
pub fn failures<'a>(
    rows: impl IntoIterator<Item = (&'a str, &'a DestinationRow)>,
    limit: usize,
) -> Vec<FailureView> {
    let mut out: Vec<FailureView> = rows
        .into_iter()
        .flat_map(|(destination, row)| {
            row.failures.iter().map(move |f| FailureView {
                at: f.at,
                destination: destination.to_owned(),
                kind: f.kind.clone(),
                http_status: f.http_status,
                message: f.message.clone(),
                events: f.events,
                event_ids: f.event_ids.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.at.cmp(&a.at)
            .then_with(|| a.destination.cmp(&b.destination))
    });
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_core::recent_failures::FailureRecord;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn row(circuit: &str, failures: u32, delivered: u64, error_at: Option<i64>) -> DestinationRow {
        DestinationRow {
            circuit: circuit.into(),
            consecutive_failures: failures,
            last_success_at: Some(t(i64::from(failures))),
            last_error: error_at.map(|s| ErrorRow {
                kind: "http_status".into(),
                http_status: Some(500),
                message: format!("error at {s}"),
                at: Some(t(s)),
            }),
            last_overflow_at: error_at.map(|s| t(s + 1)),
            events: Counts {
                routed: delivered + 1,
                delivered,
                failed: 1,
                parked: 2,
                overflowed: 1,
            },
            minutes: vec![(super::super::minutes::minute_of(t(0)), delivered, 1, 2)],
            failures: Vec::new(),
        }
    }

    #[test]
    fn sums_counters_and_takes_the_worst_and_newest() {
        let rows = [
            row("closed", 0, 10, Some(5)),
            row("open", 4, 20, Some(9)),
            row("closed", 1, 30, None),
        ];
        let a = aggregate(&rows, t(0));
        assert!(a.running);
        assert_eq!(a.replicas, 3);
        assert_eq!(a.circuit.as_deref(), Some("open"));
        assert_eq!(a.consecutive_failures, 4);
        assert_eq!(a.last_success_at, Some(t(4)));
        assert_eq!(a.last_error.unwrap().message, "error at 9");
        assert_eq!(a.last_overflow_at, Some(t(10)), "the newest overflow");
        assert_eq!(
            a.events,
            Counts {
                routed: 63,
                delivered: 60,
                failed: 3,
                parked: 6,
                overflowed: 3,
            }
        );
        let now = &a.minutes[59];
        assert_eq!((now.delivered, now.failed, now.parked), (60, 3, 6));

        let paused = [row("open", 1, 1, None), row("paused", 0, 1, None)];
        assert_eq!(aggregate(&paused, t(0)).circuit.as_deref(), Some("paused"));
    }

    #[test]
    fn no_live_row_is_not_running() {
        let a = aggregate(std::iter::empty(), t(0));
        assert!(!a.running);
        assert_eq!(a.replicas, 0);
        assert_eq!(a.circuit, None);
        assert_eq!(a.events, Counts::default());
        assert_eq!(a.minutes.len(), 60);
        assert!(a.minutes.iter().all(|m| m.delivered == 0));
    }

    #[test]
    fn failures_newest_first_limited() {
        let failure = |s: i64, id: &str| {
            FailureRecord::new(t(s), "http_status", Some(500), "boom", 1, [id.to_owned()])
        };
        let mut a = row("open", 1, 0, None);
        a.failures = vec![failure(1, "a1"), failure(5, "a5")];
        let mut b = row("open", 1, 0, None);
        b.failures = vec![failure(3, "b3")];
        let listed = failures([("hook-a", &a), ("hook-b", &b)], 2);
        let ids: Vec<(&str, &str)> = listed
            .iter()
            .map(|f| (f.destination.as_str(), f.event_ids[0].as_str()))
            .collect();
        assert_eq!(ids, [("hook-a", "a5"), ("hook-b", "b3")]);
    }
}
