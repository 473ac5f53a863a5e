//! `courier replay`, end to end: the compiled binary against tansu (records produced one per
//! batch so any offset can be a starting point, TESTING.md quirk 2) and webhook receivers that
//! enforce the contract.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use courier::generator::Generator;
use serde_json::Value;

const TOPIC: &str = "event-logs";
const FAILURES: &str = "courier-failures";

struct Produced {
    /// (project, bytes, partition, offset)
    events: Vec<(String, Vec<u8>, i32, i64)>,
}

impl Produced {
    fn select(&self, f: impl Fn(&str, i32, i64) -> bool) -> HashSet<Vec<u8>> {
        self.events
            .iter()
            .filter(|(p, _, part, off)| f(p, *part, *off))
            .map(|(_, b, _, _)| b.clone())
            .collect()
    }
}

fn produce_events(brokers: &str, gen: &mut Generator, n: usize) -> Produced {
    let batch = ordinary_events(gen, n, &["proj_0001", "proj_0002"]);
    let positions = produce_spread(brokers, TOPIC, 2, batch.iter().map(|(_, e)| e.clone()));
    Produced {
        events: batch
            .into_iter()
            .zip(positions)
            .map(|((p, e), (part, off))| (p, e, part, off))
            .collect(),
    }
}

fn broker() -> Tansu {
    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), TOPIC, 2);
    create_topic(&tansu.brokers(), FAILURES, 1);
    tansu
}

/// Writes a configuration for `replay` (its HTTP listener is never started by replay).
fn config_file(dir: &tempfile::TempDir, cfg: &CourierConfig) -> std::path::PathBuf {
    let path = dir.path().join("courier.toml");
    std::fs::write(&path, cfg.to_toml("127.0.0.1:1")).unwrap();
    path
}

fn replay(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_courier"))
        .arg("replay")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run courier replay")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn received(r: &WebhookReceiver) -> HashSet<Vec<u8>> {
    r.events().into_iter().collect()
}

/// Broker: tansu. An offset range of one partition is replayed: the receiver gets exactly the
/// routed events of that range — each once, nothing else — and the command exits 0.
#[test]
fn an_offset_range_delivers_exactly_its_routed_events() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default().signed());
    let produced = produce_events(&brokers, &mut generator(1, 2), 200);
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        CourierConfig::new(&brokers).destination(hook.destination_toml("proj_0001", "hook-1"));
    let path = config_file(&dir, &cfg);
    let out = replay(&path, &["--from", "10", "--to", "60", "--partition", "0"]);
    assert!(out.status.success(), "{}", describe(&out));
    let expected =
        produced.select(|p, part, off| p == "proj_0001" && part == 0 && (10..60).contains(&off));
    assert_eq!(
        multiset(hook.events()).len(),
        hook.event_count(),
        "no duplicates"
    );
    assert_eq!(received(&hook), expected, "{}", describe(&out));
    assert!(hook.violations().is_empty(), "{:?}", hook.violations());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("50 messages read"), "{stdout}");
    assert!(
        committed_offsets(&brokers, "courier-test", TOPIC).is_empty(),
        "replay never commits for the live group"
    );
}

/// Broker: tansu, with the events produced in large multi-record batches: a range that starts
/// inside a batch is answered by tansu with the next batch (TESTING.md quirk 2). The replay
/// notices that the first record is not the one it asked for, rewinds, and still delivers
/// exactly the range.
#[test]
fn a_range_starting_inside_a_record_batch_is_replayed_whole() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    let mut gen = generator(9, 2);
    let events: Vec<(i32, Vec<u8>)> = (0..400)
        .map(|_| (0, gen.event_for_project("proj_0001")))
        .collect();
    let positions = produce_batched(&brokers, TOPIC, events.clone());
    // tansu reports the base offset of the last batch + 1 as the partition's end (quirk 3):
    // one more record in a batch of its own makes that the real end.
    produce(
        &brokers,
        TOPIC,
        [(Some(0), gen.event_for_project("proj_0002"))],
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        CourierConfig::new(&brokers).destination(hook.destination_toml("proj_0001", "hook-1"));
    let path = config_file(&dir, &cfg);
    let out = replay(&path, &["--from", "110", "--to", "160", "--partition", "0"]);
    assert!(out.status.success(), "{}", describe(&out));
    let expected: HashSet<Vec<u8>> = events
        .into_iter()
        .zip(positions)
        .filter(|(_, (_, off))| (110..160).contains(off))
        .map(|((_, e), _)| e)
        .collect();
    assert_eq!(expected.len(), 50);
    assert_eq!(hook.event_count(), 50, "each once: {}", describe(&out));
    assert_eq!(received(&hook), expected, "{}", describe(&out));
}

/// Broker: tansu. A time range (RFC 3339) selects exactly the messages produced within it.
#[test]
fn a_time_range_delivers_exactly_the_events_produced_within_it() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    let mut gen = generator(2, 2);
    let _before = produce_events(&brokers, &mut gen, 40);
    std::thread::sleep(Duration::from_millis(1500));
    let from = chrono::Utc::now();
    std::thread::sleep(Duration::from_millis(200));
    let inside = produce_events(&brokers, &mut gen, 40);
    std::thread::sleep(Duration::from_millis(1500));
    let to = chrono::Utc::now();
    std::thread::sleep(Duration::from_millis(200));
    let _after = produce_events(&brokers, &mut gen, 40);
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        CourierConfig::new(&brokers).destination(hook.destination_toml("proj_0001", "hook-1"));
    let path = config_file(&dir, &cfg);
    let out = replay(
        &path,
        &["--from", &from.to_rfc3339(), "--to", &to.to_rfc3339()],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        received(&hook),
        inside.select(|p, _, _| p == "proj_0001"),
        "{}",
        describe(&out)
    );
}

