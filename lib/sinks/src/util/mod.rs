//! What several sinks share, so that no sink builds on a sibling: HTTP helpers (answers read
//! with a limit, `Retry-After`, transport errors), secrets masked out of answers, request body
//! compression, batches framed into several requests and the send loop that halves a request
//! refused as too large, the `tls` table (a private CA), and the scan of a JSON object's
//! top-level members.
//!
//! Each sink owns its own folder and imports only from here and from the sinks' root (the
//! `Sink` trait and its outcome types), never from another sink.

pub mod halving;
pub mod http;
pub mod parts;
pub mod scrub;
pub mod tls;

/// The top-level members of a JSON object, found by the event's own JSON scanner (one scanner
/// for routing and for the sinks that rewrite events member by member).
pub use courier_core::event::scan::members;

use serde::Deserialize;

use crate::{DeliveryError, ErrorKind};

/// Request body compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Sent as is.
    #[default]
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
}

impl Compression {
    /// `body` compressed as configured.
    pub fn apply(self, body: Vec<u8>) -> Result<Vec<u8>, DeliveryError> {
        match self {
            Compression::None => Ok(body),
            Compression::Gzip => gzip(&body),
        }
    }
}

/// The error of a sink that rewrites events member by member when an event is not a JSON
/// object (decoding only checked its routing fields).
pub fn not_a_json_object(e: &courier_core::event::Event) -> DeliveryError {
    DeliveryError {
        kind: ErrorKind::Encode,
        http_status: None,
        message: format!(
            "the event at partition {} offset {} is not a JSON object",
            e.partition, e.offset
        ),
    }
}

/// gzip's level for request bodies and objects. With miniz_oxide at level 6 (zlib's default)
/// gzip ran at 37–57 MiB/s here — 20–40 µs of CPU per 1 KiB event, several times the rest of
/// the hot path. flate2 now uses zlib-rs, at level 3: 190–200 MiB/s for webhook bodies and a
/// ratio of 6.4 on generated Event Logs (level 6: 7.3, level 1: 4.4); `cargo bench -p
/// courier-sinks --bench encode`, docs/benchmarks.md.
const GZIP_LEVEL: u32 = 3;

/// Gzips a body, at level [`GZIP_LEVEL`].
pub fn gzip(body: &[u8]) -> Result<Vec<u8>, DeliveryError> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::new(GZIP_LEVEL),
    );
    enc.write_all(body)
        .and_then(|()| enc.finish())
        .map_err(|e| DeliveryError {
            kind: ErrorKind::Encode,
            http_status: None,
            message: format!("gzip failed: {e}"),
        })
}
