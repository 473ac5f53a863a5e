//! Scenario 5: isolation. 20 projects with one webhook destination each, produced at a steady
//! rate while courier runs, twice: a baseline, then with two destinations answering 503, one
//! hanging and one answering too slowly for its share of the traffic. The healthy destinations' latency must not suffer beyond a bound, and the end of
//! the topic must be committed within a broken destination's in-line budget after the last
//! event, so that broken tenants cannot hold back the others.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use crate::config::{
    Layout, BROKEN_REQUEST_TIMEOUT, BROKEN_RETRY_MAX_ELAPSED, ISOLATION_BROKEN, ISOLATION_FAILING,
    ISOLATION_PROJECTS, SLOW_ANSWER,
};
use crate::data::EventSource;
use crate::kafka::{create_topic, delete_topics, produce_steady};
use crate::measure::{run_courier, Ctx};
use crate::report::{add_run, Results};

pub fn run(ctx: &Ctx<'_>, run_id: u64, results: &mut Results) -> Result<()> {
    let args = ctx.args;
    let rate = args.isolation_rate;
    let secs = args.isolation_seconds;
    let k = ISOLATION_PROJECTS as u64;
    // Whole rounds over the projects: every project gets the same number of events.
    let n = (rate * secs).div_ceil(k) * k;
    let broken_events = n / k * ISOLATION_BROKEN.len() as u64;
    println!(
        "\n== scenario 5: isolation ({ISOLATION_PROJECTS} projects with one webhook destination each, {rate} events/s for {secs}s; without, then with {ISOLATION_FAILING} answering 503, 1 hanging and 1 answering after {} ms, one request of 10 events at a time)", SLOW_ANSWER.as_millis()
    );
    let mut measured = Vec::new();
    for (name, broken) in [("isolation-baseline", false), ("isolation", true)] {
        let topic = format!("bench-{name}-{run_id}");
        create_topic(&args.brokers, &topic, args.partitions)?;
        let last_sent = Cell::new(None);
        let produce = || -> anyhow::Result<HashMap<i32, i64>> {
            let (ends, last) = produce_steady(
                &args.brokers,
                &topic,
                args.partitions,
                rate,
                n,
                &mut EventSource::rotating(ISOLATION_PROJECTS),
            )?;
            last_sent.set(Some(last));
            Ok(ends)
        };
        let run = run_courier(
            ctx,
            name,
            Layout::Isolation { broken },
            &topic,
            &HashMap::new(),
            n,
            Some(&produce),
        )?;
        delete_topics(&args.brokers, &[&topic]);
        let last = last_sent
            .get()
            .ok_or_else(|| anyhow!("{name}: nothing was produced"))?;
        // From the moment the last event was sent until the group's committed offsets
        // were seen at the end of every partition (polled every 50 ms or so).
        let lag = (run.started + Duration::from_secs_f64(run.commit_secs))
            .saturating_duration_since(last)
            .as_secs_f64();
        let r = &run.receiver;
        println!(
            "  {}: the healthy destinations received {} of {} events, latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; committed the end {lag:.2}s after the last event; parked {}; peak RSS {:.0} MB",
            if broken { "with the broken destinations" } else { "baseline" },
            r.events,
            run.expected,
            r.latency_p50_us as f64 / 1e3,
            r.latency_p99_us as f64 / 1e3,
            r.latency_max_us as f64 / 1e3,
            run.metrics.get("courier_events_parked_total").copied().unwrap_or(0.0) as u64,
            run.peak_rss_mb
        );
        for (group, what) in [
            ("shared", "sharing a partition with a broken one"),
            ("apart", "on the other partitions"),
        ] {
            if let Some(g) = r.latency_groups.get(group) {
                println!(
                    "    healthy destinations {what}: {} events, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    g.count,
                    g.p50_us as f64 / 1e3,
                    g.p99_us as f64 / 1e3,
                    g.max_us as f64 / 1e3
                );
            }
        }
        if r.latency_count < run.expected {
            bail!(
                "{name}: latency measured for {} events, {} were expected",
                r.latency_count,
                run.expected
            );
        }
        // In the baseline the four destinations that break in the second run answer at /ok/;
        // the one that is slow there has a queue of 50 and one request of 10 events at a
        // time, so a hiccup of the machine can fill its queue in the baseline too, and its
        // next events overflow (parked, due after the run): counted, not missing.
        let overflow = run
            .metrics
            .get("courier_overflow_events_total")
            .copied()
            .unwrap_or(0.0) as u64;
        if !broken && r.other_events + overflow < broken_events {
            bail!(
                "{name}: the four destinations at /ok/ received {} of {broken_events} events ({overflow} overflowed)",
                r.other_events
            );
        }
        if !broken && overflow > 0 {
            println!("  baseline: {overflow} events of the destinations at /ok/ overflowed (their queue filled)");
        }
        measured.push((run, lag));
    }
    let [(a, lag_a), (b, lag_b)] = &measured[..] else {
        unreachable!("two runs")
    };
    let ms = |us: u64| us as f64 / 1e3;
    results.add(
        "isolation",
        "healthy events expected (each run)",
        b.expected as f64,
        "events",
    );
    for (run, label) in [(a, "baseline"), (b, "broken destinations")] {
        results.check(
            "isolation",
            &format!("healthy events received, {label}"),
            run.receiver.events as f64,
            "events",
            &format!(">= {}", run.expected),
            run.receiver.events >= run.expected,
        );
    }
    for (run, label) in [(a, "baseline"), (b, "broken destinations")] {
        let r = &run.receiver;
        results.add(
            "isolation",
            &format!("healthy p50, {label}"),
            ms(r.latency_p50_us),
            "ms",
        );
        results.add(
            "isolation",
            &format!("healthy p99, {label}"),
            ms(r.latency_p99_us),
            "ms",
        );
        results.add(
            "isolation",
            &format!("healthy max, {label}"),
            ms(r.latency_max_us),
            "ms",
        );
    }
    // The same by partition: do the healthy destinations that share a partition with a
    // broken one (and so its commit point) fare worse than the others in the same run?
    for (group, what) in [
        ("shared", "sharing a broken partition"),
        ("apart", "on the other partitions"),
    ] {
        for (run, label) in [(a, "baseline"), (b, "broken")] {
            if let Some(g) = run.receiver.latency_groups.get(group) {
                results.add(
                    "isolation",
                    &format!("p99 {what}, {label}"),
                    ms(g.p99_us),
                    "ms",
                );
            }
        }
    }
    let (p99_a, p99_b) = (ms(a.receiver.latency_p99_us), ms(b.receiver.latency_p99_us));
    results.add(
        "isolation",
        "healthy p99, broken / baseline",
        p99_b / p99_a,
        "ratio",
    );
    // The bound: 50 ms or 20% of the baseline's p99, whichever is larger.
    let bound = (0.2 * p99_a).max(50.0);
    results.check(
        "isolation",
        "healthy p99, broken − baseline",
        p99_b - p99_a,
        "ms",
        &format!("<= {bound:.0}"),
        p99_b - p99_a <= bound,
    );
    results.add(
        "isolation",
        "committed end after last event, baseline",
        *lag_a,
        "s",
    );
    // In-line budget of a broken destination's batch: its oldest event waits up to
    // batch_timeout, no retry starts after retry_max_elapsed, the last attempt may take a
    // request_timeout. The margin (1 s) covers parking (acks=all), the commit interval, the
    // input's own latency and the polling of the committed offsets.
    let budget = humantime::parse_duration(&args.batch_timeout)?.as_secs_f64()
        + BROKEN_RETRY_MAX_ELAPSED.as_secs_f64()
        + BROKEN_REQUEST_TIMEOUT.as_secs_f64();
    results.add(
        "isolation",
        "in-line budget of a broken destination",
        budget,
        "s",
    );
    results.check(
        "isolation",
        "committed end after last event, broken",
        *lag_b,
        "s",
        &format!("<= {:.2}", budget + 1.0),
        *lag_b <= budget + 1.0,
    );
    let metric = |name: &str| b.metrics.get(name).copied().unwrap_or(0.0);
    let parked = metric("courier_events_parked_total");
    let overflow = metric("courier_overflow_events_total");
    // The failing and hanging destinations' events are all parked; of the slow one's, what
    // overflowed around its lane (the rest it was sent).
    let failing_events = n / k * (ISOLATION_BROKEN.len() as u64 - 1);
    if parked as u64 != failing_events + overflow as u64 {
        eprintln!(
            "  isolation: {parked} events parked, but the failing and hanging destinations had {failing_events} and {overflow} of the slow one's overflowed"
        );
    }
    results.add(
        "isolation",
        "slow destination's events overflowed (parked)",
        overflow,
        "events",
    );
    results.add(
        "isolation",
        "slow destination's events sent by its lane",
        b.receiver.other_events as f64,
        "events",
    );
    results.add(
        "isolation",
        "events for the broken destinations",
        broken_events as f64,
        "events",
    );
    results.add(
        "isolation",
        "events parked in the retry topic",
        parked,
        "events",
    );
    results.add(
        "isolation",
        "503 answers given",
        b.receiver.failed_requests as f64,
        "requests",
    );
    results.add(
        "isolation",
        "black-hole connections opened",
        b.receiver.stalled_connections as f64,
        "conns",
    );
    results.add("isolation", "peak RSS, baseline", a.peak_rss_mb, "MB");
    results.add(
        "isolation",
        "peak RSS, broken destinations",
        b.peak_rss_mb,
        "MB",
    );
    add_run(results, "isolation", b);
    Ok(())
}
