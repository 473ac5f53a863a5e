//! Deterministic generator of realistic Event Log messages.
//!
//! Used by `courier demo`, the tests and the benchmarks. Every event type and message of the
//! Event Log catalog (`data/event-catalog.json`, embedded at compile time and parsed once) is
//! produced, with `{placeholders}` filled in, levels and statuses that match the message, and
//! the identifiers of the wire format (see "The Event Log wire format" in ARCHITECTURE.md).
//!
//! Output depends only on [`GeneratorConfig`]: the same seed gives the same bytes, and
//! timestamps advance from a fixed base (2026-11-01T00:00:00Z) by a few milliseconds per event
//! instead of following the wall clock.
//!
//! Shape of the generated data, so that filters can be tested against it:
//! - `projectId` is `proj_0001` … `proj_NNNN` (see [`project_id`]), picked uniformly.
//! - `endUserId` is `user-1` … `user-20` ([`END_USERS_PER_PROJECT`]) within each project;
//!   `personaId`, `connectCredentialId`, `connectCredentialConfigId`, `workflowId` and
//!   `webhookId` are UUID-like strings derived from the seed, the project, the user and the
//!   integration, so they repeat consistently.
//! - About 30% of events continue the trace of the event before them (same project, user,
//!   type, integration and `traceId`), so trace filters match groups of events.
//! - `payload.record.recordId` is `rec_1` … `rec_5000`; payload strings include non-ASCII
//!   text, quotes, backslashes, newlines and control characters.
//! - `EVENT_DESTINATION` events have the shape of courier's own delivery-failure events
//!   (CONTRACT.md): `destinationId`, `destinationType`, an `error` with a `kind`, a payload with
//!   `count`, `source` and `eventIds`, and no `personaId`, `endUserId`,
//!   `connectCredentialId`, `connectCredentialConfigId` or `workflowId`.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize, Serializer};

/// `format!` into a [`SmallStr`].
macro_rules! small {
    ($($arg:tt)*) => {{
        let mut s = SmallStr::new();
        let written = write!(s, $($arg)*);
        debug_assert!(written.is_ok(), "SmallStr overflow");
        s
    }};
}

/// The embedded Event Log catalog (event types and their messages).
const CATALOG_JSON: &str = include_str!("../data/event-catalog.json");

/// Number of distinct end users per project: `endUserId` is `user-1` … `user-20`.
pub const END_USERS_PER_PROJECT: u32 = 20;

/// Distinct workflows per (project, integration) pair.
const WORKFLOWS_PER_INTEGRATION: u64 = 3;

/// Highest record number: `recordId` is `rec_1` … `rec_5000`.
const RECORDS: u32 = 5000;

/// Percentage of events that continue the previous event's trace.
const CONTINUE_TRACE_PERCENT: u32 = 30;

/// 2026-11-01T00:00:00Z in milliseconds since the Unix epoch.
const BASE_TIMESTAMP_MS: i64 = days_from_civil(2026, 11, 1) * 86_400_000;

/// The Kafka topic named in generated `EVENT_DESTINATION` payloads.
const SOURCE_TOPIC: &str = "event-logs";

/// Settings for [`Generator`].
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Seed of the pseudo-random sequence: the same seed gives the same messages.
    pub seed: u64,
    /// Number of distinct `projectId`s: `proj_0001`, `proj_0002`, … (zero treated as one).
    pub projects: usize,
    /// Every Nth message of [`Generator::next_message`] is a poison message, cycling through
    /// the [`PoisonKind`] variants (`None` or `Some(0)`: no poison messages).
    pub poison_every: Option<u64>,
    /// Pad valid events (with a `padding` string at the end of `payload`) so the JSON is this
    /// many bytes. Events already larger than the target are left as they are; for targets of
    /// about 1 KiB and more every event lands within ±5%.
    pub target_bytes: Option<usize>,
}

impl Default for GeneratorConfig {
    /// Seed 42, 5 projects, no poison messages, no padding.
    fn default() -> Self {
        GeneratorConfig {
            seed: 42,
            projects: 5,
            poison_every: None,
            target_bytes: None,
        }
    }
}

/// Why a generated message cannot be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonKind {
    /// Not valid JSON: a truncated event, a truncated object literal, or plain text.
    InvalidJson,
    /// Valid JSON that is not an object: an array, a number, a string, `null` or `true`.
    NotObject,
    /// A valid event object without a `projectId`.
    MissingProjectId,
}

impl PoisonKind {
    /// All variants, in the order [`Generator::next_message`] cycles through them.
    pub const ALL: [PoisonKind; 3] = [
        PoisonKind::InvalidJson,
        PoisonKind::NotObject,
        PoisonKind::MissingProjectId,
    ];

    /// The unroutable reason (`error.kind`) courier reports for this message:
    /// `"invalid_json"`, `"not_object"` or `"missing_project_id"`.
    pub fn reason(self) -> &'static str {
        match self {
            PoisonKind::InvalidJson => "invalid_json",
            PoisonKind::NotObject => "not_object",
            PoisonKind::MissingProjectId => "missing_project_id",
        }
    }
}

/// One generated Kafka message value.
#[derive(Debug, Clone)]
pub struct GeneratedMessage {
    /// The message value.
    pub bytes: Vec<u8>,
    /// `Some(projectId)` for valid events, `None` for poison messages.
    pub project: Option<String>,
    /// `Some(kind)` for poison messages, `None` for valid events.
    pub poison: Option<PoisonKind>,
}

/// The `projectId` of the project numbered `n` (1-based): `proj_0001` for 1.
pub fn project_id(n: usize) -> String {
    format!("proj_{n:04}")
}

/// The event types of the embedded catalog, sorted (e.g. `"APP_EVENT"`, `"WEBHOOK_TRIGGER"`).
pub fn event_types() -> Vec<&'static str> {
    catalog().types.iter().map(|t| t.name.as_str()).collect()
}

/// Produces a deterministic stream of Event Log messages; see the module documentation.
///
/// The iterator never ends: each item is [`Generator::next_message`].
#[derive(Debug, Clone)]
pub struct Generator {
    config: GeneratorConfig,
    rng: fastrand::Rng,
    catalog: &'static Catalog,
    /// Calls of `next_message` (for the poison cadence).
    messages: u64,
    /// Poison messages produced (for cycling through the kinds).
    poisons: u64,
    /// Events produced (the `id` counter).
    events: u64,
    /// Timestamp of the last event, milliseconds since the Unix epoch.
    clock_ms: i64,
    /// The previous event's context, for trace continuation.
    ctx: Context,
    has_ctx: bool,
    /// Reused buffer for messages with placeholders.
    scratch: String,
}

