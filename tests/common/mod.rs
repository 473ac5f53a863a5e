//! Test harness shared by the integration and end-to-end tests.
//!
//! Real parts only: a `tansu` broker in its own process ([`Tansu`]), the compiled `courier`
//! binary in its own process ([`Courier`]), and an HTTP server in the test process that plays a
//! customer's webhook endpoint and enforces the webhook contract of `CONTRACT.md`
//! ([`WebhookReceiver`]). Kafka helpers ([`create_topic`], [`produce`], [`read_all`],
//! [`committed_offsets`]) use rdkafka directly and work around the broker quirks documented in
//! `TESTING.md`.
//!
//! The API is synchronous: tests are plain `#[test]` functions. Everything asynchronous runs on
//! one multi-threaded tokio runtime owned by this module ([`rt`]).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sha2::Sha256;

// ---------------------------------------------------------------------------------------------
// Generic helpers
// ---------------------------------------------------------------------------------------------

/// The tokio runtime every asynchronous part of the harness runs on (HTTP servers, HTTP
/// clients, rdkafka futures). Shared by all tests of a test binary.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("harness")
            .enable_all()
            .build()
            .expect("build the harness tokio runtime")
    })
}

/// Polls `cond` every `poll` until it returns true; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, poll: Duration, cond: impl FnMut() -> bool) {
    wait_explained(what, timeout, poll, cond, String::new);
}

/// [`wait_until`], whose panic adds `context()` (logs of the processes involved).
pub fn wait_explained(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut cond: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() >= timeout {
            panic!(
                "timed out after {timeout:?} waiting for: {what}\n{}",
                context()
            );
        }
        std::thread::sleep(poll);
    }
}

/// A loopback port that was free a moment ago (bound to 127.0.0.1:0, then released). Never
/// hands out the same port twice within one test binary, so parallel tests do not collide.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind 127.0.0.1:0")
            .local_addr()
            .expect("local_addr")
            .port();
        if given.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// A number not returned before by this function in this process.
pub fn unique_number() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The last `lines` lines of a (log) file, or a note saying why it could not be read.
pub fn file_tail(path: &Path, lines: usize) -> String {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return format!("<cannot open {}: {e}>", path.display()),
    };
    // Logs can be large; the tail is in the last 256 KiB.
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(256 * 1024);
    let _ = file.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    all[from..].join("\n")
}

/// Quotes a string as a TOML basic string (JSON string escapes are valid TOML escapes).
pub fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("quote string")
}

/// `GET http://{addr}{path}` → (status, body). Ignores any proxy settings of the environment.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("build reqwest client")
    });
    let url = format!("http://{addr}{path}");
    rt().block_on(async {
        let resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .map_err(|e| format!("GET {url} body: {e}"))?;
        Ok((status, body))
    })
}

/// `POST url` with `headers` and `body` → (status, headers). For testing the harness itself.
pub fn http_post(
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, HeaderMap), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("build reqwest client");
    rt().block_on(async {
        let mut req = client.post(url).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.map_err(|e| format!("POST {url}: {e}"))?;
        Ok((resp.status().as_u16(), resp.headers().clone()))
    })
}

/// The sum of every sample of metric `name` in a Prometheus text exposition whose labels
/// contain all of `labels` (`[("reason", "invalid_json")]`); `None` if there is no such sample.
pub fn metric_sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in exposition.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value_text) = if let Some(inner) = rest.strip_prefix('{') {
            let Some(end) = inner.find('}') else { continue };
            (&inner[..end], inner[end + 1..].trim())
        } else if rest.starts_with(' ') {
            ("", rest.trim())
        } else {
            continue; // another metric whose name starts with `name`
        };
        let matches = labels.iter().all(|(k, v)| {
            label_text
                .split(',')
                .any(|kv| kv.trim() == format!("{k}=\"{v}\""))
        });
        if !matches {
            continue;
        }
        let value: f64 = value_text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unparsable metric line: {line}"));
        *total.get_or_insert(0.0) += value;
    }
    total
}

// ---------------------------------------------------------------------------------------------
// tansu broker
// ---------------------------------------------------------------------------------------------

const TANSU_INSTALL_HINT: &str = "tansu (the Kafka-compatible test broker) is not installed: \
     run `cargo install tansu --locked --features dynostore` or `scripts/test`, and make sure \
     ~/.cargo/bin is on PATH";

/// Path of the `tansu` executable: on PATH, else in ~/.cargo/bin. Panics with install
/// instructions when it is missing.
pub fn tansu_bin() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("tansu")).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/tansu"));
    }
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .unwrap_or_else(|| panic!("{TANSU_INSTALL_HINT}"))
}

