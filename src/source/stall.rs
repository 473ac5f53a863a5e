//! Backpressure per partition: when a destination's queue is full, the events of the
//! partition whose event did not fit wait here, in order, until the queue has room. Other
//! partitions, and other destinations' queues, keep flowing.
//!
//! A partition is paused only once its wait is long ([`WaitLimits`]), not at the first event
//! that does not fit. Pausing makes librdkafka drop what it prefetched for the partition and
//! fetch it again on resume (a fetch round trip, and the records decoded twice). A busy
//! destination that keeps up on average fills its queue for moments only — the source resumes
//! a partition, a burst arrives, a request is slow — and those moments cost a pause and a
//! refetch each when every full queue paused at once. The wait is bounded per partition and in
//! all, and what waits here is counted in the in-flight budget like every event read.

use std::collections::{HashMap, VecDeque};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;

use std::sync::Arc;

use crate::event::Event;
use crate::metrics::Metrics;

/// How long a partition's wait may grow before the partition is paused: in events and in
/// bytes, for one partition and for all waiting partitions together (so that a slow destination
/// on many partitions cannot hold much of the in-flight budget here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitLimits {
    /// Events of one partition.
    pub partition_events: usize,
    /// Bytes of one partition's events.
    pub partition_bytes: usize,
    /// Events of all waiting partitions.
    pub total_events: usize,
    /// Bytes of all waiting partitions' events.
    pub total_bytes: usize,
}

impl WaitLimits {
    /// The limits for a global in-flight budget of `max_events` events and `max_bytes` bytes:
    /// one partition waits up to about one fetch (1,024 events, 1 MiB: librdkafka's
    /// `max.partition.fetch.bytes`), all together up to four, and never more than a 64th (one
    /// partition) or a 16th (all) of the budget.
    pub fn for_budget(max_events: usize, max_bytes: usize) -> Self {
        const MIB: usize = 1024 * 1024;
        Self {
            partition_events: (max_events / 64).clamp(1, 1024),
            partition_bytes: (max_bytes / 64).clamp(1, MIB),
            total_events: (max_events / 16).clamp(1, 4096),
            total_bytes: (max_bytes / 16).clamp(1, 4 * MIB),
        }
    }

    /// A partition is paused at its first event that does not fit (tests of the order and the
    /// budget, which a longer wait only delays).
    #[cfg(test)]
    pub fn none() -> Self {
        Self {
            partition_events: 1,
            partition_bytes: 1,
            total_events: 1,
            total_bytes: 1,
        }
    }
}

/// Events of partitions waiting for room in their lanes.
///
/// Every event here is counted in the global in-flight budget (the source held it before
/// offering it); an event leaves either into its lane, which gives it back once settled, or
/// is dropped here — events of a revoked assignment, or of a closed lane — and then this queue
/// gives it back. Nothing else drops a waiting event.
pub struct Stalls {
    partitions: HashMap<i32, Stalled>,
    limits: WaitLimits,
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
struct Stalled {
    /// Assignment generation when the partition stalled; a re-assignment voids the wait.
    generation: u64,
    /// Each event with the queue of the lane it goes to (a reload may replace the lanes
    /// meanwhile; a waiting event still goes where it was routed).
    events: VecDeque<(Sender<Event>, Event)>,
    /// Bytes of `events`.
    bytes: usize,
    /// Whether the partition was paused (its wait reached the limits).
    paused: bool,
}

impl Stalled {
    fn new(generation: u64, paused: bool) -> Self {
        Self {
            generation,
            events: VecDeque::new(),
            bytes: 0,
            paused,
        }
    }
}

/// What a delivery to a lane did.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Queued in the lane.
    Queued,
    /// Waiting here; `true` when the partition's wait just reached the limits (pause it).
    Stalled(bool),
    /// The lane is closed (only during shutdown); the event was dropped and given back.
    Closed,
}

impl Stalls {
    /// An empty queue giving dropped events back to `metrics`' in-flight budget.
    pub fn new(metrics: Arc<Metrics>, limits: WaitLimits) -> Self {
        Self {
            partitions: HashMap::new(),
            limits,
            metrics,
        }
    }

    /// Whether any partition waits.
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// Events waiting over all partitions.
    pub fn len(&self) -> usize {
        self.waiting().0
    }

    /// Events and bytes waiting over all partitions (a few at most: read on the slow path).
    fn waiting(&self) -> (usize, usize) {
        self.partitions
            .values()
            .fold((0, 0), |(n, b), s| (n + s.events.len(), b + s.bytes))
    }

