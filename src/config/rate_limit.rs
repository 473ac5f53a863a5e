//! A destination's `rate_limit = { events_per_second, requests_per_second, burst }` and the
//! operator's ceiling (`[limits] max_destination_events_per_second`,
//! `max_destination_requests_per_second`): read, bounded, and joined into the effective rates
//! the lanes apply ([`crate::lane`]'s token buckets).
//!
//! The ceiling is joined here, where the file's and the API's definitions are both read, so a
//! tenant cannot ask the API for more than the operator allows: the lower rate wins, and a
//! destination without `rate_limit` gets the ceiling.

use serde::Deserialize;
use serde_json::{Map, Value};

use courier_core::settings::{typed_table, Errors, LimitsConfig, RateCeiling};
use courier_sinks::config::{Bucket, RateLimit};

/// The highest rate (events or requests per second) a destination or the ceiling may name.
pub const MAX_PER_SECOND: u32 = 1_000_000;
/// The largest `burst`.
pub const MAX_BURST: u32 = 1_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    events_per_second: Option<u32>,
    requests_per_second: Option<u32>,
    burst: Option<u32>,
}

fn check(value: u32, max: u32, path: String, errors: &mut Errors) -> bool {
    if value == 0 || value > max {
        errors.push(path, format!("must be between 1 and {max} (got {value})"));
        return false;
    }
    true
}

/// The `[limits]` ceiling, bounded (errors recorded, the wrong value left out).
pub(super) fn ceiling(limits: &LimitsConfig, errors: &mut Errors) -> RateCeiling {
    let mut bounded = |value: Option<u32>, key: &str| {
        value.filter(|v| check(*v, MAX_PER_SECOND, format!("limits.{key}"), errors))
    };
    RateCeiling {
        events_per_second: bounded(
            limits.max_destination_events_per_second,
            "max_destination_events_per_second",
        ),
        requests_per_second: bounded(
            limits.max_destination_requests_per_second,
            "max_destination_requests_per_second",
        ),
    }
}

/// Reads `rate_limit` (taken out of the destination table at `prefix`) and joins the ceiling.
/// `Err(())` when it is wrong (each error recorded); `Ok(None)`: no limit at all.
pub(super) fn destination(
    table: &mut Map<String, Value>,
    prefix: &str,
    ceiling: RateCeiling,
    errors: &mut Errors,
) -> Result<Option<RateLimit>, ()> {
    let path = format!("{prefix}.rate_limit");
    let own = match table.remove("rate_limit") {
        None => None,
        Some(value) => {
            let before = errors.len();
            let raw = typed_table::<Raw>(value, &path, errors).ok_or(())?;
            if raw.events_per_second.is_none() && raw.requests_per_second.is_none() {
                errors.push(
                    path.clone(),
                    "set events_per_second, requests_per_second or both",
                );
            }
            for (key, value) in [
                ("events_per_second", raw.events_per_second),
                ("requests_per_second", raw.requests_per_second),
            ] {
                if let Some(v) = value {
                    check(v, MAX_PER_SECOND, format!("{path}.{key}"), errors);
                }
            }
            if let Some(b) = raw.burst {
                check(b, MAX_BURST, format!("{path}.burst"), errors);
            }
            if errors.len() > before {
                return Err(());
            }
            Some(raw)
        }
    };
    let burst = own.as_ref().and_then(|r| r.burst);
    let events = joined(
        own.as_ref().and_then(|r| r.events_per_second),
        burst,
        ceiling.events_per_second,
    );
    let requests = joined(
        own.as_ref().and_then(|r| r.requests_per_second),
        burst,
        ceiling.requests_per_second,
    );
    Ok((events.is_some() || requests.is_some()).then_some(RateLimit { events, requests }))
}

