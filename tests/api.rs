//! The destinations API, end to end: the compiled binary on tansu (its own broker per test),
//! called over real HTTP. CRUD, validation, auth, secrets (never in an answer, a log line or
//! the store topic's bytes), test/status/enable/pause, two replicas sharing the store, and a
//! start-up with the wrong key.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

const TOPIC: &str = "event-logs";
const STORE: &str = "courier-destinations";
const ADMIN: &str = "admin-token-0123456789";
const PROJ_A: &str = "proj-a-token-0123456789";
const KEY_ENV: &str = "COURIER_TEST_API_KEY";
const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HEADER_SECRET: &str = "Bearer header-secret-value-42";

fn key(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

fn config(brokers: &str, key_byte: u8) -> CourierConfig {
    let mut cfg = CourierConfig::new(brokers)
        .kafka_option("partition.assignment.strategy", "range,roundrobin");
    cfg.extra = format!(
        "\n[api]\nencryption_key_env = {}\ntokens = [{{ token = {} }}, {{ token = {}, projects = [\"proj_a\"] }}]\n",
        toml_str(KEY_ENV),
        toml_str(ADMIN),
        toml_str(PROJ_A),
    );
    cfg.env.push((KEY_ENV.into(), key(key_byte)));
    cfg
}

/// One HTTP call → (status, body as JSON or a string).
fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    api_call(addr, method, path, token, body)
}

/// Every answer, to check no secret ever appears in one.
struct Client<'a> {
    addr: &'a str,
    seen: std::cell::RefCell<Vec<String>>,
}

impl<'a> Client<'a> {
    fn new(courier: &'a Courier) -> Self {
        Client {
            addr: courier.listen(),
            seen: Default::default(),
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let (status, value) = call(self.addr, method, path, token, body.as_deref());
        self.seen.borrow_mut().push(value.to_string());
        (status, value)
    }

    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, Some(ADMIN), body)
    }

    fn assert_no_secret(&self, secrets: &[&str]) {
        for answer in self.seen.borrow().iter() {
            for s in secrets {
                assert!(!answer.contains(s), "secret {s:?} in an answer: {answer}");
            }
        }
    }
}

