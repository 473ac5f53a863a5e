//! Classifies `object_store` errors by S3's error contract.
//!
//! `object_store` gives an HTTP status as its error variant for 401, 403, 404, 409 and 412 and
//! keeps the rest (and the S3 XML error body: `<Code>`, `<Message>`) in the text of the error
//! it wraps; transport failures carry an [`HttpError`] in the source chain. Its own retries
//! are switched off (the lane owns the retry budget), so every failed request surfaces here.
//!
//! - throttling (`SlowDown`, 429, 503), other 5xx, `InternalError`, request timeouts, expired
//!   temporary credentials, timeouts and connection errors: retried;
//! - `NoSuchBucket`, `AccessDenied`, bad credentials (`InvalidAccessKeyId`,
//!   `SignatureDoesNotMatch`, `InvalidToken`), KMS errors, a wrong region and any other 4xx:
//!   rejected as a configuration problem of the destination — an object PUT carries nothing
//!   the data could make S3 refuse.

use object_store::client::{HttpError, HttpErrorKind};

use crate::util::http::MAX_ANSWER_BYTES;
use crate::util::scrub::Scrubber;
use crate::{trim_answer, DeliveryError, ErrorKind, Outcome, RejectScope};

/// S3 error codes that are worth another attempt whatever their status.
const RETRYABLE_CODES: &[&str] = &[
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "OperationAborted",
    "ExpiredToken",
    "TokenRefreshRequired",
    "RequestTimeTooSkewed",
    "BadDigest",
    "IncompleteBody",
    "NoSuchUpload",
];

/// What was read from a failed request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct S3Answer {
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// S3's `<Code>`.
    pub code: Option<String>,
    /// S3's `<Message>`.
    pub message: Option<String>,
    /// The transport failure, when there was no answer.
    pub transport: Option<HttpErrorKind>,
    /// No `Location` on a redirect: S3's sign of a wrong region.
    pub bare_redirect: bool,
}

impl S3Answer {
    /// Reads an `object_store` error, whose text is read with `scrubber`'s secrets masked.
    pub fn read(error: &object_store::Error, scrubber: &Scrubber) -> Self {
        let mut answer = S3Answer {
            status: match error {
                object_store::Error::NotFound { .. } => Some(404),
                object_store::Error::PermissionDenied { .. } => Some(403),
                object_store::Error::Unauthenticated { .. } => Some(401),
                object_store::Error::AlreadyExists { .. } => Some(409),
                object_store::Error::Precondition { .. } => Some(412),
                _ => None,
            },
            ..S3Answer::default()
        };
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = source {
            if let Some(http) = e.downcast_ref::<HttpError>() {
                answer.transport.get_or_insert(http.kind());
            }
            source = e.source();
        }
        let text = scrubber.clean_text(&error.to_string());
        if answer.status.is_none() {
            answer.status = status_in(&text);
        }
        answer.code = xml_element(&text, "Code");
        answer.message = xml_element(&text, "Message");
        answer.bare_redirect = text.contains("Received redirect without LOCATION");
        if answer.status.is_some() {
            // An answer came back; a transport error in the chain was about reading it.
            answer.transport = answer.transport.filter(|_| answer.code.is_none());
        }
        answer
    }
}

/// The `NNN` of `object_store`'s "status code: NNN …" text.
fn status_in(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    let digits = text.get(at..at + 3)?;
    digits.parse().ok().filter(|s| (100..600).contains(s))
}

