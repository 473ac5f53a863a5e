//! A destination's `rate_limit`: token buckets (`governor`) drawn from before each request,
//! one for events and one for requests. One [`RateLimiter`] per destination, held by its
//! [`super::DestinationHealth`], which the lane and the retry worker share, so parked batches
//! sent again count against the same rate as live ones.
//!
//! A limited request waits instead of being sent; it is never dropped. The wait is computed
//! from the buckets and slept on tokio's clock, so it holds only its own task: other
//! destinations, with their own buckets, go on at their pace. A wait that would end after the
//! batch's in-line budget is refused ([`RateLimited`]) and the batch parked, as a failing
//! destination's would be. A batch larger than the bucket is taken in chunks of at most the
//! bucket's size (`governor` refuses more cells than the burst at once). Requests queue for
//! the buckets in arrival order, so the waits are fair among a destination's batches.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::Quota;

use courier_sinks::config::{Bucket, RateLimit};

type Limiter<C> =
    governor::RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The buckets of one destination.
pub struct RateLimiter<C: Clock = DefaultClock> {
    events: Option<(Limiter<C>, NonZeroU32)>,
    requests: Option<(Limiter<C>, NonZeroU32)>,
    clock: C,
    /// Requests take their cells one after the other, in the order they came (tokio's mutex
    /// is fair): batches polling the buckets side by side would race for each refill, and one
    /// could lose every time until its budget ran out.
    queue: tokio::sync::Mutex<()>,
}

/// The wait would exceed the budget: the batch goes to the retry topic instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// How long the next chunk would have had to wait.
    pub wait: Duration,
}

