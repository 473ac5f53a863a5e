//! courier: the Event Destinations forwarding daemon.
//!
//! Data flows one way — [`source`] (Kafka) → [`event`] (decode) → [`routing`] → [`lane`]
//! (batch, retry) → [`sinks`] — and acknowledgements flow back to the source, which commits
//! only the highest contiguous completed offset of each partition.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod event;
pub mod failures;
/// The Event Log generator (its own crate, `lib/generator`), re-exported for the demo and tests.
pub use courier_generator as generator;
pub mod kafka;
pub mod lane;
pub mod logging;
pub mod metrics;
pub mod parking;
pub mod pipeline;
pub mod probe;
pub mod reload;
pub mod replay;
pub mod retry_worker;
pub mod routing;
pub mod server;
pub mod settle;
pub mod signal;
pub mod sinks;
pub mod source;
pub mod test_destination;
pub mod topology;
