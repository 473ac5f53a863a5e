//! Backpressure per partition: when a destination's queue is full, the partition whose event
//! did not fit is paused and its events wait here, in order, until the queue has room. Other
//! partitions, and other destinations' queues, keep flowing.

use std::collections::{HashMap, VecDeque};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;

use std::sync::Arc;

use crate::event::Event;
use crate::metrics::Metrics;

/// Events of paused partitions waiting for room in their lanes.
///
/// Every event here is counted in the global in-flight budget (the source held it before
/// offering it); an event leaves either into its lane, which gives it back once settled, or
/// is dropped here — events of a revoked assignment, or of a closed lane — and then this queue
/// gives it back. Nothing else drops a waiting event.
pub struct Stalls {
    partitions: HashMap<i32, Stalled>,
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
struct Stalled {
    /// Assignment generation when the partition stalled; a re-assignment voids the wait.
    generation: u64,
    /// Each event with the queue of the lane it goes to (a reload may replace the lanes
    /// meanwhile; a waiting event still goes where it was routed).
    events: VecDeque<(Sender<Event>, Event)>,
}

/// What a delivery to a lane did.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Queued in the lane.
    Queued,
    /// Waiting here; `true` when the partition just stalled (pause it).
    Stalled(bool),
    /// The lane is closed (only during shutdown); the event was dropped and given back.
    Closed,
}

impl Stalls {
    /// An empty queue giving dropped events back to `metrics`' in-flight budget.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            partitions: HashMap::new(),
            metrics,
        }
    }

    /// Whether any partition waits.
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// Events waiting over all partitions.
    pub fn len(&self) -> usize {
        self.partitions.values().map(|s| s.events.len()).sum()
    }

    /// Queues `event` for lane `lane`, or keeps it here if the lane is full or its partition
    /// already waits (order within a partition is kept). `generation` is the assignment the
    /// event was read in: a wait left from an earlier assignment of the partition is dropped
    /// first (its events are the new owner's, possibly this process again, to read anew), so
    /// that events of the current assignment never share its fate.
    pub fn offer(&mut self, queue: &Sender<Event>, event: Event, generation: u64) -> Offer {
        let partition = event.partition;
        let mut was_paused = false;
        if let Some(stalled) = self.partitions.get_mut(&partition) {
            if stalled.generation == generation {
                stalled.events.push_back((queue.clone(), event));
                return Offer::Stalled(false);
            }
            if let Some(stale) = self.partitions.remove(&partition) {
                self.give_back(stale.events.into_iter().map(|(_, e)| e));
            }
            was_paused = true;
        }
        match queue.try_send(event) {
            Ok(()) => Offer::Queued,
            Err(TrySendError::Full(event)) => {
                self.partitions.insert(
                    partition,
                    Stalled {
                        generation,
                        events: VecDeque::from([(queue.clone(), event)]),
                    },
                );
                Offer::Stalled(!was_paused)
            }
            Err(TrySendError::Closed(event)) => {
                self.give_back([event]);
                Offer::Closed
            }
        }
    }

    /// Moves waiting events into lanes that have room. Returns the partitions that no longer
    /// wait (resume them). `generation(p)` is the partition's current assignment generation:
    /// events of a revoked assignment are dropped (the new owner reads them again).
    pub fn drain(&mut self, generation: impl Fn(i32) -> Option<u64>) -> Vec<i32> {
        let mut resumed = Vec::new();
        let mut dropped = Vec::new();
        self.partitions.retain(|&partition, stalled| {
            if generation(partition) != Some(stalled.generation) {
                resumed.push(partition);
                dropped.extend(stalled.events.drain(..).map(|(_, e)| e));
                return false;
            }
            while let Some((queue, event)) = stalled.events.pop_front() {
                match queue.try_send(event) {
                    Ok(()) => {}
                    Err(TrySendError::Full(event)) => {
                        stalled.events.push_front((queue, event));
                        return true;
                    }
                    // Closed lanes only happen at shutdown; the offset stays incomplete.
                    Err(TrySendError::Closed(event)) => dropped.push(event),
                }
            }
            resumed.push(partition);
            false
        });
        self.give_back(dropped);
        resumed
    }

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
        let mut s = Stalls::new(Arc::new(Metrics::new()));
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
        let mut s = Stalls::new(Arc::new(Metrics::new()));
        s.offer(&tx, ev(0, 0), 1);
        s.offer(&tx, ev(0, 1), 1);
        assert_eq!(s.drain(|_| Some(2)), vec![0]);
        assert!(s.is_empty());
    }

    #[test]
    fn a_wait_left_from_an_earlier_assignment_does_not_take_new_events_with_it() {
        let metrics = Arc::new(Metrics::new());
        let (tx, mut rx) = mpsc::channel(1);
        let mut s = Stalls::new(metrics.clone());
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
            fn counters_return_to_zero_and_no_offset_is_orphaned(ops in proptest::collection::vec(op(), 1..200)) {
                let metrics = Arc::new(Metrics::new());
                let acker = Acker::new();
                acker.assign(&[0, 1, 2]);
                let mut stalls = Stalls::new(metrics.clone());
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
                                stalls.offer(&senders[lane], event, ack.generation);
                            }
                        }
                        Op::Take { lane } => {
                            if let Ok(event) = receivers[lane].try_recv() {
                                settle(&metrics, &acker, event);
                            }
                        }
                        Op::Drain => {
                            stalls.drain(|p| acker.generation(p));
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
                    stalls.drain(|p| acker.generation(p));
                }
                prop_assert!(stalls.is_empty());
                prop_assert_eq!(metrics.in_flight_events.get(), 0);
                prop_assert_eq!(metrics.in_flight_bytes.get(), 0);
                prop_assert_eq!(acker.pending(), 0, "tracked offsets of a current assignment never completed");
            }
        }
    }
}
