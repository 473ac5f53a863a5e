//! courier's benchmark suite (issue #6). Run it through `scripts/bench`, which builds in
//! release, starts a tansu broker and stops it afterwards; `docs/benchmarks.md` explains every
//! scenario, number and target.
//!
//! `courier-bench run --brokers HOST:PORT` runs the scenarios against a running broker:
//! it produces the benchmark data (1 KB Event Logs from courier's own generator, 1,000
//! projects, in large batches from offset 0), measures a raw rdkafka consumer on the same
//! topic (the input limit of this machine), then runs the compiled `courier` binary as a
//! separate process and measures it from the outside (committed offsets through OffsetFetch,
//! CPU and peak RSS from `/proc/PID`). Deliveries go to the fast receiver,
//! `courier-bench receiver`, another process, which counts events and measures latency.
//!
//! Every benchmark event is a generator event with one extra leading member,
//! `{"benchTs":<produce time, µs since the epoch>,…`: the receiver counts events by that
//! marker (no JSON parsing) and computes produce-to-receipt latency from it.
//!
//! It is a crate of its own, outside the workspace's default members, so that operators'
//! `cargo build --release` builds `courier` only. The modules follow one run:
//! - [`cli`]: the commands and options;
//! - [`data`]: the benchmark events and their marker;
//! - [`kafka`]: topics, producing the data, reading committed offsets;
//! - [`raw`]: the raw consumer, the baseline courier is compared with;
//! - [`config`]: courier's configuration per scenario and the deliveries it implies;
//! - [`receiver`]: the fast receiver process and the orchestrator's view of it;
//! - [`measure`]: one measured courier run;
//! - [`scenarios`]: the five scenarios and their targets;
//! - [`report`]: the results table and JSON;
//! - [`micro`]: the in-process micro-benchmark;
//! - [`process`], [`sys`]: child processes, `/proc` readings, ports and a minimal HTTP client.

mod cli;
mod config;
mod data;
mod kafka;
mod measure;
mod micro;
mod process;
mod raw;
mod receiver;
mod report;
mod scenarios;
mod sys;

use clap::Parser;

use crate::cli::{Cli, Cmd};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Receiver { port, stall_port } => receiver::server::main(port, stall_port),
        Cmd::Micro { events } => micro::run(events),
        Cmd::Run(mut args) => {
            if args.quick {
                args.events = 300_000;
                args.stalled_events = 150_000;
                args.latency_seconds = 15;
                args.isolation_seconds = 15;
            }
            process::install_signal_cleanup();
            let mut results = report::Results::default();
            let result = scenarios::run(&args, &mut results);
            process::kill_children();
            if result.is_err() && !results.rows.is_empty() {
                println!("\nresults so far (the run stopped with an error):");
                results.print();
            }
            result
        }
    }
}
