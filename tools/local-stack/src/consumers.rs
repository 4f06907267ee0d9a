//! The three fulfillment consumers, fed the way Lambda's SQS event source
//! feeds them in AWS: each queue is long-polled for batches of up to 10, the
//! batch goes to the same `Consumer` the Lambda binary runs, and only the
//! records it did not report as failed are deleted. A failed record becomes
//! visible again after the visibility timeout, and after five receives the
//! emulator's redrive policy moves it to the queue's DLQ.

use std::{collections::HashSet, sync::Arc, time::Duration};

use aws_config::SdkConfig;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use shared::{
    Settings,
    consumer::{Channel, Consumer},
    fulfillment::FulfillmentLedger,
    telemetry::error_chain,
    tenant::{S3ConfigSource, TenantLoader},
};
use tokio::task::JoinHandle;

use crate::{StackError, provision::Created};

/// How the host polls the consumer queues.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// How long a received record stays hidden; a failed one comes back after it.
    /// Lambda uses the queue's (180 s in the template); tests use a second.
    pub visibility: Duration,
    /// Pollers per queue: Lambda runs several batches of one queue at once.
    pub pollers: usize,
}

/// Which queue feeds which consumer (template logical ids).
const QUEUES: [(&str, &str); 3] = [("email", "EmailQueue"), ("sms", "SmsQueue"), ("handler", "HandlerQueue")];

/// Starts one poller per consumer queue.
pub fn spawn_all(
    sdk_config: &SdkConfig,
    settings: &Settings,
    created: &Created,
    polling: Polling,
) -> Result<Vec<JoinHandle<()>>, StackError> {
    let tenants = Arc::new(TenantLoader::new(S3ConfigSource::new(
        shared::aws::s3_client(sdk_config),
        settings.config_bucket.clone(),
    )));
    let sqs = aws_sdk_sqs::Client::new(sdk_config);
    let url = |logical_id: &'static str| {
        created.get(logical_id).map(|q| q.reference.clone()).ok_or(StackError::MissingResource(logical_id))
    };
    let [email, sms, handler] = QUEUES.map(|(_, logical_id)| url(logical_id));
    let (email, sms, handler) = (email?, sms?, handler?);
    let mut tasks = Vec::new();
    for _ in 0..polling.pollers.max(1) {
        let tenants = || Arc::clone(&tenants);
        tasks.extend([
            spawn(&sqs, &email, email_sender::aws_consumer(sdk_config, settings, tenants()), polling),
            spawn(&sqs, &sms, sms_sender::aws_consumer(sdk_config, settings, tenants()), polling),
            spawn(&sqs, &handler, handler_dispatch::aws_consumer(sdk_config, settings, tenants()), polling),
        ]);
    }
    Ok(tasks)
}

fn spawn<L: FulfillmentLedger, C: Channel>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    consumer: Consumer<L, C>,
    polling: Polling,
) -> JoinHandle<()> {
    let (sqs, queue_url) = (sqs.clone(), queue_url.to_owned());
    tokio::spawn(async move {
        loop {
            if let Err(err) = poll_once(&sqs, &queue_url, &consumer, polling).await {
                tracing::warn!(queue = queue_url, error = %error_chain(err.as_ref()), "polling failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    })
}

type PollError = Box<dyn std::error::Error + Send + Sync>;

/// One receive → handle → delete round. Returns how many records it handled.
pub async fn poll_once<L: FulfillmentLedger, C: Channel>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    consumer: &Consumer<L, C>,
    polling: Polling,
) -> Result<usize, PollError> {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .visibility_timeout(i32::try_from(polling.visibility.as_secs()).unwrap_or(30).max(1))
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await?;
    let messages = received.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(0);
    }
    let mut event = SqsEvent::default();
    for message in &messages {
        let mut record = SqsMessage::default();
        record.message_id = message.message_id.clone();
        record.receipt_handle = message.receipt_handle.clone();
        record.body = message.body.clone();
        record.event_source = Some("aws:sqs".into());
        record.attributes = message
            .attributes
            .iter()
            .flatten()
            .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
            .collect();
        event.records.push(record);
    }
    let response = consumer.handle_batch(event).await;
    let failed: HashSet<&str> =
        response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    let done: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .filter(|m| !m.message_id.as_deref().is_some_and(|id| failed.contains(id)))
        .enumerate()
        .filter_map(|(n, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .receipt_handle(m.receipt_handle.clone()?)
                .build()
                .ok()
        })
        .collect();
    if !done.is_empty() {
        sqs.delete_message_batch().queue_url(queue_url).set_entries(Some(done)).send().await?;
    }
    Ok(messages.len())
}
