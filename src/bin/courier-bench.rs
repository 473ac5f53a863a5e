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

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use clap::{Args, Parser, Subcommand};
use courier::event::{decode, Decoded};
use courier::generator::{Generator, GeneratorConfig};
use courier::routing::Router;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

/// The marker every benchmark event starts with.
const MARKER: &[u8] = b"{\"benchTs\":";
/// Generator seed of all benchmark data.
const SEED: u64 = 6;
/// Projects of the generated data (and of the configurations).
const PROJECTS: usize = 1000;
/// Projects of the isolation scenario: one webhook destination each.
const ISOLATION_PROJECTS: usize = 20;
/// Of these, the first `ISOLATION_FAILING` answer 503 forever and the next one hangs (the black
/// hole) in the isolation scenario's second run.
const ISOLATION_FAILING: usize = 2;
/// Projects whose destination is broken in the isolation scenario's second run.
const ISOLATION_BROKEN: usize = ISOLATION_FAILING + 1;
/// Delivery settings of the destinations that are broken in the isolation scenario (in both of
/// its runs, so that the runs differ only in the URLs): the in-line budget of one of their
/// batches is `batch_timeout` + `retry_max_elapsed` + one `request_timeout`.
const BROKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
const BROKEN_RETRY_MAX_ELAPSED: Duration = Duration::from_secs(3);

#[derive(Debug, Parser)]
#[command(
    name = "courier-bench",
    about = "courier's benchmark suite; see docs/benchmarks.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

// Parsed once per process; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Cmd {
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
struct RunArgs {
    /// Kafka bootstrap servers (a tansu broker with in-memory storage).
    #[arg(long)]
    brokers: String,
    /// Scenarios, comma-separated: throughput, fanout, stalled, latency, isolation (or all).
    #[arg(long, default_value = "all")]
    scenarios: String,
    /// Events of the throughput and fan-out topic.
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Events of the stalled-destination backlog.
    #[arg(long, default_value_t = 1_000_000)]
    stalled_events: u64,
    /// Produce rate of the latency scenario (events/s).
    #[arg(long, default_value_t = 10_000)]
    latency_rate: u64,
    /// Duration of the latency scenario (seconds).
    #[arg(long, default_value_t = 60)]
    latency_seconds: u64,
    /// Produce rate of the isolation scenario (events/s, spread evenly over its 20 projects).
    #[arg(long, default_value_t = 2_000)]
    isolation_rate: u64,
    /// Duration of each of the isolation scenario's two runs (seconds).
    #[arg(long, default_value_t = 40)]
    isolation_seconds: u64,
    /// Small sizes: 300,000 events, 150,000 stalled, 15 s of latency, 15 s per isolation run.
    #[arg(long)]
    quick: bool,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// `[delivery] batch_timeout` of every scenario (courier's default is 1s; see
    /// docs/benchmarks.md for why the benchmark uses 250ms).
    #[arg(long, default_value = "250ms")]
    batch_timeout: String,
    /// `[limits] max_in_flight_bytes`: the global in-flight budget (courier's default).
    #[arg(long, default_value_t = 128 * 1024 * 1024)]
    max_in_flight_bytes: u64,
    /// `[limits] max_in_flight_events` (courier's default).
    #[arg(long, default_value_t = 100_000)]
    max_in_flight_events: u64,
    /// Extra librdkafka properties for courier (`[kafka.options]`), as KEY=VALUE; repeatable.
    #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
    kafka_options: Vec<String>,
    /// The courier binary (default: `courier` next to this executable).
    #[arg(long)]
    courier: Option<PathBuf>,
    /// PID of the broker, to report its CPU share.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Writes the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Directory for configurations and logs (default: a fresh one under /tmp).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Records a CPU profile of courier during each measured run with
    /// `perf record -F 299 --call-graph dwarf` into this directory.
    #[arg(long)]
    perf: Option<PathBuf>,
    /// Skips the raw consumer (the ratio is then not reported).
    #[arg(long)]
    no_raw: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Receiver { port, stall_port } => receiver::main(port, stall_port),
        Cmd::Micro { events } => micro(events),
        Cmd::Run(mut args) => {
            if args.quick {
                args.events = 300_000;
                args.stalled_events = 150_000;
                args.latency_seconds = 15;
                args.isolation_seconds = 15;
            }
            install_signal_cleanup();
            let mut results = Results::default();
            let result = run(&args, &mut results);
            kill_children();
            if result.is_err() && !results.rows.is_empty() {
                println!("\nresults so far (the run stopped with an error):");
                results.print();
            }
            result
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes: killed on exit, on error and on Ctrl-C.

static CHILDREN: OnceLock<Mutex<Vec<u32>>> = OnceLock::new();

fn children() -> &'static Mutex<Vec<u32>> {
    CHILDREN.get_or_init(|| Mutex::new(Vec::new()))
}

/// A child process killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
    name: &'static str,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command) -> anyhow::Result<Proc> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        children().lock().unwrap().push(child.id());
        Ok(Proc { child, name })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("  {} did not stop within {grace:?}; killing it", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = self.child.id();
        children().lock().unwrap().retain(|&p| p != pid);
    }
}

fn kill_children() {
    for pid in children().lock().unwrap().drain(..) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

fn install_signal_cleanup() {
    std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("signal runtime");
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        eprintln!("courier-bench: interrupted; stopping what it started");
        kill_children();
        std::process::exit(130);
    });
}

// ---------------------------------------------------------------------------------------------
// /proc readings.

