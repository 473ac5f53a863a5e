//! The `webhook` sink: batches POSTed as a JSON array or NDJSON of the unchanged events, with
//! optional gzip and Standard Webhooks signatures — or, for receivers with a format of their
//! own (Slack, Teams, New Relic, PagerDuty), a body rendered by a sandboxed template
//! ([`template`], [`presets`]). Only templated destinations parse their events; the others
//! keep the byte-copying fast path.
//!
//! Outcomes: 2xx delivered; 408, 429 and 5xx except 501, timeouts and connection errors are
//! retried; 410 rejects the destination's configuration (its circuit opens); every other
//! status (3xx — redirects are not followed — and 4xx, 501) rejects the batch.
//!
//! Answers are read up to [`ANSWER_READ_BYTES`] and the configured header values, the secret
//! and the request's signature are masked in them before any of it is kept ([`Scrubber`]).

mod config;
mod encode;
pub mod presets;
mod signature;
pub mod template;

use std::collections::HashMap;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};

pub use config::{default_filter, delivery_defaults, Compression, WebhookConfig, WebhookFormat};
pub use signature::{InvalidSecret, SigningKey};

use super::ssrf::Guard;
use super::util::http::{read_limited, retry_after, send_guarded, status_error, ANSWER_READ_BYTES};
use super::util::scrub::Scrubber;
use super::{BuildError, DeliveryError, EncodedBatch, Outcome, RejectScope, Sink};
use courier_core::event::Event;
use courier_core::settings::{DeliveryConfig, SecurityConfig};

/// The `User-Agent` of every request.
pub use crate::util::http::USER_AGENT;

/// Delivers batches to one webhook URL.
pub struct WebhookSink {
    client: reqwest::Client,
    /// `request_timeout`: one request, from sending to the end of the answer.
    timeout: std::time::Duration,
    url: reqwest::Url,
    guard: Guard,
    headers: HeaderMap,
    key: Option<SigningKey>,
    /// Masks the configured header values and secret in answers.
    scrubber: Scrubber,
    format: WebhookFormat,
    compression: Compression,
    /// The body template, when the destination has one (else the raw fast path).
    template: Option<Templated>,
}

/// A templated destination's template and what its context names.
struct Templated {
    template: template::BodyTemplate,
    project: String,
    destination: String,
    secret: Option<courier_core::settings::Secret>,
}

impl WebhookSink {
    /// Builds the sink; the configuration must have passed [`WebhookConfig::validate`].
    /// Connections follow the SSRF guard of `security` ([`super::ssrf`]).
    pub fn new(
        config: &WebhookConfig,
        delivery: &DeliveryConfig,
        security: &SecurityConfig,
    ) -> Result<Self, BuildError> {
        let guard = Guard::new(security);
        let client = shared_client(&guard, security, delivery)?;
        let url = reqwest::Url::parse(&config.url).map_err(|e| BuildError::Http(e.to_string()))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| BuildError::Http(format!("header name: {e}")))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| BuildError::Http(format!("header {name}: invalid value")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let content_type = match (config.template_source(), config.body_format()) {
            (Some(_), _) => config.content_type.as_deref().unwrap_or("application/json"),
            (None, WebhookFormat::JsonArray) => "application/json",
            (None, WebhookFormat::Ndjson) => "application/x-ndjson",
        };
        let content_type = HeaderValue::from_str(content_type)
            .map_err(|_| BuildError::Http("content_type: invalid value".into()))?;
        headers.insert(CONTENT_TYPE, content_type);
        let template = match config.template_source() {
            Some(source) => Some(Templated {
                template: template::BodyTemplate::compile(source, template::Limits::default())
                    .map_err(|e| BuildError::Http(format!("template: {e}")))?,
                project: String::new(),
                destination: String::new(),
                secret: config.template_secret.clone(),
            }),
            None => None,
        };
        if config.compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let key = match &config.secret {
            Some(s) => Some(
                SigningKey::from_secret(s.expose())
                    .map_err(|e| BuildError::Http(format!("secret: {e}")))?,
            ),
            None => None,
        };
        Ok(Self {
            client,
            timeout: delivery.request_timeout,
            url,
            guard,
            headers,
            key,
            scrubber: Scrubber::new(
                config
                    .headers
                    .values()
                    .chain(config.secret.as_ref())
                    .chain(config.template_secret.as_ref())
                    .map(|s| s.expose()),
            ),
            format: config.body_format(),
            compression: config.compression,
            template,
        })
    }

    /// Names the destination, for a template's `project` and `destination`.
    pub fn named(mut self, project: &str, destination: &str) -> Self {
        if let Some(t) = &mut self.template {
            t.project = project.to_owned();
            t.destination = destination.to_owned();
        }
        self
    }

    /// Renders a batch with the template: the body of the events that render, and the
    /// others refused one by one.
    fn render(
        &self,
        t: &Templated,
        events: &[Event],
    ) -> Result<(EncodedBatch, Vec<(usize, DeliveryError)>), DeliveryError> {
        let meta = template::Meta {
            project: &t.project,
            destination: &t.destination,
            secret: t.secret.as_ref().map(|s| s.expose()),
        };
        let id = |kept: &[usize]| {
            let kept: Vec<Event> = kept.iter().map(|&i| events[i].clone()).collect();
            crate::batch_id(self.url.as_str(), &kept)
        };
        let rendered = template::render_batch(&t.template, events, id, &meta)?;
        let uncompressed_bytes = rendered.body.len();
        let body = self.compression.apply(rendered.body)?;
        Ok((
            EncodedBatch {
                body: bytes::Bytes::from(body),
                id: id(&rendered.kept),
                events: rendered.kept.len(),
                uncompressed_bytes,
                verbatim: None,
            },
            rendered.refused,
        ))
    }
}