    /// Queues `event` for lane `lane`, or keeps it here if the lane is full or its partition
    /// already waits (order within a partition is kept). `generation` is the assignment the
    /// event was read in: a wait left from an earlier assignment of the partition is dropped
    /// first (its events are the new owner's, possibly this process again, to read anew), so
    /// that events of the current assignment never share its fate.
    #[inline]
    pub fn offer(&mut self, queue: &Sender<Event>, event: Event, generation: u64) -> Offer {
        // Nothing waits, nearly always: then this is one `try_send`, inlined into the
        // source's loop.
        let partition = event.partition;
        let was_paused = match self.partitions.is_empty() {
            true => false,
            false => match self.unless_waiting(partition, generation) {
                Some(was_paused) => was_paused,
                None => return self.wait(queue, event, generation, false),
            },
        };
        match queue.try_send(event) {
            Ok(()) => {
                // The partition is still paused for the earlier assignment's wait: an empty
                // wait resumes it at the next drain.
                if was_paused {
                    self.partitions
                        .insert(partition, Stalled::new(generation, true));
                }
                Offer::Queued
            }
            Err(TrySendError::Full(event)) => self.wait(queue, event, generation, was_paused),
            Err(TrySendError::Closed(event)) => {
                self.give_back([event]);
                Offer::Closed
            }
        }
    }

    /// `None` when `partition` waits in assignment `generation` (its next event waits too);
    /// otherwise drops a wait left from an earlier assignment and tells whether that wait had
    /// paused the partition.
    fn unless_waiting(&mut self, partition: i32, generation: u64) -> Option<bool> {
        let was_paused = match self.partitions.get(&partition) {
            None => return Some(false),
            Some(stalled) if stalled.generation == generation => return None,
            Some(stalled) => stalled.paused,
        };
        self.drop_wait(partition);
        Some(was_paused)
    }

    /// Keeps `event` waiting behind its partition's wait, or a new one, which starts paused
    /// when `was_paused` (the partition is still paused for an earlier assignment's wait);
    /// says whether to pause the partition now.
    fn wait(
        &mut self,
        queue: &Sender<Event>,
        event: Event,
        generation: u64,
        was_paused: bool,
    ) -> Offer {
        let partition = event.partition;
        let limits = self.limits;
        let (events, bytes) = self.waiting();
        let over_all =
            events + 1 >= limits.total_events || bytes + event.raw.len() >= limits.total_bytes;
        let stalled = self
            .partitions
            .entry(partition)
            .or_insert_with(|| Stalled::new(generation, was_paused));
        stalled.bytes += event.raw.len();
        stalled.events.push_back((queue.clone(), event));
        let long = stalled.events.len() >= limits.partition_events
            || stalled.bytes >= limits.partition_bytes
            || over_all;
        let pause = long && !stalled.paused;
        stalled.paused |= pause;
        Offer::Stalled(pause)
    }

    /// Moves waiting events into lanes that have room. Returns the paused partitions that no
    /// longer wait (resume them). `generation(p)` is the partition's current assignment
    /// generation: events of a revoked assignment are dropped (the new owner reads them again).
    pub fn drain(&mut self, generation: impl Fn(i32) -> Option<u64>) -> Vec<i32> {
        let mut resumed = Vec::new();
        let mut dropped = Vec::new();
        self.partitions.retain(|&partition, stalled| {
            if generation(partition) != Some(stalled.generation) {
                if stalled.paused {
                    resumed.push(partition);
                }
                dropped.extend(stalled.events.drain(..).map(|(_, e)| e));
                return false;
            }
            while let Some((queue, event)) = stalled.events.pop_front() {
                let len = event.raw.len();
                match queue.try_send(event) {
                    Ok(()) => stalled.bytes -= len,
                    Err(TrySendError::Full(event)) => {
                        stalled.events.push_front((queue, event));
                        return true;
                    }
                    // Closed lanes only happen at shutdown; the offset stays incomplete.
                    Err(TrySendError::Closed(event)) => {
                        stalled.bytes -= len;
                        dropped.push(event);
                    }
                }
            }
            if stalled.paused {
                resumed.push(partition);
            }
            false
        });
        self.give_back(dropped);
        resumed
    }

