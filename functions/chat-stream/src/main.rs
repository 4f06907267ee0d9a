#![recursion_limit = "256"]
//! The chat-stream Lambda: a Function URL with response streaming.

use std::sync::Arc;

use lambda_edge::function_url::{UrlEvent, into_request};
use lambda_runtime::{Error, LambdaEvent, run_concurrent, service_fn};

use chat_stream::{ChatOptions, aws_service, handle, qa_log, to_stream_response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_edge::telemetry::init();
    let settings = lambda_edge::Settings::for_function(chat_stream::REQUIRED_SETTINGS);
    let proxy_secret: Arc<Option<String>> = Arc::new(settings.trusted_proxy_secret.clone());
    let service = Arc::new(aws_service(settings, qa_log::stdout_sink(), ChatOptions::default()).await);
    run_concurrent(service_fn(move |event: LambdaEvent<UrlEvent>| {
        let service = Arc::clone(&service);
        let proxy_secret = Arc::clone(&proxy_secret);
        async move {
            let request = into_request(event.payload);
            Ok::<_, Error>(to_stream_response(handle(&service, request, proxy_secret.as_deref()).await))
        }
    }))
    .await
}
