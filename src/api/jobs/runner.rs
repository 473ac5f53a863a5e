//! Running a job: the replay in a task of its own, its progress written to the jobs topic at
//! most once a second (a periodic publication, not read back) and its end written and read
//! back. At start, a replica runs again the jobs it was running when it stopped; [`sweep`]
//! fails the jobs of replicas that stopped for good.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::record::{self, JobProgress, JobRecord};
use super::Jobs;
use crate::api::error::ApiError;
use crate::api::http::{Api, Inner};
use crate::config::Config;
use crate::replay::{self, Phase, Progress, ReplayArgs};

/// How often a running job's progress is written.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Attempts at writing a job's end before giving up (it is then run again at the next start).
const FINAL_WRITE_ATTEMPTS: u32 = 5;

/// The configuration a replay of the destination runs with: the file's settings and this
/// destination alone. 404 when it does not exist, 409 when it is paused or its stored
/// definition is no longer valid.
pub(super) fn replay_config(inner: &Inner, project: &str, id: &str) -> Result<Config, ApiError> {
    let found = inner.find_or_404(project, id)?;
    let destination = inner.config_of(&found)?;
    if !destination.enabled {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "destination_paused",
            format!("destination {id:?} of project {project:?} is paused; enable it before replaying to it"),
        ));
    }
    let mut config = (*inner.file()).clone();
    config.destinations = vec![Arc::new(destination)];
    Ok(config)
}

/// What the replay of `job` reads: failure events of `[from, to)`, `to` `None` meaning the
/// end of the failures topic.
fn args_of(job: &JobRecord) -> ReplayArgs {
    ReplayArgs {
        config: std::path::PathBuf::new(),
        from: job.from.to_rfc3339(),
        to: job.to.map_or_else(|| "end".to_owned(), |t| t.to_rfc3339()),
        topic: None,
        partitions: Vec::new(),
        projects: vec![job.project.clone()],
        destinations: vec![job.destination.clone()],
        dry_run: job.dry_run,
        rate: job.rate,
        from_failures: true,
    }
}

/// Runs `job` (already recorded as running) in a task of its own until it ends or `stop`.
pub(super) fn spawn(jobs: Arc<Jobs>, job: JobRecord, config: Config, stop: CancellationToken) {
    let span = tracing::info_span!("replay_job", job = %job.id, project = %job.project,
        destination = %job.destination);
    tokio::spawn(run(jobs, job, config, stop).instrument(span));
}

async fn run(jobs: Arc<Jobs>, mut job: JobRecord, config: Config, stop: CancellationToken) {
    let args = args_of(&job);
    tracing::info!(from = %args.from, to = %args.to, dry_run = args.dry_run,
        resumes = job.resumes, "replay of failures started");
    let progress = Arc::new(Progress::new(false));
    let mut replay = tokio::spawn({
        let (progress, stop) = (progress.clone(), stop.clone());
        async move { replay::execute(&config, &args, &progress, &stop).await }
    });
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    let result = loop {
        tokio::select! {
            ended = &mut replay => break ended,
            _ = tick.tick() => {
                let now = JobProgress { read: progress.read(), total: progress.total() };
                let phase = progress.phase().as_str();
                if now != job.progress || phase != job.phase {
                    job.progress = now;
                    job.phase = phase.into();
                    job.updated_at = Utc::now();
                    // Written in turn (each send awaits its delivery), so they stay in order.
                    if let Err(e) = jobs.table.send(&job.id, Some(&job.encode())).await {
                        tracing::warn!(error = %e, "cannot write the job's progress");
                    }
                }
            }
        }
    };
    let result = match result {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the replay stopped unexpectedly: {e}")),
    };
    if result.is_err() && stop.is_cancelled() {
        tracing::info!(
            "courier is stopping: the job stays running and is run again when this replica starts"
        );
        return;
    }
    match &result {
        Ok(summary) => tracing::info!(
            read = summary.read,
            failed = summary.failed(),
            "replay of failures completed"
        ),
        Err(e) => tracing::warn!(error = %e, "replay of failures failed"),
    }
    job.progress = JobProgress {
        read: progress.read(),
        total: progress.total(),
    };
    job.finish(result.as_ref().map_err(Clone::clone), Utc::now());
    write_end(&jobs, &job).await;
}

