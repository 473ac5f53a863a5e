//! `courier demo`: the real pipeline on librdkafka's in-process mock cluster, fed by the
//! generator, delivering to a local webhook receiver and to files under `./demo-out/`.

mod receiver;
mod serve;
mod smtp;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

pub use receiver::{Received, Receiver};

use crate::config::{self, SinkConfig};
use crate::generator::{Generator, GeneratorConfig};
use crate::metrics::Metrics;
use crate::server::{self, Health};
use crate::{logging, pipeline};

/// The demo's configuration, shipped as `config/demo.toml`.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

/// Runs the demo: `events` messages, at most `seconds` seconds; with `serve`, the API and the
/// console stay up (and a trickle of events flows) until Ctrl-C.
pub fn main(events: u64, seconds: u64, serve: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run(events, Duration::from_secs(seconds), serve))
}

async fn run(events: u64, limit: Duration, serve: bool) -> anyhow::Result<()> {
    let cluster = MockCluster::new(1).context("cannot start the embedded broker")?;
    cluster.create_topic("event-logs", 4, 1)?;
    cluster.create_topic("courier-failures", 1, 1)?;
    let brokers = cluster.bootstrap_servers();
    let receiver = Receiver::start().await?;
    let smtp = smtp::SmtpServer::start("demo-out/mail".into()).await?;
    let mut env: BTreeMap<String, String> = [
        ("DEMO_BROKERS".to_owned(), brokers.clone()),
        ("DEMO_WEBHOOK".to_owned(), receiver.url()),
        ("DEMO_SMTP_PORT".to_owned(), smtp.port().to_string()),
    ]
    .into();
    let (text, access) = if serve {
        let (text, access) = serve::enable_api(DEMO_CONFIG, &mut env);
        (text, Some(access))
    } else {
        (DEMO_CONFIG.to_owned(), None)
    };
    let config = Arc::new(
        config::parse("config/demo.toml", &text, &env)
            .map_err(|e| anyhow::anyhow!("the demo configuration is invalid:\n{e}"))?,
    );
    logging::init(&config.log);
    let out = std::path::Path::new("demo-out");
    if out.exists() {
        std::fs::remove_dir_all(out).context("cannot clear ./demo-out")?;
    }

    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    health.config_loaded.store(true, Ordering::Relaxed);
    let stop = CancellationToken::new();
    let server_stop = CancellationToken::new();
    let api = config.api.as_ref().map(|_| crate::api::Api::default());
    let (address, server) = server::serve_with(
        config.server.listen,
        metrics.clone(),
        health.clone(),
        api.clone(),
        server_stop.clone(),
    )
    .await?;
    tokio::spawn(crate::signal::stop_on_signal(stop.clone()));
    // The demo's file is fixed (no reloads); with the API, the store's changes reach the
    // pipeline through the merger.
    let (file_reloads, _file_rx) = tokio::sync::mpsc::channel(1);
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let (running, merger) = match (&api, &config.api) {
        (Some(api), Some(api_config)) => {
            let (merged, merger) = crate::api::start(
                api,
                &config,
                api_config,
                metrics.clone(),
                health.destinations.clone(),
                _file_rx,
                reload_tx,
                stop.clone(),
            )
            .await?;
            (merged, Some(merger))
        }
        _ => (config.clone(), None),
    };

    println!(
        "courier demo: {events} Event Logs (1 in 500 malformed) from 5 projects → {} destinations; embedded broker {brokers}, webhook receiver {}",
        config.destinations.len(),
        receiver.url()
    );
    let produced = Arc::new(AtomicU64::new(0));
    let producing_done = Arc::new(AtomicBool::new(false));
    let producer = produce(
        brokers.clone(),
        events,
        serve,
        produced.clone(),
        producing_done.clone(),
        stop.clone(),
    );
    let started = Instant::now();
    let monitor = async {
        monitor(
            events,
            limit,
            metrics.clone(),
            produced.clone(),
            producing_done.clone(),
            (!serve).then(|| stop.clone()),
        )
        .await;
        if let Some(access) = &access {
            let elapsed = started.elapsed();
            let consumed = metrics.consumed.get();
            println!();
            if consumed >= events {
                println!(
                    "the first {events} messages consumed in {:.1}s; serving until Ctrl-C",
                    elapsed.as_secs_f64()
                );
            } else {
                println!("{consumed} of the first {events} messages consumed within the time limit; serving until Ctrl-C");
            }
            summary(&config, &metrics, &receiver, &smtp);
            println!();
            println!("console: http://{address}/console/");
            println!(
                "token:   {}   (an operator token made up for this run: every project)",
                access.token
            );
            println!("a few events a second keep flowing; press Ctrl-C to stop");
        }
    };
    let (drain, ()) = tokio::join!(
        pipeline::run(&running, metrics.clone(), health, reload_rx, stop.clone()),
        monitor
    );
    stop.cancel();
    drop(file_reloads);
    if let Some(merger) = merger {
        let _ = merger.await;
    }
    let drain = drain?;
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the demo producer thread panicked"))??;
    server_stop.cancel();
    let _ = server.await;
    let elapsed = started.elapsed();

    let consumed = metrics.consumed.get();
    println!();
    println!(
        "{consumed} of {} produced messages consumed in {:.1}s ({:.0} messages/s); {drain:?} shutdown",
        produced.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        consumed as f64 / elapsed.as_secs_f64().max(0.001)
    );
    summary(&config, &metrics, &receiver, &smtp);
    Ok(())
}

