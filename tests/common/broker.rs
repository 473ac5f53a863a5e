//! The tansu broker: a Kafka-compatible broker in its own process with in-memory storage, one
//! per test, on a free loopback port ([`Tansu`]). Its quirks are documented in `TESTING.md`;
//! the Kafka helpers in `kafka.rs` work around them.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::kafka::base_config;
use super::{file_tail, free_port};

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
