//! Hostile answers, every sink: real HTTP servers on 127.0.0.1 that answer with an endless
//! chunked body, or that echo the request's credentials back in their answer.
//!
//! - An endless body (256 MiB, then an answer that never ends) is cut after the part courier
//!   keeps (`sinks::http::read_limited`, the S3 sink's connector) and the connection closed:
//!   the attempt is classified by its status, and the server (`tests/common/fakes/scripted.rs`)
//!   could hand at most a few socket buffers of the body to the connection ([`assert_bounded`]).
//!   Without the limit, the client reads all 256 MiB into memory and waits for
//!   `request_timeout` (60 s here); the S3 sink and Splunk with acknowledgement then even end as
//!   timeouts instead of the status.
//! - An echoed secret (header values, the webhook signature, the Datadog API key, the Splunk
//!   token, the OTLP headers, S3 credentials) is masked before the answer is kept in the error, which goes on to
//!   logs, the retry topic, failure events and the API (`sinks::scrub`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::fakes::scripted::{echo, endless, text, Server};
use common::small_batch;
use courier::config::{DeliveryConfig, SecurityConfig, SinkConfig};
use courier::sinks::datadog::{DatadogConfig, DatadogSink};
use courier::sinks::http::MAX_ANSWER_BYTES;
use courier::sinks::otlp::{OtlpConfig, OtlpSink};
use courier::sinks::s3::S3Sink;
use courier::sinks::splunk::{SplunkConfig, SplunkSink};
use courier::sinks::webhook::{WebhookConfig, WebhookSink};
use courier::sinks::{DeliveryError, ErrorKind, Outcome, RejectScope, Sink};
use serde_json::json;

/// Long enough that an answer read to its end would end as a timeout, not a status.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Most body bytes an endless answer may hand to its connection before courier closes it:
/// what courier reads plus socket buffers, far below the endless body's 256 MiB
/// (`scripted::FLOOD_BYTES`).
const BOUND_BYTES: usize = 64 * 1024 * 1024;

async fn deliver(sink: &dyn Sink) -> Outcome {
    let events = small_batch();
    let batch = sink.encode(&events).expect("encode");
    sink.send(&events, &batch).await
}

fn loopback() -> SecurityConfig {
    SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap()
}

fn delivery() -> DeliveryConfig {
    DeliveryConfig {
        request_timeout: REQUEST_TIMEOUT,
        ..DeliveryConfig::default()
    }
}

/// The error of a rejection of `scope`, or of a retry (`scope` `None`).
fn error_of(outcome: Outcome, scope: Option<RejectScope>) -> DeliveryError {
    match (outcome, scope) {
        (Outcome::Rejected { error, scope: s }, Some(scope)) if s == scope => error,
        (Outcome::Retry { error, .. }, None) => error,
        (other, _) => panic!("expected {scope:?} (None: a retry), got {other:?}"),
    }
}

/// The endless answers since the last check were cut: the server could not hand more than
/// [`BOUND_BYTES`] of them to the connection.
fn assert_bounded(server: &Server) {
    let streamed = server.take_streamed();
    eprintln!("{streamed} bytes of an endless answer were taken from the server");
    assert!(
        streamed < BOUND_BYTES,
        "{streamed} bytes of an endless answer were taken from the server"
    );
}

/// An error of an HTTP status whose kept answer is bounded.
fn assert_status(error: &DeliveryError, status: u16) {
    assert_eq!(
        (error.kind, error.http_status),
        (ErrorKind::HttpStatus, Some(status)),
        "{error}"
    );
    assert!(
        error.message.len() < MAX_ANSWER_BYTES + 400,
        "{} bytes kept: {}",
        error.message.len(),
        error.message
    );
}

fn webhook(url: &str, secret: Option<&str>, headers: &[(&str, &str)]) -> WebhookSink {
    let headers: BTreeMap<&str, &str> = headers.iter().copied().collect();
    let config: WebhookConfig =
        serde_json::from_value(json!({ "url": url, "secret": secret, "headers": headers }))
            .unwrap();
    WebhookSink::new(&config, &delivery(), &loopback()).unwrap()
}

