//! Indexer acknowledgement: after the collector accepted a request and gave an `ackId`, ask
//! `POST /services/collector/ack` (same channel) with `{"acks":[…]}` until it answers
//! `{"acks":{"<id>":true}}`, polling with backoff. An id not confirmed within `ack_timeout`
//! means the events must be sent again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;
use tokio::time::Instant;

use super::service::HecAnswer;
use super::HEC_ANSWER_BYTES;
use crate::util::http::{read_limited, status_error, transport_error, MAX_ANSWER_BYTES};
use crate::util::scrub::Scrubber;
use crate::{trim_answer, DeliveryError, ErrorKind, Outcome, RejectScope};

/// First wait before asking about an `ackId`.
pub const FIRST_POLL: Duration = Duration::from_millis(200);
/// Longest wait between two polls.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Most ids asked about in one query, so that the answer (about 30 bytes an id at most) stays
/// well within [`HEC_ANSWER_BYTES`]; more pending ids are asked about in several queries.
pub const MAX_ACKS_PER_QUERY: usize = 1000;

#[derive(Deserialize)]
struct AckAnswer {
    acks: BTreeMap<String, bool>,
}

/// Where and how to ask.
pub struct AckQuery<'a> {
    /// The client.
    pub client: &'a reqwest::Client,
    /// `{endpoint}/services/collector/ack`.
    pub url: &'a reqwest::Url,
    /// Authorization and channel.
    pub headers: &'a HeaderMap,
    /// Masks the token in answers.
    pub scrubber: &'a Scrubber,
    /// How long an id may stay unconfirmed.
    pub timeout: Duration,
}

/// Waits for the collector to confirm `ids`; returns each id's outcome: delivered, retry
/// (not confirmed in time, or the channel is gone), or rejected (the token no longer works).
pub async fn confirm(q: &AckQuery<'_>, ids: &[u64]) -> BTreeMap<u64, Outcome> {
    let deadline = courier_core::clock::deadline(Instant::now(), q.timeout);
    let mut pending: BTreeSet<u64> = ids.iter().copied().collect();
    let mut done = BTreeMap::new();
    let mut delay = FIRST_POLL;
    let mut polls = 0u32;
    let mut last_problem: Option<String> = None;
    while !pending.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
        delay = (delay * 2).min(MAX_POLL_INTERVAL);
        polls += 1;
        let queries: Vec<Vec<u64>> = pending
            .iter()
            .copied()
            .collect::<Vec<_>>()
            .chunks(MAX_ACKS_PER_QUERY)
            .map(<[u64]>::to_vec)
            .collect();
        for asked in queries {
            if pending.is_empty() {
                break;
            }
            let body = serde_json::json!({ "acks": asked }).to_string();
            let response = match q
                .client
                .post(q.url.clone())
                .headers(q.headers.clone())
                .body(body)
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    if let Outcome::Retry { error, .. } | Outcome::Rejected { error, .. } =
                        transport_error(&e)
                    {
                        last_problem = Some(error.message);
                    }
                    continue;
                }
            };
            let status = response.status().as_u16();
            let answer = read_limited(response, HEC_ANSWER_BYTES).await;
            let answer = q.scrubber.clean(&answer.body, answer.complete);
            match classify_ack(status, &answer) {
                AckVerdict::Indexed(ids) => {
                    for id in ids {
                        if pending.remove(&id) {
                            done.insert(id, Outcome::Delivered);
                        }
                    }
                }
                AckVerdict::All(outcome) => {
                    for id in std::mem::take(&mut pending) {
                        done.insert(id, outcome.clone());
                    }
                }
                AckVerdict::Problem(problem) => last_problem = Some(problem),
            }
        }
    }
    for id in pending {
        let detail = last_problem
            .as_deref()
            .map(|p| format!("; last problem: {p}"))
            .unwrap_or_default();
        done.insert(
            id,
            Outcome::Retry {
                error: DeliveryError {
                    kind: ErrorKind::Timeout,
                    http_status: None,
                    message: format!(
                        "Splunk HEC did not confirm indexing of ackId {id} within ack_timeout ({}; {polls} polls){detail}; the events will be sent again",
                        humantime::format_duration(q.timeout)
                    ),
                },
                retry_after: None,
            },
        );
    }
    done
}

/// What the answer to one acknowledgement query says about the ids it asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckVerdict {
    /// A 2xx answer: these ids are indexed (the others not yet).
    Indexed(Vec<u64>),
    /// Every pending id ends with this outcome: the token stopped working (rejected), or the
    /// channel or acknowledgement went away so they can never be confirmed (retried).
    All(Outcome),
    /// Nothing decided; what went wrong, for the message if the ids are never confirmed.
    Problem(String),
}

/// Classifies the collector's answer to an acknowledgement query (`status` and the start of
/// its body, already free of secrets). Pure, so that hostile answers can be tested alone.
pub fn classify_ack(status: u16, answer: &[u8]) -> AckVerdict {
    if (200..300).contains(&status) {
        return match serde_json::from_slice::<AckAnswer>(answer) {
            Ok(a) => AckVerdict::Indexed(
                a.acks
                    .into_iter()
                    .filter(|(_, indexed)| *indexed)
                    .filter_map(|(id, _)| id.parse::<u64>().ok())
                    .collect(),
            ),
            // serde quotes the offending value, which the endpoint chose: trimmed.
            Err(e) => AckVerdict::Problem(format!(
                "unreadable ack answer: {}",
                trim_answer(e.to_string().as_bytes(), MAX_ANSWER_BYTES)
            )),
        };
    }
    let hec = HecAnswer::parse(answer);
    let said = match (&hec.text, hec.code) {
        (Some(t), Some(c)) => format!("{t} (code {c}, HTTP {status})"),
        _ => status_error(status, answer).message,
    };
    match (status, hec.code) {
        // The token stopped working: later requests would be refused the same way.
        (401 | 403, _) | (_, Some(1..=4)) => AckVerdict::All(Outcome::Rejected {
            error: DeliveryError {
                message: format!(
                    "Splunk HEC refused the acknowledgement query: {said}; check the destination's token"
                ),
                ..status_error(status, answer)
            },
            scope: RejectScope::Destination,
        }),
        // The channel or acknowledgement went away: these ids can never be confirmed.
        (_, Some(11 | 14)) | (400..=499, None) if status != 408 && status != 429 => {
            AckVerdict::All(Outcome::Retry {
                error: DeliveryError {
                    message: format!(
                        "Splunk HEC cannot confirm indexing ({said}); the events will be sent again"
                    ),
                    ..status_error(status, answer)
                },
                retry_after: None,
            })
        }
        _ => AckVerdict::Problem(said),
    }
}
