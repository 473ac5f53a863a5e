//! The `otlp` destination type as the configuration loader reads it: defaults, `${VAR}`
//! headers, every key's error by its path, the SSRF check of `endpoint`, `tls.ca_file` read
//! from the file and refused from the API.

use std::collections::BTreeMap;

use crate::config::{parse, parse_destination, DeliveryConfig, SecurityConfig, SinkConfig};

fn load(keys: &str) -> Result<crate::config::Config, Vec<String>> {
    let text = format!("[[destinations]]\nproject = \"p\"\nid = \"o\"\ntype = \"otlp\"\n{keys}\n");
    let env: BTreeMap<String, String> =
        [("NR_KEY".to_owned(), "nr-key-0123456789".to_owned())].into();
    parse("test.toml", &text, &env).map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

#[test]
fn defaults_and_secret_headers() {
    let c = load("endpoint = \"https://otlp.nr-data.net\"\nheaders = { api-key = \"${NR_KEY}\" }")
        .unwrap();
    let SinkConfig::Otlp(o) = &c.destinations[0].sink else {
        panic!("not otlp")
    };
    assert_eq!(c.destinations[0].sink.type_name(), "otlp");
    assert_eq!(o.headers["api-key"].expose(), "nr-key-0123456789");
    assert_eq!(o.logs_path, "/v1/logs");
    assert_eq!(o.encoding, crate::sinks::otlp::Encoding::Protobuf);
    assert_eq!(o.compression, crate::sinks::util::Compression::Gzip);
    assert_eq!(o.service_name, "paragon");
    assert!(o.tls.ca_file.is_none() && !o.tls.insecure_skip_verify);
    assert!(!format!("{o:?}").contains("nr-key-0123456789"));
}

#[test]
fn errors_name_the_key() {
    let e = load(
        "endpoint = \"https://otlp.example/v1/logs\"\nlogs_path = \"v1/logs\"\nencoding = \"grpc\"\nservice_name = \"\"\nmax_request_bytes = 67108865\nheaders = { Host = \"x\" }\nresource_attributes = { \"service.name\" = \"x\" }",
    )
    .unwrap_err();
    for expected in [
        "destinations[0].encoding: unknown variant `grpc`, expected `protobuf` or `json`",
        "destinations[0].endpoint: give the receiver's base URL without \"/v1/logs\"",
        "destinations[0].logs_path: \"v1/logs\" must start with \"/\"",
        "destinations[0].headers.Host: is set by courier and cannot be configured",
        "destinations[0].service_name: must not be empty",
        "destinations[0].resource_attributes.\"service.name\": \"service.name\" is set by courier",
        "destinations[0].max_request_bytes: must be at most 67108864",
    ] {
        assert!(
            e.iter().any(|m| m.contains(expected)),
            "{expected} in {e:?}"
        );
    }
    // A literal private address is refused at load time, like the other sinks'.
    let e = load("endpoint = \"http://10.0.0.5:4318\"").unwrap_err();
    assert!(
        e[0].contains("destinations[0].endpoint: refused: 10.0.0.5 is a private address"),
        "{e:?}"
    );
    // tls.ca_file is read when loaded.
    let e = load(
        "endpoint = \"https://otlp.example\"\n[destinations.tls]\nca_file = \"/nonexistent/ca.pem\"",
    )
    .unwrap_err();
    assert!(
        e[0].contains("destinations[0].tls.ca_file: cannot read /nonexistent/ca.pem"),
        "{e:?}"
    );
}

#[test]
fn the_api_refuses_a_ca_file_without_reading_it() {
    for tls in [
        serde_json::json!({ "ca_file": "/etc/passwd" }),
        // serde reads a struct from an array by position.
        serde_json::json!(["/etc/passwd"]),
    ] {
        let definition = serde_json::json!({
            "project": "p", "id": "o", "type": "otlp",
            "endpoint": "https://otlp.example", "tls": tls,
        });
        let errors = parse_destination(
            definition,
            &DeliveryConfig::default(),
            &SecurityConfig::default(),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].0.starts_with("/tls"), "{errors:?}");
        assert_eq!(
            errors[0].1,
            "names a file on the courier host; not accepted through the API"
        );
    }
}
