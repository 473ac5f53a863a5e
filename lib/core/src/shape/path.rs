//! Field paths of redaction rules (`payload.**.password`): dot-separated segments, `*` for one
//! segment, `**` for any number (none included). Array elements are segments named by their
//! index (`payload.items.0.card`, `payload.items.*.card`).
//!
//! Matching walks the event's JSON once per rule list with the set of pattern positions still
//! alive (a small NFA): a node's children are visited only while some pattern can still match
//! below it, so a rule list costs in proportion to the parts of the event it can touch.

use std::fmt;

/// Most paths in one list (`redact`, `drop` or `keep`).
pub const MAX_PATHS: usize = 64;
/// Longest path, in characters.
pub const MAX_PATH_CHARS: usize = 256;
/// Most segments in one path.
pub const MAX_PATH_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    /// `*`: exactly one segment.
    Any,
    /// `**`: zero or more segments.
    Deep,
}

/// One compiled path.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    segments: Vec<Segment>,
    text: String,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl Pattern {
    /// Compiles `text`, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text.trim().is_empty() {
            return Err("must not be empty".into());
        }
        let chars = text.chars().count();
        if chars > MAX_PATH_CHARS {
            return Err(format!(
                "is {chars} characters long; at most {MAX_PATH_CHARS} are allowed"
            ));
        }
        if text.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        let mut segments = Vec::new();
        for (i, part) in text.split('.').enumerate() {
            let segment = match part {
                "" => {
                    return Err(format!(
                        "segment {} is empty (paths are keys joined by single dots, e.g. payload.fields.Email)",
                        i + 1
                    ))
                }
                "*" => Segment::Any,
                "**" => {
                    if segments.last() == Some(&Segment::Deep) {
                        return Err("`**` follows `**`; one is enough".into());
                    }
                    Segment::Deep
                }
                p if p.contains('*') => {
                    return Err(format!(
                        "segment {p:?} mixes `*` with a name; wildcards are whole segments (`*` one, `**` any number)"
                    ))
                }
                p => Segment::Key(p.to_owned()),
            };
            segments.push(segment);
        }
        if segments.len() > MAX_PATH_DEPTH {
            return Err(format!(
                "has {} segments; at most {MAX_PATH_DEPTH} are allowed",
                segments.len()
            ));
        }
        if segments.iter().all(|s| *s == Segment::Deep) {
            return Err("`**` alone would match the whole event; name at least one key".into());
        }
        Ok(Pattern {
            segments,
            text: text.to_owned(),
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The patterns of one list and the positions still alive at a node of the event.
pub(super) struct Matcher<'a> {
    patterns: &'a [Pattern],
}

/// `(pattern, segment)` positions; short, so a vector beats a set.
pub(super) type States = Vec<(usize, usize)>;

impl<'a> Matcher<'a> {
    pub(super) fn new(patterns: &'a [Pattern]) -> Self {
        Self { patterns }
    }

    /// The positions at the event's root.
    pub(super) fn root(&self) -> States {
        let mut states: States = (0..self.patterns.len()).map(|p| (p, 0)).collect();
        self.close(&mut states);
        states
    }

    /// The positions at the child `key` of a node at `states`.
    pub(super) fn step(&self, states: &States, key: &str) -> States {
        let mut next = States::new();
        for &(p, i) in states {
            match self.patterns[p].segments.get(i) {
                Some(Segment::Key(k)) if k == key => push(&mut next, (p, i + 1)),
                Some(Segment::Any) => push(&mut next, (p, i + 1)),
                Some(Segment::Deep) => push(&mut next, (p, i)),
                _ => {}
            }
        }
        self.close(&mut next);
        next
    }

    /// Whether a pattern ends at this node.
    pub(super) fn complete(&self, states: &States) -> bool {
        states
            .iter()
            .any(|&(p, i)| i == self.patterns[p].segments.len())
    }

    /// Adds the position after each `**` (it may match nothing).
    fn close(&self, states: &mut States) {
        let mut i = 0;
        while i < states.len() {
            let (p, at) = states[i];
            if self.patterns[p].segments.get(at) == Some(&Segment::Deep) {
                push(states, (p, at + 1));
            }
            i += 1;
        }
    }
}

fn push(states: &mut States, state: (usize, usize)) {
    if !states.contains(&state) {
        states.push(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &[&str]) -> bool {
        let patterns = [Pattern::parse(pattern).unwrap()];
        let m = Matcher::new(&patterns);
        let mut states = m.root();
        for key in path {
            states = m.step(&states, key);
        }
        m.complete(&states)
    }

    #[test]
    fn literal_star_and_deep_segments() {
        assert!(matches(
            "payload.fields.Email",
            &["payload", "fields", "Email"]
        ));
        assert!(!matches(
            "payload.fields.Email",
            &["payload", "fields", "email"]
        ));
        assert!(!matches("payload.fields.Email", &["payload", "fields"]));
        assert!(matches("payload.*.Email", &["payload", "x", "Email"]));
        assert!(!matches("payload.*.Email", &["payload", "Email"]));
        assert!(!matches("payload.*.Email", &["payload", "x", "y", "Email"]));
        assert!(matches("payload.**.password", &["payload", "password"]));
        assert!(matches(
            "payload.**.password",
            &["payload", "a", "b", "0", "password"]
        ));
        assert!(!matches("payload.**.password", &["message", "password"]));
        assert!(!matches(
            "payload.**.password",
            &["payload", "password", "x"]
        ));
        assert!(matches("**.token", &["a", "token"]));
        assert!(matches("**.token", &["token"]));
        assert!(matches("payload.**", &["payload", "a", "b"]));
        assert!(matches("payload.**", &["payload"]));
        assert!(matches(
            "payload.items.*.card",
            &["payload", "items", "3", "card"]
        ));
    }

    #[test]
    fn refuses_malformed_paths_saying_why() {
        for (path, says) in [
            ("", "empty"),
            ("payload..x", "segment 2 is empty"),
            (".x", "segment 1 is empty"),
            ("payload.pass*", "wildcards are whole segments"),
            ("a.**.**.b", "`**` follows `**`"),
            ("**", "whole event"),
            ("a\u{7}b", "control"),
        ] {
            let error = Pattern::parse(path).unwrap_err();
            assert!(error.contains(says), "{path:?}: {error}");
        }
        let deep = vec!["a"; MAX_PATH_DEPTH + 1].join(".");
        assert!(Pattern::parse(&deep).unwrap_err().contains("segments"));
        let long = "a".repeat(MAX_PATH_CHARS + 1);
        assert!(Pattern::parse(&long).unwrap_err().contains("characters"));
        assert!(Pattern::parse(&vec!["a"; MAX_PATH_DEPTH].join(".")).is_ok());
    }
}
