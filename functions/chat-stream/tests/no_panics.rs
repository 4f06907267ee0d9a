//! No input makes the chat edge, the analytics parser, the tenant config
//! parser or the CTA enhancer panic.

use chat_stream::{cta, request::ChatRequest};
use domain::tenant::{Tenant, TenantConfig};
use serde_json::{Value, json};

fn random_value(rng: &mut fastrand::Rng, depth: u32) -> Value {
    match rng.u8(0..if depth > 2 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => Value::String((0..rng.usize(0..30)).map(|_| rng.char(..)).collect()),
        4 => Value::Array((0..rng.usize(0..4)).map(|_| random_value(rng, depth + 1)).collect()),
        _ => Value::Object(
            (0..rng.usize(0..4)).map(|i| (format!("k{i}"), random_value(rng, depth + 1))).collect(),
        ),
    }
}

#[test]
fn random_bodies_never_panic_the_chat_parser() {
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..2_000 {
        let bytes: Vec<u8> = (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect();
        let _ = ChatRequest::parse(&bytes);
        let mut body = json!({"tenant_hash": "h", "user_input": "hi"});
        for key in [
            "user_input",
            "session_id",
            "conversation_id",
            "conversation_history",
            "conversation_context",
            "session_context",
        ] {
            if rng.bool() {
                body[key] = random_value(&mut rng, 0);
            }
        }
        let _ = ChatRequest::parse(body.to_string().as_bytes());
    }
}

#[test]
fn random_analytics_batches_never_panic_the_analytics_parser() {
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..2_000 {
        let bytes: Vec<u8> = (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect();
        let _ = domain::analytics::parse_batch(&bytes);
        let events: Vec<Value> = (0..rng.usize(0..5))
            .map(|_| {
                let mut event = json!({"type": "X", "event": {"type": "Y", "payload": {}}});
                for key in ["type", "tenant_hash", "tenant_id", "session_id", "event", "payload"] {
                    if rng.bool() {
                        event[key] = random_value(&mut rng, 0);
                    }
                }
                event
            })
            .collect();
        let body = json!({"tenant_hash": "h", "events": events});
        let _ = domain::analytics::parse_batch(body.to_string().as_bytes());
    }
}

#[test]
fn random_configs_either_parse_or_fail_cleanly_and_never_panic_the_cta_enhancer() {
    let mut rng = fastrand::Rng::with_seed(5);
    let base = json!({
        "conversational_forms": {"f": {"trigger_phrases": ["apply"], "fields": [{"id": "a"}]}},
        "cta_definitions": {"c": {"label": "Go", "action": "start_form", "formId": "f", "ai_available": true}},
        "conversation_branches": {"b": {"detection_keywords": ["go"], "available_ctas": {"primary": "c", "secondary": ["x"]}}},
        "cta_settings": {"max_ctas_per_response": 0, "branch_priority": ["nope", "b"]},
        "feature_flags": {"V5_SINGLE_PASS": true},
        "content_showcase": [{"id": "s", "name": "S", "available_ctas": {"primary": "c"}}]
    });
    for _ in 0..2_000 {
        let mut raw = base.clone();
        let path = [
            "conversational_forms",
            "cta_definitions",
            "conversation_branches",
            "cta_settings",
            "streaming",
            "aws",
            "feature_flags",
            "content_showcase",
        ];
        let key = path[rng.usize(..path.len())];
        if rng.bool() {
            raw[key] = random_value(&mut rng, 0);
        }
        let Ok(config) = serde_json::from_value::<TenantConfig>(raw.clone()) else { continue };
        let tenant = Tenant { id: "T".into(), config, raw };
        let session =
            serde_json::from_value(json!({"completed_forms": ["f"], "suspended_forms": ["f"]})).unwrap();
        let _ = cta::enhance(&tenant, "I want to apply, go!", "go go", &session, &Default::default());
        let clicked = chat_stream::request::Routing {
            clicked: Some(chat_stream::request::Click::ActionChip),
            target_branch: Some("go".into()),
            showcase: None,
        };
        let _ = cta::enhance(&tenant, "How do I go further with this?", "go", &Default::default(), &clicked);
        if let Some(catalog) = chat_stream::actions::Catalog::read(&tenant.config, &tenant.raw) {
            let chosen = catalog.keep(&["c".into(), "x".into()]);
            let _ = chat_stream::actions::buttons(&tenant.config, &chosen, &Default::default());
        }
        let _ = chat_stream::showcase::card(&tenant.config, &tenant.raw, "s");
    }
}
