use super::*;
use crate::routing::FilterConfig;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn errors(text: &str) -> Vec<String> {
    match parse("test.toml", text, &env(&[])) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str = r#"
[[destinations]]
project = "proj_a"
id = "hook-1"
type = "webhook"
url = "https://example.com/hook"
"#;

#[test]
fn defaults_follow_the_contract() {
    let c = parse("test.toml", MINIMAL, &env(&[])).unwrap();
    assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
    assert_eq!(c.kafka.topic, "event-logs");
    assert_eq!(c.kafka.group_id, "courier");
    assert_eq!(c.limits.max_event_bytes, 1_048_576);
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:9464");
    assert_eq!(c.delivery.batch_max_events, 1000);
    assert_eq!(c.delivery.batch_timeout, Duration::from_secs(1));
    assert_eq!(c.delivery.max_in_flight, 4);
    assert_eq!(c.delivery.request_timeout, Duration::from_secs(30));
    assert_eq!(c.delivery.retry_max_elapsed, Duration::from_secs(120));
    assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
    assert!(c.failures.topic.is_none());
    let d = &c.destinations[0];
    assert!(d.enabled);
    assert_eq!(d.delivery, c.delivery);
    assert_eq!(d.filter, FilterConfig::default());
}

#[test]
fn the_shipped_example_configs_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let e = env(&[
        ("HOOK_TOKEN", "t"),
        ("HOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("DEMO_BROKERS", "127.0.0.1:1"),
        ("DEMO_WEBHOOK", "http://127.0.0.1:2"),
        ("DEMO_SMTP_PORT", "2525"),
        ("NEW_RELIC_LICENSE_KEY", "nr-license-key"),
        ("SMTP_PASSWORD", "smtp-password"),
    ]);
    for name in ["courier.toml", "demo.toml"] {
        let path = Path::new(dir).join(name);
        if let Err(errors) = load_with_env(&path, &e) {
            panic!("{name}: {errors}");
        }
    }
}

#[test]
fn every_error_is_listed_with_file_and_key_path() {
    let text = r#"
bogus = 1
[kafka]
topic = ""
[delivery]
max_in_flight = 0
[[destinations]]
project = "p"
id = "a"
type = "webhook"
url = "not a url"
[destinations.filter]
min_level = "WARNING"
[[destinations]]
project = "p"
id = "b"
type = "carrier-pigeon"
[[destinations]]
project = "p"
id = "c"
type = "webhook"
url = "https://x"
color = "blue"
[destinations.delivery]
batch_timeout = "soon"
"#;
    let errs = errors(text);
    let expect = [
        "test.toml: bogus: unknown key",
        "test.toml: kafka.topic: must not be empty",
        "test.toml: delivery.max_in_flight: must be at least 1",
        "test.toml: destinations[0].filter.min_level: unknown level \"WARNING\"; expected DEBUG, INFO, WARN or ERROR",
        "test.toml: destinations[0].url: not a valid URL",
        "test.toml: destinations[1].type: unknown destination type \"carrier-pigeon\"",
        "test.toml: destinations[2].delivery.batch_timeout:",
        "test.toml: destinations[2].color: unknown field `color`",
    ];
    for e in expect {
        assert!(
            errs.iter().any(|got| got.starts_with(e)),
            "missing {e:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
}

#[test]
fn duplicate_destinations_are_refused() {
    let text = format!("{MINIMAL}{MINIMAL}");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0]
        .contains("destinations[1].id: duplicate destination \"hook-1\" in project \"proj_a\""));
    // the same id in another project is fine
    let other = MINIMAL.replace("proj_a", "proj_b");
    assert!(errors(&format!("{MINIMAL}{other}")).is_empty());
}

#[test]
fn interpolation_fills_secrets_and_names_missing_variables() {
    let text = r#"
[[destinations]]
project = "p"
id = "a"
type = "webhook"
url = "https://example.com/${PATH_PART}"
secret = "${HOOK_SECRET}"
headers = { Authorization = "Bearer ${TOKEN}", X-Literal = "$${NOT_A_VAR}" }
"#;
    let c = parse(
        "t.toml",
        text,
        &env(&[
            ("PATH_PART", "in"),
            ("HOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("TOKEN", "s3cr3t"),
        ]),
    )
    .unwrap();
    let SinkConfig::Webhook(w) = &c.destinations[0].sink else {
        panic!()
    };
    assert_eq!(w.url, "https://example.com/in");
    assert_eq!(w.headers["Authorization"].expose(), "Bearer s3cr3t");
    assert_eq!(w.headers["X-Literal"].expose(), "${NOT_A_VAR}");
    let printed = format!("{c:?}");
    assert!(
        !printed.contains("s3cr3t"),
        "secrets leak in Debug: {printed}"
    );
    assert!(
        !printed.contains("MfKQ9r8"),
        "secrets leak in Debug: {printed}"
    );

    let errs = match parse("t.toml", text, &env(&[("PATH_PART", "in")])) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("missing variables must be errors"),
    };
    assert!(
        errs.contains(
            "t.toml: destinations[0].secret: environment variable HOOK_SECRET is not set"
        ),
        "{errs}"
    );
    assert!(
        errs.contains(
            "destinations[0].headers.Authorization: environment variable TOKEN is not set"
        ),
        "{errs}"
    );
}

#[test]
fn environment_overrides_keys() {
    let text = r#"
[kafka]
brokers = "file:9092"
[kafka.options]
"fetch.wait.max.ms" = 5
"security.protocol" = "SASL_SSL"
"sasl.password" = "hunter2"
"#;
    let c = parse(
        "t.toml",
        text,
        &env(&[
            ("COURIER__KAFKA__BROKERS", "env:9092"),
            ("COURIER__DELIVERY__MAX_IN_FLIGHT", "9"),
            ("COURIER__LIMITS__MAX_EVENT_BYTES", "2048"),
        ]),
    )
    .unwrap();
    assert_eq!(c.kafka.brokers, "env:9092");
    assert_eq!(c.delivery.max_in_flight, 9);
    assert_eq!(c.limits.max_event_bytes, 2048);
    // dotted librdkafka keys survive as single keys, numbers become strings
    assert_eq!(c.kafka.options.0["fetch.wait.max.ms"], "5");
    assert_eq!(c.kafka.options.0["security.protocol"], "SASL_SSL");
    assert!(!format!("{:?}", c.kafka).contains("hunter2"));
}

#[test]
fn protected_kafka_options_are_refused() {
    let errs = errors("[kafka.options]\n\"enable.auto.commit\" = \"true\"\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("kafka.options.\"enable.auto.commit\": is set by courier"));
}

