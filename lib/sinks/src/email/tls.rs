//! The TLS settings of the SMTP connection: the public roots (webpki) plus, when
//! `tls_ca_file` is given, the certificates of a private CA.

use lettre::transport::smtp::client::{Certificate, TlsParameters};

use crate::util::tls::read_pem_file;

/// Reads a PEM file of CA certificates ([`read_pem_file`]: a bounded regular file) holding
/// at least one certificate.
pub fn read_ca_file(path: &std::path::Path) -> Result<Certificate, String> {
    let pem = read_pem_file(path)?;
    if memchr::memmem::find(&pem, b"-----BEGIN CERTIFICATE-----").is_none() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Certificate::from_pem(&pem)
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))
}

/// The TLS parameters for `host`, trusting `ca` in addition to the public roots.
pub fn parameters(host: &str, ca: Option<Certificate>) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(ca) = ca {
        builder = builder.add_root_certificate(ca);
    }
    builder
        .build_rustls()
        .map_err(|e| format!("cannot set up TLS for {host}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_ca_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(read_ca_file(&missing).unwrap_err().contains("cannot read"));
        assert!(read_ca_file(dir.path())
            .unwrap_err()
            .contains("not a regular file"));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "hello").unwrap();
        assert!(read_ca_file(&empty)
            .unwrap_err()
            .contains("holds no PEM certificate"));
    }
}