impl Generator {
    /// A generator with these settings.
    pub fn new(config: GeneratorConfig) -> Self {
        Generator {
            rng: fastrand::Rng::with_seed(config.seed),
            catalog: catalog(),
            messages: 0,
            poisons: 0,
            events: 0,
            clock_ms: BASE_TIMESTAMP_MS,
            ctx: Context::default(),
            has_ctx: false,
            scratch: String::with_capacity(128),
            config,
        }
    }

    /// The settings this generator was made with.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// The `projectId`s this generator draws from: `proj_0001` … in order.
    pub fn project_ids(&self) -> Vec<String> {
        (1..=self.config.projects.max(1)).map(project_id).collect()
    }

    /// The next message: a valid event, or a poison message when `poison_every` says so
    /// (the Nth, 2Nth, … call; kinds cycle through [`PoisonKind::ALL`]).
    pub fn next_message(&mut self) -> GeneratedMessage {
        self.messages += 1;
        if let Some(every) = self.config.poison_every.filter(|&n| n > 0) {
            if self.messages % every == 0 {
                let kind = PoisonKind::ALL[(self.poisons % 3) as usize];
                self.poisons += 1;
                return GeneratedMessage {
                    bytes: self.poison(kind),
                    project: None,
                    poison: Some(kind),
                };
            }
        }
        let mut bytes = Vec::with_capacity(self.capacity_hint());
        self.write_event_inner(None, true, &mut bytes);
        GeneratedMessage {
            bytes,
            project: Some(self.ctx.project.clone()),
            poison: None,
        }
    }

