//! moto, the S3-compatible test server: a `moto_server` process on a free loopback port, one
//! per test ([`Moto`]), and an independent client to create buckets and read objects back
//! (plain HTTP: moto checks no signature unless started in its IAM mode, where only the
//! setup's first requests go unauthenticated) — so what the `s3` sink wrote is read by code
//! that is not courier's.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

const MOTO_HINT: &str = "moto (the S3-compatible test server) is not installed: run \
    `pip install 'moto[server]'` or `scripts/install-deps`";

/// A `moto_server` process on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Starts a server that checks no credentials.
    pub fn start() -> Moto {
        Self::spawn(&[])
    }

    /// Starts a server that authenticates requests against its IAM users, except for the
    /// first `free_actions` requests (the test's setup).
    pub fn start_with_auth(free_actions: u32) -> Moto {
        Self::spawn(&[(
            "INITIAL_NO_AUTH_ACTION_COUNT",
            free_actions.to_string().as_str(),
        )])
    }

    fn spawn(env: &[(&str, &str)]) -> Moto {
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new().prefix("moto-").tempdir().unwrap();
            let log = dir.path().join("moto.log");
            let file = std::fs::File::create(&log).unwrap();
            let port = free_port();
            let child = Command::new(python())
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .envs(env.iter().copied())
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(file.try_clone().unwrap())
                .stderr(file)
                .spawn()
                .unwrap_or_else(|e| panic!("{MOTO_HINT}: cannot start python3: {e}"));
            let mut moto = Moto {
                child,
                port,
                log,
                _dir: dir,
            };
            match moto.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return moto,
                Err(e) => last = format!("{e}\n--- moto log ---\n{}", moto.log_text()),
            }
        }
        panic!("moto did not start: {last}");
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if self.log_text().contains("No module named") {
                    panic!("{MOTO_HINT}\n{}", self.log_text());
                }
                return Err(format!("moto exited during start-up with {status}"));
            }
            // A TCP connection only: an HTTP request would count as one of the
            // unauthenticated setup actions of an IAM-mode server.
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(format!("port {} never accepted connections", self.port));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything the server logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "--- tail of moto log ---\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python interpreter to run moto with: `$PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

// ---------------------------------------------------------------------------------------------
// The independent client: plain HTTP with a placeholder Authorization header (moto accepts
// it outside IAM mode; without one it treats the request as anonymous).
// ---------------------------------------------------------------------------------------------

/// A client for moto: no proxy, a 30 s timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// An `Authorization` header value moto accepts outside IAM mode for `service`.
pub fn placeholder_auth(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIATESTCLIENT/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=00"
    )
}

/// Creates `bucket`.
pub async fn create_bucket(moto: &Moto, bucket: &str) {
    let r = client()
        .put(format!("{}/{bucket}", moto.endpoint()))
        .header("Authorization", placeholder_auth("s3"))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "create bucket {bucket}: {}",
        r.status()
    );
}

/// Keys and sizes of the bucket's objects.
pub async fn list(moto: &Moto, bucket: &str) -> Vec<(String, usize)> {
    let text = client()
        .get(format!("{}/{bucket}?list-type=2", moto.endpoint()))
        .header("Authorization", placeholder_auth("s3"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut out = Vec::new();
    for item in text.split("<Contents>").skip(1) {
        let key = between(item, "<Key>", "</Key>").unwrap();
        let size = between(item, "<Size>", "</Size>").unwrap().parse().unwrap();
        out.push((xml_unescape(key), size));
    }
    out
}

/// An object read back: its headers and body.
pub struct Object {
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

/// Reads object `key` of `bucket`; panics unless it exists.
pub async fn get(moto: &Moto, bucket: &str, key: &str) -> Object {
    let r = client()
        .get(format!("{}/{bucket}/{key}", moto.endpoint()))
        .header("Authorization", placeholder_auth("s3"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "GET {key}: {}", r.status());
    let headers = r.headers().clone();
    Object {
        headers,
        body: r.bytes().await.unwrap().to_vec(),
    }
}

/// The text between the first `open` and the next `close` (enough XML for S3 answers).
pub fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// Undoes XML's five character escapes.
pub fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Gunzips an object body; panics unless it is valid gzip.
pub fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .expect("the object is valid gzip");
    out
}
