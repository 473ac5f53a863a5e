//! Rebalance handling: what happens when the group gives partitions to this process or takes
//! them away.
//!
//! On revocation the revoked partitions' contiguous commit points are committed at once and
//! their trackers dropped; events of theirs still in lanes may still be delivered, but their
//! acknowledgements no longer count (the new owner reads from the committed point, so what
//! was incomplete is delivered again, never skipped).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::Acker;
use crate::metrics::Metrics;

/// The consumer's callbacks: rebalances, commits and librdkafka's own logs.
pub struct SourceContext {
    acker: Acker,
    topic: String,
    revoke_timeout: Duration,
    /// Set when the process stops: the drain already had its time, so a revocation while
    /// closing does not wait again.
    closing: AtomicBool,
    joined: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl SourceContext {
    /// Callbacks for a consumer of `topic` whose acknowledgements `acker` tracks; `joined`
    /// turns true at the first assignment.
    pub fn new(
        acker: Acker,
        topic: &str,
        revoke_timeout: Duration,
        joined: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            acker,
            topic: topic.to_owned(),
            revoke_timeout,
            closing: AtomicBool::new(false),
            joined,
            metrics,
        }
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect()
    }
}

/// A commit request for `positions` of `topic`.
pub fn commit_list(topic: &str, positions: &[(i32, i64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::with_capacity(positions.len());
    for &(partition, offset) in positions {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .expect("a plain offset is always accepted");
    }
    tpl
}

impl SourceContext {
    /// Gives the revoked partitions' events up to `revoke_timeout` to finish, so the new
    /// owner re-delivers as little as possible. Runs inside the consumer's poll; the lanes
    /// keep working on the runtime's other threads meanwhile.
    /// Marks the consumer as closing (no more waiting on revocation).
    pub fn set_closing(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    fn wait_for_revoked(&self, partitions: &[i32]) {
        if self.closing.load(Ordering::Relaxed) {
            return;
        }
        let deadline = Instant::now() + self.revoke_timeout;
        let wait = || {
            while self.acker.pending_in(partitions) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
        let left = self.acker.pending_in(partitions);
        if left > 0 {
            tracing::info!(topic = %self.topic, ?partitions, pending = left,
                "revoke timeout passed; unfinished events are left to the new owner (uncommitted)");
        }
    }
}

impl ClientContext for SourceContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "librdkafka", facility = fac, "{log_message}")
            }
            L::Warning => tracing::warn!(target: "librdkafka", facility = fac, "{log_message}"),
            L::Notice | L::Info => {
                tracing::info!(target: "librdkafka", facility = fac, "{log_message}")
            }
            L::Debug => tracing::debug!(target: "librdkafka", facility = fac, "{log_message}"),
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        for (partition, p) in &topic.partitions {
            // librdkafka reports -1 for partitions it holds no data on, and keeps reporting
            // partitions this member no longer owns.
            let owned = self.acker.generation(*partition).is_some();
            if *partition >= 0 && p.consumer_lag >= 0 && owned {
                self.metrics
                    .consumer_lag
                    .with_label_values(&[&self.topic, &partition.to_string()])
                    .set(p.consumer_lag);
            }
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = self.partitions(tpl);
            self.wait_for_revoked(&partitions);
            let positions = self.acker.revoke(&partitions);
            tracing::info!(topic = %self.topic, ?partitions, ?positions, "partitions revoked; committing their completed offsets");
            if !positions.is_empty() {
                if let Err(e) =
                    consumer.commit(&commit_list(&self.topic, &positions), CommitMode::Sync)
                {
                    self.metrics.commit_failures.inc();
                    tracing::warn!(error = %e, "commit on revocation failed; the new owner re-reads from the previous commit");
                }
            }
            // The new owner reports these partitions from now on; two members exporting the
            // same series would make the fleet's lag and offsets wrong.
            for partition in &partitions {
                let labels = [self.topic.as_str(), &partition.to_string()];
                let _ = self.metrics.consumer_lag.remove_label_values(&labels);
                let _ = self.metrics.committed_offset.remove_label_values(&labels);
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let partitions = self.partitions(tpl);
                self.acker.assign(&partitions);
                self.joined.store(true, Ordering::Relaxed);
                tracing::info!(topic = %self.topic, ?partitions, "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::debug!(?offsets, "offsets committed"),
            Err(e) => tracing::debug!(error = %e, "offset commit failed"),
        }
    }
}
