//! One destination table: the parts every type shares, the type's own keys, and the checks
//! of both. Used by the file loader and, with [`Origin::Api`], by the destinations API (its
//! definitions and the stored ones it replays), so both refuse exactly the same values.
//!
//! Every error of a table is reported at once: a key whose type is wrong is recorded and
//! left out, and the table is read again without it ([`typed_lenient`]), so the other keys
//! are still deserialized and checked; the URL keys are checked from the raw table when the
//! typed one cannot be had at all.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use courier_core::settings::{
    path_text, push_typed_error, typed_table, validate_delivery, DeliveryOverrides, Errors,
};

use super::pointer::{json_pointer, shortened, unknown_field};
use super::{bounds, DeliveryConfig, DestinationConfig, RawTable, SecurityConfig, SinkConfig};
use crate::routing::FilterConfig;
use crate::sinks::datadog::DatadogConfig;
use crate::sinks::email::EmailConfig;
use crate::sinks::file::FileConfig;
use crate::sinks::otlp::OtlpConfig;
use crate::sinks::s3::S3Config;
use crate::sinks::splunk::SplunkConfig;
use crate::sinks::webhook::{self, WebhookConfig};

/// Who wrote a definition, which decides whether it may use the courier host's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// The operator's configuration file: `file` destinations and `tls.ca_file` (Splunk, OTLP) are
    /// allowed (the CA file is read, within [`bounds::MAX_CA_FILE_BYTES`]).
    File,
    /// The destinations API (a tenant): nothing on the host is opened, read or even looked
    /// at; keys that name host files are refused before anything else is done with them.
    Api,
}

/// The parts of a destination table every type shares.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    project: String,
    id: String,
    /// Required and a string; which one is read from the raw table (see `destination_at`).
    #[serde(rename = "type")]
    _kind: String,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

const COMMON_KEYS: &[&str] = &["project", "id", "type", "enabled", "filter", "delivery"];

/// Refused for API definitions: `file` writes on the host.
const API_FILE_TYPE: &str =
    "file destinations write on the courier host; they can be configured only in the configuration file";

/// Refused for API definitions, whatever the path: the answer must not tell whether it exists.
const API_HOST_FILE: &str = "names a file on the courier host; not accepted through the API";

/// Parses one destination table given as JSON (the destinations API's definitions) with the
/// configuration's `[delivery]` defaults and `[security]`. Errors are `(JSON pointer, message)`
/// pairs: `("/filter/min_level", "unknown level …")`; the pointer is `""` for the whole value.
/// Unlike the file, `${VAR}` in `value` is not interpolated, and no key may name a file on
/// the courier host (none is ever opened).
pub fn parse_destination(
    value: Value,
    defaults: &DeliveryConfig,
    security: &SecurityConfig,
) -> Result<DestinationConfig, Vec<(String, String)>> {
    let mut errors = Errors::new("");
    let parsed = destination_at(value, "", Origin::Api, defaults, security, &mut errors);
    match parsed {
        Some(d) if errors.is_empty() => Ok(d),
        _ => Err(errors
            .into_list()
            .into_iter()
            .map(|e| (json_pointer(&e.path, &e.message), shortened(e.message)))
            .collect()),
    }
}

/// The `[[destinations]]` table at `index` of the configuration file.
pub(super) fn destination(
    value: Value,
    index: usize,
    defaults: &DeliveryConfig,
    security: &SecurityConfig,
    errors: &mut Errors,
) -> Option<DestinationConfig> {
    destination_at(
        value,
        &format!("destinations[{index}]"),
        Origin::File,
        defaults,
        security,
        errors,
    )
}