    /// A valid event for a random project (does not advance the poison cadence).
    pub fn next_event(&mut self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.capacity_hint());
        self.write_event_inner(None, true, &mut bytes);
        bytes
    }

    /// A valid event whose `projectId` is `project` (any string; it is JSON-escaped).
    pub fn event_for_project(&mut self, project: &str) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.capacity_hint());
        self.write_event_inner(Some(project), true, &mut bytes);
        bytes
    }

    /// Appends a valid event for a random project to `out` (no separator), without
    /// allocating a new buffer; returns that event's `projectId`. For benchmarks.
    pub fn write_event(&mut self, out: &mut Vec<u8>) -> &str {
        self.write_event_inner(None, true, out);
        &self.ctx.project
    }

    fn capacity_hint(&self) -> usize {
        self.config.target_bytes.unwrap_or(0).max(1024)
    }

    /// A poison message of the given kind.
    fn poison(&mut self, kind: PoisonKind) -> Vec<u8> {
        match kind {
            PoisonKind::InvalidJson => match self.rng.u32(0..4) {
                0 => {
                    let p = self.rng.usize(0..self.config.projects.max(1)) + 1;
                    format!(r#"{{"projectId":"proj_{p:04}","level":"INFO""#).into_bytes()
                }
                1 | 2 => {
                    // A valid event cut short: never valid JSON, since only the last byte
                    // closes the outer object.
                    let mut event = Vec::with_capacity(1024);
                    self.write_event_inner(None, true, &mut event);
                    let cut = self.rng.usize(event.len() / 4..event.len() - 1);
                    event.truncate(cut.max(1));
                    event
                }
                _ => {
                    const TEXT: [&str; 4] = [
                        "not json at all",
                        r#"{"projectId":proj_0001,"level":"INFO"}"#,
                        "level=INFO type=WEBHOOK_TRIGGER projectId=proj_0001",
                        r#"{"projectId":"proj_0001","level":"INFO",}"#,
                    ];
                    TEXT[self.rng.usize(0..TEXT.len())].as_bytes().to_vec()
                }
            },
            PoisonKind::NotObject => match self.rng.u32(0..7) {
                0 => b"[1,2,3]".to_vec(),
                1 => b"42".to_vec(),
                2 => br#""just a string""#.to_vec(),
                3 => b"null".to_vec(),
                4 => b"true".to_vec(),
                5 => b"[]".to_vec(),
                _ => {
                    // An array holding an event: has a projectId, but not at the top level.
                    let mut out = Vec::with_capacity(1024);
                    out.push(b'[');
                    self.write_event_inner(None, true, &mut out);
                    out.push(b']');
                    out
                }
            },
            PoisonKind::MissingProjectId => {
                let mut out = Vec::with_capacity(self.capacity_hint());
                self.write_event_inner(None, false, &mut out);
                out
            }
        }
    }

    /// Picks the context of the next event: a continuation of the previous trace, or a new
    /// project / user / type / integration.
    fn choose_context(&mut self, project: Option<&str>) {
        let continuable = self.has_ctx
            && self.catalog.types[self.ctx.type_idx].kind.continuable()
            && project.is_none_or(|p| p == self.ctx.project);
        if continuable && self.rng.u32(0..100) < CONTINUE_TRACE_PERCENT {
            return;
        }
        let ctx = &mut self.ctx;
        ctx.project.clear();
        match project {
            Some(p) => ctx.project.push_str(p),
            None => {
                let n = self.rng.usize(0..self.config.projects.max(1)) + 1;
                let _ = write!(ctx.project, "proj_{n:04}");
            }
        }
        ctx.project_hash = fnv1a(ctx.project.as_bytes());
        ctx.user = self.rng.u32(1..=END_USERS_PER_PROJECT);
        ctx.type_idx = pick_weighted(&mut self.rng, &self.catalog.type_cumulative);
        ctx.integration = pick_weighted(&mut self.rng, &INTEGRATION_CUMULATIVE);
        ctx.workflow = self.rng.u64(0..WORKFLOWS_PER_INTEGRATION);
        let kind = self.catalog.types[ctx.type_idx].kind;
        ctx.trace = if self.rng.u32(0..100) < kind.trace_percent() {
            Some(random_uuid(&mut self.rng))
        } else {
            None
        };
        self.has_ctx = true;
    }

    /// Generates one valid event (with or without its `projectId`) and appends it to `out`.
    fn write_event_inner(&mut self, project: Option<&str>, with_project: bool, out: &mut Vec<u8>) {
        self.choose_context(project);
        let seed = self.config.seed;
        let ty: &'static TypeSpec = &self.catalog.types[self.ctx.type_idx];
        let kind = ty.kind;
        let template = &ty.templates[pick_weighted(&mut self.rng, &ty.template_cumulative)];
        let integration: &'static Integration = &INTEGRATION_LIST[self.ctx.integration];

        self.events += 1;
        self.clock_ms += self.rng.i64(1..=6);
        let id = small!("evt_{:x}_{:08}", seed, self.events);
        let timestamp = format_timestamp(self.clock_ms);

        // Level and status follow the message.
        let level = match template.outcome {
            Outcome::Failure => "ERROR",
            Outcome::Warning => "WARN",
            Outcome::Success => "INFO",
            Outcome::Neutral => {
                if self.rng.u32(0..100) < 15 {
                    "DEBUG"
                } else {
                    "INFO"
                }
            }
        };
        let status = match template.outcome {
            Outcome::Failure => Some("EVENT_STATUS.FAILED"),
            Outcome::Success => Some("EVENT_STATUS.SUCCEEDED"),
            _ => None,
        };

        // Values shared by the message placeholders, the fields and the payload.
        let event_name = (kind == Kind::AppEvent || template.wants(Placeholder::EventName))
            .then(|| pick(&mut self.rng, EVENT_NAMES));
        let action = (kind == Kind::ActionKit || template.wants(Placeholder::ActionName))
            .then(|| pick(&mut self.rng, integration.actions));
        let destination = (kind == Kind::EventDestination
            || template.wants(Placeholder::DestinationId))
        .then(|| pick(&mut self.rng, DESTINATIONS));
        let reason = template
            .wants(Placeholder::Reason)
            .then(|| pick(&mut self.rng, UNROUTABLE));
        let count = if reason.is_some() {
            1
        } else {
            self.rng.u32(1..=6)
        };

        // The message, placeholders filled in.
        let mut message_buf = std::mem::take(&mut self.scratch);
        message_buf.clear();
        let message: &str = if template.segments.len() == 1 {
            match &template.segments[0] {
                Segment::Literal(text) => text,
                Segment::Placeholder(_) => {
                    self.fill_message(
                        template,
                        event_name,
                        action,
                        destination,
                        reason,
                        count,
                        &mut message_buf,
                    );
                    &message_buf
                }
            }
        } else {
            self.fill_message(
                template,
                event_name,
                action,
                destination,
                reason,
                count,
                &mut message_buf,
            );
            &message_buf
        };

        let project_id = with_project.then_some(self.ctx.project.as_str());
        let ph = self.ctx.project_hash;
        let user = u64::from(self.ctx.user);
        let integ = self.ctx.integration as u64;
        let per_user = kind != Kind::EventDestination;

        let mut event = Event {
            id,
            timestamp,
            level,
            event_type: &ty.name,
            message,
            project_id,
            persona_id: per_user.then(|| derived_uuid(seed, DOMAIN_PERSONA, ph, user, 0)),
            end_user_id: per_user.then(|| small!("user-{}", user)),
            connect_credential_id: per_user
                .then(|| derived_uuid(seed, DOMAIN_CREDENTIAL, ph, user, integ)),
            connect_credential_config_id: per_user
                .then(|| derived_uuid(seed, DOMAIN_CREDENTIAL_CONFIG, ph, integ, 0)),
            workflow_id: per_user
                .then(|| derived_uuid(seed, DOMAIN_WORKFLOW, ph, integ, self.ctx.workflow)),
            trace_id: self.ctx.trace,
            integration_id: None,
            webhook_id: None,
            event_id: None,
            event_name: None,
            destination_id: destination.map(|d| d.0),
            destination_type: destination.map(|d| d.1),
            status,
            error: None,
            payload: Payload::default(),
        };

        let with_integration = match kind {
            Kind::AppEvent | Kind::RequestTrigger | Kind::SchedulerTrigger | Kind::Other => {
                self.rng.bool()
            }
            Kind::EventDestination => false,
            _ => true,
        };
        if with_integration {
            event.integration_id = Some(integration.id);
        }

        if template.outcome == Outcome::Failure {
            event.error = Some(match (kind, reason) {
                (_, Some(reason)) => ErrorInfo {
                    kind: Some(reason.0),
                    message: reason.1,
                    ..ErrorInfo::default()
                },
                (Kind::EventDestination, None) => {
                    let (kind, http_status, message) = pick(&mut self.rng, DELIVERY_ERRORS);
                    ErrorInfo {
                        kind: Some(kind),
                        http_status,
                        message,
                        attempts: Some(self.rng.u32(3..=9)),
                        ..ErrorInfo::default()
                    }
                }
                _ => {
                    let (message, code) = match template.fixed_error {
                        Some(e) => e,
                        None => pick(&mut self.rng, kind.errors()),
                    };
                    ErrorInfo {
                        message,
                        code: Some(code),
                        ..ErrorInfo::default()
                    }
                }
            });
        }

        // Type-specific fields and payload.
        let rng = &mut self.rng;
        let p = &mut event.payload;
        match kind {
            Kind::WebhookTrigger => {
                event.webhook_id = Some(derived_uuid(seed, DOMAIN_WEBHOOK, ph, integ, 0));
                p.webhook_event = Some(pick(rng, integration.webhook_events));
                p.record = Some(make_record(rng, integration));
            }
            Kind::AppEvent => {
                let name = event_name.unwrap_or("Contact Created");
                event.event_id = Some(random_uuid(rng));
                event.event_name = Some(name);
                p.event = Some(name);
                p.record = Some(make_record(rng, integration));
            }
            Kind::RequestTrigger => {
                p.method = Some("POST");
                p.path = Some(small!(
                    "/triggers/{}",
                    derived_uuid(seed, DOMAIN_WORKFLOW, ph, integ, self.ctx.workflow).as_str()
                ));
                p.status_code = Some(match template.outcome {
                    Outcome::Failure => pick(rng, &[400, 404, 500, 502]),
                    Outcome::Warning => 504,
                    _ => 200,
                });
                p.duration_ms = Some(rng.u32(12..=2500));
                if rng.u32(0..100) < 70 {
                    p.record = Some(make_record(rng, integration));
                }
            }
            Kind::SchedulerTrigger => {
                p.schedule = Some(pick(rng, SCHEDULES));
                p.scheduled_at = Some(format_timestamp(self.clock_ms - self.clock_ms % 60_000));
                p.run_number = Some(rng.u64(1..=20_000));
            }
            Kind::IntegrationEnabledTrigger => {
                let (name, email) = pick(rng, PEOPLE);
                p.integration = Some(integration.id);
                p.account_name = Some(pick(rng, COMPANIES));
                p.user_name = Some(name);
                p.user_email = Some(email);
            }
            Kind::CredentialRefresh => {
                p.integration = Some(integration.id);
                p.attempt = Some(rng.u32(1..=3));
                p.expires_in_seconds = Some(pick(rng, &[0, 1800, 3600, 7200]));
                p.scopes = Some(integration.scopes);
            }
            Kind::ActionKit => {
                p.action = action;
                p.duration_ms = Some(rng.u32(40..=4000));
                p.request_count = Some(rng.u32(1..=4));
                if rng.u32(0..100) < 80 {
                    p.record = Some(make_record(rng, integration));
                }
            }
            Kind::ManagedSync => {
                p.sync_id = Some(derived_uuid(seed, DOMAIN_SYNC, ph, user, integ));
                p.pipeline = Some(pick(rng, integration.pipelines));
                p.records_processed = Some(rng.u64(0..=250_000));
                if template.text.contains("Full sync") {
                    p.records_deleted = Some(rng.u64(0..=500));
                }
                p.cursor = Some(small!("cur_{:016x}", rng.u64(..)));
                if rng.u32(0..100) < 40 {
                    p.record = Some(make_record(rng, integration));
                }
            }
            Kind::EventDestination => {
                let first = rng.u64(0..5_000_000);
                p.count = Some(count);
                p.source = Some(Source {
                    topic: SOURCE_TOPIC,
                    partition: rng.u32(0..12),
                    first_offset: first,
                    last_offset: first + u64::from(count) - 1,
                });
                let base = self.events.saturating_sub(u64::from(count) * 7 + 1);
                p.event_ids = Some(
                    (0..u64::from(count))
                        .map(|i| small!("evt_{:x}_{:08}", seed, base + i * 7 + 1))
                        .collect(),
                );
            }
            Kind::Other => {
                p.record = Some(make_record(rng, integration));
            }
        }

        let start = out.len();
        serde_json::to_writer(&mut *out, &event).expect("serializing an event cannot fail");
        if let Some(target) = self.config.target_bytes {
            if out.len() - start > target {
                // Too big for the target already: drop the optional record extras and retry.
                if let Some(record) = &mut event.payload.record {
                    record.notes = None;
                    record.tags = None;
                    out.truncate(start);
                    serde_json::to_writer(&mut *out, &event)
                        .expect("serializing an event cannot fail");
                }
            }
            pad(out, start, target);
        }
        self.scratch = message_buf;
    }

    /// Writes the template with its placeholders filled in to `buf`.
    #[allow(clippy::too_many_arguments)]
    fn fill_message(
        &mut self,
        template: &Template,
        event_name: Option<&str>,
        action: Option<&str>,
        destination: Option<(&str, &str)>,
        reason: Option<(&str, &str)>,
        count: u32,
        buf: &mut String,
    ) {
        for segment in &template.segments {
            match segment {
                Segment::Literal(text) => buf.push_str(text),
                Segment::Placeholder(ph) => match ph {
                    Placeholder::EventName => buf.push_str(event_name.unwrap_or("Contact Created")),
                    Placeholder::ActionName => buf.push_str(action.unwrap_or("SLACK_SEND_MESSAGE")),
                    Placeholder::Seconds => {
                        let s = pick(&mut self.rng, &[5u32, 10, 15, 30, 60, 120, 300]);
                        let _ = write!(buf, "{s}");
                    }
                    Placeholder::Message => {
                        let pool = if template.outcome == Outcome::Failure {
                            SYNC_ERROR_MESSAGES
                        } else {
                            SYNC_WARNING_MESSAGES
                        };
                        buf.push_str(pick(&mut self.rng, pool));
                    }
                    Placeholder::Count => {
                        let _ = write!(buf, "{count}");
                    }
                    Placeholder::DestinationId => {
                        buf.push_str(destination.map_or("gen-hook-crm", |d| d.0));
                    }
                    Placeholder::Reason => buf.push_str(reason.map_or("invalid_json", |r| r.0)),
                    Placeholder::Other(name) => {
                        let _ = write!(buf, "{}-{}", name, self.rng.u32(1..=99));
                    }
                },
            }
        }
    }
}