fn error_pointers(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|d| d["pointer"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_error_shape(status: u16, body: &Value) {
    assert!(body["error"]["code"].is_string(), "{status}: {body}");
    assert!(body["error"]["message"].is_string(), "{status}: {body}");
    assert!(body["error"]["details"].is_array(), "{status}: {body}");
}

fn hook_definition(receiver: &WebhookReceiver) -> Value {
    json!({
        "type": "webhook",
        "url": receiver.url(),
        "secret": HOOK_SECRET,
        "headers": { "X-Api-Auth": HEADER_SECRET },
        "filter": { "min_level": "INFO" },
        "delivery": { "batch_timeout": "50ms" },
    })
}

/// Event number `n` of `project`, with an id no other test event has.
fn event(project: &str, n: usize) -> Vec<u8> {
    event_log(project, &format!("evt-{project}-{n}-{}", unique_number()))
        .to_string()
        .into_bytes()
}

fn wait(what: &str, timeout: Duration, courier: &Courier, cond: impl FnMut() -> bool) {
    wait_explained(what, timeout, Duration::from_millis(50), cond, || {
        courier.log_tail()
    });
}

#[test]
fn crud_validation_auth_test_status_and_secrets() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 2);
    create_topic(&brokers, "courier-failures", 1);
    let file_receiver = WebhookReceiver::start(ReceiverConfig::default());
    let receiver = WebhookReceiver::start(ReceiverConfig {
        secret: Some(HOOK_SECRET.into()),
        headers: vec![("X-Api-Auth".into(), HEADER_SECRET.into())],
        ..ReceiverConfig::default()
    });
    let cfg =
        config(&brokers, 1).destination(file_receiver.destination_toml("proj_a", "file-hook"));
    let courier = Courier::start_ready(&cfg);
    let c = Client::new(&courier);
    let base = "/v1/projects/proj_a/destinations";

    // Auth: 401 without or with an unknown token, 403 outside the token's projects.
    for token in [None, Some("unknown-token-0123456789")] {
        let (s, body) = c.call("GET", base, token, None);
        assert_eq!(s, 401, "{body}");
        assert_error_shape(s, &body);
    }
    let (s, body) = c.call(
        "GET",
        "/v1/projects/proj_b/destinations",
        Some(PROJ_A),
        None,
    );
    assert_eq!(s, 403, "{body}");
    assert_error_shape(s, &body);
    let (s, _) = c.admin("GET", "/v1/projects/proj_zzz/destinations", None);
    assert_eq!(s, 404);

    // The file's destination is listed, read-only.
    let (s, body) = c.call("GET", base, Some(PROJ_A), None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["destinations"][0]["id"], "file-hook");
    assert_eq!(body["destinations"][0]["managed_by"], "config_file");
    let (s, body) = c.admin(
        "PUT",
        &format!("{base}/file-hook"),
        Some(hook_definition(&receiver)),
    );
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"]["code"], "read_only");
    let (s, _) = c.admin("DELETE", &format!("{base}/file-hook"), None);
    assert_eq!(s, 409);

    // Validation: 422 with a JSON pointer per error; 400 for a body that is not JSON.
    let mut bad = hook_definition(&receiver);
    bad["filter"]["min_level"] = json!("WARNING");
    bad["url"] = json!("ftp://example.com/x");
    let (s, body) = c.admin("PUT", &format!("{base}/hook-2"), Some(bad.clone()));
    assert_eq!(s, 422, "{body}");
    let pointers = error_pointers(&body);
    assert!(pointers.contains(&"/filter/min_level".to_owned()), "{body}");
    assert!(pointers.contains(&"/url".to_owned()), "{body}");
    let (s, body) = c.admin(
        "POST",
        "/v1/projects/proj_a/destinations:validate",
        Some(bad),
    );
    assert_eq!(s, 422, "{body}");
    let (s, body) = c.admin(
        "POST",
        "/v1/projects/proj_a/destinations:validate",
        Some(hook_definition(&receiver)),
    );
    assert_eq!((s, &body["valid"]), (200, &json!(true)), "{body}");
    let (s, body) = c.admin(
        "PUT",
        &format!("{base}/hook-2"),
        Some(json!({"type": "file", "path": "/etc/x"})),
    );
    assert_eq!(s, 422, "{body}");
    assert_eq!(error_pointers(&body), ["/type"]);
    let (s, body) = c.admin(
        "PUT",
        &format!("{base}/hook-2"),
        Some(json!({"type": "webhook", "url": "http://127.0.0.1:1/", "bogus": 1})),
    );
    assert_eq!(s, 422, "{body}");
    assert_eq!(error_pointers(&body), ["/bogus"], "{body}");
    let (s, body) = call(
        c.addr,
        "PUT",
        &format!("{base}/hook-2"),
        Some(ADMIN),
        Some("{not json"),
    );
    assert_eq!(s, 400, "{body}");
    assert_error_shape(s, &body);
    // Nothing was created by the failed attempts.
    assert_eq!(c.admin("GET", &format!("{base}/hook-2"), None).0, 404);

    // Create: 201, secrets masked.
    let (s, body) = c.call(
        "PUT",
        &format!("{base}/hook-2"),
        Some(PROJ_A),
        Some(hook_definition(&receiver)),
    );
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["managed_by"], "api");
    assert_eq!(body["secret"], "****LaSw");
    assert_eq!(body["headers"]["X-Api-Auth"], "****e-42");
    let (s, read) = c.admin("GET", &format!("{base}/hook-2"), None);
    assert_eq!(s, 200);
    assert_eq!(read, body);
    // Sending back what was read keeps the secrets (the receiver checks the signature).
    let (s, again) = c.admin("PUT", &format!("{base}/hook-2"), Some(read));
    assert_eq!(s, 200, "{again}");

    // Events of proj_a consumed once it runs reach it (and the file's destination).
    wait(
        "the new destination runs",
        Duration::from_secs(5),
        &courier,
        || c.admin("GET", &format!("{base}/hook-2/status"), None).1["running"] == true,
    );
    produce(
        &brokers,
        TOPIC,
        (0..5).map(|i| (Some(i % 2), event("proj_a", i as usize))),
    );
    wait(
        "5 events at the API destination",
        Duration::from_secs(30),
        &courier,
        || receiver.event_count() >= 5,
    );
    wait(
        "5 events at the file destination",
        Duration::from_secs(30),
        &courier,
        || file_receiver.event_count() >= 5,
    );
    assert!(
        receiver.violations().is_empty(),
        "{:?}",
        receiver.violations()
    );

    // Test: one synthetic event, the destination's answer as classified.
    let before = receiver.event_count();
    let (s, body) = c.admin("POST", &format!("{base}/hook-2/test"), None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["outcome"], "delivered", "{body}");
    assert!(body["latency_ms"].is_u64());
    assert_eq!(receiver.event_count(), before + 1);
    receiver.set_behaviour(Behaviour::Always(403));
    let (s, body) = c.admin("POST", &format!("{base}/hook-2/test"), None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["outcome"], "rejected", "{body}");
    assert_eq!(body["http_status"], 403, "{body}");
    receiver.set_behaviour(Behaviour::Ok);

    // Status.
    let (s, body) = c.admin("GET", &format!("{base}/hook-2/status"), None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["enabled"], true);
    assert_eq!(body["running"], true);
    assert_eq!(body["circuit"], "closed");
    assert!(body["events"]["delivered"].as_u64().unwrap() >= 5, "{body}");
    assert!(body["last_success_at"].is_string(), "{body}");

    // Pause and enable.
    let (s, body) = c.admin("POST", &format!("{base}/hook-2/pause"), None);
    assert_eq!((s, &body["enabled"]), (200, &json!(false)), "{body}");
    wait(
        "paused destination stops running",
        Duration::from_secs(5),
        &courier,
        || c.admin("GET", &format!("{base}/hook-2/status"), None).1["running"] == false,
    );
    let paused_at = receiver.event_count();
    produce(
        &brokers,
        TOPIC,
        (0..3).map(|i| (Some(i % 2), event("proj_a", 100 + i as usize))),
    );
    wait(
        "3 more at the file destination",
        Duration::from_secs(30),
        &courier,
        || file_receiver.event_count() >= 8,
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        receiver.event_count(),
        paused_at,
        "a paused destination receives nothing"
    );
    assert_eq!(
        c.admin("POST", &format!("{base}/hook-2/enable"), None).0,
        200
    );
    wait(
        "enabled destination runs",
        Duration::from_secs(5),
        &courier,
        || c.admin("GET", &format!("{base}/hook-2/status"), None).1["running"] == true,
    );

    // Delete: 204, then 404.
    assert_eq!(c.admin("DELETE", &format!("{base}/hook-2"), None).0, 204);
    assert_eq!(c.admin("GET", &format!("{base}/hook-2"), None).0, 404);
    assert_eq!(c.admin("DELETE", &format!("{base}/hook-2"), None).0, 404);
    let (s, body) = c.admin("GET", &format!("{base}/hook-2/status"), None);
    assert_eq!(s, 404);
    assert_error_shape(s, &body);

    // The OpenAPI document is served.
    let (s, doc) = c.call("GET", "/v1/openapi.json", None, None);
    assert_eq!(s, 200);
    assert!(doc["paths"]["/v1/projects/{project}/destinations:validate"]["post"].is_object());

    // Secrets never appear in an answer, a log line or the store topic's bytes.
    let secrets = [
        HOOK_SECRET,
        HEADER_SECRET,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "header-secret-value-42",
    ];
    c.assert_no_secret(&secrets);
    let log = std::fs::read_to_string(courier.log_path()).unwrap();
    let topic_bytes: Vec<u8> = read_all(&brokers, STORE, Duration::from_secs(2))
        .into_iter()
        .flat_map(|(_, _, v)| v)
        .collect();
    assert!(
        !topic_bytes.is_empty(),
        "the store topic holds the definitions"
    );
    let topic_text = String::from_utf8_lossy(&topic_bytes);
    for s in secrets {
        assert!(!log.contains(s), "secret {s:?} in the log");
        assert!(!topic_text.contains(s), "secret {s:?} in the store topic");
    }
}

