//! Request bodies of the OTLP sink: one `LogRecord` per Event Log, in an
//! `ExportLogsServiceRequest` encoded with the OpenTelemetry project's generated types
//! (`opentelemetry-proto`, through `prost` for protobuf and its `with-serde` OTLP/JSON mapping
//! for JSON), never by hand.
//!
//! The mapping (docs/sinks.md has the table, with the specification sections it follows):
//! `timestamp` → `time_unix_nano`; the time courier encodes the batch (shortly after reading
//! it; unchanged by retries, which reuse the encoded batch) → `observed_time_unix_nano`;
//! `level` → `severity_number` (DEBUG 5, INFO 9, WARN 13, ERROR 17) and `severity_text`;
//! `message` → `body`; `traceId` → `trace_id` when it is 32 hex characters (else kept as an
//! attribute); `projectId` → the resource attribute [`PROJECT_ATTRIBUTE`] next to
//! `service.name`; `endUserId` → `enduser.id`, `eventName` → `event.name`, `id` →
//! `log.record.uid` (semantic-convention names); every other member, unknown ones included,
//! → `paragon.<member name>`, objects and arrays as nested maps and arrays.
//!
//! Requests are planned to at most `max_request_bytes` before compression
//! ([`crate::util::parts`]); a record larger than that travels alone.

use std::collections::BTreeMap;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::Value;

use super::config::Encoding;
use crate::util::{not_a_json_object, parts, Compression};
use crate::{batch_id, DeliveryError, EncodedBatch, ErrorKind};
use courier_core::event::{Event, Level};

/// The resource attribute that carries the events' `projectId`.
pub const PROJECT_ATTRIBUTE: &str = "paragon.project.id";

/// The prefix of attributes without a semantic-convention name.
pub const PREFIX: &str = "paragon.";

/// The instrumentation scope of every record: courier, which turned the Event Logs into
/// OpenTelemetry logs.
pub const SCOPE_NAME: &str = "courier";

/// Event members with a semantic-convention attribute name.
const SEMANTIC: &[(&str, &str)] = &[
    ("endUserId", "enduser.id"),
    ("eventName", "event.name"),
    ("id", "log.record.uid"),
];

/// Builds OTLP log records and request bodies.
#[derive(Debug, Clone)]
pub struct Encoder {
    encoding: Encoding,
    compression: Compression,
    max_request_bytes: usize,
    service_name: String,
    resource_attributes: Vec<KeyValue>,
}

/// One event as a record, with the project its resource names.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The event's `projectId` (courier routes only events that have one).
    pub project: Option<String>,
    /// The record.
    pub record: LogRecord,
}

impl Encoder {
    /// An encoder for one destination's settings.
    pub fn new(
        encoding: Encoding,
        compression: Compression,
        max_request_bytes: usize,
        service_name: &str,
        resource_attributes: &BTreeMap<String, String>,
    ) -> Self {
        Self {
            encoding,
            compression,
            max_request_bytes,
            service_name: service_name.to_owned(),
            resource_attributes: resource_attributes
                .iter()
                .map(|(k, v)| kv(k, string(v.clone())))
                .collect(),
        }
    }

    /// The encoded batch of `events`: one or more requests ([`parts`]), each compressed.
    pub fn batch(
        &self,
        events: &[Event],
        destination: &str,
    ) -> Result<EncodedBatch, DeliveryError> {
        let observed = now_nanos();
        let mapped = events
            .iter()
            .map(|e| map_event(&e.raw, observed).ok_or_else(|| not_a_json_object(e)))
            .collect::<Result<Vec<_>, _>>()?;
        let sizes: Vec<usize> = mapped.iter().map(|m| self.record_size(&m.record)).collect();
        let overhead = self.body(&[])?.len() + 64;
        let separator = match self.encoding {
            Encoding::Protobuf => 0,
            Encoding::Json => 1,
        };
        let ranges = parts::plan(
            &sizes,
            usize::MAX,
            self.max_request_bytes,
            overhead,
            separator,
        );
        let mut uncompressed = 0;
        let mut bodies = Vec::with_capacity(ranges.len());
        for range in ranges {
            let body = self.body(&mapped[range.clone()])?;
            uncompressed += body.len();
            bodies.push((range.len(), self.compression.apply(body)?));
        }
        Ok(EncodedBatch {
            body: Bytes::from(parts::pack(bodies)),
            id: batch_id(destination, events),
            events: events.len(),
            uncompressed_bytes: uncompressed,
            verbatim: None,
        })
    }