impl Iterator for Generator {
    type Item = GeneratedMessage;

    /// Always `Some(self.next_message())`: the stream is endless.
    fn next(&mut self) -> Option<GeneratedMessage> {
        Some(self.next_message())
    }
}

/// Pads the event serialized at `out[start..]` to `target` bytes by adding a `padding` string
/// as the last member of its `payload` (which is the event's last member and never empty, so
/// the event ends with `}}`).
fn pad(out: &mut Vec<u8>, start: usize, target: usize) {
    const PREFIX: &[u8] = b",\"padding\":\"";
    const SUFFIX: &[u8] = b"\"}}";
    const FILLER: &[u8] =
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
struct Event<'a> {
    id: SmallStr,
    timestamp: SmallStr,
    level: &'static str,
    #[serde(rename = "type")]
    event_type: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    persona_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_user_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_credential_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_credential_config_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    integration_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorInfo>,
    /// Must stay the last member (see [`pad`]).
    payload: Payload,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct ErrorInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
}

/// Every payload has at least one member (required by [`pad`]).
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Payload {
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_event: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_at: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_number: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    integration: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_email: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<&'static [&'static str]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sync_id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    records_processed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    records_deleted: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_ids: Option<Vec<SmallStr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<Record>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    topic: &'static str,
    partition: u32,
    first_offset: u64,
    last_offset: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    record_id: SmallStr,
    object: &'static str,
    name: &'static str,
    email: &'static str,
    company: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<&'static [&'static str]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<&'static str>,
}

