//! The circuit breaker of one destination.
//!
//! Closed: batches are attempted, with in-line retries. After `threshold` consecutive failed
//! requests (or one rejection of the destination's configuration) it opens: batches are
//! parked without attempts, except one probe per `probe_interval`; a successful request
//! closes it. After `pause_after` of continuous failure the destination is paused: its
//! events get failure events (replayable) until its configuration changes.

use std::time::Duration;

use tokio::time::Instant;

pub use crate::failures::Transition;

/// Where the circuit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Deliveries flow.
    Closed,
    /// The destination is failing; batches are parked, probes test it.
    Open,
    /// Failed for `pause_after`; events are reported, not parked.
    Paused,
}

impl State {
    /// The name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::Paused => "paused",
        }
    }
}

/// What to do with the next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Attempt it, with in-line retries.
    Attempt,
    /// Attempt it once, as the probe of an open circuit.
    Probe,
    /// Park it without an attempt.
    Park,
    /// Report it in a failure event (the destination is paused).
    Report,
}

/// The breaker.
#[derive(Debug)]
pub struct Circuit {
    threshold: u32,
    probe_interval: Duration,
    pause_after: Duration,
    state: State,
    consecutive_failures: u32,
    failing_since: Option<Instant>,
    last_probe: Option<Instant>,
}

