//! Submission priority: the visitor's urgency, then the form's rules, then
//! its default, then `normal`.

use serde_json::{Map, Value};

use super::value_text;
use crate::tenant::FormConfig;

pub fn priority(form: &FormConfig, data: &Map<String, Value>) -> String {
    if let Some(urgency) = data.get("urgency").map(value_text).filter(|u| !u.is_empty()) {
        return match urgency.to_ascii_lowercase().as_str() {
            "immediate" | "urgent" | "high" => "high",
            "normal" | "this week" => "normal",
            _ => "low",
        }
        .to_owned();
    }
    let matching_rule = form.priority_rules.iter().find(|rule| {
        let actual = data.get(&rule.field).map(value_text).unwrap_or_default();
        match &rule.value {
            Some(expected) => value_text(expected).eq_ignore_ascii_case(&actual),
            None => !actual.is_empty(),
        }
    });
    matching_rule
        .map(|rule| rule.priority.clone())
        .or_else(|| form.default_priority.clone())
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "normal".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form() -> FormConfig {
        serde_json::from_value(json!({
            "priority_rules": [{"field": "availability", "value": "Weekday mornings", "priority": "high"}],
            "default_priority": "low"
        }))
        .unwrap()
    }

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn urgency_maps_to_high_normal_or_low() {
        for (urgency, expected) in [
            ("immediate", "high"),
            ("Urgent", "high"),
            ("high", "high"),
            ("normal", "normal"),
            ("this week", "normal"),
            ("flexible", "low"),
        ] {
            assert_eq!(priority(&form(), &data(json!({"urgency": urgency}))), expected, "{urgency}");
        }
    }

    #[test]
    fn a_matching_rule_then_the_default_then_normal() {
        assert_eq!(priority(&form(), &data(json!({"availability": "Weekday mornings"}))), "high");
        assert_eq!(priority(&form(), &data(json!({"availability": "Evenings"}))), "low");
        assert_eq!(priority(&FormConfig::default(), &data(json!({}))), "normal");
    }
}
