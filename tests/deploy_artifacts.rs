//! Checks of the operations artifacts: the `Dockerfile`, the Kubernetes manifests, the
//! Prometheus alert rules and the Grafana dashboard under `deploy/`, and `docs/operations.md`.
//!
//! Real tools where they exist: `promtool` (Debian's `prometheus` package) checks the rules,
//! runs their unit tests, parses every dashboard query and lints a live `/metrics` scrape;
//! PyYAML parses the manifests; `hadolint` lints the Dockerfile; the compiled `courier` binary
//! validates the ConfigMaps' configurations and is scraped while it delivers real traffic
//! from a tansu broker (TESTING.md: one record per batch, as the harness produces) to webhook
//! receivers that accept, reject and fail on purpose. `scripts/install-deps` installs all of
//! them; when one is missing outside CI the test that needs it says so and passes, under CI
//! (`CI` set) it fails.
//!
//! The metric names rules and panels may use are the contract below ([`METRICS`]); every one
//! must be in the live scrape, with its type and labels.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The metric contract
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric the alert rules and the dashboard may use: (name, type, label names).
const METRICS: &[(&str, Kind, &[&str])] = &[
    ("courier_events_consumed_total", Kind::Counter, &[]),
    ("courier_consumed_bytes_total", Kind::Counter, &[]),
    (
        "courier_events_unroutable_total",
        Kind::Counter,
        &["reason"],
    ),
    (
        "courier_events_routed_total",
        Kind::Counter,
        &["destination_type"],
    ),
    (
        "courier_events_delivered_total",
        Kind::Counter,
        &["destination_type"],
    ),
    (
        "courier_delivered_bytes_total",
        Kind::Counter,
        &["destination_type"],
    ),
    (
        "courier_events_failed_total",
        Kind::Counter,
        &["destination_type"],
    ),
    (
        "courier_events_parked_total",
        Kind::Counter,
        &["destination_type"],
    ),
    (
        "courier_requests_total",
        Kind::Counter,
        &["destination_type", "outcome"],
    ),
    (
        "courier_retries_total",
        Kind::Counter,
        &["destination_type"],
    ),
    (
        "courier_overflow_events_total",
        Kind::Counter,
        &["destination_type"],
    ),
    ("courier_failure_events_total", Kind::Counter, &["kind"]),
    ("courier_commit_failures_total", Kind::Counter, &[]),
    ("courier_config_reloads_total", Kind::Counter, &["result"]),
    (
        "courier_request_duration_seconds",
        Kind::Histogram,
        &["destination_type"],
    ),
    (
        "courier_batch_events",
        Kind::Histogram,
        &["destination_type"],
    ),
    ("courier_in_flight_events", Kind::Gauge, &[]),
    ("courier_in_flight_bytes", Kind::Gauge, &[]),
    ("courier_paused_partitions", Kind::Gauge, &[]),
    ("courier_partition_pauses_total", Kind::Counter, &["topic"]),
    (
        "courier_committed_offset",
        Kind::Gauge,
        &["topic", "partition"],
    ),
    ("courier_consumer_lag", Kind::Gauge, &["topic", "partition"]),
    ("courier_destinations", Kind::Gauge, &["state"]),
    ("courier_ready", Kind::Gauge, &[]),
    ("courier_build_info", Kind::Gauge, &["version"]),
];

/// Labels Prometheus (or the Prometheus Operator) attaches to every scraped series.
const TARGET_LABELS: &[&str] = &[
    "job",
    "instance",
    "pod",
    "namespace",
    "container",
    "service",
    "endpoint",
];

/// Metrics that are not courier's but may appear in rules: Prometheus adds `up` per target.
const PROMETHEUS_METRICS: &[&str] = &["up"];

