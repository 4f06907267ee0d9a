//! Form submissions in DynamoDB: the record, its creation (idempotent on the
//! client's submission id) and the outbox of events not yet published.

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    error::SdkError,
    operation::transact_write_items::TransactWriteItemsError,
    types::{AttributeValue, Put, TransactWriteItem},
};

use domain::{
    events::FormSubmitted,
    fulfillment::SubmissionStatus,
    submissions::{
        Created, NewSubmission, PIPELINE_NEW, StaffView, StoreError, SubmissionStore, content_fingerprint,
    },
};

/// A tenant's submissions by `submitted_at` (every submission; not the idempotency records).
pub const TENANT_TIME_INDEX: &str = "tenant-time-index";
/// A tenant's submissions by `session_id` (sparse: only those sent with a session).
pub const TENANT_SESSION_INDEX: &str = "tenant-session-index";
/// The labelled values, a list of `{label, value}` in form order.
pub const DISPLAY_ATTRIBUTE: &str = "form_data_display";
/// The table's TTL attribute (epoch seconds): submissions and idempotency records alike.
pub const EXPIRY_ATTRIBUTE: &str = "expires_at";
/// Sparse index of submissions whose event is not yet published.
pub const OUTBOX_INDEX: &str = "outbox-index";
/// Sparse index of submissions not yet rolled up to `fulfilled`/`partially_fulfilled`.
pub const UNFULFILLED_INDEX: &str = "unfulfilled-index";
const UNFULFILLED: &str = "pending";
const OUTBOX_PENDING: &str = "pending";
/// Idempotency records expire after 30 days (the table's TTL attribute).
const IDEMPOTENCY_TTL_SECS: u64 = 30 * 24 * 3600;
/// Tries of a transaction that lost a race with a concurrent one on the same key.
const TRANSACTION_TRIES: u32 = 4;

fn store_error<E: std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError { operation, source: Box::new(e) }
}

#[derive(Clone)]
pub struct DynamoSubmissionStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoSubmissionStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// A store with a client of its own on `sdk_config`.
    pub fn from_config(sdk_config: &aws_types::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(aws_sdk_dynamodb::Client::new(sdk_config), table)
    }

    pub(crate) fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    fn item(submission: &NewSubmission) -> HashMap<String, AttributeValue> {
        let event = &submission.event;
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let form_data = submission
            .form_data
            .iter()
            .map(|(k, v)| (k.clone(), s(&domain::forms::value_text(v))))
            .collect::<HashMap<_, _>>();
        let fulfillment = event
            .channels
            .iter()
            .map(|c| {
                let queued = s(domain::fulfillment::ChannelStatus::Queued.as_str());
                (c.clone(), AttributeValue::M(HashMap::from([("status".to_owned(), queued)])))
            })
            .collect::<HashMap<_, _>>();
        let mut item = HashMap::from([
            ("submission_id".to_owned(), s(&event.submission_id)),
            ("tenant_id".to_owned(), s(&event.tenant_id)),
            ("form_id".to_owned(), s(&event.form_id)),
            ("priority".to_owned(), s(event.priority.as_str())),
            ("submitted_at".to_owned(), s(&event.submitted_at)),
            ("status".to_owned(), s(SubmissionStatus::PendingFulfillment.as_str())),
            ("channels".to_owned(), AttributeValue::L(event.channels.iter().map(|c| s(c)).collect())),
            ("form_data".to_owned(), AttributeValue::M(form_data)),
            ("fulfillment".to_owned(), AttributeValue::M(fulfillment)),
            ("schema_version".to_owned(), AttributeValue::N(event.schema_version.to_string())),
            ("outbox".to_owned(), s(OUTBOX_PENDING)),
            ("unfulfilled".to_owned(), s(UNFULFILLED)),
        ]);
        if let Some(limit) = &submission.held {
            item.insert("status".to_owned(), s(SubmissionStatus::Held.as_str()));
            item.insert("held_reason".to_owned(), s(limit));
            item.remove("outbox");
            item.remove("unfulfilled");
        }
        let contact = submission.contact.to_map();
        if !contact.is_empty() {
            let contact = contact.into_iter().map(|(k, v)| (k, AttributeValue::S(v))).collect();
            item.insert("contact".to_owned(), AttributeValue::M(contact));
        }
        if let Some(client_id) = &submission.client_submission_id {
            item.insert("client_submission_id".to_owned(), s(client_id));
        }
        Self::add_staff_view(&mut item, &submission.staff);
        item
    }

    /// What staff work with; a submission parked before these were kept
    /// (an empty view) is stored as it was, without them.
    fn add_staff_view(item: &mut HashMap<String, AttributeValue>, staff: &StaffView) {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        if let Some(session_id) = &staff.session_id {
            item.insert("session_id".to_owned(), s(session_id));
        }
        if let Some(conversation_id) = &staff.conversation_id {
            item.insert("conversation_id".to_owned(), s(conversation_id));
        }
        if !staff.form_title.is_empty() {
            item.insert("form_title".to_owned(), s(&staff.form_title));
        }
        if !staff.display.is_empty() {
            let rows = staff
                .display
                .iter()
                .map(|(label, value)| {
                    AttributeValue::M(HashMap::from([
                        ("label".to_owned(), s(label)),
                        ("value".to_owned(), s(value)),
                    ]))
                })
                .collect();
            item.insert(DISPLAY_ATTRIBUTE.to_owned(), AttributeValue::L(rows));
        }
        if staff.expires_at > 0 {
            item.insert(EXPIRY_ATTRIBUTE.to_owned(), AttributeValue::N(staff.expires_at.to_string()));
            item.insert("pipeline_status".to_owned(), s(PIPELINE_NEW));
        }
    }

    fn idempotency_key(tenant_id: &str, client_submission_id: &str) -> String {
        format!("client#{tenant_id}#{client_submission_id}")
    }

    /// The first submit's response and fingerprint under an idempotency key.
    async fn first_response(&self, key: &str) -> Result<Option<(String, Option<String>)>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("submission_id", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error("GetItem"))?
            .item;
        Ok(item.and_then(|mut item| {
            let fingerprint = match item.remove("fingerprint") {
                Some(AttributeValue::S(fingerprint)) => Some(fingerprint),
                _ => None,
            };
            match item.remove("response") {
                Some(AttributeValue::S(response)) => Some((response, fingerprint)),
                _ => None,
            }
        }))
    }
}

