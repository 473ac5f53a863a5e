//! Webhook body templates and presets: each preset against a fake that enforces its service's
//! documented request format (`tests/common/fakes/presets.rs`), through the `Sink` trait and
//! end to end through the binary and tansu; a template that fails to render for one event
//! (exactly that event's failure event); syntax errors in `validate`;
//! the rendered body in `courier test-destination`; `courier template show`.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::Duration;

use common::fakes::presets::{FakeService, Service};
use common::*;
use courier::config::{DeliveryConfig, SecurityConfig};
use courier::event::Event;
use courier::sinks::webhook::{WebhookConfig, WebhookSink};
use courier::sinks::{Outcome, Sink};
use serde_json::{json, Value};

const TOPIC: &str = "event-logs";
const FAILURES: &str = "courier-failures";
/// A PagerDuty routing key: 32 characters.
const ROUTING_KEY: &str = "R0ut1ngKeyR0ut1ngKeyR0ut1ngKey32";
const NR_KEY: &str = "NRAK-TESTKEY0123456789";

fn events(specs: &[(&str, &str, &str)]) -> Vec<Value> {
    specs
        .iter()
        .map(|(id, level, message)| {
            let mut e = event_log("proj", id);
            e["level"] = json!(level);
            e["message"] = json!(message);
            e
        })
        .collect()
}

fn as_events(values: &[Value]) -> Vec<Event> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| courier::event::test_event(v.to_string().into_bytes(), 0, i as i64))
        .collect()
}

fn sink(table: Value) -> WebhookSink {
    let config: WebhookConfig = serde_json::from_value(table).expect("config");
    config.validate().expect("valid config");
    WebhookSink::new(
        &config,
        &DeliveryConfig::default(),
        &SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap(),
    )
    .expect("sink")
    .named("proj", "dest")
}

fn deliver(sink: &WebhookSink, events: &[Event]) -> Outcome {
    let (batch, refused) = sink.encode_checked(events).expect("encode");
    assert!(refused.is_empty(), "{refused:?}");
    rt().block_on(sink.send(events, &batch))
}

/// Every preset, through the sink, against its service's fake: one event and a batch.
#[test]
fn every_preset_is_accepted_by_its_services_fake() {
    let long = "é".repeat(5000);
    let sample = events(&[
        ("e-1", "ERROR", "sync failed: <token> & more"),
        ("e-2", "WARN", &long),
        ("e-3", "INFO", "ok"),
    ]);
    let cases = [
        ("slack", Service::Slack, json!({})),
        ("teams", Service::Teams, json!({})),
        (
            "newrelic",
            Service::NewRelic {
                api_key: NR_KEY.into(),
            },
            json!({"headers": {"Api-Key": NR_KEY}}),
        ),
        (
            "pagerduty",
            Service::PagerDuty,
            json!({"template_secret": ROUTING_KEY}),
        ),
    ];
    for (preset, service, extra) in cases {
        let fake = FakeService::start(service);
        let mut table = json!({"url": fake.url(), "preset": preset});
        for (k, v) in extra.as_object().unwrap() {
            table[k] = v.clone();
        }
        let sink = sink(table);
        let batches: Vec<Vec<Value>> = if preset == "pagerduty" {
            sample.iter().map(|e| vec![e.clone()]).collect()
        } else {
            vec![sample[..1].to_vec(), sample.clone()]
        };
        for batch in &batches {
            let outcome = deliver(&sink, &as_events(batch));
            assert_eq!(
                outcome,
                Outcome::Delivered,
                "{preset}: {:?}",
                fake.violations()
            );
        }
        assert!(
            fake.violations().is_empty(),
            "{preset}: {:?}",
            fake.violations()
        );
        assert_eq!(fake.accepted().len(), batches.len(), "{preset}");
    }
}

