//! Configuration keys of an `email` destination, their bounds, and the delivery and filter
//! defaults that suit people rather than machines.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use courier_core::event::Level;
use courier_core::routing::FilterConfig;
use courier_core::settings::{bounds, DeliveryConfig, Secret, SecurityConfig};

use crate::ssrf::Guard;

/// Default `min_interval`: at most one email per destination per 15 minutes.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Longest `min_interval`: a day (a digest held longer holds its partition's commit point
/// for as long).
pub const MAX_MIN_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Default batch timeout of an email destination: events of five minutes make one digest.
pub const EMAIL_BATCH_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Default events per digest batch (more are counted in the digest's "and N more").
pub const EMAIL_BATCH_MAX_EVENTS: usize = 10_000;

/// Default size of one email (headers, text and HTML parts).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Bounds of `max_message_bytes`: room for a few events, and below what mail servers take.
pub const MAX_MESSAGE_BYTES: bounds::Range = (16 * 1024, 10 * 1024 * 1024);

/// Most recipients of one destination.
pub const MAX_RECIPIENTS: usize = 50;

/// Longest address (RFC 5321's path limit).
pub const MAX_ADDRESS_CHARS: usize = 256;

/// The lowest level a digest includes when the destination gives no filter.
pub const DEFAULT_MIN_LEVEL: Level = Level::Error;

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS (port 587); a server that does not offer it
    /// is refused.
    #[default]
    Starttls,
    /// TLS from the first byte ("implicit TLS", SMTPS, port 465).
    Tls,
    /// No encryption (a relay on a trusted network, tests); refused by
    /// `security.https_only`.
    None,
}

impl TlsMode {
    /// The port used when `port` is not given.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
            TlsMode::None => 25,
        }
    }

    /// The key's value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Starttls => "starttls",
            TlsMode::Tls => "tls",
            TlsMode::None => "none",
        }
    }
}

/// Type-specific keys of an `email` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server's host name or address.
    pub host: String,
    /// Its port; default by `tls_mode`: 587, 465 or 25. A number, or a string of digits (so
    /// that it can come from `${VAR}`, which fills strings).
    #[serde(default, deserialize_with = "port")]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    #[serde(default)]
    pub tls_mode: TlsMode,
    /// PEM file of a private CA to trust in addition to the public roots (configuration
    /// file only).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// AUTH user name; with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// AUTH password (a secret).
    #[serde(default)]
    pub password: Option<Secret>,
    /// The sender, `alerts@example.com` or `Alerts <alerts@example.com>`.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// At most one email per this interval; events meanwhile go into the next digest.
    #[serde(default = "min_interval", with = "humantime_serde")]
    pub min_interval: Duration,
    /// Largest email; the listing is trimmed to fit, with "and N more".
    #[serde(default = "max_message_bytes")]
    pub max_message_bytes: usize,
}

fn port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(u64),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    let invalid = || serde::de::Error::custom("expected a port number between 1 and 65535");
    let n = match Option::<Port>::deserialize(d)? {
        None => return Ok(None),
        Some(Port::Number(n)) => n,
        Some(Port::Text(t)) => t.trim().parse::<u64>().map_err(|_| invalid())?,
        Some(Port::Other(_)) => return Err(invalid()),
    };
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok(Some(p)),
        _ => Err(invalid()),
    }
}

fn min_interval() -> Duration {
    DEFAULT_MIN_INTERVAL
}

fn max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}

/// The delivery defaults of an `email` destination: `[delivery]` with a digest's batch limits
/// ([`EMAIL_BATCH_TIMEOUT`], [`EMAIL_BATCH_MAX_EVENTS`]); the destination's own
/// `[destinations.delivery]` keys still win.
pub fn delivery_defaults(defaults: &DeliveryConfig) -> DeliveryConfig {
    DeliveryConfig {
        batch_timeout: EMAIL_BATCH_TIMEOUT,
        batch_max_events: EMAIL_BATCH_MAX_EVENTS,
        ..defaults.clone()
    }
}

/// The filter of an `email` destination that gives none: `min_level = "ERROR"`.
pub fn default_filter() -> FilterConfig {
    FilterConfig {
        min_level: Some(DEFAULT_MIN_LEVEL),
        ..FilterConfig::default()
    }
}