    /// Drops `partition`'s wait (a stale assignment's) and gives its events back.
    fn drop_wait(&mut self, partition: i32) {
        if let Some(stale) = self.partitions.remove(&partition) {
            self.give_back(stale.events.into_iter().map(|(_, e)| e));
        }
    }

    /// Gives events that leave this queue without entering a lane back to the budget.
    fn give_back(&self, events: impl IntoIterator<Item = Event>) {
        let (count, bytes) = events
            .into_iter()
            .fold((0, 0), |(n, b), e| (n + 1, b + e.raw.len()));
        if count > 0 {
            self.metrics.release_events(count, bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::sync::mpsc;

    fn ev(partition: i32, offset: i64) -> Event {
        crate::event::test_event(Bytes::new(), partition, offset)
    }

    #[test]
    fn a_full_lane_stalls_only_its_partition_and_keeps_order() {
        let (full_tx, mut full_rx) = mpsc::channel(1);
        let (free_tx, mut free_rx) = mpsc::channel(100);
        let mut s = Stalls::new(Arc::new(Metrics::new()), WaitLimits::none());
        assert_eq!(s.offer(&full_tx, ev(0, 0), 1), Offer::Queued);
        assert_eq!(s.offer(&full_tx, ev(0, 1), 1), Offer::Stalled(true));
        // the stalled partition's events wait even for a free lane (order is kept) …
        assert_eq!(s.offer(&free_tx, ev(0, 2), 1), Offer::Stalled(false));
        // … while another partition flows
        assert_eq!(s.offer(&free_tx, ev(1, 0), 1), Offer::Queued);
        assert_eq!(s.len(), 2);
        assert!(s.drain(|_| Some(1)).is_empty(), "still full");
        assert_eq!(full_rx.try_recv().unwrap().offset, 0);
        assert_eq!(s.drain(|_| Some(1)), vec![0]);
        assert!(s.is_empty());
        assert_eq!(full_rx.try_recv().unwrap().offset, 1);
        let free: Vec<_> = std::iter::from_fn(|| free_rx.try_recv().ok())
            .map(|e| (e.partition, e.offset))
            .collect();
        assert_eq!(free, vec![(1, 0), (0, 2)]);
    }

    #[test]
    fn a_reassigned_partition_drops_its_wait() {
        let (tx, _rx) = mpsc::channel(1);
        let mut s = Stalls::new(Arc::new(Metrics::new()), WaitLimits::none());
        s.offer(&tx, ev(0, 0), 1);
        s.offer(&tx, ev(0, 1), 1);
        assert_eq!(s.drain(|_| Some(2)), vec![0]);
        assert!(s.is_empty());
    }

    #[test]
    fn a_wait_left_from_an_earlier_assignment_does_not_take_new_events_with_it() {
        let metrics = Arc::new(Metrics::new());
        let (tx, mut rx) = mpsc::channel(1);
        let mut s = Stalls::new(metrics.clone(), WaitLimits::none());
        for offset in 0..3 {
            metrics.hold_event(0);
            s.offer(&tx, ev(0, offset), 1);
        }
        // re-assigned (generation 2) before the wait was drained: the old events are dropped
        // and given back, the new one waits on its own
        rx.try_recv().unwrap();
        metrics.release_events(1, 0);
        metrics.hold_event(0);
        assert_eq!(s.offer(&tx, ev(0, 10), 2), Offer::Queued);
        assert_eq!(
            metrics.in_flight_events.get(),
            1,
            "only the queued event is held"
        );
        assert_eq!(rx.try_recv().unwrap().offset, 10);
    }

    fn limits(partition_events: usize, total_events: usize) -> WaitLimits {
        WaitLimits {
            partition_events,
            partition_bytes: usize::MAX,
            total_events,
            total_bytes: usize::MAX,
        }
    }

    #[test]
    fn a_partition_is_paused_only_once_its_wait_is_long() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut s = Stalls::new(Arc::new(Metrics::new()), limits(3, 100));
        assert_eq!(s.offer(&tx, ev(0, 0), 1), Offer::Queued);
        // the queue is full: the next events wait, the partition is still read …
        assert_eq!(s.offer(&tx, ev(0, 1), 1), Offer::Stalled(false));
        assert_eq!(s.offer(&tx, ev(0, 2), 1), Offer::Stalled(false));
        // … until its wait is long, once
        assert_eq!(s.offer(&tx, ev(0, 3), 1), Offer::Stalled(true));
        assert_eq!(s.offer(&tx, ev(0, 4), 1), Offer::Stalled(false));
        assert_eq!(s.len(), 4);
        let mut got = Vec::new();
        while !s.is_empty() {
            got.push(rx.try_recv().unwrap().offset);
            let resumed = s.drain(|_| Some(1));
            assert_eq!(resumed, if s.is_empty() { vec![0] } else { vec![] });
        }
        got.push(rx.try_recv().unwrap().offset);
        assert_eq!(got, [0, 1, 2, 3, 4], "in order");
    }

    #[test]
    fn a_wait_that_drains_before_it_is_long_needs_no_resume() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut s = Stalls::new(Arc::new(Metrics::new()), limits(3, 100));
        s.offer(&tx, ev(0, 0), 1);
        assert_eq!(s.offer(&tx, ev(0, 1), 1), Offer::Stalled(false));
        rx.try_recv().unwrap();
        assert!(
            s.drain(|_| Some(1)).is_empty(),
            "never paused: nothing to resume"
        );
        assert!(s.is_empty());
        assert_eq!(s.len(), 0);
        assert_eq!(rx.try_recv().unwrap().offset, 1);
        // a later wait starts afresh
        assert_eq!(s.offer(&tx, ev(0, 2), 1), Offer::Queued);
        assert_eq!(s.offer(&tx, ev(0, 3), 1), Offer::Stalled(false));
        assert_eq!(s.offer(&tx, ev(0, 4), 1), Offer::Stalled(false));
        assert_eq!(s.offer(&tx, ev(0, 5), 1), Offer::Stalled(true));
    }

    #[test]
    fn a_partition_reassigned_while_paused_is_resumed_even_when_its_next_event_fits() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut s = Stalls::new(Arc::new(Metrics::new()), WaitLimits::none());
        s.offer(&tx, ev(0, 0), 1);
        assert_eq!(s.offer(&tx, ev(0, 1), 1), Offer::Stalled(true));
        // re-assigned (generation 2): the old wait is dropped, and the first new event fits
        rx.try_recv().unwrap();
        assert_eq!(s.offer(&tx, ev(0, 5), 2), Offer::Queued);
        // the partition is still paused: the next drain resumes it
        assert_eq!(s.drain(|_| Some(2)), vec![0]);
        assert!(s.is_empty());
    }