#[test]
fn two_replicas_share_destinations_through_the_store() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 4);
    create_topic(&brokers, "courier-failures", 1);
    let receiver = WebhookReceiver::start(ReceiverConfig::default());
    let cfg = config(&brokers, 2);
    let a = Courier::start_ready(&cfg);
    let b = Courier::start_ready(&cfg);
    let (ca, cb) = (Client::new(&a), Client::new(&b));
    let path = "/v1/projects/proj_a/destinations/shared";

    // Created on A: B knows it within a second, and the events (read by either) arrive.
    let (s, body) = ca.admin(
        "PUT",
        path,
        Some(json!({ "type": "webhook", "url": receiver.url(), "headers": { "X-Test": "yes" } })),
    );
    assert_eq!(s, 201, "{body}");
    let created = Instant::now();
    wait("B sees the destination", Duration::from_secs(5), &b, || {
        cb.admin("GET", path, None).0 == 200
    });
    assert!(
        created.elapsed() < Duration::from_secs(1),
        "B applied it after {:?}",
        created.elapsed()
    );
    wait("B runs it", Duration::from_secs(2), &b, || {
        cb.admin("GET", &format!("{path}/status"), None).1["running"] == true
    });
    produce(
        &brokers,
        TOPIC,
        (0..20).map(|i| (Some(i % 4), event("proj_a", i as usize))),
    );
    wait("20 events delivered", Duration::from_secs(30), &a, || {
        receiver.event_count() >= 20
    });

    // Deleted on B: neither replica delivers what comes next.
    assert_eq!(cb.admin("DELETE", path, None).0, 204);
    wait(
        "A forgets the destination",
        Duration::from_secs(5),
        &a,
        || ca.admin("GET", path, None).0 == 404,
    );
    wait("A stops running it", Duration::from_secs(2), &a, || {
        ca.admin("GET", &format!("{path}/status"), None).0 == 404
    });
    std::thread::sleep(Duration::from_millis(300));
    let delivered = receiver.event_count();
    produce(
        &brokers,
        TOPIC,
        (0..20).map(|i| (Some(i % 4), event("proj_a", 100 + i as usize))),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        receiver.event_count(),
        delivered,
        "a deleted destination receives nothing"
    );
}

