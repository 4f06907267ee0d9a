//! `GET ?action=get_config&t=<tenant_hash>`: the tenant's public widget
//! config, with an `ETag` and `Cache-Control` so a CDN (and the browser) can
//! keep it and revalidate with `If-None-Match`.

use domain::{
    edge::{self, Caller, JsonResponse, RequestError},
    tenant::{ConfigSource, TenantHash, TenantLoader, public_view},
};

/// Five minutes, as long as the function's own tenant cache.
pub const CACHE_CONTROL: &str = "public, max-age=300";

/// The widget config for a query string, or the refusal as JSON.
pub async fn get_config<C: ConfigSource>(
    tenants: &TenantLoader<C>,
    query: Option<&str>,
    if_none_match: Option<&str>,
    caller: &Caller,
    widget_origins: &[String],
) -> JsonResponse {
    let hash = match config_request(query) {
        Ok(hash) => hash,
        Err(err) => return JsonResponse::from(&err).allowing(caller.origin.clone()),
    };
    let tenant = match tenants.load(hash.as_str()).await {
        Ok(tenant) => tenant,
        Err(err) => return edge::tenant_refused(&err).allowing(caller.origin.clone()),
    };
    // The widget's iframe asks for its config itself (from the widget's origin); host pages may too.
    let allowed_origin = match edge::check_origin(&tenant.config, caller, widget_origins) {
        Ok(origin) => origin,
        Err(err) => return JsonResponse::from(&err),
    };
    let body = public_view(&tenant.raw, &hash).to_string();
    let etag = etag(body.as_bytes());
    let response = if if_none_match.is_some_and(|header| matches_etag(header, &etag)) {
        JsonResponse::new(304, String::new())
    } else {
        JsonResponse::new(200, body)
    };
    // The answer differs by Origin (allowed or not), so a CDN must key on it.
    response.with_header("etag", etag).with_header("cache-control", CACHE_CONTROL).allowing(allowed_origin)
}

/// The tenant hash `t` of a `get_config` query.
fn config_request(query: Option<&str>) -> Result<TenantHash, RequestError> {
    if edge::query_param(query, "action") != Some("get_config") {
        return Err(RequestError::bad("invalid_action", "GET answers action=get_config only"));
    }
    match edge::query_param(query, "t").filter(|t| !t.is_empty()) {
        None => Err(RequestError::bad("missing_tenant_hash", "t (the tenant_hash) is required")),
        Some(hash) => {
            TenantHash::parse(hash).map_err(|e| RequestError::bad("invalid_tenant_hash", e.to_string()))
        }
    }
}

/// A strong ETag of the served bytes: FNV-1a 64, stable across builds and
/// instances (not cryptographic: it only has to change when the bytes do).
fn etag(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}

/// `If-None-Match` holds `*` or a list of tags, possibly weak (`W/"..."`).
fn matches_etag(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_is_a_quoted_hash_that_changes_with_the_bytes() {
        let tag = etag(b"{\"chat_title\":\"Hi\"}");
        assert_eq!(tag, etag(b"{\"chat_title\":\"Hi\"}"));
        assert_ne!(tag, etag(b"{\"chat_title\":\"Ho\"}"));
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 18, "{tag}");
    }

    #[test]
    fn if_none_match_accepts_a_list_weak_tags_and_the_wildcard() {
        let tag = "\"00000000000000ab\"";
        assert!(matches_etag(tag, tag));
        assert!(matches_etag(&format!("\"x\", W/{tag}"), tag));
        assert!(matches_etag("*", tag));
        assert!(!matches_etag("\"00000000000000ac\"", tag));
    }

    #[test]
    fn a_config_request_needs_the_action_and_a_valid_hash() {
        let code = |query: &str| config_request(Some(query)).unwrap_err().code;
        let hash = config_request(Some("action=get_config&t=ri3a9f2c7d41be")).unwrap();
        assert_eq!(hash.as_str(), "ri3a9f2c7d41be");
        assert_eq!(code("action=chat&t=ri3a9f2c7d41be"), "invalid_action");
        assert_eq!(code("action=get_config"), "missing_tenant_hash");
        assert_eq!(code("action=get_config&t="), "missing_tenant_hash");
        assert_eq!(code("action=get_config&t=..%2Fx"), "invalid_tenant_hash");
        assert_eq!(config_request(None).unwrap_err().code, "invalid_action");
    }
}
