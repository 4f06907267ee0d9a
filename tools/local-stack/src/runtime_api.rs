//! A Lambda Runtime API emulator: runs a function's own binary the way
//! Lambda does. The binary long-polls `GET /invocation/next`, gets each event
//! with its request id and deadline, and answers with `POST .../response`
//! (buffered, or streamed in chunks with the HTTP integration prelude when
//! the function uses response streaming) or `POST .../error`. Every chunk of
//! a streamed response is recorded with the time it arrived, so a test sees
//! whether frames came one by one.
//!
//! [`RuntimeApi::serve_function_url`] puts a Function URL in front of it, as
//! Lambda does: each HTTP request becomes a Function URL event, and a streamed
//! response is relayed to the caller chunk by chunk as the binary sends it,
//! its prelude turned into the status and headers.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path as UrlPath, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use http_body_util::BodyExt;
use tokio::{
    net::TcpListener,
    process::Child,
    sync::{Notify, mpsc},
    task::JoinHandle,
};
use tokio_stream::{StreamExt as _, wrappers::UnboundedReceiverStream};

const PREFIX: &str = "/2018-06-01/runtime";
/// What separates the HTTP prelude from the body of a streamed Function URL response.
const PRELUDE_END: [u8; 8] = [0; 8];

/// How an invocation ended, as the binary reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// `POST .../response` finished.
    Response,
    /// `POST .../error` (or a streamed response whose trailers carry an error).
    Error(String),
}

/// One invocation as the Runtime API saw it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub ending: Option<Ending>,
    /// The response body as sent, each chunk with its arrival time.
    pub chunks: Vec<(Instant, Bytes)>,
    pub streamed: bool,
}

impl Invocation {
    pub fn body(&self) -> Vec<u8> {
        self.chunks.iter().flat_map(|(_, chunk)| chunk.iter().copied()).collect()
    }

    /// A streamed Function URL response: its prelude (`statusCode`, `headers`)
    /// and the body after it.
    pub fn http_response(&self) -> Option<(serde_json::Value, Vec<u8>)> {
        let body = self.body();
        let end = body.windows(PRELUDE_END.len()).position(|w| w == PRELUDE_END)?;
        let prelude = serde_json::from_slice(&body[..end]).ok()?;
        Some((prelude, body[end + PRELUDE_END.len()..].to_vec()))
    }

    /// The body's parsed JSON (a buffered response).
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body()).ok()
    }
}

#[derive(Default)]
struct Shared {
    pending: Mutex<VecDeque<(String, String)>>,
    arrived: Notify,
    invocations: Mutex<HashMap<String, Invocation>>,
    changed: Notify,
    first_next: Mutex<Option<Instant>>,
    next_id: Mutex<u64>,
    /// Invocations whose response chunks go on to a Function URL caller.
    relays: Mutex<HashMap<String, mpsc::UnboundedSender<Bytes>>>,
    function_name: String,
    timeout: Duration,
}

pub struct RuntimeApi {
    pub address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    function_url: Mutex<Option<JoinHandle<()>>>,
}

