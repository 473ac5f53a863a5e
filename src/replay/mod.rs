//! `courier replay`: re-deliver exactly a range of the Event Logs topic, or exactly what a
//! range of failure events reports, through the same routing, lanes and sinks as `run` — so
//! batches, signatures, webhook ids and S3 keys are those of a live delivery, and receivers
//! can deduplicate.
//!
//! A replay reads with manual partition assignment: it never joins the live consumer group
//! and never commits. Failed deliveries are not parked (there is no later); they are
//! reported in failure events as usual and make the command exit 1.
//!
//! The same work runs inside the daemon as a job of the destinations API
//! (`POST …/replay-failures`): [`execute`] with a [`Progress`] the API reads.
//!
//! This module chooses the destinations and runs the lanes; [`read`] reads the ranges,
//! [`plan`] turns failure events into the ranges and events to replay, [`range`] resolves
//! `--from`/`--to`, and [`progress`] says how far it got.

mod plan;
mod progress;
mod range;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

pub use crate::source::ranges::PartitionRange;
pub use plan::{failed_range, FailedRange, Plan, Target};
pub use progress::{Phase, Progress, Summary};
pub use range::{check_order, parse_bound, resolve, Bound};

use crate::source::ranges::{read_ranges, ReadProgress};

use crate::config::{self, Config, DestinationConfig};
use crate::event::{Decoded, Event};
use crate::failures::size::reported_id;
use crate::failures::FailureReporter;
use crate::lane::LaneContext;
use crate::metrics::Metrics;
use crate::parking::retention::{ParkingDecision, ParkingState};
use crate::parking::Parker;
use crate::source::{Acker, Topology};
use crate::topology::Destinations;

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayArgs {
    /// The configuration file.
    pub config: PathBuf,
    /// Start (included): offset, RFC 3339 time or relative time.
    pub from: String,
    /// End (excluded).
    pub to: String,
    /// The topic to read (default `kafka.topic`; with `--from-failures`, the failures topic).
    pub topic: Option<String>,
    /// Partitions to read (default all).
    pub partitions: Vec<i32>,
    /// Only these projects' destinations.
    pub projects: Vec<String>,
    /// Only destinations with these ids.
    pub destinations: Vec<String>,
    /// Count what would be sent; send nothing.
    pub dry_run: bool,
    /// At most this many events per second.
    pub rate: Option<u64>,
    /// Replay what the failure events in [from, to) of the failures topic report.
    pub from_failures: bool,
}

