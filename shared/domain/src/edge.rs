//! What every Function URL checks first: body size, JSON, the tenant hash.
//! A failure is a `RequestError`, answered with a 4xx before anything else
//! happens: an error frame and `[DONE]` on the streaming endpoints, a
//! `JsonResponse` on the JSON ones (widget config, analytics).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::tenant::{TenantConfig, TenantError, TenantHash};

/// Where the widget's iframe is served from: its chat and form requests carry
/// one of these `Origin`s, never the tenant's site.
pub const DEFAULT_WIDGET_ORIGINS: [&str; 2] =
    ["https://chat.myrecruiter.ai", "https://staging.chat.myrecruiter.ai"];

/// The default widget origins, owned.
pub fn default_widget_origins() -> Vec<String> {
    DEFAULT_WIDGET_ORIGINS.map(str::to_owned).to_vec()
}

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

/// The one sentence a refused visitor reads in the widget, by refusal code.
/// The code stays in the error frame, the log line and the metric, for operators.
pub fn visitor_sentence(code: &str) -> &'static str {
    match code {
        "rate_limited" => {
            "You're sending messages faster than I can answer. Please wait a moment and try again."
        }
        "budget_exhausted" => "I've answered all the questions I can for today. Please come back tomorrow.",
        "origin_not_allowed" => "This chat isn't available on this website.",
        "tenant_not_found" | "invalid_tenant_hash" | "missing_tenant_hash" | "tenant_config_invalid" => {
            "This chat isn't set up correctly yet. Please let the website's owner know."
        }
        "payload_too_large" => "That message is too long for me to read. Please send a shorter one.",
        "missing_user_input" => "Please type a question and send it again.",
        "invalid_json" => "I couldn't read that message. Please try sending it again.",
        _ => "The assistant is unavailable right now. Please try again in a minute.",
    }
}

/// A refusal as a CloudWatch metric (Embedded Metric Format): `Refusals`,
/// by code, in the function's namespace.
pub fn refusal_metric_line(namespace: &str, code: &str) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": crate::time::now_epoch_millis(),
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Code"]],
                "Metrics": [{"Name": "Refusals", "Unit": "Count"}],
            }],
        },
        "Code": code,
        "Refusals": 1,
    })
    .to_string()
}

/// Who sent a request, as the front door saw it: the browser's `Origin`
/// header and the connection's source IP (the Function URL's
/// `requestContext.http.sourceIp`; the peer address in the local host).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub origin: Option<String>,
    pub source_ip: Option<String>,
}

/// The header CloudFront adds to every request it forwards, holding a secret
/// only it and the functions know (`TRUSTED_PROXY_SECRET`).
pub const PROXY_SECRET_HEADER: &str = "x-origin-verify";
/// The viewer's address as CloudFront forwards it (`203.0.113.9:46532`,
/// `2001:db8::1:46532`), when its origin request policy includes it.
pub const VIEWER_ADDRESS_HEADER: &str = "cloudfront-viewer-address";

impl Caller {
    pub fn new(origin: Option<&str>, source_ip: Option<String>) -> Self {
        let origin = origin.map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned);
        Self { origin, source_ip: source_ip.filter(|ip| !ip.is_empty()) }
    }

    /// Behind a trusted proxy the connection comes from the proxy, so every
    /// visitor would share its per-visitor limits: when the request carries
    /// the proxy's secret (compared in constant time), the visitor is the
    /// viewer the proxy names. Without a configured secret, or a request that
    /// does not carry it (one that went around the proxy), the connection's
    /// address stands, so a client cannot pick its own address.
    pub fn through_proxy<'a>(
        mut self,
        header: impl Fn(&str) -> Option<&'a str>,
        secret: Option<&str>,
    ) -> Self {
        use subtle::ConstantTimeEq as _;
        let Some(secret) = secret.filter(|s| !s.is_empty()) else { return self };
        let verified = header(PROXY_SECRET_HEADER)
            .is_some_and(|sent| bool::from(sent.as_bytes().ct_eq(secret.as_bytes())));
        if let Some(viewer) = header(VIEWER_ADDRESS_HEADER).filter(|_| verified).and_then(viewer_ip) {
            self.source_ip = Some(viewer);
        }
        self
    }
}

/// The IP of `ip:port` (an IPv6 address unbracketed, as CloudFront writes it).
fn viewer_ip(address: &str) -> Option<String> {
    let (ip, port) = address.trim().rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
}