    /// The compressed body of one request carrying `events` (the halves of a request the
    /// receiver refused as too large).
    pub fn request(&self, events: &[Event]) -> Result<Bytes, DeliveryError> {
        let observed = now_nanos();
        let mapped = events
            .iter()
            .map(|e| map_event(&e.raw, observed).ok_or_else(|| not_a_json_object(e)))
            .collect::<Result<Vec<_>, _>>()?;
        let body = self.body(&mapped)?;
        Ok(Bytes::from(self.compression.apply(body)?))
    }

    /// An empty export request (no records), compressed: what `check` sends to test the
    /// endpoint and the credentials without delivering anything.
    pub fn empty_request(&self) -> Result<Bytes, DeliveryError> {
        Ok(Bytes::from(self.compression.apply(self.body(&[])?)?))
    }

    /// The uncompressed body of a request of `records`.
    fn body(&self, records: &[Mapped]) -> Result<Vec<u8>, DeliveryError> {
        let request = self.export_request(records);
        match self.encoding {
            Encoding::Protobuf => Ok(request.encode_to_vec()),
            Encoding::Json => serde_json::to_vec(&request).map_err(|e| DeliveryError {
                kind: ErrorKind::Encode,
                http_status: None,
                message: format!("cannot encode the OTLP/JSON request: {e}"),
            }),
        }
    }

    /// The export request of `records`: one `ResourceLogs` per project, in the order the
    /// projects first appear, each record in its project's in batch order.
    pub fn export_request(&self, records: &[Mapped]) -> ExportLogsServiceRequest {
        let mut groups: Vec<(Option<&str>, Vec<LogRecord>)> = Vec::new();
        for m in records {
            let project = m.project.as_deref();
            match groups.iter_mut().find(|(p, _)| *p == project) {
                Some((_, list)) => list.push(m.record.clone()),
                None => groups.push((project, vec![m.record.clone()])),
            }
        }
        ExportLogsServiceRequest {
            resource_logs: groups
                .into_iter()
                .map(|(project, log_records)| ResourceLogs {
                    resource: Some(self.resource(project)),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(InstrumentationScope {
                            name: SCOPE_NAME.to_owned(),
                            version: env!("CARGO_PKG_VERSION").to_owned(),
                            ..Default::default()
                        }),
                        log_records,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                })
                .collect(),
        }
    }

    fn resource(&self, project: Option<&str>) -> Resource {
        let mut attributes = vec![kv("service.name", string(self.service_name.clone()))];
        if let Some(p) = project {
            attributes.push(kv(PROJECT_ATTRIBUTE, string(p.to_owned())));
        }
        attributes.extend(self.resource_attributes.iter().cloned());
        Resource {
            attributes,
            ..Default::default()
        }
    }

    /// A record's share of a request body before compression.
    fn record_size(&self, record: &LogRecord) -> usize {
        match self.encoding {
            // Field tag and length prefix.
            Encoding::Protobuf => {
                record.encoded_len() + 1 + prost::length_delimiter_len(record.encoded_len())
            }
            Encoding::Json => serde_json::to_vec(record).map_or(0, |b| b.len()),
        }
    }

    /// The encoded, uncompressed request of `records`.
    pub fn encode_uncompressed(&self, records: &[Mapped]) -> Result<Vec<u8>, DeliveryError> {
        self.body(records)
    }
}

