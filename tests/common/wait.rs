//! Waiting for a condition: every end-to-end test waits for something another process does
//! (courier delivering, a broker committing), and a wait that times out says what it waited
//! for and shows the logs of the processes involved.

use std::time::{Duration, Instant};

/// Polls `cond` every `poll` until it returns true; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, poll: Duration, cond: impl FnMut() -> bool) {
    wait_explained(what, timeout, poll, cond, String::new);
}

/// [`wait_until`], whose panic adds `context()` (logs of the processes involved).
pub fn wait_explained(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut cond: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() >= timeout {
            panic!(
                "timed out after {timeout:?} waiting for: {what}\n{}",
                context()
            );
        }
        std::thread::sleep(poll);
    }
}
