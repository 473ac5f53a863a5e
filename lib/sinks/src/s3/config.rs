//! Configuration keys of an `s3` destination.

use serde::Deserialize;

use super::key::KeyTemplate;
use courier_core::settings::{bounds, DeliveryConfig, Secret};

/// The default `key_template` (`{ext}` is `ndjson.gz`, or `ndjson` without compression).
pub const DEFAULT_KEY_TEMPLATE: &str =
    "{prefix}/project={project}/dt={date}/hour={hour}/{topic}-{partition}-{first_offset}-{last_offset}.{ext}";

/// Bodies larger than this are uploaded with a multipart upload (16 MiB).
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;

/// Size of one multipart part (8 MiB).
pub const DEFAULT_MULTIPART_PART_SIZE: usize = 8 * 1024 * 1024;

/// S3 refuses parts smaller than this, except the last one.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// S3 refuses parts larger than this.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;

/// Batch limits of `s3` destinations that do not set their own in `[destinations.delivery]`:
/// objects, not requests (`[delivery]`'s defaults are sized for HTTP requests).
pub const S3_BATCH_MAX_EVENTS: usize = 100_000;
/// See [`S3_BATCH_MAX_EVENTS`]: 64 MiB.
pub const S3_BATCH_MAX_BYTES: usize = 64 * 1024 * 1024;
/// See [`S3_BATCH_MAX_EVENTS`]: 5 minutes.
pub const S3_BATCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The delivery defaults of an `s3` destination: `[delivery]` with the object-sized batch
/// limits ([`S3_BATCH_MAX_EVENTS`], [`S3_BATCH_MAX_BYTES`], [`S3_BATCH_TIMEOUT`]); the
/// destination's own `[destinations.delivery]` keys still win.
pub fn delivery_defaults(defaults: &DeliveryConfig) -> DeliveryConfig {
    DeliveryConfig {
        batch_max_events: S3_BATCH_MAX_EVENTS,
        batch_max_bytes: S3_BATCH_MAX_BYTES,
        batch_timeout: S3_BATCH_TIMEOUT,
        ..defaults.clone()
    }
}

/// Type-specific keys of an `s3` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket objects are written to.
    pub bucket: String,
    /// The bucket's region; default `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Base URL of an S3-compatible server (`https://minio.internal:9000`); default AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted ones
    /// (`bucket.endpoint/key`).
    #[serde(default)]
    pub force_path_style: bool,
    /// Prepended to every key by the `{prefix}` variable.
    #[serde(default)]
    pub prefix: String,
    /// How object keys are built; see [`super::key`].
    #[serde(default)]
    pub key_template: Option<String>,
    /// Object compression.
    #[serde(default)]
    pub compression: Compression,
    /// Static credentials; without them the standard AWS credential chain is used.
    #[serde(default)]
    pub access_key_id: Option<Secret>,
    /// Goes with `access_key_id`.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Goes with static keys that are temporary (STS) credentials.
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// `AES256` (SSE-S3) or `aws:kms` (SSE-KMS); default: the bucket's own setting.
    #[serde(default)]
    pub server_side_encryption: Option<ServerSideEncryption>,
    /// The KMS key for `aws:kms` (id, ARN or alias); default the account's `aws/s3` key.
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// Bodies larger than this many bytes go up as multipart uploads.
    #[serde(default = "default_multipart_threshold")]
    pub multipart_threshold: usize,
    /// Part size of multipart uploads, in bytes (5 MiB to 5 GiB).
    #[serde(default = "default_multipart_part_size")]
    pub multipart_part_size: usize,
}

fn default_multipart_threshold() -> usize {
    DEFAULT_MULTIPART_THRESHOLD
}

fn default_multipart_part_size() -> usize {
    DEFAULT_MULTIPART_PART_SIZE
}

/// Object compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// `.ndjson.gz`, `Content-Encoding: gzip`.
    #[default]
    Gzip,
    /// `.ndjson`.
    None,
}

impl Compression {
    /// The `{ext}` template variable.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => "ndjson.gz",
            Compression::None => "ndjson",
        }
    }
}

/// Server-side encryption requested on every object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ServerSideEncryption {
    /// SSE-S3.
    #[serde(rename = "AES256")]
    Aes256,
    /// SSE-KMS.
    #[serde(rename = "aws:kms")]
    AwsKms,
}

impl ServerSideEncryption {
    /// The `x-amz-server-side-encryption` value.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerSideEncryption::Aes256 => "AES256",
            ServerSideEncryption::AwsKms => "aws:kms",
        }
    }
}

