//! Which way parked batches wait in the retry topic — as a reference to their events in the
//! Event Logs topic, or as copies of them — and why.
//!
//! A reference is one small record per parked batch instead of one copy per event, but it is
//! only as durable as the Event Logs topic: if retention deletes the referenced events before
//! their last scheduled attempt, those events can no longer be delivered. So courier never
//! assumes the retention: at start (and after a reload that changes the retry schedule) it
//! reads the topic's `retention.ms`, `retention.bytes` and `cleanup.policy` from the broker
//! (DescribeConfigs) and parks by reference only when the retention covers the longest
//! parking time with a margin ([`margin`]) and the topic is not compacted. Anything else —
//! a shorter or size-bound retention, compaction, a broker that cannot be reached or does not
//! report those values — means copies, and the reason is said once in the log, in `/readyz`,
//! in `courier_parking_mode` and by `courier validate`. `failures.parking` can force either
//! mode; a forced `reference` that the check finds unsafe is used, with a warning.
//!
//! The decision is kept in a [`ParkingState`] shared by the parker, `/readyz` and the
//! pipeline (which re-decides on reload).

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::{Config, DeliveryConfig, ParkingMode};
use crate::metrics::Metrics;

/// How long the daemon waits for the broker's answer about the topic's retention.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest factor parking's jitter applies to one step of `retry_schedule` (±10%, see
/// [`super::scheduled_delay`]).
const JITTER_MAX: f64 = 1.1;

/// The smallest safety margin.
const MIN_MARGIN: Duration = Duration::from_secs(3600);

/// The topic configuration keys the decision reads.
const KEYS: [&str; 3] = ["retention.ms", "retention.bytes", "cleanup.policy"];

/// How parked batches are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parking {
    /// One record per parked batch naming the events' topic, partition and offsets.
    Reference,
    /// One record per event, carrying the event.
    Copy,
}

impl Parking {
    /// `reference` or `copy` (the metric's label, the log field).
    pub fn as_str(self) -> &'static str {
        match self {
            Parking::Reference => "reference",
            Parking::Copy => "copy",
        }
    }
}

impl fmt::Display for Parking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parking mode in use and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkingDecision {
    /// The mode.
    pub parking: Parking,
    /// Why, in words (no secrets: topic settings and broker errors only).
    pub reason: String,
    /// `false` when `failures.parking = "reference"` forces references that the retention
    /// check did not find safe: the caller warns.
    pub safe: bool,
}

impl ParkingDecision {
    /// Copies, for `reason` (a replay, a test).
    pub fn copy(reason: impl Into<String>) -> Self {
        Self {
            parking: Parking::Copy,
            reason: reason.into(),
            safe: true,
        }
    }
}

/// The longest time a parked reference must stay readable in the Event Logs topic, over
/// `[delivery]` and every destination: the in-line budget spent before a batch is parked
/// (`retry_max_elapsed`), every step of `retry_schedule` at its largest jitter, and one
/// `request_timeout` per scheduled attempt (each next delay starts only once the attempt
/// before it has failed). Saturating: bounded settings cannot overflow, absurd ones read as
/// "for ever".
///
/// Destinations added later (a reload, the destinations API) are covered by re-deciding on
/// reload.
pub fn longest_parking(config: &Config) -> Duration {
    config
        .destinations
        .iter()
        .map(|d| parking_time(&d.delivery))
        .fold(parking_time(&config.delivery), Duration::max)
}

fn parking_time(d: &DeliveryConfig) -> Duration {
    let waits = d
        .retry_schedule
        .iter()
        .fold(Duration::ZERO, |sum, step| sum.saturating_add(*step));
    let attempts = u32::try_from(d.retry_schedule.len()).unwrap_or(u32::MAX);
    d.retry_max_elapsed
        .saturating_add(crate::clock::scale(waits, JITTER_MAX))
        .saturating_add(d.request_timeout.saturating_mul(attempts))
}

/// How much longer than [`longest_parking`] the retention must be: a quarter of it, at least
/// an hour. The schedule is not all that delays a parked attempt: the retry worker may reach
/// a due batch late (a restart, a rebalance of the retry topic, a busy destination), and
/// `retention.ms` counts from each record's timestamp, not from when courier parked it, so
/// whatever lag courier had when it read the events is already spent. The margin absorbs
/// those; events lost beyond it are reported in failure events naming the lost range.
pub fn margin(longest: Duration) -> Duration {
    crate::clock::scale(longest, 0.25).max(MIN_MARGIN)
}

