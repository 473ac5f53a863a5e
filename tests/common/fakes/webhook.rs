//! A customer's webhook endpoint ([`WebhookReceiver`]): an HTTP server in the test process
//! that enforces the webhook request contract of `CONTRACT.md` (method, path, content type,
//! user agent, configured headers, compression, Standard Webhooks signature, body format),
//! records what it accepted byte for byte, and answers as told ([`Behaviour`]: failures,
//! `Retry-After`, hanging, slow answers).

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::common::{rt, toml_str};

/// Body format a webhook destination is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    JsonArray,
    Ndjson,
}

impl Format {
    pub fn config_name(self) -> &'static str {
        match self {
            Format::JsonArray => "json_array",
            Format::Ndjson => "ndjson",
        }
    }
    fn content_type(self) -> &'static str {
        match self {
            Format::JsonArray => "application/json",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

/// What the receiver expects (and what [`WebhookReceiver::destination_toml`] configures).
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    pub format: Format,
    pub gzip: bool,
    /// `whsec_<base64 key>`: requests must carry a valid Standard Webhooks signature.
    pub secret: Option<String>,
    /// Custom headers the destination is configured with; each must arrive with this value.
    pub headers: Vec<(String, String)>,
    pub path: String,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            format: Format::JsonArray,
            gzip: false,
            secret: None,
            headers: vec![("X-Test".into(), "yes".into())],
            path: "/hook".into(),
        }
    }
}

impl ReceiverConfig {
    pub fn signed(mut self) -> Self {
        self.secret = Some(test_secret());
        self
    }
    pub fn format(mut self, f: Format) -> Self {
        self.format = f;
        self
    }
    pub fn gzip(mut self) -> Self {
        self.gzip = true;
        self
    }
}

/// A Standard Webhooks signing secret for tests.
pub fn test_secret() -> String {
    let key = b"courier-e2e-signing-key-0123456789";
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// How the receiver answers (valid) requests; change it at any time with
/// [`WebhookReceiver::set_behaviour`] (which restarts the request count the modes refer to).
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// 200 for every request.
    Ok,
    /// The first `n` requests get `status`, then 200.
    FailFirst { n: usize, status: u16 },
    /// Every request gets `status`.
    Always(u16),
    /// The first `n` requests get 429 with `Retry-After: seconds`, then 200.
    RetryAfter { n: usize, seconds: u64 },
    /// Never answer.
    Hang,
    /// Answer 200 after `Duration`.
    Slow(Duration),
}

/// One request the receiver saw.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// When the request (headers and body) had arrived.
    pub at: Instant,
    pub webhook_id: Option<String>,
    /// Status answered; 0 while unanswered (or never, for [`Behaviour::Hang`]).
    pub status: u16,
    /// Events in the body (0 when the body violated the contract).
    pub events: usize,
}

#[derive(Default)]
struct ReceiverState {
    behaviour_hits: usize,
    events: Vec<Vec<u8>>,
    requests: Vec<RequestRecord>,
    violations: Vec<String>,
}

struct ReceiverInner {
    cfg: ReceiverConfig,
    behaviour: Mutex<Behaviour>,
    state: Mutex<ReceiverState>,
}