fn destination_at(
    value: Value,
    prefix: &str,
    origin: Origin,
    defaults: &DeliveryConfig,
    security: &SecurityConfig,
    errors: &mut Errors,
) -> Option<DestinationConfig> {
    let prefix = prefix.to_owned();
    let original = value.clone();
    let Value::Object(mut table) = value else {
        errors.push(prefix, "must be a table");
        return None;
    };
    let mut common = Map::new();
    for key in COMMON_KEYS {
        if let Some(v) = table.remove(*key) {
            common.insert((*key).to_owned(), v);
        }
    }
    let shaping_keys = super::shaping::take_keys(&mut table);
    let rate_limit =
        super::rate_limit::destination(&mut table, &prefix, security.rate_ceiling, errors);
    let daily_cap_value = table.remove("daily_cap");
    let filter_value = common.remove("filter");
    let delivery_value = common.remove("delivery");
    let before = errors.len();
    // The type decides which keys the rest of the table may have; it is read from the raw
    // table so that a mistake in another common key does not hide the type's own errors.
    let kind = common
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if origin == Origin::Api {
        refuse_host_files(kind.as_deref(), &mut table, &prefix, errors);
    }
    let (common, removed) = typed_lenient::<Common>(Ok(common), &prefix, errors);
    let common = common.filter(|_| removed.is_empty());
    if let Some(c) = &common {
        check_name(
            &c.project,
            "project",
            bounds::MAX_PROJECT_CHARS,
            &prefix,
            errors,
        );
        check_name(&c.id, "id", bounds::MAX_ID_CHARS, &prefix, errors);
    }
    let filter = match filter_value {
        // Email is read by people: without a filter, errors only.
        None if kind.as_deref() == Some("email") => Some(crate::sinks::email::default_filter()),
        None if kind.as_deref() == Some("webhook") => Some(webhook::default_filter(&table)),
        None => Some(FilterConfig::default()),
        Some(v) => filter(v, &format!("{prefix}.filter"), errors),
    };
    // s3 destinations write objects, not requests: the batch limits they do not set in
    // [destinations.delivery] are the s3 defaults, not [delivery]'s request-sized ones.
    // Email digests likewise: five-minute batches (see `sinks::email`).
    let own_defaults;
    let defaults = match kind.as_deref() {
        Some("s3") => {
            own_defaults = crate::sinks::s3::delivery_defaults(defaults);
            &own_defaults
        }
        Some("email") => {
            own_defaults = crate::sinks::email::delivery_defaults(defaults);
            &own_defaults
        }
        Some("webhook") => {
            own_defaults = webhook::delivery_defaults(&table, defaults);
            &own_defaults
        }
        _ => defaults,
    };
    let shaping =
        super::shaping::destination(shaping_keys, &prefix, security.redact.as_ref(), errors);
    let daily_cap = daily_cap_value.and_then(|v| super::shaping::daily_cap(v, &prefix, errors));
    let delivery = match delivery_value {
        None => Some(defaults.clone()),
        Some(v) => delivery(v, &format!("{prefix}.delivery"), defaults, errors),
    };
    let sink = match kind.as_deref() {
        Some("webhook") => sink_table(
            table,
            &prefix,
            security,
            errors,
            WebhookConfig::validate,
            SinkConfig::Webhook,
            &[("url", WebhookConfig::check_url)],
        )
        .filter(|sink| match (sink, &delivery) {
            (SinkConfig::Webhook(c), Some(d)) => c
                .check_delivery(d)
                .map_err(|(key, message)| errors.push(format!("{prefix}.{key}"), message))
                .is_ok(),
            _ => true,
        }),
        // Refused above, unread.
        Some("file") if origin == Origin::Api => None,
        Some("file") => typed_lenient::<FileConfig>(Ok(table), &prefix, errors)
            .0
            .and_then(
                |c| match bounds::bytes(&c.path.to_string_lossy(), bounds::MAX_PATH_BYTES) {
                    Ok(()) => Some(SinkConfig::File(c)),
                    Err(message) => {
                        errors.push(format!("{prefix}.path"), message);
                        None
                    }
                },
            ),
        Some("s3") => sink_table(
            table,
            &prefix,
            security,
            errors,
            S3Config::validate,
            SinkConfig::S3,
            &[("endpoint", S3Config::check_endpoint)],
        ),
        Some("datadog") => sink_table(
            table,
            &prefix,
            security,
            errors,
            DatadogConfig::validate,
            SinkConfig::Datadog,
            &[("endpoint", DatadogConfig::check_endpoint)],
        ),
        Some("splunk_hec") => sink_table(
            table,
            &prefix,
            security,
            errors,
            SplunkConfig::validate,
            SinkConfig::SplunkHec,
            &[("endpoint", SplunkConfig::check_endpoint)],
        )
        .filter(|sink| ca_file(sink, origin, &prefix, errors)),
        Some("otlp") => sink_table(
            table,
            &prefix,
            security,
            errors,
            OtlpConfig::validate,
            SinkConfig::Otlp,
            &[("endpoint", OtlpConfig::check_endpoint)],
        )
        .filter(|sink| ca_file(sink, origin, &prefix, errors)),
        Some("email") => sink_table(
            table,
            &prefix,
            security,
            errors,
            EmailConfig::validate,
            SinkConfig::Email,
            &[],
        )
        .filter(|sink| {
            let SinkConfig::Email(c) = sink else {
                return true;
            };
            // The API's definitions lost `tls_ca_file` already; the file's are read here.
            let checked = c.check_security(security).and_then(|()| match origin {
                Origin::Api => Ok(()),
                Origin::File => c.read_host_files(),
            });
            checked
                .map_err(|(key, message)| errors.push(format!("{prefix}.{key}"), message))
                .is_ok()
        }),
        Some(other) => {
            errors.push(
                format!("{prefix}.type"),
                format!("unknown destination type {other:?}; expected webhook, datadog, splunk_hec, otlp, email, s3 or file"),
            );
            None
        }
        // `type` missing or not a string: reported by `Common`.
        None => None,
    };
    if errors.len() > before {
        return None;
    }
    let common = common?;
    let shaping = shaping?;
    Some(DestinationConfig {
        project: common.project,
        id: common.id,
        enabled: common.enabled,
        sink: sink?,
        filter: filter?,
        delivery: delivery?,
        shape: shaping.shape,
        sample: shaping.sample,
        rate_limit: rate_limit.ok()?,
        daily_cap,
        table: RawTable(original),
    })
}