    #[test]
    fn the_wait_of_all_partitions_together_is_bounded() {
        let (tx, _rx) = mpsc::channel(1);
        let mut s = Stalls::new(Arc::new(Metrics::new()), limits(100, 4));
        s.offer(&tx, ev(0, 0), 1);
        assert_eq!(s.offer(&tx, ev(0, 1), 1), Offer::Stalled(false));
        assert_eq!(s.offer(&tx, ev(0, 2), 1), Offer::Stalled(false));
        assert_eq!(s.offer(&tx, ev(1, 0), 1), Offer::Stalled(false));
        // four wait in all: the partition that made it so is paused, and every one after it
        // at its first waiting event
        assert_eq!(s.offer(&tx, ev(1, 1), 1), Offer::Stalled(true));
        assert_eq!(s.offer(&tx, ev(2, 0), 1), Offer::Stalled(true));
        assert_eq!(s.offer(&tx, ev(0, 3), 1), Offer::Stalled(true));
    }

    #[test]
    fn bytes_count_as_much_as_events() {
        let (tx, _rx) = mpsc::channel(1);
        let limits = WaitLimits {
            partition_events: 100,
            partition_bytes: 25,
            total_events: 100,
            total_bytes: 1000,
        };
        let mut s = Stalls::new(Arc::new(Metrics::new()), limits);
        let big = |offset| crate::event::test_event(Bytes::from(vec![b'x'; 10]), 0, offset);
        s.offer(&tx, big(0), 1);
        assert_eq!(s.offer(&tx, big(1), 1), Offer::Stalled(false));
        assert_eq!(s.offer(&tx, big(2), 1), Offer::Stalled(false));
        assert_eq!(
            s.offer(&tx, big(3), 1),
            Offer::Stalled(true),
            "30 bytes wait"
        );
    }

