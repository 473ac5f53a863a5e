//! A fake Splunk HTTP Event Collector enforcing HEC's documented contract:
//!
//! - `POST /services/collector/event`: no `Authorization` → 401 code 2 "Token is required";
//!   not `Splunk <token>` → 401 code 3 "Invalid authorization"; another token → 403 code 4
//!   "Invalid token"; a token with indexer acknowledgement and no
//!   `X-Splunk-Request-Channel` (or `?channel=`) → 400 code 10 "Data channel is missing"; a
//!   channel that is not a GUID → 400 code 11 "Invalid data channel"; a body over
//!   `max_content_length` → 413; an empty body → 400 code 5 "No data"; the events are read one
//!   after the other (concatenated JSON objects): one that is not a JSON object or has a
//!   non-numeric `time` → 400 code 6 "Invalid data format" with its `invalid-event-number`
//!   (events before it are indexed, as Splunk does); one without `event` → 400 code 12; a
//!   blank `event` → 400 code 13; an indexed field that is not a string → 400 code 15; an
//!   index the token may not write → 400 code 7 "Incorrect index". Otherwise 200
//!   `{"text":"Success","code":0}`, with an `ackId` when the token uses acknowledgement.
//! - `POST /services/collector/ack`: same authorization and channel rules; answers
//!   `{"acks":{"<id>":true|false}}` by the [`AckPolicy`].
//! - `GET /services/collector/health`: `{"text":"HEC is healthy","code":17}`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{decode_body, respond, Reply};

/// How the token and collector are set up.
#[derive(Debug, Clone)]
pub struct HecSetup {
    /// The token the collector knows.
    pub token: String,
    /// Whether the token uses indexer acknowledgement (then a channel is required).
    pub ack: bool,
    /// Indexes the token may write (empty: any).
    pub allowed_indexes: Vec<String>,
    /// Largest body (compressed, as received).
    pub max_content_length: usize,
}

impl HecSetup {
    /// A token without acknowledgement, any index, 800 MB bodies (Splunk's default).
    pub fn new(token: &str) -> HecSetup {
        HecSetup {
            token: token.to_owned(),
            ack: false,
            allowed_indexes: Vec::new(),
            max_content_length: 838_860_800,
        }
    }
}

/// When acknowledgement queries report an id as indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckPolicy {
    /// At the first query.
    Immediately,
    /// At the query after this many queries about it said false.
    AfterPolls(usize),
    /// Never.
    Never,
}

/// One HEC event object as received.
#[derive(Debug, Clone)]
pub struct HecEvent {
    /// The whole object.
    pub envelope: Value,
    /// The bytes of its `event` member, exactly as sent.
    pub event_raw: Vec<u8>,
}

/// A valid request, as a hook sees it.
#[derive(Debug, Clone)]
pub struct HecRequest {
    /// 0-based index among valid requests.
    pub index: usize,
    /// Its events.
    pub events: Vec<HecEvent>,
    /// Body size as received.
    pub bytes: usize,
}

/// What a hook may answer.
pub enum HookAnswer {
    /// This answer instead.
    Reply(Reply),
    /// Code 6 for event `n`: events before it are indexed.
    InvalidEvent(usize),
}

/// One request to the event endpoint.
#[derive(Debug, Clone)]
pub struct HecRecord {
    /// HTTP status answered.
    pub status: u16,
    /// HEC code answered.
    pub code: i64,
    /// Events in the body (as far as they could be read).
    pub events: usize,
    /// Body size as received.
    pub bytes: usize,
    /// The channel header.
    pub channel: Option<String>,
    /// The body as received.
    pub body: Vec<u8>,
}

type Hook = Box<dyn FnMut(&HecRequest) -> Option<HookAnswer> + Send>;

#[derive(Default)]
struct HecState {
    indexed: Vec<HecEvent>,
    records: Vec<HecRecord>,
    valid_requests: usize,
    next_ack: HashMap<String, u64>,
    /// Per (channel, ackId): how many queries said false so far.
    pending: BTreeMap<(String, u64), usize>,
    ack_queries: Vec<(Option<String>, Vec<u64>)>,
    health_checks: usize,
}

