//! `cargo bench -p courier-core --bench shape`: what a shaped destination pays per event
//! (docs/benchmarks.md, "Shaping"), without a broker or a sink.
//!
//! - `shape/<size>/parse_only`: rules that match nothing (`drop = ["absent"]`): the floor of
//!   any shaping, parsing each event into a JSON tree and serializing it again.
//! - `shape/<size>/redact_text`: `payload.**.password`, `payload.*.email` and `endUserId`
//!   replaced by `"[REDACTED]"`, plus a `drop` — a typical rule list.
//! - `shape/<size>/redact_hmac`: the same with `redact_with = "hmac"` (HMAC-SHA256 per value).
//! - `shape/<size>/keep`: an allow-list of three paths.
//! - `sample/<size>`: the sampling decision (id and level read, SHA-256 of the id).
//!
//! `<size>` is `small` (generated events of their natural size, a few hundred bytes) or `1kb`.
//! Events come from `courier-generator` with a fixed seed; throughput is in events. Under
//! `cargo test --all-targets` each benchmark runs once, as a smoke test.

use std::collections::BTreeMap;
use std::hint::black_box;

use courier_core::shape::{RulesConfig, Sample, Shaper};
use courier_generator::{Generator, GeneratorConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

const EVENTS: usize = 1000;

fn events(target_bytes: Option<usize>) -> Vec<Vec<u8>> {
    let mut generator = Generator::new(GeneratorConfig {
        seed: 17,
        projects: 10,
        poison_every: None,
        target_bytes,
    });
    (0..EVENTS).map(|_| generator.next_event()).collect()
}

fn shaper(rules: serde_json::Value) -> Shaper {
    let rules = serde_json::from_value::<RulesConfig>(rules)
        .expect("the benchmark's rules are well-formed")
        .compile()
        .expect("the benchmark's rules are valid");
    let shaper = Shaper::new(Some(rules), None).expect("the rules change something");
    (*shaper).clone()
}

fn shape_bench(c: &mut Criterion) {
    let typical = json!({
        "redact": ["payload.**.password", "payload.*.email", "endUserId"],
        "drop": ["payload.debug"],
    });
    let mut hmac = typical.clone();
    hmac["redact_with"] = json!("hmac");
    hmac["redact_key"] = json!("benchmark-key-0123456789");
    let cases = [
        ("parse_only", shaper(json!({"drop": ["absent"]}))),
        ("redact_text", shaper(typical)),
        ("redact_hmac", shaper(hmac)),
        (
            "keep",
            shaper(json!({"keep": ["message", "payload.*.id", "integrationId"]})),
        ),
    ];
    let mut group = c.benchmark_group("shape");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (size, target) in [("small", None), ("1kb", Some(1024))] {
        let events = events(target);
        for (name, shaper) in &cases {
            group.bench_function(format!("{size}/{name}"), |b| {
                b.iter(|| {
                    let mut bytes = 0usize;
                    for e in &events {
                        bytes += shaper
                            .shape(black_box(e))
                            .expect("generated events are JSON objects")
                            .len();
                    }
                    bytes
                })
            });
        }
    }
    group.finish();
}

fn sample_bench(c: &mut Criterion) {
    let table: BTreeMap<String, f64> = [("DEBUG".to_owned(), 0.1), ("INFO".to_owned(), 0.5)]
        .into_iter()
        .collect();
    let sample = Sample::from_table(&table).expect("the benchmark's sample is valid");
    let mut group = c.benchmark_group("sample");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (size, target) in [("small", None), ("1kb", Some(1024))] {
        let events = events(target);
        group.bench_function(size, |b| {
            b.iter(|| {
                events
                    .iter()
                    .filter(|e| sample.keeps(black_box(e), || "t/0/0".to_owned()))
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, shape_bench, sample_bench);
criterion_main!(benches);
