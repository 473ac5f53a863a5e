//! The S3 client: `object_store`'s `AmazonS3` built from the destination's keys and the
//! standard AWS credential chain, and the two writes the sink makes (single PUT, multipart).
//! Its HTTP requests go through [`GuardedConnector`] (the SSRF guard for a custom `endpoint`,
//! answers read up to a limit).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutOptions, PutPayload, RetryConfig,
};

use super::config::{Compression, S3Config};
use super::connector::{GuardedConnector, Settings};
use crate::ssrf::Guard;
use crate::BuildError;
use courier_core::settings::{DeliveryConfig, SecurityConfig};

/// Parts of one multipart upload in flight at once.
const PART_CONCURRENCY: usize = 4;

/// Environment variables of the standard AWS credential chain that are passed to the client
/// when the destination has no static keys, and the `object_store` keys they set. Only these:
/// other `AWS_*` variables (endpoint, bucket, …) must not redirect a destination's data.
const CREDENTIAL_ENV: &[(&str, &str)] = &[
    // 1. static keys from the environment
    ("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
    ("AWS_SESSION_TOKEN", "aws_session_token"),
    // 2. web identity (EKS IRSA)
    ("AWS_WEB_IDENTITY_TOKEN_FILE", "aws_web_identity_token_file"),
    ("AWS_ROLE_ARN", "aws_role_arn"),
    ("AWS_ROLE_SESSION_NAME", "aws_role_session_name"),
    ("AWS_ENDPOINT_URL_STS", "aws_endpoint_url_sts"),
    // 3. container credentials (ECS task roles, EKS Pod Identity)
    (
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "aws_container_credentials_relative_uri",
    ),
    (
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "aws_container_credentials_full_uri",
    ),
    (
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "aws_container_authorization_token_file",
    ),
    // 4. otherwise the instance metadata service (IMDSv2)
    ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "aws_metadata_endpoint"),
];

/// Where the bucket is, resolved from the keys and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The signing region.
    pub region: String,
    /// The base URL given to `object_store` (holds the bucket when virtual-hosted).
    pub endpoint: Option<String>,
    /// Virtual-hosted-style requests.
    pub virtual_hosted: bool,
}

/// Resolves region and addressing. `env` reads an environment variable.
pub fn location(config: &S3Config, env: &dyn Fn(&str) -> Option<String>) -> Location {
    let region = config
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "us-east-1".to_owned());
    // Virtual-hosted names put the bucket in the host name: that cannot work for an IP
    // address or `localhost`, and a bucket with dots breaks the TLS wildcard certificate.
    let bucket_in_host_ok = !config.bucket.contains('.');
    match &config.endpoint {
        None => Location {
            region,
            endpoint: None,
            virtual_hosted: !config.force_path_style && bucket_in_host_ok,
        },
        Some(endpoint) => {
            let url = reqwest::Url::parse(endpoint).ok();
            let host_ok = url
                .as_ref()
                .and_then(|u| u.domain())
                .is_some_and(|d| d != "localhost");
            match url {
                Some(mut url) if !config.force_path_style && bucket_in_host_ok && host_ok => {
                    let host = format!("{}.{}", config.bucket, url.host_str().unwrap_or(""));
                    if url.set_host(Some(&host)).is_err() {
                        return path_style(region, endpoint);
                    }
                    Location {
                        region,
                        endpoint: Some(url.as_str().trim_end_matches('/').to_owned()),
                        virtual_hosted: true,
                    }
                }
                _ => path_style(region, endpoint),
            }
        }
    }
}

fn path_style(region: String, endpoint: &str) -> Location {
    Location {
        region,
        endpoint: Some(endpoint.trim_end_matches('/').to_owned()),
        virtual_hosted: false,
    }
}