#[test]
fn start_up_fails_clearly_with_the_wrong_key() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 1);
    create_topic(&brokers, "courier-failures", 1);
    let mut first = Courier::start_ready(&config(&brokers, 3));
    let c = Client::new(&first);
    let (s, body) = c.admin(
        "PUT",
        "/v1/projects/proj_a/destinations/dd",
        Some(json!({ "type": "datadog", "api_key": "dd-api-key-0123456789", "endpoint": "http://127.0.0.1:9" })),
    );
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["api_key"], "****6789");
    first.terminate(Duration::from_secs(30));

    let second = Courier::start(&config(&brokers, 4));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = second.exited() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "courier started with the wrong key\n{}",
            second.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let log = std::fs::read_to_string(second.log_path()).unwrap();
    assert!(log.contains("destination proj_a/dd"), "{log}");
    assert!(log.contains("wrong encryption key"), "{log}");
    assert!(!log.contains("dd-api-key-0123456789"), "{log}");

    // The right key reads it back.
    let third = Courier::start_ready(&config(&brokers, 3));
    let (s, body) = Client::new(&third).admin("GET", "/v1/projects/proj_a/destinations/dd", None);
    assert_eq!((s, &body["api_key"]), (200, &json!("****6789")), "{body}");
}

#[test]
fn replay_failures_runs_as_a_job_the_api_reports_on() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 4);
    create_topic(&brokers, "courier-failures", 1);
    // 400 is a permanent rejection: every batch ends in a failure event at once.
    let receiver = WebhookReceiver::start(ReceiverConfig::default());
    receiver.set_behaviour(Behaviour::Always(400));
    let courier = Courier::start_ready(&config(&brokers, 4));
    let client = Client::new(&courier);
    let path = "/v1/projects/proj_a/destinations/flaky";
    let definition = json!({ "type": "webhook", "url": receiver.url(),
        "headers": { "X-Test": "yes" }, "delivery": { "batch_timeout": "50ms" } });
    assert_eq!(client.admin("PUT", path, Some(definition.clone())).0, 201);
    wait(
        "the destination runs",
        Duration::from_secs(5),
        &courier,
        || client.admin("GET", &format!("{path}/status"), None).1["running"] == true,
    );
    let events: Vec<Vec<u8>> = (0..30).map(|i| event("proj_a", i)).collect();
    produce_spread(&brokers, TOPIC, 4, events.iter().cloned());
    wait(
        "30 events failed",
        Duration::from_secs(30),
        &courier,
        || client.admin("GET", &format!("{path}/status"), None).1["events"]["failed"] == 30,
    );
    assert_eq!(receiver.event_count(), 0);

    // Bad requests: the common error shape, a pointer per problem.
    let replay = format!("{path}/replay-failures");
    let (s, body) = client.admin("POST", &replay, Some(json!({ "from": 5, "rate": -1 })));
    assert_eq!(s, 422, "{body}");
    assert_error_shape(s, &body);
    let mut pointers = error_pointers(&body);
    pointers.sort();
    assert_eq!(pointers, ["/from", "/rate"]);
    let (s, body) = client.admin("POST", &replay, Some(json!({ "from": "12" })));
    assert_eq!((s, error_pointers(&body)), (422, vec!["/from".to_owned()]));
    let (s, body) = client.call("POST", &replay, None, Some(json!({ "from": "10m" })));
    assert_eq!(s, 401, "{body}");
    let (s, body) = client.admin(
        "POST",
        "/v1/projects/proj_a/destinations/nope/replay-failures",
        Some(json!({ "from": "10m" })),
    );
    assert_eq!(s, 404, "{body}");
    assert_error_shape(s, &body);

    // The destination recovers; the replay re-delivers exactly the failed events.
    receiver.set_behaviour(Behaviour::Ok);
    let (s, job) = client.call(
        "POST",
        &replay,
        Some(PROJ_A),
        Some(json!({ "from": "10m" })),
    );
    assert_eq!(s, 202, "{job}");
    assert_eq!(job["kind"], "replay_failures");
    assert_eq!(job["destination"], "flaky");
    let id = job["id"].as_str().expect("a job id").to_owned();
    let job_path = format!("/v1/jobs/{id}");
    let mut last = Value::Null;
    wait("the job ends", Duration::from_secs(60), &courier, || {
        let (s, body) = client.call("GET", &job_path, Some(PROJ_A), None);
        assert_eq!(s, 200, "{body}");
        last = body;
        last["state"] != "running"
    });
    assert_eq!(last["state"], "completed", "{last}");
    assert_eq!(last["phase"], "done", "{last}");
    assert_eq!(
        last["events"]["routed"],
        30,
        "{last}\n{}",
        courier.log_tail()
    );
    assert_eq!(
        last["events"]["delivered"],
        30,
        "{last}\n{:?}",
        receiver.violations()
    );
    assert_eq!(last["events"]["failed"], 0, "{last}");
    assert_eq!(
        last["progress"]["read"], last["progress"]["total"],
        "{last}"
    );
    assert!(last["progress"]["read"].as_u64().unwrap() >= 30, "{last}");
    let mut got = receiver.events();
    got.sort();
    let mut want = events.clone();
    want.sort();
    assert_eq!(got, want, "every failed event, byte for byte, exactly once");
    assert!(
        receiver.violations().is_empty(),
        "{:?}",
        receiver.violations()
    );

    // Jobs answer only to tokens allowed on their project; unknown ids are 404.
    assert_eq!(
        client
            .admin(
                "PUT",
                "/v1/projects/proj_b/destinations/other",
                Some(definition)
            )
            .0,
        201
    );
    let (s, other) = client.admin(
        "POST",
        "/v1/projects/proj_b/destinations/other/replay-failures",
        Some(json!({ "from": "10m", "dry_run": true })),
    );
    assert_eq!(s, 202, "{other}");
    let other_path = format!("/v1/jobs/{}", other["id"].as_str().unwrap());
    assert_eq!(client.call("GET", &other_path, Some(PROJ_A), None).0, 403);
    assert_eq!(client.admin("GET", &other_path, None).0, 200);
    let (s, body) = client.admin("GET", "/v1/jobs/job_unknown", None);
    assert_eq!(s, 404, "{body}");
    assert_error_shape(s, &body);
}

