//! The `/v1` routes.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use utoipa::ToSchema;

use super::auth::{Grant, Tokens};
use super::error::{ApiError, ErrorBody};
use super::openapi;
use super::secrets;
use super::store::Store;
use crate::config::{self, Config, DestinationConfig};
use crate::metrics::Metrics;
use crate::probe::{Answer, Probe};
use crate::sinks::{self, Outcome, RejectScope};
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
    /// Jobs started through the API (replays of failures).
    pub jobs: super::jobs::Jobs,
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

/// Who manages a destination.
const FILE: &str = "config_file";
const API: &str = "api";

/// A destination as answered: its definition, secrets masked, with `project`, `id` and
/// `managed_by`.
fn view(definition: &Value, project: &str, id: &str, managed_by: &str) -> Value {
    let mut v = secrets::masked(definition);
    if let Value::Object(map) = &mut v {
        map.insert("project".into(), json!(project));
        map.insert("id".into(), json!(id));
        map.insert("managed_by".into(), json!(managed_by));
    }
    v
}

/// One destination found in the file or the store.
pub(super) struct Found {
    definition: Value,
    managed_by: &'static str,
    /// Parsed, for the file's (the store's are parsed on use).
    config: Option<DestinationConfig>,
}

impl Inner {
    pub(super) fn file(&self) -> Arc<Config> {
        self.file.borrow().clone()
    }

    fn find(&self, project: &str, id: &str) -> Option<Found> {
        let file = self.file();
        if let Some(d) = file
            .destinations
            .iter()
            .find(|d| d.project == project && d.id == id)
        {
            return Some(Found {
                definition: d.table.0.clone(),
                managed_by: FILE,
                config: Some(d.clone()),
            });
        }
        self.store
            .snapshot()
            .entries
            .get(&(project.to_owned(), id.to_owned()))
            .map(|e| Found {
                definition: e.definition.clone(),
                managed_by: API,
                config: None,
            })
    }

    pub(super) fn find_or_404(&self, project: &str, id: &str) -> Result<Found, ApiError> {
        self.find(project, id).ok_or_else(|| {
            ApiError::not_found(format!(
                "destination {id:?} not found in project {project:?}"
            ))
        })
    }

    fn known_project(&self, project: &str) -> bool {
        self.file()
            .destinations
            .iter()
            .any(|d| d.project == project)
            || self
                .store
                .snapshot()
                .entries
                .keys()
                .any(|(p, _)| p == project)
            || self.tokens.named_projects().any(|p| p == project)
    }

    pub(super) fn grant(&self, headers: &HeaderMap, project: &str) -> Result<Grant, ApiError> {
        let grant = self.tokens.authenticate(headers)?;
        grant.check(project)?;
        Ok(grant)
    }

    /// The parsed configuration of a found destination.
    pub(super) fn config_of(&self, found: &Found) -> Result<DestinationConfig, ApiError> {
        if let Some(c) = &found.config {
            return Ok(c.clone());
        }
        let file = self.file();
        config::parse_destination(found.definition.clone(), &file.delivery, &file.security)
            .map_err(|errors| {
                let mut e = ApiError::validation(errors);
                e.status = StatusCode::CONFLICT;
                e.body.error.code = "invalid_stored_definition".into();
                e.body.error.message =
                    "the stored definition is not valid under courier's current configuration; PUT a corrected one".into();
                e
            })
    }

    /// 409 when the project already has as many destinations in the store as one may
    /// ([`config::bounds::MAX_API_DESTINATIONS_PER_PROJECT`]): each costs a lane, a client
    /// and a queue on every replica. Checked against this replica's view of the store.
    fn check_room(&self, project: &str) -> Result<(), ApiError> {
        let max = config::bounds::MAX_API_DESTINATIONS_PER_PROJECT;
        let held = self
            .store
            .snapshot()
            .entries
            .keys()
            .filter(|(p, _)| p == project)
            .count();
        if held < max {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_destinations",
            format!("project {project:?} already has {held} destinations created through the API, the most one may have ({max}); delete one first"),
        ))
    }

    /// Checks a definition as the API accepts it, adding what is wrong to `errors` (found
    /// before: secrets that may not be kept); returns it parsed.
    fn check(
        &self,
        definition: &Value,
        mut errors: Vec<(String, String)>,
    ) -> Result<DestinationConfig, ApiError> {
        errors.extend(api_restrictions(definition));
        let file = self.file();
        let parsed = config::parse_destination(definition.clone(), &file.delivery, &file.security);
        let parsed = match parsed {
            Ok(d) => Some(d),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let d = parsed.expect("no errors means parsed");
        if let Err(e) = sinks::build(&d, &file.kafka.topic, &file.security) {
            return Err(ApiError::validation(vec![(
                String::new(),
                format!("the destination cannot be started: {e}"),
            )]));
        }
        Ok(d)
    }
}

