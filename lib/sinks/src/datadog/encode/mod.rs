//! Request bodies of the Datadog sink: a JSON array of log items, each item built from the
//! kept event bytes.
//!
//! An item is the event object itself, member by member, with Datadog's reserved attributes
//! added before its closing brace:
//!
//! ```text
//! {<the event's members>,"ddsource":"courier","ddtags":"env:prod,project:p,type:t,level:info",
//!  "hostname":"h","service":"s","status":"info","timestamp":1793491200123}
//! ```
//!
//! Every field of the event stays a top-level attribute (searchable as `@projectId`,
//! `@payload.record.recordId`, …), and `message` is the event's own. Values are copied byte for
//! byte; only the top level of the object is scanned ([`crate::util::members`]). Where
//! the event already has a member courier sets (`status`, `timestamp`, … — Event Logs carry
//! `"status":"EVENT_STATUS.FAILED"` and an RFC 3339 `timestamp`), the event's member is kept
//! under `event_<name>` (`event_status`, `event_timestamp`) so nothing is lost and no key
//! appears twice.
//!
//! Limits (Datadog's Logs API v2): at most [`MAX_ITEMS`] items and [`MAX_BODY_BYTES`]
//! uncompressed bytes per request — larger batches are split into several requests
//! ([`crate::util::parts`]) — and [`MAX_ITEM_BYTES`] per log: a larger item is shrunk
//! ([`Shrink`]), never dropped.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;

use crate::util::members::{self, string_value, Member, Object};
use crate::util::{not_a_json_object, parts, Compression};
use crate::{batch_id, DeliveryError, EncodedBatch};
use courier_core::event::{Event, Level};

/// Most logs in one request.
pub const MAX_ITEMS: usize = 1000;
/// Largest uncompressed request body.
pub const MAX_BODY_BYTES: usize = 5_000_000;
/// Largest log item; larger ones are shrunk.
pub const MAX_ITEM_BYTES: usize = 1_000_000;
/// How far in the past a log time may be ("Log events can be submitted up to 18 hours in the
/// past and two hours in the future", Datadog's log date remapper documentation), less a
/// margin for clock skew. An event outside the window (a replay, a destination that was down
/// for a day) is sent without `timestamp`: Datadog then files it at its arrival instead of
/// dropping it, and its own time stays in `event_timestamp`.
pub const MAX_LOG_AGE: std::time::Duration = std::time::Duration::from_secs(18 * 3600 - 300);
/// How far in the future a log time may be; see [`MAX_LOG_AGE`].
pub const MAX_LOG_LEAD: std::time::Duration = std::time::Duration::from_secs(2 * 3600 - 300);
/// Longest `message` kept when an item has to be shrunk beyond its payload.
const SHRUNK_MESSAGE_BYTES: usize = 64 * 1024;
/// Values larger than this are replaced when shrinking beyond the payload.
const SHRUNK_VALUE_BYTES: usize = 1024;

/// How much of an event an item keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shrink {
    /// Everything.
    None,
    /// `payload` replaced by a marker with its original size.
    Payload,
    /// Also every other value over 1 KiB replaced by a marker, `message` cut to 64 KiB.
    LargeValues,
    /// Only `message` (cut to 64 KiB), courier's attributes and a marker.
    Minimal,
}

/// Builds Datadog log items and request bodies.
#[derive(Debug, Clone)]
pub struct Encoder {
    /// `"ddsource":"…"`.
    source: String,
    /// `"service":"…"`, when configured.
    service: Option<String>,
    /// `"hostname":"…"`, when configured.
    hostname: Option<String>,
    /// Configured tags, comma-separated.
    tags: String,
    compression: Compression,
}

/// Fields of the event that shape the item.
#[derive(Default)]
struct Fields<'a> {
    level: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    project: Option<Cow<'a, str>>,
    integration: Option<Cow<'a, str>>,
    /// The event's time, when readable (its `timestamp` member is then replaced).
    event_ms: Option<i64>,
    /// The `timestamp` sent: the event's time unless Datadog would drop it as too old.
    timestamp_ms: Option<i64>,
}

