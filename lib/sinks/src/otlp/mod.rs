//! The `otlp` sink: Event Logs sent as OpenTelemetry logs over OTLP/HTTP
//! (`POST {endpoint}{logs_path}`, default path `/v1/logs`), the protocol most log, analytics
//! and APM services accept natively (New Relic, Honeycomb, Grafana Cloud, Datadog's OTLP
//! intake, any OpenTelemetry Collector), so one sink reaches all of them.
//!
//! Each event becomes one `LogRecord` ([`encode`]: the mapping, with `traceId` as the record's
//! `trace_id` so forwarded logs join the customer's own traces). Requests are binary protobuf
//! by default or OTLP/JSON, gzipped by default, with the configured headers (API keys, secrets).
//! A batch larger than `max_request_bytes` is split into several requests and reported part
//! by part; a request refused with 413 is halved and sent again. Answers are classified by
//! the OTLP specification ([`service`]).

mod config;
mod encode;
mod service;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};

pub use config::{
    Encoding, OtlpConfig, TlsConfig, DEFAULT_LOGS_PATH, DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_SERVICE_NAME,
};
pub use encode::{any, map_event, severity, trace_id, Encoder, Mapped, PROJECT_ATTRIBUTE};
pub use service::{classify, success, Reply, Success, Verdict};

use super::ssrf::Guard;
use super::util::halving::{self, Answer};
use super::util::http::{read_limited, retry_after, send_guarded, ANSWER_READ_BYTES, USER_AGENT};
use super::util::scrub::Scrubber;
use super::util::Compression;
use super::{BuildError, DeliveryError, EncodedBatch, Outcome, Sink};
use courier_core::event::Event;
use courier_core::settings::{DeliveryConfig, SecurityConfig};

/// Delivers batches to one OTLP/HTTP logs receiver.
pub struct OtlpSink {
    client: reqwest::Client,
    url: reqwest::Url,
    guard: Guard,
    headers: HeaderMap,
    encoding: Encoding,
    /// Masks the configured header values in answers.
    scrubber: Scrubber,
    encoder: Encoder,
}

impl std::fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSink")
            .field("url", &self.url.as_str())
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

/// `endpoint` + `logs_path`, without doubling the slash.
pub fn logs_url(endpoint: &str, logs_path: &str) -> Result<reqwest::Url, BuildError> {
    crate::util::http::join_url(endpoint, logs_path)
}

impl OtlpSink {
    /// Builds the sink (reading `tls.ca_file`); the configuration must have passed
    /// [`OtlpConfig::validate`]. The endpoint is reached through the SSRF guard of `security`.
    pub fn new(
        config: &OtlpConfig,
        delivery: &DeliveryConfig,
        security: &SecurityConfig,
    ) -> Result<Self, BuildError> {
        let guard = Guard::new(security);
        let builder = guard.install(reqwest::Client::builder());
        let client = config
            .tls
            .apply(builder, &config.endpoint, "OTLP receiver")?
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
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BuildError::Http(format!("headers: {name:?} is not a header name")))?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                BuildError::Http(format!("headers.{name}: not a valid header value"))
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(config.encoding.content_type()),
        );
        if config.compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Ok(Self {
            client,
            url: logs_url(&config.endpoint, &config.logs_path)?,
            guard,
            headers,
            encoding: config.encoding,
            scrubber: Scrubber::new(config.headers.values().map(|v| v.expose())),
            encoder: Encoder::new(
                config.encoding,
                config.compression,
                config.max_request_bytes,
                &config.service_name,
                &config.resource_attributes,
            ),
        })
    }

    /// Where logs are sent.
    pub fn logs_url(&self) -> &reqwest::Url {
        &self.url
    }

    /// Sends one request body of `records` records and classifies the answer.
    async fn post(&self, body: Bytes, records: usize) -> Verdict {
        let request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body);
        let response = match send_guarded(Some(&self.guard), &self.url, request).await {
            Ok(r) => r,
            Err(outcome) => return Verdict::Outcome(outcome),
        };
        let status = response.status().as_u16();
        let after = retry_after(&response);
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let read = read_limited(response, ANSWER_READ_BYTES).await;
        let answer = Reply::read(
            &read.body,
            read.complete,
            content_type.as_deref(),
            self.encoding,
            &self.scrubber,
        );
        classify(status, &answer, after, records)
    }
}

