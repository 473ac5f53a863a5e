//! The running destinations: a lane, a health and a retry target for each, and the routing
//! over them. A configuration reload is applied here as a diff: unchanged destinations keep
//! their lanes, added ones start, changed ones are rebuilt, removed ones are closed (their
//! queued work drains). The new routing then replaces the old one in one step.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{DestinationConfig, SecurityConfig};
use crate::event::Event;
use crate::failures::FailureReporter;
use crate::lane::{self, DestinationHealth, LaneContext};
use crate::metrics::Metrics;
use crate::retry_worker::{Target, Targets};
use crate::routing::Router;
use crate::sinks::{self, BuildError};
use crate::source::divert::Divert;
use crate::source::{LaneInput, Topology};

struct Running {
    queue: mpsc::Sender<Event>,
    divert: Option<Divert>,
    target: Arc<Target>,
}

/// A destination could not be started.
#[derive(Debug, thiserror::Error)]
#[error("destination {project}/{id}: {source}")]
pub struct StartError {
    /// The destination's project.
    pub project: String,
    /// The destination's id.
    pub id: String,
    /// The cause.
    pub source: BuildError,
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Destinations started.
    pub added: Vec<String>,
    /// Destinations rebuilt with a new configuration.
    pub changed: Vec<String>,
    /// Destinations closed.
    pub removed: Vec<String>,
    /// Destinations left as they were.
    pub unchanged: usize,
}

/// The health of each running destination, published for the destinations API's status.
#[derive(Clone, Default)]
pub struct HealthRegistry(Arc<RwLock<HealthMap>>);

type HealthMap = HashMap<(String, String), Arc<DestinationHealth>>;

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HealthRegistry")
    }
}

impl HealthRegistry {
    /// The health of a running destination.
    pub fn get(&self, project: &str, id: &str) -> Option<Arc<DestinationHealth>> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(&(project.to_owned(), id.to_owned())).cloned()
    }

    /// Every running destination's health, keyed by (project, id).
    pub fn all(&self) -> Vec<((String, String), Arc<DestinationHealth>)> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, h)| (k.clone(), h.clone())).collect()
    }
}

/// The running destinations.
pub struct Destinations {
    running: HashMap<(String, String), Running>,
    tasks: Vec<JoinHandle<()>>,
    context: LaneContext,
    failures: Arc<FailureReporter>,
    metrics: Arc<Metrics>,
    topic: String,
    /// The `[security]` the running sinks were built with.
    security: SecurityConfig,
    registry: HealthRegistry,
}

impl Destinations {
    /// No destinations yet.
    pub fn new(
        context: LaneContext,
        failures: Arc<FailureReporter>,
        metrics: Arc<Metrics>,
        topic: &str,
    ) -> Self {
        Self {
            running: HashMap::new(),
            tasks: Vec::new(),
            context,
            failures,
            metrics,
            topic: topic.to_owned(),
            security: SecurityConfig::default(),
            registry: HealthRegistry::default(),
        }
    }

