//! The `datadog` sink: Event Logs sent to Datadog's Logs API v2 (`POST {intake}/api/v2/logs`)
//! as a JSON array of log items, gzipped by default, authenticated with `DD-API-KEY`.
//!
//! Each item is the event itself with Datadog's reserved attributes added ([`encode`]). A
//! batch larger than one request allows (1000 logs, 5 MB uncompressed) is split into several
//! requests and reported part by part (`Outcome::Partial`); a request refused with 413 is split
//! in halves and sent again. The outcome table is in [`service`] and `docs/sinks.md`.

mod config;
mod encode;
mod service;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};

pub use config::{DatadogConfig, DEFAULT_SITE, DEFAULT_SOURCE, SITES};
pub use encode::{Encoder, Shrink, MAX_BODY_BYTES, MAX_ITEMS, MAX_ITEM_BYTES};
pub use service::{classify, rate_limit_reset, Verdict};

use super::ssrf::Guard;
use super::util::halving::{self, Answer};
use super::util::http::{
    read_limited, retry_after, send_guarded, status_error, transport_error, ANSWER_READ_BYTES,
    MAX_ANSWER_BYTES, USER_AGENT,
};
use super::util::scrub::Scrubber;
use super::util::Compression;
use super::{trim_answer, BuildError, DeliveryError, EncodedBatch, Outcome, Sink};
use courier_core::event::Event;
use courier_core::settings::{DeliveryConfig, Secret, SecurityConfig};

/// The header carrying the API key.
pub const API_KEY_HEADER: &str = "DD-API-KEY";

/// Delivers batches to one Datadog logs intake.
pub struct DatadogSink {
    client: reqwest::Client,
    intake: reqwest::Url,
    validate: reqwest::Url,
    /// The SSRF guard, for an `endpoint` override (the site intakes are courier's own fixed
    /// host names; private links may resolve them to private addresses).
    guard: Option<Guard>,
    headers: HeaderMap,
    api_key: Secret,
    /// Masks the API key in answers.
    scrubber: Scrubber,
    encoder: Encoder,
}

impl std::fmt::Debug for DatadogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatadogSink")
            .field("intake", &self.intake.as_str())
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

/// `base` + `path`, without doubling the slash.
fn join(base: &str, path: &str) -> Result<reqwest::Url, BuildError> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    reqwest::Url::parse(&url).map_err(|e| BuildError::Http(format!("{url}: {e}")))
}

impl DatadogSink {
    /// Builds the sink; the configuration must have passed [`DatadogConfig::validate`]. An
    /// `endpoint` override is reached through the SSRF guard of `security`.
    pub fn new(
        config: &DatadogConfig,
        delivery: &DeliveryConfig,
        security: &SecurityConfig,
    ) -> Result<Self, BuildError> {
        let guard = config.endpoint.as_ref().map(|_| Guard::new(security));
        let mut builder = reqwest::Client::builder();
        if let Some(guard) = &guard {
            builder = guard.install(builder);
        }
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .timeout(delivery.request_timeout)
            .connect_timeout(
                delivery
                    .request_timeout
                    .min(std::time::Duration::from_secs(10)),
            )
            .user_agent(USER_AGENT)
            .pool_max_idle_per_host(delivery.max_in_flight.max(1))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        let (intake, validate) = match &config.endpoint {
            Some(base) => (join(base, "/api/v2/logs")?, join(base, "/api/v1/validate")?),
            None => {
                let site = config.site();
                (
                    join(&format!("https://http-intake.logs.{site}"), "/api/v2/logs")?,
                    join(&format!("https://api.{site}"), "/api/v1/validate")?,
                )
            }
        };
        let mut key = HeaderValue::from_str(config.api_key.expose())
            .map_err(|_| BuildError::Http("api_key: not a valid header value".into()))?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(API_KEY_HEADER, key);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if config.compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Ok(Self {
            client,
            intake,
            validate,
            guard,
            headers,
            api_key: config.api_key.clone(),
            scrubber: Scrubber::new([config.api_key.expose()]),
            encoder: Encoder::new(
                config.source.as_deref().unwrap_or(DEFAULT_SOURCE),
                config.service.as_deref(),
                config.hostname.as_deref(),
                &config.tags,
                config.compression,
            ),
        })
    }

    /// Where logs are sent.
    pub fn intake_url(&self) -> &reqwest::Url {
        &self.intake
    }

