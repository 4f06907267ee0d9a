//! DynamoDB: the submissions table (records, their outbox and their
//! fulfillment ledger), the abuse limits' counters and the funnel's counts.

mod counters;
mod funnel;
mod ledger;
mod submissions;

pub use counters::{DynamoCounters, dynamo_guard};
pub use funnel::{DynamoFunnel, Projected};
pub use ledger::read_item;
pub use submissions::{
    DISPLAY_ATTRIBUTE, DynamoSubmissionStore, EXPIRY_ATTRIBUTE, OUTBOX_INDEX, TENANT_SESSION_INDEX,
    TENANT_TIME_INDEX, UNFULFILLED_INDEX,
};
