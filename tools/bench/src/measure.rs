//! One measured courier run: write the scenario's configuration, start the release `courier`
//! binary as its own process (optionally under `perf record`), wait for `/readyz`, then poll
//! until the consumer group's committed offsets reach the end of the topic and the receiver
//! has every expected event. Everything is measured from the outside — committed offsets
//! through OffsetFetch, CPU and peak RSS from `/proc/PID`, courier's `/metrics` — so that the
//! benchmark measures the binary operators run, not a build instrumented for it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

use crate::cli::RunArgs;
use crate::config::{courier_config, expected_deliveries, Layout, Setup};
use crate::kafka::{create_topic, delete_topics, OffsetWatch};
use crate::process::Proc;
use crate::receiver::{Receiver, ReceiverStats};
use crate::sys::{cpu_seconds, free_port, http, now_us, status_kb};

/// What one run measured.
pub struct CourierRun {
    /// When courier was spawned.
    pub started: Instant,
    /// Spawn until the committed offsets reached the end of the topic.
    pub commit_secs: f64,
    /// Spawn until the receiver had every expected event.
    pub delivered_secs: f64,
    /// Spawn until `/readyz` answered 200.
    pub ready_secs: f64,
    pub cpu_seconds: f64,
    pub peak_rss_mb: f64,
    pub receiver: ReceiverStats,
    pub expected: u64,
    pub receiver_cpu: f64,
    pub broker_cpu: Option<f64>,
    pub metrics: HashMap<String, f64>,
}

/// The `courier` binary to measure: `--courier`, or the one next to this executable (both
/// land in `target/release/`).
pub fn courier_bin(args: &RunArgs) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.courier {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    let p = exe
        .parent()
        .ok_or_else(|| anyhow!("no parent directory"))?
        .join("courier");
    if !p.is_file() {
        bail!(
            "{} not found; build it (cargo build --release) or pass --courier",
            p.display()
        );
    }
    Ok(p)
}

/// Sums every series of a metric in Prometheus text (0 without any: a fold from +0, since
/// `Iterator::sum` of no `f64` is −0, which the report printed as "-0").
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |sum, v| sum + v)
}

/// The value of the series written exactly as `series` (name and labels).
fn labelled_sum(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
        .fold(0.0, |sum, v| sum + v)
}

/// What every run of one benchmark shares.
pub struct Ctx<'a> {
    pub args: &'a RunArgs,
    pub workdir: PathBuf,
    pub receiver: &'a Receiver,
    pub courier: PathBuf,
}

