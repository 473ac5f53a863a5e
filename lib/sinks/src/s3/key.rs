//! Object keys: a template of `{variables}` rendered from the events an object holds, so the
//! key is a function of the data — a retried batch, or the same range replayed, writes the
//! same key and overwrites instead of duplicating.
//!
//! | variable | value |
//! | --- | --- |
//! | `{prefix}` | the `prefix` key, without leading or trailing `/` |
//! | `{project}` | the destination's project |
//! | `{destination}` | the destination's id |
//! | `{topic}` | the Kafka topic the events were read from |
//! | `{partition}` | their Kafka partition (an object never spans partitions) |
//! | `{first_offset}`, `{last_offset}` | the lowest and highest offset in the object |
//! | `{date}` | `YYYY-MM-DD` of the object's time (UTC) |
//! | `{year}`, `{month}`, `{day}`, `{hour}` | its parts, zero-padded (`2026`, `06`, `01`, `09`) |
//! | `{ext}` | `ndjson.gz`, or `ndjson` with `compression = "none"` |
//!
//! The object's time is the first event's `timestamp` (RFC 3339, converted to UTC); when that
//! is missing or unreadable, the first later event in the object with a readable one; when no
//! event has one, the date variables are `unknown`. Never the clock: the key must not change
//! between a write and its retry or replay.
//!
//! Empty path segments are dropped (an empty prefix leaves no leading `/`). In the values of
//! `{project}`, `{destination}` and `{topic}`, `/` and control characters become `_`.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Deserialize;

use courier_core::event::{Event, Field};

/// A template variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Prefix,
    Project,
    Destination,
    Topic,
    Partition,
    FirstOffset,
    LastOffset,
    Date,
    Year,
    Month,
    Day,
    Hour,
    Ext,
}

