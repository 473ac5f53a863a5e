//! Deadlines computed from settings, without overflow.
//!
//! Settings are bounded by validation (see `config::bounds`), but a deadline is arithmetic on
//! a setting, and `Instant + Duration` panics on overflow — inside a lane that would lose the
//! batch's events and, before lanes were contained, the process. So every deadline built from
//! a setting saturates to a far future instead: waiting for ever is the right reading of an
//! absurd duration.

use std::time::Duration;

/// What an overflowing deadline becomes: about a century from now.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `now + after`, or a far future when that does not fit.
pub fn deadline(now: tokio::time::Instant, after: Duration) -> tokio::time::Instant {
    now.checked_add(after)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// [`deadline`] for `std::time::Instant`.
pub fn std_deadline(now: std::time::Instant, after: Duration) -> std::time::Instant {
    now.checked_add(after)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// `d × factor`, saturating at `Duration::MAX` (`Duration::mul_f64` panics on overflow).
pub fn scale(d: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// `when + after` in wall-clock time, saturating at chrono's latest representable time.
pub fn wall_deadline(
    when: chrono::DateTime<chrono::Utc>,
    after: Duration,
) -> chrono::DateTime<chrono::Utc> {
    chrono::Duration::from_std(after)
        .ok()
        .and_then(|d| when.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_durations_saturate_instead_of_panicking() {
        let now = tokio::time::Instant::now();
        assert!(deadline(now, Duration::MAX) > now + Duration::from_secs(86_400 * 365));
        assert_eq!(
            deadline(now, Duration::from_secs(3)),
            now + Duration::from_secs(3)
        );
        let now = std::time::Instant::now();
        assert!(std_deadline(now, Duration::MAX) > now);
        assert_eq!(scale(Duration::MAX, 1.1), Duration::MAX);
        assert_eq!(scale(Duration::from_secs(10), 0.5), Duration::from_secs(5));
        let t = chrono::Utc::now();
        assert_eq!(
            wall_deadline(t, Duration::MAX),
            chrono::DateTime::<chrono::Utc>::MAX_UTC
        );
        // "300000000000years", the figure from the report
        let years = humantime::parse_duration("300000000000years").unwrap();
        assert!(deadline(tokio::time::Instant::now(), years) > tokio::time::Instant::now());
    }
}