impl Circuit {
    /// A closed circuit.
    pub fn new(threshold: u32, probe_interval: Duration, pause_after: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            probe_interval,
            pause_after,
            state: State::Closed,
            consecutive_failures: 0,
            failing_since: None,
            last_probe: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Until when batches are parked without an attempt: while open, until the next probe
    /// or the pause is due, whichever comes first; `None` otherwise (attempted, or reported).
    pub fn parks_until(&self) -> Option<Instant> {
        if self.state != State::Open {
            return None;
        }
        // Opening sets the last probe; a window without one would never close.
        let probe = self.last_probe?.checked_add(self.probe_interval)?;
        let pause = self
            .failing_since
            .and_then(|t| t.checked_add(self.pause_after));
        Some(pause.map_or(probe, |p| p.min(probe)))
    }

    /// Whether the last request failed and the destination is not paused: its batches would
    /// be parked at once under budget pressure (the lane's spill), so their events may be
    /// diverted then.
    pub fn failing(&self) -> bool {
        self.state != State::Paused && self.consecutive_failures > 0
    }

    /// Consecutive failed requests.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Decides about the next batch (and claims the probe slot when it is due).
    pub fn decide(&mut self, now: Instant) -> (Decision, Option<Transition>) {
        let transition = self.check_pause(now);
        let decision = match self.state {
            State::Closed => Decision::Attempt,
            State::Paused => Decision::Report,
            State::Open => {
                if self
                    .last_probe
                    .is_none_or(|t| now.duration_since(t) >= self.probe_interval)
                {
                    self.last_probe = Some(now);
                    Decision::Probe
                } else {
                    Decision::Park
                }
            }
        };
        (decision, transition)
    }

    /// A request succeeded.
    pub fn success(&mut self) -> Option<Transition> {
        self.consecutive_failures = 0;
        self.failing_since = None;
        match self.state {
            State::Open => {
                self.state = State::Closed;
                Some(Transition::Recovered)
            }
            State::Closed | State::Paused => None,
        }
    }

    /// A request failed in a way worth retrying.
    pub fn failure(&mut self, now: Instant) -> Option<Transition> {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.failing_since.get_or_insert(now);
        if self.state == State::Closed && self.consecutive_failures >= self.threshold {
            return Some(self.open(now));
        }
        self.check_pause(now)
    }

    /// The destination rejected its configuration (credentials, gone): open at once.
    pub fn reject_configuration(&mut self, now: Instant) -> Option<Transition> {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.failing_since.get_or_insert(now);
        match self.state {
            State::Closed => Some(self.open(now)),
            State::Open | State::Paused => self.check_pause(now),
        }
    }

    /// Whether in-line retries should stop (the circuit opened meanwhile).
    pub fn is_open(&self) -> bool {
        self.state != State::Closed
    }

    fn open(&mut self, now: Instant) -> Transition {
        self.state = State::Open;
        // The request that opened it counts as the first probe.
        self.last_probe = Some(now);
        Transition::Opened
    }

    fn check_pause(&mut self, now: Instant) -> Option<Transition> {
        if self.state == State::Open
            && self
                .failing_since
                .is_some_and(|since| now.duration_since(since) >= self.pause_after)
        {
            self.state = State::Paused;
            return Some(Transition::Paused);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circuit() -> Circuit {
        Circuit::new(3, Duration::from_secs(10), Duration::from_secs(3600))
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let t = Instant::now();
        let mut c = circuit();
        assert_eq!(c.failure(t), None);
        assert_eq!(c.failure(t), None);
        assert_eq!(c.success(), None, "a success resets the count");
        assert_eq!(c.failure(t), None);
        assert_eq!(c.failure(t), None);
        assert_eq!(c.failure(t), Some(Transition::Opened));
        assert_eq!(c.state(), State::Open);
        assert_eq!(c.failure(t), None, "announced once");
    }

    #[test]
    fn open_circuit_probes_once_per_interval_and_recovers() {
        let t = Instant::now();
        let mut c = circuit();
        assert_eq!(c.reject_configuration(t), Some(Transition::Opened));
        assert_eq!(c.decide(t).0, Decision::Park);
        assert_eq!(c.decide(t + Duration::from_secs(5)).0, Decision::Park);
        assert_eq!(c.decide(t + Duration::from_secs(10)).0, Decision::Probe);
        assert_eq!(c.decide(t + Duration::from_secs(11)).0, Decision::Park);
        assert_eq!(c.success(), Some(Transition::Recovered));
        assert_eq!(c.decide(t + Duration::from_secs(12)).0, Decision::Attempt);
        assert_eq!(c.success(), None);
    }

    #[test]
    fn parks_until_the_next_probe_or_the_pause() {
        let t = Instant::now();
        let mut c = circuit();
        assert_eq!(c.parks_until(), None, "closed: attempted");
        c.failure(t);
        c.failure(t);
        assert_eq!(c.parks_until(), None);
        assert_eq!(c.failure(t), Some(Transition::Opened));
        assert_eq!(c.parks_until(), Some(t + Duration::from_secs(10)));
        assert_eq!(c.decide(t + Duration::from_secs(10)).0, Decision::Probe);
        assert_eq!(c.parks_until(), Some(t + Duration::from_secs(20)));
        // The pause comes before the next probe: the window ends there.
        let mut short = Circuit::new(1, Duration::from_secs(10), Duration::from_secs(4));
        short.failure(t);
        assert_eq!(short.parks_until(), Some(t + Duration::from_secs(4)));
        assert_eq!(
            short.decide(t + Duration::from_secs(4)).1,
            Some(Transition::Paused)
        );
        assert_eq!(short.parks_until(), None, "paused: reported");
        assert_eq!(c.success(), Some(Transition::Recovered));
        assert_eq!(c.parks_until(), None);
    }

    #[test]
    fn failing_from_the_first_failure_until_a_success_or_the_pause() {
        let t = Instant::now();
        let mut c = Circuit::new(3, Duration::from_secs(10), Duration::from_secs(4));
        assert!(!c.failing());
        c.failure(t);
        assert!(c.failing(), "closed, but its last request failed");
        c.success();
        assert!(!c.failing());
        c.reject_configuration(t);
        assert!(c.failing(), "open");
        c.decide(t + Duration::from_secs(4));
        assert_eq!(c.state(), State::Paused);
        assert!(
            !c.failing(),
            "paused: its events are reported, which needs them whole"
        );
    }

    #[test]
    fn pauses_after_failing_for_long() {
        let t = Instant::now();
        let mut c = circuit();
        for _ in 0..3 {
            c.failure(t);
        }
        assert_eq!(c.state(), State::Open);
        let later = t + Duration::from_secs(3600);
        assert_eq!(
            c.decide(later),
            (Decision::Report, Some(Transition::Paused))
        );
        assert_eq!(c.decide(later).1, None, "announced once");
        assert_eq!(c.success(), None, "a paused destination stays paused");
        assert_eq!(c.state(), State::Paused);
    }
}
