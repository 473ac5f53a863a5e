use super::*;
use crate::webhook::presets::{Preset, ALL};
use bytes::Bytes;

fn ev(raw: &str, offset: i64) -> Event {
    courier_core::event::test_event(Bytes::copy_from_slice(raw.as_bytes()), 0, offset)
}

const META: Meta<'static> = Meta {
    project: "p1",
    destination: "d1",
    secret: Some("R0UTINGKEY0123456789abcdefABCDEF"),
};

fn render(source: &str, events: &[&str]) -> Result<String, String> {
    let t = BodyTemplate::compile(source, Limits::default())?;
    let values: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    t.render(&values, "msg_1", &META)
        .map(|b| String::from_utf8(b).unwrap())
}

#[test]
fn renders_the_context_and_helpers() {
    let out = render(
        r#"{{ project }}/{{ destination }}/{{ batch_id }} {{ events|length }} {{ event.message|tojson }} {{ event.timestamp|datetime("%Y-%m-%d %H:%M") }} {{ event.timestamp|epoch_ms }} {{ 1700000000123|datetime }} {{ "abcdef"|truncate(4) }}"#,
        &[
            r#"{"message":"a \"quoted\" <b>","timestamp":"2024-05-01T10:20:30.5+02:00"}"#,
            "{}",
        ],
    )
    .unwrap();
    assert_eq!(
        out,
        r#"p1/d1/msg_1 2 "a \"quoted\" \u003cb\u003e" 2024-05-01 08:20 1714551630500 2023-11-14T22:13:20.123Z abc…"#
    );
}

#[test]
fn syntax_errors_name_the_line() {
    let e = BodyTemplate::compile(
        "{\n\"a\": {{ event.x }},\n\"b\": {{ event.y }\n}",
        Limits::default(),
    )
    .unwrap_err();
    assert!(e.starts_with("line 3: syntax error"), "{e}");
}

#[test]
fn fuel_bounds_a_render() {
    let t = BodyTemplate::compile(
        "{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}",
        Limits {
            fuel: 10_000,
            ..Limits::default()
        },
    )
    .unwrap();
    let e = t.render(&[], "b", &META).unwrap_err();
    assert!(e.contains("ran out of fuel (10000 instructions)"), "{e}");
}

#[test]
fn output_size_is_capped() {
    let t = BodyTemplate::compile(
        "{% for i in range(100) %}{{ event.message }}{% endfor %}",
        Limits {
            max_body_bytes: 1000,
            ..Limits::default()
        },
    )
    .unwrap();
    let small = t
        .render(&[serde_json::json!({"message": "0123456789"})], "b", &META)
        .unwrap();
    assert_eq!(small.len(), 1000);
    let e = t
        .render(&[serde_json::json!({"message": "01234567890"})], "b", &META)
        .unwrap_err();
    assert_eq!(e, "the rendered body is over 1000 bytes");
}

