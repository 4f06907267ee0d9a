//! What every Function URL checks first: body size, JSON, the tenant hash.
//! A failure is a `RequestError`, answered with a 4xx before anything else
//! happens: an error frame and `[DONE]` on the streaming endpoints, a
//! `JsonResponse` on the JSON ones (widget config, analytics).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::tenant::{TenantConfig, TenantError, TenantHash};

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

/// Who sent a request, as the front door saw it: the browser's `Origin`
/// header and the connection's source IP (the Function URL's
/// `requestContext.http.sourceIp`; the peer address in the local host).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub origin: Option<String>,
    pub source_ip: Option<String>,
}

impl Caller {
    pub fn new(origin: Option<&str>, source_ip: Option<String>) -> Self {
        let origin = origin.map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned);
        Self { origin, source_ip: source_ip.filter(|ip| !ip.is_empty()) }
    }
}

/// The tenant's `allowed_origins` applied to a caller: the origin to echo in
/// `Access-Control-Allow-Origin` (none for a request without one), or a 403
/// `origin_not_allowed`. Without `allowed_origins` every origin is echoed;
/// without an `Origin` header, `rate_limits.allow_no_origin` decides.
pub fn check_origin(config: &TenantConfig, caller: &Caller) -> Result<Option<String>, RequestError> {
    let refused =
        |message: &str| RequestError { status: 403, code: "origin_not_allowed", message: message.into() };
    let Some(origin) = caller.origin.as_deref() else {
        return if config.rate_limits.allow_no_origin {
            Ok(None)
        } else {
            Err(refused("Requests to this assistant must come from its website"))
        };
    };
    let allowed = &config.allowed_origins;
    if allowed.is_empty() || allowed.iter().any(|entry| entry.trim() == "*" || same_origin(entry, origin)) {
        Ok(Some(origin.to_owned()))
    } else {
        Err(refused("This website may not use this assistant"))
    }
}

/// Origins compare as scheme://host[:port], case-insensitively, a trailing
/// slash in the config ignored. `null` (sandboxed frames, files) matches only itself.
fn same_origin(configured: &str, origin: &str) -> bool {
    configured.trim().trim_end_matches('/').eq_ignore_ascii_case(origin.trim_end_matches('/'))
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
        find_header(&self.headers, name)
    }

    /// Lets the browser read the answer from this origin (`None`: no CORS header).
    pub fn allowing(mut self, origin: Option<String>) -> Self {
        allow_origin(&mut self.headers, origin);
        self
    }
}

/// Adds the CORS headers that let the browser read an answer from `origin`
/// (`None`: none), for every kind of answer (JSON, SSE, streamed).
pub fn allow_origin(headers: &mut Vec<(&'static str, String)>, origin: Option<String>) {
    if let Some(origin) = origin {
        headers.push(("access-control-allow-origin", origin));
        headers.push(("vary", "Origin".to_owned()));
    }
}

/// A header's value, by name in any case.
pub fn find_header<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
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

    fn config(value: Value) -> TenantConfig {
        serde_json::from_value(value).unwrap()
    }

    fn from(origin: Option<&str>) -> Caller {
        Caller::new(origin, Some("203.0.113.9".into()))
    }

    #[test]
    fn without_allowed_origins_every_origin_is_echoed_as_before() {
        let open = config(serde_json::json!({}));
        assert_eq!(
            check_origin(&open, &from(Some("https://any.example"))),
            Ok(Some("https://any.example".into()))
        );
        assert_eq!(check_origin(&open, &from(None)), Ok(None));
    }

    #[test]
    fn with_allowed_origins_only_those_origins_are_echoed_and_others_get_403() {
        let listed = config(
            serde_json::json!({"allowed_origins": ["https://www.riverbend.org/", "http://127.0.0.1:3000"]}),
        );
        assert_eq!(
            check_origin(&listed, &from(Some("https://WWW.riverbend.org"))),
            Ok(Some("https://WWW.riverbend.org".into()))
        );
        assert_eq!(
            check_origin(&listed, &from(Some("http://127.0.0.1:3000"))).unwrap().as_deref(),
            Some("http://127.0.0.1:3000")
        );
        for stranger in [
            "https://evil.example",
            "null",
            "https://www.riverbend.org.evil.example",
            "http://127.0.0.1:3001",
        ] {
            let err = check_origin(&listed, &from(Some(stranger))).unwrap_err();
            assert_eq!((err.status, err.code), (403, "origin_not_allowed"), "{stranger}");
        }
    }

    #[test]
    fn a_request_without_origin_follows_allow_no_origin() {
        let listed = config(serde_json::json!({"allowed_origins": ["https://a.example"]}));
        assert_eq!(check_origin(&listed, &from(None)), Ok(None));
        let strict = config(serde_json::json!({"rate_limits": {"allow_no_origin": false}}));
        assert_eq!(check_origin(&strict, &from(None)).unwrap_err().code, "origin_not_allowed");
        assert_eq!(
            check_origin(&strict, &from(Some("https://b.example"))),
            Ok(Some("https://b.example".into()))
        );
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
