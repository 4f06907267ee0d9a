#![recursion_limit = "256"]
//! The chat-stream Lambda: a Function URL with response streaming.

use std::sync::Arc;

use lambda_http::{
    Body, Error, Request, RequestExt, Response, request::RequestContext,
    run_with_streaming_response_concurrent, service_fn,
};
use shared::edge::Caller;

use chat_stream::{
    AwsChatService, ChatOptions, ChatResponse, FrameBody, aws_service, is_analytics, qa_log,
    to_http_response, to_json_response,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = shared::Settings::from_env()?;
    let service = Arc::new(aws_service(settings, qa_log::stdout_sink(), ChatOptions::default()).await);
    run_with_streaming_response_concurrent(service_fn(move |request| handle(Arc::clone(&service), request)))
        .await
}

/// Function URL entry: POST streams an answer (or, with `?action=analytics`,
/// takes widget analytics as JSON); OPTIONS (normally answered by the
/// Function URL's CORS) gets an empty 204; anything else is refused.
async fn handle(service: Arc<AwsChatService>, request: Request) -> Result<Response<FrameBody>, Error> {
    let caller = caller_of(&request);
    if request.method() == "POST" && is_analytics(request.uri().query()) {
        return Ok(to_json_response(service.analytics(body_bytes(request.body()), &caller).await));
    }
    let response = match request.method().as_str() {
        "POST" => service.handle_from(body_bytes(request.body()), &caller).await,
        "OPTIONS" => ChatResponse::new(204, tokio::sync::mpsc::channel(1).1),
        _ => ChatResponse::refused(405, "method_not_allowed", "Use POST"),
    };
    Ok(to_http_response(response))
}

/// The browser's `Origin` and the Function URL's `requestContext.http.sourceIp`.
fn caller_of(request: &Request) -> Caller {
    let origin = request.headers().get("origin").and_then(|v| v.to_str().ok());
    let source_ip = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        _ => None,
    };
    Caller::new(origin, source_ip)
}

fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}
