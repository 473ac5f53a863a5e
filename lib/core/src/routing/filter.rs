//! Destination filters: the dimensions of the Event Logs view, compiled once per destination.

use chrono::{DateTime, Utc};
use memchr::memmem;
use serde::Deserialize;

use crate::event::{Level, RoutingFields};

/// `[destinations.filter]` as written in the configuration. Every condition given must hold;
/// a list matches any of its members; an empty filter matches every event.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Lowest level that matches.
    pub min_level: Option<Level>,
    /// Levels that match (alternative to `min_level`).
    pub levels: Option<Vec<Level>>,
    /// Event types (`type`).
    pub types: Vec<String>,
    /// `endUserId` values.
    pub end_user_ids: Vec<String>,
    /// `integrationId` values.
    pub integration_ids: Vec<String>,
    /// `traceId` values.
    pub trace_ids: Vec<String>,
    /// `eventName` values.
    pub event_names: Vec<String>,
    /// Start of the time window on the event timestamp (inclusive).
    pub since: Option<DateTime<Utc>>,
    /// End of the time window (exclusive).
    pub until: Option<DateTime<Utc>>,
    /// Case-sensitive substring of the event's JSON text.
    pub search: Option<String>,
}

impl FilterConfig {
    /// Checks combinations serde cannot: returns the offending key and the reason.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.min_level.is_some() && self.levels.is_some() {
            return Err((
                "levels",
                "give either min_level or levels, not both".to_owned(),
            ));
        }
        if self.levels.as_ref().is_some_and(Vec::is_empty) {
            return Err((
                "levels",
                "an empty list would match nothing; remove the key to match every level".to_owned(),
            ));
        }
        if let (Some(since), Some(until)) = (self.since, self.until) {
            if since >= until {
                return Err(("until", "must be later than since".to_owned()));
            }
        }
        if self.search.as_deref() == Some("") {
            return Err(("search", "must not be empty".to_owned()));
        }
        Ok(())
    }

    /// Compiles the filter for the hot path.
    pub fn compile(&self) -> Filter {
        let levels = match (&self.min_level, &self.levels) {
            (Some(min), _) => Some(
                [Level::Debug, Level::Info, Level::Warn, Level::Error]
                    .iter()
                    .filter(|l| *l >= min)
                    .fold(0u8, |mask, l| mask | bit(*l)),
            ),
            (None, Some(list)) => Some(list.iter().fold(0u8, |mask, l| mask | bit(*l))),
            (None, None) => None,
        };
        Filter {
            levels,
            types: self.types.clone(),
            end_user_ids: self.end_user_ids.clone(),
            integration_ids: self.integration_ids.clone(),
            trace_ids: self.trace_ids.clone(),
            event_names: self.event_names.clone(),
            since_ms: self.since.map(|t| t.timestamp_millis()),
            until_ms: self.until.map(|t| t.timestamp_millis()),
            search: self
                .search
                .as_ref()
                .map(|s| memmem::Finder::new(s.as_bytes()).into_owned()),
        }
    }
}

fn bit(level: Level) -> u8 {
    1 << (level as u8)
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Bit mask of matching levels; `None` when the filter has no level condition.
    levels: Option<u8>,
    types: Vec<String>,
    end_user_ids: Vec<String>,
    integration_ids: Vec<String>,
    trace_ids: Vec<String>,
    event_names: Vec<String>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    search: Option<memmem::Finder<'static>>,
}

fn member(list: &[String], value: Option<&str>) -> bool {
    list.is_empty() || value.is_some_and(|v| list.iter().any(|m| m == v))
}

