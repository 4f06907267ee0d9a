//! The form-intake Lambda: a Function URL answering form requests.

use std::sync::Arc;

use lambda_http::{Body, Error, Request, Response, run, service_fn};

use form_intake::{AwsFormService, FormResponse, aws_service_with, tenant_loader};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = shared::Settings::from_env()?;
    let sdk_config = shared::aws::sdk_config(&settings).await;
    let service = Arc::new(aws_service_with(&sdk_config, &settings, tenant_loader(&sdk_config, &settings)));
    run(service_fn(move |request| handle(Arc::clone(&service), request))).await
}

async fn handle(service: Arc<AwsFormService>, request: Request) -> Result<Response<Body>, Error> {
    let response = match request.method().as_str() {
        "POST" => service.handle(request.body()).await,
        "OPTIONS" => FormResponse { status: 204, frames: Vec::new() },
        _ => FormResponse { status: 405, frames: Vec::new() },
    };
    Ok(Response::builder()
        .status(response.status)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache, no-transform")
        .body(Body::Text(response.body()))?)
}
