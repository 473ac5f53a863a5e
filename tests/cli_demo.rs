//! `courier demo` through the binary, as the README's first command runs it: every produced
//! message is read (none lost to the embedded broker's small log) and the demo ends on its
//! own once everything is delivered, well before its time limit.

use std::process::Command;

#[test]
fn the_demo_reads_every_message_it_produced_and_ends_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["demo", "--events", "20000", "--seconds", "120"])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    // Before the fix, the start waited 10 s for the embedded broker to report a retention it
    // cannot report, while the demo produced; the broker dropped the oldest messages, the demo
    // printed "18820 of 20000 produced messages consumed" and ran into its time limit.
    assert!(
        stdout.contains("20000 of 20000 produced messages consumed"),
        "{stdout}"
    );
    assert!(!stdout.contains("time limit reached"), "{stdout}");
}