/// An HTTP server on 127.0.0.1 that plays a webhook destination, enforces the webhook request
/// contract (CONTRACT.md "Webhook requests") and records what it accepted.
///
/// A request that violates the contract is answered 400 and recorded in [`violations`]
/// (tests assert there were none). Events of accepted (200) requests are stored as the exact
/// bytes they had in the request body.
///
/// [`violations`]: WebhookReceiver::violations
pub struct WebhookReceiver {
    inner: Arc<ReceiverInner>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    pub fn start(cfg: ReceiverConfig) -> WebhookReceiver {
        let inner = Arc::new(ReceiverInner {
            cfg,
            behaviour: Mutex::new(Behaviour::Ok),
            state: Mutex::new(ReceiverState::default()),
        });
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind webhook receiver");
        let addr = listener.local_addr().expect("receiver address");
        let app = Router::new()
            .fallback(handle_webhook)
            .layer(DefaultBodyLimit::disable())
            .with_state(inner.clone());
        let task = rt().spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("webhook receiver stopped: {e}");
            }
        });
        WebhookReceiver { inner, addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.inner.cfg.path)
    }

    pub fn config(&self) -> &ReceiverConfig {
        &self.inner.cfg
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        let mut b = self.inner.behaviour.lock().unwrap();
        self.inner.state.lock().unwrap().behaviour_hits = 0;
        *b = behaviour;
    }

    /// Events accepted (answered 200), each as the exact bytes of the request body.
    pub fn events(&self) -> Vec<Vec<u8>> {
        self.inner.state.lock().unwrap().events.clone()
    }

    pub fn event_count(&self) -> usize {
        self.inner.state.lock().unwrap().events.len()
    }

    /// Requests received, contract violations included.
    pub fn request_count(&self) -> usize {
        self.inner.state.lock().unwrap().requests.len()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.state.lock().unwrap().requests.clone()
    }

    /// The `webhook-id` of each request, in arrival order.
    pub fn webhook_ids(&self) -> Vec<Option<String>> {
        self.requests().into_iter().map(|r| r.webhook_id).collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().violations.clone()
    }

    /// A `[[destinations]]` table for a webhook destination pointing at this receiver,
    /// configured the way the receiver expects (format, compression, secret, headers).
    pub fn destination_toml(&self, project: &str, id: &str) -> String {
        let cfg = &self.inner.cfg;
        let mut t = String::new();
        t.push_str("[[destinations]]\n");
        t.push_str(&format!("project = {}\n", toml_str(project)));
        t.push_str(&format!("id = {}\n", toml_str(id)));
        t.push_str("type = \"webhook\"\n");
        t.push_str(&format!("url = {}\n", toml_str(&self.url())));
        if let Some(secret) = &cfg.secret {
            t.push_str(&format!("secret = {}\n", toml_str(secret)));
        }
        t.push_str(&format!(
            "format = {}\n",
            toml_str(cfg.format.config_name())
        ));
        t.push_str(&format!(
            "compression = {}\n",
            toml_str(if cfg.gzip { "gzip" } else { "none" })
        ));
        if !cfg.headers.is_empty() {
            let hs: Vec<String> = cfg
                .headers
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_str(k), toml_str(v)))
                .collect();
            t.push_str(&format!("headers = {{ {} }}\n", hs.join(", ")));
        }
        t
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks one request against the contract; returns the events' raw bytes or the violations.
fn check_request(
    cfg: &ReceiverConfig,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<Vec<u8>>, Vec<String>> {
    let mut v = Vec::new();
    if method != Method::POST {
        v.push(format!("method is {method}, expected POST"));
    }
    if uri.path() != cfg.path {
        v.push(format!("path is {}, expected {}", uri.path(), cfg.path));
    }
    match header_str(headers, "content-type") {
        Some(ct) => {
            let media = ct.split(';').next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case(cfg.format.content_type()) {
                v.push(format!(
                    "Content-Type is {ct:?}, expected {:?} for format {}",
                    cfg.format.content_type(),
                    cfg.format.config_name()
                ));
            }
        }
        None => v.push("no Content-Type header".into()),
    }
    match header_str(headers, "user-agent") {
        Some(ua) if ua.starts_with("courier/") && ua.len() > "courier/".len() => {}
        other => v.push(format!(
            "User-Agent is {other:?}, expected courier/<version>"
        )),
    }
    for (name, value) in &cfg.headers {
        match header_str(headers, name) {
            Some(got) if got == value => {}
            other => v.push(format!(
                "configured header {name} is {other:?}, expected {value:?}"
            )),
        }
    }
    if let Some(secret) = &cfg.secret {
        if let Err(e) = verify_signature(secret, headers, body) {
            v.push(e);
        }
    }
    let encoding = header_str(headers, "content-encoding");
    let decoded: Vec<u8> = match (encoding, cfg.gzip) {
        (Some(enc), true) if enc.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::new();
            match flate2::read::GzDecoder::new(body).read_to_end(&mut out) {
                Ok(_) => out,
                Err(e) => {
                    v.push(format!(
                        "Content-Encoding: gzip but the body does not gunzip: {e}"
                    ));
                    return Err(v);
                }
            }
        }
        (None, false) => body.to_vec(),
        (enc, gzip) => {
            v.push(format!(
                "Content-Encoding is {enc:?} but the destination is configured with compression {}",
                if gzip { "gzip" } else { "none" }
            ));
            return Err(v);
        }
    };
    let events = match split_events(cfg.format, &decoded) {
        Ok(events) => events,
        Err(e) => {
            v.push(e);
            return Err(v);
        }
    };
    if events.is_empty() {
        v.push("request carries no events".into());
    }
    if v.is_empty() {
        Ok(events)
    } else {
        Err(v)
    }
}

