//! A Lambda Function URL's event (payload format 2.0) as an `http::Request`,
//! and an `http::Response` as its buffered answer, on `aws_lambda_events`'
//! types. The functions' handlers take and give plain HTTP, so the Lambda
//! binaries and the local host run the same handler.

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};

pub use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest as UrlEvent, LambdaFunctionUrlResponse as UrlAnswer,
};

use domain::edge::Caller;

/// The address the request came from, as the Function URL saw it
/// (`requestContext.http.sourceIp`); the local host sets its peer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIp(pub String);

/// The event as the request it describes. An absent or `null` query, path,
/// body or address reads as empty (cargo lambda sends `"rawQueryString":
/// null`); a body that claims base64 and does not decode reads as empty,
/// which the services refuse as they refuse any body that is not their JSON.
pub fn into_request(event: UrlEvent) -> Request<Bytes> {
    let http = event.request_context.http;
    let method = http.method.as_deref().and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    let path = event.raw_path.filter(|p| p.starts_with('/')).unwrap_or_else(|| "/".to_owned());
    let uri = match event.raw_query_string.as_deref().filter(|q| !q.is_empty()) {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let text = event.body.unwrap_or_default();
    let body = if event.is_base64_encoded {
        base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default().into()
    } else {
        Bytes::from(text)
    };
    let mut request = Request::new(body);
    *request.method_mut() = method.unwrap_or(Method::GET);
    *request.uri_mut() = uri.parse().unwrap_or_else(|_| Uri::from_static("/"));
    *request.headers_mut() = event.headers;
    if let Some(address) = http.source_ip {
        request.extensions_mut().insert(SourceIp(address));
    }
    request
}

/// A buffered answer as the Function URL reads it.
pub fn into_answer(response: Response<String>) -> UrlAnswer {
    let (parts, body) = response.into_parts();
    let mut answer = UrlAnswer::default();
    answer.status_code = i64::from(parts.status.as_u16());
    answer.headers = parts.headers;
    answer.body = Some(body);
    answer
}

/// The query string, if there is one.
pub fn query<B>(request: &Request<B>) -> Option<&str> {
    request.uri().query().filter(|q| !q.is_empty())
}

/// A header's value, when it is text.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The browser's `Origin` and the visitor's address: the connection's, or
/// behind a trusted proxy (`TRUSTED_PROXY_SECRET`), the viewer's it names.
pub fn caller<B>(request: &Request<B>, proxy_secret: Option<&str>) -> Caller {
    let headers = request.headers();
    let source_ip = request.extensions().get::<SourceIp>().map(|ip| ip.0.clone());
    Caller::new(header(headers, "origin"), source_ip)
        .through_proxy(|name| header(headers, name), proxy_secret)
}

/// Sets each header whose value is valid; a value that is not is dropped.
pub fn set_headers<'a>(headers: &mut HeaderMap, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(name), HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> UrlEvent {
        serde_json::from_value(json).expect("a Function URL event")
    }

    fn body_of(json: serde_json::Value) -> Bytes {
        into_request(event(json)).into_body()
    }

    #[test]
    fn a_function_url_event_gives_its_method_query_headers_body_and_caller() {
        let request = into_request(event(serde_json::json!({
            "version": "2.0",
            "rawPath": "/",
            "rawQueryString": "action=get_config&t=abc",
            "headers": {"origin": "https://example.org", "if-none-match": "\"v1\"", "content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/", "sourceIp": "203.0.113.9", "userAgent": "x"},
                               "timeEpoch": 1},
            "body": "{\"a\":1}",
            "isBase64Encoded": false
        })));
        assert_eq!(request.method(), Method::POST);
        assert_eq!(query(&request), Some("action=get_config&t=abc"));
        assert_eq!(header(request.headers(), "If-None-Match"), Some("\"v1\""));
        assert_eq!(&request.body()[..], b"{\"a\":1}");
        let caller = caller(&request, None);
        assert_eq!(caller.origin.as_deref(), Some("https://example.org"));
        assert_eq!(caller.source_ip.as_deref(), Some("203.0.113.9"));
    }

    #[test]
    fn a_base64_body_is_decoded_and_one_that_does_not_decode_reads_as_empty() {
        let context = serde_json::json!({"http": {"method": "POST"}, "timeEpoch": 1});
        let encoded = body_of(
            serde_json::json!({"body": "eyJhIjoxfQ==", "isBase64Encoded": true, "requestContext": context}),
        );
        assert_eq!(&encoded[..], b"{\"a\":1}");
        let broken = body_of(
            serde_json::json!({"body": "not base64!", "isBase64Encoded": true, "requestContext": context}),
        );
        assert!(broken.is_empty());
    }

    #[test]
    fn null_fields_as_cargo_lambda_sends_them_read_as_empty() {
        let request = into_request(event(
            serde_json::json!({"rawPath": null, "rawQueryString": null, "body": null,
            "isBase64Encoded": false, "requestContext": {"timeEpoch": 0, "http": {"method": "POST", "sourceIp": null}}}),
        ));
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/");
        assert_eq!(query(&request), None);
        assert!(request.body().is_empty());
        assert_eq!(caller(&request, None).source_ip, None);
    }

    #[test]
    fn a_buffered_answer_is_the_shape_the_function_url_reads() {
        let response = Response::builder()
            .status(201)
            .header("content-type", "text/event-stream")
            .body("data: x\n\n".to_owned())
            .expect("a response");
        assert_eq!(
            serde_json::to_value(into_answer(response)).expect("serializes"),
            serde_json::json!({
                "statusCode": 201,
                "headers": {"content-type": "text/event-stream"},
                "body": "data: x\n\n",
                "isBase64Encoded": false,
                "cookies": []
            })
        );
    }
}
