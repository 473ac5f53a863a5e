//! Which parking mode courier uses, and whether it says why: the compiled binary (`run` and
//! `validate`) against tansu topics with different retention settings.
//!
//! Broker: tansu 0.6 with in-memory storage. What it does with the two admin requests this
//! feature touches, found with a probe (rdkafka's AdminClient, librdkafka 2.12):
//! - **DescribeConfigs for a topic is answered with exactly the configs given when the topic
//!   was created** (each reported with source "default"), and nothing else: no broker
//!   defaults. A topic created without configs answers an empty list, and so does a topic that
//!   does not exist (no error). So against tansu, courier parks by reference only for a topic
//!   created with `retention.ms`, `retention.bytes` and `cleanup.policy`; any other topic is
//!   "not reported", hence copies — the behaviour courier must have against any broker that
//!   does not report them. (Apache Kafka reports every topic config, defaults included.)
//! - **DeleteRecords is not implemented**: the in-memory storage's `delete_records` is a
//!   `todo!()`, the broker task handling the request panics, the connection drops and the
//!   client gets `BrokerTransportFailure` for the partition; the broker keeps serving other
//!   connections. Tests of deleted (lost) referenced offsets cannot use tansu.
//!
//! The broker's answer is read by the daemon at start and by `courier validate`; both are
//! checked here, with the reason in words, in `/readyz`, in `courier_parking_mode` and in the
//! one `parking mode` log line.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use serde_json::Value;

const TOPIC: &str = "event-logs";

/// The longest parking time of the harness's `[delivery]` with the default schedule:
/// 10 s in-line budget + (30s+2m+10m+30m+1h+2h+4h+8h) × 1.1 + 8 × 5 s request timeout
/// = 62,255 s, and its margin (a quarter: 15,564 s).
const LONGEST: &str = "17h 17m";
const MARGIN: &str = "4h 19m";

/// Creates the Event Logs topic with these topic configs (`(key, value)`).
fn create_topic_with(brokers: &str, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let result = rt()
        .block_on(admin.create_topics([&topic], &options))
        .expect("CreateTopics");
    assert!(result.iter().all(Result::is_ok), "{result:?}");
    wait_until(
        "the Event Logs topic in the metadata",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || partition_count(brokers, TOPIC) == Some(1),
    );
}

fn config(brokers: &str) -> CourierConfig {
    let hook = "[[destinations]]\nproject = \"proj_a\"\nid = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n";
    CourierConfig::new(brokers).destination(hook.to_owned())
}

/// `courier validate` on `cfg` (with its environment): (exit success, stdout + stderr).
fn validate(cfg: &CourierConfig) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("courier.toml");
    std::fs::write(&path, cfg.to_toml("127.0.0.1:0")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["validate", "--config"])
        .arg(&path)
        .envs(cfg.env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The `parking mode` log lines: (level, mode, reason).
fn parking_lines(courier: &Courier) -> Vec<(String, String, String)> {
    let log = std::fs::read_to_string(courier.log_path()).unwrap_or_default();
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["fields"]["message"] == "parking mode")
        .map(|v| {
            let text = |x: &Value| x.as_str().unwrap_or_default().to_owned();
            (
                text(&v["level"]),
                text(&v["fields"]["mode"]),
                text(&v["fields"]["reason"]),
            )
        })
        .collect()
}

/// `courier_parking_mode{mode}` now: (reference, copy).
fn mode_metric(courier: &Courier) -> (f64, f64) {
    let metrics = courier.metrics();
    let value = |mode| metric_sum(&metrics, "courier_parking_mode", &[("mode", mode)]);
    (
        value("reference").expect("courier_parking_mode{mode=\"reference\"} is exported"),
        value("copy").expect("courier_parking_mode{mode=\"copy\"} is exported"),
    )
}

fn readyz(courier: &Courier) -> String {
    let (status, body) = http_get(courier.listen(), "/readyz").unwrap();
    assert_eq!(status, 200, "{body}\n{}", courier.log_tail());
    body
}

/// Broker: tansu, the topic created with a 7-day retention, no size bound, `delete`. The
/// retention covers the longest parking time (17h 17m) with its margin (4h 19m): validate
/// says a running courier would park by reference and why, and the running courier does so
/// and says it in its log, `/readyz` and `courier_parking_mode`. A reload that lengthens the
/// retry schedule past the retention turns it to copies, saying why.
#[test]
fn retention_covering_the_schedule_means_references_and_a_longer_schedule_copies() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic_with(
        &brokers,
        &[
            ("retention.ms", "604800000"),
            ("retention.bytes", "-1"),
            ("cleanup.policy", "delete"),
        ],
    );
    create_topic(&brokers, "courier-failures", 1);
    let mut cfg = config(&brokers);
    let reason = format!(
        "topic event-logs: retention.ms = 7d covers the longest parking time ({LONGEST}) with a {MARGIN} margin; retention.bytes = -1; cleanup.policy = delete"
    );

    let (ok, out) = validate(&cfg);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("  parking: reference ({reason})\n")),
        "{out}"
    );

    let courier = Courier::start_ready(&cfg);
    assert_eq!(
        parking_lines(&courier),
        vec![("INFO".to_owned(), "reference".to_owned(), reason.clone())],
        "{}",
        courier.log_tail()
    );
    assert!(
        readyz(&courier).contains(&format!("parking: reference ({reason})\n")),
        "{}",
        courier.log_tail()
    );
    assert_eq!(mode_metric(&courier), (1.0, 0.0));

    // 8 days of schedule (7d + 1d): longer than the 7-day retention.
    cfg = cfg.delivery("retry_schedule", "[\"7days\", \"1day\"]");
    std::fs::write(courier.config_path(), cfg.to_toml(courier.listen())).unwrap();
    wait_explained(
        "a second parking decision after the reload",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || parking_lines(&courier).len() == 2,
        || courier.log_tail(),
    );
    let (level, mode, why) = parking_lines(&courier).pop().unwrap();
    assert_eq!((level.as_str(), mode.as_str()), ("INFO", "copy"), "{why}");
    assert!(
        why.starts_with("topic event-logs: retention.ms = 7d is shorter than the longest parking time (8d 19h 12m) plus a 2d 4h 48m margin"),
        "{why}"
    );
    assert!(
        readyz(&courier).contains(&format!("parking: copy ({why})\n")),
        "{}",
        courier.log_tail()
    );
    assert_eq!(mode_metric(&courier), (0.0, 1.0));
}

