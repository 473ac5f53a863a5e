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

mod data;
mod ids;
mod message;
mod template;
#[cfg(test)]
mod tests;

use data::*;
use ids::*;
pub use message::{GeneratedMessage, PoisonKind};
use template::*;

/// The embedded Event Log catalog (event types and their messages).
const CATALOG_JSON: &str = include_str!("../../../data/event-catalog.json");

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
