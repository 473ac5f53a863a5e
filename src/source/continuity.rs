//! Noticing records a broker skipped.
//!
//! After a resume, a seek or an assignment, the next record of a partition must be the offset
//! courier asked for. Kafka guarantees it: a fetch from the middle of a record batch returns
//! the whole batch and the client drops the records before the requested offset. Some
//! Kafka-compatible brokers do not (tansu answers such a fetch with the *next* batch,
//! TESTING.md quirk 2), and librdkafka resumes a paused partition exactly there. Trusting
//! them would commit the skipped records as if delivered.
//!
//! So each owner of a consumer (the source and the retry worker) tells this watch which
//! offset must come next, and asks it about every record. When a later record comes, or
//! nothing at all within [`SILENCE`], the partition is rewound before the expected offset —
//! 256 records back, then twice as far each time — and what was read before is ignored,
//! until the expected record arrives. A gap that remains after going back [`MAX_STEP_BACK`]
//! records, or to the log start, is real (compaction, transaction markers, deleted records):
//! it is accepted, and the owner counts and logs it. Records that come back after a rewind
//! but stop short of the expected offset mean the partition simply ends there: the watch
//! ends without a gap.
//!
//! This module only decides; the owner seeks, so it stays a plain state machine that tests
//! drive without a broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How far back the first rewind goes (doubled on each further one).
pub const FIRST_STEP_BACK: i64 = 256;
/// Beyond this, the records the broker does not return are taken as a real gap.
pub const MAX_STEP_BACK: i64 = 1 << 17;
/// How long a watched partition may stay silent before the expected record counts as
/// skipped. Too early costs one rewind.
pub const SILENCE: Duration = Duration::from_secs(1);

