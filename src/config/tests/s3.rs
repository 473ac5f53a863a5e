//! The `s3` destination type as the configuration loader reads it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{parse, Config, SinkConfig};
use crate::sinks::s3::*;

fn load(keys: &str) -> Result<Config, Vec<String>> {
    let bucket = if keys.starts_with("bucket =") {
        ""
    } else {
        "bucket = \"archive-bucket\"\n"
    };
    let text = format!(
        "[[destinations]]\nproject = \"p\"\nid = \"archive\"\ntype = \"s3\"\n{bucket}{keys}"
    );
    let env: BTreeMap<String, String> =
        [("S3_SECRET".to_owned(), "wJalrXUtnFEMI".to_owned())].into();
    parse("test.toml", &text, &env).map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

fn s3(keys: &str) -> S3Config {
    match load(keys).unwrap().destinations[0].sink.clone() {
        SinkConfig::S3(c) => c,
        other => panic!("{other:?}"),
    }
}

fn error(keys: &str) -> String {
    let errors = load(keys).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].clone()
}

#[test]
fn defaults() {
    let c = s3("");
    assert_eq!(c.compression, Compression::Gzip);
    assert_eq!(c.key_template(), DEFAULT_KEY_TEMPLATE);
    assert_eq!(c.multipart_threshold, 16 * 1024 * 1024);
    assert_eq!(c.multipart_part_size, 8 * 1024 * 1024);
    assert!(!c.force_path_style);
    assert_eq!(c.prefix(), "");
    assert_eq!(s3("prefix = \"/logs/courier/\"").prefix(), "logs/courier");
}

#[test]
fn batches_are_object_sized_unless_the_destination_says_otherwise() {
    let c = load("").unwrap();
    let d = &c.destinations[0].delivery;
    assert_eq!(d.batch_max_events, 100_000);
    assert_eq!(d.batch_max_bytes, 64 * 1024 * 1024);
    assert_eq!(d.batch_timeout, Duration::from_secs(300));
    assert_eq!(d.max_in_flight, c.delivery.max_in_flight);
    let c =
        load("[destinations.delivery]\nbatch_max_events = 500\nbatch_timeout = \"30s\"").unwrap();
    let d = &c.destinations[0].delivery;
    assert_eq!(d.batch_max_events, 500);
    assert_eq!(d.batch_timeout, Duration::from_secs(30));
    assert_eq!(d.batch_max_bytes, 64 * 1024 * 1024);
}

#[test]
fn every_key_is_checked_and_named() {
    for (keys, expect) in [
        ("bucket = \"Bad_Bucket\"", "destinations[0].bucket: "),
        ("endpoint = \"ftp://x\"", "destinations[0].endpoint: scheme"),
        (
            "endpoint = \"http://u:p@x\"",
            "destinations[0].endpoint: must not hold credentials",
        ),
        ("region = \"us east\"", "destinations[0].region: "),
        ("prefix = \"a/../b\"", "destinations[0].prefix: "),
        (
            "access_key_id = \"AKIA\"",
            "destinations[0].secret_access_key: is required",
        ),
        (
            "secret_access_key = \"s\"",
            "destinations[0].access_key_id: is required",
        ),
        (
            "kms_key_id = \"k\"",
            "destinations[0].kms_key_id: needs server_side_encryption",
        ),
        (
            "multipart_part_size = 1024",
            "destinations[0].multipart_part_size: ",
        ),
        (
            "multipart_threshold = 0",
            "destinations[0].multipart_threshold: ",
        ),
        (
            "server_side_encryption = \"aws:kms:dsse\"",
            "destinations[0].server_side_encryption: ",
        ),
        ("compression = \"zstd\"", "destinations[0].compression: "),
        ("buckets = \"x\"", "destinations[0].buckets: "),
        (
            "key_template = \"{prefix}/{partition}-{first_offset}-{bucket}\"",
            "destinations[0].key_template: unknown variable {bucket}",
        ),
        (
            "key_template = \"{prefix}/{date}.json\"",
            "destinations[0].key_template: must contain {partition}",
        ),
    ] {
        let e = error(keys);
        assert!(
            e.starts_with(&format!("test.toml: {expect}")),
            "{keys}: {e}"
        );
    }
    let c = s3("server_side_encryption = \"aws:kms\"\nkms_key_id = \"alias/x\"");
    assert_eq!(c.server_side_encryption, Some(ServerSideEncryption::AwsKms));
    assert_eq!(
        s3("server_side_encryption = \"AES256\"").server_side_encryption,
        Some(ServerSideEncryption::Aes256)
    );
}

#[test]
fn errors_and_debug_output_never_show_secrets() {
    let e = error("access_key_id = \"${S3_SECRET}\"\nsecret_access_key = \"\"");
    assert!(e.contains("secret_access_key"), "{e}");
    assert!(!e.contains("wJalrXUtnFEMI"), "{e}");
    let c = s3("access_key_id = \"AKIAEXAMPLE\"\nsecret_access_key = \"${S3_SECRET}\"");
    assert_eq!(
        c.secret_access_key.as_ref().unwrap().expose(),
        "wJalrXUtnFEMI"
    );
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("wJalrXUtnFEMI") && !debug.contains("AKIAEXAMPLE"),
        "{debug}"
    );
}
