//! Jobs: work the API starts and reports on while it runs. One kind so far: re-delivering
//! what a destination's delivery-failure events report (`POST …/replay-failures`), the same
//! work as `courier replay --from-failures`, run inside the daemon.
//!
//! Jobs live in the memory of the replica that started them: `GET /v1/jobs/{id}` is
//! answered by that replica (404 elsewhere), and a restart forgets them. A replay is
//! idempotent for receivers (same webhook ids), so a lost job can simply be started again.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::http::{Api, Params};
use crate::replay::{self, Bound, Progress, ReplayArgs, Summary};

/// Finished jobs kept for `GET /v1/jobs/{id}` (the oldest are forgotten first).
const KEEP_FINISHED: usize = 100;

/// The jobs of this replica.
#[derive(Default)]
pub struct Jobs {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    jobs: HashMap<String, Arc<Job>>,
    /// Ids in the order they were started.
    order: VecDeque<String>,
}

/// One replay of a destination's failures.
pub struct Job {
    id: String,
    project: String,
    destination: String,
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
    dry_run: bool,
    created_at: DateTime<Utc>,
    progress: Progress,
    end: Mutex<Option<End>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("project", &self.project)
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

struct End {
    at: DateTime<Utc>,
    result: Result<Summary, String>,
}

impl Job {
    fn running(&self) -> bool {
        self.end.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    fn finish(&self, result: Result<Summary, String>) {
        *self.end.lock().unwrap_or_else(|p| p.into_inner()) = Some(End {
            at: Utc::now(),
            result,
        });
    }

    fn view(&self) -> JobView {
        let end = self.end.lock().unwrap_or_else(|p| p.into_inner());
        let (state, finished_at, error, events) = match &*end {
            None => (JobState::Running, None, None, None),
            Some(End { at, result: Ok(s) }) => {
                let (routed, delivered, failed) = s
                    .destinations
                    .get(&(self.project.clone(), self.destination.clone()))
                    .copied()
                    .unwrap_or_default();
                let events = ReplayCounts {
                    routed,
                    delivered,
                    failed,
                };
                (JobState::Completed, Some(*at), None, Some(events))
            }
            Some(End { at, result: Err(e) }) => {
                (JobState::Failed, Some(*at), Some(e.clone()), None)
            }
        };
        JobView {
            id: self.id.clone(),
            kind: "replay_failures".into(),
            project: self.project.clone(),
            destination: self.destination.clone(),
            from: self.from,
            to: self.to,
            dry_run: self.dry_run,
            state,
            phase: self.progress.phase().as_str().into(),
            created_at: self.created_at,
            finished_at,
            progress: JobProgress {
                read: self.progress.read(),
                total: self.progress.total(),
            },
            events,
            error,
        }
    }
}

impl Jobs {
    fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .jobs
            .get(id)
            .cloned()
    }

