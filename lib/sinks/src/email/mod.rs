//! The `email` sink: Event Logs as digest emails over SMTP, for people who have no log tool.
//!
//! One email per batch ([`encode`]: a subject counting the events by level, a plain-text and
//! an HTML part listing them, trimmed to `max_message_bytes`), at most one per `min_interval`
//! per destination ([`pace`]: batches meanwhile wait and are merged into the next digest),
//! delivered in one SMTP conversation per email whose every answer is classified by the step
//! it answers ([`service`]). The defaults suit people: `filter.min_level = "ERROR"` unless the
//! destination gives a filter, five-minute batches, a digest every 15 minutes at most.
//!
//! The SMTP host goes through the SSRF guard: resolved here, each address vetted, and the
//! connection made to exactly those addresses.

mod config;
mod encode;
mod pace;
mod service;
mod tls;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;

pub use config::{
    default_filter, delivery_defaults, EmailConfig, TlsMode, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MIN_INTERVAL, EMAIL_BATCH_MAX_EVENTS, EMAIL_BATCH_TIMEOUT, MAX_MESSAGE_BYTES,
    MAX_RECIPIENTS,
};
pub use encode::{escape, Digest, Encoder, MAX_LISTED, MIN_FIELD_CHARS};
pub use service::{classify, Step};
pub use tls::read_ca_file;

use super::ssrf::Guard;
use super::util::scrub::Scrubber;
use super::{batch_id, BuildError, DeliveryError, EncodedBatch, ErrorKind, Outcome, Sink};
use courier_core::event::Event;
use courier_core::settings::{DeliveryConfig, SecurityConfig};

/// Delivers digests of one destination to one SMTP server.
pub struct EmailSink {
    destination: String,
    encoder: Encoder,
    /// `from` and `to` as the SMTP envelope (MAIL FROM, RCPT TO).
    envelope: Envelope,
    smtp: service::Smtp,
    pacer: Arc<pace::Pacer>,
}

impl std::fmt::Debug for EmailSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSink")
            .field("destination", &self.destination)
            .field("host", &self.smtp.host)
            .field("port", &self.smtp.port)
            .finish_non_exhaustive()
    }
}

fn mailbox(key: &str, value: &str) -> Result<Mailbox, BuildError> {
    value
        .parse()
        .map_err(|e| BuildError::Http(format!("{key}: {value:?} is not an email address: {e}")))
}

impl EmailSink {
    /// Builds the sink of destination `destination` of `project` (reading `tls_ca_file`); the
    /// configuration must have passed [`EmailConfig::validate`].
    pub fn new(
        project: &str,
        destination: &str,
        config: &EmailConfig,
        delivery: &DeliveryConfig,
        security: &SecurityConfig,
    ) -> Result<Self, BuildError> {
        let from = mailbox("from", &config.from)?;
        let to = config
            .to
            .iter()
            .enumerate()
            .map(|(i, t)| mailbox(&format!("to[{i}]"), t))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match config.tls_mode {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Tls => {
                let ca = match &config.tls_ca_file {
                    Some(path) => Some(
                        read_ca_file(path)
                            .map_err(|e| BuildError::Http(format!("tls_ca_file: {e}")))?,
                    ),
                    None => None,
                };
                Some(tls::parameters(&config.host, ca).map_err(BuildError::Http)?)
            }
        };
        let envelope = Envelope::new(
            Some(from.email.clone()),
            to.iter().map(|m| m.email.clone()).collect(),
        )
        .map_err(|e| BuildError::Http(format!("to: {e}")))?;
        let (credentials, scrubber) = match (&config.username, &config.password) {
            (Some(user), Some(password)) => (
                Some(Credentials::new(user.clone(), password.expose().to_owned())),
                Scrubber::new(service::auth_secrets(user, password.expose())),
            ),
            _ => (None, Scrubber::default()),
        };
        Ok(Self {
            destination: destination.to_owned(),
            envelope,
            encoder: Encoder {
                project: project.to_owned(),
                destination: destination.to_owned(),
                from,
                to,
                max_message_bytes: config.max_message_bytes,
            },
            smtp: service::Smtp {
                host: config.host.clone(),
                port: config.port(),
                mode: config.tls_mode,
                tls,
                credentials,
                guard: Guard::new(security),
                timeout: delivery.request_timeout,
                scrubber,
            },
            pacer: pace::Pacer::new(config.min_interval),
        })
    }

