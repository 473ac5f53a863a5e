//! Wiring: source → route → lanes → sinks, acknowledgements back, and an orderly shutdown.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::failures::FailureReporter;
use crate::lane::LaneContext;
use crate::metrics::Metrics;
use crate::parking::{retention, Parker};
use crate::retry_worker::RetryWorker;
use crate::server::Health;
use crate::source::divert::{Budget, Collector};
use crate::source::{self, Acker, Committer, Input, Source, SourceContext};
use crate::topology::{Destinations, StartError};

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A Kafka client could not be created or subscribed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A destination could not be started.
    #[error(transparent)]
    Destination(#[from] StartError),
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every event read was delivered or reported before the deadline.
    Complete,
    /// `shutdown_timeout` passed; what was left stays uncommitted and is read again later.
    TimedOut,
}

/// Runs the pipeline until `stop` is cancelled, applying the destinations of each
/// configuration received on `reloads` (already validated), then drains within `shutdown_timeout` and
/// commits what completed. Nothing incomplete is committed.
pub async fn run(
    config: &Arc<Config>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    mut reloads: mpsc::Receiver<Arc<Config>>,
    stop: CancellationToken,
) -> Result<Drain, PipelineError> {
    let abandon = CancellationToken::new();
    let failures = Arc::new(
        FailureReporter::new(config, metrics.clone(), abandon.clone())?
            .with_writable_flag(health.failures_writable.clone()),
    );
    // Readiness needs a writable failures topic: check it now and, while it is not, again
    // every few seconds (writes update the flag too). The check never blocks the start.
    let prober = {
        let (failures, writable) = (failures.clone(), health.failures_writable.clone());
        tokio::spawn(async move {
            loop {
                if !writable.load(std::sync::atomic::Ordering::Relaxed) {
                    let f = failures.clone();
                    let _ = tokio::task::spawn_blocking(move || f.probe()).await;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    };
    crate::kafka::ensure_topic(
        config,
        &config.failures.retry_topic,
        config.failures.retry_topic_partitions,
        false,
    )
    .await?;
    // How parked batches wait depends on the Event Logs topic's retention: read it once now
    // (bounded; the broker just answered), again when a reload changes the schedule. The
    // reading goes on beside the group's join instead of before it (a slow broker's answer
    // would delay reading): until the decision parking uses copies, which are always safe,
    // and `/readyz` waits for it.
    let mut first_decision = Some({
        let (config, parking, metrics) = (config.clone(), health.parking.clone(), metrics.clone());
        let deciding = async move { parking.publish(retention::decide(&config).await, &metrics) };
        tokio::spawn(tracing::Instrument::in_current_span(deciding))
    });
    let parker = Arc::new(Parker::new(
        config,
        abandon.clone(),
        health.parking.clone(),
    )?);
    let acker = Acker::new();
    let context = LaneContext {
        acker: acker.clone(),
        failures: failures.clone(),
        metrics: metrics.clone(),
        parker: parker.clone(),
        source_topic: config.kafka.topic.clone(),
        abandon: abandon.clone(),
        spill_budget: Some(Budget {
            max_events: config.limits.max_in_flight_events,
            max_bytes: config.limits.max_in_flight_bytes,
        }),
        daily_caps: true,
    };
    let mut destinations = Destinations::new(
        context,
        failures.clone(),
        metrics.clone(),
        &config.kafka.topic,
    )
    .with_registry(health.destinations.clone());
    let (topology, targets, _) = destinations.apply(&config.destinations, &config.security)?;
    let (topology_tx, topology_rx) = watch::channel(Arc::new(topology));
    let (targets_tx, targets_rx) = watch::channel(Arc::new(targets));
    let topic = config.kafka.topic.clone();
    let diverted = Collector::new(metrics.clone());
    let consumer = Arc::new(source::consumer(
        config,
        Input::EventLogs,
        SourceContext::new(
            acker.clone(),
            &topic,
            config.kafka.revoke_timeout,
            health.joined.clone(),
            metrics.clone(),
        )
        .with_diverted(diverted.clone()),
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
        targets_rx,
        parker,
        failures.clone(),
        metrics.clone(),
        retry_acker.clone(),
    );
    tracing::info!(topic = %topic, group = %config.kafka.group_id,
        destinations = destinations.len(), failures_topic = %failures.topic(), "courier started");

    let mut source = Source::new(
        consumer.clone(),
        topic.clone(),
        topology_rx,
        acker.clone(),
        failures.clone(),
        metrics.clone(),
        health.parking.clone(),
        diverted.clone(),
        config,
    );
    let reloader = async {
        let mut running = config.clone();
        loop {
            let next = tokio::select! {
                next = reloads.recv() => next,
                () = stop.cancelled() => break,
            };
            let Some(new) = next else {
                // No more reloads: wait for the stop.
                stop.cancelled().await;
                break;
            };
            match destinations.apply(&new.destinations, &new.security) {
                Ok((topology, targets, changes)) => {
                    // Both receivers live as long as the source and the worker run.
                    let _ = topology_tx.send(Arc::new(topology));
                    let _ = targets_tx.send(Arc::new(targets));
                    metrics.config_reloads.with_label_values(&["success"]).inc();
                    tracing::info!(added = ?changes.added, changed = ?changes.changed,
                        removed = ?changes.removed, unchanged = changes.unchanged,
                        "configuration reloaded");
                    // A longer schedule may outlast the retention that allowed references.
                    // After the first decision, which is for the configuration before this.
                    let decided = tokio::select! {
                        decided = async {
                            if let Some(first) = first_decision.take() {
                                let _ = first.await;
                            }
                            retention::redecide(&running, &new).await
                        } => decided,
                        () = stop.cancelled() => break,
                    };
                    if let Some(decision) = decided {
                        health.parking.publish(decision, &metrics);
                    }
                    running = new;
                }
                Err(e) => {
                    metrics.config_reloads.with_label_values(&["failure"]).inc();
                    tracing::error!(error = %e, "configuration reload rejected; the running configuration is unchanged");
                }
            }
        }
    };
    // The retry worker runs in a task of its own: joined with the source, it ran on the
    // source's thread, and with 30,000 references waiting in the stalled benchmark it took a
    // tenth of that thread's time from reading.
    let worker = {
        let stop = stop.clone();
        tokio::spawn(tracing::Instrument::in_current_span(async move {
            worker.run(&stop).await
        }))
    };
    let ((), ()) = tokio::join!(source.run(&stop), reloader);
    let mut retry_tasks = match worker.await {
        Ok(tasks) => tasks,
        Err(e) => {
            // A panic in the worker: its attempts were dropped with it, and their offsets
            // stay uncommitted (read again after a restart), never skipped.
            tracing::error!(error = %e, "the retry worker failed");
            tokio::task::JoinSet::new()
        }
    };
    let lane_tasks = destinations.close();
    drop(topology_tx);
    drop(targets_tx);

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
        diverted.drained().await;
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
    prober.abort();
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