/// A tansu broker process with in-memory storage on a free loopback port, killed on drop.
pub struct Tansu {
    child: Child,
    port: u16,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tansu {
    /// Starts a broker and waits until it answers metadata requests.
    pub fn start() -> Tansu {
        let bin = tansu_bin();
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("tansu-")
                .tempdir()
                .expect("tempdir");
            let port = free_port();
            let log_path = dir.path().join("tansu.log");
            let log = File::create(&log_path).expect("create tansu log");
            let url = format!("tcp://127.0.0.1:{port}");
            let child = Command::new(&bin)
                .arg("broker")
                .args(["--listener-url", &url])
                .args(["--advertised-listener-url", &url])
                .args(["--storage-engine", "memory://tansu/"])
                .args(["--cluster-id", &format!("courier-e2e-{port}")])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        panic!("{TANSU_INSTALL_HINT}");
                    }
                    panic!("cannot start {}: {e}", bin.display())
                });
            let mut tansu = Tansu {
                child,
                port,
                log_path,
                _dir: dir,
            };
            match tansu.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return tansu,
                Err(e) => {
                    last_error = format!("{e}\n--- tansu log ---\n{}", tansu.log_tail(40));
                    // Drop kills it; try again on another port (the port may have been taken).
                }
            }
        }
        panic!("tansu did not start: {last_error}");
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        // 1. The port accepts connections.
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("tansu exited during start-up with {status}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if start.elapsed() > timeout {
                return Err(format!("port {} never accepted connections", self.port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // 2. A metadata request succeeds.
        let consumer: BaseConsumer = base_config(&self.brokers())
            .create()
            .map_err(|e| format!("create metadata client: {e}"))?;
        loop {
            match consumer.fetch_metadata(None, Duration::from_secs(2)) {
                Ok(md) if !md.brokers().is_empty() => return Ok(()),
                Ok(_) => {}
                Err(e) if start.elapsed() > timeout => {
                    return Err(format!("metadata request never succeeded: {e}"))
                }
                Err(_) => {}
            }
            if start.elapsed() > timeout {
                return Err("metadata never listed a broker".into());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("tansu exited during start-up with {status}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.log_path, lines)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- tail of tansu log ({}) ---\n{}\n--- end of tansu log ---",
                self.brokers(),
                self.log_tail(30)
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Kafka helpers
// ---------------------------------------------------------------------------------------------

/// Client properties every harness client uses against tansu.
fn base_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("broker.address.family", "v4")
        .set("log_level", "3");
    c
}

/// Partition count of `topic`, if the broker knows the topic.
pub fn partition_count(brokers: &str, topic: &str) -> Option<usize> {
    let consumer: BaseConsumer = base_config(brokers).create().expect("metadata client");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    Some(t.partitions().len())
}

/// Creates `name` with `partitions` partitions (CreateTopics through rdkafka's AdminClient,
/// falling back to `tansu topic create`) and waits until the metadata shows it.
pub fn create_topic(brokers: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        base_config(brokers).create().expect("create admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let result = rt().block_on(admin.create_topics([&topic], &opts));
    let admin_error = match result {
        Ok(results) => results
            .into_iter()
            .find_map(|r| r.err())
            .map(|(t, e)| format!("{t}: {e}")),
        Err(e) => Some(e.to_string()),
    };
    if let Some(err) = admin_error {
        eprintln!("CreateTopics for {name} failed ({err}); trying `tansu topic create`");
        let out = Command::new(tansu_bin())
            .args(["topic", "create", name])
            .args(["--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://{brokers}")])
            .output()
            .expect("run tansu topic create");
        assert!(
            out.status.success(),
            "tansu topic create {name} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_until(
        &format!("topic {name} with {partitions} partitions in the metadata"),
        Duration::from_secs(15),
        Duration::from_millis(100),
        || partition_count(brokers, name) == Some(partitions as usize),
    );
}

/// Produces `messages` (`(partition, value)`; `None` lets the partitioner choose) to `topic`
/// and returns the `(partition, offset)` the broker gave each message, in input order.
///
/// One record per batch (`linger.ms=0`, `batch.num.messages=1`): tansu skips the rest of a
/// multi-record batch when a consumer starts fetching in its middle (TESTING.md quirk 2).
pub fn produce<I>(brokers: &str, topic: &str, messages: I) -> Vec<(i32, i64)>
where
    I: IntoIterator<Item = (Option<i32>, Vec<u8>)>,
{
    let messages: Vec<(Option<i32>, Vec<u8>)> = messages.into_iter().collect();
    let producer: FutureProducer = base_config(brokers)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("message.max.bytes", "16000000")
        .set("compression.type", "none")
        .create()
        .expect("create producer");
    let results = rt().block_on(async {
        let mut out = Vec::with_capacity(messages.len());
        // Bounded concurrency: fast, and keeps librdkafka's queue small.
        for chunk in messages.chunks(500) {
            let sends = chunk.iter().map(|(partition, value)| {
                let mut record = FutureRecord::<(), [u8]>::to(topic).payload(value.as_slice());
                if let Some(p) = partition {
                    record = record.partition(*p);
                }
                producer.send(record, Duration::from_secs(30))
            });
            out.extend(futures::future::join_all(sends).await);
        }
        out
    });
    let produced: Vec<(i32, i64)> = results
        .into_iter()
        .map(|r| match r {
            Ok(d) => (d.partition, d.offset),
            Err((e, _)) => panic!("producing to {topic} failed: {e}"),
        })
        .collect();
    let distinct: HashSet<&(i32, i64)> = produced.iter().collect();
    assert_eq!(
        distinct.len(),
        produced.len(),
        "the broker gave two messages the same partition/offset"
    );
    produced
}

/// Like [`produce`], but in large multi-record batches, as real producers write: what a
/// broker that skips the rest of a batch fetched from its middle (tansu, quirk 2) trips over.
pub fn produce_batched(
    brokers: &str,
    topic: &str,
    messages: Vec<(i32, Vec<u8>)>,
) -> Vec<(i32, i64)> {
    let producer: FutureProducer = base_config(brokers)
        .set("linger.ms", "50")
        .set("batch.num.messages", "1000")
        .set("batch.size", "1000000")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("compression.type", "none")
        .create()
        .expect("create producer");
    let results = rt().block_on(async {
        let sends = messages.iter().map(|(partition, value)| {
            producer.send(
                FutureRecord::<(), [u8]>::to(topic)
                    .payload(value.as_slice())
                    .partition(*partition),
                Duration::from_secs(30),
            )
        });
        futures::future::join_all(sends).await
    });
    results
        .into_iter()
        .map(|r| match r {
            Ok(d) => (d.partition, d.offset),
            Err((e, _)) => panic!("producing to {topic} failed: {e}"),
        })
        .collect()
}

/// End offset (last offset + 1) per partition, computed from what the producer got back —
/// never from the broker's high watermark, which tansu can report wrong (quirk 3).
pub fn end_offsets(produced: &[(i32, i64)]) -> HashMap<i32, i64> {
    let mut ends = HashMap::new();
    for &(p, o) in produced {
        let e = ends.entry(p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    ends
}

/// Every message of `topic` as `(partition, offset, value)`, read from the beginning of all
/// partitions by a fresh consumer (no group commits) until nothing new arrived for `idle`.
pub fn read_all(brokers: &str, topic: &str, idle: Duration) -> Vec<(i32, i64, Vec<u8>)> {
    let partitions = partition_count(brokers, topic)
        .unwrap_or_else(|| panic!("read_all: topic {topic} does not exist"));
    let consumer: BaseConsumer = base_config(brokers)
        .set("group.id", format!("harness-reader-{}", unique_number()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "5")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("create reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign partitions");
    let mut out = Vec::new();
    let mut last_new = Instant::now();
    while last_new.elapsed() < idle {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                out.push((
                    m.partition(),
                    m.offset(),
                    m.payload().unwrap_or_default().to_vec(),
                ));
                last_new = Instant::now();
            }
            Some(Err(e)) => eprintln!("read_all({topic}): {e}"),
            None => {}
        }
    }
    out
}

/// Commits `offsets` (`(partition, offset)`) of `topic` for group `group_id`, as if a member
/// had consumed up to there.
pub fn commit_group_offsets(brokers: &str, group_id: &str, topic: &str, offsets: &[(i32, i64)]) {
    let consumer: BaseConsumer = base_config(brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .create()
        .expect("create offset client");
    let mut tpl = TopicPartitionList::new();
    for &(p, o) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))
            .expect("add partition");
    }
    consumer
        .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .expect("commit group offsets");
}

/// The log start (low watermark) and end of one partition, as the broker reports them.
pub fn watermarks(brokers: &str, topic: &str, partition: i32) -> (i64, i64) {
    let consumer: BaseConsumer = base_config(brokers)
        .set(
            "group.id",
            format!("harness-watermarks-{}", unique_number()),
        )
        .create()
        .expect("create client");
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .expect("fetch watermarks")
}

/// The offsets group `group_id` has committed for `topic` (OffsetFetch), per partition that
/// has one.
pub fn committed_offsets(brokers: &str, group_id: &str, topic: &str) -> HashMap<i32, i64> {
    let partitions = partition_count(brokers, topic)
        .unwrap_or_else(|| panic!("committed_offsets: topic {topic} does not exist"));
    let consumer: BaseConsumer = base_config(brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .create()
        .expect("create offset client");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition(topic, p);
    }
    let mut last_err = None;
    for _ in 0..5 {
        match consumer.committed_offsets(tpl.clone(), Duration::from_secs(5)) {
            Ok(result) => {
                return result
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some((e.partition(), o)),
                        _ => None,
                    })
                    .collect();
            }
            Err(e) => {
                last_err = Some(e);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    panic!("OffsetFetch for group {group_id} failed: {last_err:?}");
}

// ---------------------------------------------------------------------------------------------
// Webhook receiver
// ---------------------------------------------------------------------------------------------

/// Body format a webhook destination is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    JsonArray,
    Ndjson,
}

impl Format {
    pub fn config_name(self) -> &'static str {
        match self {
            Format::JsonArray => "json_array",
            Format::Ndjson => "ndjson",
        }
    }
    fn content_type(self) -> &'static str {
        match self {
            Format::JsonArray => "application/json",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

/// What the receiver expects (and what [`WebhookReceiver::destination_toml`] configures).
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    pub format: Format,
    pub gzip: bool,
    /// `whsec_<base64 key>`: requests must carry a valid Standard Webhooks signature.
    pub secret: Option<String>,
    /// Custom headers the destination is configured with; each must arrive with this value.
    pub headers: Vec<(String, String)>,
    pub path: String,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            format: Format::JsonArray,
            gzip: false,
            secret: None,
            headers: vec![("X-Test".into(), "yes".into())],
            path: "/hook".into(),
        }
    }
}

impl ReceiverConfig {
    pub fn signed(mut self) -> Self {
        self.secret = Some(test_secret());
        self
    }
    pub fn format(mut self, f: Format) -> Self {
        self.format = f;
        self
    }
    pub fn gzip(mut self) -> Self {
        self.gzip = true;
        self
    }
}

/// A Standard Webhooks signing secret for tests.
pub fn test_secret() -> String {
    let key = b"courier-e2e-signing-key-0123456789";
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// How the receiver answers (valid) requests; change it at any time with
/// [`WebhookReceiver::set_behaviour`] (which restarts the request count the modes refer to).
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// 200 for every request.
    Ok,
    /// The first `n` requests get `status`, then 200.
    FailFirst { n: usize, status: u16 },
    /// Every request gets `status`.
    Always(u16),
    /// The first `n` requests get 429 with `Retry-After: seconds`, then 200.
    RetryAfter { n: usize, seconds: u64 },
    /// Never answer.
    Hang,
    /// Answer 200 after `Duration`.
    Slow(Duration),
}

/// One request the receiver saw.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// When the request (headers and body) had arrived.
    pub at: Instant,
    pub webhook_id: Option<String>,
    /// Status answered; 0 while unanswered (or never, for [`Behaviour::Hang`]).
    pub status: u16,
    /// Events in the body (0 when the body violated the contract).
    pub events: usize,
}

#[derive(Default)]
struct ReceiverState {
    behaviour_hits: usize,
    events: Vec<Vec<u8>>,
    requests: Vec<RequestRecord>,
    violations: Vec<String>,
}

struct ReceiverInner {
    cfg: ReceiverConfig,
    behaviour: Mutex<Behaviour>,
    state: Mutex<ReceiverState>,
}

/// An HTTP server on 127.0.0.1 that plays a webhook destination, enforces the webhook request
/// contract (CONTRACT.md "Webhook requests") and records what it accepted.
///
/// A request that violates the contract is answered 400 and recorded in [`violations`]
/// (tests assert there were none). Events of accepted (200) requests are stored as the exact
/// bytes they had in the request body.
///
/// [`violations`]: WebhookReceiver::violations
pub struct WebhookReceiver {
    inner: Arc<ReceiverInner>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    pub fn start(cfg: ReceiverConfig) -> WebhookReceiver {
        let inner = Arc::new(ReceiverInner {
            cfg,
            behaviour: Mutex::new(Behaviour::Ok),
            state: Mutex::new(ReceiverState::default()),
        });
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind webhook receiver");
        let addr = listener.local_addr().expect("receiver address");
        let app = Router::new()
            .fallback(handle_webhook)
            .layer(DefaultBodyLimit::disable())
            .with_state(inner.clone());
        let task = rt().spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("webhook receiver stopped: {e}");
            }
        });
        WebhookReceiver { inner, addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.inner.cfg.path)
    }

    pub fn config(&self) -> &ReceiverConfig {
        &self.inner.cfg
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        let mut b = self.inner.behaviour.lock().unwrap();
        self.inner.state.lock().unwrap().behaviour_hits = 0;
        *b = behaviour;
    }

    /// Events accepted (answered 200), each as the exact bytes of the request body.
    pub fn events(&self) -> Vec<Vec<u8>> {
        self.inner.state.lock().unwrap().events.clone()
    }

    pub fn event_count(&self) -> usize {
        self.inner.state.lock().unwrap().events.len()
    }

    /// Requests received, contract violations included.
    pub fn request_count(&self) -> usize {
        self.inner.state.lock().unwrap().requests.len()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.state.lock().unwrap().requests.clone()
    }

    /// The `webhook-id` of each request, in arrival order.
    pub fn webhook_ids(&self) -> Vec<Option<String>> {
        self.requests().into_iter().map(|r| r.webhook_id).collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().violations.clone()
    }

    /// A `[[destinations]]` table for a webhook destination pointing at this receiver,
    /// configured the way the receiver expects (format, compression, secret, headers).
    pub fn destination_toml(&self, project: &str, id: &str) -> String {
        let cfg = &self.inner.cfg;
        let mut t = String::new();
        t.push_str("[[destinations]]\n");
        t.push_str(&format!("project = {}\n", toml_str(project)));
        t.push_str(&format!("id = {}\n", toml_str(id)));
        t.push_str("type = \"webhook\"\n");
        t.push_str(&format!("url = {}\n", toml_str(&self.url())));
        if let Some(secret) = &cfg.secret {
            t.push_str(&format!("secret = {}\n", toml_str(secret)));
        }
        t.push_str(&format!(
            "format = {}\n",
            toml_str(cfg.format.config_name())
        ));
        t.push_str(&format!(
            "compression = {}\n",
            toml_str(if cfg.gzip { "gzip" } else { "none" })
        ));
        if !cfg.headers.is_empty() {
            let hs: Vec<String> = cfg
                .headers
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_str(k), toml_str(v)))
                .collect();
            t.push_str(&format!("headers = {{ {} }}\n", hs.join(", ")));
        }
        t
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks one request against the contract; returns the events' raw bytes or the violations.
fn check_request(
    cfg: &ReceiverConfig,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<Vec<u8>>, Vec<String>> {
    let mut v = Vec::new();
    if method != Method::POST {
        v.push(format!("method is {method}, expected POST"));
    }
    if uri.path() != cfg.path {
        v.push(format!("path is {}, expected {}", uri.path(), cfg.path));
    }
    match header_str(headers, "content-type") {
        Some(ct) => {
            let media = ct.split(';').next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case(cfg.format.content_type()) {
                v.push(format!(
                    "Content-Type is {ct:?}, expected {:?} for format {}",
                    cfg.format.content_type(),
                    cfg.format.config_name()
                ));
            }
        }
        None => v.push("no Content-Type header".into()),
    }
    match header_str(headers, "user-agent") {
        Some(ua) if ua.starts_with("courier/") && ua.len() > "courier/".len() => {}
        other => v.push(format!(
            "User-Agent is {other:?}, expected courier/<version>"
        )),
    }
    for (name, value) in &cfg.headers {
        match header_str(headers, name) {
            Some(got) if got == value => {}
            other => v.push(format!(
                "configured header {name} is {other:?}, expected {value:?}"
            )),
        }
    }
    if let Some(secret) = &cfg.secret {
        if let Err(e) = verify_signature(secret, headers, body) {
            v.push(e);
        }
    }
    let encoding = header_str(headers, "content-encoding");
    let decoded: Vec<u8> = match (encoding, cfg.gzip) {
        (Some(enc), true) if enc.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::new();
            match flate2::read::GzDecoder::new(body).read_to_end(&mut out) {
                Ok(_) => out,
                Err(e) => {
                    v.push(format!(
                        "Content-Encoding: gzip but the body does not gunzip: {e}"
                    ));
                    return Err(v);
                }
            }
        }
        (None, false) => body.to_vec(),
        (enc, gzip) => {
            v.push(format!(
                "Content-Encoding is {enc:?} but the destination is configured with compression {}",
                if gzip { "gzip" } else { "none" }
            ));
            return Err(v);
        }
    };
    let events = match split_events(cfg.format, &decoded) {
        Ok(events) => events,
        Err(e) => {
            v.push(e);
            return Err(v);
        }
    };
    if events.is_empty() {
        v.push("request carries no events".into());
    }
    if v.is_empty() {
        Ok(events)
    } else {
        Err(v)
    }
}

