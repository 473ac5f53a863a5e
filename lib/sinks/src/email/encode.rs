//! A batch of Event Logs as one digest email: a subject that counts the events by level, and
//! a plain-text and an HTML part (`multipart/alternative`) listing them — time, level, type,
//! message, trace id and the error object — most severe first.
//!
//! An email has a size limit (`max_message_bytes`), a batch does not. The listing is made to
//! fit by trimming the longest texts first (every message and error is cut to one common
//! length, the longest that fits, but never below [`MIN_FIELD_CHARS`]); when even that is too
//! long, the least severe events are left out and counted in a closing "and N more" line.
//! Everything taken from an event is HTML-escaped in the HTML part: the events' text is the
//! customers' end users' input.

use std::fmt::Write as _;

use lettre::message::{header, Mailbox, MultiPart};
use lettre::Message;
use serde_json::Value;

use crate::{DeliveryError, ErrorKind};
use courier_core::event::Event;

/// Most events listed one by one; the rest are counted in "and N more".
pub const MAX_LISTED: usize = 500;

/// A message or error is never cut shorter than this many characters to make room.
pub const MIN_FIELD_CHARS: usize = 120;

/// Room kept for the headers and the MIME framing.
const HEADER_RESERVE: usize = 4 * 1024;

/// One event as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `timestamp`, as the event gives it.
    pub time: String,
    /// `level`, or `-`.
    pub level: String,
    /// `type`, or `-`.
    pub kind: String,
    /// `message`.
    pub message: String,
    /// `traceId`.
    pub trace_id: Option<String>,
    /// `error`: a string as is, anything else as compact JSON.
    pub error: Option<String>,
    rank: u8,
}

/// The marks of `courier test-destination`'s synthetic event (see `courier::probe`).
fn is_test_event(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("EVENT_DESTINATION")
        && v.pointer("/payload/test") == Some(&Value::Bool(true))
        && v.get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| id.starts_with("courier-test-"))
}

fn text_of(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl Entry {
    fn of(v: &Value) -> Entry {
        let level = text_of(v, "level").unwrap_or_else(|| "-".into());
        let rank = match level.to_ascii_uppercase().as_str() {
            "ERROR" => 0,
            "WARN" => 1,
            "INFO" => 2,
            "DEBUG" => 3,
            _ => 4,
        };
        Entry {
            time: text_of(v, "timestamp").unwrap_or_else(|| "-".into()),
            level,
            kind: text_of(v, "type").unwrap_or_else(|| "-".into()),
            message: text_of(v, "message").unwrap_or_default(),
            trace_id: text_of(v, "traceId"),
            error: text_of(v, "error"),
            rank,
        }
    }
}

/// The digest of a batch, before it becomes MIME.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
    /// Events listed.
    pub listed: usize,
    /// Events counted in "and N more".
    pub more: usize,
}

/// Builds digests for one destination.
#[derive(Debug, Clone)]
pub struct Encoder {
    /// The destination's project (every event of a destination is of its project).
    pub project: String,
    /// The destination's id.
    pub destination: String,
    /// `from`.
    pub from: Mailbox,
    /// `to`.
    pub to: Vec<Mailbox>,
    /// `max_message_bytes`.
    pub max_message_bytes: usize,
}

impl Encoder {
    /// The digest of `events` (in any order; listed most severe first).
    pub fn digest(&self, events: &[Event]) -> Digest {
        self.digest_within(events, self.body_budget())
    }

    /// Bytes the text and HTML parts may take together: the limit less the headers (the
    /// addresses included), and room for a transfer encoding (base64 adds a third).
    fn body_budget(&self) -> usize {
        let addresses: usize = self
            .to
            .iter()
            .chain(std::iter::once(&self.from))
            .map(|m| m.to_string().len() + 8)
            .sum();
        self.max_message_bytes
            .saturating_sub(HEADER_RESERVE + addresses)
            * 10
            / 14
    }

