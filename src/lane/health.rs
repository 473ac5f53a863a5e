//! A destination's health: its circuit breaker and last error, shared by its lane and the
//! retry worker, and the state-change events they cause.

use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::time::Instant;

use super::circuit::{Circuit, Decision, State, Transition};
use crate::config::DestinationConfig;
use crate::failures::FailureReporter;
use crate::metrics::Metrics;
use crate::sinks::{DeliveryError, Outcome, RejectScope};
use crate::source::divert::ParkWindow;

/// Health of one destination.
pub struct DestinationHealth {
    project: String,
    destination_id: String,
    destination_type: &'static str,
    circuit: Mutex<Circuit>,
    last_error: Mutex<Option<DeliveryError>>,
    /// When the last request succeeded and when the last one failed (the API's status).
    times: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
    failures: Arc<FailureReporter>,
    metrics: Arc<Metrics>,
    /// The destination's `rate_limit`, drawn from by its lane and the retry worker alike.
    rate: Option<super::rate::RateLimiter>,
    /// The circuit's parking window, for the source ([`crate::source::divert`]); set on every
    /// change of the circuit.
    window: Arc<ParkWindow>,
}

impl Drop for DestinationHealth {
    /// A destination removed by a reload no longer counts in `courier_destinations`.
    fn drop(&mut self) {
        let state = self.state();
        self.metrics
            .destination_states
            .with_label_values(&[state.as_str()])
            .dec();
    }
}

impl DestinationHealth {
    /// A closed circuit for `destination`; transitions are announced through `failures`.
    pub fn new(
        destination: &DestinationConfig,
        failures: Arc<FailureReporter>,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics
            .destination_states
            .with_label_values(&[State::Closed.as_str()])
            .inc();
        Self {
            project: destination.project.clone(),
            destination_id: destination.id.clone(),
            destination_type: destination.sink.type_name(),
            circuit: Mutex::new(Circuit::new(
                destination.delivery.circuit_failure_threshold,
                destination.delivery.probe_interval,
                destination.delivery.pause_after,
            )),
            last_error: Mutex::new(None),
            times: Mutex::new((None, None)),
            failures,
            metrics,
            rate: destination
                .rate_limit
                .as_ref()
                .map(super::rate::RateLimiter::new),
            window: Arc::new(ParkWindow::new(destination.delivery.request_timeout)),
        }
    }

    /// The circuit's parking window: open while the circuit is open and no probe or pause is
    /// due.
    pub fn window(&self) -> &Arc<ParkWindow> {
        &self.window
    }

    /// Changes the circuit with `change`, then publishes its parking window.
    fn change<R>(&self, change: impl FnOnce(&mut Circuit) -> R) -> R {
        let mut circuit = self.circuit();
        let result = change(&mut circuit);
        self.window.set(circuit.parks_until());
        self.window.set_failing(circuit.failing());
        result
    }

    /// The destination's rate limiter; `None` when it has no `rate_limit`.
    pub fn rate(&self) -> Option<&super::rate::RateLimiter> {
        self.rate.as_ref()
    }

    fn circuit(&self) -> MutexGuard<'_, Circuit> {
        // Circuit methods leave it consistent even if a panic interrupted a holder.
        self.circuit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The circuit's state.
    pub fn state(&self) -> State {
        self.circuit().state()
    }

    /// Whether in-line retries should stop.
    pub fn is_open(&self) -> bool {
        self.circuit().is_open()
    }

    /// The last error the destination gave.
    pub fn last_error(&self) -> Option<DeliveryError> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Consecutive failed requests.
    pub fn consecutive_failures(&self) -> u32 {
        self.circuit().consecutive_failures()
    }

    /// Whether the destination has shown it works: a request succeeded since the lane started
    /// and none failed since. Until then the lane sends one request at a time
    /// (`super::acquire_slot`).
    pub fn proven(&self) -> bool {
        self.consecutive_failures() == 0 && self.last_times().0.is_some()
    }

    /// When the last request succeeded, and when the last one failed.
    pub fn last_times(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        *self.times.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn success(&self) -> Option<Transition> {
        self.times.lock().unwrap_or_else(|p| p.into_inner()).0 = Some(SystemTime::now());
        self.change(Circuit::success)
    }

    /// What to do with the next batch.
    pub async fn decide(&self) -> Decision {
        let (decision, transition) = self.change(|c| c.decide(Instant::now()));
        self.announce(transition).await;
        decision
    }

    /// Feeds a request's outcome to the circuit and announces a change of state.
    pub async fn record(&self, outcome: &Outcome) {
        let now = Instant::now();
        self.window.answered(now);
        let (transition, error) = match outcome {
            // The destination answered and judged the data: it is up.
            Outcome::Delivered
            | Outcome::Rejected {
                scope: RejectScope::Data,
                ..
            } => (self.success(), None),
            Outcome::Retry { error, .. } => (self.change(|c| c.failure(now)), Some(error)),
            Outcome::Rejected {
                error,
                scope: RejectScope::Destination,
            } => (self.change(|c| c.reject_configuration(now)), Some(error)),
            Outcome::Partial(parts) => {
                let up = parts.iter().any(|(_, o)| {
                    matches!(
                        o,
                        Outcome::Delivered
                            | Outcome::Rejected {
                                scope: RejectScope::Data,
                                ..
                            }
                    )
                });
                if up {
                    (self.success(), None)
                } else {
                    (None, None)
                }
            }
        };
        if let Some(error) = error {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.clone());
            self.times.lock().unwrap_or_else(|p| p.into_inner()).1 = Some(SystemTime::now());
        }
        self.announce(transition).await;
    }

    /// Writes the state-change event of a transition (at most one per change).
    async fn announce(&self, transition: Option<Transition>) {
        let Some(transition) = transition else { return };
        let (from, to) = match transition {
            Transition::Opened => (State::Closed, State::Open),
            Transition::Recovered => (State::Open, State::Closed),
            Transition::Paused => (State::Open, State::Paused),
        };
        let states = &self.metrics.destination_states;
        states.with_label_values(&[from.as_str()]).dec();
        states.with_label_values(&[to.as_str()]).inc();
        let error = self.last_error();
        match transition {
            Transition::Opened => {
                let error = error.as_ref().map(ToString::to_string).unwrap_or_default();
                tracing::warn!(project = %self.project, destination = %self.destination_id,
                error = %error,
                "destination is failing; circuit opened, deliveries are parked and retried later")
            }
            Transition::Recovered => {
                tracing::info!(project = %self.project, destination = %self.destination_id,
                "destination recovered; circuit closed")
            }
            Transition::Paused => {
                tracing::error!(project = %self.project, destination = %self.destination_id,
                "destination paused after failing continuously")
            }
        }
        let result = self
            .failures
            .destination_state(
                &self.project,
                &self.destination_id,
                self.destination_type,
                transition,
                error.as_ref(),
            )
            .await;
        if let Err(abandoned) = result {
            tracing::warn!(%abandoned, "state-change event not written");
        }
    }
}
