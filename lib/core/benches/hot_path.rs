//! `cargo bench -p courier-core`: the source thread's two steps per message, without a broker,
//! so that a regression in either shows on its own (docs/benchmarks.md, "Micro-benchmarks").
//!
//! - `decode/<size>`: [`decode`] of generated Event Logs — the one-pass scan of the routing
//!   fields (serde_json only when the scanner is unsure) — for events of their natural size
//!   (`small`, a few hundred bytes), padded to 1 KiB (`1kb`, the size the end-to-end benchmark
//!   uses) and to 64 KiB (`64kb`). Throughput in bytes of JSON.
//! - `route/<layout>/<projects>`: [`Router::route`] of already decoded events, with 1, 1,000
//!   and 10,000 projects; `one` is one unfiltered destination per project, `fanout` three per
//!   project, two of them filtered (the layouts of `courier-bench`'s throughput and fan-out
//!   scenarios). Throughput in events.
//! - `decode_and_route/<layout>/<projects>`: [`Router::decode_and_route`], both steps as the
//!   source runs them, on 1 KiB events.
//!
//! Events come from `courier-generator` (the Event Log catalog's types and messages, with
//! escapes and non-ASCII text in the payloads), with a fixed seed, spread over the router's
//! projects. Under `cargo test --all-targets` each benchmark runs once, as a smoke test.

use std::hint::black_box;

use courier_core::event::{decode, Decoded, RoutingFields};
use courier_core::routing::{FilterConfig, Router};
use courier_generator::{project_id, Generator, GeneratorConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Events per measured iteration: enough to spread over many projects and event types.
const EVENTS: usize = 1000;

/// `EVENTS` generated events (64 KiB ones: a tenth as many) over `projects` projects.
fn events(projects: usize, target_bytes: Option<usize>) -> Vec<Vec<u8>> {
    let mut generator = Generator::new(GeneratorConfig {
        seed: 15,
        projects,
        poison_every: None,
        target_bytes,
    });
    let n = if target_bytes.unwrap_or(0) > 16 * 1024 {
        EVENTS / 10
    } else {
        EVENTS
    };
    (0..n).map(|_| generator.next_event()).collect()
}

fn total_bytes(events: &[Vec<u8>]) -> u64 {
    events.iter().map(|e| e.len() as u64).sum()
}

fn decode_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, target) in [
        ("small", None),
        ("1kb", Some(1024)),
        ("64kb", Some(64 * 1024)),
    ] {
        let events = events(1000, target);
        group.throughput(Throughput::Bytes(total_bytes(&events)));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut routable = 0usize;
                for e in &events {
                    if let Decoded::Routable(fields) = decode(Some(black_box(e)), usize::MAX) {
                        routable += fields.project_id.get().map_or(0, str::len);
                    }
                }
                routable
            })
        });
    }
    group.finish();
}

/// How many destinations each project has.
#[derive(Clone, Copy)]
enum Layout {
    /// One unfiltered destination.
    One,
    /// Three: one unfiltered, two with filters of varied kinds.
    FanOut,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::One => "one",
            Layout::FanOut => "fanout",
        }
    }
}

fn filter(json: &str) -> FilterConfig {
    let config: FilterConfig = serde_json::from_str(json).expect("the bench's filters are valid");
    config.validate().expect("the bench's filters are valid");
    config
}

/// A router of `projects` projects (`proj_0001` …, as the generator names them).
fn router(projects: usize, layout: Layout) -> Router {
    let all = FilterConfig::default();
    let second = [
        filter(r#"{"min_level":"WARN"}"#),
        filter(r#"{"levels":["ERROR","DEBUG"]}"#),
        filter(r#"{"types":["APP_EVENT","WEBHOOK_TRIGGER","ACTIONKIT"]}"#),
    ];
    let third = [
        filter(r#"{"integration_ids":["salesforce","hubspot"]}"#),
        filter(r#"{"end_user_ids":["user-1","user-2","user-3","user-4","user-5"]}"#),
        filter(r#"{"search":"\"status\":\"EVENT_STATUS.FAILED\""}"#),
        filter(
            r#"{"since":"2026-11-01T00:00:00Z","until":"2026-11-01T01:00:00Z","min_level":"INFO"}"#,
        ),
    ];
    let mut router = Router::new();
    let mut lane = 0;
    let mut add = |router: &mut Router, project: &str, id: &str, filter: &FilterConfig| {
        router.add(project, id, filter, lane);
        lane += 1;
    };
    for n in 1..=projects {
        let project = project_id(n);
        add(&mut router, &project, "all", &all);
        if let Layout::FanOut = layout {
            add(&mut router, &project, "second", &second[n % 3]);
            add(&mut router, &project, "third", &third[n % 4]);
        }
    }
    router
}

fn route_bench(c: &mut Criterion) {
    let mut route = c.benchmark_group("route");
    route.throughput(Throughput::Elements(EVENTS as u64));
    for layout in [Layout::One, Layout::FanOut] {
        for projects in [1, 1000, 10_000] {
            let router = router(projects, layout);
            let events = events(projects, Some(1024));
            let decoded: Vec<(RoutingFields<'_>, &[u8])> = events
                .iter()
                .map(|e| match decode(Some(e), usize::MAX) {
                    Decoded::Routable(fields) => (fields, e.as_slice()),
                    Decoded::Unroutable { detail, .. } => {
                        panic!("a generated event is unroutable: {detail}")
                    }
                })
                .collect();
            let route_all = || {
                let mut deliveries = 0usize;
                for (fields, raw) in &decoded {
                    router.route(black_box(fields), raw, None, |lane| {
                        black_box(lane);
                        deliveries += 1;
                    });
                }
                deliveries
            };
            // Every event reaches its project's unfiltered destination (and, fanned out,
            // some of the filtered ones): the router is not measuring misses.
            let deliveries = route_all();
            assert!(
                deliveries >= EVENTS,
                "{deliveries} deliveries of {EVENTS} events"
            );
            if let Layout::FanOut = layout {
                assert!(deliveries > EVENTS, "no filtered destination matched");
            }
            route.bench_function(BenchmarkId::new(layout.name(), projects), |b| {
                b.iter(route_all)
            });
        }
    }
    route.finish();

    let mut both = c.benchmark_group("decode_and_route");
    both.throughput(Throughput::Elements(EVENTS as u64));
    for layout in [Layout::One, Layout::FanOut] {
        for projects in [1, 1000, 10_000] {
            let router = router(projects, layout);
            let events = events(projects, Some(1024));
            both.bench_with_input(
                BenchmarkId::new(layout.name(), projects),
                &events,
                |b, events| {
                    let mut targets = Vec::with_capacity(3);
                    b.iter(|| {
                        let mut deliveries = 0usize;
                        for e in events {
                            let decoded = router.decode_and_route(
                                Some(black_box(e)),
                                usize::MAX,
                                None,
                                &mut targets,
                            );
                            if let Decoded::Routable(_) = decoded {
                                deliveries += targets.len();
                            }
                        }
                        deliveries
                    })
                },
            );
        }
    }
    both.finish();
}

criterion_group!(benches, decode_bench, route_bench);
criterion_main!(benches);