    fn digest_within(&self, events: &[Event], budget: usize) -> Digest {
        let values: Vec<Value> = events
            .iter()
            .map(|e| serde_json::from_slice(&e.raw).unwrap_or(Value::Null))
            .collect();
        let test = !values.is_empty() && values.iter().all(is_test_event);
        let mut entries: Vec<Entry> = values.iter().map(Entry::of).collect();
        // Stable: within a level, the batch's order (the topic's).
        entries.sort_by_key(|e| e.rank);
        let subject = subject(&entries, &self.project, test);
        let candidates = &entries[..entries.len().min(MAX_LISTED)];
        let (cap, listed) = fit(candidates, budget, &subject);
        let more = entries.len() - listed;
        let (text, html) = render(&entries[..listed], cap, more, &subject, self);
        Digest {
            subject,
            text,
            html,
            listed,
            more,
        }
    }

    /// The digest of `events` as an RFC 5322 message, with `message_id` (stable per batch, so
    /// a retried digest can be recognised), within `max_message_bytes`: the budget estimate
    /// is checked on the formatted message and lowered until it holds.
    pub fn message(&self, events: &[Event], message_id: &str) -> Result<Message, DeliveryError> {
        let mut budget = self.body_budget();
        loop {
            let digest = self.digest_within(events, budget);
            let listed = digest.listed;
            let message = self.build(digest, message_id)?;
            if listed == 0 || message.formatted().len() <= self.max_message_bytes {
                return Ok(message);
            }
            budget = budget * 3 / 4;
        }
    }

    fn build(&self, digest: Digest, message_id: &str) -> Result<Message, DeliveryError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(digest.subject)
            .message_id(Some(format!("<{message_id}@courier.invalid>")))
            .header(header::MIME_VERSION_1_0);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(digest.text, digest.html))
            .map_err(|e| DeliveryError {
                kind: ErrorKind::Encode,
                http_status: None,
                message: format!("cannot build the email: {e}"),
            })
    }
}

/// "3 ERROR and 12 WARN Event Logs from project proj_a".
pub fn subject(entries: &[Entry], project: &str, test: bool) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for e in entries {
        let label = if e.rank < 4 {
            e.level.to_ascii_uppercase()
        } else {
            "other".into()
        };
        match counts.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => counts.push((label, 1)),
        }
    }
    let parts: Vec<String> = counts.iter().map(|(l, n)| format!("{n} {l}")).collect();
    let listed = match parts.len() {
        0 => "0".to_owned(),
        1 => parts[0].clone(),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    };
    let noun = if entries.len() == 1 {
        "Event Log"
    } else {
        "Event Logs"
    };
    let line = format!("{listed} {noun} from project {project}");
    if test {
        format!("Test email from courier: {line}")
    } else {
        line
    }
}

/// `text` cut to `cap` characters, with an ellipsis when cut.
fn cut(text: &str, cap: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(cap) {
        Some((end, _)) => format!("{}…", &text[..end]).into(),
        None => text.into(),
    }
}

/// HTML-escaped text (element content and quoted attribute values alike).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn entry_text(e: &Entry, cap: usize, out: &mut String) {
    let short = |t: &str| cut(t, MIN_FIELD_CHARS).into_owned();
    let _ = writeln!(
        out,
        "[{}] {} {}",
        short(&e.time),
        short(&e.level),
        short(&e.kind)
    );
    let _ = writeln!(out, "  {}", cut(&e.message, cap));
    if let Some(t) = &e.trace_id {
        let _ = writeln!(out, "  trace id: {}", cut(t, MIN_FIELD_CHARS));
    }
    if let Some(err) = &e.error {
        let _ = writeln!(out, "  error: {}", cut(err, cap));
    }
    out.push('\n');
}

fn entry_html(e: &Entry, cap: usize, out: &mut String) {
    let cell = "style=\"padding:4px 8px;border-bottom:1px solid #ddd;vertical-align:top\"";
    let _ = write!(
        out,
        "<tr><td {cell}>{}</td><td {cell}><b>{}</b></td><td {cell}>{}</td><td {cell}>{}",
        escape(&cut(&e.time, MIN_FIELD_CHARS)),
        escape(&cut(&e.level, MIN_FIELD_CHARS)),
        escape(&cut(&e.kind, MIN_FIELD_CHARS)),
        escape(&cut(&e.message, cap)),
    );
    if let Some(err) = &e.error {
        let _ = write!(
            out,
            "<pre style=\"white-space:pre-wrap;margin:4px 0 0\">{}</pre>",
            escape(&cut(err, cap))
        );
    }
    let trace = e
        .trace_id
        .as_deref()
        .map(|t| escape(&cut(t, MIN_FIELD_CHARS)))
        .unwrap_or_default();
    let _ = writeln!(out, "</td><td {cell}><code>{trace}</code></td></tr>");
}