    /// Sends the email of `events` once: `body` when the batch was encoded already, else
    /// built now (a digest of several batches).
    async fn email(&self, events: &[Event], body: Option<&[u8]>) -> Outcome {
        let built;
        let bytes = match body {
            Some(b) => b,
            None => {
                let id = batch_id(&self.destination, events);
                built = match self.encoder.message(events, &id) {
                    Ok(m) => m.formatted(),
                    Err(error) => {
                        return Outcome::Rejected {
                            error,
                            scope: super::RejectScope::Data,
                        }
                    }
                };
                &built
            }
        };
        self.smtp.send(&self.envelope, bytes).await
    }
}

/// A one-line description of a destination for `courier validate`, without the password.
pub fn describe(config: &EmailConfig) -> String {
    let n = config.to.len();
    let mut text = format!(
        "email via {}:{} ({}) to {n} recipient{}, at most one digest per {}",
        config.host,
        config.port(),
        config.tls_mode.as_str(),
        if n == 1 { "" } else { "s" },
        humantime::format_duration(config.min_interval)
    );
    if config.username.is_some() {
        text.push_str(", with AUTH");
    }
    text
}

#[async_trait]
impl Sink for EmailSink {
    fn secrets(&self) -> Scrubber {
        self.smtp.scrubber.clone()
    }

    async fn check(&self) -> Result<String, DeliveryError> {
        self.smtp.check().await
    }

    fn encode(&self, events: &[Event]) -> Result<EncodedBatch, DeliveryError> {
        let id = batch_id(&self.destination, events);
        let body = self.encoder.message(events, &id)?.formatted();
        Ok(EncodedBatch {
            uncompressed_bytes: body.len(),
            verbatim: None,
            body: Bytes::from(body),
            id,
            events: events.len(),
        })
    }

    async fn send(&self, events: &[Event], batch: &EncodedBatch) -> Outcome {
        match self.pacer.turn(events) {
            pace::Turn::Now(sending) => {
                let outcome = self.email(events, Some(&batch.body)).await;
                self.pacer.sent(sending, &outcome);
                outcome
            }
            pace::Turn::Lead(leader) => {
                let (digest, sending) = self.pacer.wait(&leader).await;
                let outcome = if digest.is_empty() {
                    // Cannot happen: the leader's own events are in the digest.
                    Outcome::Retry {
                        error: DeliveryError {
                            kind: ErrorKind::Internal,
                            http_status: None,
                            message: "an empty digest".into(),
                        },
                        retry_after: None,
                    }
                } else {
                    self.email(&digest, None).await
                };
                self.pacer.sent(sending, &outcome);
                leader.finish(&outcome);
                outcome
            }
            pace::Turn::Follow(done) => pace::follow(done).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_describe_never_show_the_password() {
        let config: EmailConfig = serde_json::from_value(serde_json::json!({
            "host": "smtp.example.com", "from": "a@example.com", "to": ["b@example.com"],
            "username": "u", "password": "sekrit-pass"
        }))
        .unwrap();
        let sink = EmailSink::new(
            "p",
            "d",
            &config,
            &DeliveryConfig::default(),
            &SecurityConfig::default(),
        )
        .unwrap();
        assert!(!format!("{sink:?}").contains("sekrit"));
        let text = describe(&config);
        assert_eq!(
            text,
            "email via smtp.example.com:587 (starttls) to 1 recipient, at most one digest per 15m, with AUTH"
        );
    }
}