/// The fakes do enforce: a body that breaks the format is refused (so a preset that
/// passes, passes for its format).
#[test]
fn the_fakes_refuse_what_their_services_refuse() {
    let slack = FakeService::start(Service::Slack);
    let template = r#"{"text": "x", "blocks": [{% for i in range(51) %}{"type": "divider"}{% if not loop.last %},{% endif %}{% endfor %}]}"#;
    let outcome = deliver(
        &sink(json!({"url": slack.url(), "template": template})),
        &as_events(&events(&[("e-1", "ERROR", "m")])),
    );
    assert!(matches!(outcome, Outcome::Rejected { .. }), "{outcome:?}");
    assert!(
        slack.violations()[0].contains("51 blocks"),
        "{:?}",
        slack.violations()
    );
    let pd = FakeService::start(Service::PagerDuty);
    let outcome = deliver(
        &sink(json!({"url": pd.url(), "preset": "pagerduty", "template_secret": "short"})),
        &as_events(&events(&[("e-1", "ERROR", "m")])),
    );
    assert!(matches!(outcome, Outcome::Rejected { .. }), "{outcome:?}");
    assert!(
        pd.violations()[0].contains("routing_key"),
        "{:?}",
        pd.violations()
    );
    let nr = FakeService::start(Service::NewRelic {
        api_key: NR_KEY.into(),
    });
    let outcome = deliver(
        &sink(json!({"url": nr.url(), "preset": "newrelic", "headers": {"Api-Key": "wrong"}})),
        &as_events(&events(&[("e-1", "ERROR", "m")])),
    );
    assert!(matches!(outcome, Outcome::Rejected { .. }), "{outcome:?}");
}

fn failure_events(brokers: &str) -> Vec<Value> {
    read_all(brokers, FAILURES, Duration::from_secs(2))
        .into_iter()
        .map(|(_, _, b)| serde_json::from_slice(&b).expect("failure events are JSON"))
        .collect()
}

fn preset_toml(project: &str, id: &str, url: &str, extra: &str) -> String {
    format!(
        "[[destinations]]\nproject = {}\nid = {}\ntype = \"webhook\"\nurl = {}\n{extra}\n",
        toml_str(project),
        toml_str(id),
        toml_str(url)
    )
}

