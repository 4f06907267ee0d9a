//! A Lambda Function URL's request event and buffered answer (payload format
//! 2.0), read and written on `lambda_runtime` alone: only the fields the two
//! public functions use. `lambda_http` did this through `http::Request` and
//! every API Gateway shape, and its text conversion linked all of
//! `encoding_rs`'s decoders (about 155 KB of each binary) for bodies that are
//! always UTF-8 JSON.

use std::{borrow::Cow, collections::HashMap};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::edge::Caller;

/// What a Function URL invocation carries. Header names arrive lower-cased;
/// a header sent more than once arrives as one comma-joined value. A field
/// that is absent or `null` (cargo lambda sends `"rawQueryString": null`)
/// reads as empty.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlRequest {
    #[serde(default, deserialize_with = "null_as_default")]
    pub raw_query_string: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub headers: HashMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub body: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub is_base64_encoded: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub request_context: RequestContext,
}

#[derive(Debug, Default, Deserialize)]
pub struct RequestContext {
    #[serde(default, deserialize_with = "null_as_default")]
    pub http: HttpContext,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpContext {
    #[serde(default, deserialize_with = "null_as_default")]
    pub method: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub source_ip: Option<String>,
}

/// `null` as the type's default, as an absent field is.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl UrlRequest {
    pub fn method(&self) -> &str {
        &self.request_context.http.method
    }

    /// The query string, if there is one.
    pub fn query(&self) -> Option<&str> {
        Some(self.raw_query_string.as_str()).filter(|q| !q.is_empty())
    }

    /// A header's value, by a name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The body as sent. The Function URL base64-encodes a body whose content
    /// type is not text; one that does not decode reads as empty, which the
    /// services refuse as they refuse any body that is not their JSON.
    pub fn body(&self) -> Cow<'_, [u8]> {
        let text = self.body.as_deref().unwrap_or_default();
        if !self.is_base64_encoded {
            return Cow::Borrowed(text.as_bytes());
        }
        Cow::Owned(base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default())
    }

    /// The browser's `Origin` and the visitor's address: the connection's, or
    /// behind a trusted proxy (`TRUSTED_PROXY_SECRET`), the viewer's it names.
    pub fn caller(&self, proxy_secret: Option<&str>) -> Caller {
        Caller::new(self.header("origin"), self.request_context.http.source_ip.clone())
            .through_proxy(|name| self.header(name), proxy_secret)
    }
}

/// A buffered answer; the Function URL turns it into the HTTP response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlResponse {
    pub status_code: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub is_base64_encoded: bool,
    /// Always sent, if empty: cargo lambda's Function URL emulation (the
    /// `aws_lambda_events` response type) refuses an answer without it (500).
    pub cookies: Vec<String>,
}

impl UrlResponse {
    pub fn new<'a>(status: u16, headers: impl IntoIterator<Item = (&'a str, &'a str)>, body: String) -> Self {
        let headers = headers.into_iter().map(|(name, value)| (name.to_owned(), value.to_owned())).collect();
        Self { status_code: status, headers, body, is_base64_encoded: false, cookies: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> UrlRequest {
        serde_json::from_value(json).expect("a Function URL event")
    }

    #[test]
    fn a_function_url_event_gives_its_method_query_headers_body_and_caller() {
        let request = event(serde_json::json!({
            "version": "2.0",
            "rawPath": "/",
            "rawQueryString": "action=get_config&t=abc",
            "headers": {"origin": "https://example.org", "if-none-match": "\"v1\"", "content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/", "sourceIp": "203.0.113.9", "userAgent": "x"}},
            "body": "{\"a\":1}",
            "isBase64Encoded": false
        }));
        assert_eq!(request.method(), "POST");
        assert_eq!(request.query(), Some("action=get_config&t=abc"));
        assert_eq!(request.header("If-None-Match"), Some("\"v1\""));
        assert_eq!(&*request.body(), b"{\"a\":1}");
        let caller = request.caller(None);
        assert_eq!(caller.origin.as_deref(), Some("https://example.org"));
        assert_eq!(caller.source_ip.as_deref(), Some("203.0.113.9"));
    }

    #[test]
    fn a_base64_body_is_decoded_and_one_that_does_not_decode_reads_as_empty() {
        let encoded = event(serde_json::json!({"body": "eyJhIjoxfQ==", "isBase64Encoded": true}));
        assert_eq!(&*encoded.body(), b"{\"a\":1}");
        let broken = event(serde_json::json!({"body": "not base64!", "isBase64Encoded": true}));
        assert!(broken.body().is_empty());
    }

    #[test]
    fn an_event_without_a_query_headers_or_body_reads_as_empty() {
        let request = event(serde_json::json!({"requestContext": {"http": {"method": "GET"}}}));
        assert_eq!(request.query(), None);
        assert_eq!(request.header("origin"), None);
        assert!(request.body().is_empty());
        assert_eq!(request.caller(None).source_ip, None);
    }

    #[test]
    fn null_fields_as_cargo_lambda_sends_them_read_as_empty() {
        let request = event(serde_json::json!({"rawQueryString": null, "headers": null, "body": null,
            "isBase64Encoded": null, "requestContext": {"http": {"method": "POST", "sourceIp": null}}}));
        assert_eq!(request.method(), "POST");
        assert_eq!(request.query(), None);
        assert!(request.body().is_empty());
    }

    #[test]
    fn a_buffered_answer_is_the_shape_the_function_url_reads() {
        let response = UrlResponse::new(201, [("content-type", "text/event-stream")], "data: x\n\n".into());
        assert_eq!(
            serde_json::to_value(&response).expect("serializes"),
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
