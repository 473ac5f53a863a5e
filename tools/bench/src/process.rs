//! Child processes of a run (the receiver, courier, perf): each is killed when its handle is
//! dropped, and a signal thread kills every one still alive on Ctrl-C or SIGTERM, so that an
//! interrupted benchmark leaves nothing running on the machine (`scripts/bench` then stops the
//! broker).

use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;

static CHILDREN: OnceLock<Mutex<Vec<u32>>> = OnceLock::new();

fn children() -> &'static Mutex<Vec<u32>> {
    CHILDREN.get_or_init(|| Mutex::new(Vec::new()))
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    child: Child,
    name: &'static str,
}

impl Proc {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> anyhow::Result<Proc> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        children()
            .lock()
            .expect("no thread panics while holding the child list")
            .push(child.id());
        Ok(Proc { child, name })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("  {} did not stop within {grace:?}; killing it", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = self.child.id();
        children()
            .lock()
            .expect("no thread panics while holding the child list")
            .retain(|&p| p != pid);
    }
}

pub fn kill_children() {
    for pid in children()
        .lock()
        .expect("no thread panics while holding the child list")
        .drain(..)
    {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

pub fn install_signal_cleanup() {
    std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("signal runtime");
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        eprintln!("courier-bench: interrupted; stopping what it started");
        kill_children();
        std::process::exit(130);
    });
}
