//! `courier test-destination` through the binary, against webhook receivers in the test
//! process (no broker needed: the command talks to the destination only).

mod common;

use std::process::{Command, Output};

use common::*;

fn run(dir: &tempfile::TempDir, cfg: &CourierConfig, project: &str, id: &str) -> Output {
    let path = dir.path().join("courier.toml");
    std::fs::write(&path, cfg.to_toml("127.0.0.1:1")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["test-destination", "--config"])
        .arg(&path)
        .args(["--project", project, "--destination", id])
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_healthy_webhook_gets_one_signed_test_event() {
    let hook = WebhookReceiver::start(ReceiverConfig::default().signed());
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        CourierConfig::new("127.0.0.1:9").destination(hook.destination_toml("proj_a", "hook-1"));
    let out = run(&dir, &cfg, "proj_a", "hook-1");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("test event: delivered"),
        "{}",
        text(&out)
    );
    assert!(hook.violations().is_empty(), "{:?}", hook.violations());
    let events = hook.events();
    assert_eq!(events.len(), 1);
    let v: serde_json::Value = serde_json::from_slice(&events[0]).unwrap();
    assert_eq!(v["projectId"], "proj_a");
    assert_eq!(v["destinationId"], "hook-1");
    assert!(
        !text(&out).contains(&test_secret()),
        "the secret is never printed"
    );
}

#[test]
fn a_rejecting_webhook_shows_the_answer_and_exits_1() {
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    hook.set_behaviour(Behaviour::Always(400));
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        CourierConfig::new("127.0.0.1:9").destination(hook.destination_toml("proj_a", "hook-1"));
    let out = run(&dir, &cfg, "proj_a", "hook-1");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the event was rejected"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("HTTP 400"), "{}", text(&out));
}

#[test]
fn an_unknown_destination_is_a_usage_error() {
    let hook = WebhookReceiver::start(ReceiverConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        CourierConfig::new("127.0.0.1:9").destination(hook.destination_toml("proj_a", "hook-1"));
    let out = run(&dir, &cfg, "proj_a", "nope");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no destination \"nope\" in project \"proj_a\""),
        "{}",
        text(&out)
    );
    assert_eq!(hook.request_count(), 0);
}
