//! `courier-bench micro`: the source thread's per-event work timed in one thread, without a
//! broker — copying the payload, decoding the routing fields, routing (one destination per
//! project, and the fan-out layout), and tracking and completing acknowledgements — best of 5
//! over generated benchmark events. Single-threaded and in-process, it is far less noisy than
//! the scenarios on a shared machine, so decoder changes are judged by it.

use std::time::Instant;

use anyhow::anyhow;
use courier::event::{decode, Decoded};
use courier::routing::Router;

use crate::cli::RunArgs;
use crate::config::{courier_config, Layout, Setup};
use crate::data::EventSource;
use crate::sys::now_us;

pub fn run(n: usize) -> anyhow::Result<()> {
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
        let args = RunArgs::defaults("127.0.0.1:1");
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