/// The per-destination table and the failure count.
fn summary(
    config: &config::Config,
    metrics: &Metrics,
    receiver: &Receiver,
    smtp: &smtp::SmtpServer,
) {
    let unroutable: u64 = crate::event::Unroutable::ALL
        .iter()
        .map(|r| metrics.unroutable.with_label_values(&[r.as_str()]).get())
        .sum();
    println!("unroutable messages: {unroutable} (each reported as a failure event in topic courier-failures)");
    println!();
    println!(
        "{:<28} {:<8} {:>8} {:>10} {:>7} {:>9}  received by the local endpoint",
        "destination", "type", "routed", "delivered", "failed", "requests"
    );
    for d in &config.destinations {
        let stats = metrics.destination(&d.project, &d.id);
        let (routed, delivered, failed, requests) = stats.read();
        let endpoint = match &d.sink {
            SinkConfig::Webhook(_) | SinkConfig::Otlp(_) => {
                let r = receiver.received(&d.project, &d.id);
                format!("{} events in {} requests", r.events, r.requests)
            }
            SinkConfig::File(f) => format!(
                "{} lines in {}",
                count_lines(&f.path).unwrap_or(0),
                f.path.display()
            ),
            SinkConfig::Email(_) => {
                let n = smtp.received();
                let s = if n == 1 { "" } else { "s" };
                format!("{n} digest email{s} in {}/", smtp.dir().display())
            }
            // The demo configures only local destinations.
            _ => String::new(),
        };
        println!(
            "{:<28} {:<8} {:>8} {:>10} {:>7} {:>9}  {endpoint}",
            format!("{}/{}", d.project, d.id),
            d.sink.type_name(),
            routed,
            delivered,
            failed,
            requests
        );
    }
    let failure_events: u64 = prometheus::core::Collector::collect(&metrics.failure_events)
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum();
    println!();
    println!(
        "failure events written: {failure_events} (delivery failures and unroutable messages)"
    );
}

fn count_lines(path: &std::path::Path) -> std::io::Result<usize> {
    Ok(std::fs::read(path)?.iter().filter(|b| **b == b'\n').count())
}