/// The contract entry of a series name (`_bucket`, `_sum` and `_count` map to their histogram)
/// and the extra label the name brings (`le` for buckets).
fn contract_metric(name: &str) -> Option<(&'static str, Kind, Vec<&'static str>)> {
    if let Some(&(n, k, labels)) = METRICS.iter().find(|(n, _, _)| *n == name) {
        return Some((n, k, labels.to_vec()));
    }
    for (suffix, extra) in [("_bucket", Some("le")), ("_sum", None), ("_count", None)] {
        if let Some(base) = name.strip_suffix(suffix) {
            if let Some(&(n, Kind::Histogram, labels)) = METRICS.iter().find(|(n, _, _)| *n == base)
            {
                let mut labels = labels.to_vec();
                labels.extend(extra);
                return Some((n, Kind::Histogram, labels));
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Helpers: paths, tools, YAML
// ---------------------------------------------------------------------------------------------

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// A tool from PATH (or Python's scripts directory, where pip puts `hadolint`). `None` with a
/// printed explanation when it is missing outside CI; a failure under CI, where
/// `scripts/install-deps` must have installed it.
fn tool(name: &str, what_for: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
    {
        dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        return Some(found);
    }
    let message = format!(
        "`{name}` is not installed, so {what_for} was NOT checked; run scripts/install-deps"
    );
    assert!(!in_ci(), "{message} (required under CI)");
    eprintln!("SKIPPED: {message}");
    None
}

/// Whether python3 with PyYAML is there (same policy as [`tool`]).
fn pyyaml() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import yaml"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let message = "python3 with PyYAML is not installed, so the YAML files were NOT parsed; \
                       run scripts/install-deps";
        assert!(!in_ci(), "{message} (required under CI)");
        eprintln!("SKIPPED: {message}");
    }
    ok
}

/// Every document of a YAML file, as JSON values (parsed by PyYAML's safe loader).
fn yaml_documents(rel: &str) -> Vec<Value> {
    let path = repo().join(rel);
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml\n\
             docs = [d for d in yaml.safe_load_all(open(sys.argv[1], encoding='utf-8')) if d is not None]\n\
             print(json.dumps(docs))",
        ])
        .arg(&path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{rel} is not valid YAML:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).expect("python printed JSON") {
        Value::Array(docs) => docs,
        other => panic!("unexpected {other}"),
    }
}

fn yaml_files(dir: &str) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(
                    path.strip_prefix(base)
                        .expect("under the repository")
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join(dir), repo(), &mut out);
    out.sort();
    out
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `(kind, name)` → document, for every document of the files.
fn by_kind(files: &[&str]) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for f in files {
        for doc in yaml_documents(f) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            out.insert((kind, name), doc);
        }
    }
    out
}

/// The `${NAME}` references of a configuration text (`$${` is a literal and is skipped).
fn env_references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'$' && bytes[i + 1] == b'$' {
            i += 2;
            continue;
        }
        if bytes[i] == b'$' && bytes[i + 1] == b'{' {
            if let Some(end) = text[i + 2..].find('}') {
                out.insert(text[i + 2..i + 2 + end].to_owned());
                i += 2 + end;
                continue;
            }
        }
        i += 1;
    }
    out
}

fn container<'a>(pod_spec: &'a Value, name: &str) -> &'a Value {
    pod_spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name:?} in {pod_spec}"))
}

fn env_names(container: &Value) -> BTreeSet<String> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect()
}

/// Whether every `matchLabels` pair is among `labels`.
fn selects(match_labels: &Value, labels: &Value) -> bool {
    let Some(m) = match_labels.as_object() else {
        return false;
    };
    !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v))
}

// ---------------------------------------------------------------------------------------------
// PromQL: metric and label names used by an expression
// ---------------------------------------------------------------------------------------------

