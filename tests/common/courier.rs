//! The courier process: [`CourierConfig`] writes the TOML configuration the end-to-end tests
//! run with (tansu-friendly defaults, loopback allowed past the SSRF guard), and [`Courier`]
//! runs the compiled binary (`courier run`) with it in its own process, killed on drop, its
//! log's tail printed when a test panics.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{file_tail, free_port, http_get, toml_str};

/// Builds the TOML configuration of a courier process. Values in the maps are TOML literals
/// (`"\"100ms\""`, `"4"`).
#[derive(Clone, Debug)]
pub struct CourierConfig {
    pub brokers: String,
    pub topic: String,
    pub group_id: String,
    pub failures_topic: String,
    /// `failures.parking` (`auto`, `reference`, `copy`); `None` leaves courier's default.
    pub parking: Option<String>,
    /// `failures.retry_topic_partitions`; `None` leaves courier's default.
    pub retry_partitions: Option<i32>,
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
            parking: None,
            retry_partitions: None,
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

    /// Sets `failures.retry_topic_partitions`.
    pub fn retry_partitions(mut self, n: i32) -> Self {
        self.retry_partitions = Some(n);
        self
    }

    /// Sets `failures.parking`.
    pub fn parking(mut self, mode: &str) -> Self {
        self.parking = Some(mode.into());
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
        t.push_str(&format!("topic = {}\n", toml_str(&self.failures_topic)));
        if let Some(mode) = &self.parking {
            t.push_str(&format!("parking = {}\n", toml_str(mode)));
        }
        if let Some(n) = self.retry_partitions {
            t.push_str(&format!("retry_topic_partitions = {n}\n"));
        }
        t.push('\n');
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
