//! Fuzzing, bounded for CI: property tests (proptest) over everything courier reads from
//! outside — Event Log bytes, configuration files and API definitions, destinations' answers.
//! Each target starts from valid input and mutates it (truncation, byte flips, hostile
//! fragments, huge numbers and strings, wrong types, deep nesting, odd unicode and escapes),
//! so that the cases get past the first syntax check and into the code behind it.
//!
//! What every target checks besides "no panic":
//! - event decoding agrees with serde_json's reading of the same bytes (what is routable, which
//!   reason a message is not, the routing fields), and what the sinks build from a valid event
//!   is valid JSON;
//! - every configuration or definition error names where it is (a key path or JSON pointer
//!   that exists in the input, or whose parent does for a missing key), an accepted file or
//!   API definition is within the bounds of `courier::config::bounds`, and an accepted API
//!   definition's sink builds without a panic;
//! - every sink's classifier keeps at most `MAX_ANSWER_BYTES` of an answer, with no secret
//!   of the destination in it, and no `Retry-After` beyond `courier::lane::MAX_RETRY_AFTER`.
//!
//! Each target runs a fixed number of cases, about ten seconds for all in a debug build. For a
//! longer run: `PROPTEST_CASES=50000 cargo test --release --test fuzz` (the value applies to
//! every target). The last section pins what the targets found, as plain tests.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use courier::config::{bounds, DeliveryConfig, SecurityConfig, SinkConfig};
use courier::event::{decode, event_id, Decoded, RoutingFields, Unroutable};
use courier::generator::{Generator, GeneratorConfig};
use courier::lane::MAX_RETRY_AFTER;
use courier::routing::{FilterConfig, Router};
use courier::sinks::http::{parse_retry_after, status_error, MAX_ANSWER_BYTES};
use courier::sinks::scrub::Scrubber;
use courier::sinks::{DeliveryError, Outcome};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

/// `cases` unless `PROPTEST_CASES` says otherwise.
fn cases(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        // Failing cases are kept where .gitignore keeps them out of commits, and tried first
        // on the next run.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/fuzz.txt"),
        )),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile values shared by the targets.

/// Strings that tend to break things: control characters, quotes and escapes, path and
/// pointer syntax, interpolation, odd unicode, and very long ones.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,16}",
        3 => "[\\x00-\\x1f\\x7f\"\\\\$\\{\\}./\\[\\]~*:, a-zA-Z0-9_-]{0,16}",
        1 => Just("${HOME}".to_owned()),
        1 => Just("${COURIER_FUZZ_UNSET}".to_owned()),
        1 => Just("$${literal}".to_owned()),
        1 => Just("${".to_owned()),
        1 => Just("\u{202e}\u{feff}\u{10ffff}\u{0}".to_owned()),
        1 => Just("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()),
        1 => Just("whsec_!!".to_owned()),
        1 => (1usize..70_000).prop_map(|n| "a".repeat(n)),
        1 => (1usize..3000).prop_map(|n| "é✓".repeat(n)),
    ]
}

/// Duration texts: valid, out of bounds, overflowing, malformed.
fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0s".to_owned()),
        Just("1ns".to_owned()),
        Just("300000000000years".to_owned()),
        Just("18446744073709551615s".to_owned()),
        Just("18446744073709551616s".to_owned()),
        Just("584942417355years".to_owned()),
        Just("-1s".to_owned()),
        Just("1.5s".to_owned()),
        Just("5".to_owned()),
        Just("".to_owned()),
        Just("1y 2months 3d 4h".to_owned()),
        (any::<u64>(), "(ns|us|ms|s|m|h|d|w|months|y|years|x)")
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        (0u64..5000, "(ms|s|m|h)").prop_map(|(n, unit)| format!("{n}{unit}")),
    ]
}

/// JSON values for a setting: numbers at every edge, wrong types, strings, junk structures.
fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1)),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(json!(2_305_843_009_213_693_952_u64)),
        Just(json!(4_294_967_296_u64)),
        Just(json!(1e300)),
        Just(json!(-0.5)),
        any::<i64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
        duration_text().prop_map(Value::from),
        hostile_string().prop_map(Value::from),
        url_text().prop_map(Value::from),
    ];
    let nested = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z_.]{1,8}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    });
    // Settings in order, for a table given as an array (serde reads a struct from one).
    let positional = prop::collection::vec(
        prop_oneof![
            Just(json!(2_305_843_009_213_693_952_u64)),
            Just(json!(1)),
            duration_text().prop_map(Value::from),
            Just(json!("/etc/passwd")),
            any::<bool>().prop_map(Value::from),
        ],
        1..14,
    )
    .prop_map(Value::Array);
    prop_oneof![
        8 => nested,
        1 => positional,
        1 => (1usize..100).prop_map(|depth| {
            (0..depth).fold(json!("deep"), |v, _| json!([v]))
        }),
    ]
}

fn url_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("https://example.com/hook".to_owned()),
        Just("http://127.0.0.1:9/".to_owned()),
        Just("http://169.254.169.254/latest".to_owned()),
        Just("http://[::ffff:10.0.0.1]/".to_owned()),
        Just("https://user:pass@example.com/?q#f".to_owned()),
        Just("ftp://example.com".to_owned()),
        Just("https://".to_owned()),
        Just("https://example.com/services/collector/event".to_owned()),
        "https://[a-z0-9.-]{0,20}(:[0-9]{1,6})?/[\\PC]{0,12}",
        (1usize..3000).prop_map(|n| format!("https://example.com/{}", "a".repeat(n))),
    ]
}

// ---------------------------------------------------------------------------------------------
// 1. Event Log bytes: the decoder and everything on the hot path that reads an event.

/// A generated message (valid events and the generator's own poison messages).
fn generated_event() -> impl Strategy<Value = Vec<u8>> {
    (any::<u64>(), 0usize..6).prop_map(|(seed, skip)| {
        let mut g = Generator::new(GeneratorConfig {
            seed,
            projects: 3,
            poison_every: Some(7),
            target_bytes: None,
        });
        for _ in 0..skip {
            g.next_message();
        }
        g.next_message().bytes
    })
}