/// Nanoseconds since the epoch, now.
fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The record of one event observed at `observed` (epoch nanoseconds); `None` when the event
/// is not a JSON object.
pub fn map_event(raw: &[u8], observed: u64) -> Option<Mapped> {
    let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(raw) else {
        return None;
    };
    let mut record = LogRecord {
        observed_time_unix_nano: observed,
        ..Default::default()
    };
    let mut project = None;
    for (key, value) in members {
        match (key.as_str(), value) {
            ("timestamp", Value::String(t)) if time_nanos(&t).is_some() => {
                record.time_unix_nano = time_nanos(&t).unwrap_or_default();
            }
            ("level", Value::String(level)) => {
                record.severity_number = severity(&level) as i32;
                record.severity_text = level;
            }
            ("message", message) => record.body = Some(any(message)),
            ("traceId", Value::String(t)) if trace_id(&t).is_some() => {
                record.trace_id = trace_id(&t).unwrap_or_default();
            }
            ("projectId", Value::String(p)) => project = Some(p),
            (key, value) => {
                let name = SEMANTIC
                    .iter()
                    .find(|(member, _)| *member == key)
                    .map_or_else(|| format!("{PREFIX}{key}"), |(_, name)| (*name).to_owned());
                record.attributes.push(kv(&name, any(value)));
            }
        }
    }
    Some(Mapped { project, record })
}

/// `level` → `severity_number` (OTLP Logs Data Model, "Field: SeverityNumber": the first
/// number of each range); a level courier does not know is UNSPECIFIED, its text kept.
pub fn severity(level: &str) -> SeverityNumber {
    match Level::parse(level) {
        Some(Level::Debug) => SeverityNumber::Debug,
        Some(Level::Info) => SeverityNumber::Info,
        Some(Level::Warn) => SeverityNumber::Warn,
        Some(Level::Error) => SeverityNumber::Error,
        None => SeverityNumber::Unspecified,
    }
}

/// An RFC 3339 time as epoch nanoseconds; `None` when unreadable or before 1970.
fn time_nanos(text: &str) -> Option<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    u64::try_from(t.timestamp_nanos_opt()?).ok()
}

/// A `traceId` as the 16 bytes of an OTLP trace id: exactly 32 hex characters, not all zero
/// (the all-zero id is invalid, OTLP `trace_id`).
pub fn trace_id(text: &str) -> Option<Vec<u8>> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    bytes.iter().any(|b| *b != 0).then_some(bytes)
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value),
    }
}

fn string(s: String) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s)),
    }
}

