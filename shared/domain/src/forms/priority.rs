//! Submission priority: the visitor's urgency, then the form's rules, then
//! its default, then `normal`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, de};
use serde_json::{Map, Value};

use super::value_text;
use crate::tenant::FormConfig;

/// How urgently a team should look at a submission. Stored, published and
/// shown as `high`, `normal` or `low`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }

    /// `high`, `normal` or `low` in any case; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::High, Self::Normal, Self::Low]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Config and events spell it in any case; an unknown word is an error that
/// names it, so a mistyped `priority_rules[].priority` fails the config load
/// instead of silently becoming `normal`.
impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            de::Error::custom(format!("unknown priority {text:?} (expected high, normal or low)"))
        })
    }
}

impl Priority {
    /// For events: consumers take the priority from the stored submission,
    /// so an archived event with a word older code let through still parses
    /// (as `normal`) instead of being dropped as malformed.
    pub fn lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(deserializer)?).unwrap_or_default())
    }
}

pub fn priority(form: &FormConfig, data: &Map<String, Value>) -> Priority {
    if let Some(urgency) = data.get("urgency").map(value_text).filter(|u| !u.is_empty()) {
        return match urgency.to_ascii_lowercase().as_str() {
            "immediate" | "urgent" | "high" => Priority::High,
            "normal" | "this week" => Priority::Normal,
            _ => Priority::Low,
        };
    }
    let matching_rule = form.priority_rules.iter().find(|rule| {
        let actual = data.get(&rule.field).map(value_text).unwrap_or_default();
        match &rule.value {
            Some(expected) => value_text(expected).eq_ignore_ascii_case(&actual),
            None => !actual.is_empty(),
        }
    });
    matching_rule.and_then(|rule| rule.priority).or(form.default_priority).unwrap_or_default()
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
            ("immediate", Priority::High),
            ("Urgent", Priority::High),
            ("high", Priority::High),
            ("normal", Priority::Normal),
            ("this week", Priority::Normal),
            ("flexible", Priority::Low),
        ] {
            assert_eq!(priority(&form(), &data(json!({"urgency": urgency}))), expected, "{urgency}");
        }
    }

    #[test]
    fn a_matching_rule_then_the_default_then_normal() {
        assert_eq!(priority(&form(), &data(json!({"availability": "Weekday mornings"}))), Priority::High);
        assert_eq!(priority(&form(), &data(json!({"availability": "Evenings"}))), Priority::Low);
        assert_eq!(priority(&FormConfig::default(), &data(json!({}))), Priority::Normal);
    }

    #[test]
    fn a_config_priority_in_any_case_is_read_and_an_unknown_one_is_refused_by_name() {
        let read: Priority = serde_json::from_value(json!("HIGH")).unwrap();
        assert_eq!(read, Priority::High);
        let err = serde_json::from_value::<Priority>(json!("asap")).unwrap_err().to_string();
        assert!(err.contains("\"asap\""), "{err}");
    }

    #[test]
    fn a_priority_is_written_in_lowercase() {
        assert_eq!(serde_json::to_value(Priority::High).unwrap(), json!("high"));
        assert_eq!(Priority::Low.to_string(), "low");
    }
}