/// A courier with the API, a receiver expecting [`hook_definition`]'s secrets, and a second
/// receiver ("elsewhere").
struct Hostile {
    _tansu: Tansu,
    courier: Courier,
    receiver: WebhookReceiver,
    elsewhere: WebhookReceiver,
}

impl Hostile {
    const BASE: &'static str = "/v1/projects/proj_a/destinations";

    fn start() -> Hostile {
        let tansu = Tansu::start();
        let brokers = tansu.brokers();
        create_topic(&brokers, TOPIC, 1);
        create_topic(&brokers, "courier-failures", 1);
        let receiver = WebhookReceiver::start(ReceiverConfig {
            secret: Some(HOOK_SECRET.into()),
            headers: vec![("X-Api-Auth".into(), HEADER_SECRET.into())],
            ..ReceiverConfig::default()
        });
        let elsewhere = WebhookReceiver::start(ReceiverConfig::default());
        let courier = Courier::start_ready(&config(&brokers, 5));
        Hostile {
            _tansu: tansu,
            courier,
            receiver,
            elsewhere,
        }
    }

    /// A call with the project-scoped token, as a tenant makes it.
    fn tenant(&self, c: &Client, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        c.call(method, &format!("{}{path}", Self::BASE), Some(PROJ_A), body)
    }