impl SubmissionStore for DynamoSubmissionStore {
    async fn create(&self, submission: &NewSubmission, response: &str) -> Result<Created, StoreError> {
        let put = |item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(submission_id)")
                .build()
                .map_err(store_error("build Put"))
        };
        let Some(client_id) = &submission.client_submission_id else {
            let written = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(Self::item(submission)))
                .condition_expression("attribute_not_exists(submission_id)")
                .send()
                .await;
            return match written {
                Ok(_) => Ok(Created::New),
                // The id is this submit's own (time and a random part), so the
                // item exists only because an earlier try of this same write
                // landed: an SDK retry after a lost answer, or a parked copy
                // of a write that did land. It is this submission, stored.
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                    Ok(Created::New)
                }
                Err(err) => Err(store_error("PutItem")(err)),
            };
        };
        let key = Self::idempotency_key(&submission.event.tenant_id, client_id);
        let fingerprint = content_fingerprint(submission);
        let now_secs = domain::time::now_epoch_millis() / 1000;
        let expires = now_secs + u128::from(IDEMPOTENCY_TTL_SECS);
        // DynamoDB's TTL deletes within days, not at once: an expired record
        // still in the table is free for reuse, as Powertools' idempotency does.
        let record_put = |item| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(submission_id) OR expires_at < :now")
                .expression_attribute_values(":now", AttributeValue::N(now_secs.to_string()))
                .build()
                .map_err(store_error("build Put"))
        };
        let record = HashMap::from([
            ("submission_id".to_owned(), AttributeValue::S(key.clone())),
            ("kind".to_owned(), AttributeValue::S("idempotency".to_owned())),
            ("response".to_owned(), AttributeValue::S(response.to_owned())),
            ("fingerprint".to_owned(), AttributeValue::S(fingerprint.clone())),
            ("expires_at".to_owned(), AttributeValue::N(expires.to_string())),
        ]);
        let mut tries = 0;
        loop {
            tries += 1;
            let written = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(record_put(record.clone())?).build())
                .transact_items(TransactWriteItem::builder().put(put(Self::item(submission))?).build())
                .send()
                .await;
            let cancelled = match written {
                Ok(_) => return Ok(Created::New),
                Err(SdkError::ServiceError(service)) if service.err().is_transaction_canceled_exception() => {
                    service.into_err()
                }
                Err(err) => return Err(store_error("TransactWriteItems")(err)),
            };
            let conflict = match &cancelled {
                TransactWriteItemsError::TransactionCanceledException(e) => {
                    e.cancellation_reasons().iter().any(|r| r.code() == Some("TransactionConflict"))
                }
                _ => false,
            };
            if conflict && tries < TRANSACTION_TRIES {
                // Another submit with the same key is mid-transaction: wait for it to land.
                let backoff = 25u64 << tries;
                tokio::time::sleep(std::time::Duration::from_millis(backoff + fastrand::u64(0..backoff)))
                    .await;
                continue;
            }
            return match self.first_response(&key).await? {
                Some((_, Some(first))) if first != fingerprint => Ok(Created::KeyReused),
                Some((response, _)) => Ok(Created::Duplicate(response)),
                None => Err(StoreError { operation: "TransactWriteItems", source: Box::new(cancelled) }),
            };
        }
    }

    async fn mark_published(&self, submission_id: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("submission_id", AttributeValue::S(submission_id.to_owned()))
            .update_expression("REMOVE outbox, outbox_claim_until SET published_at = :now")
            .condition_expression("attribute_exists(submission_id)")
            .expression_attribute_values(":now", AttributeValue::S(domain::time::now_rfc3339()))
            .send()
            .await
            .map_err(store_error("UpdateItem"))?;
        Ok(())
    }

    async fn oldest_unfulfilled(&self, before: &str) -> Result<Option<String>, StoreError> {
        let oldest = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(UNFULFILLED_INDEX)
            .key_condition_expression("unfulfilled = :pending AND submitted_at < :before")
            .expression_attribute_values(":pending", AttributeValue::S(UNFULFILLED.to_owned()))
            .expression_attribute_values(":before", AttributeValue::S(before.to_owned()))
            .scan_index_forward(true)
            .limit(1)
            .send()
            .await
            .map_err(store_error("Query"))?;
        Ok(oldest.items().first().and_then(|item| item.get("submitted_at")?.as_s().ok().cloned()))
    }

    async fn unpublished(&self, before: &str) -> Result<Vec<FormSubmitted>, StoreError> {
        let mut events = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OUTBOX_INDEX)
            .key_condition_expression("outbox = :pending AND submitted_at < :before")
            .expression_attribute_values(":pending", AttributeValue::S(OUTBOX_PENDING.to_owned()))
            .expression_attribute_values(":before", AttributeValue::S(before.to_owned()))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(store_error("Query"))?;
            events.push(super::read_item(&item).event());
        }
        Ok(events)
    }

    async fn claim(&self, submission_id: &str, now_ms: u128, until_ms: u128) -> Result<bool, StoreError> {
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("submission_id", AttributeValue::S(submission_id.to_owned()))
            .update_expression("SET outbox_claim_until = :until")
            .condition_expression(
                "attribute_exists(outbox) AND (attribute_not_exists(outbox_claim_until) OR outbox_claim_until < :now)",
            )
            .expression_attribute_values(":until", AttributeValue::N(until_ms.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
            Err(err) => Err(store_error("UpdateItem")(err)),
        }
    }
}

