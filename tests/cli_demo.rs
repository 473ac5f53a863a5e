//! `courier demo` through the binary, as the README's first command runs it: every produced
//! message is read (none lost to the embedded broker's small log) and the demo ends on its
//! own once everything is delivered, well before its time limit.

use std::process::Command;

#[test]
fn the_demo_reads_every_message_it_produced_and_ends_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["demo", "--events", "20000", "--seconds", "120"])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    // Before the fix, the start waited 10 s for the embedded broker to report a retention it
    // cannot report, while the demo produced; the broker dropped the oldest messages, the demo
    // printed "18820 of 20000 produced messages consumed" and ran into its time limit.
    assert!(
        stdout.contains("20000 of 20000 produced messages consumed"),
        "{stdout}"
    );
    assert!(!stdout.contains("time limit reached"), "{stdout}");
}

/// `courier demo --serve`, as a newcomer runs it: the console's address and a token are
/// printed, the console and the API answer with that token (and refuse without it), events
/// keep flowing, and Ctrl-C (SIGINT) stops it cleanly.
#[test]
fn the_served_demo_prints_the_console_and_a_token_that_works_until_interrupted() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["demo", "--serve", "--events", "2000", "--seconds", "120"])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let (mut console, mut token, mut seen) = (None, None, String::new());
    let deadline = Instant::now() + Duration::from_secs(90);
    while (console.is_none() || token.is_none()) && Instant::now() < deadline {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(url) = line.strip_prefix("console: ") {
            console = Some(url.trim().to_owned());
        }
        if let Some(rest) = line.strip_prefix("token:") {
            token = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    let (Some(console), Some(token)) = (console, token) else {
        let _ = child.kill();
        panic!("no console address or token printed:\n{seen}");
    };
    assert!(seen.contains("the first 2000 messages consumed"), "{seen}");
    let base = console
        .strip_suffix("/console/")
        .unwrap_or_else(|| panic!("unexpected console address {console}"))
        .to_owned();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // GET → (status, Content-Security-Policy, body).
    let get = |url: &str, token: Option<&str>| -> (u16, String, String) {
        runtime.block_on(async {
            let mut request = client.get(url);
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let response = request.send().await.unwrap();
            let csp = response
                .headers()
                .get("content-security-policy")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (
                response.status().as_u16(),
                csp,
                response.text().await.unwrap(),
            )
        })
    };
    let (status, csp, page) = get(&console, None);
    assert_eq!(status, 200, "{page}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(page.contains("<html"), "{page}");

    let destinations = format!("{base}/v1/projects/proj_0001/destinations");
    assert_eq!(get(&destinations, None).0, 401);
    let (status, _, body) = get(&destinations, Some(&token));
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = listed["destinations"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert!(ids.contains(&"all-events"), "{listed}");

    // The trickle keeps events flowing after the first 2,000.
    let status_url = format!("{base}/v1/projects/proj_0001/destinations/all-events/status");
    let delivered = || -> u64 {
        let (_, _, body) = get(&status_url, Some(&token));
        let s: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        s["events"]["delivered"].as_u64().unwrap_or(0)
    };
    let first = delivered();
    let until = Instant::now() + Duration::from_secs(30);
    while delivered() <= first {
        assert!(
            Instant::now() < until,
            "no event delivered after the first {first}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let until = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the served demo did not stop within 30 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "{exit:?}");
}
