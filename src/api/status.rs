//! `GET …/destinations/{id}/status` and `GET /v1/projects/{project}/status`: a destination's
//! circuit, last success and error, event counters and its last hour minute by minute,
//! aggregated over every live replica from the status they publish ([`crate::fleet`]), so
//! the answer does not depend on which replica is asked.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::definition::Found;
use super::error::{ApiError, ErrorBody};
use super::http::{Api, Inner, Params};
use crate::fleet::minutes::MinuteView;

/// A destination's state over the live replicas.
#[derive(Serialize, ToSchema)]
pub struct Status {
    /// The projectId.
    pub project: String,
    /// The destination id.
    pub id: String,
    /// The destination type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `config_file` or `api`.
    pub managed_by: String,
    /// Whether it is enabled (false: paused).
    pub enabled: bool,
    /// Whether a live replica runs it (enabled and valid).
    pub running: bool,
    /// How many live replicas report it (each runs every enabled destination).
    pub replicas: usize,
    /// The circuit breaker, the worst over the replicas (`paused` > `open` > `closed`):
    /// `closed` (deliveries flow), `open` (failing: batches are parked and retried later),
    /// `paused` (failed for `pause_after`); null when no live replica runs it.
    pub circuit: Option<String>,
    /// Consecutive failed requests, the most on one replica.
    pub consecutive_failures: u32,
    /// When a request last succeeded, on any replica.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The newest error over the replicas.
    pub last_error: Option<LastError>,
    /// When its events last overflowed a full queue, on any replica: it answers, but could
    /// not keep up with its share of a partition, so events were parked without an attempt
    /// and the retry worker delivers them from the first `retry_schedule` step on. Null when
    /// never (since the replicas started).
    pub last_overflow_at: Option<DateTime<Utc>>,
    /// Events counted by the live replicas since each started running it, summed.
    pub events: EventCounts,
    /// The last hour, minute by minute, oldest first (60 entries, zeros included), summed
    /// over the live replicas.
    pub minutes: Vec<MinuteView>,
}

/// `GET /v1/projects/{project}/status`.
#[derive(Serialize, ToSchema)]
pub struct ProjectStatus {
    /// Every destination of the project (the configuration file's first, then the API's,
    /// each by id).
    pub destinations: Vec<Status>,
}

/// The last error a destination gave.
#[derive(Serialize, ToSchema)]
pub struct LastError {
    /// The error class.
    pub kind: String,
    /// The HTTP status, when there was one.
    pub http_status: Option<u16>,
    /// The explanation, with the destination's answer trimmed.
    pub message: String,
    /// When.
    pub at: Option<DateTime<Utc>>,
}

/// Event counters of one destination, summed over the live replicas.
#[derive(Serialize, ToSchema)]
pub struct EventCounts {
    /// Routed to it.
    pub routed: u64,
    /// Accepted by it.
    pub delivered: u64,
    /// Finally failed (reported in failure events).
    pub failed: u64,
    /// Parked in the retry topic (each parking counts).
    pub parked: u64,
    /// Of those parked, parked without an attempt because its queue was full (overflow).
    pub overflowed: u64,
}

#[utoipa::path(get, path = "/v1/projects/{project}/destinations/{id}/status", tag = "destinations",
    summary = "A destination's delivery state",
    description = "Circuit state, last success, last error, consecutive failures, event counters and the last hour minute by minute, aggregated over every live replica (those whose heartbeat in the status topic is younger than `api.replica_timeout`): counters summed, the newest error, the worst circuit. Any replica gives the same answer, up to `api.status_interval` late.",
    params(("project" = String, Path, description = "The projectId"), ("id" = String, Path, description = "The destination id")),
    responses(
        (status = 200, description = "The state", body = Status),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 404, description = "Unknown destination", body = ErrorBody),
        (status = 503, description = "Starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn status(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project, id)): Params<(String, String)>,
) -> Result<Json<Status>, ApiError> {
    let api = api.get()?;
    api.grant(&headers, &project)?;
    let found = api.find_or_404(&project, &id)?;
    Ok(Json(api.status_of(project, id, &found)))
}

#[utoipa::path(get, path = "/v1/projects/{project}/status", tag = "destinations",
    summary = "The delivery state of a project's destinations",
    description = "The state of every destination of the project, as `GET …/destinations/{id}/status` answers it: aggregated over every live replica.",
    params(("project" = String, Path, description = "The projectId")),
    responses(
        (status = 200, description = "The states", body = ProjectStatus),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 404, description = "Unknown project", body = ErrorBody),
        (status = 503, description = "Starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn project_status(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project,)): Params<(String,)>,
) -> Result<Json<ProjectStatus>, ApiError> {
    let api = api.get()?;
    api.grant(&headers, &project)?;
    api.known_project_or_404(&project)?;
    let destinations = api
        .project_destinations(&project)
        .into_iter()
        .filter_map(|id| {
            let found = api.find(&project, &id)?;
            Some(api.status_of(project.clone(), id, &found))
        })
        .collect();
    Ok(Json(ProjectStatus { destinations }))
}

impl Inner {
    /// The ids of a project's destinations: the file's, then the store's, each by id.
    pub(super) fn project_destinations(&self, project: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .file()
            .destinations
            .iter()
            .filter(|d| d.project == project)
            .map(|d| d.id.clone())
            .collect();
        ids.sort();
        for (p, id) in self.store.snapshot().keys() {
            if p == project && !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }

    /// A found destination's state over the live replicas.
    fn status_of(&self, project: String, id: String, found: &Found) -> Status {
        let kind = found
            .definition
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let enabled = found
            .definition
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let fleet = self.fleet.destination(&project, &id);
        Status {
            project,
            id,
            kind,
            managed_by: found.managed_by.into(),
            enabled,
            running: fleet.running,
            replicas: fleet.replicas,
            circuit: fleet.circuit,
            consecutive_failures: fleet.consecutive_failures,
            last_success_at: fleet.last_success_at,
            last_error: fleet.last_error.map(|e| LastError {
                kind: e.kind,
                http_status: e.http_status,
                message: e.message,
                at: e.at,
            }),
            last_overflow_at: fleet.last_overflow_at,
            events: EventCounts {
                routed: fleet.events.routed,
                delivered: fleet.events.delivered,
                failed: fleet.events.failed,
                parked: fleet.events.parked,
                overflowed: fleet.events.overflowed,
            },
            minutes: fleet.minutes,
        }
    }
}