impl RateLimiter<DefaultClock> {
    /// The buckets of `limit`.
    pub fn new(limit: &RateLimit) -> Self {
        Self::with_clock(limit, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    /// The buckets of `limit`, on `clock` (tests pass a fake one).
    pub fn with_clock(limit: &RateLimit, clock: C) -> Self {
        let bucket = |b: Option<Bucket>| {
            let b = b?;
            let rate = NonZeroU32::new(b.per_second).expect("rates are validated to be ≥ 1");
            let burst = NonZeroU32::new(b.burst).expect("bursts are validated to be ≥ 1");
            let quota = Quota::per_second(rate).allow_burst(burst);
            Some((
                governor::RateLimiter::direct_with_clock(quota, clock.clone()),
                burst,
            ))
        };
        Self {
            events: bucket(limit.events),
            requests: bucket(limit.requests),
            clock,
            queue: tokio::sync::Mutex::new(()),
        }
    }

    /// Takes one request's and `events` events' cells, sleeping (`sleep`) as the buckets
    /// require; `Err` when the waits together would exceed `budget` (cells taken by earlier chunks
    /// stay taken: the destination gets less than its rate, never more).
    pub async fn acquire<S, F>(
        &self,
        events: usize,
        budget: Duration,
        mut sleep: S,
    ) -> Result<Duration, RateLimited>
    where
        S: FnMut(Duration) -> F,
        F: std::future::Future<Output = ()>,
    {
        let queued = std::time::Instant::now();
        let _turn = self.queue.lock().await;
        // The time spent behind earlier requests counts in the budget.
        let behind = queued.elapsed();
        let budget = budget
            .checked_sub(behind)
            .ok_or(RateLimited { wait: behind })?;
        let mut waited = Duration::ZERO;
        if let Some((limiter, _)) = &self.requests {
            waited += self
                .take(
                    limiter,
                    NonZeroU32::MIN,
                    budget.saturating_sub(waited),
                    &mut sleep,
                )
                .await?;
        }
        if let Some((limiter, burst)) = &self.events {
            let mut left = u32::try_from(events).unwrap_or(u32::MAX);
            while let Some(n) = NonZeroU32::new(left.min(burst.get())) {
                waited += self
                    .take(limiter, n, budget.saturating_sub(waited), &mut sleep)
                    .await?;
                left -= n.get();
            }
        }
        Ok(waited)
    }

    /// Takes `n` (≤ the burst) cells of `limiter`, sleeping until they are there.
    async fn take<S, F>(
        &self,
        limiter: &Limiter<C>,
        n: NonZeroU32,
        budget: Duration,
        sleep: &mut S,
    ) -> Result<Duration, RateLimited>
    where
        S: FnMut(Duration) -> F,
        F: std::future::Future<Output = ()>,
    {
        let mut waited = Duration::ZERO;
        loop {
            let wait = match limiter.check_n(n) {
                Ok(Ok(())) => return Ok(waited),
                Ok(Err(not_until)) => not_until.wait_time_from(self.clock.now()),
                // Chunks are at most the burst; a bucket never holds fewer.
                Err(_) => unreachable!("a chunk is never larger than its bucket"),
            };
            if waited + wait > budget {
                return Err(RateLimited { wait });
            }
            sleep(wait).await;
            waited += wait;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::cell::RefCell;

    fn limit(events: Option<(u32, u32)>, requests: Option<(u32, u32)>) -> RateLimit {
        let b = |x: Option<(u32, u32)>| x.map(|(per_second, burst)| Bucket { per_second, burst });
        RateLimit {
            events: b(events),
            requests: b(requests),
        }
    }

    /// Runs `acquire` on a fake clock whose sleeps advance it; returns the sleeps.
    fn run(
        limiter: &RateLimiter<FakeRelativeClock>,
        clock: &FakeRelativeClock,
        events: usize,
        budget: Duration,
    ) -> (Result<Duration, RateLimited>, Vec<Duration>) {
        let sleeps = RefCell::new(Vec::new());
        let result = futures::executor::block_on(limiter.acquire(events, budget, |d| {
            sleeps.borrow_mut().push(d);
            clock.advance(d);
            std::future::ready(())
        }));
        (result, sleeps.into_inner())
    }

    #[test]
    fn a_batch_larger_than_the_burst_waits_in_chunks_at_the_rate() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(&limit(Some((50, 50)), None), clock.clone());
        // 50 at once (a full bucket), then 100 more in two chunks of 50, one second each.
        let (result, sleeps) = run(&limiter, &clock, 150, Duration::from_secs(60));
        let waited = result.unwrap();
        assert_eq!(sleeps.len(), 2, "{sleeps:?}");
        assert!(
            (waited.as_secs_f64() - 2.0).abs() < 0.05,
            "150 events at 50/s with a burst of 50 wait 2 s, waited {waited:?}"
        );
        // The bucket is empty now: 10 more wait 0.2 s.
        let (result, _) = run(&limiter, &clock, 10, Duration::from_secs(60));
        assert!((result.unwrap().as_secs_f64() - 0.2).abs() < 0.01);
    }

    #[test]
    fn requests_are_limited_one_per_call() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(&limit(None, Some((2, 1))), clock.clone());
        let (first, _) = run(&limiter, &clock, 1000, Duration::from_secs(60));
        assert_eq!(first.unwrap(), Duration::ZERO);
        let (second, _) = run(&limiter, &clock, 1000, Duration::from_secs(60));
        assert!((second.unwrap().as_secs_f64() - 0.5).abs() < 0.01);
    }

    #[test]
    fn a_wait_past_the_budget_is_refused_without_sleeping() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(&limit(Some((1, 1)), None), clock.clone());
        let (first, _) = run(&limiter, &clock, 1, Duration::from_secs(5));
        assert_eq!(first.unwrap(), Duration::ZERO);
        // Ten more events need ten seconds; the budget is five.
        let (result, sleeps) = run(&limiter, &clock, 10, Duration::from_secs(5));
        let refused = result.unwrap_err();
        assert!(refused.wait > Duration::ZERO);
        assert!(
            sleeps.iter().sum::<Duration>() <= Duration::from_secs(5),
            "{sleeps:?}"
        );
    }
}
