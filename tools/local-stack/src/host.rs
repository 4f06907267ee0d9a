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
    extract::{ConnectInfo, Query, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use shared::{Settings, edge::Caller};

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
        .route("/forms", post(forms).get(widget_config).options(preflight))
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

/// Who sent a request: its `Origin` and the peer address, as Lambda's `sourceIp`.
fn caller(headers: &HeaderMap, peer: SocketAddr) -> Caller {
    Caller::new(headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()), Some(peer.ip().to_string()))
}

/// The form Function URL: the form-intake service, answered whole, or 502
/// when it runs past the function's timeout (Lambda stops it there).
async fn forms(
    State(state): State<Arc<HostState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = caller(&headers, peer);
    let answer = state.forms.handle_from(&body, &caller);
    let answer = answer.instrument(crate::log_shipping::invocation(&state.forms_function));
    let Ok(response) = tokio::time::timeout(state.forms_timeout, answer).await else {
        tracing::error!(timeout_s = state.forms_timeout.as_secs(), "form-intake invocation timed out");
        return timed_out();
    };
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut answer = (status, response.body()).into_response();
    for (name, value) in shared::sse::HEADERS {
        answer.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    for (name, value) in &response.headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            answer.headers_mut().insert(*name, value);
        }
    }
    answer
}

/// `GET /forms?action=get_config&t=...`: the widget config, as the form Function URL answers it.
async fn widget_config(
    State(state): State<Arc<HostState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let if_none_match = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    let caller = caller(&headers, peer);
    let answer = state.forms.get_config(query.as_deref(), if_none_match, &caller);
    let answer = answer.instrument(crate::log_shipping::invocation(&state.forms_function));
    let Ok(response) = tokio::time::timeout(state.forms_timeout, answer).await else {
        tracing::error!(timeout_s = state.forms_timeout.as_secs(), "form-intake invocation timed out");
        return timed_out();
    };
    chat_stream::to_json_response(response).map(Body::new)
}

/// What a Function URL answers when its invocation runs past the function's timeout.
fn timed_out() -> Response {
    (StatusCode::BAD_GATEWAY, Json(json!({"Message": "Internal Server Error"}))).into_response()
}

async fn page(State(state): State<Arc<HostState>>) -> Html<String> {
    Html(CHAT_PAGE.replace("{{DEMO_TENANT_HASH}}", &state.demo_tenant_hash))
}

/// The chat Function URL: the chat-stream service, its frames streamed as
/// written. At the function's timeout the stream is cut, as Lambda cuts it.
/// `?action=analytics` takes a widget analytics batch instead, as JSON; the
/// widget's fallback (`?action=chat`, `Accept: application/json`) gets the
/// same turn buffered as JSON.
async fn chat(
    State(state): State<Arc<HostState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let deadline = tokio::time::Instant::now() + state.chat_timeout;
    let caller = caller(&headers, peer);
    let span = crate::log_shipping::invocation(&state.chat_function);
    if chat_stream::is_analytics(query.as_deref()) {
        let answer = state.chat.analytics(&body, &caller).instrument(span);
        let Ok(response) = tokio::time::timeout_at(deadline, answer).await else {
            return timed_out();
        };
        return chat_stream::to_json_response(response).map(Body::new);
    }
    let accept = headers.get("accept").and_then(|v| v.to_str().ok());
    if chat_stream::wants_json(query.as_deref(), accept) && !shared::intake::is_form_mode(&body) {
        let answer = state.chat.chat_json(&body, &caller).instrument(span);
        let Ok(response) = tokio::time::timeout_at(deadline, answer).await else {
            return timed_out();
        };
        return chat_stream::to_json_response(response).map(Body::new);
    }
    let answer = state.chat.handle_from(&body, &caller).instrument(span);
    let Ok(mut response) = tokio::time::timeout_at(deadline, answer).await else {
        return timed_out();
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut frames = std::mem::replace(&mut response.body, rx);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = frames.recv() => {
                    let Some(frame) = frame else { return };
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    tracing::error!("chat-stream invocation timed out; stream cut");
                    return;
                }
            }
        }
    });
    chat_stream::to_http_response(response).map(Body::new)
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
