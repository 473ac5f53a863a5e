//! An OTLP/HTTP receiver's answers, classified by the OTLP specification ("OTLP/HTTP
//! Response": full success, partial success, failures, throttling):
//!
//! | answer | outcome |
//! | --- | --- |
//! | 2xx without `partial_success`, or with `rejected_log_records` 0 | delivered (a warning in `error_message` is logged) |
//! | 2xx with `rejected_log_records` > 0 | the request's records rejected (data), with the count and the receiver's message — OTLP does not say which records it refused |
//! | 429, 502, 503, 504 | retried (`Retry-After` honoured) — the only retryable statuses in the spec |
//! | 413 | split in halves and sent again; a single record refused is rejected |
//! | 401, 403 | rejected: the destination (credentials) |
//! | 404 | rejected: the destination (endpoint or `logs_path`) |
//! | any other 3xx/4xx/5xx | rejected: the data ("All other 4xx or 5xx response status codes MUST NOT be retried") |
//! | no answer (timeout, connection) | retried |
//!
//! A failure's body is a `google.rpc.Status` (protobuf or JSON, as the request was); its
//! `message` is what errors show.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;

use super::config::Encoding;
use crate::util::http::{status_error, MAX_ANSWER_BYTES};
use crate::util::scrub::Scrubber;
use crate::{trim_answer, DeliveryError, ErrorKind, Outcome, RejectScope};

/// What to do with one request's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Final for the request's records.
    Outcome(Outcome),
    /// 413 for a request of several records: send each half on its own.
    Split,
}

/// `google.rpc.Status`, the body of an OTLP/HTTP failure (OTLP specification, "Failures").
/// It is not part of the OpenTelemetry protos; only the fields courier reads are declared
/// (prost skips the others, `details`).
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// What a successful answer said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Success {
    /// `partial_success.rejected_log_records`.
    pub rejected: u64,
    /// `partial_success.error_message`.
    pub message: String,
}

/// Reads a successful answer's `ExportLogsServiceResponse` in the answer's content type (the
/// request's `encoding` when it says none). An empty or unreadable body is a full success:
/// the status already said so.
pub fn success(answer: &[u8], content_type: Option<&str>, encoding: Encoding) -> Success {
    if answer.is_empty() {
        return Success::default();
    }
    match answer_encoding(content_type, encoding) {
        Encoding::Protobuf => ExportLogsServiceResponse::decode(answer)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| Success {
                rejected: u64::try_from(p.rejected_log_records).unwrap_or(0),
                message: p.error_message,
            })
            .unwrap_or_default(),
        Encoding::Json => {
            let value: serde_json::Value = serde_json::from_slice(answer).unwrap_or_default();
            let partial = value
                .get("partialSuccess")
                .or_else(|| value.get("partial_success"));
            let Some(partial) = partial else {
                return Success::default();
            };
            let count = partial
                .get("rejectedLogRecords")
                .or_else(|| partial.get("rejected_log_records"));
            // Protobuf's JSON mapping writes int64 as a string; accept a number too.
            let rejected = match count {
                Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
                Some(n) => n.as_u64().unwrap_or(0),
                None => 0,
            };
            let message = partial
                .get("errorMessage")
                .or_else(|| partial.get("error_message"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Success { rejected, message }
        }
    }
}

fn answer_encoding(content_type: Option<&str>, encoding: Encoding) -> Encoding {
    match content_type.map(str::to_ascii_lowercase) {
        Some(t) if t.starts_with("application/json") => Encoding::Json,
        Some(t)
            if t.starts_with("application/x-protobuf") || t.starts_with("application/protobuf") =>
        {
            Encoding::Protobuf
        }
        _ => encoding,
    }
}

/// A receiver's answer as courier keeps it: what its OTLP message says, decoded from the bytes
/// as received and only then freed of the configured secrets (masking first would change a
/// protobuf string's length and make the message unreadable: a partial success echoing the
/// API key would read as a full success).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// A 2xx answer's partial success, its message masked.
    pub success: Success,
    /// A failure's `google.rpc.Status` message, else the answer as text; masked and trimmed.
    pub text: String,
}

impl Reply {
    /// Reads `body` (`complete`: all of it was read) in the answer's `content_type`, the
    /// request's `encoding` when it names none, masking `scrubber`'s values.
    pub fn read(
        body: &[u8],
        complete: bool,
        content_type: Option<&str>,
        encoding: Encoding,
        scrubber: &Scrubber,
    ) -> Reply {
        let clean = |text: &str| {
            let masked = scrubber.clean(text.as_bytes(), true);
            trim_answer(&masked, MAX_ANSWER_BYTES)
        };
        let encoding = answer_encoding(content_type, encoding);
        let mut success = success(body, content_type, encoding);
        success.message = clean(&success.message);
        let message = match encoding {
            Encoding::Protobuf => Status::decode(body).ok().map(|s| s.message),
            Encoding::Json => serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned)),
        };
        let text = match message {
            Some(m) if !m.trim().is_empty() => clean(&m),
            _ if encoding == Encoding::Protobuf && std::str::from_utf8(body).is_err() => {
                format!("({} bytes of protobuf)", body.len())
            }
            _ => trim_answer(&scrubber.clean(body, complete), MAX_ANSWER_BYTES),
        };
        Reply { success, text }
    }
}

