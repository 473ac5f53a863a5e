//! Datadog's answers, classified by its Logs API v2 contract ("Send logs" in Datadog's API
//! reference):
//!
//! | answer | outcome |
//! | --- | --- |
//! | 2xx (202 Accepted) | delivered |
//! | 400 Bad request | rejected: the data |
//! | 401 Unauthorized, 403 Forbidden | rejected: the destination's API key |
//! | 404 Not Found | rejected: the destination's site/endpoint |
//! | 408, 429, 5xx | retried (`Retry-After`, else `X-RateLimit-Reset`, honoured) |
//! | 413 Payload too large | split in halves and sent again; a single log refused is rejected |
//! | other 3xx/4xx | rejected: the data (redirects are not followed) |
//! | no answer (timeout, connection) | retried |

use std::time::Duration;

use crate::util::http::{status_error, MAX_ANSWER_BYTES, MAX_RETRY_AFTER};
use crate::{trim_answer, DeliveryError, Outcome, RejectScope};

/// What to do with one request's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Final for the request's events.
    Outcome(Outcome),
    /// 413 for a request of several logs: send each half on its own.
    Split,
}

/// Classifies Datadog's answer to a request of `logs` logs. `answer` must already be free of
/// secrets.
pub fn classify(status: u16, answer: &[u8], retry_after: Option<Duration>, logs: usize) -> Verdict {
    let error = |message: String| DeliveryError {
        message,
        ..status_error(status, answer)
    };
    let said = said(answer);
    Verdict::Outcome(match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry {
            error: status_error(status, answer),
            retry_after,
        },
        413 if logs > 1 => return Verdict::Split,
        413 => Outcome::Rejected {
            error: error(format!(
                "Datadog refused a single log as too large (413){said}"
            )),
            scope: RejectScope::Data,
        },
        400 => Outcome::Rejected {
            error: error(format!(
                "Datadog refused the logs as malformed (400){said}"
            )),
            scope: RejectScope::Data,
        },
        401 | 403 => Outcome::Rejected {
            error: error(format!(
                "Datadog rejected the API key ({status}){said}; check the destination's api_key"
            )),
            scope: RejectScope::Destination,
        },
        404 => Outcome::Rejected {
            error: error(format!(
                "Datadog has no logs intake at this URL (404){said}; check the destination's site or endpoint"
            )),
            scope: RejectScope::Destination,
        },
        _ => Outcome::Rejected {
            error: status_error(status, answer),
            scope: RejectScope::Data,
        },
    })
}

/// `: <answer>` when the answer says something.
fn said(answer: &[u8]) -> String {
    let text = trim_answer(answer, MAX_ANSWER_BYTES);
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// Datadog's rate-limit reset (`X-RateLimit-Reset`: seconds until the limit resets), used
/// when an answer has no `Retry-After`; like it, at most
/// [`MAX_RETRY_AFTER`].
pub fn rate_limit_reset(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn class(status: u16, logs: usize) -> &'static str {
        match classify(status, b"{\"errors\":[\"x\"]}", None, logs) {
            Verdict::Split => "split",
            Verdict::Outcome(Outcome::Delivered) => "delivered",
            Verdict::Outcome(Outcome::Retry { .. }) => "retry",
            Verdict::Outcome(Outcome::Rejected {
                scope: RejectScope::Data,
                ..
            }) => "rejected",
            Verdict::Outcome(Outcome::Rejected {
                scope: RejectScope::Destination,
                ..
            }) => "destination",
            Verdict::Outcome(Outcome::Partial(_)) => "partial",
        }
    }

    #[test]
    fn every_documented_status() {
        for s in [200, 202, 204] {
            assert_eq!(class(s, 3), "delivered", "{s}");
        }
        for s in [408, 429, 500, 501, 502, 503, 504, 599] {
            assert_eq!(class(s, 3), "retry", "{s}");
        }
        assert_eq!(class(400, 3), "rejected");
        assert_eq!(class(401, 3), "destination");
        assert_eq!(class(403, 3), "destination");
        assert_eq!(class(404, 3), "destination");
        assert_eq!(class(413, 3), "split");
        assert_eq!(class(413, 2), "split");
        assert_eq!(class(413, 1), "rejected");
        for s in [301, 302, 405, 409, 415, 422] {
            assert_eq!(class(s, 3), "rejected", "{s}");
        }
    }

    #[test]
    fn messages_name_the_service_and_keep_the_answer() {
        let Verdict::Outcome(Outcome::Rejected { error, scope }) =
            classify(403, b"{\"errors\":[\"Forbidden\"]}", None, 5)
        else {
            panic!()
        };
        assert_eq!(scope, RejectScope::Destination);
        assert_eq!(error.kind, ErrorKind::HttpStatus);
        assert_eq!(error.http_status, Some(403));
        assert!(
            error
                .message
                .starts_with("Datadog rejected the API key (403): {\"errors\":[\"Forbidden\"]}"),
            "{}",
            error.message
        );
        let Verdict::Outcome(Outcome::Retry { retry_after, error }) =
            classify(429, b"", Some(Duration::from_secs(9)), 5)
        else {
            panic!()
        };
        assert_eq!(retry_after, Some(Duration::from_secs(9)));
        assert_eq!(error.http_status, Some(429));
    }
}
