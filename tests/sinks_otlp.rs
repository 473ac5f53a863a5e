//! The `otlp` sink against an OTLP/HTTP logs receiver in its own process
//! (`tests/otlp_receiver.py`), which decodes every request with the OpenTelemetry project's
//! official protobuf definitions (Python `opentelemetry-proto`), enforces the specification
//! (content type, gzip, the OTLP/JSON mapping, required fields, severity, 16-byte trace ids)
//! and answers partial successes, 429 with Retry-After, 503 storms and 413 on purpose.
//!
//! First the sink through the `Sink` trait (mapping, both encodings, vendor presets, every
//! outcome); then end to end: the compiled binary against tansu delivers exactly the routed
//! events, each once, with the mapping; `courier test-destination` and the API's test endpoint
//! reach the receiver through the common probe.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::otlp::Receiver;
use common::*;
use courier::config::{DeliveryConfig, SecurityConfig};
use courier::event::Event;
use courier::sinks::otlp::{OtlpConfig, OtlpSink};
use courier::sinks::{Outcome, RejectScope, Sink};
use serde_json::{json, Value};

const KEY: &str = "nr-license-key-0123456789abcdef";

fn sink(receiver: &Receiver, extra: Value) -> OtlpSink {
    let mut config = json!({ "endpoint": receiver.url(), "headers": { "api-key": KEY } });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        config[k] = v;
    }
    let config: OtlpConfig = serde_json::from_value(config).expect("config");
    config.validate().expect("valid config");
    // The receiver listens on 127.0.0.1: allow loopback past the SSRF guard.
    OtlpSink::new(
        &config,
        &DeliveryConfig::default(),
        &SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap(),
    )
    .expect("sink")
}

async fn deliver(sink: &OtlpSink, events: &[Event]) -> Outcome {
    let batch = sink.encode(events).expect("encode");
    sink.send(events, &batch).await
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    rt().block_on(f)
}

/// Ordinary generated events of one project, with a valid hex `traceId` on every other one and
/// a non-hex one on every fifth (the generator's own trace ids are kept otherwise).
fn events(n: usize, seed: u64) -> Vec<Event> {
    let mut gen = generator(seed, 1);
    ordinary_events(&mut gen, n, &["proj_0001"])
        .into_iter()
        .enumerate()
        .map(|(i, (_, bytes))| {
            let mut v: Value = serde_json::from_slice(&bytes).unwrap();
            if i % 5 == 0 {
                v["traceId"] = json!(format!("not-a-trace-{i}"));
            } else if i % 2 == 0 {
                v["traceId"] = json!(format!("{:032x}", 0xabc0_0000_u64 + i as u64));
            }
            sink_event(v.to_string().into_bytes(), 0, i as i64)
        })
        .collect()
}

/// Checks one received record against the Event Log it came from, by the mapping of
/// docs/sinks.md; `service` is the expected `service.name`.
fn assert_mapped(record: &Value, event: &Value, service: &str) {
    let ctx = format!("record {record}\nevent {event}");
    assert_eq!(record["resource"]["service.name"], service, "{ctx}");
    assert_eq!(
        record["resource"]["paragon.project.id"], event["projectId"],
        "{ctx}"
    );
    assert_eq!(record["scope"], "courier", "{ctx}");
    assert_eq!(record["body"], event["message"], "{ctx}");
    let level = event["level"].as_str().unwrap();
    let number = match level {
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" => 13,
        "ERROR" => 17,
        other => panic!("level {other}"),
    };
    assert_eq!(record["severity_number"], number, "{ctx}");
    assert_eq!(record["severity_text"], level, "{ctx}");
    let time = chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap()).unwrap();
    assert_eq!(
        record["time_unix_nano"].as_u64(),
        time.timestamp_nanos_opt().map(|n| n as u64),
        "{ctx}"
    );
    assert!(record["observed_time_unix_nano"].as_u64().unwrap() > 0);
    let attributes = record["attributes"].as_object().unwrap();
    let trace = event["traceId"].as_str();
    let valid_trace = trace.filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()));
    match (trace, valid_trace) {
        (_, Some(t)) => {
            assert_eq!(record["trace_id"], t.to_ascii_lowercase(), "{ctx}");
            assert!(!attributes.contains_key("paragon.traceId"), "{ctx}");
        }
        (Some(t), None) => {
            assert_eq!(record["trace_id"], "", "{ctx}");
            assert_eq!(attributes["paragon.traceId"], t, "{ctx}");
        }
        (None, None) => assert_eq!(record["trace_id"], "", "{ctx}"),
    }
    // Every other member is an attribute, under its semantic-convention name or paragon.*,
    // with its value (payload as a nested map); nothing else is.
    let mut expected = serde_json::Map::new();
    for (key, value) in event.as_object().unwrap() {
        let name = match key.as_str() {
            "timestamp" | "level" | "message" | "projectId" => continue,
            "traceId" if valid_trace.is_some() => continue,
            "endUserId" => "enduser.id".to_owned(),
            "eventName" => "event.name".to_owned(),
            "id" => "log.record.uid".to_owned(),
            other => format!("paragon.{other}"),
        };
        expected.insert(name, value.clone());
    }
    assert_eq!(attributes, &expected, "{ctx}");
}

