//! The `s3` sink against a real S3-compatible server in its own process: `moto_server`
//! (`pip install 'moto[server]'`, installed by `scripts/install-deps`), one per test, on a free
//! loopback port (`tests/common/moto.rs`). Buckets are created and objects read back with an
//! independent client (plain HTTP: moto checks no signature unless started in its IAM mode,
//! where only the setup's first requests go unauthenticated). The sink is driven through the
//! `Sink` trait, and once end to end: the compiled binary reading a tansu broker and writing
//! to moto.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use courier::config::{DestinationConfig, SecurityConfig, SinkConfig};
use courier::event::Event;
use courier::sinks::s3::{S3Config, S3Sink};
use courier::sinks::{ErrorKind, Outcome, RejectScope, Sink};

use common::moto::{between, client, create_bucket, get, gunzip, list, placeholder_auth, Moto};
use common::{free_port, sink_event};

const TOPIC: &str = "event-logs";
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Destinations and events
// ---------------------------------------------------------------------------------------------

/// An `s3` destination of project `proj_a` on `moto`, with static keys (moto outside IAM mode
/// accepts any) unless the keys say otherwise.
fn destination(moto: &Moto, bucket: &str, extra: &str) -> DestinationConfig {
    let keys = if extra.contains("access_key_id") {
        String::new()
    } else {
        "access_key_id = \"AKIATEST\"\nsecret_access_key = \"test-secret\"\n".to_owned()
    };
    // moto listens on 127.0.0.1: allow loopback past the SSRF guard's endpoint check.
    let text = format!(
        "[security]\nallow_networks = [\"127.0.0.0/8\"]\n\
         [[destinations]]\nproject = \"proj_a\"\nid = \"archive\"\ntype = \"s3\"\n\
         bucket = \"{bucket}\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\nforce_path_style = true\n\
         {keys}{extra}\n",
        moto.endpoint()
    );
    let config = courier::config::parse("test.toml", &text, &BTreeMap::new())
        .unwrap_or_else(|e| panic!("{e}"));
    (*config.destinations[0]).clone()
}

fn s3_config(d: &DestinationConfig) -> &S3Config {
    match &d.sink {
        SinkConfig::S3(c) => c,
        other => panic!("{other:?}"),
    }
}

/// The `[security]` of the tests' configurations: moto listens on loopback.
fn loopback() -> SecurityConfig {
    SecurityConfig::allowing(&["127.0.0.0/8"]).unwrap()
}

fn build_sink(d: &DestinationConfig) -> S3Sink {
    S3Sink::new(d, s3_config(d), TOPIC, &loopback()).unwrap()
}

/// An event of `proj_a` at `timestamp` (the time that decides an object's key), read at
/// `offset` of `partition`.
fn event(partition: i32, offset: i64, timestamp: &str) -> Event {
    let raw = format!(
        r#"{{"id":"ev-{partition}-{offset}","timestamp":"{timestamp}","level":"INFO","type":"APP_EVENT","message":"event {offset}","projectId":"proj_a","payload":{{"n":{offset}}}}}"#
    );
    sink_event(raw, partition, offset)
}

async fn deliver(sink: &dyn Sink, events: &[Event]) -> Outcome {
    let batch = sink.encode(events).unwrap();
    sink.send(events, &batch).await
}

