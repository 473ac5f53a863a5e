//! `cargo bench -p courier-sinks`: each sink's encoding of one batch, without a broker or a
//! destination, so that a regression in one sink's encoder shows on its own
//! (docs/benchmarks.md, "Micro-benchmarks").
//!
//! Every benchmark but S3's calls [`Sink::encode`] — what a lane calls once per batch, its body
//! reused by every retry — on a sink built from its settings (deserialized as the loader reads
//! them) with the sink's own constructor; S3's calls [`object_body`], the whole of its
//! encoding but the object key (its sink takes a complete destination to build). The batch is
//! 1,000 generated 1 KiB Event Logs of one partition (`courier-generator`, fixed seed): the
//! default `batch_max_events` and about the default `batch_max_bytes`. Throughput is in bytes
//! of the events' JSON, so that sinks compare with each other and with `decode`.
//!
//! Under `cargo test --all-targets` each benchmark runs once, as a smoke test; each encoding is
//! also run once before it is measured: it must succeed and give a body.

use std::hint::black_box;

mod common;

use courier_core::event::Event;
use courier_core::settings::{DeliveryConfig, SecurityConfig};
use courier_sinks::datadog::DatadogSink;
use courier_sinks::email::EmailSink;
use courier_sinks::otlp::OtlpSink;
use courier_sinks::s3::{object_body, Compression as ObjectCompression};
use courier_sinks::splunk::SplunkSink;
use courier_sinks::webhook::WebhookSink;
use courier_sinks::{EncodedBatch, Sink};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};

/// Events in the batch: the default `batch_max_events`.
const EVENTS: usize = 1000;

/// A sink's settings from their table, as the configuration loader deserializes them.
fn settings<T: serde::de::DeserializeOwned>(table: Value) -> T {
    serde_json::from_value(table).expect("the bench's sink settings are valid")
}

/// One way of encoding a batch.
type Encode = Box<dyn Fn(&[Event]) -> EncodedBatch>;

/// `sink`'s [`Sink::encode`].
fn sink_encode(sink: impl Sink + 'static) -> Encode {
    Box::new(move |events| sink.encode(events).expect("the batch encodes"))
}

/// The encodings measured, by benchmark name.
fn encodings() -> Vec<(&'static str, Encode)> {
    let delivery = DeliveryConfig::default();
    let security = SecurityConfig::default();
    let webhook = |format: &str, compression: &str| {
        let config = settings(json!({
            "url": "https://hooks.example.com/courier",
            "format": format,
            "compression": compression,
        }));
        sink_encode(WebhookSink::new(&config, &delivery, &security).expect("webhook sink"))
    };
    let datadog = |compression: &str| {
        let config = settings(json!({
            "api_key": "bench-key",
            "service": "paragon",
            "tags": ["env:bench"],
            "compression": compression,
        }));
        sink_encode(DatadogSink::new(&config, &delivery, &security).expect("Datadog sink"))
    };
    let splunk = |compression: &str| {
        let config = settings(json!({
            "endpoint": "https://splunk.example.com:8088",
            "token": "bench-token",
            "index": "paragon",
            "compression": compression,
        }));
        sink_encode(SplunkSink::new(&config, &delivery, &security).expect("Splunk sink"))
    };
    let otlp = |encoding: &str, compression: &str| {
        let config = settings(json!({
            "endpoint": "https://otlp.example.com",
            "encoding": encoding,
            "compression": compression,
            "resource_attributes": {"deployment.environment": "bench"},
        }));
        sink_encode(OtlpSink::new(&config, &delivery, &security).expect("OTLP sink"))
    };
    let s3 = |compression: ObjectCompression| -> Encode {
        Box::new(move |events| {
            let (body, uncompressed_bytes) =
                object_body(events, compression).expect("the batch encodes");
            EncodedBatch {
                body,
                id: String::new(),
                events: events.len(),
                uncompressed_bytes,
                verbatim: None,
            }
        })
    };
    let email = {
        let config = settings(json!({
            "host": "smtp.example.com",
            "from": "Courier <alerts@example.com>",
            "to": ["oncall@example.com", "team@example.com"],
        }));
        sink_encode(
            EmailSink::new("proj_0001", "email", &config, &delivery, &security)
                .expect("email sink"),
        )
    };
    vec![
        ("webhook/json_array", webhook("json_array", "none")),
        ("webhook/json_array+gzip", webhook("json_array", "gzip")),
        ("webhook/ndjson", webhook("ndjson", "none")),
        ("webhook/ndjson+gzip", webhook("ndjson", "gzip")),
        ("datadog", datadog("none")),
        ("datadog+gzip", datadog("gzip")),
        ("splunk_hec", splunk("none")),
        ("splunk_hec+gzip", splunk("gzip")),
        ("s3", s3(ObjectCompression::None)),
        ("s3+gzip", s3(ObjectCompression::Gzip)),
        ("otlp/protobuf", otlp("protobuf", "none")),
        ("otlp/protobuf+gzip", otlp("protobuf", "gzip")),
        ("otlp/json", otlp("json", "none")),
        ("otlp/json+gzip", otlp("json", "gzip")),
        ("email", email),
    ]
}

fn encode_bench(c: &mut Criterion) {
    let events = common::batch(EVENTS);
    let bytes: u64 = events.iter().map(|e| e.raw.len() as u64).sum();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Bytes(bytes));
    for (name, encode) in encodings() {
        let encoded = encode(&events);
        assert_eq!(encoded.events, EVENTS, "{name}");
        assert!(!encoded.body.is_empty(), "{name}: empty body");
        group.bench_function(name, |b| b.iter(|| encode(black_box(&events)).body.len()));
    }
    group.finish();
}

criterion_group!(benches, encode_bench);
criterion_main!(benches);
