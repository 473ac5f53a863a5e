//! Committing: the contiguous completed positions go to the group coordinator, one commit at
//! a time, and a commit that fails is sent again at the next tick.
//!
//! Commits are synchronous on a blocking thread, so their result is known: an asynchronous
//! commit's failure would only surface in a callback, and an unchanged position would never
//! be sent again.
//!
//! Every commit of one consumer — the periodic one, the final one at shutdown, and the one on
//! revocation (in the rebalance callback) — passes one gate, [`CommitGate`], and takes its
//! positions while holding it: two commits in flight could land out of order, and the older,
//! lower position would then move the group's offset back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::consumer::{CommitMode, Consumer};

use super::{commit_list, Acker, SourceConsumer};
use crate::metrics::Metrics;

/// Serializes the commits of one consumer (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct CommitGate(Arc<Mutex<()>>);

impl CommitGate {
    /// Waits until no other commit of this consumer is in flight.
    pub fn enter(&self) -> MutexGuard<'_, ()> {
        // The gate guards no data; a panic while holding it leaves nothing inconsistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Commits one consumer's positions.
#[derive(Clone)]
pub struct Committer {
    consumer: Arc<SourceConsumer>,
    topic: String,
    acker: Acker,
    metrics: Arc<Metrics>,
    in_flight: Arc<AtomicBool>,
    gate: CommitGate,
}

impl Committer {
    /// A committer of `acker`'s positions of `topic` through `consumer`.
    pub fn new(
        consumer: Arc<SourceConsumer>,
        topic: &str,
        acker: Acker,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            gate: consumer.context().commit_gate(),
            consumer,
            topic: topic.to_owned(),
            acker,
            metrics,
            in_flight: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts a commit of the positions that moved, unless one is still running (two
    /// commits in flight could land out of order and move a position back).
    pub fn tick(&self) {
        if self.in_flight.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.commit_now();
            this.in_flight.store(false, Ordering::Release);
        });
    }

    /// Commits the positions that moved and waits for the answer.
    pub fn commit_now(&self) {
        let _gate = self.gate.enter();
        let positions = self.acker.take_commit_positions();
        if positions.is_empty() {
            return;
        }
        match self
            .consumer
            .commit(&commit_list(&self.topic, &positions), CommitMode::Sync)
        {
            Ok(()) => {
                // A partition revoked meanwhile is the new owner's to report.
                for (partition, offset) in positions
                    .iter()
                    .filter(|(p, _)| self.acker.generation(*p).is_some())
                {
                    self.metrics
                        .committed_offset
                        .with_label_values(&[&self.topic, &partition.to_string()])
                        .set(*offset);
                }
                tracing::debug!(topic = %self.topic, ?positions, "offsets committed");
            }
            Err(e) => {
                self.acker.mark_uncommitted();
                self.metrics.commit_failures.inc();
                tracing::warn!(topic = %self.topic, error = %e, "offset commit failed; retrying with the next commit");
            }
        }
    }
}
