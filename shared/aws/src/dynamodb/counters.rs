//! The abuse limits' counters in DynamoDB (`RATE_LIMITS_TABLE`).

use std::sync::Arc;

use aws_sdk_dynamodb::{error::SdkError, types::AttributeValue};
use domain::{
    limits::{BoxFuture, Counters, Guard, KEY_ATTRIBUTE, LimitError},
    report::LineSink,
};

/// The counters in a DynamoDB table keyed by `counter_id`.
pub struct DynamoCounters {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoCounters {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn error(
        operation: &'static str,
        key: &str,
    ) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> LimitError {
        let key = key.to_owned();
        move |source| LimitError { operation, key, source }
    }
}

fn count(item: Option<&std::collections::HashMap<String, AttributeValue>>) -> u64 {
    match item.and_then(|item| item.get("count")) {
        Some(AttributeValue::N(n)) => n.parse::<i64>().map_or(0, |n| u64::try_from(n).unwrap_or(0)),
        _ => 0,
    }
}

impl Counters for DynamoCounters {
    fn take<'a>(
        &'a self,
        key: &'a str,
        max: u64,
        expires_at: u64,
    ) -> BoxFuture<'a, Result<bool, LimitError>> {
        Box::pin(async move {
            let taken = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
                .update_expression("ADD #count :one SET expires_at = :expires_at")
                .condition_expression("attribute_not_exists(#count) OR #count < :limit")
                .expression_attribute_names("#count", "count")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":limit", AttributeValue::N(max.to_string()))
                .expression_attribute_values(":expires_at", AttributeValue::N(expires_at.to_string()))
                .send()
                .await;
            match taken {
                Ok(_) => Ok(true),
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                    Ok(false)
                }
                Err(e) => Err(Self::error("UpdateItem", key)(e.into())),
            }
        })
    }

    fn add<'a>(
        &'a self,
        key: &'a str,
        amount: i64,
        expires_at: u64,
    ) -> BoxFuture<'a, Result<(), LimitError>> {
        Box::pin(async move {
            self.client
                .update_item()
                .table_name(&self.table)
                .key(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
                .update_expression("ADD #count :amount SET expires_at = :expires_at")
                .expression_attribute_names("#count", "count")
                .expression_attribute_values(":amount", AttributeValue::N(amount.to_string()))
                .expression_attribute_values(":expires_at", AttributeValue::N(expires_at.to_string()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| Self::error("UpdateItem", key)(e.into()))
        })
    }

    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, LimitError>> {
        Box::pin(async move {
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .key(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| Self::error("GetItem", key)(e.into()))?;
            Ok(count(output.item.as_ref()))
        })
    }
}

/// A guard over the counters' table (`RATE_LIMITS_TABLE`).
pub fn dynamo_guard(sdk_config: &aws_types::SdkConfig, table: &str, metrics: LineSink) -> Guard {
    let counters = DynamoCounters::new(aws_sdk_dynamodb::Client::new(sdk_config), table);
    Guard::new(Arc::new(counters), metrics)
}