/// Pieces of JSON (and not-quite JSON) spliced into events.
const FRAGMENTS: &[&str] = &[
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\u0000\"",
    "\"\\uD83D\\uDE00\"",
    "\"\\x\"",
    "\"\\u12\"",
    "1e999999",
    "-1e-999999",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901234567890.5e-3",
    "-0",
    "01",
    "1.",
    ".5",
    "+1",
    "NaN",
    "Infinity",
    "\"é\u{10ffff}\u{feff}\u{2028}\"",
    "\u{feff}",
    "\t\r\n ",
    "\x7f",
    "\u{0}",
    "true",
    "nul",
    "null",
    "{}",
    "[]",
    "{\"projectId\":\"nested\"}",
    ",\"projectId\":\"dup\"",
    ",\"projectId\":\"\"",
    ",\"projectId\":null",
    ",\"level\":\"ERROR\"",
    ",\"type\":\"EVENT_DESTINATION\",\"destinationId\":\"d\"",
    ",\"timestamp\":\"+275760-09-13T00:00:00Z\"",
    ",\"timestamp\":\"9999-12-31T23:59:59.999999999+23:59\"",
    ",\"timestamp\":\"1970-01-01T00:00:00Z\"",
    ",\"id\":\"evt_1\"",
    ",\"message\":\"m\"",
    ",\"status\":\"x\",\"ddsource\":1,\"ddtags\":[]",
    "\"projectId\"",
    "\"projectId\":",
    ":",
    ",",
    "}",
    "]",
    "{",
    "[",
    "\"",
    "\\",
];

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(Index),
    Flip(Index, u8),
    Insert(Index, &'static str),
    Replace(Index, Index, &'static str),
    /// `,"deep":` and this many nested arrays or objects, after the first `{`.
    Deepen(usize, bool),
    /// A routing field with this (escaped) string value, first in the object.
    Field(&'static str, String),
    /// The same bytes twice, or with a big number appended.
    Append(Vec<u8>),
    /// The object's values as an array (`["evt_1","proj_0001",…]`): valid JSON, not an object.
    Values,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let fragment = prop::sample::select(FRAGMENTS);
    let field = prop::sample::select(
        &[
            "projectId",
            "level",
            "type",
            "endUserId",
            "integrationId",
            "traceId",
            "eventName",
            "timestamp",
            "destinationId",
            "id",
            "message",
        ][..],
    );
    prop_oneof![
        2 => any::<Index>().prop_map(Mutation::Truncate),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        3 => (any::<Index>(), fragment.clone()).prop_map(|(i, f)| Mutation::Insert(i, f)),
        1 => (any::<Index>(), any::<Index>(), fragment).prop_map(|(a, b, f)| Mutation::Replace(a, b, f)),
        1 => (1usize..200, any::<bool>()).prop_map(|(d, o)| Mutation::Deepen(d, o)),
        3 => (field, "\\PC{0,12}", any::<u16>()).prop_map(|(k, v, mask)| Mutation::Field(k, escaped(&v, mask))),
        1 => prop_oneof![
            Just(b"{}".to_vec()),
            Just(b" ".to_vec()),
            "[0-9]{20,400}".prop_map(String::into_bytes),
        ].prop_map(Mutation::Append),
        1 => Just(Mutation::Values),
    ]
}

/// `text` as a JSON string, with the characters chosen by `mask` written as `\u` escapes
/// (surrogate pairs beyond the BMP): the form the fast scanner leaves to serde_json.
fn escaped(text: &str, mask: u16) -> String {
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        let forced = mask & (1 << (i % 16)) != 0;
        if forced || c == '"' || c == '\\' || (c as u32) < 0x20 {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

fn apply(mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let open = bytes.iter().position(|&b| b == b'{').map(|i| i + 1);
    match m {
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len() + 1)),
        Mutation::Flip(i, b) => {
            if !bytes.is_empty() {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
        }
        Mutation::Insert(i, f) => {
            let at = i.index(bytes.len() + 1);
            bytes.splice(at..at, f.bytes());
        }
        Mutation::Replace(a, b, f) => {
            let (a, b) = (a.index(bytes.len() + 1), b.index(bytes.len() + 1));
            bytes.splice(a.min(b)..a.max(b), f.bytes());
        }
        Mutation::Deepen(depth, objects) => {
            let at = open.unwrap_or(0);
            let (o, c) = if *objects {
                ("{\"a\":", "}")
            } else {
                ("[", "]")
            };
            let deep = format!("\"deep\":{}0{},", o.repeat(*depth), c.repeat(*depth));
            bytes.splice(at..at, deep.bytes());
        }
        Mutation::Field(key, value) => {
            let at = open.unwrap_or(0);
            let member = format!("\"{key}\":{value},");
            bytes.splice(at..at, member.bytes());
        }
        Mutation::Append(tail) => bytes.extend_from_slice(tail),
        Mutation::Values => {
            if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) {
                let values: Vec<Value> = map.into_iter().map(|(_, v)| v).collect();
                bytes = serde_json::to_vec(&values).unwrap();
            }
        }
    }
    bytes
}

fn hostile_event() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => (generated_event(), prop::collection::vec(mutation(), 0..4))
            .prop_map(|(bytes, ms)| ms.iter().fold(bytes, apply)),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => "\\PC{0,64}".prop_map(String::into_bytes),
    ]
}

fn same_fields(a: &RoutingFields<'_>, b: &RoutingFields<'_>) -> bool {
    a.project_id == b.project_id
        && a.level == b.level
        && a.kind == b.kind
        && a.end_user_id == b.end_user_id
        && a.integration_id == b.integration_id
        && a.trace_id == b.trace_id
        && a.event_name == b.event_name
        && a.timestamp == b.timestamp
        && a.destination_id == b.destination_id
}

fn starts_an_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// `decode` against serde_json: routable exactly when serde_json reads an object with a
/// non-empty string `projectId`, with the same fields; each other reason exactly when it holds.
fn check_decode(bytes: &[u8], max: usize) -> Option<RoutingFields<'_>> {
    let serde = serde_json::from_slice::<RoutingFields<'_>>(bytes);
    let text = String::from_utf8_lossy(bytes);
    match decode(Some(bytes), max) {
        Decoded::Routable(fields) => {
            assert!(bytes.len() <= max, "over the limit but routable: {text:?}");
            assert!(
                starts_an_object(bytes),
                "routable but not an object: {text:?}"
            );
            let slow = serde.unwrap_or_else(|e| panic!("routable, serde_json says {e}: {text:?}"));
            assert!(
                same_fields(&fields, &slow),
                "{fields:?} != {slow:?}: {text:?}"
            );
            assert!(fields.project_id.get().is_some_and(|p| !p.is_empty()));
            Some(fields)
        }
        Decoded::Unroutable {
            reason,
            detail,
            project,
            failure_event,
        } => {
            assert!(!detail.is_empty());
            if reason != Unroutable::TooLarge {
                assert!(bytes.len() <= max, "{reason:?} for an oversize message");
            }
            match reason {
                Unroutable::TooLarge => {
                    assert!(bytes.len() > max);
                    // The project is told only when the message is an object that has one.
                    let object = serde.ok().filter(|_| starts_an_object(bytes));
                    let expected = object.as_ref().and_then(|f| f.project_id.get());
                    assert_eq!(project.as_deref(), expected, "{text:?}");
                    let is_failure = object.is_some_and(|f| f.is_failure_event());
                    assert_eq!(failure_event, is_failure, "{text:?}");
                }
                Unroutable::InvalidJson => {
                    if starts_an_object(bytes) {
                        assert!(
                            serde.is_err(),
                            "invalid_json, serde_json reads it: {text:?}"
                        );
                    } else {
                        let any = serde_json::from_slice::<serde::de::IgnoredAny>(bytes);
                        assert!(any.is_err(), "invalid_json, serde_json reads it: {text:?}");
                    }
                }
                Unroutable::NotObject => {
                    assert!(!starts_an_object(bytes), "{text:?}");
                    assert!(serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok());
                }
                Unroutable::MissingProjectId => {
                    assert!(starts_an_object(bytes), "{text:?}");
                    let slow = serde.unwrap_or_else(|e| panic!("{e}: {text:?}"));
                    assert!(slow.project_id.get().is_none_or(str::is_empty), "{text:?}");
                    assert_eq!(failure_event, slow.is_failure_event());
                    assert_eq!(project, None);
                }
            }
            None
        }
    }
}

fn router() -> Router {
    let filter = |v: Value| -> FilterConfig { serde_json::from_value(v).unwrap() };
    let mut r = Router::new();
    let filters = [
        json!({}),
        json!({"min_level": "WARN"}),
        json!({"levels": ["DEBUG", "ERROR"], "types": ["APP_EVENT", "EVENT_DESTINATION"]}),
        json!({"since": "2020-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z"}),
        json!({"search": "\"projectId\"", "end_user_ids": ["u"], "event_names": ["e"]}),
        json!({"trace_ids": [""], "integration_ids": ["i"]}),
    ];
    for project in ["proj_0001", "proj_0002", "nested", "dup"] {
        for (i, f) in filters.iter().enumerate() {
            r.add(project, &format!("d{i}"), &filter(f.clone()), i);
        }
    }
    r
}

fn event(raw: &[u8]) -> courier::event::Event {
    courier::event::Event {
        raw: bytes::Bytes::copy_from_slice(raw),
        partition: 0,
        offset: 7,
        failure_event: false,
        ack: courier::source::AckId {
            partition: 0,
            generation: 1,
            offset: 7,
        },
    }
}

