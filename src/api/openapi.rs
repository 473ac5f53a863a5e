//! The OpenAPI document at `/v1/openapi.json`, generated from the handlers' annotations.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::error::{ErrorBody, ErrorDetail, ErrorInfo};
use super::{destinations, failures, jobs, projects, status, test_event};
use crate::config::bounds;

/// The keys a destination definition may have, by type (the `[[destinations]]` keys).
fn definition_properties(types: &[&str]) -> Value {
    let string = json!({ "type": "string" });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let int =
        |(min, max): bounds::Range| json!({ "type": "integer", "minimum": min, "maximum": max });
    let secret = |what: &str| {
        json!({ "type": "string",
            "description": format!("{what}. Write-only: answers show it masked (\"****1234\"); sending the mask back keeps the stored value.") })
    };
    let mut properties = json!({
        "type": { "type": "string", "enum": types, "description": "The destination type." },
        "project": { "type": "string", "description": "The projectId; taken from the path (when given it must match)." },
        "id": { "type": "string", "description": "The destination id; taken from the path (when given it must match)." },
        "enabled": { "type": "boolean", "description": "Disabled destinations receive nothing. Default true." },
        "filter": {
            "type": "object", "additionalProperties": false,
            "description": "Which of the project's events it receives; every condition given must hold, a list matches any member.",
            "properties": {
                "min_level": { "type": "string", "enum": ["DEBUG", "INFO", "WARN", "ERROR"] },
                "levels": { "type": "array", "items": { "type": "string", "enum": ["DEBUG", "INFO", "WARN", "ERROR"] } },
                "types": strings, "end_user_ids": strings, "integration_ids": strings,
                "trace_ids": strings, "event_names": strings,
                "since": { "type": "string", "format": "date-time" },
                "until": { "type": "string", "format": "date-time" },
                "search": string,
            }
        },
        "delivery": {
            "type": "object", "additionalProperties": false,
            "description": "Overrides of courier's [delivery] defaults (durations like \"1s\", \"2m\"). Every setting has bounds (courier's docs/operations.md, \"Bounds\"); a value outside them is refused with 422.",
            "properties": {
                "batch_max_events": int(bounds::BATCH_MAX_EVENTS),
                "batch_max_bytes": int(bounds::BATCH_MAX_BYTES),
                "batch_timeout": string, "max_in_flight": int(bounds::MAX_IN_FLIGHT),
                "request_timeout": string, "retry_max_elapsed": string,
                "retry_initial_backoff": string, "retry_max_backoff": string,
                "queue_max_events": int(bounds::QUEUE_MAX_EVENTS),
                "retry_schedule": { "type": "array", "items": { "type": "string" },
                    "maxItems": bounds::MAX_RETRY_SCHEDULE_LEN },
                "circuit_failure_threshold": int(bounds::CIRCUIT_FAILURE_THRESHOLD),
                "probe_interval": string, "pause_after": string,
            }
        },
        "url": { "type": "string", "description": "webhook: where batches are POSTed (http or https)." },
        "secret": secret("webhook: Standard Webhooks signing secret (whsec_…)"),
        "headers": { "type": "object", "additionalProperties": { "type": "string" },
            "description": "webhook, otlp: extra request headers (otlp: the receiver's API key header). Values are write-only (masked in answers)." },
        "format": { "type": "string", "enum": ["json_array", "ndjson"] },
        "compression": { "type": "string", "enum": ["none", "gzip"] },
        "api_key": secret("datadog: the API key"),
        "site": string, "endpoint": string, "service": string, "source": string,
        "hostname": string, "tags": strings,
        "token": secret("splunk_hec: the HEC token"),
        "index": string, "sourcetype": string, "host": string,
        "ack": { "type": "boolean" }, "ack_timeout": string,
        "max_request_bytes": int(bounds::MAX_REQUEST_BYTES),
        "tls": { "type": "object", "properties": { "insecure_skip_verify": { "type": "boolean" } } },
        "bucket": string, "region": string, "force_path_style": { "type": "boolean" },
        "prefix": string, "key_template": string,
        "access_key_id": secret("s3: the access key id"),
        "secret_access_key": secret("s3: the secret access key"),
        "session_token": secret("s3: a session token"),
        "server_side_encryption": { "type": "string", "enum": ["AES256", "aws:kms"] },
        "kms_key_id": string,
        "multipart_threshold": int(bounds::MULTIPART_THRESHOLD),
        "multipart_part_size": int(bounds::MULTIPART_PART_SIZE),
    });
    // More literals: one json! of every key passes the macro's recursion limit.
    let email = json!({
        "port": { "type": "integer", "minimum": 1, "maximum": 65535, "description": "email: the SMTP port (default by tls_mode: 587, 465, 25)." },
        "tls_mode": { "type": "string", "enum": ["starttls", "tls", "none"], "description": "email: how the SMTP connection is secured." },
        "username": string,
        "password": secret("email: the SMTP AUTH password"),
        "from": string, "to": strings,
        "min_interval": { "type": "string", "description": "email: at most one email per this interval (default 15m)." },
        "max_message_bytes": int(crate::sinks::email::MAX_MESSAGE_BYTES),
    });
    let otlp = json!({
        "logs_path": { "type": "string", "description": "otlp: the path after endpoint; default /v1/logs." },
        "encoding": { "type": "string", "enum": ["protobuf", "json"], "description": "otlp: request body encoding; default protobuf." },
        "service_name": { "type": "string", "description": "otlp: the resource's service.name; default paragon." },
        "resource_attributes": { "type": "object", "additionalProperties": { "type": "string" },
            "description": "otlp: more resource attributes (string values)." },
    });
    for more in [email, otlp] {
        if let (Some(all), Value::Object(more)) = (properties.as_object_mut(), more) {
            all.extend(more);
        }
    }
    properties
}

