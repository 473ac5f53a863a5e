//! The shaping keys of a destination table (`redact`, `drop`, `keep`, `redact_with`,
//! `redact_key`, `sample`, `daily_cap`) and the operator's `[redact]` section: read, checked (errors name
//! the key path, never a key's value), and compiled into what the lanes apply
//! ([`courier_core::shape`]).
//!
//! Kept apart from the destination loader because every type shares these keys, and because
//! the operator's rules are joined here to each destination's, for the file's and the API's
//! definitions alike: that join is what makes them impossible to remove through the API.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use courier_core::daily_cap::DailyCap;
use courier_core::settings::{typed_table, Errors};
use courier_core::shape::{Rules, RulesConfig, Sample, Shaper, KEYS};

/// Takes the keys this module reads out of a destination table.
pub(super) fn take_keys(table: &mut Map<String, Value>) -> Map<String, Value> {
    let names: Vec<String> = table
        .keys()
        .filter(|k| KEYS.contains(&k.as_str()) || *k == "sample")
        .cloned()
        .collect();
    names
        .into_iter()
        .filter_map(|k| table.remove(&k).map(|v| (k, v)))
        .collect()
}

/// A destination's shaping, with the operator's rules (`operator`, from `[redact]`) joined.
pub(super) struct Shaping {
    pub shape: Option<Arc<Shaper>>,
    pub sample: Option<Sample>,
}

/// Reads the shaping keys taken out of a destination table at `prefix`. `None` when any is
/// wrong (each error recorded).
pub(super) fn destination(
    mut keys: Map<String, Value>,
    prefix: &str,
    operator: Option<&Rules>,
    errors: &mut Errors,
) -> Option<Shaping> {
    let before = errors.len();
    let sample = keys.remove("sample").and_then(|v| {
        let path = format!("{prefix}.sample");
        let table = typed_table::<BTreeMap<String, f64>>(v, &path, errors)?;
        Sample::from_table(&table)
            .map_err(|list| {
                for (key, message) in list {
                    errors.push(format!("{path}.{key}"), message);
                }
            })
            .ok()
    });
    let rules = if keys.is_empty() {
        None
    } else {
        let (config, _) =
            super::destination::typed_lenient::<RulesConfig>(Ok(keys), prefix, errors);
        config.and_then(|c| compiled(&c, prefix, errors))
    };
    if errors.len() > before {
        return None;
    }
    Some(Shaping {
        shape: Shaper::new(rules, operator),
        sample: sample.filter(|s| !s.keeps_all()),
    })
}

/// The operator's `[redact]` section: `None` when absent, wrong (errors recorded) or empty.
pub(super) fn operator(value: Option<Value>, errors: &mut Errors) -> Option<Rules> {
    let config = typed_table::<RulesConfig>(value?, "redact", errors)?;
    compiled(&config, "redact", errors).filter(|r| !r.is_empty())
}

fn compiled(config: &RulesConfig, prefix: &str, errors: &mut Errors) -> Option<Rules> {
    config
        .compile()
        .map_err(|list| {
            for (key, message) in list {
                errors.push(format!("{prefix}.{key}"), message);
            }
        })
        .ok()
}

/// A destination's `daily_cap` table at `prefix`; `None` when wrong (each error recorded).
pub(super) fn daily_cap(value: Value, prefix: &str, errors: &mut Errors) -> Option<DailyCap> {
    let path = format!("{prefix}.daily_cap");
    let cap = typed_table::<DailyCap>(value, &path, errors)?;
    let problems = cap.check();
    for (key, message) in &problems {
        let at = if key.is_empty() {
            path.clone()
        } else {
            format!("{path}.{key}")
        };
        errors.push(at, message.clone());
    }
    problems.is_empty().then_some(cap)
}
