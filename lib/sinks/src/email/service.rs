//! One SMTP conversation per digest, step by step, so that each answer is classified by the
//! step it answers (RFC 5321, section 4.2.1: 4yz is transient, 5yz permanent):
//!
//! | answer | outcome |
//! | --- | --- |
//! | 250 after the message | delivered |
//! | 4xx to any step (greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA) | retried |
//! | 5xx to the greeting, EHLO or STARTTLS, no STARTTLS offered when configured | rejected: the destination |
//! | 5xx to AUTH (or no common AUTH mechanism) | rejected: the destination's credentials |
//! | 5xx to MAIL FROM or to any RCPT TO | rejected: the destination's sender or recipient |
//! | 5xx to DATA or to the message | rejected: the data |
//! | no answer (DNS, connect, TLS handshake, timeout, broken connection) | retried |
//!
//! Every recipient must be accepted before the message is sent: a refused recipient stops the
//! conversation (`RSET`, `QUIT`), so a digest never reaches only some of its recipients.
//!
//! Before connecting, the host name is resolved here and every address is vetted by the SSRF
//! guard ([`crate::ssrf`]); the connection goes to exactly those addresses, while TLS verifies
//! the certificate against the configured host name.

use std::net::SocketAddr;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::ClientId;

use super::config::TlsMode;
use crate::ssrf::{Guard, Refusal, RefusedAddress};
use crate::util::http::MAX_ANSWER_BYTES;
use crate::util::scrub::Scrubber;
use crate::{trim_answer, DeliveryError, ErrorKind, Outcome, RejectScope};

/// The step of the conversation an answer belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Connecting, the greeting and EHLO.
    Connect,
    /// `STARTTLS`.
    Starttls,
    /// `AUTH`.
    Auth,
    /// `MAIL FROM`.
    MailFrom,
    /// `RCPT TO` of one recipient.
    Rcpt(String),
    /// `DATA` and the message.
    Data,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Connect => f.write_str("the greeting"),
            Step::Starttls => f.write_str("STARTTLS"),
            Step::Auth => f.write_str("AUTH (the login)"),
            Step::MailFrom => f.write_str("MAIL FROM (the sender)"),
            Step::Rcpt(to) => write!(f, "RCPT TO <{to}>"),
            Step::Data => f.write_str("the message"),
        }
    }
}

/// Where and how to deliver: one SMTP server.
pub struct Smtp {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// How the connection is secured.
    pub mode: TlsMode,
    /// TLS parameters for `host` (unused with [`TlsMode::None`]).
    pub tls: Option<TlsParameters>,
    /// AUTH user name and password.
    pub credentials: Option<Credentials>,
    /// The SSRF guard.
    pub guard: Guard,
    /// Time for one whole conversation.
    pub timeout: Duration,
    /// Masks the password (and its AUTH encodings) in the server's answers.
    pub scrubber: Scrubber,
}

/// The classification of one failed step; `error` is lettre's, `scrubber` masks secrets in
/// its text.
pub fn classify(
    step: &Step,
    error: &lettre::transport::smtp::Error,
    scrubber: &Scrubber,
) -> Outcome {
    let said = {
        let mut text = String::new();
        let mut source = std::error::Error::source(error);
        while let Some(s) = source {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&s.to_string());
            source = s.source();
        }
        trim_answer(scrubber.clean_text(&text).as_bytes(), MAX_ANSWER_BYTES)
    };
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    };
    if let Some(code) = error.status() {
        let error_of = |message: String| DeliveryError {
            kind: ErrorKind::SmtpReply,
            http_status: None,
            message,
        };
        if error.is_transient() {
            return Outcome::Retry {
                error: error_of(format!(
                    "the SMTP server answered {code} (transient) to {step}{said}"
                )),
                retry_after: None,
            };
        }
        let (scope, hint) = match step {
            Step::Data => (RejectScope::Data, ""),
            Step::Auth => (
                RejectScope::Destination,
                "; check the destination's username and password",
            ),
            Step::MailFrom => (RejectScope::Destination, "; check the destination's from"),
            Step::Rcpt(_) => (RejectScope::Destination, "; check the destination's to"),
            Step::Connect | Step::Starttls => (RejectScope::Destination, ""),
        };
        return Outcome::Rejected {
            error: error_of(format!(
                "the SMTP server refused {step} with {code}{said}{hint}"
            )),
            scope,
        };
    }
    if error.is_client() {
        // lettre's own refusals: no AUTH mechanism in common, STARTTLS not offered.
        return Outcome::Rejected {
            error: DeliveryError {
                kind: ErrorKind::SmtpReply,
                http_status: None,
                message: format!("cannot go on with {step}{said}"),
            },
            scope: RejectScope::Destination,
        };
    }
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Connection
    };
    let what = if error.is_tls() {
        "the TLS handshake failed"
    } else {
        "the connection failed"
    };
    Outcome::Retry {
        error: DeliveryError {
            kind,
            http_status: None,
            message: format!("{what} during {step}{said}"),
        },
        retry_after: None,
    }
}

fn retry(kind: ErrorKind, message: String) -> Outcome {
    Outcome::Retry {
        error: DeliveryError {
            kind,
            http_status: None,
            message,
        },
        retry_after: None,
    }
}