impl EmailConfig {
    /// The port, defaulted by the TLS mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or_else(|| self.tls_mode.default_port())
    }

    /// Checks what serde cannot: every offending key with its reason. Touches nothing on the
    /// host (`tls_ca_file` is read by [`EmailConfig::read_host_files`]); never shows the
    /// password.
    pub fn validate(&self) -> Result<(), Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut check = |key: String, result: Result<(), String>| {
            if let Err(message) = result {
                errors.push((key, message));
            }
        };
        check("host".into(), check_host(&self.host));
        if let Some(path) = &self.tls_ca_file {
            check(
                "tls_ca_file".into(),
                if self.tls_mode == TlsMode::None {
                    Err("is used only with tls_mode = \"starttls\" or \"tls\"".into())
                } else {
                    bounds::bytes(&path.to_string_lossy(), bounds::MAX_PATH_BYTES)
                },
            );
        }
        match (&self.username, &self.password) {
            (Some(user), Some(password)) => {
                check("username".into(), check_credential(user, "user name"));
                check(
                    "password".into(),
                    check_credential(password.expose(), "password")
                        .and_then(|()| bounds::bytes(password.expose(), bounds::MAX_SECRET_BYTES)),
                );
            }
            (Some(_), None) => check(
                "password".into(),
                Err("is required with username (SMTP AUTH needs both)".into()),
            ),
            (None, Some(_)) => check(
                "username".into(),
                Err("is required with password (SMTP AUTH needs both)".into()),
            ),
            (None, None) => {}
        }
        check("from".into(), check_mailbox(&self.from));
        if self.to.is_empty() {
            check("to".into(), Err("must name at least one recipient".into()));
        }
        check("to".into(), bounds::entries(self.to.len(), MAX_RECIPIENTS));
        for (i, to) in self.to.iter().enumerate() {
            check(format!("to[{i}]"), check_mailbox(to));
        }
        check(
            "min_interval".into(),
            bounds::duration(self.min_interval, (Duration::ZERO, MAX_MIN_INTERVAL)),
        );
        check(
            "max_message_bytes".into(),
            bounds::size(self.max_message_bytes, MAX_MESSAGE_BYTES),
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The checks `[security]` asks for: a literal IP `host` outside the allow list (names
    /// are checked when resolved, before each connection), and `tls = "none"` under
    /// `https_only`.
    pub fn check_security(&self, security: &SecurityConfig) -> Result<(), (String, String)> {
        if security.https_only && self.tls_mode == TlsMode::None {
            return Err((
                "tls_mode".into(),
                "\"none\" (unencrypted SMTP) is refused by security.https_only; use \"starttls\" or \"tls\"".into(),
            ));
        }
        if let Ok(ip) = self.host.parse::<std::net::IpAddr>() {
            let guard = Guard::new(security);
            if let Err(blocked) = guard.check(ip) {
                let refusal = crate::ssrf::Refusal {
                    host: None,
                    addresses: vec![crate::ssrf::RefusedAddress { ip, blocked }],
                };
                return Err(("host".into(), refusal.to_string()));
            }
        }
        Ok(())
    }

    /// Reads the files the definition names on the courier host (`tls_ca_file`), to report a
    /// missing or unusable one at load time. For the configuration file's destinations only:
    /// the destinations API refuses the key before anything looks at it.
    pub fn read_host_files(&self) -> Result<(), (String, String)> {
        match &self.tls_ca_file {
            Some(path) => super::tls::read_ca_file(path)
                .map(|_| ())
                .map_err(|m| ("tls_ca_file".to_owned(), m)),
            None => Ok(()),
        }
    }
}

fn check_host(host: &str) -> Result<(), String> {
    bounds::chars(host, bounds::MAX_NAME_CHARS)?;
    if host.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let valid = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is not a host name or IP address (give the SMTP server's name, without a scheme or port)"
        ))
    }
}

fn check_credential(value: &str, what: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().any(char::is_control) {
        return Err(format!("the {what} must not contain control characters"));
    }
    Ok(())
}

