//! What the generator hands out: a message value, and why a poison message cannot be
//! routed.

#[allow(unused_imports)]
use super::*;

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