impl S3Config {
    /// The key template in force.
    pub fn key_template(&self) -> &str {
        self.key_template.as_deref().unwrap_or(DEFAULT_KEY_TEMPLATE)
    }

    /// The prefix without leading or trailing slashes.
    pub fn prefix(&self) -> &str {
        self.prefix.trim_matches('/')
    }

    /// Checks an `endpoint`: its length, http or https, a host, no credentials, no query or
    /// fragment. Also used on the raw table when the rest of it does not deserialize.
    pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
        bounds::chars(endpoint, bounds::MAX_URL_CHARS)?;
        let url = reqwest::Url::parse(endpoint).map_err(|e| format!("not a valid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "scheme must be http or https, not {:?}",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("has no host".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "must not hold credentials; use access_key_id / secret_access_key".to_owned(),
            );
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or fragment".to_owned());
        }
        Ok(())
    }

    /// Checks what serde cannot: every offending key with its reason. Never names a
    /// secret's value.
    pub fn validate(&self) -> Result<(), Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut check = |key: &str, result: Result<(), String>| {
            if let Err(message) = result {
                errors.push((key.to_owned(), message));
            }
        };
        check(
            "bucket",
            bounds::chars(&self.bucket, 63).and_then(|()| {
                if valid_bucket_name(&self.bucket) {
                    Ok(())
                } else {
                    Err(format!(
                        "{:?} is not a valid bucket name (3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit)",
                        self.bucket
                    ))
                }
            }),
        );
        if let Some(region) = &self.region {
            check(
                "region",
                bounds::chars(region, bounds::MAX_NAME_CHARS).and_then(|()| {
                    if region.is_empty()
                        || !region
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        Err(format!("{region:?} is not a region name"))
                    } else {
                        Ok(())
                    }
                }),
            );
        }
        if let Some(endpoint) = &self.endpoint {
            check("endpoint", Self::check_endpoint(endpoint));
        }
        check(
            "prefix",
            bounds::bytes(&self.prefix, bounds::MAX_KEY_PART_BYTES).and_then(|()| {
                if self.prefix().split('/').any(|s| s == "." || s == "..") {
                    Err("must not contain \".\" or \"..\" segments".to_owned())
                } else {
                    Ok(())
                }
            }),
        );
        check(
            "key_template",
            bounds::bytes(self.key_template(), bounds::MAX_KEY_PART_BYTES)
                .and_then(|()| KeyTemplate::parse(self.key_template()).map(|_| ())),
        );
        for (key, secret) in [
            ("access_key_id", &self.access_key_id),
            ("secret_access_key", &self.secret_access_key),
            ("session_token", &self.session_token),
        ] {
            if let Some(s) = secret {
                check(key, bounds::bytes(s.expose(), bounds::MAX_SECRET_BYTES));
            }
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) => check(
                "secret_access_key",
                Err("is required when access_key_id is set".to_owned()),
            ),
            (None, Some(_)) => check(
                "access_key_id",
                Err("is required when secret_access_key is set".to_owned()),
            ),
            (Some(id), Some(secret)) => {
                if id.expose().trim().is_empty() {
                    check("access_key_id", Err("must not be empty".to_owned()));
                }
                if secret.expose().trim().is_empty() {
                    check("secret_access_key", Err("must not be empty".to_owned()));
                }
            }
            (None, None) => {
                if self.session_token.is_some() {
                    check(
                        "session_token",
                        Err("needs access_key_id and secret_access_key".to_owned()),
                    );
                }
            }
        }
        if let Some(kms) = &self.kms_key_id {
            if self.server_side_encryption != Some(ServerSideEncryption::AwsKms) {
                check(
                    "kms_key_id",
                    Err("needs server_side_encryption = \"aws:kms\"".to_owned()),
                );
            } else if kms.trim().is_empty() {
                check("kms_key_id", Err("must not be empty".to_owned()));
            } else {
                check(
                    "kms_key_id",
                    bounds::chars(kms, bounds::MAX_KMS_KEY_ID_CHARS),
                );
            }
        }
        check(
            "multipart_threshold",
            bounds::size(self.multipart_threshold, bounds::MULTIPART_THRESHOLD),
        );
        check(
            "multipart_part_size",
            bounds::size(self.multipart_part_size, bounds::MULTIPART_PART_SIZE).map_err(|m| {
                format!("{m}: S3 takes parts of 5 MiB ({MIN_PART_SIZE}) to 5 GiB ({MAX_PART_SIZE})")
            }),
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// S3 bucket naming rules (general purpose buckets), without the rarely hit reserved names.
fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}
