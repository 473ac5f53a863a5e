//! Splunk HEC's answers, classified by the `code` of the JSON answer (Splunk's "HTTP Event
//! Collector status codes" table) and, when there is none, the HTTP status:
//!
//! | code | HTTP | meaning | outcome |
//! | --- | --- | --- | --- |
//! | 0 | 200 | Success | delivered (with `ack`: once the `ackId` is confirmed) |
//! | 1 | 403 | Token disabled | rejected: the destination's configuration |
//! | 2 | 401 | Token is required | rejected: configuration |
//! | 3 | 401 | Invalid authorization | rejected: configuration |
//! | 4 | 403 | Invalid token | rejected: configuration |
//! | 5 | 400 | No data | rejected: the data |
//! | 6 | 400 | Invalid data format | events before `invalid-event-number` delivered, that one rejected, the rest retried |
//! | 7 | 400 | Incorrect index | rejected: configuration |
//! | 8 | 500 | Internal server error | retried |
//! | 9 | 503 | Server is busy | retried |
//! | 10 | 400 | Data channel is missing | rejected: configuration (the token wants `ack = true`) |
//! | 11 | 400 | Invalid data channel | rejected: configuration |
//! | 12 | 400 | Event field is required | rejected: the data |
//! | 13 | 400 | Event field cannot be blank | rejected: the data |
//! | 14 | 400 | ACK is disabled | rejected: configuration (set `ack = false`) |
//! | 15 | 400 | Error in handling indexed fields | rejected: the data |
//! | 16 | 400 | Query string authorization is not enabled | rejected: configuration |
//! | — | 408, 429, 5xx | no HEC code | retried (`Retry-After` honoured) |
//! | — | 413 | request too large | split in halves and sent again; one event refused is rejected |
//! | — | 401, 403, 404 | no HEC code | rejected: configuration |
//! | — | other 3xx/4xx | no HEC code | rejected: the data |

use std::time::Duration;

use serde::Deserialize;

use crate::util::http::{status_error, MAX_ANSWER_BYTES};
use crate::{trim_answer, DeliveryError, Outcome, RejectScope};

/// The JSON answer of the collector.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct HecAnswer {
    /// Human-readable status.
    #[serde(default)]
    pub text: Option<String>,
    /// HEC status code.
    #[serde(default)]
    pub code: Option<i64>,
    /// With code 6: the index of the first invalid event of the request.
    #[serde(default, rename = "invalid-event-number")]
    pub invalid_event_number: Option<i64>,
    /// With indexer acknowledgement: the id to confirm.
    #[serde(default, rename = "ackId")]
    pub ack_id: Option<u64>,
}

impl HecAnswer {
    /// Reads an answer; anything that is not a HEC answer reads as empty. Its `text` is
    /// trimmed to [`MAX_ANSWER_BYTES`] like any answer courier keeps: an endpoint can put all
    /// of the 64 KiB an answer is read to in it.
    pub fn parse(body: &[u8]) -> HecAnswer {
        let mut answer: HecAnswer = serde_json::from_slice(body).unwrap_or_default();
        answer.text = answer
            .text
            .map(|text| trim_answer(text.as_bytes(), MAX_ANSWER_BYTES));
        answer
    }
}

/// What to do with one request's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Final for the request's events.
    Outcome(Outcome),
    /// Accepted; complete once the collector confirms this `ackId`.
    AwaitAck(u64),
    /// Accepted while `ack = true`, but without an `ackId`: the token does not use indexer
    /// acknowledgement, so acceptance is all there is.
    DeliveredWithoutAck,
    /// 413 for a request of several events: send each half on its own.
    Split,
    /// Code 6: events before `index` were indexed, that one is invalid, the rest were not
    /// processed.
    InvalidEvent {
        /// Index of the invalid event within the request.
        index: usize,
        /// Why.
        error: DeliveryError,
    },
}