/// What the API refuses although the file accepts it: destinations that would use courier's
/// own credentials. (Keys naming files on the courier host are refused by
/// [`config::parse_destination`] itself, before anything looks at them.)
fn api_restrictions(definition: &Value) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    if definition.get("type").and_then(Value::as_str) == Some("s3") {
        for key in ["access_key_id", "secret_access_key"] {
            if definition.get(key).is_none_or(Value::is_null) {
                errors.push((
                    format!("/{key}"),
                    "is required for s3 destinations created through the API (courier's own AWS credentials are not lent to them)".into(),
                ));
            }
        }
    }
    errors
}

fn valid_project(project: &str) -> bool {
    !project.trim().is_empty()
        && project.len() <= 256
        && !project.contains('/')
        && !project.chars().any(char::is_control)
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
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

/// The request body as a definition for `project/id`: 400 when it is not JSON, 422 when it
/// is not an object or names another project or id.
fn definition_from(
    body: Result<Bytes, BytesRejection>,
    project: &str,
    id: Option<&str>,
) -> Result<Value, ApiError> {
    let value = json_body(body)?;
    let Value::Object(mut map) = value else {
        return Err(ApiError::validation(vec![(
            String::new(),
            "must be a JSON object".into(),
        )]));
    };
    map.remove("managed_by");
    let mut errors = Vec::new();
    if !valid_project(project) {
        errors.push((
            "/project".into(),
            "a project id must be 1 to 256 characters, without '/' or control characters".into(),
        ));
    }
    let mut check = |key: &str, wanted: Option<&str>, map: &mut Map<String, Value>| {
        match (map.get(key), wanted) {
            (None, _) => {}
            (Some(Value::String(s)), Some(w)) if s == w => {}
            (Some(_), Some(w)) => errors.push((
                format!("/{key}"),
                format!("must be {w:?} (the {key} in the path) or left out"),
            )),
            (Some(Value::String(_)), None) => {}
            (Some(_), None) => errors.push((format!("/{key}"), "must be a string".into())),
        }
        if let Some(w) = wanted {
            map.insert(key.into(), json!(w));
        }
    };
    check("project", Some(project), &mut map);
    check("id", id, &mut map);
    let id = map
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            map.insert("id".into(), json!("validate"));
            "validate".into()
        });
    if !valid_id(&id) {
        errors.push((
            "/id".into(),
            "a destination id must be 1 to 128 characters: letters, digits, '.', '_' or '-', starting with a letter or digit".into(),
        ));
    }
    if errors.is_empty() {
        Ok(Value::Object(map))
    } else {
        Err(ApiError::validation(errors))
    }
}

/// `GET …/destinations`.
#[derive(Serialize, ToSchema)]
pub struct DestinationList {
    /// The project's destinations, file-managed ones first, each ordered by id.
    #[schema(value_type = Vec<openapi::Destination>)]
    pub destinations: Vec<Value>,
}