fn make_record(rng: &mut fastrand::Rng, integration: &Integration) -> Record {
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
struct RawCatalog {
    types: BTreeMap<String, Vec<String>>,
}

#[derive(Debug)]
struct Catalog {
    types: Vec<TypeSpec>,
    type_cumulative: Vec<u32>,
}

#[derive(Debug)]
struct TypeSpec {
    name: String,
    kind: Kind,
    templates: Vec<Template>,
    template_cumulative: Vec<u32>,
}

#[derive(Debug)]
struct Template {
    text: String,
    segments: Vec<Segment>,
    outcome: Outcome,
    /// The error that this message names, if it names one.
    fixed_error: Option<(&'static str, &'static str)>,
}

impl Template {
    fn wants(&self, placeholder: Placeholder) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Placeholder(p) if *p == placeholder))
    }
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    Placeholder(Placeholder),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Placeholder {
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
enum Outcome {
    Neutral,
    Success,
    Warning,
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
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
    fn from_name(name: &str) -> Kind {
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
    fn weight(self) -> u32 {
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
    fn trace_percent(self) -> u32 {
        match self {
            Kind::EventDestination => 0,
            Kind::ActionKit | Kind::ManagedSync | Kind::WebhookTrigger => 100,
            _ => 80,
        }
    }

    /// Whether the next event may continue this event's trace.
    fn continuable(self) -> bool {
        self != Kind::EventDestination
    }

    /// `(message, code)` pairs for failures of this type.
    fn errors(self) -> &'static [(&'static str, &'static str)] {
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

fn classify(text: &str) -> Outcome {
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

fn fixed_error(text: &str) -> Option<(&'static str, &'static str)> {
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

fn parse_template(text: &str) -> Vec<Segment> {
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

fn compile_catalog(json: &str) -> Catalog {
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

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| compile_catalog(CATALOG_JSON))
}

// ---------------------------------------------------------------------------------------------
// Realistic values.

struct Integration {
    id: &'static str,
    weight: u32,
    objects: &'static [&'static str],
    actions: &'static [&'static str],
    webhook_events: &'static [&'static str],
    pipelines: &'static [&'static str],
    scopes: &'static [&'static str],
    has_amount: bool,
}

const INTEGRATIONS: [Integration; 8] = [
    Integration {
        id: "salesforce",
        weight: 25,
        objects: &["Contact", "Opportunity", "Lead", "Account"],
        actions: &[
            "SALESFORCE_CREATE_RECORD",
            "SALESFORCE_UPDATE_RECORD",
            "SALESFORCE_SEARCH_RECORDS",
            "SALESFORCE_GET_RECORD_BY_ID",
        ],
        webhook_events: &["Record Created", "Record Updated", "Record Deleted"],
        pipelines: &["crm-contacts", "crm-opportunities"],
        scopes: &["api", "refresh_token"],
        has_amount: true,
    },
    Integration {
        id: "hubspot",
        weight: 20,
        objects: &["contact", "deal", "company"],
        actions: &[
            "HUBSPOT_CREATE_RECORD_CONTACTS",
            "HUBSPOT_UPDATE_RECORD_DEALS",
            "HUBSPOT_SEARCH_RECORDS_COMPANIES",
        ],
        webhook_events: &[
            "contact.creation",
            "deal.propertyChange",
            "company.deletion",
        ],
        pipelines: &["crm-contacts", "crm-deals"],
        scopes: &["crm.objects.contacts.read", "crm.objects.deals.write"],
        has_amount: true,
    },
    Integration {
        id: "slack",
        weight: 14,
        objects: &["message", "channel"],
        actions: &[
            "SLACK_SEND_MESSAGE",
            "SLACK_LIST_CHANNELS",
            "SLACK_SEARCH_MESSAGES",
        ],
        webhook_events: &["message.channels", "app_mention", "member_joined_channel"],
        pipelines: &["messages"],
        scopes: &["chat:write", "channels:read"],
        has_amount: false,
    },
    Integration {
        id: "zendesk",
        weight: 10,
        objects: &["ticket", "user"],
        actions: &[
            "ZENDESK_CREATE_TICKET",
            "ZENDESK_UPDATE_TICKET",
            "ZENDESK_SEARCH_TICKETS",
        ],
        webhook_events: &["ticket.created", "ticket.updated", "ticket.solved"],
        pipelines: &["tickets"],
        scopes: &["read", "write"],
        has_amount: false,
    },
    Integration {
        id: "jira",
        weight: 10,
        objects: &["issue", "project"],
        actions: &[
            "JIRA_CREATE_ISSUE",
            "JIRA_UPDATE_ISSUE",
            "JIRA_SEARCH_BY_JQL",
        ],
        webhook_events: &[
            "jira:issue_created",
            "jira:issue_updated",
            "comment_created",
        ],
        pipelines: &["issues"],
        scopes: &["read:jira-work", "write:jira-work", "offline_access"],
        has_amount: false,
    },
    Integration {
        id: "google-drive",
        weight: 9,
        objects: &["file", "folder"],
        actions: &[
            "GOOGLE_DRIVE_LIST_FILES",
            "GOOGLE_DRIVE_SAVE_FILE",
            "GOOGLE_DRIVE_SEARCH_FOLDERS",
        ],
        webhook_events: &["file.created", "file.updated"],
        pipelines: &["files"],
        scopes: &["https://www.googleapis.com/auth/drive.readonly"],
        has_amount: false,
    },
    Integration {
        id: "notion",
        weight: 6,
        objects: &["page", "database"],
        actions: &[
            "NOTION_CREATE_PAGE",
            "NOTION_UPDATE_PAGE",
            "NOTION_SEARCH_PAGES",
        ],
        webhook_events: &["page.created", "page.content_updated"],
        pipelines: &["pages"],
        scopes: &["read_content", "update_content"],
        has_amount: false,
    },
    Integration {
        id: "shopify",
        weight: 6,
        objects: &["order", "customer", "product"],
        actions: &[
            "SHOPIFY_CREATE_ORDER",
            "SHOPIFY_GET_CUSTOMERS",
            "SHOPIFY_UPDATE_PRODUCT",
        ],
        webhook_events: &["orders/create", "orders/paid", "customers/update"],
        pipelines: &["orders", "customers"],
        scopes: &["read_orders", "write_customers"],
        has_amount: true,
    },
];

static INTEGRATION_LIST: &[Integration] = &INTEGRATIONS;

const INTEGRATION_CUMULATIVE: [u32; INTEGRATIONS.len()] = {
    let mut out = [0; INTEGRATIONS.len()];
    let mut total = 0;
    let mut i = 0;
    while i < INTEGRATIONS.len() {
        total += INTEGRATIONS[i].weight;
        out[i] = total;
        i += 1;
    }
    out
};

const EVENT_NAMES: &[&str] = &[
    "Contact Created",
    "Contact Updated",
    "Deal Won",
    "Invoice Paid",
    "Ticket Escalated",
    "User Signed Up",
    "Order Shipped",
    "Meeting Booked",
];

const PEOPLE: &[(&str, &str)] = &[
    ("Ada Lovelace", "ada@analytical.example"),
    ("José Álvarez", "jose.alvarez@example.com"),
    ("Zoë Müller", "zoe.mueller@example.de"),
    ("Renée O'Connor", "renee.oconnor@example.ie"),
    ("Søren Kjær", "soren@example.dk"),
    ("李雷", "li.lei@example.cn"),
    ("Grace Hopper", "grace@navy.example"),
    ("Łukasz Żółkiewski", "lukasz@example.pl"),
    ("Ngozi Okonkwo", "ngozi@example.ng"),
    ("Αλέξανδρος Παππάς", "alex.pappas@example.gr"),
    ("Priya Raman", "priya.raman@example.in"),
    ("Mårten Ångström", "marten@example.se"),
];

const COMPANIES: &[&str] = &[
    "Acme Corp",
    "Globex Corporation",
    "Initech",
    "Umbrella \"Bio\" Labs",
    "Müller & Söhne GmbH",
    "Soylent <Foods>",
    "株式会社サンプル",
    "Wayne Enterprises",
    "Stark Industries",
    "Café Olé S.A.",
];

const NOTES: &[&str] = &[
    "Called twice, no answer.\nLeft a voicemail.",
    "Customer wrote: \"Please cancel my order\"",
    "Export path: C:\\Users\\ops\\exports\\contacts.csv",
    "Columns:\tname\temail\tphone",
    "Prefers contact by e-mail — ünïcödé ✓ 🚀",
    "Line one\r\nLine two",
    "Contains a control character: \u{7} (bell)",
    "<script>alert('x')</script>",
    "Ticket #4521 / 'urgent' / {\"priority\": \"high\"}",
    "Paragraph one\u{2028}paragraph two",
];

const TAG_SETS: &[&[&str]] = &[
    &["vip"],
    &["enterprise", "emea"],
    &["trial", "self-serve"],
    &["churn-risk", "q4"],
    &["partner", "apac", "renewal"],
];

const SCHEDULES: &[&str] = &[
    "*/5 * * * *",
    "*/15 * * * *",
    "0 * * * *",
    "0 9 * * 1-5",
    "@daily",
];

const SYNC_WARNING_MESSAGES: &[&str] = &[
    "3 records skipped: missing required field \"email\"",
    "Field 'Lead Source' is deprecated and will be ignored",
    "API quota at 87% for this billing period",
    "Cursor reset by provider; resuming from last checkpoint",
];

const SYNC_ERROR_MESSAGES: &[&str] = &[
    "Upstream API returned 503 Service Unavailable",
    "Object \"Opportunity__c\" no longer exists",
    "Permission denied for scope 'crm.objects.contacts.read'",
];

/// `(destinationId, destinationType)` named by generated `EVENT_DESTINATION` events. Chosen
/// so they never equal the ids tests and the demo configure: a failure event is never
/// delivered to the destination it reports on, so a shared id would silently change what a
/// test destination is expected to receive.
const DESTINATIONS: &[(&str, &str)] = &[
    ("gen-hook-crm", "webhook"),
    ("gen-datadog-prod", "datadog"),
    ("gen-splunk-main", "splunk_hec"),
    ("gen-s3-archive", "s3"),
    ("gen-audit-file", "file"),
];

/// `(reason, error message)` of unroutable messages.
const UNROUTABLE: &[(&str, &str)] = &[
    ("invalid_json", "expected value at line 1 column 1"),
    ("not_object", "the event is not a JSON object"),
    ("missing_project_id", "the event has no projectId"),
    (
        "too_large",
        "the event is 1048577 bytes, over the 1048576-byte limit",
    ),
];

/// `(kind, httpStatus, message)` of delivery failures.
const DELIVERY_ERRORS: &[(&str, Option<u16>, &str)] = &[
    (
        "http_status",
        Some(503),
        "503 Service Unavailable: upstream connect error",
    ),
    (
        "http_status",
        Some(500),
        "{\"error\":\"internal server error\"}",
    ),
    ("http_status", Some(429), "Too Many Requests"),
    (
        "http_status",
        Some(401),
        "{\"code\":401,\"message\":\"invalid API key\"}",
    ),
    ("timeout", None, "request timed out after 30s"),
    ("connect", None, "connection refused (os error 111)"),
];

// ---------------------------------------------------------------------------------------------
// Small helpers.

/// The previous event's context.
#[derive(Debug, Clone, Default)]
struct Context {
    project: String,
    project_hash: u64,
    user: u32,
    type_idx: usize,
    integration: usize,
    workflow: u64,
    trace: Option<SmallStr>,
}

/// A short string stored inline (ids, UUIDs, timestamps), serialized as a JSON string.
#[derive(Clone, Copy)]
struct SmallStr {
    len: u8,
    buf: [u8; SmallStr::CAP],
}

impl SmallStr {
    const CAP: usize = 63;

    fn new() -> Self {
        SmallStr {
            len: 0,
            buf: [0; Self::CAP],
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Write for SmallStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let len = usize::from(self.len);
        let end = len + s.len();
        if end > Self::CAP {
            return Err(fmt::Error);
        }
        self.buf[len..end].copy_from_slice(s.as_bytes());
        self.len = end as u8;
        Ok(())
    }
}

impl fmt::Debug for SmallStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for SmallStr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T]) -> T {
    items[rng.usize(0..items.len())]
}

