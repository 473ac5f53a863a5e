//! Routing: which destinations receive an event. A hash lookup by project, then that project's
//! filters; the cost does not grow with the number of projects.

mod filter;

use std::collections::HashMap;

pub use filter::{Filter, FilterConfig};

use crate::event::{decode, Decoded, RoutingFields};

/// One enabled destination of a project.
#[derive(Debug, Clone)]
struct Route {
    /// Index of the destination's lane.
    lane: usize,
    destination_id: String,
    filter: Filter,
}

/// Destinations indexed by project.
#[derive(Debug, Default, Clone)]
pub struct Router {
    by_project: HashMap<String, Vec<Route>>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a destination of `project`, delivered through lane `lane`.
    pub fn add(&mut self, project: &str, destination_id: &str, filter: &FilterConfig, lane: usize) {
        self.by_project
            .entry(project.to_owned())
            .or_default()
            .push(Route {
                lane,
                destination_id: destination_id.to_owned(),
                filter: filter.compile(),
            });
    }

    /// The step every message read goes through — the source's, and a replay's, so a replay
    /// routes exactly as the live delivery did: decodes the message value and, when it is
    /// routable, puts the lanes it goes to in `targets` (cleared first). What becomes of an
    /// unroutable message, and of the targets, is the caller's.
    pub fn decode_and_route<'a>(
        &self,
        payload: Option<&'a [u8]>,
        max_event_bytes: usize,
        kafka_timestamp_ms: Option<i64>,
        targets: &mut Vec<usize>,
    ) -> Decoded<'a> {
        targets.clear();
        let decoded = decode(payload, max_event_bytes);
        if let Decoded::Routable(fields) = &decoded {
            self.route(
                fields,
                payload.unwrap_or_default(),
                kafka_timestamp_ms,
                |lane| targets.push(lane),
            );
        }
        decoded
    }

    /// Calls `deliver(lane)` for every destination the event goes to. A delivery-failure
    /// event never goes to the destination it reports on.
    pub fn route(
        &self,
        fields: &RoutingFields<'_>,
        raw: &[u8],
        kafka_timestamp_ms: Option<i64>,
        mut deliver: impl FnMut(usize),
    ) {
        let Some(project) = fields.project_id.get() else {
            return;
        };
        let Some(routes) = self.by_project.get(project) else {
            return;
        };
        let reports_on = if fields.is_failure_event() {
            fields.destination_id.get()
        } else {
            None
        };
        for route in routes {
            if reports_on == Some(route.destination_id.as_str()) {
                continue;
            }
            if route.filter.matches(fields, raw, kafka_timestamp_ms) {
                deliver(route.lane);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{decode, Decoded};

    fn lanes(router: &Router, raw: &str) -> Vec<usize> {
        let Decoded::Routable(fields) = decode(Some(raw.as_bytes()), 1 << 20) else {
            panic!()
        };
        let mut out = Vec::new();
        router.route(&fields, raw.as_bytes(), None, |l| out.push(l));
        out
    }

    #[test]
    fn routes_by_project_and_filter() {
        let mut r = Router::new();
        let errors_only: FilterConfig = serde_json::from_str(r#"{"min_level":"ERROR"}"#).unwrap();
        r.add("a", "all", &FilterConfig::default(), 0);
        r.add("a", "errors", &errors_only, 1);
        r.add("b", "all", &FilterConfig::default(), 2);
        assert_eq!(lanes(&r, r#"{"projectId":"a","level":"INFO"}"#), vec![0]);
        assert_eq!(
            lanes(&r, r#"{"projectId":"a","level":"ERROR"}"#),
            vec![0, 1]
        );
        assert_eq!(lanes(&r, r#"{"projectId":"b"}"#), vec![2]);
        assert!(lanes(&r, r#"{"projectId":"c"}"#).is_empty());
    }

    #[test]
    fn failure_events_skip_the_destination_they_report_on() {
        let mut r = Router::new();
        r.add("a", "hook-1", &FilterConfig::default(), 0);
        r.add("a", "hook-2", &FilterConfig::default(), 1);
        let failure = r#"{"projectId":"a","type":"EVENT_DESTINATION","destinationId":"hook-1"}"#;
        assert_eq!(lanes(&r, failure), vec![1]);
        // an ordinary event that happens to carry destinationId is routed normally
        let ordinary = r#"{"projectId":"a","type":"APP_EVENT","destinationId":"hook-1"}"#;
        assert_eq!(lanes(&r, ordinary), vec![0, 1]);
    }
}
