//! Scenarios 1 and 2 on one backlog: throughput (one webhook destination per project, no
//! filter) and fan-out (three destinations per project with varied filters), each compared
//! with the raw consumer reading the same topic, which is measured first.

use anyhow::Result;

use crate::config::Layout;
use crate::kafka::{delete_topics, produce_backlog};
use crate::measure::{run_courier, settle, Ctx};
use crate::raw;
use crate::report::{add_run, Results};
use crate::sys::cpu_seconds;

/// Produces the backlog, measures the raw consumer on it, then runs whichever of `throughput`
/// and `fanout` are in `scenarios`.
pub fn run(ctx: &Ctx<'_>, scenarios: &[&str], run_id: u64, results: &mut Results) -> Result<()> {
    let args = ctx.args;
    let mut throughput_rate = None;
    let topic = format!("bench-events-{run_id}");
    println!("\n== data: {} events", args.events);
    let ends = produce_backlog(
        &args.brokers,
        &topic,
        args.partitions,
        args.events,
        args.projects as usize,
    )?;
    let raw_rate = if args.no_raw {
        None
    } else {
        settle();
        let cpu0 = cpu_seconds("self").unwrap_or(0.0);
        let (secs, count) = raw::read_backlog(&args.brokers, &topic, &ends)?;
        let cpu = cpu_seconds("self").unwrap_or(0.0) - cpu0;
        let rate = count as f64 / secs;
        println!(
            "  raw consumer: {count} events in {secs:.2}s = {rate:.0} events/s, CPU {cpu:.1}s"
        );
        results.add("raw", "raw consumer events/s", rate, "events/s");
        results.add(
            "raw",
            "raw consumer CPU per event",
            cpu * 1e6 / count as f64,
            "µs",
        );
        Some(rate)
    };
    if scenarios.contains(&"throughput") {
        println!(
            "\n== scenario 1: throughput ({} projects, one webhook destination each, no filter)",
            args.projects
        );
        let run = run_courier(
            ctx,
            "throughput",
            Layout::OnePerProject,
            &topic,
            &ends,
            args.events,
            None,
        )?;
        let rate = args.events as f64 / run.commit_secs;
        throughput_rate = Some(rate);
        println!(
            "  courier: committed the end after {:.2}s = {rate:.0} events/s, CPU {:.1}s, peak RSS {:.0} MB",
            run.commit_secs, run.cpu_seconds, run.peak_rss_mb
        );
        results.add(
            "throughput",
            "courier events/s (spawn to committed end)",
            rate,
            "events/s",
        );
        if let Some(raw) = raw_rate {
            results.check(
                "throughput",
                "courier / raw consumer",
                rate / raw,
                "ratio",
                ">= 0.85",
                rate / raw >= 0.85,
            );
        }
        let us = run.cpu_seconds * 1e6 / args.events as f64;
        results.check(
            "throughput",
            "courier CPU per event",
            us,
            "µs",
            "<= 3",
            us <= 3.0,
        );
        results.add("throughput", "courier CPU per million events", us, "s");
        results.check(
            "throughput",
            "courier peak RSS (VmHWM)",
            run.peak_rss_mb,
            "MB",
            "<= 128",
            run.peak_rss_mb <= 128.0,
        );
        add_run(results, "throughput", &run);
    }
    if scenarios.contains(&"fanout") {
        println!("\n== scenario 2: fan-out (1,000 projects × 3 destinations, varied filters)");
        let run = run_courier(
            ctx,
            "fanout",
            Layout::FanOut,
            &topic,
            &ends,
            args.events,
            None,
        )?;
        let rate = args.events as f64 / run.commit_secs;
        println!(
            "  courier: committed the end after {:.2}s = {rate:.0} events/s ({} deliveries), CPU {:.1}s, peak RSS {:.0} MB",
            run.commit_secs, run.expected, run.cpu_seconds, run.peak_rss_mb
        );
        results.add(
            "fanout",
            "courier events/s (spawn to committed end)",
            rate,
            "events/s",
        );
        results.add(
            "fanout",
            "deliveries/s",
            run.expected as f64 / run.commit_secs,
            "events/s",
        );
        if let Some(t) = throughput_rate {
            results.check(
                "fanout",
                "fan-out / throughput scenario",
                rate / t,
                "ratio",
                ">= 0.8",
                rate / t >= 0.8,
            );
        }
        if let Some(raw) = raw_rate {
            results.add("fanout", "courier / raw consumer", rate / raw, "ratio");
        }
        let us = run.cpu_seconds * 1e6 / args.events as f64;
        results.check(
            "fanout",
            "courier CPU per event",
            us,
            "µs",
            "<= 5",
            us <= 5.0,
        );
        results.check(
            "fanout",
            "courier peak RSS (VmHWM)",
            run.peak_rss_mb,
            "MB",
            "<= 160",
            run.peak_rss_mb <= 160.0,
        );
        add_run(results, "fanout", &run);
    }
    delete_topics(&args.brokers, &[&topic]);
    Ok(())
}
