//! The `splunk_hec` sink: Event Logs sent to a Splunk HTTP Event Collector
//! (`POST {endpoint}/services/collector/event`, `Authorization: Splunk <token>`), each event
//! wrapped in a HEC event object ([`encode`]), optionally gzipped, with optional indexer
//! acknowledgement ([`ack`]).
//!
//! A batch larger than `max_request_bytes` is split into several requests and reported part
//! by part (`Outcome::Partial`), as is a request the collector answered with code 6 (events
//! before the invalid one were indexed). The outcome table is in [`service`] and
//! `docs/sinks.md`.
//!
//! The collector's JSON answers are read up to [`HEC_ANSWER_BYTES`], and the token is masked
//! in them before any of it is kept.

mod ack;
mod config;
mod encode;
mod service;

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};

pub use ack::{classify_ack, AckVerdict, FIRST_POLL, MAX_ACKS_PER_QUERY, MAX_POLL_INTERVAL};
pub use config::{
    SplunkConfig, TlsConfig, DEFAULT_ACK_TIMEOUT, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_SOURCETYPE,
};
pub use encode::Encoder;
pub use service::{classify, HecAnswer, Verdict};

use super::ssrf::Guard;
use super::util::halving::{self, Answer, Results};
use super::util::http::{
    join_url, read_limited, retry_after, send_guarded, status_error, transport_error,
    MAX_ANSWER_BYTES, USER_AGENT,
};
use super::util::scrub::Scrubber;
use super::util::Compression;
use super::{
    trim_answer, BuildError, DeliveryError, EncodedBatch, ErrorKind, Outcome, RejectScope, Sink,
};
use courier_core::event::Event;
use courier_core::settings::{DeliveryConfig, Secret, SecurityConfig};

/// The header naming the data channel.
pub const CHANNEL_HEADER: &str = "X-Splunk-Request-Channel";

/// How much of a collector's answer is read. Its answers are small JSON objects (an event
/// answer is under 100 bytes; an acknowledgement answer for [`MAX_ACKS_PER_QUERY`] ids is
/// under 30 KB): a longer answer is not the collector's, and its rest is not read.
pub const HEC_ANSWER_BYTES: usize = 64 * 1024;

/// The answers to a request that only the Splunk sink has (the [`Verdict`]s beyond an outcome
/// and a split), settled by [`SplunkSink::settle`] inside the shared send loop.
enum Accepted {
    /// Accepted; complete once the collector confirms this `ackId`.
    AwaitAck(u64),
    /// Accepted without an `ackId` while `ack = true`.
    WithoutAck,
    /// Events before `index` were indexed, that one is invalid, the rest were not processed.
    UpTo { index: usize, error: DeliveryError },
}

/// Delivers batches to one Splunk HTTP Event Collector.
pub struct SplunkSink {
    client: reqwest::Client,
    event_url: reqwest::Url,
    ack_url: reqwest::Url,
    health_url: reqwest::Url,
    /// The SSRF guard (its resolver is installed in `client`).
    guard: Guard,
    /// Authorization, content type and encoding, and the channel when `ack` is on.
    headers: HeaderMap,
    /// Authorization and channel, for acknowledgement queries and health checks.
    query_headers: HeaderMap,
    token: Secret,
    /// Masks the token in answers.
    scrubber: Scrubber,
    channel: String,
    ack: bool,
    ack_timeout: std::time::Duration,
    index: Option<String>,
    encoder: Encoder,
    warned_no_ack_id: AtomicBool,
}

impl std::fmt::Debug for SplunkSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplunkSink")
            .field("event_url", &self.event_url.as_str())
            .field("token", &self.token)
            .field("channel", &self.channel)
            .field("ack", &self.ack)
            .finish_non_exhaustive()
    }
}

