//! The local host on 127.0.0.1:3000: what Lambda's front doors would be in AWS.
//! `POST /chat` runs the chat-stream service (the code the Lambda binary runs)
//! with real streaming (and `?action=analytics` batches), `POST /forms` and
//! `GET /forms?action=get_config&t=...` the form-intake service, with the
//! CORS preflight a Function URL answers; `GET /` is a small chat page; `GET
//! /healthz` and `GET /outbox` help you look inside. Each request's caller is
//! its `Origin` header and its peer address (Lambda's `sourceIp`).

use std::{net::SocketAddr, sync::Arc, time::Duration};
use tracing::Instrument;

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use futures_util::StreamExt as _;
use lambda_edge::{Settings, function_url::SourceIp};

/// What every route can reach.
pub struct HostState {
    pub settings: Settings,
    pub endpoint: String,
    pub s3: aws_sdk_s3::Client,
    pub http: reqwest::Client,
    pub demo_tenant_hash: String,
    /// The Bedrock stand-in's address.
    pub bedrock_url: String,
    pub chat: Arc<chat_stream::AwsChatService>,
    pub forms: Arc<form_intake::AwsFormService>,
    /// The functions' `Timeout`s from the template: each request's deadline, as in Lambda.
    pub chat_timeout: Duration,
    pub forms_timeout: Duration,
    /// The functions' deployed names: their log lines go to `/aws/lambda/<name>`.
    pub chat_function: String,
    pub forms_function: String,
}

const CHAT_PAGE: &str = include_str!("../static/index.html");

pub fn router(state: Arc<HostState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/chat", post(chat).options(preflight))
        .route("/forms", post(forms).get(forms).options(preflight))
        .route("/healthz", get(healthz))
        .route("/outbox", get(outbox))
        .with_state(state)
}

/// The CORS preflight, as a Function URL's CORS configuration answers it:
/// the seed's methods, headers and max age. A preflight names no tenant, so
/// any origin is mirrored here; the request itself then carries
/// `Access-Control-Allow-Origin` only for an origin its tenant allows.
async fn preflight(headers: HeaderMap) -> Response {
    let mut answer = StatusCode::NO_CONTENT.into_response();
    let cors = answer.headers_mut();
    if let Some(origin) = headers.get(header::ORIGIN) {
        cors.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        cors.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    cors.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET,POST,OPTIONS"));
    cors.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type,authorization,accept,if-none-match"),
    );
    cors.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    answer
}

/// A Function URL takes requests up to 6 MB; Lambda refuses larger ones.
const FUNCTION_URL_MAX_BYTES: usize = 6 * 1024 * 1024;

/// The request as a Function URL hands it to the function: the whole body,
/// and the peer's address as `sourceIp`.
async fn function_url_request(
    request: Request,
    peer: SocketAddr,
) -> Result<axum::http::Request<Bytes>, Response> {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, FUNCTION_URL_MAX_BYTES).await else {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, Json(json!({"Message": "Request Entity Too Large"})))
            .into_response());
    };
    let mut request = axum::http::Request::from_parts(parts, body);
    request.extensions_mut().insert(SourceIp(peer.ip().to_string()));
    Ok(request)
}

/// The form Function URL: form-intake's handler (forms, and the widget
/// config on GET), answered whole, or 502 when it runs past the function's
/// timeout (Lambda stops it there).
async fn forms(
    State(state): State<Arc<HostState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let request = match function_url_request(request, peer).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let secret = state.settings.trusted_proxy_secret.as_deref();
    let answer = form_intake::handle(&state.forms, request, secret);
    let answer = answer.instrument(crate::log_shipping::invocation(&state.forms_function));
    let Ok(response) = tokio::time::timeout(state.forms_timeout, answer).await else {
        tracing::error!(timeout_s = state.forms_timeout.as_secs(), "form-intake invocation timed out");
        return timed_out();
    };
    response.map(Body::from)
}

/// What a Function URL answers when its invocation runs past the function's timeout.
fn timed_out() -> Response {
    (StatusCode::BAD_GATEWAY, Json(json!({"Message": "Internal Server Error"}))).into_response()
}

async fn page(State(state): State<Arc<HostState>>) -> Html<String> {
    Html(CHAT_PAGE.replace("{{DEMO_TENANT_HASH}}", &state.demo_tenant_hash))
}

/// The chat Function URL: chat-stream's handler, its frames streamed as
/// written. At the function's timeout the stream is cut, as Lambda cuts it.
async fn chat(
    State(state): State<Arc<HostState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let deadline = tokio::time::Instant::now() + state.chat_timeout;
    let request = match function_url_request(request, peer).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let secret = state.settings.trusted_proxy_secret.as_deref();
    let answer = chat_stream::handle(&state.chat, request, secret);
    let answer = answer.instrument(crate::log_shipping::invocation(&state.chat_function));
    let Ok(response) = tokio::time::timeout_at(deadline, answer).await else {
        return timed_out();
    };
    let cut = async move {
        tokio::time::sleep_until(deadline).await;
        tracing::error!("chat-stream invocation timed out; stream cut");
    };
    response.map(|body| {
        let frames = http_body_util::BodyStream::new(body)
            .map(|frame| frame.map(|f| f.into_data().unwrap_or_default()))
            .take_until(cut);
        Body::from_stream(frames)
    })
}

