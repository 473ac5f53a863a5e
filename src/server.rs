//! The HTTP server: `/metrics`, `/healthz`, `/readyz`, and with `[api]` the `/v1` API and
//! the web console under `/console`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What `/readyz` reports on.
#[derive(Debug, Default)]
pub struct Health {
    /// The configuration is loaded and valid.
    pub config_loaded: AtomicBool,
    /// The consumer has joined its group and received an assignment.
    pub joined: Arc<AtomicBool>,
    /// The failures topic can be written (checked at start, then by every write).
    pub failures_writable: Arc<AtomicBool>,
    /// The running destinations' health (the destinations API's status reads it).
    pub destinations: crate::topology::HealthRegistry,
    /// The parking mode in force and why (decided when the pipeline starts).
    pub parking: Arc<crate::parking::retention::ParkingState>,
}

impl Health {
    /// Ready to serve: configuration loaded, group joined, failures topic writable, parking
    /// mode decided (bounded: an unreadable retention decides copies).
    pub fn ready(&self) -> bool {
        self.config_loaded.load(Ordering::Relaxed)
            && self.joined.load(Ordering::Relaxed)
            && self.failures_writable.load(Ordering::Relaxed)
            && self.parking.is_decided()
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// The server's routes.
pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, health })
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.ready.set(i64::from(state.health.ready()));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let health = &state.health;
    let (status, text) = if health.ready() {
        (StatusCode::OK, "ready\n")
    } else if !health.config_loaded.load(Ordering::Relaxed) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "configuration not loaded\n",
        )
    } else if !health.joined.load(Ordering::Relaxed) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "consumer has not joined its group\n",
        )
    } else if !health.failures_writable.load(Ordering::Relaxed) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the failures topic cannot be written\n",
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the parking mode is being decided (reading the topic's retention)\n",
        )
    };
    // The parking mode and why: a detail for people once decided.
    let mut body = text.to_owned();
    if let Some(decision) = health.parking.current() {
        body.push_str(&format!(
            "parking: {} ({})\n",
            decision.parking, decision.reason
        ));
    }
    (status, body)
}

/// Binds `listen` and serves until `stop` is cancelled.
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    Ok(serve_with(listen, metrics, health, None, stop).await?.1)
}

/// [`serve`], with the destinations API's `/v1` routes when `api` is given; the address it
/// listens on (`listen` may name port 0: any free port).
pub async fn serve_with(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    api: Option<crate::api::Api>,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "HTTP server listening");
    let mut app = router(metrics, health);
    if let Some(api) = api {
        // The web console goes with the API it calls (same port, same tokens).
        app = app
            .merge(crate::api::router(api))
            .merge(crate::console::router());
    }
    Ok((
        address,
        tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "HTTP server failed");
            }
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parking::retention::ParkingDecision;

    /// The parking mode is decided beside the group's join; ready waits for it, so that a
    /// ready replica always says which mode it parks in.
    #[test]
    fn ready_waits_for_the_parking_decision() {
        let health = Health::default();
        for flag in [
            &health.config_loaded,
            &*health.joined,
            &*health.failures_writable,
        ] {
            flag.store(true, Ordering::Relaxed);
        }
        assert!(!health.ready());
        health
            .parking
            .publish(ParkingDecision::copy("a test"), &Metrics::new());
        assert!(health.ready());
    }
}