    #[test]
    fn limits_follow_the_in_flight_budget() {
        let mib = 1024 * 1024;
        // courier's defaults: about one fetch per partition, four in all
        assert_eq!(
            WaitLimits::for_budget(100_000, 128 * mib),
            WaitLimits {
                partition_events: 1024,
                partition_bytes: mib,
                total_events: 4096,
                total_bytes: 4 * mib,
            }
        );
        // a small budget: a 64th per partition, a 16th in all, and never zero
        assert_eq!(
            WaitLimits::for_budget(6400, 16 * mib),
            WaitLimits {
                partition_events: 100,
                partition_bytes: mib / 4,
                total_events: 400,
                total_bytes: mib,
            }
        );
        assert_eq!(WaitLimits::for_budget(1, 1), WaitLimits::none());
    }

    /// Random reads, lane takes, drains and rebalances over three partitions and two lanes
    /// of different sizes: once every lane is emptied and nothing waits, the in-flight budget
    /// is back at zero and every offset tracked in a current assignment has completed.
    mod model {
        use super::*;
        use crate::source::Acker;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Read { partition: i32, lanes: u8 },
            Take { lane: usize },
            Drain,
            Rebalance { partition: i32 },
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0..3i32, 1..4u8).prop_map(|(partition, lanes)| Op::Read { partition, lanes }),
                3 => (0..2usize).prop_map(|lane| Op::Take { lane }),
                2 => Just(Op::Drain),
                1 => (0..3i32).prop_map(|partition| Op::Rebalance { partition }),
            ]
        }

        fn settle(metrics: &Metrics, acker: &Acker, event: Event) {
            acker.complete([event.ack]);
            metrics.release_events(1, event.raw.len());
        }

        proptest! {
            #[test]
            fn counters_return_to_zero_and_no_offset_is_orphaned(ops in proptest::collection::vec(op(), 1..200), wait in 1..5usize) {
                let metrics = Arc::new(Metrics::new());
                let acker = Acker::new();
                acker.assign(&[0, 1, 2]);
                let mut stalls = Stalls::new(metrics.clone(), limits(wait, wait * 2));
                // Partitions paused and not yet resumed, from what the queue answered.
                let mut paused = std::collections::HashSet::new();
                let lanes: Vec<_> = [1usize, 3].iter().map(|&n| mpsc::channel::<Event>(n)).collect();
                let (senders, mut receivers): (Vec<_>, Vec<_>) = lanes.into_iter().unzip();
                let mut next_offset = [0i64; 3];
                for op in ops {
                    match op {
                        Op::Read { partition, lanes } => {
                            let offset = next_offset[partition as usize];
                            next_offset[partition as usize] += 1;
                            let targets: Vec<usize> = (0..2).filter(|l| lanes & (1 << l) != 0).collect();
                            let ack = acker.track(partition, offset, targets.len() as u32);
                            for lane in targets {
                                let raw = Bytes::from(vec![b'x'; 10 + offset as usize % 7]);
                                metrics.hold_event(raw.len());
                                let event = Event { raw, partition, offset, failure_event: false, ack };
                                if stalls.offer(&senders[lane], event, ack.generation) == Offer::Stalled(true) {
                                    // A partition is paused once until it is resumed (a
                                    // re-assignment keeps the pause).
                                    prop_assert!(paused.insert(partition), "paused twice");
                                }
                            }
                        }
                        Op::Take { lane } => {
                            if let Ok(event) = receivers[lane].try_recv() {
                                settle(&metrics, &acker, event);
                            }
                        }
                        Op::Drain => {
                            for p in stalls.drain(|p| acker.generation(p)) {
                                prop_assert!(paused.remove(&p), "resumed without a pause");
                            }
                        }
                        Op::Rebalance { partition } => {
                            acker.revoke(&[partition]);
                            acker.assign(&[partition]);
                        }
                    }
                }
                for _ in 0..10_000 {
                    for rx in &mut receivers {
                        while let Ok(event) = rx.try_recv() {
                            settle(&metrics, &acker, event);
                        }
                    }
                    if stalls.is_empty() {
                        break;
                    }
                    for p in stalls.drain(|p| acker.generation(p)) {
                        prop_assert!(paused.remove(&p), "resumed without a pause");
                    }
                }
                prop_assert!(stalls.is_empty());
                prop_assert!(paused.is_empty(), "partitions left paused: {:?}", paused);
                prop_assert_eq!(stalls.len(), 0);
                prop_assert_eq!(metrics.in_flight_events.get(), 0);
                prop_assert_eq!(metrics.in_flight_bytes.get(), 0);
                prop_assert_eq!(acker.pending(), 0, "tracked offsets of a current assignment never completed");
            }
        }
    }
}