/// How long each health probe may take: an answer slower than this is "down".
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Reports the AWS endpoint and whether the emulator, the config bucket, the
/// demo tenant and the Bedrock stand-in answer: one small call each, at once,
/// each within `PROBE_TIMEOUT` (never the emulator's state dump). 200 when all
/// are up, 503 otherwise.
async fn healthz(State(state): State<Arc<HostState>>) -> impl IntoResponse {
    let bucket = &state.settings.config_bucket;
    let mapping_key = format!("mappings/{}.json", state.demo_tenant_hash);
    let (emulator, config_bucket, demo_tenant, bedrock) = tokio::join!(
        probe(answers(&state.http, format!("{}{}", state.endpoint, crate::emulator::HEALTH_PATH))),
        probe(state.s3.head_bucket().bucket(bucket).send()),
        probe(state.s3.head_object().bucket(bucket).key(&mapping_key).send()),
        probe(answers(&state.http, format!("{}/_standin/faults", state.bedrock_url))),
    );
    let up = |ok: bool| if ok { "up" } else { "down" };
    let healthy = emulator && config_bucket && demo_tenant && bedrock;
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "aws_endpoint": state.endpoint,
        "checks": {
            "emulator": up(emulator),
            "config_bucket": up(config_bucket),
            "demo_tenant": up(demo_tenant),
            "bedrock_standin": up(bedrock),
        },
        "bedrock_endpoint": state.bedrock_url,
        "resources": {
            "config_bucket": state.settings.config_bucket,
            "form_submissions_table": state.settings.form_submissions_table,
            "sms_usage_table": state.settings.sms_usage_table,
            "rate_limits_table": state.settings.rate_limits_table,
            "event_bus": state.settings.event_bus_name,
        },
        "demo_tenant_hash": state.demo_tenant_hash,
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

/// Whether a call succeeds within `PROBE_TIMEOUT`.
async fn probe<T, E>(call: impl Future<Output = Result<T, E>>) -> bool {
    matches!(tokio::time::timeout(PROBE_TIMEOUT, call).await, Ok(Ok(_)))
}

/// A GET that answers 2xx.
async fn answers(http: &reqwest::Client, url: String) -> Result<(), reqwest::Error> {
    http.get(url).send().await?.error_for_status().map(drop)
}

/// The most entries of each kind one `/outbox` page holds (also the emulator's bound).
pub const MAX_PAGE: usize = 1000;
/// How long the emulator may take to answer one page of the outbox.
const OUTBOX_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /outbox?limit=&offset=`: `limit` (1 to `MAX_PAGE`, default 50) of each
/// kind, newest first, skipping the `offset` newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct Page {
    #[serde(default = "default_limit")]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
}

fn default_limit() -> usize {
    50
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("limit must be between 1 and {MAX_PAGE}, offset a whole number")]
    BadPage,
    #[error("the AWS emulator did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the AWS emulator's outbox could not be read")]
    Emulator(#[from] reqwest::Error),
}

impl Page {
    /// The page a request's query asks for, or `BadPage`.
    pub fn from_uri(uri: &Uri) -> Result<Self, OutboxError> {
        let Query(page) = Query::<Self>::try_from_uri(uri).map_err(|_| OutboxError::BadPage)?;
        if (1..=MAX_PAGE).contains(&page.limit) { Ok(page) } else { Err(OutboxError::BadPage) }
    }
}

/// The emails and SMS the emulator captured, newest first, one page of each:
/// read from the emulator's outbox route (`moto_server.py`), which keeps the
/// newest 1,000 of each and says how many older ones it dropped.
async fn outbox(State(state): State<Arc<HostState>>, uri: Uri) -> Response {
    let page = async {
        let page = Page::from_uri(&uri)?;
        let url = format!("{}/_picasso/outbox?limit={}&offset={}", state.endpoint, page.limit, page.offset);
        let read = async { state.http.get(url).send().await?.error_for_status()?.json::<Value>().await };
        tokio::time::timeout(OUTBOX_TIMEOUT, read)
            .await
            .map_err(|_| OutboxError::Timeout(OUTBOX_TIMEOUT))?
            .map_err(OutboxError::from)
    };
    match page.await {
        Ok(page) => Json(page).into_response(),
        Err(err @ OutboxError::BadPage) => {
            (StatusCode::BAD_REQUEST, Json(json!({"error": err.to_string(), "code": "bad_page"})))
                .into_response()
        }
        Err(err) => {
            tracing::warn!(error = %err, "emulator unreachable for /outbox");
            (
                StatusCode::BAD_GATEWAY,
                Json(json!({"error": "the AWS emulator did not answer", "code": "emulator_unavailable"})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outbox_page_is_the_newest_fifty_unless_asked() {
        let page = |uri: &str| Page::from_uri(&uri.parse().unwrap());
        assert_eq!(page("/outbox").unwrap(), Page { limit: 50, offset: 0 });
        assert_eq!(page("/outbox?limit=2&offset=4").unwrap(), Page { limit: 2, offset: 4 });
        assert_eq!(page("/outbox?limit=1000").unwrap(), Page { limit: 1000, offset: 0 });
    }

    #[test]
    fn an_outbox_page_out_of_bounds_is_refused() {
        for query in ["limit=0", "limit=1001", "limit=ten", "offset=-1"] {
            let uri = format!("/outbox?{query}").parse().unwrap();
            assert!(matches!(Page::from_uri(&uri), Err(OutboxError::BadPage)), "{query}");
        }
    }
}