impl RuntimeApi {
    /// Serves on a free port of 127.0.0.1 for one function with this `Timeout`.
    pub async fn start(function_name: &str, timeout: Duration) -> std::io::Result<Self> {
        let shared =
            Arc::new(Shared { function_name: function_name.to_owned(), timeout, ..Shared::default() });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let app = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(&format!("{PREFIX}/invocation/{{id}}/response"), post(response))
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(crate::no_delay(listener), app).await;
        });
        Ok(Self { address, shared, server, function_url: Mutex::default() })
    }

    /// Serves a Function URL (invoke mode `RESPONSE_STREAM`) for this
    /// function on a free port of 127.0.0.1; returns its base URL.
    pub async fn serve_function_url(&self) -> std::io::Result<String> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let app = Router::new().fallback(function_url).with_state(Arc::clone(&self.shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                crate::no_delay(listener),
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        if let Some(previous) = self.function_url.lock().unwrap_or_else(|e| e.into_inner()).replace(server) {
            previous.abort();
        }
        Ok(format!("http://{address}"))
    }

    /// Starts `binary` against this API with `env` (and nothing of this
    /// process's environment but `PATH`), its stdout and stderr appended to `log`.
    pub fn spawn(&self, binary: &Path, env: &[(String, String)], log: &Path) -> std::io::Result<Child> {
        let file = std::fs::File::create(log)?;
        let output = || file.try_clone().map(Stdio::from);
        tokio::process::Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", self.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.shared.function_name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", self.shared.function_name))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(output()?)
            .stderr(output()?)
            .kill_on_drop(true)
            .spawn()
    }

    /// Queues an event; returns its request id.
    pub fn invoke(&self, event: impl Into<String>) -> String {
        self.shared.invoke(event.into(), None)
    }

    /// Waits until the invocation has ended (or `timeout` passed).
    pub async fn wait(&self, request_id: &str, timeout: Duration) -> Option<Invocation> {
        let until = Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            if let Some(invocation) = self.invocation(request_id).filter(|i| i.ending.is_some()) {
                return Some(invocation);
            }
            if tokio::time::timeout(until.saturating_duration_since(Instant::now()), changed).await.is_err() {
                return None;
            }
        }
    }

    pub fn invocation(&self, request_id: &str) -> Option<Invocation> {
        self.shared.invocations.lock().ok()?.get(request_id).cloned()
    }

    /// The invocation queued last (a Function URL request's, say).
    pub fn last_invocation(&self) -> Option<Invocation> {
        let id = request_id(*self.shared.next_id.lock().ok()?);
        self.invocation(&id)
    }

    /// When the binary first asked for an event: it is ready.
    pub fn first_next(&self) -> Option<Instant> {
        *self.shared.first_next.lock().ok()?
    }

    pub fn stop(self) {
        self.server.abort();
        if let Some(function_url) = self.function_url.lock().unwrap_or_else(|e| e.into_inner()).take() {
            function_url.abort();
        }
    }
}

impl Shared {
    /// Queues an event (its response relayed to `relay`, if given); returns its request id.
    fn invoke(&self, event: String, relay: Option<mpsc::UnboundedSender<Bytes>>) -> String {
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            request_id(*next)
        };
        if let Some(relay) = relay {
            self.relays.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), relay);
        }
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).push_back((id.clone(), event));
        self.arrived.notify_one();
        id
    }

    /// Hands a response chunk to the Function URL caller waiting for it.
    fn relay(&self, id: &str, chunk: &Bytes) {
        if let Some(relay) = self.relays.lock().ok().as_ref().and_then(|relays| relays.get(id)) {
            let _ = relay.send(chunk.clone());
        }
    }

    /// The response is over: the caller's body ends.
    fn end_relay(&self, id: &str) {
        if let Ok(mut relays) = self.relays.lock() {
            relays.remove(id);
        }
    }
}

fn request_id(n: u64) -> String {
    format!("req-{n:04}")
}

async fn next(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if let Ok(mut first) = shared.first_next.lock() {
        first.get_or_insert_with(Instant::now);
    }
    let (id, event) = loop {
        let arrived = shared.arrived.notified();
        if let Some(queued) = shared.pending.lock().ok().and_then(|mut pending| pending.pop_front()) {
            break queued;
        }
        arrived.await;
    };
    if let Ok(mut invocations) = shared.invocations.lock() {
        invocations.insert(
            id.clone(),
            Invocation { request_id: id.clone(), ending: None, chunks: Vec::new(), streamed: false },
        );
    }
    let deadline = domain::time::now_epoch_millis() + shared.timeout.as_millis();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", id.clone());
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        format!("arn:aws:lambda:{}:123456789012:function:{}", crate::REGION, shared.function_name),
    );
    set("lambda-runtime-trace-id", format!("Root=1-00000000-{:0>24};Sampled=0", id.replace('-', "")));
    (headers, event)
}

fn update(shared: &Shared, id: &str, change: impl FnOnce(&mut Invocation)) {
    if let Ok(mut invocations) = shared.invocations.lock()
        && let Some(invocation) = invocations.get_mut(id)
    {
        change(invocation);
    }
    shared.changed.notify_waiters();
}

