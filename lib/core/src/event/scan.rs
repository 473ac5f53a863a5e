//! The fast path of [`super::decode`]: one pass over the message that validates it as JSON and
//! borrows the routing fields, for the common case only.
//!
//! serde_json's derive spent about 1 µs on a 1 KB event (docs/benchmarks.md); this scanner skips
//! strings with `memchr` and does nothing else per byte. It answers only when it is sure:
//! anything unusual — an escape in a key or in a routing field's string, a duplicate routing
//! field, deep nesting, a syntax error — returns `None`, and serde_json decides (with its
//! error messages). So `Some(fields)` is returned only for input serde_json also accepts, with
//! the same fields (property-tested below).
//!
//! The same scanner finds the top-level members of an event for the sinks that rewrite it
//! member by member ([`members`]), so that courier has one JSON scanner.

use std::borrow::Cow;

use super::{Field, RoutingFields};

pub mod members;

/// Deepest nesting handled here (serde_json allows 128).
const MAX_DEPTH: usize = 100;

/// The routing fields of a JSON object, when the message is plainly valid; `None` to let
/// serde_json decide.
pub(super) fn fields(bytes: &[u8]) -> Option<RoutingFields<'_>> {
    let mut s = Scanner {
        b: bytes,
        i: 0,
        max_depth: MAX_DEPTH,
    };
    let mut out = RoutingFields::default();
    let mut seen = 0u16;
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        s.i += 1;
    } else {
        loop {
            let key = s.plain_string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            match slot(key) {
                Some(n) => {
                    let bit = 1u16 << n;
                    if seen & bit != 0 {
                        return None; // serde's derive rejects a duplicate field
                    }
                    seen |= bit;
                    // Other types read as absent; numbers, arrays and objects are left to
                    // serde_json, which reads them differently from skipped values (a
                    // number out of range, escapes in nested keys).
                    let value = match s.peek()? {
                        b'"' => Field(Some(Cow::Borrowed(s.plain_string()?))),
                        b't' | b'f' | b'n' => {
                            s.value(1)?;
                            Field(None)
                        }
                        _ => return None,
                    };
                    *field(&mut out, n) = value;
                }
                None => s.value(1)?,
            }
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == bytes.len()).then_some(out)
}

/// Index of a routing field's key.
fn slot(key: &str) -> Option<u8> {
    Some(match key {
        "projectId" => 0,
        "level" => 1,
        "type" => 2,
        "endUserId" => 3,
        "integrationId" => 4,
        "traceId" => 5,
        "eventName" => 6,
        "timestamp" => 7,
        "destinationId" => 8,
        _ => return None,
    })
}

fn field<'a, 'b>(f: &'b mut RoutingFields<'a>, n: u8) -> &'b mut Field<'a> {
    match n {
        0 => &mut f.project_id,
        1 => &mut f.level,
        2 => &mut f.kind,
        3 => &mut f.end_user_id,
        4 => &mut f.integration_id,
        5 => &mut f.trace_id,
        6 => &mut f.event_name,
        7 => &mut f.timestamp,
        _ => &mut f.destination_id,
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// Deepest nesting of values accepted.
    max_depth: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// A string without escapes, as UTF-8 (keys and routing fields). Anything else: `None`.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let (end, ascii) = special(self.b, start);
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        let text = &self.b[start..end];
        self.i = end + 1;
        if ascii {
            // SAFETY: every byte is below 0x80, which is valid UTF-8.
            Some(unsafe { std::str::from_utf8_unchecked(text) })
        } else {
            std::str::from_utf8(text).ok()
        }
    }

    /// Skips a string that is not read: escapes are checked the way serde_json checks an
    /// ignored string (any `\u` with four hex digits); its UTF-8 is not (serde_json does not
    /// check it either).
    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let (at, _) = special(self.b, self.i);
            self.i = at + 1;
            match self.b.get(at)? {
                b'"' => return Some(()),
                b'\\' => {}
                _ => return None, // a control character
            }
            match self.next()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    let hex = self.b.get(self.i..self.i + 4)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.i += 4;
                }
                _ => return None,
            }
        }
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => {
                if depth > self.max_depth {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip_string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                if depth > self.max_depth {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.i += word.len();
        Some(())
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digit()?;
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.digit()?;
            self.digits();
        }
        // What follows a number must end it (serde_json reads `01` or `1x` as an error).
        match self.peek() {
            None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\t' | b'\r') => Some(()),
            _ => None,
        }
    }

    fn digit(&mut self) -> Option<()> {
        self.next()?.is_ascii_digit().then_some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }
}

