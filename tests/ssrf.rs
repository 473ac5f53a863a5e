//! The SSRF guard end to end: sinks built from configuration refuse destinations whose host is
//! (or resolves to) an internal address unless `[security] allow_networks` covers it, checked
//! against a real HTTP server on 127.0.0.1 that counts the requests it receives: a refused
//! destination gets none.

mod common;

use std::collections::BTreeMap;

use common::fakes::scripted::{text, Server};
use common::small_batch;
use courier::config::{DeliveryConfig, SecurityConfig};
use courier::sinks::datadog::{DatadogConfig, DatadogSink};
use courier::sinks::splunk::{SplunkConfig, SplunkSink};
use courier::sinks::webhook::{WebhookConfig, WebhookSink};
use courier::sinks::{ErrorKind, Outcome, RejectScope, Sink};
use serde_json::json;

/// What the servers answer every request: 200 with a body Splunk's sink reads as success.
const SUCCESS: &str = "{\"text\":\"Success\",\"code\":0}";

/// A server on 127.0.0.1 that answers [`SUCCESS`] and counts requests.
async fn counting_server() -> Server {
    Server::start(|_| text(200, SUCCESS)).await
}

async fn deliver(sink: &dyn Sink) -> Outcome {
    let events = small_batch();
    let batch = sink.encode(&events).expect("encode");
    sink.send(&events, &batch).await
}

fn loopback() -> SecurityConfig {
    SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap()
}

/// The refusal's message, asserting the outcome is a destination rejection.
fn refused(outcome: Outcome) -> String {
    match outcome {
        Outcome::Rejected {
            error,
            scope: RejectScope::Destination,
        } => {
            assert_eq!(error.kind, ErrorKind::Connection);
            assert_eq!(error.http_status, None);
            error.message
        }
        other => panic!("expected a destination rejection, got {other:?}"),
    }
}

