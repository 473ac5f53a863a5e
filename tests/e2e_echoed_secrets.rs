//! End to end: an endpoint that echoes the request's headers in its error answers never gets
//! courier to repeat the destination's secrets.
//!
//! Broker: tansu (one per test; records produced one per batch, TESTING.md quirk 2). The
//! compiled binary delivers to an HTTP server in the test process (`fakes::scripted`) that
//! answers every request with the headers it received — the configured header values and the
//! Standard Webhooks signature first — as a 400 (the batch is rejected and reported in a
//! failure event) or a 503 (the batch is retried, parked in the retry topic and finally
//! reported). The test collects every secret the server received and looks for each in
//! everything the answers reach: the failure events, the retry topic's records and headers,
//! the status API's `last_error` and the log. It also checks the echo did reach them, masked.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::fakes::scripted::{echo, Server};
use common::*;
use serde_json::Value;

const TOPIC: &str = "event-logs";
const FAILURES: &str = "courier-failures";
const RETRY: &str = "courier-retry";
const ADMIN: &str = "admin-token-0123456789";
const KEY_ENV: &str = "COURIER_TEST_API_KEY";
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const AUTHORIZATION: &str = "Bearer e2e-echoed-authorization-0001";
const API_KEY: &str = "e2e-echoed-api-key-0002";

fn destination(project: &str, id: &str, url: &str) -> String {
    format!(
        "[[destinations]]\nproject = {}\nid = {}\ntype = \"webhook\"\nurl = {}\nsecret = {}\nheaders = {{ \"Authorization\" = {}, \"X-Api-Key\" = {} }}\n",
        toml_str(project),
        toml_str(id),
        toml_str(url),
        toml_str(SIGNING_SECRET),
        toml_str(AUTHORIZATION),
        toml_str(API_KEY),
    )
}

/// `method path` on the API with the admin token → JSON.
fn api(addr: &str, method: &str, path: &str) -> Value {
    let (status, body) = api_call(addr, method, path, Some(ADMIN), None);
    assert_eq!(status, 200, "{method} {path}: {body}");
    assert!(!body.is_string(), "{method} {path}: not JSON: {body}");
    body
}

