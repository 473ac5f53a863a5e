//! Hot reload, end to end: the compiled binary on tansu (records one per batch, TESTING.md
//! quirk 2) while its configuration file is rewritten under it.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use courier::generator::Generator;
use serde_json::Value;

const TOPIC: &str = "event-logs";
const CATCH_UP: Duration = Duration::from_secs(60);

struct Batch {
    events: Vec<(String, Vec<u8>)>,
    ends: std::collections::HashMap<i32, i64>,
}

impl Batch {
    fn of(&self, project: &str) -> HashSet<Vec<u8>> {
        self.events
            .iter()
            .filter(|(p, _)| p == project)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

fn produce_batch(brokers: &str, gen: &mut Generator, n: usize) -> Batch {
    let events = ordinary_events(gen, n, &["proj_0001", "proj_0002"]);
    let positions = produce_spread(brokers, TOPIC, 2, events.iter().map(|(_, e)| e.clone()));
    Batch {
        events,
        ends: end_offsets(&positions),
    }
}

fn wait_for(what: &str, courier: &Courier, cond: impl FnMut() -> bool) {
    wait_explained(what, CATCH_UP, Duration::from_millis(100), cond, || {
        courier.log_tail()
    });
}

fn reloads(courier: &Courier, result: &str) -> f64 {
    metric_sum(
        &courier.metrics(),
        "courier_config_reloads_total",
        &[("result", result)],
    )
    .unwrap_or(0.0)
}

fn received(r: &WebhookReceiver) -> HashSet<Vec<u8>> {
    r.events().into_iter().collect()
}

fn level(event: &[u8]) -> String {
    let v: Value = serde_json::from_slice(event).unwrap();
    v["level"].as_str().unwrap_or_default().to_owned()
}

/// Broker: tansu (one consumer). Destinations are added, removed, changed and an invalid
/// file is refused, all while the process runs: each reload applies at once for the events
/// read after it, a removed destination gets nothing more, and a refused file changes nothing.
#[test]
fn destinations_are_added_changed_and_removed_without_a_restart() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 2);
    create_topic(&brokers, "courier-failures", 1);
    let a = WebhookReceiver::start(ReceiverConfig::default());
    let b = WebhookReceiver::start(ReceiverConfig::default());
    let mut base = CourierConfig::new(&brokers);
    // Per-destination series: a removed destination's must go with it.
    base.extra.push_str("\n[metrics]\nper_destination = true\n");
    let courier = Courier::start_ready(
        &base
            .clone()
            .destination(a.destination_toml("proj_0001", "hook-a")),
    );
    let write = |cfg: &CourierConfig| {
        std::fs::write(courier.config_path(), cfg.to_toml(courier.listen())).unwrap();
    };
    let committed = |ends: &std::collections::HashMap<i32, i64>| {
        let c = committed_offsets(&brokers, "courier-test", TOPIC);
        ends.iter().all(|(p, e)| c.get(p) == Some(e))
    };
    let mut gen = generator(21, 2);

    // 1. hook-a receives proj_0001.
    let one = produce_batch(&brokers, &mut gen, 100);
    wait_for("hook-a receives batch 1", &courier, || {
        one.of("proj_0001").is_subset(&received(&a))
    });
    wait_for("batch 1 committed", &courier, || committed(&one.ends));
    assert!(
        courier.metrics().contains("destination=\"hook-a\""),
        "hook-a has per-destination series while it exists"
    );

    // 2. Replace hook-a with hook-b (proj_0002) by rewriting the file.
    write(
        &base
            .clone()
            .destination(b.destination_toml("proj_0002", "hook-b")),
    );
    wait_for("the file change is applied", &courier, || {
        reloads(&courier, "success") >= 1.0
    });
    let a_before = a.event_count();
    let two = produce_batch(&brokers, &mut gen, 100);
    wait_for("hook-b receives batch 2", &courier, || {
        two.of("proj_0002").is_subset(&received(&b))
    });
    wait_for("batch 2 committed", &courier, || committed(&two.ends));
    assert_eq!(
        a.event_count(),
        a_before,
        "a removed destination received events"
    );
    assert!(
        received(&b).is_disjoint(&one.of("proj_0002")),
        "events read before hook-b was added went to it"
    );
    let metrics = courier.metrics();
    assert!(
        !metrics.contains("destination=\"hook-a\""),
        "a removed destination's series are still exported:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("hook-a"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(metrics.contains("destination=\"hook-b\""));

    // 3. An invalid file (and a SIGHUP) is refused; the running configuration stays.
    std::fs::write(
        courier.config_path(),
        base.clone()
            .destination(b.destination_toml("proj_0002", "hook-b"))
            .to_toml(courier.listen())
            .replace("type = \"webhook\"", "type = \"carrier-pigeon\""),
    )
    .unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &courier.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for("the invalid file is refused", &courier, || {
        reloads(&courier, "failure") >= 1.0
    });
    let (status, _) = http_get(courier.listen(), "/readyz").unwrap();
    assert_eq!(status, 200, "a refused reload leaves the process ready");
    let three = produce_batch(&brokers, &mut gen, 60);
    wait_for("hook-b still receives (batch 3)", &courier, || {
        three.of("proj_0002").is_subset(&received(&b))
    });

    // 4. Change hook-b: only ERROR events from now on.
    let errors_only = format!(
        "{}[destinations.filter]\nlevels = [\"ERROR\"]\n",
        b.destination_toml("proj_0002", "hook-b")
    );
    write(&base.clone().destination(errors_only));
    wait_for("the changed destination is applied", &courier, || {
        reloads(&courier, "success") >= 2.0
    });
    wait_for("batch 3 committed", &courier, || committed(&three.ends));
    let b_before = received(&b);
    let four = produce_batch(&brokers, &mut gen, 200);
    wait_for("batch 4 committed", &courier, || committed(&four.ends));
    let new: HashSet<Vec<u8>> = received(&b).difference(&b_before).cloned().collect();
    let expected: HashSet<Vec<u8>> = four
        .of("proj_0002")
        .into_iter()
        .filter(|e| level(e) == "ERROR")
        .collect();
    assert_eq!(
        new, expected,
        "after the change hook-b gets exactly batch 4's ERROR events"
    );
    assert!(b.violations().is_empty(), "{:?}", b.violations());
}