    /// The process is still there and still answers.
    fn assert_alive(&self, c: &Client) {
        assert!(
            self.courier.exited().is_none(),
            "{}",
            self.courier.log_tail()
        );
        assert_eq!(self.tenant(c, "GET", "", None).0, 200);
        assert_eq!(http_get(self.courier.listen(), "/healthz").unwrap().0, 200);
    }
}

/// Issue 12 item 1: numbers and durations past their bounds are 422 naming the key. Before,
/// the PUT with `queue_max_events = 2^61` answered 201, the lane's semaphore panicked and the
/// process exited with 101 (and again at every restart, replaying the stored definition).
#[test]
fn settings_past_their_bounds_are_refused_and_the_process_keeps_running() {
    let h = Hostile::start();
    let c = Client::new(&h.courier);
    for (delivery, pointer) in [
        (
            json!({ "queue_max_events": 2305843009213693952u64 }),
            "/delivery/queue_max_events",
        ),
        (
            json!({ "max_in_flight": 2305843009213693952u64 }),
            "/delivery/max_in_flight",
        ),
        (
            json!({ "retry_max_elapsed": "300000000000years" }),
            "/delivery/retry_max_elapsed",
        ),
        (
            json!({ "batch_timeout": "300000000000years" }),
            "/delivery/batch_timeout",
        ),
        (
            json!({ "retry_schedule": ["1m", "300000000000years"] }),
            "/delivery/retry_schedule/1",
        ),
    ] {
        let definition =
            json!({ "type": "webhook", "url": h.receiver.url(), "delivery": delivery });
        let (s, body) = h.tenant(&c, "PUT", "/huge", Some(definition.clone()));
        assert_eq!(s, 422, "{body}");
        assert_eq!(error_pointers(&body), [pointer], "{body}");
        let (s, body) = c.call(
            "POST",
            "/v1/projects/proj_a/destinations:validate",
            Some(PROJ_A),
            Some(definition),
        );
        assert_eq!((s, error_pointers(&body)), (422, vec![pointer.to_owned()]));
    }
    let (s, body) = h.tenant(
        &c,
        "PUT",
        "/splunk",
        Some(
            json!({ "type": "splunk_hec", "endpoint": h.receiver.url(), "token": "hec-token",
            "ack_timeout": "300000000000years" }),
        ),
    );
    assert_eq!(
        (s, error_pointers(&body)),
        (422, vec!["/ack_timeout".to_owned()]),
        "{body}"
    );
    assert_eq!(h.tenant(&c, "GET", "/huge", None).0, 404);
    // At the bound: accepted, and it runs.
    let (s, body) = h.tenant(
        &c,
        "PUT",
        "/huge",
        Some(json!({ "type": "webhook", "url": h.receiver.url(),
            "delivery": { "queue_max_events": 1_000_000, "max_in_flight": 256 } })),
    );
    assert_eq!(s, 201, "{body}");
    wait("it runs", Duration::from_secs(10), &h.courier, || {
        h.tenant(&c, "GET", "/huge/status", None).1["running"] == true
    });
    h.assert_alive(&c);
}

/// Issue 12 item 5: `tls.ca_file` is refused without being looked at. The answer is the same
/// for a device that never ends (before: courier read it, 17 MiB → 2 GiB in 1.2 s), a file
/// that exists and one that does not (before: the error text told which).
#[test]
fn a_host_file_in_a_definition_is_refused_without_being_looked_at() {
    let h = Hostile::start();
    let c = Client::new(&h.courier);
    let answers: Vec<Value> =
        [
            "/dev/zero".to_owned(),
            h.courier.config_path().display().to_string(),
            "/nonexistent/ca.pem".to_owned(),
        ]
        .iter()
        .map(|path| {
            let (s, body) = h.tenant(
            &c,
            "PUT",
            "/splunk",
            Some(json!({ "type": "splunk_hec", "endpoint": h.receiver.url(), "token": "hec-token",
                "tls": { "ca_file": path } })),
        );
            assert_eq!(s, 422, "{path}: {body}");
            assert_eq!(error_pointers(&body), ["/tls/ca_file"], "{path}: {body}");
            body
        })
        .collect();
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
    h.assert_alive(&c);
}