/// How many log records an uncompressed export request body holds (`json`: OTLP/JSON, else
/// protobuf); `None` when it is not an `ExportLogsServiceRequest`. For local receivers that
/// count what they got (`courier demo`).
pub fn count_records(body: &[u8], json: bool) -> Option<usize> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use prost::Message;
    let request: ExportLogsServiceRequest = if json {
        serde_json::from_slice(body).ok()?
    } else {
        ExportLogsServiceRequest::decode(body).ok()?
    };
    Some(
        request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum(),
    )
}

/// A one-line description of a destination for `courier validate`, without header values.
pub fn describe(config: &OtlpConfig) -> String {
    let url = logs_url(&config.endpoint, &config.logs_path)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| config.endpoint.clone());
    let encoding = match config.encoding {
        Encoding::Protobuf => "protobuf",
        Encoding::Json => "json",
    };
    let mut text = format!("otlp {url} ({encoding}");
    if config.compression == Compression::Gzip {
        text.push_str(", gzip");
    }
    text.push(')');
    if !config.headers.is_empty() {
        let names: Vec<&str> = config.headers.keys().map(String::as_str).collect();
        text.push_str(&format!(", headers {}", names.join(", ")));
    }
    text.push_str(&format!(", service.name {}", config.service_name));
    if config.tls.insecure_skip_verify {
        text.push_str(", TLS NOT VERIFIED");
    }
    text
}

#[async_trait]
impl Sink for OtlpSink {
    fn secrets(&self) -> Scrubber {
        self.scrubber.clone()
    }

    /// Sends an export request without records: a receiver answers it like any other, so it
    /// checks the URL, the path and the credentials without delivering anything.
    async fn check(&self) -> Result<String, DeliveryError> {
        let body = self.encoder.empty_request()?;
        match self.post(body, 0).await {
            Verdict::Outcome(Outcome::Delivered) => Ok(format!(
                "{} accepted an empty export request",
                self.url
            )),
            Verdict::Outcome(
                Outcome::Retry { error, .. } | Outcome::Rejected { error, .. },
            ) => Err(error),
            Verdict::Outcome(Outcome::Partial(_)) | Verdict::Split => Ok(format!(
                "{} answered an empty export request oddly (413 or a partial success); the test event shows more",
                self.url
            )),
        }
    }

    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError> {
        self.encoder.batch(events, self.url.as_str())
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
                    Verdict::Outcome(outcome) => Answer::Outcome(outcome),
                }
            },
            |_, never: std::convert::Infallible, _| match never {},
            "the OTLP receiver",
            "log records",
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
    fn url_and_description_hide_secrets() {
        let config: OtlpConfig = serde_json::from_value(serde_json::json!({
            "endpoint": "https://otlp.example:4318/",
            "headers": { "api-key": "sekrit-value" }
        }))
        .unwrap();
        let sink = OtlpSink::new(
            &config,
            &DeliveryConfig::default(),
            &SecurityConfig::default(),
        )
        .unwrap();
        assert_eq!(
            sink.logs_url().as_str(),
            "https://otlp.example:4318/v1/logs"
        );
        assert!(!format!("{sink:?}").contains("sekrit"));
        let events: Vec<Event> = (0..3)
            .map(|i| {
                courier_core::event::test_event(&br#"{"projectId":"p","message":"m"}"#[..], 0, i)
            })
            .collect();
        let body = sink.encoder.request(&events).unwrap();
        let plain = flate2::read::GzDecoder::new(&body[..]);
        let plain: Vec<u8> = std::io::Read::bytes(plain).map(Result::unwrap).collect();
        assert_eq!(count_records(&plain, false), Some(3));
        assert_eq!(count_records(br#"{"resourceLogs":[]}"#, true), Some(0));
        assert_eq!(count_records(b"[1]", true), None);
        let d = describe(&config);
        assert_eq!(
            d,
            "otlp https://otlp.example:4318/v1/logs (protobuf, gzip), headers api-key, service.name paragon"
        );
    }
}