fn check_all(receiver: &Receiver, events: &[Event], service: &str) {
    assert!(
        receiver.violations().is_empty(),
        "{:?}",
        receiver.violations()
    );
    let records = receiver.accepted();
    assert_eq!(records.len(), events.len());
    for (record, e) in records.iter().zip(events) {
        let event: Value = serde_json::from_slice(&e.raw).unwrap();
        assert_mapped(record, &event, service);
    }
}

fn class(o: &Outcome) -> &'static str {
    match o {
        Outcome::Delivered => "delivered",
        Outcome::Retry { .. } => "retry",
        Outcome::Rejected {
            scope: RejectScope::Data,
            ..
        } => "rejected",
        Outcome::Rejected {
            scope: RejectScope::Destination,
            ..
        } => "destination",
        Outcome::Partial(_) => "partial",
    }
}

fn error_message(o: &Outcome) -> String {
    match o {
        Outcome::Retry { error, .. } | Outcome::Rejected { error, .. } => error.message.clone(),
        other => panic!("no error in {other:?}"),
    }
}

#[test]
fn protobuf_gzip_records_decode_with_the_official_definitions() {
    let receiver = Receiver::start("/v1/logs", &[("api-key", KEY)]);
    let sink = sink(&receiver, json!({}));
    let events = events(60, 3);
    assert_eq!(block(deliver(&sink, &events)), Outcome::Delivered);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["path"], "/v1/logs");
    assert_eq!(requests[0]["encoding"], "protobuf");
    assert_eq!(requests[0]["gzip"], true);
    assert_eq!(
        requests[0]["headers"]["content-type"],
        "application/x-protobuf"
    );
    check_all(&receiver, &events, "paragon");
    // The events had both kinds of trace ids, and payloads.
    let records = receiver.accepted();
    assert!(records.iter().any(|r| r["trace_id"] != ""));
    assert!(records
        .iter()
        .any(|r| r["attributes"]["paragon.traceId"].is_string()));
    assert!(records
        .iter()
        .any(|r| r["attributes"]["paragon.payload"].is_object()));
}

#[test]
fn json_encoding_follows_the_otlp_json_mapping() {
    let receiver = Receiver::start("/v1/logs", &[("api-key", KEY)]);
    let sink = sink(
        &receiver,
        json!({ "encoding": "json", "compression": "none", "service_name": "paragon-eu",
                "resource_attributes": { "deployment.environment": "e2e" } }),
    );
    let events = events(40, 4);
    assert_eq!(block(deliver(&sink, &events)), Outcome::Delivered);
    let requests = receiver.requests();
    assert_eq!(requests[0]["encoding"], "json");
    assert_eq!(requests[0]["gzip"], false);
    assert_eq!(requests[0]["headers"]["content-type"], "application/json");
    check_all(&receiver, &events, "paragon-eu");
    assert_eq!(
        receiver.accepted()[0]["resource"]["deployment.environment"],
        "e2e"
    );
}