/// The HTTP client of webhook sinks with these settings, built once per process.
///
/// Building a client loads the TLS root certificates (milliseconds and over 100 KB each): with
/// one client per destination, 1,000 destinations took 3 CPU seconds to start and 150 MB of
/// memory (docs/benchmarks.md). Destinations keep their own request limit (their lane),
/// timeout (set per request) and URL; idle connections to one host are pooled across them,
/// at most as many as were in use at once (the sum of their `max_in_flight`).
fn shared_client(
    guard: &Guard,
    security: &SecurityConfig,
    delivery: &DeliveryConfig,
) -> Result<reqwest::Client, BuildError> {
    type Key = (Vec<ipnet::IpNet>, bool, std::time::Duration);
    static CLIENTS: std::sync::LazyLock<std::sync::Mutex<HashMap<Key, reqwest::Client>>> =
        std::sync::LazyLock::new(Default::default);
    let connect_timeout = delivery
        .request_timeout
        .min(std::time::Duration::from_secs(10));
    let key = (
        security.allow_networks.clone(),
        security.https_only,
        connect_timeout,
    );
    let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(client) = clients.get(&key) {
        return Ok(client.clone());
    }
    let client = guard
        .install(reqwest::Client::builder())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| BuildError::Http(e.to_string()))?;
    clients.insert(key, client.clone());
    Ok(client)
}

/// Classifies an HTTP status by the webhook contract.
pub fn classify(status: u16, body: &[u8], retry_after: Option<std::time::Duration>) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500 | 502..=599 => Outcome::Retry {
            error: status_error(status, body),
            retry_after,
        },
        410 => Outcome::Rejected {
            error: DeliveryError {
                message: format!(
                    "{}; the endpoint is gone (410): check the destination's URL",
                    status_error(status, body).message
                ),
                ..status_error(status, body)
            },
            scope: RejectScope::Destination,
        },
        _ => Outcome::Rejected {
            error: status_error(status, body),
            scope: RejectScope::Data,
        },
    }
}

#[async_trait]
impl Sink for WebhookSink {
    fn secrets(&self) -> Scrubber {
        self.scrubber.clone()
    }

    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError> {
        match &self.template {
            None => encode::encode(events, self.format, self.compression, self.url.as_str()),
            Some(t) => match self.render(t, events)? {
                (batch, refused) if refused.is_empty() => Ok(batch),
                (_, mut refused) => Err(refused.swap_remove(0).1),
            },
        }
    }

    fn encode_checked(
        &self,
        events: &[Event],
    ) -> Result<(EncodedBatch, Vec<(usize, DeliveryError)>), DeliveryError> {
        match &self.template {
            None => Ok((self.encode(events)?, Vec::new())),
            Some(t) => self.render(t, events),
        }
    }

    fn preview(&self, batch: &EncodedBatch) -> Option<String> {
        self.template.as_ref()?;
        let mut body = batch.body.to_vec();
        if self.compression == Compression::Gzip {
            use std::io::Read as _;
            let mut plain = Vec::new();
            let mut reader = flate2::read::GzDecoder::new(&batch.body[..]);
            if reader.read_to_end(&mut plain).is_err() {
                return Some(format!("({} bytes, gzip)", batch.body.len()));
            }
            body = plain;
        }
        Some(self.scrubber.clean_text(&String::from_utf8_lossy(&body)))
    }

    async fn send(&self, _events: &[Event], batch: &EncodedBatch) -> Outcome {
        let mut request = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .headers(self.headers.clone())
            .body(batch.body.clone());
        let mut signature = None;
        if let Some(key) = &self.key {
            let timestamp = chrono::Utc::now().timestamp();
            let signed = key.sign(&batch.id, timestamp, &batch.body);
            request = request
                .header("webhook-id", &batch.id)
                .header("webhook-timestamp", timestamp)
                .header("webhook-signature", &signed);
            signature = Some(signed);
        }
        let response = match send_guarded(Some(&self.guard), &self.url, request).await {
            Ok(r) => r,
            Err(outcome) => return outcome,
        };
        let status = response.status().as_u16();
        let after = retry_after(&response);
        // A short answer is read to its end, so the connection goes back to the pool.
        let answer = read_limited(response, ANSWER_READ_BYTES).await;
        if (200..300).contains(&status) {
            return Outcome::Delivered;
        }
        let scrubber = match &signature {
            Some(signature) => self.scrubber.with(signature),
            None => self.scrubber.clone(),
        };
        classify(
            status,
            &scrubber.clean(&answer.body, answer.complete),
            after,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use std::time::Duration;

    fn class(status: u16) -> &'static str {
        match classify(status, b"", None) {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Rejected {
                scope: RejectScope::Data,
                ..
            } => "rejected",
            Outcome::Rejected {
                scope: RejectScope::Destination,
                ..
            } => "disabled",
            Outcome::Partial(_) => "partial",
        }
    }

    #[test]
    fn classification_follows_the_contract() {
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(class(s), "delivered", "{s}");
        }
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(class(s), "retry", "{s}");
        }
        assert_eq!(class(410), "disabled");
        for s in [
            300, 301, 302, 307, 308, 400, 401, 403, 404, 409, 413, 422, 501,
        ] {
            assert_eq!(class(s), "rejected", "{s}");
        }
    }

    #[test]
    fn retry_after_and_answer_are_kept() {
        match classify(429, b"slow down", Some(Duration::from_secs(3))) {
            Outcome::Retry { error, retry_after } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)));
                assert_eq!(error.kind, ErrorKind::HttpStatus);
                assert_eq!(error.http_status, Some(429));
                assert!(error.message.contains("slow down"));
            }
            other => panic!("{other:?}"),
        }
    }
}
