//! `cargo bench -p courier-sinks --bench send`: one webhook request of a typical batch, sent by
//! [`WebhookSink::send`] to a destination on loopback, one request at a time — the per-request
//! cost of the delivery path (reqwest, hyper, the SSRF guard, reading the answer) without a
//! broker, so that a change to it is judged by a number that is not lost in the scenarios'
//! noise (docs/benchmarks.md, "Micro-benchmarks").
//!
//! The destination is a minimal HTTP/1.1 server on its own thread: it reads each request to
//! the end of its `Content-Length` body and answers `200` with an empty body, keeping the
//! connection. The client runs on a current-thread runtime, so the connection's task and the
//! request run on one thread, as they mostly do in a busy daemon. The batch is 40 generated
//! 1 KiB events (what a lane of the throughput scenario sends: 1,000 projects at
//! `batch_timeout = 250ms`). Two measures: wall time per request (which includes the
//! server's share and the wake-ups between the two threads), and the client thread's own CPU
//! time per request, user and system (`/proc/thread-self/schedstat`; Linux only).
//!
//! Under `cargo test --all-targets` it runs once, as a smoke test; every answer must be
//! `Delivered`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

mod common;

use courier_core::settings::{DeliveryConfig, SecurityConfig};
use courier_sinks::webhook::WebhookSink;
use courier_sinks::{Outcome, Sink};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Events per request.
const EVENTS: usize = 40;

/// The end of a request's head and its `Content-Length`, once the head is complete.
fn head(buf: &[u8]) -> Option<(usize, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = std::str::from_utf8(&buf[..end]).ok()?;
    let length = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    Some((end, length))
}

async fn serve(mut stream: tokio::net::TcpStream) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while let Some((end, length)) = head(&buf) {
            if buf.len() < end + length {
                break;
            }
            buf.drain(..end + length);
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
            if stream.write_all(answer).await.is_err() {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Starts the destination on its own thread; its address.
fn destination() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    listener.set_nonblocking(true).expect("non-blocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream));
            }
        });
    });
    addr
}

/// CPU time of the calling thread so far, user and system (Linux: `/proc/thread-self/schedstat`,
/// nanoseconds on a CPU); `None` where it cannot be read.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn send(c: &mut Criterion) {
    let addr = destination();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let delivery = DeliveryConfig::default();
    let security = SecurityConfig {
        allow_networks: vec!["127.0.0.0/8".parse().expect("a network")],
        ..SecurityConfig::default()
    };
    let config = serde_json::from_value(json!({ "url": format!("http://{addr}/hook") }))
        .expect("the bench's webhook settings are valid");
    let sink = rt
        .block_on(async { WebhookSink::new(&config, &delivery, &security).expect("webhook sink") });
    let events = common::batch(EVENTS);
    let body = sink.encode(&events).expect("the batch encodes");
    let first = rt.block_on(sink.send(&events, &body));
    assert!(
        matches!(first, Outcome::Delivered),
        "the destination answered {first:?}"
    );
    let mut group = c.benchmark_group("send");
    group.throughput(Throughput::Elements(1));
    group.bench_function("webhook 40 events, wall time", |b| {
        b.iter(|| {
            let outcome = rt.block_on(sink.send(&events, &body));
            assert!(matches!(outcome, Outcome::Delivered));
            black_box(outcome)
        })
    });
    // The client's own CPU per request (its thread runs the request and the connection's
    // task), where the platform shows it.
    if thread_cpu().is_some() {
        group.bench_function("webhook 40 events, client CPU time", |b| {
            b.iter_custom(|iterations| {
                let start = thread_cpu().expect("readable a moment ago");
                for _ in 0..iterations {
                    let outcome = rt.block_on(sink.send(&events, &body));
                    assert!(matches!(outcome, Outcome::Delivered));
                    black_box(outcome);
                }
                thread_cpu()
                    .expect("readable a moment ago")
                    .saturating_sub(start)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, send);
criterion_main!(benches);
