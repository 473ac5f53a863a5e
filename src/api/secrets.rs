//! Which keys of a destination definition hold secrets, and what is done with them: masked in
//! every answer (`"****1234"`), sealed before the definition is written to the store, opened
//! when it is read back, and kept when a client sends the mask back unchanged.

use serde_json::Value;

use super::crypto::{Cipher, OpenError};

/// The secret keys of a destination type: `(key, every value of a table)`. `("headers", true)`
/// means each value of the `headers` table is a secret.
fn secret_keys(kind: &str) -> &'static [(&'static str, bool)] {
    match kind {
        "webhook" => &[
            ("secret", false),
            ("headers", true),
            ("template_secret", false),
        ],
        "datadog" => &[("api_key", false)],
        "splunk_hec" => &[("token", false)],
        "otlp" => &[("headers", true)],
        "email" => &[("password", false)],
        "s3" => &[
            ("access_key_id", false),
            ("secret_access_key", false),
            ("session_token", false),
        ],
        _ => &[],
    }
}

/// The secret keys every type shares: the HMAC key of `redact_with = "hmac"`.
const SHAPING_SECRETS: &[(&str, bool)] = &[("redact_key", false)];

/// Calls `f(path, value)` for every secret string of `definition` (`path` like `headers.X`).
fn for_each_secret(definition: &mut Value, mut f: impl FnMut(&str, &mut String)) {
    let kind = definition
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(table) = definition.as_object_mut() else {
        return;
    };
    for (key, nested) in secret_keys(&kind).iter().chain(SHAPING_SECRETS) {
        match (table.get_mut(*key), nested) {
            (Some(Value::String(s)), false) => f(key, s),
            (Some(Value::Object(map)), true) => {
                for (name, v) in map.iter_mut() {
                    if let Value::String(s) = v {
                        f(&format!("{key}.{name}"), s);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The mask of a secret: its last four characters when it is at least 12 long, else nothing.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() >= 12 {
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("****{tail}")
    } else {
        "****".to_owned()
    }
}

/// `definition` with every secret masked.
pub fn masked(definition: &Value) -> Value {
    let mut out = definition.clone();
    for_each_secret(&mut out, |_, s| *s = mask(s));
    out
}

/// Every secret of `definition` (to check that none leaks).
pub fn secrets(definition: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut copy = definition.clone();
    for_each_secret(&mut copy, |_, s| out.push(s.clone()));
    out
}

fn context(project: &str, id: &str, path: &str) -> String {
    format!("courier-destinations/{project}/{id}#{path}")
}

/// `definition` with every secret sealed, bound to `project/id` and its key path.
pub fn seal(cipher: &Cipher, project: &str, id: &str, definition: &Value) -> Value {
    let mut out = definition.clone();
    for_each_secret(&mut out, |path, s| {
        *s = cipher.seal(s, &context(project, id, path));
    });
    out
}

/// Opens every sealed secret of `definition`.
pub fn open(
    cipher: &Cipher,
    project: &str,
    id: &str,
    definition: &Value,
) -> Result<Value, (String, OpenError)> {
    let mut out = definition.clone();
    let mut failed = None;
    for_each_secret(&mut out, |path, s| {
        if failed.is_some() {
            return;
        }
        match cipher.open(s, &context(project, id, path)) {
            Ok(plain) => *s = plain,
            Err(e) => failed = Some((path.to_owned(), e)),
        }
    });
    match failed {
        Some(f) => Err(f),
        None => Ok(out),
    }
}

/// The keys that say where a destination sends, and so where its secrets go.
fn target_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "webhook" => &["url"],
        "datadog" => &["site", "endpoint"],
        "splunk_hec" => &["endpoint"],
        "otlp" => &["endpoint", "logs_path"],
        // tls_mode = "none" would send the password unencrypted.
        "email" => &["host", "port", "tls_mode", "username"],
        // force_path_style moves the bucket between the path and the host name.
        "s3" => &["endpoint", "bucket", "region", "force_path_style"],
        _ => &[],
    }
}

/// The JSON pointer of a secret's key path (`headers.X-Key` → `/headers/X-Key`).
fn pointer(path: &str) -> String {
    let escape = |s: &str| s.replace('~', "~0").replace('/', "~1");
    match path.split_once('.') {
        Some((key, name)) => format!("/{}/{}", escape(key), escape(name)),
        None => format!("/{}", escape(path)),
    }
}

/// In a new definition, a secret given as exactly the mask of the stored secret at the same
/// key means "unchanged": it is replaced by the stored secret, so a client can send back what
/// it read. But only while the destination sends where it did: when one of its target keys
/// ([`target_keys`]: the webhook `url`, a Datadog `site`/`endpoint`, the Splunk `endpoint`,
/// the S3 `endpoint`/`bucket`/`region`) changes, each secret sent as a mask is an error
/// (`(JSON pointer, message)`), so that whoever may edit a destination cannot send its stored
/// secrets, which they cannot read, to a host of their choosing (Svix and Stripe ask the
/// same).
pub fn keep_unchanged(new: &mut Value, old: &Value) -> Result<(), Vec<(String, String)>> {
    if new.get("type") != old.get("type") {
        return Ok(());
    }
    let kind = old.get("type").and_then(Value::as_str).unwrap_or_default();
    let given = |v: &Value, key: &str| v.get(key).filter(|v| !v.is_null()).cloned();
    let moved: Vec<&str> = target_keys(kind)
        .iter()
        .copied()
        .filter(|key| given(new, key) != given(old, key))
        .collect();
    let mut stored = std::collections::HashMap::new();
    let mut old = old.clone();
    for_each_secret(&mut old, |path, s| {
        stored.insert(path.to_owned(), s.clone());
    });
    let mut kept = Vec::new();
    for_each_secret(new, |path, s| {
        if let Some(previous) = stored.get(path) {
            if s.starts_with("****") && *s == mask(previous) {
                *s = previous.clone();
                kept.push(path.to_owned());
            }
        }
    });
    if moved.is_empty() || kept.is_empty() {
        return Ok(());
    }
    let changed = moved.join(", ");
    Err(kept
        .iter()
        .map(|path| {
            (
                pointer(path),
                format!("is the mask of the stored secret, but {changed} changed: a stored secret is sent only where it was sent before; give the secret again"),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EncryptionKey;
    use serde_json::json;

    fn hook() -> Value {
        json!({
            "type": "webhook", "url": "https://example.com/h",
            "secret": "whsec_0123456789abcdef",
            "headers": { "Authorization": "Bearer tok-1234567890", "X-Short": "abc" },
        })
    }

    #[test]
    fn masks_every_secret() {
        assert_eq!(mask("abcdefghijkl"), "****ijkl");
        assert_eq!(mask("abcdefghijk"), "****");
        let m = masked(&hook());
        assert_eq!(m["secret"], "****cdef");
        assert_eq!(m["headers"]["Authorization"], "****7890");
        assert_eq!(m["headers"]["X-Short"], "****");
        assert_eq!(m["url"], "https://example.com/h");
        let dd = masked(&json!({"type": "datadog", "api_key": "0123456789abcdef0123"}));
        assert_eq!(dd["api_key"], "****0123");
        let s3 = masked(&json!({"type": "s3", "bucket": "b", "secret_access_key": "x"}));
        assert_eq!(s3["secret_access_key"], "****");
        assert_eq!(s3["bucket"], "b");
        let pd = masked(&json!({"type": "webhook", "preset": "pagerduty",
            "template_secret": "R0ut1ngKeyR0ut1ngKeyR0ut1ngKey32"}));
        assert_eq!(pd["template_secret"], "****ey32");
        assert_eq!(pd["preset"], "pagerduty");
    }

    #[test]
    fn seals_and_opens_a_definition() {
        let cipher = Cipher::new(&EncryptionKey([9; 32]));
        let sealed = seal(&cipher, "p", "d", &hook());
        let text = sealed.to_string();
        for s in secrets(&hook()) {
            assert!(!text.contains(&s), "{s} leaked into {text}");
        }
        assert_eq!(open(&cipher, "p", "d", &sealed).unwrap(), hook());
        let (path, _) = open(&cipher, "p", "other", &sealed).unwrap_err();
        assert_eq!(path, "secret");
        let wrong = Cipher::new(&EncryptionKey([8; 32]));
        assert!(open(&wrong, "p", "d", &sealed).is_err());
    }

    #[test]
    fn a_mask_sent_back_keeps_the_stored_secret() {
        let old = hook();
        let mut new = masked(&old);
        new["headers"]["X-New"] = json!("fresh-value");
        new["headers"]["X-Short"] = json!("****");
        keep_unchanged(&mut new, &old).unwrap();
        assert_eq!(new["secret"], old["secret"]);
        assert_eq!(
            new["headers"]["Authorization"],
            old["headers"]["Authorization"]
        );
        assert_eq!(new["headers"]["X-Short"], "abc");
        assert_eq!(new["headers"]["X-New"], "fresh-value");
        let mut changed = masked(&old);
        changed["secret"] = json!("whsec_other");
        keep_unchanged(&mut changed, &old).unwrap();
        assert_eq!(changed["secret"], "whsec_other");
    }

    #[test]
    fn a_mask_sent_to_a_new_place_is_refused() {
        let old = hook();
        let mut moved = masked(&old);
        moved["url"] = json!("https://elsewhere.example/h");
        let errors = keep_unchanged(&mut moved, &old).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            pointers,
            ["/secret", "/headers/Authorization", "/headers/X-Short"]
        );
        assert!(errors[0].1.contains("url changed"), "{errors:?}");
        for (_, message) in &errors {
            for secret in secrets(&old) {
                assert!(!message.contains(&secret), "{message}");
            }
        }
        // Given again, the secrets go along.
        let mut given = old.clone();
        given["url"] = json!("https://elsewhere.example/h");
        keep_unchanged(&mut given, &old).unwrap();
        // Same place, masks kept.
        let mut same = masked(&old);
        keep_unchanged(&mut same, &old).unwrap();
        assert_eq!(same, old);
        // Each target key of each type counts.
        for (kind, secret, key, value) in [
            ("datadog", "api_key", "site", json!("datadoghq.eu")),
            (
                "datadog",
                "api_key",
                "endpoint",
                json!("https://proxy.example"),
            ),
            (
                "splunk_hec",
                "token",
                "endpoint",
                json!("https://other.example:8088"),
            ),
            (
                "s3",
                "secret_access_key",
                "endpoint",
                json!("https://minio.example"),
            ),
            ("s3", "secret_access_key", "bucket", json!("other-bucket")),
            ("s3", "secret_access_key", "region", json!("eu-west-1")),
            ("s3", "secret_access_key", "force_path_style", json!(true)),
        ] {
            let old = json!({ "type": kind, secret: "0123456789abcdef0123" });
            let mut new = masked(&old);
            new[key] = value;
            let errors = keep_unchanged(&mut new, &old).unwrap_err();
            assert_eq!(errors[0].0, format!("/{secret}"), "{kind} {key}");
        }
    }
}
