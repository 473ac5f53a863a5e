//! The range of every numeric, duration, string and list setting, in one place.
//!
//! Why bounds at all: destinations are defined by tenants through the API as well as by the
//! operator's file, and a value the code cannot carry — `queue_max_events = 2^61` (more
//! semaphore permits than tokio has), `retry_max_elapsed = "300000000000years"` (past what
//! `Instant + Duration` can hold) — must be a configuration error naming the key, never a
//! panic or a task that stops completing. The bounds are generous for any real deployment
//! and small enough that the arithmetic done on them cannot overflow.
//!
//! The same checks run for the file, for `COURIER__…` overrides, for reloads and for the
//! destinations API (the API reports them with JSON pointers); docs/operations.md lists them
//! ("Bounds").

use std::time::Duration;

/// `(min, max)` of an integer setting, both inclusive.
pub type Range = (u64, u64);

/// `(min, max)` of a duration setting, both inclusive.
pub type DurationRange = (Duration, Duration);

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

// ---- top level, [kafka], [failures], [limits] ----

/// `shutdown_timeout`.
pub const SHUTDOWN_TIMEOUT: DurationRange = (Duration::ZERO, secs(HOUR));
/// `kafka.commit_interval` (a zero interval would be a busy loop; tokio refuses it).
pub const COMMIT_INTERVAL: DurationRange = (millis(10), secs(600));
/// `kafka.revoke_timeout` (librdkafka's `max.poll.interval.ms` defaults to 5 minutes).
pub const REVOKE_TIMEOUT: DurationRange = (Duration::ZERO, secs(300));
/// `failures.retry_topic_partitions`.
pub const RETRY_TOPIC_PARTITIONS: Range = (1, 1024);
/// Kafka's own limit on a topic name (`kafka.topic`, `failures.*topic`, `api.destinations_topic`).
pub const MAX_TOPIC_CHARS: usize = 249;
/// `kafka.group_id`.
pub const MAX_GROUP_ID_CHARS: usize = 255;
/// `limits.max_event_bytes`.
pub const MAX_EVENT_BYTES: Range = (1, 64 * MIB);
/// `limits.max_in_flight_events`.
pub const MAX_IN_FLIGHT_EVENTS: Range = (1, 10_000_000);
/// `limits.max_in_flight_bytes`.
pub const MAX_IN_FLIGHT_BYTES: Range = (1, 64 * GIB);

// ---- [delivery] and [destinations.delivery] ----

/// `batch_max_events`.
pub const BATCH_MAX_EVENTS: Range = (1, 1_000_000);
/// `batch_max_bytes`.
pub const BATCH_MAX_BYTES: Range = (1, GIB);
/// `batch_timeout`.
pub const BATCH_TIMEOUT: DurationRange = (Duration::ZERO, secs(HOUR));
/// `max_in_flight`: concurrent requests of one destination.
pub const MAX_IN_FLIGHT: Range = (1, 256);
/// `request_timeout`.
pub const REQUEST_TIMEOUT: DurationRange = (millis(1), secs(900));
/// `retry_max_elapsed`: the in-line retry budget of one batch.
pub const RETRY_MAX_ELAPSED: DurationRange = (Duration::ZERO, secs(DAY));
/// `retry_initial_backoff`.
pub const RETRY_INITIAL_BACKOFF: DurationRange = (millis(1), secs(HOUR));
/// `retry_max_backoff` (and at least `retry_initial_backoff`).
pub const RETRY_MAX_BACKOFF: DurationRange = (millis(1), secs(HOUR));
/// `queue_max_events`.
pub const QUEUE_MAX_EVENTS: Range = (1, 1_000_000);
/// Each entry of `retry_schedule`.
pub const RETRY_SCHEDULE_ENTRY: DurationRange = (secs(1), secs(7 * DAY));
/// Entries of `retry_schedule`.
pub const MAX_RETRY_SCHEDULE_LEN: usize = 32;
/// `circuit_failure_threshold`.
pub const CIRCUIT_FAILURE_THRESHOLD: Range = (1, 10_000);
/// `probe_interval`.
pub const PROBE_INTERVAL: DurationRange = (millis(100), secs(HOUR));
/// `pause_after`.
pub const PAUSE_AFTER: DurationRange = (Duration::ZERO, secs(7 * DAY));

// ---- what every destination has ----

