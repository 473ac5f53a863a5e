//! The publisher: every `status_interval` this replica writes its heartbeat, then the rows of
//! the destinations it runs whose content changed (or that the topic lost), and tombstones
//! for destinations it no longer runs. On a clean stop it tombstones all of its rows.
//!
//! Liveness is judged by the heartbeat alone, so an unchanged destination row is never
//! rewritten just to look alive. Rows of a replica that died without stopping cleanly stay in
//! the topic, ignored by readers once its heartbeat is older than `replica_timeout`; once it
//! is older than [`REAP_AFTER`] times that, the live replica with the smallest name tombstones
//! them (and any destination row without a heartbeat), so the topic does not keep every
//! replica that ever ran. A replica whose rows were tombstoned while it was only slow writes them again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::local::{Fingerprint, Local};
use super::status::{live_replicas, Heartbeat, StatusCodec, StatusKey, StatusRow};
use super::table::{Rows, Table};

/// How many `replica_timeout`s a replica is silent before its rows are removed. Readers
/// ignore them after one; removing them is only housekeeping, so it waits long enough never
/// to fight a replica that was merely slow (a GC pause, a broker hiccup).
pub const REAP_AFTER: u32 = 10;

/// A row this replica wrote.
struct Sent {
    /// `None` for a row found in the topic at start (written by an earlier run).
    fingerprint: Option<Fingerprint>,
    /// The cycle it was written in.
    cycle: u64,
}

/// One replica's publisher.
pub struct Publisher {
    table: Arc<Table<StatusCodec>>,
    local: Arc<Local>,
    replica: String,
    interval: Duration,
    timeout: Duration,
    started_at: DateTime<Utc>,
    sent: BTreeMap<StatusKey, Sent>,
    cycle: u64,
}

impl Publisher {
    /// A publisher of `local` to `table` every `interval`; replicas silent for
    /// [`REAP_AFTER`] times `timeout` are reaped.
    pub fn new(
        table: Arc<Table<StatusCodec>>,
        local: Arc<Local>,
        interval: Duration,
        timeout: Duration,
    ) -> Self {
        Publisher {
            table,
            replica: local.replica().to_owned(),
            local,
            interval,
            timeout,
            started_at: Utc::now(),
            sent: BTreeMap::new(),
            cycle: 0,
        }
    }

