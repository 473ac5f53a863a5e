//! Secrets out of destination answers.
//!
//! A destination's answer ends up in a [`DeliveryError`](super::DeliveryError), and from there
//! in log lines, the retry topic's `courier-last-error` header, delivery-failure events (which
//! are routed to the project's other destinations) and the API's status and test answers. An
//! endpoint that echoes the request — a debugging proxy, an echo service, an error page that
//! quotes the headers, or a hostile endpoint on purpose — would put courier's credentials for
//! it in all of those. So every sink masks the secrets it sends (header values, API keys,
//! tokens, S3 credentials, the per-request webhook signature) in an answer before keeping any
//! of it, with one [`Scrubber`].
//!
//! Values are masked as sent and as a JSON string would escape them (an echo service
//! answering JSON). Values shorter than [`MIN_SECRET_BYTES`] are not masked: they would mask
//! ordinary words in every answer and protect nothing. When only the start of an answer was
//! read ([`super::http::read_limited`]), a secret cut off at the end of what was read cannot be
//! matched whole, so an end of the answer that could be the beginning of a secret is dropped
//! too.
//!
//! Masking the answer is not enough on its own: a sink joins the masked answer to its own
//! prose, and may decode it first (Splunk HEC reads the JSON `text` of its answer, whose `\u`
//! escapes spell any value in letters no mask matches). So [`crate::build`] also wraps every
//! sink in a [`crate::masked::MaskedSink`], which masks the sink's secrets in each message it
//! reports, as composed: one place every outcome and check of a built sink passes.

use std::fmt;

use crate::{DeliveryError, Outcome};

/// The mask that replaces a secret.
pub const MASK: &str = "****";

/// Shorter values are not masked (see the module documentation).
pub const MIN_SECRET_BYTES: usize = 4;

/// Masks a fixed set of secret values in answers.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// The values, longest first (a secret containing another is masked whole).
    secrets: Vec<Vec<u8>>,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scrubber({} values)", self.secrets.len())
    }
}

impl Scrubber {
    /// A scrubber for these values (empty and short ones are ignored).
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Self {
        let mut scrubber = Scrubber::default();
        for s in secrets {
            scrubber.add(s.as_ref());
        }
        scrubber
    }

    /// This scrubber with one more value (a per-request value such as a signature).
    pub fn with(&self, secret: &str) -> Self {
        let mut scrubber = self.clone();
        scrubber.add(secret);
        scrubber
    }