    /// Registers `job` unless a replay of the same destination is running (that one is
    /// returned instead).
    fn add(&self, job: Arc<Job>) -> Result<(), Arc<Job>> {
        let mut registry = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = registry
            .jobs
            .values()
            .find(|j| j.project == job.project && j.destination == job.destination && j.running())
        {
            return Err(running.clone());
        }
        registry.order.push_back(job.id.clone());
        registry.jobs.insert(job.id.clone(), job);
        let finished = |r: &Registry| -> Vec<usize> {
            (0..r.order.len())
                .filter(|&i| r.jobs.get(&r.order[i]).is_some_and(|j| !j.running()))
                .collect()
        };
        let done = finished(&registry);
        for &i in done
            .iter()
            .take(done.len().saturating_sub(KEEP_FINISHED))
            .rev()
        {
            if let Some(id) = registry.order.remove(i) {
                registry.jobs.remove(&id);
            }
        }
        Ok(())
    }
}

/// A job as answered.
#[derive(Serialize, ToSchema)]
pub struct JobView {
    /// The job id.
    pub id: String,
    /// What it does: `replay_failures`.
    pub kind: String,
    /// The destination's project.
    pub project: String,
    /// The destination id.
    pub destination: String,
    /// Start of the range of failure events (included).
    pub from: DateTime<Utc>,
    /// End of the range of failure events (excluded); null: every failure event the topic
    /// held when the job started.
    pub to: Option<DateTime<Utc>>,
    /// Whether it only counts (sends nothing).
    pub dry_run: bool,
    /// `running`; `completed` (ran to its end: `events` says what was delivered and what
    /// failed again, each failure reported in a new failure event); `failed` (could not
    /// run to its end: `error` says why; what was sent stays sent).
    pub state: JobState,
    /// `planning` (reading the failure events), `reading` (re-reading the reported events),
    /// `delivering` (the last batches), `done`.
    pub phase: String,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Messages of the Event Logs topic read so far, of those in the reported ranges.
    pub progress: JobProgress,
    /// The outcome, once completed.
    pub events: Option<ReplayCounts>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A job's state.
#[derive(Serialize, ToSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Still running.
    Running,
    /// Ran to its end.
    Completed,
    /// Stopped by an error.
    Failed,
}

/// How far a job is.
#[derive(Serialize, ToSchema)]
pub struct JobProgress {
    /// Messages read.
    pub read: u64,
    /// Messages to read (0 until the failure events are read).
    pub total: u64,
}

/// What a completed replay did.
#[derive(Serialize, ToSchema)]
pub struct ReplayCounts {
    /// Events the failure events reported for this destination, found again.
    pub routed: u64,
    /// Of those, delivered (or, in a dry run, 0).
    pub delivered: u64,
    /// Of those, failed again (each reported in a new failure event).
    pub failed: u64,
}

/// The body of `POST …/replay-failures`.
#[derive(ToSchema)]
#[allow(dead_code)] // Documents the body; it is read field by field for precise errors.
pub struct ReplayRequest {
    /// Start of the range of failure events (included): an RFC 3339 time or a time ago
    /// (`"2h"`).
    from: String,
    /// End (excluded), same forms, or `"end"` (the default): every failure event the topic
    /// holds when the job starts.
    to: Option<String>,
    /// Count what would be sent; send nothing.
    dry_run: Option<bool>,
    /// At most this many events per second.
    rate: Option<u64>,
}

/// The request, checked.
#[derive(Debug)]
struct Request {
    from: DateTime<Utc>,
    /// `None`: the end of the failures topic.
    to: Option<DateTime<Utc>>,
    dry_run: bool,
    rate: Option<u64>,
}

fn invalid(details: Vec<(String, String)>) -> ApiError {
    let mut e = ApiError::validation(details);
    e.body.error.message = "the replay request is not valid".into();
    e
}

fn request_from(body: Result<Bytes, BytesRejection>) -> Result<Request, ApiError> {
    let value = super::http::json_body(body)?;
    let Value::Object(map) = value else {
        return Err(invalid(vec![(
            String::new(),
            "must be a JSON object".into(),
        )]));
    };
    let now = Utc::now();
    let mut errors = Vec::new();
    for key in map.keys() {
        if !matches!(key.as_str(), "from" | "to" | "dry_run" | "rate") {
            errors.push((
                format!("/{key}"),
                "unknown key (expected from, to, dry_run, rate)".into(),
            ));
        }
    }
    // Some(None): the end of the topic.
    let mut time = |key: &str, optional: bool| match map.get(key) {
        None | Some(Value::Null) if optional => Some(None),
        None | Some(Value::Null) => {
            errors.push((format!("/{key}"), "is required".into()));
            None
        }
        Some(Value::String(text)) => match replay::parse_bound(text, now) {
            Ok(Bound::Time(t)) => Some(Some(t)),
            Ok(Bound::End) if optional => Some(None),
            Ok(Bound::End) => {
                errors.push((format!("/{key}"), "\"end\" is an end, not a start".into()));
                None
            }
            Ok(Bound::Offset(_)) => {
                errors.push((
                    format!("/{key}"),
                    "must be a time: failure events are selected by time (RFC 3339, or a time ago like \"2h\")".into(),
                ));
                None
            }
            Err(e) => {
                errors.push((format!("/{key}"), e));
                None
            }
        },
        Some(_) => {
            errors.push((format!("/{key}"), "must be a string".into()));
            None
        }
    };
    let from = time("from", false).flatten();
    let to = time("to", true);
    let dry_run = match map.get("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(("/dry_run".into(), "must be a boolean".into()));
            false
        }
    };
    let rate = match map.get("rate") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().filter(|r| *r > 0) {
            Some(r) => Some(r),
            None => {
                errors.push((
                    "/rate".into(),
                    "must be a positive integer (events per second)".into(),
                ));
                None
            }
        },
    };
    if let (Some(from), Some(Some(to))) = (from, to) {
        if from > to {
            errors.push((
                "/from".into(),
                format!("{} is after to ({})", from.to_rfc3339(), to.to_rfc3339()),
            ));
        }
    }
    match (from, to) {
        (Some(from), Some(to)) if errors.is_empty() => Ok(Request {
            from,
            to,
            dry_run,
            rate,
        }),
        _ => Err(invalid(errors)),
    }
}

