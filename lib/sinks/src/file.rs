//! The `file` sink: NDJSON appended to a local file. For demos and debugging.

use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{batch_id, write_ndjson, DeliveryError, EncodedBatch, ErrorKind, Outcome, Sink};
use courier_core::event::Event;

/// Type-specific keys of a `file` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The file events are appended to (created with its directories).
    pub path: PathBuf,
}

/// Appends batches to a file. One writer at a time, so lines never interleave.
pub struct FileSink {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileSink {
    /// A sink writing to `config.path`.
    pub fn new(config: &FileConfig) -> Self {
        Self {
            path: config.path.clone(),
            lock: Mutex::new(()),
        }
    }

    async fn append(&self, body: &[u8]) -> std::io::Result<()> {
        let _guard = self.lock.lock().await;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        file.write_all(body).await?;
        file.flush().await
    }
}

#[async_trait]
impl Sink for FileSink {
    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError> {
        let mut body = Vec::with_capacity(events.iter().map(|e| e.raw.len() + 1).sum());
        // A file's lines are written from the body; the events keep their own buffers.
        let _ = write_ndjson(events, &mut body);
        Ok(EncodedBatch {
            uncompressed_bytes: body.len(),
            verbatim: None,
            body: Bytes::from(body),
            id: batch_id(&self.path.to_string_lossy(), events),
            events: events.len(),
        })
    }

    async fn send(&self, _events: &[Event], batch: &EncodedBatch) -> Outcome {
        match self.append(&batch.body).await {
            Ok(()) => Outcome::Delivered,
            Err(e) => Outcome::Retry {
                error: DeliveryError {
                    kind: ErrorKind::Io,
                    http_status: None,
                    message: format!("cannot append to {}: {e}", self.path.display()),
                },
                retry_after: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_core::event::AckId;

    #[tokio::test]
    async fn appends_ndjson_and_creates_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.ndjson");
        let sink = FileSink::new(&FileConfig { path: path.clone() });
        let events: Vec<Event> = (0..3)
            .map(|i| Event {
                raw: Bytes::from(format!("{{\"n\":{i}}}")),
                partition: 0,
                offset: i,
                failure_event: false,
                ack: AckId {
                    partition: 0,
                    generation: 1,
                    offset: i,
                },
            })
            .collect();
        let batch = sink.encode(&events).unwrap();
        assert_eq!(sink.send(&events, &batch).await, Outcome::Delivered);
        assert_eq!(sink.send(&events, &batch).await, Outcome::Delivered);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n".repeat(2));
    }
}