    fn add(&mut self, secret: &str) {
        if secret.len() < MIN_SECRET_BYTES {
            return;
        }
        let escaped = serde_json::to_string(secret).expect("a string serializes to JSON");
        let escaped = &escaped[1..escaped.len() - 1];
        for form in [secret, escaped] {
            if !self.secrets.iter().any(|s| s == form.as_bytes()) {
                self.secrets.push(form.as_bytes().to_vec());
            }
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `answer` with every secret masked. `complete` is false when `answer` is only the start
    /// of what the destination sent: an end that could begin a secret is then dropped too.
    pub fn clean(&self, answer: &[u8], complete: bool) -> Vec<u8> {
        let mut out = answer.to_vec();
        for secret in &self.secrets {
            if memchr::memmem::find(&out, secret).is_none() {
                continue;
            }
            let mut masked = Vec::with_capacity(out.len());
            let mut rest = &out[..];
            while let Some(at) = memchr::memmem::find(rest, secret) {
                masked.extend_from_slice(&rest[..at]);
                masked.extend_from_slice(MASK.as_bytes());
                rest = &rest[at + secret.len()..];
            }
            masked.extend_from_slice(rest);
            out = masked;
        }
        if !complete {
            let cut = self
                .secrets
                .iter()
                .map(|s| partial_suffix(&out, s))
                .max()
                .unwrap_or(0);
            out.truncate(out.len() - cut);
        }
        out
    }

    /// A text with every secret masked (error texts that may quote an answer).
    pub fn clean_text(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        String::from_utf8_lossy(&self.clean(text.as_bytes(), true)).into_owned()
    }

    /// `error` with every secret masked in its message.
    pub fn clean_error(&self, mut error: DeliveryError) -> DeliveryError {
        if !self.is_empty() {
            error.message = self.clean_text(&error.message);
        }
        error
    }

    /// `outcome` with every secret masked in the messages of its errors (of every part).
    pub fn clean_outcome(&self, outcome: Outcome) -> Outcome {
        if self.is_empty() {
            return outcome;
        }
        match outcome {
            Outcome::Delivered => Outcome::Delivered,
            Outcome::Retry { error, retry_after } => Outcome::Retry {
                error: self.clean_error(error),
                retry_after,
            },
            Outcome::Rejected { error, scope } => Outcome::Rejected {
                error: self.clean_error(error),
                scope,
            },
            Outcome::Partial(parts) => Outcome::Partial(
                parts
                    .into_iter()
                    .map(|(range, part)| (range, self.clean_outcome(part)))
                    .collect(),
            ),
        }
    }
}

/// The length of the longest end of `text` that is a proper beginning of `secret`.
fn partial_suffix(text: &[u8], secret: &[u8]) -> usize {
    (1..secret.len().min(text.len() + 1))
        .rev()
        .find(|&n| text.ends_with(&secret[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_and_the_json_escaped_form() {
        let s = Scrubber::new(["abc123", "Bearer x\"y/z", ""]);
        assert_eq!(
            s.clean(b"bad key abc123! abc123", true),
            b"bad key ****! ****"
        );
        assert_eq!(
            s.clean(br#"{"authorization":"Bearer x\"y/z"}"#, true),
            br#"{"authorization":"****"}"#
        );
        assert_eq!(s.clean(b"fine", true), b"fine");
        assert_eq!(
            s.clean_text("Authorization: Bearer x\"y/z"),
            "Authorization: ****"
        );
    }

    #[test]
    fn short_values_are_not_masked_and_longer_secrets_win() {
        let s = Scrubber::new(["yes", "token", "token-and-more"]);
        assert_eq!(s.clean(b"yes token token-and-more", true), b"yes **** ****");
        assert!(Scrubber::new(["", "ab"]).is_empty());
    }

    #[test]
    fn a_secret_cut_off_by_the_read_limit_is_dropped() {
        let s = Scrubber::new(["s3cr3t-value"]);
        // Complete answers keep their end.
        assert_eq!(s.clean(b"echo: s3cr3t", true), b"echo: s3cr3t");
        // The start of an answer: the end that begins the secret goes.
        assert_eq!(s.clean(b"echo: s3cr3t", false), b"echo: ");
        assert_eq!(s.clean(b"echo: s", false), b"echo: ");
        assert_eq!(s.clean(b"echo: x", false), b"echo: x");
        assert_eq!(s.clean(b"s3cr3t-value then s3cr", false), b"**** then ");
    }

    #[test]
    fn a_secret_completed_by_the_prose_around_an_answer_is_masked() {
        // Neither the prose nor the masked answer holds the secret; joined, they do (a case
        // the fuzzer found: the prose's space begins it).
        let s = Scrubber::new([" ééé"]);
        let answer = s.clean("ééé and more".as_bytes(), true);
        assert_eq!(answer, "ééé and more".as_bytes());
        let error = DeliveryError {
            kind: crate::ErrorKind::HttpStatus,
            http_status: Some(400),
            message: format!("rejected: {}", String::from_utf8_lossy(&answer)),
        };
        let outcome = s.clean_outcome(Outcome::Partial(vec![
            (0..1, Outcome::Delivered),
            (
                1..2,
                Outcome::Rejected {
                    error: error.clone(),
                    scope: crate::RejectScope::Data,
                },
            ),
            (
                2..3,
                Outcome::Retry {
                    error,
                    retry_after: None,
                },
            ),
        ]));
        let Outcome::Partial(parts) = outcome else {
            panic!("a partial outcome stays partial")
        };
        assert_eq!(parts[0].1, Outcome::Delivered);
        for (_, part) in &parts[1..] {
            let (Outcome::Rejected { error, .. } | Outcome::Retry { error, .. }) = part else {
                panic!("{part:?}")
            };
            assert_eq!(error.message, "rejected:**** and more");
        }
    }

    #[test]
    fn with_adds_a_value_and_debug_shows_none() {
        let s = Scrubber::new(["first-secret"]).with("v1,c2lnbmF0dXJl");
        assert_eq!(s.clean(b"first-secret v1,c2lnbmF0dXJl", true), b"**** ****");
        assert_eq!(format!("{s:?}"), "Scrubber(2 values)");
    }
}