/// The index of the first `"`, `\\` or control character at or after `from` (or the length),
/// and whether every byte before it is ASCII. Sixteen bytes at a time with SSE2 (part of
/// every x86-64 CPU).
#[cfg(target_arch = "x86_64")]
#[inline]
fn special(b: &[u8], from: usize) -> (usize, bool) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let mut i = from;
    let mut high = 0i32;
    // SAFETY: SSE2 is always available on x86-64; every load reads 16 bytes inside `b`.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let control = _mm_set1_epi8(0x1f);
        while i + 16 <= b.len() {
            let x = _mm_loadu_si128(b.as_ptr().add(i).cast());
            let hits = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                // x <= 0x1f, unsigned
                _mm_cmpeq_epi8(_mm_min_epu8(x, control), x),
            );
            let found = _mm_movemask_epi8(hits);
            let high_bits = _mm_movemask_epi8(x);
            if found != 0 {
                let n = found.trailing_zeros();
                high |= high_bits & ((1 << n) - 1);
                return (i + n as usize, high == 0);
            }
            high |= high_bits;
            i += 16;
        }
    }
    let (at, ascii) = special_swar(b, i);
    (at, ascii && high == 0)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn special(b: &[u8], from: usize) -> (usize, bool) {
    special_swar(b, from)
}

/// [`special`] eight bytes at a time in a `u64`.
#[inline]
fn special_swar(b: &[u8], from: usize) -> (usize, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    let mut high = 0u64;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // A byte of `v` is zero (or, for `x`, below 0x20) where the high bit ends up set;
        // bits above the first such byte may be wrong, the lowest one is exact.
        let found = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        let found = found & HIGH;
        if found != 0 {
            let at = i + (found.trailing_zeros() / 8) as usize;
            high |= x & mask_below(at - i);
            return (at, high & HIGH == 0);
        }
        high |= x;
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        high |= u64::from(c);
        i += 1;
    }
    (i, high & HIGH == 0)
}

