//! Tests of the Datadog request bodies: items, reserved attributes, shrinking, splitting.

use std::io::Read;

use serde_json::{json, Value};

use super::*;

fn enc() -> Encoder {
    Encoder::new("courier", None, None, &[], Compression::None)
}

/// An hour after the test events' time.
const NOW: i64 = 1_793_491_200_000 + 3_600_000;

fn item(e: &Encoder, raw: &str) -> (String, Option<usize>) {
    let mut out = Vec::new();
    let shrunk = e.item_at(raw.as_bytes(), &mut out, NOW).unwrap();
    (String::from_utf8(out).unwrap(), shrunk)
}

fn ev(raw: &str, offset: i64) -> Event {
    courier_core::event::test_event(Bytes::copy_from_slice(raw.as_bytes()), 0, offset)
}

const EVENT: &str = r#"{"id":"e1","timestamp":"2026-11-01T00:00:00.123Z","level":"ERROR","type":"WEBHOOK_TRIGGER","message":"Workflow \"x\" failed: é ✓ \n","projectId":"proj_a","integrationId":"Sales Force,Inc","status":"EVENT_STATUS.FAILED","payload":{"status":"nested stays","k":[1,2]}}"#;

#[test]
fn items_keep_the_event_and_add_reserved_attributes() {
    let e = Encoder::new(
        "paragon",
        Some("events"),
        Some("host-1"),
        &["env:prod".into(), "team:\"q\"".into()],
        Compression::None,
    );
    let (text, shrunk) = item(&e, EVENT);
    assert_eq!(shrunk, None);
    // Byte level: the event's members are copied unchanged, in order, reserved names are
    // renamed, courier's attributes come last.
    assert_eq!(
        text,
        concat!(
            r#"{"id":"e1","level":"ERROR","type":"WEBHOOK_TRIGGER","message":"Workflow \"x\" failed: é ✓ \n","projectId":"proj_a","integrationId":"Sales Force,Inc","payload":{"status":"nested stays","k":[1,2]},"#,
            r#""ddsource":"paragon","ddtags":"env:prod,team:\"q\",project:proj_a,type:webhook_trigger,level:error,integration:sales_force_inc","hostname":"host-1","service":"events","status":"error","timestamp":1793491200123,"#,
            r#""event_timestamp":"2026-11-01T00:00:00.123Z","event_status":"EVENT_STATUS.FAILED"}"#
        )
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["message"], "Workflow \"x\" failed: é ✓ \n");
    assert_eq!(v["payload"]["status"], "nested stays");
}

#[test]
fn events_without_conflicts_are_spliced_before_their_closing_brace() {
    let raw = "{ \"projectId\" : \"p\",\n  \"level\": \"warn\", \"message\": \"m\" }\n";
    let (text, _) = item(&enc(), raw);
    assert_eq!(
        text,
        "{ \"projectId\" : \"p\",\n  \"level\": \"warn\", \"message\": \"m\" ,\"ddsource\":\"courier\",\"ddtags\":\"project:p,level:warn\",\"status\":\"warn\"}"
    );
    let (text, _) = item(&enc(), "{}");
    assert_eq!(
        text,
        r#"{"ddsource":"courier","ddtags":"","status":"info"}"#
    );
}