async fn response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> StatusCode {
    let streamed = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|mode| mode.as_bytes().eq_ignore_ascii_case(b"streaming"));
    update(&shared, &id, |invocation| invocation.streamed = streamed);
    let mut body = body;
    let mut ending = Ending::Response;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            ending = Ending::Error("the response stream broke".into());
            break;
        };
        match frame.into_data() {
            Ok(chunk) => {
                shared.relay(&id, &chunk);
                update(&shared, &id, |invocation| invocation.chunks.push((Instant::now(), chunk)));
            }
            Err(frame) => {
                if let Some(kind) =
                    frame.trailers_ref().and_then(|t| t.get("lambda-runtime-function-error-type"))
                {
                    ending = Ending::Error(String::from_utf8_lossy(kind.as_bytes()).into_owned());
                }
            }
        }
    }
    shared.end_relay(&id);
    update(&shared, &id, |invocation| invocation.ending = Some(ending));
    StatusCode::ACCEPTED
}

async fn error(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    let message = String::from_utf8_lossy(&body).into_owned();
    shared.end_relay(&id);
    update(&shared, &id, |invocation| invocation.ending = Some(Ending::Error(message)));
    StatusCode::ACCEPTED
}

/// One Function URL request: invokes the function with it, then answers with
/// the prelude's status and headers and relays the body as it streams. A
/// function that failed before its prelude gets Lambda's 502.
async fn function_url(
    State(shared): State<Arc<Shared>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let event = url_event(method.as_str(), uri.query().unwrap_or(""), &headers, &body, peer);
    let (relay, mut chunks) = mpsc::unbounded_channel();
    shared.invoke(event, Some(relay));
    let mut head = Vec::new();
    let end = loop {
        match chunks.recv().await {
            Some(chunk) => head.extend_from_slice(&chunk),
            None => return buffered(&head),
        }
        if let Some(end) = head.windows(PRELUDE_END.len()).position(|w| w == PRELUDE_END) {
            break end;
        }
    };
    let Ok(prelude) = serde_json::from_slice::<serde_json::Value>(&head[..end]) else {
        return bad_gateway();
    };
    let rest = Bytes::copy_from_slice(&head[end + PRELUDE_END.len()..]);
    let first = tokio_stream::iter((!rest.is_empty()).then_some(rest));
    let stream = first.chain(UnboundedReceiverStream::new(chunks)).map(Ok::<_, std::convert::Infallible>);
    with_prelude(&prelude, Body::from_stream(stream))
}

/// The Function URL event of an HTTP request (payload format 2.0).
fn url_event(method: &str, query: &str, headers: &HeaderMap, body: &[u8], peer: SocketAddr) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(&function_url_event(method, query, &String::from_utf8_lossy(body)))
            .unwrap_or_default();
    for (name, value) in headers {
        if let Ok(value) = value.to_str() {
            event["headers"][name.as_str()] = value.into();
        }
    }
    event["requestContext"]["http"]["sourceIp"] = peer.ip().to_string().into();
    event.to_string()
}