/// A session's submissions read from the index: at most this many (a widget
/// session sends a handful at most).
const SESSION_QUERY_LIMIT: i32 = 25;

impl DynamoSubmissionStore {
    /// The latest submission of `session_id` of `tenant_id`: the session index
    /// names the candidates (it keeps only ids and times), the table gives the
    /// latest, checked again to be that tenant's and that session's. An erased
    /// submission is not remembered.
    pub async fn latest_in_session(
        &self,
        tenant_id: &str,
        session_id: &str,
    ) -> Result<Option<domain::fulfillment::StoredSubmission>, StoreError> {
        let output = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(super::TENANT_SESSION_INDEX)
            .key_condition_expression("tenant_id = :t AND session_id = :s")
            .expression_attribute_values(":t", AttributeValue::S(tenant_id.to_owned()))
            .expression_attribute_values(":s", AttributeValue::S(session_id.to_owned()))
            .limit(SESSION_QUERY_LIMIT)
            .send()
            .await
            .map_err(store_error("Query"))?;
        let text = |item: &HashMap<String, AttributeValue>, key: &str| item.get(key)?.as_s().ok().cloned();
        let latest = output
            .items()
            .iter()
            .filter_map(|item| Some((text(item, "submitted_at")?, text(item, "submission_id")?)))
            .max();
        let Some((_, submission_id)) = latest else { return Ok(None) };
        let stored = self.load(&submission_id).await?;
        Ok(stored.filter(|s| {
            s.tenant_id == tenant_id
                && s.staff.session_id.as_deref() == Some(session_id)
                && s.status != Some(SubmissionStatus::Erased)
        }))
    }
}

impl domain::submissions::SessionForms for DynamoSubmissionStore {
    fn latest<'a>(
        &'a self,
        tenant_id: &'a str,
        session_id: &'a str,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<Option<domain::submissions::RememberedForm>, StoreError>>
                + Send
                + 'a,
        >,
    > {
        Box::pin(async move {
            Ok(self.latest_in_session(tenant_id, session_id).await?.map(|s| {
                domain::submissions::RememberedForm {
                    form_title: if s.staff.form_title.is_empty() {
                        s.form_id.clone()
                    } else {
                        s.staff.form_title.clone()
                    },
                    fields: s.staff.display.clone(),
                    submitted_at: s.submitted_at.clone(),
                }
            }))
        })
    }
}
