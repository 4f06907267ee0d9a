//! The events we publish and the ports that publish them (EventBridge):
//! `FormSubmitted` (one per submission) and `WidgetAnalytics` (batches).

use std::future::Future;

use serde::{Deserialize, Serialize};

pub const SOURCE: &str = "picasso.forms";
pub const DETAIL_TYPE: &str = "FormSubmitted";
/// The `schema_version` of the FormSubmitted detail this code writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The fulfillment channels: names in `channels`, in `fulfillment.<channel>`
/// and of the consumers (`Channel::NAME`).
pub mod channel {
    pub const EMAIL: &str = "email";
    pub const SMS: &str = "sms";
    pub const HANDLER: &str = "handler";
}

/// The event's detail: a claim check. It carries no form data; consumers read
/// the submission from the table, so the archive holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormSubmitted {
    pub schema_version: u32,
    pub submission_id: String,
    pub tenant_id: String,
    pub form_id: String,
    #[serde(deserialize_with = "crate::forms::Priority::lenient")]
    pub priority: crate::forms::Priority,
    pub submitted_at: String,
    pub channels: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("FormSubmitted for {submission_id} could not be published")]
pub struct PublishError {
    pub submission_id: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// `events:PutEvents` on the bus.
pub trait EventPublisher: Send + Sync + 'static {
    fn publish(&self, event: &FormSubmitted) -> impl Future<Output = Result<(), PublishError>> + Send;
}

#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} WidgetAnalytics events could not be published")]
pub struct AnalyticsPublishError {
    pub failed: usize,
    pub total: usize,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// `events:PutEvents` of widget analytics details (JSON objects), in as many calls as needed.
pub trait AnalyticsPublisher: Send + Sync + 'static {
    fn publish_analytics(
        &self,
        details: &[String],
    ) -> impl Future<Output = Result<(), AnalyticsPublishError>> + Send;
}

/// PutEvents takes at most ten entries per call.
pub const MAX_ENTRIES_PER_PUT: usize = 10;
