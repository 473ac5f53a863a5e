//! Fleet-wide status, end to end: two replicas of the compiled binary (one consumer group) on
//! tansu, called over real HTTP. Each replica delivers its share of a project's events to a
//! healthy webhook and fails its share at an endpoint answering 500 with a body; both replicas
//! then answer the same aggregated status (the counters sum to what the receiver got, each
//! replica's share counted once — checked against each replica's own per-destination
//! metrics), the failures listing names the endpoint's answer and exactly the events routed
//! there, a project-scoped token reads neither another project's status nor its failures, and
//! once a replica is killed (SIGKILL) and `replica_timeout` has passed the survivor answers
//! with one replica and only its own share — while the killed replica's rows are still in the
//! status topic, until the survivor removes them ten timeouts later. A clean stop leaves
//! tombstones for every row of the replica.
//!
//! tansu, not the mock cluster: the status table is a compacted topic every replica reads.
//! The group uses an eager assignment strategy (TESTING.md quirk 7); no replica restarts, so
//! no event is read twice.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine as _;
use common::fakes::scripted::{text, Server};
use common::*;
use serde_json::Value;

const TOPIC: &str = "event-logs";
const ADMIN: &str = "admin-token-0123456789";
const PROJ_A: &str = "proj-a-token-0123456789";
const KEY_ENV: &str = "COURIER_TEST_API_KEY";
/// What the failing endpoint answers (after a 500).
const ANSWER: &str = "upstream database unavailable (ref 7781)";
const EVENTS: usize = 40;

/// Replica `replica` of the fleet: a healthy webhook and a failing one for proj_a, one for
/// proj_b; status published every second, a replica silent for 3 s left out.
fn config(brokers: &str, replica: &str, ok: &WebhookReceiver, down: &Server) -> CourierConfig {
    let mut cfg = CourierConfig::new(brokers)
        .kafka_option("partition.assignment.strategy", "range,roundrobin")
        .destination(ok.destination_toml("proj_a", "ok"))
        .destination(format!(
            "[[destinations]]\nproject = \"proj_a\"\nid = \"down\"\ntype = \"webhook\"\nurl = {}\n\
             [destinations.delivery]\nretry_max_elapsed = \"1s\"\nretry_schedule = []\ncircuit_failure_threshold = 1\n",
            toml_str(&format!("{}/hook", down.base()))
        ))
        .destination(ok.destination_toml("proj_b", "b-hook"));
    cfg.extra = format!(
        "\n[metrics]\nper_destination = true\n\n[api]\nencryption_key_env = {}\nreplica_id = {}\nstatus_interval = \"1s\"\nreplica_timeout = \"3s\"\ntokens = [{{ token = {} }}, {{ token = {}, projects = [\"proj_a\"] }}]\n",
        toml_str(KEY_ENV),
        toml_str(replica),
        toml_str(ADMIN),
        toml_str(PROJ_A),
    );
    cfg.env.push((
        KEY_ENV.into(),
        base64::engine::general_purpose::STANDARD.encode([5u8; 32]),
    ));
    cfg
}

/// One GET → (status, body as JSON or a string).
fn get(courier: &Courier, path: &str, token: &str) -> (u16, Value) {
    api_call(courier.listen(), "GET", path, Some(token), None)
}

fn admin(courier: &Courier, path: &str) -> Value {
    let (s, body) = get(courier, path, ADMIN);
    assert_eq!(s, 200, "GET {path}: {body}");
    body
}

fn status(courier: &Courier, id: &str) -> Value {
    admin(
        courier,
        &format!("/v1/projects/proj_a/destinations/{id}/status"),
    )
}

/// A per-destination counter of one replica's own `/metrics` (0 when not exported yet).
fn own_count(courier: &Courier, what: &str, id: &str) -> u64 {
    let prefix = format!(
        "courier_destination_events_{what}_total{{destination=\"{id}\",project=\"proj_a\"}} "
    );
    courier
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// How many partitions of the Event Logs topic the replica was last assigned (from its JSON
/// log).
fn assigned(courier: &Courier) -> usize {
    let log = std::fs::read_to_string(courier.log_path()).unwrap_or_default();
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|l| l["fields"]["message"] == "partitions assigned" && l["fields"]["topic"] == TOPIC)
        .and_then(|l| l["fields"]["partitions"].as_str().map(str::to_owned))
        .map_or(0, |list| {
            list.trim_matches(['[', ']'])
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .count()
        })
}

/// The status topic's newest record per key (an empty value is a tombstone).
fn status_topic(brokers: &str) -> BTreeMap<String, Vec<u8>> {
    // Heartbeats keep coming: read for 4 s at most (the whole topic arrives well within).
    let max = Some(Duration::from_secs(4));
    read_records_within(brokers, "courier-status", Duration::from_millis(1500), max)
        .into_iter()
        .filter_map(|r| Some((String::from_utf8(r.key?).unwrap(), r.value)))
        .collect()
}