/// The presets of docs/sinks.md, each against a receiver that requires its vendor's documented
/// header and path; the same destination with a wrong key is refused as a destination-level
/// problem, and `check` (an empty export request) says so before any event is sent.
#[test]
fn vendor_presets_send_their_documented_header_and_path() {
    let grafana_auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "123456:glc_token-0123456789"
        )
    );
    let presets: [(&str, &str, &str, String, Value); 4] = [
        (
            "New Relic",
            "/v1/logs",
            "api-key",
            KEY.to_owned(),
            json!({}),
        ),
        (
            "Honeycomb",
            "/v1/logs",
            "x-honeycomb-team",
            "hcaik_0123456789abcdef".to_owned(),
            json!({}),
        ),
        (
            "Grafana Cloud",
            "/otlp/v1/logs",
            "authorization",
            grafana_auth,
            json!({}),
        ),
        (
            "Datadog",
            "/v1/logs",
            "dd-api-key",
            "dd0123456789abcdef0123456789abcd".to_owned(),
            json!({ "dd-protocol": "otlp" }),
        ),
    ];
    for (vendor, path, header, value, more) in presets {
        let receiver = Receiver::start(path, &[(header, &value)]);
        let endpoint = match vendor {
            "Grafana Cloud" => format!("{}/otlp", receiver.url()),
            _ => receiver.url(),
        };
        let headers = |v: &str| {
            let mut h = json!({ header: v });
            for (k, x) in more.as_object().unwrap() {
                h[k] = x.clone();
            }
            h
        };
        let build = |v: &str| {
            let config: OtlpConfig =
                serde_json::from_value(json!({ "endpoint": endpoint, "headers": headers(v) }))
                    .unwrap();
            config.validate().expect(vendor);
            OtlpSink::new(
                &config,
                &DeliveryConfig::default(),
                &SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap(),
            )
            .unwrap()
        };
        let good = build(&value);
        let check = block(good.check());
        assert!(check.is_ok(), "{vendor}: {check:?}");
        let events = events(10, 5);
        assert_eq!(
            block(deliver(&good, &events)),
            Outcome::Delivered,
            "{vendor}"
        );
        check_all(&receiver, &events, "paragon");
        let bad = build("revoked-key-00000000");
        let check = block(bad.check()).expect_err(vendor);
        assert_eq!(check.http_status, Some(401), "{vendor}");
        let outcome = block(deliver(&bad, &events));
        assert_eq!(class(&outcome), "destination", "{vendor}: {outcome:?}");
        assert!(
            error_message(&outcome).contains("check the destination's headers"),
            "{outcome:?}"
        );
        // Only the good key's records, once.
        assert_eq!(receiver.accepted().len(), events.len(), "{vendor}");
    }
}

/// A partial success names how many records were refused, not which: the request's records are
/// reported with the count and the receiver's message, and in a batch of several requests the
/// other requests stay delivered.
#[test]
fn a_partial_success_reports_its_request_with_the_count() {
    let receiver = Receiver::start("/v1/logs", &[("api-key", KEY)]);
    let sink = sink(&receiver, json!({}));
    let events = events(10, 6);
    receiver.script(json!([
        { "status": 200, "partial": { "rejected": 2, "message": "2 records are older than 24h" } }
    ]));
    let outcome = block(deliver(&sink, &events));
    assert_eq!(class(&outcome), "rejected", "{outcome:?}");
    let message = error_message(&outcome);
    assert!(
        message.contains("rejected 2 of the 10 log records")
            && message.contains("2 records are older than 24h"),
        "{message}"
    );

    // Several requests (one record each, by the request size limit): the second one's partial
    // success covers that request only.
    let small = self::sink(&receiver, json!({ "max_request_bytes": 1 }));
    let three = &events[..3];
    receiver.script(json!([
        { "status": 200 },
        { "status": 200, "partial": { "rejected": 1, "message": "bad record" } },
    ]));
    let outcome = block(deliver(&small, three));
    let Outcome::Partial(parts) = &outcome else {
        panic!("{outcome:?}")
    };
    let parts: Vec<_> = parts.iter().map(|(r, o)| (r.clone(), class(o))).collect();
    assert_eq!(
        parts,
        vec![(0..1, "delivered"), (1..2, "rejected"), (2..3, "delivered")]
    );
}