/// `delivery`: the overrides laid over `defaults`, checked. Only what the destination sets
/// is reported here (the defaults' own errors are `[delivery]`'s), and a changed
/// `retry_initial_backoff` is still checked against the default `retry_max_backoff`.
fn delivery(
    value: Value,
    path: &str,
    defaults: &DeliveryConfig,
    errors: &mut Errors,
) -> Option<DeliveryConfig> {
    let set: Vec<String> = value
        .as_object()
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();
    let (overrides, removed) = typed_lenient::<DeliveryOverrides>(as_table(value), path, errors);
    let d = overrides?.apply(defaults);
    let mut found = Errors::new(errors.file());
    validate_delivery(&d, path, &mut found);
    let is_set = |key: &str| set.iter().any(|k| k == key);
    let before = errors.len();
    for e in found.into_list() {
        let key = e
            .path
            .strip_prefix(path)
            .unwrap_or(&e.path)
            .trim_start_matches('.')
            .split('[')
            .next()
            .unwrap_or_default();
        let crossed = key == "retry_max_backoff" && is_set("retry_initial_backoff");
        if is_set(key) || crossed {
            errors.push_error(e);
        }
    }
    (removed.is_empty() && errors.len() == before).then_some(d)
}

/// A value that should be a table, as one (anything else becomes an empty table plus the
/// error serde gives for it: `invalid type: …, expected struct …`).
fn as_table(value: Value) -> Result<Map<String, Value>, Value> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(other),
    }
}

