//! Event Logs as courier carries them: the original bytes plus where they came from, and the
//! decoder that reads only what routing needs.
//!
//! Delivery forwards the bytes exactly as they were produced; nothing on the hot path parses
//! and re-serializes an event.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

pub mod scan;

/// The `type` of delivery-failure events courier writes.
pub const FAILURE_EVENT_TYPE: &str = "EVENT_DESTINATION";

/// Event Log severity, ordered `DEBUG < INFO < WARN < ERROR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// `DEBUG`.
    Debug,
    /// `INFO`.
    Info,
    /// `WARN`.
    Warn,
    /// `ERROR`.
    Error,
}

impl Level {
    /// Reads a level case-insensitively (`warn`, `WARN`).
    pub fn parse(text: &str) -> Option<Level> {
        const NAMES: [(&str, Level); 4] = [
            ("DEBUG", Level::Debug),
            ("INFO", Level::Info),
            ("WARN", Level::Warn),
            ("ERROR", Level::Error),
        ];
        NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|(_, level)| *level)
    }

    /// The canonical upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Level::parse(&text).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown level {text:?}; expected DEBUG, INFO, WARN or ERROR"
            ))
        })
    }
}

/// A string field read leniently: a value of another JSON type reads as absent instead of
/// making the whole event undecodable (the schema is documented as subject to change).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Field<'a>(pub Option<Cow<'a, str>>);

impl<'a> Field<'a> {
    /// The string, when the field is a string.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Field(Some(Cow::Owned(v))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Field(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Field(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Field(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Field(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Field(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Field(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields routing and filtering look at, borrowed from the message bytes where the JSON
/// has no escapes. Everything else is skipped (but still validated as JSON).
#[derive(Debug, Default, Deserialize)]
pub struct RoutingFields<'a> {
    /// `projectId`.
    #[serde(rename = "projectId", borrow, default)]
    pub project_id: Field<'a>,
    /// `level`.
    #[serde(borrow, default)]
    pub level: Field<'a>,
    /// `type`.
    #[serde(rename = "type", borrow, default)]
    pub kind: Field<'a>,
    /// `endUserId`.
    #[serde(rename = "endUserId", borrow, default)]
    pub end_user_id: Field<'a>,
    /// `integrationId`.
    #[serde(rename = "integrationId", borrow, default)]
    pub integration_id: Field<'a>,
    /// `traceId`.
    #[serde(rename = "traceId", borrow, default)]
    pub trace_id: Field<'a>,
    /// `eventName`.
    #[serde(rename = "eventName", borrow, default)]
    pub event_name: Field<'a>,
    /// `timestamp` (RFC 3339).
    #[serde(borrow, default)]
    pub timestamp: Field<'a>,
    /// `destinationId`, set on delivery-failure events.
    #[serde(rename = "destinationId", borrow, default)]
    pub destination_id: Field<'a>,
}

impl RoutingFields<'_> {
    /// Whether this is a delivery-failure event written by courier.
    pub fn is_failure_event(&self) -> bool {
        self.kind.get() == Some(FAILURE_EVENT_TYPE)
    }
}

/// Why a message cannot be routed. The names are the failure events' `error.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unroutable {
    /// Not JSON (or empty).
    InvalidJson,
    /// JSON, but not an object.
    NotObject,
    /// An object without a string `projectId`.
    MissingProjectId,
    /// Larger than `limits.max_event_bytes`.
    TooLarge,
}

impl Unroutable {
    /// Every reason, for metrics.
    pub const ALL: [Unroutable; 4] = [
        Unroutable::InvalidJson,
        Unroutable::NotObject,
        Unroutable::MissingProjectId,
        Unroutable::TooLarge,
    ];

    /// The `error.kind` and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Unroutable::InvalidJson => "invalid_json",
            Unroutable::NotObject => "not_object",
            Unroutable::MissingProjectId => "missing_project_id",
            Unroutable::TooLarge => "too_large",
        }
    }
}

