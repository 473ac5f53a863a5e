//! Configuration keys of a `splunk_hec` destination.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::Secret;
use crate::sinks::datadog::check_base_url;
use crate::sinks::webhook::Compression;

/// Default `sourcetype`: Splunk extracts the fields of JSON events at search time.
pub const DEFAULT_SOURCETYPE: &str = "_json";

/// Default largest request body (uncompressed).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Default time an indexer acknowledgement may take before the events are sent again.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(300);

/// Type-specific keys of a `splunk_hec` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkConfig {
    /// Base URL of the HTTP Event Collector, e.g. `https://splunk:8088`.
    pub endpoint: String,
    /// The HEC token (`Authorization: Splunk <token>`).
    pub token: Secret,
    /// The index; default: the token's default index.
    #[serde(default)]
    pub index: Option<String>,
    /// The `source` of every event; default: the token's.
    #[serde(default)]
    pub source: Option<String>,
    /// The `sourcetype` of every event; default `_json`.
    #[serde(default)]
    pub sourcetype: Option<String>,
    /// The `host` of every event; default: the one Splunk assigns.
    #[serde(default)]
    pub host: Option<String>,
    /// Indexer acknowledgement: a batch completes only once Splunk confirms it was indexed.
    #[serde(default)]
    pub ack: bool,
    /// How long to wait for an acknowledgement before sending the events again.
    #[serde(default = "ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Body compression; default none.
    #[serde(default)]
    pub compression: Compression,
    /// Largest request body before compression; a batch is split to fit (one larger event
    /// travels alone).
    #[serde(default = "max_request_bytes")]
    pub max_request_bytes: usize,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// `tls.*` of a `splunk_hec` destination.
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

fn ack_timeout() -> Duration {
    DEFAULT_ACK_TIMEOUT
}

fn max_request_bytes() -> usize {
    DEFAULT_MAX_REQUEST_BYTES
}

impl SplunkConfig {
    /// Checks what serde cannot: returns the offending key and the reason.
    pub fn validate(&self) -> Result<(), (String, String)> {
        check_base_url(&self.endpoint).map_err(|m| ("endpoint".to_owned(), m))?;
        let path = reqwest::Url::parse(&self.endpoint)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        if path.contains("/services/collector") {
            return Err((
                "endpoint".into(),
                format!(
                    "give the collector's base URL (e.g. https://splunk:8088), without {path:?}: courier adds /services/collector/event itself"
                ),
            ));
        }
        let token = self.token.expose();
        if token.trim().is_empty() {
            return Err(("token".into(), "must not be empty".into()));
        }
        if reqwest::header::HeaderValue::from_str(&format!("Splunk {token}")).is_err() {
            return Err((
                "token".into(),
                "is not a valid HTTP header value (control characters or line breaks?)".into(),
            ));
        }
        if let Some(index) = &self.index {
            let valid = index
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
                && index
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            if !valid {
                return Err((
                    "index".into(),
                    format!("{index:?} is not a Splunk index name (lower-case letters, digits, _ and -, starting with a letter or digit)"),
                ));
            }
        }
        for (name, value) in [
            ("source", &self.source),
            ("sourcetype", &self.sourcetype),
            ("host", &self.host),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err((name.into(), "must not be empty when given".into()));
            }
        }
        if self.ack_timeout.is_zero() {
            return Err(("ack_timeout".into(), "must be longer than 0s".into()));
        }
        if self.max_request_bytes == 0 {
            return Err(("max_request_bytes".into(), "must be at least 1".into()));
        }
        if let Some(path) = &self.tls.ca_file {
            read_ca_file(path).map_err(|m| ("tls.ca_file".to_owned(), m))?;
        }
        Ok(())
    }
}

