//! The command line: `run` (the scenarios against a broker), `micro` (in-process, no broker) and
//! `receiver` (the fast receiver, which `run` starts as a child of its own binary).
//!
//! Every option of `run` is accepted by `scripts/bench`, which passes its arguments on; the
//! defaults are the sizes `docs/benchmarks.md` reports.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "courier-bench",
    about = "courier's benchmark suite; see docs/benchmarks.md"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

// Parsed once per process; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Runs benchmark scenarios against a running broker.
    Run(RunArgs),
    /// In-process micro-benchmark of the per-event work on the source thread (decode,
    /// route, payload copy, acknowledgement tracking), single-threaded, no broker.
    Micro {
        /// Events per measurement.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
    },
    /// The fast receiver (started by `run`): counts webhook events, measures latency.
    Receiver {
        /// Port of the webhook endpoint (`POST /hook/...`; `POST /ok/...` answers 200 without
        /// counting, `POST /fail/...` answers 503; `GET /stats`, `POST /reset`).
        #[arg(long)]
        port: u16,
        /// Port of the black hole: accepts connections, reads and never answers.
        #[arg(long)]
        stall_port: u16,
    },
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Kafka bootstrap servers (a tansu broker with in-memory storage).
    #[arg(long)]
    pub brokers: String,
    /// Scenarios, comma-separated: throughput, fanout, busy, stalled, latency, isolation (or all).
    #[arg(long, default_value = "all")]
    pub scenarios: String,
    /// Events of the throughput and fan-out topic, and of the busy scenario's.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// Events of the stalled-destination backlog.
    #[arg(long, default_value_t = 1_000_000)]
    pub stalled_events: u64,
    /// Produce rate of the latency scenario (events/s).
    #[arg(long, default_value_t = 10_000)]
    pub latency_rate: u64,
    /// Duration of the latency scenario (seconds).
    #[arg(long, default_value_t = 60)]
    pub latency_seconds: u64,
    /// Produce rate of the isolation scenario (events/s, spread evenly over its 20 projects).
    #[arg(long, default_value_t = 2_000)]
    pub isolation_rate: u64,
    /// Duration of each of the isolation scenario's two runs (seconds).
    #[arg(long, default_value_t = 40)]
    pub isolation_seconds: u64,
    /// Small sizes: 300,000 events, 150,000 stalled, 15 s of latency, 15 s per isolation run.
    #[arg(long)]
    pub quick: bool,
    /// Projects of the throughput, fan-out and stalled scenarios' data (one or more
    /// destinations each).
    #[arg(long, default_value_t = crate::data::PROJECTS as u32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub projects: u32,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// `[delivery] batch_timeout` of every scenario (courier's default is 1s; see
    /// docs/benchmarks.md for why the benchmark uses 250ms).
    #[arg(long, default_value = "250ms")]
    pub batch_timeout: String,
    /// `[limits] max_in_flight_bytes`: the global in-flight budget (courier's default).
    #[arg(long, default_value_t = 128 * 1024 * 1024)]
    pub max_in_flight_bytes: u64,
    /// `[limits] max_in_flight_events` (courier's default).
    #[arg(long, default_value_t = 100_000)]
    pub max_in_flight_events: u64,
    /// Extra librdkafka properties for courier (`[kafka.options]`), as KEY=VALUE; repeatable.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
    pub kafka_options: Vec<String>,
    /// The courier binary (default: `courier` next to this executable).
    #[arg(long)]
    pub courier: Option<PathBuf>,
    /// PID of the broker, to report its CPU share.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Writes the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Directory for configurations and logs (default: a fresh one under /tmp).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Records a CPU profile of courier during each measured run with
    /// `perf record -F 299 --call-graph dwarf` into this directory.
    #[arg(long)]
    pub perf: Option<PathBuf>,
    /// Skips the raw consumer (the ratio is then not reported).
    #[arg(long)]
    pub no_raw: bool,
    /// Prints, every half second of each measured run, what the receiver has and what
    /// courier holds, parks and diverts: where a run loses its pace.
    #[arg(long)]
    pub timeline: bool,
}

impl RunArgs {
    /// `run`'s defaults, for the configurations the micro-benchmark routes with.
    pub fn defaults(brokers: &str) -> RunArgs {
        let Cmd::Run(args) =
            Cli::parse_from(["courier-bench", "run", "--brokers", brokers]).command
        else {
            unreachable!("parsed a run command")
        };
        args
    }
}
