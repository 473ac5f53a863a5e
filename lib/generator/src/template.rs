//! Catalog templates: the Event Log catalog's messages compiled into segments, the kinds of
//! event each message stands for, and how a generated event is padded to a target size.

use super::*;

/// Pads the event serialized at `out[start..]` to `target` bytes by adding a `padding` string
/// as the last member of its `payload` (which is the event's last member and never empty, so
/// the event ends with `}}`).
pub(crate) fn pad(out: &mut Vec<u8>, start: usize, target: usize) {
    pub(crate) const PREFIX: &[u8] = b",\"padding\":\"";
    pub(crate) const SUFFIX: &[u8] = b"\"}}";
    pub(crate) const FILLER: &[u8] =
        b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ";
    let len = out.len() - start;
    let overhead = PREFIX.len() + SUFFIX.len() - 2;
    if len + overhead >= target {
        return;
    }
    debug_assert!(out.ends_with(b"}}"));
    let mut fill = target - len - overhead;
    out.truncate(out.len() - 2);
    out.reserve(target - len + 2);
    out.extend_from_slice(PREFIX);
    while fill > 0 {
        let n = fill.min(FILLER.len());
        out.extend_from_slice(&FILLER[..n]);
        fill -= n;
    }
    out.extend_from_slice(SUFFIX);
}

// ---------------------------------------------------------------------------------------------
// The serialized event.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Event<'a> {
    pub(crate) id: SmallStr,
    pub(crate) timestamp: SmallStr,
    pub(crate) level: &'static str,
    #[serde(rename = "type")]
    pub(crate) event_type: &'a str,
    pub(crate) message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) project_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) persona_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) end_user_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) connect_credential_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) connect_credential_config_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) workflow_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) trace_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) integration_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) webhook_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) event_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) event_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) destination_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) destination_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<ErrorInfo>,
    /// Must stay the last member (see [`pad`]).
    pub(crate) payload: Payload,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) http_status: Option<u16>,
    pub(crate) message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) attempts: Option<u32>,
}

/// Every payload has at least one member (required by [`pad`]).
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Payload {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) webhook_event: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) event: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) path: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) schedule: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scheduled_at: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) run_number: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) integration: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) account_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user_email: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expires_in_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scopes: Option<&'static [&'static str]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) duration_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) request_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sync_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pipeline: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) records_processed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) records_deleted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) event_ids: Option<Vec<SmallStr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) record: Option<Record>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Source {
    pub(crate) topic: &'static str,
    pub(crate) partition: u32,
    pub(crate) first_offset: u64,
    pub(crate) last_offset: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record {
    pub(crate) record_id: SmallStr,
    pub(crate) object: &'static str,
    pub(crate) name: &'static str,
    pub(crate) email: &'static str,
    pub(crate) company: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) amount: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) currency: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tags: Option<&'static [&'static str]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) notes: Option<&'static str>,
}

pub(crate) fn make_record(rng: &mut fastrand::Rng, integration: &Integration) -> Record {
    let (name, email) = pick(rng, PEOPLE);
    let amount = integration
        .has_amount
        .then(|| f64::from(rng.u32(100..=5_000_000)) / 100.0);
    Record {
        record_id: small!("rec_{}", rng.u32(1..=RECORDS)),
        object: pick(rng, integration.objects),
        name,
        email,
        company: pick(rng, COMPANIES),
        amount,
        currency: amount.map(|_| pick(rng, &["USD", "EUR", "GBP", "JPY"])),
        tags: (rng.u32(0..100) < 40).then(|| pick(rng, TAG_SETS)),
        notes: (rng.u32(0..100) < 35).then(|| pick(rng, NOTES)),
    }
}

// ---------------------------------------------------------------------------------------------
// The catalog, compiled once.

#[derive(Deserialize)]
pub(crate) struct RawCatalog {
    pub(crate) types: BTreeMap<String, Vec<String>>,
}

#[derive(Debug)]
pub(crate) struct Catalog {
    pub(crate) types: Vec<TypeSpec>,
    pub(crate) type_cumulative: Vec<u32>,
}

#[derive(Debug)]
pub(crate) struct TypeSpec {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) templates: Vec<Template>,
    pub(crate) template_cumulative: Vec<u32>,
}

#[derive(Debug)]
pub(crate) struct Template {
    pub(crate) text: String,
    pub(crate) segments: Vec<Segment>,
    pub(crate) outcome: Outcome,
    /// The error that this message names, if it names one.
    pub(crate) fixed_error: Option<(&'static str, &'static str)>,
}

