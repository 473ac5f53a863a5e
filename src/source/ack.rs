//! Acknowledgement tracking: which offsets of each partition are complete, and the highest
//! *contiguous* commit point.
//!
//! An offset is complete when every destination it was routed to has accepted it or had its
//! failure recorded. The commit point never passes an incomplete offset, however many later
//! offsets completed: an event that failed is never skipped because a later one succeeded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::event::AckId;

/// The pending offsets of one partition, in the order they were read (increasing).
#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// (offset, destinations still to complete), front = oldest incomplete.
    pending: VecDeque<(i64, u32)>,
    /// Highest offset ever tracked.
    last_tracked: Option<i64>,
    /// Next offset to commit (Kafka convention: the next one to read).
    position: Option<i64>,
}

impl OffsetTracker {
    /// Tracks `offset`, which must wait for `remaining` completions (0: complete now).
    /// Returns false (and tracks nothing) for an offset not above every tracked one.
    pub fn track(&mut self, offset: i64, remaining: u32) -> bool {
        if self.last_tracked.is_some_and(|last| offset <= last) {
            return false;
        }
        self.last_tracked = Some(offset);
        if remaining == 0 && self.pending.is_empty() {
            self.position = Some(offset + 1);
        } else {
            self.pending.push_back((offset, remaining));
        }
        true
    }

    /// Records one completion of `offset`. Unknown offsets are ignored.
    pub fn complete(&mut self, offset: i64) {
        // Offsets are usually contiguous, so the entry is found by its distance from the
        // oldest pending one; gaps (compaction, transaction markers) fall back to a search.
        let i = match self.pending.front() {
            Some(&(first, _)) if offset >= first => {
                let guess = (offset - first) as usize;
                match self.pending.get(guess) {
                    Some(&(o, _)) if o == offset => Some(guess),
                    _ => self.pending.binary_search_by_key(&offset, |(o, _)| *o).ok(),
                }
            }
            _ => None,
        };
        if let Some(i) = i {
            let entry = &mut self.pending[i].1;
            *entry = entry.saturating_sub(1);
        }
        while let Some(&(offset, 0)) = self.pending.front() {
            self.pending.pop_front();
            self.position = Some(offset + 1);
        }
    }

    /// The offset to commit: one past the highest contiguous completed offset.
    pub fn position(&self) -> Option<i64> {
        self.position
    }

    /// Offsets still waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[derive(Debug)]
struct PartitionAcks {
    generation: u64,
    tracker: OffsetTracker,
    committed: Option<i64>,
}

#[derive(Debug, Default)]
struct AckState {
    partitions: HashMap<i32, PartitionAcks>,
    next_generation: u64,
}

impl AckState {
    fn fresh(&mut self) -> PartitionAcks {
        self.next_generation += 1;
        PartitionAcks {
            generation: self.next_generation,
            tracker: OffsetTracker::default(),
            committed: None,
        }
    }
}

/// Shared acknowledgement state of every partition of one topic this process holds.
/// The source tracks, lanes complete, the committer and the rebalance handler read positions.
#[derive(Debug, Clone, Default)]
pub struct Acker {
    state: Arc<Mutex<AckState>>,
}

impl Acker {
    /// A tracker for no partitions yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, AckState> {
        // A panic while holding this lock would be a bug in this module; the state is still
        // consistent (every method leaves it so), so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a fresh tracker for newly assigned partitions.
    pub fn assign(&self, partitions: &[i32]) {
        let mut s = self.lock();
        for &p in partitions {
            let fresh = s.fresh();
            s.partitions.insert(p, fresh);
        }
    }

    /// The current assignment generation of a partition (changes on every re-assignment).
    pub fn generation(&self, partition: i32) -> Option<u64> {
        self.lock().partitions.get(&partition).map(|p| p.generation)
    }

    /// Tracks a message read from `partition` at `offset` that needs `remaining`
    /// completions.
    pub fn track(&self, partition: i32, offset: i64, remaining: u32) -> AckId {
        let mut s = self.lock();
        if !s.partitions.contains_key(&partition) {
            let fresh = s.fresh();
            s.partitions.insert(partition, fresh);
        }
        let p = s
            .partitions
            .get_mut(&partition)
            .expect("inserted just above");
        let generation = if p.tracker.track(offset, remaining) {
            p.generation
        } else {
            0
        };
        AckId {
            partition,
            generation,
            offset,
        }
    }

    /// Records completions.
    pub fn complete(&self, ids: impl IntoIterator<Item = AckId>) {
        let mut s = self.lock();
        for id in ids {
            if id.generation == 0 {
                continue;
            }
            if let Some(p) = s.partitions.get_mut(&id.partition) {
                if p.generation == id.generation {
                    p.tracker.complete(id.offset);
                }
            }
        }
    }

