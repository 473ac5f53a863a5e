//! Configuration reloads: on SIGHUP, and when the configuration file changes, the file is
//! read and validated again. A valid configuration goes to the pipeline, which applies its
//! destinations atomically; an invalid one is rejected whole, with every error logged, and
//! the running configuration stays as it is.
//!
//! The file is watched by polling its modification time and size (and, through symlinks,
//! its target): that also catches Kubernetes ConfigMap updates, which swap a symlink.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::metrics::Metrics;

/// How often the configuration file is checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

fn stamp(path: &Path) -> Option<(SystemTime, u64, PathBuf)> {
    let target = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&target).ok()?;
    Some((meta.modified().ok()?, meta.len(), target))
}

/// Watches `path` and sends each valid new configuration to `reloads` until `stop`.
pub async fn watch(
    path: PathBuf,
    running: Arc<Config>,
    reloads: mpsc::Sender<Arc<Config>>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; reloads follow file changes only");
            None
        }
    };
    let mut last = stamp(&path);
    let mut current = running;
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            () = stop.cancelled() => return,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => "SIGHUP",
            _ = tick.tick() => {
                let now = stamp(&path);
                if now == last {
                    continue;
                }
                last = now;
                "the file changed"
            }
        };
        tracing::info!(file = %path.display(), trigger = why, "reloading the configuration");
        match config::load(&path) {
            Ok(new) => {
                warn_restart_only(&current, &new);
                // One copy, shared with the pipeline: at 10,000 destinations a copy of the
                // configuration is tens of megabytes.
                let new = Arc::new(new);
                current = new.clone();
                if reloads.send(new).await.is_err() {
                    return;
                }
            }
            Err(errors) => {
                metrics.config_reloads.with_label_values(&["failure"]).inc();
                for e in &errors.0 {
                    tracing::error!(error = %e, "invalid configuration");
                }
                tracing::error!(
                    errors = errors.0.len(),
                    "configuration reload rejected; the running configuration is unchanged"
                );
            }
        }
    }
}

/// Sections a reload cannot change in a running process: say so instead of ignoring it
/// silently.
fn warn_restart_only(old: &Config, new: &Config) {
    let mut sections = Vec::new();
    if format!("{:?}", old.kafka) != format!("{:?}", new.kafka) {
        sections.push("kafka");
    }
    if format!("{:?}", old.failures) != format!("{:?}", new.failures) {
        sections.push("failures");
    }
    if old.server.listen != new.server.listen {
        sections.push("server");
    }
    if old.limits.max_event_bytes != new.limits.max_event_bytes {
        sections.push("limits");
    }
    if format!("{:?}", old.log) != format!("{:?}", new.log) {
        sections.push("log");
    }
    if old.metrics.per_destination != new.metrics.per_destination {
        sections.push("metrics");
    }
    if old.shutdown_timeout != new.shutdown_timeout {
        sections.push("shutdown_timeout");
    }
    if !sections.is_empty() {
        tracing::warn!(?sections, "these settings changed but apply only after a restart; destinations, [delivery] and [security] apply now");
    }
}