/// The expression with the contents of string literals blanked (label values, regexes).
fn blank_strings(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                    out.push(' ');
                } else if c == '\\' {
                    escaped = true;
                    out.push(' ');
                } else if c == q {
                    quote = None;
                    out.push(c);
                } else {
                    out.push(' ');
                }
            }
            None => {
                if matches!(c, '"' | '\'' | '`') {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// Words that are not metric names: keywords, and aggregations written with their grouping
/// first (`sum by (x) (...)`).
const PROMQL_KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

#[derive(Debug, Default)]
struct Usage {
    /// Metric names, each with the label names its selector matches on.
    selectors: Vec<(String, Vec<String>)>,
    /// Label names in `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    grouping: BTreeSet<String>,
}

fn usage(expr: &str) -> Usage {
    let text = blank_strings(expr);
    let chars: Vec<char> = text.chars().collect();
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut u = Usage::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' || c == '[' {
            // A selector's braces are handled with its name; a range is skipped.
            let close = if c == '{' { '}' } else { ']' };
            while i < chars.len() && chars[i] != close {
                i += 1;
            }
            i += 1;
            continue;
        }
        if !is_start(c) || (i > 0 && (is_part(chars[i - 1]) || chars[i - 1] == '.')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_part(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut j = i;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        let labels_in = |from: usize, close: char| -> (Vec<String>, usize) {
            let mut k = from;
            while k < chars.len() && chars[k] != close {
                k += 1;
            }
            let inner: String = chars[from..k].iter().collect();
            let names = inner
                .split(',')
                .map(|part| {
                    part.split(['=', '!', '~'])
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_owned()
                })
                .filter(|n| !n.is_empty())
                .collect();
            (names, k + 1)
        };
        if matches!(
            word.as_str(),
            "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
        ) {
            if j < chars.len() && chars[j] == '(' {
                let (names, next) = labels_in(j + 1, ')');
                u.grouping.extend(names);
                i = next;
            }
            continue;
        }
        if j < chars.len() && chars[j] == '(' {
            continue; // a function or aggregation
        }
        if PROMQL_KEYWORDS.contains(&word.as_str()) {
            continue;
        }
        let mut labels = Vec::new();
        if j < chars.len() && chars[j] == '{' {
            let (names, next) = labels_in(j + 1, '}');
            labels = names;
            i = next;
        }
        u.selectors.push((word, labels));
    }
    u
}

/// The problems of one expression against the contract.
fn check_expr(origin: &str, expr: &str, allow_prometheus: bool) -> Vec<String> {
    let u = usage(expr);
    let mut problems = Vec::new();
    let all_labels: BTreeSet<&str> = METRICS
        .iter()
        .flat_map(|(_, _, l)| l.iter().copied())
        .chain(TARGET_LABELS.iter().copied())
        .chain(["le"])
        .collect();
    if u.selectors.is_empty() {
        problems.push(format!("{origin}: uses no metric: {expr}"));
    }
    for (name, labels) in &u.selectors {
        if allow_prometheus && PROMETHEUS_METRICS.contains(&name.as_str()) {
            continue;
        }
        let Some((_, _, known)) = contract_metric(name) else {
            problems.push(format!(
                "{origin}: metric {name} is not one courier exports"
            ));
            continue;
        };
        for l in labels {
            if !known.contains(&l.as_str()) && !TARGET_LABELS.contains(&l.as_str()) {
                problems.push(format!("{origin}: {name} has no label {l:?}"));
            }
        }
    }
    for l in &u.grouping {
        if !all_labels.contains(l.as_str()) {
            problems.push(format!("{origin}: groups by unknown label {l:?}"));
        }
    }
    problems
}

/// Every alert of the rules file: (name, expr).
fn alert_rules() -> Vec<(String, String)> {
    let docs = yaml_documents("deploy/prometheus/courier-alerts.yaml");
    let mut out = Vec::new();
    for group in docs[0]["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .expect("only alerting rules")
                .to_owned();
            out.push((name, rule["expr"].as_str().expect("expr").to_owned()));
        }
    }
    out
}

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/grafana/courier-dashboard.json"))
        .expect("the dashboard is JSON")
}

/// Every query of the dashboard: (panel title, expr).
fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or_default().to_owned(),
                t["expr"]
                    .as_str()
                    .expect("each target has an expr")
                    .to_owned(),
            ));
        }
    }
    out
}

/// Grafana's variables replaced so that promtool can parse a dashboard query.
fn without_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$job", ".*")
        .replace("$instance", ".*")
}

// ---------------------------------------------------------------------------------------------
// Tests: the PromQL scanner itself
// ---------------------------------------------------------------------------------------------

#[test]
fn promql_scanner_finds_metrics_and_labels() {
    let u = usage(
        r#"sum without (instance, pod) (rate(courier_events_failed_total{kind!~"a|b", x="courier_fake"}[5m]))
           / on (job) group_left (topic) courier_ready > 0 and up{job="courier"} == 0"#,
    );
    let names: Vec<&str> = u.selectors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["courier_events_failed_total", "courier_ready", "up"]
    );
    assert_eq!(u.selectors[0].1, ["kind", "x"]);
    assert_eq!(
        u.grouping.iter().map(String::as_str).collect::<Vec<_>>(),
        ["instance", "job", "pod", "topic"]
    );
    let problems = check_expr(
        "t",
        r#"rate(courier_events_failed_total{kind="x"}[5m]) + courier_nope + sum by (flavour) (courier_ready)"#,
        false,
    );
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(check_expr(
        "t",
        r#"histogram_quantile(0.9, sum by (le, destination_type) (rate(courier_request_duration_seconds_bucket{job=~".*"}[5m])))"#,
        false
    )
    .is_empty());
    assert_eq!(
        env_references("a = \"${A}\" b = \"$${B}\" c = \"x${C_1}y\""),
        ["A", "C_1"].iter().map(|s| s.to_string()).collect()
    );
}

