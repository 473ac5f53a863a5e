//! End-to-end shaping: the compiled `courier` binary against tansu (one broker per test,
//! records produced one per batch, TESTING.md quirk 2; no broker fault is injected).
//!
//! Redaction and field selection are checked in the bytes each sink sends — a webhook
//! receiver, the Datadog and Splunk HEC fakes of `tests/common/fakes/`, S3 objects (moto), the
//! records an OTLP receiver decoded with the official protobuf definitions — with the operator's
//! `[redact]` in force for every destination, including one created through the API that tries
//! to keep what the operator redacts. Sampling is checked over two runs of the same topic by
//! two consumer groups: the same event ids are kept, and they are the ids the hash selects.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use base64::Engine as _;
use common::fakes::datadog::FakeDatadog;
use common::fakes::splunk::{FakeSplunk, HecSetup};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const TOPIC: &str = "event-logs";
const PROJECT: &str = "proj_a";
const CATCH_UP: Duration = Duration::from_secs(60);
const DD_KEY: &str = "dd-shaping-key-7c1d";
const HEC_TOKEN: &str = "0a1b2c3d-1b2c-4d5e-8f90-a1b2c3d4e5f6";
const FILE_HMAC_KEY: &str = "file-hmac-key-0123456789";
const API_HMAC_KEY: &str = "tenant-hmac-key-0123456789";
const ADMIN: &str = "admin-token-shaping-0123456789";
const KEY_ENV: &str = "COURIER_SHAPING_TEST_KEY";

fn hmac_hex(key: &str, value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(value.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn broker() -> Tansu {
    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), TOPIC, 2);
    create_topic(&tansu.brokers(), "courier-failures", 1);
    tansu
}

/// Event `i`: personal data in `payload` (a password at two depths, an e-mail address, a
/// name, a note), a level that cycles through DEBUG, INFO, WARN.
fn event(run: &str, i: usize) -> Value {
    let level = ["DEBUG", "INFO", "INFO", "WARN"][i % 4];
    json!({
        "id": format!("evt-{run}-{i}"),
        "timestamp": "2026-01-01T00:00:00Z",
        "level": level, "type": "APP_EVENT", "message": format!("event {i}"),
        "projectId": PROJECT, "endUserId": format!("user-{i}"),
        "payload": {
            "password": format!("pw-top-{i}"),
            "fields": {"Email": format!("person{i}@example.com"), "Name": format!("Name {i}")},
            "note": format!("private-note-{i}"),
            "nested": {"deep": {"password": format!("pw-deep-{i}"), "n": i}}
        }
    })
}

fn produce_events(brokers: &str, run: &str, n: usize) -> (Vec<Value>, HashMap<i32, i64>) {
    let events: Vec<Value> = (0..n).map(|i| event(run, i)).collect();
    let positions = produce_spread(
        brokers,
        TOPIC,
        2,
        events.iter().map(|e| e.to_string().into_bytes()),
    );
    (events, end_offsets(&positions))
}

fn wait_committed(brokers: &str, group: &str, ends: &HashMap<i32, i64>, courier: &Courier) {
    wait_explained(
        "committed offsets reach the end of the topic",
        CATCH_UP,
        Duration::from_millis(200),
        || {
            let committed = committed_offsets(brokers, group, TOPIC);
            ends.iter().all(|(p, e)| committed.get(p) == Some(e))
        },
        || courier.log_tail(),
    );
}

/// One call to courier's API with the admin token → (status, body).
fn call(addr: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    api_call(addr, method, path, Some(ADMIN), body.as_deref())
}

/// No password, note or e-mail address of any event appears in `text`.
fn assert_no_secret_values(what: &str, text: &str) {
    for needle in ["pw-top-", "pw-deep-", "private-note-", "@example.com"] {
        assert!(!text.contains(needle), "{what} sent {needle:?}: {text}");
    }
}

