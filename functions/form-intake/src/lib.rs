//! form-intake: the form Function URL. The form service itself lives in
//! `form_service`, below this function and chat-stream (whose URL also
//! answers `form_mode` requests); this crate is the URL's one handler, which
//! the Lambda binary and the local host both call.

use bytes::Bytes;
use domain::{
    edge::JsonResponse, events::EventPublisher, submissions::SubmissionStore, tenant::ConfigSource,
};
use http::{Method, Request, Response, StatusCode};
use lambda_edge::function_url::{self, set_headers};

pub use form_service::*;

/// The resource names this function reads, required when it runs in Lambda
/// (the template gives it exactly these: `tests/template_policies.rs`).
pub const REQUIRED_SETTINGS: &[&str] =
    &["CONFIG_BUCKET", "FORM_SUBMISSIONS_TABLE", "RATE_LIMITS_TABLE", "VISITOR_KEY_SECRET"];

/// GET `?action=get_config&t=<tenant_hash>` answers the widget config as
/// JSON; POST a form request as SSE frames; OPTIONS (normally the Function
/// URL's CORS answers it) an empty 204; any other method 405.
pub async fn handle<C, S, P>(
    service: &FormService<C, S, P>,
    request: Request<Bytes>,
    proxy_secret: Option<&str>,
) -> Response<String>
where
    C: ConfigSource,
    S: SubmissionStore,
    P: EventPublisher,
{
    let caller = function_url::caller(&request, proxy_secret);
    let answer = match *request.method() {
        Method::GET => {
            let if_none_match = function_url::header(request.headers(), "if-none-match");
            let config = service.get_config(function_url::query(&request), if_none_match, &caller).await;
            return json_answer(config);
        }
        Method::POST => service.handle_from(request.body(), &caller).await,
        Method::OPTIONS => FormResponse { status: 204, frames: Vec::new(), headers: Vec::new() },
        _ => FormResponse { status: 405, frames: Vec::new(), headers: Vec::new() },
    };
    let mut response = Response::new(answer.body());
    *response.status_mut() = status(answer.status);
    let extra = answer.headers.iter().map(|(name, value)| (*name, value.as_str()));
    set_headers(response.headers_mut(), domain::sse::HEADERS.into_iter().chain(extra));
    response
}

fn json_answer(answer: JsonResponse) -> Response<String> {
    let mut response = Response::new(answer.body);
    *response.status_mut() = status(answer.status);
    set_headers(response.headers_mut(), answer.headers.iter().map(|(name, value)| (*name, value.as_str())));
    response
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
