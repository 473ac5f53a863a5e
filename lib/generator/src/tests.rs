use super::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

#[test]
fn same_seed_same_output() {
    let config = GeneratorConfig {
        poison_every: Some(7),
        ..GeneratorConfig::default()
    };
    let a: Vec<_> = Generator::new(config.clone()).take(3000).collect();
    let b: Vec<_> = Generator::new(config.clone()).take(3000).collect();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.bytes, y.bytes);
        assert_eq!(x.project, y.project);
        assert_eq!(x.poison, y.poison);
    }
    let other: Vec<_> = Generator::new(GeneratorConfig { seed: 43, ..config })
        .take(10)
        .collect();
    assert!(a.iter().zip(&other).any(|(x, y)| x.bytes != y.bytes));
}

#[test]
fn events_are_well_formed() {
    let mut generator = Generator::new(GeneratorConfig::default());
    let always = ["id", "timestamp", "level", "type", "message", "projectId"];
    let per_user = [
        "personaId",
        "endUserId",
        "connectCredentialId",
        "connectCredentialConfigId",
        "workflowId",
    ];
    let projects: HashSet<String> = generator.project_ids().into_iter().collect();
    let mut previous = String::new();
    for _ in 0..20_000 {
        let bytes = generator.next_event();
        let v = parse(&bytes);
        let obj = v.as_object().expect("an object");
        for key in always {
            assert!(str_field(&v, key).is_some(), "{key} missing in {v}");
        }
        let ty = str_field(&v, "type").unwrap();
        if ty == "EVENT_DESTINATION" {
            for key in ["destinationId", "destinationType"] {
                assert!(
                    str_field(&v, key).is_some()
                        || obj["message"]
                            .as_str()
                            .unwrap()
                            .starts_with("Event could not be routed"),
                    "{key} missing in {v}"
                );
            }
            assert!(v["payload"]["source"]["topic"].is_string());
        } else {
            for key in per_user {
                assert!(str_field(&v, key).is_some(), "{key} missing in {v}");
            }
            let user = str_field(&v, "endUserId").unwrap();
            let n: u32 = user.strip_prefix("user-").unwrap().parse().unwrap();
            assert!((1..=END_USERS_PER_PROJECT).contains(&n));
            assert_eq!(str_field(&v, "personaId").unwrap().len(), 36);
        }
        assert!(projects.contains(str_field(&v, "projectId").unwrap()));
        let level = str_field(&v, "level").unwrap();
        assert!(["DEBUG", "INFO", "WARN", "ERROR"].contains(&level));
        let message = str_field(&v, "message").unwrap();
        assert!(
            !message.contains('{') && !message.contains('}'),
            "{message}"
        );
        if ["failed", "Failed", "error", "Unable"]
            .iter()
            .any(|w| message.contains(w))
        {
            assert!(level == "ERROR" || level == "WARN", "{level}: {message}");
        }
        if let Some(status) = v.get("status") {
            let status = status.as_str().unwrap();
            assert!(status == "EVENT_STATUS.SUCCEEDED" || status == "EVENT_STATUS.FAILED");
            if status == "EVENT_STATUS.FAILED" {
                assert!(v["error"]["message"].is_string(), "{v}");
            }
        }
        if ty == "WEBHOOK_TRIGGER" {
            assert!(str_field(&v, "webhookId").is_some());
        }
        if ty == "APP_EVENT" {
            assert!(str_field(&v, "eventId").is_some());
            assert!(str_field(&v, "eventName").is_some());
        }
        assert!(v["payload"].as_object().is_some_and(|p| !p.is_empty()));
        let ts = str_field(&v, "timestamp").unwrap();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z'));
        chrono::DateTime::parse_from_rfc3339(ts).expect("RFC 3339");
        assert!(ts > previous.as_str(), "{ts} after {previous}");
        previous = ts.to_string();
    }
    assert!(previous.starts_with("2026-11-01T"));
}

