//! Per-minute delivered/failed/parked counts for the last hour, computed by the publisher
//! from the cumulative counters it reads each time it publishes: the growth since the last
//! reading is put in the current minute. No hook on the delivery path; the price is that an
//! event is counted in the minute of the publication after it (at most one
//! `status_interval` late).

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::status::MinuteRow;

/// Minutes kept and shown.
pub const WINDOW_MINUTES: i64 = 60;

/// The minute (since the epoch) `at` falls in.
pub fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

/// One destination's minutes on this replica.
#[derive(Debug, Default)]
pub struct Minutes {
    /// The (delivered, failed, parked) counters at the last reading.
    last: Option<[u64; 3]>,
    buckets: BTreeMap<i64, [u64; 3]>,
}

impl Minutes {
    /// Reads the cumulative (delivered, failed, parked) counters at `now`. The first reading
    /// counts everything so far in the current minute (a destination's counters start with
    /// it); a counter that went down was started again, so all of it is new.
    pub fn observe(&mut self, now: DateTime<Utc>, counters: [u64; 3]) {
        let minute = minute_of(now);
        let delta: [u64; 3] = match self.last {
            None => counters,
            Some(last) => {
                std::array::from_fn(|i| counters[i].checked_sub(last[i]).unwrap_or(counters[i]))
            }
        };
        self.last = Some(counters);
        if delta != [0; 3] {
            let bucket = self.buckets.entry(minute).or_default();
            for (b, d) in bucket.iter_mut().zip(delta) {
                *b = b.saturating_add(d);
            }
        }
        let oldest = minute - (WINDOW_MINUTES - 1);
        self.buckets = self.buckets.split_off(&oldest);
    }

    /// What [`Minutes::rows`] would give after observing `counters` at `now`, without
    /// recording the reading.
    pub fn peek(&self, now: DateTime<Utc>, counters: [u64; 3]) -> Vec<MinuteRow> {
        let mut copy = Minutes {
            last: self.last,
            buckets: self.buckets.clone(),
        };
        copy.observe(now, counters);
        copy.rows()
    }

    /// The minutes with events, oldest first.
    pub fn rows(&self) -> Vec<MinuteRow> {
        self.buckets
            .iter()
            .map(|(m, [d, f, p])| (*m, *d, *f, *p))
            .collect()
    }
}

/// One minute of the aggregated window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MinuteView {
    /// The minute's start (UTC).
    pub minute: DateTime<Utc>,
    /// Events accepted in it.
    pub delivered: u64,
    /// Events finally failed in it.
    pub failed: u64,
    /// Events parked in it.
    pub parked: u64,
}

/// The hour ending with `now`'s minute, oldest first, each minute summed over `rows` (zeros
/// included, minutes outside the hour left out).
pub fn window<'a>(
    rows: impl IntoIterator<Item = &'a MinuteRow>,
    now: DateTime<Utc>,
) -> Vec<MinuteView> {
    let last = minute_of(now);
    let first = last - (WINDOW_MINUTES - 1);
    let start = now
        .duration_trunc(chrono::Duration::minutes(1))
        .expect("a minute divides any timestamp")
        - chrono::Duration::minutes(WINDOW_MINUTES - 1);
    let mut out: Vec<MinuteView> = (0..WINDOW_MINUTES)
        .map(|i| MinuteView {
            minute: start + chrono::Duration::minutes(i),
            delivered: 0,
            failed: 0,
            parked: 0,
        })
        .collect();
    for &(m, d, f, p) in rows {
        if (first..=last).contains(&m) {
            let v = &mut out[usize::try_from(m - first).expect("inside the window")];
            v.delivered = v.delivered.saturating_add(d);
            v.failed = v.failed.saturating_add(f);
            v.parked = v.parked.saturating_add(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64, second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(minute * 60 + second, 0).unwrap()
    }

    #[test]
    fn deltas_of_cumulative_counters_land_in_their_minute() {
        let mut m = Minutes::default();
        let base = 29_000_000;
        m.observe(at(base, 1), [5, 0, 0]);
        m.observe(at(base, 30), [7, 1, 0]);
        m.observe(at(base + 1, 0), [7, 1, 0]);
        m.observe(at(base + 2, 59), [10, 1, 4]);
        assert_eq!(m.rows(), vec![(base, 7, 1, 0), (base + 2, 3, 0, 4)]);
        // A reader's look does not move the reading.
        assert_eq!(
            m.peek(at(base + 2, 59), [11, 1, 4]).last(),
            Some(&(base + 2, 4, 0, 4))
        );
        assert_eq!(m.rows().last(), Some(&(base + 2, 3, 0, 4)));
        // A restarted counter (the destination was removed and added again) counts whole.
        m.observe(at(base + 3, 0), [2, 0, 0]);
        assert_eq!(m.rows().last(), Some(&(base + 3, 2, 0, 0)));
        // An hour later the first minutes are gone.
        m.observe(at(base + 61, 0), [2, 0, 0]);
        assert_eq!(m.rows(), vec![(base + 2, 3, 0, 4), (base + 3, 2, 0, 0)]);
    }

    #[test]
    fn the_window_is_sixty_minutes_oldest_first_summed() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T13:05:42Z")
            .unwrap()
            .with_timezone(&Utc);
        let current = minute_of(now);
        let rows = [
            (current, 1, 2, 3),
            (current, 10, 0, 0),
            (current - 59, 4, 0, 0),
            (current - 60, 100, 100, 100),
            (current + 1, 100, 100, 100),
        ];
        let w = window(&rows, now);
        assert_eq!(w.len(), 60);
        assert_eq!(w[0].minute.to_rfc3339(), "2026-12-06T12:06:00+00:00");
        assert_eq!(w[59].minute.to_rfc3339(), "2026-12-06T13:05:00+00:00");
        assert_eq!((w[0].delivered, w[0].failed), (4, 0));
        assert_eq!((w[59].delivered, w[59].failed, w[59].parked), (11, 2, 3));
        let total: u64 = w.iter().map(|v| v.delivered + v.failed + v.parked).sum();
        assert_eq!(total, 20, "minutes outside the hour left out");
        assert_eq!(
            serde_json::to_value(&w[59]).unwrap()["minute"],
            "2026-12-06T13:05:00Z"
        );
    }
}
