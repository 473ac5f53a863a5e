//! One configuration from two sources: the file (reloaded on change or SIGHUP) and the
//! destinations store (followed). Both feed the merger, which sends the combined
//! configuration to the pipeline through the reload channel.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::store::Snapshot;
use crate::config::{self, Config};

/// The file's configuration with the store's destinations added. A stored destination that
/// the file also defines is left out (the file wins); one that is not valid under the
/// file's current `[delivery]`/`[security]` is left out with an error logged.
pub fn merge(file: &Config, snapshot: &Snapshot) -> Config {
    let mut merged = file.clone();
    for ((project, id), entry) in &snapshot.entries {
        if file
            .destinations
            .iter()
            .any(|d| &d.project == project && &d.id == id)
        {
            tracing::warn!(%project, destination = %id,
                "a destination of the destinations store is also in the configuration file; the file's definition is used");
            continue;
        }
        match config::parse_destination(entry.definition.clone(), &file.delivery, &file.security) {
            Ok(d) => merged.destinations.push(d),
            Err(errors) => {
                for (pointer, message) in errors {
                    tracing::error!(%project, destination = %id, %pointer, %message,
                        "a destination of the destinations store is not valid under the current configuration; it is not running");
                }
            }
        }
    }
    merged
}

/// Runs the merger until `stop`: a new file configuration (already validated) or a change of
/// the store sends the merged configuration to `reloads`. `file` publishes the file's
/// current configuration (the API reads its defaults and its read-only destinations).
pub async fn run(
    file: watch::Sender<Arc<Config>>,
    mut file_reloads: mpsc::Receiver<Config>,
    mut store: watch::Receiver<Arc<Snapshot>>,
    reloads: mpsc::Sender<Config>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            next = file_reloads.recv() => match next {
                Some(config) => { file.send_replace(Arc::new(config)); }
                None => { stop.cancelled().await; return; }
            },
            changed = store.changed() => {
                if changed.is_err() {
                    stop.cancelled().await;
                    return;
                }
                // Let a burst of changes settle into one reload.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let snapshot = store.borrow_and_update().clone();
        let merged = merge(&file.borrow(), &snapshot);
        if reloads.send(merged).await.is_err() {
            return;
        }
    }
}