#[test]
fn poison_cadence_and_kinds() {
    let mut generator = Generator::new(GeneratorConfig {
        poison_every: Some(4),
        ..GeneratorConfig::default()
    });
    let mut kinds = Vec::new();
    for n in 1..=600u64 {
        let m = generator.next_message();
        if n % 4 == 0 {
            let kind = m.poison.expect("poison");
            assert!(m.project.is_none());
            kinds.push(kind);
            match kind {
                PoisonKind::InvalidJson => {
                    assert!(serde_json::from_slice::<Value>(&m.bytes).is_err());
                }
                PoisonKind::NotObject => assert!(!parse(&m.bytes).is_object()),
                PoisonKind::MissingProjectId => {
                    let v = parse(&m.bytes);
                    assert!(v.is_object() && v.get("projectId").is_none());
                    assert!(v.get("id").is_some());
                }
            }
        } else {
            assert!(m.poison.is_none());
            let v = parse(&m.bytes);
            assert_eq!(str_field(&v, "projectId"), m.project.as_deref());
        }
    }
    for (i, kind) in kinds.iter().enumerate() {
        assert_eq!(*kind, PoisonKind::ALL[i % 3]);
    }
    assert_eq!(PoisonKind::InvalidJson.reason(), "invalid_json");
    assert_eq!(PoisonKind::NotObject.reason(), "not_object");
    assert_eq!(PoisonKind::MissingProjectId.reason(), "missing_project_id");

    let mut clean = Generator::new(GeneratorConfig::default());
    assert!((0..1000).all(|_| clean.next_message().poison.is_none()));
    let mut all = Generator::new(GeneratorConfig {
        poison_every: Some(1),
        ..GeneratorConfig::default()
    });
    assert!((0..30).all(|_| all.next_message().poison.is_some()));
}

#[test]
fn target_bytes_is_honoured() {
    for target in [1024usize, 2048, 65_536] {
        let mut generator = Generator::new(GeneratorConfig {
            target_bytes: Some(target),
            poison_every: Some(10),
            ..GeneratorConfig::default()
        });
        let low = target * 95 / 100;
        let high = target * 105 / 100;
        for _ in 0..5000 {
            let m = generator.next_message();
            if m.poison.is_some() {
                continue;
            }
            assert!(
                (low..=high).contains(&m.bytes.len()),
                "{} bytes",
                m.bytes.len()
            );
            let v = parse(&m.bytes);
            assert!(v["payload"].is_object());
        }
    }
}

#[test]
fn every_type_within_first_thousand() {
    let types = event_types();
    assert_eq!(types.len(), 9);
    for seed in [42, 1, 2, 3, 7, 1234] {
        let mut generator = Generator::new(GeneratorConfig {
            seed,
            ..GeneratorConfig::default()
        });
        let seen: HashSet<String> = (0..1000)
            .map(|_| {
                str_field(&parse(&generator.next_event()), "type")
                    .unwrap()
                    .to_string()
            })
            .collect();
        for ty in &types {
            assert!(seen.contains(*ty), "seed {seed}: {ty} missing");
        }
    }
}

#[test]
fn every_message_template_appears() {
    let mut generator = Generator::new(GeneratorConfig::default());
    let mut seen: HashSet<String> = HashSet::new();
    for _ in 0..100_000 {
        seen.insert(
            str_field(&parse(&generator.next_event()), "message")
                .unwrap()
                .to_string(),
        );
    }
    for ty in &catalog().types {
        for template in &ty.templates {
            let prefix = match &template.segments[0] {
                Segment::Literal(text) => text.as_str(),
                Segment::Placeholder(_) => "",
            };
            let suffix = match template.segments.last().unwrap() {
                Segment::Literal(text) if template.segments.len() > 1 => text.as_str(),
                _ => "",
            };
            assert!(
                seen.iter().any(|m| m.starts_with(prefix)
                    && m.ends_with(suffix)
                    && (template.segments.len() > 1 || m == &template.text)),
                "never generated: {}",
                template.text
            );
        }
    }
}

#[test]
fn ids_are_unique() {
    let mut generator = Generator::new(GeneratorConfig {
        poison_every: Some(5),
        ..GeneratorConfig::default()
    });
    let mut ids = HashSet::new();
    for m in generator.by_ref().take(50_000) {
        if m.poison == Some(PoisonKind::InvalidJson) || m.poison == Some(PoisonKind::NotObject) {
            continue;
        }
        let id = str_field(&parse(&m.bytes), "id").unwrap().to_string();
        assert!(ids.insert(id));
    }
}