/// An index drawn according to cumulative weights.
fn pick_weighted(rng: &mut fastrand::Rng, cumulative: &[u32]) -> usize {
    let total = *cumulative.last().expect("non-empty weights");
    let r = rng.u32(0..total);
    cumulative.partition_point(|&c| c <= r)
}

const DOMAIN_PERSONA: u64 = 0x7065_7273_6f6e_6100;
const DOMAIN_CREDENTIAL: u64 = 0x6372_6564_0000_0001;
const DOMAIN_CREDENTIAL_CONFIG: u64 = 0x6363_6667_0000_0002;
const DOMAIN_WORKFLOW: u64 = 0x776b_666c_0000_0003;
const DOMAIN_WEBHOOK: u64 = 0x686f_6f6b_0000_0004;
const DOMAIN_SYNC: u64 = 0x7379_6e63_0000_0005;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A UUID-like id that depends only on its inputs.
fn derived_uuid(seed: u64, domain: u64, a: u64, b: u64, c: u64) -> SmallStr {
    let h = mix(mix(mix(mix(seed ^ domain) ^ a) ^ b) ^ c);
    format_uuid(h, mix(h ^ domain))
}

fn random_uuid(rng: &mut fastrand::Rng) -> SmallStr {
    format_uuid(rng.u64(..), rng.u64(..))
}