// ---------------------------------------------------------------------------------------------
// Tests: alert rules
// ---------------------------------------------------------------------------------------------

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = tool("promtool", "the alert rules") else {
        return;
    };
    let (ok, out) = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(repo().join("deploy/prometheus/courier-alerts.yaml")));
    assert!(ok, "promtool check rules failed:\n{out}");
    println!("{out}");
    let (ok, out) = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(repo().join("deploy/prometheus/courier-alerts.test.yaml")));
    assert!(ok, "promtool test rules failed:\n{out}");
    println!("{out}");
}

#[test]
fn alert_rules_use_only_contract_metrics_and_are_complete() {
    if !pyyaml() {
        return;
    }
    let rules = alert_rules();
    let problems: Vec<String> = rules
        .iter()
        .flat_map(|(name, expr)| check_expr(name, expr, true))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    // The situations the operators asked to be alerted on, each by at least one rule.
    let used: BTreeSet<String> = rules
        .iter()
        .flat_map(|(_, e)| usage(e).selectors.into_iter().map(|(n, _)| n))
        .collect();
    for metric in [
        "courier_consumer_lag",
        "courier_destinations",
        "courier_failure_events_total",
        "courier_config_reloads_total",
        "courier_commit_failures_total",
        "courier_paused_partitions",
        "courier_overflow_events_total",
        "courier_ready",
    ] {
        assert!(used.contains(metric), "no alert rule uses {metric}");
    }
    // Each rule has a severity, a summary and a runbook pointing to its section of the guide.
    for group in yaml_documents("deploy/prometheus/courier-alerts.yaml")[0]["groups"]
        .as_array()
        .unwrap()
    {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            assert!(
                matches!(
                    rule["labels"]["severity"].as_str(),
                    Some("critical" | "warning" | "info")
                ),
                "{name}: severity"
            );
            assert!(
                rule["annotations"]["summary"].is_string(),
                "{name}: summary"
            );
            assert_eq!(
                rule["annotations"]["runbook"].as_str(),
                Some(format!("docs/operations.md#{}", name.to_lowercase()).as_str()),
                "{name}: runbook"
            );
        }
    }
}

#[test]
fn prometheus_rule_resource_matches_the_rules_file() {
    if !pyyaml() {
        return;
    }
    let rules = &yaml_documents("deploy/prometheus/courier-alerts.yaml")[0];
    let resource = &yaml_documents("deploy/kubernetes/standalone/prometheusrule.yaml")[0];
    assert_eq!(resource["kind"], "PrometheusRule");
    assert_eq!(
        resource["spec"]["groups"], rules["groups"],
        "deploy/kubernetes/standalone/prometheusrule.yaml differs from \
         deploy/prometheus/courier-alerts.yaml: copy the groups over"
    );
}

#[test]
fn every_alert_is_explained_in_the_operations_guide() {
    if !pyyaml() {
        return;
    }
    let guide = read("docs/operations.md");
    for (name, _) in alert_rules() {
        assert!(
            guide.contains(&format!("\n### {name}\n")),
            "docs/operations.md has no section \"### {name}\""
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: Grafana dashboard
// ---------------------------------------------------------------------------------------------

#[test]
fn dashboard_is_well_formed_and_uses_only_contract_metrics() {
    let d = dashboard();
    assert!(d["uid"].is_string() && d["title"].is_string());
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for v in ["datasource", "job", "instance"] {
        assert!(vars.contains(&v), "dashboard variable {v} missing");
    }
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "duplicate panel id {id}");
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "panel {} is wider than the grid",
            p["title"]
        );
        if p["type"] != "row" {
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "panel {}",
                p["title"]
            );
            assert!(
                !p["targets"].as_array().unwrap().is_empty(),
                "panel {} has no query",
                p["title"]
            );
        }
    }
    let queries = dashboard_queries(&d);
    let problems: Vec<String> = queries
        .iter()
        .flat_map(|(title, expr)| check_expr(&format!("panel {title:?}"), expr, false))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    // What the dashboard is for: each of these is shown.
    let used: BTreeSet<String> = queries
        .iter()
        .flat_map(|(_, e)| usage(e).selectors.into_iter().map(|(n, _)| n))
        .collect();
    for metric in [
        "courier_events_consumed_total",
        "courier_events_delivered_total",
        "courier_events_failed_total",
        "courier_events_parked_total",
        "courier_consumer_lag",
        "courier_request_duration_seconds_bucket",
        "courier_batch_events_bucket",
        "courier_in_flight_events",
        "courier_paused_partitions",
        "courier_destinations",
        "courier_config_reloads_total",
    ] {
        assert!(used.contains(metric), "no dashboard panel shows {metric}");
    }
}