/// The outcome of decoding one message.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// Routable: the fields routing needs.
    Routable(RoutingFields<'a>),
    /// Not routable; `detail` says why in words, `project` is the projectId when readable.
    Unroutable {
        /// The reason class.
        reason: Unroutable,
        /// A human-readable explanation.
        detail: String,
        /// The projectId, when it could be read.
        project: Option<String>,
        /// Whether the message was itself a failure event (no new failure event then).
        failure_event: bool,
    },
}

/// Decodes a message value. Never panics, whatever the bytes.
pub fn decode(payload: Option<&[u8]>, max_bytes: usize) -> Decoded<'_> {
    let Some(bytes) = payload else {
        return unroutable(Unroutable::InvalidJson, "empty message (no value)".into());
    };
    if bytes.len() > max_bytes {
        // Read the projectId if the oversize message is otherwise a valid object, so the
        // customer gets told; the cost is paid only on this rare path. Only an object: serde
        // reads the fields of a struct from an array too, by position, which would make the
        // first string of `["…","…"]` the project told.
        let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let fields = object.then(|| parse_fields(bytes).ok()).flatten();
        return Decoded::Unroutable {
            reason: Unroutable::TooLarge,
            detail: format!(
                "message of {} bytes exceeds limits.max_event_bytes ({max_bytes})",
                bytes.len()
            ),
            project: fields
                .as_ref()
                .and_then(|f| f.project_id.get().map(str::to_owned)),
            failure_event: fields.as_ref().is_some_and(|f| f.is_failure_event()),
        };
    }
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => return unroutable(Unroutable::InvalidJson, "empty message".into()),
        Some(b'{') => {}
        Some(_) => {
            return match serde_json::from_slice::<IgnoredAny>(bytes) {
                Ok(_) => unroutable(Unroutable::NotObject, "JSON value is not an object".into()),
                Err(e) => unroutable(Unroutable::InvalidJson, format!("invalid JSON: {e}")),
            }
        }
    }
    match parse_fields(bytes) {
        Err(e) => unroutable(Unroutable::InvalidJson, format!("invalid JSON: {e}")),
        Ok(fields) => {
            if fields.project_id.get().is_none_or(str::is_empty) {
                return Decoded::Unroutable {
                    reason: Unroutable::MissingProjectId,
                    detail: "the event has no string projectId".into(),
                    project: None,
                    failure_event: fields.is_failure_event(),
                };
            }
            Decoded::Routable(fields)
        }
    }
}

fn parse_fields(bytes: &[u8]) -> Result<RoutingFields<'_>, serde_json::Error> {
    match scan::fields(bytes) {
        Some(fields) => Ok(fields),
        None => serde_json::from_slice(bytes),
    }
}

fn unroutable(reason: Unroutable, detail: String) -> Decoded<'static> {
    Decoded::Unroutable {
        reason,
        detail,
        project: None,
        failure_event: false,
    }
}

/// One event on its way to one destination.
#[derive(Debug, Clone)]
pub struct Event {
    /// The Kafka message value, unchanged.
    pub raw: Bytes,
    /// Where it was read.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Whether it is a delivery-failure event (never reported on again).
    pub failure_event: bool,
    /// What completes its offset.
    pub ack: AckId,
}

/// An event of assignment generation 1 at `partition`/`offset`, for unit tests (here and,
/// through the `test-util` feature, in the crates above).
#[cfg(any(test, feature = "test-util"))]
pub fn test_event(raw: impl Into<Bytes>, partition: i32, offset: i64) -> Event {
    Event {
        raw: raw.into(),
        partition,
        offset,
        failure_event: false,
        ack: AckId {
            partition,
            generation: 1,
            offset,
        },
    }
}

/// Identifies one tracked message for acknowledgement (the daemon's source acknowledgement tracker
/// hands them out and counts them back in). It travels with every [`Event`], so it is
/// defined with it. Copies are cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AckId {
    /// The partition.
    pub partition: i32,
    /// The assignment generation the message was read in; acks from an older generation
    /// (a revoked and re-assigned partition) are ignored. 0 means untracked.
    pub generation: u64,
    /// The offset.
    pub offset: i64,
}