    /// Publishes every interval until `stop`, then withdraws this replica's rows.
    pub async fn run(mut self, stop: CancellationToken) {
        // Rows an earlier run under this name left behind are ours: rewritten when still
        // wanted, tombstoned otherwise.
        for key in self.table.rows().keys() {
            if matches!(key, StatusKey::Destination { replica, .. } if *replica == self.replica) {
                self.sent.insert(
                    key.clone(),
                    Sent {
                        fingerprint: None,
                        cycle: 0,
                    },
                );
            }
        }
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => self.publish(Utc::now()).await,
            }
        }
        self.withdraw().await;
    }

    /// One publication.
    async fn publish(&mut self, now: DateTime<Utc>) {
        self.cycle += 1;
        // The heartbeat first: a reader counts a replica's rows only once it has seen it.
        let beat = Heartbeat {
            at: now,
            started_at: self.started_at,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let beat = serde_json::to_vec(&beat).expect("a heartbeat serializes");
        let me = StatusKey::Replica(self.replica.clone()).encode();
        if let Err(e) = self.table.send(&me, Some(&beat)).await {
            tracing::warn!(error = %e, "fleet status: heartbeat not written; retrying at the next interval");
            return;
        }
        let rows = self.table.rows();
        let mut writes: Vec<(StatusKey, Option<Fingerprint>, Option<Vec<u8>>)> = Vec::new();
        let mut wanted = HashSet::new();
        for state in self.local.publish(now) {
            let key = StatusKey::Destination {
                project: state.project.clone(),
                id: state.id.clone(),
                replica: self.replica.clone(),
            };
            let unchanged = self.sent.get(&key).is_some_and(|s| {
                s.fingerprint.as_ref() == Some(&state.fingerprint)
                    // Lost from the topic (tombstoned by a reaper while this replica was
                    // slow): written again, unless it was written just now and is not read
                    // back yet.
                    && (rows.contains_key(&key) || s.cycle + 2 > self.cycle)
            });
            if !unchanged {
                let mut row = state
                    .fingerprint
                    .row(state.stats.recent_failures.snapshot());
                writes.push((key, Some(state.fingerprint), Some(row.bound())));
            }
            wanted.insert((state.project, state.id));
        }
        for key in self.sent.keys() {
            if let StatusKey::Destination { project, id, .. } = key {
                if !wanted.contains(&(project.clone(), id.clone())) {
                    writes.push((key.clone(), None, None));
                }
            }
        }
        self.write(writes).await;
        let beats = rows
            .iter()
            .take_while(|(k, _)| matches!(k, StatusKey::Replica(_)));
        if live_replicas(beats, now, self.timeout).first() == Some(&self.replica) {
            self.reap(&rows, now).await;
        }
    }

    /// Writes rows (a value) and tombstones (none) side by side; what was written is
    /// remembered, what failed is tried again at the next interval.
    async fn write(&mut self, writes: Vec<(StatusKey, Option<Fingerprint>, Option<Vec<u8>>)>) {
        let results = join_all(writes.iter().map(|(key, _, value)| {
            let key = key.encode();
            let table = self.table.clone();
            async move { table.send(&key, value.as_deref()).await }
        }))
        .await;
        let mut failed = 0;
        let mut error = None;
        for ((key, fingerprint, value), result) in writes.into_iter().zip(results) {
            match (result, value) {
                (Ok(_), Some(_)) => {
                    self.sent.insert(
                        key,
                        Sent {
                            fingerprint,
                            cycle: self.cycle,
                        },
                    );
                }
                (Ok(_), None) => {
                    self.sent.remove(&key);
                }
                (Err(e), _) => {
                    failed += 1;
                    error = Some(e);
                }
            }
        }
        if let Some(e) = error {
            tracing::warn!(rows = failed, error = %e, "fleet status: rows not written; retrying at the next interval");
        }
    }

    /// Tombstones the rows of replicas silent for [`REAP_AFTER`] times `replica_timeout`, and
    /// destination rows without a heartbeat.
    async fn reap(&self, rows: &Rows<StatusCodec>, now: DateTime<Utc>) {
        let dead_after = chrono::Duration::from_std(self.timeout.saturating_mul(REAP_AFTER))
            .unwrap_or(chrono::Duration::MAX);
        let beats: HashMap<&str, DateTime<Utc>> = rows
            .iter()
            .filter_map(|(k, v)| match (k, &**v) {
                (StatusKey::Replica(r), StatusRow::Heartbeat(h)) => Some((r.as_str(), h.at)),
                _ => None,
            })
            .collect();
        let dead = |replica: &str| {
            replica != self.replica && beats.get(replica).is_none_or(|at| now - *at > dead_after)
        };
        let (destinations, heartbeats): (Vec<&StatusKey>, Vec<&StatusKey>) = rows
            .keys()
            .filter(|k| dead(k.replica()))
            .partition(|k| matches!(k, StatusKey::Destination { .. }));
        if destinations.is_empty() && heartbeats.is_empty() {
            return;
        }
        tracing::info!(
            replicas = ?heartbeats.iter().map(|k| k.replica()).collect::<Vec<_>>(),
            rows = destinations.len(),
            "fleet status: removing the rows of replicas silent for more than 10 times replica_timeout"
        );
        // Destination rows before heartbeats: a row is never left with a heartbeat that
        // makes it count again.
        for batch in [destinations, heartbeats] {
            let results = join_all(batch.iter().map(|k| {
                let key = k.encode();
                async move { self.table.send(&key, None).await }
            }))
            .await;
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                tracing::warn!(error = %e, "fleet status: a stale row was not removed; retrying later");
                return;
            }
        }
    }

    /// Tombstones this replica's rows, then its heartbeat: a clean stop leaves nothing that
    /// readers would have to time out.
    async fn withdraw(&mut self) {
        let keys: Vec<StatusKey> = self.sent.keys().cloned().collect();
        self.write(keys.into_iter().map(|k| (k, None, None)).collect())
            .await;
        let me = StatusKey::Replica(self.replica.clone()).encode();
        match self.table.send(&me, None).await {
            Ok(_) if self.sent.is_empty() => {
                tracing::info!("fleet status: this replica's rows withdrawn");
            }
            Ok(_) => tracing::warn!(
                rows = self.sent.len(),
                "fleet status: some rows not withdrawn; other replicas ignore them after replica_timeout"
            ),
            Err(e) => tracing::warn!(error = %e,
                "fleet status: heartbeat not withdrawn; other replicas ignore this replica after replica_timeout"),
        }
    }
}
