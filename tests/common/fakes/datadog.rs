//! A fake Datadog logs intake (`POST /api/v2/logs`) and key validation endpoint
//! (`GET /api/v1/validate`) enforcing the Logs API v2 contract:
//!
//! - no `DD-API-KEY` → 401; a key other than the expected one → 403 (`{"errors":["Forbidden"]}`);
//! - `Content-Type` not `application/json`, a body that does not gunzip although
//!   `Content-Encoding: gzip` says so, a body that is not a JSON array of objects, more than
//!   1000 logs, an item without a string `ddtags`/`status`, a non-integer `timestamp`, or a key
//!   appearing twice in an item → 400;
//! - more than 5,000,000 bytes uncompressed → 413;
//! - an item over 1,000,000 bytes is accepted (Datadog truncates it) but recorded as a
//!   violation: courier must shrink such items itself.
//!
//! Valid requests get 202 `{}` unless the hook answers in their place.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::Value;

use super::{decode_body, object_keys, respond, Reply};

/// Largest uncompressed body Datadog takes.
pub const MAX_BODY: usize = 5_000_000;
/// Most logs per request.
pub const MAX_LOGS: usize = 1000;
/// Largest log Datadog keeps whole.
pub const MAX_LOG: usize = 1_000_000;

/// A valid request, as a hook sees it.
#[derive(Debug, Clone)]
pub struct DdRequest {
    /// 0-based index among valid requests.
    pub index: usize,
    /// The logs.
    pub logs: Vec<Value>,
    /// Uncompressed body size.
    pub bytes: usize,
    /// Whether it came gzipped.
    pub gzip: bool,
}

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct DdRecord {
    /// Status answered.
    pub status: u16,
    /// Logs in the body (0 when the body broke the contract).
    pub logs: usize,
    /// Uncompressed body size.
    pub bytes: usize,
    /// The body exactly as received.
    pub body: Vec<u8>,
    /// Why the fake refused it, when it broke the contract.
    pub refused: Option<String>,
}

type Hook = Box<dyn FnMut(&DdRequest) -> Option<Reply> + Send>;

#[derive(Default)]
struct State_ {
    logs: Vec<Value>,
    records: Vec<DdRecord>,
    violations: Vec<String>,
    valid_requests: usize,
    validations: usize,
}

struct Inner {
    api_key: String,
    hook: Mutex<Option<Hook>>,
    state: Mutex<State_>,
}