/// What the sinks build from a valid event object is valid JSON, the event itself unchanged
/// where they embed it.
fn check_sink_encoders(raw: &[u8], value: &Value) {
    use courier::sinks::webhook::Compression;
    let datadog = courier::sinks::datadog::Encoder::new(
        "courier",
        Some("svc"),
        None,
        &["env:fuzz".to_owned()],
        Compression::None,
    );
    let mut out = Vec::new();
    datadog
        .item_at(raw, &mut out, 1_760_000_000_000)
        .expect("a routable event is an object");
    let item: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "Datadog item is not JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    });
    assert!(item.get("ddsource").is_some() && item.get("status").is_some());

    let splunk = courier::sinks::splunk::Encoder::new(
        Some("h"),
        None,
        "courier",
        Some("main"),
        Compression::None,
        1 << 20,
    );
    let mut out = Vec::new();
    splunk.event(raw, &mut out).expect("an object");
    let wrapped: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "HEC event is not JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    });
    assert_eq!(&wrapped["event"], value);

    let mut out = Vec::new();
    courier::sinks::write_ndjson(&[event(raw)], &mut out);
    let line = out.strip_suffix(b"\n").expect("one line");
    assert!(!line.contains(&b'\n'));
    assert_eq!(&serde_json::from_slice::<Value>(line).unwrap(), value);
}