    /// Checks the API key with Datadog (`GET https://api.<site>/api/v1/validate`, or
    /// `{endpoint}/api/v1/validate`): `Ok` with a description when Datadog accepts it.
    pub async fn check(&self) -> Result<String, DeliveryError> {
        if let Some(guard) = &self.guard {
            guard
                .check_url(&self.validate)
                .map_err(|r| r.delivery_error())?;
        }
        let key = self.headers.get(API_KEY_HEADER).cloned();
        let mut request = self.client.get(self.validate.clone());
        if let Some(key) = key {
            request = request.header(API_KEY_HEADER, key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| match transport_error(&e) {
                Outcome::Retry { error, .. } | Outcome::Rejected { error, .. } => error,
                _ => unreachable!("transport errors are retried or refused"),
            })?;
        let status = response.status().as_u16();
        let answer = read_limited(response, ANSWER_READ_BYTES).await;
        let answer = self.scrubber.clean(&answer.body, answer.complete);
        let text = trim_answer(&answer, MAX_ANSWER_BYTES);
        match status {
            200..=299 => {
                let valid = serde_json::from_slice::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| v.get("valid").and_then(serde_json::Value::as_bool));
                if valid == Some(false) {
                    Err(DeliveryError {
                        message: format!("Datadog did not validate the API key: {text}"),
                        ..status_error(status, &answer)
                    })
                } else {
                    Ok(format!(
                        "Datadog accepted the API key ({} answered {status}: {text})",
                        self.validate
                    ))
                }
            }
            401 | 403 => Err(DeliveryError {
                message: format!("Datadog rejected the API key ({status}): {text}"),
                ..status_error(status, &answer)
            }),
            _ => Err(status_error(status, &answer)),
        }
    }

    /// Sends one request body of `logs` logs.
    async fn post(&self, body: Bytes, logs: usize) -> Verdict {
        let request = self
            .client
            .post(self.intake.clone())
            .headers(self.headers.clone())
            .body(body);
        let response = match send_guarded(self.guard.as_ref(), &self.intake, request).await {
            Ok(r) => r,
            Err(outcome) => return Verdict::Outcome(outcome),
        };
        let status = response.status().as_u16();
        let mut after = retry_after(&response);
        if after.is_none() && status == 429 {
            after = service::rate_limit_reset(&response);
        }
        let answer = read_limited(response, ANSWER_READ_BYTES).await;
        let answer = self.scrubber.clean(&answer.body, answer.complete);
        classify(status, &answer, after, logs)
    }

    /// Counts (and logs) the delivered events whose item had to be shrunk.
    fn count_shrunk(&self, events: &[Event]) {
        for e in events {
            if self.encoder.shrinks(&e.raw) {
                courier_core::metrics::truncated_events()
                    .with_label_values(&["datadog"])
                    .inc();
                tracing::warn!(
                    partition = e.partition,
                    offset = e.offset,
                    bytes = e.raw.len(),
                    "event delivered to Datadog shrunk to fit its {MAX_ITEM_BYTES}-byte log limit"
                );
            }
        }
    }
}

/// A one-line description of a destination for `courier validate`, without the API key.
pub fn describe(config: &DatadogConfig) -> String {
    let target = match &config.endpoint {
        Some(endpoint) => format!("endpoint {endpoint}"),
        None => format!("site {}", config.site()),
    };
    let mut text = format!("datadog {target}");
    if let Some(service) = &config.service {
        text.push_str(&format!(", service {service}"));
    }
    if !config.tags.is_empty() {
        let n = config.tags.len();
        text.push_str(&format!(", {n} tag{}", if n == 1 { "" } else { "s" }));
    }
    if config.compression == Compression::None {
        text.push_str(", uncompressed");
    }
    text
}

#[async_trait]
impl Sink for DatadogSink {
    fn secrets(&self) -> Scrubber {
        self.scrubber.clone()
    }

    async fn check(&self) -> Result<String, DeliveryError> {
        DatadogSink::check(self).await
    }

    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError> {
        self.encoder.batch(events, self.intake.as_str())
    }

    async fn send(&self, events: &[Event], batch: &EncodedBatch) -> Outcome {
        let results = halving::send(
            &batch.body,
            events.len(),
            || self.encode(events).ok().map(|b| b.body),
            |range| self.encoder.request(&events[range]),
            |body, range| async move {
                match self.post(body, range.len()).await {
                    Verdict::Split => Answer::Split,
                    Verdict::Outcome(outcome) => {
                        if outcome == Outcome::Delivered {
                            self.count_shrunk(&events[range]);
                        }
                        Answer::Outcome(outcome)
                    }
                }
            },
            |_, never: std::convert::Infallible, _| match never {},
            "Datadog",
            "logs",
        )
        .await;
        match results {
            Ok(results) => halving::merge(results),
            Err(outcome) => outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_site() {
        let config: DatadogConfig = serde_json::from_value(serde_json::json!({
            "api_key": "k", "site": "datadoghq.eu"
        }))
        .unwrap();
        let sink = DatadogSink::new(
            &config,
            &DeliveryConfig::default(),
            &SecurityConfig::default(),
        )
        .unwrap();
        assert_eq!(
            sink.intake.as_str(),
            "https://http-intake.logs.datadoghq.eu/api/v2/logs"
        );
        assert_eq!(
            sink.validate.as_str(),
            "https://api.datadoghq.eu/api/v1/validate"
        );
        let config: DatadogConfig = serde_json::from_value(serde_json::json!({
            "api_key": "sekrit", "endpoint": "http://127.0.0.1:9/proxy/"
        }))
        .unwrap();
        let sink = DatadogSink::new(
            &config,
            &DeliveryConfig::default(),
            &SecurityConfig::default(),
        )
        .unwrap();
        assert_eq!(sink.intake.as_str(), "http://127.0.0.1:9/proxy/api/v2/logs");
        assert_eq!(
            sink.validate.as_str(),
            "http://127.0.0.1:9/proxy/api/v1/validate"
        );
        assert!(!format!("{sink:?}").contains("sekrit"));
    }
}