/// How many records the status topic holds under `key`.
fn records_under(brokers: &str, key: &str) -> usize {
    let max = Some(Duration::from_secs(4));
    read_records_within(brokers, "courier-status", Duration::from_millis(1500), max)
        .into_iter()
        .filter(|r| r.key.as_deref() == Some(key.as_bytes()))
        .count()
}

/// The keys of `replica`'s rows in the topic that are not tombstones.
fn rows_of(rows: &BTreeMap<String, Vec<u8>>, replica: &str) -> Vec<String> {
    rows.iter()
        .filter(|(k, v)| {
            !v.is_empty()
                && (*k == &format!("replica/{replica}")
                    || k.starts_with(&format!("destination/{replica}/")))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

fn minutes_sum(status: &Value, what: &str) -> u64 {
    let minutes = status["minutes"]
        .as_array()
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(minutes.len(), 60, "{status}");
    minutes.iter().map(|m| m[what].as_u64().unwrap()).sum()
}

fn wait(what: &str, courier: &Courier, cond: impl FnMut() -> bool) {
    wait_explained(
        what,
        Duration::from_secs(60),
        Duration::from_millis(200),
        cond,
        || courier.log_tail(),
    );
}

#[test]
fn two_replicas_answer_one_status_and_a_killed_one_drops_out() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, TOPIC, 4);
    create_topic(&brokers, "courier-failures", 1);
    let receiver = WebhookReceiver::start(ReceiverConfig::default());
    let down = rt().block_on(Server::start(|_| text(500, ANSWER)));
    let a = Courier::start_ready(&config(&brokers, "replica-a", &receiver, &down));
    let mut b = Courier::start_ready(&config(&brokers, "replica-b", &receiver, &down));
    // Both replicas own partitions, so both deliver a share.
    wait("two partitions each", &b, || {
        assigned(&a) == 2 && assigned(&b) == 2
    });

    let events: Vec<Vec<u8>> = (0..EVENTS)
        .map(|i| {
            event_log("proj_a", &format!("evt-{i}-{}", unique_number()))
                .to_string()
                .into_bytes()
        })
        .collect();
    let ids: BTreeSet<String> = events.iter().map(|e| event_id(e)).collect();
    produce_spread(&brokers, TOPIC, 4, events.iter().cloned());
    wait("every event delivered to ok", &a, || {
        receiver.event_count() >= EVENTS
    });
    let total = |c: &Courier, what: &str, id: &str| status(c, id)["events"][what].clone();
    wait("both replicas count every event", &a, || {
        let delivered = Value::from(receiver.event_count());
        [&a, &b].iter().all(|c| {
            total(c, "delivered", "ok") == delivered && total(c, "failed", "down") == EVENTS
        })
    });

    // Counters: the receiver's count, each replica's own share counted once.
    let received = receiver.event_count() as u64;
    let (a_ok, b_ok) = (
        own_count(&a, "delivered", "ok"),
        own_count(&b, "delivered", "ok"),
    );
    let (a_down, b_down) = (
        own_count(&a, "failed", "down"),
        own_count(&b, "failed", "down"),
    );
    assert!(
        a_ok > 0 && b_ok > 0,
        "both deliver a share: {a_ok} + {b_ok}"
    );
    assert!(
        a_down > 0 && b_down > 0,
        "both fail a share: {a_down} + {b_down}"
    );
    assert_eq!(a_ok + b_ok, received);
    assert_eq!(a_down + b_down, EVENTS as u64);
    for c in [&a, &b] {
        let ok = status(c, "ok");
        assert_eq!(ok["events"]["delivered"], received, "{ok}");
        assert_eq!(ok["events"]["failed"], 0, "{ok}");
        assert_eq!(ok["replicas"], 2, "{ok}");
        assert_eq!(ok["running"], true, "{ok}");
        assert_eq!(ok["circuit"], "closed", "{ok}");
        assert_eq!(minutes_sum(&ok, "delivered"), received, "{ok}");
        let failing = status(c, "down");
        assert_eq!(failing["events"]["failed"], EVENTS, "{failing}");
        assert_eq!(failing["events"]["delivered"], 0, "{failing}");
        assert_eq!(failing["replicas"], 2, "{failing}");
        assert_eq!(failing["circuit"], "open", "{failing}");
        assert_eq!(failing["last_error"]["http_status"], 500, "{failing}");
        let message = failing["last_error"]["message"].as_str().unwrap();
        assert!(message.contains(ANSWER), "{failing}");
        assert_eq!(minutes_sum(&failing, "failed"), EVENTS as u64, "{failing}");
    }
    // The same answer from either replica.
    for id in ["ok", "down"] {
        let (sa, sb) = (status(&a, id), status(&b, id));
        for field in ["events", "replicas", "circuit", "running", "last_error"] {
            assert_eq!(sa[field], sb[field], "{id}.{field}: {sa} vs {sb}");
        }
    }
    let project = admin(&a, "/v1/projects/proj_a/status");
    let listed: Vec<&str> = project["destinations"]
        .as_array()
        .unwrap_or_else(|| panic!("{project}"))
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["down", "ok"], "{project}");
    assert_eq!(project["destinations"][1]["events"]["delivered"], received);
    assert_eq!(project["destinations"][0]["events"]["failed"], EVENTS);

    // Failures: the endpoint's answer and exactly the events routed there, newest first.
    let path = "/v1/projects/proj_a/failures?destination=down&limit=500";
    let failures = admin(&a, path)["failures"].clone();
    assert_eq!(
        failures,
        admin(&b, path)["failures"],
        "the same from either replica"
    );
    let list = failures.as_array().unwrap();
    let mut listed_ids = BTreeSet::new();
    let mut counted = 0;
    for f in list {
        assert_eq!(f["destination"], "down", "{f}");
        assert_eq!(f["kind"], "http_status", "{f}");
        assert_eq!(f["http_status"], 500, "{f}");
        assert!(f["message"].as_str().unwrap().contains(ANSWER), "{f}");
        counted += f["events"].as_u64().unwrap();
        for id in f["event_ids"].as_array().unwrap() {
            assert!(
                listed_ids.insert(id.as_str().unwrap().to_owned()),
                "{id} twice"
            );
        }
    }
    assert_eq!(counted, EVENTS as u64);
    assert_eq!(
        listed_ids, ids,
        "the failed events are the ones routed there"
    );
    let times: Vec<&str> = list.iter().map(|f| f["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(times, sorted, "newest first");
    let all = admin(&b, "/v1/projects/proj_a/failures");
    assert_eq!(all["failures"], failures, "only down failed");
    let newest = admin(&a, "/v1/projects/proj_a/failures?limit=1");
    assert_eq!(newest["failures"].as_array().unwrap().len(), 1);
    assert_eq!(newest["failures"][0], list[0]);
    for bad in ["limit=0", "limit=501", "limit=ten"] {
        let (s, body) = get(&a, &format!("/v1/projects/proj_a/failures?{bad}"), ADMIN);
        assert_eq!(s, 400, "{bad}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("limit"),
            "{body}"
        );
    }
    let (s, body) = get(&a, "/v1/projects/proj_a/failures?destination=nope", ADMIN);
    assert_eq!(s, 404, "{body}");

    // A project-scoped token: its project only.
    assert_eq!(get(&a, "/v1/projects/proj_a/status", PROJ_A).0, 200);
    assert_eq!(get(&b, "/v1/projects/proj_a/failures", PROJ_A).0, 200);
    for path in [
        "/v1/projects/proj_b/status",
        "/v1/projects/proj_b/failures",
        "/v1/projects/proj_b/destinations/b-hook/status",
    ] {
        for c in [&a, &b] {
            let (s, body) = get(c, path, PROJ_A);
            assert_eq!(s, 403, "{path}: {body}");
        }
    }
    assert_eq!(
        admin(&a, "/v1/projects/proj_b/status")["destinations"][0]["id"],
        "b-hook"
    );

    // B dies without a word: after replica_timeout A answers with its own share only.
    b.kill9();
    wait("A leaves B out", &a, || status(&a, "ok")["replicas"] == 1);
    let (a_ok, a_down) = (
        own_count(&a, "delivered", "ok"),
        own_count(&a, "failed", "down"),
    );
    let ok = status(&a, "ok");
    assert_eq!(ok["events"]["delivered"], a_ok, "{ok}");
    assert!(a_ok < received, "B's share is gone: {ok}");
    assert_eq!(minutes_sum(&ok, "delivered"), a_ok, "{ok}");
    let failing = status(&a, "down");
    assert_eq!(failing["replicas"], 1, "{failing}");
    assert_eq!(failing["events"]["failed"], a_down, "{failing}");
    let left: u64 = admin(&a, path)["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["events"].as_u64().unwrap())
        .sum();
    assert_eq!(left, a_down, "only A's failures are listed");
    assert!(left < EVENTS as u64);
    // A left B out by its heartbeat's age: B's rows are still in the topic.
    let rows = status_topic(&brokers);
    assert_eq!(
        rows_of(&rows, "replica-b").len(),
        4,
        "B's heartbeat and its 3 destinations: {:?}",
        rows.keys()
    );

    // A row is written when it changes, not every interval: proj_b's destination never had
    // an event, so A wrote its row once (its heartbeat every second).
    let idle = r#"destination/replica-a/["proj_b","b-hook"]"#;
    assert_eq!(records_under(&brokers, idle), 1);

    // Housekeeping: ten replica_timeouts after B's last heartbeat, A removes B's rows.
    wait("A removes B's rows from the topic", &a, || {
        rows_of(&status_topic(&brokers), "replica-b").is_empty()
    });
    assert_eq!(status(&a, "ok")["events"]["delivered"], a_ok);

    // A clean stop withdraws A's rows.
    let mut a = a;
    assert_eq!(rows_of(&status_topic(&brokers), "replica-a").len(), 4);
    assert!(a.terminate(Duration::from_secs(60)).success());
    let rows = status_topic(&brokers);
    assert_eq!(
        rows_of(&rows, "replica-a"),
        Vec::<String>::new(),
        "{:?}",
        rows.keys()
    );
    assert!(
        rows.contains_key("replica/replica-a"),
        "A's heartbeat was written, then deleted"
    );
}