proptest! {
    #![proptest_config(cases(1500))]

    #[test]
    fn event_bytes_decode_as_serde_json_reads_them(bytes in hostile_event(), limit in any::<Index>()) {
        let router = router();
        for max in [usize::MAX, limit.index(bytes.len() + 2)] {
            let routable = check_decode(&bytes, max);
            if let Some(fields) = &routable {
                let _ = fields.is_failure_event();
                let mut lanes = Vec::new();
                router.route(fields, &bytes, Some(0), |l| lanes.push(l));
                router.route(fields, &bytes, None, |l| lanes.push(l));
                // Wrapped (as the sinks wrap it), the event is still within serde_json's depth.
                let wrapped = [&b"[["[..], &bytes, b"]]"].concat();
                if let (Ok(value), Ok(_)) = (
                    serde_json::from_slice::<Value>(&bytes),
                    serde_json::from_slice::<Value>(&wrapped),
                ) {
                    check_sink_encoders(&bytes, &value);
                }
            }
        }
        // The other readers of event bytes: the failure path's id and the S3 object time.
        let id = event_id(&bytes);
        let reported = courier::failures::size::reported_id(&bytes, "event-logs", 3, 9);
        prop_assert!(
            reported.len() <= courier::failures::size::MAX_REPORTED_ID_BYTES
                || reported == "event-logs-3-9"
        );
        if let Some(id) = id.filter(|id| id.len() <= courier::failures::size::MAX_REPORTED_ID_BYTES) {
            prop_assert_eq!(reported, id);
        }
        let _ = courier::sinks::s3::key::event_time(&bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The configuration file and the destinations API's definitions.

fn destination_tables() -> Vec<Value> {
    vec![
        json!({
            "project": "proj_a", "id": "hook", "type": "webhook", "enabled": true,
            "url": "https://example.com/hook", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "headers": {"Authorization": "Bearer token-1", "X-Api.Key": "k-1234"},
            "format": "ndjson", "compression": "gzip",
            "filter": {"min_level": "WARN", "types": ["APP_EVENT"], "search": "rec_42",
                       "since": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"},
            "delivery": {"max_in_flight": 2, "batch_timeout": "2s", "retry_schedule": ["30s", "2m"],
                         "queue_max_events": 500, "retry_max_elapsed": "1m"},
        }),
        json!({
            "project": "proj_a", "id": "dd", "type": "datadog", "api_key": "dd-key-123",
            "site": "datadoghq.eu", "service": "svc", "source": "src", "hostname": "h",
            "tags": ["env:prod", "team:x"], "compression": "none",
            "delivery": {"request_timeout": "10s", "circuit_failure_threshold": 3},
        }),
        json!({
            "project": "proj_b", "id": "splunk", "type": "splunk_hec",
            "endpoint": "https://splunk.example:8088", "token": "hec-token-1",
            "index": "main", "source": "s", "sourcetype": "st", "host": "h", "ack": true,
            "ack_timeout": "30s", "compression": "gzip", "max_request_bytes": 1_000_000,
            "tls": {"insecure_skip_verify": false},
            "delivery": {"probe_interval": "10s", "pause_after": "1h"},
        }),
        json!({
            "project": "proj_b", "id": "s3", "type": "s3", "bucket": "archive-bucket",
            "region": "eu-west-1", "endpoint": "https://s3.example.com", "force_path_style": true,
            "prefix": "logs/", "key_template": "{project}/{date}/{partition}-{first_offset}",
            "compression": "gzip", "access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t-key",
            "session_token": "session-tok", "server_side_encryption": "aws:kms",
            "kms_key_id": "alias/k", "multipart_threshold": 16_777_216,
            "multipart_part_size": 8_388_608,
            "delivery": {"batch_max_events": 1000, "batch_max_bytes": 1_048_576},
        }),
        json!({
            "project": "proj_b", "id": "mail", "type": "email", "host": "smtp.example.com",
            "port": 587, "tls_mode": "starttls", "username": "u", "password": "smtp-pass-1",
            "from": "Alerts <alerts@example.com>", "to": ["ops@example.com"],
            "min_interval": "15m", "max_message_bytes": 262_144,
        }),
    ]
}

fn config_tree() -> Value {
    let mut destinations = destination_tables();
    destinations.push(json!({
        "project": "proj_c", "id": "file", "type": "file", "path": "/nonexistent/courier-fuzz.ndjson",
    }));
    json!({
        "shutdown_timeout": "30s",
        "kafka": {"brokers": "127.0.0.1:9092", "topic": "event-logs", "group_id": "courier",
                  "commit_interval": "1s", "revoke_timeout": "10s",
                  "options": {"auto.offset.reset": "earliest", "message.max.bytes": "1000000"}},
        "failures": {"topic": "courier-failures", "retry_topic": "courier-retry",
                     "retry_topic_partitions": 3},
        "limits": {"max_event_bytes": 1_048_576, "max_in_flight_events": 100_000,
                   "max_in_flight_bytes": 134_217_728},
        "server": {"listen": "127.0.0.1:9464"},
        "log": {"format": "json", "level": "info"},
        "metrics": {"per_destination": true},
        "delivery": {"batch_max_events": 1000, "batch_max_bytes": 1_048_576, "batch_timeout": "1s",
                     "max_in_flight": 4, "request_timeout": "30s", "retry_max_elapsed": "2m",
                     "retry_initial_backoff": "200ms", "retry_max_backoff": "30s",
                     "queue_max_events": 10_000, "retry_schedule": ["30s", "2m", "10m"],
                     "circuit_failure_threshold": 5, "probe_interval": "30s", "pause_after": "72h"},
        "security": {"allow_networks": ["10.1.0.0/16"], "https_only": false},
        "destinations": destinations,
        "api": {"tokens": [{"token": "admin-token-0123456789"},
                           {"token": "tenant-token-0123456789", "projects": ["proj_a"]}],
                "encryption_key_env": "COURIER_FUZZ_KEY", "destinations_topic": "courier-destinations"},
    })
}

/// A location in a JSON tree: object keys and array indices.
type Path = Vec<Value>;

fn paths(value: &Value, here: &mut Path, out: &mut Vec<Path>) {
    out.push(here.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                here.push(Value::from(k.as_str()));
                paths(v, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                here.push(Value::from(i));
                paths(v, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(value: &'a mut Value, path: &[Value]) -> &'a mut Value {
    path.iter().fold(value, |v, step| match step {
        Value::String(k) => &mut v[k.as_str()],
        step => &mut v[step.as_u64().unwrap() as usize],
    })
}

/// Keys of every section, to be put where they do not belong.
const KNOWN_KEYS: &[&str] = &[
    "project",
    "id",
    "type",
    "url",
    "headers",
    "secret",
    "api_key",
    "token",
    "endpoint",
    "tls",
    "ca_file",
    "path",
    "bucket",
    "delivery",
    "filter",
    "max_in_flight",
    "queue_max_events",
    "retry_schedule",
    "ack_timeout",
    "request_timeout",
    "min_level",
    "levels",
    "tags",
    "key_template",
    "multipart_part_size",
    "enabled",
    "site",
];

#[derive(Debug, Clone)]
enum Edit {
    Set(Index, Value),
    /// Sets one of the keys of this name, wherever they are.
    SetNamed(Index, &'static str, Value),
    Remove(Index),
    Add(Index, String, Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    let key = prop_oneof![
        3 => prop::sample::select(KNOWN_KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z_.~/\\[\\]\"-]{1,10}",
    ];
    prop_oneof![
        4 => (any::<Index>(), hostile_value()).prop_map(|(i, v)| Edit::Set(i, v)),
        3 => (any::<Index>(), prop::sample::select(KNOWN_KEYS), hostile_value())
            .prop_map(|(i, k, v)| Edit::SetNamed(i, k, v)),
        1 => any::<Index>().prop_map(Edit::Remove),
        2 => (any::<Index>(), key, hostile_value()).prop_map(|(i, k, v)| Edit::Add(i, k, v)),
    ]
}

fn edited(mut tree: Value, edits: &[Edit]) -> Value {
    for e in edits {
        let mut all = Vec::new();
        paths(&tree, &mut Vec::new(), &mut all);
        match e {
            Edit::Set(i, v) => *at(&mut tree, &all[i.index(all.len())]) = v.clone(),
            Edit::SetNamed(i, key, v) => {
                let named: Vec<&Path> = all
                    .iter()
                    .filter(|p| p.last().and_then(Value::as_str) == Some(*key))
                    .collect();
                if !named.is_empty() {
                    *at(&mut tree, named[i.index(named.len())]) = v.clone();
                }
            }
            Edit::Remove(i) => {
                let path = &all[i.index(all.len())];
                if let Some((last, parent)) = path.split_last() {
                    match (at(&mut tree, parent), last) {
                        (Value::Object(m), Value::String(k)) => {
                            m.remove(k);
                        }
                        (Value::Array(a), i) => {
                            a.remove(i.as_u64().unwrap() as usize);
                        }
                        _ => {}
                    }
                }
            }
            Edit::Add(i, k, v) => {
                let target = at(&mut tree, &all[i.index(all.len())]);
                match target {
                    Value::Object(m) => {
                        m.insert(k.clone(), v.clone());
                    }
                    Value::Array(a) => a.push(v.clone()),
                    other => *other = json!({ k.clone(): v.clone() }),
                }
            }
        }
    }
    tree
}

/// TOML for a JSON tree: one `key = value` line per top-level key, inline tables below.
/// `null`s are left out (TOML has none).
fn toml(tree: &Value) -> String {
    fn string(s: &str) -> String {
        // A JSON string is a TOML basic string, except that TOML wants DEL escaped too.
        serde_json::to_string(s)
            .unwrap()
            .replace('\u{7f}', "\\u007f")
    }
    fn value(v: &Value, out: &mut String) {
        match v {
            Value::Null => out.push_str("\"\""),
            Value::Bool(b) => out.push_str(&b.to_string()),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::String(s) => out.push_str(&string(s)),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    value(item, out);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (k, v)) in map.iter().filter(|(_, v)| !v.is_null()).enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&string(k));
                    out.push_str(" = ");
                    value(v, out);
                }
                out.push('}');
            }
        }
    }
    let mut out = String::new();
    match tree {
        Value::Object(map) => {
            for (k, v) in map.iter().filter(|(_, v)| !v.is_null()) {
                out.push_str(&string(k));
                out.push_str(" = ");
                value(v, &mut out);
                out.push('\n');
            }
        }
        other => value(other, &mut out),
    }
    out
}

/// The segments of a configuration key path: `destinations[2].headers."X.Y"`.
fn segments(path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(tail) = rest.strip_prefix('.') {
            rest = tail;
        } else if let Some(tail) = rest.strip_prefix('[') {
            let end = tail.find(']').unwrap_or(tail.len());
            let index = &tail[..end];
            out.push(index.parse::<u64>().map_or(Value::from(index), Value::from));
            rest = tail.get(end + 1..).unwrap_or("");
        } else if rest.starts_with('"') {
            let mut quoted = serde_json::Deserializer::from_str(rest).into_iter::<String>();
            let key = quoted.next().expect("a quoted key").expect("a JSON string");
            rest = &rest[quoted.byte_offset()..];
            out.push(Value::from(key));
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Value::from(&rest[..end]));
            rest = &rest[end..];
        }
    }
    out
}

/// Whether `path` (or, for a missing key or a check across keys, its parent) exists in `tree`.
fn names_a_place(tree: &Value, path: &[Value]) -> bool {
    let find = |path: &[Value]| {
        path.iter().try_fold(tree, |v, step| match step {
            Value::String(k) => v.get(k.as_str()),
            step => v.get(step.as_u64()? as usize),
        })
    };
    find(path).is_some()
        || path
            .split_last()
            .is_some_and(|(_, parent)| find(parent).is_some())
}

fn env(overrides: &[(String, String)]) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        (
            "COURIER_FUZZ_KEY".to_owned(),
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_owned(),
        ),
        ("HOME".to_owned(), "/home/fuzz".to_owned()),
    ]);
    env.extend(overrides.iter().cloned());
    env
}

fn env_override() -> impl Strategy<Value = (String, String)> {
    let key = prop::sample::select(
        &[
            "COURIER__DELIVERY__MAX_IN_FLIGHT",
            "COURIER__DELIVERY__RETRY_MAX_ELAPSED",
            "COURIER__LIMITS__MAX_EVENT_BYTES",
            "COURIER__KAFKA__COMMIT_INTERVAL",
            "COURIER__SHUTDOWN_TIMEOUT",
        ][..],
    );
    let value = prop_oneof![
        duration_text(),
        Just("2305843009213693952".to_owned()),
        Just("-1".to_owned()),
        "[0-9]{1,25}",
        hostile_string(),
    ];
    (key.prop_map(str::to_owned), value)
}

/// An accepted delivery configuration is within its bounds.
fn assert_delivery_in_bounds(d: &DeliveryConfig) {
    bounds::size(d.batch_max_events, bounds::BATCH_MAX_EVENTS).unwrap();
    bounds::size(d.batch_max_bytes, bounds::BATCH_MAX_BYTES).unwrap();
    bounds::duration(d.batch_timeout, bounds::BATCH_TIMEOUT).unwrap();
    bounds::size(d.max_in_flight, bounds::MAX_IN_FLIGHT).unwrap();
    bounds::duration(d.request_timeout, bounds::REQUEST_TIMEOUT).unwrap();
    bounds::duration(d.retry_max_elapsed, bounds::RETRY_MAX_ELAPSED).unwrap();
    bounds::duration(d.retry_initial_backoff, bounds::RETRY_INITIAL_BACKOFF).unwrap();
    bounds::duration(d.retry_max_backoff, bounds::RETRY_MAX_BACKOFF).unwrap();
    assert!(d.retry_initial_backoff <= d.retry_max_backoff);
    bounds::size(d.queue_max_events, bounds::QUEUE_MAX_EVENTS).unwrap();
    bounds::entries(d.retry_schedule.len(), bounds::MAX_RETRY_SCHEDULE_LEN).unwrap();
    for delay in &d.retry_schedule {
        bounds::duration(*delay, bounds::RETRY_SCHEDULE_ENTRY).unwrap();
    }
    bounds::count(
        d.circuit_failure_threshold.into(),
        bounds::CIRCUIT_FAILURE_THRESHOLD,
    )
    .unwrap();
    bounds::duration(d.probe_interval, bounds::PROBE_INTERVAL).unwrap();
    bounds::duration(d.pause_after, bounds::PAUSE_AFTER).unwrap();
}

/// An accepted destination is within every bound of its settings.
fn assert_destination_in_bounds(d: &courier::config::DestinationConfig) {
    assert_delivery_in_bounds(&d.delivery);
    bounds::chars(&d.project, bounds::MAX_PROJECT_CHARS).unwrap();
    bounds::chars(&d.id, bounds::MAX_ID_CHARS).unwrap();
    assert!(!d.project.trim().is_empty() && !d.id.trim().is_empty());
    let f = &d.filter;
    for list in [
        &f.types,
        &f.end_user_ids,
        &f.integration_ids,
        &f.trace_ids,
        &f.event_names,
    ] {
        bounds::entries(list.len(), bounds::MAX_FILTER_VALUES).unwrap();
        for v in list {
            bounds::chars(v, bounds::MAX_FILTER_VALUE_CHARS).unwrap();
        }
    }
    let secret =
        |s: &courier::config::Secret| bounds::bytes(s.expose(), bounds::MAX_SECRET_BYTES).unwrap();
    let name = |s: &Option<String>| {
        if let Some(s) = s {
            bounds::chars(s, bounds::MAX_NAME_CHARS).unwrap();
        }
    };
    match &d.sink {
        SinkConfig::Webhook(c) => {
            bounds::chars(&c.url, bounds::MAX_URL_CHARS).unwrap();
            bounds::entries(c.headers.len(), bounds::MAX_HEADERS).unwrap();
            c.headers.values().for_each(secret);
            c.secret.iter().for_each(secret);
        }
        SinkConfig::Datadog(c) => {
            secret(&c.api_key);
            c.endpoint
                .iter()
                .for_each(|u| bounds::chars(u, bounds::MAX_URL_CHARS).unwrap());
            bounds::entries(c.tags.len(), bounds::MAX_TAGS).unwrap();
            [&c.service, &c.source, &c.hostname]
                .into_iter()
                .for_each(name);
        }
        SinkConfig::SplunkHec(c) => {
            secret(&c.token);
            bounds::chars(&c.endpoint, bounds::MAX_URL_CHARS).unwrap();
            bounds::duration(c.ack_timeout, bounds::ACK_TIMEOUT).unwrap();
            bounds::size(c.max_request_bytes, bounds::MAX_REQUEST_BYTES).unwrap();
            [&c.index, &c.source, &c.sourcetype, &c.host]
                .into_iter()
                .for_each(name);
        }
        SinkConfig::Otlp(c) => {
            bounds::chars(&c.endpoint, bounds::MAX_URL_CHARS).unwrap();
            bounds::chars(&c.logs_path, bounds::MAX_URL_CHARS).unwrap();
            bounds::entries(c.headers.len(), bounds::MAX_HEADERS).unwrap();
            c.headers.values().for_each(secret);
            bounds::chars(&c.service_name, bounds::MAX_NAME_CHARS).unwrap();
            bounds::size(c.max_request_bytes, bounds::MAX_REQUEST_BYTES).unwrap();
        }
        SinkConfig::S3(c) => {
            [&c.access_key_id, &c.secret_access_key, &c.session_token]
                .into_iter()
                .flatten()
                .for_each(secret);
            c.endpoint
                .iter()
                .for_each(|u| bounds::chars(u, bounds::MAX_URL_CHARS).unwrap());
            bounds::bytes(&c.prefix, bounds::MAX_KEY_PART_BYTES).unwrap();
            bounds::bytes(c.key_template(), bounds::MAX_KEY_PART_BYTES).unwrap();
            bounds::size(c.multipart_threshold, bounds::MULTIPART_THRESHOLD).unwrap();
            bounds::size(c.multipart_part_size, bounds::MULTIPART_PART_SIZE).unwrap();
            name(&c.region);
        }
        SinkConfig::File(c) => {
            bounds::bytes(&c.path.to_string_lossy(), bounds::MAX_PATH_BYTES).unwrap();
        }
        SinkConfig::Email(c) => {
            c.password.iter().for_each(secret);
            bounds::chars(&c.host, bounds::MAX_NAME_CHARS).unwrap();
            assert!(!c.to.is_empty());
            bounds::entries(c.to.len(), courier::sinks::email::MAX_RECIPIENTS).unwrap();
            bounds::size(
                c.max_message_bytes,
                courier::sinks::email::MAX_MESSAGE_BYTES,
            )
            .unwrap();
        }
    }
}

/// The tokens of a JSON pointer.
fn pointer_segments(pointer: &str) -> Vec<Value> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| {
            let t = t.replace("~1", "/").replace("~0", "~");
            t.parse::<u64>().map_or(Value::from(t), Value::from)
        })
        .collect()
}

/// [`names_a_place`] for a JSON pointer.
fn names_a_place_by_pointer(tree: &Value, pointer: &str) -> bool {
    let segments = pointer_segments(pointer);
    // A numeric token names an array index or an object key (`/headers/1`).
    let as_keys: Vec<Value> = segments
        .iter()
        .map(|s| {
            Value::from(
                s.as_u64()
                    .map_or_else(|| s.as_str().unwrap().to_owned(), |n| n.to_string()),
            )
        })
        .collect();
    names_a_place(tree, &segments) || names_a_place(tree, &as_keys)
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn configuration_files_are_read_without_panics_and_errors_name_their_key(
        edits in prop::collection::vec(edit(), 0..5),
        overrides in prop::collection::vec(env_override(), 0..2),
        text_cut in prop::option::weighted(0.15, (any::<Index>(), any::<u8>())),
    ) {
        let tree = edited(config_tree(), &edits);
        let mut text = toml(&tree);
        if let Some((at, byte)) = text_cut {
            // A byte-level mutation of the text: most are syntax errors, some are not.
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let env = env(&overrides);
        match courier::config::parse("fuzz.toml", &text, &env) {
            Ok(config) => {
                assert_delivery_in_bounds(&config.delivery);
                bounds::size(config.limits.max_event_bytes, bounds::MAX_EVENT_BYTES).unwrap();
                bounds::duration(config.shutdown_timeout, bounds::SHUTDOWN_TIMEOUT).unwrap();
                bounds::duration(config.kafka.commit_interval, bounds::COMMIT_INTERVAL).unwrap();
                bounds::duration(config.kafka.revoke_timeout, bounds::REVOKE_TIMEOUT).unwrap();
                let limits = &config.limits;
                bounds::size(limits.max_in_flight_events, bounds::MAX_IN_FLIGHT_EVENTS).unwrap();
                bounds::size(limits.max_in_flight_bytes, bounds::MAX_IN_FLIGHT_BYTES).unwrap();
                let partitions = u64::try_from(config.failures.retry_topic_partitions).unwrap();
                bounds::count(partitions, bounds::RETRY_TOPIC_PARTITIONS).unwrap();
                for d in &config.destinations {
                    assert_destination_in_bounds(d);
                }
            }
            Err(errors) => {
                prop_assert!(!errors.0.is_empty());
                let whole_file = errors.0.len() == 1 && errors.0[0].path.is_empty();
                for e in &errors.0 {
                    prop_assert_eq!(&e.file, "fuzz.toml");
                    prop_assert!(!e.message.is_empty());
                    if whole_file || text_cut.is_some() {
                        continue;
                    }
                    let overridden = |section: &str| overrides.iter().any(|(k, _)| {
                        k.to_ascii_lowercase().starts_with(&format!("courier__{section}"))
                    });
                    let path = segments(&e.path);
                    let top = path.first().and_then(Value::as_str).unwrap_or("");
                    prop_assert!(
                        names_a_place(&tree, &path) || overridden(top),
                        "{} names no place in the file: {}\n{}", e.path, e.message, text
                    );
                }
            }
        }
    }

    #[test]
    fn api_definitions_are_read_without_panics_errors_carry_pointers_and_accepted_ones_are_bounded(
        which in any::<Index>(),
        edits in prop::collection::vec(edit(), 0..5),
        https_only in any::<bool>(),
    ) {
        let tables = destination_tables();
        let definition = edited(tables[which.index(tables.len())].clone(), &edits);
        let security = SecurityConfig { https_only, ..SecurityConfig::default() };
        match courier::config::parse_destination(definition.clone(), &DeliveryConfig::default(), &security) {
            Ok(d) => {
                assert_destination_in_bounds(&d);
                // Nothing on the courier host is named (or read) through the API.
                prop_assert!(!matches!(d.sink, SinkConfig::File(_)));
                if let SinkConfig::SplunkHec(c) = &d.sink {
                    prop_assert_eq!(&c.tls.ca_file, &None);
                }
                if let SinkConfig::Email(c) = &d.sink {
                    prop_assert_eq!(&c.tls_ca_file, &None);
                }
                // Building the destination's sink (its lane's first step) does not panic.
                let _ = courier::sinks::build(&d, "event-logs", &security);
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for (pointer, message) in &errors {
                    prop_assert!(!message.is_empty());
                    prop_assert!(message.chars().count() <= 1025, "{}", message.len());
                    if pointer.is_empty() {
                        prop_assert!(
                            !definition.is_object() || message.starts_with("missing field"),
                            "no pointer for {:?}", message
                        );
                        continue;
                    }
                    prop_assert!(pointer.starts_with('/'), "{:?}", pointer);
                    prop_assert!(
                        names_a_place_by_pointer(&definition, pointer),
                        "{} names no place in the definition: {}\n{}", pointer, message, definition
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Destinations' answers: every sink's classifier and the shared helpers.

/// Secrets a destination is configured with: some contain what the mask is made of. Those
/// carry an `é`, which no classifier's own prose has, so that a secret like `" ***"` is not
/// "found" in the fixed text around a mask (`answered HTTP 300: ****`).
fn secrets() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            "[a-zA-Z0-9]{4,24}",
            "[a-z*\"\\\\/ ]{0,6}é[a-z*\"\\\\/é ]{1,6}",
            Just("Bearer tok-1234".to_owned()),
        ],
        0..4,
    )
}

/// An answer assembled from junk, HEC-like JSON and the secrets (as sent or JSON-escaped).
fn answer_with(secrets: Vec<String>) -> impl Strategy<Value = (Vec<String>, Vec<u8>)> {
    let n = secrets.len();
    let piece = prop_oneof![
        4 => "\\PC{0,24}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..16),
        1 => (1usize..20_000).prop_map(|n| vec![b'x'; n]),
        2 => (any::<Index>(), any::<bool>()).prop_map(move |(i, escaped)| {
            // A placeholder: secret number i, raw or JSON-escaped.
            format!("\u{0}SECRET{}{}\u{0}", i.index(n.max(1)), u8::from(escaped)).into_bytes()
        }),
    ];
    prop::collection::vec(piece, 0..8).prop_map(move |pieces| {
        let mut body = Vec::new();
        for p in pieces {
            let text = String::from_utf8_lossy(&p);
            match text
                .strip_prefix("\u{0}SECRET")
                .and_then(|t| t.strip_suffix('\u{0}'))
            {
                Some(tag) if !secrets.is_empty() => {
                    let (i, escaped) = tag.split_at(tag.len() - 1);
                    let secret = &secrets[i.parse::<usize>().unwrap()];
                    if escaped == "1" {
                        let json = serde_json::to_string(secret).unwrap();
                        body.extend_from_slice(&json.as_bytes()[1..json.len() - 1]);
                    } else {
                        body.extend_from_slice(secret.as_bytes());
                    }
                }
                _ => body.extend_from_slice(&p),
            }
        }
        (secrets.clone(), body)
    })
}

fn json_number_or_junk() -> impl Strategy<Value = String> {
    prop_oneof![
        (0i64..20).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("18446744073709551616".to_owned()),
        Just("-1".to_owned()),
        Just("1e400".to_owned()),
        Just("6.0".to_owned()),
        Just("\"6\"".to_owned()),
        Just("null".to_owned()),
        Just("[6]".to_owned()),
        Just("{}".to_owned()),
    ]
}

/// Text an endpoint puts in its JSON answer: short and odd, or as long as an answer is read.
fn answer_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => hostile_string().prop_map(|s| serde_json::to_string(&s).unwrap()),
        1 => "\\PC{0,12}".prop_map(|s| escaped(&s, 0xffff)),
        2 => (600usize..60_000).prop_map(|n| format!("\"{}\"", "é".repeat(n / 2))),
    ]
}

/// A HEC JSON answer with hostile members, sometimes cut short.
fn hec_answer() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![
        4 => (0i64..17).prop_map(|n| n.to_string()),
        1 => json_number_or_junk(),
    ];
    (
        prop::option::weighted(0.8, answer_text()),
        prop::option::weighted(0.8, code),
        prop::option::of(json_number_or_junk()),
        prop::option::of(json_number_or_junk()),
        prop::option::weighted(0.2, any::<Index>()),
    )
        .prop_map(|(text, code, invalid, ack, cut)| {
            let mut members = Vec::new();
            if let Some(t) = text {
                members.push(format!("\"text\":{t}"));
            }
            if let Some(c) = code {
                members.push(format!("\"code\":{c}"));
            }
            if let Some(n) = invalid {
                members.push(format!("\"invalid-event-number\":{n}"));
            }
            if let Some(a) = ack {
                members.push(format!("\"ackId\":{a}"));
            }
            let mut body = format!("{{{}}}", members.join(",")).into_bytes();
            if let Some(cut) = cut {
                body.truncate(cut.index(body.len() + 1));
            }
            body
        })
}

/// An indexer acknowledgement answer with hostile ids and values.
fn ack_answer() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        Just("-1".to_owned()),
        Just("18446744073709551616".to_owned()),
        hostile_string(),
    ];
    let indexed = prop_oneof![
        3 => Just("true".to_owned()),
        1 => Just("false".to_owned()),
        1 => Just("1".to_owned()),
        1 => Just("null".to_owned()),
        2 => answer_text(),
    ];
    prop::collection::vec((id, indexed), 0..6).prop_map(|acks| {
        let members: Vec<String> = acks
            .iter()
            .map(|(id, v)| format!("{}:{v}", serde_json::to_string(id).unwrap()))
            .collect();
        format!("{{\"acks\":{{{}}}}}", members.join(",")).into_bytes()
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..64),
        2 => "\\PC{0,64}".prop_map(String::into_bytes),
        1 => (1usize..70_000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
        1 => (1usize..20_000).prop_map(|n| "é✓\u{10ffff}".repeat(n).into_bytes()),
        3 => hec_answer(),
        2 => ack_answer(),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(&[200u16, 202, 204, 301, 400, 401, 403, 404, 408, 410, 413, 429, 500, 501, 503][..]),
        2 => 100u16..1000,
        1 => any::<u16>(),
    ]
}

/// The longest fixed text a classifier's message adds around the answer it keeps (and the
/// `… (N bytes)` of a trimmed one).
const PROSE: usize = 400;

/// Whether `text` still holds `secret`. A mask next to other text can spell a secret made of
/// stars (`: ****` holds `" ***"`), so masks are set aside first — unless the secret itself
/// contains a whole mask, where the two cannot be told apart.
fn leaks(text: &[u8], secret: &[u8]) -> bool {
    let mask = courier::sinks::scrub::MASK.as_bytes();
    if memchr::memmem::find(secret, mask).is_some() {
        return memchr::memmem::find(text, secret).is_some();
    }
    let mut set_aside = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = memchr::memmem::find(rest, mask) {
        set_aside.extend_from_slice(&rest[..at]);
        set_aside.push(0);
        rest = &rest[at + mask.len()..];
    }
    set_aside.extend_from_slice(rest);
    memchr::memmem::find(&set_aside, secret).is_some()
}

#[test]
fn a_mask_next_to_text_is_not_a_leak() {
    assert!(!leaks(b"answered HTTP 300: ****", b" ***"));
    assert!(leaks(b"answered HTTP 300:  ***", b" ***"));
    assert!(leaks(b"x****y", b"x****y"));
}

/// A kept answer is bounded and, when `scrubber` masked the answer, free of its secrets.
fn assert_kept(error: &DeliveryError, extra: usize, secrets: &[String]) {
    assert!(
        error.message.len() <= MAX_ANSWER_BYTES + PROSE + extra,
        "{} bytes kept: {:.200}…",
        error.message.len(),
        error.message
    );
    for s in secrets
        .iter()
        .filter(|s| s.len() >= courier::sinks::scrub::MIN_SECRET_BYTES)
    {
        assert!(
            !leaks(error.message.as_bytes(), s.as_bytes()),
            "secret {s:?} kept in {:?}",
            error.message
        );
    }
}

fn assert_outcome(outcome: &Outcome, extra: usize, secrets: &[String]) {
    match outcome {
        Outcome::Delivered => {}
        Outcome::Retry { error, retry_after } => {
            assert_kept(error, extra, secrets);
            assert!(
                retry_after.is_none_or(|d| d <= MAX_RETRY_AFTER),
                "{retry_after:?}"
            );
        }
        Outcome::Rejected { error, .. } => assert_kept(error, extra, secrets),
        Outcome::Partial(parts) => {
            for (_, o) in parts {
                assert_outcome(o, extra, secrets);
            }
        }
    }
}

/// A `Retry-After` or `X-RateLimit-Reset` value.
fn retry_after_text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        (0u64..1000).prop_map(|n| format!(" {n} ").into_bytes()),
        Just(b"18446744073709551616".to_vec()),
        Just(b"-3".to_vec()),
        Just(b"Fri, 31 Dec 9999 23:59:59 GMT".to_vec()),
        Just(b"Sun, 06 Nov 1994 08:49:37 GMT".to_vec()),
        Just(b"Sunday, 06-Nov-94 08:49:37 GMT".to_vec()),
        Just(b"Sun Nov  6 08:49:37 1994".to_vec()),
        (2000u32..10000).prop_map(|y| format!("Fri, 31 Dec {y} 23:59:59 GMT").into_bytes()),
        "\\PC{0,30}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..30),
    ]
}

