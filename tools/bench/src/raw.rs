//! The raw consumer: a plain rdkafka consumer that reads the benchmark topic and does nothing
//! else. It is the input limit of this machine — what any Kafka consumer could reach here — so
//! courier's throughput is reported as a ratio to it, and its produce-to-read latency is the
//! floor under courier's produce-to-receipt latency.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

use crate::data::{latency_us, stamp, MARKER};
use crate::kafka::client_config;
use crate::sys::now_us;

/// The raw consumer: reads `topic` from the start in a fresh group and does nothing else.
/// Returns (seconds from its creation until the last event was read, events read).
pub fn read_backlog(
    brokers: &str,
    topic: &str,
    ends: &HashMap<i32, i64>,
) -> anyhow::Result<(f64, u64)> {
    let start = Instant::now();
    let consumer: BaseConsumer = client_config(brokers)
        .set("group.id", format!("bench-raw-{}", now_us()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut count = 0u64;
    let mut bytes = 0u64;
    let total: i64 = ends.values().sum();
    let deadline = Duration::from_secs(600);
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                count += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64);
                next.insert(m.partition(), m.offset() + 1);
                if count as i64 >= total
                    && ends
                        .iter()
                        .all(|(p, e)| next.get(p).copied().unwrap_or(0) >= *e)
                {
                    break;
                }
            }
            Some(Err(e)) => eprintln!("  raw consumer: {e}"),
            None => {}
        }
        if start.elapsed() > deadline {
            bail!("raw consumer did not reach the end within {deadline:?}");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(bytes);
    Ok((secs, count))
}

/// Reads a live `topic` from the start in a fresh group until `n` events were read or `within`
/// has passed, and appends each event's produce-to-read latency (µs) to `out` as it goes, so
/// that what was read is kept even if reading stops with an error.
pub fn live_latencies(
    brokers: &str,
    topic: &str,
    n: u64,
    within: Duration,
    out: &Mutex<Vec<u32>>,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = client_config(brokers)
        .set("group.id", format!("bench-raw-live-{}", now_us()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    consumer.subscribe(&[topic])?;
    let deadline = Instant::now() + within;
    let mut got = 0;
    while got < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let now = now_us();
            let ts = m
                .payload()
                .and_then(|p| p.get(MARKER.len()..))
                .map(stamp)
                .unwrap_or(now);
            out.lock()
                .expect("no thread panics while holding the latencies")
                .push(latency_us(now, ts));
            got += 1;
        }
    }
    Ok(())
}
