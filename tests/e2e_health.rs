//! Health endpoints of the compiled binary against tansu.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Broker: tansu. `/readyz` stays 503 — saying why — while the failures topic does not exist
/// (failures could not be recorded, so nothing could safely complete), and turns 200 once it
/// does; `/healthz` is 200 throughout.
#[test]
fn readiness_waits_for_a_writable_failures_topic() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, "event-logs", 1);
    let mut cfg = CourierConfig::new(&brokers);
    cfg.failures_topic = "failures-created-later".into();
    let courier = Courier::start(&cfg);
    let start = Instant::now();
    let mut last = (0, String::new());
    while start.elapsed() < Duration::from_secs(8) {
        if let Ok(answer) = http_get(courier.listen(), "/readyz") {
            last = answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(last.0, 503, "{last:?}\n{}", courier.log_tail());
    assert!(
        last.1.contains("failures topic"),
        "{last:?}\n{}",
        courier.log_tail()
    );
    assert_eq!(http_get(courier.listen(), "/healthz").unwrap().0, 200);
    let metrics = courier.metrics();
    assert_eq!(
        metric_sum(&metrics, "courier_ready", &[]),
        Some(0.0),
        "{metrics}"
    );

    create_topic(&brokers, "failures-created-later", 1);
    courier.wait_ready(Duration::from_secs(30));
    assert_eq!(
        metric_sum(&courier.metrics(), "courier_ready", &[]),
        Some(1.0)
    );
}