/// Builds the client; requests to a custom `endpoint` follow the SSRF guard of `security`.
/// `env` reads the process environment (tests pass their own).
pub fn build_store(
    config: &S3Config,
    delivery: &DeliveryConfig,
    security: &SecurityConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AmazonS3, BuildError> {
    let location = location(config, env);
    let settings = Settings {
        timeout: delivery.request_timeout,
        connect_timeout: delivery.request_timeout.min(Duration::from_secs(10)),
        pool_max_idle_per_host: delivery.max_in_flight.max(1) * PART_CONCURRENCY,
    };
    let mut options = ClientOptions::new()
        .with_timeout(settings.timeout)
        .with_connect_timeout(settings.connect_timeout)
        .with_user_agent(reqwest::header::HeaderValue::from_static(
            crate::util::http::USER_AGENT,
        ))
        .with_pool_max_idle_per_host(settings.pool_max_idle_per_host);
    if location
        .endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"))
    {
        options = options.with_allow_http(true);
    }
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&config.bucket)
        .with_region(&location.region)
        .with_virtual_hosted_style_request(location.virtual_hosted)
        .with_client_options(options)
        .with_http_connector(GuardedConnector::new(
            Guard::new(security),
            location.endpoint.as_deref(),
            settings,
        ))
        // The lane owns retries and their budget: one attempt per request here.
        .with_retry(RetryConfig {
            max_retries: 0,
            retry_timeout: delivery.request_timeout,
            ..RetryConfig::default()
        });
    if let Some(endpoint) = &location.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    match (&config.access_key_id, &config.secret_access_key) {
        (Some(id), Some(secret)) => {
            builder = builder
                .with_access_key_id(id.expose())
                .with_secret_access_key(secret.expose());
            if let Some(token) = &config.session_token {
                builder = builder.with_token(token.expose());
            }
        }
        _ => {
            for (var, key) in CREDENTIAL_ENV {
                if let Some(value) = env(var).filter(|v| !v.is_empty()) {
                    builder = with_key(builder, key, &value)?;
                }
            }
        }
    }
    if let Some(sse) = config.server_side_encryption {
        builder = with_key(builder, "aws_server_side_encryption", sse.as_str())?;
        if let Some(key_id) = &config.kms_key_id {
            builder = with_key(builder, "aws_sse_kms_key_id", key_id)?;
        }
    }
    // Never print the builder's error verbatim: it is about our keys, not the secrets, but
    // keep to the message.
    builder
        .build()
        .map_err(|e| BuildError::Http(format!("cannot build the S3 client: {e}")))
}

/// Sets an `object_store` option by its name.
fn with_key(
    builder: AmazonS3Builder,
    key: &str,
    value: &str,
) -> Result<AmazonS3Builder, BuildError> {
    let key: AmazonS3ConfigKey = key
        .parse()
        .map_err(|e| BuildError::Http(format!("S3 client option {key}: {e}")))?;
    Ok(builder.with_config(key, value))
}

/// Object metadata of every object.
pub fn attributes(compression: Compression) -> Attributes {
    let mut a = Attributes::new();
    a.insert(Attribute::ContentType, "application/x-ndjson".into());
    if compression == Compression::Gzip {
        a.insert(Attribute::ContentEncoding, "gzip".into());
    }
    a
}

/// Writes objects; one shared client for every request of the destination.
#[derive(Debug, Clone)]
pub struct Writer {
    /// The client.
    pub store: Arc<AmazonS3>,
    /// Bodies above this go up in parts.
    pub multipart_threshold: usize,
    /// Part size.
    pub part_size: usize,
}

impl Writer {
    /// Writes `body` at `path`, replacing any object there (PUT, or a multipart upload above
    /// the threshold, aborted when a part or the completion fails).
    pub async fn put(
        &self,
        path: &Path,
        body: Bytes,
        attributes: Attributes,
    ) -> object_store::Result<()> {
        if body.len() <= self.multipart_threshold {
            let options = PutOptions {
                attributes,
                ..PutOptions::default()
            };
            self.store
                .put_opts(path, PutPayload::from(body), options)
                .await?;
            return Ok(());
        }
        let options = PutMultipartOptions {
            attributes,
            ..PutMultipartOptions::default()
        };
        let mut upload = self.store.put_multipart_opts(path, options).await?;
        // Parts are numbered in the order put_part is called; up to PART_CONCURRENCY of them
        // travel at once. Each is a zero-copy slice of the body.
        let chunks: Vec<Bytes> = (0..body.len())
            .step_by(self.part_size)
            .map(|at| body.slice(at..(at + self.part_size).min(body.len())))
            .collect();
        let parts: object_store::Result<()> = stream::iter(chunks)
            .map(|chunk| upload.put_part(PutPayload::from(chunk)))
            .buffer_unordered(PART_CONCURRENCY)
            .try_collect()
            .await;
        let result = match parts {
            Ok(()) => upload.complete().await.map(|_| ()),
            Err(e) => Err(e),
        };
        if result.is_err() {
            if let Err(e) = upload.abort().await {
                tracing::warn!(key = %path, error = %e, "could not abort a failed multipart upload; a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes its parts");
            }
        }
        result
    }