/// Writes a finished job, retrying for a while: a job left `running` is run again at the
/// owner's next start.
async fn write_end(jobs: &Jobs, job: &JobRecord) {
    for attempt in 1..=FINAL_WRITE_ATTEMPTS {
        match jobs.table.put(&job.id, Some(&job.encode())).await {
            Ok(()) => return,
            Err(e) if attempt == FINAL_WRITE_ATTEMPTS => tracing::error!(job = %job.id,
                error = %e, "cannot write the job's end; it stays running in the jobs topic until this replica restarts"),
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, attempt, "cannot write the job's end; retrying");
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
        }
    }
}

/// Runs again the jobs this replica was running when it stopped (recorded `running`, owner
/// this replica), from their start: a replay is idempotent for receivers (the same events,
/// the same webhook ids). A job whose `to` was the end of the failures topic reads to the
/// end it has now (by offset, not by a clock): failure events written since the job started
/// are included, replayed like the others. A job that
/// cannot run again (its destination was deleted, paused or made invalid meanwhile) is
/// marked failed with the reason.
pub(crate) async fn resume(api: Api) {
    let Ok(inner) = api.get() else {
        return;
    };
    let jobs = inner.jobs.clone();
    let mine: Vec<JobRecord> = jobs
        .table
        .rows()
        .values()
        .filter(|j| j.running() && j.owner == jobs.replica)
        .map(|j| (**j).clone())
        .collect();
    for mut job in mine {
        let now = Utc::now();
        match replay_config(inner, &job.project, &job.destination) {
            Ok(config) => {
                tracing::info!(job = %job.id, project = %job.project, destination = %job.destination,
                    "this replica stopped while running the job; running it again from its start");
                job.resumes += 1;
                job.phase = Phase::Planning.as_str().into();
                job.progress = JobProgress::default();
                job.updated_at = now;
                if let Err(e) = jobs.table.put(&job.id, Some(&job.encode())).await {
                    tracing::warn!(job = %job.id, error = %e, "cannot write the resumed job");
                }
                spawn(jobs.clone(), job, config, inner.stop.child_token());
            }
            Err(e) => {
                let reason = format!(
                    "replica {} restarted while running it and cannot run it again: {}",
                    jobs.replica, e.body.error.message
                );
                tracing::warn!(job = %job.id, %reason, "job failed");
                job.finish(Err(reason), now);
                write_end(&jobs, &job).await;
            }
        }
    }
}

/// Until `stop`: every `status_interval`, the live replica with the smallest name (by the
/// fleet's status heartbeats) marks failed the running jobs of replicas that have not been
/// live for `replica_timeout` — nobody else would ever end them. Their replica, started again
/// with the same `replica_id` before that, runs them again instead ([`resume`]).
pub(crate) async fn sweep(api: Api, stop: CancellationToken) {
    let Ok(inner) = api.get() else {
        return;
    };
    let jobs = inner.jobs.clone();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(jobs.sweep_every) => {}
        }
        let live = inner.fleet.live_replicas();
        let rows = jobs.table.rows();
        let now = Utc::now();
        for job in record::abandoned(&rows, &live, &jobs.replica, now, jobs.replica_timeout) {
            let mut job = job.clone();
            let reason = format!(
                "replica {} stopped while running it; start it again",
                job.owner
            );
            tracing::warn!(job = %job.id, project = %job.project, destination = %job.destination,
                %reason, "job failed");
            job.finish(Err(reason), now);
            write_end(&jobs, &job).await;
        }
    }
}
