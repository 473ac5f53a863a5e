//! The `/v1` routes: the routing table, the state every handler shares, and the request and
//! error shapes they have in common. The handlers live with their concern: [`super::destinations`]
//! (reading and writing definitions), [`super::test_event`], [`super::status`] and
//! [`super::jobs`].

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;

use super::auth::{Grant, Tokens};
use super::destinations::{delete, enable, get_one, list, pause, put, validate};
use super::error::ApiError;
use super::openapi;
use super::status::status;
use super::store::Store;
use super::test_event::test_destination;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::topology::HealthRegistry;

/// What the handlers work with, once the store has been read.
pub struct Inner {
    /// Who may call.
    pub tokens: Tokens,
    /// The destinations store.
    pub store: Arc<Store>,
    /// The configuration file's current contents (defaults, security, read-only destinations).
    pub file: watch::Receiver<Arc<Config>>,
    /// The running destinations' health.
    pub registry: HealthRegistry,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The fleet's published status (every live replica's destinations).
    pub fleet: Arc<crate::fleet::FleetStatus>,
    /// Jobs started through the API (replays of failures), recorded in the jobs topic.
    pub jobs: Arc<super::jobs::Jobs>,
    /// Cancelled when courier stops: running jobs stop with it.
    pub stop: tokio_util::sync::CancellationToken,
}

/// The API's state: empty (every call answers 503) until [`Api::start`].
#[derive(Clone, Default)]
pub struct Api(Arc<OnceLock<Inner>>);

impl Api {
    /// Starts answering with `inner`.
    pub fn start(&self, inner: Inner) {
        let _ = self.0.set(inner);
    }

    pub(super) fn get(&self) -> Result<&Inner, ApiError> {
        self.0.get().ok_or_else(|| {
            ApiError::unavailable("courier is starting: the destinations store is being read")
        })
    }
}

/// The `/v1` routes (full paths), every error answered in the common shape.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/projects", get(super::projects::list_projects))
        .route("/v1/projects/{project}/destinations", get(list))
        .route(
            "/v1/projects/{project}/destinations:validate",
            post(validate),
        )
        .route(
            "/v1/projects/{project}/destinations/{id}",
            get(get_one).put(put).delete(delete),
        )
        .route(
            "/v1/projects/{project}/destinations/{id}/test",
            post(test_destination),
        )
        .route(
            "/v1/projects/{project}/destinations/{id}/status",
            get(status),
        )
        .route(
            "/v1/projects/{project}/status",
            get(super::status::project_status),
        )
        .route(
            "/v1/projects/{project}/failures",
            get(super::failures::list_failures),
        )
        .route(
            "/v1/projects/{project}/destinations/{id}/enable",
            post(enable),
        )
        .route(
            "/v1/projects/{project}/destinations/{id}/pause",
            post(pause),
        )
        .route(
            "/v1/projects/{project}/destinations/{id}/replay-failures",
            post(super::jobs::replay_failures),
        )
        .route("/v1/jobs/{job}", get(super::jobs::get_job))
        .route("/v1/projects/{project}/jobs", get(super::jobs::list_jobs))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::middleware::map_response(json_errors))
        .with_state(api)
}

/// Rejections produced by axum itself (405, 413, …) answered in the common error shape.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_owned();
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = if message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    } else {
        message
    };
    let body = serde_json::to_vec(&ApiError::new(status, code, message).body)
        .expect("an error body serializes");
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Path parameters, with the common error shape when they do not parse.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(Params(v)),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                e.body_text(),
            )),
        }
    }
}

async fn openapi_json() -> impl IntoResponse {
    Json(openapi::document().clone())
}

impl Inner {
    pub(super) fn file(&self) -> Arc<Config> {
        self.file.borrow().clone()
    }

    pub(super) fn grant(&self, headers: &HeaderMap, project: &str) -> Result<Grant, ApiError> {
        let grant = self.tokens.authenticate(headers)?;
        grant.check(project)?;
        Ok(grant)
    }
}

/// The request body as JSON: 400 when it cannot be read or is not JSON.
pub(super) fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not JSON: {e}"),
        )
    })
}
