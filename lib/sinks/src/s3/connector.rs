//! The S3 sink's HTTP client, under the SSRF guard.
//!
//! `object_store` builds its own `reqwest` clients, which resolve names with the system
//! resolver and follow redirects: a tenant's `endpoint` whose name resolves to an internal
//! address (or that redirects there) would be reached although the configuration-time check
//! of literal addresses passed. So the store gets this connector ([`GuardedConnector`]):
//!
//! - requests to the configured `endpoint`'s host go through a client with the guard's
//!   resolver ([`Guard::install`]: only vetted addresses are dialled, no second lookup) and
//!   no redirects, and a literal IP host is checked before each request ([`Guard::check_url`]);
//!   a refusal surfaces as an error [`super::classify`] turns into a rejection of the
//!   destination;
//! - requests to other hosts keep `object_store`'s own client: those are AWS's own endpoints
//!   (the default `s3.<region>.amazonaws.com` hosts, derived from a validated bucket and region,
//!   left unguarded like Datadog's site intakes so that VPC endpoints with private DNS keep
//!   working) and the operator's credential chain (instance metadata, container credentials,
//!   STS), which must reach link-local addresses.
//!
//! Every answer is read up to [`S3_ANSWER_BYTES`] whichever client made the request:
//! `object_store` reads an error answer whole into its error text, so an endpoint answering
//! with an endless body would otherwise grow memory until `request_timeout`.

use bytes::BytesMut;
use futures::StreamExt;
use object_store::client::{
    ClientConfigKey, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest,
    HttpResponse, HttpResponseBody, HttpService, ReqwestConnector,
};
use object_store::ClientOptions;

use crate::ssrf::Guard;

/// How much of an S3 answer is read. S3's answers to the requests the sink makes (errors,
/// multipart upload ids and completions, credentials) are XML or JSON documents of a few KB at
/// most: a longer answer is cut there and its rest not read.
pub const S3_ANSWER_BYTES: usize = 64 * 1024;

/// Settings of the guarded client (those of the store's [`ClientOptions`] courier sets).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whole request, answer included.
    pub timeout: std::time::Duration,
    /// Connecting.
    pub connect_timeout: std::time::Duration,
    /// Idle connections kept per host.
    pub pool_max_idle_per_host: usize,
}

/// Connects `object_store` to the endpoint through the SSRF guard (see the module docs).
#[derive(Debug)]
pub struct GuardedConnector {
    guard: Guard,
    /// The configured endpoint's host (lower case, IPv6 without brackets); `None` when the
    /// destination uses AWS's own endpoints.
    host: Option<String>,
    settings: Settings,
}

impl GuardedConnector {
    /// A connector guarding requests to the host of `endpoint` (the URL given to the store).
    pub fn new(guard: Guard, endpoint: Option<&str>, settings: Settings) -> Self {
        Self {
            guard,
            host: endpoint
                .and_then(|e| reqwest::Url::parse(e).ok())
                .and_then(|u| u.host_str().map(normal_host)),
            settings,
        }
    }
}

/// A host as compared: lower case, without IPv6 brackets.
fn normal_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

impl HttpConnector for GuardedConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let plain = ReqwestConnector::default().connect(options)?;
        let Some(host) = &self.host else {
            return Ok(HttpClient::new(Routed {
                guarded: None,
                plain,
            }));
        };
        let allow_http = options
            .get_config_value(&ClientConfigKey::AllowHttp)
            .is_some_and(|v| v == "true");
        let client = self
            .guard
            .install(reqwest::Client::builder())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.settings.timeout)
            .connect_timeout(self.settings.connect_timeout)
            .pool_max_idle_per_host(self.settings.pool_max_idle_per_host)
            .user_agent(crate::util::http::USER_AGENT)
            // As object_store's own client: compression would break Content-Length.
            .no_gzip()
            .no_brotli()
            .no_zstd()
            .no_deflate()
            .https_only(!allow_http)
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })?;
        Ok(HttpClient::new(Routed {
            guarded: Some(Guarded {
                host: host.clone(),
                guard: self.guard.clone(),
                client,
            }),
            plain,
        }))
    }
}

/// The guarded client of the endpoint's host.
#[derive(Debug)]
struct Guarded {
    host: String,
    guard: Guard,
    client: reqwest::Client,
}

/// Sends each request through the client its host calls for.
#[derive(Debug)]
struct Routed {
    guarded: Option<Guarded>,
    plain: HttpClient,
}

#[async_trait::async_trait]
impl HttpService for Routed {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        // As reqwest reads it (every IPv4 spelling in dotted form), which is what it dials.
        let url = reqwest::Url::parse(&request.uri().to_string()).ok();
        let host = url.as_ref().and_then(|u| u.host_str()).map(normal_host);
        let response = match (&self.guarded, &url) {
            (Some(g), Some(url)) if host.as_deref() == Some(g.host.as_str()) => {
                // A literal IP host is never resolved, so the resolver cannot vet it.
                g.guard
                    .check_url(url)
                    .map_err(|refusal| HttpError::new(HttpErrorKind::Connect, refusal))?;
                HttpService::call(&g.client, request).await?
            }
            _ => self.plain.execute(request).await?,
        };
        limit(response).await
    }
}

/// The answer with its body read up to [`S3_ANSWER_BYTES`].
async fn limit(response: HttpResponse) -> Result<HttpResponse, HttpError> {
    let (parts, body) = response.into_parts();
    let mut stream = body.bytes_stream();
    let mut read = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = S3_ANSWER_BYTES - read.len();
        if chunk.len() > room {
            read.extend_from_slice(&chunk[..room]);
            break;
        }
        read.extend_from_slice(&chunk);
    }
    Ok(HttpResponse::from_parts(
        parts,
        HttpResponseBody::from(read.freeze()),
    ))
}
