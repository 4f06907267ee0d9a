//! The chat request, parsed once at the edge. Anything wrong with it is a
//! `RequestError` answered with a 4xx before the stream starts.

use domain::{
    edge,
    model::{Role, Turn},
    tenant::TenantHash,
};
use serde::Deserialize;
use serde_json::Value;

pub use domain::edge::{MAX_BODY_BYTES, RequestError};
/// A longer question is cut to this many characters, as the Node handler did; never refused.
pub const MAX_USER_INPUT_CHARS: usize = 4_000;
/// History kept for the model: the last turns, within a size budget.
pub const MAX_HISTORY_TURNS: usize = 20;
pub const MAX_HISTORY_CHARS: usize = 16_000;
const MAX_TURN_CHARS: usize = 4_000;
const MAX_ID_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub tenant_hash: TenantHash,
    pub user_input: String,
    pub session_id: String,
    pub conversation_id: Option<String>,
    /// Oldest first, bounded to the last `MAX_HISTORY_TURNS` and `MAX_HISTORY_CHARS`.
    pub history: Vec<Turn>,
    pub session: SessionContext,
    /// What the visitor clicked to send this turn, if anything.
    pub routing: Routing,
}

/// `routing_metadata` of a turn sent by a click: an action chip or a CTA
/// button, and the branch of `conversation_branches` it points at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    pub clicked: Option<Click>,
    pub target_branch: Option<String>,
    /// `action: "show_showcase"` with `target_showcase_id`: answer with that card alone.
    pub showcase: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Click {
    ActionChip,
    Cta,
}

impl Click {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ActionChip => "action_chip",
            Self::Cta => "cta",
        }
    }
}

impl Routing {
    fn parse(value: Option<&Value>) -> Self {
        let Some(value) = value else { return Self::default() };
        let flag = |name: &str| value.get(name).is_some_and(|v| v == &Value::Bool(true));
        let clicked = if flag("action_chip_triggered") {
            Some(Click::ActionChip)
        } else if flag("cta_triggered") {
            Some(Click::Cta)
        } else {
            None
        };
        let target_branch = value
            .get("target_branch")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|b| !b.is_empty() && b.len() <= MAX_ID_CHARS)
            .map(str::to_owned);
        let showcase = (value.get("action").and_then(Value::as_str) == Some("show_showcase"))
            .then(|| short_id(value.get("target_showcase_id")))
            .flatten();
        Self { clicked, target_branch: clicked.and(target_branch), showcase }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SessionContext {
    #[serde(deserialize_with = "strings")]
    pub completed_forms: Vec<String>,
    #[serde(deserialize_with = "strings")]
    pub suspended_forms: Vec<String>,
    pub program_interest: Option<String>,
    /// The widget's topic tags of this visit, as sent (see [`crate::focus::topics`]).
    #[serde(deserialize_with = "strings")]
    pub accumulated_topics: Vec<String>,
}

#[derive(Deserialize)]
struct RawRequest {
    tenant_hash: Option<Value>,
    user_input: Option<Value>,
    session_id: Option<Value>,
    conversation_id: Option<Value>,
    conversation_history: Option<Value>,
    conversation_context: Option<Value>,
    session_context: Option<Value>,
    routing_metadata: Option<Value>,
}

impl ChatRequest {
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let raw: RawRequest = edge::parse_body(body)?;
        let tenant_hash = edge::tenant_hash(raw.tenant_hash.as_ref())?;
        let routing = Routing::parse(raw.routing_metadata.as_ref());
        let user_input = raw.user_input.as_ref().and_then(Value::as_str).map(str::trim).unwrap_or_default();
        if user_input.is_empty() && routing.showcase.is_none() {
            return Err(RequestError::bad("missing_user_input", "user_input is required"));
        }
        let user_input: String = user_input.chars().take(MAX_USER_INPUT_CHARS).collect();
        let session_id = short_id(raw.session_id.as_ref()).unwrap_or_else(|| "default".to_owned());
        let history_source = raw
            .conversation_history
            .filter(|h| h.as_array().is_some_and(|a| !a.is_empty()))
            .or_else(|| raw.conversation_context.and_then(|c| c.get("recentMessages").cloned()));
        let session = raw
            .session_context
            .and_then(|value| serde_json::from_value::<SessionContext>(value).ok())
            .unwrap_or_default();

