//! `[api]`: bearer tokens, the key that seals secrets in the store, and the store's topic.
//! A section of the configuration like the others (it lives here, not in `api`, so that the
//! configuration does not depend on the API it configures).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use super::Secret;

/// The default compacted topic that holds the API's destination definitions.
pub const DEFAULT_TOPIC: &str = "courier-destinations";

/// `[api]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Who may call the API, and on which projects.
    #[serde(default)]
    pub tokens: Vec<ApiToken>,
    /// The environment variable holding the AES-256 key (32 bytes, base64) that seals
    /// secrets before they are written to the store.
    pub encryption_key_env: String,
    /// The compacted topic of destination definitions (created when missing).
    #[serde(default = "default_topic")]
    pub destinations_topic: String,
    /// The compacted topic where every replica publishes its destinations' state (created
    /// when missing); the API and the console aggregate the live replicas' rows.
    #[serde(default = "default_status_topic")]
    pub status_topic: String,
    /// How often a replica publishes its state.
    #[serde(default = "default_status_interval", with = "humantime_serde")]
    pub status_interval: Duration,
    /// A replica that has not published for this long is left out of the aggregate (it
    /// stopped or lost the broker).
    #[serde(default = "default_replica_timeout", with = "humantime_serde")]
    pub replica_timeout: Duration,
    /// This replica's name in the status and jobs topics; stable across restarts so that a
    /// restarted replica resumes its jobs. Default: the `HOSTNAME` environment variable (a
    /// pod's name), else the machine's host name.
    #[serde(default)]
    pub replica_id: Option<String>,
    /// The compacted topic of replay jobs (created when missing): any replica answers for any
    /// job, and a job outlives the replica that ran it.
    #[serde(default = "default_jobs_topic")]
    pub jobs_topic: String,
    /// The key, read from `encryption_key_env` when the configuration is loaded.
    #[serde(skip)]
    pub key: Option<EncryptionKey>,
}

/// The default compacted topic of the replicas' published state.
pub const DEFAULT_STATUS_TOPIC: &str = "courier-status";
/// The default compacted topic of replay jobs.
pub const DEFAULT_JOBS_TOPIC: &str = "courier-jobs";
/// Bounds of `status_interval`.
pub const STATUS_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(60));
/// The upper bound of `replica_timeout`; its lower bound is three status intervals.
pub const MAX_REPLICA_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest `replica_id`.
pub const MAX_REPLICA_ID_CHARS: usize = 128;

fn default_status_topic() -> String {
    DEFAULT_STATUS_TOPIC.to_owned()
}

fn default_jobs_topic() -> String {
    DEFAULT_JOBS_TOPIC.to_owned()
}

fn default_status_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_replica_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_topic() -> String {
    DEFAULT_TOPIC.to_owned()
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("tokens", &self.tokens)
            .field("encryption_key_env", &self.encryption_key_env)
            .field("destinations_topic", &self.destinations_topic)
            .field("status_topic", &self.status_topic)
            .field("status_interval", &self.status_interval)
            .field("replica_timeout", &self.replica_timeout)
            .field("replica_id", &self.replica_id)
            .field("jobs_topic", &self.jobs_topic)
            .field("key", &self.key)
            .finish()
    }
}

/// One `[[api.tokens]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// The bearer token (give it as `${API_TOKEN}`).
    pub token: Secret,
    /// The projects it may act on; absent: every project.
    #[serde(default)]
    pub projects: Option<Vec<String>>,
}

/// A 256-bit key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey(pub [u8; 32]);

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(****)")
    }
}

/// Shortest accepted bearer token.
pub const MIN_TOKEN_LEN: usize = 16;

