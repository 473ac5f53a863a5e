//! The top-level members of a JSON object, found without parsing their values: where each key
//! and value lies in the bytes, so that an object can be rewritten member by member while the
//! values are copied unchanged.

use std::borrow::Cow;
use std::ops::Range;

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
/// Values are skipped, not validated beyond their structure: strings are followed through
/// their escapes and nested objects and arrays through their brackets.
pub fn scan(json: &[u8]) -> Result<Object<'_>, NotAnObject> {
    let mut s = Scanner { b: json, i: 0 };
    s.ws();
    let open = s.i;
    s.expect(b'{')?;
    let mut members = Vec::new();
    s.ws();
    if s.peek() == Some(b'}') {
        let close = s.i;
        s.i += 1;
        s.ws();
        return if s.i == json.len() {
            Ok(Object {
                members,
                open,
                close,
            })
        } else {
            Err(NotAnObject)
        };
    }
    let close = loop {
        s.ws();
        let key_start = s.i;
        let escaped = s.string()?;
        let key_span = key_start..s.i;
        let key = if escaped {
            Cow::Owned(
                serde_json::from_slice::<String>(&json[key_span.clone()])
                    .map_err(|_| NotAnObject)?,
            )
        } else {
            Cow::Borrowed(
                std::str::from_utf8(&json[key_start + 1..s.i - 1]).map_err(|_| NotAnObject)?,
            )
        };
        s.ws();
        s.expect(b':')?;
        s.ws();
        let value_start = s.i;
        s.value()?;
        members.push(Member {
            key,
            key_span,
            value: value_start..s.i,
        });
        s.ws();
        match s.next() {
            Some(b',') => continue,
            Some(b'}') => break s.i - 1,
            _ => return Err(NotAnObject),
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

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), NotAnObject> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(NotAnObject)
        }
    }

    /// Skips a string starting at the current `"`; returns whether it holds escapes.
    fn string(&mut self) -> Result<bool, NotAnObject> {
        self.expect(b'"')?;
        let mut escaped = false;
        loop {
            let rest = &self.b[self.i..];
            let at = memchr::memchr2(b'"', b'\\', rest).ok_or(NotAnObject)?;
            self.i += at;
            if self.b[self.i] == b'"' {
                self.i += 1;
                return Ok(escaped);
            }
            escaped = true;
            // A backslash and the character it escapes (a `\u` escape's hex digits hold no
            // quote or backslash, so they are skipped like ordinary characters).
            self.i += 2;
            if self.i > self.b.len() {
                return Err(NotAnObject);
            }
        }
    }

    /// Skips one value.
    fn value(&mut self) -> Result<(), NotAnObject> {
        match self.peek().ok_or(NotAnObject)? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek().ok_or(NotAnObject)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.i += 1;
                }
                if self.i == start {
                    Err(NotAnObject)
                } else {
                    Ok(())
                }
            }
        }
    }
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
