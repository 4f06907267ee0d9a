//! The chat Function URL's one handler: an HTTP request in, an HTTP answer
//! out (its body streamed frame by frame). The Lambda binary and the local
//! host both call it, so routing and headers are written once.

use std::sync::Arc;

use bytes::Bytes;
use domain::{knowledge::KnowledgeBase, model::ModelStream, tenant::ConfigSource};
use http::{Method, Request, Response};
use lambda_edge::function_url;

use crate::{
    ChatResponse, ChatService, FrameBody, is_analytics, to_http_response, to_json_response, wants_json,
};

/// POST streams an answer; with `?action=analytics` it takes widget
/// analytics, and from the widget's fallback (`?action=chat`, or JSON and no
/// event stream accepted) it answers the turn whole as JSON. OPTIONS
/// (normally the Function URL's CORS answers it) gets an empty 204; any
/// other method 405.
pub async fn handle<C, K, M>(
    service: &Arc<ChatService<C, K, M>>,
    request: Request<Bytes>,
    proxy_secret: Option<&str>,
) -> Response<FrameBody>
where
    C: ConfigSource,
    K: KnowledgeBase,
    M: ModelStream,
{
    let caller = function_url::caller(&request, proxy_secret);
    let query = function_url::query(&request);
    let accept = function_url::header(request.headers(), "accept");
    let body = request.body();
    match *request.method() {
        Method::POST if is_analytics(query) => to_json_response(service.analytics(body, &caller).await),
        Method::POST if wants_json(query, accept) && !form_service::is_form_mode(body) => {
            to_json_response(service.chat_json(body, &caller).await)
        }
        Method::POST => to_http_response(service.handle_from(body, &caller).await),
        Method::OPTIONS => to_http_response(ChatResponse::new(204, tokio::sync::mpsc::channel(1).1)),
        _ => to_http_response(ChatResponse::refused(405, "method_not_allowed", "Use POST")),
    }
}
