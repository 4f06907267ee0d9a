#![recursion_limit = "256"]
//! The chat-stream Lambda: a Function URL with response streaming.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, run_concurrent, service_fn};
use shared::function_url::UrlRequest;

use chat_stream::{
    AwsChatService, ChatOptions, ChatResponse, aws_service, is_analytics, qa_log, to_http_response,
    to_json_response, to_stream_response,
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = shared::Settings::from_env()?;
    let service = Arc::new(aws_service(settings, qa_log::stdout_sink(), ChatOptions::default()).await);
    run_concurrent(service_fn(move |event: LambdaEvent<UrlRequest>| {
        let service = Arc::clone(&service);
        async move { Ok::<_, Error>(to_stream_response(handle(&service, &event.payload).await)) }
    }))
    .await
}

/// Function URL entry: POST streams an answer (or, with `?action=analytics`,
/// takes widget analytics as JSON); OPTIONS (normally answered by the
/// Function URL's CORS) gets an empty 204; anything else is refused.
async fn handle(
    service: &Arc<AwsChatService>,
    request: &UrlRequest,
) -> http::Response<chat_stream::FrameBody> {
    let caller = request.caller();
    if request.method() == "POST" && is_analytics(request.query()) {
        return to_json_response(service.analytics(&request.body(), &caller).await);
    }
    let response = match request.method() {
        "POST" => service.handle_from(&request.body(), &caller).await,
        "OPTIONS" => ChatResponse::new(204, tokio::sync::mpsc::channel(1).1),
        _ => ChatResponse::refused(405, "method_not_allowed", "Use POST"),
    };
    to_http_response(response)
}
