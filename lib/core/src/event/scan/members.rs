//! The top-level members of a JSON object, found without parsing their values: where each key
//! and value lies in the bytes, so that an object can be rewritten member by member while the
//! values are copied unchanged.

use std::borrow::Cow;
use std::ops::Range;

use super::Scanner;

/// Deepest nesting of values accepted: serde_json's limit, so that every event courier decoded
/// scans (the routing fast path stops at a lower depth and leaves the rest to serde_json).
const MAX_DEPTH: usize = 128;

/// One `"key": value` of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    /// The key, unescaped.
    pub key: Cow<'a, str>,
    /// The key's bytes, quotes included.
    pub key_span: Range<usize>,
    /// The value's bytes.
    pub value: Range<usize>,
}

/// A scanned object: its members and the position of its closing brace.
#[derive(Debug)]
pub struct Object<'a> {
    /// Members in document order.
    pub members: Vec<Member<'a>>,
    /// Index of the `{`.
    pub open: usize,
    /// Index of the `}`.
    pub close: usize,
}

/// The input is not a JSON object (courier only delivers events that decoded as objects, so
/// this is not expected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAnObject;

/// Scans `json`, which must be one JSON object (surrounding whitespace allowed).
///
/// Values are skipped by the routing-field scanner of [`super`], which checks their syntax as
/// serde_json does: an event that decoded always scans.
pub fn scan(json: &[u8]) -> Result<Object<'_>, NotAnObject> {
    let mut s = Scanner {
        b: json,
        i: 0,
        max_depth: MAX_DEPTH,
    };
    s.ws();
    let open = s.i;
    s.eat(b'{').ok_or(NotAnObject)?;
    let mut members = Vec::new();
    s.ws();
    let close = if s.peek() == Some(b'}') {
        s.i += 1;
        s.i - 1
    } else {
        loop {
            let key_start = s.i;
            s.skip_string().ok_or(NotAnObject)?;
            let key_span = key_start..s.i;
            let inner = &json[key_start + 1..s.i - 1];
            let key = if memchr::memchr(b'\\', inner).is_none() {
                Cow::Borrowed(std::str::from_utf8(inner).map_err(|_| NotAnObject)?)
            } else {
                Cow::Owned(
                    serde_json::from_slice::<String>(&json[key_span.clone()])
                        .map_err(|_| NotAnObject)?,
                )
            };
            s.ws();
            s.eat(b':').ok_or(NotAnObject)?;
            s.ws();
            let value_start = s.i;
            s.value(1).ok_or(NotAnObject)?;
            members.push(Member {
                key,
                key_span,
                value: value_start..s.i,
            });
            s.ws();
            match s.next() {
                Some(b',') => s.ws(),
                Some(b'}') => break s.i - 1,
                _ => return Err(NotAnObject),
            }
        }
    };
    s.ws();
    if s.i != json.len() {
        return Err(NotAnObject);
    }
    Ok(Object {
        members,
        open,
        close,
    })
}

/// A JSON string value, borrowed when it has no escapes; `None` for other types.
pub fn string_value(value: &[u8]) -> Option<Cow<'_, str>> {
    let inner = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if memchr::memchr(b'\\', inner).is_none() {
        return std::str::from_utf8(inner).ok().map(Cow::Borrowed);
    }
    serde_json::from_slice::<String>(value).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_and_values(json: &str) -> Vec<(String, String)> {
        let o = scan(json.as_bytes()).unwrap();
        o.members
            .iter()
            .map(|m| (m.key.to_string(), json[m.value.clone()].to_owned()))
            .collect()
    }

    #[test]
    fn finds_top_level_members_only() {
        let json = r#" { "a" : 1 , "b":{"a":[1,{"x":"}"}],"c":"]"}, "s\"q":"v\\\"}", "n":null,"t":true,"f":-1.5e3,"e":[] }
"#;
        assert_eq!(
            keys_and_values(json),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), r#"{"a":[1,{"x":"}"}],"c":"]"}"#.into()),
                ("s\"q".into(), r#""v\\\"}""#.into()),
                ("n".into(), "null".into()),
                ("t".into(), "true".into()),
                ("f".into(), "-1.5e3".into()),
                ("e".into(), "[]".into()),
            ]
        );
        let o = scan(json.as_bytes()).unwrap();
        assert_eq!(json.as_bytes()[o.open], b'{');
        assert_eq!(json.as_bytes()[o.close], b'}');
        assert_eq!(&json[o.members[2].key_span.clone()], r#""s\"q""#);
    }

    #[test]
    fn unescapes_keys_and_keeps_non_ascii() {
        assert_eq!(
            keys_and_values(r#"{"st\u0061tus":"é✓","clé":"\ud83d\ude00"}"#),
            vec![
                ("status".into(), r#""é✓""#.into()),
                ("clé".into(), r#""\ud83d\ude00""#.into()),
            ]
        );
    }

    #[test]
    fn empty_objects_and_malformed_input() {
        let o = scan(b" {} ").unwrap();
        assert!(o.members.is_empty());
        assert_eq!((o.open, o.close), (1, 2));
        for bad in [
            &b""[..],
            b"[]",
            b"{",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{\"a\":1} x",
            b"{\"a\":\"x}",
            b"{\"a\":[1,2}",
            b"{\"a\\",
        ] {
            assert_eq!(
                scan(bad).err(),
                Some(NotAnObject),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