/// A JSON value as an OTLP `AnyValue`: objects as key-value lists, arrays as arrays, integers
/// that fit as `int64` (others as `double`), `null` as the empty value.
pub fn any(value: Value) -> AnyValue {
    use any_value::Value as V;
    let value = match value {
        Value::Null => None,
        Value::Bool(b) => Some(V::BoolValue(b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => V::IntValue(i),
            None => V::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(s) => Some(V::StringValue(s)),
        Value::Array(items) => Some(V::ArrayValue(ArrayValue {
            values: items.into_iter().map(any).collect(),
        })),
        Value::Object(members) => Some(V::KvlistValue(KeyValueList {
            values: members.into_iter().map(|(k, v)| kv(&k, any(v))).collect(),
        })),
    };
    AnyValue { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"id":"e1","timestamp":"2026-12-06T10:00:00.123456789Z","level":"WARN","type":"APP_EVENT","message":"hello","projectId":"proj_a","endUserId":"u1","eventName":"order.created","traceId":"4BF92F3577B34DA6A3CE929D0E0E4736","payload":{"n":1,"big":18446744073709551615,"f":1.5,"list":[true,null],"nested":{"a":"b"}},"newField":"kept"}"#;

    fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
        r.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    #[test]
    fn maps_an_event_log() {
        let m = map_event(EVENT.as_bytes(), 7).unwrap();
        let r = &m.record;
        assert_eq!(m.project.as_deref(), Some("proj_a"));
        assert_eq!(r.time_unix_nano, 1_796_551_200_123_456_789);
        assert_eq!(r.observed_time_unix_nano, 7);
        assert_eq!(r.severity_number, 13);
        assert_eq!(r.severity_text, "WARN");
        assert_eq!(
            r.body.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("hello".into()))
        );
        assert_eq!(
            r.trace_id,
            vec![
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36
            ]
        );
        let s = |v: &str| Some(any_value::Value::StringValue(v.into()));
        assert_eq!(attr(r, "enduser.id").cloned(), s("u1"));
        assert_eq!(attr(r, "event.name").cloned(), s("order.created"));
        assert_eq!(attr(r, "log.record.uid").cloned(), s("e1"));
        assert_eq!(attr(r, "paragon.type").cloned(), s("APP_EVENT"));
        assert_eq!(attr(r, "paragon.newField").cloned(), s("kept"));
        assert!(attr(r, "paragon.projectId").is_none());
        assert!(attr(r, "paragon.traceId").is_none());
        let Some(any_value::Value::KvlistValue(payload)) = attr(r, "paragon.payload") else {
            panic!("payload is not a map")
        };
        let get = |k: &str| {
            payload
                .values
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.clone())
                .unwrap()
                .value
        };
        assert_eq!(get("n"), Some(any_value::Value::IntValue(1)));
        assert_eq!(get("f"), Some(any_value::Value::DoubleValue(1.5)));
        assert_eq!(
            get("big"),
            Some(any_value::Value::DoubleValue(18446744073709551615.0))
        );
        let Some(any_value::Value::ArrayValue(list)) = get("list") else {
            panic!()
        };
        assert_eq!(list.values[1].value, None);
    }

    #[test]
    fn odd_fields_stay_attributes() {
        let raw = r#"{"projectId":"p","level":"NOTICE","traceId":"abc","timestamp":"yesterday","message":{"k":1}}"#;
        let r = map_event(raw.as_bytes(), 1).unwrap().record;
        assert_eq!(r.severity_number, 0);
        assert_eq!(r.severity_text, "NOTICE");
        assert!(r.trace_id.is_empty());
        assert_eq!(
            attr(&r, "paragon.traceId").cloned(),
            Some(any_value::Value::StringValue("abc".into()))
        );
        assert_eq!(r.time_unix_nano, 0);
        assert!(attr(&r, "paragon.timestamp").is_some());
        assert!(matches!(
            r.body.unwrap().value,
            Some(any_value::Value::KvlistValue(_))
        ));
        assert!(map_event(b"[1]", 1).is_none());
        assert!(trace_id("00000000000000000000000000000000").is_none());
        assert!(trace_id("4bf92f3577b34da6a3ce929d0e0e473g").is_none());
        for (level, n) in [("debug", 5), ("INFO", 9), ("warn", 13), ("ERROR", 17)] {
            assert_eq!(severity(level) as i32, n);
        }
    }

    #[test]
    fn json_follows_the_otlp_json_mapping() {
        let e = Encoder::new(
            Encoding::Json,
            Compression::None,
            1 << 20,
            "svc",
            &BTreeMap::new(),
        );
        let m = map_event(EVENT.as_bytes(), 7).unwrap();
        let body = e.encode_uncompressed(&[m]).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let rl = &v["resourceLogs"][0];
        assert_eq!(
            rl["resource"]["attributes"][0],
            serde_json::json!({"key":"service.name","value":{"stringValue":"svc"}})
        );
        let r = &rl["scopeLogs"][0]["logRecords"][0];
        // Hex trace ids, enum numbers, 64-bit integers as strings, lowerCamelCase.
        assert_eq!(r["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(r["severityNumber"], 13);
        assert_eq!(r["timeUnixNano"], "1796551200123456789");
        assert_eq!(r["observedTimeUnixNano"], "7");
        assert_eq!(r["body"], serde_json::json!({"stringValue":"hello"}));
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.contains(r#"{"key":"n","value":{"intValue":"1"}}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{"arrayValue":{"values":[{"boolValue":true},{}]}}"#),
            "{text}"
        );
    }

    #[test]
    fn batches_split_to_the_request_limit() {
        let e = Encoder::new(
            Encoding::Protobuf,
            Compression::None,
            1000,
            "svc",
            &BTreeMap::new(),
        );
        let events: Vec<Event> = (0..10)
            .map(|i| {
                courier_core::event::test_event(
                    format!(r#"{{"projectId":"p","message":"{}"}}"#, "x".repeat(300)),
                    0,
                    i,
                )
            })
            .collect();
        let batch = e.batch(&events, "d").unwrap();
        let parts = parts::unpack(&batch.body, 10).unwrap();
        assert!(parts.len() >= 4, "{}", parts.len());
        for p in parts {
            assert!(p.body.len() <= 1000, "{}", p.body.len());
            let request = ExportLogsServiceRequest::decode(p.body).unwrap();
            assert_eq!(
                request.resource_logs[0].scope_logs[0].log_records.len(),
                p.events.len()
            );
        }
    }
}