/// The status and headers of a streamed response's prelude, over `body`.
fn with_prelude(prelude: &serde_json::Value, body: Body) -> axum::response::Response {
    let mut response = axum::response::Response::new(body);
    let status = prelude["statusCode"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(200);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    for (name, value) in prelude["headers"].as_object().into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) =
            (axum::http::HeaderName::from_bytes(name.as_bytes()), value.as_str().map(HeaderValue::from_str))
        {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A buffered response (`{"statusCode", "headers", "body"}`), or 502 when the
/// function sent nothing usable.
fn buffered(body: &[u8]) -> axum::response::Response {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(response) if response.get("statusCode").is_some() => {
            let text = response["body"].as_str().unwrap_or_default().to_owned();
            with_prelude(&response, Body::from(text))
        }
        _ => bad_gateway(),
    }
}

fn bad_gateway() -> axum::response::Response {
    (StatusCode::BAD_GATEWAY, "Internal Server Error").into_response()
}

async fn init_error(body: Bytes) -> StatusCode {
    tracing::error!(error = %String::from_utf8_lossy(&body), "function failed to initialise");
    StatusCode::ACCEPTED
}

/// A Function URL (HTTP API v2 payload) request event.
pub fn function_url_event(method: &str, raw_query: &str, body: &str) -> String {
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": raw_query,
        "headers": {"content-type": "application/json", "host": "local.lambda-url.us-east-1.on.aws"},
        "requestContext": {
            "accountId": "anonymous", "apiId": "local", "domainName": "local.lambda-url.us-east-1.on.aws",
            "domainPrefix": "local", "requestId": "local", "routeKey": "$default", "stage": "$default",
            "time": "25/Nov/2026:03:04:05 +0000", "timeEpoch": 1_795_575_845_000_u64,
            "http": {"method": method, "path": "/", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "local"}
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

/// A template function's own binary, run under a [`RuntimeApi`] with the
/// environment the stack gives it (`LocalStack::function_env`).
pub struct FunctionUnderTest {
    pub api: RuntimeApi,
    child: Child,
    log: std::path::PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error(transparent)]
    Stack(#[from] crate::StackError),
    #[error("could not start {binary}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} never asked for an event; its output:\n{1}")]
    NotReady(String, String),
}

impl FunctionUnderTest {
    /// Starts `binary` as the template's `logical_id` function, with `extra`
    /// environment on top of the template's, and waits until it is ready.
    pub async fn start(
        stack: &crate::LocalStack,
        logical_id: &str,
        binary: &Path,
        extra: &[(&str, &str)],
    ) -> Result<Self, FunctionError> {
        let timeout = stack
            .template
            .function_timeout(logical_id)
            .ok_or(crate::StackError::MissingResource("the function's Timeout"))?;
        let mut env = stack.function_env(logical_id)?;
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let name = format!("{logical_id}-local");
        let api = RuntimeApi::start(&name, timeout)
            .await
            .map_err(|source| FunctionError::Spawn { binary: "the Runtime API".into(), source })?;
        let log = std::env::temp_dir().join(format!("picasso-{name}-{}.log", api.address.port()));
        let child = api
            .spawn(binary, &env, &log)
            .map_err(|source| FunctionError::Spawn { binary: binary.display().to_string(), source })?;
        let ready_by = Instant::now() + Duration::from_secs(20);
        while api.first_next().is_none() {
            if Instant::now() > ready_by {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                let _ = std::fs::remove_file(&log);
                return Err(FunctionError::NotReady(binary.display().to_string(), output));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Self { api, child, log })
    }

    /// One invocation with `event`, waited for up to the function's timeout.
    pub async fn invoke(&self, event: impl Into<String>) -> Option<Invocation> {
        let id = self.api.invoke(event);
        self.api.wait(&id, self.api.shared.timeout + Duration::from_secs(5)).await
    }

    /// Everything the function wrote to stdout and stderr so far, one log line per line.
    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// Stops the function; with `TEST_LOG` set, prints what it logged.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        if std::env::var_os("TEST_LOG").is_some() {
            eprintln!("{}", self.log_lines().join("\n"));
        }
        let _ = std::fs::remove_file(&self.log);
        self.api.stop();
    }
}

/// A sample event of `events/` (e.g. `chat-stream/question.json`), as text.
pub fn sample_event(path: &str) -> String {
    let file = crate::repo_root().join("events").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The ids of the records a consumer asked to get again (`batchItemFailures`).
pub fn failed_items(response: &serde_json::Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
        .collect()
}

/// Runs a consumer's binary on one of its sample SQS batches against a fresh
/// stack; returns the ids of the records it reported for redelivery.
pub async fn sample_batch_failures(logical_id: &str, binary: &Path, sample: &str) -> Vec<String> {
    let stack = crate::LocalStack::start(crate::StackOptions::for_tests())
        .await
        .unwrap_or_else(|e| panic!("local stack: {}", domain::report::error_chain(&e)));
    let function = FunctionUnderTest::start(&stack, logical_id, binary, &[])
        .await
        .unwrap_or_else(|e| panic!("{logical_id}: {}", domain::report::error_chain(&e)));
    let invocation = function.invoke(sample_event(sample)).await;
    function.stop().await;
    stack.stop().await;
    let response = invocation.and_then(|i| i.json()).unwrap_or_default();
    failed_items(&response)
}
