//! The web console in a real browser: the compiled binary on tansu (its own broker; nothing
//! here restarts a consumer, so tansu's batch quirk does not apply), Debian's Chromium driven
//! by Playwright (`tests/browser/console.mjs`, installed by scripts/install-deps), and a
//! customer's webhook endpoint in this process that the script switches between accepting and
//! failing with an HTML answer (`<img src=x onerror=…>`), through a small control API that
//! also produces Event Logs on the script's behalf, and later slows down: the destination,
//! limited to one small request at a time and sharing its partition with another project's,
//! overflows, and the console shows it as slow until the overflow is delivered.
//!
//! The script signs in with a project-scoped token and walks every page (screenshots under
//! target/console-artifacts/, axe-core on each page); this file then checks, from the
//! receiver's own records, that every event arrived exactly once — the failed ones through
//! the console's replay.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::*;
use serde_json::{json, Value};

const TOPIC: &str = "event-logs";
const ADMIN: &str = "console-admin-token-0123456789";
const PROJ_A: &str = "console-proj-a-token-0123456789";
const KEY_ENV: &str = "COURIER_TEST_CONSOLE_KEY";
/// What the failing endpoint answers: markup that runs script if a page ever parses it.
const XSS: &str = "<img src=x onerror=\"window.__xss=1\"> upstream refused the batch";

#[derive(Default)]
struct Endpoint {
    failing: bool,
    /// How long each request waits before its answer (a slow endpoint).
    delay: Duration,
    /// Ids of the events accepted (answered 200), in arrival order, repeats kept.
    accepted: Vec<String>,
    /// Ids of the events refused while failing.
    refused: Vec<String>,
    /// Ids produced through the control API.
    produced: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    endpoint: Arc<Mutex<Endpoint>>,
    brokers: String,
}

/// The webhook: a JSON array of events; 200, or 500 with [`XSS`] as an HTML answer.
async fn hook(State(s): State<Shared>, body: Bytes) -> Response {
    let ids: Vec<String> = serde_json::from_slice::<Vec<Value>>(&body)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    let delay = s.endpoint.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let mut e = s.endpoint.lock().unwrap();
    if e.failing {
        e.refused.extend(ids);
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/html")],
            XSS,
        )
            .into_response()
    } else {
        e.accepted.extend(ids);
        StatusCode::OK.into_response()
    }
}