#[test]
fn dashboard_queries_parse() {
    let Some(promtool) = tool("promtool", "the dashboard's queries") else {
        return;
    };
    // promtool parses PromQL in rule files: each query becomes a recording rule.
    let queries = dashboard_queries(&dashboard());
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in queries.iter().enumerate() {
        let expr = serde_json::to_string(&without_grafana_variables(expr)).unwrap();
        file.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {expr}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-queries.yaml");
    std::fs::write(&path, file).unwrap();
    let (ok, out) = run(Command::new(&promtool)
        .args(["check", "rules", "--lint=none"])
        .arg(&path));
    assert!(ok, "a dashboard query does not parse:\n{out}");
}

// ---------------------------------------------------------------------------------------------
// Tests: Kubernetes manifests
// ---------------------------------------------------------------------------------------------

#[test]
fn every_yaml_file_parses() {
    if !pyyaml() {
        return;
    }
    let files = yaml_files("deploy");
    assert!(files.len() >= 10, "{files:?}");
    for f in &files {
        let docs = yaml_documents(f);
        assert!(!docs.is_empty(), "{f} is empty");
        if f.starts_with("deploy/kubernetes/") {
            for d in &docs {
                assert!(
                    d["apiVersion"].is_string() && d["kind"].is_string(),
                    "{f}: a document without apiVersion/kind"
                );
            }
        }
    }
    // Every file a kustomization lists exists.
    for k in files.iter().filter(|f| f.ends_with("kustomization.yaml")) {
        let dir = Path::new(k).parent().unwrap();
        for r in yaml_documents(k)[0]["resources"].as_array().unwrap() {
            let path = dir.join(r.as_str().unwrap());
            assert!(repo().join(&path).is_file(), "{k} lists missing {path:?}");
        }
    }
}

#[test]
fn standalone_manifests_are_wired_together() {
    if !pyyaml() {
        return;
    }
    let dir = "deploy/kubernetes/standalone";
    let files: Vec<String> = [
        "serviceaccount.yaml",
        "configmap.yaml",
        "deployment.yaml",
        "poddisruptionbudget.yaml",
        "service.yaml",
        "servicemonitor.yaml",
        "prometheusrule.yaml",
        "secret.example.yaml",
    ]
    .iter()
    .map(|f| format!("{dir}/{f}"))
    .collect();
    let docs = by_kind(&files.iter().map(String::as_str).collect::<Vec<_>>());
    let get = |kind: &str, name: &str| {
        docs.get(&(kind.to_owned(), name.to_owned()))
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let deployment = get("Deployment", "courier");
    let pod = &deployment["spec"]["template"];
    let pod_labels = &pod["metadata"]["labels"];
    let spec = &pod["spec"];
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2);
    assert!(selects(
        &deployment["spec"]["selector"]["matchLabels"],
        pod_labels
    ));
    let c = container(spec, "courier");
    assert_eq!(
        c["args"],
        serde_json::json!(["run", "--config", "/etc/courier/courier.toml"])
    );
    let port = &c["ports"][0];
    assert_eq!(
        (port["name"].as_str(), port["containerPort"].as_u64()),
        (Some("http"), Some(9464))
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    for r in ["requests", "limits"] {
        for k in ["cpu", "memory"] {
            assert!(c["resources"][r][k].is_string(), "resources.{r}.{k}");
        }
    }
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(spec["securityContext"]["runAsUser"], 10001);
    // The configuration: a ConfigMap mounted as a directory (no subPath, so updates arrive).
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/etc/courier")
        .expect("config mounted at /etc/courier");
    assert!(
        mount.get("subPath").is_none(),
        "a subPath mount is never updated"
    );
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    let cm_name = volume["configMap"]["name"]
        .as_str()
        .expect("a ConfigMap volume");
    let toml = get("ConfigMap", cm_name)["data"]["courier.toml"]
        .as_str()
        .expect("courier.toml in the ConfigMap");
    // Every ${VAR} of the configuration is given to the container, secrets from the Secret.
    let env = env_names(c);
    let secret = get("Secret", "courier-secrets");
    for var in env_references(toml) {
        assert!(
            env.contains(&var),
            "${{{var}}} is used in courier.toml but not set in env"
        );
        let entry = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == var.as_str())
            .unwrap();
        let key = &entry["valueFrom"]["secretKeyRef"];
        assert_eq!(
            key["name"], "courier-secrets",
            "{var} comes from the Secret"
        );
        assert!(
            secret["stringData"]
                .get(key["key"].as_str().unwrap())
                .is_some(),
            "secret.example.yaml lacks {}",
            key["key"]
        );
    }
    // The grace period covers shutdown_timeout.
    let shutdown: u64 = toml
        .lines()
        .find_map(|l| l.trim().strip_prefix("shutdown_timeout = \""))
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .expect("shutdown_timeout = \"Ns\" in the ConfigMap");
    assert!(spec["terminationGracePeriodSeconds"].as_u64().unwrap() > shutdown);
    // PDB, Service and ServiceMonitor select the pods / the Service.
    let pdb = get("PodDisruptionBudget", "courier");
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], pod_labels));
    let service = get("Service", "courier");
    assert!(selects(&service["spec"]["selector"], pod_labels));
    assert_eq!(service["spec"]["ports"][0]["port"], 9464);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let monitor = get("ServiceMonitor", "courier");
    assert!(selects(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"]
    ));
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(spec["serviceAccountName"], "courier");
    get("ServiceAccount", "courier");
}

