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
    extract::{ConnectInfo, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
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

/// Reports the AWS endpoint and whether the emulator, the config bucket and the
/// demo tenant answer. 200 when all are up, 503 otherwise.
async fn healthz(State(state): State<Arc<HostState>>) -> impl IntoResponse {
    let emulator =
        state.http.get(moto_data_url(&state.endpoint)).send().await.is_ok_and(|r| r.status().is_success());
    let bucket = state.s3.head_bucket().bucket(&state.settings.config_bucket).send().await.is_ok();
    let mapping_key = format!("mappings/{}.json", state.demo_tenant_hash);
    let demo_tenant =
        state.s3.head_object().bucket(&state.settings.config_bucket).key(&mapping_key).send().await.is_ok();
    let bedrock = state
        .http
        .get(format!("{}/_standin/faults", state.bedrock_url))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    let up = |ok: bool| if ok { "up" } else { "down" };
    let healthy = emulator && bucket && demo_tenant && bedrock;
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "aws_endpoint": state.endpoint,
        "checks": {
            "emulator": up(emulator),
            "config_bucket": up(bucket),
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

/// The emails and SMS the emulator captured, newest last.
async fn outbox(State(state): State<Arc<HostState>>) -> impl IntoResponse {
    let data = async {
        let response = state.http.get(moto_data_url(&state.endpoint)).send().await?.error_for_status()?;
        response.json::<Value>().await
    };
    match data.await {
        Ok(data) => (StatusCode::OK, Json(outbox_from_moto(&data))),
        Err(err) => {
            tracing::warn!(error = %err, "emulator unreachable for /outbox");
            (
                StatusCode::BAD_GATEWAY,
                Json(json!({"error": "the AWS emulator did not answer", "code": "emulator_unavailable"})),
            )
        }
    }
}

fn moto_data_url(endpoint: &str) -> String {
    format!("{endpoint}/moto-api/data.json")
}

/// Picks the sent messages out of moto's state dump.
pub fn outbox_from_moto(data: &Value) -> Value {
    let items = |service: &str, kind: &str| {
        data.pointer(&format!("/{service}/{kind}")).and_then(Value::as_array).cloned().unwrap_or_default()
    };
    let emails: Vec<Value> = items("ses", "Message")
        .into_iter()
        .map(|m| {
            json!({
                "id": m.get("id"),
                "from": m.get("source"),
                "to": m.pointer("/destinations/ToAddresses"),
                "subject": m.get("subject"),
                "body": m.get("body"),
            })
        })
        .chain(items("ses", "RawMessage").into_iter().map(|m| {
            json!({"id": m.get("id"), "from": m.get("source"), "to": m.get("destinations"), "raw": m.get("raw_data")})
        }))
        .collect();
    let sms: Vec<Value> = items("sns", "SMS")
        .into_iter()
        .map(|m| json!({"id": m.get("message_id"), "to": m.get("phone_number"), "message": m.get("message")}))
        .collect();
    json!({ "emails": emails, "sms": sms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_lists_sent_emails_and_sms_from_the_emulator_state() {
        let data = json!({
            "ses": {"Message": [{"id": "m1", "source": "noreply@picasso.ai", "destinations": {"ToAddresses": ["a@b.org"]}, "subject": "Hi", "body": "<b>x</b>"}]},
            "sns": {"SMS": [{"message_id": "s1", "phone_number": "+15035550142", "message": "hello"}]}
        });
        assert_eq!(
            outbox_from_moto(&data),
            json!({
                "emails": [{"id": "m1", "from": "noreply@picasso.ai", "to": ["a@b.org"], "subject": "Hi", "body": "<b>x</b>"}],
                "sms": [{"id": "s1", "to": "+15035550142", "message": "hello"}]
            })
        );
    }

    #[test]
    fn an_empty_emulator_has_an_empty_outbox() {
        assert_eq!(outbox_from_moto(&json!({})), json!({"emails": [], "sms": []}));
    }
}