/// API definitions: the keys that would make courier open a file on its host are refused and
/// taken out of the table before anything reads it.
fn refuse_host_files(
    kind: Option<&str>,
    table: &mut Map<String, Value>,
    prefix: &str,
    errors: &mut Errors,
) {
    match kind {
        Some("file") => errors.push(format!("{prefix}.type"), API_FILE_TYPE),
        Some("splunk_hec" | "otlp") => {
            if let Some(Value::Object(tls)) = table.get_mut("tls") {
                if tls.remove("ca_file").is_some_and(|v| !v.is_null()) {
                    errors.push(format!("{prefix}.tls.ca_file"), API_HOST_FILE);
                }
            }
        }
        // Taken out of the table whatever it holds; a value is refused.
        Some("email") if table.remove("tls_ca_file").is_some_and(|v| !v.is_null()) => {
            errors.push(format!("{prefix}.tls_ca_file"), API_HOST_FILE);
        }
        _ => {}
    }
}

/// `tls.ca_file` (`splunk_hec`, `otlp`): read now for the file's definitions, to report a
/// missing or unusable one at load time. The API's lost the key already and are never read
/// from the host whatever they say: written as `"tls": ["/etc/passwd"]`, the key is still there
/// (serde reads a struct from an array by position), so it is refused here too.
fn ca_file(sink: &SinkConfig, origin: Origin, prefix: &str, errors: &mut Errors) -> bool {
    let tls = match sink {
        SinkConfig::SplunkHec(c) => &c.tls,
        SinkConfig::Otlp(c) => &c.tls,
        _ => return true,
    };
    let Some(path) = &tls.ca_file else {
        return true;
    };
    let result = match origin {
        Origin::Api => Err((format!("{prefix}.tls"), API_HOST_FILE.to_owned())),
        Origin::File => crate::sinks::util::tls::read_ca_file(path)
            .map(|_| ())
            .map_err(|m| (format!("{prefix}.tls.ca_file"), m)),
    };
    result.map_err(|(key, m)| errors.push(key, m)).is_ok()
}

/// `project` and `id`: not empty, at most `max` characters, no control characters (they
/// appear in logs, metric labels and object keys).
fn check_name(value: &str, key: &str, max: usize, prefix: &str, errors: &mut Errors) {
    let result = if value.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else if value.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        bounds::chars(value, max)
    };
    if let Err(message) = result {
        errors.push(format!("{prefix}.{key}"), message);
    }
}

/// `filter`: its keys, their combinations, and the length of its lists and strings.
fn filter(value: Value, path: &str, errors: &mut Errors) -> Option<FilterConfig> {
    let before = errors.len();
    let (f, _) = typed_lenient::<FilterConfig>(as_table(value), path, errors);
    let f = f?;
    if let Err((key, message)) = f.validate() {
        errors.push(format!("{path}.{key}"), message);
    }
    for (key, list) in [
        ("types", &f.types),
        ("end_user_ids", &f.end_user_ids),
        ("integration_ids", &f.integration_ids),
        ("trace_ids", &f.trace_ids),
        ("event_names", &f.event_names),
    ] {
        if let Err(message) = bounds::entries(list.len(), bounds::MAX_FILTER_VALUES) {
            errors.push(format!("{path}.{key}"), message);
        }
        for (i, v) in list.iter().enumerate() {
            if let Err(message) = bounds::chars(v, bounds::MAX_FILTER_VALUE_CHARS) {
                errors.push(format!("{path}.{key}[{i}]"), message);
            }
        }
    }
    if let Some(levels) = &f.levels {
        if let Err(message) = bounds::entries(levels.len(), bounds::MAX_FILTER_VALUES) {
            errors.push(format!("{path}.levels"), message);
        }
    }
    if let Some(search) = &f.search {
        if let Err(message) = bounds::chars(search, bounds::MAX_FILTER_VALUE_CHARS) {
            errors.push(format!("{path}.search"), message);
        }
    }
    (errors.len() == before).then_some(f)
}

