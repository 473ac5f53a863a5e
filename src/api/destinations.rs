//! Reading and writing destination definitions: list, read, create or replace, delete,
//! validate, enable and pause. Writes go to the store, which every replica applies; the
//! file's destinations are answered but never changed here.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::definition::{definition_from, view, API, FILE};
use super::error::{ApiError, ErrorBody};
use super::http::{Api, Params};
use super::openapi;
use super::secrets;
use crate::config::DestinationConfig;

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
    api.known_project_or_404(&project)?;
    let file = api.file();
    let mut out: Vec<Value> = Vec::new();
    let mut file_ids = Vec::new();
    let mut from_file: Vec<&DestinationConfig> = file
        .destinations
        .iter()
        .filter(|d| d.project == project)
        .map(|d| &**d)
        .collect();
    from_file.sort_by(|a, b| a.id.cmp(&b.id));
    for d in from_file {
        file_ids.push(d.id.clone());
        out.push(view(&d.table.0, &d.project, &d.id, FILE));
    }
    for ((p, id), e) in &*api.store.snapshot() {
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
