//! `POST …/destinations/{id}/test`: the customer's way to see what their destination answers,
//! through the same probe as `courier test-destination` ([`crate::probe`]), answered as JSON.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::http::{Api, Params};
use crate::probe::{Answer, Probe};
use crate::sinks::{Outcome, RejectScope};

/// The destination's answer to one synthetic event, as courier classified it.
#[derive(Serialize, ToSchema)]
pub struct TestResult {
    /// `delivered`, `retry` (a temporary failure: courier would try again), `rejected`.
    pub outcome: String,
    /// For `rejected`: `data` (this event was refused) or `destination` (the destination
    /// itself is unusable as configured: credentials, missing bucket, gone).
    pub scope: Option<String>,
    /// The error class (`http_status`, `timeout`, `connection`, …).
    pub error_kind: Option<String>,
    /// The HTTP status, when courier's classification kept one.
    pub http_status: Option<u16>,
    /// The explanation, with the destination's answer trimmed.
    pub message: Option<String>,
    /// The destination's `Retry-After`, in milliseconds.
    pub retry_after_ms: Option<u64>,
    /// Time from the start of the request to the classified answer.
    pub latency_ms: u64,
    /// The synthetic event's `id`.
    pub event_id: String,
    /// The request body as sent, secrets masked, for a webhook with a body template.
    pub body: Option<String>,
}

fn classify(outcome: &Outcome, result: &mut TestResult) {
    match outcome {
        Outcome::Delivered => result.outcome = "delivered".into(),
        Outcome::Retry { error, retry_after } => {
            result.outcome = "retry".into();
            result.error_kind = Some(error.kind.as_str().into());
            result.http_status = error.http_status;
            result.message = Some(error.message.clone());
            result.retry_after_ms = retry_after.map(|d| d.as_millis() as u64);
        }
        Outcome::Rejected { error, scope } => {
            result.outcome = "rejected".into();
            result.scope = Some(
                match scope {
                    RejectScope::Data => "data",
                    RejectScope::Destination => "destination",
                }
                .into(),
            );
            result.error_kind = Some(error.kind.as_str().into());
            result.http_status = error.http_status;
            result.message = Some(error.message.clone());
        }
        Outcome::Partial(parts) => {
            // One event: its part's outcome.
            if let Some((_, o)) = parts.first() {
                classify(o, result);
            }
        }
    }
}

#[utoipa::path(post, path = "/v1/projects/{project}/destinations/{id}/test", tag = "destinations",
    summary = "Send one synthetic event",
    description = "Encodes one synthetic Event Log (`type: EVENT_DESTINATION`, `payload.test: true`) exactly as a live delivery would and sends it once, without retries; answers with the outcome as courier classified it. Works on paused destinations too.",
    params(("project" = String, Path, description = "The projectId"), ("id" = String, Path, description = "The destination id")),
    responses(
        (status = 200, description = "The destination's answer (whatever it was)", body = TestResult),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 404, description = "Unknown destination", body = ErrorBody),
        (status = 409, description = "The stored definition is not valid under the current configuration", body = ErrorBody),
        (status = 503, description = "Starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn test_destination(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project, id)): Params<(String, String)>,
) -> Result<Json<TestResult>, ApiError> {
    let api = api.get()?;
    api.grant(&headers, &project)?;
    let found = api.find_or_404(&project, &id)?;
    let d = api.config_of(&found)?;
    let file = api.file();
    let probe = Probe::new(&d, &file.kafka.topic, &file.security).map_err(|e| {
        ApiError::validation(vec![(
            String::new(),
            format!("the destination cannot be started: {e}"),
        )])
    })?;
    let sent = probe.send_test_event().await;
    let mut result = TestResult {
        outcome: String::new(),
        scope: None,
        error_kind: None,
        http_status: None,
        message: None,
        retry_after_ms: None,
        latency_ms: sent.latency.as_millis() as u64,
        event_id: sent.event_id,
        body: sent.body,
    };
    match sent.answer {
        Answer::NotEncoded(error) => classify(
            &Outcome::Rejected {
                error,
                scope: RejectScope::Data,
            },
            &mut result,
        ),
        Answer::Answered(outcome) => classify(&outcome, &mut result),
        Answer::TimedOut(limit) => {
            result.outcome = "retry".into();
            result.error_kind = Some("timeout".into());
            result.message = Some(format!("no answer within {limit:?}"));
        }
    }
    tracing::info!(%project, destination = %id, outcome = %result.outcome, latency_ms = result.latency_ms,
        "test event sent through the API");
    Ok(Json(result))
}