/// CPU seconds (user + system) of a process, from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here (0-based 11, 12).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A `/proc/PID/status` value in kB (`VmHWM`, `VmRSS`).
fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A minimal HTTP/1.1 request with `Connection: close` → (status, body).
fn http(method: &str, port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad HTTP answer"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

// ---------------------------------------------------------------------------------------------
// Kafka helpers.

fn client_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("log_level", "3");
    c
}

fn partition_count(brokers: &str, topic: &str) -> Option<usize> {
    let consumer: BaseConsumer = client_config(brokers).create().ok()?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    Some(t.partitions().len())
}

fn create_topic(brokers: &str, name: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers).create()?;
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let failed = match rt.block_on(admin.create_topics([&topic], &opts)) {
        Ok(results) => results.into_iter().find_map(|r| r.err()).map(|e| e.1),
        Err(e) => e.rdkafka_error_code(),
    };
    if let Some(code) = failed {
        if code != RDKafkaErrorCode::TopicAlreadyExists {
            bail!("creating topic {name}: {code}");
        }
    }
    let start = Instant::now();
    while partition_count(brokers, name) != Some(partitions as usize) {
        if start.elapsed() > Duration::from_secs(20) {
            bail!("topic {name} did not appear in the metadata");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Deletes topics (tansu keeps everything in memory: a full run would otherwise hold
/// several GB). Failures are only reported.
fn delete_topics(brokers: &str, names: &[&str]) {
    let result = (|| -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = client_config(brokers).create()?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        for r in rt.block_on(admin.delete_topics(names, &opts))? {
            if let Err((topic, code)) = r {
                eprintln!("  could not delete topic {topic}: {code}");
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        eprintln!("  could not delete topics {names:?}: {e}");
    }
}

/// Records where the broker put each message: end offset per partition.
#[derive(Default)]
struct DeliveryCtx {
    ends: Mutex<HashMap<i32, i64>>,
    delivered: AtomicU64,
    errors: AtomicU64,
}

impl ClientContext for DeliveryCtx {}

impl ProducerContext for DeliveryCtx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let mut ends = self.ends.lock().unwrap();
                let end = ends.entry(m.partition()).or_insert(0);
                *end = (*end).max(m.offset() + 1);
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("  produce error: {e}");
                }
            }
        }
    }
}

fn producer(brokers: &str, linger_ms: u32) -> anyhow::Result<ThreadedProducer<DeliveryCtx>> {
    Ok(client_config(brokers)
        .set("linger.ms", linger_ms.to_string())
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.type", "none")
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "300000")
        .create_with_context(DeliveryCtx::default())?)
}

/// Writes benchmark event `n` into `buf`: a generator event with `benchTs` first.
struct EventSource {
    generator: Generator,
    scratch: Vec<u8>,
    /// Projects taken in turn (event `i` belongs to project `i mod len`); empty: the
    /// generator picks them at random among `PROJECTS`.
    rotation: Vec<String>,
    count: usize,
}

impl EventSource {
    fn new() -> Self {
        Self::with_projects(PROJECTS)
    }

    fn with_projects(projects: usize) -> Self {
        Self {
            generator: Generator::new(GeneratorConfig {
                seed: SEED,
                projects,
                poison_every: None,
                target_bytes: Some(1024),
            }),
            scratch: Vec::with_capacity(2048),
            rotation: Vec::new(),
            count: 0,
        }
    }

    /// Events for projects 1..=`projects` in turn, so that each gets exactly its share.
    fn rotating(projects: usize) -> Self {
        let mut source = Self::with_projects(projects);
        source.rotation = (1..=projects).map(courier::generator::project_id).collect();
        source
    }

    /// The source of a layout's data.
    fn for_layout(layout: Layout) -> Self {
        match layout {
            Layout::Isolation { .. } => Self::rotating(ISOLATION_PROJECTS),
            _ => Self::new(),
        }
    }

    /// The next event, stamped with `ts_us`.
    fn next(&mut self, ts_us: u64, buf: &mut Vec<u8>) {
        if self.rotation.is_empty() {
            self.scratch.clear();
            self.generator.write_event(&mut self.scratch);
        } else {
            let project = &self.rotation[self.count % self.rotation.len()];
            self.scratch = self.generator.event_for_project(project);
        }
        self.count += 1;
        buf.clear();
        buf.extend_from_slice(MARKER);
        let _ = write!(DisplayVec(buf), "{ts_us},");
        buf.extend_from_slice(&self.scratch[1..]);
    }
}

struct DisplayVec<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for DisplayVec<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn send(
    producer: &ThreadedProducer<DeliveryCtx>,
    topic: &str,
    partition: i32,
    value: &[u8],
) -> anyhow::Result<()> {
    let mut record = BaseRecord::to(topic).payload(value).partition(partition);
    loop {
        match producer.send::<(), [u8]>(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, _)) => bail!("produce: {e}"),
        }
    }
}

/// Produces `n` events to a new topic in large batches; returns the end offset per partition.
fn produce_backlog(
    brokers: &str,
    topic: &str,
    partitions: i32,
    n: u64,
) -> anyhow::Result<HashMap<i32, i64>> {
    create_topic(brokers, topic, partitions)?;
    let producer = producer(brokers, 50)?;
    let mut source = EventSource::new();
    let mut buf = Vec::with_capacity(2048);
    let start = Instant::now();
    let mut bytes = 0u64;
    for i in 0..n {
        source.next(now_us(), &mut buf);
        bytes += buf.len() as u64;
        send(&producer, topic, (i % partitions as u64) as i32, &buf)?;
    }
    producer.flush(Duration::from_secs(300))?;
    let ctx = producer.context();
    let errors = ctx.errors.load(Ordering::Relaxed);
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    if errors > 0 || delivered != n {
        bail!("producing {topic}: {delivered} of {n} delivered, {errors} errors");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  produced {n} events ({:.0} bytes each) to {topic} in {secs:.1}s ({:.0} events/s)",
        bytes as f64 / n as f64,
        n as f64 / secs
    );
    let ends = ctx.ends.lock().unwrap().clone();
    Ok(ends)
}

