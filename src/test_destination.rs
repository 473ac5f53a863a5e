//! `courier test-destination`: checks one configured destination and sends it one synthetic
//! Event Log, showing the destination's answer as courier classifies it.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};

use crate::config;
use crate::event::Event;
use crate::sinks::{self, Outcome, RejectScope};
use crate::source::AckId;

/// The synthetic event sent: an ordinary Event Log of the destination's project, marked so a
/// receiver can recognise and drop it.
pub fn synthetic_event(project: &str, destination: &str) -> Vec<u8> {
    let now = Utc::now();
    serde_json::json!({
        "id": format!("courier-test-{}", now.timestamp_millis()),
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "level": "INFO",
        "type": "EVENT_DESTINATION",
        "message": format!("Test event from courier for destination {destination}"),
        "status": "EVENT_STATUS.SUCCEEDED",
        "projectId": project,
        "destinationId": destination,
        "payload": { "test": true },
    })
    .to_string()
    .into_bytes()
}

/// Runs the command: exit 0 when the destination accepted the event, 1 when it did not, 2
/// for a configuration error or an unknown destination.
pub fn main(config_path: &Path, project: &str, destination: &str) -> ExitCode {
    let config = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("courier test-destination: invalid configuration:\n{e}");
            return ExitCode::from(2);
        }
    };
    let Some(d) = config
        .destinations
        .iter()
        .find(|d| d.project == project && d.id == destination)
    else {
        eprintln!(
            "courier test-destination: no destination {destination:?} in project {project:?} in {}",
            config_path.display()
        );
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("courier test-destination: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sink = match sinks::build(d, &config.kafka.topic, &config.security) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("courier test-destination: {project}/{destination}: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "destination {project}/{destination} ({})",
        d.sink.type_name()
    );
    let accepted = runtime.block_on(async {
        match sink.check().await {
            Ok(answer) => println!("check:      ok: {answer}"),
            Err(e) => println!("check:      failed: {e}"),
        }
        let events = [Event {
            raw: Bytes::from(synthetic_event(project, destination)),
            partition: 0,
            offset: 0,
            failure_event: true,
            ack: AckId {
                partition: 0,
                generation: 0,
                offset: 0,
            },
        }];
        let encoded = match sink.encode(&events) {
            Ok(e) => e,
            Err(e) => {
                println!("test event: cannot be encoded: {e}");
                return false;
            }
        };
        let started = Instant::now();
        let outcome = sink.send(&events, &encoded).await;
        let ms = started.elapsed().as_millis();
        match outcome {
            Outcome::Delivered => {
                println!("test event: delivered in {ms} ms");
                true
            }
            Outcome::Retry { error, retry_after } => {
                println!(
                    "test event: failed after {ms} ms, would be retried{}: {error}",
                    retry_after
                        .map(|d| format!(" (Retry-After {}s)", d.as_secs()))
                        .unwrap_or_default()
                );
                false
            }
            Outcome::Rejected { error, scope } => {
                let scope = match scope {
                    RejectScope::Data => "the event was rejected",
                    RejectScope::Destination => {
                        "the destination's configuration was rejected (its circuit would open)"
                    }
                };
                println!("test event: {scope} after {ms} ms: {error}");
                false
            }
            Outcome::Partial(parts) => {
                println!("test event: partial answer after {ms} ms: {parts:?}");
                false
            }
        }
    });
    if accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