#[test]
fn destination_overrides_merge_with_defaults() {
    let text = format!(
        "[delivery]\nbatch_max_events = 50\n{MINIMAL}[destinations.delivery]\nmax_in_flight = 1\nretry_max_elapsed = \"5s\"\n"
    );
    let c = parse("t.toml", &text, &env(&[])).unwrap();
    let d = &c.destinations[0].delivery;
    assert_eq!(d.batch_max_events, 50);
    assert_eq!(d.max_in_flight, 1);
    assert_eq!(d.retry_max_elapsed, Duration::from_secs(5));
}

#[test]
fn unreadable_files_and_bad_toml_are_clear() {
    let e = load_with_env(Path::new("/nonexistent/courier.toml"), &env(&[])).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("/nonexistent/courier.toml: cannot read the file"));
    let errs = errors("[kafka\nbrokers=");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("test.toml: "), "{errs:?}");
}

#[test]
fn webhook_keys_are_checked() {
    let base = "[[destinations]]\nproject = \"p\"\nid = \"a\"\ntype = \"webhook\"\n";
    let bad_secret = format!("{base}url = \"https://x\"\nsecret = \"plain\"\n");
    assert!(errors(&bad_secret)[0].contains("destinations[0].secret: must be \"whsec_\""));
    let ftp = format!("{base}url = \"ftp://x\"\n");
    assert!(errors(&ftp)[0].contains("scheme must be http or https"));
    let reserved =
        format!("{base}url = \"https://x\"\nheaders = {{ Content-Type = \"text/plain\" }}\n");
    assert!(errors(&reserved)[0].contains("headers.Content-Type: is set by courier"));
    let format = format!("{base}url = \"https://x\"\nformat = \"xml\"\n");
    assert!(errors(&format)[0].contains("destinations[0].format: unknown variant `xml`"));
}