impl Filter {
    /// Whether the event matches. `raw` is the event's JSON text; `kafka_timestamp_ms` stands
    /// in for a missing or unreadable `timestamp` in the time window.
    pub fn matches(
        &self,
        fields: &RoutingFields<'_>,
        raw: &[u8],
        kafka_timestamp_ms: Option<i64>,
    ) -> bool {
        if let Some(mask) = self.levels {
            match fields.level.get().and_then(Level::parse) {
                Some(level) if mask & bit(level) != 0 => {}
                _ => return false,
            }
        }
        if !(member(&self.types, fields.kind.get())
            && member(&self.end_user_ids, fields.end_user_id.get())
            && member(&self.integration_ids, fields.integration_id.get())
            && member(&self.trace_ids, fields.trace_id.get())
            && member(&self.event_names, fields.event_name.get()))
        {
            return false;
        }
        if self.since_ms.is_some() || self.until_ms.is_some() {
            let ts = fields
                .timestamp
                .get()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp_millis())
                .or(kafka_timestamp_ms);
            let Some(ts) = ts else { return false };
            if self.since_ms.is_some_and(|s| ts < s) || self.until_ms.is_some_and(|u| ts >= u) {
                return false;
            }
        }
        if let Some(finder) = &self.search {
            if finder.find(raw).is_none() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{decode, Decoded};

    fn check(filter: &str, event: &str) -> bool {
        let config: FilterConfig = toml_filter(filter);
        let Decoded::Routable(fields) = decode(Some(event.as_bytes()), 1 << 20) else {
            panic!("test event must be routable: {event}")
        };
        config.compile().matches(&fields, event.as_bytes(), None)
    }

    fn toml_filter(text: &str) -> FilterConfig {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        serde_json::from_value(value).unwrap()
    }

    const EV: &str = r#"{"projectId":"p","level":"WARN","type":"APP_EVENT","endUserId":"u1","integrationId":"salesforce","traceId":"t1","eventName":"Contact Created","timestamp":"2026-06-01T12:00:00.000Z","payload":{"recordId":"rec_42"}}"#;

    #[test]
    fn empty_filter_matches_everything() {
        assert!(check("{}", EV));
        assert!(check("{}", r#"{"projectId":"p"}"#));
    }

    #[test]
    fn levels() {
        assert!(check(r#"{"min_level":"WARN"}"#, EV));
        assert!(check(r#"{"min_level":"info"}"#, EV));
        assert!(!check(r#"{"min_level":"ERROR"}"#, EV));
        assert!(check(r#"{"levels":["ERROR","WARN"]}"#, EV));
        assert!(!check(r#"{"levels":["DEBUG"]}"#, EV));
        // lower-case level in the event is upper-cased before comparing
        assert!(check(
            r#"{"min_level":"WARN"}"#,
            &EV.replace("\"WARN\"", "\"warn\"")
        ));
        // a level filter needs a level
        assert!(!check(r#"{"min_level":"DEBUG"}"#, r#"{"projectId":"p"}"#));
        assert!(!check(
            r#"{"min_level":"DEBUG"}"#,
            &EV.replace("\"WARN\"", "\"LOUD\"")
        ));
    }

    #[test]
    fn list_dimensions() {
        assert!(check(r#"{"types":["X","APP_EVENT"]}"#, EV));
        assert!(!check(r#"{"types":["WEBHOOK_TRIGGER"]}"#, EV));
        assert!(check(r#"{"end_user_ids":["u1"]}"#, EV));
        assert!(!check(r#"{"end_user_ids":["u2"]}"#, EV));
        assert!(check(r#"{"integration_ids":["salesforce"]}"#, EV));
        assert!(!check(r#"{"integration_ids":["hubspot"]}"#, EV));
        assert!(check(r#"{"trace_ids":["t1"]}"#, EV));
        assert!(!check(r#"{"trace_ids":["t2"]}"#, EV));
        assert!(check(r#"{"event_names":["Contact Created"]}"#, EV));
        assert!(!check(r#"{"event_names":["Contact Deleted"]}"#, EV));
        // list filters need the field present
        assert!(!check(r#"{"trace_ids":["t1"]}"#, r#"{"projectId":"p"}"#));
        // an empty list is no condition
        assert!(check(r#"{"trace_ids":[]}"#, r#"{"projectId":"p"}"#));
    }

    #[test]
    fn time_window_is_half_open() {
        assert!(check(r#"{"since":"2026-06-01T12:00:00Z"}"#, EV));
        assert!(!check(r#"{"since":"2026-06-01T12:00:00.001Z"}"#, EV));
        assert!(!check(r#"{"until":"2026-06-01T12:00:00Z"}"#, EV));
        assert!(check(r#"{"until":"2026-06-01T12:00:00.001Z"}"#, EV));
        assert!(check(
            r#"{"since":"2026-01-01T00:00:00+02:00","until":"2027-01-01T00:00:00Z"}"#,
            EV
        ));
    }

    #[test]
    fn time_window_falls_back_to_kafka_timestamp() {
        let f = toml_filter(r#"{"since":"2026-06-01T00:00:00Z"}"#).compile();
        let raw = br#"{"projectId":"p"}"#;
        let Decoded::Routable(fields) = decode(Some(raw), 1024) else {
            panic!()
        };
        let june = DateTime::parse_from_rfc3339("2026-06-02T00:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert!(f.matches(&fields, raw, Some(june)));
        assert!(!f.matches(&fields, raw, Some(june - 2 * 86_400_000)));
        assert!(!f.matches(&fields, raw, None));
    }

    #[test]
    fn search_is_a_case_sensitive_substring_of_the_json() {
        assert!(check(r#"{"search":"rec_42"}"#, EV));
        assert!(!check(r#"{"search":"REC_42"}"#, EV));
        assert!(check(r#"{"search":"\"recordId\":\"rec_42\""}"#, EV));
    }

    #[test]
    fn all_conditions_must_hold() {
        assert!(check(
            r#"{"min_level":"WARN","types":["APP_EVENT"],"search":"rec_42"}"#,
            EV
        ));
        assert!(!check(
            r#"{"min_level":"WARN","types":["APP_EVENT"],"search":"rec_43"}"#,
            EV
        ));
    }

    #[test]
    fn validation() {
        assert!(toml_filter(r#"{"min_level":"WARN","levels":["INFO"]}"#)
            .validate()
            .is_err());
        assert!(toml_filter(r#"{"levels":[]}"#).validate().is_err());
        assert!(
            toml_filter(r#"{"since":"2027-01-01T00:00:00Z","until":"2026-01-01T00:00:00Z"}"#)
                .validate()
                .is_err()
        );
        let err = serde_json::from_str::<FilterConfig>(r#"{"min_level":"WARNING"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r#"unknown level "WARNING"; expected DEBUG, INFO, WARN or ERROR"#),
            "{err}"
        );
    }
}