/// The text of the first `<name>…</name>` element.
fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&close)? + start;
    let value = text[start..end].trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Classifies a failed S3 operation on `bucket`. `what` says what was attempted ("PUT
/// logs/…"); `scrubber` masks what must not appear in the message (credentials).
///
/// A request the SSRF guard refused (the endpoint's name resolved only to refused addresses,
/// or its literal address is refused) rejects the destination as configured.
pub fn classify(
    error: &object_store::Error,
    bucket: &str,
    what: &str,
    scrubber: &Scrubber,
) -> Outcome {
    if let Some(refusal) = crate::ssrf::refusal_in(error) {
        return refusal.outcome();
    }
    // Secrets are masked in the error's text before any of it is trimmed, so that none is
    // cut in half (and kept) by the trimming; the message is masked again as a whole.
    let mut outcome = classify_scrubbed(error, bucket, what, scrubber);
    if let Outcome::Retry { error, .. } | Outcome::Rejected { error, .. } = &mut outcome {
        error.message = scrubber.clean_text(&error.message);
    }
    outcome
}

fn classify_scrubbed(
    error: &object_store::Error,
    bucket: &str,
    what: &str,
    scrubber: &Scrubber,
) -> Outcome {
    let answer = S3Answer::read(error, scrubber);
    let text = scrubber.clean_text(&error.to_string());
    let detail = || trim_answer(text.as_bytes(), MAX_ANSWER_BYTES);
    let reason = match (&answer.code, &answer.message) {
        (Some(code), Some(message)) => format!(
            "{}: {}",
            trim_answer(code.as_bytes(), 100),
            trim_answer(message.as_bytes(), 300)
        ),
        (Some(code), None) => trim_answer(code.as_bytes(), 100),
        _ => detail(),
    };

    if let (Some(kind), None) = (answer.transport, answer.status) {
        let kind = if kind == HttpErrorKind::Timeout {
            ErrorKind::Timeout
        } else {
            ErrorKind::Connection
        };
        return Outcome::Retry {
            error: DeliveryError {
                kind,
                http_status: None,
                message: format!("S3 bucket {bucket:?}: {what} failed: {}", detail()),
            },
            retry_after: None,
        };
    }
    if answer.bare_redirect {
        return reject(
            bucket,
            answer.status.or(Some(301)),
            format!("{what}: the bucket is in another region than the configured one (S3 answered a redirect without Location); set `region`"),
        );
    }
    let code = answer.code.as_deref().unwrap_or("");
    let status = answer.status;
    let retryable = RETRYABLE_CODES.contains(&code)
        || matches!(status, Some(408 | 429 | 500..=599))
        // A 200 with an error body (S3 can answer CompleteMultipartUpload that way).
        || matches!(status, Some(200..=299));
    let error = |message: String| DeliveryError {
        kind: if status.is_some() {
            ErrorKind::HttpStatus
        } else {
            ErrorKind::Connection
        },
        http_status: status,
        message,
    };
    if retryable {
        return Outcome::Retry {
            error: error(format!("S3 bucket {bucket:?}: {what} failed: {reason}")),
            retry_after: None,
        };
    }
    let Some(status) = status else {
        // No answer and no transport error: credentials could not be loaded, a body could
        // not be read… Worth another attempt; the message says what happened.
        return Outcome::Retry {
            error: error(format!("S3 bucket {bucket:?}: {what} failed: {}", detail())),
            retry_after: None,
        };
    };
    let why = match code {
        "NoSuchBucket" => "the bucket does not exist".to_owned(),
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => {
            if answer
                .message
                .as_deref()
                .is_some_and(|m| m.to_ascii_lowercase().contains("kms"))
            {
                "access to the KMS key was denied".to_owned()
            } else {
                "access denied: the credentials may not write to this bucket and prefix".to_owned()
            }
        }
        "InvalidAccessKeyId" => "the access key id is not known to S3".to_owned(),
        "SignatureDoesNotMatch" => {
            "the secret access key does not match the access key id".to_owned()
        }
        "InvalidToken" => "the session token is invalid".to_owned(),
        "AuthorizationHeaderMalformed"
        | "PermanentRedirect"
        | "IllegalLocationConstraintException" => {
            "the bucket is in another region than the configured one; set `region`".to_owned()
        }
        c if c.starts_with("KMS") || c.contains(".KMS") => {
            "the KMS key cannot be used (kms_key_id, its policy or its state)".to_owned()
        }
        "" if status == 404 => "the bucket does not exist (HTTP 404)".to_owned(),
        "" if status == 401 || status == 403 => {
            "access denied: the credentials are invalid or may not write here".to_owned()
        }
        _ => "the request was refused".to_owned(),
    };
    reject(
        bucket,
        Some(status),
        format!("{what} refused: {why} ({reason})"),
    )
}

fn reject(bucket: &str, status: Option<u16>, message: String) -> Outcome {
    Outcome::Rejected {
        error: DeliveryError {
            kind: ErrorKind::HttpStatus,
            http_status: status,
            message: format!("S3 bucket {bucket:?}: {message}"),
        },
        scope: RejectScope::Destination,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mimics `object_store`'s retry error text.
    #[derive(Debug)]
    struct Text(String);
    impl std::fmt::Display for Text {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Text {}

    fn s3_error(status: &str, code: &str, message: &str) -> Text {
        Text(format!(
            "Error performing PUT http://127.0.0.1:1/b/k in 3ms - Server returned non-2xx status code: {status}: <?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>1</RequestId></Error>"
        ))
    }

    fn generic(source: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(source),
        }
    }

    fn class(e: &object_store::Error) -> (&'static str, Option<u16>, String) {
        match classify(e, "archive", "PUT k", &Scrubber::new(["AKIASECRET"])) {
            Outcome::Retry { error, .. } => ("retry", error.http_status, error.message),
            Outcome::Rejected {
                error,
                scope: RejectScope::Destination,
            } => ("destination", error.http_status, error.message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn throttling_server_errors_and_transport_errors_are_retried() {
        for (status, code) in [
            ("503 Service Unavailable", "SlowDown"),
            ("500 Internal Server Error", "InternalError"),
            ("502 Bad Gateway", ""),
            ("429 Too Many Requests", ""),
            ("400 Bad Request", "RequestTimeout"),
            ("400 Bad Request", "ExpiredToken"),
        ] {
            let (c, s, m) = class(&generic(s3_error(status, code, "try later")));
            assert_eq!(c, "retry", "{status} {code}");
            assert_eq!(s, status[..3].parse().ok());
            assert!(m.contains("\"archive\""), "{m}");
        }
        let timeout = generic(HttpError::new(
            HttpErrorKind::Timeout,
            std::io::Error::other("deadline"),
        ));
        let Outcome::Retry { error, .. } = classify(&timeout, "b", "PUT k", &Scrubber::default())
        else {
            panic!()
        };
        assert_eq!(error.kind, ErrorKind::Timeout);
        let refused = generic(HttpError::new(
            HttpErrorKind::Connect,
            std::io::Error::other("connection refused"),
        ));
        let Outcome::Retry { error, .. } = classify(&refused, "b", "PUT k", &Scrubber::default())
        else {
            panic!()
        };
        assert_eq!(error.kind, ErrorKind::Connection);
    }

    #[test]
    fn configuration_problems_reject_the_destination() {
        let cases = [
            (
                object_store::Error::NotFound {
                    path: "k".into(),
                    source: Box::new(s3_error("404 Not Found", "NoSuchBucket", "The specified bucket does not exist")),
                },
                "does not exist",
            ),
            (
                object_store::Error::PermissionDenied {
                    path: "k".into(),
                    source: Box::new(s3_error("403 Forbidden", "AccessDenied", "Access Denied")),
                },
                "access denied",
            ),
            (
                object_store::Error::PermissionDenied {
                    path: "k".into(),
                    source: Box::new(s3_error("403 Forbidden", "InvalidAccessKeyId", "The AWS Access Key Id AKIASECRET you provided does not exist")),
                },
                "access key id is not known",
            ),
            (
                object_store::Error::PermissionDenied {
                    path: "k".into(),
                    source: Box::new(s3_error("403 Forbidden", "SignatureDoesNotMatch", "The request signature we calculated does not match")),
                },
                "secret access key",
            ),
            (
                object_store::Error::PermissionDenied {
                    path: "k".into(),
                    source: Box::new(s3_error("403 Forbidden", "AccessDenied", "User is not authorized to perform: kms:GenerateDataKey")),
                },
                "KMS key",
            ),
            (
                generic(s3_error("400 Bad Request", "KMS.NotFoundException", "Invalid keyId")),
                "KMS key",
            ),
            (
                generic(s3_error("400 Bad Request", "AuthorizationHeaderMalformed", "the region 'us-east-1' is wrong")),
                "region",
            ),
            (
                generic(Text("Error performing PUT http://x in 1ms - Received redirect without LOCATION, this normally indicates an incorrectly configured region".into())),
                "region",
            ),
        ];
        for (error, expect) in cases {
            let (c, _, m) = class(&error);
            assert_eq!(c, "destination", "{error}");
            assert!(m.contains(expect), "{m}");
            assert!(m.starts_with("S3 bucket \"archive\": "), "{m}");
            assert!(!m.contains("AKIASECRET"), "{m}");
        }
    }

    #[test]
    fn messages_never_carry_credentials() {
        let e = generic(Text("credentials AKIASECRET could not be loaded".into()));
        let (c, _, m) = class(&e);
        assert_eq!(c, "retry");
        assert!(!m.contains("AKIASECRET"), "{m}");
        assert!(m.contains("****"), "{m}");
    }

    #[test]
    fn echoed_credentials_are_masked_before_the_answer_is_trimmed() {
        let token = "SESSIONTOKEN0123456789";
        let prefix = "Error performing PUT http://h/b/k in 1ms - Server returned non-2xx status code: 400 Bad Request: ";
        // The token starts 5 bytes before the point where the error's text is trimmed.
        let head = generic(Text(prefix.to_owned())).to_string().len();
        let filler = "x".repeat(MAX_ANSWER_BYTES - head - 5);
        let e = generic(Text(format!("{prefix}{filler}{token} and more")));
        let Outcome::Rejected { error, .. } = classify(&e, "b", "PUT k", &Scrubber::new([token]))
        else {
            panic!()
        };
        assert_eq!(error.http_status, Some(400));
        assert!(!error.message.contains("SESSI"), "{}", error.message);
        // An echoed S3 error document: its code and message are masked too.
        let e = generic(s3_error(
            "400 Bad Request",
            "InvalidToken",
            &format!("The token {token} is invalid"),
        ));
        let Outcome::Rejected { error, .. } = classify(&e, "b", "PUT k", &Scrubber::new([token]))
        else {
            panic!()
        };
        assert!(!error.message.contains(token), "{}", error.message);
        assert!(
            error.message.contains("The token **** is invalid"),
            "{}",
            error.message
        );
    }

    #[test]
    fn reads_status_code_and_message() {
        let e = generic(s3_error(
            "503 Service Unavailable",
            "SlowDown",
            "Please reduce your request rate.",
        ));
        let a = S3Answer::read(&e, &Scrubber::default());
        assert_eq!(a.status, Some(503));
        assert_eq!(a.code.as_deref(), Some("SlowDown"));
        assert_eq!(
            a.message.as_deref(),
            Some("Please reduce your request rate.")
        );
        assert_eq!(a.transport, None);
    }
}