#[test]
fn the_parking_mode_is_auto_unless_set_to_one_of_three_words() {
    assert_eq!(
        parse("test.toml", MINIMAL, &env(&[]))
            .unwrap()
            .failures
            .parking,
        ParkingMode::Auto
    );
    for (word, mode) in [
        ("auto", ParkingMode::Auto),
        ("reference", ParkingMode::Reference),
        ("copy", ParkingMode::Copy),
    ] {
        let text = format!("[failures]\nparking = \"{word}\"\n{MINIMAL}");
        assert_eq!(
            parse("test.toml", &text, &env(&[]))
                .unwrap()
                .failures
                .parking,
            mode
        );
        assert_eq!(mode.as_str(), word);
    }
    let error = refused(
        &format!("[failures]\nparking = \"sometimes\"\n{MINIMAL}"),
        "failures.parking",
    );
    assert!(
        error.contains("unknown variant `sometimes`, expected one of `auto`, `reference`, `copy`"),
        "{error}"
    );
    let env_override = env(&[("COURIER__FAILURES__PARKING", "copy")]);
    assert_eq!(
        parse("test.toml", MINIMAL, &env_override)
            .unwrap()
            .failures
            .parking,
        ParkingMode::Copy
    );
}

/// `[[destinations]]` webhook table with `extra` lines appended (TOML).
fn hook_with(extra: &str) -> String {
    format!("{MINIMAL}{extra}\n")
}