/// Produces `events` generated messages from a thread, paced so the embedded broker (which
/// keeps only its newest few thousand messages per partition) never drops unread ones.
fn produce(
    brokers: String,
    events: u64,
    trickle: bool,
    produced: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    stop: CancellationToken,
) -> std::thread::JoinHandle<anyhow::Result<()>> {
    std::thread::spawn(move || {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("linger.ms", "5")
            .create()
            .context("cannot create the demo producer")?;
        let mut generator = Generator::new(GeneratorConfig {
            poison_every: Some(500),
            ..GeneratorConfig::default()
        });
        let started = Instant::now();
        const RATE_PER_SEC: u64 = 4_000;
        // After the first `events`, `--serve` keeps a few a second flowing until Ctrl-C.
        const TRICKLE_PER_SEC: u64 = 5;
        let end = if trickle { u64::MAX } else { events };
        for n in 0..end {
            if stop.is_cancelled() {
                break;
            }
            if n == events {
                producer
                    .flush(Duration::from_secs(10))
                    .context("the demo producer did not flush")?;
                done.store(true, Ordering::Relaxed);
            }
            let due = if n < events {
                Duration::from_micros(n * 1_000_000 / RATE_PER_SEC)
            } else {
                Duration::from_micros(events * 1_000_000 / RATE_PER_SEC)
                    + Duration::from_millis((n - events) * 1_000 / TRICKLE_PER_SEC)
            };
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            let message = generator.next_message();
            let key = message.project.clone().unwrap_or_default();
            let mut record = BaseRecord::to("event-logs")
                .key(&key)
                .payload(&message.bytes);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, r)) => {
                        if stop.is_cancelled() {
                            anyhow::bail!("stopped while producing: {e}");
                        }
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            produced.fetch_add(1, Ordering::Relaxed);
        }
        producer
            .flush(Duration::from_secs(10))
            .context("the demo producer did not flush")?;
        done.store(true, Ordering::Relaxed);
        Ok(())
    })
}

/// Shows progress until everything produced was consumed and nothing is left in the lanes,
/// or the time limit passes; then stops the pipeline through `stop` (none: `--serve` keeps
/// it running).
async fn monitor(
    events: u64,
    limit: Duration,
    metrics: Arc<Metrics>,
    produced: Arc<AtomicU64>,
    producing_done: Arc<AtomicBool>,
    stop: Option<CancellationToken>,
) {
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        let bar = ProgressBar::new(events);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} consumed  {msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        Some(bar)
    } else {
        None
    };
    let started = Instant::now();
    let mut idle_ticks = 0;
    let mut last_line = Instant::now();
    loop {
        let stopped = async {
            match &stop {
                Some(stop) => stop.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            () = stopped => break,
        }
        let consumed = metrics.consumed.get();
        let delivered: u64 = metrics.destinations().iter().map(|(_, s)| s.read().1).sum();
        let failed: u64 = metrics.destinations().iter().map(|(_, s)| s.read().2).sum();
        let in_flight = metrics.in_flight_events.get();
        let line = format!(
            "produced {}  delivered {delivered}  failed {failed}  in flight {in_flight}",
            produced.load(Ordering::Relaxed)
        );
        match &bar {
            Some(bar) => {
                bar.set_position(consumed);
                bar.set_message(line);
            }
            None if last_line.elapsed() >= Duration::from_secs(2) => {
                println!("consumed {consumed}/{events}  {line}");
                last_line = Instant::now();
            }
            None => {}
        }
        let finished = producing_done.load(Ordering::Relaxed)
            && consumed >= produced.load(Ordering::Relaxed).min(events)
            && in_flight == 0;
        idle_ticks = if finished { idle_ticks + 1 } else { 0 };
        // Two quiet ticks in a row: unroutable reports and commits have had time to land.
        if idle_ticks >= 2 || started.elapsed() >= limit {
            if started.elapsed() >= limit {
                eprintln!("time limit reached; stopping");
            }
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    if let Some(stop) = stop {
        stop.cancel();
    }
}