/// Classifies the collector's answer to a request of `events` events. `answer` must already
/// be free of secrets; `index` names the configured index in messages.
pub fn classify(
    status: u16,
    answer: &[u8],
    retry_after: Option<Duration>,
    events: usize,
    ack: bool,
    index: Option<&str>,
) -> Verdict {
    let hec = HecAnswer::parse(answer);
    let error = |message: String| DeliveryError {
        message,
        ..status_error(status, answer)
    };
    let said = match (&hec.text, hec.code) {
        (Some(text), Some(code)) => format!("{text} (code {code}, HTTP {status})"),
        _ => {
            let text = trim_answer(answer, MAX_ANSWER_BYTES);
            if text.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {text}")
            }
        }
    };
    let configuration = |hint: &str| {
        Verdict::Outcome(Outcome::Rejected {
            error: error(format!("Splunk HEC rejected the request: {said}{hint}")),
            scope: RejectScope::Destination,
        })
    };
    let data = |what: &str| {
        Verdict::Outcome(Outcome::Rejected {
            error: error(format!("Splunk HEC refused {what}: {said}")),
            scope: RejectScope::Data,
        })
    };
    let retry = || {
        Verdict::Outcome(Outcome::Retry {
            error: error(format!("Splunk HEC could not take the events now: {said}")),
            retry_after,
        })
    };
    match hec.code {
        Some(0) if (200..300).contains(&status) => {
            return match (ack, hec.ack_id) {
                (true, Some(id)) => Verdict::AwaitAck(id),
                (true, None) => Verdict::DeliveredWithoutAck,
                (false, _) => Verdict::Outcome(Outcome::Delivered),
            }
        }
        Some(1) => return configuration("; the HEC token is disabled: enable it in Splunk"),
        Some(2 | 3) => return configuration("; the Authorization header was not accepted"),
        Some(4) => return configuration("; check the destination's token"),
        Some(7) => {
            let which = index.map_or_else(|| "its default index".to_owned(), |i| format!("index {i:?}"));
            return configuration(&format!(
                "; the token may not write to {which}: add it to the token's allowed indexes or change the destination's index"
            ));
        }
        Some(10) => {
            return configuration(
                "; the token has indexer acknowledgement enabled: set ack = true on this destination",
            )
        }
        Some(11) => return configuration("; Splunk refused courier's data channel"),
        Some(14) => {
            return configuration(
                "; indexer acknowledgement is disabled for this token: set ack = false, or enable it on the token",
            )
        }
        Some(16) => return configuration(""),
        Some(5 | 12 | 13 | 15) => return data("the events"),
        Some(6) => {
            return match hec
                .invalid_event_number
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n < events)
            {
                Some(index) => Verdict::InvalidEvent {
                    index,
                    error: error(format!(
                        "Splunk HEC refused event {index} of the request: {said}"
                    )),
                },
                None => data("the events"),
            }
        }
        Some(8 | 9) => return retry(),
        _ => {}
    }
    match status {
        200..=299 if ack => Verdict::DeliveredWithoutAck,
        200..=299 => Verdict::Outcome(Outcome::Delivered),
        408 | 429 | 500..=599 => retry(),
        413 if events > 1 => Verdict::Split,
        413 => data("an event as too large"),
        401 | 403 => configuration("; check the destination's token"),
        404 => {
            configuration("; no HTTP Event Collector at this URL: check the destination's endpoint")
        }
        _ => data("the events"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn answer(code: i64, text: &str) -> Vec<u8> {
        format!("{{\"text\":\"{text}\",\"code\":{code}}}").into_bytes()
    }

    fn class(status: u16, body: &[u8], ack: bool) -> String {
        match classify(status, body, None, 10, ack, Some("main")) {
            Verdict::Outcome(Outcome::Delivered) => "delivered".into(),
            Verdict::Outcome(Outcome::Retry { .. }) => "retry".into(),
            Verdict::Outcome(Outcome::Rejected {
                scope: RejectScope::Data,
                ..
            }) => "data".into(),
            Verdict::Outcome(Outcome::Rejected {
                scope: RejectScope::Destination,
                ..
            }) => "configuration".into(),
            Verdict::Outcome(Outcome::Partial(_)) => "partial".into(),
            Verdict::AwaitAck(id) => format!("ack {id}"),
            Verdict::DeliveredWithoutAck => "delivered without ack".into(),
            Verdict::Split => "split".into(),
            Verdict::InvalidEvent { index, .. } => format!("invalid {index}"),
        }
    }

    /// Splunk's documented table: (code, HTTP status, text).
    const TABLE: &[(i64, u16, &str)] = &[
        (0, 200, "Success"),
        (1, 403, "Token disabled"),
        (2, 401, "Token is required"),
        (3, 401, "Invalid authorization"),
        (4, 403, "Invalid token"),
        (5, 400, "No data"),
        (6, 400, "Invalid data format"),
        (7, 400, "Incorrect index"),
        (8, 500, "Internal server error"),
        (9, 503, "Server is busy"),
        (10, 400, "Data channel is missing"),
        (11, 400, "Invalid data channel"),
        (12, 400, "Event field is required"),
        (13, 400, "Event field cannot be blank"),
        (14, 400, "ACK is disabled"),
        (15, 400, "Error in handling indexed fields"),
        (16, 400, "Query string authorization is not enabled"),
    ];

    #[test]
    fn every_documented_code() {
        for &(code, status, text) in TABLE {
            let expected = match code {
                0 => "delivered",
                1 | 2 | 3 | 4 | 7 | 10 | 11 | 14 | 16 => "configuration",
                5 | 12 | 13 | 15 => "data",
                6 => "data", // without an invalid-event-number
                8 | 9 => "retry",
                _ => unreachable!(),
            };
            assert_eq!(
                class(status, &answer(code, text), false),
                expected,
                "code {code}"
            );
        }
    }

    #[test]
    fn http_statuses_without_a_code() {
        assert_eq!(class(200, b"", false), "delivered");
        assert_eq!(class(200, b"<html>", true), "delivered without ack");
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(class(s, b"<html>busy</html>", false), "retry", "{s}");
        }
        assert_eq!(class(413, b"", false), "split");
        assert_eq!(
            match classify(413, b"", None, 1, false, None) {
                Verdict::Outcome(Outcome::Rejected { scope, .. }) => scope,
                other => panic!("{other:?}"),
            },
            RejectScope::Data
        );
        for s in [401, 403, 404] {
            assert_eq!(class(s, b"", false), "configuration", "{s}");
        }
        for s in [301, 400, 405, 422] {
            assert_eq!(class(s, b"", false), "data", "{s}");
        }
        // An unknown code falls back to the HTTP status.
        assert_eq!(class(503, &answer(99, "new"), false), "retry");
    }

    #[test]
    fn acknowledgements() {
        assert_eq!(
            class(200, br#"{"text":"Success","code":0,"ackId":42}"#, true),
            "ack 42"
        );
        assert_eq!(
            class(200, br#"{"text":"Success","code":0}"#, true),
            "delivered without ack"
        );
        assert_eq!(
            class(200, br#"{"text":"Success","code":0,"ackId":42}"#, false),
            "delivered"
        );
    }

    #[test]
    fn invalid_event_numbers() {
        let body = br#"{"text":"Invalid data format","code":6,"invalid-event-number":3}"#;
        assert_eq!(class(400, body, false), "invalid 3");
        let Verdict::InvalidEvent { error, .. } = classify(400, body, None, 10, false, None) else {
            panic!()
        };
        assert_eq!(error.http_status, Some(400));
        assert!(error.message.contains("event 3"), "{}", error.message);
        // Out of range or negative: the whole request is refused.
        let body = br#"{"text":"Invalid data format","code":6,"invalid-event-number":10}"#;
        assert_eq!(class(400, body, false), "data");
        let body = br#"{"text":"Invalid data format","code":6,"invalid-event-number":-1}"#;
        assert_eq!(class(400, body, false), "data");
    }

    #[test]
    fn configuration_messages_name_the_service_and_the_fix() {
        let Verdict::Outcome(Outcome::Rejected { error, .. }) =
            classify(403, &answer(4, "Invalid token"), None, 1, false, None)
        else {
            panic!()
        };
        assert_eq!(error.kind, ErrorKind::HttpStatus);
        assert_eq!(
            error.message,
            "Splunk HEC rejected the request: Invalid token (code 4, HTTP 403); check the destination's token"
        );
        let Verdict::Outcome(Outcome::Rejected { error, .. }) = classify(
            400,
            &answer(10, "Data channel is missing"),
            None,
            1,
            false,
            None,
        ) else {
            panic!()
        };
        assert!(
            error.message.contains("set ack = true"),
            "{}",
            error.message
        );
        let Verdict::Outcome(Outcome::Rejected { error, .. }) = classify(
            400,
            &answer(7, "Incorrect index"),
            None,
            1,
            false,
            Some("sec"),
        ) else {
            panic!()
        };
        assert!(error.message.contains("index \"sec\""), "{}", error.message);
    }
}