/// 429 with Retry-After and 503 storms are retried (nothing the receiver refused counts as
/// delivered); after the storm the records arrive once.
#[test]
fn throttling_and_unavailability_are_retried() {
    let receiver = Receiver::start("/v1/logs", &[("api-key", KEY)]);
    let sink = sink(&receiver, json!({}));
    let events = events(20, 7);
    receiver.script(json!([
        { "status": 429, "retry_after": "7", "message": "rate limited" },
        { "status": 503, "times": 3 },
        { "status": 502 },
        { "status": 504 },
    ]));
    let batch = sink.encode(&events).unwrap();
    let first = block(sink.send(&events, &batch));
    let Outcome::Retry { retry_after, error } = &first else {
        panic!("{first:?}")
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(7)));
    assert_eq!(error.http_status, Some(429));
    assert!(
        error.message.ends_with(": rate limited"),
        "{}",
        error.message
    );
    for status in [503, 503, 503, 502, 504] {
        let outcome = block(sink.send(&events, &batch));
        let Outcome::Retry { error, .. } = &outcome else {
            panic!("{status}: {outcome:?}")
        };
        assert_eq!(error.http_status, Some(status));
    }
    assert_eq!(block(sink.send(&events, &batch)), Outcome::Delivered);
    assert_eq!(receiver.requests().len(), 7);
    check_all(&receiver, &events, "paragon");
}

/// A receiver that refuses requests over 4 records with 413: the batch is halved until every
/// request fits, and every record arrives once, in order.
#[test]
fn too_large_requests_are_halved() {
    let receiver = Receiver::start("/v1/logs", &[("api-key", KEY)]);
    receiver.limit(4);
    let sink = sink(&receiver, json!({}));
    let events = events(19, 8);
    // The halves are reported part by part (the shared halving loop), each delivered.
    let outcome = block(deliver(&sink, &events));
    let Outcome::Partial(parts) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        parts.iter().all(|(_, o)| *o == Outcome::Delivered) && parts.len() > 1,
        "{outcome:?}"
    );
    let requests = receiver.requests();
    assert!(requests.iter().any(|r| r["status"] == 413), "{requests:?}");
    for r in requests.iter().filter(|r| r["status"] == 200) {
        assert!(r["records"].as_array().unwrap().len() <= 4);
    }
    check_all(&receiver, &events, "paragon");

    // One record alone that is still refused is rejected.
    receiver.limit(0);
    receiver.script(json!([{ "status": 413, "message": "record too large" }]));
    let outcome = block(deliver(&sink, &events[..1]));
    assert_eq!(class(&outcome), "rejected", "{outcome:?}");
    assert!(error_message(&outcome).contains("record too large"));
}

