//! Body templates of the webhook sink: the request body rendered from the batch with
//! minijinja, for receivers that want their own format (Slack, Teams, PagerDuty, New Relic).
//!
//! Templates come from customers (through the API too), so rendering is sandboxed: the
//! environment has no loader (no file or network access, nothing to include), every render
//! has a fuel budget (instructions) and a recursion limit, and the output is cut off at a
//! size limit. Auto-escaping is off (bodies are JSON, not HTML): values are placed with the
//! `tojson` filter, which writes valid JSON of any value.
//!
//! A render error is the data's fault as much as the template's (a field missing in one
//! event), so it is attributed to the events that cause it: a batch that fails is rendered
//! event by event to find them, and only those are refused ([`render_batch`]).

use std::io;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};

use crate::{DeliveryError, ErrorKind as DeliveryKind};
use courier_core::event::Event;

/// The template's name inside its environment (shown in minijinja's own messages).
const NAME: &str = "template";

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// Bounds of one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Instructions one render may execute.
    pub fuel: u64,
    /// Nesting depth (loops, ifs, macro calls).
    pub recursion: usize,
    /// Largest body, in bytes; a render that writes more fails.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 5_000_000,
            recursion: 64,
            max_body_bytes: 10 * 1024 * 1024,
        }
    }
}

/// A compiled body template.
pub struct BodyTemplate {
    env: Environment<'static>,
    limits: Limits,
}

impl std::fmt::Debug for BodyTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyTemplate")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// What a template sees besides the events.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    /// The destination's project.
    pub project: &'a str,
    /// The destination's id.
    pub destination: &'a str,
    /// `template_secret` (a PagerDuty routing key), when configured.
    pub secret: Option<&'a str>,
}

impl BodyTemplate {
    /// Compiles `source`; a syntax error names its line (`"line 3: syntax error: …"`).
    pub fn compile(source: &str, limits: Limits) -> Result<Self, String> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(format!(
                "is {} bytes, over the limit of {MAX_TEMPLATE_BYTES}",
                source.len()
            ));
        }
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_fuel(Some(limits.fuel));
        env.set_recursion_limit(limits.recursion);
        env.add_filter("datetime", datetime);
        env.add_filter("epoch_ms", epoch_ms);
        env.add_filter("truncate", truncate);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|e| describe(&e))?;
        Ok(Self { env, limits })
    }

    /// Renders the body of `events` (each parsed JSON).
    pub fn render(
        &self,
        events: &[serde_json::Value],
        batch_id: &str,
        meta: &Meta<'_>,
    ) -> Result<Vec<u8>, String> {
        let template = self
            .env
            .get_template(NAME)
            .expect("the template was added when compiling");
        let context = minijinja::context! {
            events => Value::from_serialize(events),
            event => events.first().map(Value::from_serialize),
            project => meta.project,
            destination => meta.destination,
            batch_id => batch_id,
            template_secret => meta.secret,
        };
        let mut out = Capped {
            body: Vec::new(),
            max: self.limits.max_body_bytes,
            over: false,
        };
        match template.render_captured_to(context, &mut out) {
            Ok(_) => Ok(out.body),
            Err(_) if out.over => Err(format!(
                "the rendered body is over {} bytes",
                self.limits.max_body_bytes
            )),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(format!(
                "the template ran out of fuel ({} instructions)",
                self.limits.fuel
            )),
            Err(e) => Err(describe(&e)),
        }
    }
}

/// A batch rendered: the body of the kept events and the refused ones.
#[derive(Debug)]
pub struct Rendered {
    /// The request body.
    pub body: Vec<u8>,
    /// Indices of the events in the body, ascending.
    pub kept: Vec<usize>,
    /// Indices of the events that could not be rendered, with why.
    pub refused: Vec<(usize, DeliveryError)>,
}