/// Splits a (decompressed) body into the raw bytes of each event, as sent.
pub fn split_events(format: Format, body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let is_object = |raw: &[u8]| -> Result<(), String> {
        match serde_json::from_slice::<serde_json::Value>(raw) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            Ok(other) => Err(format!("event is not a JSON object: {other}")),
            Err(e) => Err(format!("event is not valid JSON: {e}")),
        }
    };
    match format {
        Format::JsonArray => {
            let raws: Vec<Box<serde_json::value::RawValue>> = serde_json::from_slice(body)
                .map_err(|e| {
                    format!(
                        "body is not a JSON array ({e}); starts with {:?}",
                        String::from_utf8_lossy(&body[..body.len().min(80)])
                    )
                })?;
            raws.iter()
                .map(|r| {
                    let bytes = r.get().as_bytes();
                    is_object(bytes).map(|()| bytes.to_vec())
                })
                .collect()
        }
        Format::Ndjson => {
            let body = body.strip_suffix(b"\n").unwrap_or(body);
            if body.is_empty() {
                return Ok(Vec::new());
            }
            body.split(|&b| b == b'\n')
                .enumerate()
                .map(|(i, line)| {
                    is_object(line)
                        .map(|()| line.to_vec())
                        .map_err(|e| format!("NDJSON line {i}: {e}"))
                })
                .collect()
        }
    }
}

/// The Standard Webhooks signature `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`,
/// the key being the base64-decoded part of `secret` after `whsec_`.
pub fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Result<String, String> {
    let key_b64 = secret
        .strip_prefix("whsec_")
        .ok_or("signing secret must start with whsec_")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .map_err(|e| format!("signing secret is not base64: {e}"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Verifies the Standard Webhooks headers of a request (independent implementation).
pub fn verify_signature(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let id = header_str(headers, "webhook-id").ok_or("signed request without webhook-id")?;
    if id.is_empty() {
        return Err("empty webhook-id".into());
    }
    let ts_text = header_str(headers, "webhook-timestamp")
        .ok_or("signed request without webhook-timestamp")?;
    let ts: i64 = ts_text
        .parse()
        .map_err(|_| format!("webhook-timestamp {ts_text:?} is not Unix seconds"))?;
    let now = chrono::Utc::now().timestamp();
    if (now - ts).abs() > 300 {
        return Err(format!(
            "webhook-timestamp {ts} is more than 5 minutes from now ({now})"
        ));
    }
    let sig_header = header_str(headers, "webhook-signature")
        .ok_or("signed request without webhook-signature")?;
    let expected = sign(secret, id, ts_text, body)?;
    if sig_header.split_whitespace().any(|s| s == expected) {
        Ok(())
    } else {
        Err(format!(
            "webhook-signature {sig_header:?} does not match (expected {expected:?}) for webhook-id {id:?}, timestamp {ts_text}"
        ))
    }
}

fn plain_response(status: u16) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("valid status"))
        .body(Body::from(format!(
            "status {status} from the test receiver"
        )))
        .expect("build response")
}

async fn handle_webhook(
    State(inner): State<Arc<ReceiverInner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let webhook_id = header_str(&headers, "webhook-id").map(str::to_owned);
    let checked = check_request(&inner.cfg, &method, &uri, &headers, &body);
    let events = match checked {
        Ok(events) => events,
        Err(violations) => {
            let mut st = inner.state.lock().unwrap();
            let index = st.requests.len();
            for violation in violations {
                st.violations
                    .push(format!("request #{index} ({method} {uri}): {violation}"));
            }
            st.requests.push(RequestRecord {
                at,
                webhook_id,
                status: 400,
                events: 0,
            });
            return plain_response(400);
        }
    };
    let behaviour = inner.behaviour.lock().unwrap().clone();
    let (index, hit) = {
        let mut st = inner.state.lock().unwrap();
        let hit = st.behaviour_hits;
        st.behaviour_hits += 1;
        st.requests.push(RequestRecord {
            at,
            webhook_id,
            status: 0,
            events: events.len(),
        });
        (st.requests.len() - 1, hit)
    };
    let mut retry_after = None;
    let status = match behaviour {
        Behaviour::Ok => 200,
        Behaviour::FailFirst { n, status } => {
            if hit < n {
                status
            } else {
                200
            }
        }
        Behaviour::Always(status) => status,
        Behaviour::RetryAfter { n, seconds } => {
            if hit < n {
                retry_after = Some(seconds);
                429
            } else {
                200
            }
        }
        Behaviour::Hang => std::future::pending::<u16>().await,
        Behaviour::Slow(d) => {
            tokio::time::sleep(d).await;
            200
        }
    };
    {
        let mut st = inner.state.lock().unwrap();
        st.requests[index].status = status;
        if status == 200 {
            st.events.extend(events);
        }
    }
    let mut resp = plain_response(status);
    if let Some(seconds) = retry_after {
        resp.headers_mut().insert(
            "retry-after",
            seconds.to_string().parse().expect("header value"),
        );
    }
    resp
}
