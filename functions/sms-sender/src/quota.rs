//! The per-tenant monthly SMS quota: one counter item per tenant and month
//! (`tenant_id`, `month` "YYYY-MM", `count`), taken one unit at a time by a
//! conditional `UpdateItem`, so no number of concurrent senders can pass the limit.

use std::future::Future;

use aws_sdk_dynamodb::{error::SdkError, types::AttributeValue, types::ReturnValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// One unit is ours; `usage` counts it.
    Granted { usage: u32 },
    /// The month's limit is reached; nothing was taken.
    Exhausted { usage: u32 },
}

#[derive(Debug, thiserror::Error)]
#[error("SMS usage {operation} failed")]
pub struct QuotaError {
    operation: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

pub trait Quota: Send + Sync + 'static {
    fn take(
        &self,
        tenant_id: &str,
        month: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Taken, QuotaError>> + Send;
    /// Returns a unit whose message was not sent.
    fn give_back(&self, tenant_id: &str, month: &str) -> impl Future<Output = Result<(), QuotaError>> + Send;
}

pub struct DynamoQuota {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoQuota {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn key(tenant_id: &str, month: &str) -> [(String, AttributeValue); 2] {
        [
            ("tenant_id".to_owned(), AttributeValue::S(tenant_id.to_owned())),
            ("month".to_owned(), AttributeValue::S(month.to_owned())),
        ]
    }

    async fn usage(&self, tenant_id: &str, month: &str) -> Result<u32, QuotaError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(tenant_id, month).into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| QuotaError { operation: "GetItem", source: e.into() })?;
        Ok(item.item.as_ref().map_or(0, count))
    }
}

fn count(item: &std::collections::HashMap<String, AttributeValue>) -> u32 {
    match item.get("count") {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

impl Quota for DynamoQuota {
    async fn take(&self, tenant_id: &str, month: &str, limit: u32) -> Result<Taken, QuotaError> {
        if limit == 0 {
            // The condition below would grant the first unit of a month with no counter yet.
            return Ok(Taken::Exhausted { usage: self.usage(tenant_id, month).await? });
        }
        let taken = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(tenant_id, month).into()))
            .update_expression("ADD #count :one")
            .condition_expression("attribute_not_exists(#count) OR #count < :limit")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match taken {
            Ok(output) => Ok(Taken::Granted { usage: output.attributes.as_ref().map_or(1, count) }),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(Taken::Exhausted { usage: self.usage(tenant_id, month).await? })
            }
            Err(e) => Err(QuotaError { operation: "UpdateItem", source: e.into() }),
        }
    }

    async fn give_back(&self, tenant_id: &str, month: &str) -> Result<(), QuotaError> {
        let given = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(tenant_id, month).into()))
            .update_expression("ADD #count :minus_one")
            .condition_expression("#count > :zero")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":minus_one", AttributeValue::N("-1".into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await;
        match given {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(QuotaError { operation: "UpdateItem", source: e.into() }),
        }
    }
}
