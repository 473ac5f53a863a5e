//! What the replicas of a fleet share besides the input topic: tables in compacted topics
//! ([`table`]) that every replica reads and follows. The destinations store, the status each
//! replica publishes and the replay jobs are kept there, so any replica answers for all.

pub mod table;