#[tokio::test]
async fn webhook_endless_answers_are_cut_and_classified_by_status() {
    let server = Server::start(|_| endless(400)).await;
    let sink = webhook(&format!("{}/hook", server.base()), None, &[]);

    let error = error_of(deliver(&sink).await, Some(RejectScope::Data));
    assert_status(&error, 400);
    assert!(error.message.contains("xxxx"), "{error}");
    assert_bounded(&server);

    server.set(|_| endless(503));
    assert_status(&error_of(deliver(&sink).await, None), 503);
    assert_bounded(&server);

    server.set(|_| endless(200));
    assert_eq!(deliver(&sink).await, Outcome::Delivered);
    assert_bounded(&server);
}

#[tokio::test]
async fn datadog_endless_answers_are_cut_and_classified_by_status() {
    let server = Server::start(|_| endless(400)).await;
    let config: DatadogConfig = serde_json::from_value(
        json!({ "endpoint": server.base(), "api_key": "dd-key-0123456789" }),
    )
    .unwrap();
    let sink = DatadogSink::new(&config, &delivery(), &loopback()).unwrap();

    assert_status(
        &error_of(deliver(&sink).await, Some(RejectScope::Data)),
        400,
    );
    assert_bounded(&server);
    server.set(|_| endless(503));
    assert_status(&error_of(deliver(&sink).await, None), 503);
    assert_bounded(&server);
    server.set(|_| endless(202));
    assert_eq!(deliver(&sink).await, Outcome::Delivered);
    assert_bounded(&server);
    server.set(|_| endless(403));
    assert_status(&sink.check().await.unwrap_err(), 403);
    assert_bounded(&server);
}

fn splunk(server: &Server, ack: bool) -> SplunkSink {
    let config: SplunkConfig = serde_json::from_value(json!({
        "endpoint": server.base(),
        "token": "hec-token-0123456789",
        "ack": ack,
        "ack_timeout": "2s",
    }))
    .unwrap();
    SplunkSink::new(&config, &delivery(), &loopback()).unwrap()
}