    /// Publishes the running destinations' health in `registry` from now on.
    pub fn with_registry(mut self, registry: HealthRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// Makes the enabled destinations of `wanted` the running set, their sinks guarded by
    /// `security` (a changed `[security]` rebuilds every destination). Every new sink is built
    /// before anything changes, so a destination that cannot start leaves everything as it
    /// was. Returns the new routing, the new retry targets and what changed.
    pub fn apply(
        &mut self,
        wanted: &[Arc<DestinationConfig>],
        security: &SecurityConfig,
    ) -> Result<(Topology, Targets, Changes), StartError> {
        let same_security = *security == self.security;
        let wanted: Vec<&Arc<DestinationConfig>> = wanted.iter().filter(|d| d.enabled).collect();
        let mut built = HashMap::new();
        for d in &wanted {
            let key = (d.project.clone(), d.id.clone());
            let keep = self
                .running
                .get(&key)
                .is_some_and(|r| same_security && !r.target.config.differs_from(d));
            if !keep {
                let sink = sinks::build(d, &self.topic, security).map_err(|source| StartError {
                    project: d.project.clone(),
                    id: d.id.clone(),
                    source,
                })?;
                built.insert(key, sink);
            }
        }
        let mut changes = Changes::default();
        let mut previous = std::mem::take(&mut self.running);
        for d in &wanted {
            let key = (d.project.clone(), d.id.clone());
            let name = format!("{}/{}", d.project, d.id);
            match built.remove(&key) {
                None => {
                    let mut running = previous
                        .remove(&key)
                        .expect("kept destinations were running");
                    // Equal to what runs: the lane goes on, and the new configuration's copy
                    // replaces the one it started with, which is then freed.
                    running.target = Arc::new(running.target.with_config(Arc::clone(d)));
                    self.running.insert(key, running);
                    changes.unchanged += 1;
                }
                Some(sink) => {
                    if previous.remove(&key).is_some() {
                        changes.changed.push(name);
                    } else {
                        changes.added.push(name);
                    }
                    let health = Arc::new(DestinationHealth::new(
                        d,
                        self.failures.clone(),
                        self.metrics.clone(),
                    ));
                    let lane = lane::spawn(d, sink.clone(), health.clone(), self.context.clone());
                    self.tasks.push(lane.task);
                    // The target (the running set's and the retry worker's) holds the
                    // configuration's own copy of the destination.
                    let target = Arc::new(Target::new(
                        Arc::clone(d),
                        sink,
                        health,
                        self.metrics.destination(&d.project, &d.id),
                    ));
                    self.running.insert(
                        key,
                        Running {
                            queue: lane.queue,
                            divert: lane.divert,
                            target,
                        },
                    );
                }
            }
        }
        // What is left of the previous set was removed: dropping its queues lets the lanes
        // drain and end.
        for (project, id) in previous.keys() {
            self.metrics.forget_destination(project, id);
        }
        changes.removed = previous
            .keys()
            .map(|(project, id)| format!("{project}/{id}"))
            .collect();
        changes.removed.sort();
        self.security = security.clone();
        self.tasks.retain(|t| !t.is_finished());
        *self.registry.0.write().unwrap_or_else(|p| p.into_inner()) = self
            .running
            .iter()
            .map(|(k, r)| (k.clone(), r.target.health.clone()))
            .collect();
        Ok((self.topology(), self.targets(), changes))
    }

    fn topology(&self) -> Topology {
        let mut router = Router::new();
        let mut lanes = Vec::with_capacity(self.running.len());
        let mut index = HashMap::new();
        for r in self.running.values() {
            let d = &r.target.config;
            index.insert((d.project.clone(), d.id.clone()), lanes.len());
            router.add(&d.project, &d.id, &d.filter, lanes.len());
            lanes.push(LaneInput {
                queue: r.queue.clone(),
                routed: self.metrics.routed.with_label_values(&[d.sink.type_name()]),
                stats: self.metrics.destination(&d.project, &d.id),
                divert: r.divert.clone(),
            });
        }
        Topology {
            router,
            lanes,
            index,
        }
    }

    fn targets(&self) -> Targets {
        self.running
            .iter()
            .map(|(k, r)| (k.clone(), r.target.clone()))
            .collect()
    }

    /// Destinations running.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Whether none runs.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Closes every lane's queue and returns the lane tasks (they end once drained).
    pub fn close(self) -> Vec<JoinHandle<()>> {
        self.tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At 10,000 destinations each copy of their configuration is tens of megabytes: the
    /// running set and the retry target hold the configuration's own copy, also after a reload
    /// that changes nothing (the lane goes on; the copy it started with is freed).
    #[tokio::test]
    async fn a_destination_s_configuration_is_shared_not_copied() {
        let h = crate::lane::tests::harness(10);
        let context = h.context.clone();
        let mut destinations = Destinations::new(
            context.clone(),
            context.failures.clone(),
            context.metrics.clone(),
            "event-logs",
        );
        let key = ("p".to_owned(), "d".to_owned());
        let (_, targets, changes) = destinations
            .apply(&h.config.destinations, &h.config.security)
            .unwrap();
        assert_eq!(changes.added, ["p/d"]);
        assert!(Arc::ptr_eq(
            &targets[&key].config,
            &h.config.destinations[0]
        ));
        let health = targets[&key].health.clone();
        // the retry worker lets go of the targets it had when new ones come
        drop(targets);

        let reloaded: Vec<Arc<DestinationConfig>> = h
            .config
            .destinations
            .iter()
            .map(|d| Arc::new((**d).clone()))
            .collect();
        let (_, targets, changes) = destinations.apply(&reloaded, &h.config.security).unwrap();
        assert_eq!(changes.unchanged, 1);
        assert!(Arc::ptr_eq(&targets[&key].config, &reloaded[0]));
        // the lane and its circuit went on: only the configuration's copy changed hands
        assert!(Arc::ptr_eq(&targets[&key].health, &health));
        assert_eq!(Arc::strong_count(&h.config.destinations[0]), 1);
        drop(destinations.close());
    }
}