/// What the broker reported about the Event Logs topic, as text (`None`: not reported).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicRetention {
    /// `retention.ms`.
    pub retention_ms: Option<String>,
    /// `retention.bytes`.
    pub retention_bytes: Option<String>,
    /// `cleanup.policy`.
    pub cleanup_policy: Option<String>,
}

/// Whether `found` keeps every event readable for `longest` plus [`margin`], as
/// `Ok(why)` or `Err(why not)` (every problem, `; `-separated).
pub fn verdict(found: &TopicRetention, longest: Duration) -> Result<String, String> {
    let margin = margin(longest);
    let needed = longest.saturating_add(margin);
    let mut good = Vec::new();
    let mut bad = Vec::new();
    match found.retention_ms.as_deref().map(str::trim) {
        None => bad.push("the broker did not report retention.ms".to_owned()),
        Some(text) => match text.parse::<i64>() {
            Ok(-1) => good.push(format!(
                "retention.ms = -1 (unlimited) covers the longest parking time ({})",
                human(longest)
            )),
            Ok(ms) if ms >= 0 => {
                let kept = Duration::from_millis(ms.unsigned_abs());
                if kept >= needed {
                    good.push(format!(
                        "retention.ms = {} covers the longest parking time ({}) with a {} margin",
                        human(kept),
                        human(longest),
                        human(margin)
                    ));
                } else {
                    bad.push(format!(
                        "retention.ms = {} is shorter than the longest parking time ({}) plus a {} margin",
                        human(kept),
                        human(longest),
                        human(margin)
                    ));
                }
            }
            _ => bad.push(format!(
                "retention.ms = {text:?} is not -1 or a number of milliseconds"
            )),
        },
    }
    match found.retention_bytes.as_deref().map(str::trim) {
        None => bad.push("the broker did not report retention.bytes".to_owned()),
        Some("-1") => good.push("retention.bytes = -1".to_owned()),
        Some(text) => bad.push(format!(
            "retention.bytes = {text} bounds the partition by size, which cannot be converted into a time (set it to -1 for references)"
        )),
    }
    match found.cleanup_policy.as_deref() {
        None => bad.push("the broker did not report cleanup.policy".to_owned()),
        Some(policy) if compacted(policy) => bad.push(format!(
            "cleanup.policy = {policy}: compaction removes events that share a key with later ones"
        )),
        Some(policy) => good.push(format!("cleanup.policy = {policy}")),
    }
    if bad.is_empty() {
        Ok(good.join("; "))
    } else {
        Err(bad.join("; "))
    }
}

/// Whether a `cleanup.policy` value (`delete`, `compact`, `compact,delete`, `[compact, delete]`)
/// includes compaction.
fn compacted(policy: &str) -> bool {
    policy
        .split(',')
        .map(|p| p.trim_matches(|c: char| c == '[' || c == ']' || c.is_whitespace()))
        .any(|p| p.eq_ignore_ascii_case("compact"))
}

/// The decision for `mode`, given what was found about `topic` (`Err`: why it is unknown or
/// not enough). Pure: the network part is [`decide_within`].
pub fn conclude(mode: ParkingMode, topic: &str, found: Result<String, String>) -> ParkingDecision {
    match (mode, found) {
        (ParkingMode::Copy, _) => ParkingDecision::copy("failures.parking = \"copy\""),
        (ParkingMode::Auto, Ok(why)) => ParkingDecision {
            parking: Parking::Reference,
            reason: format!("topic {topic}: {why}"),
            safe: true,
        },
        (ParkingMode::Auto, Err(why)) => ParkingDecision::copy(format!("topic {topic}: {why}")),
        (ParkingMode::Reference, Ok(why)) => ParkingDecision {
            parking: Parking::Reference,
            reason: format!("failures.parking = \"reference\"; topic {topic}: {why}"),
            safe: true,
        },
        (ParkingMode::Reference, Err(why)) => ParkingDecision {
            parking: Parking::Reference,
            reason: format!(
                "failures.parking = \"reference\" forces references, which is unsafe here: topic {topic}: {why}; \
                 events deleted before their last attempt are reported as lost, not delivered"
            ),
            safe: false,
        },
    }
}

