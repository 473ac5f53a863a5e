//! The `datadog` destination type as the configuration loader reads it.

use std::collections::BTreeMap;

use crate::config::{parse, SinkConfig};

fn load(keys: &str) -> Result<crate::config::Config, Vec<String>> {
    let text =
        format!("[[destinations]]\nproject = \"p\"\nid = \"dd\"\ntype = \"datadog\"\n{keys}\n");
    let env: BTreeMap<String, String> = [("DD_KEY".to_owned(), "k-123".to_owned())].into();
    parse("test.toml", &text, &env).map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

#[test]
fn defaults() {
    let c = load("api_key = \"${DD_KEY}\"").unwrap();
    let SinkConfig::Datadog(d) = &c.destinations[0].sink else {
        panic!("not datadog")
    };
    assert_eq!(d.api_key.expose(), "k-123");
    assert_eq!(d.site(), "datadoghq.com");
    assert_eq!(d.compression, crate::sinks::util::Compression::Gzip);
    assert!(d.tags.is_empty());
    assert_eq!(c.destinations[0].sink.type_name(), "datadog");
    assert!(!format!("{d:?}").contains("k-123"));
}

#[test]
fn errors_name_the_key() {
    let e = load("api_key = \"k\"\nsite = \"datadoghq.cn\"").unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "test.toml: destinations[0].site: unknown Datadog site \"datadoghq.cn\"; expected one of datadoghq.com, us3.datadoghq.com"
        ),
        "{e:?}"
    );
    let e = load("api_key = \"k\"\nsite = \"app.datadoghq.eu\"").unwrap_err();
    assert!(e[0].contains("write \"datadoghq.eu\""), "{e:?}");
    let e = load("api_key = \"k\"\nsite = \"datadoghq.eu\"\nendpoint = \"http://x\"").unwrap_err();
    assert!(
        e[0].contains("destinations[0].endpoint: set either site or endpoint"),
        "{e:?}"
    );
    let e = load("api_key = \"k\"\nendpoint = \"ftp://x\"").unwrap_err();
    assert!(
        e[0].contains("destinations[0].endpoint: scheme must be http or https"),
        "{e:?}"
    );
    let e = load("api_key = \"k\"\ntags = [\"env:prod\", \"a,b\"]").unwrap_err();
    assert!(
        e[0].contains("destinations[0].tags[1]: \"a,b\" contains a comma"),
        "{e:?}"
    );
    let e = load("api_key = \"\"").unwrap_err();
    assert!(
        e[0].contains("destinations[0].api_key: must not be empty"),
        "{e:?}"
    );
    let e = load("api_key = \"k\"\napikey = \"k\"").unwrap_err();
    assert!(
        e[0].contains("destinations[0].apikey") || e[0].contains("unknown field `apikey`"),
        "{e:?}"
    );
    let e = load("site = \"datadoghq.eu\"").unwrap_err();
    assert!(e[0].contains("missing field `api_key`"), "{e:?}");
    let e = load("api_key = \"k\"\ncompression = \"zstd\"").unwrap_err();
    assert!(e[0].contains("destinations[0].compression"), "{e:?}");
}

#[test]
fn every_documented_site_is_accepted() {
    for site in crate::sinks::datadog::SITES {
        load(&format!("api_key = \"k\"\nsite = \"{site}\"")).unwrap();
    }
}

#[test]
fn secrets_never_appear_in_errors() {
    let e = load("api_key = \"sekrit-key\"\nsite = \"nope\"\nbogus = 1").unwrap_err();
    assert!(!e.iter().any(|m| m.contains("sekrit-key")), "{e:?}");
}
