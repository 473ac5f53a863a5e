//! Test harness shared by the integration and end-to-end tests.
//!
//! Real parts only: a `tansu` broker in its own process ([`Tansu`], `broker.rs`), the compiled
//! `courier` binary in its own process ([`Courier`], `courier.rs`), an S3-compatible
//! `moto_server` in its own process (`moto.rs`), and HTTP servers in the test process that
//! play the services courier delivers to and enforce their contracts — a customer's webhook
//! endpoint ([`WebhookReceiver`]), Datadog, Splunk HEC, a scripted hostile server (`fakes/`).
//! Kafka helpers ([`create_topic`], [`produce`], [`read_all`], [`committed_offsets`],
//! `kafka.rs`) use rdkafka directly and work around the broker quirks documented in
//! `TESTING.md`. Test events are built one way for every test (`events.rs`); waits that
//! explain their timeouts are in `wait.rs`, plain HTTP to courier's endpoints in `http.rs`.
//!
//! The API is synchronous: tests are plain `#[test]` functions. Everything asynchronous runs on
//! one multi-threaded tokio runtime owned by this module ([`rt`]). Each test binary uses a part
//! of the harness, so unused items are allowed here.
#![allow(dead_code)]

mod broker;
mod courier;
mod events;
pub mod fakes;
mod http;
mod kafka;
pub mod moto;
pub mod otlp;
mod wait;

// Tests `use common::*`: the harness and the webhook fake (most end-to-end tests deliver to
// it) are re-exported; the other fakes and moto are reached by path. A test binary uses a part
// of what is re-exported, hence the allows.
#[allow(unused_imports)]
pub use self::broker::*;
#[allow(unused_imports)]
pub use self::courier::*;
#[allow(unused_imports)]
pub use self::events::*;
#[allow(unused_imports)]
pub use self::fakes::webhook::*;
#[allow(unused_imports)]
pub use self::http::*;
#[allow(unused_imports)]
pub use self::kafka::*;
#[allow(unused_imports)]
pub use self::wait::*;

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

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