impl Encoder {
    /// An encoder adding these attributes to every item.
    pub fn new(
        source: &str,
        service: Option<&str>,
        hostname: Option<&str>,
        tags: &[String],
        compression: Compression,
    ) -> Self {
        Self {
            source: member("ddsource", source),
            service: service.map(|s| member("service", s)),
            hostname: hostname.map(|h| member("hostname", h)),
            tags: tags.join(","),
            compression,
        }
    }

    /// Appends the log item of one event to `out`. Returns the event's size when the item
    /// had to be shrunk to fit [`MAX_ITEM_BYTES`].
    pub fn item(
        &self,
        raw: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, members::NotAnObject> {
        self.item_at(raw, out, chrono::Utc::now().timestamp_millis())
    }

    /// [`Encoder::item`] at time `now_ms` (epoch milliseconds).
    pub fn item_at(
        &self,
        raw: &[u8],
        out: &mut Vec<u8>,
        now_ms: i64,
    ) -> Result<Option<usize>, members::NotAnObject> {
        let object = members::scan(raw)?;
        let mut fields = fields(raw, &object.members);
        let window =
            now_ms - MAX_LOG_AGE.as_millis() as i64..=now_ms + MAX_LOG_LEAD.as_millis() as i64;
        fields.timestamp_ms = fields.event_ms.filter(|t| window.contains(t));
        let start = out.len();
        self.write_item(raw, &object, &fields, Shrink::None, out);
        if out.len() - start <= MAX_ITEM_BYTES {
            return Ok(None);
        }
        for shrink in [Shrink::Payload, Shrink::LargeValues, Shrink::Minimal] {
            out.truncate(start);
            self.write_item(raw, &object, &fields, shrink, out);
            if out.len() - start <= MAX_ITEM_BYTES {
                break;
            }
        }
        Ok(Some(raw.len()))
    }

    /// Whether the item of this event is shrunk (cheap unless the event is near the limit).
    pub fn shrinks(&self, raw: &[u8]) -> bool {
        // What an item adds to the event: courier's attributes, tags derived from the event
        // (at most 4 × 200 characters), renamed keys.
        let bound = 2048
            + self.source.len()
            + self.service.as_ref().map_or(0, String::len)
            + self.hostname.as_ref().map_or(0, String::len)
            + self.tags.len() * 2
            + 4 * 200 * 4;
        if raw.len() + bound <= MAX_ITEM_BYTES {
            return false;
        }
        let mut out = Vec::new();
        matches!(self.item(raw, &mut out), Ok(Some(_)))
    }

    fn write_item(
        &self,
        raw: &[u8],
        object: &Object<'_>,
        f: &Fields<'_>,
        shrink: Shrink,
        out: &mut Vec<u8>,
    ) {
        let status = f.level.as_deref().map_or(Cow::Borrowed("info"), status_of);
        let set_by_courier = |key: &str| match key {
            "status" | "ddsource" | "ddtags" => true,
            "timestamp" => f.event_ms.is_some(),
            "service" => self.service.is_some(),
            "hostname" => self.hostname.is_some(),
            _ => false,
        };
        let displaced: Vec<&Member<'_>> = object
            .members
            .iter()
            .filter(|m| set_by_courier(&m.key))
            .collect();
        let mut first = true;
        if shrink == Shrink::None && displaced.is_empty() {
            // The event as it is, up to its closing brace.
            out.extend_from_slice(&raw[object.open..object.close]);
            first = object.members.is_empty();
        } else {
            out.push(b'{');
            for m in &object.members {
                if set_by_courier(&m.key) {
                    continue;
                }
                let value = &raw[m.value.clone()];
                match shrink {
                    Shrink::Minimal if m.key != "message" => continue,
                    Shrink::None => {}
                    Shrink::Payload if m.key != "payload" => {}
                    Shrink::LargeValues | Shrink::Minimal if value.len() <= SHRUNK_VALUE_BYTES => {}
                    _ if m.key == "message" && value.first() == Some(&b'"') => {
                        comma(out, &mut first);
                        out.extend_from_slice(&raw[m.key_span.clone()]);
                        out.push(b':');
                        write_cut_string(value, out);
                        continue;
                    }
                    _ => {
                        comma(out, &mut first);
                        out.extend_from_slice(&raw[m.key_span.clone()]);
                        out.push(b':');
                        write_marker(value.len(), out);
                        continue;
                    }
                }
                comma(out, &mut first);
                out.extend_from_slice(&raw[m.key_span.start..m.value.end]);
            }
        }
        comma(out, &mut first);
        out.extend_from_slice(self.source.as_bytes());
        out.extend_from_slice(b",\"ddtags\":");
        push_json_str(out, &self.tags_for(f, shrink != Shrink::None));
        if let Some(h) = &self.hostname {
            out.push(b',');
            out.extend_from_slice(h.as_bytes());
        }
        if let Some(s) = &self.service {
            out.push(b',');
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(b",\"status\":");
        push_json_str(out, &status);
        if let Some(ms) = f.timestamp_ms {
            out.extend_from_slice(b",\"timestamp\":");
            out.extend_from_slice(ms.to_string().as_bytes());
        }
        if shrink != Shrink::Minimal {
            for m in displaced {
                out.push(b',');
                push_json_str(out, &renamed(&m.key, &object.members));
                out.push(b':');
                out.extend_from_slice(&raw[m.value.clone()]);
            }
        } else {
            out.extend_from_slice(b",\"courier_truncated\":");
            write_marker(raw.len(), out);
        }
        out.push(b'}');
    }

    fn tags_for(&self, f: &Fields<'_>, truncated: bool) -> String {
        let mut tags = String::with_capacity(self.tags.len() + 96);
        tags.push_str(&self.tags);
        let mut add = |name: &str, value: Option<&str>| {
            if let Some(v) = value {
                if !tags.is_empty() {
                    tags.push(',');
                }
                push_tag(&mut tags, name, v);
            }
        };
        add("project", f.project.as_deref());
        add("type", f.kind.as_deref());
        add("level", f.level.as_deref());
        add("integration", f.integration.as_deref());
        add("truncated", truncated.then_some("true"));
        tags
    }

    /// Encodes a batch: one request body, or several framed ([`parts`]) when the batch
    /// exceeds a request's limits.
    pub fn batch(
        &self,
        events: &[Event],
        destination_key: &str,
    ) -> Result<EncodedBatch, DeliveryError> {
        let mut body =
            Vec::with_capacity(events.iter().map(|e| e.raw.len() + 160).sum::<usize>() + 2);
        let mut spans: Vec<Range<usize>> = Vec::with_capacity(events.len());
        let now = chrono::Utc::now().timestamp_millis();
        body.push(b'[');
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            let start = body.len();
            self.item_at(&e.raw, &mut body, now)
                .map_err(|_| not_a_json_object(e))?;
            spans.push(start..body.len());
        }
        body.push(b']');
        let sizes: Vec<usize> = spans.iter().map(Range::len).collect();
        let ranges = parts::plan(&sizes, MAX_ITEMS, MAX_BODY_BYTES, 2, 1);
        let (body, uncompressed_bytes) = if ranges.len() <= 1 {
            let n = body.len();
            (self.compression.apply(body)?, n)
        } else {
            let mut requests = Vec::with_capacity(ranges.len());
            let mut total = 0;
            for r in ranges {
                let mut part = Vec::with_capacity(
                    spans[r.clone()].iter().map(|s| s.len() + 1).sum::<usize>() + 2,
                );
                part.push(b'[');
                for (j, span) in spans[r.clone()].iter().enumerate() {
                    if j > 0 {
                        part.push(b',');
                    }
                    part.extend_from_slice(&body[span.clone()]);
                }
                part.push(b']');
                total += part.len();
                requests.push((r.len(), self.compression.apply(part)?));
            }
            (parts::pack(requests), total)
        };
        Ok(EncodedBatch {
            body: Bytes::from(body),
            id: batch_id(destination_key, events),
            events: events.len(),
            uncompressed_bytes,
            verbatim: None,
        })
    }

    /// One request body holding exactly these events (used when a request must be split after
    /// the destination refused it as too large).
    pub fn request(&self, events: &[Event]) -> Result<Bytes, DeliveryError> {
        let mut body =
            Vec::with_capacity(events.iter().map(|e| e.raw.len() + 160).sum::<usize>() + 2);
        let now = chrono::Utc::now().timestamp_millis();
        body.push(b'[');
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            self.item_at(&e.raw, &mut body, now)
                .map_err(|_| not_a_json_object(e))?;
        }
        body.push(b']');
        self.compression.apply(body).map(Bytes::from)
    }
}

