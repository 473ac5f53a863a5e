//! The six scenarios of `courier-bench run` (docs/benchmarks.md says what each shows and why
//! its target is what it is), run in a fixed order against one receiver: throughput and
//! fan-out share a backlog ([`throughput`]), then [`busy`], [`stalled`], [`latency`] and [`isolation`],
//! each on topics of its own that it deletes when done.

mod busy;
mod isolation;
mod latency;
mod stalled;
mod throughput;

use anyhow::{bail, Result};

use crate::cli::RunArgs;
use crate::measure::{courier_bin, Ctx};
use crate::receiver::Receiver;
use crate::report::Results;
use crate::sys::{load_average, now_us};

/// Every scenario, in the order they run.
const ALL: [&str; 6] = [
    "throughput",
    "fanout",
    "busy",
    "stalled",
    "latency",
    "isolation",
];

/// Runs the scenarios `args` selects, adding their rows to `results`, then prints the table
/// (and writes it as JSON with `--json`).
pub fn run(args: &RunArgs, results: &mut Results) -> Result<()> {
    let scenarios = selected(&args.scenarios)?;
    let workdir = match &args.workdir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("courier-bench-{}", now_us())),
    };
    std::fs::create_dir_all(&workdir)?;
    let courier = courier_bin(args)?;
    println!(
        "courier-bench: {} cores, load {}, scenarios {scenarios:?}, {} events ({} stalled), workdir {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        args.events,
        args.stalled_events,
        workdir.display()
    );
    let receiver = Receiver::start()?;
    let ctx = Ctx {
        args,
        workdir,
        receiver: &receiver,
        courier,
    };
    let run_id = now_us();

    if scenarios.contains(&"throughput") || scenarios.contains(&"fanout") {
        throughput::run(&ctx, &scenarios, run_id, results)?;
    }
    if scenarios.contains(&"busy") {
        busy::run(&ctx, run_id, results)?;
    }
    if scenarios.contains(&"stalled") {
        stalled::run(&ctx, run_id, results)?;
    }
    if scenarios.contains(&"latency") {
        latency::run(&ctx, run_id, results)?;
    }
    if scenarios.contains(&"isolation") {
        isolation::run(&ctx, run_id, results)?;
    }

    results.print();
    println!("\nload average at the end: {}", load_average());
    if let Some(path) = &args.json {
        results.write_json(args, path)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// The scenarios of `--scenarios`: `all`, or a comma-separated list of names.
fn selected(spec: &str) -> Result<Vec<&str>> {
    if spec == "all" {
        return Ok(ALL.to_vec());
    }
    let list: Vec<&str> = spec.split(',').map(str::trim).collect();
    for s in &list {
        if !ALL.contains(s) {
            bail!("unknown scenario {s:?}; expected one of {ALL:?} or all");
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_are_all_or_a_list_of_known_names() {
        assert_eq!(selected("all").unwrap(), ALL.to_vec());
        assert_eq!(
            selected("isolation, throughput").unwrap(),
            ["isolation", "throughput"]
        );
        let err = selected("throughput,speed").unwrap_err().to_string();
        assert!(err.contains("\"speed\""), "{err}");
    }
}