/// Broker: tansu, the topic created with a 12-hour retention: shorter than the longest
/// parking time plus its margin, so copies, said everywhere; forcing references is allowed
/// but warned about (validate and the daemon's log line).
#[test]
fn retention_shorter_than_the_schedule_means_copies_and_forcing_references_warns() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic_with(
        &brokers,
        &[
            ("retention.ms", "43200000"),
            ("retention.bytes", "-1"),
            ("cleanup.policy", "delete"),
        ],
    );
    create_topic(&brokers, "courier-failures", 1);
    let cfg = config(&brokers);
    let reason = format!(
        "topic event-logs: retention.ms = 12h is shorter than the longest parking time ({LONGEST}) plus a {MARGIN} margin"
    );
    let (ok, out) = validate(&cfg);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("  parking: copy ({reason})\n")),
        "{out}"
    );
    let courier = Courier::start_ready(&cfg);
    assert_eq!(
        parking_lines(&courier),
        vec![("INFO".to_owned(), "copy".to_owned(), reason.clone())],
        "{}",
        courier.log_tail()
    );
    assert!(readyz(&courier).contains(&format!("parking: copy ({reason})\n")));
    assert_eq!(mode_metric(&courier), (0.0, 1.0));
    drop(courier);

    let mut forced = config(&brokers);
    forced
        .env
        .push(("COURIER__FAILURES__PARKING".into(), "reference".into()));
    let (ok, out) = validate(&forced);
    assert!(ok, "{out}");
    assert!(
        out.contains("  parking: reference — WARNING (failures.parking = \"reference\" forces references, which is unsafe here: topic event-logs: retention.ms = 12h is shorter"),
        "{out}"
    );
    let courier = Courier::start_ready(&forced);
    let lines = parking_lines(&courier);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        (lines[0].0.as_str(), lines[0].1.as_str()),
        ("WARN", "reference")
    );
    assert!(lines[0].2.contains("unsafe here"), "{lines:?}");
    assert_eq!(mode_metric(&courier), (1.0, 0.0));
}

/// Broker: tansu, the topic created without configs: tansu then reports none (see the module
/// documentation), as a broker that does not answer DescribeConfigs with them would. courier
/// cannot know the retention, so it parks copies and says what was missing.
#[test]
fn a_retention_the_broker_does_not_report_means_copies() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 1);
    create_topic(&brokers, "courier-failures", 1);
    let cfg = config(&brokers);
    let reason = "topic event-logs: the broker did not report retention.ms; the broker did not report retention.bytes; the broker did not report cleanup.policy";
    let (ok, out) = validate(&cfg);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("  parking: copy ({reason})\n")),
        "{out}"
    );
    let courier = Courier::start_ready(&cfg);
    assert_eq!(
        parking_lines(&courier),
        vec![("INFO".to_owned(), "copy".to_owned(), reason.to_owned())],
        "{}",
        courier.log_tail()
    );
    assert!(readyz(&courier).contains(&format!("parking: copy ({reason})\n")));
    assert_eq!(mode_metric(&courier), (0.0, 1.0));
}

/// No broker at all (CI runs validate offline): validate still passes and says it could not
/// check, naming the broker address and the topic; forced copies need no broker.
#[test]
fn validate_without_a_broker_passes_and_says_it_could_not_check() {
    // Port 1 on loopback: nothing listens there.
    let cfg = config("127.0.0.1:1");
    let (ok, out) = validate(&cfg);
    assert!(ok, "{out}");
    assert!(
        out.contains("  parking: not checked: no broker accepts connections (127.0.0.1:1: "),
        "{out}"
    );
    assert!(
        out.contains("a running courier reads the retention of topic event-logs at start (failures.parking = \"auto\")"),
        "{out}"
    );
    let mut copy = cfg.clone();
    copy.env
        .push(("COURIER__FAILURES__PARKING".into(), "copy".into()));
    let (ok, out) = validate(&copy);
    assert!(ok, "{out}");
    assert!(
        out.contains("  parking: copy (failures.parking = \"copy\")\n"),
        "{out}"
    );
}
