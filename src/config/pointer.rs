//! The destinations API's error answers: a loader key path as a JSON pointer, and messages
//! shortened. Apart from the loader because only the API's answers need them.

/// Longest error message the API answers with: serde quotes the offending value (unknown
/// variants, invalid strings), which a tenant chooses and may make as long as a body allows.
const MAX_MESSAGE_CHARS: usize = 1024;

pub(super) fn shortened(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &message[..end]),
        None => message,
    }
}

/// A key path of a destination table under the empty prefix (`.filter.min_level`,
/// `tags[2]`, `.headers."X.Y"`) as a JSON pointer (`/filter/min_level`, `/tags/2`,
/// `/headers/X.Y`). An unknown field's error points at the field itself.
pub(super) fn json_pointer(path: &str, message: &str) -> String {
    let mut segments = key_path_segments(path);
    if let Some(field) = unknown_field(message) {
        if segments.last().map(String::as_str) != Some(field) {
            segments.push(field.to_owned());
        }
    }
    let mut pointer = String::new();
    for segment in segments {
        pointer.push('/');
        pointer.push_str(&segment.replace('~', "~0").replace('/', "~1"));
    }
    pointer
}

/// The field serde's "unknown field `…`, expected …" error names (which may hold a backtick).
pub(super) fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest
        .find("`, expected ")
        .or_else(|| rest.find("`, there are no fields"))?;
    Some(&rest[..end])
}

/// The segments of a key path: names, `[index]`es and quoted keys
/// ([`key_segment`](courier_core::settings::key_segment)).
fn key_path_segments(path: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(tail) = rest.strip_prefix('.') {
            rest = tail;
        } else if let Some(tail) = rest.strip_prefix('[') {
            let end = tail.find(']').unwrap_or(tail.len());
            segments.push(tail[..end].to_owned());
            rest = tail.get(end + 1..).unwrap_or("");
        } else if rest.starts_with('"') {
            let mut quoted = serde_json::Deserializer::from_str(rest).into_iter::<String>();
            match quoted.next() {
                Some(Ok(key)) => {
                    rest = &rest[quoted.byte_offset()..];
                    segments.push(key);
                }
                _ => {
                    segments.push(rest.to_owned());
                    rest = "";
                }
            }
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            segments.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    segments
}
