//! Stopping on a signal: `run`, `replay` and `demo` all stop what they are doing, cleanly, on
//! SIGTERM (what Kubernetes sends) or SIGINT (Ctrl-C). Its own module so that the commands
//! share it without importing one another.

use tokio_util::sync::CancellationToken;

/// Cancels `stop` on SIGTERM or SIGINT.
pub async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    stop.cancel();
}