impl Smtp {
    /// The server's addresses that the guard allows: a literal address checked as it is, a
    /// name resolved once and each address vetted. A refusal is the destination's rejection.
    pub async fn addresses(&self) -> Result<Vec<SocketAddr>, Outcome> {
        if let Ok(ip) = self.host.parse::<std::net::IpAddr>() {
            return match self.guard.check(ip) {
                Ok(()) => Ok(vec![SocketAddr::new(ip, self.port)]),
                Err(blocked) => Err(Refusal {
                    host: None,
                    addresses: vec![RefusedAddress { ip, blocked }],
                }
                .outcome()),
            };
        }
        let found: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                retry(
                    ErrorKind::Connection,
                    format!("cannot resolve {}: {e}", self.host),
                )
            })?
            .collect();
        self.guard
            .filter(&self.host, found)
            .map_err(|refusal| refusal.outcome())
    }

    /// Sends `message` to the envelope's recipients in one conversation, within `timeout`,
    /// and classifies the answer.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Outcome {
        match tokio::time::timeout(self.timeout, self.conversation(envelope, message)).await {
            Ok(Ok(())) => Outcome::Delivered,
            Ok(Err(outcome)) => outcome,
            Err(_) => retry(
                ErrorKind::Timeout,
                format!(
                    "no complete SMTP conversation within {}",
                    humantime::format_duration(self.timeout)
                ),
            ),
        }
    }

    /// Connects (and secures and logs in) as configured: the connection ready for MAIL FROM.
    pub async fn connect(&self) -> Result<AsyncSmtpConnection, Outcome> {
        let addresses = self.addresses().await?;
        let hello = ClientId::default();
        let implicit = match self.mode {
            TlsMode::Tls => self.tls.clone(),
            _ => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            addresses.as_slice(),
            Some(self.timeout),
            &hello,
            implicit,
            None,
        )
        .await
        .map_err(|e| classify(&Step::Connect, &e, &self.scrubber))?;
        if self.mode == TlsMode::Starttls {
            let Some(tls) = self.tls.clone() else {
                return Err(retry(
                    ErrorKind::Internal,
                    "STARTTLS without TLS parameters".into(),
                ));
            };
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(Outcome::Rejected {
                    error: DeliveryError {
                        kind: ErrorKind::SmtpReply,
                        http_status: None,
                        message: format!(
                            "the SMTP server {}:{} does not offer STARTTLS; set tls_mode = \"tls\" for implicit TLS, or \"none\" for a trusted relay",
                            self.host, self.port
                        ),
                    },
                    scope: RejectScope::Destination,
                });
            }
            if let Err(e) = conn.starttls(tls, &hello).await {
                return Err(classify(&Step::Starttls, &e, &self.scrubber));
            }
        }
        if let Some(credentials) = &self.credentials {
            if let Err(e) = conn
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
            {
                conn.abort().await;
                return Err(classify(&Step::Auth, &e, &self.scrubber));
            }
        }
        Ok(conn)
    }

    async fn conversation(&self, envelope: &Envelope, message: &[u8]) -> Result<(), Outcome> {
        let mut conn = self.connect().await?;
        let step = |s: Step, e: lettre::transport::smtp::Error| classify(&s, &e, &self.scrubber);
        conn.command(Mail::new(envelope.from().cloned(), vec![]))
            .await
            .map_err(|e| step(Step::MailFrom, e))?;
        for to in envelope.to() {
            if let Err(e) = conn.command(Rcpt::new(to.clone(), vec![])).await {
                let outcome = step(Step::Rcpt(to.to_string()), e);
                let _ = conn.command(Rset).await;
                let _ = conn.quit().await;
                return Err(outcome);
            }
        }
        conn.command(Data).await.map_err(|e| step(Step::Data, e))?;
        conn.message(message)
            .await
            .map_err(|e| step(Step::Data, e))?;
        let _ = conn.quit().await;
        Ok(())
    }

    /// `courier test-destination`'s check: connect, secure, log in, and leave.
    pub async fn check(&self) -> Result<String, DeliveryError> {
        let attempt = async {
            let mut conn = self.connect().await?;
            let encrypted = conn.is_encrypted();
            let _ = conn.quit().await;
            Ok::<bool, Outcome>(encrypted)
        };
        let outcome = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(retry(
                ErrorKind::Timeout,
                "the SMTP server did not finish the login in time".into(),
            )),
        };
        match outcome {
            Ok(encrypted) => Ok(format!(
                "the SMTP server {}:{} accepted the connection{}{}",
                self.host,
                self.port,
                if encrypted {
                    " over TLS"
                } else {
                    " (unencrypted)"
                },
                if self.credentials.is_some() {
                    " and the login"
                } else {
                    ""
                }
            )),
            Err(Outcome::Retry { error, .. } | Outcome::Rejected { error, .. }) => Err(error),
            Err(_) => unreachable!("a failed connection is retried or rejected"),
        }
    }
}

/// The values a hostile server could echo from the AUTH exchange, to mask: the password
/// and its base64 forms (AUTH LOGIN sends it alone, AUTH PLAIN as `\0user\0password`).
pub fn auth_secrets(username: &str, password: &str) -> Vec<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        password.to_owned(),
        b64.encode(password),
        b64.encode(format!("\0{username}\0{password}")),
    ]
}