/// Splits a (decompressed) body into the raw bytes of each event, as sent.
pub fn split_events(format: Format, body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let is_object = |raw: &[u8]| -> Result<(), String> {
        match serde_json::from_slice::<serde_json::Value>(raw) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            Ok(other) => Err(format!("event is not a JSON object: {other}")),
            Err(e) => Err(format!("event is not valid JSON: {e}")),
        }
    };
    match format {
        Format::JsonArray => {
            let raws: Vec<Box<serde_json::value::RawValue>> = serde_json::from_slice(body)
                .map_err(|e| {
                    format!(
                        "body is not a JSON array ({e}); starts with {:?}",
                        String::from_utf8_lossy(&body[..body.len().min(80)])
                    )
                })?;
            raws.iter()
                .map(|r| {
                    let bytes = r.get().as_bytes();
                    is_object(bytes).map(|()| bytes.to_vec())
                })
                .collect()
        }
        Format::Ndjson => {
            let body = body.strip_suffix(b"\n").unwrap_or(body);
            if body.is_empty() {
                return Ok(Vec::new());
            }
            body.split(|&b| b == b'\n')
                .enumerate()
                .map(|(i, line)| {
                    is_object(line)
                        .map(|()| line.to_vec())
                        .map_err(|e| format!("NDJSON line {i}: {e}"))
                })
                .collect()
        }
    }
}