/// Broker: tansu. Through the binary: a Slack preset gets one message per event; a PagerDuty
/// preset gets one trigger per ERROR event (its default filter), deduplicated by the event id
/// and carrying the routing key; a custom template that fails to render for one event (a
/// timestamp that is not a time) delivers the others and reports exactly that event in one
/// failure event.
#[test]
fn presets_and_a_failing_template_end_to_end() {
    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), TOPIC, 1);
    create_topic(&tansu.brokers(), FAILURES, 1);
    let slack = FakeService::start(Service::Slack);
    let pagerduty = FakeService::start(Service::PagerDuty);
    let custom = FakeService::start(Service::Slack);
    let template = r#"{"text": {{ events|map(attribute="id")|join(",")|tojson }}, "ms": [{% for e in events %}{{ e.timestamp|epoch_ms }}{% if not loop.last %},{% endif %}{% endfor %}]}"#;
    let cfg = CourierConfig::new(&tansu.brokers())
        .destination(preset_toml(
            "p_slack",
            "slack",
            &slack.url(),
            "preset = \"slack\"",
        ))
        .destination(preset_toml(
            "p_pd",
            "pd",
            &pagerduty.url(),
            &format!(
                "preset = \"pagerduty\"\ntemplate_secret = {}",
                toml_str(ROUTING_KEY)
            ),
        ))
        .destination(preset_toml(
            "p_tpl",
            "custom",
            &custom.url(),
            &format!("template = {}", toml_str(template)),
        ));
    let mut produced = Vec::new();
    for i in 0..6 {
        let mut e = event_log("p_slack", &format!("s-{i}"));
        e["message"] = json!(format!("slack <{i}> & co"));
        produced.push(e);
        let mut e = event_log("p_pd", &format!("pd-{i}"));
        e["level"] = json!(if i % 2 == 0 { "ERROR" } else { "INFO" });
        produced.push(e);
        let mut e = event_log("p_tpl", &format!("t-{i}"));
        if i == 3 {
            e["timestamp"] = json!("not a time");
        }
        produced.push(e);
    }
    produce(
        &tansu.brokers(),
        TOPIC,
        produced
            .iter()
            .map(|e| (Some(0), e.to_string().into_bytes())),
    );
    let courier = Courier::start_ready(&cfg);
    wait_explained(
        "every destination to get its events",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            slack.accepted().len() == 6
                && pagerduty.accepted().len() == 3
                && custom
                    .accepted()
                    .iter()
                    .map(|b| b["ms"].as_array().unwrap().len())
                    .sum::<usize>()
                    == 5
        },
        || courier.log_tail(),
    );
    for fake in [&slack, &pagerduty, &custom] {
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    }
    // Slack: one message per event, mrkdwn escaped.
    let texts: BTreeSet<String> = slack
        .accepted()
        .iter()
        .map(|b| b["blocks"][0]["text"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        texts.contains("*INFO* APP_EVENT 2026-01-01T00:00:00Z\nslack &lt;3&gt; &amp; co"),
        "{texts:?}"
    );
    assert_eq!(texts.len(), 6);
    // PagerDuty: ERROR events only, dedup_key = event id, routing key from the secret.
    let dedup: BTreeSet<String> = pagerduty
        .accepted()
        .iter()
        .map(|b| {
            assert_eq!(b["routing_key"], ROUTING_KEY);
            assert_eq!(b["event_action"], "trigger");
            assert_eq!(b["payload"]["severity"], "error");
            b["dedup_key"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(dedup, ["pd-0", "pd-2", "pd-4"].map(String::from).into());
    // The custom template: every event but t-3 delivered; t-3 in exactly one failure event.
    let delivered: BTreeSet<String> = custom
        .accepted()
        .iter()
        .flat_map(|b| {
            b["text"]
                .as_str()
                .unwrap()
                .split(',')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        delivered,
        ["t-0", "t-1", "t-2", "t-4", "t-5"].map(String::from).into()
    );
    let mut reports = Vec::new();
    wait_explained(
        "the failure event of t-3",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            reports = failure_events(&tansu.brokers());
            !reports.is_empty()
        },
        || courier.log_tail(),
    );
    let about: Vec<&Value> = reports
        .iter()
        .filter(|e| e["payload"]["eventIds"].is_array())
        .collect();
    assert_eq!(about.len(), 1, "{reports:#?}");
    assert_eq!(about[0]["destinationId"], "custom");
    assert_eq!(about[0]["payload"]["eventIds"], json!(["t-3"]));
    let error = about[0]["error"].to_string();
    assert!(error.contains("not a time"), "{error}");
    assert!(
        !courier.log_tail().contains(ROUTING_KEY),
        "the routing key is never logged"
    );
    assert!(
        !reports.iter().any(|r| r.to_string().contains(ROUTING_KEY)),
        "the routing key is never in a failure event"
    );
}

/// Broker: tansu. Through the binary: a Teams preset gets one Adaptive Card message per event of
/// its project (the event's message and level in the card); a New Relic preset gets its
/// project's events as logs (epoch-millisecond timestamps, the event as attributes) with the
/// `Api-Key` header from a `${VAR}` secret; an event of a third project reaches neither. Each
/// fake enforces its service's format, so a broken preset fails here.
#[test]
fn teams_and_newrelic_presets_end_to_end() {
    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), TOPIC, 1);
    create_topic(&tansu.brokers(), FAILURES, 1);
    let teams = FakeService::start(Service::Teams);
    let newrelic = FakeService::start(Service::NewRelic {
        api_key: NR_KEY.into(),
    });
    let mut cfg = CourierConfig::new(&tansu.brokers())
        .destination(preset_toml(
            "p_teams",
            "teams",
            &teams.url(),
            "preset = \"teams\"",
        ))
        .destination(preset_toml(
            "p_nr",
            "nr",
            &newrelic.url(),
            "preset = \"newrelic\"\nheaders = { \"Api-Key\" = \"${COURIER_TEST_NR_KEY}\" }",
        ));
    cfg.env.push(("COURIER_TEST_NR_KEY".into(), NR_KEY.into()));
    let mut produced = Vec::new();
    for i in 0..5 {
        let mut e = event_log("p_teams", &format!("tm-{i}"));
        e["message"] = json!(format!("teams tm-{i} <&>"));
        e["level"] = json!(if i % 2 == 0 { "ERROR" } else { "WARN" });
        produced.push(e);
        let mut e = event_log("p_nr", &format!("nr-{i}"));
        e["message"] = json!(format!("new relic nr-{i}"));
        produced.push(e);
        produced.push(event_log("p_other", &format!("other-{i}")));
    }
    produce(
        &tansu.brokers(),
        TOPIC,
        produced
            .iter()
            .map(|e| (Some(0), e.to_string().into_bytes())),
    );
    let courier = Courier::start_ready(&cfg);
    let nr_logs = || -> Vec<Value> {
        newrelic
            .accepted()
            .iter()
            .flat_map(|b| b[0]["logs"].as_array().unwrap().clone())
            .collect()
    };
    wait_explained(
        "both fakes to get their project's events",
        Duration::from_secs(90),
        Duration::from_millis(200),
        || teams.accepted().len() >= 5 && nr_logs().len() >= 5,
        || {
            format!(
                "teams {:?}\nnewrelic {:?}\n{}",
                teams.violations(),
                newrelic.violations(),
                courier.log_tail()
            )
        },
    );
    for fake in [&teams, &newrelic] {
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    }
    // Teams: one message per event, exactly the project's events, each card showing the
    // event's message and level.
    let mut cards: Vec<(String, String)> = teams
        .accepted()
        .iter()
        .map(|b| {
            let body = &b["attachments"][0]["content"]["body"];
            assert_eq!(body[0]["text"], "1 event(s) in project p_teams", "{b}");
            assert_eq!(body[2]["facts"][0]["title"], "Level", "{b}");
            (
                body[1]["text"].as_str().unwrap().to_owned(),
                body[2]["facts"][0]["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    cards.sort();
    let expected: Vec<(String, String)> = (0..5)
        .map(|i| {
            let level = if i % 2 == 0 { "ERROR" } else { "WARN" };
            (format!("teams tm-{i} <&>"), level.to_owned())
        })
        .collect();
    assert_eq!(cards, expected);
    // New Relic: exactly the project's events, once each, as logs with the event attached.
    for b in newrelic.accepted() {
        assert_eq!(b[0]["common"]["attributes"]["courier.project"], "p_nr");
        assert_eq!(b[0]["common"]["attributes"]["courier.destination"], "nr");
    }
    let mut ids: Vec<String> = nr_logs()
        .iter()
        .map(|log| {
            assert_eq!(log["timestamp"], json!(1_767_225_600_000i64), "{log}");
            assert_eq!(
                log["message"],
                format!("new relic {}", log["attributes"]["id"].as_str().unwrap())
            );
            log["attributes"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, (0..5).map(|i| format!("nr-{i}")).collect::<Vec<_>>());
    assert!(
        !courier.log_tail().contains(NR_KEY),
        "the Api-Key is never logged"
    );
}

fn courier_cmd(args: &[&str], config: Option<&str>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_courier"));
    cmd.args(args);
    if let Some(text) = config {
        let path = dir.path().join("courier.toml");
        std::fs::write(&path, text).unwrap();
        cmd.arg("--config").arg(&path);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `courier validate` names the key and the line of a template's syntax error, and the
/// PagerDuty preset's missing routing key.
#[test]
fn validate_names_the_key_and_line_of_a_syntax_error() {
    let template = "{\n  \"text\": {{ event.message|tojson }},\n  \"oops\": {{ event.x }\n}";
    let cfg = CourierConfig::new("127.0.0.1:9")
        .destination(preset_toml(
            "p",
            "hook",
            "https://example.com/hook",
            &format!("template = {}", toml_str(template)),
        ))
        .destination(preset_toml(
            "p",
            "pd",
            "https://example.com/pd",
            "preset = \"pagerduty\"",
        ));
    let out = courier_cmd(&["validate"], Some(&cfg.to_toml("127.0.0.1:1")));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("destinations[0].template") && t.contains("line 3: syntax error"),
        "{t}"
    );
    assert!(t.contains("destinations[1].template_secret"), "{t}");
}

/// `courier test-destination` shows the rendered body, the routing key masked.
#[test]
fn test_destination_shows_the_rendered_body_without_the_secret() {
    let pd = FakeService::start(Service::PagerDuty);
    let cfg = CourierConfig::new("127.0.0.1:9").destination(preset_toml(
        "p",
        "pd",
        &pd.url(),
        &format!(
            "preset = \"pagerduty\"\ntemplate_secret = {}",
            toml_str(ROUTING_KEY)
        ),
    ));
    let out = courier_cmd(
        &["test-destination", "--project", "p", "--destination", "pd"],
        Some(&cfg.to_toml("127.0.0.1:1")),
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("body:\n{\"routing_key\": \"****"), "{t}");
    assert!(t.contains("\"event_action\": \"trigger\""), "{t}");
    assert!(!t.contains(ROUTING_KEY), "{t}");
    assert_eq!(pd.accepted().len(), 1);
    assert_eq!(pd.accepted()[0]["routing_key"], ROUTING_KEY);
}

/// `courier template show` prints a preset's template, which a user can start from.
#[test]
fn template_show_prints_a_preset() {
    let out = courier_cmd(&["template", "show", "slack"], None);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        shown,
        courier::sinks::webhook::presets::Preset::Slack.template()
    );
    let out = courier_cmd(&["template", "show", "hipchat"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("presets: slack, teams, newrelic, pagerduty"));
}

/// One API call with the admin token → (status, body as JSON or a string).
fn api(addr: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    api_call(
        addr,
        method,
        path,
        Some("admin-token-0123456789"),
        body.as_deref(),
    )
}

/// Broker: tansu. Through the Destinations API: a template's syntax error is a 422 naming
/// `/template` and the line; a PagerDuty preset's `template_secret` is write-only (masked
/// in answers) and its test shows the rendered body with the key masked, while the fake gets
/// the real key; the destination then delivers live events.
#[test]
fn the_api_validates_templates_and_keeps_the_template_secret_write_only() {
    use base64::Engine as _;
    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), TOPIC, 1);
    create_topic(&tansu.brokers(), FAILURES, 1);
    let pd = FakeService::start(Service::PagerDuty);
    let mut cfg = CourierConfig::new(&tansu.brokers());
    cfg.extra = "\n[api]\nencryption_key_env = \"COURIER_TEST_API_KEY\"\ntokens = [{ token = \"admin-token-0123456789\" }]\n".into();
    cfg.env.push((
        "COURIER_TEST_API_KEY".into(),
        base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
    ));
    let courier = Courier::start_ready(&cfg);
    let addr = courier.listen().to_owned();
    let base = "/v1/projects/proj_a/destinations";
    let mut answers = Vec::new();

    let bad = json!({"type": "webhook", "url": pd.url(),
        "template": "{\"a\": {{ event.message|tojson }},\n\"b\": {% if %}}"});
    let (s, body) = api(&addr, "PUT", &format!("{base}/pd"), Some(bad));
    assert_eq!(s, 422, "{body}");
    let details = body["error"]["details"].as_array().unwrap().clone();
    assert!(
        details.iter().any(|d| d["pointer"] == "/template"
            && d["message"]
                .as_str()
                .unwrap()
                .contains("line 2: syntax error")),
        "{body}"
    );

    let good = json!({"type": "webhook", "url": pd.url(), "preset": "pagerduty",
        "template_secret": ROUTING_KEY});
    let (s, body) = api(&addr, "PUT", &format!("{base}/pd"), Some(good));
    assert!((200..300).contains(&s), "{s} {body}");
    answers.push(body.to_string());
    let (s, body) = api(&addr, "GET", &format!("{base}/pd"), None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["template_secret"], "****ey32", "{body}");
    answers.push(body.to_string());
    let test = std::cell::RefCell::new(Value::Null);
    wait_explained(
        "the API destination to answer a test",
        Duration::from_secs(90),
        Duration::from_millis(300),
        || {
            let (s, body) = api(&addr, "POST", &format!("{base}/pd/test"), None);
            *test.borrow_mut() = body;
            s == 200
        },
        || format!("{}\n{}", test.borrow(), courier.log_tail()),
    );
    let test = test.into_inner();
    assert_eq!(test["outcome"], "delivered", "{test}");
    let shown = test["body"].as_str().unwrap();
    assert!(shown.contains("\"routing_key\": \"****\""), "{shown}");
    answers.push(test.to_string());
    assert_eq!(pd.accepted()[0]["routing_key"], ROUTING_KEY);
    // The test endpoint sends from the stored definition; the pipeline picks the destination
    // up when it reloads, which `running` in its status reports. An event produced before that
    // is routed without it.
    wait_explained(
        "the pipeline to run the API destination",
        Duration::from_secs(90),
        Duration::from_millis(200),
        || api(&addr, "GET", &format!("{base}/pd/status"), None).1["running"] == true,
        || courier.log_tail(),
    );

    let mut e = event_log("proj_a", "live-1");
    e["level"] = json!("ERROR");
    produce(
        &tansu.brokers(),
        TOPIC,
        [(Some(0), e.to_string().into_bytes())],
    );
    wait_explained(
        "the live event at PagerDuty",
        Duration::from_secs(90),
        Duration::from_millis(200),
        || pd.accepted().iter().any(|b| b["dedup_key"] == "live-1"),
        || courier.log_tail(),
    );
    assert!(pd.violations().is_empty(), "{:?}", pd.violations());
    for answer in &answers {
        assert!(!answer.contains(ROUTING_KEY), "{answer}");
    }
    assert!(!courier.log_tail().contains(ROUTING_KEY));
}

/// Broker: tansu. A parked batch is re-encoded by the retry worker: when the template (here
/// changed by a reload while the batch was parked) fails for one of its events, that event
/// alone gets a failure event and the others are delivered.
#[test]
fn a_parked_batch_that_fails_to_render_for_one_event_reports_only_that_event() {
    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), TOPIC, 1);
    create_topic(&tansu.brokers(), FAILURES, 1);
    let fake = FakeService::start(Service::Slack);
    fake.fail_with(Some(503));
    let ids = r#"{"text": {{ events|map(attribute="id")|join(",")|tojson }}"#;
    let config = |template: &str| {
        CourierConfig::new(&tansu.brokers())
            .delivery("retry_max_elapsed", "\"300ms\"")
            .delivery(
                "retry_schedule",
                &format!("[{}]", ["\"1s\""; 30].join(", ")),
            )
            .delivery("circuit_failure_threshold", "1000")
            .delivery("batch_timeout", "\"1s\"")
            .destination(preset_toml(
                "p_tpl",
                "custom",
                &fake.url(),
                &format!("template = {}", toml_str(template)),
            ))
    };
    let first = format!("{ids}}}");
    let courier = Courier::start_ready(&config(&first));
    let events: Vec<Value> = (0..6)
        .map(|i| {
            let mut e = event_log("p_tpl", &format!("t-{i}"));
            if i == 3 {
                e["timestamp"] = json!("not a time");
            }
            e
        })
        .collect();
    produce(
        &tansu.brokers(),
        TOPIC,
        events.iter().map(|e| (Some(0), e.to_string().into_bytes())),
    );
    // Parked, attempted by the retry worker and parked again: what follows is the retry
    // worker's work, not the lane's.
    wait_explained(
        "the batch to be parked twice",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            metric_sum(
                &courier.metrics(),
                "courier_parked_batches_total",
                &[("destination_type", "webhook")],
            )
            .unwrap_or(0.0)
                >= 2.0
        },
        || courier.log_tail(),
    );
    let second = format!(
        r#"{ids}, "ms": [{{% for e in events %}}{{{{ e.timestamp|epoch_ms }}}}{{% if not loop.last %}},{{% endif %}}{{% endfor %}}]}}"#
    );
    std::fs::write(
        courier.config_path(),
        config(&second).to_toml(courier.listen()),
    )
    .unwrap();
    wait_explained(
        "the reload",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            metric_sum(
                &courier.metrics(),
                "courier_config_reloads_total",
                &[("result", "success")],
            )
            .unwrap_or(0.0)
                >= 1.0
        },
        || courier.log_tail(),
    );
    fake.fail_with(None);
    let delivered = || -> BTreeSet<String> {
        fake.accepted()
            .iter()
            .flat_map(|b| {
                b["text"]
                    .as_str()
                    .unwrap()
                    .split(',')
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    wait_explained(
        "the parked events but t-3 delivered",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || delivered().len() == 5,
        || courier.log_tail(),
    );
    assert_eq!(
        delivered(),
        ["t-0", "t-1", "t-2", "t-4", "t-5"].map(String::from).into()
    );
    for body in fake.accepted() {
        assert!(
            body["ms"].is_array(),
            "rendered with the reloaded template: {body}"
        );
    }
    let mut reports = Vec::new();
    wait_explained(
        "the failure event of t-3",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            reports = failure_events(&tansu.brokers());
            reports.iter().any(|e| e["payload"]["eventIds"].is_array())
        },
        || courier.log_tail(),
    );
    let about: Vec<&Value> = reports
        .iter()
        .filter(|e| e["payload"]["eventIds"].is_array())
        .collect();
    assert_eq!(about.len(), 1, "{reports:#?}");
    assert_eq!(about[0]["payload"]["eventIds"], json!(["t-3"]));
    assert!(about[0]["error"].to_string().contains("not a time"));
}
