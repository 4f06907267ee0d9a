//! The funnel's counts in DynamoDB (`FUNNEL_TABLE`, key `tenant_id` + `key`):
//! `day#<day>` and `session#<day>#<session_id>` items of counters, and a
//! `seen#<event>` marker per counted event, written in one transaction with
//! the counters so an event is counted exactly once, whatever replays or
//! redeliveries bring.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::{
    error::SdkError,
    types::{AttributeValue, Put, TransactWriteItem, Update},
};
use domain::{
    funnel::{FunnelDay, Increment, KEEP_DAYS, first_token_bucket, p50_ms},
    submissions::StoreError,
};

fn store_error<E: std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError { operation, source: Box::new(e) }
}

/// What projecting one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projected {
    Counted,
    /// Its marker was there: a replay or a redelivery, counted before.
    AlreadyCounted,
}

#[derive(Clone)]
pub struct DynamoFunnel {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// Tries of a transaction that lost a race with another on the same day item.
const TRANSACTION_TRIES: u32 = 5;

impl DynamoFunnel {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Adds one event's counts to its day and its session, once.
    pub async fn project(&self, increment: &Increment) -> Result<Projected, StoreError> {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let n = |v: u64| AttributeValue::N(v.to_string());
        let key = |k: String| {
            HashMap::from([("tenant_id".to_owned(), s(&increment.tenant_id)), ("key".to_owned(), s(&k))])
        };
        let expires = domain::limits::now_seconds() + KEEP_DAYS * 24 * 3600;
        let marker = Put::builder()
            .table_name(&self.table)
            .set_item(Some({
                let mut item = key(format!("seen#{}", increment.dedupe_key));
                item.insert("expires_at".to_owned(), n(expires));
                item
            }))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", "key")
            .build()
            .map_err(store_error("build Put"))?;
        let counters =
            "ADD messages :messages, cta_clicks :clicks, forms_started :started, forms_completed :completed";
        let values = [
            (":messages", n(increment.messages)),
            (":clicks", n(increment.cta_clicks)),
            (":started", n(increment.forms_started)),
            (":completed", n(increment.forms_completed)),
            (":expires", n(expires)),
        ];
        let mut day_expression = format!("{counters} SET expires_at = :expires");
        let mut day =
            Update::builder().table_name(&self.table).set_key(Some(key(format!("day#{}", increment.day))));
        if let Some(ms) = increment.first_token_ms {
            day_expression = format!("{counters}, #bucket :one SET expires_at = :expires");
            day = day
                .expression_attribute_names("#bucket", format!("ft_{}", first_token_bucket(ms)))
                .expression_attribute_values(":one", n(1));
        }
        for (name, value) in &values {
            day = day.expression_attribute_values(*name, value.clone());
        }
        let day = day.update_expression(day_expression).build().map_err(store_error("build Update"))?;
        let mut items = vec![
            TransactWriteItem::builder().put(marker).build(),
            TransactWriteItem::builder().update(day).build(),
        ];
        if let Some(session_id) = &increment.session_id {
            let mut session = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(format!("session#{}#{session_id}", increment.day))))
                .update_expression(format!(
                    "{counters} SET expires_at = :expires, first_seen = if_not_exists(first_seen, :at), \
                     session_id = :session, #day = :day"
                ))
                .expression_attribute_names("#day", "day")
                .expression_attribute_values(":at", s(&increment.at))
                .expression_attribute_values(":session", s(session_id))
                .expression_attribute_values(":day", s(&increment.day));
            for (name, value) in &values {
                session = session.expression_attribute_values(*name, value.clone());
            }
            let session = session.build().map_err(store_error("build Update"))?;
            items.push(TransactWriteItem::builder().update(session).build());
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let written =
                self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let cancelled = match written {
                Ok(_) => return Ok(Projected::Counted),
                Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => e.into_err(),
                Err(err) => return Err(store_error("TransactWriteItems")(err)),
            };
            let reasons: Vec<Option<String>> = match &cancelled {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(e) => {
                    e.cancellation_reasons().iter().map(|r| r.code().map(str::to_owned)).collect()
                }
                _ => Vec::new(),
            };
            if reasons.first().and_then(Option::as_deref) == Some("ConditionalCheckFailed") {
                return Ok(Projected::AlreadyCounted);
            }
            let conflict = reasons.iter().any(|r| r.as_deref() == Some("TransactionConflict"));
            if conflict && tries < TRANSACTION_TRIES {
                // Another event of the same day is mid-transaction.
                let backoff = 20u64 << tries;
                tokio::time::sleep(std::time::Duration::from_millis(backoff + fastrand::u64(0..backoff)))
                    .await;
                continue;
            }
            return Err(StoreError { operation: "TransactWriteItems", source: Box::new(cancelled) });
        }
    }

    /// The tenant's days from `from` to `to` (`YYYY-MM-DD`, inclusive), each
    /// with its conversations (sessions with an answer that day); a day with
    /// nothing counted is all zeros.
    pub async fn days(&self, tenant_id: &str, from: &str, to: &str) -> Result<Vec<FunnelDay>, StoreError> {
        let mut days: BTreeMap<String, FunnelDay> = BTreeMap::new();
        for item in self.range(tenant_id, &format!("day#{from}"), &format!("day#{to}")).await? {
            let Some(day) = text(&item, "key").and_then(|k| k.strip_prefix("day#").map(str::to_owned)) else {
                continue;
            };
            let entry = days.entry(day.clone()).or_insert_with(|| FunnelDay { day, ..FunnelDay::default() });
            entry.messages = number(&item, "messages");
            entry.cta_clicks = number(&item, "cta_clicks");
            entry.forms_started = number(&item, "forms_started");
            entry.forms_completed = number(&item, "forms_completed");
            entry.first_token_histogram = item
                .iter()
                .filter_map(|(name, value)| {
                    let bucket = name.strip_prefix("ft_")?.parse().ok()?;
                    Some((bucket, value.as_n().ok()?.parse().ok()?))
                })
                .collect();
            entry.first_token_p50_ms = p50_ms(&entry.first_token_histogram);
        }
        // `~` sorts after every session id character: the whole of the last day.
        for item in self.range(tenant_id, &format!("session#{from}"), &format!("session#{to}~")).await? {
            let Some(day) = text(&item, "day") else { continue };
            if number(&item, "messages") > 0 {
                let entry =
                    days.entry(day.clone()).or_insert_with(|| FunnelDay { day, ..FunnelDay::default() });
                entry.conversations += 1;
            }
        }
        Ok(days.into_values().collect())
    }

    async fn range(
        &self,
        tenant_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("tenant_id = :tenant AND #k BETWEEN :from AND :to")
            .expression_attribute_names("#k", "key")
            .expression_attribute_values(":tenant", AttributeValue::S(tenant_id.to_owned()))
            .expression_attribute_values(":from", AttributeValue::S(from.to_owned()))
            .expression_attribute_values(":to", AttributeValue::S(to.to_owned()))
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(store_error("Query"))?);
        }
        Ok(items)
    }
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0)
}
