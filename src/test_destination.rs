//! `courier test-destination`: checks one configured destination and sends it one synthetic
//! Event Log, showing the destination's answer as courier classifies it (the probe itself is
//! [`crate::probe`], shared with the API's test endpoint).

use std::path::Path;
use std::process::ExitCode;

use crate::config;
use crate::probe::{Answer, Probe};
use crate::sinks::{Outcome, RejectScope};

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
    let probe = match Probe::new(d, &config.kafka.topic, &config.security) {
        Ok(p) => p,
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
        match probe.check().await {
            Ok(answer) => println!("check:      ok: {answer}"),
            Err(e) => println!("check:      failed: {e}"),
        }
        let sent = probe.send_test_event().await;
        if let Some(body) = &sent.body {
            println!("body:\n{body}");
        }
        let ms = sent.latency.as_millis();
        match sent.answer {
            Answer::NotEncoded(e) => {
                println!("test event: cannot be encoded: {e}");
                false
            }
            Answer::TimedOut(limit) => {
                println!("test event: no answer within {limit:?}, would be retried");
                false
            }
            Answer::Answered(Outcome::Delivered) => {
                println!("test event: delivered in {ms} ms");
                true
            }
            Answer::Answered(Outcome::Retry { error, retry_after }) => {
                println!(
                    "test event: failed after {ms} ms, would be retried{}: {error}",
                    retry_after
                        .map(|d| format!(" (Retry-After {}s)", d.as_secs()))
                        .unwrap_or_default()
                );
                false
            }
            Answer::Answered(Outcome::Rejected { error, scope }) => {
                let scope = match scope {
                    RejectScope::Data => "the event was rejected",
                    RejectScope::Destination => {
                        "the destination's configuration was rejected (its circuit would open)"
                    }
                };
                println!("test event: {scope} after {ms} ms: {error}");
                false
            }
            Answer::Answered(Outcome::Partial(parts)) => {
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