/// Reads the fields courier derives attributes from; values of other types are ignored.
fn fields<'a>(raw: &'a [u8], members: &[Member<'_>]) -> Fields<'a> {
    let mut f = Fields::default();
    for m in members {
        let slot = match m.key.as_ref() {
            "level" => &mut f.level,
            "type" => &mut f.kind,
            "projectId" => &mut f.project,
            "integrationId" => &mut f.integration,
            "timestamp" => {
                f.event_ms = string_value(&raw[m.value.clone()])
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.timestamp_millis());
                continue;
            }
            _ => continue,
        };
        *slot = string_value(&raw[m.value.clone()]);
    }
    f
}

/// Datadog's `status` for an Event Log `level`.
pub fn status_of(level: &str) -> Cow<'static, str> {
    match Level::parse(level) {
        Some(Level::Error) => Cow::Borrowed("error"),
        Some(Level::Warn) => Cow::Borrowed("warn"),
        Some(Level::Info) => Cow::Borrowed("info"),
        Some(Level::Debug) => Cow::Borrowed("debug"),
        // Not an Event Log level: Datadog's status remapper reads the text itself.
        None => Cow::Owned(level.to_ascii_lowercase()),
    }
}

/// The name a displaced event member is kept under: `event_<key>`, made unique.
fn renamed(key: &str, members: &[Member<'_>]) -> String {
    let mut name = format!("event_{key}");
    while members.iter().any(|m| m.key == name) {
        name.push('_');
    }
    name
}

/// Appends `name:value` with the value made a valid Datadog tag value: lower case, characters
/// other than letters, digits and `_-:./` replaced by `_` (commas would split the tag), cut to
/// 200 characters in all.
fn push_tag(tags: &mut String, name: &str, value: &str) {
    tags.push_str(name);
    tags.push(':');
    let room = super::config::MAX_TAG_CHARS.saturating_sub(name.chars().count() + 1);
    for c in value.chars().flat_map(char::to_lowercase).take(room) {
        tags.push(
            if c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '/') {
                c
            } else {
                '_'
            },
        );
    }
}