/// Other failures, by the specification: not retried; credentials and a wrong path are the
/// destination's problem; the receiver's Status message is kept, with the key masked.
#[test]
fn failures_are_classified_by_the_spec_and_answers_scrubbed() {
    let receiver = Receiver::start("/v1/logs", &[("api-key", KEY)]);
    let sink = sink(&receiver, json!({}));
    let events = events(3, 9);
    for (status, expected) in [
        (400, "rejected"),
        (401, "destination"),
        (403, "destination"),
        (500, "rejected"),
        (408, "rejected"),
    ] {
        receiver.script(json!([{ "status": status, "message": format!("no good; key {KEY}") }]));
        let outcome = block(deliver(&sink, &events));
        assert_eq!(class(&outcome), expected, "{status}: {outcome:?}");
        let message = error_message(&outcome);
        assert!(message.contains("no good; key ****"), "{status}: {message}");
        assert!(!message.contains(KEY), "{status}: {message}");
    }
    // A partial success whose message echoes the key: still read as one (the protobuf answer is
    // decoded before the key is masked out of its text), the key masked.
    for encoding in ["protobuf", "json"] {
        let sink = self::sink(&receiver, json!({ "encoding": encoding }));
        receiver.script(json!([
            { "status": 200, "partial": { "rejected": 1, "message": format!("key {KEY} may not send this") } }
        ]));
        let outcome = block(deliver(&sink, &events));
        assert_eq!(class(&outcome), "rejected", "{encoding}: {outcome:?}");
        let message = error_message(&outcome);
        assert!(
            message.contains("rejected 1 of the 3")
                && message.contains("key **** may not send this"),
            "{encoding}: {message}"
        );
        assert!(!message.contains(KEY), "{encoding}: {message}");
    }
    // A path the receiver does not serve.
    let wrong = self::sink(&receiver, json!({ "logs_path": "/v1/log" }));
    let outcome = block(deliver(&wrong, &events));
    assert_eq!(class(&outcome), "destination", "{outcome:?}");
    assert!(error_message(&outcome).contains("check the destination's endpoint and logs_path"));
    assert!(receiver.accepted().is_empty());
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private CA (`ca.pem`) and a certificate it signed for localhost and 127.0.0.1
/// (`server.pem`, `server.key`), made with the openssl command.
fn private_ca(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=courier OTLP test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// HTTPS to a receiver whose certificate comes from a private CA: refused with the built-in
/// roots, delivered with `tls.ca_file`, and with `tls.insecure_skip_verify`.
#[test]
fn https_with_a_private_ca_from_tls_ca_file() {
    let certs = tempfile::tempdir().unwrap();
    private_ca(certs.path());
    let receiver = Receiver::start_with("/v1/logs", &[("api-key", KEY)], Some(certs.path()));
    let endpoint = format!("https://localhost:{}", receiver.port);
    let build = |tls: Value| {
        let config: OtlpConfig = serde_json::from_value(
            json!({ "endpoint": endpoint, "headers": { "api-key": KEY }, "tls": tls }),
        )
        .unwrap();
        config.validate().expect("valid");
        OtlpSink::new(
            &config,
            &DeliveryConfig::default(),
            &SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap(),
        )
        .expect("sink")
    };
    let events = events(5, 10);
    let outcome = block(deliver(&build(json!({})), &events));
    let Outcome::Retry { error, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        error.message.to_lowercase().contains("certificate"),
        "{}",
        error.message
    );
    assert!(receiver.requests().is_empty());
    let trusted = build(json!({ "ca_file": certs.path().join("ca.pem") }));
    assert!(block(trusted.check()).is_ok());
    assert_eq!(block(deliver(&trusted, &events)), Outcome::Delivered);
    let unverified = build(json!({ "insecure_skip_verify": true }));
    assert_eq!(block(deliver(&unverified, &events)), Outcome::Delivered);
    assert!(
        receiver.violations().is_empty(),
        "{:?}",
        receiver.violations()
    );
    assert_eq!(receiver.accepted().len(), 2 * events.len());
}

// ---------------------------------------------------------------------------------------------
// End to end
// ---------------------------------------------------------------------------------------------

const TOPIC: &str = "event-logs";
const PROJECT: &str = "proj_0001";
const OTHER: &str = "proj_0002";
const KEY_ENV: &str = "COURIER_TEST_OTLP_KEY";

fn otlp_toml(id: &str, receiver: &Receiver, extra: &str) -> String {
    format!(
        "[[destinations]]\nproject = {}\nid = {}\ntype = \"otlp\"\nendpoint = {}\nencoding = \"json\"\nservice_name = \"paragon-e2e\"\n[destinations.headers]\napi-key = \"${{{KEY_ENV}}}\"\n{extra}",
        toml_str(PROJECT),
        toml_str(id),
        toml_str(&receiver.url()),
    )
}

/// Broker: tansu (a consumer group that commits; no broker fault). Two projects' events; the
/// OTLP destination of proj_0001 takes WARN and up. The receiver throttles (429 with
/// Retry-After) and is unavailable (503) at first. Exactly the routed events arrive, each once,
/// with the mapping, the offsets complete, and the key given as ${VAR} is sent but never logged.
#[test]
fn routed_events_arrive_once_with_the_mapping_end_to_end() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 2);
    create_topic(&brokers, "courier-failures", 1);
    let receiver = Receiver::start("/v1/logs", &[("api-key", KEY)]);
    receiver.script(json!([
        { "status": 429, "retry_after": "1" },
        { "status": 503, "times": 2 },
    ]));
    let mut cfg = CourierConfig::new(&brokers).destination(otlp_toml(
        "otlp",
        &receiver,
        "[destinations.filter]\nmin_level = \"WARN\"\n",
    ));
    cfg.env.push((KEY_ENV.into(), KEY.into()));
    let courier = Courier::start_ready(&cfg);

    let mut gen = generator(31, 2);
    let produced: Vec<Vec<u8>> = ordinary_events(&mut gen, 300, &[PROJECT, PROJECT, OTHER])
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let positions = produce_spread(&brokers, TOPIC, 2, produced.iter().cloned());
    let routed: Vec<Value> = produced
        .iter()
        .map(|b| serde_json::from_slice::<Value>(b).unwrap())
        .filter(|v| {
            v["projectId"] == PROJECT && matches!(v["level"].as_str(), Some("WARN" | "ERROR"))
        })
        .collect();
    assert!(routed.len() > 20 && routed.len() < 200, "{}", routed.len());

    let ends = end_offsets(&positions);
    wait_explained(
        "committed offsets reach the end of the topic",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let committed = committed_offsets(&brokers, "courier-test", TOPIC);
            ends.iter().all(|(p, e)| committed.get(p) == Some(e))
        },
        || courier.log_tail(),
    );
    wait_explained(
        "the receiver accepted every routed event",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || receiver.accepted().len() >= routed.len(),
        || courier.log_tail(),
    );
    std::thread::sleep(Duration::from_millis(500));

    assert!(
        receiver.violations().is_empty(),
        "{:?}",
        receiver.violations()
    );
    let statuses: Vec<u64> = receiver
        .requests()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(&statuses[..3], &[429, 503, 503], "{statuses:?}");
    let mut by_id: HashMap<String, Vec<Value>> = HashMap::new();
    for record in receiver.accepted() {
        let id = record["attributes"]["log.record.uid"]
            .as_str()
            .expect("log.record.uid")
            .to_owned();
        by_id.entry(id).or_default().push(record);
    }
    assert_eq!(by_id.len(), routed.len(), "distinct events received");
    for event in &routed {
        let id = event["id"].as_str().unwrap();
        let records = by_id
            .get(id)
            .unwrap_or_else(|| panic!("event {id} missing"));
        assert_eq!(
            records.len(),
            1,
            "event {id} received {} times",
            records.len()
        );
        assert_mapped(&records[0], event, "paragon-e2e");
    }
    let log = std::fs::read_to_string(courier.log_path()).unwrap();
    assert!(!log.contains(KEY), "the header's secret is never logged");
}