#[test]
fn level_skew_and_shared_values() {
    let mut generator = Generator::new(GeneratorConfig::default());
    let mut levels: HashMap<String, usize> = HashMap::new();
    let mut traces: HashMap<String, usize> = HashMap::new();
    let mut escapes = 0;
    let mut non_ascii = 0;
    for _ in 0..10_000 {
        let bytes = generator.next_event();
        let text = std::str::from_utf8(&bytes).unwrap();
        if text.contains("\\\"") || text.contains("\\n") {
            escapes += 1;
        }
        if !text.is_ascii() {
            non_ascii += 1;
        }
        let v = parse(&bytes);
        *levels
            .entry(str_field(&v, "level").unwrap().to_string())
            .or_default() += 1;
        if let Some(trace) = str_field(&v, "traceId") {
            *traces.entry(trace.to_string()).or_default() += 1;
        }
    }
    let info = levels["INFO"];
    assert!(info > 5000, "{levels:?}");
    assert!(
        levels["WARN"] > 200 && levels["WARN"] < info / 3,
        "{levels:?}"
    );
    assert!(
        levels["ERROR"] > 200 && levels["ERROR"] < info / 3,
        "{levels:?}"
    );
    assert!(levels["DEBUG"] > 100, "{levels:?}");
    assert!(
        traces.values().any(|&n| n >= 3),
        "traces should group events"
    );
    assert!(escapes > 500, "{escapes}");
    assert!(non_ascii > 500, "{non_ascii}");
}

#[test]
fn event_for_project_uses_that_project() {
    let mut generator = Generator::new(GeneratorConfig::default());
    for project in ["proj_a", "tenant \"quoted\"\n", "proj_0003"] {
        for _ in 0..50 {
            let v = parse(&generator.event_for_project(project));
            assert_eq!(str_field(&v, "projectId"), Some(project));
        }
    }
    let mut buf = Vec::new();
    let project = generator.write_event(&mut buf).to_string();
    assert_eq!(str_field(&parse(&buf), "projectId"), Some(project.as_str()));
}

#[test]
fn identifiers_are_stable_per_user() {
    let mut generator = Generator::new(GeneratorConfig::default());
    let mut personas: HashMap<(String, String), String> = HashMap::new();
    for _ in 0..5000 {
        let v = parse(&generator.next_event());
        let (Some(user), Some(persona)) = (str_field(&v, "endUserId"), str_field(&v, "personaId"))
        else {
            continue;
        };
        let key = (
            str_field(&v, "projectId").unwrap().to_string(),
            user.to_string(),
        );
        let known = personas.entry(key).or_insert_with(|| persona.to_string());
        assert_eq!(known, persona);
    }
}

#[test]
fn timestamps_match_chrono() {
    assert_eq!(
        format_timestamp(BASE_TIMESTAMP_MS).as_str(),
        "2026-11-01T00:00:00.000Z"
    );
    for ms in [
        0i64,
        951_782_400_123,
        1_709_164_799_999,
        4_102_444_800_000,
        BASE_TIMESTAMP_MS + 86_399_999,
    ] {
        let expected = chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        assert_eq!(format_timestamp(ms).as_str(), expected);
    }
}

#[test]
fn catalog_copy_matches_shared_file() {
    let catalog = catalog();
    let raw: Value = serde_json::from_str(CATALOG_JSON).unwrap();
    let count: usize = raw["types"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().unwrap().len())
        .sum();
    let compiled: usize = catalog.types.iter().map(|t| t.templates.len()).sum();
    assert_eq!(count, compiled);
    assert!(catalog.types.iter().all(|t| t.kind != Kind::Other));
}

/// `cargo test --release -p courier-generator tests::throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput() {
    for target in [None, Some(1024)] {
        let mut generator = Generator::new(GeneratorConfig {
            target_bytes: target,
            ..GeneratorConfig::default()
        });
        let n = 2_000_000;
        let start = std::time::Instant::now();
        let mut bytes = 0;
        for _ in 0..n {
            bytes += generator.next_event().len();
        }
        let elapsed = start.elapsed();
        println!(
            "target {target:?}: {:.2} µs/event, {} bytes/event",
            elapsed.as_secs_f64() * 1e6 / n as f64,
            bytes / n
        );
    }
}
