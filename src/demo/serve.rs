//! `courier demo --serve`: the demo with the destinations API and the web console on, so a
//! newcomer can look at the console with live data. The API needs a sealing key and a token;
//! both are made up for this run (random, never written anywhere but the terminal), and the
//! generator keeps a trickle of events flowing so the charts move until Ctrl-C.

use std::collections::BTreeMap;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::Engine as _;

/// The environment variable the demo's `[api]` reads its sealing key from.
const KEY_ENV: &str = "DEMO_API_KEY";
/// The environment variable the demo's `[api]` reads its token from.
const TOKEN_ENV: &str = "DEMO_API_TOKEN";

/// What `--serve` adds to the demo's configuration: an `[api]` section with one token that
/// may act on every project, and a quick status publication so the console is current.
const API_SECTION: &str = r#"

# Added by `courier demo --serve`: the destinations API and the web console.
[api]
encryption_key_env = "DEMO_API_KEY"
tokens = [{ token = "${DEMO_API_TOKEN}" }]
status_interval = "1s"
replica_timeout = "5s"
"#;

/// The console's sign-in for this run.
pub struct Access {
    /// The bearer token to paste into the console's sign-in.
    pub token: String,
}

/// Adds the `[api]` section to `config` and its key and token to `env`.
pub fn enable_api(config: &str, env: &mut BTreeMap<String, String>) -> (String, Access) {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    let mut token = [0u8; 24];
    OsRng.fill_bytes(&mut token);
    let token = format!(
        "demo_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
    );
    env.insert(
        KEY_ENV.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(key),
    );
    env.insert(TOKEN_ENV.to_owned(), token.clone());
    (format!("{config}{API_SECTION}"), Access { token })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_demo_configuration_is_valid_and_its_token_is_fresh() {
        let mut env = BTreeMap::from([
            ("DEMO_BROKERS".to_owned(), "127.0.0.1:9092".to_owned()),
            ("DEMO_WEBHOOK".to_owned(), "http://127.0.0.1:1".to_owned()),
            ("DEMO_SMTP_PORT".to_owned(), "2525".to_owned()),
        ]);
        let (text, access) = enable_api(super::super::DEMO_CONFIG, &mut env);
        let config = crate::config::parse("config/demo.toml", &text, &env).unwrap();
        let api = config.api.expect("the section was added");
        assert_eq!(api.tokens.len(), 1);
        assert_eq!(api.tokens[0].token.expose(), access.token);
        assert!(api.key.is_some());
        let (_, again) = enable_api(super::super::DEMO_CONFIG, &mut env);
        assert_ne!(access.token, again.token);
    }
}
