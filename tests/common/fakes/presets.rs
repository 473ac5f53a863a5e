//! Fakes of the services courier's webhook presets target ([`Service`]): Slack incoming
//! webhooks, Microsoft Teams workflow webhooks, the New Relic Log API and the PagerDuty Events
//! API v2. Each ENFORCES its service's documented request format — a request that breaks it
//! gets the service's error answer and is recorded as a violation — and records the bodies it
//! accepted.
//!
//! The rules, from each service's documentation:
//! - Slack: POST, `Content-Type: application/json`, an object with a non-empty `text` of at
//!   most 40,000 characters and/or `blocks`: at most 50, each with a `type`; `section` text an
//!   object `{type: mrkdwn|plain_text, text}` of at most 3,000 characters; `context` at most 10
//!   elements; the blocks' text at most 12,000 characters in all (Slack answers
//!   `msg_blocks_too_long` near 13,000). Errors: 400 `invalid_payload` / `invalid_blocks`.
//! - Teams: a `message` whose `attachments` hold Adaptive Cards
//!   (`contentType: application/vnd.microsoft.card.adaptive`, `content.type: AdaptiveCard`,
//!   a `version`, a `body` of elements with a `type`; a `TextBlock` has a string `text`), at
//!   most 28 KB. Accepted with 202.
//! - New Relic: `Api-Key` header equal to the key (403 otherwise), an array of objects with
//!   optional `common` (`attributes` object) and `logs` (objects; `timestamp` a number;
//!   `message` a string), at most 1 MB. Accepted with 202 and a `requestId`.
//! - PagerDuty: an object with a 32-character `routing_key`, `event_action` trigger |
//!   acknowledge | resolve, `dedup_key` at most 255 characters, and for a trigger a `payload`
//!   with `summary` (1–1,024 characters), `source`, `severity` critical | error | warning |
//!   info, optional ISO 8601 `timestamp`, string `component`/`group`/`class`, object
//!   `custom_details`. 202 `{"status":"success","message":"Event processed","dedup_key":…}`;
//!   400 `{"status":"invalid event","message":"Event object is invalid","errors":[…]}`.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};

use super::{respond, Reply};
use crate::common::rt;

/// Which service the fake plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    Slack,
    Teams,
    /// With the `Api-Key` it expects.
    NewRelic {
        api_key: String,
    },
    PagerDuty,
}

#[derive(Default)]
struct Seen {
    accepted: Vec<Value>,
    violations: Vec<String>,
    /// When set, valid requests get this status and are not accepted.
    failing: Option<u16>,
    /// Valid requests answered with `failing`.
    failed: usize,
}

