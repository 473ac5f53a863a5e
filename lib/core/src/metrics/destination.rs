//! The counters of one destination, which the status API, the console and `courier
//! validate`'s summary read; exported as Prometheus series only when
//! `metrics.per_destination = true` (low-cardinality labels otherwise).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus::IntCounter;

/// Counters of one destination.
#[derive(Debug, Default)]
pub struct DestinationStats {
    /// Events routed to it.
    pub routed: AtomicU64,
    /// Events it accepted.
    pub delivered: AtomicU64,
    /// Events that finally failed.
    pub failed: AtomicU64,
    /// Requests sent (attempts).
    pub requests: AtomicU64,
    /// Events parked in the retry topic.
    pub parked: AtomicU64,
    /// Events parked without an attempt because its queue was full (also in `parked`).
    pub overflowed: AtomicU64,
    /// When events last overflowed, in milliseconds since the epoch; 0 when never.
    pub last_overflow_ms: AtomicI64,
    /// The last delivery failures (the published status lists them).
    pub recent_failures: crate::recent_failures::RecentFailures,
    pub(super) exported: Option<ExportedStats>,
}

#[derive(Debug)]
pub(super) struct ExportedStats {
    pub(super) delivered: IntCounter,
    pub(super) failed: IntCounter,
    pub(super) parked: IntCounter,
}

impl DestinationStats {
    /// (routed, delivered, failed, requests) now.
    pub fn read(&self) -> (u64, u64, u64, u64) {
        (
            self.routed.load(Ordering::Relaxed),
            self.delivered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
        )
    }

    /// Counts delivered events.
    pub fn add_delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
        if let Some(e) = &self.exported {
            e.delivered.inc_by(n);
        }
    }

    /// Counts finally failed events.
    pub fn add_failed(&self, n: u64) {
        self.failed.fetch_add(n, Ordering::Relaxed);
        if let Some(e) = &self.exported {
            e.failed.inc_by(n);
        }
    }

    /// Counts `n` events that overflowed its queue at `at_ms` (milliseconds since the epoch).
    /// They are counted in `parked` too, when parked.
    pub fn add_overflowed(&self, n: u64, at_ms: i64) {
        self.overflowed.fetch_add(n, Ordering::Relaxed);
        self.last_overflow_ms.fetch_max(at_ms, Ordering::Relaxed);
    }

    /// Events that overflowed its queue.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// When events last overflowed (milliseconds since the epoch), if ever.
    pub fn last_overflow_ms(&self) -> Option<i64> {
        Some(self.last_overflow_ms.load(Ordering::Relaxed)).filter(|&ms| ms > 0)
    }

    /// Counts parked events.
    pub fn add_parked(&self, n: u64) {
        self.parked.fetch_add(n, Ordering::Relaxed);
        if let Some(e) = &self.exported {
            e.parked.inc_by(n);
        }
    }
}
