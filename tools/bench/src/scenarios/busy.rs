//! One busy destination at courier's default delivery settings: every event of the backlog
//! belongs to one project with one webhook destination (a big tenant, or an operator-wide
//! archive). Throughput then depends on one lane keeping its requests full — its request slots
//! (`max_in_flight`) and its queue (`queue_max_events`) — rather than on a thousand lanes
//! sharing the work; with too small defaults the partitions are paused for every batch.

use anyhow::Result;

use crate::config::Layout;
use crate::kafka::{delete_topics, produce_backlog_from};
use crate::measure::{run_courier, settle, Ctx};
use crate::raw;
use crate::report::{add_run, Results};

pub fn run(ctx: &Ctx<'_>, run_id: u64, results: &mut Results) -> Result<()> {
    let args = ctx.args;
    let n = args.events;
    let topic = format!("bench-busy-{run_id}");
    println!("\n== scenario: one busy destination ({n} events of one project, default settings)");
    let ends = produce_backlog_from(
        &args.brokers,
        &topic,
        args.partitions,
        n,
        Layout::Busy.source(1),
    )?;
    let raw_rate = if args.no_raw {
        None
    } else {
        settle();
        let (secs, count) = raw::read_backlog(&args.brokers, &topic, &ends)?;
        let rate = count as f64 / secs;
        println!("  raw consumer: {count} events in {secs:.2}s = {rate:.0} events/s");
        results.add("busy", "raw consumer events/s", rate, "events/s");
        Some(rate)
    };
    let run = run_courier(ctx, "busy", Layout::Busy, &topic, &ends, n, None)?;
    let rate = n as f64 / run.commit_secs;
    println!(
        "  courier: committed the end after {:.2}s = {rate:.0} events/s, CPU {:.1}s, peak RSS {:.0} MB",
        run.commit_secs, run.cpu_seconds, run.peak_rss_mb
    );
    results.add(
        "busy",
        "courier events/s (spawn to committed end)",
        rate,
        "events/s",
    );
    if let Some(raw) = raw_rate {
        results.check(
            "busy",
            "courier / raw consumer",
            rate / raw,
            "ratio",
            ">= 0.85",
            rate / raw >= 0.85,
        );
    }
    results.add(
        "busy",
        "courier CPU per event",
        run.cpu_seconds * 1e6 / n as f64,
        "µs",
    );
    results.add("busy", "courier peak RSS (VmHWM)", run.peak_rss_mb, "MB");
    add_run(results, "busy", &run);
    delete_topics(&args.brokers, &[&topic]);
    Ok(())
}