/// Issue 12 item 10: a type error does not hide the refused address (before: only `/format`).
#[test]
fn a_type_error_does_not_hide_a_refused_address() {
    let h = Hostile::start();
    let c = Client::new(&h.courier);
    let (s, body) = h.tenant(
        &c,
        "PUT",
        "/hook",
        Some(
            json!({ "type": "webhook", "url": "http://169.254.169.254/latest/meta-data",
            "format": "xml" }),
        ),
    );
    assert_eq!(s, 422, "{body}");
    assert_eq!(error_pointers(&body), ["/format", "/url"], "{body}");
}

/// Issue 12 item 7: a PUT that sends the masks back but changes the URL is refused, naming
/// each secret (before: the stored secrets went to the new host).
#[test]
fn masked_secrets_stay_where_they_were_sent() {
    let h = Hostile::start();
    let c = Client::new(&h.courier);
    let (s, created) = h.tenant(&c, "PUT", "/hook", Some(hook_definition(&h.receiver)));
    assert_eq!(s, 201, "{created}");
    let mut redirected = created.clone();
    redirected["url"] = json!(h.elsewhere.url());
    let (s, body) = h.tenant(&c, "PUT", "/hook", Some(redirected));
    assert_eq!(s, 422, "{body}");
    assert_eq!(
        error_pointers(&body),
        ["/secret", "/headers/X-Api-Auth"],
        "{body}"
    );
    assert_eq!(
        h.tenant(&c, "GET", "/hook", None).1["url"],
        json!(h.receiver.url()),
        "nothing changed"
    );
    // The same place: the masks keep the secrets (the receiver checks signature and header).
    let (s, body) = h.tenant(&c, "PUT", "/hook", Some(created));
    assert_eq!(s, 200, "{body}");
    wait(
        "the destination runs",
        Duration::from_secs(10),
        &h.courier,
        || h.tenant(&c, "GET", "/hook/status", None).1["running"] == true,
    );
    let (s, body) = h.tenant(&c, "POST", "/hook/test", None);
    assert_eq!((s, &body["outcome"]), (200, &json!("delivered")), "{body}");
    assert!(
        h.receiver.violations().is_empty(),
        "{:?}",
        h.receiver.violations()
    );
    // A new place with the secrets given again.
    let mut moved = hook_definition(&h.receiver);
    moved["url"] = json!(h.elsewhere.url());
    let (s, body) = h.tenant(&c, "PUT", "/hook", Some(moved));
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        h.tenant(&c, "GET", "/hook", None).1["url"],
        json!(h.elsewhere.url())
    );
    h.assert_alive(&c);
    c.assert_no_secret(&[HOOK_SECRET, HEADER_SECRET]);
}

/// A tenant cannot make courier run destinations without end: each costs a lane, an HTTP
/// client and a queue on every replica.
#[test]
fn a_project_has_at_most_100_api_destinations() {
    let h = Hostile::start();
    let c = Client::new(&h.courier);
    let hook = json!({ "type": "webhook", "url": h.receiver.url() });
    for i in 0..100 {
        let (s, body) = h.tenant(&c, "PUT", &format!("/d-{i}"), Some(hook.clone()));
        assert_eq!(s, 201, "{i}: {body}");
    }
    let (s, body) = h.tenant(&c, "PUT", "/d-100", Some(hook.clone()));
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"]["code"], "too_many_destinations", "{body}");
    // Replacing one is not creating one.
    let (s, body) = h.tenant(&c, "PUT", "/d-7", Some(hook.clone()));
    assert_eq!(s, 200, "{body}");
    // Other projects have their own room; a deleted destination makes room.
    let (s, body) = c.admin(
        "PUT",
        "/v1/projects/proj_b/destinations/d-0",
        Some(hook.clone()),
    );
    assert_eq!(s, 201, "{body}");
    assert_eq!(h.tenant(&c, "DELETE", "/d-0", None).0, 204);
    let (s, body) = h.tenant(&c, "PUT", "/d-100", Some(hook));
    assert_eq!(s, 201, "{body}");
    h.assert_alive(&c);
}
