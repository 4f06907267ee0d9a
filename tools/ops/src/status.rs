//! `status`: one submission's fulfillment, read consistently from the
//! submissions table with the consumers' own reader
//! (`aws_adapters::dynamodb::read_item`). The submitted form data (personal
//! data) is dropped before anything is printed.

use std::collections::{BTreeMap, HashMap};

use aws_adapters::dynamodb::read_item;
use aws_sdk_dynamodb::types::AttributeValue;
use domain::{forms::Priority, fulfillment::StoredSubmission};
use serde::Serialize;

use crate::{AwsError, call_failed};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub submission_id: String,
    pub tenant_id: String,
    pub form_id: String,
    pub priority: Priority,
    pub submitted_at: String,
    pub status: String,
    pub channels: Vec<String>,
    /// Channel → its record (status, attempts, at, last_error, reason, usage, limit, `*_done_at`).
    pub fulfillment: BTreeMap<String, BTreeMap<String, String>>,
}

impl From<StoredSubmission> for StatusReport {
    /// Everything but `form_data`.
    fn from(stored: StoredSubmission) -> Self {
        Self {
            submission_id: stored.submission_id,
            tenant_id: stored.tenant_id,
            form_id: stored.form_id,
            priority: stored.priority,
            submitted_at: stored.submitted_at,
            status: stored.status.map_or("none", |status| status.as_str()).to_owned(),
            channels: stored.channels,
            fulfillment: stored.fulfillment,
        }
    }
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
) -> Result<StatusReport, StatusError> {
    let output = dynamodb
        .get_item()
        .table_name(table)
        .key("submission_id", AttributeValue::S(submission_id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(call_failed("GetItem", table))?;
    from_item(output.item.as_ref()).ok_or_else(|| StatusError::NotFound(submission_id.to_owned()))
}

/// Idempotency records share the table but are not submissions: they have no form_id.
pub fn from_item(item: Option<&HashMap<String, AttributeValue>>) -> Option<StatusReport> {
    item.filter(|item| item.contains_key("form_id")).map(|item| read_item(item).into())
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
        let printed = serde_json::to_value(from_item(Some(&item)).unwrap()).unwrap();
        assert_eq!(
            printed,
            json!({
                "submission_id": "f_1", "tenant_id": "t1", "form_id": "f", "priority": "high",
                "submitted_at": "2026-05-01T00:00:00.000Z", "status": "partially_fulfilled",
                "channels": ["email", "sms"],
                "fulfillment": {
                    "email": {"attempts": "1", "status": "sent", "team_done_at": "2026-05-01T00:00:01.000Z"},
                    "sms": {"limit": "100", "reason": "monthly_limit_reached", "status": "skipped", "usage": "100"},
                },
            })
        );
        assert!(!printed.to_string().contains("ana@example.org"));
    }

    #[test]
    fn an_idempotency_record_is_not_a_submission() {
        let record =
            HashMap::from([("submission_id".to_owned(), s("idem#k")), ("kind".to_owned(), s("idempotency"))]);
        assert_eq!(from_item(Some(&record)), None);
        assert_eq!(from_item(None), None);
    }
}