/// Renders `events` as one body. When that fails, each event is rendered alone to find the
/// ones that cause it; they are refused and the others rendered together. `batch_id` names
/// a set of events (it is in the context). Fails as a whole only when the events render
/// alone but not together (the body is too large, say).
pub fn render_batch(
    template: &BodyTemplate,
    events: &[Event],
    batch_id: impl Fn(&[usize]) -> String,
    meta: &Meta<'_>,
) -> Result<Rendered, DeliveryError> {
    let mut parsed = Vec::with_capacity(events.len());
    let mut kept = Vec::with_capacity(events.len());
    let mut refused = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match serde_json::from_slice::<serde_json::Value>(&e.raw) {
            Ok(v) => {
                parsed.push(v);
                kept.push(i);
            }
            Err(e) => refused.push((i, error(meta, format!("the event is not JSON: {e}")))),
        }
    }
    let whole = template.render(&parsed, &batch_id(&kept), meta);
    let body = match whole {
        Ok(body) => body,
        Err(message) if kept.len() == 1 => {
            refused.push((kept[0], error(meta, message)));
            kept.clear();
            Vec::new()
        }
        Err(message) => {
            let before = refused.len();
            let mut fine = Vec::with_capacity(kept.len());
            let mut values = Vec::with_capacity(kept.len());
            for (i, value) in kept.iter().zip(parsed) {
                let alone = std::slice::from_ref(&value);
                match template.render(alone, &batch_id(&[*i]), meta) {
                    Ok(_) => {
                        fine.push(*i);
                        values.push(value);
                    }
                    Err(why) => refused.push((*i, error(meta, why))),
                }
            }
            kept = fine;
            if refused.len() == before {
                // Every event renders alone: the batch as a whole is the problem.
                return Err(error(meta, message));
            }
            if kept.is_empty() {
                Vec::new()
            } else {
                template
                    .render(&values, &batch_id(&kept), meta)
                    .map_err(|why| error(meta, why))?
            }
        }
    };
    refused.sort_by_key(|(i, _)| *i);
    Ok(Rendered {
        body,
        kept,
        refused,
    })
}

/// A render error as a delivery error, the template secret masked.
fn error(meta: &Meta<'_>, message: String) -> DeliveryError {
    let message = match meta.secret {
        Some(s) if !s.is_empty() => message.replace(s, "****"),
        _ => message,
    };
    DeliveryError {
        kind: DeliveryKind::Encode,
        http_status: None,
        message: format!("the body template cannot be rendered: {message}"),
    }
}

/// A minijinja error as `"line N: what"`.
fn describe(e: &Error) -> String {
    let what = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    match e.line() {
        Some(line) => format!("line {line}: {what}"),
        None => what,
    }
}

/// Collects the output up to a size, then refuses to write.
struct Capped {
    body: Vec<u8>,
    max: usize,
    over: bool,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.body.len() + buf.len() > self.max {
            self.over = true;
            return Err(io::Error::other("the body is too large"));
        }
        self.body.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `{{ event.timestamp | datetime("%Y-%m-%d %H:%M") }}`: an RFC 3339 text or epoch
/// milliseconds, formatted in UTC with a strftime format (default RFC 3339).
fn datetime(value: Value, format: Option<String>) -> Result<String, Error> {
    let at = instant(&value)?;
    match format {
        None => Ok(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        Some(format) => {
            use std::fmt::Write as _;
            let items = chrono::format::StrftimeItems::new(&format)
                .parse()
                .map_err(|_| invalid(format!("invalid time format {format:?}")))?;
            let mut out = String::new();
            write!(out, "{}", at.format_with_items(items.iter()))
                .map_err(|_| invalid(format!("invalid time format {format:?}")))?;
            Ok(out)
        }
    }
}

/// `{{ event.timestamp | epoch_ms }}`: an RFC 3339 text or epoch milliseconds as epoch
/// milliseconds.
fn epoch_ms(value: Value) -> Result<i64, Error> {
    Ok(instant(&value)?.timestamp_millis())
}

/// `{{ event.message | truncate(3000) }}`: at most `n` characters, the last one `…` when
/// cut.
fn truncate(value: String, n: usize) -> String {
    if value.chars().count() <= n {
        return value;
    }
    let mut out: String = value.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn instant(value: &Value) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    if let Some(text) = value.as_str() {
        return chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| invalid(format!("{text:?} is not an RFC 3339 time: {e}")));
    }
    if let Ok(ms) = i64::try_from(value.clone()) {
        return chrono::DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| invalid(format!("{ms} is out of range for a time")));
    }
    Err(invalid(format!(
        "a time is an RFC 3339 text or epoch milliseconds, not {}",
        value.kind()
    )))
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
