//! The `s3` sink: one object per batch and Kafka partition in the customer's bucket — NDJSON
//! of the unchanged events, gzipped by default — under a key that is a function of the data,
//! so a retry or a replay of the same batch overwrites instead of duplicating.
//!
//! Outcomes (see [`classify`]): written, delivered; throttling, 5xx, timeouts and connection
//! errors retried; a missing bucket, denied access, bad credentials, KMS errors and a wrong
//! region reject the destination as configured (`RejectScope::Destination`).
//!
//! The sink asks the lane for per-partition batches ([`Sink::batch_by_partition`]). A batch
//! that still spans partitions (built by other code) is written as one object per partition:
//! when each partition's events are contiguous in the batch, each object's outcome is reported
//! for its range (`Outcome::Partial`), so only failed objects are retried; otherwise the batch
//! is delivered only when every object was written, and retried whole (rewriting the same
//! keys) when one was not.

pub mod classify;
mod config;
mod connector;
mod encode;
pub mod key;
mod service;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use object_store::path::Path;
use object_store::Attributes;

/// An object's body as [`Sink::encode`] makes it; public for `cargo bench -p courier-sinks`,
/// which measures it without building a sink (that takes a whole destination).
pub use self::encode::object_body;
pub use config::{
    delivery_defaults, Compression, S3Config, ServerSideEncryption, DEFAULT_KEY_TEMPLATE,
    DEFAULT_MULTIPART_PART_SIZE, DEFAULT_MULTIPART_THRESHOLD, S3_BATCH_MAX_BYTES,
    S3_BATCH_MAX_EVENTS, S3_BATCH_TIMEOUT,
};
pub use connector::S3_ANSWER_BYTES;
pub use key::{KeyContext, KeyTemplate};
pub use service::{location, Location};

use self::encode::{group_by_partition, Group};
use self::service::Writer;
use super::util::scrub::Scrubber;
use super::{batch_id, BuildError, DeliveryError, EncodedBatch, ErrorKind, Outcome, Sink};
use crate::config::DestinationConfig;
use courier_core::event::Event;
use courier_core::settings::SecurityConfig;

/// Objects of one batch written at once (when a batch spans several partitions).
const OBJECT_CONCURRENCY: usize = 4;

/// Delivers batches as objects in one bucket.
pub struct S3Sink {
    writer: Writer,
    bucket: String,
    template: KeyTemplate,
    context: KeyContext,
    compression: Compression,
    attributes: Attributes,
    /// Masks the credentials in messages (an endpoint may echo them).
    scrubber: Scrubber,
}

impl S3Sink {
    /// Builds the sink of `destination` (whose configuration passed [`S3Config::validate`])
    /// reading events from `topic`. Credentials come from the keys, else the process
    /// environment's standard AWS chain. Requests to a custom `endpoint` follow the SSRF guard
    /// of `security`.
    pub fn new(
        destination: &DestinationConfig,
        config: &S3Config,
        topic: &str,
        security: &SecurityConfig,
    ) -> Result<Self, BuildError> {
        Self::with_env(destination, config, topic, security, &|name| {
            std::env::var(name).ok()
        })
    }

