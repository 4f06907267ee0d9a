//! What every Function URL checks first: body size, JSON, the tenant hash.
//! A failure is a `RequestError`, answered with a 4xx before anything else
//! happens: an error frame and `[DONE]` on the streaming endpoints, a
//! `JsonResponse` on the JSON ones (widget config, analytics).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::tenant::{TenantError, TenantHash};

/// Request bodies larger than this are refused with 413 before parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl RequestError {
    /// A 400 with a stable code.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: 400, code, message: message.into() }
    }
}

/// The body as `T`, within the size bound.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, RequestError> {
    parse_body_within(body, MAX_BODY_BYTES)
}

/// The body as `T`, refused with 413 when larger than `max_bytes`.
pub fn parse_body_within<T: DeserializeOwned>(body: &[u8], max_bytes: usize) -> Result<T, RequestError> {
    if body.len() > max_bytes {
        return Err(RequestError {
            status: 413,
            code: "payload_too_large",
            message: format!("request body is larger than {} KiB", max_bytes / 1024),
        });
    }
    serde_json::from_slice(body)
        .map_err(|e| RequestError::bad("invalid_json", format!("request body is not a JSON object: {e}")))
}

/// The required `tenant_hash`, validated before it can reach an S3 key.
pub fn tenant_hash(value: Option<&Value>) -> Result<TenantHash, RequestError> {
    match value.and_then(Value::as_str).map(str::trim).filter(|h| !h.is_empty()) {
        None => Err(RequestError::bad("missing_tenant_hash", "tenant_hash is required")),
        Some(hash) => {
            TenantHash::parse(hash).map_err(|e| RequestError::bad("invalid_tenant_hash", e.to_string()))
        }
    }
}

/// The value of `name` in a query string (`a=1&t=x`), as sent: the values we
/// read are validated identifiers, which never need percent-decoding.
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').filter_map(|pair| pair.split_once('=')).find(|(key, _)| *key == name).map(|(_, v)| v)
}

/// A whole JSON answer (the widget config and analytics endpoints), with its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl JsonResponse {
    pub fn new(status: u16, body: String) -> Self {
        Self { status, headers: vec![("content-type", "application/json".to_owned())], body }
    }

    /// `{"error": <message>, "code": <code>}`, never cached.
    pub fn refused(status: u16, code: &str, message: &str) -> Self {
        Self::new(status, serde_json::json!({"error": message, "code": code}).to_string())
            .with_header("cache-control", "no-store")
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// An unusable tenant as a JSON refusal; the details of a 5xx go to the log only.
pub fn tenant_refused(err: &TenantError) -> JsonResponse {
    if err.status() >= 500 {
        tracing::error!(code = err.code(), error = %crate::telemetry::error_chain(err), "tenant unavailable");
    }
    JsonResponse::refused(err.status(), err.code(), err.public_message())
}

impl From<&RequestError> for JsonResponse {
    fn from(err: &RequestError) -> Self {
        Self::refused(err.status, err.code, &err.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_parameter_is_found_by_its_exact_name() {
        let query = Some("action=get_config&t=ri3a9f2c7d41be&tt=x");
        assert_eq!(query_param(query, "t"), Some("ri3a9f2c7d41be"));
        assert_eq!(query_param(query, "action"), Some("get_config"));
        assert_eq!(query_param(query, "x"), None);
        assert_eq!(query_param(None, "t"), None);
        assert_eq!(query_param(Some("t"), "t"), None);
    }

    #[test]
    fn a_refusal_is_uncached_json_with_its_code() {
        let response = JsonResponse::refused(404, "tenant_not_found", "No tenant");
        assert_eq!(response.status, 404);
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(response.header("cache-control"), Some("no-store"));
        let body: Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(body, serde_json::json!({"error": "No tenant", "code": "tenant_not_found"}));
    }
}