/// Reads an event's own `id`, if it has a string one (used on the failure path only).
pub fn event_id(raw: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Id<'a> {
        #[serde(borrow, default)]
        id: Field<'a>,
    }
    serde_json::from_slice::<Id<'_>>(raw)
        .ok()
        .and_then(|i| i.id.get().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(bytes: &[u8]) -> Option<Unroutable> {
        match decode(Some(bytes), 1024) {
            Decoded::Routable(_) => None,
            Decoded::Unroutable { reason, .. } => Some(reason),
        }
    }

    #[test]
    fn classifies_poison() {
        assert_eq!(
            reason(b"{\"projectId\":\"p\""),
            Some(Unroutable::InvalidJson)
        );
        assert_eq!(reason(b""), Some(Unroutable::InvalidJson));
        assert_eq!(reason(b"  "), Some(Unroutable::InvalidJson));
        assert_eq!(reason(b"\xff\xfe"), Some(Unroutable::InvalidJson));
        assert_eq!(reason(b"[1,2]"), Some(Unroutable::NotObject));
        assert_eq!(reason(b"42"), Some(Unroutable::NotObject));
        assert_eq!(reason(b"{\"a\":1}"), Some(Unroutable::MissingProjectId));
        assert_eq!(
            reason(b"{\"projectId\":7}"),
            Some(Unroutable::MissingProjectId)
        );
        assert_eq!(
            reason(b"{\"projectId\":\"\"}"),
            Some(Unroutable::MissingProjectId)
        );
        assert_eq!(
            reason(b"{\"projectId\":\"p\"} x"),
            Some(Unroutable::InvalidJson)
        );
        assert!(matches!(decode(None, 10), Decoded::Unroutable { .. }));
        // An oversize array tells no project (serde reads a struct from an array by position).
        let array = format!("[\"p\",\"{}\"]", "a".repeat(2000));
        match decode(Some(array.as_bytes()), 1024) {
            Decoded::Unroutable {
                reason, project, ..
            } => assert_eq!((reason, project), (Unroutable::TooLarge, None)),
            other => panic!("{other:?}"),
        }
        let big = format!("{{\"projectId\":\"p\",\"x\":\"{}\"}}", "a".repeat(2000));
        match decode(Some(big.as_bytes()), 1024) {
            Decoded::Unroutable {
                reason, project, ..
            } => {
                assert_eq!(reason, Unroutable::TooLarge);
                assert_eq!(project.as_deref(), Some("p"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_routing_fields_and_tolerates_other_types() {
        let raw = br#"{"projectId":"p\u00e9","level":"warn","type":"APP_EVENT","payload":{"projectId":"nested"},"traceId":5,"endUserId":["x"],"eventName":null}"#;
        let Decoded::Routable(f) = decode(Some(raw), 1024) else {
            panic!("not routable")
        };
        assert_eq!(f.project_id.get(), Some("pé"));
        assert_eq!(f.level.get(), Some("warn"));
        assert_eq!(f.kind.get(), Some("APP_EVENT"));
        assert_eq!(f.trace_id.get(), None);
        assert_eq!(f.end_user_id.get(), None);
        assert_eq!(f.event_name.get(), None);
    }

    #[test]
    fn reads_ids() {
        assert_eq!(
            event_id(br#"{"id":"e1","projectId":"p"}"#).as_deref(),
            Some("e1")
        );
        assert_eq!(event_id(br#"{"id":1}"#), None);
        assert_eq!(event_id(b"nope"), None);
    }

    #[test]
    fn levels_parse_case_insensitively() {
        assert_eq!(Level::parse("warn"), Some(Level::Warn));
        assert_eq!(Level::parse("WARNING"), None);
        assert!(Level::Debug < Level::Error);
    }
}
