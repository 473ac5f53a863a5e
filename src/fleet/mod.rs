//! What the replicas of a fleet share besides the input topic: tables in compacted topics
//! ([`table`]) that every replica reads and follows. The destinations store, the status each
//! replica publishes and the replay jobs are kept there, so any replica answers for all.

pub mod table;

// The status each replica publishes ([`status`]: rows and codec; [`local`]: this replica's
// share, read live; [`publish`]: the publisher; [`minutes`]: the hour's per-minute counts)
// and how it is read back as one answer ([`aggregate`], [`view`]).
pub mod aggregate;
pub mod local;
pub mod minutes;
pub mod publish;
pub mod status;
pub mod view;

pub use view::{start as start_status, FleetStatus};
