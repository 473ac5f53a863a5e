//! Jobs: work the API starts and reports on while it runs. One kind so far: re-delivering
//! what a destination's delivery-failure events report (`POST …/replay-failures`), the same
//! work as `courier replay --from-failures`, run inside the daemon.
//!
//! A fleet sits behind one load balancer, so the replica that answers `GET /v1/jobs/{id}` is
//! rarely the one running the job, and replicas restart. Jobs are therefore recorded in a
//! compacted topic (`[api] jobs_topic`, a [`Table`] every replica reads and follows): the
//! running replica writes its progress there about once a second and the end when it comes;
//! any replica answers from it. A replica that restarts runs its unfinished jobs again from
//! their start (a replay is idempotent for receivers: the same events with the same webhook
//! ids), or marks them failed with the reason when it cannot; a job whose replica stays out
//! of the fleet (no status heartbeat) past `replica_timeout` is marked failed by the live
//! replica with the smallest name. The 100 newest jobs of a project are kept.
//!
//! [`record`] is the record and its codec, [`handlers`] the HTTP handlers, [`runner`] the
//! replay's task, the resumption at start and the sweep of jobs whose replica is gone.

mod handlers;
mod record;
mod runner;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[doc(hidden)]
pub use handlers::{__path_get_job, __path_list_jobs, __path_replay_failures};
pub use handlers::{get_job, list_jobs, replay_failures, JobList, ReplayRequest};
pub use record::{JobProgress, JobState, JobView, ReplayCounts};
pub(super) use runner::{resume, sweep};

use self::record::{JobCodec, JobRecord};
use super::ApiConfig;
use crate::config::Config;
use crate::fleet::table::{Table, TableError};

/// The jobs of the fleet, as this replica sees them.
pub struct Jobs {
    table: Arc<Table<JobCodec>>,
    /// This replica's name: the owner of the jobs it starts.
    replica: String,
    /// How long a replica stays silent before its running jobs are failed.
    replica_timeout: Duration,
    /// How often the jobs of stopped replicas are looked for.
    sweep_every: Duration,
    /// Starts on this replica, one at a time, so that two requests to it cannot both find
    /// no running replay of a destination.
    starting: tokio::sync::Mutex<()>,
}

impl Jobs {
    /// Opens the jobs table (creating the topic when missing) and reads it to the end.
    pub async fn open(
        config: &Config,
        api: &ApiConfig,
        stop: CancellationToken,
    ) -> Result<Arc<Jobs>, TableError> {
        let group = format!("{}-jobs", config.kafka.group_id);
        let table = Table::open(config, JobCodec, &api.jobs_topic, &group, stop).await?;
        Ok(Arc::new(Jobs {
            table,
            replica: api.replica(),
            replica_timeout: api.replica_timeout,
            sweep_every: api.status_interval,
            starting: tokio::sync::Mutex::new(()),
        }))
    }

    /// A job by id.
    fn get(&self, id: &str) -> Option<JobRecord> {
        self.table.rows().get(id).map(|j| (**j).clone())
    }
}