/// The broker could not be reached: no decision can be read from it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// Decides within [`READ_TIMEOUT`]; when the broker cannot be reached, the decision `auto`
/// falls back to (copies) says so.
pub async fn decide(config: &Config) -> ParkingDecision {
    match decide_within(config, READ_TIMEOUT).await {
        Ok(decision) => decision,
        Err(Unreachable(why)) => conclude(
            config.failures.parking,
            &config.kafka.topic,
            Err(format!("cannot read its retention: {why}")),
        ),
    }
}

/// Decides for `config`, reading the Event Logs topic's retention when `failures.parking` is
/// not `copy`, waiting at most `timeout` for the broker. `Err` only when the broker could not
/// be reached; any other failure to read (DescribeConfigs refused or unsupported, a value not
/// reported) is a decision for copies (or an unsafe forced reference) saying why.
pub async fn decide_within(
    config: &Config,
    timeout: Duration,
) -> Result<ParkingDecision, Unreachable> {
    let mode = config.failures.parking;
    let topic = &config.kafka.topic;
    if mode == ParkingMode::Copy {
        return Ok(conclude(mode, topic, Err(String::new())));
    }
    let found = match read_retention(config, timeout).await {
        Ok(found) => verdict(&found, longest_parking(config)),
        Err(ReadError::Unreachable(why)) => return Err(Unreachable(why)),
        Err(ReadError::Refused(why)) => Err(format!("cannot read its retention: {why}")),
    };
    Ok(conclude(mode, topic, found))
}

enum ReadError {
    Unreachable(String),
    Refused(String),
}