    /// Positions that moved since they were last taken, marking them taken.
    pub fn take_commit_positions(&self) -> Vec<(i32, i64)> {
        let mut s = self.lock();
        let mut out = Vec::new();
        for (&partition, p) in s.partitions.iter_mut() {
            if let Some(pos) = p.tracker.position() {
                if p.committed != Some(pos) {
                    p.committed = Some(pos);
                    out.push((partition, pos));
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Makes every position count as not yet committed (after a failed commit), so the next
    /// commit sends them again.
    pub fn mark_uncommitted(&self) {
        for p in self.lock().partitions.values_mut() {
            p.committed = None;
        }
    }

    /// Forgets revoked partitions, returning their final positions (to commit now). Acks of
    /// their in-flight events are ignored from here on.
    pub fn revoke(&self, partitions: &[i32]) -> Vec<(i32, i64)> {
        let mut s = self.lock();
        let mut out = Vec::new();
        for p in partitions {
            if let Some(acks) = s.partitions.remove(p) {
                if let Some(pos) = acks.tracker.position() {
                    out.push((*p, pos));
                }
            }
        }
        out
    }

    /// Current position and pending count of every partition (for status and tests).
    pub fn snapshot(&self) -> Vec<(i32, Option<i64>, usize)> {
        let s = self.lock();
        let mut out: Vec<_> = s
            .partitions
            .iter()
            .map(|(&p, a)| (p, a.tracker.position(), a.tracker.pending()))
            .collect();
        out.sort_unstable();
        out
    }

    /// The current assignment generation of `partition` and the highest offset tracked in it
    /// (where a resumed partition must go on).
    pub fn last_tracked(&self, partition: i32) -> Option<(u64, i64)> {
        let s = self.lock();
        let p = s.partitions.get(&partition)?;
        Some((p.generation, p.tracker.last_tracked?))
    }

    /// Events of `partitions` still waiting for completion.
    pub fn pending_in(&self, partitions: &[i32]) -> usize {
        let s = self.lock();
        partitions
            .iter()
            .filter_map(|p| s.partitions.get(p))
            .map(|p| p.tracker.pending())
            .sum()
    }

    /// Events still waiting for completion, over all partitions.
    pub fn pending(&self) -> usize {
        self.lock()
            .partitions
            .values()
            .map(|p| p.tracker.pending())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commit_point_waits_for_the_oldest_incomplete() {
        let mut t = OffsetTracker::default();
        for o in 10..15 {
            assert!(t.track(o, 1));
        }
        assert_eq!(t.position(), None);
        t.complete(12);
        t.complete(13);
        assert_eq!(t.position(), None, "10 and 11 are still pending");
        t.complete(10);
        assert_eq!(t.position(), Some(11));
        t.complete(11);
        assert_eq!(t.position(), Some(14));
        t.complete(14);
        assert_eq!(t.position(), Some(15));
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn fan_out_needs_every_destination() {
        let mut t = OffsetTracker::default();
        t.track(0, 3);
        t.complete(0);
        t.complete(0);
        assert_eq!(t.position(), None);
        t.complete(0);
        assert_eq!(t.position(), Some(1));
    }

    #[test]
    fn unrouted_offsets_complete_at_once_but_not_past_pending_ones() {
        let mut t = OffsetTracker::default();
        t.track(0, 0);
        assert_eq!(t.position(), Some(1));
        t.track(1, 1);
        t.track(2, 0);
        assert_eq!(t.position(), Some(1));
        t.complete(1);
        assert_eq!(t.position(), Some(3));
    }

    #[test]
    fn gaps_in_offsets_are_fine_and_repeats_are_refused() {
        let mut t = OffsetTracker::default();
        t.track(5, 1);
        t.track(9, 1);
        assert!(!t.track(9, 1));
        assert!(!t.track(3, 1));
        t.complete(9);
        t.complete(5);
        assert_eq!(t.position(), Some(10));
        t.complete(9); // a duplicate completion of a finished offset changes nothing
        assert_eq!(t.position(), Some(10));
    }

    #[test]
    fn revoked_generations_are_ignored() {
        let acker = Acker::new();
        let old = acker.track(0, 0, 1);
        assert_eq!(acker.revoke(&[0]), vec![]);
        acker.assign(&[0]);
        let new = acker.track(0, 0, 1);
        acker.complete([old]);
        assert_eq!(acker.take_commit_positions(), vec![]);
        acker.complete([new]);
        assert_eq!(acker.take_commit_positions(), vec![(0, 1)]);
        assert_eq!(
            acker.take_commit_positions(),
            vec![],
            "unchanged: nothing new"
        );
    }

    proptest! {
        /// Random fan-outs and random completion orders never commit past an incomplete
        /// offset, and commit everything once all completed.
        #[test]
        fn never_commits_past_an_incomplete_offset(
            fanouts in proptest::collection::vec(0u32..4, 1..200),
            gaps in proptest::collection::vec(1i64..3, 200),
            order_seed in any::<u64>(),
        ) {
            let mut t = OffsetTracker::default();
            let mut offset = 0;
            let mut completions = Vec::new();
            let mut offsets = Vec::new();
            for (i, &n) in fanouts.iter().enumerate() {
                offset += gaps[i];
                t.track(offset, n);
                offsets.push((offset, n));
                for _ in 0..n { completions.push(offset); }
            }
            let mut rng = fastrand::Rng::with_seed(order_seed);
            rng.shuffle(&mut completions);
            let mut done: std::collections::HashMap<i64, u32> = Default::default();
            for c in completions {
                t.complete(c);
                *done.entry(c).or_default() += 1;
                if let Some(pos) = t.position() {
                    for &(o, n) in &offsets {
                        if o < pos {
                            prop_assert_eq!(done.get(&o).copied().unwrap_or(0), n,
                                "offset {} committed (position {}) before it completed", o, pos);
                        }
                    }
                }
            }
            prop_assert_eq!(t.position(), Some(offset + 1));
            prop_assert_eq!(t.pending(), 0);
        }
    }
}