/// The operator redacts every password; each destination adds its own rules: the file's
/// webhook hashes e-mail addresses (HMAC) and drops the note, Datadog drops the note and the
/// e-mail address, Splunk keeps only `message` and the name (plus the routing fields), and the
/// API's webhook asks to keep the whole payload — the operator's redaction still applies to
/// it, on the lane and on the test endpoint alike. Every offset completes.
#[test]
fn each_sink_sends_shaped_bytes_and_the_api_cannot_weaken_operator_rules() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    let api_hook = WebhookReceiver::start(ReceiverConfig::default());
    let dd = rt().block_on(FakeDatadog::start(DD_KEY));
    let hec = rt().block_on(FakeSplunk::start(HecSetup {
        allowed_indexes: vec!["courier".into()],
        ..HecSetup::new(HEC_TOKEN)
    }));
    let mut cfg = CourierConfig::new(&brokers)
        .destination(format!(
            "{}redact = [\"payload.fields.Email\"]\ndrop = [\"payload.note\"]\nredact_with = \"hmac\"\nredact_key = \"${{FILE_HMAC}}\"\n",
            hook.destination_toml(PROJECT, "hook")
        ))
        .destination(format!(
            "[[destinations]]\nproject = {}\nid = \"dd\"\ntype = \"datadog\"\nendpoint = {}\napi_key = {}\ndrop = [\"payload.note\", \"payload.*.Email\"]\n",
            toml_str(PROJECT),
            toml_str(&dd.url()),
            toml_str(DD_KEY)
        ))
        .destination(format!(
            "[[destinations]]\nproject = {}\nid = \"hec\"\ntype = \"splunk_hec\"\nendpoint = {}\ntoken = {}\nindex = \"courier\"\nkeep = [\"message\", \"payload.fields.Name\"]\n",
            toml_str(PROJECT),
            toml_str(&hec.url()),
            toml_str(HEC_TOKEN)
        ));
    cfg.extra = format!(
        "\n[redact]\nredact = [\"payload.**.password\"]\n\n[api]\nencryption_key_env = {}\ntokens = [{{ token = {} }}]\n",
        toml_str(KEY_ENV),
        toml_str(ADMIN)
    );
    cfg.env.push((
        KEY_ENV.into(),
        base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
    ));
    cfg.env.push(("FILE_HMAC".into(), FILE_HMAC_KEY.into()));
    let courier = Courier::start_ready(&cfg);

    // The tenant's destination: keeps the whole payload, hashes what it chooses.
    let path = "/v1/projects/proj_a/destinations/api-hook";
    let (s, body) = call(
        courier.listen(),
        "PUT",
        path,
        Some(json!({
            "type": "webhook", "url": api_hook.url(),
            "format": api_hook.config().format.config_name(), "compression": "none",
            "headers": api_hook.config().headers.iter().cloned().collect::<HashMap<_, _>>(),
            "keep": ["message", "payload"], "redact": ["payload.fields.Email", "payload.test"],
            "drop": [], "redact_with": "hmac", "redact_key": API_HMAC_KEY,
        })),
    );
    assert_eq!(s, 201, "{body}");
    let (s, body) = call(courier.listen(), "GET", path, None);
    assert_eq!(s, 200, "{body}");
    assert!(!body.to_string().contains(API_HMAC_KEY), "{body}");
    wait_explained(
        "the API destination runs",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || call(courier.listen(), "GET", &format!("{path}/status"), None).1["running"] == true,
        || courier.log_tail(),
    );

    let n = 40;
    let (events, ends) = produce_events(&brokers, "r", n);
    wait_committed(&brokers, "courier-test", &ends, &courier);
    wait_explained(
        "every destination received every event",
        CATCH_UP,
        Duration::from_millis(100),
        || {
            hook.event_count() >= n
                && api_hook.event_count() >= n
                && dd.logs().len() >= n
                && hec.indexed_raw().len() >= n
        },
        || {
            format!(
                "violations: {:?} {:?}\n{}",
                hook.violations(),
                api_hook.violations(),
                courier.log_tail()
            )
        },
    );
    let by_id: HashMap<String, &Value> = events
        .iter()
        .map(|e| (e["id"].as_str().unwrap().to_owned(), e))
        .collect();
    let original = |got: &Value| -> Value { (*by_id[got["id"].as_str().unwrap()]).clone() };

    // Webhook (file): e-mail hashed with the file's key, note dropped, passwords redacted.
    for bytes in hook.events() {
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_no_secret_values("the webhook", &text);
        let got: Value = serde_json::from_slice(&bytes).unwrap();
        let mut expected = original(&got);
        let email = expected["payload"]["fields"]["Email"]
            .as_str()
            .unwrap()
            .to_owned();
        expected["payload"]["fields"]["Email"] = json!(hmac_hex(FILE_HMAC_KEY, &email));
        expected["payload"].as_object_mut().unwrap().remove("note");
        expected["payload"]["password"] = json!("[REDACTED]");
        expected["payload"]["nested"]["deep"]["password"] = json!("[REDACTED]");
        assert_eq!(got, expected);
    }

    // Datadog: the log attributes are the shaped event's fields.
    assert!(dd.violations().is_empty(), "{:?}", dd.violations());
    for log in dd.logs() {
        assert_no_secret_values("Datadog", &log.to_string());
        let expected = original(&log);
        assert_eq!(log["payload"]["password"], "[REDACTED]", "{log}");
        assert_eq!(
            log["payload"]["fields"],
            json!({"Name": expected["payload"]["fields"]["Name"]})
        );
        assert!(log["payload"].get("note").is_none(), "{log}");
        assert_eq!(
            log["payload"]["nested"]["deep"]["n"],
            expected["payload"]["nested"]["deep"]["n"]
        );
    }
    assert_eq!(
        dd.logs()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>(),
        by_id.keys().cloned().collect()
    );

    // Splunk: only what `keep` names, and the routing fields.
    for raw in hec.indexed_raw() {
        let got: Value = serde_json::from_slice(&raw).unwrap();
        let e = original(&got);
        assert_eq!(
            got,
            json!({
                "id": e["id"], "projectId": PROJECT, "timestamp": e["timestamp"],
                "level": e["level"], "type": "APP_EVENT", "message": e["message"],
                "payload": {"fields": {"Name": e["payload"]["fields"]["Name"]}}
            })
        );
    }

    // The API's webhook kept the payload, yet the operator's passwords are redacted.
    for bytes in api_hook.events() {
        let got: Value = serde_json::from_slice(&bytes).unwrap();
        let e = original(&got);
        let email = e["payload"]["fields"]["Email"].as_str().unwrap();
        assert_eq!(got["payload"]["password"], "[REDACTED]", "{got}");
        assert_eq!(
            got["payload"]["nested"]["deep"]["password"], "[REDACTED]",
            "{got}"
        );
        assert_eq!(
            got["payload"]["fields"]["Email"],
            hmac_hex(API_HMAC_KEY, email)
        );
        assert_eq!(
            got["payload"]["note"], e["payload"]["note"],
            "its own choice: kept"
        );
        assert!(
            got.get("endUserId").is_none(),
            "not in its keep list: {got}"
        );
    }

    // The test endpoint shapes its synthetic event too (`payload.test: true`, hashed).
    let before = api_hook.event_count();
    let (s, body) = call(courier.listen(), "POST", &format!("{path}/test"), None);
    assert_eq!(s, 200, "{body}");
    wait_until(
        "the test event arrives",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || api_hook.event_count() > before,
    );
    let test_event: Value = serde_json::from_slice(&api_hook.events()[before]).unwrap();
    assert_eq!(
        test_event["payload"]["test"],
        hmac_hex(API_HMAC_KEY, "true"),
        "{test_event}"
    );
    assert!(!courier.log_tail().contains(API_HMAC_KEY));
}