/// Produces `n` events from `source` to an existing topic at a steady `rate` (events/s;
/// `linger.ms=5`), event `i` to partition `i mod partitions`, each stamped with the wall clock
/// when it is sent. Returns the end offset per partition and when the last event was sent.
fn produce_steady(
    brokers: &str,
    topic: &str,
    partitions: i32,
    rate: u64,
    n: u64,
    source: &mut EventSource,
) -> anyhow::Result<(HashMap<i32, i64>, Instant)> {
    let producer = producer(brokers, 5)?;
    let mut buf = Vec::with_capacity(2048);
    let start = Instant::now();
    let mut last_sent = start;
    for i in 0..n {
        let due = Duration::from_secs_f64(i as f64 / rate as f64);
        let elapsed = start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
        source.next(now_us(), &mut buf);
        last_sent = Instant::now();
        send(&producer, topic, (i % partitions as u64) as i32, &buf)?;
    }
    let took = start.elapsed().as_secs_f64();
    producer.flush(Duration::from_secs(60))?;
    println!(
        "  produced {n} events in {took:.1}s ({:.0} events/s)",
        n as f64 / took
    );
    let ctx = producer.context();
    let errors = ctx.errors.load(Ordering::Relaxed);
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    if errors > 0 || delivered != n {
        bail!("producing {topic}: {delivered} of {n} delivered, {errors} errors");
    }
    let ends = ctx.ends.lock().unwrap().clone();
    Ok((ends, last_sent))
}

/// The raw consumer: reads `topic` from the start in a fresh group and does nothing else.
/// Returns (seconds from its creation until the last event was read, events read).
fn raw_consumer(
    brokers: &str,
    topic: &str,
    ends: &HashMap<i32, i64>,
) -> anyhow::Result<(f64, u64)> {
    let start = Instant::now();
    let consumer: BaseConsumer = client_config(brokers)
        .set("group.id", format!("bench-raw-{}", now_us()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut count = 0u64;
    let mut bytes = 0u64;
    let total: i64 = ends.values().sum();
    let deadline = Duration::from_secs(600);
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                count += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64);
                next.insert(m.partition(), m.offset() + 1);
                if count as i64 >= total
                    && ends
                        .iter()
                        .all(|(p, e)| next.get(p).copied().unwrap_or(0) >= *e)
                {
                    break;
                }
            }
            Some(Err(e)) => eprintln!("  raw consumer: {e}"),
            None => {}
        }
        if start.elapsed() > deadline {
            bail!("raw consumer did not reach the end within {deadline:?}");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(bytes);
    Ok((secs, count))
}

/// Reads a consumer group's committed offsets (OffsetFetch) without joining it.
struct OffsetWatch {
    consumer: BaseConsumer,
    tpl: TopicPartitionList,
}

impl OffsetWatch {
    fn new(brokers: &str, group: &str, topic: &str, partitions: i32) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = client_config(brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        Ok(Self { consumer, tpl })
    }

    fn reached(&self, ends: &HashMap<i32, i64>) -> bool {
        let Ok(committed) = self
            .consumer
            .committed_offsets(self.tpl.clone(), Duration::from_secs(5))
        else {
            return false;
        };
        ends.iter().all(|(&p, &end)| {
            committed
                .elements()
                .iter()
                .find(|e| e.partition() == p)
                .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= end))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Configurations.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One webhook destination per project, no filter: every event is delivered once.
    OnePerProject,
    /// Three destinations per project with varied filters.
    FanOut,
    /// Per project a healthy destination and one that never answers.
    Stalled,
    /// `ISOLATION_PROJECTS` projects with one webhook destination each. `broken`: the first
    /// `ISOLATION_FAILING` answer 503, the next one never answers; otherwise these point at
    /// the receiver's uncounted `/ok/` path. The others are the healthy ones, at `/hook/`.
    Isolation { broken: bool },
}

struct Setup<'a> {
    args: &'a RunArgs,
    topic: &'a str,
    group: String,
    listen_port: u16,
    receiver_port: u16,
    stall_port: u16,
    layout: Layout,
    tag: String,
}