/// Broker: tansu. Two webhook destinations with a signing secret and two secret headers, whose
/// endpoint echoes the request headers in a 400 and in a 503: the failure events, the retry
/// topic, the status API and the log show the echo masked, and none of the secrets (header
/// values, signing secret, any signature sent).
#[test]
fn echoed_secrets_reach_no_failure_event_retry_record_status_or_log() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 2);
    create_topic(&brokers, FAILURES, 1);

    // Echoes the request's headers, credentials first: a 400 on /reject, else a 503.
    let server = rt().block_on(Server::start(|uri| {
        echo(if uri.path() == "/reject" { 400 } else { 503 })
    }));
    let addr = server.base();

    let mut cfg = CourierConfig::new(&brokers)
        .delivery("retry_max_elapsed", "\"500ms\"")
        .delivery("retry_schedule", "[\"1s\"]")
        .delivery("circuit_failure_threshold", "100")
        .delivery("request_timeout", "\"2s\"")
        .destination(destination(
            "proj_a",
            "hook-reject",
            &format!("{addr}/reject"),
        ))
        .destination(destination("proj_a", "hook-down", &format!("{addr}/down")));
    cfg.extra = format!(
        "\n[api]\nencryption_key_env = {}\ntokens = [{{ token = {} }}]\n",
        toml_str(KEY_ENV),
        toml_str(ADMIN),
    );
    cfg.env.push((
        KEY_ENV.into(),
        base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
    ));
    let courier = Courier::start_ready(&cfg);
    produce(
        &brokers,
        TOPIC,
        (0..4).map(|i| {
            let event = event_log("proj_a", &format!("evt-{i}-{}", unique_number()));
            (Some(i % 2), event.to_string().into_bytes())
        }),
    );

    // Both destinations end their events in failure events (hook-down after its retry).
    let mut failures: Vec<Value> = Vec::new();
    wait_explained(
        "failure events for both destinations",
        Duration::from_secs(120),
        Duration::from_millis(300),
        || {
            failures = read_all(&brokers, FAILURES, Duration::from_secs(2))
                .into_iter()
                .map(|(_, _, b)| serde_json::from_slice(&b).expect("failure events are JSON"))
                .collect();
            ["hook-reject", "hook-down"].iter().all(|d| {
                failures
                    .iter()
                    .any(|f| f["destinationId"] == *d && f["payload"]["eventIds"].is_array())
            })
        },
        || courier.log_tail(),
    );

    // The API: the status's last error (kept for retried failures) and the test answers.
    let base = "/v1/projects/proj_a/destinations";
    let mut answers: Vec<(String, String)> = Vec::new();
    let status = api(courier.listen(), "GET", &format!("{base}/hook-down/status"));
    let message = status["last_error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("hook-down has no last_error: {status}"));
    answers.push(("hook-down's status".into(), message.to_owned()));
    for (id, outcome) in [("hook-reject", "rejected"), ("hook-down", "retry")] {
        let test = api(courier.listen(), "POST", &format!("{base}/{id}/test"));
        assert_eq!(test["outcome"], outcome, "{test}");
        let message = test["message"].as_str().unwrap_or_default();
        answers.push((format!("{id}'s test answer"), message.to_owned()));
    }

    // The secrets: configured values, and every signature the endpoint received.
    let mut secrets: Vec<String> = server
        .received("webhook-signature")
        .into_iter()
        .filter(|v| v.starts_with("v1,"))
        .collect();
    assert!(!secrets.is_empty(), "requests were signed");
    secrets.extend(
        [
            SIGNING_SECRET,
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            AUTHORIZATION,
            "e2e-echoed-authorization",
            API_KEY,
        ]
        .map(String::from),
    );
    let assert_clean = |what: &str, text: &str| {
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{s:?} in {what}: {text}");
        }
    };
    let masked = [
        "[\"authorization\",\"****\"]",
        "[\"x-api-key\",\"****\"]",
        "[\"webhook-signature\",\"****\"]",
    ];
    let assert_masked_echo = |what: &str, text: &str| {
        assert_clean(what, text);
        for m in masked {
            assert!(text.contains(m), "{what} does not show {m}: {text}");
        }
    };

    // Failure events: the echo is there, masked.
    for (id, status) in [("hook-reject", 400), ("hook-down", 503)] {
        let f = failures
            .iter()
            .find(|f| f["destinationId"] == id && f["payload"]["eventIds"].is_array())
            .unwrap();
        assert_eq!(f["error"]["httpStatus"], status, "{f}");
        assert_masked_echo(
            &format!("{id}'s failure event"),
            f["error"]["message"].as_str().unwrap(),
        );
    }
    let all_failures: Vec<u8> = read_all(&brokers, FAILURES, Duration::from_secs(1))
        .into_iter()
        .flat_map(|(_, _, b)| b)
        .collect();
    assert_clean(
        "the failures topic",
        &String::from_utf8_lossy(&all_failures),
    );

    // The retry topic: hook-down's parked batch, its last error masked.
    let parked: Vec<(Vec<u8>, Vec<String>)> = read_records(&brokers, RETRY, Duration::from_secs(2))
        .into_iter()
        .map(|r| (r.value, r.headers))
        .collect();
    let last_errors: Vec<&String> = parked
        .iter()
        .flat_map(|(_, headers)| headers)
        .filter(|h| h.starts_with("courier-last-error="))
        .collect();
    assert!(!last_errors.is_empty(), "hook-down's batch was parked");
    for h in &last_errors {
        assert_masked_echo("a retry record's last-error header", h);
    }
    for (value, headers) in &parked {
        assert_clean("a retry record", &String::from_utf8_lossy(value));
        assert_clean("a retry record's headers", &headers.join("\n"));
    }

    for (what, message) in &answers {
        assert_masked_echo(what, message);
    }

    // The log.
    let log = std::fs::read_to_string(courier.log_path()).unwrap();
    assert!(log.contains("****"), "the log shows the masked echo");
    assert_clean("the log", &log);
}