/// `sample = { DEBUG = 0.2, INFO = 0.5 }` on one webhook, none on another: two runs over the
/// same topic (two consumer groups, two processes) keep exactly the same ids, which are the
/// ones whose id hash falls in the fraction; WARN events are all kept; the unsampled,
/// unshaped destination receives every event's original bytes; sampled-out events are
/// counted and their offsets complete.
#[test]
fn sampling_keeps_the_same_ids_on_every_run() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let n = 400;
    let (events, ends) = produce_events(&brokers, "s", n);
    let expected: BTreeSet<String> = events
        .iter()
        .filter(|e| {
            let id = e["id"].as_str().unwrap();
            match e["level"].as_str().unwrap() {
                "DEBUG" => courier_core::shape::sample::kept_id(id, 0.2),
                "INFO" => courier_core::shape::sample::kept_id(id, 0.5),
                _ => true,
            }
        })
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        expected.len() > n / 3 && expected.len() < n * 3 / 4,
        "{}",
        expected.len()
    );

    let mut runs = Vec::new();
    for group in ["courier-sample-1", "courier-sample-2"] {
        let sampled = WebhookReceiver::start(ReceiverConfig::default());
        let plain = WebhookReceiver::start(ReceiverConfig::default());
        let mut cfg = CourierConfig::new(&brokers)
            .destination(format!(
                "{}sample = {{ DEBUG = 0.2, INFO = 0.5 }}\n",
                sampled.destination_toml(PROJECT, "sampled")
            ))
            .destination(plain.destination_toml(PROJECT, "plain"));
        cfg.group_id = group.into();
        let mut courier = Courier::start_ready(&cfg);
        wait_committed(&brokers, group, &ends, &courier);
        wait_explained(
            "the plain destination received every event",
            CATCH_UP,
            Duration::from_millis(100),
            || plain.event_count() >= n && sampled.event_count() >= expected.len(),
            || courier.log_tail(),
        );
        std::thread::sleep(Duration::from_millis(300));
        let kept: Vec<String> = sampled.events().iter().map(|b| event_id(b)).collect();
        assert_eq!(kept.len(), expected.len(), "each kept event once");
        // The fast path: original bytes, byte for byte.
        assert_eq!(
            multiset(plain.events()),
            multiset(events.iter().map(|e| e.to_string().into_bytes()))
        );
        let out = metric_sum(
            &courier.metrics(),
            "courier_sampled_out_events_total",
            &[("destination_type", "webhook")],
        );
        assert_eq!(out, Some((n - expected.len()) as f64));
        // Sampled-out events gave their place in the in-flight budget back.
        assert_eq!(
            metric_sum(&courier.metrics(), "courier_in_flight_events", &[]),
            Some(0.0)
        );
        courier.terminate(Duration::from_secs(30));
        runs.push(kept.into_iter().collect::<BTreeSet<_>>());
    }
    assert_eq!(runs[0], expected, "the ids the hash selects");
    assert_eq!(runs[1], runs[0], "the same ids on the second run");
}