const VARS: &[(&str, Var)] = &[
    ("prefix", Var::Prefix),
    ("project", Var::Project),
    ("destination", Var::Destination),
    ("topic", Var::Topic),
    ("partition", Var::Partition),
    ("first_offset", Var::FirstOffset),
    ("last_offset", Var::LastOffset),
    ("date", Var::Date),
    ("year", Var::Year),
    ("month", Var::Month),
    ("day", Var::Day),
    ("hour", Var::Hour),
    ("ext", Var::Ext),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// A parsed `key_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate(Vec<Piece>);

/// What a key is rendered from, besides the destination's fixed values.
#[derive(Debug, Clone, Copy)]
pub struct ObjectInfo {
    /// The Kafka partition.
    pub partition: i32,
    /// Lowest offset in the object.
    pub first_offset: i64,
    /// Highest offset in the object.
    pub last_offset: i64,
    /// The object's time, if any event had one.
    pub time: Option<DateTime<Utc>>,
}

/// The destination's fixed values.
#[derive(Debug, Clone)]
pub struct KeyContext {
    /// `{prefix}`.
    pub prefix: String,
    /// `{project}`.
    pub project: String,
    /// `{destination}`.
    pub destination: String,
    /// `{topic}`.
    pub topic: String,
    /// `{ext}`.
    pub ext: &'static str,
}

impl KeyTemplate {
    /// Parses a template; the error names what is wrong (an unknown variable, a stray brace,
    /// a missing `{partition}` or `{first_offset}`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    pieces.push(Piece::Text(rest.to_owned()));
                    break;
                }
                Some(i) => {
                    if i > 0 {
                        pieces.push(Piece::Text(rest[..i].to_owned()));
                    }
                    if rest.as_bytes()[i] == b'}' {
                        return Err(format!(
                            "unmatched '}}' at byte {}; variables are written {{name}}",
                            text.len() - rest.len() + i
                        ));
                    }
                    let after = &rest[i + 1..];
                    let Some(end) = after.find('}') else {
                        return Err(format!(
                            "unclosed '{{' at byte {}",
                            text.len() - rest.len() + i
                        ));
                    };
                    let name = &after[..end];
                    let Some((_, var)) = VARS.iter().find(|(n, _)| *n == name) else {
                        return Err(format!(
                            "unknown variable {{{name}}}; expected one of {}",
                            VARS.iter()
                                .map(|(n, _)| format!("{{{n}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    };
                    pieces.push(Piece::Var(*var));
                    rest = &after[end + 1..];
                }
            }
        }
        let has = |v: Var| pieces.contains(&Piece::Var(v));
        for (var, name) in [
            (Var::Partition, "partition"),
            (Var::FirstOffset, "first_offset"),
        ] {
            if !has(var) {
                return Err(format!(
                    "must contain {{{name}}}: without it different batches get the same key and overwrite each other"
                ));
            }
        }
        if pieces.iter().any(|p| match p {
            Piece::Text(t) => t.chars().any(|c| c.is_control()),
            Piece::Var(_) => false,
        }) {
            return Err("must not contain control characters".to_owned());
        }
        let template = KeyTemplate(pieces);
        // A sample key must be a valid object path (no "." or ".." segments).
        let sample = template.render(
            &KeyContext {
                prefix: "prefix".into(),
                project: "project".into(),
                destination: "destination".into(),
                topic: "topic".into(),
                ext: "ndjson.gz",
            },
            &ObjectInfo {
                partition: 0,
                first_offset: 0,
                last_offset: 0,
                time: None,
            },
        );
        object_store::path::Path::parse(&sample)
            .map_err(|e| format!("does not make a valid object key: {e}"))?;
        Ok(template)
    }

    /// The key of an object.
    pub fn render(&self, context: &KeyContext, object: &ObjectInfo) -> String {
        let mut raw = String::with_capacity(128);
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => raw.push_str(t),
                Piece::Var(v) => match v {
                    Var::Prefix => raw.push_str(&context.prefix),
                    Var::Project => push_clean(&mut raw, &context.project),
                    Var::Destination => push_clean(&mut raw, &context.destination),
                    Var::Topic => push_clean(&mut raw, &context.topic),
                    Var::Partition => write!(raw, "{}", object.partition).unwrap(),
                    Var::FirstOffset => write!(raw, "{}", object.first_offset).unwrap(),
                    Var::LastOffset => write!(raw, "{}", object.last_offset).unwrap(),
                    Var::Ext => raw.push_str(context.ext),
                    Var::Date | Var::Year | Var::Month | Var::Day | Var::Hour => {
                        match object.time {
                            None => raw.push_str("unknown"),
                            Some(t) => match v {
                                Var::Date => {
                                    write!(raw, "{:04}-{:02}-{:02}", t.year(), t.month(), t.day())
                                        .unwrap()
                                }
                                Var::Year => write!(raw, "{:04}", t.year()).unwrap(),
                                Var::Month => write!(raw, "{:02}", t.month()).unwrap(),
                                Var::Day => write!(raw, "{:02}", t.day()).unwrap(),
                                _ => write!(raw, "{:02}", t.hour()).unwrap(),
                            },
                        }
                    }
                },
            }
        }
        // Drop empty segments: an empty prefix, or a template that doubles a '/'.
        raw.split('/')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Appends a value that must stay one path segment.
fn push_clean(out: &mut String, value: &str) {
    if value == "." || value == ".." {
        out.push('_');
        return;
    }
    out.extend(
        value
            .chars()
            .map(|c| if c == '/' || c.is_control() { '_' } else { c }),
    );
}

/// The object's time: the first event's `timestamp`, else the first readable later one.
pub fn object_time<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<DateTime<Utc>> {
    events.into_iter().find_map(|e| event_time(&e.raw))
}

/// An event's `timestamp` (RFC 3339) in UTC, when it has a readable one.
pub fn event_time(raw: &[u8]) -> Option<DateTime<Utc>> {
    #[derive(Deserialize)]
    struct Timestamp<'a> {
        #[serde(borrow, default)]
        timestamp: Field<'a>,
    }
    let t: Timestamp<'_> = serde_json::from_slice(raw).ok()?;
    DateTime::parse_from_rfc3339(t.timestamp.get()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(prefix: &str) -> KeyContext {
        KeyContext {
            prefix: prefix.into(),
            project: "proj_a".into(),
            destination: "archive".into(),
            topic: "event-logs".into(),
            ext: "ndjson.gz",
        }
    }

    fn object(time: Option<&str>) -> ObjectInfo {
        ObjectInfo {
            partition: 3,
            first_offset: 1200,
            last_offset: 1319,
            time: time.map(|t| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)),
        }
    }

    #[test]
    fn the_default_template_renders_as_documented() {
        let t = KeyTemplate::parse(super::super::config::DEFAULT_KEY_TEMPLATE).unwrap();
        assert_eq!(
            t.render(
                &context("logs/courier"),
                &object(Some("2026-06-01T23:30:00-02:00"))
            ),
            "logs/courier/project=proj_a/dt=2026-06-02/hour=01/event-logs-3-1200-1319.ndjson.gz"
        );
        assert_eq!(
            t.render(&context(""), &object(None)),
            "project=proj_a/dt=unknown/hour=unknown/event-logs-3-1200-1319.ndjson.gz"
        );
    }

    #[test]
    fn every_variable_renders() {
        let t = KeyTemplate::parse(
            "{prefix}/{project}/{destination}/{topic}/{year}/{month}/{day}/{hour}/{date}/{partition}-{first_offset}-{last_offset}.{ext}",
        )
        .unwrap();
        assert_eq!(
            t.render(&context("p"), &object(Some("2026-01-05T07:08:09Z"))),
            "p/proj_a/archive/event-logs/2026/01/05/07/2026-01-05/3-1200-1319.ndjson.gz"
        );
    }

    #[test]
    fn values_stay_one_segment() {
        let t = KeyTemplate::parse("{project}/{partition}-{first_offset}").unwrap();
        let mut c = context("");
        c.project = "a/b\nc".into();
        assert_eq!(t.render(&c, &object(None)), "a_b_c/3-1200");
        c.project = "..".into();
        assert_eq!(t.render(&c, &object(None)), "_/3-1200");
    }

    #[test]
    fn rejects_unknown_variables_and_unsafe_templates() {
        let e = KeyTemplate::parse("{prefix}/{bucket}/{partition}-{first_offset}").unwrap_err();
        assert!(
            e.starts_with("unknown variable {bucket}; expected one of {prefix}"),
            "{e}"
        );
        assert!(KeyTemplate::parse("{partition}-{first_offset").is_err());
        assert!(KeyTemplate::parse("{partition}}-{first_offset}").is_err());
        assert!(KeyTemplate::parse("{prefix}/{date}.json")
            .unwrap_err()
            .contains("{partition}"));
        assert!(KeyTemplate::parse("{partition}.json")
            .unwrap_err()
            .contains("{first_offset}"));
        assert!(KeyTemplate::parse("../{partition}-{first_offset}").is_err());
    }

    #[test]
    fn reads_event_times() {
        assert_eq!(
            event_time(br#"{"timestamp":"2026-11-22T08:30:05.703Z"}"#)
                .unwrap()
                .to_rfc3339(),
            "2026-11-22T08:30:05.703+00:00"
        );
        assert_eq!(event_time(br#"{"timestamp":1700000000}"#), None);
        assert_eq!(event_time(br#"{"timestamp":"yesterday"}"#), None);
        assert_eq!(event_time(b"not json"), None);
    }
}
