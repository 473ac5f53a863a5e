//! Shaping what a destination receives: redaction, field selection (`redact`, `drop`, `keep`)
//! and sampling (`sample`, in [`sample`]).
//!
//! Why here: the rules are settings of every destination type and of the operator's
//! `[redact]` section, and they must apply identically on every path that sends (lanes, the
//! retry worker, replays, the test endpoint), so they are one value type that each of those
//! applies to its batch right before the sink encodes it.
//!
//! A destination without rules is not touched at all: its events go out as their original
//! bytes. A shaped destination parses each event once per encoded batch, applies its own
//! rules and then the operator's (so nothing a destination says can undo an operator rule:
//! the operator's list runs last, on what is left), and serializes it again (keys in sorted
//! order). Within a list, `keep` runs first, then `drop`, then `redact`.

pub mod path;
pub mod sample;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::event::Event;
use crate::settings::Secret;
use path::{Matcher, Pattern, States};

pub use sample::Sample;

/// What a redacted value becomes with `redact_with = "text"` (the default).
pub const REDACTED: &str = "[REDACTED]";

/// Top-level fields `keep` never removes: the ones sinks and receivers need to route,
/// timestamp and deduplicate an event. `drop` and `redact` can still name them.
pub const ALWAYS_KEPT: &[&str] = &["id", "projectId", "timestamp", "level", "type"];

/// Shortest `redact_key`, in bytes: a keyed hash with a guessable key is a plain hash.
pub const MIN_KEY_BYTES: usize = 16;

/// The keys of a rule list in a destination table (and in `[redact]`).
pub const KEYS: &[&str] = &["redact", "drop", "keep", "redact_with", "redact_key"];

/// A rule list as written: a destination's keys, or the operator's `[redact]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Paths whose values are replaced.
    #[serde(default)]
    pub redact: Vec<String>,
    /// Paths removed.
    #[serde(default)]
    pub drop: Vec<String>,
    /// When set, only these paths (and [`ALWAYS_KEPT`]) are sent.
    #[serde(default)]
    pub keep: Option<Vec<String>>,
    /// How redacted values are replaced.
    #[serde(default)]
    pub redact_with: RedactWith,
    /// The HMAC key of `redact_with = "hmac"`.
    #[serde(default)]
    pub redact_key: Option<Secret>,
}

/// `redact_with`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedactWith {
    /// `"[REDACTED]"`.
    #[default]
    Text,
    /// HMAC-SHA256 of the value with `redact_key`, hex: equal values stay joinable.
    Hmac,
}

impl RulesConfig {
    /// Checks and compiles the list. Errors are `(key, message)`, the key relative to the
    /// table (`redact[2]`, `redact_key`); a message never contains the key's value.
    pub fn compile(&self) -> Result<Rules, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let redact = patterns("redact", &self.redact, &mut errors);
        let drop = patterns("drop", &self.drop, &mut errors);
        let keep = self.keep.as_ref().map(|k| patterns("keep", k, &mut errors));
        let replace = match (self.redact_with, &self.redact_key) {
            (RedactWith::Text, None) => Some(Replace::Text),
            (RedactWith::Text, Some(_)) => {
                errors.push((
                    "redact_key".into(),
                    "is set but redact_with is not \"hmac\"; set redact_with = \"hmac\" or remove the key".into(),
                ));
                None
            }
            (RedactWith::Hmac, None) => {
                errors.push((
                    "redact_key".into(),
                    "is required with redact_with = \"hmac\"".into(),
                ));
                None
            }
            (RedactWith::Hmac, Some(key)) => {
                let len = key.expose().len();
                if len < MIN_KEY_BYTES {
                    errors.push((
                        "redact_key".into(),
                        format!("is {len} bytes long; at least {MIN_KEY_BYTES} are required"),
                    ));
                    None
                } else if len > crate::settings::bounds::MAX_SECRET_BYTES {
                    errors.push((
                        "redact_key".into(),
                        format!(
                            "is {len} bytes long; at most {} are allowed",
                            crate::settings::bounds::MAX_SECRET_BYTES
                        ),
                    ));
                    None
                } else {
                    Some(Replace::Hmac(key.clone()))
                }
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Rules {
            redact,
            drop,
            keep,
            replace: replace.expect("set whenever no error was recorded"),
        })
    }
}

fn patterns(key: &str, list: &[String], errors: &mut Vec<(String, String)>) -> Vec<Pattern> {
    if list.len() > path::MAX_PATHS {
        errors.push((
            key.to_owned(),
            format!(
                "has {} paths; at most {} are allowed",
                list.len(),
                path::MAX_PATHS
            ),
        ));
        return Vec::new();
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, text)| {
            Pattern::parse(text)
                .map_err(|m| errors.push((format!("{key}[{i}]"), m)))
                .ok()
        })
        .collect()
}

/// How a redacted value is replaced.
#[derive(Clone, PartialEq, Eq)]
enum Replace {
    Text,
    Hmac(Secret),
}

impl fmt::Debug for Replace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Replace::Text => f.write_str("Text"),
            Replace::Hmac(_) => f.write_str("Hmac(****)"),
        }
    }
}