/// S3 (moto_server in its own process): the objects hold the shaped events — the operator's
/// redaction and the destination's `drop` — one per line, every event once.
#[test]
fn s3_objects_hold_shaped_events() {
    use common::moto::{self, Moto};
    let tansu = broker();
    let brokers = tansu.brokers();
    let moto_server = Moto::start();
    let bucket = "shaped-archive";
    rt().block_on(moto::create_bucket(&moto_server, bucket));
    let mut cfg = CourierConfig::new(&brokers).destination(format!(
        "[[destinations]]\nproject = {}\nid = \"archive\"\ntype = \"s3\"\nbucket = {}\nregion = \"us-east-1\"\nendpoint = {}\nforce_path_style = true\naccess_key_id = \"AKIATEST\"\nsecret_access_key = \"test-secret\"\ncompression = \"none\"\ndrop = [\"payload.note\"]\n[destinations.delivery]\nbatch_timeout = \"200ms\"\n",
        toml_str(PROJECT),
        toml_str(bucket),
        toml_str(&moto_server.endpoint())
    ));
    cfg.extra = "\n[redact]\nredact = [\"payload.**.password\", \"payload.fields.Email\"]\n".into();
    let courier = Courier::start_ready(&cfg);
    let n = 30;
    let (events, ends) = produce_events(&brokers, "o", n);
    wait_committed(&brokers, "courier-test", &ends, &courier);
    let mut lines = Vec::new();
    for (key, _) in rt().block_on(moto::list(&moto_server, bucket)) {
        let object = rt().block_on(moto::get(&moto_server, bucket, &key));
        let text = String::from_utf8(object.body).unwrap();
        assert_no_secret_values("S3", &text);
        lines.extend(text.lines().map(str::to_owned));
    }
    assert_eq!(lines.len(), n, "every event once: {lines:?}");
    let by_id: HashMap<&str, &Value> = events
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e))
        .collect();
    for line in &lines {
        let got: Value = serde_json::from_str(line).unwrap();
        let mut expected = by_id[got["id"].as_str().unwrap()].clone();
        expected["payload"]["password"] = json!("[REDACTED]");
        expected["payload"]["nested"]["deep"]["password"] = json!("[REDACTED]");
        expected["payload"]["fields"]["Email"] = json!("[REDACTED]");
        expected["payload"].as_object_mut().unwrap().remove("note");
        assert_eq!(got, expected);
    }
}

