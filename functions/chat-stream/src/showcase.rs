//! Showcase cards: a tenant's featured program, campaign or event, shown as a
//! `showcase_card` frame. Items are read from `content_showcase` (a list,
//! as the config builder writes it) or `showcase_items` (a map by id, as the
//! widget also accepts); only the fields the widget's card reads are sent.

use domain::tenant::{AvailableCtas, TenantConfig};
use serde_json::{Map, Value, json};

/// Why a card cannot be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Unknown,
    Disabled,
}

/// Text fields copied to the card when they are strings.
const TEXT_FIELDS: [&str; 7] =
    ["type", "name", "tagline", "description", "image_url", "stats", "testimonial"];
const MAX_HIGHLIGHTS: usize = 6;

/// The card of item `id`: its text fields, its highlights, and its buttons
/// (`ctaButtons.primary` and `.secondary`, resolved from `cta_definitions`;
/// an id the tenant does not define is left out).
pub fn card(config: &TenantConfig, raw: &Value, id: &str) -> Result<Value, Missing> {
    let item = find(raw, id).ok_or(Missing::Unknown)?;
    if item.get("enabled") == Some(&Value::Bool(false)) {
        return Err(Missing::Disabled);
    }
    let mut card = Map::new();
    card.insert("id".into(), Value::from(id));
    for field in TEXT_FIELDS {
        if let Some(text) = item.get(field).and_then(Value::as_str) {
            card.insert(field.into(), Value::from(text));
        }
    }
    let highlights: Vec<&str> = item
        .get("highlights")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).take(MAX_HIGHLIGHTS).collect())
        .unwrap_or_default();
    card.insert("highlights".into(), json!(highlights));
    let ctas: AvailableCtas =
        item.get("available_ctas").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    let button =
        |cta_id: &String| config.cta_definitions.get(cta_id).map(|cta| crate::cta::button(cta_id, cta));
    let secondary: Vec<Value> = ctas.secondary.iter().filter_map(button).collect();
    card.insert(
        "ctaButtons".into(),
        json!({"primary": ctas.primary.as_ref().and_then(button), "secondary": secondary}),
    );
    Ok(Value::Object(card))
}

/// The `showcase_card` frame of item `id`, with `metadata` as given.
pub fn frame(
    config: &TenantConfig,
    raw: &Value,
    id: &str,
    metadata: &Value,
    session_id: &str,
) -> Result<String, Missing> {
    let card = card(config, raw, id)?;
    Ok(domain::sse::Frame::ShowcaseCard { showcase_card: &card, metadata, session_id }.encode())
}

fn find<'a>(raw: &'a Value, id: &str) -> Option<&'a Map<String, Value>> {
    let listed = raw.get("content_showcase").and_then(Value::as_array).and_then(|items| {
        items
            .iter()
            .filter_map(Value::as_object)
            .find(|item| item.get("id").and_then(Value::as_str) == Some(id))
    });
    listed.or_else(|| raw.get("showcase_items")?.get(id)?.as_object())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> (TenantConfig, Value) {
        let raw = json!({
            "cta_definitions": {"give": {"label": "Give", "action": "external_link", "url": "https://x.org", "style": "primary"}},
            "content_showcase": [
                {"id": "gala", "type": "event", "name": "Gala", "tagline": "One night", "description": "Dinner.",
                 "highlights": ["Music", 7, "Food"], "secret": "not for the card",
                 "available_ctas": {"primary": "give", "secondary": ["give", "nope"]}},
                {"id": "old", "name": "Old", "enabled": false}
            ],
            "showcase_items": {"camp": {"name": "Camp", "description": "Summer."}}
        });
        (serde_json::from_value(raw.clone()).unwrap(), raw)
    }

    #[test]
    fn a_card_carries_what_the_widget_reads_with_its_buttons_resolved() {
        let (config, raw) = tenant();
        let card = card(&config, &raw, "gala").unwrap();
        assert_eq!(card["name"], "Gala");
        assert_eq!(card["highlights"], json!(["Music", "Food"]));
        assert!(card.get("secret").is_none());
        assert_eq!(card["ctaButtons"]["primary"]["id"], "give");
        assert!(card["ctaButtons"]["primary"].get("style").is_none());
        assert_eq!(
            card["ctaButtons"]["secondary"].as_array().unwrap().len(),
            1,
            "an undefined CTA is left out"
        );
        assert_eq!(super::card(&config, &raw, "camp").unwrap()["name"], "Camp", "showcase_items, by key");
    }

    #[test]
    fn a_disabled_or_unknown_item_has_no_card() {
        let (config, raw) = tenant();
        assert_eq!(card(&config, &raw, "old"), Err(Missing::Disabled));
        assert_eq!(card(&config, &raw, "nope"), Err(Missing::Unknown));
    }
}
