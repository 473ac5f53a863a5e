//! HTTP helpers shared by the HTTP sinks: reading answers with a size limit, `Retry-After`,
//! transport errors, answer trimming.
//!
//! A destination's answer is read only as far as courier uses it ([`read_limited`]): an
//! endpoint that answers with an endless (or merely huge) body would otherwise grow memory for
//! as long as `request_timeout` lets it, for each of `max_in_flight` requests of each
//! destination, outside the in-flight budget. The rest of a longer answer is not read: the
//! connection is closed instead of being drained back into the pool.

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};

use crate::ssrf::Guard;
use crate::{trim_answer, BuildError, DeliveryError, ErrorKind, Outcome};

/// `base` (an endpoint, with or without a trailing slash) followed by `path`.
pub fn join_url(base: &str, path: &str) -> Result<reqwest::Url, BuildError> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    reqwest::Url::parse(&url).map_err(|e| BuildError::Http(format!("{url}: {e}")))
}

/// Sends `request` (to `url`) the way every HTTP sink sends a batch: a literal IP host is
/// checked by `guard` first (it is never resolved, so the guard's resolver cannot vet it),
/// and a refusal or a transport error is already the [`Outcome`]. `guard` is `None` only for
/// hosts courier itself chose (Datadog's site intakes).
pub async fn send_guarded(
    guard: Option<&Guard>,
    url: &reqwest::Url,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, Outcome> {
    if let Some(Err(refusal)) = guard.map(|g| g.check_url(url)) {
        return Err(refusal.outcome());
    }
    request.send().await.map_err(|e| transport_error(&e))
}

/// The longest `Retry-After` courier honours; a longer one is clamped to this (by the sinks,
/// so that outcomes carry the delay courier keeps, and by the lane's retry schedule).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The `User-Agent` of every request courier sends to a destination.
pub const USER_AGENT: &str = concat!("courier/", env!("CARGO_PKG_VERSION"));

/// Longest answer text kept in errors and failure events.
pub const MAX_ANSWER_BYTES: usize = 512;

/// How much of an answer is read when only its text is kept (webhook, Datadog): more than
/// [`MAX_ANSWER_BYTES`], so that a secret the answer echoes is masked whole before the text is
/// trimmed, and enough for the small JSON answers courier reads (Datadog's key validation).
pub const ANSWER_READ_BYTES: usize = 8 * 1024;

/// The start of an answer, read by [`read_limited`].
#[derive(Debug, Default)]
pub struct Limited {
    /// What was read: at most the limit.
    pub body: Bytes,
    /// False when the answer went on past the limit (the rest was not read).
    pub complete: bool,
    /// Reading failed after `body` (timeout, broken connection).
    pub error: Option<reqwest::Error>,
}

/// Reads at most `max` bytes of `response`'s body, chunk by chunk, and stops there: an answer
/// longer than that is cut (`complete` false) and the rest is never read; dropping the response
/// closes its connection. A read error ends the body early and is returned with what was read.
pub async fn read_limited(mut response: reqwest::Response, max: usize) -> Limited {
    let mut body = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = max - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    return Limited {
                        body: body.freeze(),
                        complete: false,
                        error: None,
                    };
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => {
                return Limited {
                    body: body.freeze(),
                    complete: true,
                    error: None,
                }
            }
            Err(e) => {
                return Limited {
                    body: body.freeze(),
                    complete: false,
                    error: Some(e),
                }
            }
        }
    }
}

/// Reads a `Retry-After` value: delay seconds or an HTTP date. A date in the past is 0; a
/// delay past [`MAX_RETRY_AFTER`], the longest courier waits,
/// reads as that, so that outcomes (and the test answers and logs that show them) carry the
/// delay courier keeps, never an endpoint's `18446744073709551615`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(delay.min(MAX_RETRY_AFTER))
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
    if let Some(refusal) = crate::ssrf::refusal_in(error) {
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

/// Checks a base URL (`endpoint`): http or https, a host, no query or fragment.
pub fn check_base_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "scheme must be http or https, not {:?}",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must be a base URL without a query or fragment".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials (give api_key instead)".into());
    }
    Ok(())
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
        // Longer than courier waits: the longest it waits.
        let max = MAX_RETRY_AFTER;
        assert_eq!(parse_retry_after("301", now), Some(max));
        assert_eq!(parse_retry_after("18446744073709551615", now), Some(max));
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            Some(max)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
