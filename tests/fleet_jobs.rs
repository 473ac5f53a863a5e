//! Replay jobs recorded in the jobs topic, end to end: the compiled binary on tansu (its own
//! broker per test), called over real HTTP. A job started on one replica is answered, to its
//! end, by another; a second replay of the destination is refused by the other replica too;
//! a job whose replica stops (SIGTERM, then SIGKILL) mid-run is run again when that replica
//! starts with the same `replica_id`, and ends `completed` with every failed event delivered
//! (or `failed` with the reason when its destination was paused meanwhile); one whose
//! replica never comes back is marked failed by the live replica with the smallest name.
//!
//! tansu, not the mock cluster: the jobs table is a compacted topic read by every replica, and
//! the test restarts a process (the events are produced one record per batch, TESTING.md
//! quirk 2; the killed replica restarts after its session timeout, quirk 4).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

const TOPIC: &str = "event-logs";
const ADMIN: &str = "admin-token-0123456789";
const PROJ_A: &str = "proj-a-token-0123456789";
const KEY_ENV: &str = "COURIER_TEST_API_KEY";
const DESTINATION: &str = "/v1/projects/proj_a/destinations/flaky";

/// A replica named `replica` (the jobs' owner), every replica of a test in one group; a
/// replica is out of the fleet 3 s after its last status heartbeat.
fn config(brokers: &str, replica: &str) -> CourierConfig {
    let mut cfg = CourierConfig::new(brokers)
        .kafka_option("partition.assignment.strategy", "range,roundrobin");
    cfg.extra = format!(
        "\n[api]\nencryption_key_env = {}\nreplica_id = {}\nstatus_interval = \"1s\"\nreplica_timeout = \"3s\"\ntokens = [{{ token = {} }}, {{ token = {}, projects = [\"proj_a\"] }}]\n",
        toml_str(KEY_ENV),
        toml_str(replica),
        toml_str(ADMIN),
        toml_str(PROJ_A),
    );
    cfg.env.push((
        KEY_ENV.into(),
        base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
    ));
    cfg
}

/// One HTTP call → (status, body as JSON or a string).
fn call(addr: &str, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    api_call(
        addr,
        method,
        path,
        Some(token),
        body.map(|b| b.to_string()).as_deref(),
    )
}

fn event(n: usize) -> Vec<u8> {
    event_log("proj_a", &format!("evt-{n}-{}", unique_number()))
        .to_string()
        .into_bytes()
}

fn wait(what: &str, timeout: Duration, courier: &Courier, cond: impl FnMut() -> bool) {
    wait_explained(what, timeout, Duration::from_millis(100), cond, || {
        courier.log_tail()
    });
}

/// A broker, a receiver that refused `n` events (each reported in a failure event by
/// `courier`, the only replica so far) and now accepts everything, and the events.
struct Failed {
    tansu: Tansu,
    receiver: WebhookReceiver,
    events: Vec<Vec<u8>>,
}

fn fail_events(n: usize, start: impl FnOnce(&str) -> Courier) -> (Failed, Courier) {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 2);
    create_topic(&brokers, "courier-failures", 1);
    // 400 is a permanent rejection: every batch ends in a failure event at once.
    let receiver = WebhookReceiver::start(ReceiverConfig::default());
    receiver.set_behaviour(Behaviour::Always(400));
    let courier = start(&brokers);
    let definition = json!({ "type": "webhook", "url": receiver.url(),
        "headers": { "X-Test": "yes" }, "delivery": { "batch_timeout": "50ms" } });
    let (s, body) = call(
        courier.listen(),
        "PUT",
        DESTINATION,
        ADMIN,
        Some(definition),
    );
    assert_eq!(s, 201, "{body}");
    let status = format!("{DESTINATION}/status");
    wait(
        "the destination runs",
        Duration::from_secs(10),
        &courier,
        || call(courier.listen(), "GET", &status, ADMIN, None).1["running"] == true,
    );
    let events: Vec<Vec<u8>> = (0..n).map(event).collect();
    produce_spread(&brokers, TOPIC, 2, events.iter().cloned());
    wait(
        &format!("{n} events failed"),
        Duration::from_secs(60),
        &courier,
        || call(courier.listen(), "GET", &status, ADMIN, None).1["events"]["failed"] == n,
    );
    assert_eq!(receiver.event_count(), 0);
    receiver.set_behaviour(Behaviour::Ok);
    (
        Failed {
            tansu,
            receiver,
            events,
        },
        courier,
    )
}