    /// [`S3Sink::new`] with `env` standing in for the process environment.
    pub fn with_env(
        destination: &DestinationConfig,
        config: &S3Config,
        topic: &str,
        security: &SecurityConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, BuildError> {
        let template = KeyTemplate::parse(config.key_template())
            .map_err(|e| BuildError::Http(format!("key_template: {e}")))?;
        let store = service::build_store(config, &destination.delivery, security, env)?;
        let scrubber = Scrubber::new(
            [
                &config.access_key_id,
                &config.secret_access_key,
                &config.session_token,
            ]
            .into_iter()
            .flatten()
            .map(|s| s.expose().to_owned())
            .chain(
                [
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_SESSION_TOKEN",
                    "AWS_ACCESS_KEY_ID",
                ]
                .into_iter()
                .filter_map(env),
            )
            .collect::<Vec<_>>(),
        );
        Ok(Self {
            writer: Writer {
                store: Arc::new(store),
                multipart_threshold: config.multipart_threshold,
                part_size: config.multipart_part_size,
            },
            bucket: config.bucket.clone(),
            template,
            context: KeyContext {
                prefix: config.prefix().to_owned(),
                project: destination.project.clone(),
                destination: destination.id.clone(),
                topic: topic.to_owned(),
                ext: config.compression.extension(),
            },
            compression: config.compression,
            attributes: service::attributes(config.compression),
            scrubber,
        })
    }

    /// The key of the object holding `group`'s events.
    fn key(&self, events: &[Event], group: &Group) -> String {
        self.template.render(&self.context, &group.info(events))
    }

    /// Writes one object and classifies the result.
    async fn write(&self, key: &str, body: Bytes) -> Outcome {
        let path = match Path::parse(key) {
            Ok(p) => p,
            Err(e) => return encode_error(format!("invalid object key {key:?}: {e}")),
        };
        let started = Instant::now();
        let size = body.len();
        match self.writer.put(&path, body, self.attributes.clone()).await {
            Ok(()) => {
                tracing::debug!(key, bytes = size, elapsed = ?started.elapsed(), "object written");
                Outcome::Delivered
            }
            Err(e) => self.classify(&e, &format!("PUT {key}")),
        }
    }

    fn classify(&self, error: &object_store::Error, what: &str) -> Outcome {
        classify::classify(error, &self.bucket, what, &self.scrubber)
    }

    /// Writes the objects of a batch that spans partitions.
    async fn send_groups(&self, events: &[Event], groups: Vec<Group>) -> Outcome {
        let compression = self.compression;
        let results: Vec<(Option<std::ops::Range<usize>>, Outcome)> = stream::iter(groups)
            .map(|group| async move {
                let key = self.key(events, &group);
                let members: Vec<Event> =
                    group.indices.iter().map(|&i| events[i].clone()).collect();
                // Encoding is CPU work: keep it off the async workers.
                let body = tokio::task::spawn_blocking(move || object_body(&members, compression))
                    .await
                    .unwrap_or_else(|e| {
                        Err(DeliveryError {
                            kind: ErrorKind::Encode,
                            http_status: None,
                            message: format!("encoding task failed: {e}"),
                        })
                    });
                let outcome = match body {
                    Ok((body, _)) => self.write(&key, body).await,
                    Err(error) => Outcome::Retry {
                        error,
                        retry_after: None,
                    },
                };
                (group.range(), outcome)
            })
            .buffered(OBJECT_CONCURRENCY)
            .collect()
            .await;
        if results.iter().all(|(_, o)| *o == Outcome::Delivered) {
            return Outcome::Delivered;
        }
        if results.iter().all(|(r, _)| r.is_some()) {
            return Outcome::Partial(
                results
                    .into_iter()
                    .map(|(r, o)| (r.expect("checked"), o))
                    .collect(),
            );
        }
        // Partitions interleave in the batch: its parts cannot be told apart by ranges, so
        // the batch ends as its worst object (rewriting written objects is idempotent).
        let mut outcomes = results.into_iter().map(|(_, o)| o);
        let mut worst = Outcome::Delivered;
        for o in outcomes.by_ref() {
            worst = match (&worst, &o) {
                (Outcome::Rejected { .. }, _) => worst,
                (_, Outcome::Rejected { .. }) => o,
                (Outcome::Retry { .. }, _) => worst,
                _ => o,
            };
        }
        worst
    }

    /// `test-destination`: writes a small probe object under the prefix, then deletes it, and
    /// says what happened. Fails only when the write fails (delivery needs `s3:PutObject`
    /// only; a failed delete is reported in the text).
    pub async fn check(&self) -> Result<String, DeliveryError> {
        let now = chrono::Utc::now();
        let key = [
            self.context.prefix.as_str(),
            "_courier-probe",
            &format!(
                "{}-{}.txt",
                self.context.destination.replace(['/', '\\'], "_"),
                now.timestamp_millis()
            ),
        ]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
        let path = Path::parse(&key).map_err(|e| DeliveryError {
            kind: ErrorKind::Encode,
            http_status: None,
            message: format!("invalid probe key {key:?}: {e}"),
        })?;
        let body = Bytes::from(format!(
            "courier test-destination probe for {}/{} at {}\n",
            self.context.project,
            self.context.destination,
            now.to_rfc3339()
        ));
        let mut attributes = Attributes::new();
        attributes.insert(object_store::Attribute::ContentType, "text/plain".into());
        let started = Instant::now();
        if let Err(e) = self.writer.put(&path, body, attributes).await {
            return Err(match self.classify(&e, &format!("PUT {key}")) {
                Outcome::Retry { error, .. } | Outcome::Rejected { error, .. } => error,
                other => DeliveryError {
                    kind: ErrorKind::Connection,
                    http_status: None,
                    message: format!("unexpected outcome {other:?}"),
                },
            });
        }
        let wrote = started.elapsed();
        let target = format!("s3://{}/{key}", self.bucket);
        Ok(match self.writer.delete(&path).await {
            Ok(()) => format!(
                "wrote {target} in {} ms and deleted it again",
                wrote.as_millis()
            ),
            Err(e) => {
                let why = match self.classify(&e, &format!("DELETE {key}")) {
                    Outcome::Retry { error, .. } | Outcome::Rejected { error, .. } => error.message,
                    _ => e.to_string(),
                };
                format!(
                    "wrote {target} in {} ms, but could not delete it (delivery does not need to): {why}",
                    wrote.as_millis()
                )
            }
        })
    }

    /// The key a batch of one partition is written at (for `test-destination` and logs).
    pub fn object_key(&self, events: &[Event]) -> Option<String> {
        let groups = group_by_partition(events);
        match groups.as_slice() {
            [group] => Some(self.key(events, group)),
            _ => None,
        }
    }
}

/// A one-line description for `validate` output, without secrets.
pub fn describe(config: &S3Config) -> String {
    let prefix = config.prefix();
    let mut parts = vec![config.region.as_deref().map_or_else(
        || "region from the environment".to_owned(),
        |r| format!("region {r}"),
    )];
    if let Some(endpoint) = &config.endpoint {
        parts.push(format!("endpoint {endpoint}"));
    }
    if config.force_path_style {
        parts.push("path-style".to_owned());
    }
    parts.push(match config.compression {
        Compression::Gzip => "gzip".to_owned(),
        Compression::None => "uncompressed".to_owned(),
    });
    if let Some(sse) = config.server_side_encryption {
        parts.push(format!("SSE {}", sse.as_str()));
    }
    parts.push(if config.access_key_id.is_some() {
        "static keys".to_owned()
    } else {
        "AWS credential chain".to_owned()
    });
    format!(
        "s3 s3://{}/{}{} ({})",
        config.bucket,
        prefix,
        if prefix.is_empty() { "" } else { "/" },
        parts.join(", ")
    )
}

/// Runs CPU-heavy work (gzip of an object-sized batch: about 1.3 s for 64 MiB) without
/// stalling the async worker it is called on: `block_in_place` hands the worker's other tasks
/// to another thread meanwhile. Only on a multi-threaded runtime, and only when `heavy`.
fn off_the_async_workers<T>(heavy: bool, work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if heavy && h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

fn encode_error(message: String) -> Outcome {
    Outcome::Rejected {
        error: DeliveryError {
            kind: ErrorKind::Encode,
            http_status: None,
            message,
        },
        scope: super::RejectScope::Destination,
    }
}

#[async_trait]
impl Sink for S3Sink {
    fn secrets(&self) -> Scrubber {
        self.scrubber.clone()
    }

    async fn check(&self) -> Result<String, DeliveryError> {
        S3Sink::check(self).await
    }

    /// A batch of one partition is encoded into its object body; its id is the object key.
    /// A batch spanning partitions is encoded object by object in `send` (its body is empty).
    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError> {
        let groups = group_by_partition(events);
        if let [group] = groups.as_slice() {
            let (body, uncompressed_bytes) = off_the_async_workers(events.len() > 1000, || {
                object_body(events, self.compression)
            })?;
            return Ok(EncodedBatch {
                body,
                id: self.key(events, group),
                events: events.len(),
                uncompressed_bytes,
                verbatim: None,
            });
        }
        Ok(EncodedBatch {
            body: Bytes::new(),
            id: batch_id(&format!("s3://{}", self.bucket), events),
            events: events.len(),
            uncompressed_bytes: events.iter().map(|e| e.raw.len() + 1).sum(),
            verbatim: None,
        })
    }

    /// Objects hold one partition each: their keys name the partition's offset range.
    fn batch_by_partition(&self) -> bool {
        true
    }

    async fn send(&self, events: &[Event], batch: &EncodedBatch) -> Outcome {
        let groups = group_by_partition(events);
        match groups.as_slice() {
            [] => Outcome::Delivered,
            [group] => {
                let key = self.key(events, group);
                self.write(&key, batch.body.clone()).await
            }
            _ => self.send_groups(events, groups).await,
        }
    }
}
