//! A server on 127.0.0.1 that answers every request by a script the test sets and changes at
//! will ([`Server`]) — the hostile and the plain answers no service fake gives: an endless
//! chunked body ([`endless`]), the request's own headers echoed back ([`echo`]), any status
//! and text ([`text`]). It records the headers of every request, so a test can find the
//! secrets a sink sent, and counts the body bytes endless answers handed to their connections,
//! so a test can show the client stopped reading.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;

/// An endless answer's body: this much, then it never ends. Far more than any limit.
pub const FLOOD_BYTES: usize = 256 * 1024 * 1024;

/// What the server answers.
#[derive(Clone, Debug)]
pub enum Content {
    /// [`FLOOD_BYTES`] of `x` in 16 KiB chunks (chunked transfer encoding), then never ends.
    Endless,
    /// A JSON array of `[name, value]` pairs: the request's headers named in [`ECHOED`] first,
    /// in that order, then the others.
    Echo,
    /// This text.
    Text(String),
}

/// Headers an echoing server puts first, so they fall within the part of an answer courier
/// keeps: the ones that carry credentials.
pub const ECHOED: &[&str] = &[
    "x-amz-security-token",
    "authorization",
    "x-api-key",
    "webhook-signature",
    "dd-api-key",
];

/// One answer of the script: status, body and extra headers.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Content,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    /// `status` with `body`, no extra header.
    pub fn new(status: u16, body: Content) -> Answer {
        Answer {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// With header `name: value`.
    pub fn header(mut self, name: &'static str, value: &str) -> Answer {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// How the server answers a request, by its URI.
pub type Script = Arc<dyn Fn(&Uri) -> Answer + Send + Sync>;

struct Inner {
    script: Mutex<Script>,
    /// Body bytes handed to the connection by endless answers.
    streamed: Arc<AtomicUsize>,
    /// Headers of every request.
    requests: Mutex<Vec<HeaderMap>>,
}

/// An HTTP server on 127.0.0.1 answering by a script.
pub struct Server {
    port: u16,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Starts on a free loopback port, answering by `script`. Must run inside a tokio runtime.
    pub async fn start(script: impl Fn(&Uri) -> Answer + Send + Sync + 'static) -> Server {
        let inner = Arc::new(Inner {
            script: Mutex::new(Arc::new(script)),
            streamed: Arc::new(AtomicUsize::new(0)),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(answer).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Server { port, inner, task }
    }

    /// Answers by `script` from now on.
    pub fn set(&self, script: impl Fn(&Uri) -> Answer + Send + Sync + 'static) {
        *self.inner.script.lock().unwrap() = Arc::new(script);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.inner.requests.lock().unwrap().len()
    }

    /// Every value the server received in header `name`.
    pub fn received(&self, name: &str) -> Vec<String> {
        self.inner
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter_map(|h| h.get(name).and_then(|v| v.to_str().ok()).map(String::from))
            .collect()
    }

    /// Body bytes endless answers handed to their connections since the last call.
    pub fn take_streamed(&self) -> usize {
        self.inner.streamed.swap(0, Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(inner): State<Arc<Inner>>, uri: Uri, headers: HeaderMap) -> Response {
    let script = inner.script.lock().unwrap().clone();
    let reply = script(&uri);
    inner.requests.lock().unwrap().push(headers.clone());
    let body = match reply.body {
        Content::Endless => {
            let streamed = inner.streamed.clone();
            let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
            let chunks = futures::stream::iter(0..FLOOD_BYTES / chunk.len()).map(move |_| {
                streamed.fetch_add(chunk.len(), Ordering::SeqCst);
                Ok::<_, Infallible>(chunk.clone())
            });
            Body::from_stream(chunks.chain(futures::stream::pending()))
        }
        Content::Echo => {
            let value =
                |v: &axum::http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
            let mut pairs: Vec<(String, String)> = ECHOED
                .iter()
                .filter_map(|n| headers.get(*n).map(|v| (n.to_string(), value(v))))
                .collect();
            pairs.extend(
                headers
                    .iter()
                    .filter(|(n, _)| !ECHOED.contains(&n.as_str()))
                    .map(|(n, v)| (n.to_string(), value(v))),
            );
            Body::from(serde_json::to_string(&pairs).unwrap())
        }
        Content::Text(text) => Body::from(text),
    };
    let mut response = Response::builder().status(reply.status);
    for (name, value) in reply.headers {
        response = response.header(name, value);
    }
    response.body(body).unwrap()
}

/// `status` with an endless body ([`Content::Endless`]).
pub fn endless(status: u16) -> Answer {
    Answer::new(status, Content::Endless)
}

/// `status` with the request's headers as the body ([`Content::Echo`]).
pub fn echo(status: u16) -> Answer {
    Answer::new(status, Content::Echo)
}

/// `status` with `body`.
pub fn text(status: u16, body: &str) -> Answer {
    Answer::new(status, Content::Text(body.to_owned()))
}
