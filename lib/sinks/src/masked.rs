//! The one place a built sink's reports pass on their way out: [`MaskedSink`].
//!
//! Every sink masks its secrets in a destination's answer before it keeps any of it
//! ([`crate::scrub`]). What it keeps is then joined to its own prose, and some answers are
//! decoded first (JSON strings, whose escapes can spell a secret in letters no mask of the raw
//! answer matches). Only the message as composed is what leaves: in logs, the retry topic's
//! `courier-last-error`, failure events, the API and `courier test-destination`. So
//! [`crate::build`] wraps every sink in a `MaskedSink`, which masks the sink's
//! [`Sink::secrets`] in the messages of everything it reports. Outcomes without an error (the
//! common case) pass untouched, so delivery pays nothing for it.

use async_trait::async_trait;
use courier_core::event::Event;

use crate::scrub::Scrubber;
use crate::{DeliveryError, EncodedBatch, Outcome, Sink};

/// A sink whose reports have its secrets masked as composed.
pub struct MaskedSink {
    inner: Box<dyn Sink>,
    scrubber: Scrubber,
}

impl MaskedSink {
    /// Wraps `inner`, masking its [`Sink::secrets`].
    pub fn new(inner: impl Sink + 'static) -> Self {
        let scrubber = inner.secrets();
        MaskedSink {
            inner: Box::new(inner),
            scrubber,
        }
    }
}

#[async_trait]
impl Sink for MaskedSink {
    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError> {
        self.inner
            .encode(events)
            .map_err(|e| self.scrubber.clean_error(e))
    }

    fn encode_checked(
        &self,
        events: &[Event],
    ) -> Result<(EncodedBatch, Vec<(usize, DeliveryError)>), DeliveryError> {
        let (batch, refused) = self
            .inner
            .encode_checked(events)
            .map_err(|e| self.scrubber.clean_error(e))?;
        let refused = refused
            .into_iter()
            .map(|(i, e)| (i, self.scrubber.clean_error(e)))
            .collect();
        Ok((batch, refused))
    }

    fn preview(&self, batch: &EncodedBatch) -> Option<String> {
        self.inner
            .preview(batch)
            .map(|p| self.scrubber.clean_text(&p))
    }

    fn batch_by_partition(&self) -> bool {
        self.inner.batch_by_partition()
    }

    fn secrets(&self) -> Scrubber {
        self.scrubber.clone()
    }

    async fn check(&self) -> Result<String, DeliveryError> {
        match self.inner.check().await {
            Ok(said) => Ok(self.scrubber.clean_text(&said)),
            Err(e) => Err(self.scrubber.clean_error(e)),
        }
    }

    async fn send(&self, events: &[Event], batch: &EncodedBatch) -> Outcome {
        let outcome = self.inner.send(events, batch).await;
        self.scrubber.clean_outcome(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, RejectScope};
    use bytes::Bytes;

    /// A sink that reports its secret, joined with prose, everywhere it can.
    struct Leaky;

    const SECRET: &str = "leaky-secret-0123";

    fn leak() -> DeliveryError {
        DeliveryError {
            kind: ErrorKind::HttpStatus,
            http_status: Some(400),
            message: format!("rejected: {SECRET}"),
        }
    }

    #[async_trait]
    impl Sink for Leaky {
        fn encode(&self, _: &[Event]) -> Result<EncodedBatch, DeliveryError> {
            Err(leak())
        }
        fn encode_checked(
            &self,
            _: &[Event],
        ) -> Result<(EncodedBatch, Vec<(usize, DeliveryError)>), DeliveryError> {
            let batch = EncodedBatch {
                body: Bytes::new(),
                id: "msg_0".into(),
                events: 1,
                uncompressed_bytes: 0,
                verbatim: None,
            };
            Ok((batch, vec![(0, leak())]))
        }
        fn preview(&self, _: &EncodedBatch) -> Option<String> {
            Some(format!("body: {SECRET}"))
        }
        fn secrets(&self) -> Scrubber {
            Scrubber::new([SECRET])
        }
        async fn check(&self) -> Result<String, DeliveryError> {
            Ok(format!("healthy: {SECRET}"))
        }
        async fn send(&self, _: &[Event], _: &EncodedBatch) -> Outcome {
            Outcome::Rejected {
                error: leak(),
                scope: RejectScope::Data,
            }
        }
    }

    #[tokio::test]
    async fn every_report_of_a_wrapped_sink_is_masked() {
        let sink = MaskedSink::new(Leaky);
        let masked = "rejected: ****";
        assert_eq!(sink.encode(&[]).unwrap_err().message, masked);
        let (batch, refused) = sink.encode_checked(&[]).unwrap();
        assert_eq!(refused[0].1.message, masked);
        assert_eq!(sink.preview(&batch).unwrap(), "body: ****");
        assert_eq!(sink.check().await.unwrap(), "healthy: ****");
        let Outcome::Rejected { error, .. } = sink.send(&[], &batch).await else {
            panic!("the outcome stays a rejection")
        };
        assert_eq!(error.message, masked);
    }
}
