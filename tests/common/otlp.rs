//! `tests/otlp_receiver.py`, an OTLP/HTTP logs receiver in its own process that decodes every
//! request with the OpenTelemetry project's official protobuf definitions and records what it
//! decoded. Shared by the OTLP sink's tests and the end-to-end shaping tests: both check the
//! records it decoded, not the bytes courier meant to send.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::rt;

const RECEIVER_HINT: &str = "the OTLP test receiver needs Python's opentelemetry-proto: run \
    `pip install opentelemetry-proto` or `scripts/install-deps`";

/// `tests/otlp_receiver.py` on a loopback port the system chose, killed on drop.
pub struct Receiver {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
    tls: bool,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// A receiver at `path` requiring each of `headers` with exactly its value.
    pub fn start(path: &str, headers: &[(&str, &str)]) -> Receiver {
        Self::start_with(path, headers, None)
    }

    /// [`Receiver::start`], serving HTTPS with `server.pem`/`server.key` of `tls` when given.
    pub fn start_with(path: &str, headers: &[(&str, &str)], tls: Option<&Path>) -> Receiver {
        let dir = tempfile::Builder::new()
            .prefix("otlp-receiver-")
            .tempdir()
            .unwrap();
        let port_file = dir.path().join("port");
        let log = dir.path().join("receiver.log");
        let file = std::fs::File::create(&log).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp_receiver.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg("--port-file")
            .arg(&port_file)
            .args(["--path", path]);
        for (name, value) in headers {
            cmd.arg("--header").arg(format!("{name}={value}"));
        }
        if let Some(tls) = tls {
            cmd.arg("--tls-cert")
                .arg(tls.join("server.pem"))
                .arg("--tls-key")
                .arg(tls.join("server.key"));
        }
        let mut child = cmd
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{RECEIVER_HINT}: cannot start python3: {e}"));
        let start = Instant::now();
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.trim().parse::<u16>().unwrap();
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("{RECEIVER_HINT}\nthe receiver exited with {status}:\n{log}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the OTLP receiver did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Receiver {
            child,
            port,
            tls: tls.is_some(),
            log,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`, the destination's `endpoint`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A control request (over HTTPS without verification when the receiver serves TLS:
    /// only the sink under test verifies its certificate) → (status, body).
    pub fn call(&self, path: &str, body: Option<Value>) -> (u16, String) {
        let scheme = if self.tls { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{}{path}", self.port);
        rt().block_on(async {
            let client = reqwest::Client::builder()
                .no_proxy()
                .danger_accept_invalid_certs(true)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let request = match body {
                Some(b) => client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(b.to_string()),
                None => client.get(&url),
            };
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        })
    }

    pub fn control(&self, path: &str, body: Value) {
        let (status, answer) = self.call(path, Some(body));
        assert_eq!(status, 204, "{path}: {answer}");
    }

    /// The answers to the next logs requests, in order.
    pub fn script(&self, answers: Value) {
        self.control("/_script", json!({ "answers": answers }));
    }

    /// 413 for requests of more than `n` records.
    pub fn limit(&self, n: usize) {
        self.control("/_limit", json!({ "max_records": n }));
    }

    /// Every logs request received, decoded.
    pub fn requests(&self) -> Vec<Value> {
        let (status, body) = self.call("/_requests", None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The violations of every request.
    pub fn violations(&self) -> Vec<String> {
        self.requests()
            .iter()
            .flat_map(|r| r["violations"].as_array().cloned().unwrap_or_default())
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The records of the requests the receiver accepted in full (2xx, no partial success).
    pub fn accepted(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|r| {
                r["status"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))
            })
            .filter(|r| r["partial"].is_null())
            .flat_map(|r| r["records"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "--- tail of the OTLP receiver's log ---\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
