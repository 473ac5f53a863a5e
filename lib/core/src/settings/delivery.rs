//! `[delivery]`: batching, concurrency and retry settings, the per-destination overrides of
//! `[destinations.delivery]`, and their checks against [`super::bounds`]. Kept apart from the
//! loader because the API's definitions and the file share exactly this code.

use std::time::Duration;

use serde::Deserialize;

use super::bounds;
use super::Errors;

/// Delivery settings of one destination (the `[delivery]` defaults merged with the
/// destination's `[destinations.delivery]` overrides).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// A batch is sent when it holds this many events.
    pub batch_max_events: usize,
    /// … or this many bytes of events.
    pub batch_max_bytes: usize,
    /// … or when its oldest event has waited this long.
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
    /// Concurrent requests per destination.
    pub max_in_flight: usize,
    /// Timeout of one request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// In-line retry budget of one batch, from its first attempt.
    #[serde(with = "humantime_serde")]
    pub retry_max_elapsed: Duration,
    /// First backoff before a retry (exponential, full jitter).
    #[serde(with = "humantime_serde")]
    pub retry_initial_backoff: Duration,
    /// Largest backoff between two attempts.
    #[serde(with = "humantime_serde")]
    pub retry_max_backoff: Duration,
    /// Events waiting in the destination's queue before the consumer waits for it.
    pub queue_max_events: usize,
    /// Delays of the parked attempts after the in-line budget is spent (jittered ±10%);
    /// after the last one fails, a delivery-failure event is written.
    #[serde(deserialize_with = "durations")]
    pub retry_schedule: Vec<Duration>,
    /// Consecutive failed requests that open the destination's circuit.
    pub circuit_failure_threshold: u32,
    /// While the circuit is open, one probe request is sent per this interval.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// After failing continuously this long, the destination is paused: its events get
    /// failure events (replayable) instead of being parked.
    #[serde(with = "humantime_serde")]
    pub pause_after: Duration,
}

fn durations<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    let list = Vec::<humantime_serde::Serde<Duration>>::deserialize(d)?;
    Ok(list
        .into_iter()
        .map(humantime_serde::Serde::into_inner)
        .collect())
}

fn some_durations<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Duration>>, D::Error> {
    durations(d).map(Some)
}

/// The default parked-retry schedule.
pub fn default_retry_schedule() -> Vec<Duration> {
    [30, 120, 600, 1800, 3600, 7200, 14_400, 28_800]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            batch_max_events: 1000,
            batch_max_bytes: 1024 * 1024,
            batch_timeout: Duration::from_secs(1),
            max_in_flight: 4,
            request_timeout: Duration::from_secs(30),
            retry_max_elapsed: Duration::from_secs(120),
            retry_initial_backoff: Duration::from_millis(200),
            retry_max_backoff: Duration::from_secs(30),
            queue_max_events: 10_000,
            retry_schedule: default_retry_schedule(),
            circuit_failure_threshold: 5,
            probe_interval: Duration::from_secs(30),
            pause_after: Duration::from_secs(72 * 3600),
        }
    }
}

/// Per-destination overrides of `[delivery]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryOverrides {
    batch_max_events: Option<usize>,
    batch_max_bytes: Option<usize>,
    #[serde(with = "humantime_serde")]
    batch_timeout: Option<Duration>,
    max_in_flight: Option<usize>,
    #[serde(with = "humantime_serde")]
    request_timeout: Option<Duration>,
    #[serde(with = "humantime_serde")]
    retry_max_elapsed: Option<Duration>,
    #[serde(with = "humantime_serde")]
    retry_initial_backoff: Option<Duration>,
    #[serde(with = "humantime_serde")]
    retry_max_backoff: Option<Duration>,
    queue_max_events: Option<usize>,
    #[serde(deserialize_with = "some_durations")]
    retry_schedule: Option<Vec<Duration>>,
    circuit_failure_threshold: Option<u32>,
    #[serde(with = "humantime_serde")]
    probe_interval: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pause_after: Option<Duration>,
}

