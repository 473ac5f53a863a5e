//! `GET /v1/projects/{project}/failures`: a project's recent delivery failures — when, which
//! destination, the error class and HTTP status, the destination's answer, and the events —
//! from the status every live replica publishes (each keeps its destinations' last 20), so
//! that a customer sees what went wrong without reading their Event Logs.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::http::{Api, Params};
use crate::fleet::aggregate::FailureView;

/// The default number of failures listed.
pub const DEFAULT_LIMIT: usize = 50;
/// The most failures listed.
pub const MAX_LIMIT: usize = 500;

/// `GET …/failures`.
#[derive(Serialize, ToSchema)]
pub struct FailureList {
    /// The failures, newest first.
    pub failures: Vec<FailureView>,
}

/// The query: `destination` and `limit`, both optional (read as text, so that a bad value is
/// answered in the common error shape).
#[derive(Deserialize)]
pub(crate) struct FailureQuery {
    destination: Option<String>,
    limit: Option<String>,
}

fn bad_request(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// `limit` as given, or the default.
fn limit(text: Option<&str>) -> Result<usize, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIMIT);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(bad_request(format!(
            "limit must be a whole number from 1 to {MAX_LIMIT}; got {text:?}"
        ))),
    }
}

#[utoipa::path(get, path = "/v1/projects/{project}/failures", tag = "destinations",
    summary = "A project's recent delivery failures",
    description = "The newest delivery failures of the project's destinations (of one with `destination`), newest first: when, which destination, the error class, the HTTP status, the destination's answer (secrets masked, trimmed to 1024 characters), how many events failed and their ids (at most 100 per failure). Read from the status every live replica publishes; each keeps the last 20 failures of each destination since it started.",
    params(
        ("project" = String, Path, description = "The projectId"),
        ("destination" = Option<String>, Query, description = "Only this destination's failures"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "How many, 1 to 500 (default 50)"),
    ),
    responses(
        (status = 200, description = "The failures", body = FailureList),
        (status = 400, description = "Malformed request (a `limit` out of bounds)", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 404, description = "Unknown project or destination", body = ErrorBody),
        (status = 503, description = "Starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn list_failures(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project,)): Params<(String,)>,
    query: Result<Query<FailureQuery>, QueryRejection>,
) -> Result<Json<FailureList>, ApiError> {
    let api = api.get()?;
    api.grant(&headers, &project)?;
    let Query(query) = query.map_err(|e| bad_request(e.body_text()))?;
    let limit = limit(query.limit.as_deref())?;
    match &query.destination {
        Some(id) => {
            api.find_or_404(&project, id)?;
        }
        None => api.known_project_or_404(&project)?,
    }
    Ok(Json(FailureList {
        failures: api
            .fleet
            .failures(&project, query.destination.as_deref(), limit),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_bounded() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some("1")).unwrap(), 1);
        assert_eq!(limit(Some("500")).unwrap(), 500);
        for bad in ["0", "501", "-1", "ten", "", "1.5"] {
            let e = limit(Some(bad)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(e.body.error.message.contains("1 to 500"), "{bad}");
        }
    }
}
