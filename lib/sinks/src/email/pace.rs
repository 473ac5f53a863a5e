//! At most one email per destination per `min_interval`, without losing or dropping events.
//!
//! The sink paces itself: a batch that comes while the destination's last email is younger
//! than `min_interval` waits in the sink until the interval has passed. Batches that come
//! while one waits join it: they are sent together, as one digest, by the first (the
//! leader), and each gets the leader's outcome. So events that arrive meanwhile go into the
//! next digest, and nothing is acknowledged before its digest was accepted.
//!
//! Only an accepted email starts an interval: a digest the server did not take (a 4xx, a
//! broken connection) is retried by the lane as usual, and the batches waiting behind it are
//! woken at once.
//!
//! What a waiting batch holds (documented in `docs/sinks.md`): one of the destination's
//! request slots (`max_in_flight`), its events' share of the in-flight budget, and its
//! partition's commit point, for up to `min_interval`. With five-minute batches and a
//! 15-minute interval about three batches wait at a time, within the default four slots. The lane's
//! in-line retry budget counts from the first attempt, wait included, so a digest refused
//! with a 4xx after a long wait is parked at once and retried from the retry topic (paced
//! the same way, through the same sink).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::Outcome;
use courier_core::event::Event;

/// A digest being gathered for the next allowed email.
struct Group {
    /// The events of every batch that joined, in the order they joined.
    events: Mutex<Vec<Event>>,
    /// The leader's outcome, for the batches that joined.
    done: watch::Sender<Option<Outcome>>,
    /// Wakes the leader early: an email that failed frees the interval again.
    wake: Notify,
}

#[derive(Default)]
struct State {
    /// When the last accepted email was sent, or when the one being sent started.
    last_sent: Option<Instant>,
    /// The digest waiting for its turn, which new batches join.
    next: Option<Arc<Group>>,
}

/// What a batch does.
pub enum Turn {
    /// Send now, alone; report the outcome with [`Pacer::sent`].
    Now(Sending),
    /// Wait for the turn, then send the events of every batch that joined (the leader).
    Lead(Leader),
    /// Joined a waiting digest: wait for its outcome.
    Follow(watch::Receiver<Option<Outcome>>),
}

/// An email being sent; its outcome decides whether the interval starts.
pub struct Sending {
    previous: Option<Instant>,
}

/// The leader of a waiting digest. Dropped without an outcome (its task cancelled), it
/// answers the batches that joined with a retry, so none of them waits forever.
pub struct Leader {
    group: Arc<Group>,
    pacer: Arc<Pacer>,
}

/// One destination's pacing.
pub struct Pacer {
    interval: Duration,
    state: Mutex<State>,
}

