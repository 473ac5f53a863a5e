//! `GET …/destinations/{id}/status`: a destination's circuit, last success and error, and
//! event counters, as the replica that answers sees them (each replica runs every destination,
//! so any one answers for its own share).

use std::time::SystemTime;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::http::{Api, Params};

/// A destination's state on this replica.
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
    /// Whether this replica runs it (enabled and valid).
    pub running: bool,
    /// The circuit breaker: `closed` (deliveries flow), `open` (failing: batches are parked
    /// and retried later), `paused` (failed for `pause_after`); absent when not running.
    pub circuit: Option<String>,
    /// Consecutive failed requests.
    pub consecutive_failures: u32,
    /// When a request last succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last error.
    pub last_error: Option<LastError>,
    /// Events counted by this replica since it started.
    pub events: EventCounts,
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

/// Event counters of one destination on this replica.
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
}

fn time(t: Option<SystemTime>) -> Option<DateTime<Utc>> {
    t.map(DateTime::<Utc>::from)
}

#[utoipa::path(get, path = "/v1/projects/{project}/destinations/{id}/status", tag = "destinations",
    summary = "A destination's delivery state",
    description = "Circuit state, last success, last error, consecutive failures and event counters, as seen by the replica that answers (counters count since it started).",
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
    let health = api.registry.get(&project, &id);
    let (last_success, last_failure) = health.as_ref().map(|h| h.last_times()).unwrap_or_default();
    let stats = api.metrics.destination(&project, &id);
    let (routed, delivered, failed, _) = stats.read();
    Ok(Json(Status {
        project,
        id,
        kind,
        managed_by: found.managed_by.into(),
        enabled,
        running: health.is_some(),
        circuit: health.as_ref().map(|h| h.state().as_str().to_owned()),
        consecutive_failures: health.as_ref().map_or(0, |h| h.consecutive_failures()),
        last_success_at: time(last_success),
        last_error: health
            .as_ref()
            .and_then(|h| h.last_error())
            .map(|e| LastError {
                kind: e.kind.as_str().into(),
                http_status: e.http_status,
                message: e.message,
                at: time(last_failure),
            }),
        events: EventCounts {
            routed,
            delivered,
            failed,
            parked: stats.parked.load(std::sync::atomic::Ordering::Relaxed),
        },
    }))
}