/// `?failing=true|false`, `?delay_ms=N`: each changes only what it names.
async fn set_mode(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut e = s.endpoint.lock().unwrap();
    if let Some(failing) = q.get("failing") {
        e.failing = failing == "true";
    }
    if let Some(ms) = q.get("delay_ms").and_then(|ms| ms.parse().ok()) {
        e.delay = Duration::from_millis(ms);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Produces `count` Event Logs of `project` (default proj_a); answers their ids.
async fn produce_events(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Vec<String>> {
    let count: usize = q.get("count").and_then(|c| c.parse().ok()).unwrap_or(1);
    let project = q.get("project").cloned().unwrap_or_else(|| "proj_a".into());
    let ids: Vec<String> = (0..count)
        .map(|_| format!("evt-{project}-{}", unique_number()))
        .collect();
    let events: Vec<(Option<i32>, Vec<u8>)> = ids
        .iter()
        .map(|id| (None, event_log(&project, id).to_string().into_bytes()))
        .collect();
    let brokers = s.brokers.clone();
    tokio::task::spawn_blocking(move || produce(&brokers, TOPIC, events))
        .await
        .expect("produce");
    s.endpoint.lock().unwrap().produced.extend(ids.clone());
    Json(ids)
}

async fn state(State(s): State<Shared>) -> Json<Value> {
    let e = s.endpoint.lock().unwrap();
    Json(
        json!({ "failing": e.failing, "accepted": e.accepted, "refused": e.refused,
        "produced": e.produced }),
    )
}

/// Starts the endpoint and its control API; answers its base URL.
fn start_endpoint(shared: Shared) -> String {
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/control/mode", post(set_mode))
        .route("/control/produce", post(produce_events))
        .route("/control/state", get(state))
        .with_state(shared);
    let listener = rt()
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the endpoint");
    let addr = listener.local_addr().unwrap();
    rt().spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// One call to courier's API → (status, body as JSON, or the text as a JSON string).
fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    api_call(addr, method, path, token, body.as_deref())
}

#[test]
fn the_console_in_chromium_shows_tests_fixes_and_replays_a_destination() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Debian's chromium and tests/browser/node_modules: run scripts/install-deps"
    );
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 1);
    create_topic(&brokers, "courier-failures", 1);
    let endpoint = Arc::new(Mutex::new(Endpoint::default()));
    let base = start_endpoint(Shared {
        endpoint: endpoint.clone(),
        brokers: brokers.clone(),
    });

    // By reference: a slow destination's overflow is parked only then (step 6b).
    let mut cfg = CourierConfig::new(&brokers).parking("reference");
    cfg.extra = format!(
        "\n[api]\nencryption_key_env = {}\ntokens = [{{ token = {} }}, {{ token = {}, projects = [\"proj_a\"] }}]\n",
        toml_str(KEY_ENV),
        toml_str(ADMIN),
        toml_str(PROJ_A),
    );
    cfg.env.push((
        KEY_ENV.into(),
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into(),
    ));
    let courier = Courier::start_ready(&cfg);
    // Another project's destination, which the scoped token must never see.
    let (s, body) = call(
        courier.listen(),
        "PUT",
        "/v1/projects/proj_b/destinations/b-private",
        Some(ADMIN),
        Some(json!({ "type": "webhook", "url": format!("{base}/hook") })),
    );
    assert_eq!(s, 201, "{body}");
    // The picker's list: the operator sees every project (proj_a is named by a token, proj_b
    // has a destination), the scoped token its own, nobody without a token.
    let projects = |token| call(courier.listen(), "GET", "/v1/projects", token, None);
    assert_eq!(
        projects(Some(ADMIN)),
        (200, json!({ "projects": ["proj_a", "proj_b"] }))
    );
    assert_eq!(
        projects(Some(PROJ_A)),
        (200, json!({ "projects": ["proj_a"] }))
    );
    assert_eq!(projects(None).0, 401);

    let artifacts = root.join("target/console-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg(browser_dir.join("console.mjs"))
        .current_dir(&browser_dir)
        .env(
            "CONSOLE_URL",
            format!("http://{}/console/", courier.listen()),
        )
        .env("CONSOLE_TOKEN", PROJ_A)
        .env("CONTROL_URL", format!("{base}/control"))
        .env("HOOK_URL", format!("{base}/hook"))
        .env("OTHER_PROJECT", "proj_b")
        .env("OTHER_DESTINATION", "b-private")
        .env("ARTIFACTS", &artifacts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node tests/browser/console.mjs");
    // The script bounds each of its waits; this bounds the whole in case Chromium hangs.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(240) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "--- console.mjs ({status}) stdout ---\n{}\n--- stderr ---\n{}\n--- courier log ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        courier.log_tail()
    );
    assert!(status.success(), "the browser script failed\n{report}");

    // The receiver's own records: the failed events were refused once and, replayed from the
    // console, accepted once; every produced event was accepted exactly once.
    let e = endpoint.lock().unwrap();
    assert!(!e.refused.is_empty(), "nothing ever failed\n{report}");
    let mut accepted: HashMap<&str, usize> = HashMap::new();
    for id in &e.accepted {
        *accepted.entry(id).or_default() += 1;
    }
    for id in &e.produced {
        assert_eq!(
            accepted.get(id.as_str()),
            Some(&1),
            "event {id} accepted {:?} times\n{report}",
            accepted.get(id.as_str())
        );
    }
    assert_eq!(
        e.accepted.len(),
        e.produced.len(),
        "accepted: {:?}\nproduced: {:?}",
        e.accepted,
        e.produced
    );
    println!("{report}");
}