/// An address as the message and the envelope need it: RFC 5322 mailbox syntax, ASCII (the
/// envelope would otherwise need SMTPUTF8, which not every server offers).
fn check_mailbox(value: &str) -> Result<(), String> {
    bounds::chars(value, MAX_ADDRESS_CHARS)?;
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    let mailbox: lettre::message::Mailbox = value
        .parse()
        .map_err(|e| format!("{value:?} is not an email address: {e}"))?;
    if !mailbox.email.to_string().is_ascii() {
        return Err(format!(
            "{value:?}: only ASCII addresses are supported (international addresses need SMTPUTF8)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> EmailConfig {
        let mut table = serde_json::json!({
            "host": "smtp.example.com",
            "from": "Alerts <alerts@example.com>",
            "to": ["ops@example.com"],
        });
        for (k, v) in extra.as_object().unwrap() {
            table[k] = v.clone();
        }
        serde_json::from_value(table).unwrap()
    }

    fn keys(c: &EmailConfig) -> Vec<String> {
        c.validate()
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_for_people() {
        let c = config(serde_json::json!({}));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.port(), 587);
        assert_eq!(c.tls_mode, TlsMode::Starttls);
        assert_eq!(c.min_interval, Duration::from_secs(900));
        let d = delivery_defaults(&DeliveryConfig::default());
        assert_eq!(d.batch_timeout, Duration::from_secs(300));
        bounds::size(d.batch_max_events, bounds::BATCH_MAX_EVENTS).unwrap();
        assert_eq!(default_filter().min_level, Some(Level::Error));
        assert_eq!(config(serde_json::json!({"tls_mode": "tls"})).port(), 465);
        assert_eq!(config(serde_json::json!({"tls_mode": "none"})).port(), 25);
    }

    #[test]
    fn every_bad_key_is_named_and_the_password_never_shown() {
        let c = config(serde_json::json!({
            "host": "smtp://mail.example.com:25",
            "username": "u",
            "password": "hunter2-secret\n",
            "from": "not an address",
            "to": ["ok@example.com", "bad@", "ünï@exämple.com"],
            "min_interval": "2days",
            "max_message_bytes": 10,
        }));
        let errors = c.validate().unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "host",
                "password",
                "from",
                "to[1]",
                "to[2]",
                "min_interval",
                "max_message_bytes"
            ]
        );
        assert!(!format!("{errors:?}").contains("hunter2"), "{errors:?}");
        assert_eq!(keys_of(serde_json::json!({"username": "u"})), ["password"]);
        assert_eq!(keys_of(serde_json::json!({"to": []})), ["to"]);
        assert_eq!(
            keys_of(serde_json::json!({"tls_mode": "none", "tls_ca_file": "/x.pem"})),
            ["tls_ca_file"]
        );
    }

    #[test]
    fn the_port_is_a_number_or_a_string_of_digits() {
        let port = |v: serde_json::Value| {
            serde_json::from_value::<EmailConfig>(serde_json::json!({
                "host": "h", "from": "a@example.com", "to": ["b@example.com"], "port": v
            }))
            .map(|c| c.port())
            .map_err(|e| e.to_string())
        };
        assert_eq!(port(serde_json::json!(2525)), Ok(2525));
        assert_eq!(port(serde_json::json!("2525")), Ok(2525));
        for bad in [
            serde_json::json!(0),
            serde_json::json!(70000),
            serde_json::json!("x"),
        ] {
            assert!(port(bad).unwrap_err().contains("between 1 and 65535"));
        }
    }

    fn keys_of(extra: serde_json::Value) -> Vec<String> {
        keys(&config(extra))
    }

    #[test]
    fn security_refuses_private_literals_and_plain_smtp_when_asked() {
        let strict = SecurityConfig {
            allow_networks: Vec::new(),
            https_only: true,
            ..SecurityConfig::default()
        };
        let c = config(serde_json::json!({"host": "127.0.0.1"}));
        let (key, message) = c.check_security(&SecurityConfig::default()).unwrap_err();
        assert_eq!(key, "host");
        assert!(message.contains("allow_networks"), "{message}");
        let allowed = SecurityConfig {
            allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
            https_only: false,
            ..SecurityConfig::default()
        };
        assert_eq!(c.check_security(&allowed), Ok(()));
        let plain = config(serde_json::json!({"tls_mode": "none"}));
        assert_eq!(plain.check_security(&strict).unwrap_err().0, "tls_mode");
        assert_eq!(
            config(serde_json::json!({})).check_security(&strict),
            Ok(())
        );
    }
}