/// A response as reqwest hands it to a sink.
fn response(status: u16, header: &str, value: &[u8], body: Vec<u8>) -> Option<reqwest::Response> {
    let mut builder = axum::http::Response::builder().status(status);
    if let Ok(value) = axum::http::HeaderValue::from_bytes(value) {
        builder = builder.header(header, value);
    }
    builder.body(body).ok().map(reqwest::Response::from)
}

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn retry_after_is_read_within_the_clamp(value in retry_after_text(), status in 100u16..600) {
        let now = SystemTime::now();
        if let Ok(text) = std::str::from_utf8(&value) {
            let after = parse_retry_after(text, now);
            prop_assert!(after.is_none_or(|d| d <= MAX_RETRY_AFTER), "{:?} for {:?}", after, text);
        }
        if let Some(r) = response(status, "retry-after", &value, Vec::new()) {
            let after = courier::sinks::http::retry_after(&r);
            prop_assert!(after.is_none_or(|d| d <= MAX_RETRY_AFTER), "{:?}", after);
        }
        if let Some(r) = response(status, "x-ratelimit-reset", &value, Vec::new()) {
            let after = courier::sinks::datadog::rate_limit_reset(&r);
            prop_assert!(after.is_none_or(|d| d <= MAX_RETRY_AFTER), "{:?}", after);
        }
    }

    #[test]
    fn scrubbed_answers_keep_no_secret_even_when_cut(
        (secrets, answer) in secrets().prop_flat_map(answer_with),
        cut in any::<Index>(),
        status in status(),
    ) {
        let scrubber = Scrubber::new(&secrets);
        let read = cut.index(answer.len() + 1);
        let complete = read == answer.len();
        let clean = scrubber.clean(&answer[..read], complete);
        let masked = scrubber.clean(&answer[..read], true);
        prop_assert!(masked.starts_with(&clean), "only an end is dropped");
        let dropped = masked.len() - clean.len();
        for s in secrets.iter().filter(|s| s.len() >= courier::sinks::scrub::MIN_SECRET_BYTES) {
            let json = serde_json::to_string(s).unwrap();
            for form in [s.as_str(), &json[1..json.len() - 1]] {
                let form = form.as_bytes();
                prop_assert!(
                    !leaks(&clean, form),
                    "{:?} kept in {:?}", String::from_utf8_lossy(form), String::from_utf8_lossy(&clean)
                );
                // A secret the read cut in two: its first part is dropped with the end.
                for start in memchr::memmem::find_iter(&answer, form) {
                    let part = &answer[start.min(read)..read];
                    if start < read && start + form.len() > read && masked.ends_with(part) {
                        prop_assert!(
                            dropped >= part.len(),
                            "{:?} kept of {:?}", String::from_utf8_lossy(part), String::from_utf8_lossy(form)
                        );
                    }
                }
            }
        }
        let error = status_error(status, &clean);
        assert_kept(&error, 0, &secrets);
        prop_assert_eq!(scrubber.clean_text(&error.message), error.message.clone());
    }

    #[test]
    fn every_sink_keeps_a_bounded_answer_free_of_secrets(
        (secrets, answer) in secrets().prop_flat_map(answer_with),
        body in body(),
        status in status(),
        after in prop::option::of((0u64..=300).prop_map(Duration::from_secs)),
        events in 0usize..2000,
        ack in any::<bool>(),
        index in prop::option::of("\\PC{0,64}"),
    ) {
        let scrubber = Scrubber::new(&secrets);
        let index_extra = index.as_ref().map_or(0, |i| 6 * i.len());
        for answer in [scrubber.clean(&answer, true), scrubber.clean(&body, true)] {
            // Text of the answer as kept: bounded, valid UTF-8 (a String), no secret.
            let trimmed = courier::sinks::trim_answer(&answer, MAX_ANSWER_BYTES);
            prop_assert!(trimmed.len() <= MAX_ANSWER_BYTES + 32);

            // As a built sink reports it: its message masked as composed (`sinks::masked`).
            let masked = |o| scrubber.clean_outcome(o);
            let outcome = masked(courier::sinks::webhook::classify(status, &answer, after));
            assert_outcome(&outcome, 0, &secrets);
            prop_assert_eq!((200..300).contains(&status), outcome == Outcome::Delivered);

            match courier::sinks::datadog::classify(status, &answer, after, events) {
                courier::sinks::datadog::Verdict::Split => prop_assert!(status == 413 && events > 1),
                courier::sinks::datadog::Verdict::Outcome(o) => assert_outcome(&masked(o), 0, &secrets),
            }

            use courier::sinks::splunk::Verdict;
            match courier::sinks::splunk::classify(status, &answer, after, events, ack, index.as_deref()) {
                Verdict::Outcome(o) => assert_outcome(&masked(o), index_extra, &secrets),
                Verdict::AwaitAck(_) | Verdict::DeliveredWithoutAck => {
                    prop_assert!(ack && (200..300).contains(&status));
                }
                Verdict::Split => prop_assert!(status == 413 && events > 1),
                Verdict::InvalidEvent { index: bad, error } => {
                    prop_assert!(bad < events);
                    assert_kept(&scrubber.clean_error(error), index_extra, &secrets);
                }
            }

            use courier::sinks::splunk::AckVerdict;
            match courier::sinks::splunk::classify_ack(status, &answer) {
                AckVerdict::Indexed(ids) => prop_assert!((200..300).contains(&status) && ids.len() <= 6),
                AckVerdict::All(o) => {
                    prop_assert!(!(200..300).contains(&status));
                    assert_outcome(&masked(o), 0, &secrets);
                }
                AckVerdict::Problem(p) => assert_kept(
                    &scrubber.clean_error(DeliveryError { message: p, ..status_error(status, b"") }),
                    0,
                    &secrets,
                ),
            }
        }
    }

    #[test]
    fn s3_errors_are_classified_bounded_and_free_of_secrets(
        (secrets, answer) in secrets().prop_flat_map(answer_with),
        status in status(),
        code in prop_oneof![
            prop::sample::select(&["SlowDown", "NoSuchBucket", "AccessDenied", "KMS.NotFoundException", "InvalidToken", ""][..]).prop_map(str::to_owned),
            hostile_string(),
        ],
        variant in 0u8..8,
        kind in 0u8..6,
    ) {
        use object_store::client::{HttpError, HttpErrorKind};
        let scrubber = Scrubber::new(&secrets);
        let answer = String::from_utf8_lossy(&answer);
        let text = format!(
            "Error performing PUT http://127.0.0.1:1/b/k in 3ms - Server returned non-2xx status code: {status} X: <?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>{answer}</Message></Error>{answer}"
        );
        let source: Box<dyn std::error::Error + Send + Sync> = if variant == 7 {
            let kind = [HttpErrorKind::Connect, HttpErrorKind::Request, HttpErrorKind::Timeout,
                        HttpErrorKind::Interrupted, HttpErrorKind::Decode, HttpErrorKind::Unknown][kind as usize];
            Box::new(HttpError::new(kind, std::io::Error::other(text)))
        } else {
            Box::new(std::io::Error::other(text))
        };
        let path = "k".to_owned();
        let error = match variant {
            0 => object_store::Error::NotFound { path, source },
            1 => object_store::Error::PermissionDenied { path, source },
            2 => object_store::Error::Unauthenticated { path, source },
            3 => object_store::Error::AlreadyExists { path, source },
            4 => object_store::Error::Precondition { path, source },
            _ => object_store::Error::Generic { store: "S3", source },
        };
        let outcome = courier::sinks::s3::classify::classify(&error, "archive", "PUT k", &scrubber);
        prop_assert!(!matches!(outcome, Outcome::Delivered | Outcome::Partial(_)));
        assert_outcome(&outcome, 0, &secrets);
    }
}

