//! What a replay tells whoever runs it: its phase and counters (read by the API for a job),
//! a progress bar on a terminal, and the per-destination summary printed at the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;

use indicatif::{ProgressBar, ProgressStyle};

/// Where a replay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Reading the failure events of the range (with `--from-failures`).
    Planning = 0,
    /// Reading the events and handing them to the lanes.
    Reading = 1,
    /// Everything is read; the last batches are being delivered.
    Delivering = 2,
    /// Finished (or stopped).
    Done = 3,
}

impl Phase {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Planning => "planning",
            Phase::Reading => "reading",
            Phase::Delivering => "delivering",
            Phase::Done => "done",
        }
    }
}

/// A running replay's progress: a progress bar on a terminal, counters for the API.
#[derive(Debug)]
pub struct Progress {
    terminal: bool,
    /// The bar, once reading starts on a terminal.
    pub(super) bar: OnceLock<ProgressBar>,
    phase: AtomicU8,
    total: AtomicU64,
    read: AtomicU64,
}

impl Progress {
    /// Progress shown as a bar when `terminal`, otherwise only counted (and logged).
    pub fn new(terminal: bool) -> Self {
        Self {
            terminal,
            bar: OnceLock::new(),
            phase: AtomicU8::new(Phase::Planning as u8),
            total: AtomicU64::new(0),
            read: AtomicU64::new(0),
        }
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Planning,
            1 => Phase::Reading,
            2 => Phase::Delivering,
            _ => Phase::Done,
        }
    }

    /// Messages to read in the replayed range (known once planned).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Messages read so far.
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    pub(super) fn start_reading(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.phase.store(Phase::Reading as u8, Ordering::Relaxed);
        if self.terminal {
            let _ = self.bar.set(progress_bar(total));
        }
    }

    pub(super) fn tick(&self) {
        self.read.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = self.bar.get() {
            bar.inc(1);
        }
    }

    pub(super) fn delivering(&self) {
        self.phase.store(Phase::Delivering as u8, Ordering::Relaxed);
        if let Some(bar) = self.bar.get() {
            bar.set_message("delivering the last batches");
        }
    }

    pub(super) fn done(&self) {
        self.phase.store(Phase::Done as u8, Ordering::Relaxed);
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}

/// Per-destination results.
#[derive(Debug, Default)]
pub struct Summary {
    /// Messages read.
    pub read: u64,
    /// Messages skipped as unroutable (they were reported when first read).
    pub unroutable: u64,
    /// (project, id) → (routed, delivered, failed).
    pub destinations: BTreeMap<(String, String), (u64, u64, u64)>,
}

impl Summary {
    /// Events that finally failed (reported in failure events).
    pub fn failed(&self) -> u64 {
        self.destinations.values().map(|d| d.2).sum()
    }

    pub(super) fn print(&self, dry_run: bool) {
        println!(
            "{} messages read{}",
            self.read,
            if self.unroutable > 0 {
                format!(", {} unroutable (skipped)", self.unroutable)
            } else {
                String::new()
            }
        );
        if dry_run {
            println!("{:<40} {:>10}", "destination", "would send");
            for ((p, d), (routed, _, _)) in &self.destinations {
                println!("{:<40} {:>10}", format!("{p}/{d}"), routed);
            }
        } else {
            println!(
                "{:<40} {:>10} {:>10} {:>8}",
                "destination", "routed", "delivered", "failed"
            );
            for ((p, d), (routed, delivered, failed)) in &self.destinations {
                println!(
                    "{:<40} {:>10} {:>10} {:>8}",
                    format!("{p}/{d}"),
                    routed,
                    delivered,
                    failed
                );
            }
        }
    }
}

pub(super) fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} read  {per_sec}  ETA {eta}  {msg}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar
}
