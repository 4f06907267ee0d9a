//! The per-channel fulfillment record of a submission (`fulfillment.<channel>`):
//! queued → in_progress (with a lease) → sent | skipped | failed, changed only
//! by conditional updates, so a redelivered or replayed event never repeats a
//! side effect that already happened.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::{
    error::SdkError,
    types::{AttributeValue, ReturnValue},
};

use domain::{
    events::FormSubmitted,
    forms::Priority,
    fulfillment::{
        ChannelStatus, Claim, FulfillmentLedger, Lease, LedgerError, Outcome, StoredSubmission,
        SubmissionStatus, matches_event,
    },
    submissions::StoreError,
    time::now_rfc3339,
};

use super::DynamoSubmissionStore;

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

/// The one reader of a submission item (what `DynamoSubmissionStore::create` writes).
pub fn read_item(item: &std::collections::HashMap<String, AttributeValue>) -> StoredSubmission {
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
        // Written by us, so always valid; an unreadable value is the default rather than a lost submission.
        priority: Priority::parse(&s("priority")).unwrap_or_default(),
        submitted_at: s("submitted_at"),
        status: item.get("status").and_then(|v| v.as_s().ok()).and_then(|s| SubmissionStatus::parse(s)),
        form_data: map(item.get("form_data")),
        contact: domain::forms::Contact::from_map(&map(item.get("contact"))),
        channels: match item.get("channels") {
            Some(AttributeValue::L(list)) => list.iter().filter_map(text).collect(),
            _ => Vec::new(),
        },
        fulfillment,
        staff: domain::submissions::StaffView {
            session_id: item.get("session_id").and_then(text),
            conversation_id: item.get("conversation_id").and_then(text),
            form_title: s("form_title"),
            display: match item.get(super::DISPLAY_ATTRIBUTE) {
                Some(AttributeValue::L(rows)) => rows
                    .iter()
                    .filter_map(|row| {
                        let row = row.as_m().ok()?;
                        Some((
                            row.get("label").and_then(text)?,
                            row.get("value").and_then(text).unwrap_or_default(),
                        ))
                    })
                    .collect(),
                _ => Vec::new(),
            },
            expires_at: item
                .get(super::EXPIRY_ATTRIBUTE)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or_default(),
        },
        pipeline_status: item.get("pipeline_status").and_then(text),
    }
}

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
        Ok(output.item.as_ref().filter(|item| item.contains_key("form_id")).map(read_item))
    }

    /// Sets the submission's status once every planned channel has ended,
    /// judged from the item as `finish` (or a redelivery's claim) read it;
    /// writes nothing when the status already says so.
    async fn roll_up(&self, submission: &StoredSubmission) -> Result<(), StoreError> {
        let submission_id = submission.submission_id.as_str();
        let statuses: Vec<ChannelStatus> = submission
            .channels
            .iter()
            .map(|c| submission.channel_status(c).unwrap_or(ChannelStatus::Queued))
            .collect();
        if !statuses.iter().all(|s| s.has_ended()) {
            return Ok(());
        }
        let incomplete = statuses.iter().any(|s| matches!(s, ChannelStatus::Failed | ChannelStatus::Unknown));
        let status =
            if incomplete { SubmissionStatus::PartiallyFulfilled } else { SubmissionStatus::Fulfilled };
        if submission.status == Some(status) {
            return Ok(());
        }
        // Only forward: pending → either, partially → fulfilled (a replay
        // delivered what had failed); never back from fulfilled.
        let condition = if status == SubmissionStatus::Fulfilled {
            "attribute_not_exists(#status) OR #status IN (:pending, :partial)"
        } else {
            "attribute_not_exists(#status) OR #status = :pending"
        };
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let updated = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("submission_id", s(submission_id))
            .update_expression("SET #status = :status, fulfilled_at = :now REMOVE unfulfilled")
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(
                [
                    (":status".to_owned(), s(status.as_str())),
                    (":pending".to_owned(), s(SubmissionStatus::PendingFulfillment.as_str())),
                    (":now".to_owned(), s(&now_rfc3339())),
                ]
                .into_iter()
                .chain(
                    (status == SubmissionStatus::Fulfilled)
                        .then(|| (":partial".to_owned(), s(SubmissionStatus::PartiallyFulfilled.as_str()))),
                )
                .collect(),
            ))
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
        event: &FormSubmitted,
        channel: &str,
        now_ms: u128,
        lease_ms: u128,
    ) -> Result<Claim, StoreError> {
        let submission_id = event.submission_id.as_str();
        let lease = Lease::new(submission_id, channel);
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let n = |v: u128| AttributeValue::N(v.to_string());
        let claimed = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("submission_id", s(submission_id))
            .update_expression(
                "SET fulfillment.#c.#s = :in_progress, fulfillment.#c.lease_until = :until, \
                 fulfillment.#c.lease = :token, fulfillment.#c.#at = :at ADD fulfillment.#c.attempts :one",
            )
            .condition_expression(
                "tenant_id = :tenant AND form_id = :form AND attribute_exists(fulfillment.#c) \
                 AND fulfillment.#c.#s <> :sent AND fulfillment.#c.#s <> :skipped AND fulfillment.#c.#s <> :unknown \
                 AND (fulfillment.#c.#s <> :in_progress OR fulfillment.#c.lease_until < :now)",
            )
            .expression_attribute_names("#c", channel)
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":tenant", s(&event.tenant_id))
            .expression_attribute_values(":form", s(&event.form_id))
            .expression_attribute_values(":in_progress", s(ChannelStatus::InProgress.as_str()))
            .expression_attribute_values(":sent", s(ChannelStatus::Sent.as_str()))
            .expression_attribute_values(":skipped", s(ChannelStatus::Skipped.as_str()))
            .expression_attribute_values(":unknown", s(ChannelStatus::Unknown.as_str()))
            .expression_attribute_values(":until", n(now_ms + lease_ms))
            .expression_attribute_values(":token", s(&lease.token))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":at", s(&now_rfc3339()))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match claimed {
            Ok(output) => match output.attributes.as_ref() {
                Some(item) => Ok(Claim::Acquired(Box::new(read_item(item)), lease)),
                None => {
                    Err(StoreError { operation: "UpdateItem", source: "the claim returned no item".into() })
                }
            },
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let Some(submission) = self.load(submission_id).await? else { return Ok(Claim::Missing) };
                if !matches_event(&submission, event) {
                    return Ok(Claim::Mismatch);
                }
                Ok(match submission.channel_status(channel) {
                    Some(status) if status.is_done() => {
                        // The delivery that finished the channel may have lost its
                        // roll-up (a timeout after the write): a redelivery completes it.
                        self.roll_up(&submission).await?;
                        Claim::Done
                    }
                    None => Claim::Missing,
                    // The SDK retried a claim whose first attempt was applied
                    // but timed out: the lease on the item is this one.
                    Some(ChannelStatus::InProgress) if submission.holds_lease(&lease) => {
                        Claim::Acquired(Box::new(submission), lease)
                    }
                    Some(_) => Claim::Busy,
                })
            }
            Err(err) => Err(error("UpdateItem")(err)),
        }
    }

    async fn part_done(&self, lease: &Lease, part: &str) -> Result<(), LedgerError> {
        let written = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("submission_id", AttributeValue::S(lease.submission_id.clone()))
            .update_expression("SET fulfillment.#c.#p = :now")
            .condition_expression("fulfillment.#c.lease = :token")
            .expression_attribute_names("#c", &lease.channel)
            .expression_attribute_names("#p", format!("{part}_done_at"))
            .expression_attribute_values(":now", AttributeValue::S(now_rfc3339()))
            .expression_attribute_values(":token", AttributeValue::S(lease.token.clone()))
            .send()
            .await;
        fenced(lease, written.map(|_| ()))
    }

    async fn finish(&self, lease: &Lease, outcome: &Outcome) -> Result<(), LedgerError> {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let (status, detail) = match outcome {
            Outcome::Sent => (ChannelStatus::Sent, BTreeMap::new()),
            Outcome::SentWithout { part, reason } => (
                ChannelStatus::Sent,
                BTreeMap::from([
                    (part.clone(), ChannelStatus::Skipped.as_str().to_owned()),
                    (format!("{part}_reason"), reason.clone()),
                ]),
            ),
            Outcome::Skipped { reason, details } => {
                let mut detail = details.clone();
                detail.insert("reason".into(), reason.clone());
                (ChannelStatus::Skipped, detail)
            }
            Outcome::Failed { error } => {
                (ChannelStatus::Failed, BTreeMap::from([("last_error".to_owned(), error.clone())]))
            }
            Outcome::Unknown { parts, error } => (
                ChannelStatus::Unknown,
                BTreeMap::from([
                    ("unknown_parts".to_owned(), parts.join(",")),
                    ("last_error".to_owned(), error.clone()),
                ]),
            ),
        };
        let mut expression = String::from("SET fulfillment.#c.#s = :status, fulfillment.#c.#at = :at");
        let mut request = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("submission_id", s(&lease.submission_id))
            .condition_expression("fulfillment.#c.lease = :token")
            .expression_attribute_names("#c", &lease.channel)
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":token", s(&lease.token))
            .expression_attribute_values(":at", s(&now_rfc3339()));
        for (n, (key, value)) in detail.iter().enumerate() {
            expression.push_str(&format!(", fulfillment.#c.#d{n} = :d{n}"));
            request = request
                .expression_attribute_names(format!("#d{n}"), key)
                .expression_attribute_values(format!(":d{n}"), s(value));
        }
        expression.push_str(" REMOVE fulfillment.#c.lease_until, fulfillment.#c.lease");
        if !matches!(outcome, Outcome::Failed { .. } | Outcome::Unknown { .. }) {
            // A success after failed attempts leaves no stale error behind.
            expression.push_str(", fulfillment.#c.last_error");
        }
        let finished = request.update_expression(expression).return_values(ReturnValue::AllNew).send().await;
        let submission = match fenced(lease, finished.map(|output| output.attributes)) {
            Ok(item) => item.as_ref().map(read_item),
            Err(LedgerError::LeaseLost { .. }) => {
                // Refused: either the SDK retried a write whose first attempt was
                // applied but timed out (the record shows this outcome, without a
                // lease), or another delivery holds the channel now. Either way
                // the roll-up is judged from what is stored.
                let Some(submission) = self.load(&lease.submission_id).await? else { return Ok(()) };
                let landed = submission.channel_status(&lease.channel) == Some(status)
                    && !submission.fulfillment.get(&lease.channel).is_some_and(|r| r.contains_key("lease"));
                self.roll_up(&submission).await?;
                return if landed { Ok(()) } else { Err(lease_lost(lease)) };
            }
            Err(err) => return Err(err),
        };
        match submission {
            Some(submission) => Ok(self.roll_up(&submission).await?),
            None => Ok(()),
        }
    }
}

/// A write conditional on the lease: a failed condition means another delivery holds it now.
fn fenced<T, E>(
    lease: &Lease,
    written: Result<T, SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> Result<T, LedgerError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match written {
        Ok(value) => Ok(value),
        Err(SdkError::ServiceError(e)) if e.err().code() == Some("ConditionalCheckFailedException") => {
            Err(lease_lost(lease))
        }
        Err(err) => Err(LedgerError::Store(error("UpdateItem")(err))),
    }
}

fn lease_lost(lease: &Lease) -> LedgerError {
    LedgerError::LeaseLost { submission_id: lease.submission_id.clone(), channel: lease.channel.clone() }
}