/// Polls `GET /v1/jobs/{id}` on `courier` until the job has ended; its last view.
fn wait_end(courier: &Courier, id: &str) -> Value {
    let path = format!("/v1/jobs/{id}");
    let mut last = Value::Null;
    wait("the job ends", Duration::from_secs(120), courier, || {
        let (s, body) = call(courier.listen(), "GET", &path, PROJ_A, None);
        assert_eq!(s, 200, "{body}");
        last = body;
        last["state"] != "running"
    });
    last
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

#[test]
fn a_job_started_on_one_replica_is_answered_by_another() {
    let (failed, mut a) = fail_events(30, |brokers| {
        Courier::start_ready(&config(brokers, "replica-a"))
    });
    let brokers = failed.tansu.brokers();
    let b = Courier::start_ready(&config(&brokers, "replica-b"));
    let replay = format!("{DESTINATION}/replay-failures");

    // Started on A, slowly (2 events a second), so that it still runs when B is asked.
    let (s, job) = call(
        a.listen(),
        "POST",
        &replay,
        PROJ_A,
        Some(json!({ "from": "10m", "rate": 2 })),
    );
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().expect("a job id").to_owned();
    let path = format!("/v1/jobs/{id}");

    // B answers for it (before, B answered 404: jobs lived in A's memory) ...
    let mut seen = Value::Null;
    wait("B knows the job", Duration::from_secs(10), &b, || {
        let (s, body) = call(b.listen(), "GET", &path, PROJ_A, None);
        seen = body;
        s == 200
    });
    assert_eq!(seen["state"], "running", "{seen}");
    assert_eq!(
        (&seen["project"], &seen["destination"]),
        (&json!("proj_a"), &json!("flaky"))
    );
    // ... and refuses a second replay of the destination while it runs (fleet-wide).
    let (s, body) = call(
        b.listen(),
        "POST",
        &replay,
        PROJ_A,
        Some(json!({ "from": "10m" })),
    );
    assert_eq!(
        (s, &body["error"]["code"]),
        (409, &json!("replay_running")),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"][0]["message"],
        json!(path),
        "{body}"
    );

    // B follows it to its end: the same answer as A's.
    let end = wait_end(&b, &id);
    assert_eq!(end["state"], "completed", "{end}\n{}", a.log_tail());
    assert_eq!(end["phase"], "done", "{end}");
    assert_eq!(
        end["events"],
        json!({ "routed": 30, "delivered": 30, "failed": 0 }),
        "{end}"
    );
    assert_eq!(end["progress"]["read"], end["progress"]["total"], "{end}");
    let (s, on_a) = call(a.listen(), "GET", &path, PROJ_A, None);
    assert_eq!((s, &on_a), (200, &end), "A and B give the same answer");
    assert_eq!(
        sorted(failed.receiver.events()),
        sorted(failed.events.clone()),
        "every failed event, exactly once"
    );

    // The project's jobs, from B; a scoped token sees only its projects.
    let (s, list) = call(b.listen(), "GET", "/v1/projects/proj_a/jobs", PROJ_A, None);
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["jobs"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["jobs"][0], end, "{list}");
    let (s, body) = call(b.listen(), "GET", "/v1/projects/proj_b/jobs", PROJ_A, None);
    assert_eq!(s, 403, "{body}");
    let (s, body) = call(b.listen(), "GET", "/v1/jobs/job_unknown", ADMIN, None);
    assert_eq!(s, 404, "{body}");

    // A replica that stops for good while running a job: the live replica with the smallest
    // name (B, the only one left) marks the job failed once A has been silent for
    // replica_timeout.
    let (s, job) = call(
        a.listen(),
        "POST",
        &replay,
        PROJ_A,
        Some(json!({ "from": "10m", "rate": 1 })),
    );
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().expect("a job id").to_owned();
    let path = format!("/v1/jobs/{id}");
    wait(
        "B knows the second job",
        Duration::from_secs(10),
        &b,
        || call(b.listen(), "GET", &path, PROJ_A, None).1["state"] == "running",
    );
    a.kill9();
    let end = wait_end(&b, &id);
    assert_eq!(end["state"], "failed", "{end}");
    assert_eq!(
        end["error"], "replica replica-a stopped while running it; start it again",
        "{end}"
    );
    assert!(end["finished_at"].is_string(), "{end}");
}

#[test]
fn a_job_outlives_a_restart_and_a_sigkill_of_its_replica() {
    let (failed, mut a) = fail_events(40, |brokers| {
        Courier::start_ready(&config(brokers, "replica-a"))
    });
    let brokers = failed.tansu.brokers();
    let all = failed.events.len();
    let replay = format!("{DESTINATION}/replay-failures");
    // 4 events a second: about 10 s a run, each stopped after its first few.
    let (s, job) = call(
        a.listen(),
        "POST",
        &replay,
        PROJ_A,
        Some(json!({ "from": "10m", "rate": 4 })),
    );
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().expect("a job id").to_owned();
    let delivering = |courier: &Courier, at_least: usize| {
        wait_explained(
            "the replay delivers",
            Duration::from_secs(60),
            Duration::from_millis(50),
            || failed.receiver.event_count() >= at_least,
            || format!("{:?}\n{}", failed.receiver.violations(), courier.log_tail()),
        );
    };
    let resumed = |courier: &Courier| {
        let log = std::fs::read_to_string(courier.log_path()).unwrap();
        assert!(
            log.contains("running it again from its start"),
            "{}",
            courier.log_tail()
        );
    };

    // A clean stop (SIGTERM) leaves the job running; the same replica_id runs it again.
    delivering(&a, 4);
    a.terminate(Duration::from_secs(30));
    let first = failed.receiver.event_count();
    assert!(
        first < all,
        "stopped while it ran: {first} of {all} delivered"
    );
    let mut a = Courier::start_ready(&config(&brokers, "replica-a"));
    delivering(&a, first + 4);
    resumed(&a);

    // SIGKILL, then the same replica_id after the group session of the killed process
    // expired (TESTING.md quirk 4).
    a.kill9();
    std::thread::sleep(Duration::from_millis(300));
    let second = failed.receiver.event_count() - first;
    assert!(
        second < all,
        "killed while it ran: {second} of {all} delivered"
    );
    std::thread::sleep(Duration::from_secs(7));
    let a = Courier::start_ready(&config(&brokers, "replica-a"));
    let end = wait_end(&a, &id);
    assert_eq!(end["state"], "completed", "{end}\n{}", a.log_tail());
    assert_eq!(
        end["events"],
        json!({ "routed": 40, "delivered": 40, "failed": 0 }),
        "{end}"
    );
    resumed(&a);

    // The receiver has every failed event. Each run started from the job's start, so the
    // events delivered before each stop came again: the same event (the same id), byte for
    // byte — what a receiver deduplicating by id folds into one.
    let got = failed.receiver.events();
    assert_eq!(got.len(), first + second + all);
    let mut times: HashMap<Vec<u8>, usize> = HashMap::new();
    for e in got {
        *times.entry(e).or_default() += 1;
    }
    let mut distinct: Vec<Vec<u8>> = times.keys().cloned().collect();
    distinct.sort();
    assert_eq!(
        distinct,
        sorted(failed.events.clone()),
        "every failed event, nothing else"
    );
    assert!(
        times.values().all(|n| *n <= 3),
        "one delivery per run at most: {times:?}"
    );
    assert!(
        failed.receiver.violations().is_empty(),
        "{:?}",
        failed.receiver.violations()
    );

    let (s, list) = call(a.listen(), "GET", "/v1/projects/proj_a/jobs", PROJ_A, None);
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["jobs"][0]["id"], json!(id), "{list}");
    assert_eq!(list["jobs"][0]["state"], "completed", "{list}");

    // A job that cannot run again: its destination was paused before the replica restarted.
    let (s, job) = call(
        a.listen(),
        "POST",
        &replay,
        PROJ_A,
        Some(json!({ "from": "10m", "rate": 1 })),
    );
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().expect("a job id").to_owned();
    let (s, body) = call(
        a.listen(),
        "POST",
        &format!("{DESTINATION}/pause"),
        PROJ_A,
        None,
    );
    assert_eq!(s, 200, "{body}");
    let mut a = a;
    a.kill9();
    std::thread::sleep(Duration::from_secs(7));
    let a = Courier::start_ready(&config(&brokers, "replica-a"));
    let end = wait_end(&a, &id);
    assert_eq!(end["state"], "failed", "{end}");
    assert_eq!(
        end["error"],
        "replica replica-a restarted while running it and cannot run it again: destination \"flaky\" of project \"proj_a\" is paused; enable it before replaying to it",
        "{end}"
    );
    let (_, list) = call(a.listen(), "GET", "/v1/projects/proj_a/jobs", PROJ_A, None);
    let states: Vec<&Value> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| &j["state"])
        .collect();
    assert_eq!(
        states,
        [&json!("failed"), &json!("completed")],
        "newest first: {list}"
    );
}
