//! courier-core: the value types and vocabulary every other crate speaks, and nothing that
//! does I/O.
//!
//! - [`event`]: an Event Log as read (raw bytes plus where it came from) and the fields routing
//!   needs, decoded in one pass ([`event::scan`]); [`event::AckId`] travels with every event.
//! - [`settings`]: each configuration section's values, their bounds, [`settings::Secret`],
//!   and the collector of errors that name a file and key path. No sink is named here.
//! - [`routing`]: which destinations of a project want an event (filters).
//! - [`metrics`]: every Prometheus metric and the per-destination counters.
//! - [`shape`]: what a destination receives: redaction, field selection, sampling.
//! - [`clock`]: deadlines that saturate instead of overflowing.
//! - [`daily_cap`]: a destination's per-day volume cap and its count.
//! - [`recent_failures`]: a destination's last delivery failures, for the published status.
//!
//! Crates depend downwards only: core ← sinks ← the daemon (`courier`); the compiler refuses
//! an import that would point up.

pub mod clock;
pub mod daily_cap;
pub mod event;
pub mod metrics;
pub mod recent_failures;
pub mod routing;
pub mod settings;
pub mod shape;