impl ApiConfig {
    /// This replica's name: `replica_id`, else `HOSTNAME`, else the host name, else
    /// "courier" (a single replica needs no name).
    pub fn replica(&self) -> String {
        if let Some(id) = &self.replica_id {
            return id.clone();
        }
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars().count() <= MAX_REPLICA_ID_CHARS
                && !s.chars().any(|c| c.is_control() || c == '/')
        };
        if let Ok(h) = std::env::var("HOSTNAME") {
            if valid(h.trim()) {
                return h.trim().to_owned();
            }
        }
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| valid(h))
            .unwrap_or_else(|| "courier".to_owned())
    }

    /// Checks the section; returns `(key path, message)` for each problem.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if let Err(message) = crate::config::bounds::topic(&self.destinations_topic) {
            errors.push(("api.destinations_topic".into(), message));
        }
        for (key, topic) in [
            ("api.status_topic", &self.status_topic),
            ("api.jobs_topic", &self.jobs_topic),
        ] {
            if let Err(message) = crate::config::bounds::topic(topic) {
                errors.push((key.into(), message));
            }
        }
        let topics = [
            &self.destinations_topic,
            &self.status_topic,
            &self.jobs_topic,
        ];
        if topics[0] == topics[1] || topics[0] == topics[2] || topics[1] == topics[2] {
            errors.push((
                "api.status_topic".into(),
                "api.destinations_topic, api.status_topic and api.jobs_topic must be three different topics".into(),
            ));
        }
        if let Err(message) =
            crate::config::bounds::duration(self.status_interval, STATUS_INTERVAL_RANGE)
        {
            errors.push(("api.status_interval".into(), message));
        }
        let min_timeout = self.status_interval.saturating_mul(3);
        if let Err(message) = crate::config::bounds::duration(
            self.replica_timeout,
            (min_timeout, MAX_REPLICA_TIMEOUT.max(min_timeout)),
        ) {
            errors.push((
                "api.replica_timeout".into(),
                format!("{message}; it must cover three status intervals"),
            ));
        }
        if let Some(id) = &self.replica_id {
            if id.trim().is_empty()
                || id.chars().count() > MAX_REPLICA_ID_CHARS
                || id.chars().any(|c| c.is_control() || c == '/')
            {
                errors.push((
                    "api.replica_id".into(),
                    format!("must be 1 to {MAX_REPLICA_ID_CHARS} characters without '/' or control characters"),
                ));
            }
        }
        if self.encryption_key_env.trim().is_empty() {
            errors.push((
                "api.encryption_key_env".into(),
                "must name an environment variable".into(),
            ));
        }
        for (i, t) in self.tokens.iter().enumerate() {
            if t.token.expose().chars().count() < MIN_TOKEN_LEN {
                errors.push((
                    format!("api.tokens[{i}].token"),
                    format!("must be at least {MIN_TOKEN_LEN} characters long"),
                ));
            }
            if let Some(projects) = &t.projects {
                if projects.is_empty() {
                    errors.push((
                        format!("api.tokens[{i}].projects"),
                        "must list at least one project; leave it out for a token that may act on every project".into(),
                    ));
                }
                if let Some(j) = projects.iter().position(|p| p.trim().is_empty()) {
                    errors.push((
                        format!("api.tokens[{i}].projects[{j}]"),
                        "must not be empty".into(),
                    ));
                }
            }
        }
        errors
    }

    /// Reads the key from `env`; returns `(key path, message)` for each problem. The value
    /// never appears in a message.
    pub fn resolve_key(&mut self, env: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let path = "api.encryption_key_env".to_owned();
        let name = &self.encryption_key_env;
        if name.trim().is_empty() {
            return Vec::new();
        }
        let Some(text) = env.get(name) else {
            return vec![(
                path,
                format!("environment variable {name} is not set; it must hold a 32-byte key, base64-encoded (e.g. `openssl rand -base64 32`)"),
            )];
        };
        let text = text.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text));
        match decoded {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                self.key = Some(EncryptionKey(key));
                Vec::new()
            }
            Ok(bytes) => vec![(
                path,
                format!(
                    "environment variable {name} must hold a 32-byte key, base64-encoded; it holds {} bytes",
                    bytes.len()
                ),
            )],
            Err(_) => vec![(
                path,
                format!("environment variable {name} is not valid base64; it must hold a 32-byte key, base64-encoded"),
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(json: serde_json::Value) -> ApiConfig {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn reads_the_key_from_the_environment_without_printing_it() {
        let mut a = api(serde_json::json!({ "encryption_key_env": "K" }));
        assert_eq!(a.destinations_topic, DEFAULT_TOPIC);
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let env = BTreeMap::from([("K".to_owned(), key.clone())]);
        assert!(a.resolve_key(&env).is_empty());
        assert_eq!(a.key, Some(EncryptionKey([7u8; 32])));
        assert!(!format!("{a:?}").contains(&key));

        let short = BTreeMap::from([(
            "K".to_owned(),
            base64::engine::general_purpose::STANDARD.encode([1u8; 16]),
        )]);
        let errors = a.resolve_key(&short);
        assert!(errors[0].1.contains("holds 16 bytes"), "{errors:?}");
        let errors = a.resolve_key(&BTreeMap::new());
        assert!(errors[0].1.contains("K is not set"), "{errors:?}");
    }

    #[test]
    fn status_keys_have_bounds() {
        let a = api(serde_json::json!({ "encryption_key_env": "K" }));
        assert_eq!(a.status_topic, DEFAULT_STATUS_TOPIC);
        assert_eq!(a.status_interval, Duration::from_secs(5));
        assert_eq!(a.replica_timeout, Duration::from_secs(30));
        assert!(a.validate().is_empty());
        let a = api(serde_json::json!({
            "encryption_key_env": "K",
            "status_topic": "courier-destinations",
            "status_interval": "500ms",
            "replica_id": "pod/0",
        }));
        let keys: Vec<String> = a.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["api.status_topic", "api.status_interval", "api.replica_id"],
            "{:?}",
            a.validate()
        );
        let a = api(serde_json::json!({
            "encryption_key_env": "K", "status_interval": "10s", "replica_timeout": "29s",
        }));
        let errors = a.validate();
        assert_eq!(errors[0].0, "api.replica_timeout", "{errors:?}");
        assert!(errors[0].1.contains("three status intervals"), "{errors:?}");
        let a = api(serde_json::json!({
            "encryption_key_env": "K", "status_interval": "60s", "replica_timeout": "10m",
            "replica_id": "courier-0",
        }));
        assert!(a.validate().is_empty(), "{:?}", a.validate());
        assert_eq!(a.replica(), "courier-0");
    }

    #[test]
    fn rejects_short_tokens_and_empty_project_lists() {
        let a = api(serde_json::json!({
            "encryption_key_env": "K",
            "tokens": [{ "token": "short" }, { "token": "0123456789abcdef", "projects": [] }],
        }));
        let errors = a.validate();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].0, "api.tokens[0].token");
        assert_eq!(errors[1].0, "api.tokens[1].projects");
        assert!(!format!("{a:?}").contains("short"));
    }
}