        Ok(Self {
            tenant_hash,
            user_input: user_input.trim_end().to_owned(),
            session_id,
            conversation_id: short_id(raw.conversation_id.as_ref()),
            history: bounded_history(history_source.as_ref()),
            session,
            routing,
        })
    }
}

/// An identifier echoed back to the widget: a string or number, bounded.
fn short_id(value: Option<&Value>) -> Option<String> {
    let text = match value? {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then(|| text.chars().take(MAX_ID_CHARS).collect())
}

/// The widget's history (`[{role, content|text}]`) as model turns: unknown
/// roles and empty turns dropped, the last `MAX_HISTORY_TURNS` kept, each turn
/// and the whole within a character budget (oldest turns go first).
fn bounded_history(value: Option<&Value>) -> Vec<Turn> {
    let Some(items) = value.and_then(Value::as_array) else {
        return Vec::new();
    };
    let turns: Vec<Turn> = items
        .iter()
        .filter_map(|item| {
            let role = match item.get("role").and_then(Value::as_str)?.to_ascii_lowercase().as_str() {
                "user" | "human" | "visitor" => Role::User,
                "assistant" | "bot" | "ai" | "model" => Role::Assistant,
                _ => return None,
            };
            let text = item.get("content").or_else(|| item.get("text")).and_then(Value::as_str)?.trim();
            (!text.is_empty()).then(|| Turn { role, text: text.chars().take(MAX_TURN_CHARS).collect() })
        })
        .collect();
    let mut kept: Vec<Turn> = Vec::new();
    let mut budget = MAX_HISTORY_CHARS;
    for turn in turns.into_iter().rev().take(MAX_HISTORY_TURNS) {
        let size = turn.text.chars().count();
        if size > budget {
            break;
        }
        budget -= size;
        kept.push(turn);
    }
    kept.reverse();
    kept
}

/// A list of strings, or of objects naming a form (`form_id`/`formId`/`program`).
fn strings<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(value
        .as_ref()
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| match item {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => ["form_id", "formId", "program", "id"]
                        .iter()
                        .find_map(|k| o.get(*k).and_then(Value::as_str).map(str::to_owned)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<ChatRequest, RequestError> {
        ChatRequest::parse(value.to_string().as_bytes())
    }

    #[test]
    fn a_click_names_its_target_branch_and_a_typed_turn_names_none() {
        let clicked = parse(json!({"tenant_hash": "abc", "user_input": "Volunteer",
            "routing_metadata": {"action_chip_triggered": true, "action_chip_id": "chip_1", "target_branch": "volunteer"}}))
        .unwrap();
        assert_eq!(
            clicked.routing,
            Routing {
                clicked: Some(Click::ActionChip),
                target_branch: Some("volunteer".into()),
                showcase: None
            }
        );
        let typed = parse(
            json!({"tenant_hash": "abc", "user_input": "hi", "routing_metadata": {"target_branch": "x"}}),
        )
        .unwrap();
        assert_eq!(typed.routing, Routing::default());
    }

    #[test]
    fn a_showcase_request_needs_no_question() {
        let request = parse(json!({"tenant_hash": "abc",
            "routing_metadata": {"action": "show_showcase", "target_showcase_id": "gala"}}))
        .unwrap();
        assert_eq!(request.routing.showcase.as_deref(), Some("gala"));
        let other = parse(
            json!({"tenant_hash": "abc", "routing_metadata": {"action": "other", "target_showcase_id": "gala"}}),
        );
        assert_eq!(other.unwrap_err().code, "missing_user_input");
    }

    #[test]
    fn a_question_longer_than_4000_characters_is_cut_not_refused() {
        let long = format!("{}tail", "é".repeat(MAX_USER_INPUT_CHARS));
        let request = parse(json!({"tenant_hash": "abc", "user_input": long})).unwrap();
        assert_eq!(request.user_input.chars().count(), MAX_USER_INPUT_CHARS);
        assert!(request.user_input.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_minimal_request_gets_the_default_session() {
        let request = parse(json!({"tenant_hash": "abc", "user_input": " Hi there "})).unwrap();
        assert_eq!(request.user_input, "Hi there");
        assert_eq!(request.session_id, "default");
        assert!(request.history.is_empty());
    }

    #[test]
    fn each_malformed_request_has_its_own_code_and_status() {
        let cases = [
            (b"not json".to_vec(), 400, "invalid_json"),
            (json!({"user_input": "hi"}).to_string().into_bytes(), 400, "missing_tenant_hash"),
            (json!({"tenant_hash": "abc"}).to_string().into_bytes(), 400, "missing_user_input"),
            (
                json!({"tenant_hash": "abc", "user_input": "  "}).to_string().into_bytes(),
                400,
                "missing_user_input",
            ),
            (
                json!({"tenant_hash": "../x", "user_input": "hi"}).to_string().into_bytes(),
                400,
                "invalid_tenant_hash",
            ),
            (vec![b' '; MAX_BODY_BYTES + 1], 413, "payload_too_large"),
        ];
        for (body, status, code) in cases {
            let err = ChatRequest::parse(&body).unwrap_err();
            assert_eq!(
                (err.status, err.code),
                (status, code),
                "{}",
                String::from_utf8_lossy(&body[..body.len().min(60)])
            );
        }
    }

    #[test]
    fn history_is_bounded_to_the_last_twenty_turns() {
        let history: Vec<Value> = (0..30)
            .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("turn {i}")}))
            .collect();
        let request =
            parse(json!({"tenant_hash": "abc", "user_input": "q", "conversation_history": history})).unwrap();
        assert_eq!(request.history.len(), MAX_HISTORY_TURNS);
        assert_eq!(request.history[0].text, "turn 10");
        assert_eq!(request.history[19].text, "turn 29");
    }

    #[test]
    fn history_is_bounded_in_size_dropping_the_oldest_turns() {
        let long = "x".repeat(MAX_TURN_CHARS + 500);
        let history: Vec<Value> = (0..8).map(|_| json!({"role": "user", "text": long})).collect();
        let request =
            parse(json!({"tenant_hash": "abc", "user_input": "q", "conversation_history": history})).unwrap();
        assert_eq!(request.history.len(), MAX_HISTORY_CHARS / MAX_TURN_CHARS);
        assert!(request.history.iter().all(|t| t.text.chars().count() == MAX_TURN_CHARS));
    }

    #[test]
    fn history_falls_back_to_recent_messages_and_skips_unknown_roles() {
        let request = parse(json!({
            "tenant_hash": "abc", "user_input": "q",
            "conversation_context": {"recentMessages": [
                {"role": "user", "text": "hello"}, {"role": "system", "text": "x"}, {"role": "assistant", "content": "hi!"}
            ]}
        }))
        .unwrap();
        assert_eq!(
            request.history,
            [
                Turn { role: Role::User, text: "hello".into() },
                Turn { role: Role::Assistant, text: "hi!".into() }
            ]
        );
    }

    #[test]
    fn session_context_accepts_form_ids_or_objects() {
        let request = parse(json!({
            "tenant_hash": "abc", "user_input": "q",
            "session_context": {"completed_forms": ["a", {"form_id": "b"}], "suspended_forms": null}
        }))
        .unwrap();
        assert_eq!(request.session.completed_forms, ["a", "b"]);
        assert!(request.session.suspended_forms.is_empty());
    }
}