/// The errors of a configuration whose only problem should be `key`, checked to name it.
fn refused(text: &str, key: &str) -> String {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{text}\n{errs:#?}");
    assert!(
        errs[0].starts_with(&format!("test.toml: {key}: ")),
        "{key}: {errs:?}"
    );
    errs[0].clone()
}

#[test]
fn every_delivery_setting_is_bounded_in_delivery_and_in_each_destination() {
    // (key, largest accepted value, smallest refused value), TOML literals.
    let cases = [
        ("batch_max_events", "1000000", "1000001"),
        ("batch_max_bytes", "1073741824", "1073741825"),
        ("batch_timeout", "\"1h\"", "\"3601s\""),
        ("max_in_flight", "256", "257"),
        ("request_timeout", "\"15m\"", "\"901s\""),
        ("retry_max_elapsed", "\"24h\"", "\"300000000000years\""),
        ("retry_initial_backoff", "\"1h\"", "\"3601s\""),
        ("retry_max_backoff", "\"1h\"", "\"3601s\""),
        ("queue_max_events", "1000000", "2305843009213693952"),
        ("circuit_failure_threshold", "10000", "10001"),
        ("probe_interval", "\"1h\"", "\"3601s\""),
        ("pause_after", "\"7days\"", "\"7days 1s\""),
    ];
    for (key, max, over) in cases {
        let set = |v: &str| {
            let extra = if key == "retry_initial_backoff" {
                format!("{key} = {v}\nretry_max_backoff = \"1h\"")
            } else {
                format!("{key} = {v}")
            };
            extra
        };
        assert_eq!(
            errors(&format!("[delivery]\n{}\n{MINIMAL}", set(max))),
            Vec::<String>::new(),
            "{key} = {max}"
        );
        let e = refused(
            &format!("[delivery]\n{}\n{MINIMAL}", set(over)),
            &format!("delivery.{key}"),
        );
        assert!(e.contains("must be at most"), "{e}");
        refused(
            &hook_with(&format!("[destinations.delivery]\n{}", set(over))),
            &format!("destinations[0].delivery.{key}"),
        );
    }
    // Lower bounds that keep the lanes and the retry worker sane.
    for (key, under) in [
        ("max_in_flight", "0"),
        ("queue_max_events", "0"),
        ("request_timeout", "\"0s\""),
        ("probe_interval", "\"10ms\""),
    ] {
        refused(
            &hook_with(&format!("[destinations.delivery]\n{key} = {under}")),
            &format!("destinations[0].delivery.{key}"),
        );
    }
    // retry_schedule: each entry and the length.
    let e = refused(
        &hook_with("[destinations.delivery]\nretry_schedule = [\"1m\", \"300000000000years\"]"),
        "destinations[0].delivery.retry_schedule[1]",
    );
    assert!(e.contains("must be at most 7days"), "{e}");
    refused(
        &hook_with("[destinations.delivery]\nretry_schedule = [\"0s\"]"),
        "destinations[0].delivery.retry_schedule[0]",
    );
    let long = vec!["\"1m\""; 33].join(", ");
    refused(
        &hook_with(&format!(
            "[destinations.delivery]\nretry_schedule = [{long}]"
        )),
        "destinations[0].delivery.retry_schedule",
    );
    let max = vec!["\"7days\""; 32].join(", ");
    assert!(errors(&hook_with(&format!(
        "[destinations.delivery]\nretry_schedule = [{max}]"
    )))
    .is_empty());
}

#[test]
fn process_settings_are_bounded() {
    for (text, key) in [
        ("shutdown_timeout = \"2h\"", "shutdown_timeout"),
        // A zero interval made tokio panic when the consumer started.
        ("[kafka]\ncommit_interval = \"0s\"", "kafka.commit_interval"),
        (
            "[kafka]\ncommit_interval = \"11m\"",
            "kafka.commit_interval",
        ),
        ("[kafka]\nrevoke_timeout = \"6m\"", "kafka.revoke_timeout"),
        ("[kafka]\ntopic = \"event/logs\"", "kafka.topic"),
        ("[kafka]\ngroup_id = \"\"", "kafka.group_id"),
        (
            "[failures]\nretry_topic_partitions = 0",
            "failures.retry_topic_partitions",
        ),
        (
            "[failures]\nretry_topic_partitions = 1025",
            "failures.retry_topic_partitions",
        ),
        ("[failures]\ntopic = \"a b\"", "failures.topic"),
        (
            "[limits]\nmax_event_bytes = 67108865",
            "limits.max_event_bytes",
        ),
        (
            "[limits]\nmax_in_flight_events = 10000001",
            "limits.max_in_flight_events",
        ),
        (
            "[limits]\nmax_in_flight_bytes = 68719476737",
            "limits.max_in_flight_bytes",
        ),
        (
            "[limits]\nmax_in_flight_bytes = 0",
            "limits.max_in_flight_bytes",
        ),
    ] {
        refused(text, key);
    }
    let c = parse(
        "t.toml",
        "shutdown_timeout = \"1h\"\n[kafka]\ncommit_interval = \"10m\"\nrevoke_timeout = \"5m\"\n[limits]\nmax_event_bytes = 67108864",
        &env(&[]),
    )
    .unwrap();
    assert_eq!(c.kafka.commit_interval, Duration::from_secs(600));
}

#[test]
fn destination_strings_and_lists_are_bounded() {
    let long = |n: usize| "x".repeat(n);
    refused(
        &MINIMAL.replace("proj_a", &long(257)),
        "destinations[0].project",
    );
    refused(&MINIMAL.replace("hook-1", &long(129)), "destinations[0].id");
    refused(
        &MINIMAL.replace("hook-1", "a\\u0007b"),
        "destinations[0].id",
    );
    let url = format!("https://example.com/{}", long(2048));
    refused(
        &MINIMAL.replace("https://example.com/hook", &url),
        "destinations[0].url",
    );
    let headers: Vec<String> = (0..33).map(|i| format!("X-H{i} = \"v\"")).collect();
    refused(
        &hook_with(&format!("headers = {{ {} }}", headers.join(", "))),
        "destinations[0].headers",
    );
    let e = refused(
        &hook_with(&format!("headers = {{ X-Big = \"{}\" }}", long(8193))),
        "destinations[0].headers.X-Big",
    );
    assert!(!e.contains("xxxx"), "the value is not shown: {e}");
    let types: Vec<String> = (0..1001).map(|i| format!("\"t{i}\"")).collect();
    refused(
        &hook_with(&format!(
            "[destinations.filter]\ntypes = [{}]",
            types.join(", ")
        )),
        "destinations[0].filter.types",
    );
    refused(
        &hook_with(&format!(
            "[destinations.filter]\nsearch = \"{}\"",
            long(1025)
        )),
        "destinations[0].filter.search",
    );
    refused(
        &hook_with(&format!(
            "[destinations.filter]\nevent_names = [\"ok\", \"{}\"]",
            long(1025)
        )),
        "destinations[0].filter.event_names[1]",
    );
}

#[test]
fn sink_settings_are_bounded() {
    let splunk = "[[destinations]]\nproject = \"p\"\nid = \"s\"\ntype = \"splunk_hec\"\nendpoint = \"https://splunk.example:8088\"\ntoken = \"t\"\n";
    refused(
        &format!("{splunk}ack_timeout = \"300000000000years\""),
        "destinations[0].ack_timeout",
    );
    refused(
        &format!("{splunk}max_request_bytes = 67108865"),
        "destinations[0].max_request_bytes",
    );
    assert!(errors(&format!(
        "{splunk}ack_timeout = \"1h\"\nmax_request_bytes = 67108864"
    ))
    .is_empty());
    let s3 = "[[destinations]]\nproject = \"p\"\nid = \"a\"\ntype = \"s3\"\nbucket = \"archive\"\n";
    refused(
        &format!("{s3}multipart_threshold = 5368709121"),
        "destinations[0].multipart_threshold",
    );
    refused(
        &format!("{s3}multipart_part_size = 5368709121"),
        "destinations[0].multipart_part_size",
    );
    refused(
        &format!("{s3}prefix = \"{}\"", "p".repeat(513)),
        "destinations[0].prefix",
    );
    let dd = "[[destinations]]\nproject = \"p\"\nid = \"d\"\ntype = \"datadog\"\napi_key = \"k\"\n";
    let tags: Vec<String> = (0..101).map(|i| format!("\"t:{i}\"")).collect();
    refused(
        &format!("{dd}tags = [{}]", tags.join(", ")),
        "destinations[0].tags",
    );
    refused(
        &format!("{dd}service = \"{}\"", "s".repeat(257)),
        "destinations[0].service",
    );
}

#[test]
fn an_api_definition_over_a_bound_is_refused_with_its_pointer() {
    let defaults = DeliveryConfig::default();
    let security = SecurityConfig::default();
    let hook = |delivery: Value| {
        serde_json::json!({
            "project": "p", "id": "d", "type": "webhook", "url": "https://example.com/h",
            "delivery": delivery,
        })
    };
    for (delivery, pointer) in [
        (
            serde_json::json!({"queue_max_events": 2_305_843_009_213_693_952_u64}),
            "/delivery/queue_max_events",
        ),
        (
            serde_json::json!({"max_in_flight": 2_305_843_009_213_693_952_u64}),
            "/delivery/max_in_flight",
        ),
        (
            serde_json::json!({"retry_max_elapsed": "300000000000years"}),
            "/delivery/retry_max_elapsed",
        ),
        (
            serde_json::json!({"retry_schedule": ["1m", "300000000000years"]}),
            "/delivery/retry_schedule/1",
        ),
        (
            serde_json::json!({"batch_timeout": "300000000000years"}),
            "/delivery/batch_timeout",
        ),
    ] {
        let errors = parse_destination(hook(delivery), &defaults, &security).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pointers, [pointer], "{errors:?}");
    }
    assert!(parse_destination(
        hook(serde_json::json!({"max_in_flight": 256})),
        &defaults,
        &security
    )
    .is_ok());
}

