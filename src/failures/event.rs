//! Failure events as the customer reads them: Event Logs of type `EVENT_DESTINATION`, one per
//! source partition of a failed batch — and as many per partition as it takes for each to fit
//! in one Kafka message (see [`super::size`]).

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

use super::size::{self, MAX_ERROR_MESSAGE_CHARS};
use super::DeliveryFailure;
use crate::event::{Event, Unroutable, FAILURE_EVENT_TYPE};
use crate::sinks::DeliveryError;
use courier_core::daily_cap::DailyCap;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FailureEvent<'a> {
    pub id: String,
    pub timestamp: String,
    pub level: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_type: Option<&'a str>,
    pub error: ErrorObject<'a>,
    pub payload: Payload<'a>,
}

/// A destination's change of state, as an Event Log.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateEvent<'a> {
    id: String,
    timestamp: String,
    level: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    message: String,
    status: &'static str,
    project_id: &'a str,
    destination_id: &'a str,
    destination_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorObject<'a>>,
    payload: StatePayload,
}

#[derive(Serialize)]
struct StatePayload {
    state: &'static str,
    /// `daily_cap_reached` only: the UTC day (`YYYY-MM-DD`) and the cap that was reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    day: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cap: Option<DailyCap>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErrorObject<'a> {
    pub kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Payload<'a> {
    pub count: usize,
    pub source: SourceRange<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SourceRange<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn stable_id(prefix: &str, parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

fn to_bytes<T: Serialize>(event: &T) -> Vec<u8> {
    serde_json::to_vec(event).expect("failure events serialize: plain strings and numbers")
}

/// One failure event about part of a failed batch, ready to produce.
#[derive(Debug)]
pub(super) struct Report {
    /// The event, with its id list when the list fits.
    pub bytes: Vec<u8>,
    /// The same event without its id list, when `bytes` has one: written instead if the
    /// broker refuses `bytes` as too large (its source range still names the events).
    pub bare: Option<Vec<u8>>,
    /// Events it reports on.
    pub count: usize,
    /// Its source partition.
    pub partition: i32,
    /// First offset of its source range.
    pub first: i64,
    /// Last offset of its source range.
    pub last: i64,
}

/// Room left for the numbers of a part that differ from its partition's (a first offset
/// with more digits) when the partition's event is used to measure a part's.
const NUMBER_SLACK: usize = 32;

/// The failure events reporting `f`: one per source partition, split so that each is at most
/// `budget` bytes, every reported event listed in exactly one of them. Failure events inside
/// the batch are left out (a failure event never causes another). A partition whose events
/// cannot be listed within `budget` (one id alone does not fit) gets one event without ids.
pub(super) fn delivery_reports(
    source_topic: &str,
    budget: usize,
    f: &DeliveryFailure<'_>,
    now: DateTime<Utc>,
) -> Vec<Report> {
    let error_message = size::trim_chars(&f.error.message, MAX_ERROR_MESSAGE_CHARS);
    let timestamp = rfc3339(now);
    let first_attempt_at = rfc3339(f.first_attempt);
    let last_attempt_at = rfc3339(f.last_attempt);
    let render = |part: &[&Event], event_ids: Vec<String>| -> Vec<u8> {
        let partition = part[0].partition;
        let first = part[0].offset;
        let last = part[part.len() - 1].offset;
        to_bytes(&FailureEvent {
            id: stable_id(
                "fail",
                &[
                    f.project,
                    f.destination_id,
                    source_topic,
                    &partition.to_string(),
                    &first.to_string(),
                    &last.to_string(),
                ],
            ),
            timestamp: timestamp.clone(),
            level: "ERROR",
            kind: FAILURE_EVENT_TYPE,
            message: format!(
                "Unable to deliver {} events to destination {}",
                part.len(),
                f.destination_id
            ),
            status: "EVENT_STATUS.FAILED",
            project_id: Some(f.project),
            destination_id: Some(f.destination_id),
            destination_type: Some(f.destination_type),
            error: ErrorObject {
                kind: f.error.kind.as_str(),
                http_status: f.error.http_status,
                message: &error_message,
                attempts: Some(f.attempts),
                first_attempt_at: Some(first_attempt_at.clone()),
                last_attempt_at: Some(last_attempt_at.clone()),
            },
            payload: Payload {
                count: part.len(),
                source: SourceRange {
                    topic: source_topic,
                    partition,
                    first_offset: first,
                    last_offset: last,
                },
                event_ids,
            },
        })
    };
    let report = |part: &[&Event], bytes: Vec<u8>, bare: Option<Vec<u8>>| Report {
        bytes,
        bare,
        count: part.len(),
        partition: part[0].partition,
        first: part[0].offset,
        last: part[part.len() - 1].offset,
    };
    let mut reportable: Vec<&Event> = f.events.iter().filter(|e| !e.failure_event).collect();
    reportable.sort_by_key(|e| (e.partition, e.offset));
    let mut reports = Vec::new();
    for group in reportable.chunk_by(|a, b| a.partition == b.partition) {
        let ids: Vec<String> = group
            .iter()
            .map(|e| size::reported_id(&e.raw, source_topic, e.partition, e.offset))
            .collect();
        let base = render(group, Vec::new()).len() + r#","eventIds":[]"#.len() + NUMBER_SLACK;
        let Some(parts) = size::chunks(ids.iter().map(String::as_str), budget.saturating_sub(base))
        else {
            reports.push(report(group, render(group, Vec::new()), None));
            continue;
        };
        let mut ids = ids.into_iter();
        for range in parts {
            let part = &group[range.clone()];
            let listed = render(part, ids.by_ref().take(range.len()).collect());
            let bare = render(part, Vec::new());
            // Measured, not only estimated: what does not fit goes without its list.
            reports.push(if listed.len() <= budget {
                report(part, listed, Some(bare))
            } else {
                report(part, bare, None)
            });
        }
    }
    reports
}

/// A change of a destination's circuit ([`crate::lane::Circuit`]), announced once: logged,
/// counted and written as a state event ([`state_event`]). Defined here, with the event that
/// reports it, so that failure events do not depend on the lanes that use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Closed → open.
    Opened,
    /// Open → closed.
    Recovered,
    /// Open → paused.
    Paused,
}

/// A destination's change of state (circuit opened, recovered, paused), as an Event Log.
pub(super) fn state_event(
    project: &str,
    destination_id: &str,
    destination_type: &str,
    transition: Transition,
    error: Option<&DeliveryError>,
    now: DateTime<Utc>,
) -> (Vec<u8>, &'static str) {
    let (level, status, message, state) = match transition {
        Transition::Opened => (
            "ERROR",
            "EVENT_STATUS.FAILED",
            format!("Destination {destination_id} is failing; deliveries are being retried"),
            "failing",
        ),
        Transition::Recovered => (
            "INFO",
            "EVENT_STATUS.SUCCEEDED",
            format!("Destination {destination_id} recovered"),
            "recovered",
        ),
        Transition::Paused => (
            "ERROR",
            "EVENT_STATUS.FAILED",
            format!("Destination {destination_id} was paused after repeated failures"),
            "paused",
        ),
    };
    let error_message = error.map(|e| size::trim_chars(&e.message, MAX_ERROR_MESSAGE_CHARS));
    let event = StateEvent {
        id: stable_id(
            "state",
            &[
                project,
                destination_id,
                state,
                &now.timestamp_millis().to_string(),
            ],
        ),
        timestamp: rfc3339(now),
        level,
        kind: FAILURE_EVENT_TYPE,
        message,
        status,
        project_id: project,
        destination_id,
        destination_type,
        error: error
            .zip(error_message.as_deref())
            .map(|(e, message)| ErrorObject {
                kind: e.kind.as_str(),
                http_status: e.http_status,
                message,
                attempts: None,
                first_attempt_at: None,
                last_attempt_at: None,
            }),
        payload: StatePayload {
            state,
            day: None,
            cap: None,
        },
    };
    (to_bytes(&event), state)
}

/// A destination reached its `daily_cap` on `day` (UTC): its live events are skipped until
/// the next day. The id is the same for every announcement of that destination and day.
pub(super) fn daily_cap_event(
    project: &str,
    destination_id: &str,
    destination_type: &str,
    cap: DailyCap,
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let day = day.format("%Y-%m-%d").to_string();
    let event = StateEvent {
        id: stable_id("state", &[project, destination_id, DAILY_CAP_STATE, &day]),
        timestamp: rfc3339(now),
        level: "WARN",
        kind: FAILURE_EVENT_TYPE,
        message: format!(
            "Destination {destination_id} reached its daily cap; its events are skipped until the next UTC day"
        ),
        status: "EVENT_STATUS.FAILED",
        project_id: project,
        destination_id,
        destination_type,
        error: None,
        payload: StatePayload {
            state: DAILY_CAP_STATE,
            day: Some(day),
            cap: Some(cap),
        },
    };
    to_bytes(&event)
}

/// The `payload.state` (and `courier_failure_events_total` kind) of a reached daily cap.
pub(super) const DAILY_CAP_STATE: &str = "daily_cap_reached";

/// A message that could not be routed, as an Event Log.
pub(super) fn unroutable_event(
    source_topic: &str,
    partition: i32,
    offset: i64,
    reason: Unroutable,
    detail: &str,
    project: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let detail = size::trim_chars(detail, MAX_ERROR_MESSAGE_CHARS);
    to_bytes(&FailureEvent {
        id: stable_id(
            "unroutable",
            &[source_topic, &partition.to_string(), &offset.to_string()],
        ),
        timestamp: rfc3339(now),
        level: "ERROR",
        kind: FAILURE_EVENT_TYPE,
        message: format!("Event could not be routed: {detail}"),
        status: "EVENT_STATUS.FAILED",
        project_id: project,
        destination_id: None,
        destination_type: None,
        error: ErrorObject {
            kind: reason.as_str(),
            http_status: None,
            message: &detail,
            attempts: None,
            first_attempt_at: None,
            last_attempt_at: None,
        },
        payload: Payload {
            count: 1,
            source: SourceRange {
                topic: source_topic,
                partition,
                first_offset: offset,
                last_offset: offset,
            },
            event_ids: Vec::new(),
        },
    })
}