#[test]
fn statuses_follow_levels() {
    for (level, status) in [
        ("ERROR", "error"),
        ("WARN", "warn"),
        ("INFO", "info"),
        ("DEBUG", "debug"),
        ("warn", "warn"),
        ("TRACE", "trace"),
    ] {
        let (text, _) = item(&enc(), &format!(r#"{{"level":"{level}"}}"#));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], status, "{level}");
    }
    // No level: info (an event `status` never leaks into Datadog's status).
    let (text, _) = item(&enc(), r#"{"status":"EVENT_STATUS.SUCCEEDED"}"#);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], "info");
    assert_eq!(v["event_status"], "EVENT_STATUS.SUCCEEDED");
}

#[test]
fn unreadable_timestamps_stay_as_they_are() {
    let (text, _) = item(&enc(), r#"{"timestamp":"yesterday","level":7}"#);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["timestamp"], "yesterday");
    assert!(v.get("event_timestamp").is_none());
    assert_eq!(v["status"], "info");
    assert_eq!(v["level"], 7);
    // Offsets are honoured.
    let (text, _) = item(&enc(), r#"{"timestamp":"2026-11-01T02:00:00.5+02:00"}"#);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["timestamp"], 1_793_491_200_500i64);
}

#[test]
fn events_older_than_datadog_accepts_are_filed_at_arrival() {
    let raw = r#"{"timestamp":"2026-11-01T00:00:00.123Z","message":"m"}"#;
    let mut out = Vec::new();
    let day_later = 1_793_491_200_123 + 24 * 3_600_000;
    enc().item_at(raw.as_bytes(), &mut out, day_later).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert!(v.get("timestamp").is_none(), "{v}");
    assert_eq!(v["event_timestamp"], "2026-11-01T00:00:00.123Z");
    // 17 hours is still within the limit.
    let mut out = Vec::new();
    let later = 1_793_491_200_123 + 17 * 3_600_000;
    enc().item_at(raw.as_bytes(), &mut out, later).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["timestamp"], 1_793_491_200_123i64);
    // Three hours in the future is too far.
    let mut out = Vec::new();
    let before = 1_793_491_200_123 - 3 * 3_600_000;
    enc().item_at(raw.as_bytes(), &mut out, before).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert!(v.get("timestamp").is_none(), "{v}");
}

#[test]
fn renamed_members_never_collide() {
    let (text, _) = item(&enc(), r#"{"status":"a","event_status":"b","ddtags":"c"}"#);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["event_status"], "b");
    assert_eq!(v["event_status_"], "a");
    assert_eq!(v["event_ddtags"], "c");
    assert_eq!(v["ddtags"], "");
    let keys: Vec<&str> = text.matches("\"event_status").collect();
    assert_eq!(keys.len(), 2);
}

#[test]
fn oversize_payloads_are_replaced_by_a_marker() {
    let big = "x".repeat(MAX_ITEM_BYTES);
    let raw = json!({"projectId":"p","message":"hello","payload":{"blob": big}}).to_string();
    let (text, shrunk) = item(&enc(), &raw);
    assert_eq!(shrunk, Some(raw.len()));
    assert!(text.len() <= MAX_ITEM_BYTES);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["message"], "hello");
    assert_eq!(v["payload"]["truncated"], true);
    assert_eq!(v["payload"]["originalBytes"], MAX_ITEM_BYTES + 11);
    assert!(v["ddtags"].as_str().unwrap().ends_with(",truncated:true"));
    assert!(enc().shrinks(raw.as_bytes()));
    assert!(!enc().shrinks(EVENT.as_bytes()));
}

#[test]
fn oversize_messages_and_fields_are_cut() {
    let huge = "é".repeat(MAX_ITEM_BYTES);
    let raw = json!({"projectId":"p","message": huge, "other": huge, "small": 1}).to_string();
    let (text, shrunk) = item(&enc(), &raw);
    assert!(shrunk.is_some());
    assert!(text.len() <= MAX_ITEM_BYTES, "{}", text.len());
    let v: Value = serde_json::from_str(&text).unwrap();
    let m = v["message"].as_str().unwrap();
    assert!(
        m.starts_with("éé") && m.contains("[truncated by courier: "),
        "{}",
        &m[m.len() - 60..]
    );
    assert_eq!(v["other"]["truncated"], true);
    assert_eq!(v["small"], 1);
    // Too many large members for a marker each: only the message and courier's
    // attributes are kept.
    let mut many = serde_json::Map::new();
    for i in 0..1500 {
        many.insert(format!("k{i}"), Value::String("v".repeat(1000)));
    }
    many.insert("message".into(), "m".into());
    let raw = Value::Object(many).to_string();
    let (text, shrunk) = item(&enc(), &raw);
    assert_eq!(shrunk, Some(raw.len()));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["message"], "m");
    assert_eq!(v["courier_truncated"]["originalBytes"], raw.len());
    assert!(v.get("k0").is_none());
}

#[test]
fn batches_split_by_count_and_size() {
    let e = enc();
    let events: Vec<Event> = (0..2500)
        .map(|i| ev(&format!(r#"{{"projectId":"p","message":"m{i}"}}"#), i))
        .collect();
    let b = e.batch(&events, "k").unwrap();
    let requests = parts::unpack(&b.body, events.len()).unwrap();
    assert_eq!(
        requests
            .iter()
            .map(|p| p.events.clone())
            .collect::<Vec<_>>(),
        vec![0..1000, 1000..2000, 2000..2500]
    );
    for p in &requests {
        let v: Vec<Value> = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(v.len(), p.events.len());
        assert_eq!(v[0]["message"], format!("m{}", p.events.start));
    }
    assert_eq!(
        b.uncompressed_bytes,
        requests.iter().map(|p| p.body.len()).sum::<usize>()
    );

    // Size: 12 events of ~450 KB make three requests under 5 MB.
    let blob = "y".repeat(450_000);
    let events: Vec<Event> = (0..12)
        .map(|i| ev(&format!(r#"{{"message":"{blob}"}}"#), i))
        .collect();
    let b = e.batch(&events, "k").unwrap();
    let requests = parts::unpack(&b.body, 12).unwrap();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|p| p.body.len() <= MAX_BODY_BYTES));
    assert_eq!(requests[0].events, 0..11);
}

#[test]
fn gzip_round_trips_and_small_batches_are_one_request() {
    let e = Encoder::new("courier", None, None, &[], Compression::Gzip);
    let events = vec![ev(EVENT, 1), ev(r#"{"message":"二"}"#, 2)];
    let b = e.batch(&events, "k").unwrap();
    assert_eq!(&b.body[..2], &[0x1f, 0x8b]);
    let mut text = String::new();
    flate2::read::GzDecoder::new(&b.body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(b.uncompressed_bytes, text.len());
    let v: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[1]["message"], "二");
    assert_eq!(b.id, batch_id("k", &events));
    assert_eq!(e.request(&events).unwrap().len(), b.body.len());
}

#[test]
fn malformed_events_are_an_encode_error() {
    let err = enc().batch(&[ev("[1]", 7)], "k").unwrap_err();
    assert_eq!(err.kind, crate::ErrorKind::Encode);
    assert!(err.message.contains("offset 7"), "{}", err.message);
}

/// Measures item encoding against parsing and re-serializing each event
/// (`cargo test --release --lib sinks::datadog::encode::tests::measure -- --ignored --nocapture`).
#[test]
#[ignore]
fn measure() {
    use courier_generator::{Generator, GeneratorConfig};
    let mut gen = Generator::new(GeneratorConfig {
        seed: 1,
        projects: 3,
        poison_every: None,
        target_bytes: Some(1024),
    });
    let events: Vec<Vec<u8>> = (0..20_000).map(|_| gen.next_event()).collect();
    let bytes: usize = events.iter().map(Vec::len).sum();
    let e = enc();
    let mut out = Vec::with_capacity(bytes * 2);
    let t = std::time::Instant::now();
    for raw in &events {
        out.clear();
        e.item(raw, &mut out).unwrap();
    }
    let splice = t.elapsed();
    let t = std::time::Instant::now();
    for raw in &events {
        out.clear();
        let mut v: serde_json::Map<String, Value> = serde_json::from_slice(raw).unwrap();
        if let Some(s) = v.remove("status") {
            v.insert("event_status".into(), s);
        }
        v.insert("status".into(), "info".into());
        v.insert("ddtags".into(), "project:p".into());
        serde_json::to_writer(&mut out, &v).unwrap();
    }
    let reserialize = t.elapsed();
    let batch: Vec<Event> = events
        .iter()
        .enumerate()
        .map(|(i, raw)| ev(std::str::from_utf8(raw).unwrap(), i as i64))
        .collect();
    for (name, compression) in [("none", Compression::None), ("gzip", Compression::Gzip)] {
        let e = Encoder::new("courier", None, None, &[], compression);
        let t = std::time::Instant::now();
        for chunk in batch.chunks(1000) {
            e.batch(chunk, "k").unwrap();
        }
        let took = t.elapsed();
        println!(
            "datadog batches of 1000, compression {name}: {:.0} MB/s of events ({:.2} µs/event)",
            bytes as f64 / 1e6 / took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / batch.len() as f64
        );
    }
    let mb = bytes as f64 / 1e6;
    println!(
        "{} events, {mb:.1} MB: member splice {:.0} MB/s ({:.2} µs/event), parse + re-serialize {:.0} MB/s ({:.2} µs/event)",
        events.len(),
        mb / splice.as_secs_f64(),
        splice.as_secs_f64() * 1e6 / events.len() as f64,
        mb / reserialize.as_secs_f64(),
        reserialize.as_secs_f64() * 1e6 / events.len() as f64,
    );
}
