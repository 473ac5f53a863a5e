//! End-to-end fan-out: the compiled `courier` binary against tansu (one broker per test,
//! records produced one per batch, TESTING.md quirk 2), delivering one project's events to a
//! Datadog intake, two Splunk HTTP Event Collectors (one with indexer acknowledgement) and a
//! webhook, each with its own filter. The Datadog and Splunk services are the contract-enforcing
//! fakes of `tests/common/fakes/` running in the test process, the webhook the harness's
//! receiver.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::fakes::datadog::FakeDatadog;
use common::fakes::splunk::{AckPolicy, FakeSplunk, HecSetup};
use common::*;
use courier::generator::event_types;
use serde_json::Value;

const TOPIC: &str = "event-logs";
const FAILURES: &str = "courier-failures";
const PARTITIONS: i32 = 4;
const CATCH_UP: Duration = Duration::from_secs(60);
const DD_KEY: &str = "dd-e2e-key-8f1c2b";
const BAD_KEY: &str = "dd-e2e-revoked-key-5a5a";
const HEC_TOKEN: &str = "6f1e3c2a-1b2c-4d5e-8f90-a1b2c3d4e5f6";
const PROJECT: &str = "proj_0001";
const OTHER: &str = "proj_0002";

fn broker() -> Tansu {
    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), TOPIC, PARTITIONS);
    create_topic(&tansu.brokers(), FAILURES, 1);
    tansu
}

struct Produced {
    /// (bytes, parsed, position)
    events: Vec<(Vec<u8>, Value, (i32, i64))>,
}

impl Produced {
    fn matching(&self, keep: impl Fn(&Value) -> bool) -> Vec<&(Vec<u8>, Value, (i32, i64))> {
        self.events.iter().filter(|(_, v, _)| keep(v)).collect()
    }
}

fn produce_events(brokers: &str, n: usize, seed: u64) -> Produced {
    // Three events of PROJECT, then one of OTHER; delivery-failure events included.
    let mut gen = generator(seed, 2);
    let bytes: Vec<Vec<u8>> =
        events_in_turn(&mut gen, n, &[PROJECT, PROJECT, PROJECT, OTHER], |_| true)
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect();
    let positions = produce_spread(brokers, TOPIC, PARTITIONS, bytes.iter().cloned());
    Produced {
        events: bytes
            .into_iter()
            .zip(positions)
            .map(|(b, p)| {
                let v: Value = serde_json::from_slice(&b).expect("generated events are JSON");
                (b, v, p)
            })
            .collect(),
    }
}

fn datadog_toml(id: &str, endpoint: &str, key: &str, extra: &str) -> String {
    format!(
        "[[destinations]]\nproject = {}\nid = {}\ntype = \"datadog\"\nendpoint = {}\napi_key = {}\nservice = \"paragon\"\ntags = [\"env:e2e\"]\n{extra}",
        toml_str(PROJECT),
        toml_str(id),
        toml_str(endpoint),
        toml_str(key)
    )
}

fn splunk_toml(id: &str, endpoint: &str, extra: &str) -> String {
    format!(
        "[[destinations]]\nproject = {}\nid = {}\ntype = \"splunk_hec\"\nendpoint = {}\ntoken = {}\nindex = \"courier\"\n{extra}",
        toml_str(PROJECT),
        toml_str(id),
        toml_str(endpoint),
        toml_str(HEC_TOKEN)
    )
}

fn level_at_least_warn(v: &Value) -> bool {
    matches!(v["level"].as_str(), Some("WARN" | "ERROR"))
}

