use super::*;

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
