//! The per-channel fulfillment record of a submission (`fulfillment.<channel>`):
//! queued → in_progress (with a lease) → sent | skipped | failed, changed only
//! by conditional updates, so a redelivered or replayed event never repeats a
//! side effect that already happened.

use std::{collections::BTreeMap, future::Future};

use aws_sdk_dynamodb::{
    error::SdkError,
    types::{AttributeValue, ReturnValue},
};

use crate::{
    events::FormSubmitted,
    submissions::{DynamoSubmissionStore, StoreError},
    telemetry::now_rfc3339,
};

/// A stored submission, as a consumer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubmission {
    pub submission_id: String,
    pub tenant_id: String,
    pub form_id: String,
    pub priority: String,
    pub submitted_at: String,
    pub form_data: BTreeMap<String, String>,
    pub channels: Vec<String>,
    /// Channel → its record's attributes (status, parts already done, ...).
    pub fulfillment: BTreeMap<String, BTreeMap<String, String>>,
}

impl StoredSubmission {
    /// Whether one part of a channel (e.g. the team email) was already done.
    pub fn part_done(&self, channel: &str, part: &str) -> bool {
        self.fulfillment.get(channel).is_some_and(|record| record.contains_key(&format!("{part}_done_at")))
    }

    /// The FormSubmitted event this submission is published as.
    pub fn event(&self) -> FormSubmitted {
        FormSubmitted {
            schema_version: 1,
            submission_id: self.submission_id.clone(),
            tenant_id: self.tenant_id.clone(),
            form_id: self.form_id.clone(),
            priority: self.priority.clone(),
            submitted_at: self.submitted_at.clone(),
            channels: self.channels.clone(),
        }
    }
}

/// The outcome of trying to take a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours until the lease ends: do the side effect. Carries the submission
    /// as the claim left it, so the consumer reads nothing more.
    Acquired(Box<StoredSubmission>),
    /// Already sent or skipped: acknowledge and do nothing.
    Done,
    /// Another delivery holds an unexpired lease: try again later.
    Busy,
    /// No such submission (deleted, or never stored): nothing to do.
    Missing,
}

/// How a channel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Skipped { reason: String, details: BTreeMap<String, String> },
    Failed { error: String },
}

impl Outcome {
    pub fn skipped(reason: &str) -> Self {
        Self::skipped_with(reason, BTreeMap::new())
    }

    pub fn skipped_with(reason: &str, details: BTreeMap<String, String>) -> Self {
        Self::Skipped { reason: reason.to_owned(), details }
    }
}

