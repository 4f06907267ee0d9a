//! The EventBridge adapter of both event ports: FormSubmitted and widget analytics.

use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use domain::events::{
    AnalyticsPublishError, AnalyticsPublisher, DETAIL_TYPE, EventPublisher, FormSubmitted,
    MAX_ENTRIES_PER_PUT, PublishError, SOURCE,
};

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

    /// The publisher to a bus (`EVENT_BUS_NAME`).
    pub fn for_bus(sdk_config: &aws_types::SdkConfig, bus: &str) -> Self {
        Self::new(aws_sdk_eventbridge::Client::new(sdk_config), bus)
    }

    fn entry(&self, source: &str, detail_type: &str, detail: String) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(source)
            .detail_type(detail_type)
            .detail(detail)
            .build()
    }

    /// One PutEvents of up to ten analytics details; the ones it rejected come back.
    async fn put_analytics<'a>(
        &self,
        details: &[&'a String],
    ) -> Result<Vec<&'a String>, Box<dyn std::error::Error + Send + Sync>> {
        let entries = details
            .iter()
            .map(|detail| {
                self.entry(domain::analytics::SOURCE, domain::analytics::DETAIL_TYPE, (*detail).clone())
            })
            .collect();
        let output = self.client.put_events().set_entries(Some(entries)).send().await?;
        // Results are in request order; a rejected entry carries an error code.
        Ok(details
            .iter()
            .zip(output.entries())
            .filter(|(_, result)| result.error_code().is_some())
            .map(|(detail, _)| *detail)
            .collect())
    }

    async fn put_once(&self, event: &FormSubmitted) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let entry = self.entry(SOURCE, DETAIL_TYPE, serde_json::to_string(event)?);
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
                    tracing::warn!(submission_id = event.submission_id, attempt, error = %domain::report::error_chain(err.as_ref()), "publish failed; retrying");
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

impl domain::funnel::AnswerPublisher for EventBridgePublisher {
    /// One PutEvents (the SDK retries throttling); the chat bounds the wait.
    fn publish_answer<'a>(
        &'a self,
        answer: &'a domain::funnel::ChatAnswered,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), domain::funnel::AnswerPublishError>> + Send + 'a>,
    > {
        Box::pin(async move {
            let failed = |source: Box<dyn std::error::Error + Send + Sync>| {
                domain::funnel::AnswerPublishError { answer_id: answer.answer_id.clone(), source }
            };
            let detail = serde_json::to_string(answer).map_err(|e| failed(e.into()))?;
            let entry = self.entry(domain::funnel::CHAT_SOURCE, domain::funnel::CHAT_DETAIL_TYPE, detail);
            let output =
                self.client.put_events().entries(entry).send().await.map_err(|e| failed(e.into()))?;
            if output.failed_entry_count() > 0 {
                let reason =
                    output.entries().iter().find_map(|e| e.error_message()).unwrap_or("entry rejected");
                return Err(failed(reason.into()));
            }
            Ok(())
        })
    }
}

impl AnalyticsPublisher for EventBridgePublisher {
    /// Ten entries per call; entries the bus rejected are sent again, up to
    /// three attempts in all (the SDK itself retries throttled calls).
    async fn publish_analytics(&self, details: &[String]) -> Result<(), AnalyticsPublishError> {
        for chunk in details.chunks(MAX_ENTRIES_PER_PUT) {
            let mut pending: Vec<&String> = chunk.iter().collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                let failure = match self.put_analytics(&pending).await {
                    Ok(rejected) if rejected.is_empty() => break,
                    Ok(rejected) => {
                        pending = rejected;
                        "entries rejected by the bus".into()
                    }
                    Err(err) => err,
                };
                attempt += 1;
                if attempt == ATTEMPTS {
                    return Err(AnalyticsPublishError {
                        failed: pending.len(),
                        total: details.len(),
                        source: failure,
                    });
                }
                tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt - 1))).await;
            }
        }
        Ok(())
    }
}