/// A running fake of one service.
pub struct FakeService {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeService {
    pub fn start(service: Service) -> FakeService {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the fake service");
        let addr = listener.local_addr().expect("fake service address");
        let state = (service, seen.clone());
        let app = Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::new(state));
        let task = rt().spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeService { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The bodies it accepted, parsed.
    pub fn accepted(&self) -> Vec<Value> {
        self.seen.lock().unwrap().accepted.clone()
    }

    /// From now on, answer valid requests with `status` (a service outage), or accept them
    /// again (`None`).
    pub fn fail_with(&self, status: Option<u16>) {
        self.seen.lock().unwrap().failing = status;
    }

    /// Valid requests answered with the [`FakeService::fail_with`] status.
    pub fn failed(&self) -> usize {
        self.seen.lock().unwrap().failed
    }

    /// Requests that broke the contract, explained.
    pub fn violations(&self) -> Vec<String> {
        self.seen.lock().unwrap().violations.clone()
    }
}

type Shared = Arc<(Service, Arc<Mutex<Seen>>)>;

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (service, seen) = (&shared.0, &shared.1);
    let reply = answer(service, seen, check(service, &method, &headers, &body));
    respond(reply).await
}

/// Records the request and chooses the service's answer.
fn answer(service: &Service, seen: &Mutex<Seen>, checked: Checked) -> Reply {
    let mut seen = seen.lock().unwrap();
    match checked {
        Ok(_) if seen.failing.is_some() => {
            seen.failed += 1;
            let status = seen.failing.expect("checked above");
            Reply::new(status, "unavailable")
        }
        Ok(value) => {
            let reply = match service {
                Service::Slack => Reply::new(200, "ok"),
                Service::Teams => Reply::new(202, ""),
                Service::NewRelic { .. } => {
                    Reply::new(202, json!({"requestId": "req-1"}).to_string())
                }
                Service::PagerDuty => Reply::new(
                    202,
                    json!({"status": "success", "message": "Event processed",
                           "dedup_key": value["dedup_key"]})
                    .to_string(),
                ),
            };
            seen.accepted.push(value);
            reply
        }
        Err((status, errors)) => {
            seen.violations.extend(errors.iter().cloned());
            let body = match service {
                Service::Slack => errors.join("; "),
                Service::PagerDuty => json!({"status": "invalid event",
                    "message": "Event object is invalid", "errors": errors})
                .to_string(),
                _ => json!({"error": errors}).to_string(),
            };
            Reply::new(status, body)
        }
    }
}

type Checked = Result<Value, (u16, Vec<String>)>;

fn check(service: &Service, method: &Method, headers: &HeaderMap, body: &[u8]) -> Checked {
    let bad = |e: String| (400, vec![e]);
    if method != Method::POST {
        return Err((405, vec![format!("method {method}, not POST")]));
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(bad(format!(
            "invalid_payload: Content-Type {content_type:?}"
        )));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid_payload: not JSON: {e}")))?;
    let mut errors = Vec::new();
    match service {
        Service::Slack => slack(&value, &mut errors),
        Service::Teams => teams(&value, body.len(), &mut errors),
        Service::NewRelic { api_key } => {
            if headers.get("api-key").and_then(|v| v.to_str().ok()) != Some(api_key) {
                return Err((403, vec!["Api-Key missing or wrong".into()]));
            }
            newrelic(&value, body.len(), &mut errors)
        }
        Service::PagerDuty => pagerduty(&value, &mut errors),
    }
    if errors.is_empty() {
        Ok(value)
    } else {
        Err((400, errors))
    }
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn slack(v: &Value, errors: &mut Vec<String>) {
    let Some(obj) = v.as_object() else {
        return errors.push("invalid_payload: not an object".into());
    };
    match obj.get("text") {
        Some(t) if t.is_string() && chars(t) > 0 && chars(t) <= 40_000 => {}
        None if obj.contains_key("blocks") => {}
        other => errors.push(format!(
            "no_text / invalid text: {:?} chars",
            other.map(chars)
        )),
    }
    let Some(blocks) = obj.get("blocks") else {
        return;
    };
    let Some(blocks) = blocks.as_array() else {
        return errors.push("invalid_blocks: not an array".into());
    };
    if blocks.len() > 50 {
        errors.push(format!("invalid_blocks: {} blocks, over 50", blocks.len()));
    }
    let mut total = 0;
    for (i, b) in blocks.iter().enumerate() {
        match b["type"].as_str() {
            Some("section") => {
                let t = &b["text"];
                if !matches!(t["type"].as_str(), Some("mrkdwn" | "plain_text")) {
                    errors.push(format!(
                        "invalid_blocks: block {i}: text type {:?}",
                        t["type"]
                    ));
                }
                let n = chars(&t["text"]);
                if !t["text"].is_string() || n == 0 || n > 3000 {
                    errors.push(format!(
                        "invalid_blocks: block {i}: section text of {n} chars"
                    ));
                }
                total += n;
            }
            Some("context") => match b["elements"].as_array() {
                Some(e) if !e.is_empty() && e.len() <= 10 => {
                    total += e.iter().map(|e| chars(&e["text"])).sum::<usize>();
                }
                _ => errors.push(format!("invalid_blocks: block {i}: context elements")),
            },
            Some("header" | "divider" | "image" | "actions" | "rich_text" | "markdown") => {}
            other => errors.push(format!("invalid_blocks: block {i}: type {other:?}")),
        }
    }
    if total > 12_000 {
        errors.push(format!("msg_blocks_too_long: {total} chars in blocks"));
    }
}

fn teams(v: &Value, len: usize, errors: &mut Vec<String>) {
    if len > 28 * 1024 {
        errors.push(format!("message of {len} bytes, over 28 KB"));
    }
    if v["type"] != "message" {
        errors.push(format!("type {:?}, not \"message\"", v["type"]));
    }
    let Some(attachments) = v["attachments"].as_array().filter(|a| !a.is_empty()) else {
        return errors.push("no attachments".into());
    };
    for (i, a) in attachments.iter().enumerate() {
        if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
            errors.push(format!(
                "attachment {i}: contentType {:?}",
                a["contentType"]
            ));
        }
        let card = &a["content"];
        if card["type"] != "AdaptiveCard" || !card["version"].is_string() {
            errors.push(format!(
                "attachment {i}: not an AdaptiveCard with a version"
            ));
        }
        let Some(body) = card["body"].as_array() else {
            errors.push(format!("attachment {i}: card without a body"));
            continue;
        };
        for (j, element) in body.iter().enumerate() {
            match element["type"].as_str() {
                Some("TextBlock") if element["text"].is_string() => {}
                Some("FactSet") => {
                    let ok = element["facts"].as_array().is_some_and(|facts| {
                        facts
                            .iter()
                            .all(|f| f["title"].is_string() && f["value"].is_string())
                    });
                    if !ok {
                        errors.push(format!("attachment {i}: element {j}: bad facts"));
                    }
                }
                Some("Container" | "ColumnSet" | "Image" | "ActionSet") => {}
                other => errors.push(format!("attachment {i}: element {j}: {other:?}")),
            }
        }
    }
}

fn newrelic(v: &Value, len: usize, errors: &mut Vec<String>) {
    if len > 1_000_000 {
        errors.push(format!("payload of {len} bytes, over 1 MB"));
    }
    let Some(blocks) = v.as_array() else {
        return errors.push("not an array of log blocks".into());
    };
    for (i, b) in blocks.iter().enumerate() {
        if let Some(common) = b.get("common") {
            if !common["attributes"].is_object() && !common["attributes"].is_null() {
                errors.push(format!("block {i}: common.attributes not an object"));
            }
        }
        let Some(logs) = b["logs"].as_array() else {
            errors.push(format!("block {i}: no logs array"));
            continue;
        };
        for (j, log) in logs.iter().enumerate() {
            if !log.is_object() {
                errors.push(format!("block {i}: log {j} not an object"));
            }
            if log.get("timestamp").is_some_and(|t| !t.is_number()) {
                errors.push(format!("block {i}: log {j}: timestamp not a number"));
            }
            if log.get("message").is_some_and(|m| !m.is_string()) {
                errors.push(format!("block {i}: log {j}: message not a string"));
            }
            if log.get("attributes").is_some_and(|a| !a.is_object()) {
                errors.push(format!("block {i}: log {j}: attributes not an object"));
            }
        }
    }
}

fn pagerduty(v: &Value, errors: &mut Vec<String>) {
    if chars(&v["routing_key"]) != 32 {
        errors.push("Length of 'routing_key' is incorrect (should be 32 characters)".into());
    }
    let action = v["event_action"].as_str().unwrap_or("");
    if !matches!(action, "trigger" | "acknowledge" | "resolve") {
        errors.push(format!("'event_action' is invalid: {action:?}"));
    }
    if let Some(key) = v.get("dedup_key") {
        if !key.is_string() || chars(key) > 255 {
            errors.push("'dedup_key' must be a string of at most 255 characters".into());
        }
    } else if action != "trigger" {
        errors.push("'dedup_key' is required for acknowledge and resolve".into());
    }
    for key in v
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !matches!(
            key.as_str(),
            "routing_key"
                | "event_action"
                | "dedup_key"
                | "payload"
                | "images"
                | "links"
                | "client"
                | "client_url"
        ) {
            errors.push(format!("unknown field '{key}'"));
        }
    }
    if action != "trigger" {
        return;
    }
    let p = &v["payload"];
    let summary = chars(&p["summary"]);
    if !p["summary"].is_string() || summary == 0 || summary > 1024 {
        errors.push(format!(
            "'payload.summary' of {summary} characters (1 to 1024)"
        ));
    }
    if chars(&p["source"]) == 0 {
        errors.push("'payload.source' is missing or blank".into());
    }
    if !matches!(
        p["severity"].as_str(),
        Some("critical" | "error" | "warning" | "info")
    ) {
        errors.push(format!(
            "'payload.severity' is invalid: {:?}",
            p["severity"]
        ));
    }
    if let Some(t) = p.get("timestamp") {
        let ok = t
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok());
        if !ok {
            errors.push(format!("'payload.timestamp' is not ISO 8601: {t}"));
        }
    }
    for key in ["component", "group", "class"] {
        if p.get(key).is_some_and(|v| !v.is_string()) {
            errors.push(format!("'payload.{key}' must be a string"));
        }
    }
    if p.get("custom_details").is_some_and(|v| !v.is_object()) {
        errors.push("'payload.custom_details' must be an object".into());
    }
}