/// The fake intake; stops when dropped.
pub struct FakeDatadog {
    inner: Arc<Inner>,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl FakeDatadog {
    /// Starts on a free loopback port, accepting `api_key`. Must run inside a tokio runtime.
    pub async fn start(api_key: &str) -> FakeDatadog {
        let inner = Arc::new(Inner {
            api_key: api_key.to_owned(),
            hook: Mutex::new(None),
            state: Mutex::new(State_::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeDatadog { inner, addr, task }
    }

    /// The base URL to configure as `endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets `hook` answer valid requests in the fake's place (`None`: the fake's own 202).
    pub fn set_hook(&self, hook: impl FnMut(&DdRequest) -> Option<Reply> + Send + 'static) {
        *self.inner.hook.lock().unwrap() = Some(Box::new(hook));
    }

    /// Logs of requests answered 2xx, in arrival order.
    pub fn logs(&self) -> Vec<Value> {
        self.inner.state.lock().unwrap().logs.clone()
    }

    /// Every request, refused ones included.
    pub fn records(&self) -> Vec<DdRecord> {
        self.inner.state.lock().unwrap().records.clone()
    }

    /// Things courier must never do (a log over 1 MB), whatever was answered.
    pub fn violations(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().violations.clone()
    }

    /// `GET /api/v1/validate` calls.
    pub fn validations(&self) -> usize {
        self.inner.state.lock().unwrap().validations
    }
}

impl Drop for FakeDatadog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn errors(message: &str) -> String {
    serde_json::json!({ "errors": [message] }).to_string()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A request that kept the contract.
struct Checked {
    logs: Vec<Value>,
    bytes: usize,
    gzip: bool,
    violations: Vec<String>,
}

/// Checks a request; `Err((status, reason))` is the documented refusal.
fn check(
    inner: &Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Checked, (u16, String)> {
    if method != Method::POST || uri.path() != "/api/v2/logs" {
        return Err((404, format!("no route for {method} {}", uri.path())));
    }
    match header(headers, "dd-api-key") {
        None => return Err((401, "no DD-API-KEY header".into())),
        Some(k) if k != inner.api_key => {
            return Err((403, "DD-API-KEY is not the expected key".into()))
        }
        Some(_) => {}
    }
    match header(headers, "content-type") {
        Some(ct)
            if ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json") => {}
        other => {
            return Err((
                400,
                format!("Content-Type is {other:?}, expected application/json"),
            ))
        }
    }
    let encoding = header(headers, "content-encoding");
    let decoded = decode_body(encoding, body).map_err(|e| (400, e))?;
    if decoded.len() > MAX_BODY {
        return Err((
            413,
            format!("{} bytes uncompressed, over 5 MB", decoded.len()),
        ));
    }
    let raws: Vec<Box<serde_json::value::RawValue>> = serde_json::from_slice(&decoded)
        .map_err(|e| (400, format!("body is not a JSON array: {e}")))?;
    if raws.is_empty() {
        return Err((400, "empty array".into()));
    }
    if raws.len() > MAX_LOGS {
        return Err((
            400,
            format!("{} logs in one request, over 1000", raws.len()),
        ));
    }
    let mut logs = Vec::with_capacity(raws.len());
    let mut violations = Vec::new();
    for (i, raw) in raws.iter().enumerate() {
        let text = raw.get();
        let keys =
            object_keys(text).map_err(|e| (400, format!("log {i} is not an object: {e}")))?;
        let mut seen = std::collections::HashSet::new();
        for k in &keys {
            if !seen.insert(k) {
                return Err((400, format!("log {i} has the key {k:?} twice")));
            }
        }
        let v: Value = serde_json::from_str(text).map_err(|e| (400, e.to_string()))?;
        if !v["ddtags"].is_string() {
            return Err((400, format!("log {i} has no string ddtags")));
        }
        if !v["status"].is_string() {
            return Err((400, format!("log {i} has no string status")));
        }
        if let Some(t) = v.get("timestamp") {
            if !t.is_i64() {
                return Err((
                    400,
                    format!("log {i}: timestamp {t} is not epoch milliseconds"),
                ));
            }
        }
        if text.len() > MAX_LOG {
            violations.push(format!(
                "log {i} is {} bytes, over Datadog's 1 MB limit",
                text.len()
            ));
        }
        logs.push(v);
    }
    Ok(Checked {
        logs,
        bytes: decoded.len(),
        gzip: encoding.is_some(),
        violations,
    })
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = answer(&inner, &method, &uri, &headers, &body);
    respond(reply).await
}

fn answer(inner: &Inner, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Reply {
    if uri.path() == "/api/v1/validate" {
        inner.state.lock().unwrap().validations += 1;
        return match header(headers, "dd-api-key") {
            Some(k) if k == inner.api_key => Reply::new(200, r#"{"valid":true}"#),
            _ => Reply::new(403, errors("Forbidden")),
        };
    }
    let Checked {
        logs,
        bytes,
        gzip,
        violations,
    } = match check(inner, method, uri, headers, body) {
        Ok(checked) => checked,
        Err((status, reason)) => {
            inner.state.lock().unwrap().records.push(DdRecord {
                status,
                logs: 0,
                bytes: body.len(),
                body: body.to_vec(),
                refused: Some(reason),
            });
            let message = match status {
                401 => "Unauthorized",
                403 => "Forbidden",
                413 => "Payload too large",
                404 => "Not found",
                _ => "Bad Request",
            };
            return Reply::new(status, errors(message));
        }
    };
    let request = {
        let mut st = inner.state.lock().unwrap();
        st.violations.extend(violations);
        let index = st.valid_requests;
        st.valid_requests += 1;
        DdRequest {
            index,
            logs,
            bytes,
            gzip,
        }
    };
    let reply = inner
        .hook
        .lock()
        .unwrap()
        .as_mut()
        .and_then(|h| h(&request))
        .unwrap_or_else(|| Reply::new(202, "{}"));
    let mut st = inner.state.lock().unwrap();
    st.records.push(DdRecord {
        status: reply.status,
        logs: request.logs.len(),
        bytes: request.bytes,
        body: body.to_vec(),
        refused: None,
    });
    if (200..300).contains(&reply.status) {
        st.logs.extend(request.logs);
    }
    reply
}