fn ndjson_lines(body: &[u8]) -> Vec<String> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_hold_exactly_the_events_gzipped_under_documented_keys() {
    let moto = Moto::start();
    create_bucket(&moto, "archive").await;
    let d = destination(&moto, "archive", "prefix = \"/logs/courier/\"");
    let sink = build_sink(&d);
    let mut events: Vec<Event> = (100..150)
        .map(|o| event(3, o, "2026-06-01T11:15:00.250+02:00"))
        .collect();
    // A pretty-printed event travels compacted (one NDJSON line), and the first event's time
    // decides the date even when later events are in another hour.
    events.push(sink_event(
        "{\n  \"id\": \"ev-3-150\",\n  \"projectId\": \"proj_a\",\n  \"message\": \"two  spaces\"\n}",
        3,
        150,
    ));
    events.push(event(3, 152, "2026-06-01T23:59:00Z"));

    assert_eq!(deliver(&sink, &events).await, Outcome::Delivered);

    let key = "logs/courier/project=proj_a/dt=2026-06-01/hour=09/event-logs-3-100-152.ndjson.gz";
    let objects = list(&moto, "archive").await;
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(objects[0].0, key);
    let object = get(&moto, "archive", key).await;
    assert_eq!(object.headers["content-type"], "application/x-ndjson");
    assert_eq!(object.headers["content-encoding"], "gzip");
    let lines = ndjson_lines(&gunzip(&object.body));
    assert_eq!(lines.len(), events.len());
    for (line, e) in lines.iter().zip(&events) {
        if e.offset == 150 {
            assert_eq!(
                line,
                r#"{"id":"ev-3-150","projectId":"proj_a","message":"two  spaces"}"#
            );
        } else {
            assert_eq!(line.as_bytes(), &e.raw[..], "events travel unchanged");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncompressed_objects_and_custom_templates() {
    let moto = Moto::start();
    create_bucket(&moto, "plain").await;
    let d = destination(
        &moto,
        "plain",
        "compression = \"none\"\nkey_template = \"{destination}/{year}/{month}/{day}/{topic}/{partition}/{first_offset}-{last_offset}.{ext}\"",
    );
    let sink = build_sink(&d);
    let events: Vec<Event> = (7..10)
        .map(|o| event(0, o, "2026-12-31T22:00:00Z"))
        .collect();
    assert_eq!(deliver(&sink, &events).await, Outcome::Delivered);
    let key = "archive/2026/12/31/event-logs/0/7-9.ndjson";
    assert_eq!(
        list(&moto, "plain").await,
        vec![(key.to_owned(), {
            events.iter().map(|e| e.raw.len() + 1).sum::<usize>()
        })]
    );
    let object = get(&moto, "plain", key).await;
    assert!(object.headers.get("content-encoding").is_none());
    assert_eq!(
        ndjson_lines(&object.body),
        events
            .iter()
            .map(|e| String::from_utf8(e.raw.to_vec()).unwrap())
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_replays_write_the_same_key() {
    let moto = Moto::start();
    create_bucket(&moto, "replays").await;
    let d = destination(&moto, "replays", "");
    let events: Vec<Event> = (0..20)
        .map(|o| event(1, 1000 + o, "2026-03-04T05:06:07Z"))
        .collect();
    let first = build_sink(&d);
    let batch = first.encode(&events).unwrap();
    // The same encoded batch sent again (a retry)…
    assert_eq!(first.send(&events, &batch).await, Outcome::Delivered);
    assert_eq!(first.send(&events, &batch).await, Outcome::Delivered);
    // …and the same range read again by another process (a replay).
    let second = build_sink(&d);
    assert_eq!(deliver(&second, &events).await, Outcome::Delivered);
    let objects = list(&moto, "replays").await;
    assert_eq!(
        objects.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["project=proj_a/dt=2026-03-04/hour=05/event-logs-1-1000-1019.ndjson.gz"]
    );
    assert_eq!(batch.id, objects[0].0, "the batch id is the object key");
    let lines = ndjson_lines(&gunzip(&get(&moto, "replays", &objects[0].0).await.body));
    assert_eq!(lines.len(), 20, "overwritten, not appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_spanning_partitions_becomes_one_object_per_partition() {
    let moto = Moto::start();
    create_bucket(&moto, "partitions").await;
    let d = destination(&moto, "partitions", "");
    let sink = build_sink(&d);
    assert!(
        sink.batch_by_partition(),
        "the lane keeps one batch per partition"
    );
    let t = "2026-05-05T05:00:00Z";
    // Interleaved partitions (a batch the lane would not build for this sink).
    let events = vec![
        event(0, 10, t),
        event(2, 40, t),
        event(0, 11, t),
        event(2, 42, t),
        event(0, 15, t),
    ];
    assert_eq!(deliver(&sink, &events).await, Outcome::Delivered);
    let mut objects: Vec<String> = list(&moto, "partitions")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    objects.sort();
    let prefix = "project=proj_a/dt=2026-05-05/hour=05";
    assert_eq!(
        objects,
        [
            format!("{prefix}/event-logs-0-10-15.ndjson.gz"),
            format!("{prefix}/event-logs-2-40-42.ndjson.gz"),
        ]
    );
    for (key, partition) in [(&objects[0], 0), (&objects[1], 2)] {
        let lines = ndjson_lines(&gunzip(&get(&moto, "partitions", key).await.body));
        let expected: Vec<String> = events
            .iter()
            .filter(|e| e.partition == partition)
            .map(|e| String::from_utf8(e.raw.to_vec()).unwrap())
            .collect();
        assert_eq!(lines, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_above_the_threshold() {
    let moto = Moto::start();
    create_bucket(&moto, "big").await;
    // Uncompressed: about 11.5 MiB in 5 MiB parts (3 parts).
    let d = destination(
        &moto,
        "big",
        "compression = \"none\"\nmultipart_threshold = 1048576\nmultipart_part_size = 5242880",
    );
    let sink = build_sink(&d);
    let filler = "x".repeat(1000);
    let events: Vec<Event> = (0..12_000)
        .map(|o| {
            sink_event(
                format!(r#"{{"id":"big-{o}","timestamp":"2026-07-01T00:00:00Z","projectId":"proj_a","payload":"{filler}"}}"#),
                4,
                o,
            )
        })
        .collect();
    let size: usize = events.iter().map(|e| e.raw.len() + 1).sum();
    assert!(size > 10 * MIB, "{size}");
    let started = Instant::now();
    assert_eq!(deliver(&sink, &events).await, Outcome::Delivered);
    eprintln!(
        "multipart upload of {:.1} MiB to moto took {:?}",
        size as f64 / MIB as f64,
        started.elapsed()
    );
    let key = "project=proj_a/dt=2026-07-01/hour=00/event-logs-4-0-11999.ndjson";
    assert_eq!(list(&moto, "big").await, vec![(key.to_owned(), size)]);
    let object = get(&moto, "big", key).await;
    let etag = object.headers["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.ends_with("-3\""),
        "a 3-part multipart upload has an ETag ending in -3: {etag}"
    );
    assert_eq!(object.headers["content-type"], "application/x-ndjson");
    let mut expected = Vec::with_capacity(size);
    for e in &events {
        expected.extend_from_slice(&e.raw);
        expected.push(b'\n');
    }
    assert!(
        object.body == expected,
        "the object holds exactly the events"
    );

    // Gzipped bodies go up in parts the same way (one part here), with their metadata.
    create_bucket(&moto, "big-gz").await;
    let d = destination(&moto, "big-gz", "multipart_threshold = 1024");
    let gz_sink = build_sink(&d);
    assert_eq!(deliver(&gz_sink, &events[..2000]).await, Outcome::Delivered);
    let key = "project=proj_a/dt=2026-07-01/hour=00/event-logs-4-0-1999.ndjson.gz";
    let object = get(&moto, "big-gz", key).await;
    assert!(object.headers["etag"].to_str().unwrap().ends_with("-1\""));
    assert_eq!(object.headers["content-encoding"], "gzip");
    assert_eq!(ndjson_lines(&gunzip(&object.body)).len(), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_rejects_the_destination_naming_it() {
    let moto = Moto::start();
    let d = destination(&moto, "no-such-bucket", "");
    let sink = build_sink(&d);
    let events = vec![event(0, 1, "2026-01-01T00:00:00Z")];
    match deliver(&sink, &events).await {
        Outcome::Rejected {
            error,
            scope: RejectScope::Destination,
        } => {
            assert_eq!(error.http_status, Some(404));
            assert_eq!(error.kind, ErrorKind::HttpStatus);
            assert!(
                error.message.contains("\"no-such-bucket\""),
                "{}",
                error.message
            );
            assert!(
                error.message.contains("does not exist"),
                "{}",
                error.message
            );
            assert!(error.message.contains("NoSuchBucket"), "{}", error.message);
            assert!(!error.message.contains("test-secret"), "{}", error.message);
        }
        other => panic!("{other:?}"),
    }
    // With partitions contiguous in the batch, each object's outcome covers its range.
    let events = vec![
        event(0, 1, "2026-01-01T00:00:00Z"),
        event(0, 2, "2026-01-01T00:00:00Z"),
        event(5, 9, "2026-01-01T00:00:00Z"),
    ];
    match deliver(&sink, &events).await {
        Outcome::Partial(parts) => {
            let ranges: Vec<_> = parts.iter().map(|(r, _)| r.clone()).collect();
            assert_eq!(ranges, vec![0..2, 2..3]);
            assert!(parts.iter().all(|(_, o)| matches!(
                o,
                Outcome::Rejected {
                    scope: RejectScope::Destination,
                    ..
                }
            )));
        }
        other => panic!("{other:?}"),
    }
    // test-destination says the same.
    let error = sink.check().await.unwrap_err();
    assert!(
        error.message.contains("\"no-such-bucket\""),
        "{}",
        error.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_encryption_is_requested() {
    let moto = Moto::start();
    create_bucket(&moto, "sealed").await;
    for (keys, expect_sse, expect_key) in [
        ("server_side_encryption = \"AES256\"", "AES256", None),
        (
            "server_side_encryption = \"aws:kms\"\nkms_key_id = \"alias/courier-logs\"",
            "aws:kms",
            Some("alias/courier-logs"),
        ),
    ] {
        let d = destination(&moto, "sealed", keys);
        let events = vec![event(0, expect_sse.len() as i64, "2026-01-01T00:00:00Z")];
        assert_eq!(deliver(&build_sink(&d), &events).await, Outcome::Delivered);
        let key = build_sink(&d).object_key(&events).unwrap();
        let object = get(&moto, "sealed", &key).await;
        assert_eq!(object.headers["x-amz-server-side-encryption"], expect_sse);
        assert_eq!(
            object
                .headers
                .get("x-amz-server-side-encryption-aws-kms-key-id")
                .map(|v| v.to_str().unwrap()),
            expect_key
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_writes_and_deletes_a_probe_object() {
    let moto = Moto::start();
    create_bucket(&moto, "probed").await;
    let d = destination(&moto, "probed", "prefix = \"tenants/a\"");
    let report = build_sink(&d).check().await.unwrap();
    assert!(
        report.starts_with("wrote s3://probed/tenants/a/_courier-probe/archive-"),
        "{report}"
    );
    assert!(report.ends_with("and deleted it again"), "{report}");
    assert_eq!(list(&moto, "probed").await, vec![]);
}

/// A key template without `=`: moto's signature check (IAM mode only) canonicalizes `=` in a
/// key differently from S3 (which accepts `object_store`'s `%3D`), so the default Hive-style
/// keys would fail there with `SignatureDoesNotMatch` whatever the credentials.
const AUTH_MODE_TEMPLATE: &str = "{project}/{date}/{partition}-{first_offset}-{last_offset}.{ext}";

/// Credentials: from the environment (the standard chain) and rejected when wrong, against a
/// server that checks them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_the_environment_work_and_bad_ones_reject_the_destination() {
    // Setup, unauthenticated: 2 users (one may write, one has no policy) and the bucket.
    let moto = Moto::start_with_auth(6);
    let writer = iam_user(&moto, "writer", true).await;
    let reader = iam_user(&moto, "nobody", false).await;
    create_bucket(&moto, "guarded").await;

    // The child test builds the sink without keys, so the environment provides them.
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "env_credentials_child",
            "--ignored",
            "--nocapture",
        ])
        .env("COURIER_S3_CHILD_ENDPOINT", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", &writer.0)
        .env("AWS_SECRET_ACCESS_KEY", &writer.1)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-DELIVERED"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let events = vec![event(0, 1, "2026-01-01T00:00:00Z")];
    for (id, secret, expect) in [
        (writer.0.as_str(), "wrong-secret", "SignatureDoesNotMatch"),
        ("AKIAUNKNOWN000000000", "whatever", "InvalidAccessKeyId"),
        (reader.0.as_str(), reader.1.as_str(), "AccessDenied"),
    ] {
        let d = destination(
            &moto,
            "guarded",
            &format!(
                "access_key_id = \"{id}\"\nsecret_access_key = \"{secret}\"\nkey_template = \"{AUTH_MODE_TEMPLATE}\""
            ),
        );
        match deliver(&build_sink(&d), &events).await {
            Outcome::Rejected {
                error,
                scope: RejectScope::Destination,
            } => {
                assert_eq!(error.http_status, Some(403), "{expect}: {error}");
                assert!(
                    error.message.contains(expect),
                    "{expect}: {}",
                    error.message
                );
                assert!(error.message.contains("\"guarded\""), "{}", error.message);
                assert!(!error.message.contains(secret), "{}", error.message);
                assert!(!error.message.contains(&writer.1), "{}", error.message);
            }
            other => panic!("{expect}: {other:?}"),
        }
    }
}

/// Run by the test above in a child process with `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
/// set; does nothing when run on its own.
#[tokio::test]
#[ignore = "run by credentials_from_the_environment_work_and_bad_ones_reject_the_destination"]
async fn env_credentials_child() {
    let Ok(endpoint) = std::env::var("COURIER_S3_CHILD_ENDPOINT") else {
        return;
    };
    let text = format!(
        "[security]\nallow_networks = [\"127.0.0.0/8\"]\n\
         [[destinations]]\nproject = \"proj_a\"\nid = \"archive\"\ntype = \"s3\"\n\
         bucket = \"guarded\"\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\n\
         key_template = \"{AUTH_MODE_TEMPLATE}\"\n"
    );
    let config = courier::config::parse("child.toml", &text, &BTreeMap::new()).unwrap();
    let d = &config.destinations[0];
    let sink = S3Sink::new(d, s3_config(d), TOPIC, &config.security).unwrap();
    let events = vec![event(0, 1, "2026-01-01T00:00:00Z")];
    let outcome = deliver(&sink, &events).await;
    assert_eq!(outcome, Outcome::Delivered);
    println!("CHILD-DELIVERED");
}

/// Creates an IAM user with an access key (and a policy allowing everything when `allowed`)
/// through unauthenticated IAM requests: 2 or 3 of the server's free actions.
async fn iam_user(moto: &Moto, name: &str, allowed: bool) -> (String, String) {
    let call = |params: Vec<(&'static str, String)>| async move {
        let mut form = params;
        form.push(("Version", "2010-05-08".into()));
        let r = client()
            .post(format!("{}/", moto.endpoint()))
            .header("Authorization", placeholder_auth("iam"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(
                form.iter()
                    .map(|(k, v)| format!("{k}={}", urlencode(v)))
                    .collect::<Vec<_>>()
                    .join("&"),
            )
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "IAM {form:?}: {status} {text}");
        text
    };
    call(vec![
        ("Action", "CreateUser".into()),
        ("UserName", name.into()),
    ])
    .await;
    let key = call(vec![
        ("Action", "CreateAccessKey".into()),
        ("UserName", name.into()),
    ])
    .await;
    if allowed {
        call(vec![
            ("Action", "PutUserPolicy".into()),
            ("UserName", name.into()),
            ("PolicyName", "everything".into()),
            (
                "PolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#.into(),
            ),
        ])
        .await;
    }
    (
        between(&key, "<AccessKeyId>", "</AccessKeyId>")
            .unwrap()
            .to_owned(),
        between(&key, "<SecretAccessKey>", "</SecretAccessKey>")
            .unwrap()
            .to_owned(),
    )
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Throttling and server errors from a server that answers like S3 under load; connection
/// errors and timeouts. All retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_server_errors_and_network_failures_are_retried() {
    use axum::http::StatusCode;
    let answers = Arc::new(std::sync::Mutex::new(vec![
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        ),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error.",
        ),
    ]));
    let app = {
        let answers = answers.clone();
        axum::Router::new().fallback(move || {
            let answers = answers.clone();
            async move {
                let (status, code, message) = answers.lock().unwrap().remove(0);
                (
                    status,
                    [("content-type", "application/xml")],
                    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>r</RequestId></Error>"),
                )
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let fake = format!("http://{addr}");
    let events = vec![event(0, 1, "2026-01-01T00:00:00Z")];
    for (status, code) in [(503, "SlowDown"), (500, "InternalError")] {
        let d = destination_at(&fake, "");
        match deliver(&build_sink(&d), &events).await {
            Outcome::Retry { error, .. } => {
                assert_eq!(error.http_status, Some(status));
                assert!(error.message.contains(code), "{}", error.message);
            }
            other => panic!("{other:?}"),
        }
    }
    server.abort();

    // Nothing listening.
    let closed = format!("http://127.0.0.1:{}", free_port());
    match deliver(&build_sink(&destination_at(&closed, "")), &events).await {
        Outcome::Retry { error, .. } => assert_eq!(error.kind, ErrorKind::Connection, "{error}"),
        other => panic!("{other:?}"),
    }
    // A server that accepts and never answers, with a short request timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let d = destination_at(
        &silent_url,
        "[destinations.delivery]\nrequest_timeout = \"500ms\"",
    );
    let started = Instant::now();
    match deliver(&build_sink(&d), &events).await {
        Outcome::Retry { error, .. } => assert_eq!(error.kind, ErrorKind::Timeout, "{error}"),
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

/// A multipart upload whose part fails is aborted (no parts left behind) and retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_multipart_upload_is_aborted_and_retried() {
    use axum::extract::Request;
    use axum::http::StatusCode;
    let requests: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let app = {
        let requests = requests.clone();
        axum::Router::new().fallback(move |request: Request| {
            let requests = requests.clone();
            async move {
                let line = format!(
                    "{} {}",
                    request.method(),
                    request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("")
                );
                requests.lock().unwrap().push(line.clone());
                let query = request.uri().query().unwrap_or("").to_owned();
                if request.method() == "POST" && query.starts_with("uploads") {
                    (
                        StatusCode::OK,
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><InitiateMultipartUploadResult><Bucket>any-bucket</Bucket><Key>k</Key><UploadId>upload-1</UploadId></InitiateMultipartUploadResult>".to_owned(),
                    )
                } else if request.method() == "DELETE" && query.contains("uploadId=upload-1") {
                    (StatusCode::NO_CONTENT, String::new())
                } else {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>part lost</Message></Error>".to_owned(),
                    )
                }
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let d = destination_at(
        &format!("http://{addr}"),
        "compression = \"none\"\nmultipart_threshold = 1024",
    );
    let events: Vec<Event> = (0..50)
        .map(|o| event(0, o, "2026-01-01T00:00:00Z"))
        .collect();
    match deliver(&build_sink(&d), &events).await {
        Outcome::Retry { error, .. } => {
            assert_eq!(error.http_status, Some(500), "{error}");
            assert!(error.message.contains("InternalError"), "{}", error.message);
        }
        other => panic!("{other:?}"),
    }
    server.abort();
    let requests = requests.lock().unwrap().clone();
    let kinds: Vec<&str> = requests
        .iter()
        .map(|r| {
            if r.starts_with("POST") && r.contains("?uploads") {
                "create"
            } else if r.starts_with("PUT") && r.contains("partNumber=") {
                "part"
            } else if r.starts_with("DELETE") && r.contains("uploadId=upload-1") {
                "abort"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(kinds, ["create", "part", "abort"], "{requests:?}");
}

fn destination_at(endpoint: &str, extra: &str) -> DestinationConfig {
    let text = format!(
        "[security]\nallow_networks = [\"127.0.0.0/8\"]\n\
         [[destinations]]\nproject = \"proj_a\"\nid = \"archive\"\ntype = \"s3\"\n\
         bucket = \"any-bucket\"\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\n\
         access_key_id = \"AKIATEST\"\nsecret_access_key = \"test-secret\"\n{extra}\n"
    );
    courier::config::parse("test.toml", &text, &BTreeMap::new())
        .unwrap_or_else(|e| panic!("{e}"))
        .destinations[0]
        .as_ref()
        .clone()
}

#[test]
fn unknown_template_variables_are_rejected_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("courier.toml");
    std::fs::write(
        &path,
        "[[destinations]]\nproject = \"proj_a\"\nid = \"archive\"\ntype = \"s3\"\nbucket = \"logs\"\n\
         key_template = \"{prefix}/{tenant}/{partition}-{first_offset}.ndjson.gz\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["validate", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("destinations[0].key_template: unknown variable {tenant}; expected one of {prefix}, {project}"),
        "{stderr}"
    );

    // A valid one is described without secrets.
    std::fs::write(
        &path,
        "[[destinations]]\nproject = \"proj_a\"\nid = \"archive\"\ntype = \"s3\"\nbucket = \"logs\"\n\
         prefix = \"courier\"\nregion = \"eu-west-1\"\naccess_key_id = \"AKIAVISIBLE\"\n\
         secret_access_key = \"${S3_TEST_SECRET}\"\nserver_side_encryption = \"AES256\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["validate", "--config"])
        .arg(&path)
        .env("S3_TEST_SECRET", "very-secret-value")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("s3 s3://logs/courier/ (region eu-west-1, gzip, SSE AES256, static keys)"),
        "{all}"
    );
    assert!(
        !all.contains("very-secret-value") && !all.contains("AKIAVISIBLE"),
        "{all}"
    );
}

/// The compiled binary reads Event Logs from a tansu broker and archives one project's events
/// in moto: every event lands exactly once in an object of its own partition, under a key
/// naming that partition and the object's offset range, and the offsets are committed.
#[test]
fn end_to_end_from_kafka_to_the_bucket() {
    use common::{
        committed_offsets, create_topic, end_offsets, produce, rt, wait_until, Courier,
        CourierConfig, Tansu,
    };
    use std::collections::{HashMap, HashSet};

    let tansu = Tansu::start();
    create_topic(&tansu.brokers(), "event-logs", 2);
    create_topic(&tansu.brokers(), "courier-failures", 1);
    let moto = Moto::start();
    rt().block_on(create_bucket(&moto, "e2e-archive"));

    let mut messages = Vec::new();
    for i in 0..300i64 {
        let project = if i % 3 == 2 { "proj_b" } else { "proj_a" };
        let raw = format!(
            r#"{{"id":"e2e-{i}","timestamp":"2026-08-0{}T1{}:00:00Z","level":"INFO","type":"MANAGED_SYNC","message":"sync {i}","projectId":"{project}"}}"#,
            1 + i % 2,
            i % 10
        );
        messages.push((Some((i % 2) as i32), raw.into_bytes()));
    }
    let positions = produce(&tansu.brokers(), "event-logs", messages.clone());
    let expected: HashMap<Vec<u8>, (i32, i64)> = messages
        .iter()
        .zip(&positions)
        .filter(|((_, raw), _)| String::from_utf8_lossy(raw).contains("\"proj_a\""))
        .map(|((_, raw), pos)| (raw.clone(), *pos))
        .collect();
    assert_eq!(expected.len(), 200);

    let destination = format!(
        "[[destinations]]\nproject = \"proj_a\"\nid = \"archive\"\ntype = \"s3\"\n\
         bucket = \"e2e-archive\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\n\
         force_path_style = true\nprefix = \"courier\"\n\
         access_key_id = \"AKIATEST\"\nsecret_access_key = \"e2e-secret\"\n\
         [destinations.delivery]\nbatch_timeout = \"300ms\"\n",
        moto.endpoint()
    );
    let config = CourierConfig::new(&tansu.brokers()).destination(destination);
    let courier = Courier::start_ready(&config);

    let lines_in_bucket = || -> Vec<(String, Vec<u8>)> {
        rt().block_on(async {
            let mut out = Vec::new();
            for (key, _) in list(&moto, "e2e-archive").await {
                let body = gunzip(&get(&moto, "e2e-archive", &key).await.body);
                for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    out.push((key.clone(), line.to_vec()));
                }
            }
            out
        })
    };
    wait_until(
        "every proj_a event is in the bucket",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || lines_in_bucket().len() >= expected.len(),
    );
    let ends = end_offsets(&positions);
    wait_until(
        "offsets committed to the end",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || committed_offsets(&tansu.brokers(), "courier-test", "event-logs") == ends,
    );

    let lines = lines_in_bucket();
    let mut seen = HashSet::new();
    for (key, line) in &lines {
        let (partition, offset) = *expected.get(line).unwrap_or_else(|| {
            panic!(
                "unexpected line in {key}: {}",
                String::from_utf8_lossy(line)
            )
        });
        assert!(
            seen.insert(line.clone()),
            "event delivered twice: {}",
            String::from_utf8_lossy(line)
        );
        // courier/project=proj_a/dt=…/hour=…/event-logs-<partition>-<first>-<last>.ndjson.gz
        let name = key.rsplit('/').next().unwrap();
        let parts: Vec<&str> = name
            .trim_start_matches("event-logs-")
            .trim_end_matches(".ndjson.gz")
            .split('-')
            .collect();
        assert!(
            key.starts_with("courier/project=proj_a/dt=2026-08-0"),
            "{key}"
        );
        assert_eq!(parts[0], partition.to_string(), "{key}");
        let (first, last): (i64, i64) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
        assert!(
            (first..=last).contains(&offset),
            "{key} holds offset {offset}"
        );
    }
    assert_eq!(seen.len(), expected.len());
    let metrics = courier.metrics();
    assert_eq!(
        common::metric_sum(
            &metrics,
            "courier_events_delivered_total",
            &[("destination_type", "s3")]
        ),
        Some(200.0),
        "{metrics}"
    );
}

/// A measurement, not a check: one object-sized batch (64 MiB of generated Event Logs)
/// encoded and written to moto. Run with
/// `cargo test --release --test sinks_s3 -- --ignored --exact measure_a_full_object --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run explicitly"]
async fn measure_a_full_object() {
    use courier::generator::{Generator, GeneratorConfig};
    let moto = Moto::start();
    create_bucket(&moto, "measure").await;
    let mut generator = Generator::new(GeneratorConfig::default());
    let mut events = Vec::new();
    let mut bytes = 0;
    while bytes < 64 * MIB {
        let raw = generator.event_for_project("proj_a");
        bytes += raw.len();
        let offset = events.len() as i64;
        events.push(sink_event(raw, 0, offset));
    }
    for (name, keys) in [
        ("gzip, single PUT", "multipart_threshold = 1073741824"),
        ("gzip, default multipart threshold", ""),
        ("none, multipart (8 MiB parts)", "compression = \"none\""),
    ] {
        let d = destination(&moto, "measure", keys);
        let sink = build_sink(&d);
        let t = Instant::now();
        let batch = sink.encode(&events).unwrap();
        let encoded = t.elapsed();
        let t = Instant::now();
        assert_eq!(sink.send(&events, &batch).await, Outcome::Delivered);
        let sent = t.elapsed();
        eprintln!(
            "{name}: {} events, {:.1} MiB → {:.1} MiB body; encode {:?}, write {:?}",
            events.len(),
            batch.uncompressed_bytes as f64 / MIB as f64,
            batch.body.len() as f64 / MIB as f64,
            encoded,
            sent
        );
    }
}
