//! The in-line retry schedule of one batch: exponential backoff with full jitter, the
//! destination's `Retry-After` honoured, all within `retry_max_elapsed`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::time::Instant;

pub use crate::sinks::http::MAX_RETRY_AFTER;

/// Retry settings of a destination.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Backoff before the first retry (before jitter).
    pub initial: Duration,
    /// Largest backoff (before jitter).
    pub max: Duration,
    /// Time from the first attempt after which no retry is started.
    pub budget: Duration,
}

impl RetryPolicy {
    /// A schedule for one batch whose first attempt starts now.
    pub fn start(&self, now: Instant) -> RetrySchedule {
        RetrySchedule {
            backoff: ExponentialBuilder::default()
                .with_min_delay(self.initial)
                .with_max_delay(self.max)
                .with_factor(2.0)
                .without_max_times()
                .build(),
            deadline: crate::clock::deadline(now, self.budget),
            rng: fastrand::Rng::new(),
        }
    }
}

/// Delays between the attempts of one batch.
#[derive(Debug)]
pub struct RetrySchedule {
    backoff: ExponentialBackoff,
    deadline: Instant,
    rng: fastrand::Rng,
}

impl RetrySchedule {
    /// The wait before the next attempt, or `None` when the budget does not allow one.
    /// `retry_after` (the destination's own request) replaces the computed backoff.
    pub fn next_delay(&mut self, retry_after: Option<Duration>, now: Instant) -> Option<Duration> {
        let delay = match retry_after {
            Some(after) => after.min(MAX_RETRY_AFTER),
            None => {
                let ceiling = self.backoff.next().unwrap_or(Duration::ZERO);
                // Full jitter: uniform in [0, ceiling], so retries of many batches spread out.
                ceiling.mul_f64(self.rng.f64())
            }
        };
        (crate::clock::deadline(now, delay) <= self.deadline).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_under_the_cap() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            budget: Duration::from_secs(3600),
        };
        let now = Instant::now();
        let mut s = policy.start(now);
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            let d = s.next_delay(None, now).unwrap();
            assert!(d <= Duration::from_secs(1), "{d:?}");
            ceilings.push(d);
        }
        // full jitter: not every delay equals its ceiling
        assert!(ceilings.iter().any(|d| *d < Duration::from_secs(1)));
    }

    #[test]
    fn retry_after_wins_and_is_clamped() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            budget: Duration::from_secs(3600),
        };
        let now = Instant::now();
        let mut s = policy.start(now);
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(7)), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            s.next_delay(Some(Duration::from_secs(86_400)), now),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn budget_ends_retries() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(10),
            budget: Duration::from_secs(1),
        };
        let start = Instant::now();
        let mut s = policy.start(start);
        assert!(s.next_delay(None, start).is_some());
        assert!(s.next_delay(None, start + Duration::from_secs(2)).is_none());
        assert!(
            s.next_delay(Some(Duration::from_secs(5)), start).is_none(),
            "a Retry-After beyond the budget ends the retries"
        );
    }
}
