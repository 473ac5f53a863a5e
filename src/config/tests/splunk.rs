//! The `splunk` destination type as the configuration loader reads it.

use std::collections::BTreeMap;

use crate::config::{parse, SinkConfig};

fn load(keys: &str) -> Result<crate::config::Config, Vec<String>> {
    let text =
        format!("[[destinations]]\nproject = \"p\"\nid = \"s\"\ntype = \"splunk_hec\"\n{keys}\n");
    let env: BTreeMap<String, String> = [("HEC".to_owned(), "tok-1".to_owned())].into();
    parse("test.toml", &text, &env).map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

#[test]
fn defaults() {
    let c = load("endpoint = \"https://splunk:8088\"\ntoken = \"${HEC}\"").unwrap();
    let SinkConfig::SplunkHec(s) = &c.destinations[0].sink else {
        panic!("not splunk")
    };
    assert_eq!(s.token.expose(), "tok-1");
    assert!(!s.ack);
    assert_eq!(s.ack_timeout, crate::sinks::splunk::DEFAULT_ACK_TIMEOUT);
    assert_eq!(s.max_request_bytes, 1_048_576);
    assert_eq!(s.compression, crate::sinks::util::Compression::None);
    assert!(s.tls.ca_file.is_none() && !s.tls.insecure_skip_verify);
    assert_eq!(c.destinations[0].sink.type_name(), "splunk_hec");
    assert!(!format!("{s:?}").contains("tok-1"));
    let c = load(
        "endpoint = \"https://splunk:8088\"\ntoken = \"t\"\nack = true\nack_timeout = \"30s\"\nindex = \"main\"\n[destinations.tls]\ninsecure_skip_verify = true",
    )
    .unwrap();
    let SinkConfig::SplunkHec(s) = &c.destinations[0].sink else {
        panic!("not splunk")
    };
    assert!(s.ack && s.tls.insecure_skip_verify);
    assert_eq!(s.ack_timeout, std::time::Duration::from_secs(30));
}

#[test]
fn errors_name_the_key() {
    let e = load("endpoint = \"https://splunk:8088/services/collector/event\"\ntoken = \"t\"")
        .unwrap_err();
    assert!(
        e[0].contains("destinations[0].endpoint: give the collector's base URL"),
        "{e:?}"
    );
    let e = load("endpoint = \"splunk:8088\"\ntoken = \"t\"").unwrap_err();
    assert!(e[0].contains("destinations[0].endpoint:"), "{e:?}");
    let e = load("endpoint = \"https://s\"\ntoken = \"t\"\nindex = \"Main\"").unwrap_err();
    assert!(
        e[0].contains("destinations[0].index: \"Main\" is not a Splunk index name"),
        "{e:?}"
    );
    let e = load("endpoint = \"https://s\"\ntoken = \"t\"\nack_timeout = \"0s\"").unwrap_err();
    assert!(
        e[0].contains("destinations[0].ack_timeout: must be at least 100ms (got 0s)"),
        "{e:?}"
    );
    let e = load("endpoint = \"https://s\"\ntoken = \"t\"\nmax_request_bytes = 0").unwrap_err();
    assert!(
        e[0].contains("destinations[0].max_request_bytes: must be at least 1"),
        "{e:?}"
    );
    let e = load("endpoint = \"https://s\"\ntoken = \"t\"\n[destinations.tls]\nca_file = \"/nonexistent/ca.pem\"").unwrap_err();
    assert!(
        e[0].contains("destinations[0].tls.ca_file: cannot read /nonexistent/ca.pem"),
        "{e:?}"
    );
    let e = load("endpoint = \"https://s\"\ntoken = \"t\"\n[destinations.tls]\nverify = false")
        .unwrap_err();
    assert!(
        e[0].contains("destinations[0].tls") && e[0].contains("verify"),
        "{e:?}"
    );
    let e = load("endpoint = \"https://s\"\ntoken = \"\"").unwrap_err();
    assert!(
        e[0].contains("destinations[0].token: must not be empty"),
        "{e:?}"
    );
    let e = load("endpoint = \"https://s\"").unwrap_err();
    assert!(e[0].contains("missing field `token`"), "{e:?}");
}

#[test]
fn a_file_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "not a certificate").unwrap();
    let e = load(&format!(
        "endpoint = \"https://s\"\ntoken = \"t\"\n[destinations.tls]\nca_file = \"{}\"",
        path.display()
    ))
    .unwrap_err();
    assert!(e[0].contains("destinations[0].tls.ca_file:"), "{e:?}");
}
