#![recursion_limit = "256"]
//! The chat-stream Lambda: a Function URL with response streaming.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, run_concurrent, service_fn};
use shared::function_url::UrlRequest;

use chat_stream::{
    AwsChatService, ChatOptions, ChatResponse, aws_service, is_analytics, qa_log, to_http_response,
    to_json_response, to_stream_response, wants_json,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = shared::Settings::from_env()?;
    let proxy_secret: Arc<Option<String>> = Arc::new(settings.trusted_proxy_secret.clone());
    let service = Arc::new(aws_service(settings, qa_log::stdout_sink(), ChatOptions::default()).await);
    run_concurrent(service_fn(move |event: LambdaEvent<UrlRequest>| {
        let service = Arc::clone(&service);
        let proxy_secret = Arc::clone(&proxy_secret);
        async move {
            Ok::<_, Error>(to_stream_response(
                handle(&service, &event.payload, proxy_secret.as_deref()).await,
            ))
        }
    }))
    .await
}

/// Function URL entry: POST streams an answer (or, with `?action=analytics`,
/// takes widget analytics as JSON); OPTIONS (normally answered by the
/// Function URL's CORS) gets an empty 204; anything else is refused.
async fn handle(
    service: &Arc<AwsChatService>,
    request: &UrlRequest,
    proxy_secret: Option<&str>,
) -> http::Response<chat_stream::FrameBody> {
    let caller = request.caller(proxy_secret);
    if request.method() == "POST" && is_analytics(request.query()) {
        return to_json_response(service.analytics(&request.body(), &caller).await);
    }
    let body = request.body();
    if request.method() == "POST"
        && wants_json(request.query(), request.header("accept"))
        && !shared::intake::is_form_mode(&body)
    {
        return to_json_response(service.chat_json(&body, &caller).await);
    }
    let response = match request.method() {
        "POST" => service.handle_from(&body, &caller).await,
        "OPTIONS" => ChatResponse::new(204, tokio::sync::mpsc::channel(1).1),
        _ => ChatResponse::refused(405, "method_not_allowed", "Use POST"),
    };
    to_http_response(response)
}