/// Bytes `entries` take in both parts with fields cut to `cap`.
fn size(entries: &[Entry], cap: usize) -> usize {
    let mut scratch = String::new();
    let mut total = 0;
    for e in entries {
        scratch.clear();
        entry_text(e, cap, &mut scratch);
        entry_html(e, cap, &mut scratch);
        total += scratch.len();
    }
    total
}

/// The longest field length (`cap`) and the number of entries that fit in `budget` bytes:
/// all of them with the largest cap that fits, else as many as fit at [`MIN_FIELD_CHARS`].
fn fit(entries: &[Entry], budget: usize, subject: &str) -> (usize, usize) {
    let frame = 2 * subject.len() + 1024;
    let budget = budget.saturating_sub(frame);
    let longest = entries
        .iter()
        .map(|e| {
            let err = e.error.as_deref().map_or(0, |s| s.chars().count());
            e.message.chars().count().max(err)
        })
        .max()
        .unwrap_or(0)
        .max(MIN_FIELD_CHARS);
    if size(entries, longest) <= budget {
        return (longest, entries.len());
    }
    if size(entries, MIN_FIELD_CHARS) <= budget {
        // The largest cap that fits: sizes only grow with the cap.
        let (mut lo, mut hi) = (MIN_FIELD_CHARS, longest);
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            if size(entries, mid) <= budget {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        return (lo, entries.len());
    }
    let mut used = 0;
    let mut listed = 0;
    for e in entries {
        let n = size(std::slice::from_ref(e), MIN_FIELD_CHARS);
        if used + n > budget {
            break;
        }
        used += n;
        listed += 1;
    }
    (MIN_FIELD_CHARS, listed)
}

fn render(
    entries: &[Entry],
    cap: usize,
    more: usize,
    subject: &str,
    encoder: &Encoder,
) -> (String, String) {
    let mut text = format!(
        "{subject}\nDelivered by courier for destination {}.\n\n",
        encoder.destination
    );
    let mut html = format!(
        "<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif\">\n<h2>{}</h2>\n<p>Delivered by courier for destination {}.</p>\n<table style=\"border-collapse:collapse\">\n<tr><th align=\"left\">Time</th><th align=\"left\">Level</th><th align=\"left\">Type</th><th align=\"left\">Message</th><th align=\"left\">Trace id</th></tr>\n",
        escape(subject),
        escape(&encoder.destination),
    );
    for e in entries {
        entry_text(e, cap, &mut text);
        entry_html(e, cap, &mut html);
    }
    html.push_str("</table>\n");
    if more > 0 {
        let noun = if more == 1 { "Event Log" } else { "Event Logs" };
        let line = format!(
            "… and {more} more {noun} not listed (this email's size limit is {} bytes).",
            encoder.max_message_bytes
        );
        let _ = writeln!(text, "{line}");
        let _ = writeln!(html, "<p>{}</p>", escape(&line));
    }
    html.push_str("</body></html>\n");
    (text, html)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ev(v: serde_json::Value, offset: i64) -> Event {
        courier_core::event::test_event(Bytes::from(v.to_string()), 0, offset)
    }

    fn encoder(max: usize) -> Encoder {
        Encoder {
            project: "proj_a".into(),
            destination: "ops-mail".into(),
            from: "Alerts <alerts@example.com>".parse().unwrap(),
            to: vec!["ops@example.com".parse().unwrap()],
            max_message_bytes: max,
        }
    }

    #[test]
    fn subject_counts_levels_most_severe_first() {
        let mut events = Vec::new();
        for i in 0..12 {
            events.push(ev(serde_json::json!({"level": "WARN", "message": "w"}), i));
        }
        for i in 0..3 {
            events.push(ev(
                serde_json::json!({"level": "ERROR", "message": "e"}),
                20 + i,
            ));
        }
        let d = encoder(256 * 1024).digest(&events);
        assert_eq!(
            d.subject,
            "3 ERROR and 12 WARN Event Logs from project proj_a"
        );
        let one = encoder(256 * 1024).digest(&events[..1]);
        assert_eq!(one.subject, "1 WARN Event Log from project proj_a");
        events.push(ev(serde_json::json!({"level": "INFO"}), 40));
        assert_eq!(
            encoder(256 * 1024).digest(&events).subject,
            "3 ERROR, 12 WARN and 1 INFO Event Logs from project proj_a"
        );
        // ERROR events are listed first.
        assert!(d.text.find("] ERROR").unwrap() < d.text.find("] WARN").unwrap());
    }

    #[test]
    fn html_escapes_everything_from_the_event() {
        let e = ev(
            serde_json::json!({"level": "ERROR", "type": "<b>T</b>", "message": "<script>alert('x')</script> & more",
                "traceId": "\"><img src=x>", "error": {"html": "<i>"}}),
            1,
        );
        let d = encoder(256 * 1024).digest(&[e]);
        assert!(!d.html.contains("<script>"), "{}", d.html);
        assert!(!d.html.contains("<img"), "{}", d.html);
        assert!(!d.html.contains("<b>T</b>"), "{}", d.html);
        assert!(d
            .html
            .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"));
        assert!(d.html.contains("{&quot;html&quot;:&quot;&lt;i&gt;&quot;}"));
        // The text part keeps the text as is.
        assert!(d.text.contains("<script>alert('x')</script> & more"));
    }

    #[test]
    fn long_fields_are_cut_first_then_events_counted_in_and_n_more() {
        // One huge message among short ones: only it is cut.
        let mut events = vec![ev(
            serde_json::json!({"level": "ERROR", "message": "x".repeat(100_000)}),
            0,
        )];
        for i in 1..20 {
            events.push(ev(
                serde_json::json!({"level": "ERROR", "message": format!("short {i}")}),
                i,
            ));
        }
        let d = encoder(32 * 1024).digest(&events);
        assert_eq!((d.listed, d.more), (20, 0));
        assert!(d.text.contains("short 19"));
        assert!(d.text.contains("x…"));
        assert!(d.text.len() + d.html.len() < 32 * 1024);
        // Too many events for the limit even when cut: "and N more".
        let many: Vec<Event> = (0..400)
            .map(|i| {
                ev(
                    serde_json::json!({"level": "WARN", "message": format!("{i} {}", "y".repeat(300))}),
                    i,
                )
            })
            .collect();
        let d = encoder(32 * 1024).digest(&many);
        assert!(d.more > 0 && d.listed > 0, "{} {}", d.listed, d.more);
        assert_eq!(d.listed + d.more, 400);
        assert!(d
            .text
            .contains(&format!("… and {} more Event Logs not listed", d.more)));
        let message = encoder(32 * 1024)
            .message(&many, "msg_1")
            .unwrap()
            .formatted();
        assert!(message.len() <= 32 * 1024, "{}", message.len());
    }

    #[test]
    fn the_limit_holds_with_many_recipients_long_fields_and_non_ascii_text() {
        let mut enc = encoder(16 * 1024);
        enc.to = (0..50)
            .map(|i| {
                format!(
                    "Recipient {} {i} <{}{i}@example.com>",
                    "N".repeat(150),
                    "r".repeat(60)
                )
                .parse()
                .unwrap()
            })
            .collect();
        let events: Vec<Event> = (0..200)
            .map(|i| {
                ev(
                    serde_json::json!({"level": "ERROR", "type": "T".repeat(50_000),
                        "message": "é€😀".repeat(500), "error": {"x": "ü".repeat(3000)}}),
                    i,
                )
            })
            .collect();
        let message = enc.message(&events, "msg_2").unwrap().formatted();
        assert!(message.len() <= 16 * 1024, "{}", message.len());
        let digest = enc.digest(&events);
        assert!(!digest.text.contains(&"T".repeat(MIN_FIELD_CHARS + 1)));
    }

    #[test]
    fn the_test_event_says_so_in_the_subject() {
        let e = ev(
            serde_json::json!({"id": "courier-test-1", "level": "INFO", "type": "EVENT_DESTINATION",
                "message": "Test event from courier", "payload": {"test": true}}),
            1,
        );
        assert_eq!(
            encoder(256 * 1024).digest(&[e]).subject,
            "Test email from courier: 1 INFO Event Log from project proj_a"
        );
    }
}