#[test]
fn a_type_error_does_not_hide_the_other_errors() {
    // The issue's example: an unknown format and a URL the SSRF guard refuses.
    let text = "[[destinations]]\nproject = \"p\"\nid = \"a\"\ntype = \"webhook\"\nurl = \"http://169.254.169.254/latest\"\nformat = \"xml\"\n";
    let errs = errors(text);
    assert!(
        errs.iter()
            .any(|e| e.contains("destinations[0].format: unknown variant `xml`")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("destinations[0].url: ") && e.contains("metadata")),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    let definition = serde_json::json!({
        "project": "p", "id": "a", "type": "webhook",
        "url": "http://169.254.169.254/latest", "format": "xml",
    });
    let api = parse_destination(
        definition,
        &DeliveryConfig::default(),
        &SecurityConfig::default(),
    )
    .unwrap_err();
    let pointers: Vec<&str> = api.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(pointers, ["/format", "/url"], "{api:?}");

    // Several type errors, a validation error and a refused address, all at once.
    let text = "[[destinations]]\nproject = \"p\"\nid = \"a\"\ntype = \"webhook\"\nurl = \"http://10.0.0.1/\"\nformat = \"xml\"\ncompression = \"zstd\"\nheaders = { Host = \"x\" }\nbogus = 1\n[destinations.delivery]\nmax_in_flight = \"many\"\nqueue_max_events = 0\n[destinations.filter]\nmin_level = \"LOUD\"\nsearch = \"\"\n";
    let errs = errors(text);
    for key in [
        "format",
        "compression",
        "headers.Host",
        "bogus",
        "url",
        "delivery.max_in_flight",
        "delivery.queue_max_events",
        "filter.min_level",
        "filter.search",
    ] {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("test.toml: destinations[0].{key}: "))),
            "{key} missing from {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 9, "{errs:#?}");

    // A required key unusable: the raw URL is still checked, and no "missing field" is added.
    let text = "[[destinations]]\nproject = \"p\"\nid = \"s\"\ntype = \"splunk_hec\"\nendpoint = \"https://127.0.0.1:8088\"\ntoken = 5\n";
    let errs = errors(text);
    assert!(
        errs.iter()
            .any(|e| e.contains("destinations[0].token: invalid type")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("destinations[0].endpoint: ") && e.contains("loopback")),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    let text = "[[destinations]]\nproject = \"p\"\nid = \"d\"\ntype = \"datadog\"\nendpoint = \"ftp://x\"\n";
    let errs = errors(text);
    assert!(
        errs.iter().any(|e| e.contains("missing field `api_key`")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("destinations[0].endpoint: scheme must be http or https")),
        "{errs:#?}"
    );
}

#[test]
fn api_definitions_never_open_host_files() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let existing = dir.path().join("ca.pem");
    std::fs::write(&existing, "not a certificate").unwrap();
    let answers: Vec<Vec<(String, String)>> = [
        fifo.as_path(),
        Path::new("/dev/zero"),
        existing.as_path(),
        Path::new("/nonexistent/ca.pem"),
    ]
    .iter()
    .map(|path| {
        let definition = serde_json::json!({
            "project": "p", "id": "s", "type": "splunk_hec",
            "endpoint": "https://splunk.example:8088", "token": "t",
            "tls": { "ca_file": path },
        });
        // Opening the FIFO for reading would block this thread for good (no writer comes),
        // reading /dev/zero would not end: the answer arriving at all shows neither happened.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = parse_destination(
                definition,
                &DeliveryConfig::default(),
                &SecurityConfig::default(),
            );
            let _ = tx.send(r.err().unwrap_or_default());
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "parsing an API definition naming {} did not return",
                    path.display()
                )
            })
    })
    .collect();
    assert_eq!(
        answers[0],
        [(
            "/tls/ca_file".to_owned(),
            "names a file on the courier host; not accepted through the API".to_owned()
        )]
    );
    // The same answer whatever the path is: it tells nothing about the host.
    for a in &answers[1..] {
        assert_eq!(a, &answers[0]);
    }
    // A FIFO's write end opens (non-blocking) only while a reader has it open: none has.
    use std::os::unix::fs::OpenOptionsExt as _;
    let writer = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(0o4000)
        .open(&fifo);
    assert_eq!(
        writer.unwrap_err().raw_os_error(),
        Some(6),
        "ENXIO: nobody opened the FIFO"
    );
    // `file` destinations are refused before their table is read.
    let errors = parse_destination(
        serde_json::json!({"project": "p", "id": "f", "type": "file", "path": "/etc/passwd"}),
        &DeliveryConfig::default(),
        &SecurityConfig::default(),
    )
    .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "/type");
}