impl Pacer {
    /// Pacing by `interval` (zero: none).
    pub fn new(interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            interval,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is consistent after every statement; a panic elsewhere cannot break it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a batch of `events` does now.
    pub fn turn(self: &Arc<Self>, events: &[Event]) -> Turn {
        let mut state = self.lock();
        let now = Instant::now();
        if let Some(group) = &state.next {
            group
                .events
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(events);
            return Turn::Follow(group.done.subscribe());
        }
        let due = state.last_sent.map(|t| t + self.interval);
        if self.interval.is_zero() || due.is_none_or(|d| d <= now) {
            let previous = state.last_sent.replace(now);
            return Turn::Now(Sending { previous });
        }
        let group = Arc::new(Group {
            events: Mutex::new(events.to_vec()),
            done: watch::channel(None).0,
            wake: Notify::new(),
        });
        state.next = Some(group.clone());
        Turn::Lead(Leader {
            group,
            pacer: self.clone(),
        })
    }

    /// Records the outcome of an email: accepted, it starts the interval; otherwise the
    /// interval is as before, and a waiting digest is woken.
    pub fn sent(&self, sending: Sending, outcome: &Outcome) {
        if *outcome == Outcome::Delivered {
            return;
        }
        let mut state = self.lock();
        state.last_sent = sending.previous;
        if let Some(group) = &state.next {
            group.wake.notify_one();
        }
    }

    /// Waits for the leader's turn, then takes the digest's events (its own and those that
    /// joined); batches coming later form the next digest.
    pub async fn wait(&self, leader: &Leader) -> (Vec<Event>, Sending) {
        loop {
            let due = {
                let mut state = self.lock();
                let now = Instant::now();
                match state.last_sent.map(|t| t + self.interval) {
                    Some(due) if due > now => due,
                    _ => {
                        state.next = None;
                        let previous = state.last_sent.replace(now);
                        let events = std::mem::take(
                            &mut *leader
                                .group
                                .events
                                .lock()
                                .unwrap_or_else(|p| p.into_inner()),
                        );
                        return (events, Sending { previous });
                    }
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = leader.group.wake.notified() => {}
            }
        }
    }
}

impl Leader {
    /// Gives the batches that joined the digest's outcome.
    pub fn finish(self, outcome: &Outcome) {
        self.group.done.send_replace(Some(outcome.clone()));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if self.group.done.borrow().is_some() {
            return;
        }
        // Cancelled: the joined batches are retried by their lanes.
        let mut state = self.pacer.lock();
        if state
            .next
            .as_ref()
            .is_some_and(|g| Arc::ptr_eq(g, &self.group))
        {
            state.next = None;
        }
        drop(state);
        self.group.done.send_replace(Some(Outcome::Retry {
            error: crate::DeliveryError {
                kind: crate::ErrorKind::Internal,
                http_status: None,
                message: "the digest these events joined was cancelled before it was sent".into(),
            },
            retry_after: None,
        }));
    }
}

/// Waits for the outcome of the digest a batch joined.
pub async fn follow(mut done: watch::Receiver<Option<Outcome>>) -> Outcome {
    match done.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().expect("waited for an outcome"),
        Err(_) => Outcome::Retry {
            error: crate::DeliveryError {
                kind: crate::ErrorKind::Internal,
                http_status: None,
                message: "the digest these events joined ended without an outcome".into(),
            },
            retry_after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(offset: i64) -> Event {
        courier_core::event::test_event(bytes::Bytes::from_static(b"{}"), 0, offset)
    }

    #[tokio::test]
    async fn one_email_per_interval_and_late_batches_join_the_next() {
        let interval = Duration::from_millis(300);
        let pacer = Pacer::new(interval);
        let Turn::Now(first) = pacer.turn(&[ev(1)]) else {
            panic!("the first email goes at once")
        };
        pacer.sent(first, &Outcome::Delivered);
        let started = Instant::now();
        let Turn::Lead(leader) = pacer.turn(&[ev(2)]) else {
            panic!("the second waits")
        };
        let Turn::Follow(joined) = pacer.turn(&[ev(3), ev(4)]) else {
            panic!("the third joins")
        };
        let (events, sending) = pacer.wait(&leader).await;
        assert!(started.elapsed() >= interval);
        let offsets: Vec<i64> = events.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, [2, 3, 4]);
        pacer.sent(sending, &Outcome::Delivered);
        leader.finish(&Outcome::Delivered);
        assert_eq!(follow(joined).await, Outcome::Delivered);
        // The next batch waits a full interval again.
        assert!(matches!(pacer.turn(&[ev(5)]), Turn::Lead(_)));
    }

    #[tokio::test]
    async fn a_failed_email_frees_the_interval_and_a_cancelled_leader_answers() {
        // An hour: the leader below is woken by the failure, never by the interval.
        let pacer = Pacer::new(Duration::from_secs(3600));
        let Turn::Now(first) = pacer.turn(&[ev(1)]) else {
            panic!()
        };
        let Turn::Lead(leader) = pacer.turn(&[ev(2)]) else {
            panic!()
        };
        let retry = Outcome::Retry {
            error: crate::DeliveryError {
                kind: crate::ErrorKind::SmtpReply,
                http_status: None,
                message: "451".into(),
            },
            retry_after: None,
        };
        pacer.sent(first, &retry);
        let (events, _sending) = pacer.wait(&leader).await;
        assert_eq!(events.len(), 1);
        // A leader dropped before its outcome answers its followers.
        let Turn::Lead(leader) = pacer.turn(&[ev(3)]) else {
            panic!()
        };
        let Turn::Follow(joined) = pacer.turn(&[ev(4)]) else {
            panic!()
        };
        drop(leader);
        assert!(matches!(follow(joined).await, Outcome::Retry { .. }));
        assert!(matches!(pacer.turn(&[ev(5)]), Turn::Lead(_)));
    }
}
