//! A local webhook (and OTLP) receiver for the demo: counts what each destination delivered, and
//! misbehaves where the demo asks it to (`/flaky/…` answers every third request with 503,
//! `/reject/…` answers 400).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

/// Counts of one receiving path.
#[derive(Debug, Default, Clone, Copy)]
pub struct Received {
    /// Requests answered (any status).
    pub requests: u64,
    /// Events in requests answered 2xx.
    pub events: u64,
}

#[derive(Default)]
struct Inner {
    by_path: Mutex<BTreeMap<String, Received>>,
    flaky: AtomicU64,
}

/// The running receiver.
pub struct Receiver {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Receiver {
    /// Starts on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/{mode}/{project}/{id}", post(receive))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, inner })
    }

    /// The base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What `project/id` received.
    pub fn received(&self, project: &str, id: &str) -> Received {
        let map = self.inner.by_path.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&format!("{project}/{id}"))
            .copied()
            .unwrap_or_default()
    }
}

fn count_events(headers: &HeaderMap, body: &[u8]) -> Option<u64> {
    let gzipped = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let mut plain = Vec::new();
    let body = if gzipped {
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut plain)
            .ok()?;
        &plain[..]
    } else {
        body
    };
    let content_type = headers
        .get("content-type")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    // The OTLP destination's export requests (protobuf).
    if content_type.starts_with(b"application/x-protobuf") {
        return crate::sinks::otlp::count_records(body, false).map(|n| n as u64);
    }
    let ndjson = content_type.starts_with(b"application/x-ndjson");
    if ndjson {
        Some(
            body.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count() as u64,
        )
    } else {
        serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(body)
            .ok()
            .map(|v| v.len() as u64)
    }
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    Path((mode, project, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let status = match mode.as_str() {
        "flaky" if inner.flaky.fetch_add(1, Ordering::Relaxed) % 3 == 2 => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        "reject" => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let events = count_events(&headers, &body);
    let status = if events.is_none() {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let mut map = inner.by_path.lock().unwrap_or_else(|p| p.into_inner());
    let entry = map.entry(format!("{project}/{id}")).or_default();
    entry.requests += 1;
    if status.is_success() {
        entry.events += events.unwrap_or(0);
    }
    status
}