#[tokio::test]
async fn splunk_endless_answers_are_cut_and_classified_by_status() {
    let server = Server::start(|_| endless(400)).await;
    let sink = splunk(&server, false);
    assert_status(
        &error_of(deliver(&sink).await, Some(RejectScope::Data)),
        400,
    );
    assert_bounded(&server);
    server.set(|_| endless(503));
    assert_status(&error_of(deliver(&sink).await, None), 503);
    assert_bounded(&server);
    server.set(|_| endless(200));
    assert_eq!(deliver(&sink).await, Outcome::Delivered);
    assert_bounded(&server);
    server.set(|_| endless(503));
    assert_status(&sink.check().await.unwrap_err(), 503);
    assert_bounded(&server);

    // With acknowledgement, an accepting answer too long to hold its ackId is sent again.
    let sink = splunk(&server, true);
    server.set(|_| endless(200));
    let error = error_of(deliver(&sink).await, None);
    assert_status(&error, 200);
    assert!(error.message.contains("ackId cannot be read"), "{error}");
    assert_bounded(&server);

    // An endless acknowledgement answer is unreadable: the ids stay unconfirmed until
    // ack_timeout, and the events are sent again.
    server.set(|uri| {
        if uri.path().ends_with("/ack") {
            endless(200)
        } else {
            text(200, r#"{"text":"Success","code":0,"ackId":7}"#)
        }
    });
    let error = error_of(deliver(&sink).await, None);
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(error.message.contains("unreadable ack answer"), "{error}");
    assert_bounded(&server);
}

/// An `s3` destination writing to `server` with static keys (and a session token).
fn s3(server: &Server) -> S3Sink {
    let text = format!(
        "[security]\nallow_networks = [\"127.0.0.0/8\"]\n\
         [delivery]\nrequest_timeout = \"60s\"\n\
         [[destinations]]\nproject = \"p\"\nid = \"archive\"\ntype = \"s3\"\n\
         bucket = \"archive\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\nforce_path_style = true\n\
         access_key_id = \"AKIAECHOEDKEY0123456\"\nsecret_access_key = \"echoed-secret-key-0123456789\"\n\
         session_token = \"echoed-session-token-0123456789\"\n",
        server.base()
    );
    let config = courier::config::parse("answers.toml", &text, &BTreeMap::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let d = &config.destinations[0];
    let SinkConfig::S3(c) = &d.sink else {
        panic!("{:?}", d.sink)
    };
    S3Sink::new(d, c, "event-logs", &config.security).unwrap()
}

#[tokio::test]
async fn s3_endless_answers_are_cut_and_classified_by_status() {
    let server = Server::start(|_| endless(400)).await;
    let sink = s3(&server);
    assert_status(
        &error_of(deliver(&sink).await, Some(RejectScope::Destination)),
        400,
    );
    assert_bounded(&server);
    server.set(|_| endless(503));
    assert_status(&error_of(deliver(&sink).await, None), 503);
    assert_bounded(&server);
    server.set(|_| endless(200).header("etag", "\"0123456789abcdef\""));
    assert_eq!(deliver(&sink).await, Outcome::Delivered);
    assert_bounded(&server);
}

/// `message` shows the echo (masks in place of values) and none of the secrets.
fn assert_masked(message: &str, secrets: &[String], masked: &[&str]) {
    for s in secrets {
        assert!(!message.contains(s.as_str()), "{s:?} kept in: {message}");
    }
    for name in masked {
        assert!(
            message.contains(&format!("[\"{name}\",\"****\"]")),
            "no masked {name} in: {message}"
        );
    }
}

#[tokio::test]
async fn webhook_answers_echoing_the_headers_keep_no_secret() {
    let server = Server::start(|_| echo(400)).await;
    let header_secret = "Bearer wh-header-secret-0123";
    let quoted_secret = "key \"quoted\" value-4567";
    let sink = webhook(
        &format!("{}/hook", server.base()),
        Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        &[
            ("Authorization", header_secret),
            ("X-Api-Key", quoted_secret),
        ],
    );
    for (status, scope) in [(400, Some(RejectScope::Data)), (503, None)] {
        server.set(move |_| echo(status));
        let error = error_of(deliver(&sink).await, scope);
        let signatures = server.received("webhook-signature");
        assert!(!signatures.is_empty());
        let mut secrets = signatures.clone();
        secrets.extend([
            header_secret.to_owned(),
            quoted_secret.to_owned(),
            // As the echo's JSON escapes it.
            quoted_secret.replace('"', "\\\""),
            "wh-header-secret".to_owned(),
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
        ]);
        assert_masked(
            &error.message,
            &secrets,
            &["authorization", "x-api-key", "webhook-signature"],
        );
        // What is not secret is kept.
        assert!(error.message.contains("webhook-id"), "{error}");
    }
}

#[tokio::test]
async fn datadog_and_splunk_answers_echoing_the_headers_keep_no_secret() {
    let server = Server::start(|_| echo(400)).await;
    let key = "dd-api-key-0123456789abcdef";
    let config: DatadogConfig =
        serde_json::from_value(json!({ "endpoint": server.base(), "api_key": key })).unwrap();
    let sink = DatadogSink::new(&config, &delivery(), &loopback()).unwrap();
    let error = error_of(deliver(&sink).await, Some(RejectScope::Data));
    assert_masked(&error.message, &[key.to_owned()], &["dd-api-key"]);
    server.set(|_| echo(403));
    let error = sink.check().await.unwrap_err();
    assert_masked(&error.message, &[key.to_owned()], &["dd-api-key"]);

    server.set(|_| echo(400));
    let sink = splunk(&server, false);
    let token = "hec-token-0123456789".to_owned();
    let error = error_of(deliver(&sink).await, Some(RejectScope::Data));
    assert_masked(&error.message, std::slice::from_ref(&token), &[]);
    assert!(
        error
            .message
            .contains("[\"authorization\",\"Splunk ****\"]"),
        "{error}"
    );
    server.set(|_| echo(503));
    let error = sink.check().await.unwrap_err();
    assert_masked(&error.message, &[token], &[]);
    assert!(
        error
            .message
            .contains("[\"authorization\",\"Splunk ****\"]"),
        "{error}"
    );
}

#[tokio::test]
async fn s3_answers_echoing_the_headers_keep_no_credentials() {
    let server = Server::start(|_| echo(403)).await;
    let sink = s3(&server);
    let error = error_of(deliver(&sink).await, Some(RejectScope::Destination));
    let secrets = [
        "AKIAECHOEDKEY0123456".to_owned(),
        "echoed-secret-key-0123456789".to_owned(),
        "echoed-session-token-0123456789".to_owned(),
    ];
    assert!(
        server.received("authorization")[0].contains("AKIAECHOEDKEY0123456"),
        "the request carries the access key id"
    );
    assert_masked(&error.message, &secrets, &["x-amz-security-token"]);
    assert!(
        error.message.contains("Credential=****/"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn otlp_endless_and_echoing_answers_are_cut_and_keep_no_secret() {
    let server = Server::start(|_| endless(400)).await;
    let key = "otlp-api-key-0123456789abcdef";
    let config: OtlpConfig = serde_json::from_value(
        json!({ "endpoint": server.base(), "headers": { "x-honeycomb-team": key } }),
    )
    .unwrap();
    let sink = OtlpSink::new(&config, &delivery(), &loopback()).unwrap();
    assert_status(
        &error_of(deliver(&sink).await, Some(RejectScope::Data)),
        400,
    );
    assert_bounded(&server);
    server.set(|_| endless(503));
    assert_status(&error_of(deliver(&sink).await, None), 503);
    assert_bounded(&server);
    server.set(|_| endless(200));
    assert_eq!(deliver(&sink).await, Outcome::Delivered);
    assert_bounded(&server);
    server.set(|_| endless(401));
    assert_status(&sink.check().await.unwrap_err(), 401);
    assert_bounded(&server);

    for (status, scope) in [(400, Some(RejectScope::Data)), (503, None)] {
        server.set(move |_| echo(status));
        let error = error_of(deliver(&sink).await, scope);
        assert_masked(&error.message, &[key.to_owned()], &["x-honeycomb-team"]);
    }
    server.set(|_| echo(403));
    let error = sink.check().await.unwrap_err();
    assert_masked(&error.message, &[key.to_owned()], &["x-honeycomb-team"]);
}

/// A Splunk HEC sink as the daemon builds it (`sinks::build`), from an operator's file.
fn built_splunk(server: &Server) -> std::sync::Arc<dyn Sink> {
    let text = format!(
        "[security]\nallow_networks = [\"127.0.0.0/8\"]\n\n[[destinations]]\nproject = \"p\"\nid = \"hec\"\ntype = \"splunk_hec\"\nendpoint = \"{}\"\ntoken = \"hec-token-0123456789\"\n",
        server.base()
    );
    let config = courier::config::parse("answers.toml", &text, &BTreeMap::new()).unwrap();
    courier::sinks::build(&config.destinations[0], "event-logs", &config.security).unwrap()
}

/// Splunk HEC's answer is JSON, whose `text` courier keeps decoded. An endpoint that spells
/// the token in `\u` escapes passes the mask of the raw answer; the message as composed is
/// masked too (`sinks::masked`), in deliveries and in checks, failed or not.
#[tokio::test]
async fn a_secret_spelled_in_json_escapes_is_masked_in_the_message_as_composed() {
    let token = "hec-token-0123456789";
    let spelled: String = token
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let answer = format!(r#"{{"text":"Invalid token {spelled}","code":4}}"#);
    let server = Server::start({
        let answer = answer.clone();
        move |_| text(403, &answer)
    })
    .await;
    let sink = built_splunk(&server);

    let error = error_of(deliver(sink.as_ref()).await, Some(RejectScope::Destination));
    assert!(!error.message.contains(token), "{error}");
    assert!(error.message.contains("Invalid token ****"), "{error}");
    let error = sink.check().await.unwrap_err();
    assert!(!error.message.contains(token), "{error}");
    assert!(error.message.contains("Invalid token ****"), "{error}");

    // A healthy answer that echoes it, shown by `courier test-destination`.
    let healthy = format!(r#"{{"text":"HEC is healthy for {spelled}","code":17}}"#);
    server.set(move |_| text(200, &healthy));
    let said = sink.check().await.unwrap();
    assert!(!said.contains(token), "{said}");
    assert!(said.contains("HEC is healthy for ****"), "{said}");
}
