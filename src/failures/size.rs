//! What fits in one Kafka message. The producer refuses a message over `message.max.bytes`
//! (`MessageSizeTooLarge`) and no retry changes that, so everything courier writes about
//! failures is sized before it is produced: a failure event about a large batch is split into
//! several that each fit, an event id cannot make a failure event arbitrarily large, and the
//! destination's answer inside a failure event is trimmed.

use std::ops::Range;

use crate::config::KafkaOptions;
use crate::event::event_id;

/// librdkafka's default `message.max.bytes`.
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// An event id longer than this (in bytes) is listed in failure events in the
/// `topic-partition-offset` form instead: one id cannot take a failure event's room.
pub const MAX_REPORTED_ID_BYTES: usize = 256;

/// Most characters of an error message a failure event keeps.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1000;

/// The largest message the producers accept: `message.max.bytes` from `[kafka.options]`,
/// else librdkafka's default.
pub fn message_max_bytes(options: &KafkaOptions) -> usize {
    options
        .0
        .get("message.max.bytes")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&v| v > 0)
        .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES)
}

/// How large a serialized failure event keyed by `key_len` bytes may be under `message_max`:
/// the record's and the batch's framing (about a hundred bytes) are left room for, with a
/// margin of 512 bytes plus 1/64 of the limit (about 16 KB for the default).
pub fn budget(message_max: usize, key_len: usize) -> usize {
    message_max
        .saturating_sub(key_len)
        .saturating_sub(512 + message_max / 64)
}

/// The id a failure event lists for the event at `topic`/`partition`/`offset`: its own string
/// `id` when it has one of at most [`MAX_REPORTED_ID_BYTES`], else `topic-partition-offset`.
/// Replaying from failure events computes the same id to find exactly those events.
pub fn reported_id(raw: &[u8], topic: &str, partition: i32, offset: i64) -> String {
    match event_id(raw) {
        Some(id) if id.len() <= MAX_REPORTED_ID_BYTES => id,
        _ => format!("{topic}-{partition}-{offset}"),
    }
}

/// The length of `s` serialized as a JSON string (quotes and escapes included), as
/// `serde_json` writes it.
pub fn json_str_len(s: &str) -> usize {
    2 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

/// Splits a list of ids, in order, into consecutive chunks whose JSON list fits `room` bytes
/// each (an id costs its serialized length plus a separator). `None` when one id alone does
/// not fit: the list cannot be split into parts that do.
pub fn chunks<'a>(
    ids: impl IntoIterator<Item = &'a str>,
    room: usize,
) -> Option<Vec<Range<usize>>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0;
    let mut end = 0;
    for id in ids {
        let cost = json_str_len(id) + 1;
        if cost > room {
            return None;
        }
        if used + cost > room {
            out.push(start..end);
            start = end;
            used = 0;
        }
        used += cost;
        end += 1;
    }
    if end > start {
        out.push(start..end);
    }
    Some(out)
}

/// Whether the producer or the broker refused a message as too large (`MessageSizeTooLarge`):
/// permanent, sending it again cannot help.
pub fn refused_as_too_large(error: &rdkafka::error::KafkaError) -> bool {
    error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge)
}

/// `text` cut to at most `max` characters, with a note of how much was cut.
pub fn trim_chars(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(text),
        Some((cut, _)) => std::borrow::Cow::Owned(format!(
            "{}… ({} more bytes)",
            &text[..cut],
            text.len() - cut
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_limit_comes_from_the_kafka_options() {
        let mut options = KafkaOptions::default();
        assert_eq!(message_max_bytes(&options), 1_000_000);
        options
            .0
            .insert("message.max.bytes".into(), "2000000".into());
        assert_eq!(message_max_bytes(&options), 2_000_000);
        options.0.insert("message.max.bytes".into(), "lots".into());
        assert_eq!(message_max_bytes(&options), 1_000_000);
        assert_eq!(budget(1_000_000, 10), 1_000_000 - 10 - 512 - 15_625);
        assert_eq!(budget(100, 10), 0);
    }

    #[test]
    fn long_ids_are_reported_by_position() {
        let short = br#"{"id":"evt_1","projectId":"p"}"#;
        assert_eq!(reported_id(short, "t", 2, 40), "evt_1");
        let long = format!(r#"{{"id":"{}","projectId":"p"}}"#, "x".repeat(257));
        assert_eq!(reported_id(long.as_bytes(), "t", 2, 40), "t-2-40");
        let limit = format!(r#"{{"id":"{}","projectId":"p"}}"#, "x".repeat(256));
        assert_eq!(reported_id(limit.as_bytes(), "t", 2, 40).len(), 256);
        assert_eq!(reported_id(br#"{"id":5}"#, "t", 0, 1), "t-0-1");
    }

    #[test]
    fn trimming_keeps_whole_characters() {
        assert_eq!(trim_chars("abc", 3), "abc");
        assert_eq!(trim_chars("ééé", 2), "éé… (2 more bytes)");
        assert_eq!(trim_chars("", 0), "");
    }

    #[test]
    fn one_id_too_large_for_the_room_cannot_be_chunked() {
        assert_eq!(chunks(["abc"], 5), None);
        let one = chunks(["abc"], 6).unwrap();
        assert_eq!((one.len(), one[0].clone()), (1, 0..1));
        assert_eq!(chunks(["a", "b", "c"], 8), Some(vec![0..2, 2..3]));
        assert_eq!(chunks([], 0), Some(vec![]));
    }

    fn id() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9_-]{0,40}",
            "\\PC{0,300}",
            proptest::collection::vec(any::<char>(), 0..64)
                .prop_map(|c| c.into_iter().collect::<String>()),
        ]
    }

    proptest! {
        #[test]
        fn json_lengths_match_serde(s in any::<String>()) {
            prop_assert_eq!(json_str_len(&s), serde_json::to_string(&s).unwrap().len());
        }

        #[test]
        fn chunks_cover_every_id_once_and_fit(
            ids in proptest::collection::vec(id(), 0..400),
            room in 1usize..4000,
        ) {
            let Some(ranges) = chunks(ids.iter().map(String::as_str), room) else {
                prop_assert!(ids.iter().any(|i| json_str_len(i) + 1 > room));
                return Ok(());
            };
            let mut next = 0;
            for r in &ranges {
                prop_assert_eq!(r.start, next, "consecutive, in order");
                prop_assert!(r.end > r.start, "no empty chunk");
                let list = serde_json::to_string(&ids[r.clone()]).unwrap();
                prop_assert!(list.len() - 2 <= room, "{} > {}", list.len() - 2, room);
                next = r.end;
            }
            prop_assert_eq!(next, ids.len(), "every id");
        }
    }
}