/// `Err(why)` when no bootstrap broker accepts a TCP connection (refused, no such host):
/// said at once instead of after the whole timeout, which librdkafka would spend reconnecting.
/// An entry this cannot read (`kafka.brokers` is librdkafka's) counts as reachable: the admin
/// client has the last word.
async fn refuse_fast(brokers: &str, timeout: Duration) -> Result<(), String> {
    let mut failures = Vec::new();
    for entry in brokers.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let address = entry.rsplit_once("://").map_or(entry, |(_, a)| a);
        let connect = async {
            let mut last = None;
            for socket in tokio::net::lookup_host(address).await? {
                match tokio::net::TcpStream::connect(socket).await {
                    Ok(_) => return Ok(()),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(())) | Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidInput => return Ok(()),
            Ok(Err(e)) => failures.push(format!("{address}: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "no broker accepts connections ({})",
            failures.join("; ")
        ))
    }
}

async fn read_retention(config: &Config, timeout: Duration) -> Result<TopicRetention, ReadError> {
    refuse_fast(&config.kafka.brokers, timeout)
        .await
        .map_err(ReadError::Unreachable)?;
    let admin =
        crate::kafka::admin::Admin::create(&crate::kafka::client_config(config)).map_err(|e| {
            match e {
                // librdkafka's text can quote the refused value, which may be a credential.
                KafkaError::ClientConfig(_, _, key, _) => ReadError::Refused(format!(
                    "cannot create a Kafka admin client: librdkafka refused property {key:?}"
                )),
                e => ReadError::Refused(format!("cannot create a Kafka admin client: {e}")),
            }
        })?;
    let topic = config.kafka.topic.as_str();
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let resources = [ResourceSpecifier::Topic(topic)];
    let describe = admin.describe_configs(&resources, &options);
    let waited = format!(
        "the brokers ({}) did not answer within {}",
        config.kafka.brokers,
        human(timeout)
    );
    let answer =
        tokio::time::timeout(timeout.saturating_add(Duration::from_secs(1)), describe).await;
    let results = match answer {
        Err(_elapsed) => return Err(ReadError::Unreachable(waited)),
        Ok(Err(e)) => {
            let code = match &e {
                KafkaError::AdminOp(code) => Some(*code),
                e => e.rdkafka_error_code(),
            };
            return Err(match code {
                Some(
                    RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::Resolve,
                ) => ReadError::Unreachable(format!("{waited} ({e})")),
                _ => ReadError::Refused(format!("DescribeConfigs failed: {e}")),
            });
        }
        Ok(Ok(results)) => results,
    };
    let resource = match results.into_iter().next() {
        Some(Ok(resource)) => resource,
        Some(Err(code)) => {
            return Err(ReadError::Refused(format!(
                "the broker refused DescribeConfigs for the topic: {code}"
            )))
        }
        None => {
            return Err(ReadError::Refused(
                "the broker answered DescribeConfigs without the topic".into(),
            ))
        }
    };
    let value = |key: &str| resource.get(key).and_then(|entry| entry.value.clone());
    let [ms, bytes, policy] = KEYS;
    Ok(TopicRetention {
        retention_ms: value(ms),
        retention_bytes: value(bytes),
        cleanup_policy: value(policy),
    })
}

/// The parking decision in force, shared by the parker, `/readyz` and the pipeline. Until a
/// decision is set, parking uses copies.
#[derive(Debug, Default)]
pub struct ParkingState(RwLock<Option<ParkingDecision>>);

impl ParkingState {
    /// A state holding `decision` (a replay, a test).
    pub fn decided(decision: ParkingDecision) -> Arc<Self> {
        Arc::new(Self(RwLock::new(Some(decision))))
    }

    /// The decision in force, if one was made.
    pub fn current(&self) -> Option<ParkingDecision> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a decision was made (what `/readyz` waits for), without copying it.
    pub fn is_decided(&self) -> bool {
        self.0.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The mode in force (copies until decided).
    pub fn parking(&self) -> Parking {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(Parking::Copy, |d| d.parking)
    }

    /// Puts `decision` in force: here, in `courier_parking_mode`, and in one log line
    /// (`parking mode`, a warning when the decision is unsafe).
    pub fn publish(&self, decision: ParkingDecision, metrics: &Metrics) {
        for mode in [Parking::Reference, Parking::Copy] {
            metrics
                .parking_mode
                .with_label_values(&[mode.as_str()])
                .set(i64::from(mode == decision.parking));
        }
        if decision.safe {
            tracing::info!(mode = %decision.parking, reason = %decision.reason, "parking mode");
        } else {
            tracing::warn!(mode = %decision.parking, reason = %decision.reason, "parking mode");
        }
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(decision);
    }
}

/// After a reload to `new` from `running`: the decision again when the longest parking time
/// changed (the schedule or the destinations did), else `None`. `failures.parking` and
/// `kafka` are the running ones: those sections apply at restart.
pub async fn redecide(running: &Config, new: &Config) -> Option<ParkingDecision> {
    if longest_parking(running) == longest_parking(new) {
        return None;
    }
    let mut merged = new.clone();
    merged.kafka = running.kafka.clone();
    merged.failures = running.failures.clone();
    Some(decide(&merged).await)
}

/// A duration the way people read retention: `7d`, `17h 18m`, `45s`, `200ms`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.subsec_millis());
    }
    if secs < 60 {
        return format!("{secs}s");
    }
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::parse("retention-test.toml", text, &Default::default()).unwrap()
    }

    fn found(ms: &str, bytes: &str, policy: &str) -> TopicRetention {
        TopicRetention {
            retention_ms: Some(ms.into()),
            retention_bytes: Some(bytes.into()),
            cleanup_policy: Some(policy.into()),
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);
    const DAY_MS: &str = "86400000";

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_millis(1)
    }

    #[test]
    fn the_longest_parking_time_is_the_budget_the_jittered_schedule_and_the_attempts() {
        // Defaults: 2m budget + (30s+2m+10m+30m+1h+2h+4h+8h = 56,550 s) × 1.1 + 8 × 30s.
        let c = config("");
        let expected = Duration::from_secs(120 + 62_205 + 240);
        assert!(
            close(longest_parking(&c), expected),
            "{:?}",
            longest_parking(&c)
        );
        // The largest over [delivery] and every destination's own settings.
        let c = config(
            r#"
[delivery]
retry_max_elapsed = "10s"
retry_schedule = ["1m"]
request_timeout = "5s"

[[destinations]]
project = "p"
id = "short"
type = "file"
path = "/tmp/courier-retention-a.ndjson"

[[destinations]]
project = "p"
id = "long"
type = "file"
path = "/tmp/courier-retention-b.ndjson"
[destinations.delivery]
retry_schedule = ["1h", "2h"]
"#,
        );
        let expected = Duration::from_secs(10 + 11_880 + 10);
        assert!(
            close(longest_parking(&c), expected),
            "{:?}",
            longest_parking(&c)
        );
        // No schedule: only the in-line budget.
        let c = config("[delivery]\nretry_schedule = []\nretry_max_elapsed = \"3s\"");
        assert_eq!(longest_parking(&c), Duration::from_secs(3));
    }

    #[test]
    fn absurd_delivery_settings_saturate() {
        let d = DeliveryConfig {
            retry_max_elapsed: Duration::MAX,
            retry_schedule: vec![Duration::MAX, Duration::MAX],
            request_timeout: Duration::MAX,
            ..DeliveryConfig::default()
        };
        assert_eq!(parking_time(&d), Duration::MAX);
        assert!(verdict(&found("9223372036854775807", "-1", "delete"), Duration::MAX).is_err());
    }

    #[test]
    fn the_margin_is_a_quarter_and_at_least_an_hour() {
        assert_eq!(margin(Duration::ZERO), HOUR);
        assert_eq!(margin(2 * HOUR), HOUR);
        assert_eq!(margin(8 * HOUR), 2 * HOUR);
        assert_eq!(margin(40 * HOUR), 10 * HOUR);
    }

    #[test]
    fn retention_that_covers_the_schedule_allows_references() {
        // 20h + 5h margin = 25h needed.
        let longest = 20 * HOUR;
        let why = verdict(&found("604800000", "-1", "delete"), longest).unwrap();
        assert_eq!(
            why,
            "retention.ms = 7d covers the longest parking time (20h) with a 5h margin; retention.bytes = -1; cleanup.policy = delete"
        );
        let why = verdict(&found("-1", "-1", "delete"), longest).unwrap();
        assert!(why.starts_with("retention.ms = -1 (unlimited)"), "{why}");
        // Exactly enough is enough; a millisecond less is not.
        assert!(verdict(&found("90000000", "-1", "delete"), longest).is_ok());
        assert!(verdict(&found("89999999", "-1", "delete"), longest).is_err());
    }

    #[test]
    fn short_sized_or_compacted_retention_means_copies_and_says_why() {
        let longest = 20 * HOUR;
        assert_eq!(
            verdict(&found(DAY_MS, "-1", "delete"), longest).unwrap_err(),
            "retention.ms = 1d is shorter than the longest parking time (20h) plus a 5h margin"
        );
        let why = verdict(&found("-1", "1073741824", "delete"), longest).unwrap_err();
        assert!(
            why.contains("retention.bytes = 1073741824 bounds the partition by size, which cannot be converted into a time"),
            "{why}"
        );
        for policy in [
            "compact",
            "compact,delete",
            "delete, compact",
            "[compact, delete]",
            "COMPACT",
        ] {
            let why = verdict(&found("-1", "-1", policy), longest).unwrap_err();
            assert!(
                why.starts_with(&format!("cleanup.policy = {policy}: compaction")),
                "{why}"
            );
        }
        // Every problem is named, not only the first.
        let why = verdict(&found("60000", "10", "compact"), longest).unwrap_err();
        assert_eq!(why.matches("; ").count(), 2, "{why}");
    }

    #[test]
    fn values_not_reported_or_not_numbers_mean_copies() {
        let why = verdict(&TopicRetention::default(), HOUR).unwrap_err();
        assert_eq!(
            why,
            "the broker did not report retention.ms; the broker did not report retention.bytes; the broker did not report cleanup.policy"
        );
        for ms in ["", "7d", "-2", "1.5"] {
            let why = verdict(&found(ms, "-1", "delete"), HOUR).unwrap_err();
            assert!(
                why.contains("is not -1 or a number of milliseconds"),
                "{ms}: {why}"
            );
        }
    }

    #[test]
    fn the_setting_decides_what_the_verdict_means() {
        let auto_ok = conclude(ParkingMode::Auto, "logs", Ok("fine".into()));
        assert_eq!(auto_ok.parking, Parking::Reference);
        assert_eq!(auto_ok.reason, "topic logs: fine");
        assert!(auto_ok.safe);
        let auto_bad = conclude(ParkingMode::Auto, "logs", Err("too short".into()));
        assert_eq!(auto_bad.parking, Parking::Copy);
        assert_eq!(auto_bad.reason, "topic logs: too short");
        assert!(auto_bad.safe);
        let copy = conclude(ParkingMode::Copy, "logs", Ok("fine".into()));
        assert_eq!(copy, ParkingDecision::copy("failures.parking = \"copy\""));
        let forced = conclude(ParkingMode::Reference, "logs", Ok("fine".into()));
        assert_eq!(forced.parking, Parking::Reference);
        assert!(forced.safe);
        let unsafe_ = conclude(ParkingMode::Reference, "logs", Err("too short".into()));
        assert_eq!(unsafe_.parking, Parking::Reference);
        assert!(!unsafe_.safe);
        assert!(
            unsafe_
                .reason
                .contains("unsafe here: topic logs: too short"),
            "{}",
            unsafe_.reason
        );
    }

    #[test]
    fn durations_read_like_retention_settings() {
        assert_eq!(human(Duration::from_millis(200)), "200ms");
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(
            human(Duration::from_secs(8 * 3600 + 43 * 60 + 12)),
            "8h 43m"
        );
        assert_eq!(human(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(human(Duration::from_secs(86_400 + 60)), "1d 1m");
    }

    #[test]
    fn the_state_publishes_the_mode_to_the_metric() {
        let state = ParkingState::default();
        assert_eq!(state.parking(), Parking::Copy, "copies until decided");
        assert_eq!(state.current(), None);
        let metrics = Metrics::new();
        let decision = conclude(ParkingMode::Auto, "logs", Ok("fine".into()));
        state.publish(decision.clone(), &metrics);
        assert_eq!(state.parking(), Parking::Reference);
        assert_eq!(state.current(), Some(decision));
        let text = metrics.render();
        assert!(
            text.contains("courier_parking_mode{mode=\"reference\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("courier_parking_mode{mode=\"copy\"} 0"),
            "{text}"
        );
        state.publish(ParkingDecision::copy("because"), &metrics);
        assert_eq!(state.parking(), Parking::Copy);
        let text = metrics.render();
        assert!(
            text.contains("courier_parking_mode{mode=\"reference\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("courier_parking_mode{mode=\"copy\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn forced_copies_ask_no_broker_and_an_unreachable_broker_is_said() {
        // Port 1 on loopback: nothing listens there.
        let offline = "[kafka]\nbrokers = \"127.0.0.1:1\"\n";
        let copy = config(&format!("{offline}[failures]\nparking = \"copy\"\n"));
        let d = decide_within(&copy, Duration::from_secs(30)).await.unwrap();
        assert_eq!(d, ParkingDecision::copy("failures.parking = \"copy\""));
        let auto = config(offline);
        let Err(Unreachable(why)) = decide_within(&auto, Duration::from_secs(30)).await else {
            panic!("a broker that cannot be reached gave a decision");
        };
        assert!(why.contains("127.0.0.1:1"), "{why}");
        let fallback = decide(&auto).await;
        assert_eq!(fallback.parking, Parking::Copy);
        assert!(
            fallback
                .reason
                .starts_with("topic event-logs: cannot read its retention: ")
                && fallback.reason.contains("127.0.0.1:1"),
            "{}",
            fallback.reason
        );
        let forced = config(&format!("{offline}[failures]\nparking = \"reference\"\n"));
        let unsafe_ = decide(&forced).await;
        assert_eq!(unsafe_.parking, Parking::Reference);
        assert!(!unsafe_.safe);
    }

    #[tokio::test]
    async fn a_reload_redecides_only_when_the_longest_parking_time_changes() {
        let running =
            config("[kafka]\nbrokers = \"127.0.0.1:1\"\n[failures]\nparking = \"copy\"\n");
        let same = running.clone();
        assert_eq!(redecide(&running, &same).await, None);
        let mut longer = running.clone();
        longer
            .delivery
            .retry_schedule
            .push(Duration::from_secs(86_400));
        // `failures` is the running one even if the new file changed it.
        longer.failures.parking = ParkingMode::Auto;
        assert_eq!(
            redecide(&running, &longer).await,
            Some(ParkingDecision::copy("failures.parking = \"copy\""))
        );
    }
}
