//! Fuzzes the destinations API from its own OpenAPI document with schemathesis (PyPI,
//! installed by scripts/install-deps): the compiled binary on tansu, every check
//! schemathesis has, a bounded number of examples. No answer may be a 5xx, and every answer
//! must match the document.
//!
//! One setting differs from schemathesis' defaults: `positive_data_acceptance` also accepts
//! 422. A JSON Schema cannot say everything courier checks (a webhook needs a `url`, an s3
//! destination its keys, an address must pass the SSRF guard, keys of another type are
//! refused), so a schema-valid definition can still be an invalid destination; 422 with the
//! JSON pointer of each error is the documented answer to that.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;

const TOKEN: &str = "fuzz-admin-token-0123456789";
const KEY_ENV: &str = "COURIER_FUZZ_API_KEY";

fn schemathesis() -> Option<Command> {
    let ok = |c: &str| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok("schemathesis") {
        return Some(Command::new("schemathesis"));
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()?;
    let path = format!(
        "{}/schemathesis",
        String::from_utf8_lossy(&scripts.stdout).trim()
    );
    ok(&path).then(|| Command::new(path))
}

#[test]
fn schemathesis_finds_no_server_error_and_no_departure_from_the_document() {
    let Some(st) = schemathesis() else {
        panic!(
            "schemathesis is not installed: run scripts/install-deps (pip install schemathesis)"
        );
    };
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    create_topic(&brokers, "event-logs", 1);
    create_topic(&brokers, "courier-failures", 1);
    let receiver = WebhookReceiver::start(ReceiverConfig::default());
    let mut cfg =
        CourierConfig::new(&brokers).destination(receiver.destination_toml("proj_a", "from-file"));
    cfg.extra = format!(
        "\n[api]\nencryption_key_env = {}\ntokens = [{{ token = {} }}]\n",
        toml_str(KEY_ENV),
        toml_str(TOKEN)
    );
    cfg.env.push((
        KEY_ENV.into(),
        base64::engine::general_purpose::STANDARD.encode([5u8; 32]),
    ));
    // The fuzzer creates destinations with URLs of its own making and may send them a test
    // event: every request of the sinks goes to a proxy on a closed loopback port, so none
    // leaves the machine (the sinks honour HTTP(S)_PROXY).
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
    ] {
        cfg.env.push((var.into(), "http://127.0.0.1:9".into()));
    }
    for var in ["NO_PROXY", "no_proxy"] {
        cfg.env.push((var.into(), String::new()));
    }
    let courier = Courier::start_ready(&cfg);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        // Every call on a project that exists (it has a destination in the file), so that
        // calls reach more than the 404 of an unknown project.
        "[checks.positive_data_acceptance]\nexpected-statuses = [\"2xx\", \"401\", \"403\", \"404\", \"409\", \"422\"]\n\n[parameters]\n\"path.project\" = \"proj_a\"\n",
    )
    .unwrap();
    // schemathesis' own test generation (Hypothesis) now and then fails inside itself
    // ("Runtime Error ... Inconsistent results" while building cases, no request involved):
    // such a run is repeated once. Any finding about courier's answers fails at once.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        let output = Command::new(st.get_program())
            .current_dir(dir.path())
            .arg("--config-file")
            .arg(&config)
            .arg("--no-color")
            .arg("run")
            .arg(format!("http://{}/v1/openapi.json", courier.listen()))
            .args(["--checks", "all"])
            .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
            .args(["--max-examples", "15"])
            .args(["--max-time", "50"])
            .args(["--seed", "1"])
            .args(["--workers", "2"])
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .output()
            .expect("run schemathesis");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        println!(
            "schemathesis (attempt {attempt}) ran for {:?}\n{stdout}\n{stderr}",
            started.elapsed()
        );
        assert!(started.elapsed() < Duration::from_secs(120));
        if output.status.success() {
            break;
        }
        let only_its_own_errors = !stdout.contains("FAILURES")
            && stdout.contains("Runtime Error")
            && stdout.contains("Inconsistent results");
        assert!(
            only_its_own_errors && attempt < 2,
            "schemathesis found problems:\n{stdout}\n{stderr}\n{}",
            courier.log_tail()
        );
    }
    assert!(
        courier.exited().is_none(),
        "courier died\n{}",
        courier.log_tail()
    );
}
