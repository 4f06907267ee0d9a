//! `status`: one submission's fulfillment, read consistently from the
//! submissions table. Only the fields below are copied out, so the submitted
//! form data (personal data) is never printed.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde_json::Value;

use crate::{AwsError, attributes, call_failed};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubmissionStatus {
    pub submission_id: String,
    pub tenant_id: Option<String>,
    pub form_id: Option<String>,
    pub priority: Option<String>,
    pub submitted_at: Option<String>,
    pub status: Option<String>,
    pub channels: Vec<String>,
    /// Channel → its record (status, attempts, at, last_error, reason, usage, limit, `*_done_at`).
    pub fulfillment: BTreeMap<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no submission {0}")]
    NotFound(String),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

pub async fn submission_status(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    submission_id: &str,
) -> Result<SubmissionStatus, StatusError> {
    let output = dynamodb
        .get_item()
        .table_name(table)
        .key("submission_id", AttributeValue::S(submission_id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(call_failed("GetItem", table))?;
    // Idempotency records share the table but are not submissions: they have no form_id.
    match output.item {
        Some(item) if item.contains_key("form_id") => Ok(from_item(submission_id, &item)),
        _ => Err(StatusError::NotFound(submission_id.to_owned())),
    }
}

/// Copies the fulfillment fields of a stored item; everything else stays behind.
pub fn from_item(submission_id: &str, item: &HashMap<String, AttributeValue>) -> SubmissionStatus {
    let text = |key: &str| item.get(key).and_then(|value| value.as_s().ok()).cloned();
    let channels = match item.get("channels") {
        Some(AttributeValue::L(list)) => list.iter().filter_map(|c| c.as_s().ok().cloned()).collect(),
        Some(AttributeValue::Ss(set)) => set.clone(),
        _ => Vec::new(),
    };
    let fulfillment = match item.get("fulfillment") {
        Some(AttributeValue::M(records)) => {
            records.iter().map(|(channel, record)| (channel.clone(), attributes::to_json(record))).collect()
        }
        _ => BTreeMap::new(),
    };
    SubmissionStatus {
        submission_id: submission_id.to_owned(),
        tenant_id: text("tenant_id"),
        form_id: text("form_id"),
        priority: text("priority"),
        submitted_at: text("submitted_at"),
        status: text("status"),
        channels,
        fulfillment,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_owned())
    }

    #[test]
    fn the_status_carries_fulfillment_but_never_form_data() {
        let item = HashMap::from([
            ("submission_id".to_owned(), s("f_1")),
            ("tenant_id".to_owned(), s("t1")),
            ("form_id".to_owned(), s("f")),
            ("priority".to_owned(), s("high")),
            ("submitted_at".to_owned(), s("2026-05-01T00:00:00.000Z")),
            ("status".to_owned(), s("partially_fulfilled")),
            ("channels".to_owned(), AttributeValue::L(vec![s("email"), s("sms")])),
            (
                "form_data".to_owned(),
                AttributeValue::M(HashMap::from([("email".to_owned(), s("ana@example.org"))])),
            ),
            (
                "fulfillment".to_owned(),
                AttributeValue::M(HashMap::from([
                    (
                        "email".to_owned(),
                        AttributeValue::M(HashMap::from([
                            ("status".to_owned(), s("sent")),
                            ("attempts".to_owned(), AttributeValue::N("1".to_owned())),
                            ("team_done_at".to_owned(), s("2026-05-01T00:00:01.000Z")),
                        ])),
                    ),
                    (
                        "sms".to_owned(),
                        AttributeValue::M(HashMap::from([
                            ("status".to_owned(), s("skipped")),
                            ("reason".to_owned(), s("monthly_limit_reached")),
                            ("usage".to_owned(), AttributeValue::N("100".to_owned())),
                            ("limit".to_owned(), AttributeValue::N("100".to_owned())),
                        ])),
                    ),
                ])),
            ),
        ]);
        let printed = serde_json::to_value(from_item("f_1", &item)).unwrap();
        assert_eq!(
            printed,
            json!({
                "submission_id": "f_1", "tenant_id": "t1", "form_id": "f", "priority": "high",
                "submitted_at": "2026-05-01T00:00:00.000Z", "status": "partially_fulfilled",
                "channels": ["email", "sms"],
                "fulfillment": {
                    "email": {"attempts": 1, "status": "sent", "team_done_at": "2026-05-01T00:00:01.000Z"},
                    "sms": {"limit": 100, "reason": "monthly_limit_reached", "status": "skipped", "usage": 100},
                },
            })
        );
        assert!(!printed.to_string().contains("ana@example.org"));
    }
}
