//! The `FormSubmitted` event and the port that publishes it (EventBridge).

use std::{future::Future, time::Duration};

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::{Deserialize, Serialize};

pub const SOURCE: &str = "picasso.forms";
pub const DETAIL_TYPE: &str = "FormSubmitted";

/// The event's detail: a claim check. It carries no form data; consumers read
/// the submission from the table, so the archive holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormSubmitted {
    pub schema_version: u32,
    pub submission_id: String,
    pub tenant_id: String,
    pub form_id: String,
    pub priority: String,
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

#[derive(Clone)]
pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

const ATTEMPTS: u32 = 3;

impl EventBridgePublisher {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into() }
    }

    async fn put_once(&self, event: &FormSubmitted) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(DETAIL_TYPE)
            .detail(serde_json::to_string(event)?)
            .build();
        let output = self.client.put_events().entries(entry).send().await?;
        if output.failed_entry_count() > 0 {
            let reason = output.entries().iter().find_map(|e| e.error_message()).unwrap_or("entry rejected");
            return Err(reason.into());
        }
        Ok(())
    }
}

impl EventPublisher for EventBridgePublisher {
    /// Up to three attempts with backoff (on top of the SDK's own retries of
    /// throttling), since a rejected entry is not retried by the SDK.
    async fn publish(&self, event: &FormSubmitted) -> Result<(), PublishError> {
        let mut attempt = 0;
        loop {
            match self.put_once(event).await {
                Ok(()) => return Ok(()),
                Err(err) if attempt + 1 < ATTEMPTS => {
                    tracing::warn!(submission_id = event.submission_id, attempt, error = %crate::telemetry::error_chain(err.as_ref()), "publish failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt))).await;
                    attempt += 1;
                }
                Err(source) => {
                    return Err(PublishError { submission_id: event.submission_id.clone(), source });
                }
            }
        }
    }
}
