//! HTTP helpers shared by the HTTP sinks: `Retry-After`, transport errors, answer trimming.

use std::time::{Duration, SystemTime};

use super::{trim_answer, DeliveryError, ErrorKind, Outcome};

/// Longest answer text kept in errors and failure events.
pub const MAX_ANSWER_BYTES: usize = 512;

/// Reads a `Retry-After` value: delay seconds or an HTTP date. A date in the past is 0.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of a response, if it has a readable one.
pub fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// A transport-level failure (no HTTP answer): worth retrying, unless the SSRF guard's
/// resolver refused the destination's addresses (the destination is then rejected).
pub fn transport_error(error: &reqwest::Error) -> Outcome {
    if let Some(refusal) = super::ssrf::refusal_in(error) {
        return refusal.outcome();
    }
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Connection
    };
    Outcome::Retry {
        error: DeliveryError {
            kind,
            http_status: None,
            message: describe(error),
        },
        retry_after: None,
    }
}

/// An error's text with its sources, without the URL (which may carry credentials in its
/// query string).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<destination>");
    }
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A `DeliveryError` for an HTTP status, with the answer trimmed.
pub fn status_error(status: u16, body: &[u8]) -> DeliveryError {
    let answer = trim_answer(body, MAX_ANSWER_BYTES);
    DeliveryError {
        kind: ErrorKind::HttpStatus,
        http_status: Some(status),
        message: if answer.is_empty() {
            format!("the destination answered HTTP {status}")
        } else {
            format!("the destination answered HTTP {status}: {answer}")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 22 Nov 2026 08:00:00 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 08:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 22 Nov 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