/// One bucket: the destination's rate under the ceiling (the ceiling alone without one); the
/// burst is one second's worth unless set, and never more than one second of the ceiling.
fn joined(own: Option<u32>, burst: Option<u32>, ceiling: Option<u32>) -> Option<Bucket> {
    let per_second = match (own, ceiling) {
        (Some(o), Some(c)) => o.min(c),
        (Some(o), None) => o,
        (None, Some(c)) => {
            return Some(Bucket {
                per_second: c,
                burst: c,
            })
        }
        (None, None) => return None,
    };
    let burst = burst.unwrap_or(per_second);
    let burst = ceiling.map_or(burst, |c| burst.min(c));
    Some(Bucket { per_second, burst })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: Value, ceiling: RateCeiling) -> (Result<Option<RateLimit>, ()>, Vec<String>) {
        let mut errors = Errors::new("f.toml");
        let mut table = Map::new();
        table.insert("rate_limit".into(), value);
        let r = destination(&mut table, "destinations[0]", ceiling, &mut errors);
        let list = errors
            .into_list()
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect();
        (r, list)
    }

    #[test]
    fn burst_defaults_to_one_second_and_the_ceiling_wins() {
        let (r, _) = read(json!({"events_per_second": 50}), RateCeiling::default());
        let b = r.unwrap().unwrap().events.unwrap();
        assert_eq!((b.per_second, b.burst), (50, 50));
        let ceiling = RateCeiling {
            events_per_second: Some(20),
            requests_per_second: Some(5),
        };
        let (r, _) = read(json!({"events_per_second": 50, "burst": 500}), ceiling);
        let limit = r.unwrap().unwrap();
        assert_eq!(
            limit.events,
            Some(Bucket {
                per_second: 20,
                burst: 20
            })
        );
        // No requests_per_second of its own: the ceiling's.
        assert_eq!(
            limit.requests,
            Some(Bucket {
                per_second: 5,
                burst: 5
            })
        );
    }

    /// The ceiling of the file binds the API's definitions (they are parsed with the file's
    /// `security`), and its own bounds are checked with the key path.
    #[test]
    fn the_files_ceiling_binds_the_apis_definitions() {
        let env = std::collections::BTreeMap::new();
        let text = "[kafka]\nbrokers = \"b:9092\"\ntopic = \"t\"\ngroup_id = \"g\"\n[limits]\nmax_destination_events_per_second = 100\n";
        let config = crate::config::parse("f.toml", text, &env).unwrap();
        let d = json!({"project": "p", "id": "a", "type": "webhook",
            "url": "https://example.com/h", "rate_limit": {"events_per_second": 5000}});
        let parsed =
            crate::config::parse_destination(d, &config.delivery, &config.security).unwrap();
        let b = parsed.rate_limit.unwrap().events.unwrap();
        assert_eq!((b.per_second, b.burst), (100, 100));
        let d =
            json!({"project": "p", "id": "b", "type": "webhook", "url": "https://example.com/h"});
        let parsed =
            crate::config::parse_destination(d, &config.delivery, &config.security).unwrap();
        assert_eq!(parsed.rate_limit.unwrap().events.unwrap().per_second, 100);
        let errors =
            crate::config::parse("f.toml", &text.replace("= 100", "= 0"), &env).unwrap_err();
        assert!(
            errors
                .to_string()
                .contains("limits.max_destination_events_per_second"),
            "{errors}"
        );
    }

    #[test]
    fn every_number_is_bounded_and_named() {
        let (r, errors) = read(
            json!({"events_per_second": 0, "requests_per_second": 2_000_000, "burst": 0}),
            RateCeiling::default(),
        );
        assert!(r.is_err());
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("destinations[0].rate_limit.events_per_second"));
        assert!(errors[1].contains("rate_limit.requests_per_second"));
        assert!(errors[2].contains("rate_limit.burst"));
        let (r, errors) = read(json!({"burst": 3}), RateCeiling::default());
        assert!(r.is_err());
        assert!(errors[0].contains("set events_per_second, requests_per_second or both"));
        let (r, errors) = read(json!({"events_per_sec": 3}), RateCeiling::default());
        assert!(r.is_err() && !errors.is_empty());
    }
}