/// `project` (the API's path segment has the same limit).
pub const MAX_PROJECT_CHARS: usize = 256;
/// `id`.
pub const MAX_ID_CHARS: usize = 128;
/// Entries of each `filter` list (`types`, `end_user_ids`, …).
pub const MAX_FILTER_VALUES: usize = 1000;
/// Each `filter` list entry and `filter.search`.
pub const MAX_FILTER_VALUE_CHARS: usize = 1024;
/// Every URL: webhook `url`, `endpoint` of datadog, splunk_hec and s3.
pub const MAX_URL_CHARS: usize = 2048;
/// Every secret value (headers, `secret`, `api_key`, `token`, S3 keys and session token).
pub const MAX_SECRET_BYTES: usize = 8192;
/// Free-form names: Datadog `service`/`source`/`hostname`, Splunk `index`/`source`/
/// `sourcetype`/`host`, S3 `region`.
pub const MAX_NAME_CHARS: usize = 256;
/// A host path (`file` `path`, Splunk `tls.ca_file`).
pub const MAX_PATH_BYTES: usize = 4096;

/// Destinations one project may have in the destinations store (created through the API;
/// the file's are the operator's and do not count).
pub const MAX_API_DESTINATIONS_PER_PROJECT: usize = 100;

// ---- per sink ----

/// Webhook `headers` entries.
pub const MAX_HEADERS: usize = 32;
/// A webhook header name.
pub const MAX_HEADER_NAME_CHARS: usize = 256;
/// Datadog `tags` entries.
pub const MAX_TAGS: usize = 100;
/// Splunk `ack_timeout`.
pub const ACK_TIMEOUT: DurationRange = (millis(100), secs(HOUR));
/// Splunk `max_request_bytes`.
pub const MAX_REQUEST_BYTES: Range = (1, 64 * MIB);
/// Size of the Splunk `tls.ca_file` courier reads (file configuration only).
pub const MAX_CA_FILE_BYTES: u64 = MIB;
/// S3 `multipart_threshold` (5 GiB: the largest single PUT S3 takes).
pub const MULTIPART_THRESHOLD: Range = (1, 5 * GIB);
/// S3 `multipart_part_size` (S3's own part limits: 5 MiB to 5 GiB).
pub const MULTIPART_PART_SIZE: Range = (5 * MIB, 5 * GIB);
/// S3 `prefix` and `key_template` (S3 keys are at most 1024 bytes).
pub const MAX_KEY_PART_BYTES: usize = 512;
/// S3 `kms_key_id` (an ARN or alias).
pub const MAX_KMS_KEY_ID_CHARS: usize = 2048;

/// `value` within `range`, or the message naming the bound it breaks.
pub fn count(value: u64, (min, max): Range) -> Result<(), String> {
    if value < min {
        Err(format!("must be at least {min}"))
    } else if value > max {
        Err(format!("must be at most {max} (got {value})"))
    } else {
        Ok(())
    }
}

/// [`count`] for `usize` settings.
pub fn size(value: usize, range: Range) -> Result<(), String> {
    count(u64::try_from(value).unwrap_or(u64::MAX), range)
}

/// `value` within `range`, or the message naming the bound it breaks (durations written
/// the way the configuration writes them: `7days`, `100ms`).
pub fn duration(value: Duration, (min, max): DurationRange) -> Result<(), String> {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if value < min {
        if min == millis(1) || min.is_zero() {
            Err(format!("must be longer than 0s (got {})", show(value)))
        } else {
            Err(format!(
                "must be at least {} (got {})",
                show(min),
                show(value)
            ))
        }
    } else if value > max {
        Err(format!(
            "must be at most {} (got {})",
            show(max),
            show(value)
        ))
    } else {
        Ok(())
    }
}

/// At most `max` characters.
pub fn chars(value: &str, max: usize) -> Result<(), String> {
    let n = value.chars().count();
    if n > max {
        Err(format!("must be at most {max} characters long (got {n})"))
    } else {
        Ok(())
    }
}

/// At most `max` bytes. The message never shows the value (secrets go through here).
pub fn bytes(value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        Err(format!(
            "must be at most {max} bytes long (got {})",
            value.len()
        ))
    } else {
        Ok(())
    }
}

/// At most `max` entries.
pub fn entries(len: usize, max: usize) -> Result<(), String> {
    if len > max {
        Err(format!("must have at most {max} entries (got {len})"))
    } else {
        Ok(())
    }
}

