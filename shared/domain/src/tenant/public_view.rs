//! What the widget may see of a tenant's config (`GET ?action=get_config`):
//! an allow-list of the keys it renders, so a key added to configs later is
//! private until someone decides otherwise. Prompts, model and knowledge-base
//! ids, the internal tenant id and the forms' `notifications` and
//! `fulfillment` (recipients, SMS numbers, webhooks, handler names) are never
//! in it.

use serde_json::{Map, Value};

use super::TenantHash;

/// The top-level keys the widget at HEAD reads (longhornrumble/picasso
/// `Picasso/src`, recorded in `tests/fixtures/widget/config_keys.json`), as
/// real configs spell them.
pub const WIDGET_KEYS: [&str; 18] = [
    "chat_title",
    "chat_subtitle",
    "welcome_message",
    "callout_text",
    "calloutText",
    "branding",
    "features",
    "feature_flags",
    "quick_help",
    "action_chips",
    "widget_behavior",
    "privacy_notice_url",
    "scheduling",
    "showcase_items",
    "content_showcase",
    "conversational_forms",
    "cta_definitions",
    "conversation_branches",
];

/// Keys that are for the team or the platform, never the visitor, removed at
/// any depth of what is served: who is told and what runs after a submit, how
/// submissions are triaged, and what the assistant is told.
const PRIVATE_KEYS: [&str; 14] = [
    "notifications",
    "fulfillment",
    "priority_rules",
    "default_priority",
    "recipients",
    "sms_recipients",
    "email_to",
    "sms_to",
    "webhook_url",
    "tenant_id",
    "tone_prompt",
    "model_id",
    "knowledge_base_id",
    "bedrock_instructions",
];

/// The public view of a raw tenant config, with the `tenant_hash` it was asked by.
pub fn public_view(raw: &Value, hash: &TenantHash) -> Value {
    let mut view = Map::new();
    view.insert("tenant_hash".to_owned(), Value::String(hash.as_str().to_owned()));
    for key in WIDGET_KEYS {
        if let Some(value) = raw.get(key).filter(|v| !v.is_null()) {
            let mut value = value.clone();
            strip_private(&mut value);
            view.insert(key.to_owned(), value);
        }
    }
    Value::Object(view)
}