/// `courier test-destination` and the API's test endpoint go through the common probe: the
/// check (an empty export request) and one synthetic event, which the receiver decodes; a wrong
/// key is shown as the receiver's refusal. Through the API the header value is write-only.
#[test]
fn test_destination_and_the_api_test_endpoint_reach_the_receiver() {
    let receiver = Receiver::start("/v1/logs", &[("api-key", KEY)]);
    let dir = tempfile::tempdir().unwrap();
    let run = |key: &str| {
        let mut cfg =
            CourierConfig::new("127.0.0.1:9").destination(otlp_toml("otlp", &receiver, ""));
        cfg.env.push((KEY_ENV.into(), key.into()));
        let path = dir.path().join("courier.toml");
        std::fs::write(&path, cfg.to_toml("127.0.0.1:1")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(["test-destination", "--config"])
            .arg(&path)
            .args(["--project", PROJECT, "--destination", "otlp"])
            .env(KEY_ENV, key)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(key), "the key is never printed: {text}");
        (out.status.code(), text)
    };
    let (code, text) = run(KEY);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("check:      ok"), "{text}");
    assert!(text.contains("test event: delivered"), "{text}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(
        requests[0]["records"],
        json!([]),
        "the check sends no record"
    );
    let records = receiver.accepted();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["resource"]["paragon.project.id"], PROJECT);
    assert_eq!(records[0]["attributes"]["paragon.destinationId"], "otlp");
    assert!(
        receiver.violations().is_empty(),
        "{:?}",
        receiver.violations()
    );

    let (code, text) = run("revoked-key-000000000000");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("check:      failed"), "{text}");
    assert!(text.contains("HTTP 401"), "{text}");

    // The API: a definition with the header, masked in answers, tested through the probe.
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 1);
    create_topic(&brokers, "courier-failures", 1);
    const ADMIN: &str = "admin-token-0123456789abcdef";
    const SEAL_ENV: &str = "COURIER_TEST_OTLP_SEAL_KEY";
    let mut cfg = CourierConfig::new(&brokers);
    cfg.extra = format!(
        "\n[api]\nencryption_key_env = {}\ntokens = [{{ token = {} }}]\n",
        toml_str(SEAL_ENV),
        toml_str(ADMIN),
    );
    cfg.env.push((
        SEAL_ENV.into(),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]),
    ));
    let courier = Courier::start_ready(&cfg);
    let base = format!("/v1/projects/{PROJECT}/destinations/otlp-api");
    let api = |method: &str, path: &str, body: Option<Value>| -> (u16, Value) {
        rt().block_on(async {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut req = client
                .request(
                    method.parse().unwrap(),
                    format!("http://{}{path}", courier.listen()),
                )
                .bearer_auth(ADMIN);
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert!(!text.contains(KEY), "the key in an answer: {text}");
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    };
    let definition = json!({
        "type": "otlp", "endpoint": receiver.url(), "headers": { "api-key": KEY },
        "delivery": { "batch_timeout": "50ms" },
    });
    let (s, body) = api("PUT", &base, Some(definition));
    assert!(s == 200 || s == 201, "{s}: {body}");
    let (s, body) = api("GET", &base, None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["headers"]["api-key"], "****cdef", "{body}");
    let before = receiver.accepted().len();
    let (s, body) = api("POST", &format!("{base}/test"), None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["outcome"], "delivered", "{body}");
    assert_eq!(receiver.accepted().len(), before + 1);
    // The mask sent back keeps the stored key, but not towards another endpoint or path.
    let (s, body) = api(
        "PUT",
        &base,
        Some(
            json!({ "type": "otlp", "endpoint": receiver.url(), "headers": { "api-key": "****cdef" } }),
        ),
    );
    assert_eq!(s, 200, "{body}");
    let (s, body) = api("POST", &format!("{base}/test"), None);
    assert_eq!(body["outcome"], "delivered", "{s}: {body}");
    for moved in [
        json!({ "endpoint": "https://otlp.example" }),
        json!({ "logs_path": "/other/v1/logs" }),
    ] {
        let mut definition = json!({ "type": "otlp", "endpoint": receiver.url(), "headers": { "api-key": "****cdef" } });
        for (k, v) in moved.as_object().unwrap() {
            definition[k] = v.clone();
        }
        let (s, body) = api("PUT", &base, Some(definition));
        assert_eq!(s, 422, "{moved}: {body}");
    }
    // A bad definition names its keys.
    let (s, body) = api(
        "PUT",
        &format!("/v1/projects/{PROJECT}/destinations/otlp-bad"),
        Some(
            json!({ "type": "otlp", "endpoint": "ftp://x", "encoding": "xml", "headers": { "content-type": "x" } }),
        ),
    );
    assert_eq!(s, 422, "{body}");
    let pointers: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pointer"].as_str().unwrap())
        .collect();
    // A CA file on the courier host is the operator's: refused through the API.
    let (s, body2) = api(
        "PUT",
        &format!("/v1/projects/{PROJECT}/destinations/otlp-ca"),
        Some(
            json!({ "type": "otlp", "endpoint": receiver.url(), "tls": { "ca_file": "/etc/passwd" } }),
        ),
    );
    assert_eq!(s, 422, "{body2}");
    assert_eq!(
        body2["error"]["details"][0]["pointer"], "/tls/ca_file",
        "{body2}"
    );
    for p in ["/endpoint", "/encoding", "/headers/content-type"] {
        assert!(pointers.contains(&p), "{p} in {body}");
    }
}

/// Broker: tansu (a consumer group that commits, a failures topic read back; no broker fault).
/// The receiver answers the first request with a partial success (2 records refused): exactly
/// that request's events are reported in delivery-failure events, once each, with the count and
/// the receiver's message; every other event is delivered once; the offsets complete.
#[test]
fn a_partial_success_becomes_failure_events_for_its_request_end_to_end() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 1);
    create_topic(&brokers, "courier-failures", 1);
    let receiver = Receiver::start("/v1/logs", &[("api-key", KEY)]);
    // The first request of a destination that has not answered yet carries one event; the
    // partial success answers the second, a whole batch.
    receiver.script(json!([
        { "status": 200 },
        { "status": 200, "partial": { "rejected": 2, "message": "2 records are older than 24h" } },
    ]));
    let mut cfg = CourierConfig::new(&brokers)
        .delivery("batch_max_events", "10")
        .destination(otlp_toml("otlp", &receiver, ""));
    cfg.env.push((KEY_ENV.into(), KEY.into()));
    let courier = Courier::start_ready(&cfg);

    let mut gen = generator(41, 1);
    let produced: Vec<Vec<u8>> = ordinary_events(&mut gen, 30, &[PROJECT])
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let ids: Vec<String> = produced.iter().map(|b| event_id(b)).collect();
    let positions = produce(
        &brokers,
        TOPIC,
        produced.iter().map(|b| (Some(0), b.clone())),
    );
    let ends = end_offsets(&positions);
    wait_explained(
        "committed offsets reach the end of the topic",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let committed = committed_offsets(&brokers, "courier-test", TOPIC);
            ends.iter().all(|(p, e)| committed.get(p) == Some(e))
        },
        || courier.log_tail(),
    );

    let requests = receiver.requests();
    let uid = |r: &Value| {
        r["attributes"]["log.record.uid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(requests[0]["partial"].is_null(), "{}", requests[0]);
    let partial: Vec<String> = requests[1]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(uid)
        .collect();
    assert!(!requests[1]["partial"].is_null(), "{}", requests[1]);
    assert!(partial.len() >= 2, "{}", requests[1]);
    let mut delivered: Vec<String> = receiver.accepted().iter().map(uid).collect();
    delivered.sort();
    let mut rest: Vec<String> = ids
        .iter()
        .filter(|i| !partial.contains(i))
        .cloned()
        .collect();
    rest.sort();
    assert_eq!(delivered, rest, "every other event delivered once");

    let start = Instant::now();
    let reported = loop {
        let failures: Vec<Value> = read_all(&brokers, "courier-failures", Duration::from_secs(3))
            .into_iter()
            .map(|(_, _, b)| serde_json::from_slice(&b).expect("failure events are JSON"))
            .filter(|f: &Value| f["payload"]["eventIds"].is_array())
            .collect();
        let count: usize = failures
            .iter()
            .map(|f| f["payload"]["eventIds"].as_array().unwrap().len())
            .sum();
        if count >= partial.len() {
            break failures;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{count} of {} events reported\n{}",
            partial.len(),
            courier.log_tail()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let mut reported_ids = Vec::new();
    for f in &reported {
        assert_eq!(f["destinationId"], "otlp", "{f}");
        assert_eq!(f["destinationType"], "otlp", "{f}");
        let text = f.to_string();
        assert!(!text.contains(KEY), "a failure event shows the key: {f}");
        assert!(
            text.contains(&format!("rejected 2 of the {} log records", partial.len()))
                && text.contains("2 records are older than 24h"),
            "{f}"
        );
        for id in f["payload"]["eventIds"].as_array().unwrap() {
            reported_ids.push(id.as_str().unwrap().to_owned());
        }
    }
    reported_ids.sort();
    let mut expected = partial.clone();
    expected.sort();
    assert_eq!(
        reported_ids, expected,
        "exactly the partial request's events, once"
    );
}