/// A sink configuration's `validate`: every `(key, message)` wrong.
type Validate<T> = fn(&T) -> Result<(), Vec<(String, String)>>;

/// A URL key's syntax check, applicable to the raw string.
type UrlCheck = fn(&str) -> Result<(), String>;

/// The type's own keys: deserialized leniently, then `validate` (every error), then the
/// SSRF guard's configuration-time check of the URL keys. When the typed table cannot be
/// had (a required key is missing or unusable), the URL keys are still checked from the raw
/// table, syntax (`url_checks`) and guard alike. `None` when anything is wrong.
fn sink_table<T: DeserializeOwned>(
    table: Map<String, Value>,
    prefix: &str,
    security: &SecurityConfig,
    errors: &mut Errors,
    validate: Validate<T>,
    wrap: fn(T) -> SinkConfig,
    url_checks: &[(&str, UrlCheck)],
) -> Option<SinkConfig> {
    let raw = table.clone();
    let (typed, removed) = typed_lenient::<T>(Ok(table), prefix, errors);
    let Some(config) = typed else {
        for (key, check) in url_checks {
            let Some(Value::String(url)) = raw.get(*key) else {
                continue;
            };
            if removed.iter().any(|r| r == key) {
                continue;
            }
            let result =
                check(url).and_then(|()| crate::sinks::ssrf::check_config_url(url, security));
            if let Err(message) = result {
                errors.push(format!("{prefix}.{key}"), message);
            }
        }
        return None;
    };
    let invalid = validate(&config).err().unwrap_or_default();
    let top = |key: &str| key.split(['.', '[']).next().unwrap_or(key).to_owned();
    for (key, message) in &invalid {
        if !removed.contains(&top(key)) {
            errors.push(format!("{prefix}.{key}"), message.clone());
        }
    }
    let sink = wrap(config);
    for (key, url) in crate::sinks::ssrf::destination_urls(&sink) {
        let reported = removed.iter().any(|r| r == key) || invalid.iter().any(|(k, _)| k == key);
        if reported {
            continue;
        }
        if let Err(message) = crate::sinks::ssrf::check_config_url(url, security) {
            errors.push(format!("{prefix}.{key}"), message);
        }
    }
    (invalid.is_empty() && removed.is_empty()).then_some(sink)
}

/// Deserializes `table` as `T`, recording every error rather than the first: a key that
/// fails is recorded (with its path under `prefix`), taken out, and the rest read again.
/// Returns the value read without the failing keys (`None` when even that fails, e.g. a
/// required key is missing) and the keys taken out. `Err(v)`: not a table at all.
pub(super) fn typed_lenient<T: DeserializeOwned>(
    table: Result<Map<String, Value>, Value>,
    prefix: &str,
    errors: &mut Errors,
) -> (Option<T>, Vec<String>) {
    let mut table = match table {
        Ok(t) => t,
        Err(other) => return (typed_table::<T>(other, prefix, errors), Vec::new()),
    };
    let mut removed: Vec<String> = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(Value::Object(table.clone())) {
            Ok(v) => return (Some(v), removed),
            Err(e) => e,
        };
        let inner = path_text(error.path());
        // The table's key the error is under (unquoted, as in the table).
        let top = match error.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) => Some(key.clone()),
            _ => None,
        };
        let message = error.into_inner().to_string();
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next());
        if missing.is_some_and(|k| removed.iter().any(|r| r == k)) {
            // A required key already reported as unusable.
            return (None, removed);
        }
        let key = if inner == "." {
            unknown_field(&message).map(str::to_owned)
        } else {
            top
        };
        push_typed_error(errors, prefix, &inner, message);
        match key {
            Some(k) if table.remove(&k).is_some() => removed.push(k),
            _ => return (None, removed),
        }
    }
}
