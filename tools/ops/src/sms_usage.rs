//! `sms-usage`: a tenant's SMS count for one month (key `tenant_id`, `month`);
//! a month with no item has sent nothing.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use crate::{AwsError, call_failed, time::Month};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsUsage {
    pub tenant_id: String,
    pub month: String,
    pub count: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SmsUsageError {
    #[error("the SMS count of {tenant_id} for {month} is not a whole number: {count:?}")]
    UnreadableCount { tenant_id: String, month: String, count: String },
    #[error(transparent)]
    Aws(#[from] AwsError),
}

pub async fn sms_usage(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant_id: &str,
    month: &Month,
) -> Result<SmsUsage, SmsUsageError> {
    let output = dynamodb
        .get_item()
        .table_name(table)
        .key("tenant_id", AttributeValue::S(tenant_id.to_owned()))
        .key("month", AttributeValue::S(month.as_str().to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(call_failed("GetItem", table))?;
    let unreadable = |count: String| SmsUsageError::UnreadableCount {
        tenant_id: tenant_id.to_owned(),
        month: month.to_string(),
        count,
    };
    let count = match output.item.as_ref().and_then(|item| item.get("count")) {
        None => 0,
        Some(AttributeValue::N(count)) => count.parse().map_err(|_| unreadable(count.clone()))?,
        Some(other) => return Err(unreadable(format!("{other:?}"))),
    };
    Ok(SmsUsage { tenant_id: tenant_id.to_owned(), month: month.to_string(), count })
}
