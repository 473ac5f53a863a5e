//! Rebalance handling: what happens when the group gives partitions to this process or takes
//! them away.
//!
//! On assignment courier decides where each partition starts itself, instead of leaving it
//! to `auto.offset.reset`: the committed offset when there is one, and for a partition the
//! group never committed, the end or the beginning as `auto.offset.reset` says (default
//! `latest`). librdkafka's own reset is always `earliest`, so that an offset that turns out
//! to be out of range — a committed offset below the log start, a rewind past deleted
//! records — re-reads rather than jumps to the end and skips everything in between; a
//! committed offset below the log start is logged and counted (those events were deleted by
//! retention before courier read them). The start offset is then watched
//! ([`super::continuity`]): a broker that skips records there is noticed.
//!
//! On revocation the revoked partitions' contiguous commit points are committed at once and
//! their trackers dropped; events of theirs still in lanes may still be delivered, but their
//! acknowledgements no longer count (the new owner reads from the committed point, so what
//! was incomplete is delivered again, never skipped).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::commit::CommitGate;
use super::continuity::SharedContinuity;
use super::divert::Collector;
use super::Acker;
use crate::metrics::Metrics;

/// Longest wait for the committed offsets and watermarks of newly assigned partitions.
const START_LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Where a partition the group never committed starts.
    new_partition_start: Offset,
    /// Start offsets of new assignments, watched for skipped records.
    continuity: Arc<SharedContinuity>,
    /// Shared with the consumer's committer: one commit at a time.
    commit_gate: CommitGate,
    /// Failing destinations' events collected around their lanes, parked before a revocation
    /// waits for its partitions' events.
    diverted: Option<Arc<Collector>>,
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
            new_partition_start: Offset::End,
            continuity: Arc::default(),
            commit_gate: CommitGate::default(),
            diverted: None,
        }
    }

    /// Parks the events `diverted` collects before a revocation waits for its partitions'
    /// events: the source that would park them is blocked in that wait.
    pub fn with_diverted(mut self, diverted: Arc<Collector>) -> Self {
        self.diverted = Some(diverted);
        self
    }

    /// The gate every commit of this consumer passes.
    pub fn commit_gate(&self) -> CommitGate {
        self.commit_gate.clone()
    }

    /// Partitions the group never committed start at `start` (`Offset::End` unless set).
    pub fn with_new_partition_start(mut self, start: Offset) -> Self {
        self.new_partition_start = start;
        self
    }

    /// The watch of start offsets, shared with the reader of this consumer.
    pub fn continuity(&self) -> Arc<SharedContinuity> {
        self.continuity.clone()
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
        let deadline = crate::clock::std_deadline(Instant::now(), self.revoke_timeout);
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

/// Where one newly assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The partition.
    pub partition: i32,
    /// The offset to assign it at; `None` leaves it to the new-partition rule.
    pub offset: Option<i64>,
    /// The log start, when it was looked up.
    pub log_start: Option<i64>,
    /// Offsets below the log start that were never read (deleted by retention).
    pub deleted: i64,
}

/// Decides a partition's start from its committed offset and its log start (pure, so tests
/// cover it without a broker).
pub fn start_of(partition: i32, committed: Option<i64>, log_start: Option<i64>) -> Start {
    match (committed, log_start) {
        (Some(c), Some(low)) if c < low => Start {
            partition,
            offset: Some(low),
            log_start: Some(low),
            deleted: low - c,
        },
        (committed, log_start) => Start {
            partition,
            offset: committed,
            log_start,
            deleted: 0,
        },
    }
}

impl SourceContext {
    /// Looks up where each newly assigned partition starts and writes it into `tpl`.
    fn choose_starts(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
    ) -> Vec<Start> {
        let partitions = self.partitions(tpl);
        if partitions.is_empty() {
            return Vec::new();
        }
        let committed = match consumer.committed_offsets(tpl.clone(), START_LOOKUP_TIMEOUT) {
            Ok(list) => list,
            Err(e) => {
                // librdkafka looks the committed offsets up itself; only the checks are lost.
                tracing::warn!(topic = %self.topic, ?partitions, error = %e,
                    "cannot look up committed offsets of assigned partitions; starting where the group committed, unchecked");
                return Vec::new();
            }
        };
        let mut starts = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let committed = committed
                .find_partition(&self.topic, partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) if o >= 0 => Some(o),
                    _ => None,
                });
            let log_start = match consumer.fetch_watermarks(
                &self.topic,
                partition,
                START_LOOKUP_TIMEOUT,
            ) {
                Ok((low, _)) if low >= 0 => Some(low),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(topic = %self.topic, partition, error = %e, "cannot look up the log start of an assigned partition");
                    None
                }
            };
            let start = start_of(partition, committed, log_start);
            if start.deleted > 0 {
                self.metrics
                    .skipped_offsets
                    .with_label_values(&[&self.topic, "retention"])
                    .inc_by(u64::try_from(start.deleted).unwrap_or(0));
                tracing::warn!(topic = %self.topic, partition, committed = committed.unwrap_or(-1),
                    log_start = start.log_start.unwrap_or(-1),
                    "the committed offset is below the log start: events in [committed, log_start) were deleted by retention before courier read them; starting at the log start");
            }
            let offset = match start.offset {
                Some(o) => Offset::Offset(o),
                None => self.new_partition_start,
            };
            if let Err(e) = tpl.set_partition_offset(&self.topic, partition, offset) {
                tracing::warn!(topic = %self.topic, partition, error = %e, "cannot set a start offset");
            }
            starts.push(start);
        }
        starts
    }

    /// Watches the start of each partition just assigned.
    fn watch_starts(&self, starts: &[Start]) {
        self.continuity.with(|continuity| {
            for start in starts {
                let (Some(offset), Some(generation)) =
                    (start.offset, self.acker.generation(start.partition))
                else {
                    continue;
                };
                continuity.expect(
                    start.partition,
                    generation,
                    offset,
                    start.log_start.unwrap_or(0),
                );
            }
        });
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
    /// What rdkafka's default does — pre-rebalance, (incremental) assign or unassign,
    /// post-rebalance — with the start offsets of an assignment chosen first.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let assigning = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        let starts = if assigning {
            self.choose_starts(consumer, tpl)
        } else {
            Vec::new()
        };
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(&*tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(&*tpl),
            other => Rebalance::Error(KafkaError::Rebalance(other.into())),
        };
        self.pre_rebalance(consumer, &rebalance);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match (assigning, cooperative) {
            (true, true) => consumer.incremental_assign(tpl),
            (true, false) => consumer.assign(tpl),
            (false, true) => consumer.incremental_unassign(tpl),
            (false, false) => consumer.unassign(),
        };
        if let Err(e) = result {
            tracing::error!(topic = %self.topic, error = %e, assigning, "cannot apply a rebalance");
        }
        self.post_rebalance(consumer, &rebalance);
        if assigning {
            self.watch_starts(&starts);
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = self.partitions(tpl);
            if let Some(diverted) = &self.diverted {
                diverted.park_all();
            }
            self.wait_for_revoked(&partitions);
            // A periodic commit in flight finishes first; this one, with the final positions,
            // lands after it.
            let _gate = self.commit_gate.enter();
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
