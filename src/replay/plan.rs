//! `--from-failures`: the delivery-failure events of a range of the failures topic, read back
//! into exactly what to re-deliver — which events, from where, to which destination.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

/// The events one failure event reports: a source range and, when listed, their ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRange {
    /// The destination's project.
    pub project: String,
    /// The destination's id.
    pub destination: String,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// First offset of the range.
    pub first: i64,
    /// Last offset of the range (inclusive, as in the failure event).
    pub last: i64,
    /// The failed events' ids; `None` means every event of the range routed to the
    /// destination.
    pub ids: Option<HashSet<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Failure {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: Option<String>,
    destination_id: Option<String>,
    payload: Option<Payload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    source: Option<Source>,
    event_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    topic: String,
    partition: i32,
    first_offset: i64,
    last_offset: i64,
}

/// Reads one failures-topic message. `None` for anything that is not a delivery-failure
/// event about a destination (unroutable events, state changes, other Event Logs).
pub fn failed_range(bytes: &[u8]) -> Option<FailedRange> {
    let f: Failure = serde_json::from_slice(bytes).ok()?;
    if f.kind.as_deref() != Some(crate::event::FAILURE_EVENT_TYPE) {
        return None;
    }
    let payload = f.payload?;
    let source = payload.source?;
    if source.first_offset > source.last_offset {
        return None;
    }
    Some(FailedRange {
        project: f.project_id?,
        destination: f.destination_id?,
        topic: source.topic,
        partition: source.partition,
        first: source.first_offset,
        last: source.last_offset,
        ids: payload.event_ids.map(|ids| ids.into_iter().collect()),
    })
}

/// A destination an event is replayed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The destination's project.
    pub project: &'a str,
    /// The destination's id.
    pub destination: &'a str,
    /// Whether the failure event listed the event's id; when not (a failure event written
    /// without its id list), only its source range names the event, and the destination's
    /// filter decides.
    pub listed: bool,
}

/// Failed ranges grouped by source partition, each partition's read span `[start, end)`.
#[derive(Debug, Default)]
pub struct Plan {
    /// Ranges by partition.
    pub by_partition: BTreeMap<i32, Vec<FailedRange>>,
}

impl Plan {
    /// Adds a failed range.
    pub fn add(&mut self, range: FailedRange) {
        self.by_partition
            .entry(range.partition)
            .or_default()
            .push(range);
    }

    /// The offsets to read per partition, `(partition, start, end)`.
    pub fn spans(&self) -> Vec<(i32, i64, i64)> {
        self.by_partition
            .iter()
            .map(|(&p, ranges)| {
                let start = ranges.iter().map(|r| r.first).min().unwrap_or(0);
                let end = ranges.iter().map(|r| r.last + 1).max().unwrap_or(0);
                (p, start, end)
            })
            .collect()
    }

    /// The destinations an event read at `(partition, offset)`, with reported id `id` (see
    /// [`crate::failures::size::reported_id`]) and `projectId` `project`, goes to: those of
    /// the failure events whose source range holds it, whose project is the event's own (an
    /// id can collide with another project's event: a replay never delivers an event to a
    /// destination of another project), and that list its id — or list no ids, in which case
    /// the event must also be one the destination's filter takes (`routed`).
    pub fn targets<'a>(
        &'a self,
        partition: i32,
        offset: i64,
        id: &'a str,
        project: &'a str,
    ) -> impl Iterator<Item = Target<'a>> + 'a {
        self.by_partition
            .get(&partition)
            .into_iter()
            .flatten()
            .filter(move |r| {
                r.first <= offset
                    && offset <= r.last
                    && r.project == project
                    && r.ids.as_ref().is_none_or(|ids| ids.contains(id))
            })
            .map(|r| Target {
                project: &r.project,
                destination: &r.destination,
                listed: r.ids.is_some(),
            })
    }

    /// Whether there is nothing to replay.
    pub fn is_empty(&self) -> bool {
        self.by_partition.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILURE: &str = r#"{"id":"fail_1","type":"EVENT_DESTINATION","level":"ERROR",
        "projectId":"proj_a","destinationId":"hook-1","destinationType":"webhook",
        "error":{"kind":"http_status","httpStatus":400},
        "payload":{"count":2,"source":{"topic":"event-logs","partition":2,"firstOffset":10,"lastOffset":14},
                   "eventIds":["e10","e14"]}}"#;

    #[test]
    fn reads_delivery_failures_only() {
        let r = failed_range(FAILURE.as_bytes()).unwrap();
        assert_eq!(
            (
                r.project.as_str(),
                r.destination.as_str(),
                r.partition,
                r.first,
                r.last
            ),
            ("proj_a", "hook-1", 2, 10, 14)
        );
        assert_eq!(r.ids.as_ref().unwrap().len(), 2);
        let unroutable = r#"{"type":"EVENT_DESTINATION","message":"Event could not be routed: x",
            "payload":{"count":1,"source":{"topic":"t","partition":0,"firstOffset":3,"lastOffset":3}}}"#;
        assert_eq!(failed_range(unroutable.as_bytes()), None, "no destination");
        let state = r#"{"type":"EVENT_DESTINATION","projectId":"p","destinationId":"d","payload":{"state":"failing"}}"#;
        assert_eq!(failed_range(state.as_bytes()), None);
        assert_eq!(
            failed_range(br#"{"type":"APP_EVENT","projectId":"p"}"#),
            None
        );
        assert_eq!(failed_range(b"not json"), None);
    }

    #[test]
    fn plan_targets_exactly_the_listed_events() {
        let mut plan = Plan::default();
        plan.add(failed_range(FAILURE.as_bytes()).unwrap());
        assert_eq!(plan.spans(), vec![(2, 10, 15)]);
        assert_eq!(
            plan.targets(2, 10, "e10", "proj_a").collect::<Vec<_>>(),
            vec![Target {
                project: "proj_a",
                destination: "hook-1",
                listed: true
            }]
        );
        assert_eq!(
            plan.targets(2, 12, "e12", "proj_a").count(),
            0,
            "not a failed event"
        );
        assert_eq!(
            plan.targets(2, 15, "e14", "proj_a").count(),
            0,
            "outside the range"
        );
        assert_eq!(
            plan.targets(1, 10, "e10", "proj_a").count(),
            0,
            "other partition"
        );
    }

    /// An event of another project whose id collides with a listed one (ids are chosen by
    /// whoever emits the events) is never delivered to the failure event's destination.
    #[test]
    fn an_event_of_another_project_with_a_colliding_id_is_not_a_target() {
        let mut plan = Plan::default();
        plan.add(failed_range(FAILURE.as_bytes()).unwrap());
        assert_eq!(plan.targets(2, 14, "e14", "proj_b").count(), 0);
        assert_eq!(plan.targets(2, 14, "e14", "proj_a").count(), 1);
        // Without an id list, the range alone would take any project's event.
        let bare = r#"{"type":"EVENT_DESTINATION","projectId":"proj_a","destinationId":"hook-1",
            "payload":{"count":5,"source":{"topic":"event-logs","partition":2,"firstOffset":10,"lastOffset":14}}}"#;
        let mut plan = Plan::default();
        plan.add(failed_range(bare.as_bytes()).unwrap());
        assert_eq!(plan.targets(2, 11, "x", "proj_b").count(), 0);
        let t: Vec<_> = plan.targets(2, 11, "x", "proj_a").collect();
        assert_eq!(t.len(), 1);
        assert!(!t[0].listed, "the range alone names it");
    }
}