#[test]
fn sidecar_example_is_wired_together() {
    if !pyyaml() {
        return;
    }
    let docs = by_kind(&["deploy/kubernetes/sidecar/deployment.yaml"]);
    let deployment = docs
        .iter()
        .find(|((k, _), _)| k == "Deployment")
        .map(|(_, d)| d)
        .expect("a Deployment");
    let pod = &deployment["spec"]["template"];
    let spec = &pod["spec"];
    assert!(
        spec["containers"].as_array().unwrap().len() >= 2,
        "an app and courier"
    );
    let c = container(spec, "courier");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(
        c.get("readinessProbe").is_none(),
        "a courier readiness probe would take the application out of its Service"
    );
    let port_name = c["ports"][0]["name"].as_str().unwrap();
    assert_eq!(c["ports"][0]["containerPort"], 9464);
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/etc/courier")
        .expect("config mounted at /etc/courier");
    assert!(mount.get("subPath").is_none());
    let cm = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap()["configMap"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let toml = docs[&("ConfigMap".to_owned(), cm)]["data"]["courier.toml"]
        .as_str()
        .unwrap();
    let env = env_names(c);
    for var in env_references(toml) {
        assert!(
            env.contains(&var),
            "${{{var}}} is used but not set in the sidecar's env"
        );
    }
    let monitor = docs
        .iter()
        .find(|((k, _), _)| k == "PodMonitor")
        .map(|(_, d)| d)
        .expect("a PodMonitor");
    assert!(selects(
        &monitor["spec"]["selector"]["matchLabels"],
        &pod["metadata"]["labels"]
    ));
    assert_eq!(monitor["spec"]["podMetricsEndpoints"][0]["port"], port_name);
}

/// The configurations in the ConfigMaps pass `courier validate`, given their variables.
#[test]
fn configmap_configurations_validate() {
    if !pyyaml() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (file, cm_name) in [
        (
            "deploy/kubernetes/standalone/configmap.yaml",
            "courier-config",
        ),
        (
            "deploy/kubernetes/sidecar/deployment.yaml",
            "platform-api-courier",
        ),
    ] {
        let docs = by_kind(&[file]);
        let toml = docs[&("ConfigMap".to_owned(), cm_name.to_owned())]["data"]["courier.toml"]
            .as_str()
            .unwrap();
        let path = dir.path().join(format!("{cm_name}.toml"));
        std::fs::write(&path, toml).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_courier"));
        cmd.arg("validate").arg("--config").arg(&path);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("COURIER__")) {
            cmd.env_remove(k);
        }
        for var in env_references(toml) {
            let value = if var.contains("SECRET") && var.contains("HOOK") {
                "whsec_dGVzdC1zaWduaW5nLWtleS0wMTIzNDU2Nzg5".to_owned()
            } else {
                format!("test-{}", var.to_lowercase())
            };
            cmd.env(var, value);
        }
        let (ok, out) = run(&mut cmd);
        assert!(ok, "{file}: courier validate failed:\n{out}");
        assert!(
            !out.contains("test-kafka_password"),
            "a secret was printed:\n{out}"
        );
        // The image listens on every interface (COURIER__SERVER__LISTEN); validate it too.
        let (ok, out) = run(cmd.env("COURIER__SERVER__LISTEN", "0.0.0.0:9464"));
        assert!(
            ok,
            "{file}: with the image's COURIER__SERVER__LISTEN:\n{out}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests: Dockerfile
// ---------------------------------------------------------------------------------------------

#[test]
fn dockerfile_is_as_documented() {
    let d = read("Dockerfile");
    let instructions: Vec<String> = {
        // Join continuation lines; drop comments.
        let mut out = Vec::new();
        let mut cur = String::new();
        for line in d.lines() {
            let t = line.trim();
            if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
                continue;
            }
            if let Some(stripped) = t.strip_suffix('\\') {
                cur.push_str(stripped);
                cur.push(' ');
            } else {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
        out
    };
    let has = |prefix: &str| instructions.iter().any(|i| i.starts_with(prefix));
    assert!(has("ARG RUST_IMAGE=rust:1-bookworm"));
    assert!(has("ARG RUNTIME_IMAGE=debian:bookworm-slim"));
    assert!(has("FROM ${RUST_IMAGE} AS build"));
    assert!(has("FROM ${RUNTIME_IMAGE} AS runtime"));
    assert!(instructions
        .iter()
        .any(|i| i.starts_with("RUN") && i.contains("cargo build --release --locked")));
    assert!(instructions
        .iter()
        .any(|i| i.starts_with("RUN") && i.contains("ca-certificates")));
    assert!(has(
        "COPY --from=build /usr/local/bin/courier /usr/local/bin/courier"
    ));
    assert!(has("USER 10001:10001"), "runs as the non-root user");
    assert!(has("EXPOSE 9464"));
    assert!(has("ENV COURIER__SERVER__LISTEN=0.0.0.0:9464"));
    assert!(has("HEALTHCHECK") && d.contains("/dev/tcp/127.0.0.1/9464") && d.contains("/healthz"));
    assert!(has(r#"ENTRYPOINT ["courier"]"#));
    assert!(has(
        r#"CMD ["run", "--config", "/etc/courier/courier.toml"]"#
    ));
    // The build context keeps what the build needs (compiled-in files) and drops the rest.
    let ignore = read(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["src", "config", "data", "Cargo.toml", "Cargo.lock"] {
        assert!(!ignored.contains(&needed), ".dockerignore drops {needed}");
    }
    for dropped in ["target", ".git"] {
        assert!(ignored.contains(&dropped), ".dockerignore keeps {dropped}");
    }
}

#[test]
fn dockerfile_passes_hadolint() {
    let Some(hadolint) = tool("hadolint", "the Dockerfile") else {
        return;
    };
    let (ok, out) = run(Command::new(hadolint)
        .args(["--no-color"])
        .arg(repo().join("Dockerfile")));
    assert!(ok, "hadolint:\n{out}");
}

// ---------------------------------------------------------------------------------------------
// Tests: documentation
// ---------------------------------------------------------------------------------------------

#[test]
fn operations_guide_links_resolve_and_readme_points_to_it() {
    let guide = read("docs/operations.md");
    // Relative links: [text](path) or [text](path#anchor) must name an existing file.
    let mut rest = guide.as_str();
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let end = rest.find(')').unwrap();
        let target = &rest[..end];
        if target.starts_with("http") || target.starts_with('#') {
            continue;
        }
        let file = target.split('#').next().unwrap();
        assert!(
            repo().join("docs").join(file).exists(),
            "docs/operations.md links to missing {target}"
        );
    }
    // In-page anchors: each (#x) matches a heading.
    let anchors: BTreeSet<String> = guide
        .lines()
        .filter_map(|l| l.strip_prefix("## ").or_else(|| l.strip_prefix("### ")))
        .map(|h| {
            h.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect();
    let mut rest = guide.as_str();
    while let Some(i) = rest.find("](#") {
        rest = &rest[i + 3..];
        let anchor = &rest[..rest.find(')').unwrap()];
        assert!(
            anchors.contains(anchor),
            "docs/operations.md: no heading for #{anchor}"
        );
    }
    assert!(
        read("README.md").contains("docs/operations.md"),
        "README.md does not link docs/operations.md"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests: the live /metrics of the binary
// ---------------------------------------------------------------------------------------------

/// `# TYPE` of each metric family, and the label names of each series name's samples.
fn parse_exposition(text: &str) -> (BTreeMap<String, String>, BTreeMap<String, BTreeSet<String>>) {
    let mut types = BTreeMap::new();
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let entry = labels.entry(name.to_owned()).or_default();
        if line[name_end..].starts_with('{') {
            let inner = &line[name_end + 1..line.rfind('}').unwrap()];
            for pair in inner.split("\",") {
                if let Some((k, _)) = pair.split_once('=') {
                    entry.insert(k.trim().to_owned());
                }
            }
        }
    }
    (types, labels)
}

/// What is missing from a scrape, measured against [`METRICS`].
fn contract_gaps(text: &str) -> Vec<String> {
    let (types, labels) = parse_exposition(text);
    let mut gaps = Vec::new();
    for &(name, kind, expected) in METRICS {
        let want = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        match types.get(name) {
            None => {
                gaps.push(format!("{name}: not exported"));
                continue;
            }
            Some(t) if t != want => gaps.push(format!("{name}: type {t}, expected {want}")),
            Some(_) => {}
        }
        let series = if kind == Kind::Histogram {
            format!("{name}_count")
        } else {
            name.to_owned()
        };
        let Some(have) = labels.get(&series) else {
            gaps.push(format!("{name}: no sample yet"));
            continue;
        };
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        if *have != expected {
            gaps.push(format!("{name}: labels {have:?}, expected {expected:?}"));
        }
    }
    gaps
}

/// The binary, delivering real traffic from tansu to webhook receivers that accept, reject
/// (400) and fail (503), exports every metric of the contract with its type and labels, and
/// its exposition passes `promtool check metrics`.
#[test]
fn live_scrape_exports_every_metric_the_artifacts_use() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, "event-logs", 2);
    create_topic(&brokers, "courier-failures", 1);

    let ok = WebhookReceiver::start(ReceiverConfig::default());
    let rejects = WebhookReceiver::start(ReceiverConfig::default());
    rejects.set_behaviour(Behaviour::Always(400));
    let down = WebhookReceiver::start(ReceiverConfig::default());
    down.set_behaviour(Behaviour::Always(503));
    let quick_give_up = "\n[destinations.delivery]\nretry_max_elapsed = \"1s\"\n\
                         retry_initial_backoff = \"50ms\"\nretry_max_backoff = \"200ms\"\n\
                         circuit_failure_threshold = 2\n";
    let cfg = CourierConfig::new(&brokers)
        .destination(ok.destination_toml("proj_ok", "ok"))
        .destination(rejects.destination_toml("proj_rejects", "rejects"))
        .destination(format!(
            "{}{quick_give_up}",
            down.destination_toml("proj_down", "down")
        ));
    // The receivers are on loopback, which the SSRF guard refuses unless allowed.
    let mut cfg = cfg;
    if !cfg.to_toml("127.0.0.1:0").contains("[security]") {
        cfg.extra
            .push_str("\n[security]\nallow_networks = [\"127.0.0.0/8\"]\n");
    }
    let courier = Courier::start_ready(&cfg);

    let mut messages: Vec<(Option<i32>, Vec<u8>)> = Vec::new();
    for i in 0..60 {
        let project = ["proj_ok", "proj_rejects", "proj_down"][i % 3];
        let event = serde_json::json!({
            "id": format!("evt-{i}"), "timestamp": "2026-11-22T08:00:00Z", "level": "INFO",
            "type": "APP_EVENT", "message": "deploy artifacts test", "projectId": project,
        });
        messages.push((Some((i % 2) as i32), serde_json::to_vec(&event).unwrap()));
    }
    messages.push((Some(0), b"this is not JSON".to_vec()));
    produce(&brokers, "event-logs", messages);

    // Lag comes from librdkafka's statistics (every 10 s): allow a few intervals.
    let deadline = Instant::now() + Duration::from_secs(90);
    let text = loop {
        let text = courier.metrics();
        let gaps = contract_gaps(&text);
        if gaps.is_empty() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "after 90 s the live scrape still lacks part of the metric contract:\n{}\n\n\
             --- scrape ---\n{text}\n{}",
            gaps.join("\n"),
            courier.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("--- live scrape (shown with --nocapture) ---\n{text}");
    assert!(metric_sum(&text, "courier_events_delivered_total", &[]).unwrap() > 0.0);
    assert!(metric_sum(&text, "courier_events_failed_total", &[]).unwrap() > 0.0);
    assert!(metric_sum(&text, "courier_events_parked_total", &[]).unwrap() > 0.0);
    assert_eq!(metric_sum(&text, "courier_ready", &[]), Some(1.0));

    // Every series name the rules and the dashboard use is in the scrape.
    let (_, series) = parse_exposition(&text);
    if pyyaml() {
        for (origin, expr) in alert_rules()
            .into_iter()
            .chain(dashboard_queries(&dashboard()))
        {
            for (name, _) in usage(&expr).selectors {
                if PROMETHEUS_METRICS.contains(&name.as_str()) {
                    continue;
                }
                assert!(
                    series.contains_key(&name),
                    "{origin} uses {name}, which the live scrape does not have"
                );
            }
        }
    }

    if let Some(promtool) = tool("promtool", "the /metrics exposition format") {
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