    /// Deletes an object.
    pub async fn delete(&self, path: &Path) -> object_store::Result<()> {
        self.store.delete(path).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::ServerSideEncryption;
    use super::*;

    fn config(bucket: &str, endpoint: Option<&str>, path_style: bool) -> S3Config {
        S3Config {
            bucket: bucket.into(),
            region: None,
            endpoint: endpoint.map(Into::into),
            force_path_style: path_style,
            prefix: String::new(),
            key_template: None,
            compression: Compression::Gzip,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            server_side_encryption: None,
            kms_key_id: None,
            multipart_threshold: 1,
            multipart_part_size: super::super::config::MIN_PART_SIZE,
        }
    }

    #[test]
    fn region_comes_from_the_key_then_the_environment() {
        let none = |_: &str| None;
        assert_eq!(
            location(&config("b-1", None, false), &none).region,
            "us-east-1"
        );
        let env = |k: &str| (k == "AWS_DEFAULT_REGION").then(|| "eu-west-3".to_owned());
        assert_eq!(
            location(&config("b-1", None, false), &env).region,
            "eu-west-3"
        );
        let mut c = config("b-1", None, false);
        c.region = Some("ap-south-1".into());
        assert_eq!(location(&c, &env).region, "ap-south-1");
    }

    #[test]
    fn addressing_style() {
        let none = |_: &str| None;
        let l = location(&config("logs", None, false), &none);
        assert!(l.virtual_hosted);
        assert_eq!(l.endpoint, None);
        assert!(!location(&config("logs", None, true), &none).virtual_hosted);
        assert!(!location(&config("my.logs", None, false), &none).virtual_hosted);
        let l = location(
            &config("logs", Some("https://minio.internal:9000/"), false),
            &none,
        );
        assert_eq!(
            l.endpoint.as_deref(),
            Some("https://logs.minio.internal:9000")
        );
        assert!(l.virtual_hosted);
        let l = location(
            &config("logs", Some("https://minio.internal:9000/"), true),
            &none,
        );
        assert_eq!(l.endpoint.as_deref(), Some("https://minio.internal:9000"));
        assert!(!l.virtual_hosted);
        for ip in [
            "http://127.0.0.1:9000",
            "http://localhost:9000",
            "http://[::1]:9000",
        ] {
            let l = location(&config("logs", Some(ip), false), &none);
            assert!(!l.virtual_hosted, "{ip}");
            assert_eq!(l.endpoint.as_deref(), Some(ip));
        }
    }

    #[test]
    fn builds_with_static_keys_and_encryption() {
        let mut c = config("logs", Some("http://127.0.0.1:9"), true);
        c.access_key_id = Some(courier_core::settings::Secret::new("AKIAEXAMPLE"));
        c.secret_access_key = Some(courier_core::settings::Secret::new("secret"));
        c.server_side_encryption = Some(ServerSideEncryption::AwsKms);
        c.kms_key_id = Some("alias/logs".into());
        let security = SecurityConfig::default();
        build_store(&c, &DeliveryConfig::default(), &security, &|_| None).unwrap();
        c.server_side_encryption = Some(ServerSideEncryption::Aes256);
        c.kms_key_id = None;
        build_store(&c, &DeliveryConfig::default(), &security, &|_| None).unwrap();
    }
}
