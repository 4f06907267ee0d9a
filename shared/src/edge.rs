//! What every Function URL checks first: body size, JSON, the tenant hash.
//! A failure is a `RequestError`, answered with a 4xx, an error frame and
//! `[DONE]` before anything else happens.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::tenant::TenantHash;

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
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError {
            status: 413,
            code: "payload_too_large",
            message: format!("request body is larger than {} KiB", MAX_BODY_BYTES / 1024),
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