#[test]
fn recursion_is_bounded_and_nothing_is_included() {
    let e = render(r#"{% include "/etc/passwd" %}"#, &["{}"]).unwrap_err();
    assert!(e.starts_with("line 1: syntax error"), "{e}");
    let mut nested = serde_json::json!([]);
    for _ in 0..100 {
        nested = serde_json::json!([{ "c": nested }]);
    }
    let t = BodyTemplate::compile(
        "{% for x in event recursive %}[{{ loop(x.c) }}]{% endfor %}",
        Limits {
            recursion: 20,
            ..Limits::default()
        },
    )
    .unwrap();
    let e = t.render(&[nested], "b", &META).unwrap_err();
    assert!(e.contains("recursion"), "{e}");
}

#[test]
fn a_render_error_refuses_only_its_event() {
    let t = BodyTemplate::compile(
        r#"[{% for e in events %}{{ e.timestamp|epoch_ms }}{% if not loop.last %},{% endif %}{% endfor %}]"#,
        Limits::default(),
    )
    .unwrap();
    let events = [
        ev(r#"{"timestamp":"2024-01-01T00:00:00Z"}"#, 0),
        ev(r#"{"timestamp":"yesterday"}"#, 1),
        ev(r#"{"timestamp":1000}"#, 2),
    ];
    let ids = |kept: &[usize]| format!("{kept:?}");
    let r = render_batch(&t, &events, ids, &META).unwrap();
    assert_eq!(String::from_utf8(r.body).unwrap(), "[1704067200000,1000]");
    assert_eq!(r.kept, vec![0, 2]);
    assert_eq!(r.refused.len(), 1);
    assert_eq!(r.refused[0].0, 1);
    assert!(
        r.refused[0]
            .1
            .message
            .contains("\"yesterday\" is not an RFC 3339 time"),
        "{}",
        r.refused[0].1.message
    );
}

#[test]
fn a_batch_too_large_together_fails_as_a_whole() {
    let t = BodyTemplate::compile(
        "{% for e in events %}{{ e.m }}{% endfor %}",
        Limits {
            max_body_bytes: 15,
            ..Limits::default()
        },
    )
    .unwrap();
    let events = [
        ev(r#"{"m":"0123456789"}"#, 0),
        ev(r#"{"m":"0123456789"}"#, 1),
    ];
    let e = render_batch(&t, &events, |_| String::new(), &META).unwrap_err();
    assert!(e.message.contains("over 15 bytes"), "{}", e.message);
}

#[test]
fn the_template_secret_is_masked_in_errors() {
    let t = BodyTemplate::compile(
        "{{ (template_secret ~ event.x)|datetime }}",
        Limits::default(),
    )
    .unwrap();
    let e =
        render_batch(&t, &[ev(r#"{"x":1}"#, 0)], |_| String::new(), &META).unwrap_err_or_refused();
    assert!(!e.contains(META.secret.unwrap()), "{e}");
    assert!(e.contains("****"), "{e}");
}

trait Refused {
    fn unwrap_err_or_refused(self) -> String;
}

impl Refused for Result<Rendered, DeliveryError> {
    fn unwrap_err_or_refused(self) -> String {
        match self {
            Ok(r) => r.refused[0].1.message.clone(),
            Err(e) => e.message,
        }
    }
}

#[test]
fn every_preset_renders_valid_json() {
    let events = [
        r#"{"id":"e1","level":"ERROR","type":"WEBHOOK_TRIGGER","message":"boom & <bust>","timestamp":"2024-05-01T10:20:30Z","projectId":"p1","payload":{"a":[1,2]}}"#,
        r#"{"level":"INFO","message":"ok"}"#,
        r#"{}"#,
    ];
    for preset in ALL {
        for n in 1..=events.len() {
            let out = render(preset.template(), &events[..n])
                .unwrap_or_else(|e| panic!("{}: {e}", preset.name()));
            let json: serde_json::Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("{} ({n} events): {e}\n{out}", preset.name()));
            assert!(json.is_object() || json.is_array(), "{}", preset.name());
        }
    }
    let pd: serde_json::Value =
        serde_json::from_str(&render(Preset::Pagerduty.template(), &events[..1]).unwrap()).unwrap();
    assert_eq!(pd["routing_key"], META.secret.unwrap());
    assert_eq!(pd["dedup_key"], "e1");
    assert_eq!(pd["payload"]["severity"], "error");
    assert_eq!(pd["payload"]["timestamp"], "2024-05-01T10:20:30.000Z");
    let slack: serde_json::Value =
        serde_json::from_str(&render(Preset::Slack.template(), &events[..1]).unwrap()).unwrap();
    assert_eq!(
        slack["blocks"][0]["text"]["text"],
        "*ERROR* WEBHOOK_TRIGGER 2024-05-01T10:20:30Z\nboom &amp; &lt;bust&gt;"
    );
}

#[test]
fn slack_stays_within_its_limits() {
    let long = "x".repeat(50_000);
    let event = format!(r#"{{"level":"ERROR","message":"{long}"}}"#);
    let events: Vec<&str> = std::iter::repeat_n(event.as_str(), 60).collect();
    let out = render(Preset::Slack.template(), &events).unwrap();
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(json["text"].as_str().unwrap().chars().count() <= 3000);
    let blocks = json["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 21);
    for b in &blocks[..20] {
        assert_eq!(b["text"]["text"].as_str().unwrap().chars().count(), 500);
    }
    assert_eq!(blocks[20]["elements"][0]["text"], "and 40 more");
}