/// The retry worker shapes too: a destination that fails at first gets its batches parked
/// (the retry topic keeps the original events), and what the retry worker delivers later is
/// redacted like what a lane sends.
#[test]
fn parked_batches_are_shaped_when_the_retry_worker_sends_them() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    hook.set_behaviour(Behaviour::Always(503));
    let cfg = CourierConfig::new(&brokers)
        .delivery("retry_max_elapsed", "\"0s\"")
        .delivery("retry_schedule", "[\"1s\"]")
        .delivery("probe_interval", "\"300ms\"")
        .destination(format!(
            "{}redact = [\"payload.**.password\"]\ndrop = [\"payload.note\", \"payload.fields.Email\"]\n",
            hook.destination_toml(PROJECT, "hook")
        ));
    let courier = Courier::start_ready(&cfg);
    let n = 20;
    let (events, _) = produce_events(&brokers, "p", n);
    wait_explained(
        "the failing destination's batches are parked",
        CATCH_UP,
        Duration::from_millis(100),
        || {
            metric_sum(&courier.metrics(), "courier_parked_batches_total", &[])
                .is_some_and(|p| p > 0.0)
        },
        || courier.log_tail(),
    );
    assert_eq!(hook.event_count(), 0);
    hook.set_behaviour(Behaviour::Ok);
    wait_explained(
        "the retry worker delivers every parked event",
        CATCH_UP,
        Duration::from_millis(100),
        || hook.event_count() >= n,
        || courier.log_tail(),
    );
    let by_id: HashMap<&str, &Value> = events
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e))
        .collect();
    let mut seen = BTreeSet::new();
    for bytes in hook.events() {
        let text = String::from_utf8(bytes).unwrap();
        assert_no_secret_values("the retry worker", &text);
        let got: Value = serde_json::from_str(&text).unwrap();
        let mut expected = by_id[got["id"].as_str().unwrap()].clone();
        expected["payload"]["password"] = json!("[REDACTED]");
        expected["payload"]["nested"]["deep"]["password"] = json!("[REDACTED]");
        expected["payload"].as_object_mut().unwrap().remove("note");
        expected["payload"]["fields"]
            .as_object_mut()
            .unwrap()
            .remove("Email");
        assert_eq!(got, expected);
        seen.insert(got["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), n);
}

/// OTLP (`tests/otlp_receiver.py` in its own process, decoding with the official protobuf
/// definitions): the operator's `[redact]` (passwords at any depth) and the destination's
/// `redact` (the message, the e-mail address, the note) are in the records the receiver
/// decoded — the body and the `paragon.payload` attribute hold `[REDACTED]`, never the
/// originals — while the rest of the payload and the mapped attributes are intact; every
/// event arrives once.
#[test]
fn otlp_records_hold_redacted_values() {
    use common::otlp::Receiver;
    let tansu = broker();
    let brokers = tansu.brokers();
    let receiver = Receiver::start("/v1/logs", &[]);
    let mut cfg = CourierConfig::new(&brokers).destination(format!(
        "[[destinations]]\nproject = {}\nid = \"otlp\"\ntype = \"otlp\"\nendpoint = {}\nencoding = \"protobuf\"\nredact = [\"message\", \"payload.fields.Email\", \"payload.note\"]\n",
        toml_str(PROJECT),
        toml_str(&receiver.url())
    ));
    cfg.extra = "\n[redact]\nredact = [\"payload.**.password\"]\n".into();
    let courier = Courier::start_ready(&cfg);
    let n = 30;
    let (events, ends) = produce_events(&brokers, "l", n);
    wait_committed(&brokers, "courier-test", &ends, &courier);
    wait_explained(
        "the receiver accepted every event",
        CATCH_UP,
        Duration::from_millis(100),
        || receiver.accepted().len() >= n,
        || courier.log_tail(),
    );
    assert!(
        receiver.violations().is_empty(),
        "{:?}",
        receiver.violations()
    );
    let records = receiver.accepted();
    let by_id: HashMap<&str, &Value> = events
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e))
        .collect();
    let mut seen = BTreeSet::new();
    for record in &records {
        assert_no_secret_values("OTLP", &record.to_string());
        let id = record["attributes"]["log.record.uid"]
            .as_str()
            .expect("log.record.uid");
        assert!(seen.insert(id.to_owned()), "event {id} received twice");
        let e = by_id[id];
        assert_eq!(record["body"], "[REDACTED]", "{record}");
        assert_eq!(
            record["attributes"]["enduser.id"], e["endUserId"],
            "{record}"
        );
        assert_eq!(
            record["attributes"]["paragon.payload"],
            json!({
                "password": "[REDACTED]",
                "fields": {"Email": "[REDACTED]", "Name": e["payload"]["fields"]["Name"]},
                "note": "[REDACTED]",
                "nested": {"deep": {"password": "[REDACTED]", "n": e["payload"]["nested"]["deep"]["n"]}}
            }),
            "{record}"
        );
    }
    assert_eq!(seen.len(), n, "every event once");
}