/// The tenant's `allowed_origins` applied to a caller: the origin to echo in
/// `Access-Control-Allow-Origin` (none for a request without one), or a 403
/// `origin_not_allowed`. `widget_origins` (the widget's own iframe, for chat
/// and forms) are always answered; without `allowed_origins` every origin is
/// echoed; without an `Origin` header, `rate_limits.allow_no_origin` decides.
pub fn check_origin(
    config: &TenantConfig,
    caller: &Caller,
    widget_origins: &[String],
) -> Result<Option<String>, RequestError> {
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
    if allowed.is_empty()
        || allowed.iter().any(|entry| entry.trim() == "*" || same_origin(entry, origin))
        || widget_origins.iter().any(|widget| same_origin(widget, origin))
    {
        Ok(Some(origin.to_owned()))
    } else {
        Err(refused(visitor_sentence("origin_not_allowed")))
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
        tracing::error!(code = err.code(), error = %crate::report::error_chain(err), "tenant unavailable");
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
            check_origin(&open, &from(Some("https://any.example")), &[]),
            Ok(Some("https://any.example".into()))
        );
        assert_eq!(check_origin(&open, &from(None), &[]), Ok(None));
    }

    #[test]
    fn with_allowed_origins_only_those_origins_are_echoed_and_others_get_403() {
        let listed = config(
            serde_json::json!({"allowed_origins": ["https://www.riverbend.org/", "http://127.0.0.1:3000"]}),
        );
        assert_eq!(
            check_origin(&listed, &from(Some("https://WWW.riverbend.org")), &[]),
            Ok(Some("https://WWW.riverbend.org".into()))
        );
        assert_eq!(
            check_origin(&listed, &from(Some("http://127.0.0.1:3000")), &[]).unwrap().as_deref(),
            Some("http://127.0.0.1:3000")
        );
        for stranger in [
            "https://evil.example",
            "null",
            "https://www.riverbend.org.evil.example",
            "http://127.0.0.1:3001",
        ] {
            let err = check_origin(&listed, &from(Some(stranger)), &[]).unwrap_err();
            assert_eq!((err.status, err.code), (403, "origin_not_allowed"), "{stranger}");
        }
    }

    #[test]
    fn the_widgets_own_origin_is_answered_when_the_tenant_lists_only_its_site() {
        let listed = config(serde_json::json!({"allowed_origins": ["https://www.riverbend.org"]}));
        let widget = crate::edge::default_widget_origins();
        assert_eq!(
            check_origin(&listed, &from(Some("https://chat.myrecruiter.ai")), &widget),
            Ok(Some("https://chat.myrecruiter.ai".into()))
        );
        let err = check_origin(&listed, &from(Some("https://chat.myrecruiter.ai")), &[]).unwrap_err();
        assert_eq!(err.code, "origin_not_allowed", "without the widget's origins, only the tenant's sites");
        let err = check_origin(&listed, &from(Some("https://evil.example")), &widget).unwrap_err();
        assert_eq!(err.code, "origin_not_allowed");
    }

    #[test]
    fn behind_a_trusted_proxy_the_viewer_address_counts_only_with_the_secret() {
        let headers = |secret: &'static str| {
            move |name: &str| match name {
                PROXY_SECRET_HEADER => Some(secret),
                VIEWER_ADDRESS_HEADER => Some("2001:db8::7:46532"),
                _ => None,
            }
        };
        let proxy = || Caller::new(None, Some("130.176.1.1".into()));
        let trusted = proxy().through_proxy(headers("s3cret"), Some("s3cret"));
        assert_eq!(trusted.source_ip.as_deref(), Some("2001:db8::7"));
        let forged = proxy().through_proxy(headers("guess"), Some("s3cret"));
        assert_eq!(forged.source_ip.as_deref(), Some("130.176.1.1"));
        let no_proxy = proxy().through_proxy(headers("s3cret"), None);
        assert_eq!(no_proxy.source_ip.as_deref(), Some("130.176.1.1"));
        assert_eq!(viewer_ip("203.0.113.9:443").as_deref(), Some("203.0.113.9"));
        assert_eq!(viewer_ip("not an address"), None);
    }

    #[test]
    fn a_request_without_origin_follows_allow_no_origin() {
        let listed = config(serde_json::json!({"allowed_origins": ["https://a.example"]}));
        assert_eq!(check_origin(&listed, &from(None), &[]), Ok(None));
        let strict = config(serde_json::json!({"rate_limits": {"allow_no_origin": false}}));
        assert_eq!(check_origin(&strict, &from(None), &[]).unwrap_err().code, "origin_not_allowed");
        assert_eq!(
            check_origin(&strict, &from(Some("https://b.example")), &[]),
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
