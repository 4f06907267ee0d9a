//! The form-intake Lambda: a Function URL answering form requests (POST) and
//! the widget config (GET `?action=get_config&t=<tenant_hash>`).

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, run_concurrent, service_fn};

use form_intake::{AwsFormService, FormResponse, aws_service_with, tenant_loader};
use shared::function_url::{UrlRequest, UrlResponse};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = shared::Settings::from_env()?;
    let sdk_config = shared::aws::function_sdk_config(&settings);
    let service = Arc::new(aws_service_with(&sdk_config, &settings, tenant_loader(&sdk_config, &settings)));
    let proxy_secret: Arc<Option<String>> = Arc::new(settings.trusted_proxy_secret.clone());
    run_concurrent(service_fn(move |event: LambdaEvent<UrlRequest>| {
        let service = Arc::clone(&service);
        let proxy_secret = Arc::clone(&proxy_secret);
        async move { Ok::<_, Error>(handle(&service, &event.payload, proxy_secret.as_deref()).await) }
    }))
    .await
}

async fn handle(service: &AwsFormService, request: &UrlRequest, proxy_secret: Option<&str>) -> UrlResponse {
    let caller = request.caller(proxy_secret);
    let response = match request.method() {
        "GET" => {
            let config = service.get_config(request.query(), request.header("if-none-match"), &caller).await;
            let headers = config.headers.iter().map(|(name, value)| (*name, value.as_str()));
            return UrlResponse::new(config.status, headers, config.body);
        }
        "POST" => service.handle_from(&request.body(), &caller).await,
        "OPTIONS" => FormResponse { status: 204, frames: Vec::new(), headers: Vec::new() },
        _ => FormResponse { status: 405, frames: Vec::new(), headers: Vec::new() },
    };
    let extra = response.headers.iter().map(|(name, value)| (*name, value.as_str()));
    let headers = shared::sse::HEADERS.into_iter().chain(extra);
    UrlResponse::new(response.status, headers, response.body())
}