/// A usage or configuration problem: nothing was sent.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// Runs a replay; exit code 0 when everything was delivered, 1 when something failed, 2 on
/// a usage or configuration error.
pub fn main(args: ReplayArgs) -> ExitCode {
    let config = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("courier replay: invalid configuration:\n{e}");
            return ExitCode::from(2);
        }
    };
    let mut log = config.log.clone();
    if std::io::stderr().is_terminal() && std::env::var_os("RUST_LOG").is_none() {
        // The progress bar is the output; only problems are logged.
        log.level = "warn".into();
    }
    crate::logging::init(&log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("courier replay: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let progress = Progress::new(std::io::stderr().is_terminal());
    let result = runtime.block_on(async {
        let stop = CancellationToken::new();
        tokio::spawn(crate::signal::stop_on_signal(stop.clone()));
        execute(&config, &args, &progress, &stop).await
    });
    match result {
        Ok(summary) => {
            summary.print(args.dry_run);
            if summary.failed() > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(ReplayError::Usage(e)) => {
            eprintln!("courier replay: {e}");
            ExitCode::from(2)
        }
        Err(ReplayError::Failed(e)) => {
            eprintln!("courier replay: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why a replay did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A usage or configuration problem: nothing was sent.
    #[error(transparent)]
    Usage(UsageError),
    /// It started and could not go on (Kafka unreachable, interrupted).
    #[error("{0}")]
    Failed(String),
}

impl From<UsageError> for ReplayError {
    fn from(e: UsageError) -> Self {
        ReplayError::Usage(e)
    }
}

/// The destinations the replay may deliver to.
fn select(config: &Config, args: &ReplayArgs) -> Result<Vec<Arc<DestinationConfig>>, UsageError> {
    for p in &args.projects {
        if !config.destinations.iter().any(|d| &d.project == p) {
            return Err(usage(format!(
                "unknown project {p:?}: no destination is configured for it"
            )));
        }
    }
    for id in &args.destinations {
        if !config.destinations.iter().any(|d| {
            &d.id == id && (args.projects.is_empty() || args.projects.contains(&d.project))
        }) {
            return Err(usage(format!("unknown destination {id:?}")));
        }
    }
    Ok(config
        .destinations
        .iter()
        .filter(|d| d.enabled)
        .filter(|d| args.projects.is_empty() || args.projects.contains(&d.project))
        .filter(|d| args.destinations.is_empty() || args.destinations.contains(&d.id))
        .map(|d| {
            let mut d = (**d).clone();
            // No parking: a replay has no later; what finally fails is reported.
            d.delivery.retry_schedule.clear();
            Arc::new(d)
        })
        .collect())
}

/// Reads the failure events of `[from, to)` in the failures topic into a plan.
async fn plan_from_failures(
    config: &Config,
    args: &ReplayArgs,
    from: Bound,
    to: Bound,
    stop: &CancellationToken,
) -> Result<(String, Plan), UsageError> {
    let failures_topic = args.topic.clone().unwrap_or_else(|| {
        config
            .failures
            .topic
            .clone()
            .unwrap_or_else(|| config.kafka.topic.clone())
    });
    let consumer = reader(config)?;
    let partitions = partitions_of(&consumer, &failures_topic, &[])?;
    let ranges = resolve(&consumer, &failures_topic, &partitions, from, to).map_err(usage)?;
    let mut plan = Plan::default();
    let mut source_topic = None;
    read_ranges(&consumer, &failures_topic, &ranges, &ReadProgress::default(), stop, |_, _, payload| {
        if let Some(range) = payload.and_then(failed_range) {
            let wanted = (args.projects.is_empty() || args.projects.contains(&range.project))
                && (args.destinations.is_empty() || args.destinations.contains(&range.destination));
            if wanted {
                source_topic.get_or_insert_with(|| range.topic.clone());
                if Some(&range.topic) == source_topic.as_ref() {
                    plan.add(range);
                } else {
                    tracing::warn!(topic = %range.topic, "failure event about another source topic; replay them in a separate run");
                }
            }
        }
        std::future::ready(())
    })
    .await
    .map_err(usage)?;
    Ok((
        source_topic.unwrap_or_else(|| config.kafka.topic.clone()),
        plan,
    ))
}

/// Runs a replay until it is done or `stop` is cancelled, reporting to `progress`.
pub async fn execute(
    config: &Config,
    args: &ReplayArgs,
    progress: &Progress,
    stop: &CancellationToken,
) -> Result<Summary, ReplayError> {
    let result = run(config, args, progress, stop).await;
    progress.done();
    result
}

async fn run(
    config: &Config,
    args: &ReplayArgs,
    progress: &Progress,
    stop: &CancellationToken,
) -> Result<Summary, ReplayError> {
    let now = Utc::now();
    let from = parse_bound(&args.from, now).map_err(|e| usage(format!("--from: {e}")))?;
    let to = parse_bound(&args.to, now).map_err(|e| usage(format!("--to: {e}")))?;
    check_order(from, to).map_err(usage)?;
    let selected = select(config, args)?;

    let (topic, ranges, plan) = if args.from_failures {
        let (topic, plan) = plan_from_failures(config, args, from, to, stop).await?;
        let ranges = plan
            .spans()
            .into_iter()
            .filter(|(p, _, _)| args.partitions.is_empty() || args.partitions.contains(p))
            .map(|(partition, start, end)| PartitionRange {
                partition,
                start,
                end,
            })
            .collect();
        (topic, ranges, Some(plan))
    } else {
        let topic = args
            .topic
            .clone()
            .unwrap_or_else(|| config.kafka.topic.clone());
        let consumer = reader(config)?;
        let partitions = partitions_of(&consumer, &topic, &args.partitions)?;
        let ranges = resolve(&consumer, &topic, &partitions, from, to).map_err(usage)?;
        (topic, ranges, None)
    };
    if let Some(plan) = &plan {
        for ranges in plan.by_partition.values() {
            for r in ranges {
                if !selected
                    .iter()
                    .any(|d| d.project == r.project && d.id == r.destination)
                {
                    return Err(usage(format!(
                        "failure events name destination {}/{}, which is not configured (or not enabled); configure it or narrow with --project/--destination",
                        r.project, r.destination
                    ))
                    .into());
                }
            }
        }
    }

    let metrics = Arc::new(Metrics::new());
    let abandon = CancellationToken::new();
    let failures = Arc::new(
        FailureReporter::new(config, metrics.clone(), abandon.clone())
            .map_err(|e| ReplayError::Failed(format!("cannot create a Kafka producer: {e}")))?,
    );
    // A replay parks copies: the topic it reads need not be kafka.topic, the one whose
    // retention a running courier checks before it parks references.
    let parking = ParkingState::decided(ParkingDecision::copy("a replay parks copies"));
    let parker = Arc::new(
        Parker::new(config, abandon.clone(), parking)
            .map_err(|e| ReplayError::Failed(format!("cannot create a Kafka producer: {e}")))?,
    );
    let acker = Acker::new();
    let mut destinations = Destinations::new(
        LaneContext {
            acker: acker.clone(),
            failures: failures.clone(),
            metrics: metrics.clone(),
            parker,
            source_topic: topic.clone(),
            abandon: abandon.clone(),
            // A replay delivers what it was asked to; it never parks early.
            spill_budget: None,
            // Replays are not capped: someone asked for these events.
            daily_caps: false,
        },
        failures.clone(),
        metrics.clone(),
        &topic,
    );
    let topology = if args.dry_run {
        None
    } else {
        let (topology, _, _) = destinations
            .apply(&selected, &config.security)
            .map_err(|e| ReplayError::Failed(e.to_string()))?;
        Some(topology)
    };
    let mut router = crate::routing::Router::new();
    for (i, d) in selected.iter().enumerate() {
        router.add(&d.project, &d.id, &d.filter, i);
    }

    let total: u64 = ranges.iter().map(PartitionRange::len).sum();
    progress.start_reading(total);
    let consumer = reader(config)?;
    let mut summary = Summary::default();
    for d in &selected {
        summary
            .destinations
            .insert((d.project.clone(), d.id.clone()), (0, 0, 0));
    }
    let pacer = Pacer::new(args.rate);
    let mut targets = Vec::new();
    let mut routed = Vec::new();
    let tick = || progress.tick();
    let read_progress = ReadProgress {
        tick: Some(&tick),
        // Not a terminal: plain periodic lines instead of a progress bar.
        log_every: progress
            .bar
            .get()
            .is_none()
            .then_some(Duration::from_secs(5)),
    };
    let reading = read_ranges(
        &consumer,
        &topic,
        &ranges,
        &read_progress,
        stop,
        |partition, offset, payload| {
            summary.read += 1;
            targets.clear();
            let mut failure_event = false;
            // Decoded and routed as the source does; only the events a plan names (with
            // `--from-failures`) are then kept.
            match router.decode_and_route(payload, config.limits.max_event_bytes, None, &mut routed)
            {
                Decoded::Unroutable { .. } => summary.unroutable += 1,
                Decoded::Routable(fields) => {
                    failure_event = fields.is_failure_event();
                    match &plan {
                        Some(plan) => {
                            let raw = payload.unwrap_or_default();
                            // The id the failure events list (the same rule that wrote them).
                            let id = reported_id(raw, &topic, partition, offset);
                            let project = fields.project_id.get().unwrap_or_default();
                            for t in plan.targets(partition, offset, &id, project) {
                                let Some(i) = selected
                                    .iter()
                                    .position(|d| d.project == t.project && d.id == t.destination)
                                else {
                                    continue;
                                };
                                // Named by a range only: the destination's filter decides.
                                if !t.listed && !routed.contains(&i) {
                                    continue;
                                }
                                targets.push(i);
                            }
                            targets.sort_unstable();
                            targets.dedup();
                        }
                        None => targets.extend_from_slice(&routed),
                    }
                }
            }
            for &i in &targets {
                let d = &selected[i];
                if let Some(entry) = summary
                    .destinations
                    .get_mut(&(d.project.clone(), d.id.clone()))
                {
                    entry.0 += 1;
                }
            }
            let send = topology.as_ref().map(|t| {
                deliveries(
                    t,
                    &selected,
                    &targets,
                    &acker,
                    partition,
                    offset,
                    payload,
                    failure_event,
                )
            });
            let pacer = &pacer;
            async move {
                if let Some(sends) = send {
                    for (queue, event) in sends {
                        let _ = queue.send(event).await;
                    }
                }
                pacer.wait().await;
            }
        },
    );
    let read = match reading.await {
        Ok(read) => read,
        Err(e) => {
            abandon.cancel();
            return Err(ReplayError::Failed(e));
        }
    };
    tracing::debug!(read, "replay range read");
    drop(topology);
    let tasks = destinations.close();
    progress.delivering();
    let finished = async {
        for task in tasks {
            let _ = task.await;
        }
    };
    tokio::select! {
        () = finished => {}
        () = stop.cancelled() => {
            abandon.cancel();
            return Err(ReplayError::Failed("interrupted while delivering the last batches".into()));
        }
    }
    // A blocking call: off the runtime's threads (a job shares them with the daemon).
    let flushing = failures.clone();
    let _ = tokio::task::spawn_blocking(move || flushing.flush(Duration::from_secs(10))).await;
    for ((project, id), entry) in summary.destinations.iter_mut() {
        let (_, delivered, failed, _) = metrics.destination(project, id).read();
        entry.1 = delivered;
        entry.2 = failed;
    }
    Ok(summary)
}

/// The queue and event for each target lane of one message.
#[allow(clippy::too_many_arguments)]
fn deliveries(
    topology: &Topology,
    selected: &[Arc<DestinationConfig>],
    targets: &[usize],
    acker: &Acker,
    partition: i32,
    offset: i64,
    payload: Option<&[u8]>,
    failure_event: bool,
) -> Vec<(tokio::sync::mpsc::Sender<Event>, Event)> {
    if targets.is_empty() {
        return Vec::new();
    }
    let ack = acker.track(partition, offset, targets.len() as u32);
    let raw = Bytes::copy_from_slice(payload.unwrap_or_default());
    targets
        .iter()
        .filter_map(|&i| {
            let d = &selected[i];
            let lane = *topology.index.get(&(d.project.clone(), d.id.clone()))?;
            let input = &topology.lanes[lane];
            input.stats.routed.fetch_add(1, Ordering::Relaxed);
            Some((
                input.queue.clone(),
                Event {
                    raw: raw.clone(),
                    partition,
                    offset,
                    failure_event,
                    ack,
                },
            ))
        })
        .collect()
}

/// Spaces events to at most `rate` per second.
struct Pacer {
    interval: Option<Duration>,
    next: std::sync::Mutex<Instant>,
}

impl Pacer {
    fn new(rate: Option<u64>) -> Self {
        Self {
            interval: rate
                .filter(|r| *r > 0)
                .map(|r| Duration::from_secs_f64(1.0 / r as f64)),
            next: std::sync::Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let due = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let due = (*next).max(Instant::now());
            *next = due + interval;
            due
        };
        tokio::time::sleep_until(due.into()).await;
    }
}

fn reader(config: &Config) -> Result<StreamConsumer, UsageError> {
    crate::source::ranges::reader(config, "replay")
        .map_err(|e| usage(format!("cannot create a Kafka client: {e}")))
}

fn partitions_of(
    consumer: &StreamConsumer,
    topic: &str,
    wanted: &[i32],
) -> Result<Vec<i32>, UsageError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| usage(format!("cannot read topic {topic}: {e}")))?;
    let all: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if all.is_empty() {
        return Err(usage(format!("topic {topic} does not exist")));
    }
    if wanted.is_empty() {
        return Ok(all);
    }
    for p in wanted {
        if !all.contains(p) {
            return Err(usage(format!(
                "topic {topic} has no partition {p} (it has 0..{})",
                all.len()
            )));
        }
    }
    Ok(wanted.to_vec())
}
