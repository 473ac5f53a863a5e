//! Sealing secrets with AES-256-GCM before they are written to the store.
//!
//! A sealed value is `v1.` followed by the base64 of a random 96-bit nonce and the ciphertext
//! (with its tag). The associated data binds it to its place — the destination and the key
//! path — so a sealed value copied to another destination or field does not open.

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::Engine as _;

use crate::config::EncryptionKey;

const PREFIX: &str = "v1.";

/// Seals and opens secrets with one key.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
}

/// A sealed value could not be opened: another key, or tampering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decrypt a secret: {0}")]
pub struct OpenError(pub &'static str);

impl Cipher {
    /// A cipher with `key`.
    pub fn new(key: &EncryptionKey) -> Self {
        Self {
            aead: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0)),
        }
    }

    /// Seals `plaintext`, bound to `context`.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a small value cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
        )
    }

    /// Opens a value sealed with `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, OpenError> {
        let body = sealed
            .strip_prefix(PREFIX)
            .ok_or(OpenError("not a sealed value"))?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(body)
            .map_err(|_| OpenError("not a sealed value"))?;
        if bytes.len() < 12 + 16 {
            return Err(OpenError("sealed value too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plaintext = self
            .aead
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| OpenError("wrong encryption key, or the value was altered"))?;
        String::from_utf8(plaintext).map_err(|_| OpenError("not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_the_context() {
        let c = Cipher::new(&EncryptionKey([1; 32]));
        let sealed = c.seal("whsec_abc", "p/d#secret");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(sealed, c.seal("whsec_abc", "p/d#secret"), "random nonce");
        assert_eq!(c.open(&sealed, "p/d#secret").unwrap(), "whsec_abc");
        assert!(c.open(&sealed, "p/e#secret").is_err());
        let other = Cipher::new(&EncryptionKey([2; 32]));
        assert_eq!(
            other.open(&sealed, "p/d#secret").unwrap_err().0,
            "wrong encryption key, or the value was altered"
        );
        assert!(c.open("plain", "p/d#secret").is_err());
    }
}