pub trait FulfillmentLedger: Send + Sync + 'static {
    fn claim(
        &self,
        submission_id: &str,
        channel: &str,
        now_ms: u128,
        lease_ms: u128,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;
    /// Records that one part of a claimed channel is done.
    fn part_done(
        &self,
        submission_id: &str,
        channel: &str,
        part: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Ends a claimed channel and, once every planned channel has ended, rolls
    /// the submission's status up to `fulfilled` or `partially_fulfilled`.
    fn finish(
        &self,
        submission_id: &str,
        channel: &str,
        outcome: &Outcome,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

fn error<E: std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError { operation, source: Box::new(e) }
}

fn text(value: &AttributeValue) -> Option<String> {
    match value {
        AttributeValue::S(s) => Some(s.clone()),
        AttributeValue::N(n) => Some(n.clone()),
        AttributeValue::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse(item: &std::collections::HashMap<String, AttributeValue>) -> StoredSubmission {
    let s = |key: &str| item.get(key).and_then(text).unwrap_or_default();
    let map = |value: Option<&AttributeValue>| -> BTreeMap<String, String> {
        match value {
            Some(AttributeValue::M(m)) => m.iter().filter_map(|(k, v)| Some((k.clone(), text(v)?))).collect(),
            _ => BTreeMap::new(),
        }
    };
    let fulfillment = match item.get("fulfillment") {
        Some(AttributeValue::M(channels)) => {
            channels.iter().map(|(c, record)| (c.clone(), map(Some(record)))).collect()
        }
        _ => BTreeMap::new(),
    };
    StoredSubmission {
        submission_id: s("submission_id"),
        tenant_id: s("tenant_id"),
        form_id: s("form_id"),
        priority: s("priority"),
        submitted_at: s("submitted_at"),
        form_data: map(item.get("form_data")),
        channels: match item.get("channels") {
            Some(AttributeValue::L(list)) => list.iter().filter_map(text).collect(),
            _ => Vec::new(),
        },
        fulfillment,
    }
}

const TERMINAL: [&str; 3] = ["sent", "skipped", "failed"];

impl DynamoSubmissionStore {
    /// A stored submission as consumers see it (`None` if there is none).
    pub async fn load(&self, submission_id: &str) -> Result<Option<StoredSubmission>, StoreError> {
        let output = self
            .client()
            .get_item()
            .table_name(self.table())
            .key("submission_id", AttributeValue::S(submission_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(error("GetItem"))?;
        Ok(output.item.as_ref().filter(|item| item.contains_key("form_id")).map(parse))
    }

    /// Sets the submission's status once every planned channel has ended,
    /// judged from the item as `finish` left it.
    async fn roll_up(&self, submission: &StoredSubmission) -> Result<(), StoreError> {
        let submission_id = submission.submission_id.as_str();
        let statuses: Vec<&str> = submission
            .channels
            .iter()
            .map(|c| {
                submission.fulfillment.get(c).and_then(|r| r.get("status")).map_or("queued", String::as_str)
            })
            .collect();
        if !statuses.iter().all(|s| TERMINAL.contains(s)) {
            return Ok(());
        }
        let status = if statuses.contains(&"failed") { "partially_fulfilled" } else { "fulfilled" };
        let updated = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("submission_id", AttributeValue::S(submission_id.to_owned()))
            .update_expression("SET #status = :status, fulfilled_at = :now")
            .condition_expression("#status <> :status")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", AttributeValue::S(status.to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(err) => Err(error("UpdateItem")(err)),
        }
    }
}

impl FulfillmentLedger for DynamoSubmissionStore {
    async fn claim(
        &self,
        submission_id: &str,
        channel: &str,
        now_ms: u128,
        lease_ms: u128,
    ) -> Result<Claim, StoreError> {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let n = |v: u128| AttributeValue::N(v.to_string());
        let claimed = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("submission_id", s(submission_id))
            .update_expression(
                "SET fulfillment.#c.#s = :in_progress, fulfillment.#c.lease_until = :until, fulfillment.#c.#at = :at \
                 ADD fulfillment.#c.attempts :one",
            )
            .condition_expression(
                "attribute_exists(fulfillment.#c) AND fulfillment.#c.#s <> :sent AND fulfillment.#c.#s <> :skipped \
                 AND (fulfillment.#c.#s <> :in_progress OR fulfillment.#c.lease_until < :now)",
            )
            .expression_attribute_names("#c", channel)
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":in_progress", s("in_progress"))
            .expression_attribute_values(":sent", s("sent"))
            .expression_attribute_values(":skipped", s("skipped"))
            .expression_attribute_values(":until", n(now_ms + lease_ms))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":at", s(&now_rfc3339()))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match claimed {
            Ok(output) => match output.attributes.as_ref() {
                Some(item) => Ok(Claim::Acquired(Box::new(parse(item)))),
                None => {
                    Err(StoreError { operation: "UpdateItem", source: "the claim returned no item".into() })
                }
            },
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let Some(submission) = self.load(submission_id).await? else { return Ok(Claim::Missing) };
                let status = submission.fulfillment.get(channel).and_then(|r| r.get("status")).cloned();
                Ok(match status.as_deref() {
                    Some("sent" | "skipped") => Claim::Done,
                    None => Claim::Missing,
                    Some(_) => Claim::Busy,
                })
            }
            Err(err) => Err(error("UpdateItem")(err)),
        }
    }

    async fn part_done(&self, submission_id: &str, channel: &str, part: &str) -> Result<(), StoreError> {
        self.client()
            .update_item()
            .table_name(self.table())
            .key("submission_id", AttributeValue::S(submission_id.to_owned()))
            .update_expression("SET fulfillment.#c.#p = :now")
            .expression_attribute_names("#c", channel)
            .expression_attribute_names("#p", format!("{part}_done_at"))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .send()
            .await
            .map_err(error("UpdateItem"))?;
        Ok(())
    }

    async fn finish(&self, submission_id: &str, channel: &str, outcome: &Outcome) -> Result<(), StoreError> {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let (status, detail) = match outcome {
            Outcome::Sent => ("sent", BTreeMap::new()),
            Outcome::Skipped { reason, details } => {
                let mut detail = details.clone();
                detail.insert("reason".into(), reason.clone());
                ("skipped", detail)
            }
            Outcome::Failed { error } => {
                ("failed", BTreeMap::from([("last_error".to_owned(), error.clone())]))
            }
        };
        let mut expression = String::from("SET fulfillment.#c.#s = :status, fulfillment.#c.#at = :at");
        let mut request = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("submission_id", s(submission_id))
            .expression_attribute_names("#c", channel)
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":status", s(status))
            .expression_attribute_values(":at", s(&now_rfc3339()));
        for (n, (key, value)) in detail.iter().enumerate() {
            expression.push_str(&format!(", fulfillment.#c.#d{n} = :d{n}"));
            request = request
                .expression_attribute_names(format!("#d{n}"), key)
                .expression_attribute_values(format!(":d{n}"), s(value));
        }
        expression.push_str(" REMOVE fulfillment.#c.lease_until");
        let finished = request
            .update_expression(expression)
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(error("UpdateItem"))?;
        match finished.attributes.as_ref() {
            Some(item) => self.roll_up(&parse(item)).await,
            None => Ok(()),
        }
    }
}