fn strip_private(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, _| !PRIVATE_KEYS.contains(&key.as_str()));
            map.values_mut().for_each(strip_private);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_private),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hash() -> TenantHash {
        TenantHash::parse("ab12cd34ef56gh").unwrap()
    }

    #[test]
    fn only_widget_keys_are_served_and_fulfillment_notifications_and_triage_rules_are_gone_at_any_depth() {
        let raw = json!({
            "tenant_id": "T1", "tenant_hash": "other", "tone_prompt": "You are...", "model_id": "m",
            "aws": {"knowledge_base_id": "KB1"}, "internal_notes": "do not show", "metadata": {"s3_bucket": "b"},
            "chat_title": "Hi", "welcome_message": "Welcome!", "branding": {"primary_color": "#123456"},
            "conversational_forms": {"f": {"title": "Apply", "fields": [{"id": "email", "type": "email"}],
                "notifications": {"internal": {"recipients": ["team@x.org"]}},
                "fulfillment": {"type": "webhook", "webhook_url": "https://hooks.x.org/secret"},
                "priority_rules": [{"field": "urgency", "value": "now", "priority": "high"}], "default_priority": "low",
                "post_submission": {"confirmation_message": "Thanks!", "fulfillment": {"type": "s3"}}}},
            "cta_settings": {"max_ctas_per_response": 2}, "privacy_notice_url": "https://x.org/privacy",
            "showcase_items": {"s1": {"name": "Gala", "tagline": "One night"}}
        });
        assert_eq!(
            public_view(&raw, &hash()),
            json!({
                "tenant_hash": "ab12cd34ef56gh", "chat_title": "Hi", "welcome_message": "Welcome!",
                "branding": {"primary_color": "#123456"},
                "conversational_forms": {"f": {"title": "Apply", "fields": [{"id": "email", "type": "email"}],
                    "post_submission": {"confirmation_message": "Thanks!"}}},
                "privacy_notice_url": "https://x.org/privacy",
                "showcase_items": {"s1": {"name": "Gala", "tagline": "One night"}}
            })
        );
    }

    #[test]
    fn the_hash_served_is_the_one_asked_by_and_nulls_and_odd_forms_are_left_alone() {
        let raw = json!({"chat_title": null, "conversational_forms": {"f": "not an object"}});
        assert_eq!(
            public_view(&raw, &hash()),
            json!({"tenant_hash": "ab12cd34ef56gh", "conversational_forms": {"f": "not an object"}})
        );
        assert_eq!(public_view(&json!([1, 2]), &hash()), json!({"tenant_hash": "ab12cd34ef56gh"}));
    }

    /// Keys whose values are for the team or the platform, never the visitor.
    const RECIPIENT_KEYS: [&str; 4] = ["recipients", "sms_recipients", "email_to", "sms_to"];
    const SECRET_KEYS: [&str; 7] = [
        "tone_prompt",
        "model_id",
        "fallback_model_id",
        "knowledge_base_id",
        "tenant_id",
        "webhook_url",
        "function",
    ];

    /// Every string leaf under any of `keys`, anywhere in `value`.
    fn strings_under(value: &Value, keys: &[&str], inside: bool, out: &mut Vec<String>) {
        match value {
            Value::String(s) if inside => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| strings_under(v, keys, inside, out)),
            Value::Object(map) => {
                for (key, v) in map {
                    strings_under(v, keys, inside || keys.contains(&key.as_str()), out);
                }
            }
            _ => {}
        }
    }

    fn keys_and_leaves(value: &Value, keys: &mut Vec<String>, leaves: &mut Vec<String>) {
        match value {
            Value::String(s) => leaves.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| keys_and_leaves(v, keys, leaves)),
            Value::Object(map) => {
                for (key, v) in map {
                    keys.push(key.clone());
                    keys_and_leaves(v, keys, leaves);
                }
            }
            _ => {}
        }
    }

    fn every_config() -> Vec<(String, Value)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let fixtures = root.join("tests/fixtures/tenant-configs");
        let mut paths: Vec<_> = std::fs::read_dir(&fixtures).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        paths.push(root.join("tools/demo-tenant/config.json"));
        paths
            .into_iter()
            .map(|p| (p.display().to_string(), serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()))
            .collect()
    }

    #[test]
    fn the_widget_config_never_contains_a_recipient_phone_webhook_prompt_or_id() {
        let e164 = regex::Regex::new(r"\+\d{10,15}").unwrap();
        let configs = every_config();
        assert!(configs.len() >= 4, "the fixtures and the demo tenant");
        for (path, raw) in configs {
            let view = public_view(&raw, &hash());
            let served = view.to_string();
            let (mut keys, mut leaves) = (Vec::new(), Vec::new());
            keys_and_leaves(&view, &mut keys, &mut leaves);
            let private: Vec<&str> = RECIPIENT_KEYS
                .iter()
                .chain(&SECRET_KEYS)
                .chain(&PRIVATE_KEYS)
                .chain(&["aws", "default_fulfillment", "metadata"])
                .copied()
                .collect();
            assert!(!keys.iter().any(|k| private.contains(&k.as_str())), "{path}: {keys:?}");

            let mut recipients = Vec::new();
            strings_under(&raw, &RECIPIENT_KEYS, false, &mut recipients);
            assert!(!recipients.is_empty() || !path.contains("demo"), "the demo has recipients to hide");
            for recipient in &recipients {
                assert!(!leaves.contains(recipient), "{path}: recipient {recipient} is served");
            }
            let mut secrets = Vec::new();
            strings_under(&raw, &SECRET_KEYS, false, &mut secrets);
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                assert!(!served.contains(secret.as_str()), "{path}: {secret:.40} is served");
            }
            assert!(!e164.is_match(&served), "{path}: a phone number is served");
        }
    }
}