impl Template {
    pub(crate) fn wants(&self, placeholder: Placeholder) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Placeholder(p) if *p == placeholder))
    }
}

#[derive(Debug)]
pub(crate) enum Segment {
    Literal(String),
    Placeholder(Placeholder),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placeholder {
    EventName,
    ActionName,
    Seconds,
    Message,
    Count,
    DestinationId,
    Reason,
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Neutral,
    Success,
    Warning,
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    AppEvent,
    RequestTrigger,
    IntegrationEnabledTrigger,
    SchedulerTrigger,
    WebhookTrigger,
    CredentialRefresh,
    ActionKit,
    ManagedSync,
    EventDestination,
    Other,
}

impl Kind {
    pub(crate) fn from_name(name: &str) -> Kind {
        match name {
            "APP_EVENT" => Kind::AppEvent,
            "REQUEST_TRIGGER" => Kind::RequestTrigger,
            "INTEGRATION_ENABLED_TRIGGER" => Kind::IntegrationEnabledTrigger,
            "SCHEDULER_TRIGGER" => Kind::SchedulerTrigger,
            "WEBHOOK_TRIGGER" => Kind::WebhookTrigger,
            "CREDENTIAL_REFRESH" => Kind::CredentialRefresh,
            "ACTIONKIT" => Kind::ActionKit,
            "MANAGED_SYNC" => Kind::ManagedSync,
            "EVENT_DESTINATION" => Kind::EventDestination,
            _ => Kind::Other,
        }
    }

    /// Relative frequency of the type.
    pub(crate) fn weight(self) -> u32 {
        match self {
            Kind::WebhookTrigger => 24,
            Kind::ActionKit => 18,
            Kind::ManagedSync => 16,
            Kind::AppEvent => 12,
            Kind::RequestTrigger => 8,
            Kind::SchedulerTrigger => 7,
            Kind::CredentialRefresh => 6,
            Kind::IntegrationEnabledTrigger => 4,
            Kind::EventDestination => 2,
            Kind::Other => 3,
        }
    }

    /// Percentage of new traces that carry a `traceId`.
    pub(crate) fn trace_percent(self) -> u32 {
        match self {
            Kind::EventDestination => 0,
            Kind::ActionKit | Kind::ManagedSync | Kind::WebhookTrigger => 100,
            _ => 80,
        }
    }

    /// Whether the next event may continue this event's trace.
    pub(crate) fn continuable(self) -> bool {
        self != Kind::EventDestination
    }

    /// `(message, code)` pairs for failures of this type.
    pub(crate) fn errors(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::AppEvent => &[
                ("Workflow is disabled for this user", "WORKFLOW_DISABLED"),
                ("Event payload exceeds the 1 MB limit", "PAYLOAD_TOO_LARGE"),
                (
                    "Could not load user settings for workflow",
                    "SETTINGS_UNAVAILABLE",
                ),
            ],
            Kind::RequestTrigger => &[
                ("Request body is not valid JSON", "INVALID_REQUEST_BODY"),
                ("Workflow not found or not deployed", "WORKFLOW_NOT_FOUND"),
                ("Execution did not respond within 30s", "RESPONSE_TIMEOUT"),
            ],
            Kind::IntegrationEnabledTrigger => &[
                (
                    "Integration is not enabled for this project",
                    "INTEGRATION_DISABLED",
                ),
                (
                    "Connected user has no credential for the integration",
                    "CREDENTIAL_MISSING",
                ),
            ],
            Kind::SchedulerTrigger => &[
                ("Execution queue is full", "QUEUE_FULL"),
                ("Workflow was deleted while scheduled", "WORKFLOW_NOT_FOUND"),
            ],
            Kind::WebhookTrigger => &[
                (
                    "Record failed schema validation: missing field \"id\"",
                    "INVALID_RECORD",
                ),
                (
                    "No connected user matches the webhook's account",
                    "USER_NOT_FOUND",
                ),
                ("Signature verification failed", "INVALID_SIGNATURE"),
            ],
            Kind::CredentialRefresh => &[
                (
                    "invalid_grant: refresh token expired or revoked",
                    "INVALID_GRANT",
                ),
                (
                    "Provider returned 503 Service Unavailable",
                    "PROVIDER_UNAVAILABLE",
                ),
            ],
            Kind::ActionKit => &[
                (
                    "Request failed with status code 400: No such column 'Foo__c'",
                    "HTTP_400",
                ),
                ("Request failed with status code 401", "UNAUTHORIZED"),
                ("Rate limit exceeded, retry after 60s", "RATE_LIMITED"),
            ],
            Kind::ManagedSync | Kind::EventDestination | Kind::Other => &[
                (
                    "Upstream API returned 503 Service Unavailable",
                    "UPSTREAM_UNAVAILABLE",
                ),
                (
                    "Permission denied for scope 'crm.objects.contacts.read'",
                    "PERMISSION_DENIED",
                ),
            ],
        }
    }
}

