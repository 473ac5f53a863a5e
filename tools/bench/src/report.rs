//! The results: one row per metric, with the target and whether it is met where the project
//! set one (issue #6), printed as a table at the end of a run (and of a failed run, so far as
//! it got) and written as JSON with the run's parameters (`--json`).

use std::path::Path;

use serde::Serialize;

use crate::cli::RunArgs;
use crate::measure::CourierRun;
use crate::sys::{load_average, now_us};

/// One measured number.
#[derive(Debug, Serialize)]
pub struct Row {
    scenario: String,
    metric: String,
    value: f64,
    unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    met: Option<bool>,
}

/// Every row of a run, in the order measured.
#[derive(Default)]
pub struct Results {
    pub rows: Vec<Row>,
}

impl Results {
    /// A number reported without a target.
    pub fn add(&mut self, scenario: &str, metric: &str, value: f64, unit: &str) {
        self.rows.push(Row {
            scenario: scenario.into(),
            metric: metric.into(),
            value,
            unit: unit.into(),
            target: None,
            met: None,
        });
    }

    /// A number with its target and whether it is met.
    pub fn check(
        &mut self,
        scenario: &str,
        metric: &str,
        value: f64,
        unit: &str,
        target: &str,
        met: bool,
    ) {
        self.rows.push(Row {
            scenario: scenario.into(),
            metric: metric.into(),
            value,
            unit: unit.into(),
            target: Some(target.into()),
            met: Some(met),
        });
    }

    /// Writes the rows as JSON to `path`, with the run's parameters.
    pub fn write_json(&self, args: &RunArgs, path: &Path) -> anyhow::Result<()> {
        let doc = serde_json::json!({
            "events": args.events,
            "stalled_events": args.stalled_events,
            "latency_rate": args.latency_rate,
            "latency_seconds": args.latency_seconds,
            "isolation_rate": args.isolation_rate,
            "isolation_seconds": args.isolation_seconds,
            "partitions": args.partitions,
            "batch_timeout": args.batch_timeout,
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "load_average_end": load_average(),
            "unix_time": now_us() / 1_000_000,
            "results": self.rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        Ok(())
    }

    /// The results table on stdout.
    pub fn print(&self) {
        println!();
        println!(
            "{:<11} {:<44} {:>14} {:<10} {:<18} met",
            "scenario", "metric", "value", "unit", "target"
        );
        println!("{}", "-".repeat(106));
        for r in &self.rows {
            let value = if r.value.abs() >= 100.0 {
                format!("{:.0}", r.value)
            } else {
                format!("{:.3}", r.value)
            };
            println!(
                "{:<11} {:<44} {:>14} {:<10} {:<18} {}",
                r.scenario,
                r.metric,
                value,
                r.unit,
                r.target.as_deref().unwrap_or(""),
                match r.met {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "",
                }
            );
        }
    }
}

/// The rows every measured courier run reports (start-up, CPU shares, requests).
pub fn add_run(results: &mut Results, scenario: &str, run: &CourierRun) {
    let wall = run.commit_secs;
    results.add(
        scenario,
        "courier startup (spawn to /readyz)",
        run.ready_secs,
        "s",
    );
    results.add(
        scenario,
        "spawn to the receiver's last event (sampled every 50 ms)",
        run.delivered_secs,
        "s",
    );
    results.add(scenario, "spawn to the committed end", run.commit_secs, "s");
    results.add(
        scenario,
        "deliveries to the receiver",
        run.expected as f64,
        "events",
    );
    results.add(scenario, "courier CPU (utime+stime)", run.cpu_seconds, "s");
    results.add(
        scenario,
        "receiver CPU share of the run",
        100.0 * run.receiver_cpu / wall,
        "% of core",
    );
    results.add(
        scenario,
        "receiver CPU / courier CPU",
        100.0 * run.receiver_cpu / run.cpu_seconds,
        "%",
    );
    results.add(
        scenario,
        "peak events held in lanes (sampled)",
        run.metrics
            .get("peak_in_flight_events")
            .copied()
            .unwrap_or(0.0),
        "events",
    );
    results.add(
        scenario,
        "partition pauses (backpressure)",
        run.metrics
            .get("courier_partition_pauses_total")
            .copied()
            .unwrap_or(0.0),
        "pauses",
    );
    let requests = run
        .metrics
        .get("courier_request_duration_seconds_count")
        .copied()
        .unwrap_or(0.0);
    if requests > 0.0 {
        let seconds = run
            .metrics
            .get("courier_request_duration_seconds_sum")
            .copied()
            .unwrap_or(0.0);
        results.add(
            scenario,
            "mean request duration (send to answer)",
            1000.0 * seconds / requests,
            "ms",
        );
    }
    if let Some(b) = run.broker_cpu {
        results.add(
            scenario,
            "broker CPU share of the run",
            100.0 * b / wall,
            "% of core",
        );
    }
    results.add(
        scenario,
        "duplicate deliveries",
        run.receiver.events.saturating_sub(run.expected) as f64,
        "events",
    );
    results.add(
        scenario,
        "requests received",
        run.receiver.requests as f64,
        "requests",
    );
    if run.receiver.requests > 0 {
        results.add(
            scenario,
            "mean events per request",
            run.receiver.events as f64 / run.receiver.requests as f64,
            "events",
        );
        results.add(
            scenario,
            "mean request body",
            run.receiver.bytes as f64 / run.receiver.requests as f64 / 1024.0,
            "KiB",
        );
    }
}