impl Replace {
    fn apply(&self, value: &Value) -> Value {
        match self {
            Replace::Text => Value::String(REDACTED.into()),
            Replace::Hmac(key) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes())
                    .expect("HMAC accepts keys of any length");
                match value {
                    Value::String(s) => mac.update(s.as_bytes()),
                    other => mac.update(other.to_string().as_bytes()),
                }
                Value::String(hex(&mac.finalize().into_bytes()))
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(out, "{b:02x}").expect("writing to a String cannot fail");
    }
    out
}

/// One compiled rule list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    redact: Vec<Pattern>,
    drop: Vec<Pattern>,
    keep: Option<Vec<Pattern>>,
    replace: Replace,
}

impl Rules {
    /// Whether the list changes nothing.
    pub fn is_empty(&self) -> bool {
        self.redact.is_empty() && self.drop.is_empty() && self.keep.is_none()
    }

    fn apply(&self, event: &mut Map<String, Value>) {
        if let Some(keep) = &self.keep {
            let m = Matcher::new(keep);
            let root = m.root();
            event.retain(|key, child| {
                ALWAYS_KEPT.contains(&key.as_str()) || kept(&m, &m.step(&root, key), child)
            });
        }
        if !self.drop.is_empty() {
            let m = Matcher::new(&self.drop);
            drop_in_object(&m, &m.root(), event);
        }
        if !self.redact.is_empty() {
            let m = Matcher::new(&self.redact);
            let root = m.root();
            for (key, child) in event.iter_mut() {
                redact(&m, &m.step(&root, key), child, &self.replace);
            }
        }
    }
}

/// Whether `value`, at `states`, survives `keep` (trimming its own children).
fn kept(m: &Matcher<'_>, states: &States, value: &mut Value) -> bool {
    if states.is_empty() {
        return false;
    }
    if m.complete(states) {
        return true;
    }
    match value {
        Value::Object(map) => {
            map.retain(|key, child| kept(m, &m.step(states, key), child));
            !map.is_empty()
        }
        Value::Array(items) => {
            let mut i = 0;
            items.retain_mut(|child| {
                let keep = kept(m, &m.step(states, &i.to_string()), child);
                i += 1;
                keep
            });
            !items.is_empty()
        }
        _ => false,
    }
}

fn drop_in_object(m: &Matcher<'_>, states: &States, map: &mut Map<String, Value>) {
    map.retain(|key, child| {
        let next = m.step(states, key);
        !dropped(m, &next, child)
    });
}

/// Whether `value`, at `states`, is removed (removing what it holds that is).
fn dropped(m: &Matcher<'_>, states: &States, value: &mut Value) -> bool {
    if states.is_empty() {
        return false;
    }
    if m.complete(states) {
        return true;
    }
    match value {
        Value::Object(map) => drop_in_object(m, states, map),
        Value::Array(items) => {
            let mut i = 0;
            items.retain_mut(|child| {
                let gone = dropped(m, &m.step(states, &i.to_string()), child);
                i += 1;
                !gone
            });
        }
        _ => {}
    }
    false
}

fn redact(m: &Matcher<'_>, states: &States, value: &mut Value, replace: &Replace) {
    if states.is_empty() {
        return;
    }
    if m.complete(states) {
        *value = replace.apply(value);
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                redact(m, &m.step(states, key), child, replace);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                redact(m, &m.step(states, &i.to_string()), child, replace);
            }
        }
        _ => {}
    }
}

/// Why an event could not be shaped (never sent unshaped instead).
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    /// Not a JSON object (routable events always are; a parked copy could be damaged).
    #[error("the event is not a JSON object, so its fields cannot be redacted: {0}")]
    NotObject(String),
}

/// A destination's rules followed by the operator's: what is applied to its batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaper {
    lists: Vec<Rules>,
}

impl Shaper {
    /// The destination's rules then the operator's; `None` when neither changes anything
    /// (the destination keeps the byte-identical fast path).
    pub fn new(destination: Option<Rules>, operator: Option<&Rules>) -> Option<Arc<Shaper>> {
        let lists: Vec<Rules> = destination
            .into_iter()
            .chain(operator.cloned())
            .filter(|r| !r.is_empty())
            .collect();
        (!lists.is_empty()).then(|| Arc::new(Shaper { lists }))
    }

    /// One event's bytes, shaped.
    pub fn shape(&self, raw: &[u8]) -> Result<Bytes, ShapeError> {
        let value: Value =
            serde_json::from_slice(raw).map_err(|e| ShapeError::NotObject(e.to_string()))?;
        let Value::Object(mut event) = value else {
            return Err(ShapeError::NotObject("a JSON value of another type".into()));
        };
        for rules in &self.lists {
            rules.apply(&mut event);
        }
        let bytes = serde_json::to_vec(&event).expect("a JSON value always serializes");
        Ok(Bytes::from(bytes))
    }

    /// A batch, shaped: the same events (positions, acknowledgements) with shaped bytes.
    pub fn shape_batch(&self, events: &[Event]) -> Result<Vec<Event>, ShapeError> {
        events
            .iter()
            .map(|e| {
                Ok(Event {
                    raw: self.shape(&e.raw)?,
                    ..e.clone()
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