/// Broker: tansu. `--destination` narrows delivery; `--dry-run` sends nothing and counts.
#[test]
fn destination_narrows_and_dry_run_sends_nothing() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let one = WebhookReceiver::start(ReceiverConfig::default());
    let two = WebhookReceiver::start(ReceiverConfig::default());
    let produced = produce_events(&brokers, &mut generator(3, 2), 100);
    let dir = tempfile::tempdir().unwrap();
    let cfg = CourierConfig::new(&brokers)
        .destination(one.destination_toml("proj_0001", "hook-1"))
        .destination(two.destination_toml("proj_0001", "hook-2"));
    let path = config_file(&dir, &cfg);
    let ends: HashMap<i32, i64> = end_offsets(
        &produced
            .events
            .iter()
            .map(|(_, _, p, o)| (*p, *o))
            .collect::<Vec<_>>(),
    );
    let to = ends.values().max().unwrap().to_string();

    let dry = replay(&path, &["--from", "0", "--to", &to, "--dry-run"]);
    assert!(dry.status.success(), "{}", describe(&dry));
    assert_eq!(
        ends[&0], ends[&1],
        "the test produces the same count to both partitions"
    );
    let routed = produced.select(|p, _, _| p == "proj_0001");
    let stdout = String::from_utf8_lossy(&dry.stdout);
    for line in ["proj_0001/hook-1", "proj_0001/hook-2"] {
        let count: u64 = stdout
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("{line} missing: {stdout}"))
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(count as usize, routed.len(), "{stdout}");
    }
    assert_eq!(
        one.request_count() + two.request_count(),
        0,
        "dry run sent something"
    );

    let out = replay(
        &path,
        &["--from", "0", "--to", &to, "--destination", "hook-2"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(received(&two), routed);
    assert_eq!(
        one.request_count(),
        0,
        "--destination hook-2 also sent to hook-1"
    );
}

/// Broker: tansu. After an outage (every delivery rejected → failure events), the fixed
/// destination gets exactly the failed events back with `--from-failures`.
#[test]
fn from_failures_redelivers_exactly_the_failed_events() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    hook.set_behaviour(Behaviour::Always(400));
    let ok = WebhookReceiver::start(ReceiverConfig::default());
    let cfg = CourierConfig::new(&brokers)
        .destination(hook.destination_toml("proj_0001", "hook-1"))
        .destination(ok.destination_toml("proj_0002", "hook-ok"));
    let courier = Courier::start_ready(&cfg);
    let produced = produce_events(&brokers, &mut generator(4, 2), 120);
    let failed_expected = produced.select(|p, _, _| p == "proj_0001");
    let start = Instant::now();
    let failures_end = loop {
        let events = read_all(&brokers, FAILURES, Duration::from_secs(2));
        let ids: HashSet<String> = events
            .iter()
            .filter_map(|(_, _, b)| serde_json::from_slice::<Value>(b).ok())
            .filter_map(|v| v["payload"]["eventIds"].as_array().cloned())
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        if ids.len() >= failed_expected.len() {
            break events.iter().map(|(_, o, _)| o + 1).max().unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "failures never reported\n{}",
            courier.log_tail()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let committed_before = committed_offsets(&brokers, "courier-test", TOPIC);
    drop(courier);

    hook.set_behaviour(Behaviour::Ok);
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(&dir, &cfg);
    let out = replay(
        &path,
        &[
            "--from-failures",
            "--from",
            "0",
            "--to",
            &failures_end.to_string(),
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(received(&hook), failed_expected, "{}", describe(&out));
    assert_eq!(hook.event_count(), failed_expected.len(), "each once");
    let ok_before = ok.event_count();
    assert_eq!(
        ok_before,
        produced.select(|p, _, _| p == "proj_0002").len(),
        "the healthy destination got its events once, live, and nothing from the replay"
    );
    assert_eq!(
        committed_offsets(&brokers, "courier-test", TOPIC),
        committed_before,
        "replay changed the live group's committed offsets"
    );
}

/// Broker: tansu. Bad ranges and unknown names are usage errors (exit 2) with a clear
/// message, and nothing is sent.
#[test]
fn bad_ranges_are_refused_before_anything_is_sent() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    produce_events(&brokers, &mut generator(5, 2), 20);
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        CourierConfig::new(&brokers).destination(hook.destination_toml("proj_0001", "hook-1"));
    let path = config_file(&dir, &cfg);
    let cases: [(&[&str], &str); 5] = [
        (
            &["--from", "9", "--to", "3"],
            "--from offset 9 is after --to offset 3",
        ),
        (
            &["--from", "0", "--to", "500"],
            "partition 0 holds offsets [0, 10); --to 500 is outside it",
        ),
        (
            &["--from", "0", "--to", "5", "--project", "proj_9999"],
            "unknown project \"proj_9999\"",
        ),
        (
            &["--from", "0", "--to", "5", "--destination", "nope"],
            "unknown destination \"nope\"",
        ),
        (
            &["--from", "soon", "--to", "5"],
            "--from: \"soon\" is neither an offset",
        ),
    ];
    for (args, message) in cases {
        let out = replay(&path, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(message),
            "{args:?}: expected {message:?} in {stderr}"
        );
    }
    assert_eq!(hook.request_count(), 0);
}
