#![recursion_limit = "256"]
//! The form-intake Lambda: a Function URL answering form requests (POST) and
//! the widget config (GET `?action=get_config&t=<tenant_hash>`).

use std::sync::Arc;

use lambda_edge::function_url::{UrlEvent, into_answer, into_request};
use lambda_runtime::{Error, LambdaEvent, run_concurrent, service_fn};

use form_intake::{aws_service_with, handle, tenant_loader};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_edge::telemetry::init();
    let settings = lambda_edge::Settings::for_function(form_intake::REQUIRED_SETTINGS);
    let sdk_config = lambda_edge::settings::function_sdk_config(&settings);
    let service = Arc::new(aws_service_with(&sdk_config, &settings, tenant_loader(&sdk_config, &settings)));
    let proxy_secret: Arc<Option<String>> = Arc::new(settings.trusted_proxy_secret.clone());
    run_concurrent(service_fn(move |event: LambdaEvent<UrlEvent>| {
        let service = Arc::clone(&service);
        let proxy_secret = Arc::clone(&proxy_secret);
        async move {
            let request = into_request(event.payload);
            Ok::<_, Error>(into_answer(handle(&service, request, proxy_secret.as_deref()).await))
        }
    }))
    .await
}