struct Inner {
    setup: HecSetup,
    ack_policy: Mutex<AckPolicy>,
    hook: Mutex<Option<Hook>>,
    state: Mutex<HecState>,
}

/// The fake collector; stops when dropped.
pub struct FakeSplunk {
    inner: Arc<Inner>,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl FakeSplunk {
    /// Starts on a free loopback port. Must run inside a tokio runtime.
    pub async fn start(setup: HecSetup) -> FakeSplunk {
        let inner = Arc::new(Inner {
            setup,
            ack_policy: Mutex::new(AckPolicy::Immediately),
            hook: Mutex::new(None),
            state: Mutex::new(HecState::default()),
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
        FakeSplunk { inner, addr, task }
    }

    /// The base URL to configure as `endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets `hook` answer valid requests in the fake's place.
    pub fn set_hook(&self, hook: impl FnMut(&HecRequest) -> Option<HookAnswer> + Send + 'static) {
        *self.inner.hook.lock().unwrap() = Some(Box::new(hook));
    }

    /// When acknowledgement queries report ids as indexed.
    pub fn set_ack_policy(&self, policy: AckPolicy) {
        *self.inner.ack_policy.lock().unwrap() = policy;
    }

    /// Events indexed, in order.
    pub fn indexed(&self) -> Vec<HecEvent> {
        self.inner.state.lock().unwrap().indexed.clone()
    }

    /// The raw `event` bytes of the indexed events.
    pub fn indexed_raw(&self) -> Vec<Vec<u8>> {
        self.indexed().into_iter().map(|e| e.event_raw).collect()
    }

    /// Requests to the event endpoint.
    pub fn records(&self) -> Vec<HecRecord> {
        self.inner.state.lock().unwrap().records.clone()
    }

    /// Acknowledgement queries: (channel, ids asked).
    pub fn ack_queries(&self) -> Vec<(Option<String>, Vec<u64>)> {
        self.inner.state.lock().unwrap().ack_queries.clone()
    }

    /// Health checks answered.
    pub fn health_checks(&self) -> usize {
        self.inner.state.lock().unwrap().health_checks
    }
}

impl Drop for FakeSplunk {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hec(status: u16, code: i64, text: &str) -> (u16, i64, String) {
    (
        status,
        code,
        serde_json::json!({ "text": text, "code": code }).to_string(),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

/// The channel of a request: header, else `?channel=`.
fn channel(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    header(headers, "x-splunk-request-channel")
        .map(str::to_owned)
        .or_else(|| {
            uri.query()?
                .split('&')
                .find_map(|kv| kv.strip_prefix("channel=").map(str::to_owned))
        })
}

/// Authorization and channel rules shared by the event and ack endpoints.
fn authorize(
    setup: &HecSetup,
    headers: &HeaderMap,
    channel: &Option<String>,
) -> Result<(), (u16, i64, String)> {
    match header(headers, "authorization") {
        None => return Err(hec(401, 2, "Token is required")),
        Some(a) => match a.strip_prefix("Splunk ") {
            None => return Err(hec(401, 3, "Invalid authorization")),
            Some(t) if t != setup.token => return Err(hec(403, 4, "Invalid token")),
            Some(_) => {}
        },
    }
    if setup.ack {
        match channel {
            None => return Err(hec(400, 10, "Data channel is missing")),
            Some(c) if !is_guid(c) => return Err(hec(400, 11, "Invalid data channel")),
            Some(_) => {}
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    time: Option<Value>,
    #[serde(default)]
    index: Option<String>,
    #[serde(default)]
    fields: Option<serde_json::Map<String, Value>>,
    #[serde(default, borrow)]
    event: Option<&'a RawValue>,
}

/// Reads the events of a body: `Ok(events)`, or the events before the first bad one and the
/// HEC error it gets.
fn read_events(setup: &HecSetup, body: &[u8]) -> (Vec<HecEvent>, Option<(u16, i64, String)>) {
    let mut events = Vec::new();
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(_) => return (events, Some(invalid(0))),
    };
    if text.trim().is_empty() {
        return (events, Some(hec(400, 5, "No data")));
    }
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    loop {
        let n = events.len();
        let raw = match stream.next() {
            None => break,
            Some(Err(_)) => return (events, Some(invalid(n))),
            Some(Ok(raw)) => raw,
        };
        let Ok(env) = serde_json::from_str::<Envelope<'_>>(raw.get()) else {
            return (events, Some(invalid(n)));
        };
        if env.time.as_ref().is_some_and(|t| !t.is_number()) {
            return (events, Some(invalid(n)));
        }
        let Some(event) = env.event else {
            return (
                events,
                Some(with_number(hec(400, 12, "Event field is required"), n)),
            );
        };
        if matches!(event.get().trim(), "\"\"" | "null") {
            return (
                events,
                Some(with_number(hec(400, 13, "Event field cannot be blank"), n)),
            );
        }
        if env
            .fields
            .as_ref()
            .is_some_and(|f| f.values().any(|v| !v.is_string()))
        {
            return (
                events,
                Some(with_number(
                    hec(400, 15, "Error in handling indexed fields"),
                    n,
                )),
            );
        }
        if let Some(index) = &env.index {
            if !setup.allowed_indexes.is_empty() && !setup.allowed_indexes.contains(index) {
                return (events, Some(hec(400, 7, "Incorrect index")));
            }
        }
        events.push(HecEvent {
            envelope: serde_json::from_str(raw.get()).expect("read once already"),
            event_raw: event.get().as_bytes().to_vec(),
        });
    }
    (events, None)
}

fn invalid(n: usize) -> (u16, i64, String) {
    with_number(hec(400, 6, "Invalid data format"), n)
}

fn with_number((status, code, _): (u16, i64, String), n: usize) -> (u16, i64, String) {
    let text = match code {
        6 => "Invalid data format",
        12 => "Event field is required",
        13 => "Event field cannot be blank",
        _ => "Error in handling indexed fields",
    };
    (
        status,
        code,
        serde_json::json!({ "text": text, "code": code, "invalid-event-number": n }).to_string(),
    )
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let channel = channel(&headers, &uri);
    let reply = match (method, uri.path()) {
        (Method::GET, "/services/collector/health") => {
            inner.state.lock().unwrap().health_checks += 1;
            match authorize(&inner.setup, &headers, &None) {
                Err((s, _, b)) => Reply::new(s, b),
                Ok(()) => Reply::new(200, r#"{"text":"HEC is healthy","code":17}"#),
            }
        }
        (Method::POST, "/services/collector/ack") => ack(&inner, &headers, &channel, &body),
        (Method::POST, "/services/collector/event") => event(&inner, &headers, channel, &body),
        _ => Reply::new(
            404,
            r#"{"text":"The requested URL was not found on this server.","code":404}"#,
        ),
    };
    respond(reply).await
}

fn ack(inner: &Inner, headers: &HeaderMap, channel: &Option<String>, body: &[u8]) -> Reply {
    if let Err((s, _, b)) = authorize(&inner.setup, headers, channel) {
        return Reply::new(s, b);
    }
    if !inner.setup.ack {
        let (s, _, b) = hec(400, 14, "ACK is disabled");
        return Reply::new(s, b);
    }
    #[derive(Deserialize)]
    struct Query {
        acks: Vec<u64>,
    }
    let Ok(q) = serde_json::from_slice::<Query>(body) else {
        let (s, _, b) = invalid(0);
        return Reply::new(s, b);
    };
    let channel = channel.clone().unwrap_or_default();
    let policy = *inner.ack_policy.lock().unwrap();
    let mut st = inner.state.lock().unwrap();
    st.ack_queries.push((Some(channel.clone()), q.acks.clone()));
    let mut answer = serde_json::Map::new();
    for id in q.acks {
        let key = (channel.clone(), id);
        let indexed = match st.pending.get_mut(&key) {
            None => false, // unknown, or already reported indexed
            Some(asked) => {
                let done = match policy {
                    AckPolicy::Immediately => true,
                    AckPolicy::AfterPolls(n) => *asked >= n,
                    AckPolicy::Never => false,
                };
                *asked += 1;
                done
            }
        };
        if indexed {
            st.pending.remove(&key);
        }
        answer.insert(id.to_string(), Value::Bool(indexed));
    }
    Reply::new(200, serde_json::json!({ "acks": answer }).to_string())
}

fn event(inner: &Inner, headers: &HeaderMap, channel: Option<String>, body: &[u8]) -> Reply {
    let record = |status: u16, code: i64, events: usize| HecRecord {
        status,
        code,
        events,
        bytes: body.len(),
        channel: channel.clone(),
        body: body.to_vec(),
    };
    let refuse = |(status, code, text): (u16, i64, String), events: usize| {
        inner
            .state
            .lock()
            .unwrap()
            .records
            .push(record(status, code, events));
        Reply::new(status, text)
    };
    if let Err(e) = authorize(&inner.setup, headers, &channel) {
        return refuse(e, 0);
    }
    if body.len() > inner.setup.max_content_length {
        let text = format!(
            r#"{{"text":"Content-Length of {} too large (maximum is {})","code":413}}"#,
            body.len(),
            inner.setup.max_content_length
        );
        return refuse((413, 413, text), 0);
    }
    let decoded = match decode_body(header(headers, "content-encoding"), body) {
        Ok(d) => d,
        Err(_) => return refuse(invalid(0), 0),
    };
    let (events, error) = read_events(&inner.setup, &decoded);
    if let Some(e) = error {
        // Splunk indexes the events before an invalid one.
        if e.1 == 6 || e.1 == 12 || e.1 == 13 || e.1 == 15 {
            inner
                .state
                .lock()
                .unwrap()
                .indexed
                .extend(events.iter().cloned());
        }
        return refuse(e, events.len());
    }
    let request = {
        let mut st = inner.state.lock().unwrap();
        let index = st.valid_requests;
        st.valid_requests += 1;
        HecRequest {
            index,
            events,
            bytes: body.len(),
        }
    };
    let answer = inner
        .hook
        .lock()
        .unwrap()
        .as_mut()
        .and_then(|h| h(&request));
    match answer {
        Some(HookAnswer::Reply(reply)) => {
            let code = serde_json::from_str::<Value>(&reply.body)
                .ok()
                .and_then(|v| v["code"].as_i64())
                .unwrap_or(-1);
            let mut st = inner.state.lock().unwrap();
            st.records
                .push(record(reply.status, code, request.events.len()));
            if (200..300).contains(&reply.status) {
                st.indexed.extend(request.events);
            }
            drop(st);
            reply
        }
        Some(HookAnswer::InvalidEvent(n)) => {
            let mut st = inner.state.lock().unwrap();
            st.indexed.extend(request.events.iter().take(n).cloned());
            st.records.push(record(400, 6, request.events.len()));
            drop(st);
            Reply::new(400, invalid(n).2)
        }
        None => {
            let mut st = inner.state.lock().unwrap();
            st.records.push(record(200, 0, request.events.len()));
            st.indexed.extend(request.events);
            let body = if inner.setup.ack {
                let channel = channel.clone().unwrap_or_default();
                let next = st.next_ack.entry(channel.clone()).or_insert(0);
                let id = *next;
                *next += 1;
                st.pending.insert((channel, id), 0);
                serde_json::json!({ "text": "Success", "code": 0, "ackId": id }).to_string()
            } else {
                r#"{"text":"Success","code":0}"#.to_owned()
            };
            drop(st);
            Reply::new(200, body)
        }
    }
}