/// Classifies the answer to a request of `records` records.
pub fn classify(
    status: u16,
    answer: &Reply,
    retry_after: Option<Duration>,
    records: usize,
) -> Verdict {
    let text = &answer.text;
    let said = if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    };
    let error = |message: String| DeliveryError {
        kind: ErrorKind::HttpStatus,
        http_status: Some(status),
        message,
    };
    Verdict::Outcome(match status {
        200..=299 => {
            let s = &answer.success;
            if s.rejected == 0 {
                if !s.message.is_empty() {
                    tracing::warn!(
                        message = %s.message,
                        "the OTLP receiver accepted every log record with a warning"
                    );
                }
                Outcome::Delivered
            } else {
                let m = &s.message;
                let said = if m.is_empty() { String::new() } else { format!(": {m}") };
                Outcome::Rejected {
                    error: error(format!(
                        "the OTLP receiver rejected {} of the {records} log records of a request (partial success{said}); OTLP does not say which, so all {records} are reported",
                        s.rejected.min(records as u64)
                    )),
                    scope: RejectScope::Data,
                }
            }
        }
        429 | 502 | 503 | 504 => Outcome::Retry {
            error: error(format!("the OTLP receiver answered HTTP {status}{said}")),
            retry_after,
        },
        413 if records > 1 => return Verdict::Split,
        413 => Outcome::Rejected {
            error: error(format!(
                "the OTLP receiver refused a single log record as too large (413){said}"
            )),
            scope: RejectScope::Data,
        },
        401 | 403 => Outcome::Rejected {
            error: error(format!(
                "the OTLP receiver refused the credentials ({status}){said}; check the destination's headers"
            )),
            scope: RejectScope::Destination,
        },
        404 => Outcome::Rejected {
            error: error(format!(
                "the OTLP receiver has no logs endpoint at this URL (404){said}; check the destination's endpoint and logs_path"
            )),
            scope: RejectScope::Destination,
        },
        _ if said.is_empty() => Outcome::Rejected {
            error: status_error(status, b""),
            scope: RejectScope::Data,
        },
        _ => Outcome::Rejected {
            error: error(format!("the OTLP receiver answered HTTP {status}{said}")),
            scope: RejectScope::Data,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;

    fn read(body: &[u8], content_type: Option<&str>, encoding: Encoding) -> Reply {
        Reply::read(
            body,
            true,
            content_type,
            encoding,
            &Scrubber::new(["s3cr3t-key"]),
        )
    }

    fn class(status: u16, records: usize) -> &'static str {
        match classify(status, &read(b"", None, Encoding::Protobuf), None, records) {
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
    fn every_status_by_the_spec() {
        for s in [200, 202, 204] {
            assert_eq!(class(s, 3), "delivered", "{s}");
        }
        for s in [429, 502, 503, 504] {
            assert_eq!(class(s, 3), "retry", "{s}");
        }
        for s in [400, 408, 409, 415, 500, 501, 505, 301] {
            assert_eq!(class(s, 3), "rejected", "{s}");
        }
        for s in [401, 403, 404] {
            assert_eq!(class(s, 3), "destination", "{s}");
        }
        assert_eq!(class(413, 2), "split");
        assert_eq!(class(413, 1), "rejected");
    }

    #[test]
    fn partial_success_in_both_encodings() {
        let proto = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        let json = br#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"too old"}}"#;
        for (body, ct) in [
            (&proto[..], Some("application/x-protobuf")),
            (&json[..], Some("application/json")),
            (&json[..], None),
        ] {
            let enc = if ct.is_none() {
                Encoding::Json
            } else {
                Encoding::Protobuf
            };
            let Verdict::Outcome(Outcome::Rejected { error, scope }) =
                classify(200, &read(body, ct, enc), None, 5)
            else {
                panic!("{ct:?}")
            };
            assert_eq!(scope, RejectScope::Data);
            assert!(
                error.message.contains("rejected 2 of the 5 log records")
                    && error.message.contains("too old"),
                "{}",
                error.message
            );
        }
        // A warning only.
        let warning = br#"{"partialSuccess":{"rejectedLogRecords":0,"errorMessage":"slow down"}}"#;
        assert_eq!(
            classify(
                200,
                &read(warning, Some("application/json"), Encoding::Json),
                None,
                5
            ),
            Verdict::Outcome(Outcome::Delivered)
        );
    }

    #[test]
    fn failure_messages_come_from_the_status() {
        let body = Status {
            code: 3,
            message: "bad severity".into(),
        }
        .encode_to_vec();
        let Verdict::Outcome(Outcome::Rejected { error, .. }) = classify(
            400,
            &read(&body, Some("application/x-protobuf"), Encoding::Protobuf),
            None,
            1,
        ) else {
            panic!()
        };
        assert_eq!(
            error.message,
            "the OTLP receiver answered HTTP 400: bad severity"
        );
        let Verdict::Outcome(Outcome::Retry { retry_after, error }) = classify(
            429,
            &read(
                br#"{"code":8,"message":"quota s3cr3t-key"}"#,
                Some("application/json"),
                Encoding::Protobuf,
            ),
            Some(Duration::from_secs(4)),
            3,
        ) else {
            panic!()
        };
        assert_eq!(retry_after, Some(Duration::from_secs(4)));
        assert!(error.message.ends_with(": quota ****"), "{}", error.message);
        // Decoded before masking: a Status echoing a secret is still read.
        let body = Status {
            code: 3,
            message: "bad key s3cr3t-key".into(),
        }
        .encode_to_vec();
        let answer = read(&body, Some("application/x-protobuf"), Encoding::Protobuf);
        assert_eq!(answer.text, "bad key ****");
    }
}
