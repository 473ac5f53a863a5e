//! `courier validate` through the binary on configurations a hostile or careless author
//! writes: settings past their bounds, several errors in one destination, host files that
//! are not small regular files. No broker is needed: validation reads only the file.

mod common;

use std::process::{Command, Output};

use common::*;

fn validate(text: &str) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("courier.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

fn base() -> CourierConfig {
    CourierConfig::new("127.0.0.1:9")
}

fn webhook(extra: &str) -> String {
    format!(
        "[[destinations]]\nproject = \"proj_a\"\nid = \"hook-1\"\ntype = \"webhook\"\nurl = \"https://example.com/hook\"\n{extra}\n"
    )
}

#[test]
fn durations_past_their_bounds_are_refused_naming_the_key() {
    // The value: accepted before, it overflowed `Instant + Duration` in every batch.
    let cfg = base().destination(webhook(
        "[destinations.delivery]\nretry_max_elapsed = \"300000000000years\"",
    ));
    let (out, text) = validate(&cfg.to_toml("127.0.0.1:1"));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("destinations[0].delivery.retry_max_elapsed: must be at most 1day"),
        "{text}"
    );
    assert!(text.contains("invalid (1 error)"), "{text}");

    // The same in [delivery], with queue_max_events and a retry_schedule entry.
    let cfg = base()
        .delivery("retry_max_elapsed", "\"300000000000years\"")
        .delivery("queue_max_events", "2305843009213693952")
        .delivery("retry_schedule", "[\"30s\", \"300000000000years\"]")
        .destination(webhook(""));
    let (out, text) = validate(&cfg.to_toml("127.0.0.1:1"));
    assert_eq!(out.status.code(), Some(1), "{text}");
    for key in [
        "delivery.retry_max_elapsed: must be at most 1day",
        "delivery.queue_max_events: must be at most 1000000 (got 2305843009213693952)",
        "delivery.retry_schedule[1]: must be at most 7days",
    ] {
        assert!(text.contains(key), "{key} missing:\n{text}");
    }

    // At the bounds: valid.
    let cfg = base()
        .delivery("retry_max_elapsed", "\"24h\"")
        .delivery("queue_max_events", "1000000")
        .destination(webhook(""));
    let (out, text) = validate(&cfg.to_toml("127.0.0.1:1"));
    assert!(out.status.success(), "{text}");
}

#[test]
fn every_error_of_a_destination_is_listed() {
    // The example: an unknown format and an address the SSRF guard refuses (the
    // cloud metadata address is refused even with loopback allowed).
    let cfg = base().destination(
        "[[destinations]]\nproject = \"proj_a\"\nid = \"hook-1\"\ntype = \"webhook\"\nurl = \"http://169.254.169.254/latest/meta-data\"\nformat = \"xml\"\n".into(),
    );
    let (out, text) = validate(&cfg.to_toml("127.0.0.1:1"));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("destinations[0].format: unknown variant `xml`"),
        "{text}"
    );
    assert!(
        text.contains("destinations[0].url: ") && text.contains("metadata address"),
        "{text}"
    );
    assert!(text.contains("invalid (2 errors)"), "{text}");
}

#[test]
fn a_ca_file_must_be_a_small_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ca.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let big = dir.path().join("big.pem");
    std::fs::write(&big, vec![b'-'; 2 * 1024 * 1024]).unwrap();
    for (path, expect) in [
        // Reading /dev/zero never ends; opening a FIFO blocks until a writer comes.
        ("/dev/zero".to_owned(), "is not a regular file"),
        (fifo.display().to_string(), "is not a regular file"),
        (big.display().to_string(), "is larger than 1048576 bytes"),
    ] {
        let cfg = base().destination(format!(
            "[[destinations]]\nproject = \"p\"\nid = \"s\"\ntype = \"splunk_hec\"\nendpoint = \"https://splunk.example:8088\"\ntoken = \"t\"\n[destinations.tls]\nca_file = {}\n",
            toml_str(&path)
        ));
        let (out, text) = validate(&cfg.to_toml("127.0.0.1:1"));
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains(&format!("destinations[0].tls.ca_file: {path} {expect}")),
            "{path}: {text}"
        );
    }
}
