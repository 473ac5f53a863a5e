//! `sample = { DEBUG = 0.1, INFO = 0.5 }`: a destination keeps that fraction of each level's
//! events. Which events is decided by a hash of the event's id, not by chance, so every
//! replica and every replay of the same events keeps the same ones.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::event::{Field, Level};

/// The fraction kept per level; a level not named keeps everything.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Indexed by `Level as usize` order: DEBUG, INFO, WARN, ERROR.
    keep: [f64; 4],
}

fn index(level: Level) -> usize {
    match level {
        Level::Debug => 0,
        Level::Info => 1,
        Level::Warn => 2,
        Level::Error => 3,
    }
}

impl Sample {
    /// Reads the table; errors are `(key, message)` with the key relative to `sample`.
    pub fn from_table(table: &BTreeMap<String, f64>) -> Result<Sample, Vec<(String, String)>> {
        let mut keep = [1.0; 4];
        let mut errors = Vec::new();
        for (name, &fraction) in table {
            let Some(level) = Level::parse(name) else {
                errors.push((
                    crate::settings::key_segment(name).into_owned(),
                    "is not a level; expected DEBUG, INFO, WARN or ERROR".into(),
                ));
                continue;
            };
            if !(0.0..=1.0).contains(&fraction) {
                errors.push((
                    level.as_str().to_owned(),
                    format!("{fraction} is not a fraction between 0 and 1"),
                ));
                continue;
            }
            keep[index(level)] = fraction;
        }
        if errors.is_empty() {
            Ok(Sample { keep })
        } else {
            Err(errors)
        }
    }

    /// Whether the sample keeps everything (then it is not applied at all).
    pub fn keeps_all(&self) -> bool {
        self.keep.iter().all(|&f| f >= 1.0)
    }

    /// Whether the event with these bytes is kept. `fallback_id` names an event without a
    /// string `id` (its topic, partition and offset). Events without a known level are kept.
    pub fn keeps(&self, raw: &[u8], fallback_id: impl FnOnce() -> String) -> bool {
        #[derive(Deserialize)]
        struct Fields<'a> {
            #[serde(borrow, default)]
            id: Field<'a>,
            #[serde(borrow, default)]
            level: Field<'a>,
        }
        let Ok(fields) = serde_json::from_slice::<Fields<'_>>(raw) else {
            return true;
        };
        let Some(level) = fields.level.get().and_then(Level::parse) else {
            return true;
        };
        let fraction = self.keep[index(level)];
        if fraction >= 1.0 {
            return true;
        }
        match fields.id.get() {
            Some(id) => kept_id(id, fraction),
            None => kept_id(&fallback_id(), fraction),
        }
    }
}

/// Whether an event with `id` falls in the kept `fraction`: the first 8 bytes of SHA-256 of
/// the id, as a number in [0, 1), below the fraction.
pub fn kept_id(id: &str, fraction: f64) -> bool {
    let digest = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 53 bits: exactly representable in an f64.
    let position = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
    position < fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pairs: &[(&str, f64)]) -> Sample {
        let table = pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        Sample::from_table(&table).unwrap()
    }

    #[test]
    fn keeps_the_fraction_by_id_and_the_same_ids_every_time() {
        let s = sample(&[("DEBUG", 0.1), ("info", 0.5)]);
        let event = |i: usize, level: &str| format!(r#"{{"id":"evt-{i}","level":"{level}"}}"#);
        let kept = |level: &str| -> Vec<usize> {
            (0..10_000)
                .filter(|&i| s.keeps(event(i, level).as_bytes(), || unreachable!()))
                .collect()
        };
        let debug = kept("DEBUG");
        let info = kept("INFO");
        assert!((900..1100).contains(&debug.len()), "{}", debug.len());
        assert!((4800..5200).contains(&info.len()), "{}", info.len());
        assert_eq!(kept("DEBUG"), debug, "the same ids every time");
        // Nested: what 10 % keeps, 50 % keeps too (the same hash position).
        assert!(debug.iter().all(|i| info.contains(i)));
        assert_eq!(kept("WARN").len(), 10_000);
        assert_eq!(kept("ERROR").len(), 10_000);
    }

    #[test]
    fn edges_and_events_without_id_or_level() {
        let none = sample(&[("INFO", 0.0)]);
        assert!(!none.keeps(br#"{"id":"a","level":"INFO"}"#, || unreachable!()));
        assert!(none.keeps(br#"{"id":"a"}"#, || unreachable!()));
        assert!(none.keeps(br#"{"id":"a","level":"TRACE"}"#, || unreachable!()));
        assert!(none.keeps(b"not json", || unreachable!()));
        let half = sample(&[("INFO", 0.5)]);
        let by_position = |p: i64| half.keeps(br#"{"level":"INFO"}"#, || format!("t/0/{p}"));
        let kept = (0..1000).filter(|&p| by_position(p)).count();
        assert!((400..600).contains(&kept), "{kept}");
        assert!(sample(&[("INFO", 1.0)]).keeps_all());
        assert!(!half.keeps_all());
    }

    #[test]
    fn refuses_unknown_levels_and_fractions_out_of_range() {
        let table = [("TRACE".to_owned(), 0.5), ("INFO".to_owned(), 1.5)]
            .into_iter()
            .collect();
        let errors = Sample::from_table(&table).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors
            .iter()
            .any(|(k, m)| k == "TRACE" && m.contains("not a level")));
        assert!(errors
            .iter()
            .any(|(k, m)| k == "INFO" && m.contains("between 0 and 1")));
    }
}
