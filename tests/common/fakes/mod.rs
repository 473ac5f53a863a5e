//! Fakes of the services courier delivers to, each an HTTP server in the test process on a
//! free loopback port: a customer's webhook endpoint ([`webhook`]), Datadog's logs intake
//! ([`datadog`]), a Splunk HTTP Event Collector ([`splunk`]), the services of the webhook
//! presets — Slack, Teams, New Relic, PagerDuty ([`presets`]) — and a server that answers by a
//! script with hostile answers — endless bodies, echoed credentials ([`scripted`]).
//!
//! Each service fake ENFORCES the service's documented contract — a request that breaks it gets
//! the answer the real service documents (webhook: 400 and a recorded violation; Datadog:
//! 401/403 for the key, 400 for the body, 413 over 5 MB; Splunk: the HEC status codes) and is
//! recorded — and can be told to misbehave: the webhook receiver through its [`Behaviour`],
//! Datadog and Splunk through a hook that sees each valid request and may answer in its place
//! (413 once, 429 with Retry-After, 503 storms, slow answers, code 6, late or missing
//! acknowledgements).
//!
//! [`Behaviour`]: webhook::Behaviour

pub mod datadog;
pub mod presets;
pub mod scripted;
pub mod splunk;
pub mod webhook;

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;

/// An answer a hook substitutes for the fake's own.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: String,
    /// `Retry-After` value.
    pub retry_after: Option<String>,
    /// Wait this long before answering (slow destinations, timeouts).
    pub delay: Duration,
    /// Send the status and headers at once, then the body one byte per this interval.
    pub trickle: Option<Duration>,
}

impl Reply {
    /// A status with a body.
    pub fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
            retry_after: None,
            delay: Duration::ZERO,
            trickle: None,
        }
    }

    /// With `Retry-After: value`.
    pub fn retry_after(mut self, value: &str) -> Reply {
        self.retry_after = Some(value.to_owned());
        self
    }

    /// Answered after `delay`.
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// Status and headers at once, then the body one byte per `interval`.
    pub fn trickle(mut self, interval: Duration) -> Reply {
        self.trickle = Some(interval);
        self
    }
}

pub(crate) async fn respond(reply: Reply) -> Response {
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(reply.status).expect("valid status"))
        .header("content-type", "application/json");
    if let Some(r) = &reply.retry_after {
        builder = builder.header("retry-after", r);
    }
    let body = match reply.trickle {
        None => Body::from(reply.body),
        Some(interval) => {
            let bytes = reply.body.into_bytes();
            let stream = futures::stream::unfold(0usize, move |i| {
                let next = bytes.get(i).copied();
                async move {
                    tokio::time::sleep(interval).await;
                    next.map(|b| (Ok::<_, std::io::Error>(vec![b]), i + 1))
                }
            });
            Body::from_stream(stream)
        }
    };
    builder.body(body).expect("response")
}

/// Gunzips a body when `Content-Encoding: gzip` says so.
pub(crate) fn decode_body(encoding: Option<&str>, body: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    match encoding {
        None => Ok(body.to_vec()),
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .map_err(|e| {
                    format!("Content-Encoding: gzip, but the body does not gunzip: {e}")
                })?;
            Ok(out)
        }
        Some(other) => Err(format!("unsupported Content-Encoding {other:?}")),
    }
}

/// The keys of a JSON object in order, duplicates included (a parsed `Value` would hide them).
pub fn object_keys(json: &str) -> Result<Vec<String>, String> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some(k) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                keys.push(k);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    de.deserialize_map(Keys).map_err(|e| e.to_string())
}
