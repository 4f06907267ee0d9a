//! The form-intake Lambda: a Function URL answering form requests (POST) and
//! the widget config (GET `?action=get_config&t=<tenant_hash>`).

use std::sync::Arc;

use lambda_http::{
    Body, Error, Request, RequestExt, Response, http::header, request::RequestContext, run_concurrent,
    service_fn,
};

use form_intake::{AwsFormService, FormResponse, aws_service_with, tenant_loader};
use shared::edge::{Caller, JsonResponse};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = shared::Settings::from_env()?;
    let sdk_config = shared::aws::function_sdk_config(&settings);
    let service = Arc::new(aws_service_with(&sdk_config, &settings, tenant_loader(&sdk_config, &settings)));
    run_concurrent(service_fn(move |request| handle(Arc::clone(&service), request))).await
}

async fn handle(service: Arc<AwsFormService>, request: Request) -> Result<Response<Body>, Error> {
    let caller = caller_of(&request);
    let response = match request.method().as_str() {
        "GET" => {
            let if_none_match = request.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
            return json(service.get_config(request.uri().query(), if_none_match, &caller).await);
        }
        "POST" => service.handle_from(request.body(), &caller).await,
        "OPTIONS" => FormResponse { status: 204, frames: Vec::new(), headers: Vec::new() },
        _ => FormResponse { status: 405, frames: Vec::new(), headers: Vec::new() },
    };
    let mut builder = Response::builder().status(response.status);
    for (name, value) in shared::sse::HEADERS {
        builder = builder.header(name, value);
    }
    for (name, value) in &response.headers {
        builder = builder.header(*name, value);
    }
    Ok(builder.body(Body::Text(response.body()))?)
}

/// The browser's `Origin` and the Function URL's `requestContext.http.sourceIp`.
fn caller_of(request: &Request) -> Caller {
    let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let source_ip = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        _ => None,
    };
    Caller::new(origin, source_ip)
}

fn json(response: JsonResponse) -> Result<Response<Body>, Error> {
    let mut builder = Response::builder().status(response.status);
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    Ok(builder.body(if response.body.is_empty() { Body::Empty } else { Body::Text(response.body) })?)
}
