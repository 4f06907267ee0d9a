//! Form requests, parsed at the edge.

use domain::{edge, tenant::TenantHash};
use serde::Deserialize;
use serde_json::{Map, Value};

pub use domain::edge::RequestError;

#[derive(Debug, Clone, PartialEq)]
pub enum FormRequest {
    ValidateField {
        tenant_hash: TenantHash,
        form_id: Option<String>,
        field_id: String,
        value: Value,
    },
    SubmitForm {
        tenant_hash: TenantHash,
        form_id: String,
        form_data: Map<String, Value>,
        client_submission_id: Option<String>,
        session: SessionIds,
    },
}

/// The widget's session and conversation ids, each kept when well-formed
/// (`domain::submissions::is_session_id`); the conversation is the session
/// when the widget sent none. A malformed one never refuses a form (the widget
/// shows success whatever it is answered): it is dropped, and `dropped` says so.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionIds {
    pub session_id: Option<String>,
    pub conversation_id: Option<String>,
    pub dropped: bool,
}

impl SessionIds {
    fn parse(session_id: Option<&Value>, conversation_id: Option<&Value>) -> Self {
        let mut dropped = false;
        let mut keep = |value: Option<&Value>| match value {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if domain::submissions::is_session_id(id) => Some(id.clone()),
            Some(_) => {
                dropped = true;
                None
            }
        };
        let session_id = keep(session_id);
        let conversation_id = keep(conversation_id).or_else(|| session_id.clone());
        Self { session_id, conversation_id, dropped }
    }
}

fn bad(code: &'static str, message: impl Into<String>) -> RequestError {
    RequestError::bad(code, message)
}

#[derive(Deserialize)]
struct Raw {
    tenant_hash: Option<Value>,
    action: Option<Value>,
    form_id: Option<Value>,
    field_id: Option<Value>,
    field_value: Option<Value>,
    form_data: Option<Value>,
    client_submission_id: Option<Value>,
    session_id: Option<Value>,
    conversation_id: Option<Value>,
}

/// Whether a body asks for form handling (`"form_mode": true`), as the widget
/// sends form requests to the chat URL too.
pub fn is_form_mode(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Mode {
        form_mode: Option<Value>,
    }
    serde_json::from_slice::<Mode>(body)
        .ok()
        .and_then(|m| m.form_mode)
        .is_some_and(|mode| mode == Value::Bool(true) || mode == Value::String("true".into()))
}

impl FormRequest {
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let raw: Raw = edge::parse_body(body)?;
        let tenant_hash = edge::tenant_hash(raw.tenant_hash.as_ref())?;
        let text = |value: &Option<Value>| {
            value.as_ref().and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
        };
        match text(&raw.action).as_deref() {
            Some("validate_field") => Ok(Self::ValidateField {
                tenant_hash,
                form_id: text(&raw.form_id),
                field_id: text(&raw.field_id)
                    .ok_or_else(|| bad("missing_field_id", "field_id is required"))?,
                value: raw.field_value.unwrap_or(Value::Null),
            }),
            Some("submit_form") => {
                let form_id =
                    text(&raw.form_id).ok_or_else(|| bad("missing_form_id", "form_id is required"))?;
                let form_data = match raw.form_data {
                    Some(Value::Object(data)) => data,
                    None | Some(Value::Null) => Map::new(),
                    Some(_) => return Err(bad("invalid_form_data", "form_data must be an object")),
                };
                let client_submission_id = match &raw.client_submission_id {
                    None | Some(Value::Null) => None,
                    Some(Value::String(id)) if is_client_submission_id(id) => Some(id.clone()),
                    Some(_) => {
                        return Err(bad(
                            "invalid_client_submission_id",
                            "client_submission_id must be 16 to 128 characters of A-Z, a-z, 0-9, '_' or '-'",
                        ));
                    }
                };
                let session = SessionIds::parse(raw.session_id.as_ref(), raw.conversation_id.as_ref());
                Ok(Self::SubmitForm { tenant_hash, form_id, form_data, client_submission_id, session })
            }
            _ => Err(bad("invalid_action", "action must be validate_field or submit_form")),
        }
    }
}

fn is_client_submission_id(id: &str) -> bool {
    (16..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<FormRequest, RequestError> {
        FormRequest::parse(v.to_string().as_bytes())
    }

    #[test]
    fn each_malformed_form_request_has_its_own_code() {
        let cases = [
            (json!({"action": "submit_form"}), "missing_tenant_hash"),
            (json!({"tenant_hash": "../x", "action": "submit_form"}), "invalid_tenant_hash"),
            (json!({"tenant_hash": "h", "action": "delete"}), "invalid_action"),
            (json!({"tenant_hash": "h", "action": "validate_field"}), "missing_field_id"),
            (json!({"tenant_hash": "h", "action": "submit_form"}), "missing_form_id"),
            (
                json!({"tenant_hash": "h", "action": "submit_form", "form_id": "f", "form_data": [1]}),
                "invalid_form_data",
            ),
            (
                json!({"tenant_hash": "h", "action": "submit_form", "form_id": "f", "client_submission_id": "short"}),
                "invalid_client_submission_id",
            ),
        ];
        for (body, code) in cases {
            assert_eq!(parse(body.clone()).unwrap_err().code, code, "{body}");
        }
        assert_eq!(FormRequest::parse(b"{").unwrap_err().code, "invalid_json");
    }

    #[test]
    fn the_widgets_session_is_kept_and_a_malformed_one_is_dropped_without_refusing_the_form() {
        let session = |extra: Value| {
            let mut body = json!({"tenant_hash": "h", "action": "submit_form", "form_id": "f"});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            match parse(body).unwrap() {
                FormRequest::SubmitForm { session, .. } => session,
                other => panic!("not a submit: {other:?}"),
            }
        };
        let widget = session(json!({"session_id": "session_1733500000000_k3j9x2abc",
                                    "conversation_id": "session_1733500000000_k3j9x2abc"}));
        assert_eq!(widget.session_id.as_deref(), Some("session_1733500000000_k3j9x2abc"));
        assert_eq!(widget.conversation_id, widget.session_id);
        assert!(!widget.dropped);
        let only_session = session(json!({"session_id": "sess_m1abc_9xk2"}));
        assert_eq!(only_session.conversation_id.as_deref(), Some("sess_m1abc_9xk2"), "the session stands in");
        assert_eq!(session(json!({})), SessionIds::default());
        for bad in [json!("<script>"), json!(""), json!(42), json!("x".repeat(129))] {
            let dropped = session(json!({"session_id": bad.clone()}));
            assert_eq!((dropped.session_id, dropped.dropped), (None, true), "{bad}");
        }
    }

    #[test]
    fn form_mode_is_detected_in_chat_bodies() {
        assert!(is_form_mode(br#"{"form_mode": true, "action": "submit_form"}"#));
        assert!(!is_form_mode(br#"{"user_input": "hi"}"#));
        assert!(!is_form_mode(b"not json"));
    }
}
