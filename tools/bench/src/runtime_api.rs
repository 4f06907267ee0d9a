//! A minimal fake of the Lambda Runtime API: enough to start a function
//! binary, hand it events and read its (streamed) responses.

use std::{
    collections::VecDeque,
    path::Path,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use tokio::{net::TcpListener, process::Child, task::JoinHandle};

const PREFIX: &str = "/2018-06-01/runtime";

#[derive(Default)]
struct Shared {
    events: Mutex<VecDeque<String>>,
    expected: usize,
    first_next: Mutex<Option<Instant>>,
    issued: AtomicUsize,
    responses: AtomicUsize,
    with_error_frame: AtomicUsize,
}

pub struct Summary {
    pub responses: usize,
    pub with_error_frame: usize,
}

pub struct FakeRuntime {
    address: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeRuntime {
    /// Serves `events` in order; once they run out, `next` never answers (as
    /// when Lambda freezes an idle sandbox).
    pub async fn start(events: Vec<String>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            expected: events.len(),
            events: Mutex::new(events.into()),
            ..Shared::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let app = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(&format!("{PREFIX}/invocation/{{id}}/response"), post(response))
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(accepted))
            .route(&format!("{PREFIX}/init/error"), post(accepted))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { address, shared, server })
    }

    /// Starts a function binary against this Runtime API.
    pub fn spawn(&self, binary: &Path, env: &[(String, String)]) -> std::io::Result<Child> {
        let mut command = tokio::process::Command::new(binary);
        command
            .env("AWS_LAMBDA_RUNTIME_API", &self.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "chat-stream")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/chat-stream")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("CONFIG_BUCKET", "myrecruiter-picasso")
            .env("FORM_SUBMISSIONS_TABLE", "picasso-form-submissions")
            .env("SMS_USAGE_TABLE", "picasso-sms-usage")
            .env("RATE_LIMITS_TABLE", "picasso-rate-limits")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command.spawn()
    }

    pub async fn first_next(&self, timeout: Duration) -> Option<Instant> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(at) = *self.shared.first_next.lock().ok()? {
                return Some(at);
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        None
    }

    pub async fn wait_done(&self, timeout: Duration) -> Option<()> {
        let started = Instant::now();
        while self.shared.responses.load(Ordering::SeqCst) < self.shared.expected {
            if started.elapsed() > timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Some(())
    }

    pub fn summary(&self) -> Summary {
        Summary {
            responses: self.shared.responses.load(Ordering::SeqCst),
            with_error_frame: self.shared.with_error_frame.load(Ordering::SeqCst),
        }
    }

    pub fn stop(self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if let Ok(mut first) = shared.first_next.lock() {
        first.get_or_insert_with(Instant::now);
    }
    let event = shared.events.lock().ok().and_then(|mut events| events.pop_front());
    let Some(event) = event else {
        return std::future::pending().await;
    };
    let n = shared.issued.fetch_add(1, Ordering::SeqCst);
    let deadline = shared::telemetry::now_epoch_millis() + 300_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", format!("bench-{n}"));
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:chat-stream".into(),
    );
    set("lambda-runtime-trace-id", format!("Root=1-00000000-{n:024x};Sampled=0"));
    (headers, event)
}

async fn response(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    if body.windows(16).any(|w| w == b"\"type\":\"error\",") {
        shared.with_error_frame.fetch_add(1, Ordering::SeqCst);
    }
    shared.responses.fetch_add(1, Ordering::SeqCst);
    StatusCode::ACCEPTED
}

async fn accepted() -> StatusCode {
    StatusCode::ACCEPTED
}

/// A Function URL (API Gateway v2 payload) POST event carrying `body`.
pub fn function_url_event(body: &str) -> String {
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "bench.lambda-url.us-east-1.on.aws"},
        "requestContext": {
            "accountId": "anonymous", "apiId": "bench", "domainName": "bench.lambda-url.us-east-1.on.aws",
            "domainPrefix": "bench", "requestId": "bench", "routeKey": "$default", "stage": "$default",
            "time": "25/Nov/2026:03:04:05 +0000", "timeEpoch": 1795575845000u64,
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"}
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}