fn schema(value: Value) -> RefOr<Schema> {
    RefOr::T(serde_json::from_value(value).expect("a valid schema"))
}

/// A destination as answered (marker type for the document).
pub struct Destination;

impl PartialSchema for Destination {
    fn schema() -> RefOr<Schema> {
        let mut properties = definition_properties(&[
            "webhook",
            "datadog",
            "splunk_hec",
            "otlp",
            "email",
            "s3",
            "file",
        ]);
        properties["managed_by"] = json!({ "type": "string", "enum": ["api", "config_file"],
            "description": "api: created through this API; config_file: defined in courier's configuration file (read-only here)." });
        properties["path"] = json!({ "type": "string", "description": "file: the NDJSON file (configuration file only)." });
        schema(json!({
            "type": "object",
            "description": "A destination in the shape of a [[destinations]] table, secrets masked.",
            "required": ["project", "id", "type", "managed_by"],
            "properties": properties,
            "additionalProperties": true,
        }))
    }
}

impl ToSchema for Destination {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Destination")
    }
}

/// A destination definition as sent (marker type for the document).
pub struct DestinationInput;

impl PartialSchema for DestinationInput {
    fn schema() -> RefOr<Schema> {
        let mut properties =
            definition_properties(&["webhook", "datadog", "splunk_hec", "otlp", "email", "s3"]);
        properties["managed_by"] = json!({ "type": "string", "description": "Ignored (read-only), accepted so that a read definition can be sent back." });
        schema(json!({
            "type": "object",
            "description": "A destination definition: a [[destinations]] table in JSON. Which keys apply depends on `type` (see courier's README); keys of another type are refused (422).",
            "required": ["type"],
            "properties": properties,
            "additionalProperties": false,
        }))
    }
}

impl ToSchema for DestinationInput {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DestinationInput")
    }
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token of courier's `[api] tokens`"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "courier destinations API",
        description = "Configure, test and watch a project's event destinations. Every error answer is `{\"error\": {\"code\", \"message\", \"details\": [{\"pointer\", \"message\"}]}}`.",
    ),
    paths(
        projects::list_projects,
        destinations::list,
        destinations::get_one,
        destinations::put,
        destinations::delete,
        destinations::validate,
        test_event::test_destination,
        status::status,
        destinations::enable,
        destinations::pause,
        status::project_status,
        failures::list_failures,
        jobs::replay_failures,
        jobs::get_job,
        jobs::list_jobs,
    ),
    components(schemas(
        ErrorBody,
        ErrorInfo,
        ErrorDetail,
        Destination,
        DestinationInput,
        projects::ProjectList,
        destinations::DestinationList,
        destinations::Validation,
        test_event::TestResult,
        status::Status,
        status::LastError,
        status::EventCounts,
        status::ProjectStatus,
        crate::fleet::minutes::MinuteView,
        failures::FailureList,
        crate::fleet::aggregate::FailureView,
        jobs::JobView,
        jobs::JobState,
        jobs::JobProgress,
        jobs::ReplayCounts,
        jobs::ReplayRequest,
        jobs::JobList,
    )),
    modifiers(&Security),
    tags(
        (name = "destinations", description = "A project's event destinations"),
        (name = "jobs", description = "Work started through the API, followed while it runs"),
    ),
)]
struct ApiDoc;

/// The document (built once).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_value(ApiDoc::openapi()).expect("the document serializes"))
}