/// A mask of the low `n` bytes of a word (`n` < 8).
#[inline]
fn mask_below(n: usize) -> u64 {
    if n == 0 {
        0
    } else {
        u64::MAX >> (64 - 8 * n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_generator::{Generator, GeneratorConfig};
    use proptest::prelude::*;

    fn serde(bytes: &[u8]) -> Option<RoutingFields<'_>> {
        serde_json::from_slice(bytes).ok()
    }

    /// The scanner never accepts what serde_json refuses, and reads the same fields.
    fn agrees(bytes: &[u8]) {
        if let Some(fast) = fields(bytes) {
            let slow = serde(bytes).unwrap_or_else(|| {
                panic!(
                    "the scanner accepted what serde_json refuses: {:?}",
                    String::from_utf8_lossy(bytes)
                )
            });
            let pairs = [
                (&fast.project_id, &slow.project_id),
                (&fast.level, &slow.level),
                (&fast.kind, &slow.kind),
                (&fast.end_user_id, &slow.end_user_id),
                (&fast.integration_id, &slow.integration_id),
                (&fast.trace_id, &slow.trace_id),
                (&fast.event_name, &slow.event_name),
                (&fast.timestamp, &slow.timestamp),
                (&fast.destination_id, &slow.destination_id),
            ];
            for (a, b) in pairs {
                assert_eq!(a, b, "{:?}", String::from_utf8_lossy(bytes));
            }
        }
    }

    #[test]
    fn generated_events_take_the_fast_path_and_agree() {
        let mut generator = Generator::new(GeneratorConfig {
            projects: 50,
            poison_every: Some(7),
            ..GeneratorConfig::default()
        });
        let mut fast = 0;
        for _ in 0..5000 {
            let m = generator.next_message();
            agrees(&m.bytes);
            fast += usize::from(fields(&m.bytes).is_some());
            // and every prefix of it (truncated messages)
            for cut in [1, m.bytes.len() / 3, m.bytes.len() / 2, m.bytes.len() - 1] {
                agrees(&m.bytes[..cut]);
            }
        }
        assert!(fast > 4000, "only {fast} of 5000 took the fast path");
    }

    #[test]
    fn edge_cases() {
        for text in [
            r#"{}"#,
            r#" { "projectId" : "p" } "#,
            r#"{"projectId":"p","projectId":"q"}"#,
            r#"{"projectId":"p\u0041"}"#,
            r#"{"proj\u0065ctId":"p"}"#,
            r#"{"projectId":7,"level":null,"type":[1,{"a":"b"}],"x":{"projectId":"n"}}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":1e+5,"b":-0.5E-3,"c":0}"#,
            r#"{"a":tru}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12G4"}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"level":"\ud800"}"#,
            r#"{"a":"line\nbreak"}"#,
            "{\"a\":\"raw\u{1}control\"}",
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":1} x"#,
            r#"{"a":[1,]}"#,
            r#"{"a" 1}"#,
            r#"{"a":"é","projectId":"pé"}"#,
            "{\"a\":\"\u{ff}\"}",
        ] {
            agrees(text.as_bytes());
        }
        agrees(b"{\"a\":\"\xff\xfe\"}");
        agrees(b"{\"projectId\":\"\xff\"}");
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(150), "]".repeat(150));
        agrees(deep.as_bytes());
        assert!(fields(deep.as_bytes()).is_none());
        assert_eq!(
            fields(br#"{"projectId":"p","level":"WARN"}"#)
                .unwrap()
                .level
                .get(),
            Some("WARN")
        );
    }

    const HOSTILE: &[&str] = &[
        "1e999999",
        "-1e-999999",
        "-0",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890.5e-3",
        "\"\\ud800\"",
        "\"\\udc00\\ud800\"",
        "\"\\uD83D\\uDE00\"",
        "\"\\u0000\"",
        "\"\\u0070roj\"",
        "\"\u{feff}\u{10ffff}\u{2028}\"",
        "\"\u{7f}\"",
    ];

    fn json() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            any::<i32>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| n.to_string()),
            "[a-z\\\\\"é\u{1}-\u{3} ]{0,6}".prop_map(|s| format!("\"{s}\"")),
            "(projectId|level|type|traceId|x)".prop_map(|s| format!("\"{s}\"")),
            // Hostile: numbers past every range, escapes the scanner leaves to serde_json
            // (lone and paired surrogates, NUL, escaped routing values), odd unicode, nesting
            // around the scanner's depth limit and past serde_json's.
            proptest::sample::select(HOSTILE).prop_map(str::to_owned),
            (90usize..140).prop_map(|d| format!("{}1{}", "[".repeat(d), "]".repeat(d))),
        ];
        leaf.prop_recursive(4, 24, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec(
                    (
                        "(projectId|proj\\\\u0065ctId|level|type|eventName|timestamp|a|b)",
                        inner
                    ),
                    0..5
                )
                .prop_map(|v| format!(
                    "{{{}}}",
                    v.iter()
                        .map(|(k, v)| format!("\"{k}\":{v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                )),
            ]
        })
    }

    fn special_naive(b: &[u8], from: usize) -> (usize, bool) {
        let at = b[from..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .map_or(b.len(), |p| from + p);
        (at, b[from..at].is_ascii())
    }

    proptest! {
        #[test]
        fn special_finds_the_first_special_byte(
            bytes in proptest::collection::vec(prop_oneof![
                8 => 0x20u8..0x7f, 1 => Just(b'"'), 1 => Just(b'\\'), 1 => 0u8..0x20, 2 => 0x80u8..=0xff,
            ], 0..80),
            from in any::<prop::sample::Index>(),
        ) {
            let from = from.index(bytes.len() + 1);
            prop_assert_eq!(special(&bytes, from), special_naive(&bytes, from));
            prop_assert_eq!(special_swar(&bytes, from), special_naive(&bytes, from));
        }

        #[test]
        fn members_are_found_in_every_object_serde_json_decodes(text in json()) {
            // The sinks rewrite every delivered event member by member: whatever decoded as an
            // object must scan, with serde_json's keys and values.
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&text) {
                let object = members::scan(text.as_bytes())
                    .unwrap_or_else(|_| panic!("decoded but did not scan: {text:?}"));
                for m in &object.members {
                    let value: serde_json::Value =
                        serde_json::from_str(&text[m.value.clone()]).unwrap();
                    prop_assert!(map.contains_key(m.key.as_ref()), "{:?} in {:?}", m.key, text);
                    // A key given twice keeps its last value in serde_json's map.
                    if object.members.iter().filter(|o| o.key == m.key).count() == 1 {
                        prop_assert_eq!(&map[m.key.as_ref()], &value);
                    }
                }
                prop_assert_eq!(object.members.len() >= map.len(), true);
            }
        }

        #[test]
        fn never_disagrees_with_serde_json(text in json(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
            agrees(text.as_bytes());
            let bytes = text.as_bytes();
            agrees(&bytes[..cut.index(bytes.len() + 1)]);
            let mut mutated = bytes.to_vec();
            if !mutated.is_empty() {
                let i = flip.0.index(mutated.len());
                mutated[i] = flip.1;
                agrees(&mutated);
            }
        }
    }
}
