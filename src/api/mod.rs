//! The destinations API: customers configure, test and watch their destinations through the
//! platform, which calls courier under `/v1` on the server port. Definitions live in a
//! compacted Kafka topic ([`store`]) shared by every replica; secrets are sealed before they
//! are written ([`crypto`]) and never returned ([`secrets`]). The file's and the store's
//! destinations are merged into one configuration for the pipeline ([`merge`]).

pub mod crypto;
pub mod merge;
pub mod secrets;
pub mod store;

pub use crate::config::{ApiConfig, ApiToken, EncryptionKey};

pub mod auth;
mod definition;
pub mod destinations;
pub mod error;
pub mod failures;
pub mod http;
pub mod jobs;
pub mod openapi;
pub mod projects;
pub mod status;
pub mod test_event;

pub use http::{router, Api, Inner};

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::topology::HealthRegistry;

/// Opens the destinations store (reading it to the end), starts the merger of file reloads
/// (`file_reloads`) and store changes into `reloads`, and starts answering on `api`. Returns
/// the merged configuration the pipeline starts with. Fails when the store cannot be read or
/// a stored secret does not decrypt with the configured key.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    api: &Api,
    file: &Arc<Config>,
    api_config: &ApiConfig,
    metrics: Arc<Metrics>,
    registry: HealthRegistry,
    file_reloads: mpsc::Receiver<Arc<Config>>,
    reloads: mpsc::Sender<Arc<Config>>,
    stop: CancellationToken,
) -> Result<(Arc<Config>, JoinHandle<()>), store::StoreError> {
    let store = store::Store::open(file, api_config, stop.clone()).await?;
    let (fleet, publisher) = crate::fleet::start_status(
        file,
        api_config,
        registry.clone(),
        metrics.clone(),
        stop.clone(),
    )
    .await?;
    let jobs = jobs::Jobs::open(file, api_config, stop.clone()).await?;
    let mut changes = store.subscribe();
    let snapshot = changes.borrow_and_update().clone();
    let merged = merge::merge(file, &snapshot);
    let (file_tx, file_rx) = watch::channel(file.clone());
    api.start(Inner {
        tokens: auth::Tokens::new(&api_config.tokens),
        store,
        file: file_rx,
        registry,
        metrics,
        fleet,
        jobs,
        stop: stop.clone(),
    });
    // The jobs this replica was running when it stopped run again; those of replicas gone
    // for good are failed.
    tokio::spawn(jobs::resume(api.clone()));
    tokio::spawn(jobs::sweep(api.clone(), stop.clone()));
    let merger = tokio::spawn(merge::run(file_tx, file_reloads, changes, reloads, stop));
    // Ends once both have: the publisher withdraws this replica's status rows on the way.
    let tasks = tokio::spawn(async move {
        let _ = merger.await;
        let _ = publisher.await;
    });
    Ok((Arc::new(merged), tasks))
}
