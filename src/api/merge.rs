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
    for ((project, id), entry) in snapshot {
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
            Ok(d) => merged.destinations.push(Arc::new(d)),
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
    mut file_reloads: mpsc::Receiver<Arc<Config>>,
    mut store: watch::Receiver<Arc<Snapshot>>,
    reloads: mpsc::Sender<Arc<Config>>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            next = file_reloads.recv() => match next {
                Some(config) => { file.send_replace(config); }
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
        if reloads.send(Arc::new(merged)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::api::store::Entry;

    fn file() -> Config {
        let text = r#"
[[destinations]]
project = "p"
id = "from-file"
type = "webhook"
url = "https://example.com/a"
"#;
        config::parse("courier.toml", text, &BTreeMap::new()).unwrap()
    }

    fn entry(definition: serde_json::Value) -> std::sync::Arc<Entry> {
        std::sync::Arc::new(Entry {
            definition,
            updated_at: Utc::now(),
        })
    }

    #[test]
    fn the_store_adds_to_the_file_which_wins_on_conflict() {
        let mut snapshot = Snapshot::default();
        snapshot.insert(
            ("p".into(), "from-api".into()),
            entry(json!({"project": "p", "id": "from-api", "type": "webhook", "url": "https://example.com/b"})),
        );
        snapshot.insert(
            ("p".into(), "from-file".into()),
            entry(json!({"project": "p", "id": "from-file", "type": "webhook", "url": "https://example.com/other"})),
        );
        snapshot.insert(
            ("p".into(), "broken".into()),
            entry(json!({"project": "p", "id": "broken", "type": "webhook"})),
        );
        // Stored before its value had a bound: left out, not run (it used to crash-loop the
        // fleet, every replica replaying it at start).
        snapshot.insert(
            ("p".into(), "huge".into()),
            entry(json!({"project": "p", "id": "huge", "type": "webhook",
                "url": "https://example.com/c",
                "delivery": {"queue_max_events": 2_305_843_009_213_693_952_u64}})),
        );
        let merged = merge(&file(), &snapshot);
        let ids: Vec<&str> = merged.destinations.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["from-file", "from-api"]);
        assert_eq!(
            merged.destinations[0].table.0["url"],
            "https://example.com/a"
        );
    }

    #[test]
    fn definition_errors_carry_json_pointers() {
        let defaults = crate::config::DeliveryConfig::default();
        let security = crate::config::SecurityConfig::default();
        let errors = config::parse_destination(
            json!({
                "project": "p", "id": "d", "type": "webhook", "url": "ftp://x/",
                "filter": { "min_level": "WARNING" },
                "delivery": { "max_in_flight": 0 },
                "headers": { "X": 5 },
            }),
            &defaults,
            &security,
        )
        .unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert!(pointers.contains(&"/filter/min_level"), "{errors:?}");
        assert!(pointers.contains(&"/delivery/max_in_flight"), "{errors:?}");
        assert!(pointers.contains(&"/headers/X"), "{errors:?}");
        let errors = config::parse_destination(json!([1]), &defaults, &security).unwrap_err();
        assert_eq!(errors[0].0, "");
        let errors = config::parse_destination(
            json!({"project": "p", "id": "d", "type": "datadog", "api_key": "k", "tags": ["a:b", 3]}),
            &defaults,
            &security,
        )
        .unwrap_err();
        assert_eq!(errors[0].0, "/tags/1", "{errors:?}");
    }
}
