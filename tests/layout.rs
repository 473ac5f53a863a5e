//! The code's layout is the architecture, and these checks keep it so.
//!
//! - Crates: courier-core ← courier-sinks ← courier. Cargo already refuses a cycle between
//!   crates; checked here is that each crate depends only on the crates below it, and that
//!   no lower crate uses rdkafka (the sinks know nothing about Kafka).
//! - Inside the daemon crate, the top-level modules (`source`, `lane`, `api` …) import each
//!   other without a cycle, so that data flows one way there too. Read from the `crate::…`
//!   paths of the non-test code, grouped `use crate::{a, b::{…}}` included.
//! - No source file is longer than about 600 lines without its tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `path` holds only tests (`tests.rs`, or anything under a `tests/` folder).
fn is_test_file(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "tests.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
}

/// The file without comments and without its `#[cfg(test)]` module (which sits at the end).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment after each `crate::` in `code`; for a group, each item's first one.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut rest = 0;
    while let Some(at) = code[rest..].find("crate::") {
        let start = rest + at + "crate::".len();
        rest = start;
        if bytes.get(start) == Some(&b'{') {
            let mut depth = 0;
            let mut item = String::new();
            let mut items = Vec::new();
            for &b in &bytes[start..] {
                match b {
                    b'{' => {
                        depth += 1;
                        if depth == 1 {
                            continue;
                        }
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => {
                        items.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(b as char);
            }
            items.push(item);
            for item in items {
                found.extend(first_segment(item.trim_start()));
            }
        } else {
            found.extend(first_segment(&code[start..]));
        }
    }
    found
}

fn first_segment(text: &str) -> Option<String> {
    let name: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Each top-level module of `src/` and the top-level modules its non-test code names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    for file in &files {
        let relative = file.strip_prefix(src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let entry = graph.entry(top.clone()).or_default();
        if is_test_file(relative) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for name in crate_paths(&code(&text)) {
            if name != top {
                entry.insert(name);
            }
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    graph
}

/// The groups of modules that import each other in a circle (Tarjan's strongly connected
/// components of more than one module, or one that names itself).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in &s.graph[v] {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                group.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.found.push(group);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let text = "use crate::{b::X, c};\nfn f() { crate::d::g() } // crate::e\n";
    assert_eq!(
        crate_paths(&code(text)),
        ["b", "c", "d"].map(String::from).into()
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c"]]);
}

#[test]
fn the_daemons_modules_import_each_other_one_way() {
    let graph = module_graph(&Path::new(ROOT).join("src"));
    assert!(graph.contains_key("source") && graph["source"].contains("kafka"));
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "modules importing each other in a circle: {found:?}\n{graph:#?}"
    );
}

#[test]
fn no_source_file_is_much_over_600_lines() {
    let mut files = Vec::new();
    for dir in ["src", "lib", "tools"] {
        rust_files(&Path::new(ROOT).join(dir), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter(|f| !is_test_file(f.strip_prefix(ROOT).unwrap()))
        .filter_map(|f| {
            let lines = code(&std::fs::read_to_string(f).unwrap()).lines().count();
            (lines > 620).then(|| format!("{}: {lines}", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split by concern: {long:?}");
}

/// Each workspace crate and the crates it declares as (normal or build) dependencies.
fn declared_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

#[test]
fn crates_depend_downwards_and_only_the_daemon_knows_kafka() {
    let graph = declared_dependencies();
    let ours = |name: &str| -> BTreeSet<String> {
        graph[name]
            .iter()
            .filter(|d| d.starts_with("courier"))
            .cloned()
            .collect()
    };
    assert_eq!(ours("courier-core"), BTreeSet::new());
    assert_eq!(ours("courier-sinks"), ["courier-core".to_owned()].into());
    assert!(ours("courier").contains("courier-sinks"));
    assert!(!ours("courier").contains("courier-bench"));
    for lower in ["courier-core", "courier-sinks", "courier-generator"] {
        assert!(!graph[lower].contains("rdkafka"), "{lower} uses rdkafka");
    }
    assert!(graph["courier"].contains("rdkafka"));
}
