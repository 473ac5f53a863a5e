//! The `[destinations.tls]` table of the HTTP sinks that talk to a customer's own server
//! (`splunk_hec`, `otlp`): a private CA to trust, or no verification at all (testing only),
//! and the bounded reading of the CA file.
//!
//! Only the configuration file's definitions may name a CA file: the daemon's loader refuses
//! `tls.ca_file` from the destinations API before anything looks at the path.

use std::path::PathBuf;

use serde::Deserialize;

use crate::BuildError;
use courier_core::settings::bounds;

/// `tls.*` of a destination.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate(s) of a private CA to trust, in addition to the
    /// system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (testing only; logged as a warning at start-up).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl TlsConfig {
    /// `builder` trusting the CA file too (read now), or verifying nothing; `what` names the
    /// service in the warning that says so.
    pub fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
        endpoint: &str,
        what: &str,
    ) -> Result<reqwest::ClientBuilder, BuildError> {
        if let Some(path) = &self.ca_file {
            for cert in
                read_ca_file(path).map_err(|e| BuildError::Http(format!("tls.ca_file: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if self.insecure_skip_verify {
            tracing::warn!(
                endpoint,
                "tls.insecure_skip_verify is set: the {what} certificate is not verified, so anyone on the path can read the events and the credentials"
            );
            builder = builder.danger_accept_invalid_certs(true);
        }
        Ok(builder)
    }

    /// Checks the path's length (the file itself is read by the loader, for the configuration
    /// file's destinations only).
    pub fn validate(&self) -> Result<(), (String, String)> {
        match &self.ca_file {
            Some(path) => bounds::bytes(&path.to_string_lossy(), bounds::MAX_PATH_BYTES)
                .map_err(|m| ("tls.ca_file".to_owned(), m)),
            None => Ok(()),
        }
    }
}

/// Reads a PEM file of CA certificates: a regular file (not a FIFO, a device or a
/// directory, which could block or never end) of at most [`bounds::MAX_CA_FILE_BYTES`].
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = read_pem_file(path)?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The bytes of a CA file, read safely: a regular file (checked before and after opening) of
/// at most [`bounds::MAX_CA_FILE_BYTES`]. Shared by the TLS clients of every sink (reqwest's
/// here, lettre's in the email sink).
pub fn read_pem_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let not_regular = || {
        format!(
            "{} is not a regular file (a PEM file of CA certificates is expected)",
            path.display()
        )
    };
    // stat before open: opening a FIFO for reading blocks until a writer comes.
    if !std::fs::metadata(path).map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path).map_err(cannot)?;
    // …and again on what was opened, in case the path was replaced in between.
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let limit = bounds::MAX_CA_FILE_BYTES;
    let mut pem = Vec::new();
    file.take(limit + 1).read_to_end(&mut pem).map_err(cannot)?;
    if pem.len() as u64 > limit {
        return Err(format!(
            "{} is larger than {limit} bytes; a PEM file of CA certificates is expected",
            path.display()
        ));
    }
    Ok(pem)
}