#[utoipa::path(get, path = "/v1/projects/{project}/destinations", tag = "destinations",
    summary = "List a project's destinations",
    description = "Every destination of the project: those of the configuration file (`managed_by: config_file`, read-only) and those created through the API (`managed_by: api`). Secrets are masked.",
    params(("project" = String, Path, description = "The projectId")),
    responses(
        (status = 200, description = "The destinations", body = DestinationList),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 404, description = "Unknown project", body = ErrorBody),
        (status = 503, description = "Starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project,)): Params<(String,)>,
) -> Result<Json<DestinationList>, ApiError> {
    let api = api.get()?;
    api.grant(&headers, &project)?;
    if !api.known_project(&project) {
        return Err(ApiError::not_found(format!(
            "project {project:?} has no destinations"
        )));
    }
    let file = api.file();
    let mut out: Vec<Value> = Vec::new();
    let mut file_ids = Vec::new();
    let mut from_file: Vec<&DestinationConfig> = file
        .destinations
        .iter()
        .filter(|d| d.project == project)
        .collect();
    from_file.sort_by(|a, b| a.id.cmp(&b.id));
    for d in from_file {
        file_ids.push(d.id.clone());
        out.push(view(&d.table.0, &d.project, &d.id, FILE));
    }
    for ((p, id), e) in &api.store.snapshot().entries {
        if *p == project && !file_ids.contains(id) {
            out.push(view(&e.definition, p, id, API));
        }
    }
    Ok(Json(DestinationList { destinations: out }))
}

#[utoipa::path(get, path = "/v1/projects/{project}/destinations/{id}", tag = "destinations",
    summary = "Read a destination",
    description = "The destination's definition in the shape of a `[[destinations]]` table, secrets masked (`\"****1234\"`: the last four characters of secrets of 12 characters or more).",
    params(("project" = String, Path, description = "The projectId"), ("id" = String, Path, description = "The destination id")),
    responses(
        (status = 200, description = "The destination", body = openapi::Destination),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 404, description = "Unknown destination", body = ErrorBody),
        (status = 503, description = "Starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn get_one(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project, id)): Params<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let api = api.get()?;
    api.grant(&headers, &project)?;
    let found = api.find_or_404(&project, &id)?;
    Ok(Json(view(
        &found.definition,
        &project,
        &id,
        found.managed_by,
    )))
}

#[utoipa::path(put, path = "/v1/projects/{project}/destinations/{id}", tag = "destinations",
    summary = "Create or replace a destination",
    description = "Validates the definition and writes it to the destinations store; every replica applies it within a second. `project` and `id` come from the path. A secret sent back exactly as its mask keeps the stored secret, unless the definition changes where the destination sends (webhook `url`, Datadog `site`/`endpoint`, Splunk `endpoint`, S3 `endpoint`/`bucket`/`region`/`force_path_style`): then each secret must be given again (422 naming it). Destinations of the configuration file cannot be replaced (409); a project has at most 100 destinations created through the API (409). `file` destinations, Splunk `tls.ca_file` and S3 destinations without their own keys are refused. Every setting has bounds (422 naming the key).",
    params(("project" = String, Path, description = "The projectId"), ("id" = String, Path, description = "The destination id: letters, digits, '.', '_', '-'")),
    request_body(content = openapi::DestinationInput, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced", body = openapi::Destination),
        (status = 201, description = "Created", body = openapi::Destination),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 409, description = "The destination is managed by the configuration file, or the project already has as many destinations as one may (100)", body = ErrorBody),
        (status = 422, description = "The definition is not valid; `details` lists each error with its JSON pointer", body = ErrorBody),
        (status = 503, description = "The store cannot be written now, or courier is starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn put(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project, id)): Params<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let api = api.get()?;
    api.grant(&headers, &project)?;
    let existing = api.find(&project, &id);
    if existing.as_ref().is_some_and(|f| f.managed_by == FILE) {
        return Err(read_only(&project, &id));
    }
    if existing.is_none() {
        api.check_room(&project)?;
    }
    let mut definition = definition_from(body, &project, Some(&id))?;
    let refused = match &existing {
        Some(old) => secrets::keep_unchanged(&mut definition, &old.definition).err(),
        None => None,
    };
    api.check(&definition, refused.unwrap_or_default())?;
    api.store
        .put(&project, &id, &definition)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    tracing::info!(%project, destination = %id, created = existing.is_none(), "destination written through the API");
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(view(&definition, &project, &id, API))).into_response())
}

fn read_only(project: &str, id: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "read_only",
        format!("destination {project}/{id} is defined in courier's configuration file; change it there (the API cannot)"),
    )
}