/// A Kafka topic name: 1 to 249 of `a-z A-Z 0-9 . _ -`, and not `.` or `..`.
pub fn topic(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("must not be empty".into());
    }
    chars(name, MAX_TOPIC_CHARS)?;
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid topic name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{c:?} is not allowed in a Kafka topic name (letters, digits, '.', '_' and '-')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_bounds_are_inclusive_and_name_the_bound() {
        assert_eq!(count(1, (1, 10)), Ok(()));
        assert_eq!(count(10, (1, 10)), Ok(()));
        assert_eq!(count(0, (1, 10)), Err("must be at least 1".into()));
        assert_eq!(
            count(11, (1, 10)),
            Err("must be at most 10 (got 11)".into())
        );
        assert_eq!(
            size(2_305_843_009_213_693_952, QUEUE_MAX_EVENTS),
            Err("must be at most 1000000 (got 2305843009213693952)".into())
        );
        assert!(size(usize::MAX, MAX_IN_FLIGHT).is_err());
    }

    #[test]
    fn duration_bounds_are_inclusive_and_written_as_in_the_file() {
        assert_eq!(duration(secs(7 * DAY), PAUSE_AFTER), Ok(()));
        let e = duration(
            Duration::from_secs(300_000_000_000 * 31_557_600),
            PAUSE_AFTER,
        );
        assert!(e.unwrap_err().starts_with("must be at most 7days (got "));
        assert_eq!(
            duration(Duration::ZERO, REQUEST_TIMEOUT),
            Err("must be longer than 0s (got 0s)".into())
        );
        assert_eq!(
            duration(millis(50), PROBE_INTERVAL),
            Err("must be at least 100ms (got 50ms)".into())
        );
        assert_eq!(duration(Duration::ZERO, BATCH_TIMEOUT), Ok(()));
    }

    #[test]
    fn strings_lists_and_topics() {
        assert_eq!(chars("ééé", 3), Ok(()));
        assert!(chars("éééé", 3).is_err());
        assert_eq!(bytes("ééé", 6), Ok(()));
        assert_eq!(
            bytes("secret-value", 4),
            Err("must be at most 4 bytes long (got 12)".into())
        );
        assert_eq!(entries(32, MAX_HEADERS), Ok(()));
        assert!(entries(33, MAX_HEADERS).is_err());
        assert_eq!(topic("event-logs.v2_x"), Ok(()));
        assert!(topic("").is_err());
        assert!(topic("..").is_err());
        assert!(topic("a/b").unwrap_err().contains("'/'"));
        assert!(topic(&"t".repeat(250)).is_err());
        assert_eq!(topic(&"t".repeat(249)), Ok(()));
    }

    #[test]
    fn every_default_is_within_its_bounds() {
        let d = super::super::DeliveryConfig::default();
        size(d.batch_max_events, BATCH_MAX_EVENTS).unwrap();
        size(d.batch_max_bytes, BATCH_MAX_BYTES).unwrap();
        duration(d.batch_timeout, BATCH_TIMEOUT).unwrap();
        size(d.max_in_flight, MAX_IN_FLIGHT).unwrap();
        duration(d.request_timeout, REQUEST_TIMEOUT).unwrap();
        duration(d.retry_max_elapsed, RETRY_MAX_ELAPSED).unwrap();
        duration(d.retry_initial_backoff, RETRY_INITIAL_BACKOFF).unwrap();
        duration(d.retry_max_backoff, RETRY_MAX_BACKOFF).unwrap();
        size(d.queue_max_events, QUEUE_MAX_EVENTS).unwrap();
        entries(d.retry_schedule.len(), MAX_RETRY_SCHEDULE_LEN).unwrap();
        for e in &d.retry_schedule {
            duration(*e, RETRY_SCHEDULE_ENTRY).unwrap();
        }
        count(
            d.circuit_failure_threshold.into(),
            CIRCUIT_FAILURE_THRESHOLD,
        )
        .unwrap();
        duration(d.probe_interval, PROBE_INTERVAL).unwrap();
        duration(d.pause_after, PAUSE_AFTER).unwrap();
        let limits = super::super::LimitsConfig::default();
        size(limits.max_event_bytes, MAX_EVENT_BYTES).unwrap();
        size(limits.max_in_flight_events, MAX_IN_FLIGHT_EVENTS).unwrap();
        size(limits.max_in_flight_bytes, MAX_IN_FLIGHT_BYTES).unwrap();
        let kafka = super::super::KafkaConfig::default();
        duration(kafka.commit_interval, COMMIT_INTERVAL).unwrap();
        duration(kafka.revoke_timeout, REVOKE_TIMEOUT).unwrap();
    }
}
