//! `daily_cap = { events, bytes }`: how much of a destination's live traffic one replica sends
//! per UTC day, and the count that enforces it.
//!
//! A cap is the customer's explicit choice to lose what is over it (a log vendor billing by
//! volume), so the count is plain and local: one counter per destination per replica, in
//! memory, reset when the UTC date changes. The date is passed in by the caller so the
//! rollover is testable without waiting for midnight.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Most events a cap may name (a trillion a day is beyond any one destination).
pub const MAX_EVENTS: u64 = 1_000_000_000_000;
/// Most bytes a cap may name (1 PiB).
pub const MAX_BYTES: u64 = 1 << 50;

/// A destination's `daily_cap` table: at least one of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DailyCap {
    /// Most events sent per UTC day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// Most bytes (the events' sizes as read) sent per UTC day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

impl DailyCap {
    /// The problems of a cap read from a table, as (key, message) pairs; empty when valid.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.events.is_none() && self.bytes.is_none() {
            problems.push(("", "must set events, bytes or both".to_owned()));
        }
        if let Some(n) = self.events {
            if !(1..=MAX_EVENTS).contains(&n) {
                problems.push(("events", format!("must be 1 – {MAX_EVENTS}, not {n}")));
            }
        }
        if let Some(n) = self.bytes {
            if !(1..=MAX_BYTES).contains(&n) {
                problems.push(("bytes", format!("must be 1 – {MAX_BYTES}, not {n}")));
            }
        }
        problems
    }
}

/// What the count says of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Within the day's cap: send it.
    Send,
    /// Over the cap, and the first event over it today: skip it and announce the cap.
    Reached,
    /// Over the cap, already announced today: skip it.
    Skip,
}

/// The day's count of one destination's cap.
#[derive(Debug)]
pub struct DailyCount {
    cap: DailyCap,
    day: Option<NaiveDate>,
    events: u64,
    bytes: u64,
    reached: bool,
}

impl DailyCount {
    /// A count that starts on the first event.
    pub fn new(cap: DailyCap) -> Self {
        Self {
            cap,
            day: None,
            events: 0,
            bytes: 0,
            reached: false,
        }
    }

    /// Counts an event of `size` bytes seen on `today` (UTC). Once an event does not fit,
    /// nothing more is sent that day, even a smaller one: what is delivered is the day's first
    /// events in the order the lane received them, with no hole.
    pub fn admit(&mut self, today: NaiveDate, size: usize) -> Admit {
        if self.day != Some(today) {
            self.day = Some(today);
            self.events = 0;
            self.bytes = 0;
            self.reached = false;
        }
        if self.reached {
            return Admit::Skip;
        }
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        let events = self.events.saturating_add(1);
        let bytes = self.bytes.saturating_add(size);
        let over = self.cap.events.is_some_and(|cap| events > cap)
            || self.cap.bytes.is_some_and(|cap| bytes > cap);
        if over {
            self.reached = true;
            return Admit::Reached;
        }
        self.events = events;
        self.bytes = bytes;
        Admit::Send
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    #[test]
    fn an_event_cap_sends_the_first_events_then_skips_until_the_next_day() {
        let mut count = DailyCount::new(DailyCap {
            events: Some(3),
            bytes: None,
        });
        let seen: Vec<Admit> = (0..6).map(|_| count.admit(day(6), 10)).collect();
        assert_eq!(
            seen,
            [
                Admit::Send,
                Admit::Send,
                Admit::Send,
                Admit::Reached,
                Admit::Skip,
                Admit::Skip
            ]
        );
        // The next UTC day starts afresh, and the cap is announced again when reached.
        let next: Vec<Admit> = (0..5).map(|_| count.admit(day(7), 10)).collect();
        assert_eq!(
            next,
            [
                Admit::Send,
                Admit::Send,
                Admit::Send,
                Admit::Reached,
                Admit::Skip
            ]
        );
    }

    #[test]
    fn a_byte_cap_never_overshoots_and_leaves_no_hole() {
        let mut count = DailyCount::new(DailyCap {
            events: None,
            bytes: Some(25),
        });
        assert_eq!(count.admit(day(6), 10), Admit::Send);
        assert_eq!(count.admit(day(6), 10), Admit::Send);
        // 30 > 25: reached, and a smaller event after it is skipped too.
        assert_eq!(count.admit(day(6), 10), Admit::Reached);
        assert_eq!(count.admit(day(6), 1), Admit::Skip);
        assert_eq!(count.admit(day(7), 25), Admit::Send);
        assert_eq!(count.admit(day(7), 1), Admit::Reached);
    }

    #[test]
    fn both_limits_apply_whichever_comes_first() {
        let mut count = DailyCount::new(DailyCap {
            events: Some(2),
            bytes: Some(1000),
        });
        assert_eq!(count.admit(day(6), 1), Admit::Send);
        assert_eq!(count.admit(day(6), 1), Admit::Send);
        assert_eq!(count.admit(day(6), 1), Admit::Reached);
    }

    #[test]
    fn bounds_are_checked_and_name_the_key() {
        let none = DailyCap {
            events: None,
            bytes: None,
        };
        assert_eq!(none.check()[0].0, "");
        let zero = DailyCap {
            events: Some(0),
            bytes: Some(MAX_BYTES + 1),
        };
        let keys: Vec<&str> = zero.check().iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["events", "bytes"]);
        let ok = DailyCap {
            events: Some(MAX_EVENTS),
            bytes: Some(1),
        };
        assert!(ok.check().is_empty());
    }
}
