//! Scenario 3: a stalled destination. The same backlog twice: once with one healthy
//! destination per project, once with a second destination per project that never answers.
//! The healthy destinations must keep (nearly) their pace, and courier's memory must stay
//! within the configured in-flight budget while the stalled one holds events.

use anyhow::Result;

use crate::config::Layout;
use crate::kafka::{delete_topics, produce_backlog};
use crate::measure::{run_courier, Ctx};
use crate::report::{add_run, Results};

pub fn run(ctx: &Ctx<'_>, run_id: u64, results: &mut Results) -> Result<()> {
    let args = ctx.args;
    let n = args.stalled_events;
    let topic = format!("bench-backlog-{run_id}");
    println!("\n== scenario 3: stalled destination ({n}-event backlog)");
    let ends = produce_backlog(
        &args.brokers,
        &topic,
        args.partitions,
        n,
        args.projects as usize,
    )?;
    let base = run_courier(
        ctx,
        "stalled-baseline",
        Layout::OnePerProject,
        &topic,
        &ends,
        n,
        None,
    )?;
    let base_rate = n as f64 / base.delivered_secs;
    println!(
        "  without the stalled destination: all delivered after {:.2}s = {base_rate:.0} events/s, peak RSS {:.0} MB",
        base.delivered_secs, base.peak_rss_mb
    );
    let run = run_courier(ctx, "stalled", Layout::Stalled, &topic, &ends, n, None)?;
    let rate = n as f64 / run.delivered_secs;
    println!(
        "  with it: healthy destinations had everything after {:.2}s = {rate:.0} events/s; committed the end after {:.2}s; parked {}; peak RSS {:.0} MB",
        run.delivered_secs,
        run.commit_secs,
        run.metrics.get("courier_events_parked_total").copied().unwrap_or(0.0),
        run.peak_rss_mb
    );
    results.add(
        "stalled",
        "healthy events/s, no stalled destination",
        base_rate,
        "events/s",
    );
    results.add(
        "stalled",
        "healthy events/s, stalled destination",
        rate,
        "events/s",
    );
    results.check(
        "stalled",
        "healthy with / without stall",
        rate / base_rate,
        "ratio",
        ">= 0.9",
        rate / base_rate >= 0.9,
    );
    results.add(
        "stalled",
        "committed end after (parking included)",
        run.commit_secs,
        "s",
    );
    results.add(
        "stalled",
        "events parked in the retry topic",
        run.metrics
            .get("courier_events_parked_total")
            .copied()
            .unwrap_or(0.0),
        "events",
    );
    let batches = run
        .metrics
        .get("courier_parked_batches_total")
        .copied()
        .unwrap_or(0.0);
    let references = run
        .metrics
        .get("parked records (reference)")
        .copied()
        .unwrap_or(0.0);
    let copies = run
        .metrics
        .get("parked records (copy)")
        .copied()
        .unwrap_or(0.0);
    println!(
        "  parking: {batches} batches written as {references} reference records and {copies} copies"
    );
    results.add("stalled", "batches parked", batches, "batches");
    results.add(
        "stalled",
        "parking records, references",
        references,
        "records",
    );
    results.add("stalled", "parking records, copies", copies, "records");
    results.check(
        "stalled",
        "parking records per parked batch",
        (references + copies) / batches.max(1.0),
        "records/batch",
        "<= 1",
        references + copies <= batches,
    );
    results.add(
        "stalled",
        "black-hole connections opened",
        run.receiver.stalled_connections as f64,
        "conns",
    );
    let diverted = run
        .metrics
        .get("courier_diverted_events_total")
        .copied()
        .unwrap_or(0.0);
    results.add(
        "stalled",
        "events diverted around their lanes",
        diverted,
        "events",
    );
    // What the stalled destination costs: the CPU of the run with it minus the run without
    // it, per event routed to it (every event of the backlog).
    results.add(
        "stalled",
        "courier CPU, no stalled destination",
        base.cpu_seconds,
        "s",
    );
    results.add(
        "stalled",
        "courier CPU added per stalled event",
        (run.cpu_seconds - base.cpu_seconds) / n as f64 * 1e6,
        "µs",
    );
    results.add(
        "stalled",
        "peak RSS, no stalled destination",
        base.peak_rss_mb,
        "MB",
    );
    // The configured in-flight budget: `[limits] max_in_flight_bytes`, what all lanes
    // together may hold before reading waits.
    let budget_mb = args.max_in_flight_bytes as f64 / 1048576.0;
    let limit = budget_mb + 64.0;
    results.add("stalled", "configured in-flight budget", budget_mb, "MiB");
    results.add(
        "stalled",
        "peak bytes held in lanes (sampled)",
        run.metrics.get("peak_in_flight_mb").copied().unwrap_or(0.0),
        "MiB",
    );
    results.check(
        "stalled",
        "peak RSS, stalled destination",
        run.peak_rss_mb,
        "MB",
        &format!("<= {limit:.0}"),
        run.peak_rss_mb <= limit,
    );
    add_run(results, "stalled", &run);
    delete_topics(&args.brokers, &[&topic]);
    Ok(())
}
