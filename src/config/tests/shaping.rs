//! The shaping keys (`redact`, `drop`, `keep`, `redact_with`, `redact_key`, `sample`) of every
//! destination type and the operator's `[redact]`, from the file and the API: errors by key
//! path, secrets never echoed, and operator rules the API cannot remove.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::config::{parse, parse_destination, Config};

const KEY: &str = "operator-key-0123456789";

fn load(top: &str, keys: &str) -> Result<Config, Vec<String>> {
    let text = format!(
        "{top}\n[[destinations]]\nproject = \"p\"\nid = \"d\"\ntype = \"datadog\"\napi_key = \"k\"\n{keys}\n"
    );
    let env: BTreeMap<String, String> = [("REDACT_KEY".to_owned(), KEY.to_owned())].into();
    parse("test.toml", &text, &env).map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

fn shape(config: &Config, event: Value) -> Value {
    let shaper = config.destinations[0].shape.as_ref().expect("shaped");
    serde_json::from_slice(&shaper.shape(event.to_string().as_bytes()).unwrap()).unwrap()
}

#[test]
fn file_keys_shape_and_unshaped_destinations_keep_the_fast_path() {
    let c = load(
        "",
        "redact = [\"payload.**.password\"]\ndrop = [\"payload.debug\"]\nredact_with = \"hmac\"\nredact_key = \"${REDACT_KEY}\"\nsample = { DEBUG = 0.1, info = 0.5 }",
    )
    .unwrap();
    let out = shape(&c, json!({"payload": {"a": {"password": "x"}, "debug": 1}}));
    assert_eq!(out["payload"]["a"]["password"].as_str().unwrap().len(), 64);
    assert!(out["payload"].get("debug").is_none());
    assert!(c.destinations[0].sample.is_some());
    let plain = load("", "").unwrap();
    assert!(plain.destinations[0].shape.is_none() && plain.destinations[0].sample.is_none());
    // A sample that keeps everything is no sample.
    let all = load("", "sample = { INFO = 1.0 }").unwrap();
    assert!(all.destinations[0].sample.is_none());
}

#[test]
fn errors_name_the_key_path_and_never_the_key() {
    let errors = load(
        "[redact]\nredact = [\"a..b\"]\nredact_with = \"hmac\"",
        "redact = [\"ok\", \"x.pass*\"]\nkeep = \"payload\"\nredact_key = \"short-secret-x\"\nsample = { TRACE = 0.5, INFO = 2 }",
    )
    .unwrap_err();
    let text = errors.join("\n");
    for path in [
        "redact.redact[0]",
        "redact.redact_key",
        "destinations[0].redact[1]",
        "destinations[0].keep",
        "destinations[0].redact_key",
        "destinations[0].sample.TRACE",
        "destinations[0].sample.INFO",
    ] {
        assert!(
            text.contains(&format!("test.toml: {path}:")),
            "{path} in\n{text}"
        );
    }
    assert!(!text.contains("short-secret-x"), "{text}");
}

#[test]
fn the_api_adds_to_operator_rules_and_cannot_remove_them() {
    let config = load(
        "[redact]\nredact = [\"payload.**.password\"]\ndrop = [\"payload.ssn\"]",
        "",
    )
    .unwrap();
    // The operator's rules bind the file's destination that has none of its own.
    let out = shape(&config, json!({"payload": {"password": "p", "ssn": "1"}}));
    assert_eq!(out, json!({"payload": {"password": "[REDACTED]"}}));
    let event =
        json!({"id": "e", "payload": {"password": "hunter2", "ssn": "123", "email": "a@b"}});
    for definition in [
        // Nothing of its own.
        json!({}),
        // Empty lists, a keep of exactly the operator's paths, its own hash of them.
        json!({"redact": [], "drop": [], "keep": ["payload.password", "payload.ssn"]}),
        json!({"redact": ["payload.password", "payload.ssn"], "redact_with": "hmac", "redact_key": "tenant-key-0123456789"}),
    ] {
        let mut d =
            json!({"project": "p", "id": "a", "type": "webhook", "url": "https://example.com/h"});
        d.as_object_mut()
            .unwrap()
            .extend(definition.as_object().unwrap().clone());
        let parsed = parse_destination(d, &config.delivery, &config.security).unwrap();
        let shaper = parsed.shape.expect("the operator's rules always apply");
        let out: Value =
            serde_json::from_slice(&shaper.shape(event.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(out["payload"]["password"], "[REDACTED]", "{definition}");
        assert!(out["payload"].get("ssn").is_none(), "{definition}");
    }
    // The API's own errors point at the key.
    let d = json!({"project": "p", "id": "a", "type": "webhook", "url": "https://example.com/h", "drop": ["a.**.**"], "sample": {"INFO": -1}});
    let errors = parse_destination(d, &config.delivery, &config.security).unwrap_err();
    let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(pointers, ["/sample/INFO", "/drop/0"], "{errors:?}");
}

#[test]
fn daily_cap_reads_either_limit_and_errors_name_the_key_path() {
    let c = load("", "daily_cap = { events = 100 }").unwrap();
    let cap = c.destinations[0].daily_cap.unwrap();
    assert_eq!((cap.events, cap.bytes), (Some(100), None));
    let c = load("", "daily_cap = { bytes = 1_000_000, events = 5 }").unwrap();
    let cap = c.destinations[0].daily_cap.unwrap();
    assert_eq!((cap.events, cap.bytes), (Some(5), Some(1_000_000)));
    assert!(load("", "").unwrap().destinations[0].daily_cap.is_none());
    for (keys, path) in [
        ("daily_cap = {}", "destinations[0].daily_cap:"),
        (
            "daily_cap = { events = 0 }",
            "destinations[0].daily_cap.events:",
        ),
        (
            "daily_cap = { bytes = 2_000_000_000_000_000 }",
            "destinations[0].daily_cap.bytes:",
        ),
        ("daily_cap = { event = 5 }", "destinations[0].daily_cap"),
        ("daily_cap = 5", "destinations[0].daily_cap"),
    ] {
        let text = load("", keys).unwrap_err().join("\n");
        assert!(
            text.contains(&format!("test.toml: {path}")),
            "{keys}: {text}"
        );
    }
    // The API: the same checks, pointers at the key.
    let config = load("", "").unwrap();
    let d = json!({"project": "p", "id": "a", "type": "webhook", "url": "https://example.com/h", "daily_cap": {"events": -1, "bytes": 0}});
    let errors = parse_destination(d, &config.delivery, &config.security).unwrap_err();
    let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert!(pointers.contains(&"/daily_cap/events"), "{errors:?}");
    let d = json!({"project": "p", "id": "a", "type": "webhook", "url": "https://example.com/h", "daily_cap": {"events": 10, "bytes": 0}});
    let errors = parse_destination(d, &config.delivery, &config.security).unwrap_err();
    let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(pointers, ["/daily_cap/bytes"], "{errors:?}");
    let d = json!({"project": "p", "id": "a", "type": "webhook", "url": "https://example.com/h", "daily_cap": {"events": 10}});
    let parsed = parse_destination(d, &config.delivery, &config.security).unwrap();
    assert_eq!(parsed.daily_cap.unwrap().events, Some(10));
}