/// Runs courier on `topic` with `layout`'s configuration until the end (`ends`, or what
/// `during` produced) is committed and the receiver has every expected event.
pub fn run_courier(
    ctx: &Ctx<'_>,
    name: &str,
    layout: Layout,
    topic: &str,
    ends: &HashMap<i32, i64>,
    events: u64,
    // Produces while courier runs (latency); `None` for a backlog.
    during: Option<&dyn Fn() -> anyhow::Result<HashMap<i32, i64>>>,
) -> anyhow::Result<CourierRun> {
    let tag = format!("{name}-{}", now_us());
    let setup = Setup {
        args: ctx.args,
        topic,
        group: format!("bench-{tag}"),
        listen_port: free_port(),
        receiver_port: ctx.receiver.port,
        stall_port: ctx.receiver.stall_port,
        layout,
        tag: tag.clone(),
    };
    let config_path = ctx.workdir.join(format!("{name}.toml"));
    std::fs::write(&config_path, courier_config(&setup))?;
    create_topic(&ctx.args.brokers, &format!("bench-failures-{tag}"), 1)?;
    let expected = expected_deliveries(
        &config_path,
        layout.source(ctx.args.projects as usize),
        events,
    )?;
    ctx.receiver.reset(during.is_some())?;
    let receiver_cpu0 = ctx.receiver.stats()?.cpu_seconds;
    let broker_cpu0 = ctx
        .args
        .broker_pid
        .and_then(|p| cpu_seconds(&p.to_string()));
    let log = std::fs::File::create(ctx.workdir.join(format!("{name}.log")))?;
    settle();
    let start = Instant::now();
    let proc = Proc::spawn(
        "courier",
        Command::new(&ctx.courier)
            .args(["run", "--config"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log),
    )?;
    let pid = proc.pid();
    let perf = match &ctx.args.perf {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            Some(Proc::spawn(
                "perf",
                Command::new("perf")
                    .args([
                        "record",
                        "-F",
                        "299",
                        "--call-graph",
                        "dwarf,16384",
                        "-p",
                        &pid.to_string(),
                        "-o",
                    ])
                    .arg(dir.join(format!("{name}.perf.data")))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )?)
        }
        None => None,
    };
    let mut ready_secs = f64::NAN;
    while start.elapsed() < Duration::from_secs(120) {
        if matches!(http("GET", setup.listen_port, "/readyz"), Ok((200, _))) {
            ready_secs = start.elapsed().as_secs_f64();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if ready_secs.is_nan() {
        bail!(
            "courier never became ready; see {}",
            ctx.workdir.join(format!("{name}.log")).display()
        );
    }
    let ends = match during {
        Some(produce) => produce()?,
        None => ends.clone(),
    };
    let watch = OffsetWatch::new(&ctx.args.brokers, &setup.group, topic, ctx.args.partitions)?;
    let mut commit_secs = None;
    let mut delivered_secs = None;
    let deadline = Duration::from_secs(900);
    let mut peak_in_flight = (0f64, 0f64);
    let mut next_line = Duration::ZERO;
    if ctx.args.timeline {
        println!("  {name}: t(s)  received  in-flight events  in-flight MiB  parked  diverted  paused partitions");
    }
    while commit_secs.is_none() || delivered_secs.is_none() {
        if let Ok((200, text)) = http("GET", setup.listen_port, "/metrics") {
            if ctx.args.timeline && start.elapsed() >= next_line {
                next_line += Duration::from_millis(500);
                println!(
                    "  {name}: {:5.1} {:9} {:17.0} {:14.1} {:7.0} {:9.0} {:18.0}",
                    start.elapsed().as_secs_f64(),
                    ctx.receiver.stats()?.events,
                    metric_sum(&text, "courier_in_flight_events"),
                    metric_sum(&text, "courier_in_flight_bytes") / 1048576.0,
                    metric_sum(&text, "courier_events_parked_total"),
                    metric_sum(&text, "courier_diverted_events_total"),
                    metric_sum(&text, "courier_paused_partitions"),
                );
            }
            peak_in_flight.0 = peak_in_flight
                .0
                .max(metric_sum(&text, "courier_in_flight_events"));
            peak_in_flight.1 = peak_in_flight
                .1
                .max(metric_sum(&text, "courier_in_flight_bytes"));
        }
        if delivered_secs.is_none() && ctx.receiver.stats()?.events >= expected {
            delivered_secs = Some(start.elapsed().as_secs_f64());
        }
        if commit_secs.is_none() && watch.reached(&ends) {
            commit_secs = Some(start.elapsed().as_secs_f64());
        }
        // Once the end is committed, every event was delivered, parked or recorded as failed: the
        // receiver already counted what was delivered. Missing events will not come.
        if let (Some(committed), None) = (commit_secs, delivered_secs) {
            if start.elapsed().as_secs_f64() > committed + 30.0 {
                bail!(
                    "{name}: the end of the topic was committed {:.0}s ago, but the receiver has only {} of {expected} events",
                    start.elapsed().as_secs_f64() - committed,
                    ctx.receiver.stats()?.events
                );
            }
        }
        if start.elapsed() > deadline {
            bail!(
                "{name}: courier did not finish within {deadline:?} (receiver has {} of {expected})",
                ctx.receiver.stats()?.events
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cpu = cpu_seconds(&pid.to_string()).unwrap_or(f64::NAN);
    let hwm = status_kb(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0;
    let metrics_text = http("GET", setup.listen_port, "/metrics")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let mut metrics = HashMap::new();
    for m in [
        "courier_events_consumed_total",
        "courier_events_routed_total",
        "courier_events_delivered_total",
        "courier_events_parked_total",
        "courier_parked_batches_total",
        "courier_diverted_events_total",
        "courier_overflow_events_total",
        "courier_events_failed_total",
        "courier_requests_total",
        "courier_paused_partitions",
        "courier_partition_pauses_total",
        "courier_request_duration_seconds_sum",
        "courier_request_duration_seconds_count",
    ] {
        metrics.insert(m.to_owned(), metric_sum(&metrics_text, m));
    }
    for encoding in ["reference", "copy"] {
        metrics.insert(
            format!("parked records ({encoding})"),
            labelled_sum(
                &metrics_text,
                &format!("courier_parked_records_total{{encoding=\"{encoding}\"}}"),
            ),
        );
    }
    metrics.insert("peak_in_flight_events".into(), peak_in_flight.0);
    metrics.insert("peak_in_flight_mb".into(), peak_in_flight.1 / 1048576.0);
    let receiver = ctx.receiver.stats()?;
    let receiver_cpu = receiver.cpu_seconds - receiver_cpu0;
    let broker_cpu = ctx
        .args
        .broker_pid
        .and_then(|p| cpu_seconds(&p.to_string()))
        .zip(broker_cpu0)
        .map(|(a, b)| a - b);
    if let Some(perf) = perf {
        // SIGTERM makes perf write its file.
        perf.stop(Duration::from_secs(30));
    }
    proc.stop(Duration::from_secs(30));
    delete_topics(
        &ctx.args.brokers,
        &[
            &format!("bench-failures-{tag}"),
            &format!("bench-retry-{tag}"),
        ],
    );
    if receiver.events < expected {
        bail!(
            "{name}: the receiver counted {} events, the configuration implies {expected}",
            receiver.events
        );
    }
    if receiver.events > expected {
        // At least once: a request that timed out after the receiver took it is sent again.
        eprintln!(
            "  {name}: {} duplicate deliveries (requests sent again after a timeout)",
            receiver.events - expected
        );
    }
    Ok(CourierRun {
        started: start,
        commit_secs: commit_secs.unwrap_or(f64::NAN),
        delivered_secs: delivered_secs.unwrap_or(f64::NAN),
        ready_secs,
        cpu_seconds: cpu,
        peak_rss_mb: hwm,
        receiver,
        expected,
        receiver_cpu,
        broker_cpu,
        metrics,
    })
}

/// Waits briefly for the machine to go quiet between measured runs (broker compaction,
/// previous process exit).
pub fn settle() {
    std::thread::sleep(Duration::from_secs(2));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sum_adds_every_series_of_one_metric_only() {
        let text = "# TYPE courier_requests_total counter\n\
                    courier_requests_total{destination=\"a\"} 3\n\
                    courier_requests_total{destination=\"b\"} 4.5\n\
                    courier_requests_total_extra 100\n\
                    courier_paused_partitions 2\n";
        assert_eq!(metric_sum(text, "courier_requests_total"), 7.5);
        assert_eq!(metric_sum(text, "courier_paused_partitions"), 2.0);
        assert_eq!(metric_sum(text, "courier_events_parked_total"), 0.0);
    }

    /// A metric without any series sums to +0 (the report printed "-0 copies" before).
    #[test]
    fn a_metric_without_series_sums_to_positive_zero() {
        let text = "courier_parked_records_total{encoding=\"reference\"} 12\n";
        assert!(metric_sum(text, "courier_events_parked_total").is_sign_positive());
        let copies = labelled_sum(text, "courier_parked_records_total{encoding=\"copy\"}");
        assert!(copies.is_sign_positive(), "{copies}");
        assert_eq!(
            labelled_sum(text, "courier_parked_records_total{encoding=\"reference\"}"),
            12.0
        );
    }
}
