use serde_json::{json, Value};

use super::*;

fn rules(config: Value) -> Rules {
    serde_json::from_value::<RulesConfig>(config)
        .unwrap()
        .compile()
        .unwrap()
}

fn shaped(shaper: &Shaper, event: &Value) -> Value {
    serde_json::from_slice(&shaper.shape(event.to_string().as_bytes()).unwrap()).unwrap()
}

fn event() -> Value {
    json!({
        "id": "e1", "projectId": "p", "level": "INFO", "timestamp": "2026-01-01T00:00:00Z",
        "type": "APP_EVENT", "message": "hello",
        "payload": {
            "password": "hunter2",
            "fields": {"Email": "a@example.com", "Name": "Ann"},
            "nested": {"deep": {"password": "pw2", "keep": 1}},
            "items": [{"card": "4111", "n": 1}, {"card": "5500", "n": 2}]
        }
    })
}

#[test]
fn redacts_paths_with_wildcards_and_leaves_the_rest() {
    let r = rules(
        json!({"redact": ["payload.**.password", "payload.fields.Email", "payload.items.*.card"]}),
    );
    let s = Shaper::new(Some(r), None).unwrap();
    let out = shaped(&s, &event());
    assert_eq!(out["payload"]["password"], REDACTED);
    assert_eq!(out["payload"]["nested"]["deep"]["password"], REDACTED);
    assert_eq!(out["payload"]["fields"]["Email"], REDACTED);
    assert_eq!(out["payload"]["items"][1]["card"], REDACTED);
    let mut expected = event();
    for p in [
        "/payload/password",
        "/payload/nested/deep/password",
        "/payload/fields/Email",
        "/payload/items/0/card",
        "/payload/items/1/card",
    ] {
        *expected.pointer_mut(p).unwrap() = json!(REDACTED);
    }
    assert_eq!(out, expected, "nothing else changes");
}

#[test]
fn drop_removes_and_keep_allows_only_its_paths_and_routing_fields() {
    let r = rules(json!({"drop": ["payload.nested", "payload.items.*.n", "message"]}));
    let out = shaped(&Shaper::new(Some(r), None).unwrap(), &event());
    assert!(out.get("message").is_none());
    assert!(out["payload"].get("nested").is_none());
    assert_eq!(
        out["payload"]["items"],
        json!([{"card": "4111"}, {"card": "5500"}])
    );

    let r =
        rules(json!({"keep": ["payload.fields.Name", "payload.items.*.n", "payload.absent.x"]}));
    let out = shaped(&Shaper::new(Some(r), None).unwrap(), &event());
    assert_eq!(
        out,
        json!({
            "id": "e1", "projectId": "p", "level": "INFO", "timestamp": "2026-01-01T00:00:00Z",
            "type": "APP_EVENT",
            "payload": {"fields": {"Name": "Ann"}, "items": [{"n": 1}, {"n": 2}]}
        })
    );
}

#[test]
fn hmac_is_keyed_stable_and_joinable() {
    let key = "0123456789abcdef-key";
    let r = rules(
        json!({"redact": ["payload.fields.Email"], "redact_with": "hmac", "redact_key": key}),
    );
    let s = Shaper::new(Some(r), None).unwrap();
    let out = shaped(&s, &event());
    let hashed = out["payload"]["fields"]["Email"]
        .as_str()
        .unwrap()
        .to_owned();
    // HMAC-SHA256("a@example.com") with the key, computed independently.
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(b"a@example.com");
    assert_eq!(hashed, hex(&mac.finalize().into_bytes()));
    assert_eq!(hashed.len(), 64);
    assert_eq!(
        shaped(&s, &event())["payload"]["fields"]["Email"],
        hashed.as_str()
    );
    let other = rules(
        json!({"redact": ["payload.fields.Email"], "redact_with": "hmac", "redact_key": "another-key-0123456"}),
    );
    let other = shaped(&Shaper::new(Some(other), None).unwrap(), &event());
    assert_ne!(other["payload"]["fields"]["Email"], hashed.as_str());
    assert!(!format!("{s:?}").contains(key), "the key never prints");
}

#[test]
fn operator_rules_run_last_and_cannot_be_undone() {
    let operator = rules(json!({"redact": ["payload.**.password"]}));
    // The destination keeps the password and hashes it: the operator's redaction still wins.
    let destination = rules(json!({
        "keep": ["payload.password"], "redact": ["payload.password"],
        "redact_with": "hmac", "redact_key": "0123456789abcdef"
    }));
    let s = Shaper::new(Some(destination), Some(&operator)).unwrap();
    let out = shaped(&s, &event());
    assert_eq!(out["payload"], json!({"password": REDACTED}));
    // Only the operator's rules: shaped too; no rules at all: no shaper (fast path).
    assert!(Shaper::new(None, Some(&operator)).is_some());
    assert!(Shaper::new(Some(rules(json!({}))), Some(&rules(json!({})))).is_none());
}

#[test]
fn validation_names_the_key_and_never_the_secret() {
    let config: RulesConfig = serde_json::from_value(json!({
        "redact": ["ok.path", "bad..path"], "keep": ["x*"], "redact_with": "hmac", "redact_key": "short-secret"
    }))
    .unwrap();
    let errors = config.compile().unwrap_err();
    let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["redact[1]", "keep[0]", "redact_key"], "{errors:?}");
    assert!(errors.iter().all(|(_, m)| !m.contains("short-secret")));
    let too_many: RulesConfig =
        serde_json::from_value(json!({"drop": vec!["a"; path::MAX_PATHS + 1]})).unwrap();
    assert_eq!(too_many.compile().unwrap_err()[0].0, "drop");
    let unused: RulesConfig =
        serde_json::from_value(json!({"redact_key": "0123456789abcdef0"})).unwrap();
    assert!(unused.compile().unwrap_err()[0].1.contains("redact_with"));
    assert!(serde_json::from_value::<RulesConfig>(json!({"redact_with": "md5"})).is_err());
}

#[test]
fn refuses_events_that_are_not_objects() {
    let s = Shaper::new(Some(rules(json!({"drop": ["a"]}))), None).unwrap();
    assert!(s.shape(b"[1]").is_err());
    assert!(s.shape(b"{").is_err());
}
