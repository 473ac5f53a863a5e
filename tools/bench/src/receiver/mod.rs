//! The fast receiver: every webhook destination of the benchmark points at it. It runs as a
//! separate process (`courier-bench receiver`, [`server`]) so that its CPU is measured apart
//! from the orchestrator's and courier's, and the orchestrator talks to it over HTTP
//! ([`Receiver`]): `/reset` before a run, `/stats` while and after it.

pub mod server;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::process::Proc;
use crate::sys::{free_port, http};

/// The running receiver process (killed when dropped) and its two ports.
pub struct Receiver {
    _proc: Proc,
    pub port: u16,
    pub stall_port: u16,
}

/// What `/stats` answers.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ReceiverStats {
    pub events: u64,
    pub requests: u64,
    pub bytes: u64,
    pub cpu_seconds: f64,
    pub stalled_connections: u64,
    /// Requests answered 503 at `/fail/`.
    pub failed_requests: u64,
    /// Events taken at `/ok/` (not counted in `events`).
    pub other_events: u64,
    pub latency_count: u64,
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    pub latency_max_us: u64,
    /// The latencies by the last segment of the URL path (`/hook/<project>/<group>`).
    pub latency_groups: HashMap<String, LatencySummary>,
}

/// Produce-to-receipt latency of a set of events, in µs.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    /// Count, p50, p99 and max of latencies (µs).
    pub fn of(mut lat: Vec<u32>) -> LatencySummary {
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
}

impl Receiver {
    pub fn start() -> anyhow::Result<Receiver> {
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

    pub fn stats(&self) -> anyhow::Result<ReceiverStats> {
        let (status, body) = http("GET", self.port, "/stats")?;
        if status != 200 {
            bail!("receiver /stats answered {status}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    pub fn reset(&self, latency: bool) -> anyhow::Result<()> {
        let path = if latency {
            "/reset?latency=1"
        } else {
            "/reset"
        };
        http("POST", self.port, path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_summary_picks_the_nearest_rank() {
        let s = LatencySummary::of((1..=101).rev().collect());
        assert_eq!((s.count, s.p50_us, s.p99_us, s.max_us), (101, 51, 100, 101));
        let empty = LatencySummary::of(Vec::new());
        assert_eq!((empty.count, empty.p50_us, empty.max_us), (0, 0, 0));
    }
}