impl DeliveryOverrides {
    /// The overrides laid over `base`.
    pub fn apply(self, base: &DeliveryConfig) -> DeliveryConfig {
        DeliveryConfig {
            batch_max_events: self.batch_max_events.unwrap_or(base.batch_max_events),
            batch_max_bytes: self.batch_max_bytes.unwrap_or(base.batch_max_bytes),
            batch_timeout: self.batch_timeout.unwrap_or(base.batch_timeout),
            max_in_flight: self.max_in_flight.unwrap_or(base.max_in_flight),
            request_timeout: self.request_timeout.unwrap_or(base.request_timeout),
            retry_max_elapsed: self.retry_max_elapsed.unwrap_or(base.retry_max_elapsed),
            retry_initial_backoff: self
                .retry_initial_backoff
                .unwrap_or(base.retry_initial_backoff),
            retry_max_backoff: self.retry_max_backoff.unwrap_or(base.retry_max_backoff),
            queue_max_events: self.queue_max_events.unwrap_or(base.queue_max_events),
            retry_schedule: self
                .retry_schedule
                .unwrap_or_else(|| base.retry_schedule.clone()),
            circuit_failure_threshold: self
                .circuit_failure_threshold
                .unwrap_or(base.circuit_failure_threshold),
            probe_interval: self.probe_interval.unwrap_or(base.probe_interval),
            pause_after: self.pause_after.unwrap_or(base.pause_after),
        }
    }
}

/// Checks every delivery setting against its bounds, recording each error under `prefix`
/// (`delivery`, `destinations[3].delivery`, `.delivery` for the API).
pub fn validate_delivery(d: &DeliveryConfig, prefix: &str, errors: &mut Errors) {
    let mut check = |key: &str, result: Result<(), String>| {
        if let Err(message) = result {
            errors.push(format!("{prefix}.{key}"), message);
        }
    };
    check(
        "batch_max_events",
        bounds::size(d.batch_max_events, bounds::BATCH_MAX_EVENTS),
    );
    check(
        "batch_max_bytes",
        bounds::size(d.batch_max_bytes, bounds::BATCH_MAX_BYTES),
    );
    check(
        "batch_timeout",
        bounds::duration(d.batch_timeout, bounds::BATCH_TIMEOUT),
    );
    check(
        "max_in_flight",
        bounds::size(d.max_in_flight, bounds::MAX_IN_FLIGHT),
    );
    check(
        "request_timeout",
        bounds::duration(d.request_timeout, bounds::REQUEST_TIMEOUT),
    );
    check(
        "retry_max_elapsed",
        bounds::duration(d.retry_max_elapsed, bounds::RETRY_MAX_ELAPSED),
    );
    let initial_backoff = bounds::duration(d.retry_initial_backoff, bounds::RETRY_INITIAL_BACKOFF);
    let initial_ok = initial_backoff.is_ok();
    check("retry_initial_backoff", initial_backoff);
    let max_backoff = bounds::duration(d.retry_max_backoff, bounds::RETRY_MAX_BACKOFF);
    check(
        "retry_max_backoff",
        max_backoff.and_then(|()| {
            if initial_ok && d.retry_max_backoff < d.retry_initial_backoff {
                Err("must not be shorter than retry_initial_backoff".into())
            } else {
                Ok(())
            }
        }),
    );
    check(
        "queue_max_events",
        bounds::size(d.queue_max_events, bounds::QUEUE_MAX_EVENTS),
    );
    check(
        "retry_schedule",
        bounds::entries(d.retry_schedule.len(), bounds::MAX_RETRY_SCHEDULE_LEN),
    );
    for (i, delay) in d.retry_schedule.iter().enumerate() {
        check(
            &format!("retry_schedule[{i}]"),
            bounds::duration(*delay, bounds::RETRY_SCHEDULE_ENTRY),
        );
    }
    check(
        "circuit_failure_threshold",
        bounds::count(
            d.circuit_failure_threshold.into(),
            bounds::CIRCUIT_FAILURE_THRESHOLD,
        ),
    );
    check(
        "probe_interval",
        bounds::duration(d.probe_interval, bounds::PROBE_INTERVAL),
    );
    check(
        "pause_after",
        bounds::duration(d.pause_after, bounds::PAUSE_AFTER),
    );
}
