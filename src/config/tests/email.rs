//! The `email` destination type as the configuration loader and the API read it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{parse, parse_destination, DeliveryConfig, SecurityConfig, SinkConfig};
use crate::event::Level;

const KEYS: &str = "host = \"smtp.example.com\"\nfrom = \"alerts@example.com\"\nto = [\"ops@example.com\"]\nusername = \"u\"\npassword = \"${SMTP_PASSWORD}\"";

fn load(keys: &str) -> Result<crate::config::Config, Vec<String>> {
    let text = format!("[[destinations]]\nproject = \"p\"\nid = \"m\"\ntype = \"email\"\n{keys}\n");
    let env: BTreeMap<String, String> =
        [("SMTP_PASSWORD".to_owned(), "pw-0123456789".to_owned())].into();
    parse("test.toml", &text, &env).map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

#[test]
fn defaults_are_for_people() {
    let c = load(KEYS).unwrap();
    let d = &c.destinations[0];
    let SinkConfig::Email(e) = &d.sink else {
        panic!("not email")
    };
    assert_eq!(e.password.as_ref().unwrap().expose(), "pw-0123456789");
    assert_eq!(e.min_interval, Duration::from_secs(900));
    assert_eq!(e.port(), 587);
    // ERROR only, five-minute batches, unless the destination says otherwise.
    assert_eq!(d.filter.min_level, Some(Level::Error));
    assert_eq!(d.delivery.batch_timeout, Duration::from_secs(300));
    assert_eq!(d.delivery.max_in_flight, c.delivery.max_in_flight);
    assert!(!format!("{d:?}").contains("pw-0123456789"));
    let c = load(&format!(
        "{KEYS}\n[destinations.filter]\nmin_level = \"WARN\"\n[destinations.delivery]\nbatch_timeout = \"30s\""
    ))
    .unwrap();
    let d = &c.destinations[0];
    assert_eq!(d.filter.min_level, Some(Level::Warn));
    assert_eq!(d.delivery.batch_timeout, Duration::from_secs(30));
}

#[test]
fn errors_name_the_key_and_never_the_password() {
    let e = load("host = \"smtp://mail:25\"\nfrom = \"x\"\nto = []\npassword = \"${SMTP_PASSWORD}\"\nmin_interval = \"3d\"\ntls_mode = \"ssl\"").unwrap_err();
    let text = e.join("\n");
    for key in ["host", "from", "to", "username", "tls_mode"] {
        assert!(
            text.contains(&format!("destinations[0].{key}:")),
            "{key}: {text}"
        );
    }
    assert!(!text.contains("pw-0123456789"), "{text}");
    let e = load(&format!("{KEYS}\nmin_interval = \"3d\"")).unwrap_err();
    assert!(e[0].contains("destinations[0].min_interval: "), "{e:?}");
    // A literal private address is refused at load time (names when resolved).
    let e = load(&KEYS.replace("smtp.example.com", "10.0.0.5")).unwrap_err();
    assert!(
        e[0].contains("destinations[0].host: refused: 10.0.0.5"),
        "{e:?}"
    );
    // tls_ca_file is read when loaded.
    let e = load(&format!("{KEYS}\ntls_ca_file = \"/nonexistent/ca.pem\"")).unwrap_err();
    assert!(
        e[0].contains("destinations[0].tls_ca_file: cannot read /nonexistent/ca.pem"),
        "{e:?}"
    );
}

#[test]
fn the_api_refuses_host_files_and_plain_smtp_under_https_only() {
    let definition = serde_json::json!({
        "project": "p", "id": "m", "type": "email", "host": "smtp.example.com",
        "from": "a@example.com", "to": ["b@example.com"], "tls_ca_file": "/etc/passwd",
    });
    let errors = parse_destination(
        definition,
        &DeliveryConfig::default(),
        &SecurityConfig::default(),
    )
    .unwrap_err();
    assert_eq!(
        errors,
        [(
            "/tls_ca_file".to_owned(),
            "names a file on the courier host; not accepted through the API".to_owned()
        )]
    );
    let strict = SecurityConfig {
        https_only: true,
        ..SecurityConfig::default()
    };
    let definition = serde_json::json!({
        "project": "p", "id": "m", "type": "email", "host": "smtp.example.com",
        "from": "a@example.com", "to": ["b@example.com"], "tls_mode": "none",
    });
    let errors = parse_destination(definition, &DeliveryConfig::default(), &strict).unwrap_err();
    assert_eq!(errors[0].0, "/tls_mode", "{errors:?}");
}
