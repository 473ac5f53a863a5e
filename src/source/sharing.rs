//! Which partitions carry more than one destination's events: what decides, when a lane's
//! queue is full, between pausing the partition (backpressure) and parking the lane's next
//! events by reference (overflow, [`super::divert`]).
//!
//! Why: a full queue used to pause the partition its next event came from, until the lane
//! drained. That is the right answer when the partition carries only that destination's
//! events — one busy tenant, an operator-wide archive: the destination sets the pace, nothing
//! is reordered and nothing is read twice. When the partition also carries other destinations'
//! events, the pause makes every one of them wait for the slowest destination among them — a
//! destination that answers, but slowly, held back every tenant sharing its partitions, against
//! the isolation invariant (ARCHITECTURE.md, 3). So the source overflows only where a pause
//! would hold someone else back.
//!
//! A partition counts as shared for [`SHARED_FOR`] after it last carried an event routed to
//! more than one lane, or to another lane than the event before it. The time is the source
//! loop's turn time, read only for an event that mixes lanes.

use std::time::Duration;

use tokio::time::Instant;

/// How long a partition counts as shared after it last carried events of two lanes: a
/// tenant that sends an event a minute still shares the partition with a busy one.
pub const SHARED_FOR: Duration = Duration::from_secs(60);

/// Partitions above this number are not tracked (never counted as shared: backpressure, as
/// before). Kafka topics have far fewer; the bound keeps a hostile partition number from
/// sizing the table.
const MAX_TRACKED_PARTITION: i32 = 1 << 16;

/// The lanes each partition's events went to lately.
#[derive(Debug, Default)]
pub struct Sharing {
    partitions: Vec<Mix>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Mix {
    /// The first lane of the partition's last routed event.
    last: Option<usize>,
    /// When the partition last carried events of two lanes.
    mixed_at: Option<Instant>,
}

impl Sharing {
    /// Records that an event of `partition` was routed to `lanes`; `now` is read only when the
    /// event mixes lanes.
    pub fn saw(&mut self, partition: i32, lanes: &[usize], now: impl FnOnce() -> Instant) {
        let Some((&first, rest)) = lanes.split_first() else {
            return;
        };
        let Some(index) = usize::try_from(partition)
            .ok()
            .filter(|_| partition <= MAX_TRACKED_PARTITION)
        else {
            return;
        };
        if self.partitions.len() <= index {
            self.partitions.resize(index + 1, Mix::default());
        }
        let mix = &mut self.partitions[index];
        let mixed = rest.iter().any(|&l| l != first) || mix.last.is_some_and(|l| l != first);
        mix.last = Some(first);
        if mixed {
            mix.mixed_at = Some(now());
        }
    }

    /// Whether `partition` carried events of two lanes within [`SHARED_FOR`] of `now`.
    pub fn shared(&self, partition: i32, now: Instant) -> bool {
        usize::try_from(partition)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .and_then(|m| m.mixed_at)
            .is_some_and(|at| now.saturating_duration_since(at) < SHARED_FOR)
    }

    /// Forgets the partitions' last lanes, whose numbers change with the routing (a reload);
    /// when they last mixed lanes still holds.
    pub fn forget_lanes(&mut self) {
        self.partitions.iter_mut().for_each(|m| m.last = None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_of_one_lanes_events_is_not_shared() {
        let mut sharing = Sharing::default();
        let t = Instant::now();
        for _ in 0..1_000 {
            sharing.saw(0, &[3], || panic!("no clock read without a mix"));
        }
        assert!(!sharing.shared(0, t));
        assert!(!sharing.shared(7, t), "a partition never seen");
    }

    #[test]
    fn lanes_taking_turns_or_one_event_of_two_lanes_share_a_partition() {
        let t = Instant::now();
        let mut turns = Sharing::default();
        turns.saw(2, &[1], || t);
        turns.saw(2, &[5], || t);
        assert!(turns.shared(2, t));
        assert!(!turns.shared(1, t), "only the partition that mixed");

        let mut fan_out = Sharing::default();
        fan_out.saw(0, &[1, 5], || t);
        assert!(fan_out.shared(0, t));
    }

    #[test]
    fn sharing_ends_a_while_after_the_last_mix_and_outlives_a_reload() {
        let t = Instant::now();
        let mut sharing = Sharing::default();
        sharing.saw(0, &[1], || t);
        sharing.saw(0, &[2], || t);
        // Only lane 2's events since.
        sharing.saw(0, &[2], || panic!("no mix"));
        assert!(sharing.shared(0, t + SHARED_FOR - Duration::from_millis(1)));
        assert!(!sharing.shared(0, t + SHARED_FOR));
        // A reload renumbers the lanes: the next event is not a mix, the last one still is.
        sharing.forget_lanes();
        sharing.saw(0, &[7], || panic!("no mix after a reload"));
        assert!(sharing.shared(0, t));
    }

    #[test]
    fn negative_and_huge_partition_numbers_are_not_tracked() {
        let t = Instant::now();
        let mut sharing = Sharing::default();
        for p in [-1, i32::MAX] {
            sharing.saw(p, &[1], || t);
            sharing.saw(p, &[2], || t);
            assert!(!sharing.shared(p, t));
        }
        assert!(sharing.partitions.is_empty());
    }
}