fn courier_config(s: &Setup<'_>) -> String {
    let mut t = String::new();
    let tag = &s.tag;
    let _ = write!(
        t,
        r#"shutdown_timeout = "20s"

[kafka]
brokers = "{brokers}"
topic = "{topic}"
group_id = "{group}"
commit_interval = "100ms"

[kafka.options]
"fetch.wait.max.ms" = "5"
"auto.offset.reset" = "earliest"
"session.timeout.ms" = "10000"
{extra_options}

[failures]
topic = "bench-failures-{tag}"
retry_topic = "bench-retry-{tag}"
retry_topic_partitions = 4

[server]
listen = "127.0.0.1:{listen}"

[security]
allow_networks = ["127.0.0.0/8"]

[limits]
max_in_flight_events = {max_events}
max_in_flight_bytes = {max_bytes}

[log]
format = "json"
level = "warn"

[delivery]
batch_max_events = 1000
batch_timeout = "{batch_timeout}"
max_in_flight = 4
queue_max_events = 10000
"#,
        brokers = s.args.brokers,
        topic = s.topic,
        group = s.group,
        listen = s.listen_port,
        batch_timeout = s.args.batch_timeout,
        max_events = s.args.max_in_flight_events,
        max_bytes = s.args.max_in_flight_bytes,
        extra_options = s
            .args
            .kafka_options
            .iter()
            .filter_map(|o| o.split_once('='))
            .map(|(k, v)| format!("{k:?} = {v:?}\n"))
            .collect::<String>(),
    );
    let hook = |project: &str, id: &str| {
        format!("http://127.0.0.1:{}/hook/{project}/{id}", s.receiver_port)
    };
    let projects = match s.layout {
        Layout::Isolation { .. } => ISOLATION_PROJECTS,
        _ => PROJECTS,
    };
    for n in 1..=projects {
        let project = courier::generator::project_id(n);
        let mut dest = |id: &str, url: String, filter: &str| {
            let _ = write!(
                t,
                "\n[[destinations]]\nproject = \"{project}\"\nid = \"{id}\"\ntype = \"webhook\"\nurl = \"{url}\"\n"
            );
            if !filter.is_empty() {
                let _ = write!(t, "[destinations.filter]\n{filter}\n");
            }
        };
        match s.layout {
            Layout::OnePerProject => dest("all", hook(&project, "all"), ""),
            Layout::FanOut => {
                dest("all", hook(&project, "all"), "");
                let second = match n % 3 {
                    0 => r#"min_level = "WARN""#,
                    1 => r#"levels = ["ERROR", "DEBUG"]"#,
                    _ => r#"types = ["APP_EVENT", "WEBHOOK_TRIGGER", "ACTIONKIT"]"#,
                };
                dest("second", hook(&project, "second"), second);
                let third = match n % 4 {
                    0 => r#"integration_ids = ["salesforce", "hubspot"]"#,
                    1 => r#"end_user_ids = ["user-1", "user-2", "user-3", "user-4", "user-5"]"#,
                    2 => r#"search = "\"status\":\"EVENT_STATUS.FAILED\"""#,
                    _ => {
                        r#"since = "2026-11-01T00:00:00Z"
until = "2026-11-01T01:00:00Z"
min_level = "INFO""#
                    }
                };
                dest("third", hook(&project, "third"), third);
            }
            Layout::Stalled => {
                dest("healthy", hook(&project, "healthy"), "");
                dest(
                    "stalled",
                    format!("http://127.0.0.1:{}/stall/{project}", s.stall_port),
                    "",
                );
                // Its circuit opens after 3 timeouts of 1 s; parked events are due only after
                // the run, so the retry worker never re-attempts them here.
                t.push_str(
                    "[destinations.delivery]\nrequest_timeout = \"1s\"\nretry_max_elapsed = \"2s\"\n\
                     retry_initial_backoff = \"100ms\"\nretry_max_backoff = \"500ms\"\n\
                     circuit_failure_threshold = 3\nprobe_interval = \"10m\"\nretry_schedule = [\"1h\"]\n",
                );
            }
            Layout::Isolation { broken } => {
                let i = n - 1;
                let url = if i >= ISOLATION_BROKEN {
                    // The last path segment groups the receiver's latencies.
                    let group = if shares_partition_with_broken(i, s.args.partitions) {
                        "shared"
                    } else {
                        "apart"
                    };
                    hook(&project, group)
                } else if !broken {
                    format!("http://127.0.0.1:{}/ok/{project}/webhook", s.receiver_port)
                } else if i < ISOLATION_FAILING {
                    format!(
                        "http://127.0.0.1:{}/fail/{project}/webhook",
                        s.receiver_port
                    )
                } else {
                    format!("http://127.0.0.1:{}/stall/{project}", s.stall_port)
                };
                dest("webhook", url, "");
                if i < ISOLATION_BROKEN {
                    // Realistic settings for a destination that may break: a short request
                    // timeout and in-line budget, a circuit that opens after 3 failures and
                    // probes every 5 s; parked events are due only after the run, so the retry
                    // worker never re-attempts them here.
                    let _ = write!(
                        t,
                        "[destinations.delivery]\nrequest_timeout = \"{}ms\"\nretry_max_elapsed = \"{}ms\"\n\
                         retry_initial_backoff = \"100ms\"\nretry_max_backoff = \"500ms\"\n\
                         circuit_failure_threshold = 3\nprobe_interval = \"5s\"\nretry_schedule = [\"1h\"]\n",
                        BROKEN_REQUEST_TIMEOUT.as_millis(),
                        BROKEN_RETRY_MAX_ELAPSED.as_millis(),
                    );
                }
            }
        }
    }
    t
}

/// Whether project `j` (0-based) of the isolation scenario has events in a partition that
/// also carries events of a broken destination: event `i` goes to project `i mod 20` and
/// partition `i mod partitions`, so project `j`'s events are in the partitions congruent to
/// `j` modulo gcd(20, partitions).
fn shares_partition_with_broken(j: usize, partitions: i32) -> bool {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let g = gcd(ISOLATION_PROJECTS, partitions.max(1) as usize);
    (0..ISOLATION_BROKEN).any(|b| b % g == j % g)
}

