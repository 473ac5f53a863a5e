//! The fleet's status as one replica reads it: the live replicas, and the aggregated state
//! of a destination or a project and their recent failures — the other live replicas' rows
//! from the status topic, this replica's own read live ([`super::local`]). The API and the
//! console answer from here, so any replica gives the same answer (up to one
//! `status_interval` of another replica's latest changes).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::aggregate::{aggregate, failures, Aggregate, FailureView};
use super::local::Local;
use super::publish::Publisher;
use super::status::{live_replicas, DestinationRow, StatusCodec, StatusKey, StatusRow};
use super::table::{Rows, Table, TableError};
use crate::config::{ApiConfig, Config};
use crate::metrics::Metrics;
use crate::topology::HealthRegistry;

/// The fleet's published status.
pub struct FleetStatus {
    table: Arc<Table<StatusCodec>>,
    local: Arc<Local>,
    timeout: Duration,
}

/// Opens the status topic (reading it to the end) and starts publishing this replica's
/// destinations from `registry` and `metrics`. The publisher ends (withdrawing this
/// replica's rows) when `stop` is cancelled; await the handle for that.
pub async fn start(
    config: &Config,
    api: &ApiConfig,
    registry: HealthRegistry,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<(Arc<FleetStatus>, JoinHandle<()>), TableError> {
    let replica = api.replica();
    let group = format!("{}-status-{replica}", config.kafka.group_id);
    let table = Table::open(config, StatusCodec, &api.status_topic, &group, stop.clone()).await?;
    let local = Arc::new(Local::new(replica.clone(), registry, metrics));
    let publisher = Publisher::new(
        table.clone(),
        local.clone(),
        api.status_interval,
        api.replica_timeout,
    );
    tracing::info!(replica = %replica, topic = %api.status_topic, "fleet status: publishing");
    let task = tokio::spawn(publisher.run(stop));
    Ok((
        Arc::new(FleetStatus {
            table,
            local,
            timeout: api.replica_timeout,
        }),
        task,
    ))
}

impl FleetStatus {
    /// This replica's name.
    pub fn replica(&self) -> &str {
        self.local.replica()
    }

    /// The replicas whose heartbeat is younger than `replica_timeout`, this one included,
    /// sorted.
    pub fn live_replicas(&self) -> Vec<String> {
        let mut live = self.others(&self.table.rows(), Utc::now());
        live.insert(self.replica().to_owned());
        live.into_iter().collect()
    }

    /// The other live replicas.
    fn others(&self, rows: &Rows<StatusCodec>, now: DateTime<Utc>) -> BTreeSet<String> {
        // Heartbeats sort first: stop at the first destination row.
        let mut live = live_replicas(
            rows.iter()
                .take_while(|(k, _)| matches!(k, StatusKey::Replica(_))),
            now,
            self.timeout,
        );
        live.remove(self.replica());
        live
    }

    /// A destination's state over the live replicas.
    pub fn destination(&self, project: &str, id: &str) -> Aggregate {
        let rows = self.table.rows();
        let now = Utc::now();
        let others = self.others(&rows, now);
        let from = StatusKey::Destination {
            project: project.to_owned(),
            id: id.to_owned(),
            replica: String::new(),
        };
        let local: Vec<DestinationRow> = self
            .local
            .read(now, project, Some(id))
            .into_iter()
            .map(|s| s.fingerprint.row(Vec::new()))
            .collect();
        let remote = rows
            .range(from..)
            .map_while(|(k, v)| destination_row(k, v, project, Some(id)))
            .filter(|(_, replica, _)| others.contains(*replica))
            .map(|(_, _, row)| row);
        aggregate(remote.chain(&local), now)
    }

    /// The live rows of a project's destinations: (destination id, row), by id.
    fn project_rows<'a>(
        rows: &'a Rows<StatusCodec>,
        live: &'a BTreeSet<String>,
        project: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a DestinationRow)> + 'a {
        let from = StatusKey::Destination {
            project: project.to_owned(),
            id: String::new(),
            replica: String::new(),
        };
        rows.range(from..)
            .map_while(move |(k, v)| destination_row(k, v, project, None))
            .filter(move |(_, replica, _)| live.contains(*replica))
            .map(|(id, _, row)| (id, row))
    }

    /// The newest `limit` failures of a project's destinations (of one when `destination`),
    /// newest first.
    pub fn failures(
        &self,
        project: &str,
        destination: Option<&str>,
        limit: usize,
    ) -> Vec<FailureView> {
        let rows = self.table.rows();
        let now = Utc::now();
        let others = self.others(&rows, now);
        let local: Vec<(String, DestinationRow)> = self
            .local
            .read(now, project, destination)
            .into_iter()
            .map(|s| {
                let row = s.fingerprint.row(s.stats.recent_failures.snapshot());
                (s.id, row)
            })
            .collect();
        let remote = Self::project_rows(&rows, &others, project)
            .filter(|(id, _)| destination.is_none_or(|d| d == *id));
        failures(
            remote.chain(local.iter().map(|(id, row)| (id.as_str(), row))),
            limit,
        )
    }
}

/// A destination row of `project` (and of `id` when given) under `key`: (id, replica, row);
/// `None` past them (rows are sorted by project, id, replica).
fn destination_row<'a>(
    key: &'a StatusKey,
    value: &'a StatusRow,
    project: &str,
    id: Option<&str>,
) -> Option<(&'a str, &'a str, &'a DestinationRow)> {
    match (key, value) {
        (
            StatusKey::Destination {
                project: p,
                id: i,
                replica,
            },
            StatusRow::Destination(row),
        ) if p == project && id.is_none_or(|id| id == i) => Some((i, replica, row)),
        _ => None,
    }
}