/// Broker: tansu — the test needs a consumer group that commits and a failures topic to read
/// back; no broker fault is injected.
///
/// Project proj_0001 has five destinations: Datadog (every event), Splunk without
/// acknowledgement (WARN and up), Splunk with acknowledgement (three event types), a webhook
/// (three integrations), and a Datadog destination whose API key was revoked. proj_0002's
/// events go nowhere. Every healthy destination receives exactly its filtered events, once; the
/// revoked one yields delivery-failure events naming Datadog's refusal for exactly its
/// events, and the offsets complete.
#[test]
fn one_projects_events_fan_out_to_datadog_splunk_and_a_webhook() {
    let tansu = broker();
    let brokers = tansu.brokers();
    let dd = rt().block_on(FakeDatadog::start(DD_KEY));
    let dd_revoked = rt().block_on(FakeDatadog::start(DD_KEY));
    let hec = rt().block_on(FakeSplunk::start(HecSetup {
        allowed_indexes: vec!["courier".into()],
        ..HecSetup::new(HEC_TOKEN)
    }));
    let hec_ack = rt().block_on(FakeSplunk::start(HecSetup {
        ack: true,
        allowed_indexes: vec!["courier".into()],
        ..HecSetup::new(HEC_TOKEN)
    }));
    hec_ack.set_ack_policy(AckPolicy::AfterPolls(1));
    let hook = WebhookReceiver::start(ReceiverConfig::default());

    let types: Vec<&str> = event_types()
        .into_iter()
        .filter(|t| *t != "EVENT_DESTINATION")
        .take(3)
        .collect();
    let integrations = ["salesforce", "hubspot", "slack"];
    let quoted = |items: &[&str]| {
        items
            .iter()
            .map(|t| toml_str(t))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cfg = CourierConfig::new(&brokers)
        .delivery("retry_max_elapsed", "\"2s\"")
        .delivery("retry_schedule", "[\"1s\"]")
        .delivery("probe_interval", "\"300ms\"")
        .destination(datadog_toml("dd", &dd.url(), DD_KEY, ""))
        .destination(splunk_toml("hec", &hec.url(), "[destinations.filter]\nmin_level = \"WARN\"\n"))
        .destination(splunk_toml(
            "hec-ack",
            &hec_ack.url(),
            &format!("ack = true\nack_timeout = \"20s\"\ncompression = \"gzip\"\n[destinations.filter]\ntypes = [{}]\n", quoted(&types)),
        ))
        .destination(format!(
            "{}[destinations.filter]\nintegration_ids = [{}]\n",
            hook.destination_toml(PROJECT, "hook"),
            quoted(&integrations)
        ))
        .destination(datadog_toml("dd-revoked", &dd_revoked.url(), BAD_KEY, ""));
    let courier = Courier::start_ready(&cfg);

    let produced = produce_events(&brokers, 600, 21);
    let mine = |v: &Value| v["projectId"] == PROJECT;
    let all_mine = produced.matching(mine);
    let to_hec = produced.matching(|v| mine(v) && level_at_least_warn(v));
    let to_hec_ack = produced.matching(|v| mine(v) && types.iter().any(|t| v["type"] == *t));
    let to_hook =
        produced.matching(|v| mine(v) && integrations.iter().any(|i| v["integrationId"] == *i));
    assert!(
        to_hec.len() > 20
            && to_hec_ack.len() > 20
            && to_hook.len() > 20
            && to_hec.len() < all_mine.len(),
        "filters should select some but not all events: {} {} {} of {}",
        to_hec.len(),
        to_hec_ack.len(),
        to_hook.len(),
        all_mine.len()
    );

    // Everything completes: delivered, or reported.
    let ends = end_offsets(
        &produced
            .events
            .iter()
            .map(|(_, _, p)| *p)
            .collect::<Vec<_>>(),
    );
    wait_until(
        "committed offsets reach the end of the topic",
        CATCH_UP,
        Duration::from_millis(200),
        || {
            let committed = committed_offsets(&brokers, "courier-test", TOPIC);
            ends.iter().all(|(p, e)| committed.get(p) == Some(e))
        },
    );
    wait_until(
        "every destination received its events",
        CATCH_UP,
        Duration::from_millis(200),
        || {
            dd.logs().len() >= all_mine.len()
                && hec.indexed().len() >= to_hec.len()
                && hec_ack.indexed().len() >= to_hec_ack.len()
                && hook.events().len() >= to_hook.len()
        },
    );
    // Anything still in flight (a duplicate would be a bug: nothing failed) arrives now.
    std::thread::sleep(Duration::from_millis(500));

    // Datadog: every event of the project exactly once, as a log with its attributes.
    assert!(dd.violations().is_empty(), "{:?}", dd.violations());
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for log in dd.logs() {
        *by_id
            .entry(log["id"].as_str().expect("id attribute").to_owned())
            .or_default() += 1;
        assert_eq!(log["service"], "paragon");
        assert!(
            log["ddtags"]
                .as_str()
                .unwrap()
                .starts_with("env:e2e,project:proj_0001"),
            "{log}"
        );
    }
    let expected: HashMap<String, usize> = all_mine
        .iter()
        .map(|(_, v, _)| (v["id"].as_str().unwrap().to_owned(), 1))
        .collect();
    assert_eq!(
        by_id,
        expected,
        "Datadog did not get exactly the project's events\n{}",
        courier.log_tail()
    );

    // Splunk: the original bytes of exactly the filtered events, once each.
    let expect_raw =
        |list: &[&(Vec<u8>, Value, (i32, i64))]| multiset(list.iter().map(|(b, _, _)| b.clone()));
    let got = multiset(hec.indexed_raw());
    assert!(
        got == expect_raw(&to_hec),
        "hec: {}\n{}",
        describe_difference(&expect_raw(&to_hec), &got),
        courier.log_tail()
    );
    assert!(hec.records().iter().all(|r| r.channel.is_none()));
    let got = multiset(hec_ack.indexed_raw());
    assert!(
        got == expect_raw(&to_hec_ack),
        "hec-ack: {}\n{}",
        describe_difference(&expect_raw(&to_hec_ack), &got),
        courier.log_tail()
    );
    let channels: HashSet<Option<String>> =
        hec_ack.records().into_iter().map(|r| r.channel).collect();
    assert_eq!(
        channels.len(),
        1,
        "one channel per destination: {channels:?}"
    );
    assert!(channels.iter().all(Option::is_some));
    assert!(
        !hec_ack.ack_queries().is_empty(),
        "acknowledgements were queried"
    );
    assert!(hec_ack.records().iter().all(|r| r.status == 200));

    // Webhook: unchanged.
    assert!(hook.violations().is_empty(), "{:?}", hook.violations());
    let got = multiset(hook.events());
    assert!(
        got == expect_raw(&to_hook),
        "hook: {}",
        describe_difference(&expect_raw(&to_hook), &got)
    );

    // The revoked key: nothing accepted, failure events for exactly its events, naming
    // Datadog's refusal and never the key; no failure event for the healthy destinations.
    assert!(dd_revoked.logs().is_empty());
    let start = Instant::now();
    let failures = loop {
        // A generous idle time: a fresh reader on a busy machine can take more than 500 ms
        // to fetch its first record, and read_all would then return nothing.
        let failures: Vec<Value> = read_all(&brokers, FAILURES, Duration::from_secs(3))
            .into_iter()
            .map(|(_, _, b)| serde_json::from_slice(&b).expect("failure events are JSON"))
            .collect();
        let reported: HashSet<String> = failures
            .iter()
            .filter(|f| f["destinationId"] == "dd-revoked" && f["payload"]["eventIds"].is_array())
            .flat_map(|f| f["payload"]["eventIds"].as_array().unwrap().clone())
            .map(|id| id.as_str().unwrap().to_owned())
            .collect();
        if reported.len() >= all_mine.len() {
            break failures;
        }
        assert!(
            start.elapsed() < CATCH_UP,
            "only {} of {} events of dd-revoked reported; failure events: {:?}\n{}",
            reported.len(),
            all_mine.len(),
            failures.iter().take(3).collect::<Vec<_>>(),
            courier.log_tail()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let mut seen = HashSet::new();
    for f in failures
        .iter()
        .filter(|f| f["payload"]["eventIds"].is_array())
    {
        assert_eq!(
            f["destinationId"], "dd-revoked",
            "only the revoked destination fails: {f}"
        );
        assert_eq!(f["destinationType"], "datadog");
        assert_eq!(f["projectId"], PROJECT);
        let text = f.to_string();
        assert!(
            !text.contains(BAD_KEY),
            "a failure event shows the API key: {f}"
        );
        assert!(text.contains("Datadog rejected the API key (403)"), "{f}");
        for id in f["payload"]["eventIds"].as_array().unwrap() {
            let id = id.as_str().unwrap().to_owned();
            assert!(
                expected.contains_key(&id),
                "{id} is not an event of {PROJECT}"
            );
            assert!(seen.insert(id.clone()), "{id} reported twice");
        }
    }
    assert_eq!(seen.len(), all_mine.len());
    assert!(
        !std::fs::read_to_string(courier.log_path())
            .unwrap()
            .contains(BAD_KEY),
        "the log shows the API key"
    );

    let metrics = courier.metrics();
    let delivered = |t: &str| {
        metric_sum(
            &metrics,
            "courier_events_delivered_total",
            &[("destination_type", t)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(delivered("datadog"), all_mine.len() as f64);
    assert_eq!(
        delivered("splunk_hec"),
        (to_hec.len() + to_hec_ack.len()) as f64
    );
}