/// What to do with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The expected record, or nothing is watched: handle it.
    Take,
    /// Read before a rewind: already handled, ignore it.
    Seen,
    /// Records before this one did not come: seek the partition to `to` and ignore this one
    /// (it is read again in order).
    Rewind {
        /// Where to seek.
        to: i64,
    },
    /// Offsets `from..to` are not in the partition even after rewinding: count and log the
    /// gap, then handle this record.
    Gap {
        /// First missing offset.
        from: i64,
        /// The record's offset (one past the last missing one).
        to: i64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Watch {
    generation: u64,
    /// The offset that must come next.
    expected: i64,
    /// Never rewind below this (the log start, when known).
    floor: i64,
    /// Distance of the next rewind.
    step_back: i64,
    /// Where the last rewind went.
    rewound_to: Option<i64>,
    /// Whether records before `expected` came back since the last rewind.
    seen_since_rewind: bool,
    /// When silence means the expected record was skipped.
    silent_after: Instant,
}

/// The watched partitions of one consumer.
#[derive(Debug, Default)]
pub struct Continuity {
    watches: HashMap<i32, Watch>,
}

impl Continuity {
    /// Watches `partition` (assignment `generation`): the next record must be `offset`;
    /// rewinds never go below `floor`.
    pub fn expect(&mut self, partition: i32, generation: u64, offset: i64, floor: i64) {
        self.watches.insert(
            partition,
            Watch {
                generation,
                expected: offset,
                floor: floor.clamp(0, offset.max(0)),
                step_back: FIRST_STEP_BACK,
                rewound_to: None,
                seen_since_rewind: false,
                silent_after: Instant::now() + SILENCE,
            },
        );
    }

    /// Stops watching `partition`.
    pub fn forget(&mut self, partition: i32) {
        self.watches.remove(&partition);
    }

    /// Whether any partition is watched.
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    /// Whether `partition` waits for a record it asked for.
    pub fn watches(&self, partition: i32) -> bool {
        self.watches.contains_key(&partition)
    }

    /// Judges the record at `offset` of `partition`, read in assignment `generation`.
    pub fn check(&mut self, partition: i32, generation: u64, offset: i64) -> Verdict {
        let Some(watch) = self.watches.get_mut(&partition) else {
            return Verdict::Take;
        };
        if watch.generation != generation {
            // A watch of an earlier assignment; the new one sets its own.
            self.watches.remove(&partition);
            return Verdict::Take;
        }
        if offset < watch.expected {
            watch.seen_since_rewind = true;
            watch.silent_after = Instant::now() + SILENCE;
            return Verdict::Seen;
        }
        if offset == watch.expected {
            self.watches.remove(&partition);
            return Verdict::Take;
        }
        match Self::step_back(watch) {
            Some(to) => Verdict::Rewind { to },
            None => {
                let from = watch.expected;
                self.watches.remove(&partition);
                Verdict::Gap { from, to: offset }
            }
        }
    }

    /// Partitions silent past their time, with where to rewind them. A partition whose
    /// rewind brought back earlier records and then nothing ends where it was expected to
    /// continue: its watch ends. One that cannot go back further is given up (nothing came,
    /// so nothing is known to be missing).
    pub fn silent(&mut self, now: Instant) -> Vec<(i32, i64)> {
        let mut rewinds = Vec::new();
        self.watches.retain(|&partition, watch| {
            if now < watch.silent_after {
                return true;
            }
            if watch.seen_since_rewind {
                return false;
            }
            match Self::step_back(watch) {
                Some(to) => {
                    rewinds.push((partition, to));
                    true
                }
                None => false,
            }
        });
        rewinds
    }

    /// The next rewind target, or `None` when it already went as far back as it may.
    fn step_back(watch: &mut Watch) -> Option<i64> {
        if watch.step_back > MAX_STEP_BACK || watch.rewound_to == Some(watch.floor) {
            return None;
        }
        let to = (watch.expected - watch.step_back).max(watch.floor);
        watch.step_back = watch.step_back.saturating_mul(2);
        watch.rewound_to = Some(to);
        watch.seen_since_rewind = false;
        watch.silent_after = Instant::now() + SILENCE;
        Some(to)
    }
}

/// A [`Continuity`] shared by a consumer's rebalance callbacks (which watch new assignments)
/// and its reader (which checks every record). The number of watched partitions is readable
/// without the lock, so the reader's per-record check costs nothing while nothing is watched —
/// almost always on Kafka.
#[derive(Debug, Default)]
pub struct SharedContinuity {
    watched: AtomicUsize,
    inner: Mutex<Continuity>,
}

impl SharedContinuity {
    /// Whether no partition is watched (no lock taken).
    pub fn is_idle(&self) -> bool {
        self.watched.load(Ordering::Acquire) == 0
    }

    /// Runs `f` on the watch, under its lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut Continuity) -> R) -> R {
        // Every method leaves the watch consistent; a panic elsewhere does not void it.
        let mut continuity = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let result = f(&mut continuity);
        self.watched
            .store(continuity.watches.len(), Ordering::Release);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwatched_partitions_take_every_record() {
        let mut c = Continuity::default();
        assert_eq!(c.check(0, 1, 5), Verdict::Take);
        assert_eq!(c.check(0, 1, 9), Verdict::Take);
    }

    #[test]
    fn the_expected_record_ends_the_watch() {
        let mut c = Continuity::default();
        c.expect(0, 1, 100, 0);
        assert_eq!(c.check(0, 1, 100), Verdict::Take);
        assert!(c.is_empty());
        assert_eq!(c.check(0, 1, 150), Verdict::Take, "no longer watched");
    }

    /// tansu's quirk: resumed inside a batch, the next batch comes first.
    #[test]
    fn a_skipped_batch_is_read_again_from_before_it() {
        let mut c = Continuity::default();
        c.expect(0, 1, 1000, 0);
        assert_eq!(c.check(0, 1, 1040), Verdict::Rewind { to: 744 });
        // the rewind lands inside an earlier batch and skips it too
        assert_eq!(c.check(0, 1, 1040), Verdict::Rewind { to: 488 });
        // now the records come from before: read before, ignored …
        for offset in 488..1000 {
            assert_eq!(c.check(0, 1, offset), Verdict::Seen);
        }
        // … until the expected one
        assert_eq!(c.check(0, 1, 1000), Verdict::Take);
        assert_eq!(c.check(0, 1, 1001), Verdict::Take);
    }

    #[test]
    fn rewinds_stop_at_the_floor_and_a_remaining_gap_is_accepted() {
        let mut c = Continuity::default();
        c.expect(3, 7, 300, 200);
        assert_eq!(c.check(3, 7, 310), Verdict::Rewind { to: 200 });
        for offset in 200..300 {
            assert_eq!(c.check(3, 7, offset), Verdict::Seen);
        }
        assert_eq!(c.check(3, 7, 310), Verdict::Gap { from: 300, to: 310 });
        assert!(c.is_empty());
    }

    #[test]
    fn a_real_gap_far_from_the_log_start_is_accepted_after_the_longest_rewind() {
        let mut c = Continuity::default();
        c.expect(0, 1, 10_000_000, 0);
        let mut rewinds = 0;
        loop {
            match c.check(0, 1, 10_000_005) {
                Verdict::Rewind { .. } => rewinds += 1,
                Verdict::Gap { from, to } => {
                    assert_eq!((from, to), (10_000_000, 10_000_005));
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(rewinds, 10, "256 … 131072");
    }

    #[test]
    fn another_assignment_drops_the_watch() {
        let mut c = Continuity::default();
        c.expect(0, 1, 50, 0);
        assert_eq!(c.check(0, 2, 90), Verdict::Take);
        assert!(c.is_empty());
    }

    #[test]
    fn silence_rewinds_and_records_that_stop_short_end_the_watch() {
        let mut c = Continuity::default();
        c.expect(1, 1, 500, 0);
        let later = Instant::now() + SILENCE + Duration::from_millis(1);
        assert!(c.silent(Instant::now()).is_empty(), "not silent yet");
        assert_eq!(c.silent(later), vec![(1, 244)]);
        // nothing again: further back
        let later = Instant::now() + SILENCE + Duration::from_millis(1);
        assert_eq!(c.silent(later), vec![(1, 0)]);
        // earlier records come back, then nothing: the partition ends at 500
        assert_eq!(c.check(1, 1, 10), Verdict::Seen);
        let later = Instant::now() + SILENCE + Duration::from_millis(1);
        assert!(c.silent(later).is_empty());
        assert!(c.is_empty());
    }
}