fn comma(out: &mut Vec<u8>, first: &mut bool) {
    if !*first {
        out.push(b',');
    }
    *first = false;
}

/// `"key":"value"` with JSON escapes.
fn member(key: &str, value: &str) -> String {
    let mut out = Vec::new();
    push_json_str(&mut out, key);
    out.push(b':');
    push_json_str(&mut out, value);
    String::from_utf8(out).expect("JSON text of strings is UTF-8")
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing a string to a Vec cannot fail");
}

/// The marker replacing a value that did not fit.
fn write_marker(original_bytes: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(
        format!(
            "{{\"truncated\":true,\"originalBytes\":{original_bytes},\"reason\":\"the log exceeded Datadog's {MAX_ITEM_BYTES}-byte limit\"}}"
        )
        .as_bytes(),
    );
}

/// A JSON string value cut to [`SHRUNK_MESSAGE_BYTES`], with a note of its original size.
fn write_cut_string(value: &[u8], out: &mut Vec<u8>) {
    let text = string_value(value).unwrap_or_default();
    if text.len() <= SHRUNK_MESSAGE_BYTES {
        out.extend_from_slice(value);
        return;
    }
    let mut end = SHRUNK_MESSAGE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = format!(
        "{}… [truncated by courier: {} bytes]",
        &text[..end],
        value.len()
    );
    push_json_str(out, &cut);
}

#[cfg(test)]
mod tests;
