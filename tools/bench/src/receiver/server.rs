//! The receiver process: one thread, axum on a loopback port. `/hook/...` counts events by the
//! marker (no JSON parsing) and, when asked, records each event's produce-to-receipt latency,
//! also by the last segment of the URL path; `/ok/...` takes events without counting them as
//! deliveries, `/slow/...` does the same after [`SLOW_ANSWER`], `/fail/...` answers 503
//! forever, and a second port is a black hole that accepts connections, reads and never
//! answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::routing::{get, post};
use tokio::io::AsyncReadExt;

use super::LatencySummary;
use crate::config::SLOW_ANSWER;
use crate::data::{latency_us, stamp, MARKER};
use crate::sys::{cpu_seconds, now_us};

#[derive(Default)]
struct Counters {
    events: AtomicU64,
    requests: AtomicU64,
    bytes: AtomicU64,
    stalled: AtomicU64,
    failed: AtomicU64,
    other: AtomicU64,
    record_latency: AtomicBool,
    latencies: Mutex<Vec<u32>>,
    /// The same latencies by the last segment of the URL path (`/hook/<project>/<group>`).
    groups: Mutex<HashMap<String, Vec<u32>>>,
}

pub fn main(port: u16, stall_port: u16) -> anyhow::Result<()> {
    // One thread: cheap, and its CPU is easy to attribute.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let counters = Arc::new(Counters::default());
        let stall = tokio::net::TcpListener::bind(("127.0.0.1", stall_port)).await?;
        let c = counters.clone();
        tokio::spawn(async move {
            // Accepts, reads whatever comes, never answers; the connection ends when the
            // client gives up.
            while let Ok((mut sock, _)) = stall.accept().await {
                c.stalled.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        let app = axum::Router::new()
            .route("/hook/{*rest}", post(hook))
            .route("/ok/{*rest}", post(ok))
            .route("/slow/{*rest}", post(slow))
            .route("/fail/{*rest}", post(fail))
            .route("/stats", get(stats))
            .route("/reset", post(reset))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(counters);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

async fn hook(State(c): State<Arc<Counters>>, uri: Uri, body: Bytes) -> &'static str {
    let finder = memchr::memmem::Finder::new(MARKER);
    let mut events = 0u64;
    if c.record_latency.load(Ordering::Relaxed) {
        let now = now_us();
        let mut lat = c
            .latencies
            .lock()
            .expect("no thread panics while holding the counters");
        let first = lat.len();
        for at in finder.find_iter(&body) {
            events += 1;
            lat.push(latency_us(now, stamp(&body[at + MARKER.len()..])));
        }
        let group = uri.path().rsplit('/').next().unwrap_or_default();
        c.groups
            .lock()
            .expect("no thread panics while holding the counters")
            .entry(group.to_owned())
            .or_default()
            .extend_from_slice(&lat[first..]);
    } else {
        events = finder.find_iter(&body).count() as u64;
    }
    c.events.fetch_add(events, Ordering::Relaxed);
    c.requests.fetch_add(1, Ordering::Relaxed);
    c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    ""
}

/// Answers 200 like `/hook/`, but its events are counted apart (no latency).
async fn ok(State(c): State<Arc<Counters>>, body: Bytes) -> &'static str {
    let events = memchr::memmem::find_iter(&body, MARKER).count() as u64;
    c.other.fetch_add(events, Ordering::Relaxed);
    ""
}

/// A destination that answers, but slowly: `/ok/` after [`SLOW_ANSWER`].
async fn slow(State(c): State<Arc<Counters>>, body: Bytes) -> &'static str {
    tokio::time::sleep(SLOW_ANSWER).await;
    ok(State(c), body).await
}

/// A destination that is down: 503 for everything, forever.
async fn fail(State(c): State<Arc<Counters>>, body: Bytes) -> (StatusCode, &'static str) {
    // The body is read (as a real server would), so the connection can be reused.
    drop(body);
    c.failed.fetch_add(1, Ordering::Relaxed);
    (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
}

async fn stats(State(c): State<Arc<Counters>>) -> String {
    let all = LatencySummary::of(
        c.latencies
            .lock()
            .expect("no thread panics while holding the counters")
            .clone(),
    );
    let groups: HashMap<String, LatencySummary> = c
        .groups
        .lock()
        .expect("no thread panics while holding the counters")
        .iter()
        .map(|(g, lat)| (g.clone(), LatencySummary::of(lat.clone())))
        .collect();
    serde_json::json!({
        "events": c.events.load(Ordering::Relaxed),
        "requests": c.requests.load(Ordering::Relaxed),
        "bytes": c.bytes.load(Ordering::Relaxed),
        "stalled_connections": c.stalled.load(Ordering::Relaxed),
        "failed_requests": c.failed.load(Ordering::Relaxed),
        "other_events": c.other.load(Ordering::Relaxed),
        "cpu_seconds": cpu_seconds("self").unwrap_or(0.0),
        "latency_count": all.count,
        "latency_p50_us": all.p50_us,
        "latency_p99_us": all.p99_us,
        "latency_max_us": all.max_us,
        "latency_groups": groups,
    })
    .to_string()
}

async fn reset(State(c): State<Arc<Counters>>, uri: Uri) -> &'static str {
    c.events.store(0, Ordering::Relaxed);
    c.requests.store(0, Ordering::Relaxed);
    c.bytes.store(0, Ordering::Relaxed);
    c.stalled.store(0, Ordering::Relaxed);
    c.failed.store(0, Ordering::Relaxed);
    c.other.store(0, Ordering::Relaxed);
    c.latencies
        .lock()
        .expect("no thread panics while holding the counters")
        .clear();
    c.groups
        .lock()
        .expect("no thread panics while holding the counters")
        .clear();
    c.record_latency.store(
        uri.query().is_some_and(|q| q.contains("latency")),
        Ordering::Relaxed,
    );
    "ok"
}