fn job_id() -> String {
    format!("job_{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

#[utoipa::path(post, path = "/v1/projects/{project}/destinations/{id}/replay-failures", tag = "jobs",
    summary = "Re-deliver what a destination's failure events report",
    description = "Starts a job doing what `courier replay --from-failures` does for this destination: reads the delivery-failure events written in [from, to), re-reads exactly the events they report from the Event Logs topic and delivers them again (same webhook ids, so receivers can deduplicate). What fails again is reported in new failure events. Follow the job with `GET /v1/jobs/{id}` on the same replica. One replay per destination runs at a time.",
    params(("project" = String, Path, description = "The projectId"), ("id" = String, Path, description = "The destination id")),
    request_body(content = ReplayRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Started; `Location` names the job", body = JobView),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 404, description = "Unknown destination", body = ErrorBody),
        (status = 409, description = "The destination is paused, its stored definition is no longer valid, or a replay of it is running (`details` names that job)", body = ErrorBody),
        (status = 422, description = "Not valid; `details` lists each error with its JSON pointer", body = ErrorBody),
        (status = 503, description = "Starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn replay_failures(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project, id)): Params<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let inner = api.get()?;
    inner.grant(&headers, &project)?;
    let found = inner.find_or_404(&project, &id)?;
    let request = request_from(body)?;
    let destination = inner.config_of(&found)?;
    if !destination.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "destination_paused",
            format!("destination {id:?} of project {project:?} is paused; enable it before replaying to it"),
        ));
    }
    let mut config = (*inner.file()).clone();
    config.destinations = vec![destination];
    let args = ReplayArgs {
        config: PathBuf::new(),
        from: request.from.to_rfc3339(),
        to: request
            .to
            .map_or_else(|| "end".to_owned(), |t| t.to_rfc3339()),
        topic: None,
        partitions: Vec::new(),
        projects: vec![project.clone()],
        destinations: vec![id.clone()],
        dry_run: request.dry_run,
        rate: request.rate,
        from_failures: true,
    };
    let job = Arc::new(Job {
        id: job_id(),
        project: project.clone(),
        destination: id.clone(),
        from: request.from,
        to: request.to,
        dry_run: request.dry_run,
        created_at: Utc::now(),
        progress: Progress::new(false),
        end: Mutex::new(None),
    });
    if let Err(running) = inner.jobs.add(job.clone()) {
        let mut e = ApiError::new(
            StatusCode::CONFLICT,
            "replay_running",
            format!(
                "a replay of destination {id:?} is running: job {}",
                running.id
            ),
        );
        e.body.error.details = vec![super::error::ErrorDetail {
            pointer: String::new(),
            message: format!("/v1/jobs/{}", running.id),
        }];
        return Err(e);
    }
    let stop: CancellationToken = inner.stop.child_token();
    let span = tracing::info_span!("replay_job", job = %job.id, %project, destination = %id);
    let running = job.clone();
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            tracing::info!(from = %args.from, to = %args.to, dry_run = args.dry_run, "replay of failures started");
            let result = replay::execute(&config, &args, &running.progress, &stop).await;
            match &result {
                Ok(summary) => tracing::info!(
                    read = summary.read,
                    failed = summary.failed(),
                    "replay of failures completed"
                ),
                Err(e) => tracing::warn!(error = %e, "replay of failures failed"),
            }
            running.finish(result.map_err(|e| e.to_string()));
        },
        span,
    ));
    let location = format!("/v1/jobs/{}", job.id);
    let mut response = (StatusCode::ACCEPTED, Json(job.view())).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/v1/jobs/{job}", tag = "jobs",
    summary = "A job's progress and outcome",
    description = "Answered by the replica that started the job (jobs are kept in its memory; a restart forgets them).",
    params(("job" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on the job's project", body = ErrorBody),
        (status = 404, description = "Unknown job (or started on another replica)", body = ErrorBody),
        (status = 503, description = "Starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn get_job(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((job,)): Params<(String,)>,
) -> Result<Json<JobView>, ApiError> {
    let inner = api.get()?;
    let grant = inner.tokens.authenticate(&headers)?;
    let job = inner
        .jobs
        .get(&job)
        .ok_or_else(|| ApiError::not_found(format!("job {job:?} not found on this replica")))?;
    grant.check(&job.project)?;
    Ok(Json(job.view()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Result<Bytes, BytesRejection> {
        Ok(Bytes::from(serde_json::to_vec(&v).unwrap()))
    }

    fn pointers(e: ApiError) -> Vec<String> {
        e.body
            .error
            .details
            .into_iter()
            .map(|d| d.pointer)
            .collect()
    }

    #[test]
    fn requests_are_checked_field_by_field() {
        let r = request_from(body(serde_json::json!({"from": "2h"}))).unwrap();
        assert!(r.to.is_none() && !r.dry_run && r.rate.is_none());
        let r = request_from(body(serde_json::json!({"from": "2h", "to": "end"}))).unwrap();
        assert!(r.to.is_none());
        let r = request_from(body(serde_json::json!({
            "from": "2026-11-22T08:00:00Z", "to": "2026-11-22T09:00:00Z", "dry_run": true, "rate": 50
        })))
        .unwrap();
        assert!(r.dry_run);
        assert_eq!(r.rate, Some(50));

        let e = request_from(body(serde_json::json!({}))).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(pointers(e), ["/from"]);
        let e = request_from(body(serde_json::json!({
            "from": "12", "to": 5, "dry_run": "yes", "rate": 0, "extra": 1
        })))
        .unwrap_err();
        let mut p = pointers(e);
        p.sort();
        assert_eq!(p, ["/dry_run", "/extra", "/from", "/rate", "/to"]);
        let e = request_from(body(serde_json::json!({
            "from": "2026-11-22T09:00:00Z", "to": "2026-11-22T08:00:00Z"
        })))
        .unwrap_err();
        assert_eq!(pointers(e), ["/from"]);
        let e = request_from(Ok(Bytes::from_static(b"{"))).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = request_from(body(serde_json::json!([1]))).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    fn job(project: &str, destination: &str) -> Arc<Job> {
        Arc::new(Job {
            id: job_id(),
            project: project.into(),
            destination: destination.into(),
            from: Utc::now(),
            to: None,
            dry_run: false,
            created_at: Utc::now(),
            progress: Progress::new(false),
            end: Mutex::new(None),
        })
    }

    #[test]
    fn one_replay_per_destination_and_finished_jobs_are_bounded() {
        let jobs = Jobs::default();
        let first = job("p", "d");
        jobs.add(first.clone()).unwrap();
        let refused = jobs.add(job("p", "d")).unwrap_err();
        assert_eq!(refused.id, first.id);
        jobs.add(job("p", "other")).unwrap();
        first.finish(Ok(Summary::default()));
        assert_eq!(first.view().state, JobState::Completed);
        jobs.add(job("p", "d")).unwrap();

        let many = Jobs::default();
        let oldest = job("p", "x");
        many.add(oldest.clone()).unwrap();
        oldest.finish(Err("stopped".into()));
        assert_eq!(oldest.view().state, JobState::Failed);
        for i in 0..KEEP_FINISHED + 5 {
            let j = job("p", &format!("d{i}"));
            many.add(j.clone()).unwrap();
            j.finish(Ok(Summary::default()));
        }
        assert!(
            many.get(&oldest.id).is_none(),
            "the oldest finished job is forgotten"
        );
        let kept = many.inner.lock().unwrap().jobs.len();
        assert!(kept <= KEEP_FINISHED + 1, "{kept} jobs kept");
    }
}