#[test]
fn the_file_reads_a_ca_file_only_when_it_is_a_small_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let big = dir.path().join("big.pem");
    std::fs::write(&big, vec![b'a'; 1024 * 1024 + 1]).unwrap();
    let splunk = |path: &Path| {
        format!(
            "[[destinations]]\nproject = \"p\"\nid = \"s\"\ntype = \"splunk_hec\"\nendpoint = \"https://splunk.example:8088\"\ntoken = \"t\"\n[destinations.tls]\nca_file = \"{}\"\n",
            path.display()
        )
    };
    for (path, expect) in [
        (fifo.as_path(), "is not a regular file"),
        (Path::new("/dev/zero"), "is not a regular file"),
        (dir.path(), "is not a regular file"),
        (big.as_path(), "is larger than 1048576 bytes"),
    ] {
        let e = refused(&splunk(path), "destinations[0].tls.ca_file");
        assert!(e.contains(expect), "{}: {e}", path.display());
    }
}

mod fuzz {
    //! The API's definition parser on arbitrary definitions: never a panic, and whatever it
    //! accepts is within the bounds.

    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    use super::*;

    /// Keys of every destination type, common ones and nested tables included, so that the
    /// generated tables reach the checks rather than stopping at "unknown field".
    const KEYS: &[&str] = &[
        "type",
        "url",
        "secret",
        "headers",
        "format",
        "compression",
        "api_key",
        "site",
        "endpoint",
        "service",
        "source",
        "hostname",
        "tags",
        "token",
        "index",
        "sourcetype",
        "host",
        "ack",
        "ack_timeout",
        "max_request_bytes",
        "tls",
        "ca_file",
        "insecure_skip_verify",
        "bucket",
        "region",
        "force_path_style",
        "prefix",
        "key_template",
        "access_key_id",
        "secret_access_key",
        "session_token",
        "server_side_encryption",
        "kms_key_id",
        "multipart_threshold",
        "multipart_part_size",
        "filter",
        "min_level",
        "levels",
        "types",
        "search",
        "since",
        "until",
        "delivery",
        "batch_max_events",
        "batch_max_bytes",
        "batch_timeout",
        "max_in_flight",
        "request_timeout",
        "retry_max_elapsed",
        "retry_initial_backoff",
        "retry_max_backoff",
        "queue_max_events",
        "retry_schedule",
        "circuit_failure_threshold",
        "probe_interval",
        "pause_after",
        "enabled",
        "path",
        "logs_path",
        "encoding",
        "service_name",
        "port",
        "tls_mode",
        "tls_ca_file",
        "username",
        "password",
        "from",
        "to",
        "min_interval",
        "max_message_bytes",
        "resource_attributes",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            prop::sample::select(vec![
                "webhook",
                "datadog",
                "splunk_hec",
                "otlp",
                "email",
                "s3",
                "file",
                "https://example.com/h",
                "ops@example.com",
                "starttls",
                "587",
                "/v1/logs",
                "json",
                "http://127.0.0.1/",
                "http://169.254.169.254/",
                "1s",
                "0s",
                "7days",
                "300000000000years",
                "18446744073709551615s",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "gzip",
                "ndjson",
                "INFO",
                "/dev/zero",
                "aws:kms",
                "",
                "****abcd",
            ])
            .prop_map(Value::from),
            ".{0,40}".prop_map(Value::from),
        ]
    }

    fn definition() -> impl Strategy<Value = Value> {
        let value = leaf().prop_recursive(3, 48, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(
                    |pairs| {
                        Value::Object(
                            pairs
                                .into_iter()
                                .map(|(k, v)| (k.to_owned(), v))
                                .collect::<Map<_, _>>(),
                        )
                    }
                ),
            ]
        });
        (
            prop::sample::select(vec![
                "webhook",
                "datadog",
                "splunk_hec",
                "otlp",
                "email",
                "s3",
                "file",
            ]),
            prop::collection::vec((prop::sample::select(KEYS), value), 0..12),
        )
            .prop_map(|(kind, pairs)| {
                let mut map: Map<String, Value> =
                    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                map.entry("type").or_insert_with(|| json!(kind));
                map.insert("project".into(), json!("p"));
                map.insert("id".into(), json!("d"));
                Value::Object(map)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_definitions_never_panic(definition in definition()) {
            let defaults = DeliveryConfig::default();
            let security = SecurityConfig::default();
            if let Ok(d) = parse_destination(definition, &defaults, &security) {
                let q = &d.delivery;
                prop_assert!(bounds::size(q.queue_max_events, bounds::QUEUE_MAX_EVENTS).is_ok());
                prop_assert!(bounds::size(q.max_in_flight, bounds::MAX_IN_FLIGHT).is_ok());
                prop_assert!(bounds::duration(q.retry_max_elapsed, bounds::RETRY_MAX_ELAPSED).is_ok());
                prop_assert!(!matches!(d.sink, SinkConfig::File(_)));
            }
        }
    }
}

mod datadog;
mod email;
mod otlp;
mod s3;
mod security;
mod shaping;
mod splunk;