/// Reads a PEM file of CA certificates.
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::config::{parse, SinkConfig};

    fn load(keys: &str) -> Result<crate::config::Config, Vec<String>> {
        let text = format!(
            "[[destinations]]\nproject = \"p\"\nid = \"s\"\ntype = \"splunk_hec\"\n{keys}\n"
        );
        let env: BTreeMap<String, String> = [("HEC".to_owned(), "tok-1".to_owned())].into();
        parse("test.toml", &text, &env).map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults() {
        let c = load("endpoint = \"https://splunk:8088\"\ntoken = \"${HEC}\"").unwrap();
        let SinkConfig::SplunkHec(s) = &c.destinations[0].sink else {
            panic!("not splunk")
        };
        assert_eq!(s.token.expose(), "tok-1");
        assert!(!s.ack);
        assert_eq!(s.ack_timeout, super::DEFAULT_ACK_TIMEOUT);
        assert_eq!(s.max_request_bytes, 1_048_576);
        assert_eq!(s.compression, super::Compression::None);
        assert!(s.tls.ca_file.is_none() && !s.tls.insecure_skip_verify);
        assert_eq!(c.destinations[0].sink.type_name(), "splunk_hec");
        assert!(!format!("{s:?}").contains("tok-1"));
        let c = load(
            "endpoint = \"https://splunk:8088\"\ntoken = \"t\"\nack = true\nack_timeout = \"30s\"\nindex = \"main\"\n[destinations.tls]\ninsecure_skip_verify = true",
        )
        .unwrap();
        let SinkConfig::SplunkHec(s) = &c.destinations[0].sink else {
            panic!("not splunk")
        };
        assert!(s.ack && s.tls.insecure_skip_verify);
        assert_eq!(s.ack_timeout, std::time::Duration::from_secs(30));
    }

    #[test]
    fn errors_name_the_key() {
        let e = load("endpoint = \"https://splunk:8088/services/collector/event\"\ntoken = \"t\"")
            .unwrap_err();
        assert!(
            e[0].contains("destinations[0].endpoint: give the collector's base URL"),
            "{e:?}"
        );
        let e = load("endpoint = \"splunk:8088\"\ntoken = \"t\"").unwrap_err();
        assert!(e[0].contains("destinations[0].endpoint:"), "{e:?}");
        let e = load("endpoint = \"https://s\"\ntoken = \"t\"\nindex = \"Main\"").unwrap_err();
        assert!(
            e[0].contains("destinations[0].index: \"Main\" is not a Splunk index name"),
            "{e:?}"
        );
        let e = load("endpoint = \"https://s\"\ntoken = \"t\"\nack_timeout = \"0s\"").unwrap_err();
        assert!(
            e[0].contains("destinations[0].ack_timeout: must be longer than 0s"),
            "{e:?}"
        );
        let e = load("endpoint = \"https://s\"\ntoken = \"t\"\nmax_request_bytes = 0").unwrap_err();
        assert!(
            e[0].contains("destinations[0].max_request_bytes: must be at least 1"),
            "{e:?}"
        );
        let e = load("endpoint = \"https://s\"\ntoken = \"t\"\n[destinations.tls]\nca_file = \"/nonexistent/ca.pem\"").unwrap_err();
        assert!(
            e[0].contains("destinations[0].tls.ca_file: cannot read /nonexistent/ca.pem"),
            "{e:?}"
        );
        let e = load("endpoint = \"https://s\"\ntoken = \"t\"\n[destinations.tls]\nverify = false")
            .unwrap_err();
        assert!(
            e[0].contains("destinations[0].tls") && e[0].contains("verify"),
            "{e:?}"
        );
        let e = load("endpoint = \"https://s\"\ntoken = \"\"").unwrap_err();
        assert!(
            e[0].contains("destinations[0].token: must not be empty"),
            "{e:?}"
        );
        let e = load("endpoint = \"https://s\"").unwrap_err();
        assert!(e[0].contains("missing field `token`"), "{e:?}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let e = load(&format!(
            "endpoint = \"https://s\"\ntoken = \"t\"\n[destinations.tls]\nca_file = \"{}\"",
            path.display()
        ))
        .unwrap_err();
        assert!(e[0].contains("destinations[0].tls.ca_file:"), "{e:?}");
    }
}
