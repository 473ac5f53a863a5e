//! Plain HTTP from the test process: courier's own endpoints (`/readyz`, `/metrics`, the API)
//! and reading a Prometheus exposition. Clients ignore any proxy settings of the environment.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::HeaderMap;

use super::rt;

/// `GET http://{addr}{path}` → (status, body). Ignores any proxy settings of the environment.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("build reqwest client")
    });
    let url = format!("http://{addr}{path}");
    rt().block_on(async {
        let resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .map_err(|e| format!("GET {url} body: {e}"))?;
        Ok((status, body))
    })
}

/// `POST url` with `headers` and `body` → (status, headers). For testing the harness itself.
pub fn http_post(
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, HeaderMap), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("build reqwest client");
    rt().block_on(async {
        let mut req = client.post(url).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.map_err(|e| format!("POST {url}: {e}"))?;
        Ok((resp.status().as_u16(), resp.headers().clone()))
    })
}

/// The sum of every sample of metric `name` in a Prometheus text exposition whose labels
/// contain all of `labels` (`[("reason", "invalid_json")]`); `None` if there is no such sample.
pub fn metric_sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in exposition.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value_text) = if let Some(inner) = rest.strip_prefix('{') {
            let Some(end) = inner.find('}') else { continue };
            (&inner[..end], inner[end + 1..].trim())
        } else if rest.starts_with(' ') {
            ("", rest.trim())
        } else {
            continue; // another metric whose name starts with `name`
        };
        let matches = labels.iter().all(|(k, v)| {
            label_text
                .split(',')
                .any(|kv| kv.trim() == format!("{k}=\"{v}\""))
        });
        if !matches {
            continue;
        }
        let value: f64 = value_text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unparsable metric line: {line}"));
        *total.get_or_insert(0.0) += value;
    }
    total
}

/// One call to courier's API → (status, body as JSON, or the text as a JSON string), with the
/// bearer `token` when given and a JSON `body` when given. Panics when the request cannot be
/// sent (courier is not listening).
pub fn api_call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build the HTTP client")
    });
    let url = format!("http://{addr}{path}");
    rt().block_on(async {
        let method = method.parse().expect("an HTTP method");
        let mut req = client.request(method, &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, value)
    })
}
