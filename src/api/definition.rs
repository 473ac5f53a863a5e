//! A destination as the API sees it: found in the configuration file (read-only) or in the
//! store, answered with its secrets masked, and checked before it is written — the file's own
//! rules ([`config::parse_destination`]) plus what only the API refuses, so that a tenant can
//! never store what the file would not accept, nor borrow courier's own credentials.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::http::{json_body, Inner};
use super::secrets;
use crate::config::{self, DestinationConfig};
use crate::sinks;

/// Who manages a destination.
pub(super) const FILE: &str = "config_file";
pub(super) const API: &str = "api";

/// A destination as answered: its definition, secrets masked, with `project`, `id` and
/// `managed_by`.
pub(super) fn view(definition: &Value, project: &str, id: &str, managed_by: &str) -> Value {
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
    /// Its definition, as written (secrets included).
    pub(super) definition: Value,
    /// [`FILE`] or [`API`].
    pub(super) managed_by: &'static str,
    /// Parsed, for the file's (the store's are parsed on use).
    config: Option<DestinationConfig>,
}

impl Inner {
    pub(super) fn find(&self, project: &str, id: &str) -> Option<Found> {
        let file = self.file();
        if let Some(d) = file
            .destinations
            .iter()
            .find(|d| d.project == project && d.id == id)
        {
            return Some(Found {
                definition: d.table.0.clone(),
                managed_by: FILE,
                config: Some((**d).clone()),
            });
        }
        self.store
            .snapshot()
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

    /// 404 unless the project has destinations or a token names it.
    pub(super) fn known_project_or_404(&self, project: &str) -> Result<(), ApiError> {
        if self.known_project(project) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "project {project:?} has no destinations"
            )))
        }
    }

    pub(super) fn known_project(&self, project: &str) -> bool {
        self.file()
            .destinations
            .iter()
            .any(|d| d.project == project)
            || self.store.snapshot().keys().any(|(p, _)| p == project)
            || self.tokens.named_projects().any(|p| p == project)
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
    pub(super) fn check_room(&self, project: &str) -> Result<(), ApiError> {
        let max = config::bounds::MAX_API_DESTINATIONS_PER_PROJECT;
        let held = self
            .store
            .snapshot()
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
    pub(super) fn check(
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

/// The request body as a definition for `project/id`: 400 when it is not JSON, 422 when it
/// is not an object or names another project or id.
pub(super) fn definition_from(
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