/// A random (version 4) UUID, the form Splunk expects of a channel identifier.
pub fn new_channel() -> String {
    let mut b = [0u8; 16];
    for byte in &mut b {
        *byte = fastrand::u8(..);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A one-line description of a destination for `courier validate`, without the token.
pub fn describe(config: &SplunkConfig) -> String {
    let mut text = format!("splunk_hec {}", config.endpoint);
    if let Some(index) = &config.index {
        text.push_str(&format!(", index {index}"));
    }
    if config.ack {
        text.push_str(&format!(
            ", indexer acknowledgement (timeout {})",
            humantime::format_duration(config.ack_timeout)
        ));
    }
    if config.compression == Compression::Gzip {
        text.push_str(", gzip");
    }
    if config.tls.insecure_skip_verify {
        text.push_str(", TLS NOT VERIFIED");
    }
    text
}

impl SplunkSink {
    /// Builds the sink (reading `tls.ca_file`); the configuration must have passed
    /// [`SplunkConfig::validate`]. Connections follow the SSRF guard of `security`.
    pub fn new(
        config: &SplunkConfig,
        delivery: &DeliveryConfig,
        security: &SecurityConfig,
    ) -> Result<Self, BuildError> {
        let guard = Guard::new(security);
        let mut builder = guard
            .install(reqwest::Client::builder())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(delivery.request_timeout)
            .connect_timeout(
                delivery
                    .request_timeout
                    .min(std::time::Duration::from_secs(10)),
            )
            .user_agent(USER_AGENT)
            .pool_max_idle_per_host(delivery.max_in_flight.max(1));
        if let Some(path) = &config.tls.ca_file {
            for cert in config::read_ca_file(path)
                .map_err(|e| BuildError::Http(format!("tls.ca_file: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if config.tls.insecure_skip_verify {
            tracing::warn!(
                endpoint = %config.endpoint,
                "tls.insecure_skip_verify is set: the Splunk HEC certificate is not verified, so anyone on the path can read the events and the token"
            );
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        let mut auth = HeaderValue::from_str(&format!("Splunk {}", config.token.expose()))
            .map_err(|_| BuildError::Http("token: not a valid header value".into()))?;
        auth.set_sensitive(true);
        let channel = new_channel();
        let mut query_headers = HeaderMap::new();
        query_headers.insert(AUTHORIZATION, auth);
        if config.ack {
            query_headers.insert(
                CHANNEL_HEADER,
                HeaderValue::from_str(&channel).expect("a UUID is a valid header value"),
            );
        }
        let mut headers = query_headers.clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if config.compression == Compression::Gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Ok(Self {
            client,
            event_url: join_url(&config.endpoint, "/services/collector/event")?,
            ack_url: join_url(&config.endpoint, "/services/collector/ack")?,
            health_url: join_url(&config.endpoint, "/services/collector/health")?,
            guard,
            headers,
            query_headers,
            token: config.token.clone(),
            scrubber: Scrubber::new([config.token.expose()]),
            channel,
            ack: config.ack,
            ack_timeout: config.ack_timeout,
            index: config.index.clone(),
            encoder: Encoder::new(
                config.host.as_deref(),
                config.source.as_deref(),
                config.sourcetype.as_deref().unwrap_or(DEFAULT_SOURCETYPE),
                config.index.as_deref(),
                config.compression,
                config.max_request_bytes,
            ),
            warned_no_ack_id: AtomicBool::new(false),
        })
    }

    /// The data channel of this sink instance (sent only when `ack` is on).
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Where events are sent.
    pub fn event_url(&self) -> &reqwest::Url {
        &self.event_url
    }

    /// Asks the collector whether it can take data (`GET {endpoint}/services/collector/health`
    /// with the token): `Ok` with its answer when it can.
    pub async fn check(&self) -> Result<String, DeliveryError> {
        self.guard
            .check_url(&self.health_url)
            .map_err(|r| r.delivery_error())?;
        let response = self
            .client
            .get(self.health_url.clone())
            .headers(self.query_headers.clone())
            .send()
            .await
            .map_err(|e| match transport_error(&e) {
                Outcome::Retry { error, .. } | Outcome::Rejected { error, .. } => error,
                _ => unreachable!("transport errors are retried or refused"),
            })?;
        let status = response.status().as_u16();
        let answer = read_limited(response, HEC_ANSWER_BYTES).await;
        let answer = self.scrubber.clean(&answer.body, answer.complete);
        let hec = HecAnswer::parse(&answer);
        let text = hec
            .text
            .clone()
            .unwrap_or_else(|| trim_answer(&answer, MAX_ANSWER_BYTES));
        if (200..300).contains(&status) {
            Ok(format!("Splunk HEC is healthy ({status}: {text})"))
        } else {
            Err(DeliveryError {
                message: format!(
                    "Splunk HEC health check failed: {text} (HTTP {status}{})",
                    hec.code.map(|c| format!(", code {c}")).unwrap_or_default()
                ),
                ..status_error(status, &answer)
            })
        }
    }

    async fn post(&self, body: Bytes, events: usize) -> Verdict {
        let request = self
            .client
            .post(self.event_url.clone())
            .headers(self.headers.clone())
            .body(body);
        let response = match send_guarded(Some(&self.guard), &self.event_url, request).await {
            Ok(r) => r,
            Err(outcome) => return Verdict::Outcome(outcome),
        };
        let status = response.status().as_u16();
        let after = retry_after(&response);
        let answer = read_limited(response, HEC_ANSWER_BYTES).await;
        // With acknowledgement the ackId is in the answer: without all of it the events cannot
        // be confirmed, so they are sent again. Otherwise the status says enough.
        if self.ack && (200..300).contains(&status) {
            if let Some(e) = &answer.error {
                return Verdict::Outcome(transport_error(e));
            }
            if !answer.complete {
                return Verdict::Outcome(Outcome::Retry {
                    error: DeliveryError {
                        message: format!(
                            "Splunk HEC accepted the request, but its answer is longer than {HEC_ANSWER_BYTES} bytes, so its ackId cannot be read; the events will be sent again"
                        ),
                        ..status_error(status, b"")
                    },
                    retry_after: None,
                });
            }
        }
        let answer = self.scrubber.clean(&answer.body, answer.complete);
        classify(
            status,
            &answer,
            after,
            events,
            self.ack,
            self.index.as_deref(),
        )
    }
    /// Records what a Splunk-specific answer means for the events of its request: an ackId to
    /// confirm later, delivery without acknowledgement, or an invalid event at an index.
    fn settle(
        &self,
        range: Range<usize>,
        verdict: Accepted,
        results: &mut Results,
        awaiting: &mut Vec<(Range<usize>, u64)>,
    ) {
        match verdict {
            Accepted::AwaitAck(id) => awaiting.push((range, id)),
            Accepted::WithoutAck => {
                if !self.warned_no_ack_id.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "ack = true, but Splunk HEC accepted events without an ackId: the token does not use indexer acknowledgement, so events count as delivered once accepted"
                    );
                }
                results.push((range, Outcome::Delivered));
            }
            Accepted::UpTo { index, error } => {
                let bad = range.start + index;
                if bad > range.start {
                    results.push((range.start..bad, Outcome::Delivered));
                }
                if bad + 1 < range.end {
                    results.push((
                        bad + 1..range.end,
                        Outcome::Retry {
                            error: DeliveryError {
                                message: format!(
                                    "not indexed: Splunk HEC stopped at the invalid event before these ({})",
                                    error.message
                                ),
                                ..error.clone()
                            },
                            retry_after: None,
                        },
                    ));
                }
                results.push((
                    bad..bad + 1,
                    Outcome::Rejected {
                        error,
                        scope: RejectScope::Data,
                    },
                ));
            }
        }
    }
}

#[async_trait]
impl Sink for SplunkSink {
    fn secrets(&self) -> Scrubber {
        self.scrubber.clone()
    }

    async fn check(&self) -> Result<String, DeliveryError> {
        SplunkSink::check(self).await
    }

    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError> {
        self.encoder.batch(events, self.event_url.as_str())
    }

    async fn send(&self, events: &[Event], batch: &EncodedBatch) -> Outcome {
        // Requests accepted with an ackId, confirmed once every request was sent.
        let mut awaiting: Vec<(Range<usize>, u64)> = Vec::new();
        let sent = halving::send(
            &batch.body,
            events.len(),
            || self.encode(events).ok().map(|b| b.body),
            |range| self.encoder.request(&events[range]),
            |body, range| async move {
                match self.post(body, range.len()).await {
                    Verdict::Split => Answer::Split,
                    Verdict::Outcome(outcome) => Answer::Outcome(outcome),
                    Verdict::AwaitAck(id) => Answer::Other(Accepted::AwaitAck(id)),
                    Verdict::DeliveredWithoutAck => Answer::Other(Accepted::WithoutAck),
                    Verdict::InvalidEvent { index, error } => {
                        Answer::Other(Accepted::UpTo { index, error })
                    }
                }
            },
            |range, verdict, results| self.settle(range, verdict, results, &mut awaiting),
            "Splunk HEC",
            "events",
        )
        .await;
        let mut results = match sent {
            Ok(results) => results,
            Err(outcome) => return outcome,
        };
        if !awaiting.is_empty() {
            let ids: Vec<u64> = awaiting.iter().map(|(_, id)| *id).collect();
            let query = ack::AckQuery {
                client: &self.client,
                url: &self.ack_url,
                headers: &self.query_headers,
                scrubber: &self.scrubber,
                timeout: self.ack_timeout,
            };
            let mut confirmed = ack::confirm(&query, &ids).await;
            for (range, id) in awaiting {
                let outcome = confirmed.remove(&id).unwrap_or_else(|| Outcome::Retry {
                    error: DeliveryError {
                        kind: ErrorKind::Timeout,
                        http_status: None,
                        message: format!("Splunk HEC gave no status for ackId {id}"),
                    },
                    retry_after: None,
                });
                results.push((range, outcome));
            }
        }
        halving::merge(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_version_4_uuids() {
        let a = new_channel();
        let b = new_channel();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let groups: Vec<&str> = a.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'), "{a}");
        assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"), "{a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn urls_and_debug() {
        let config: SplunkConfig = serde_json::from_value(serde_json::json!({
            "endpoint": "https://splunk:8088/", "token": "sekrit", "ack": true
        }))
        .unwrap();
        let sink = SplunkSink::new(
            &config,
            &DeliveryConfig::default(),
            &SecurityConfig::default(),
        )
        .unwrap();
        assert_eq!(
            sink.event_url.as_str(),
            "https://splunk:8088/services/collector/event"
        );
        assert_eq!(
            sink.ack_url.as_str(),
            "https://splunk:8088/services/collector/ack"
        );
        assert_eq!(
            sink.health_url.as_str(),
            "https://splunk:8088/services/collector/health"
        );
        assert_eq!(sink.headers[CHANNEL_HEADER], sink.channel());
        assert!(sink.headers[AUTHORIZATION].is_sensitive());
        assert!(!format!("{sink:?}").contains("sekrit"));
    }
}