/// Formats 128 bits as a version-4 UUID.
fn format_uuid(hi: u64, lo: u64) -> SmallStr {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hi = (hi & !0xF000) | 0x4000;
    let lo = (lo & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    let mut s = SmallStr::new();
    let mut pos = 0;
    for (i, word) in [hi, lo].into_iter().enumerate() {
        for nibble in 0..16 {
            if matches!(i * 16 + nibble, 8 | 12 | 16 | 20) {
                s.buf[pos] = b'-';
                pos += 1;
            }
            s.buf[pos] = HEX[((word >> (60 - nibble * 4)) & 0xF) as usize];
            pos += 1;
        }
    }
    s.len = pos as u8;
    s
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 3339 UTC with milliseconds: `2026-11-01T00:00:00.000Z`.
fn format_timestamp(ms: i64) -> SmallStr {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return small!("{y:04}-{m:02}-{d:02}T00:00:00.000Z");
    }
    let mut s = SmallStr::new();
    s.buf[..24].copy_from_slice(b"0000-00-00T00:00:00.000Z");
    let mut put = |end: usize, mut value: i64, digits: usize| {
        for i in 0..digits {
            s.buf[end - i - 1] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(4, y, 4);
    put(7, m, 2);
    put(10, d, 2);
    put(13, rem / 3_600_000, 2);
    put(16, rem / 60_000 % 60, 2);
    put(19, rem / 1000 % 60, 2);
    put(23, rem % 1000, 3);
    s.len = 24;
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::{HashMap, HashSet};

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
        v.get(key).and_then(Value::as_str)
    }

    #[test]
    fn same_seed_same_output() {
        let config = GeneratorConfig {
            poison_every: Some(7),
            ..GeneratorConfig::default()
        };
        let a: Vec<_> = Generator::new(config.clone()).take(3000).collect();
        let b: Vec<_> = Generator::new(config.clone()).take(3000).collect();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.bytes, y.bytes);
            assert_eq!(x.project, y.project);
            assert_eq!(x.poison, y.poison);
        }
        let other: Vec<_> = Generator::new(GeneratorConfig { seed: 43, ..config })
            .take(10)
            .collect();
        assert!(a.iter().zip(&other).any(|(x, y)| x.bytes != y.bytes));
    }

    #[test]
    fn events_are_well_formed() {
        let mut generator = Generator::new(GeneratorConfig::default());
        let always = ["id", "timestamp", "level", "type", "message", "projectId"];
        let per_user = [
            "personaId",
            "endUserId",
            "connectCredentialId",
            "connectCredentialConfigId",
            "workflowId",
        ];
        let projects: HashSet<String> = generator.project_ids().into_iter().collect();
        let mut previous = String::new();
        for _ in 0..20_000 {
            let bytes = generator.next_event();
            let v = parse(&bytes);
            let obj = v.as_object().expect("an object");
            for key in always {
                assert!(str_field(&v, key).is_some(), "{key} missing in {v}");
            }
            let ty = str_field(&v, "type").unwrap();
            if ty == "EVENT_DESTINATION" {
                for key in ["destinationId", "destinationType"] {
                    assert!(
                        str_field(&v, key).is_some()
                            || obj["message"]
                                .as_str()
                                .unwrap()
                                .starts_with("Event could not be routed"),
                        "{key} missing in {v}"
                    );
                }
                assert!(v["payload"]["source"]["topic"].is_string());
            } else {
                for key in per_user {
                    assert!(str_field(&v, key).is_some(), "{key} missing in {v}");
                }
                let user = str_field(&v, "endUserId").unwrap();
                let n: u32 = user.strip_prefix("user-").unwrap().parse().unwrap();
                assert!((1..=END_USERS_PER_PROJECT).contains(&n));
                assert_eq!(str_field(&v, "personaId").unwrap().len(), 36);
            }
            assert!(projects.contains(str_field(&v, "projectId").unwrap()));
            let level = str_field(&v, "level").unwrap();
            assert!(["DEBUG", "INFO", "WARN", "ERROR"].contains(&level));
            let message = str_field(&v, "message").unwrap();
            assert!(
                !message.contains('{') && !message.contains('}'),
                "{message}"
            );
            if ["failed", "Failed", "error", "Unable"]
                .iter()
                .any(|w| message.contains(w))
            {
                assert!(level == "ERROR" || level == "WARN", "{level}: {message}");
            }
            if let Some(status) = v.get("status") {
                let status = status.as_str().unwrap();
                assert!(status == "EVENT_STATUS.SUCCEEDED" || status == "EVENT_STATUS.FAILED");
                if status == "EVENT_STATUS.FAILED" {
                    assert!(v["error"]["message"].is_string(), "{v}");
                }
            }
            if ty == "WEBHOOK_TRIGGER" {
                assert!(str_field(&v, "webhookId").is_some());
            }
            if ty == "APP_EVENT" {
                assert!(str_field(&v, "eventId").is_some());
                assert!(str_field(&v, "eventName").is_some());
            }
            assert!(v["payload"].as_object().is_some_and(|p| !p.is_empty()));
            let ts = str_field(&v, "timestamp").unwrap();
            assert_eq!(ts.len(), 24, "{ts}");
            assert!(ts.ends_with('Z'));
            chrono::DateTime::parse_from_rfc3339(ts).expect("RFC 3339");
            assert!(ts > previous.as_str(), "{ts} after {previous}");
            previous = ts.to_string();
        }
        assert!(previous.starts_with("2026-11-01T"));
    }

    #[test]
    fn poison_cadence_and_kinds() {
        let mut generator = Generator::new(GeneratorConfig {
            poison_every: Some(4),
            ..GeneratorConfig::default()
        });
        let mut kinds = Vec::new();
        for n in 1..=600u64 {
            let m = generator.next_message();
            if n % 4 == 0 {
                let kind = m.poison.expect("poison");
                assert!(m.project.is_none());
                kinds.push(kind);
                match kind {
                    PoisonKind::InvalidJson => {
                        assert!(serde_json::from_slice::<Value>(&m.bytes).is_err());
                    }
                    PoisonKind::NotObject => assert!(!parse(&m.bytes).is_object()),
                    PoisonKind::MissingProjectId => {
                        let v = parse(&m.bytes);
                        assert!(v.is_object() && v.get("projectId").is_none());
                        assert!(v.get("id").is_some());
                    }
                }
            } else {
                assert!(m.poison.is_none());
                let v = parse(&m.bytes);
                assert_eq!(str_field(&v, "projectId"), m.project.as_deref());
            }
        }
        for (i, kind) in kinds.iter().enumerate() {
            assert_eq!(*kind, PoisonKind::ALL[i % 3]);
        }
        assert_eq!(PoisonKind::InvalidJson.reason(), "invalid_json");
        assert_eq!(PoisonKind::NotObject.reason(), "not_object");
        assert_eq!(PoisonKind::MissingProjectId.reason(), "missing_project_id");

        let mut clean = Generator::new(GeneratorConfig::default());
        assert!((0..1000).all(|_| clean.next_message().poison.is_none()));
        let mut all = Generator::new(GeneratorConfig {
            poison_every: Some(1),
            ..GeneratorConfig::default()
        });
        assert!((0..30).all(|_| all.next_message().poison.is_some()));
    }

    #[test]
    fn target_bytes_is_honoured() {
        for target in [1024usize, 2048, 65_536] {
            let mut generator = Generator::new(GeneratorConfig {
                target_bytes: Some(target),
                poison_every: Some(10),
                ..GeneratorConfig::default()
            });
            let low = target * 95 / 100;
            let high = target * 105 / 100;
            for _ in 0..5000 {
                let m = generator.next_message();
                if m.poison.is_some() {
                    continue;
                }
                assert!(
                    (low..=high).contains(&m.bytes.len()),
                    "{} bytes",
                    m.bytes.len()
                );
                let v = parse(&m.bytes);
                assert!(v["payload"].is_object());
            }
        }
    }

    #[test]
    fn every_type_within_first_thousand() {
        let types = event_types();
        assert_eq!(types.len(), 9);
        for seed in [42, 1, 2, 3, 7, 1234] {
            let mut generator = Generator::new(GeneratorConfig {
                seed,
                ..GeneratorConfig::default()
            });
            let seen: HashSet<String> = (0..1000)
                .map(|_| {
                    str_field(&parse(&generator.next_event()), "type")
                        .unwrap()
                        .to_string()
                })
                .collect();
            for ty in &types {
                assert!(seen.contains(*ty), "seed {seed}: {ty} missing");
            }
        }
    }

    #[test]
    fn every_message_template_appears() {
        let mut generator = Generator::new(GeneratorConfig::default());
        let mut seen: HashSet<String> = HashSet::new();
        for _ in 0..100_000 {
            seen.insert(
                str_field(&parse(&generator.next_event()), "message")
                    .unwrap()
                    .to_string(),
            );
        }
        for ty in &catalog().types {
            for template in &ty.templates {
                let prefix = match &template.segments[0] {
                    Segment::Literal(text) => text.as_str(),
                    Segment::Placeholder(_) => "",
                };
                let suffix = match template.segments.last().unwrap() {
                    Segment::Literal(text) if template.segments.len() > 1 => text.as_str(),
                    _ => "",
                };
                assert!(
                    seen.iter().any(|m| m.starts_with(prefix)
                        && m.ends_with(suffix)
                        && (template.segments.len() > 1 || m == &template.text)),
                    "never generated: {}",
                    template.text
                );
            }
        }
    }

    #[test]
    fn ids_are_unique() {
        let mut generator = Generator::new(GeneratorConfig {
            poison_every: Some(5),
            ..GeneratorConfig::default()
        });
        let mut ids = HashSet::new();
        for m in generator.by_ref().take(50_000) {
            if m.poison == Some(PoisonKind::InvalidJson) || m.poison == Some(PoisonKind::NotObject)
            {
                continue;
            }
            let id = str_field(&parse(&m.bytes), "id").unwrap().to_string();
            assert!(ids.insert(id));
        }
    }

    #[test]
    fn level_skew_and_shared_values() {
        let mut generator = Generator::new(GeneratorConfig::default());
        let mut levels: HashMap<String, usize> = HashMap::new();
        let mut traces: HashMap<String, usize> = HashMap::new();
        let mut escapes = 0;
        let mut non_ascii = 0;
        for _ in 0..10_000 {
            let bytes = generator.next_event();
            let text = std::str::from_utf8(&bytes).unwrap();
            if text.contains("\\\"") || text.contains("\\n") {
                escapes += 1;
            }
            if !text.is_ascii() {
                non_ascii += 1;
            }
            let v = parse(&bytes);
            *levels
                .entry(str_field(&v, "level").unwrap().to_string())
                .or_default() += 1;
            if let Some(trace) = str_field(&v, "traceId") {
                *traces.entry(trace.to_string()).or_default() += 1;
            }
        }
        let info = levels["INFO"];
        assert!(info > 5000, "{levels:?}");
        assert!(
            levels["WARN"] > 200 && levels["WARN"] < info / 3,
            "{levels:?}"
        );
        assert!(
            levels["ERROR"] > 200 && levels["ERROR"] < info / 3,
            "{levels:?}"
        );
        assert!(levels["DEBUG"] > 100, "{levels:?}");
        assert!(
            traces.values().any(|&n| n >= 3),
            "traces should group events"
        );
        assert!(escapes > 500, "{escapes}");
        assert!(non_ascii > 500, "{non_ascii}");
    }

    #[test]
    fn event_for_project_uses_that_project() {
        let mut generator = Generator::new(GeneratorConfig::default());
        for project in ["proj_a", "tenant \"quoted\"\n", "proj_0003"] {
            for _ in 0..50 {
                let v = parse(&generator.event_for_project(project));
                assert_eq!(str_field(&v, "projectId"), Some(project));
            }
        }
        let mut buf = Vec::new();
        let project = generator.write_event(&mut buf).to_string();
        assert_eq!(str_field(&parse(&buf), "projectId"), Some(project.as_str()));
    }

    #[test]
    fn identifiers_are_stable_per_user() {
        let mut generator = Generator::new(GeneratorConfig::default());
        let mut personas: HashMap<(String, String), String> = HashMap::new();
        for _ in 0..5000 {
            let v = parse(&generator.next_event());
            let (Some(user), Some(persona)) =
                (str_field(&v, "endUserId"), str_field(&v, "personaId"))
            else {
                continue;
            };
            let key = (
                str_field(&v, "projectId").unwrap().to_string(),
                user.to_string(),
            );
            let known = personas.entry(key).or_insert_with(|| persona.to_string());
            assert_eq!(known, persona);
        }
    }

    #[test]
    fn timestamps_match_chrono() {
        assert_eq!(
            format_timestamp(BASE_TIMESTAMP_MS).as_str(),
            "2026-11-01T00:00:00.000Z"
        );
        for ms in [
            0i64,
            951_782_400_123,
            1_709_164_799_999,
            4_102_444_800_000,
            BASE_TIMESTAMP_MS + 86_399_999,
        ] {
            let expected = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(format_timestamp(ms).as_str(), expected);
        }
    }

    #[test]
    fn catalog_copy_matches_shared_file() {
        let catalog = catalog();
        let raw: Value = serde_json::from_str(CATALOG_JSON).unwrap();
        let count: usize = raw["types"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_array().unwrap().len())
            .sum();
        let compiled: usize = catalog.types.iter().map(|t| t.templates.len()).sum();
        assert_eq!(count, compiled);
        assert!(catalog.types.iter().all(|t| t.kind != Kind::Other));
    }

    /// `cargo test --release --lib generator::tests::throughput -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn throughput() {
        for target in [None, Some(1024)] {
            let mut generator = Generator::new(GeneratorConfig {
                target_bytes: target,
                ..GeneratorConfig::default()
            });
            let n = 2_000_000;
            let start = std::time::Instant::now();
            let mut bytes = 0;
            for _ in 0..n {
                bytes += generator.next_event().len();
            }
            let elapsed = start.elapsed();
            println!(
                "target {target:?}: {:.2} µs/event, {} bytes/event",
                elapsed.as_secs_f64() * 1e6 / n as f64,
                bytes / n
            );
        }
    }
}