/// Deliveries to the receiver's `/hook/` the configuration implies for `n` benchmark
/// events, computed with courier's own decoder and router.
fn expected_deliveries(config_path: &Path, mut source: EventSource, n: u64) -> anyhow::Result<u64> {
    let config = courier::config::load(config_path)
        .map_err(|e| anyhow!("benchmark configuration is invalid:\n{e}"))?;
    let mut router = Router::new();
    let mut to_receiver = Vec::new();
    for d in config.destinations.iter().filter(|d| d.enabled) {
        let url = match &d.sink {
            courier::config::SinkConfig::Webhook(w) => w.url.clone(),
            _ => String::new(),
        };
        router.add(&d.project, &d.id, &d.filter, to_receiver.len());
        to_receiver.push(url.contains("/hook/"));
    }
    let mut buf = Vec::with_capacity(2048);
    let mut total = 0;
    for _ in 0..n {
        source.next(1_000_000_000_000_000, &mut buf);
        if let Decoded::Routable(fields) = decode(Some(&buf), usize::MAX) {
            router.route(&fields, &buf, None, |lane| {
                if to_receiver[lane] {
                    total += 1;
                }
            });
        }
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------------
// The receiver, seen from the orchestrator.

struct Receiver {
    _proc: Proc,

    port: u16,
    stall_port: u16,
}

#[derive(Debug, Default, Clone, serde::Deserialize)]
struct ReceiverStats {
    events: u64,
    requests: u64,
    bytes: u64,
    cpu_seconds: f64,
    stalled_connections: u64,
    /// Requests answered 503 at `/fail/`.
    failed_requests: u64,
    /// Events taken at `/ok/` (not counted in `events`).
    other_events: u64,
    latency_count: u64,
    latency_p50_us: u64,
    latency_p99_us: u64,
    latency_max_us: u64,
    /// The latencies by the last segment of the URL path (`/hook/<project>/<group>`).
    latency_groups: HashMap<String, LatencySummary>,
}

/// Produce-to-receipt latency of a set of events, in µs.
#[derive(Debug, Default, Clone, Serialize, serde::Deserialize)]
struct LatencySummary {
    count: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

impl Receiver {
    fn start() -> anyhow::Result<Receiver> {
        let port = free_port();
        let stall_port = free_port();
        let exe = std::env::current_exe()?;
        let proc = Proc::spawn(
            "receiver",
            Command::new(exe)
                .args(["receiver", "--port", &port.to_string()])
                .args(["--stall-port", &stall_port.to_string()])
                .stdin(Stdio::null()),
        )?;
        let r = Receiver {
            _proc: proc,
            port,
            stall_port,
        };
        let start = Instant::now();
        while r.stats().is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                bail!("the receiver did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(r)
    }

    fn stats(&self) -> anyhow::Result<ReceiverStats> {
        let (status, body) = http("GET", self.port, "/stats")?;
        if status != 200 {
            bail!("receiver /stats answered {status}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    fn reset(&self, latency: bool) -> anyhow::Result<()> {
        let path = if latency {
            "/reset?latency=1"
        } else {
            "/reset"
        };
        http("POST", self.port, path)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// One measured courier run.

struct CourierRun {
    /// When courier was spawned.
    started: Instant,
    /// Spawn until the committed offsets reached the end of the topic.
    commit_secs: f64,
    /// Spawn until the receiver had every expected event.
    delivered_secs: f64,
    /// Spawn until `/readyz` answered 200.
    ready_secs: f64,
    cpu_seconds: f64,
    peak_rss_mb: f64,
    receiver: ReceiverStats,
    expected: u64,
    receiver_cpu: f64,
    broker_cpu: Option<f64>,
    metrics: HashMap<String, f64>,
}

fn courier_bin(args: &RunArgs) -> anyhow::Result<PathBuf> {
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

/// Sums every series of a metric in Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Ctx<'a> {
    args: &'a RunArgs,
    workdir: PathBuf,
    receiver: &'a Receiver,
    courier: PathBuf,
}

fn run_courier(
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
    let expected = expected_deliveries(&config_path, EventSource::for_layout(layout), events)?;
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
    while commit_secs.is_none() || delivered_secs.is_none() {
        if let Ok((200, text)) = http("GET", setup.listen_port, "/metrics") {
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
        "courier_events_failed_total",
        "courier_requests_total",
        "courier_paused_partitions",
    ] {
        metrics.insert(m.to_owned(), metric_sum(&metrics_text, m));
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
fn settle() {
    std::thread::sleep(Duration::from_secs(2));
}

// ---------------------------------------------------------------------------------------------
// Results.

#[derive(Debug, Serialize)]
struct Row {
    scenario: String,
    metric: String,
    value: f64,
    unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    met: Option<bool>,
}

#[derive(Default)]
struct Results {
    rows: Vec<Row>,
}

impl Results {
    fn add(&mut self, scenario: &str, metric: &str, value: f64, unit: &str) {
        self.rows.push(Row {
            scenario: scenario.into(),
            metric: metric.into(),
            value,
            unit: unit.into(),
            target: None,
            met: None,
        });
    }

    fn check(
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

    fn print(&self) {
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

fn add_run(results: &mut Results, scenario: &str, events: u64, run: &CourierRun) {
    let wall = run.commit_secs;
    results.add(
        scenario,
        "courier startup (spawn to /readyz)",
        run.ready_secs,
        "s",
    );
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
    let _ = events;
}

fn run(args: &RunArgs, results: &mut Results) -> anyhow::Result<()> {
    let all = ["throughput", "fanout", "stalled", "latency", "isolation"];
    let scenarios: Vec<&str> = if args.scenarios == "all" {
        all.to_vec()
    } else {
        let list: Vec<&str> = args.scenarios.split(',').map(str::trim).collect();
        for s in &list {
            if !all.contains(s) {
                bail!("unknown scenario {s:?}; expected one of {all:?} or all");
            }
        }
        list
    };
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
    let mut throughput_rate = None;

    if scenarios.contains(&"throughput") || scenarios.contains(&"fanout") {
        let topic = format!("bench-events-{run_id}");
        println!("\n== data: {} events", args.events);
        let ends = produce_backlog(&args.brokers, &topic, args.partitions, args.events)?;
        let raw_rate = if args.no_raw {
            None
        } else {
            settle();
            let cpu0 = cpu_seconds("self").unwrap_or(0.0);
            let (secs, count) = raw_consumer(&args.brokers, &topic, &ends)?;
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
                "\n== scenario 1: throughput (one webhook destination per project, no filter)"
            );
            let run = run_courier(
                &ctx,
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
                    ">= 0.5",
                    rate / raw >= 0.5,
                );
            }
            let us = run.cpu_seconds * 1e6 / args.events as f64;
            results.check(
                "throughput",
                "courier CPU per event",
                us,
                "µs",
                "<= 5",
                us <= 5.0,
            );
            results.add("throughput", "courier CPU per million events", us, "s");
            results.check(
                "throughput",
                "courier peak RSS (VmHWM)",
                run.peak_rss_mb,
                "MB",
                "<= 150",
                run.peak_rss_mb <= 150.0,
            );
            add_run(results, "throughput", args.events, &run);
        }
        if scenarios.contains(&"fanout") {
            println!("\n== scenario 2: fan-out (1,000 projects × 3 destinations, varied filters)");
            let run = run_courier(
                &ctx,
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
            results.add("fanout", "courier CPU per event", us, "µs");
            results.add("fanout", "courier peak RSS (VmHWM)", run.peak_rss_mb, "MB");
            add_run(results, "fanout", args.events, &run);
        }
        delete_topics(&args.brokers, &[&topic]);
    }

    if scenarios.contains(&"stalled") {
        let n = args.stalled_events;
        let topic = format!("bench-backlog-{run_id}");
        println!("\n== scenario 3: stalled destination ({n}-event backlog)");
        let ends = produce_backlog(&args.brokers, &topic, args.partitions, n)?;
        let base = run_courier(
            &ctx,
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
        let run = run_courier(&ctx, "stalled", Layout::Stalled, &topic, &ends, n, None)?;
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
        results.add(
            "stalled",
            "black-hole connections opened",
            run.receiver.stalled_connections as f64,
            "conns",
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
        add_run(results, "stalled", n, &run);
        delete_topics(&args.brokers, &[&topic]);
    }

    if scenarios.contains(&"latency") {
        let rate = args.latency_rate;
        let secs = args.latency_seconds;
        let n = rate * secs;
        let topic = format!("bench-live-{run_id}");
        println!("\n== scenario 4: latency ({rate} events/s for {secs}s)");
        create_topic(&args.brokers, &topic, args.partitions)?;
        let brokers = args.brokers.clone();
        let partitions = args.partitions;
        let topic2 = topic.clone();
        let raw_latency: Arc<Mutex<Vec<u32>>> = Arc::default();
        let raw_latency2 = raw_latency.clone();
        let produce = move || -> anyhow::Result<HashMap<i32, i64>> {
            // The raw consumer reads the same live topic meanwhile: the latency of the input.
            let reader = {
                let brokers = brokers.clone();
                let topic = topic2.clone();
                let out = raw_latency2.clone();
                std::thread::spawn(move || -> anyhow::Result<()> {
                    let consumer: BaseConsumer = client_config(&brokers)
                        .set("group.id", format!("bench-raw-live-{}", now_us()))
                        .set("enable.auto.commit", "false")
                        .set("auto.offset.reset", "earliest")
                        .set("fetch.wait.max.ms", "5")
                        .create()?;
                    consumer.subscribe(&[&topic])?;
                    let deadline = Instant::now() + Duration::from_secs(secs + 60);
                    let mut got = 0;
                    while got < n && Instant::now() < deadline {
                        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                            let now = now_us();
                            let ts = m
                                .payload()
                                .and_then(|p| p.get(MARKER.len()..))
                                .map(|d| {
                                    d.iter()
                                        .take_while(|c| c.is_ascii_digit())
                                        .fold(0u64, |a, &c| a * 10 + u64::from(c - b'0'))
                                })
                                .unwrap_or(now);
                            out.lock()
                                .unwrap()
                                .push(now.saturating_sub(ts).min(u64::from(u32::MAX)) as u32);
                            got += 1;
                        }
                    }
                    Ok(())
                })
            };
            let (ends, _) = produce_steady(
                &brokers,
                &topic2,
                partitions,
                rate,
                n,
                &mut EventSource::new(),
            )?;
            let _ = reader.join();
            Ok(ends)
        };
        let run = run_courier(
            &ctx,
            "latency",
            Layout::OnePerProject,
            &topic,
            &HashMap::new(),
            n,
            Some(&produce),
        )?;
        let r = &run.receiver;
        let timeout_ms = humantime::parse_duration(&args.batch_timeout)?.as_secs_f64() * 1e3;
        let p99 = r.latency_p99_us as f64 / 1e3;
        println!(
            "  latency over {} events: p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
            r.latency_count,
            r.latency_p50_us as f64 / 1e3,
            r.latency_max_us as f64 / 1e3
        );
        results.add(
            "latency",
            "events measured",
            r.latency_count as f64,
            "events",
        );
        results.add(
            "latency",
            "p50 produce to receipt",
            r.latency_p50_us as f64 / 1e3,
            "ms",
        );
        results.check(
            "latency",
            "p99 produce to receipt",
            p99,
            "ms",
            &format!("<= {:.0}", timeout_ms + 50.0),
            p99 <= timeout_ms + 50.0,
        );
        results.add(
            "latency",
            "max produce to receipt",
            r.latency_max_us as f64 / 1e3,
            "ms",
        );
        let mut raw = raw_latency.lock().unwrap().clone();
        raw.sort_unstable();
        if !raw.is_empty() {
            let pct = |q: f64| raw[((raw.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
            println!(
                "  raw consumer on the same topic: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                pct(0.5),
                pct(0.99),
                pct(1.0)
            );
            results.add(
                "latency",
                "raw consumer p50 produce to read",
                pct(0.5),
                "ms",
            );
            results.add(
                "latency",
                "raw consumer p99 produce to read",
                pct(0.99),
                "ms",
            );
            results.add(
                "latency",
                "raw consumer max produce to read",
                pct(1.0),
                "ms",
            );
        }
        results.add(
            "latency",
            "courier CPU per event",
            run.cpu_seconds * 1e6 / n as f64,
            "µs",
        );
        results.add("latency", "courier peak RSS (VmHWM)", run.peak_rss_mb, "MB");
        delete_topics(&args.brokers, &[&topic]);
    }

    if scenarios.contains(&"isolation") {
        let rate = args.isolation_rate;
        let secs = args.isolation_seconds;
        let k = ISOLATION_PROJECTS as u64;
        // Whole rounds over the projects: every project gets the same number of events.
        let n = (rate * secs).div_ceil(k) * k;
        let broken_events = n / k * ISOLATION_BROKEN as u64;
        println!(
            "\n== scenario 5: isolation ({ISOLATION_PROJECTS} projects with one webhook destination each, {rate} events/s for {secs}s; without, then with {ISOLATION_FAILING} answering 503 and 1 hanging)"
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
                &ctx,
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
            if !broken && r.other_events < broken_events {
                bail!(
                    "{name}: the three destinations at /ok/ received {} of {broken_events} events",
                    r.other_events
                );
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
        let parked = b
            .metrics
            .get("courier_events_parked_total")
            .copied()
            .unwrap_or(0.0);
        if parked as u64 != broken_events {
            eprintln!(
                "  isolation: {parked} events parked, but the broken destinations had {broken_events}"
            );
        }
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
        add_run(results, "isolation", n, b);
    }

    results.print();
    println!("\nload average at the end: {}", load_average());
    if let Some(path) = &args.json {
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
            "results": results.rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Micro-benchmark.

fn micro(n: usize) -> anyhow::Result<()> {
    let mut source = EventSource::new();
    let mut events = Vec::with_capacity(n);
    let mut buf = Vec::with_capacity(2048);
    for _ in 0..n {
        source.next(1_000_000_000_000_000, &mut buf);
        events.push(bytes::Bytes::copy_from_slice(&buf));
    }
    let bytes: usize = events.iter().map(|e| e.len()).sum();
    println!("{n} events, {:.0} bytes each", bytes as f64 / n as f64);
    let dir = std::env::temp_dir().join(format!("courier-micro-{}", now_us()));
    std::fs::create_dir_all(&dir)?;
    let routers: Vec<(&str, Router)> = [
        ("one per project", Layout::OnePerProject),
        ("fan-out", Layout::FanOut),
    ]
    .into_iter()
    .map(|(name, layout)| -> anyhow::Result<(&str, Router)> {
        let Cmd::Run(args) =
            Cli::parse_from(["courier-bench", "run", "--brokers", "127.0.0.1:1"]).command
        else {
            unreachable!("parsed a run command")
        };
        let setup = Setup {
            args: &args,
            topic: "t",
            group: "g".into(),
            listen_port: 1,
            receiver_port: 2,
            stall_port: 3,
            layout,
            tag: "micro".into(),
        };
        let path = dir.join(format!("{}.toml", name.replace(' ', "-")));
        std::fs::write(&path, courier_config(&setup))?;
        let config = courier::config::load(&path)
            .map_err(|e| anyhow!("micro configuration is invalid:\n{e}"))?;
        let mut router = Router::new();
        for (i, d) in config.destinations.iter().enumerate() {
            router.add(&d.project, &d.id, &d.filter, i);
        }
        Ok((name, router))
    })
    .collect::<anyhow::Result<_>>()?;
    let _ = std::fs::remove_dir_all(&dir);
    let time = |label: &str, f: &mut dyn FnMut() -> u64| {
        let mut best = f64::MAX;
        let mut check = 0;
        for _ in 0..5 {
            let start = Instant::now();
            check = f();
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!(
            "{label:<44} {:8.0} ns/event   (check {check})",
            best * 1e9 / n as f64
        );
    };
    time("copy payload (Bytes::copy_from_slice)", &mut || {
        events
            .iter()
            .map(|e| bytes::Bytes::copy_from_slice(e).len() as u64)
            .sum()
    });
    time("decode (routing fields)", &mut || {
        events
            .iter()
            .map(|e| match decode(Some(e), usize::MAX) {
                Decoded::Routable(f) => f.level.get().map_or(0, str::len) as u64,
                Decoded::Unroutable { .. } => 0,
            })
            .sum()
    });
    for (name, router) in &routers {
        time(&format!("decode + route ({name})"), &mut || {
            let mut lanes = 0u64;
            for e in &events {
                if let Decoded::Routable(f) = decode(Some(e), usize::MAX) {
                    router.route(&f, e, None, |_| lanes += 1);
                }
            }
            lanes
        });
    }
    let acker = courier::source::Acker::new();
    acker.assign(&[0]);
    let mut offset = 0i64;
    time("track + complete (Acker)", &mut || {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(acker.track(0, offset, 1));
            offset += 1;
        }
        for chunk in ids.chunks(100) {
            acker.complete(chunk.iter().copied());
        }
        acker.pending() as u64
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The fast receiver.

mod receiver {
    use super::*;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{StatusCode, Uri};
    use axum::routing::{get, post};
    use tokio::io::AsyncReadExt;

    #[derive(Default)]
    struct Counters {
        events: AtomicU64,
        requests: AtomicU64,
        bytes: AtomicU64,
        stalled: AtomicU64,
        failed: AtomicU64,
        other: AtomicU64,
        record_latency: AtomicBool,
        latencies: Mutex<Vec<u32>>,
        /// The same latencies by the last segment of the URL path (`/hook/<project>/<group>`).
        groups: Mutex<HashMap<String, Vec<u32>>>,
    }

    pub fn main(port: u16, stall_port: u16) -> anyhow::Result<()> {
        // One thread: cheap, and its CPU is easy to attribute.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let counters = Arc::new(Counters::default());
            let stall = tokio::net::TcpListener::bind(("127.0.0.1", stall_port)).await?;
            let c = counters.clone();
            tokio::spawn(async move {
                // Accepts, reads whatever comes, never answers; the connection ends when the
                // client gives up.
                while let Ok((mut sock, _)) = stall.accept().await {
                    c.stalled.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                    });
                }
            });
            let app = axum::Router::new()
                .route("/hook/{*rest}", post(hook))
                .route("/ok/{*rest}", post(ok))
                .route("/fail/{*rest}", post(fail))
                .route("/stats", get(stats))
                .route("/reset", post(reset))
                .layer(axum::extract::DefaultBodyLimit::disable())
                .with_state(counters);
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            axum::serve(listener, app).await?;
            anyhow::Ok(())
        })
    }

    async fn hook(State(c): State<Arc<Counters>>, uri: Uri, body: Bytes) -> &'static str {
        let finder = memchr::memmem::Finder::new(MARKER);
        let mut events = 0u64;
        if c.record_latency.load(Ordering::Relaxed) {
            let now = now_us();
            let mut lat = c.latencies.lock().unwrap();
            let first = lat.len();
            for at in finder.find_iter(&body) {
                events += 1;
                let digits = &body[at + MARKER.len()..];
                let mut ts = 0u64;
                for &d in digits.iter().take_while(|d| d.is_ascii_digit()) {
                    ts = ts * 10 + u64::from(d - b'0');
                }
                lat.push(now.saturating_sub(ts).min(u64::from(u32::MAX)) as u32);
            }
            let group = uri.path().rsplit('/').next().unwrap_or_default();
            c.groups
                .lock()
                .unwrap()
                .entry(group.to_owned())
                .or_default()
                .extend_from_slice(&lat[first..]);
        } else {
            events = finder.find_iter(&body).count() as u64;
        }
        c.events.fetch_add(events, Ordering::Relaxed);
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        ""
    }

    /// Answers 200 like `/hook/`, but its events are counted apart (no latency).
    async fn ok(State(c): State<Arc<Counters>>, body: Bytes) -> &'static str {
        let events = memchr::memmem::find_iter(&body, MARKER).count() as u64;
        c.other.fetch_add(events, Ordering::Relaxed);
        ""
    }

    /// A destination that is down: 503 for everything, forever.
    async fn fail(State(c): State<Arc<Counters>>, body: Bytes) -> (StatusCode, &'static str) {
        // The body is read (as a real server would), so the connection can be reused.
        drop(body);
        c.failed.fetch_add(1, Ordering::Relaxed);
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    }

    /// Count, p50, p99 and max of latencies (µs).
    fn summary(mut lat: Vec<u32>) -> LatencySummary {
        lat.sort_unstable();
        let pct = |q: f64| -> u64 {
            if lat.is_empty() {
                0
            } else {
                u64::from(lat[((lat.len() - 1) as f64 * q).round() as usize])
            }
        };
        LatencySummary {
            count: lat.len() as u64,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            max_us: lat.last().copied().map_or(0, u64::from),
        }
    }

    async fn stats(State(c): State<Arc<Counters>>) -> String {
        let all = summary(c.latencies.lock().unwrap().clone());
        let groups: HashMap<String, LatencySummary> = c
            .groups
            .lock()
            .unwrap()
            .iter()
            .map(|(g, lat)| (g.clone(), summary(lat.clone())))
            .collect();
        serde_json::json!({
            "events": c.events.load(Ordering::Relaxed),
            "requests": c.requests.load(Ordering::Relaxed),
            "bytes": c.bytes.load(Ordering::Relaxed),
            "stalled_connections": c.stalled.load(Ordering::Relaxed),
            "failed_requests": c.failed.load(Ordering::Relaxed),
            "other_events": c.other.load(Ordering::Relaxed),
            "cpu_seconds": cpu_seconds("self").unwrap_or(0.0),
            "latency_count": all.count,
            "latency_p50_us": all.p50_us,
            "latency_p99_us": all.p99_us,
            "latency_max_us": all.max_us,
            "latency_groups": groups,
        })
        .to_string()
    }

    async fn reset(State(c): State<Arc<Counters>>, uri: Uri) -> &'static str {
        c.events.store(0, Ordering::Relaxed);
        c.requests.store(0, Ordering::Relaxed);
        c.bytes.store(0, Ordering::Relaxed);
        c.stalled.store(0, Ordering::Relaxed);
        c.failed.store(0, Ordering::Relaxed);
        c.other.store(0, Ordering::Relaxed);
        c.latencies.lock().unwrap().clear();
        c.groups.lock().unwrap().clear();
        c.record_latency.store(
            uri.query().is_some_and(|q| q.contains("latency")),
            Ordering::Relaxed,
        );
        "ok"
    }
}