pub(crate) fn classify(text: &str) -> Outcome {
    let lower = text.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&["fail", "error", "unable", "could not", "paused"]) && !lower.contains("is failing") {
        Outcome::Failure
    } else if has(&[
        "warning",
        "rate limited",
        "timeout",
        "interrupted",
        "no workflow",
        "is failing",
    ]) {
        Outcome::Warning
    } else if has(&[
        "completed",
        "success",
        "submitted",
        "recovered",
        "refreshed",
    ]) {
        Outcome::Success
    } else {
        Outcome::Neutral
    }
}

pub(crate) fn fixed_error(text: &str) -> Option<(&'static str, &'static str)> {
    if text.contains("Authentication Failed") {
        Some(("The refresh token was revoked by the user", "AUTH_FAILED"))
    } else if text.contains("Duplicate sync") {
        Some((
            "A sync for this integration, pipeline and user already exists",
            "DUPLICATE_SYNC",
        ))
    } else if text.contains("Invalid pipeline configuration") {
        Some((
            "Unknown object \"Opportunity__c\" in pipeline configuration",
            "INVALID_PIPELINE_CONFIG",
        ))
    } else if text.contains("deliver sync webhook") {
        Some((
            "Webhook endpoint returned 502 Bad Gateway",
            "WEBHOOK_DELIVERY_FAILED",
        ))
    } else {
        None
    }
}

pub(crate) fn parse_template(text: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        if open > 0 {
            segments.push(Segment::Literal(rest[..open].to_string()));
        }
        let name = &rest[open + 1..close];
        segments.push(Segment::Placeholder(match name {
            "eventName" => Placeholder::EventName,
            "ACTION_NAME" => Placeholder::ActionName,
            "seconds" => Placeholder::Seconds,
            "message" => Placeholder::Message,
            "count" => Placeholder::Count,
            "destinationId" => Placeholder::DestinationId,
            "reason" => Placeholder::Reason,
            other => Placeholder::Other(other.to_string()),
        }));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() || segments.is_empty() {
        segments.push(Segment::Literal(rest.to_string()));
    }
    segments
}

pub(crate) fn compile_catalog(json: &str) -> Catalog {
    let raw: RawCatalog = serde_json::from_str(json).expect("data/event-catalog.json is valid");
    let mut types = Vec::new();
    let mut type_cumulative = Vec::new();
    let mut total = 0;
    for (name, messages) in raw.types {
        if messages.is_empty() {
            continue;
        }
        let kind = Kind::from_name(&name);
        let mut templates = Vec::new();
        let mut template_cumulative = Vec::new();
        let mut t_total = 0;
        for text in messages {
            let outcome = classify(&text);
            t_total += match outcome {
                Outcome::Neutral | Outcome::Success => 20,
                Outcome::Warning => 5,
                Outcome::Failure => 3,
            };
            template_cumulative.push(t_total);
            templates.push(Template {
                segments: parse_template(&text),
                outcome,
                fixed_error: fixed_error(&text),
                text,
            });
        }
        total += kind.weight();
        type_cumulative.push(total);
        types.push(TypeSpec {
            name,
            kind,
            templates,
            template_cumulative,
        });
    }
    assert!(!types.is_empty(), "the event catalog has no types");
    Catalog {
        types,
        type_cumulative,
    }
}

pub(crate) fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| compile_catalog(CATALOG_JSON))
}

// ---------------------------------------------------------------------------------------------
// Realistic values.

pub(crate) struct Integration {
    pub(crate) id: &'static str,
    pub(crate) weight: u32,
    pub(crate) objects: &'static [&'static str],
    pub(crate) actions: &'static [&'static str],
    pub(crate) webhook_events: &'static [&'static str],
    pub(crate) pipelines: &'static [&'static str],
    pub(crate) scopes: &'static [&'static str],
    pub(crate) has_amount: bool,
}
