//! The jobs' HTTP handlers: start a replay of a destination's failures, read a job, list a
//! project's jobs. Every answer comes from the jobs table, whichever replica runs the job.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::record::{self, JobRecord, JobView, Spec, KEEP_PER_PROJECT};
use super::{runner, Jobs};
use crate::api::error::{ApiError, ErrorBody, ErrorDetail};
use crate::api::http::{Api, Params};
use crate::replay::{self, Bound};

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

/// A project's jobs.
#[derive(Serialize, ToSchema)]
pub struct JobList {
    /// Newest first (at most 100).
    pub jobs: Vec<JobView>,
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
    let value = crate::api::http::json_body(body)?;
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

/// 409 naming the running replay of the destination.
fn replay_running(id: &str, running: &JobRecord) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::CONFLICT,
        "replay_running",
        format!(
            "a replay of destination {id:?} is running: job {}",
            running.id
        ),
    );
    e.body.error.details = vec![ErrorDetail {
        pointer: String::new(),
        message: format!("/v1/jobs/{}", running.id),
    }];
    e
}

#[utoipa::path(post, path = "/v1/projects/{project}/destinations/{id}/replay-failures", tag = "jobs",
    summary = "Re-deliver what a destination's failure events report",
    description = "Starts a job doing what `courier replay --from-failures` does for this destination: reads the delivery-failure events written in [from, to), re-reads exactly the events they report from the Event Logs topic and delivers them again (same webhook ids, so receivers can deduplicate). What fails again is reported in new failure events. Follow the job with `GET /v1/jobs/{id}` on any replica. One replay per destination runs at a time in the whole fleet. When the replica running it restarts, the job is run again from its start.",
    params(("project" = String, Path, description = "The projectId"), ("id" = String, Path, description = "The destination id")),
    request_body(content = ReplayRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Started; `Location` names the job", body = JobView),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 404, description = "Unknown destination", body = ErrorBody),
        (status = 409, description = "The destination is paused, its stored definition is no longer valid, or a replay of it is running on some replica (`details` names that job)", body = ErrorBody),
        (status = 422, description = "Not valid; `details` lists each error with its JSON pointer", body = ErrorBody),
        (status = 503, description = "Starting, or the jobs topic cannot be written", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn replay_failures(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project, id)): Params<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let inner = api.get()?;
    inner.grant(&headers, &project)?;
    inner.find_or_404(&project, &id)?;
    let request = request_from(body)?;
    let config = runner::replay_config(inner, &project, &id)?;
    let jobs: &Arc<Jobs> = &inner.jobs;
    let job = {
        let _one_at_a_time = jobs.starting.lock().await;
        let rows = jobs.table.rows();
        if let Some(running) = record::running_for(&rows, &project, &id) {
            return Err(replay_running(&id, running));
        }
        let spec = Spec {
            project: project.clone(),
            destination: id.clone(),
            from: request.from,
            to: request.to,
            dry_run: request.dry_run,
            rate: request.rate,
        };
        let job = JobRecord::new(spec, &jobs.replica, Utc::now());
        jobs.table
            .put(&job.id, Some(&job.encode()))
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        // Another replica may have started one in the same instant: the earlier stays.
        if let Some(rival) = record::earlier_rival(&jobs.table.rows(), &job) {
            let rival = rival.clone();
            if let Err(e) = jobs.table.put(&job.id, None).await {
                tracing::warn!(job = %job.id, error = %e, "cannot withdraw a job started at the same time as another");
            }
            return Err(replay_running(&id, &rival));
        }
        job
    };
    for old in record::beyond_kept(&jobs.table.rows(), &project) {
        if let Err(e) = jobs.table.send(&old, None).await {
            tracing::warn!(job = %old, error = %e, "cannot delete an old job");
        }
    }
    let view = job.view();
    runner::spawn(jobs.clone(), job, config, inner.stop.child_token());
    let location = format!("/v1/jobs/{}", view.id);
    let mut response = (StatusCode::ACCEPTED, Json(view)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/v1/jobs/{job}", tag = "jobs",
    summary = "A job's progress and outcome",
    description = "Answered by any replica: jobs are recorded in a compacted Kafka topic (`[api] jobs_topic`). The replica running a job writes its progress about once a second.",
    params(("job" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on the job's project", body = ErrorBody),
        (status = 404, description = "Unknown job (or deleted: the 100 newest of a project are kept)", body = ErrorBody),
        (status = 503, description = "Starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get_job(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((job,)): Params<(String,)>,
) -> Result<Json<JobView>, ApiError> {
    let inner = api.get()?;
    let grant = inner.tokens.authenticate(&headers)?;
    let job = inner
        .jobs
        .get(&job)
        .ok_or_else(|| ApiError::not_found(format!("job {job:?} not found")))?;
    grant.check(&job.project)?;
    Ok(Json(job.view()))
}

#[utoipa::path(get, path = "/v1/projects/{project}/jobs", tag = "jobs",
    summary = "A project's jobs, newest first",
    description = "The project's jobs (the 100 newest are kept), from any replica.",
    params(("project" = String, Path, description = "The projectId")),
    responses(
        (status = 200, description = "The jobs, newest first", body = JobList),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 503, description = "Starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_jobs(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project,)): Params<(String,)>,
) -> Result<Json<JobList>, ApiError> {
    let inner = api.get()?;
    inner.grant(&headers, &project)?;
    let rows = inner.jobs.table.rows();
    let jobs = record::of_project(&rows, &project)
        .into_iter()
        .take(KEEP_PER_PROJECT)
        .map(JobRecord::view)
        .collect();
    Ok(Json(JobList { jobs }))
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
}
