//! The send loop of a batch that takes several requests, halving a request the destination
//! refuses as too large (HTTP 413).
//!
//! Datadog and Splunk HEC both keep a batch's requests in one framed body ([`super::parts`]),
//! send them one by one, send a refused request's events again in two halves, stop sending
//! once an answer says the rest would fail the same way, and merge the requests' outcomes into
//! the batch's. They differ only in what else an answer can mean (Splunk HEC: an ackId to
//! confirm later, an invalid event at an index): that is the `other` closure of [`send`],
//! so the loop itself is written once.

use std::future::Future;
use std::ops::Range;

use bytes::Bytes;

use crate::{DeliveryError, Outcome, RejectScope};

/// What one request's answer means to the loop.
#[derive(Debug)]
pub enum Answer<T> {
    /// Refused as too large: send its events again in two halves.
    Split,
    /// The outcome of the request's events.
    Outcome(Outcome),
    /// A sink-specific answer, turned into outcomes by the sink's `other` closure.
    Other(T),
}

/// The outcomes of a batch's requests so far, by the events each covered.
pub type Results = Vec<(Range<usize>, Outcome)>;

/// Sends the requests of an encoded batch `body` of `events` events and returns their
/// outcomes (merge them with [`merge`] once the sink is done with them), or the batch's
/// outcome when the encoding cannot be used at all.
///
/// - `reencode` encodes the whole batch again (only when `body` does not belong to the events;
///   never expected);
/// - `encode` encodes the request for a range of the events (the halves of a refused request);
/// - `post` sends one body carrying a range of the events;
/// - `other` records what a sink-specific answer means for the range;
/// - `destination` and `unit` name the service and what it counts, for the log line.
#[allow(clippy::too_many_arguments)]
pub async fn send<T, Fut>(
    body: &Bytes,
    events: usize,
    reencode: impl FnOnce() -> Option<Bytes>,
    mut encode: impl FnMut(Range<usize>) -> Result<Bytes, DeliveryError>,
    mut post: impl FnMut(Bytes, Range<usize>) -> Fut,
    mut other: impl FnMut(Range<usize>, T, &mut Results),
    destination: &str,
    unit: &str,
) -> Result<Results, Outcome>
where
    Fut: Future<Output = Answer<T>>,
{
    // Requests still to send, last first; `None` bodies are halves of a refused request.
    let mut work = super::parts::work(body, events, reencode)?;
    let mut results: Results = Vec::new();
    let mut stopped: Option<Outcome> = None;
    while let Some((range, body)) = work.pop() {
        if let Some(outcome) = &stopped {
            results.push((range, outcome.clone()));
            continue;
        }
        let body = match body {
            Some(b) => b,
            None => match encode(range.clone()) {
                Ok(b) => b,
                Err(error) => {
                    results.push((
                        range,
                        Outcome::Rejected {
                            error,
                            scope: RejectScope::Data,
                        },
                    ));
                    continue;
                }
            },
        };
        match post(body, range.clone()).await {
            Answer::Split => {
                tracing::info!(
                    count = range.len(),
                    unit,
                    "{destination} refused a request as too large (413); sending it in two halves"
                );
                let mid = range.start + range.len() / 2;
                work.push((mid..range.end, None));
                work.push((range.start..mid, None));
            }
            Answer::Other(answer) => other(range, answer, &mut results),
            Answer::Outcome(outcome) => {
                if stops_the_batch(&outcome) {
                    stopped = Some(outcome.clone());
                }
                results.push((range, outcome));
            }
        }
    }
    Ok(results)
}

/// Merges the outcomes of a batch's requests: one request's outcome as is; all retried as one
/// retry (nothing was accepted, the same encoded batch is sent again); else one part per
/// request.
pub fn merge(mut results: Results) -> Outcome {
    if results.len() == 1 {
        return results.pop().map(|(_, o)| o).unwrap_or(Outcome::Delivered);
    }
    if results
        .iter()
        .all(|(_, o)| matches!(o, Outcome::Retry { .. }))
    {
        let retry_after = results
            .iter()
            .filter_map(|(_, o)| match o {
                Outcome::Retry { retry_after, .. } => *retry_after,
                _ => None,
            })
            .max();
        if let Some((_, Outcome::Retry { error, .. })) = results.into_iter().next() {
            return Outcome::Retry { error, retry_after };
        }
        unreachable!("checked above");
    }
    results.sort_by_key(|(r, _)| r.start);
    Outcome::Partial(results)
}

/// Whether the requests after this outcome would fail the same way (the destination is
/// throttling, down or refusing the credentials): they are then not sent and share it.
pub fn stops_the_batch(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Retry { .. }
            | Outcome::Rejected {
                scope: RejectScope::Destination,
                ..
            }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::status_error;
    use std::time::Duration;

    fn retry(secs: u64) -> Outcome {
        Outcome::Retry {
            error: status_error(503, b""),
            retry_after: Some(Duration::from_secs(secs)),
        }
    }

    #[test]
    fn merges_request_outcomes() {
        assert_eq!(merge(vec![(0..5, Outcome::Delivered)]), Outcome::Delivered);
        assert_eq!(merge(vec![(0..2, retry(1)), (2..5, retry(3))]), retry(3));
        let rejected = Outcome::Rejected {
            error: status_error(400, b""),
            scope: RejectScope::Data,
        };
        assert_eq!(
            merge(vec![(2..5, rejected.clone()), (0..2, Outcome::Delivered)]),
            Outcome::Partial(vec![(0..2, Outcome::Delivered), (2..5, rejected)])
        );
    }
}
