//! Backpressure per partition: when a destination's queue is full, the partition whose event
//! did not fit is paused and its events wait here, in order, until the queue has room. Other
//! partitions, and other destinations' queues, keep flowing.

use std::collections::{HashMap, VecDeque};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;

use crate::event::Event;

/// Events of paused partitions waiting for room in their lanes.
#[derive(Debug, Default)]
pub struct Stalls {
    partitions: HashMap<i32, Stalled>,
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
    /// The lane is closed (only during shutdown).
    Closed,
}

impl Stalls {
    /// Whether any partition waits.
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// Events waiting over all partitions.
    pub fn len(&self) -> usize {
        self.partitions.values().map(|s| s.events.len()).sum()
    }

    /// Queues `event` for lane `lane`, or keeps it here if the lane is full or its partition
    /// already waits (order within a partition is kept).
    pub fn offer(&mut self, queue: &Sender<Event>, event: Event, generation: u64) -> Offer {
        let partition = event.partition;
        if let Some(stalled) = self.partitions.get_mut(&partition) {
            stalled.events.push_back((queue.clone(), event));
            return Offer::Stalled(false);
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
                Offer::Stalled(true)
            }
            Err(TrySendError::Closed(_)) => Offer::Closed,
        }
    }

    /// Moves waiting events into lanes that have room. Returns the partitions that no longer
    /// wait (resume them). `generation(p)` is the partition's current assignment generation:
    /// events of a revoked assignment are dropped (the new owner reads them again).
    pub fn drain(&mut self, generation: impl Fn(i32) -> Option<u64>) -> Vec<i32> {
        let mut resumed = Vec::new();
        self.partitions.retain(|&partition, stalled| {
            if generation(partition) != Some(stalled.generation) {
                resumed.push(partition);
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
                    Err(TrySendError::Closed(_)) => {}
                }
            }
            resumed.push(partition);
            false
        });
        resumed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::AckId;
    use bytes::Bytes;
    use tokio::sync::mpsc;

    fn ev(partition: i32, offset: i64) -> Event {
        Event {
            raw: Bytes::new(),
            partition,
            offset,
            failure_event: false,
            ack: AckId {
                partition,
                generation: 1,
                offset,
            },
        }
    }

    #[test]
    fn a_full_lane_stalls_only_its_partition_and_keeps_order() {
        let (full_tx, mut full_rx) = mpsc::channel(1);
        let (free_tx, mut free_rx) = mpsc::channel(100);
        let mut s = Stalls::default();
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
        let mut s = Stalls::default();
        s.offer(&tx, ev(0, 0), 1);
        s.offer(&tx, ev(0, 1), 1);
        assert_eq!(s.drain(|_| Some(2)), vec![0]);
        assert!(s.is_empty());
    }
}
