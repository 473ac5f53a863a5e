//! `[security]` and the SSRF checks the loader applies to destination URLs.

use crate::config::SecurityConfig;
use crate::sinks::ssrf::*;

fn load(text: &str, env: &[(&str, &str)]) -> Result<crate::config::Config, Vec<String>> {
    let env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    crate::config::parse("test.toml", text, &env)
        .map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

const DESTINATIONS: &str = r#"
[[destinations]]
project = "p"
id = "file"
type = "file"
path = "/tmp/x.ndjson"

[[destinations]]
project = "p"
id = "hook"
type = "webhook"
url = "http://10.0.0.5:8080/hook"

[[destinations]]
project = "p"
id = "splunk"
type = "splunk_hec"
endpoint = "http://[fd00::7]:8088"
token = "t"

[[destinations]]
project = "p"
id = "dd"
type = "datadog"
api_key = "k"
endpoint = "http://169.254.169.254"

[[destinations]]
project = "p"
id = "s3"
type = "s3"
bucket = "logs"
region = "us-east-1"
endpoint = "http://127.0.0.1:9000"

[[destinations]]
project = "p"
id = "named"
type = "webhook"
url = "http://hooks.example.com/x"
"#;

#[test]
fn the_section_parses_with_defaults() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.security, SecurityConfig::default());
    let c = load(
        "[security]\nallow_networks = [\"127.0.0.0/8\", \"10.1.0.0/16\", \"fd00::1\"]\nhttps_only = true\n",
        &[],
    )
    .unwrap();
    let nets: Vec<String> = c
        .security
        .allow_networks
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(nets, ["127.0.0.0/8", "10.1.0.0/16", "fd00::1/128"]);
    assert!(c.security.https_only);
    // From the environment: one comma-separated string.
    let c = load(
        "",
        &[
            (
                "COURIER__SECURITY__ALLOW_NETWORKS",
                "127.0.0.0/8, 10.0.0.0/8",
            ),
            ("COURIER__SECURITY__HTTPS_ONLY", "true"),
        ],
    )
    .unwrap();
    assert_eq!(c.security.allow_networks.len(), 2);
    assert!(c.security.https_only);
}

#[test]
fn invalid_networks_name_their_index() {
    let e = load(
        "[security]\nallow_networks = [\"127.0.0.0/8\", \"10.0.0.0/33\", 7, \"10.1.2.3/16\"]\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(
        e[0].starts_with("test.toml: security.allow_networks[1]: \"10.0.0.0/33\" is not a network"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("test.toml: security.allow_networks[2]: must be a string"),
        "{e:?}"
    );
    assert!(
        e[2].starts_with(
            "test.toml: security.allow_networks[3]: \"10.1.2.3/16\" has host bits set"
        ),
        "{e:?}"
    );
    let e = load("[security]\nallow_networks = 7\n", &[]).unwrap_err();
    assert!(
        e[0].contains("security.allow_networks: must be a list"),
        "{e:?}"
    );
    let e = load("[security]\nallow = []\n", &[]).unwrap_err();
    assert!(
        e[0].contains("security") && e[0].contains("unknown field `allow`"),
        "{e:?}"
    );
}

#[test]
fn literal_internal_addresses_are_refused_at_validation_with_their_key() {
    let e = load(DESTINATIONS, &[]).unwrap_err();
    assert_eq!(
        e,
        [
            "test.toml: destinations[1].url: refused: 10.0.0.5 is a private address (10.0.0.0/8); allow it with security.allow_networks",
            "test.toml: destinations[2].endpoint: refused: fd00::7 is a unique local (private) address (fc00::/7); allow it with security.allow_networks",
            "test.toml: destinations[3].endpoint: refused: 169.254.169.254 is the cloud instance metadata address (169.254.169.254/32); allow it with security.allow_networks",
            "test.toml: destinations[4].endpoint: refused: 127.0.0.1 is a loopback address (127.0.0.0/8); allow it with security.allow_networks",
        ]
    );
    let allowed = format!(
        "[security]\nallow_networks = [\"10.0.0.0/8\", \"fd00::/8\", \"169.254.169.254\", \"127.0.0.1\"]\n{DESTINATIONS}"
    );
    let c = load(&allowed, &[]).unwrap();
    assert_eq!(c.destinations.len(), 6);
}

#[test]
fn https_only_refuses_every_http_destination_url() {
    let text = format!(
        "[security]\nhttps_only = true\nallow_networks = [\"0.0.0.0/0\", \"::/0\"]\n{DESTINATIONS}"
    );
    let e = load(&text, &[]).unwrap_err();
    let paths: Vec<&str> = e.iter().map(|e| e.split(": ").nth(1).unwrap()).collect();
    assert_eq!(
        paths,
        [
            "destinations[1].url",
            "destinations[2].endpoint",
            "destinations[3].endpoint",
            "destinations[4].endpoint",
            "destinations[5].url",
        ]
    );
    assert!(
        e[0].ends_with("http:// is refused by security.https_only; use an https:// URL"),
        "{e:?}"
    );
    let https = text.replace("http://", "https://");
    assert!(load(&https, &[]).is_ok());
}

#[test]
fn config_urls_follow_https_only_and_the_allow_list() {
    let open = SecurityConfig::default();
    let strict = SecurityConfig {
        https_only: true,
        ..SecurityConfig::default()
    };
    assert!(check_config_url("http://hooks.example.com", &open).is_ok());
    let e = check_config_url("http://hooks.example.com", &strict).unwrap_err();
    assert!(e.contains("security.https_only"), "{e}");
    assert!(check_config_url("https://hooks.example.com", &strict).is_ok());
    let e = check_config_url("https://169.254.169.254/latest", &open).unwrap_err();
    assert!(e.contains("cloud instance metadata"), "{e}");
    let allowed = SecurityConfig::allowing(&["10.0.0.0/8"]).unwrap();
    assert!(check_config_url("http://10.0.0.5:8080", &allowed).is_ok());
    // Names are judged when they are resolved, not at configuration time.
    assert!(check_config_url("http://localhost:8080", &open).is_ok());
}
