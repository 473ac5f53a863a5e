//! courier: the Event Destinations forwarding daemon.
//!
//! Data flows one way — [`source`] (Kafka) → [`event`] (decode) → [`routing`] → [`lane`]
//! (batch, retry) → [`sinks`] — and acknowledgements flow back to the source, which commits
//! only the highest contiguous completed offset of each partition.
//!
//! The crates are the layers: courier-core (the event, settings vocabulary, routing, metrics)
//! ← courier-sinks (every sink, no Kafka) ← this crate (Kafka source, acknowledgements,
//! lanes, failures, parking, retry worker, replay, API, server, CLI, and the configuration
//! loader that knows every sink). The lower crates are re-exported under their old paths
//! (`courier::event`, `courier::sinks` …) so that callers see one tree.

pub use courier_core::{clock, event, metrics, routing};
/// The sink adapters (their own crate, `lib/sinks`).
pub use courier_sinks as sinks;

pub mod api;
pub mod cli;
pub mod config;
pub mod console;
pub mod demo;
pub mod failures;
pub mod fleet;
/// The Event Log generator (its own crate, `lib/generator`), re-exported for the demo and tests.
pub use courier_generator as generator;
pub mod kafka;
pub mod lane;
pub mod logging;
pub mod parking;
pub mod pipeline;
pub mod probe;
pub mod reload;
pub mod replay;
pub mod retry_worker;
pub mod server;
pub mod settle;
pub mod shaping;
pub mod signal;
pub mod source;
pub mod test_destination;
pub mod topology;