/// The Standard Webhooks signature `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`,
/// the key being the base64-decoded part of `secret` after `whsec_`.
pub fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Result<String, String> {
    let key_b64 = secret
        .strip_prefix("whsec_")
        .ok_or("signing secret must start with whsec_")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .map_err(|e| format!("signing secret is not base64: {e}"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Verifies the Standard Webhooks headers of a request (independent implementation).
pub fn verify_signature(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let id = header_str(headers, "webhook-id").ok_or("signed request without webhook-id")?;
    if id.is_empty() {
        return Err("empty webhook-id".into());
    }
    let ts_text = header_str(headers, "webhook-timestamp")
        .ok_or("signed request without webhook-timestamp")?;
    let ts: i64 = ts_text
        .parse()
        .map_err(|_| format!("webhook-timestamp {ts_text:?} is not Unix seconds"))?;
    let now = chrono::Utc::now().timestamp();
    if (now - ts).abs() > 300 {
        return Err(format!(
            "webhook-timestamp {ts} is more than 5 minutes from now ({now})"
        ));
    }
    let sig_header = header_str(headers, "webhook-signature")
        .ok_or("signed request without webhook-signature")?;
    let expected = sign(secret, id, ts_text, body)?;
    if sig_header.split_whitespace().any(|s| s == expected) {
        Ok(())
    } else {
        Err(format!(
            "webhook-signature {sig_header:?} does not match (expected {expected:?}) for webhook-id {id:?}, timestamp {ts_text}"
        ))
    }
}

fn plain_response(status: u16) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("valid status"))
        .body(Body::from(format!(
            "status {status} from the test receiver"
        )))
        .expect("build response")
}

async fn handle_webhook(
    State(inner): State<Arc<ReceiverInner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let webhook_id = header_str(&headers, "webhook-id").map(str::to_owned);
    let checked = check_request(&inner.cfg, &method, &uri, &headers, &body);
    let events = match checked {
        Ok(events) => events,
        Err(violations) => {
            let mut st = inner.state.lock().unwrap();
            let index = st.requests.len();
            for violation in violations {
                st.violations
                    .push(format!("request #{index} ({method} {uri}): {violation}"));
            }
            st.requests.push(RequestRecord {
                at,
                webhook_id,
                status: 400,
                events: 0,
            });
            return plain_response(400);
        }
    };
    let behaviour = inner.behaviour.lock().unwrap().clone();
    let (index, hit) = {
        let mut st = inner.state.lock().unwrap();
        let hit = st.behaviour_hits;
        st.behaviour_hits += 1;
        st.requests.push(RequestRecord {
            at,
            webhook_id,
            status: 0,
            events: events.len(),
        });
        (st.requests.len() - 1, hit)
    };
    let mut retry_after = None;
    let status = match behaviour {
        Behaviour::Ok => 200,
        Behaviour::FailFirst { n, status } => {
            if hit < n {
                status
            } else {
                200
            }
        }
        Behaviour::Always(status) => status,
        Behaviour::RetryAfter { n, seconds } => {
            if hit < n {
                retry_after = Some(seconds);
                429
            } else {
                200
            }
        }
        Behaviour::Hang => std::future::pending::<u16>().await,
        Behaviour::Slow(d) => {
            tokio::time::sleep(d).await;
            200
        }
    };
    {
        let mut st = inner.state.lock().unwrap();
        st.requests[index].status = status;
        if status == 200 {
            st.events.extend(events);
        }
    }
    let mut resp = plain_response(status);
    if let Some(seconds) = retry_after {
        resp.headers_mut().insert(
            "retry-after",
            seconds.to_string().parse().expect("header value"),
        );
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// courier configuration and process
// ---------------------------------------------------------------------------------------------

/// Builds the TOML configuration of a courier process. Values in the maps are TOML literals
/// (`"\"100ms\""`, `"4"`).
#[derive(Clone, Debug)]
pub struct CourierConfig {
    pub brokers: String,
    pub topic: String,
    pub group_id: String,
    pub failures_topic: String,
    pub shutdown_timeout: String,
    pub commit_interval: String,
    pub kafka_options: BTreeMap<String, String>,
    pub delivery: BTreeMap<String, String>,
    /// `[[destinations]]` tables, verbatim.
    pub destinations: Vec<String>,
    /// Appended verbatim (other top-level tables).
    pub extra: String,
    /// Environment variables set for the process (besides the test process's own).
    pub env: Vec<(String, String)>,
}

impl CourierConfig {
    /// The defaults the end-to-end tests use against tansu: `fetch.wait.max.ms=5` (quirk 1),
    /// `session.timeout.ms=6000` (quirk 4), start at the earliest offset, small batches.
    pub fn new(brokers: &str) -> CourierConfig {
        let kafka_options = [
            ("fetch.wait.max.ms", "5"),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "6000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), toml_str(v)))
        .collect();
        let delivery = [
            ("batch_max_events", "100"),
            ("batch_timeout", "\"100ms\""),
            ("max_in_flight", "4"),
            ("request_timeout", "\"5s\""),
            ("retry_max_elapsed", "\"10s\""),
            ("retry_initial_backoff", "\"50ms\""),
            ("retry_max_backoff", "\"1s\""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        CourierConfig {
            brokers: brokers.to_string(),
            topic: "event-logs".into(),
            group_id: "courier-test".into(),
            failures_topic: "courier-failures".into(),
            shutdown_timeout: "30s".into(),
            commit_interval: "200ms".into(),
            kafka_options,
            delivery,
            destinations: Vec::new(),
            extra: String::new(),
            env: Vec::new(),
        }
    }

    /// Sets a `[delivery]` key; `value` is a TOML literal.
    pub fn delivery(mut self, key: &str, value: &str) -> Self {
        self.delivery.insert(key.into(), value.into());
        self
    }

    /// Sets a `[kafka.options]` property.
    pub fn kafka_option(mut self, key: &str, value: &str) -> Self {
        self.kafka_options.insert(key.into(), toml_str(value));
        self
    }

    pub fn destination(mut self, table: String) -> Self {
        self.destinations.push(table);
        self
    }

    pub fn to_toml(&self, listen: &str) -> String {
        let mut t = String::new();
        t.push_str(&format!(
            "shutdown_timeout = {}\n\n",
            toml_str(&self.shutdown_timeout)
        ));
        t.push_str("[kafka]\n");
        t.push_str(&format!("brokers = {}\n", toml_str(&self.brokers)));
        t.push_str(&format!("topic = {}\n", toml_str(&self.topic)));
        t.push_str(&format!("group_id = {}\n", toml_str(&self.group_id)));
        t.push_str(&format!(
            "commit_interval = {}\n\n",
            toml_str(&self.commit_interval)
        ));
        t.push_str("[kafka.options]\n");
        for (k, v) in &self.kafka_options {
            t.push_str(&format!("{} = {v}\n", toml_str(k)));
        }
        t.push_str("\n[failures]\n");
        t.push_str(&format!("topic = {}\n\n", toml_str(&self.failures_topic)));
        t.push_str("[server]\n");
        t.push_str(&format!("listen = {}\n\n", toml_str(listen)));
        // The receivers and fakes listen on 127.0.0.1: allow loopback past the SSRF guard.
        t.push_str("[security]\nallow_networks = [\"127.0.0.0/8\"]\n\n");
        t.push_str("[delivery]\n");
        for (k, v) in &self.delivery {
            t.push_str(&format!("{k} = {v}\n"));
        }
        t.push('\n');
        for d in &self.destinations {
            t.push_str(d);
            t.push('\n');
        }
        t.push_str(&self.extra);
        t
    }
}

/// A running `courier run` process (the compiled binary), killed on drop. Its stdout and stderr
/// go to a log file whose tail is printed when the test panics.
pub struct Courier {
    child: Mutex<Option<Child>>,
    listen: String,
    log_path: PathBuf,
    config_path: PathBuf,
    dir: tempfile::TempDir,
}

impl Courier {
    /// Writes the configuration (with a fresh `[server] listen` port) and starts the daemon.
    /// Does not wait: see [`Courier::wait_ready`].
    pub fn start(cfg: &CourierConfig) -> Courier {
        let dir = tempfile::Builder::new()
            .prefix("courier-e2e-")
            .tempdir()
            .expect("tempdir");
        let listen = format!("127.0.0.1:{}", free_port());
        let config_path = dir.path().join("courier.toml");
        std::fs::write(&config_path, cfg.to_toml(&listen)).expect("write courier config");
        let log_path = dir.path().join("courier.log");
        let log = File::create(&log_path).expect("create courier log");
        let child = Command::new(env!("CARGO_BIN_EXE_courier"))
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .envs(cfg.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_BACKTRACE", "1")
            .env(
                "RUST_LOG",
                std::env::var("COURIER_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn courier");
        Courier {
            child: Mutex::new(Some(child)),
            listen,
            log_path,
            config_path,
            dir,
        }
    }

    /// Starts the daemon and waits until `/readyz` answers 200.
    pub fn start_ready(cfg: &CourierConfig) -> Courier {
        let c = Courier::start(cfg);
        c.wait_ready(Duration::from_secs(30));
        c
    }

    /// `127.0.0.1:PORT` of its HTTP server.
    pub fn listen(&self) -> &str {
        &self.listen
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap()
            .as_ref()
            .expect("courier already stopped")
            .id()
    }

    /// The last lines of the daemon's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        format!(
            "--- tail of courier log ({}) ---\n{}\n--- end of courier log ---",
            self.log_path.display(),
            file_tail(&self.log_path, 60)
        )
    }

    /// Polls `GET /readyz` until it answers 200; panics (with the log tail) if the process
    /// exits or `timeout` passes.
    pub fn wait_ready(&self, timeout: Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                panic!(
                    "courier exited with {status} before it was ready\n{}",
                    self.log_tail()
                );
            }
            let last = match http_get(&self.listen, "/readyz") {
                Ok((200, _)) => return,
                Ok((s, body)) => format!("{s} {body}"),
                Err(e) => e,
            };
            if start.elapsed() > timeout {
                panic!(
                    "courier not ready after {timeout:?} (last /readyz answer: {last})\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The exit status if the process has exited (reaping it), else `None`.
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut guard = self.child.lock().unwrap();
        let child = guard.as_mut()?;
        child.try_wait().expect("try_wait")
    }

    /// `GET /metrics` → the exposition text.
    pub fn metrics(&self) -> String {
        match http_get(&self.listen, "/metrics") {
            Ok((200, body)) => body,
            Ok((s, body)) => panic!("/metrics answered {s}: {body}\n{}", self.log_tail()),
            Err(e) => panic!("/metrics failed: {e}\n{}", self.log_tail()),
        }
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the process to exit; returns its status.
    /// Panics (after killing it) if it does not exit in time.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.pid();
        let ok = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(ok.success(), "kill -TERM {pid} failed");
        let start = Instant::now();
        loop {
            let mut guard = self.child.lock().unwrap();
            let child = guard.as_mut().expect("courier already stopped");
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > timeout {
                let tail = self.log_tail();
                let _ = child.kill();
                let _ = child.wait();
                panic!("courier did not exit within {timeout:?} of SIGTERM\n{tail}");
            }
            drop(guard);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, and reap the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        self.kill9();
    }
}

// ---------------------------------------------------------------------------------------------
// Event helpers
// ---------------------------------------------------------------------------------------------

/// The `id` field of an Event Log.
pub fn event_id(event: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(event).expect("event is JSON");
    v.get("id")
        .and_then(|i| i.as_str())
        .unwrap_or_else(|| {
            panic!(
                "event without a string id: {}",
                String::from_utf8_lossy(event)
            )
        })
        .to_string()
}

/// Counts of each distinct byte string.
pub fn multiset(items: impl IntoIterator<Item = Vec<u8>>) -> HashMap<Vec<u8>, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// Describes how two multisets of events differ (for assertion messages).
pub fn describe_difference(
    expected: &HashMap<Vec<u8>, usize>,
    got: &HashMap<Vec<u8>, usize>,
) -> String {
    let show = |b: &Vec<u8>| {
        let s = String::from_utf8_lossy(b);
        if s.len() > 160 {
            format!("{}…", &s[..s.floor_char_boundary_compat(160)])
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    let missing: Vec<_> = expected
        .iter()
        .filter(|(k, n)| got.get(*k).copied().unwrap_or(0) < **n)
        .collect();
    let unexpected: Vec<_> = got
        .iter()
        .filter(|(k, n)| expected.get(*k).copied().unwrap_or(0) < **n)
        .collect();
    out.push_str(&format!(
        "{} distinct events missing or short, {} unexpected or duplicated",
        missing.len(),
        unexpected.len()
    ));
    for (k, n) in missing.iter().take(3) {
        out.push_str(&format!(
            "\n  missing (expected {n}x, got {}x): {}",
            got.get(*k).copied().unwrap_or(0),
            show(k)
        ));
    }
    for (k, n) in unexpected.iter().take(3) {
        out.push_str(&format!(
            "\n  unexpected (got {n}x, expected {}x): {}",
            expected.get(*k).copied().unwrap_or(0),
            show(k)
        ));
    }
    out
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
