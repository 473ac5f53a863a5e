//! The web console under `/console`: a page where a customer sees their destinations' health,
//! the failures with the destination's own answer, fixes the settings, sends a test event and
//! replays what failed — through the `/v1` API, with the same bearer tokens.
//!
//! Why it is built this way:
//! - Every asset is compiled into the binary (`include_str!`/`include_bytes!`): operators run
//!   courier where nothing else may be fetched, and a console that loads nothing from another
//!   host cannot be changed under them. Plain JavaScript modules, no build step, so `cargo
//!   build` needs no Node toolchain and there is no generated output to keep in sync.
//! - A strict Content-Security-Policy on every answer: script and style only from these
//!   files (no inline script or style, no `eval`), connections only to this origin, no
//!   framing, no forms posted elsewhere. The app builds every node with DOM APIs and puts
//!   what customers and endpoints wrote in text nodes only, so an endpoint answering
//!   `<img src=x onerror=…>` shows that text; the policy is the second line if it did not.
//! - The token stays in the browser's session storage and travels in `Authorization`, never in
//!   a cookie: nothing here is reachable by a cross-site request carrying ambient credentials,
//!   and the pages themselves are public (they hold no data until the API answers).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The console's Content-Security-Policy (every answer under `/console`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

const JS: &str = "text/javascript; charset=utf-8";

/// One embedded file: its name under `/console/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("assets/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("chart.js", JS),
    asset!("fields.js", JS),
    asset!("form.js", JS),
    asset!("project.js", JS),
    asset!("destination.js", JS),
];

/// The console's routes (full paths), for the server port when `[api]` is configured.
pub fn router() -> Router {
    Router::new()
        .route("/console", get(|| async { serve("index.html") }))
        .route("/console/", get(|| async { serve("index.html") }))
        .route(
            "/console/{asset}",
            get(|Path(name): Path<String>| async move { serve(&name) }),
        )
}

fn serve(name: &str) -> Response {
    let found = ASSETS.iter().find(|a| a.name == name);
    let mut response = match found {
        Some(a) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            )],
            a.body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            "no such file in the console\n",
        )
            .into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The files change with the binary: revalidate rather than keep an old console.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str) -> &'static str {
        let a = ASSETS.iter().find(|a| a.name == name).unwrap();
        std::str::from_utf8(a.body).unwrap()
    }

    #[test]
    fn every_answer_carries_the_policy_and_its_content_type() {
        for (name, status, kind) in [
            ("index.html", 200, "text/html; charset=utf-8"),
            ("app.js", 200, JS),
            ("app.css", 200, "text/css; charset=utf-8"),
            ("favicon.svg", 200, "image/svg+xml"),
            ("../Cargo.toml", 404, "text/plain; charset=utf-8"),
            ("nope.js", 404, "text/plain; charset=utf-8"),
        ] {
            let r = serve(name);
            assert_eq!(r.status().as_u16(), status, "{name}");
            let h = r.headers();
            assert_eq!(h[header::CONTENT_TYPE], kind, "{name}");
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        }
    }

    /// The policy forbids inline script and style: the files must not need them, and the
    /// modules must never hand data to an HTML parser.
    #[test]
    fn the_files_need_nothing_the_policy_forbids() {
        let html = text("index.html");
        assert!(!html.contains("style="), "inline style in index.html");
        assert!(!html.contains("<style"), "a style element in index.html");
        for tag in html.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap();
            assert!(open.contains("src=\"/console/"), "inline script: {open}");
        }
        assert!(!html.contains("http://") && !html.contains("https://"));
        let css = text("app.css");
        assert!(
            !css.contains("@import") && !css.contains("url("),
            "app.css loads something"
        );
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            let js = text(a.name);
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                ".style.",
                "document.cookie",
                "import(",
            ] {
                assert!(!js.contains(banned), "{} uses {banned}", a.name);
            }
            // One place talks to the network, to this origin's /v1 only.
            assert_eq!(js.contains("fetch("), a.name == "api.js", "{}", a.name);
            for line in js.lines().filter(|l| l.starts_with("import ")) {
                assert!(line.contains(" from './"), "{}: {line}", a.name);
            }
        }
    }

    #[test]
    fn every_module_imported_is_served() {
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            for line in text(a.name).lines() {
                if let Some(rest) = line.split(" from './").nth(1) {
                    let file = rest.split('\'').next().unwrap();
                    assert!(
                        ASSETS.iter().any(|b| b.name == file),
                        "{} imports {file}, which is not embedded",
                        a.name
                    );
                }
            }
        }
    }
}
