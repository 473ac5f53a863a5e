//! Wiring: source → route → lanes → sinks, acknowledgements back, and an orderly shutdown.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::failures::FailureReporter;
use crate::lane::{self, DestinationHealth, LaneContext};
use crate::metrics::Metrics;
use crate::parking::{self, Parker};
use crate::retry_worker::{RetryWorker, Target};
use crate::routing::Router;
use crate::server::Health;
use crate::sinks;
use crate::source::{self, Acker, Committer, Input, LaneInput, Source, SourceContext};

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A Kafka client could not be created or subscribed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A destination's sink could not be built.
    #[error("destination {project}/{id}: {source}")]
    Sink {
        /// The destination's project.
        project: String,
        /// The destination's id.
        id: String,
        /// The cause.
        source: sinks::BuildError,
    },
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every event read was delivered or reported before the deadline.
    Complete,
    /// `shutdown_timeout` passed; what was left stays uncommitted and is read again later.
    TimedOut,
}

/// Runs the pipeline until `stop` is cancelled, then drains within `shutdown_timeout` and
/// commits what completed. Nothing incomplete is committed.
pub async fn run(
    config: &Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: CancellationToken,
) -> Result<Drain, PipelineError> {
    let abandon = CancellationToken::new();
    let failures = Arc::new(FailureReporter::new(
        config,
        metrics.clone(),
        abandon.clone(),
    )?);
    let parker = Arc::new(Parker::new(config, abandon.clone())?);
    parking::ensure_topic(
        config,
        &config.failures.retry_topic,
        config.failures.retry_topic_partitions,
    )
    .await?;
    let acker = Acker::new();
    let context = LaneContext {
        acker: acker.clone(),
        failures: failures.clone(),
        metrics: metrics.clone(),
        parker: parker.clone(),
        source_topic: config.kafka.topic.clone(),
        abandon: abandon.clone(),
    };
    let mut targets = HashMap::new();
    let mut router = Router::new();
    let mut inputs = Vec::new();
    let mut lane_tasks = Vec::new();
    for d in config.destinations.iter().filter(|d| d.enabled) {
        let sink = sinks::build(d, &config.kafka.topic).map_err(|source| PipelineError::Sink {
            project: d.project.clone(),
            id: d.id.clone(),
            source,
        })?;
        let health = Arc::new(DestinationHealth::new(d, failures.clone(), metrics.clone()));
        targets.insert(
            (d.project.clone(), d.id.clone()),
            Arc::new(Target::new(
                d.clone(),
                sink.clone(),
                health.clone(),
                metrics.destination(&d.project, &d.id),
            )),
        );
        let lane = lane::spawn(d, sink, health, context.clone());
        router.add(&d.project, &d.id, &d.filter, inputs.len());
        inputs.push(LaneInput {
            queue: lane.queue,
            routed: metrics.routed.with_label_values(&[d.sink.type_name()]),
            stats: metrics.destination(&d.project, &d.id),
        });
        lane_tasks.push(lane.task);
    }
    let topic = config.kafka.topic.clone();
    let consumer = Arc::new(source::consumer(
        config,
        Input::EventLogs,
        SourceContext::new(
            acker.clone(),
            &topic,
            config.kafka.revoke_timeout,
            health.joined.clone(),
            metrics.clone(),
        ),
    )?);
    consumer.subscribe(&[&topic])?;
    let retry_acker = Acker::new();
    let retry_topic = config.failures.retry_topic.clone();
    let retry_consumer = Arc::new(source::consumer(
        config,
        Input::Retry,
        SourceContext::new(
            retry_acker.clone(),
            &retry_topic,
            config.kafka.revoke_timeout,
            Arc::new(AtomicBool::new(false)),
            metrics.clone(),
        ),
    )?);
    retry_consumer.subscribe(&[&retry_topic])?;
    let worker = RetryWorker::new(
        retry_consumer.clone(),
        config,
        targets,
        parker,
        failures.clone(),
        metrics.clone(),
        retry_acker.clone(),
    );
    tracing::info!(topic = %topic, group = %config.kafka.group_id,
        destinations = inputs.len(), failures_topic = %failures.topic(), "courier started");

    let mut source = Source::new(
        consumer.clone(),
        topic.clone(),
        router,
        inputs,
        acker.clone(),
        failures.clone(),
        metrics.clone(),
        config,
    );
    let ((), mut retry_tasks) = tokio::join!(source.run(&stop), worker.run(&stop));

    // Drain: close the lanes' queues, let queued batches finish, keep committing.
    tracing::info!(pending = acker.pending(), timeout = ?config.shutdown_timeout, "stopping: draining lanes");
    let mut side_tasks = std::mem::take(&mut source.side_tasks);
    drop(source);
    let drained = async {
        for task in lane_tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "lane task failed");
            }
        }
        while side_tasks.join_next().await.is_some() {}
        while retry_tasks.join_next().await.is_some() {}
    };
    let committers = [
        Committer::new(consumer.clone(), &topic, acker.clone(), metrics.clone()),
        Committer::new(
            retry_consumer.clone(),
            &retry_topic,
            retry_acker.clone(),
            metrics.clone(),
        ),
    ];
    let committer = {
        let committers = committers.clone();
        let interval = config.kafka.commit_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                committers.iter().for_each(Committer::tick);
            }
        })
    };
    let drain = tokio::select! {
        () = drained => Drain::Complete,
        () = tokio::time::sleep(config.shutdown_timeout) => Drain::TimedOut,
    };
    committer.abort();
    if drain == Drain::TimedOut {
        tracing::warn!(pending = acker.pending(), "shutdown timeout passed; abandoning what is left (it stays uncommitted and will be read again)");
        abandon.cancel();
    }
    failures.flush(Duration::from_secs(5));
    for c in &committers {
        let c = c.clone();
        let _ = tokio::task::spawn_blocking(move || c.commit_now()).await;
    }
    tracing::info!(positions = ?acker.snapshot(), "final offsets committed");
    consumer.context().set_closing();
    retry_consumer.context().set_closing();
    Ok(drain)
}