/// What `read_limited` makes of a body that arrives in these chunks (an `Err` chunk: the
/// connection broke there).
fn read_in_chunks(chunks: &[Result<Vec<u8>, ()>], max: usize) -> courier::sinks::http::Limited {
    let stream = futures::stream::iter(
        chunks
            .iter()
            .map(|c| c.clone().map_err(|()| std::io::Error::other("reset")))
            .collect::<Vec<_>>(),
    );
    let response = axum::http::Response::builder()
        .status(400)
        .body(reqwest::Body::wrap_stream(stream))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(courier::sinks::http::read_limited(
        reqwest::Response::from(response),
        max,
    ))
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn answers_are_read_up_to_their_limit_whatever_their_chunks(
        chunks in prop::collection::vec(
            prop_oneof![
                9 => prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..40),
                    (1usize..20_000).prop_map(|n| vec![b'x'; n]),
                ].prop_map(Ok),
                1 => Just(Err(())),
            ],
            0..8,
        ),
        max in prop_oneof![0usize..64, Just(MAX_ANSWER_BYTES), Just(courier::sinks::http::ANSWER_READ_BYTES)],
    ) {
        let read = read_in_chunks(&chunks, max);
        // What arrived before the body ended or broke.
        let until_error = chunks.iter().take_while(|c| c.is_ok());
        let sent: Vec<u8> = until_error.flat_map(|c| c.clone().unwrap()).collect();
        let broke = chunks.iter().any(Result::is_err);
        prop_assert!(read.body.len() <= max);
        prop_assert_eq!(&read.body[..], &sent[..sent.len().min(max)]);
        if sent.len() > max {
            prop_assert!(!read.complete);
        } else {
            prop_assert_eq!(read.complete, !broke);
            prop_assert_eq!(read.error.is_some(), broke);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the targets above found, pinned.

/// serde reads a struct from an array too, field by field: a destination's `delivery` given as
/// an array set its settings by position, past the bounds (checked only for the keys a table
/// sets), so `queue_max_events` = 2^61 was accepted again, through the API and the file alike.
#[test]
fn a_table_given_as_an_array_is_refused() {
    let positional = json!([
        1,
        1,
        "1s",
        1,
        "1s",
        "1s",
        "1ms",
        "1ms",
        2_305_843_009_213_693_952_u64
    ]);
    let definition = json!({
        "project": "p", "id": "d", "type": "webhook", "url": "https://example.com/h",
        "delivery": positional, "filter": ["ERROR"],
    });
    let errors = courier::config::parse_destination(
        definition,
        &DeliveryConfig::default(),
        &SecurityConfig::default(),
    )
    .expect_err("a positional delivery table is refused");
    assert_eq!(
        errors,
        [
            (
                "/filter".to_owned(),
                "invalid type: sequence, expected a table".to_owned()
            ),
            (
                "/delivery".to_owned(),
                "invalid type: sequence, expected a table".to_owned()
            ),
        ]
    );
    let text = format!(
        "[kafka]\nbrokers = \"127.0.0.1:9092\"\ndelivery = 1\n[[destinations]]\nproject = \"p\"\nid = \"d\"\ntype = \"webhook\"\nurl = \"https://example.com/h\"\ndelivery = {}\n",
        toml(&positional)
    )
    .replace("delivery = 1\n", "");
    let errors = courier::config::parse("fuzz.toml", &text, &BTreeMap::new()).unwrap_err();
    let paths: Vec<(&str, &str)> = errors
        .0
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        paths,
        [(
            "destinations[0].delivery",
            "invalid type: sequence, expected a table"
        )]
    );
    // A section too.
    let errors = courier::config::parse("fuzz.toml", "delivery = [1, 1]\n", &BTreeMap::new());
    assert_eq!(errors.unwrap_err().0[0].path, "delivery");
}

/// `"tls": ["/etc/passwd"]` is a CA file by position: an API definition names no host file,
/// however it is written (the sink would read it when built).
#[test]
fn an_api_definition_names_no_host_file_by_position() {
    for tls in [
        json!(["/etc/passwd"]),
        json!(["/nonexistent/ca.pem", false]),
    ] {
        let definition = json!({
            "project": "p", "id": "s", "type": "splunk_hec",
            "endpoint": "https://splunk.example:8088", "token": "t", "tls": tls,
        });
        let errors = courier::config::parse_destination(
            definition,
            &DeliveryConfig::default(),
            &SecurityConfig::default(),
        )
        .expect_err("refused");
        assert_eq!(
            errors,
            [(
                "/tls".to_owned(),
                "names a file on the courier host; not accepted through the API".to_owned()
            )]
        );
    }
}

/// Keys holding `.`, `[`, `"` or `/` are one segment of the error's key path (quoted) and of
/// its JSON pointer: `/headers/X.Api.Key`, not `/headers/X/Api/Key`.
#[test]
fn keys_with_path_syntax_are_named_as_one_segment() {
    let definition = json!({
        "project": "p", "id": "d", "type": "webhook", "url": "https://example.com/h",
        "headers": {"X.Api.Key": "bad\u{1}value", "a/b~c": "fine-value"},
        "filter": {"min.level": "WARN"},
    });
    let mut errors = courier::config::parse_destination(
        definition,
        &DeliveryConfig::default(),
        &SecurityConfig::default(),
    )
    .expect_err("refused");
    errors.sort();
    let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/filter/min.level",
            "/headers/X.Api.Key",
            "/headers/a~1b~0c"
        ],
        "{errors:?}"
    );
    let text = "[[destinations]]\nproject = \"p\"\nid = \"d\"\ntype = \"webhook\"\nurl = \"https://example.com/h\"\nheaders = { \"X.Api.Key\" = \"bad\\u0001value\" }\n";
    let errors = courier::config::parse("fuzz.toml", text, &BTreeMap::new()).unwrap_err();
    assert_eq!(
        errors.0[0].path, "destinations[0].headers.\"X.Api.Key\"",
        "{errors}"
    );
}