#[utoipa::path(delete, path = "/v1/projects/{project}/destinations/{id}", tag = "destinations",
    summary = "Delete a destination",
    description = "Writes a tombstone to the destinations store; every replica stops delivering to it within a second (what it already holds drains).",
    params(("project" = String, Path, description = "The projectId"), ("id" = String, Path, description = "The destination id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 404, description = "Unknown destination", body = ErrorBody),
        (status = 409, description = "The destination is managed by the configuration file", body = ErrorBody),
        (status = 503, description = "The store cannot be written now, or courier is starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn delete(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project, id)): Params<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let api = api.get()?;
    api.grant(&headers, &project)?;
    let found = api.find_or_404(&project, &id)?;
    if found.managed_by == FILE {
        return Err(read_only(&project, &id));
    }
    api.store
        .delete(&project, &id)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    tracing::info!(%project, destination = %id, "destination deleted through the API");
    Ok(StatusCode::NO_CONTENT)
}

/// The answer of a successful validation.
#[derive(Serialize, ToSchema)]
pub struct Validation {
    /// Always true (an invalid definition is answered with 422).
    pub valid: bool,
}

#[utoipa::path(post, path = "/v1/projects/{project}/destinations:validate", tag = "destinations",
    summary = "Validate a definition without saving it",
    description = "The same checks as PUT, nothing written. `id` may be given in the body.",
    params(("project" = String, Path, description = "The projectId")),
    request_body(content = openapi::DestinationInput, content_type = "application/json"),
    responses(
        (status = 200, description = "Valid", body = Validation),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 422, description = "Not valid; `details` lists each error with its JSON pointer", body = ErrorBody),
        (status = 503, description = "Starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn validate(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project,)): Params<(String,)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Validation>, ApiError> {
    let api = api.get()?;
    api.grant(&headers, &project)?;
    let definition = definition_from(body, &project, None)?;
    api.check(&definition, Vec::new())?;
    Ok(Json(Validation { valid: true }))
}

async fn set_enabled(
    api: &Api,
    headers: &HeaderMap,
    project: &str,
    id: &str,
    enabled: bool,
) -> Result<Json<Value>, ApiError> {
    let api = api.get()?;
    api.grant(headers, project)?;
    let found = api.find_or_404(project, id)?;
    if found.managed_by == FILE {
        return Err(read_only(project, id));
    }
    let mut definition = found.definition;
    if let Value::Object(map) = &mut definition {
        map.insert("enabled".into(), json!(enabled));
    }
    api.store
        .put(project, id, &definition)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    tracing::info!(%project, destination = %id, enabled, "destination enabled or paused through the API");
    Ok(Json(view(&definition, project, id, API)))
}

#[utoipa::path(post, path = "/v1/projects/{project}/destinations/{id}/enable", tag = "destinations",
    summary = "Enable a destination",
    description = "Sets `enabled = true`: events consumed from now on are delivered to it.",
    params(("project" = String, Path, description = "The projectId"), ("id" = String, Path, description = "The destination id")),
    responses(
        (status = 200, description = "Enabled", body = openapi::Destination),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 404, description = "Unknown destination", body = ErrorBody),
        (status = 409, description = "The destination is managed by the configuration file", body = ErrorBody),
        (status = 503, description = "The store cannot be written now, or courier is starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn enable(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project, id)): Params<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&api, &headers, &project, &id, true).await
}

#[utoipa::path(post, path = "/v1/projects/{project}/destinations/{id}/pause", tag = "destinations",
    summary = "Pause a destination",
    description = "Sets `enabled = false`: events consumed from now on are not routed to it (what it already holds drains).",
    params(("project" = String, Path, description = "The projectId"), ("id" = String, Path, description = "The destination id")),
    responses(
        (status = 200, description = "Paused", body = openapi::Destination),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token may not act on this project", body = ErrorBody),
        (status = 404, description = "Unknown destination", body = ErrorBody),
        (status = 409, description = "The destination is managed by the configuration file", body = ErrorBody),
        (status = 503, description = "The store cannot be written now, or courier is starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn pause(
    State(api): State<Api>,
    headers: HeaderMap,
    Params((project, id)): Params<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&api, &headers, &project, &id, false).await
}

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