fn webhook(url: &str, security: &SecurityConfig) -> WebhookSink {
    let config: WebhookConfig = serde_json::from_value(json!({ "url": url })).unwrap();
    config.validate().unwrap();
    WebhookSink::new(&config, &DeliveryConfig::default(), security).unwrap()
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_without_the_allow_list() {
    let server = counting_server().await;
    let url = format!("http://localhost:{}/hook", server.port());

    let message = refused(deliver(&webhook(&url, &SecurityConfig::default())).await);
    assert!(
        message.starts_with(
            "refused: localhost resolves to 127.0.0.1, a loopback address (127.0.0.0/8)"
        ),
        "{message}"
    );
    assert!(
        message.ends_with("with security.allow_networks"),
        "{message}"
    );
    assert_eq!(
        server.requests(),
        0,
        "a refused destination must get no request"
    );

    // An allow list for other networks does not help.
    let other = SecurityConfig::allowing(&["10.0.0.0/8"]).unwrap();
    refused(deliver(&webhook(&url, &other)).await);
    assert_eq!(server.requests(), 0);

    // Allowed: delivered, to the real server.
    assert_eq!(
        deliver(&webhook(&url, &loopback())).await,
        Outcome::Delivered
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn literal_addresses_are_checked_before_each_request() {
    // Built directly, without configuration validation: the sink checks literal hosts itself
    // (they never reach the resolver).
    let server = counting_server().await;
    for url in [
        format!("http://127.0.0.1:{}/hook", server.port()),
        format!("http://2130706433:{}/hook", server.port()),
        format!("http://[::ffff:127.0.0.1]:{}/hook", server.port()),
    ] {
        let message = refused(deliver(&webhook(&url, &SecurityConfig::default())).await);
        assert!(
            message.contains("is a loopback address (127.0.0.0/8"),
            "{url}: {message}"
        );
    }
    assert_eq!(server.requests(), 0);
    let url = format!("http://127.0.0.1:{}/hook", server.port());
    assert_eq!(
        deliver(&webhook(&url, &loopback())).await,
        Outcome::Delivered
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn splunk_and_datadog_endpoints_are_guarded() {
    let server = counting_server().await;
    let endpoint = format!("http://localhost:{}", server.port());

    let config: SplunkConfig =
        serde_json::from_value(json!({ "endpoint": endpoint, "token": "t" })).unwrap();
    config.validate().unwrap();
    let sink = SplunkSink::new(
        &config,
        &DeliveryConfig::default(),
        &SecurityConfig::default(),
    )
    .unwrap();
    let message = refused(deliver(&sink).await);
    assert!(
        message.starts_with("refused: localhost resolves to"),
        "{message}"
    );
    let health = sink.check().await.unwrap_err();
    assert!(health.message.starts_with("refused: localhost"), "{health}");
    assert_eq!(server.requests(), 0);
    let sink = SplunkSink::new(&config, &DeliveryConfig::default(), &loopback()).unwrap();
    assert_eq!(deliver(&sink).await, Outcome::Delivered);
    assert_eq!(server.requests(), 1);

    let config: DatadogConfig =
        serde_json::from_value(json!({ "endpoint": endpoint, "api_key": "k" })).unwrap();
    config.validate().unwrap();
    let sink = DatadogSink::new(
        &config,
        &DeliveryConfig::default(),
        &SecurityConfig::default(),
    )
    .unwrap();
    let message = refused(deliver(&sink).await);
    assert!(
        message.starts_with("refused: localhost resolves to"),
        "{message}"
    );
    let check = sink.check().await.unwrap_err();
    assert!(check.message.starts_with("refused: localhost"), "{check}");
    let config: DatadogConfig = serde_json::from_value(
        json!({ "endpoint": format!("http://127.0.0.1:{}", server.port()), "api_key": "k" }),
    )
    .unwrap();
    let sink = DatadogSink::new(
        &config,
        &DeliveryConfig::default(),
        &SecurityConfig::default(),
    )
    .unwrap();
    refused(deliver(&sink).await);
    assert_eq!(
        server.requests(),
        1,
        "no request for the refused Datadog endpoint"
    );
}

fn parse(text: &str) -> Result<courier::config::Config, Vec<String>> {
    courier::config::parse("ssrf.toml", text, &BTreeMap::new())
        .map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

fn destination(url: &str) -> String {
    format!(
        "[[destinations]]\nproject = \"p\"\nid = \"hook\"\ntype = \"webhook\"\nurl = \"{url}\"\n"
    )
}

#[tokio::test]
async fn configuration_to_delivery() {
    let server = counting_server().await;
    let named = destination(&format!("http://localhost:{}/hook", server.port()));

    // Names pass validation (they are judged when resolved) and are refused at delivery.
    let config = parse(&named).unwrap();
    let sink =
        courier::sinks::build(&config.destinations[0], "event-logs", &config.security).unwrap();
    refused(deliver(sink.as_ref()).await);
    assert_eq!(server.requests(), 0);

    // With [security] allow_networks, the same destination delivers.
    let config = parse(&format!(
        "[security]\nallow_networks = [\"127.0.0.0/8\"]\n\n{named}"
    ))
    .unwrap();
    let sink =
        courier::sinks::build(&config.destinations[0], "event-logs", &config.security).unwrap();
    assert_eq!(deliver(sink.as_ref()).await, Outcome::Delivered);
    assert_eq!(server.requests(), 1);

    // A literal internal address is a configuration error naming the key.
    let e = parse(&destination("http://192.168.1.20/hook")).unwrap_err();
    assert_eq!(
        e,
        ["ssrf.toml: destinations[0].url: refused: 192.168.1.20 is a private address (192.168.0.0/16); allow it with security.allow_networks"]
    );
    let e = parse(&destination("http://[fe80::1]/hook")).unwrap_err();
    assert!(
        e[0].contains("destinations[0].url: refused: fe80::1 is a link-local address (fe80::/10)"),
        "{e:?}"
    );

    // https_only refuses http:// URLs, even allowed ones.
    let e = parse(&format!(
        "[security]\nhttps_only = true\nallow_networks = [\"127.0.0.0/8\"]\n\n{named}"
    ))
    .unwrap_err();
    assert_eq!(
        e,
        ["ssrf.toml: destinations[0].url: http:// is refused by security.https_only; use an https:// URL"]
    );
    assert!(parse(&format!(
        "[security]\nhttps_only = true\n\n{}",
        destination("https://hooks.example.com/x")
    ))
    .is_ok());

    // Invalid networks are configuration errors naming the entry.
    let e =
        parse("[security]\nallow_networks = [\"127.0.0.0/8\", \"not-a-network\"]\n").unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "ssrf.toml: security.allow_networks[1]: \"not-a-network\" is not a network"
        ),
        "{e:?}"
    );
}

/// An `s3` destination writing to `endpoint` (path-style, static keys), as configured.
fn s3_destination(endpoint: &str) -> String {
    format!(
        "[[destinations]]\nproject = \"p\"\nid = \"archive\"\ntype = \"s3\"\nbucket = \"archive\"\n\
         region = \"us-east-1\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\n\
         access_key_id = \"AKIAEXAMPLE\"\nsecret_access_key = \"secret-example\"\n"
    )
}

/// The S3 sink's requests to its `endpoint` go through the guard as the other sinks' do: a
/// name that resolves to loopback passes validation (only literal addresses are judged then)
/// and is refused when the sink connects — before any request reaches the server.
#[tokio::test]
async fn s3_endpoints_are_guarded_at_request_time() {
    let server = counting_server().await;
    let named = s3_destination(&format!("http://localhost:{}", server.port()));
    let config = parse(&named).unwrap();
    let sink =
        courier::sinks::build(&config.destinations[0], "event-logs", &config.security).unwrap();
    let message = refused(deliver(sink.as_ref()).await);
    assert!(
        message.starts_with("refused: localhost resolves to"),
        "{message}"
    );
    let check = sink.check().await.unwrap_err();
    assert!(check.message.starts_with("refused: localhost"), "{check}");
    assert_eq!(
        server.requests(),
        0,
        "a refused S3 endpoint must get no request"
    );

    // Allowed: the requests reach the server.
    let config = parse(&format!(
        "[security]\nallow_networks = [\"127.0.0.0/8\"]\n\n{named}"
    ))
    .unwrap();
    let sink =
        courier::sinks::build(&config.destinations[0], "event-logs", &config.security).unwrap();
    deliver(sink.as_ref()).await;
    assert!(server.requests() >= 1);
}

/// Redirects are not followed, by the S3 sink either: an endpoint answering every request with
/// `303 See Other` to another server (which a client following redirects turns into a GET
/// there) leaves that server without a request, and the answer rejects the destination.
#[tokio::test]
async fn s3_redirects_are_not_followed() {
    let target = counting_server().await;
    let location = format!("http://127.0.0.1:{}/elsewhere", target.port());
    let redirecting = Server::start(move |_| text(303, "").header("location", &location)).await;
    let config = parse(&format!(
        "[security]\nallow_networks = [\"127.0.0.0/8\"]\n\n{}",
        s3_destination(&redirecting.base())
    ))
    .unwrap();
    let sink =
        courier::sinks::build(&config.destinations[0], "event-logs", &config.security).unwrap();
    let outcome = deliver(sink.as_ref()).await;
    assert!(
        matches!(outcome, Outcome::Rejected { ref error, .. } if error.http_status == Some(303)),
        "{outcome:?}"
    );
    assert_eq!(target.requests(), 0, "the redirect was followed");
}
