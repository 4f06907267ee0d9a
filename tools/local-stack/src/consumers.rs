//! The three fulfillment consumers and the funnel projector, fed the way Lambda's SQS event source
//! feeds them in AWS: each queue is long-polled for batches of up to 10, the
//! batch goes to the same `Consumer` the Lambda binary runs, and only the
//! records it did not report as failed are deleted. A failed record becomes
//! visible again after the visibility timeout (or the polling's shorter retry
//! delay, in tests), and after five receives the
//! emulator's redrive policy moves it to the queue's DLQ. Each batch runs
//! under its function's `Timeout` from the template, as an invocation does:
//! the consumer sees that deadline, and a batch still running at it is cut
//! off with nothing deleted.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};
use tracing::Instrument;

use aws_config::SdkConfig;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName,
};
use domain::report::error_chain;
use lambda_edge::{Settings, sqs::BatchHandler};
use tokio::task::JoinHandle;

use crate::{Identities, StackError, provision::Created, template::Template};

/// How the host polls the consumer queues.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// When a failed record comes back. `None`: after the queue's visibility
    /// timeout (180 s, from the template), as with Lambda; tests that wait for
    /// redeliveries use a second. A record being handled stays hidden for the
    /// queue's visibility timeout either way, so no second poller receives it
    /// while its invocation runs (in AWS the visibility outlasts the function's
    /// timeout).
    pub retry_delay: Option<Duration>,
    /// Pollers per queue: Lambda runs several batches of one queue at once.
    pub pollers: usize,
}

/// Which queue feeds which consumer function (template logical ids).
const QUEUES: [(&str, &str); 4] = [
    ("EmailQueue", "EmailSenderFunction"),
    ("SmsQueue", "SmsSenderFunction"),
    ("HandlerQueue", "HandlerDispatchFunction"),
    ("FunnelQueue", "FunnelProjectorFunction"),
];

/// One queue and the invocation time of the function it feeds.
#[derive(Debug, Clone)]
struct Feed {
    queue_url: String,
    timeout: Duration,
    sqs: aws_sdk_sqs::Client,
    config: SdkConfig,
    /// The function's deployed name, for its log group.
    function: String,
}

/// Starts one poller per consumer queue.
pub fn spawn_all(
    identities: &Identities,
    settings: &Settings,
    created: &Created,
    template: &Template,
    polling: Polling,
) -> Result<Vec<JoinHandle<()>>, StackError> {
    let tenants = |config: &SdkConfig| aws_adapters::s3::s3_tenant_loader(config, &settings.config_bucket);
    let feed = |(queue, function): (&'static str, &'static str)| -> Result<Feed, StackError> {
        let queue_url =
            created.get(queue).map(|q| q.reference.clone()).ok_or(StackError::MissingResource(queue))?;
        let timeout = template.function_timeout(function).ok_or(StackError::MissingResource(function))?;
        // Lambda polls the queue with the function's own role (its SQSPollerPolicy).
        let config = identities.function(function).clone();
        let name = created.get(function).map(|f| f.reference.clone()).unwrap_or_else(|| function.to_owned());
        Ok(Feed { queue_url, timeout, sqs: aws_sdk_sqs::Client::new(&config), config, function: name })
    };
    let [email, sms, handler, funnel] = QUEUES.map(feed);
    let (email, sms, handler, funnel) = (email?, sms?, handler?, funnel?);
    let (email_tenants, sms_tenants, handler_tenants) =
        (tenants(&email.config), tenants(&sms.config), tenants(&handler.config));
    let mut tasks = Vec::new();
    for _ in 0..polling.pollers.max(1) {
        tasks.extend([
            spawn(
                &email,
                email_sender::aws_consumer(&email.config, settings, Arc::clone(&email_tenants)),
                polling,
            ),
            spawn(&sms, sms_sender::aws_consumer(&sms.config, settings, Arc::clone(&sms_tenants)), polling),
            spawn(
                &handler,
                handler_dispatch::aws_consumer(&handler.config, settings, Arc::clone(&handler_tenants)),
                polling,
            ),
            spawn(&funnel, funnel_projector::aws_projector(&funnel.config, settings), polling),
        ]);
    }
    Ok(tasks)
}

fn spawn<H: BatchHandler>(feed: &Feed, consumer: H, polling: Polling) -> JoinHandle<()> {
    let feed = feed.clone();
    tokio::spawn(async move {
        loop {
            let round = poll_once(&feed.sqs, &feed.queue_url, &consumer, polling, feed.timeout);
            if let Err(err) = round.instrument(crate::log_shipping::invocation(&feed.function)).await {
                tracing::warn!(queue = feed.queue_url, error = %error_chain(err.as_ref()), "polling failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    })
}

type PollError = Box<dyn std::error::Error + Send + Sync>;

/// One receive → invoke (under `timeout`) → delete round. Returns how many
/// records it received.
pub async fn poll_once<H: BatchHandler>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    consumer: &H,
    polling: Polling,
    timeout: Duration,
) -> Result<usize, PollError> {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
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
    let deadline = Instant::now() + timeout;
    let Ok(response) = tokio::time::timeout(timeout, consumer.handle_batch(event, deadline)).await else {
        // As Lambda does: the invocation is stopped, nothing is deleted, and
        // every record of the batch comes back after its visibility timeout.
        tracing::error!(
            queue = queue_url,
            timeout_s = timeout.as_secs(),
            "invocation timed out; batch left in the queue"
        );
        retry_after(sqs, queue_url, messages.iter(), polling).await?;
        return Ok(messages.len());
    };
    if response.batch_item_failures.len() >= messages.len() {
        // As Lambda counts it: an invocation error (lambda_edge::consumer::batch_result).
        tracing::error!(
            queue = queue_url,
            records = messages.len(),
            "invocation failed: every record of the batch failed"
        );
    }
    let failed: HashSet<&str> =
        response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    let is_failed = |m: &&Message| m.message_id.as_deref().is_some_and(|id| failed.contains(id));
    let done: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .filter(|m| !is_failed(m))
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
    // After the deletes, so a refused visibility change never keeps a success in the queue.
    retry_after(sqs, queue_url, messages.iter().filter(is_failed), polling).await?;
    Ok(messages.len())
}

/// Makes the failed records visible again after the polling's retry delay
/// (when it has one; otherwise they come back after the queue's own timeout).
async fn retry_after(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    failed: impl Iterator<Item = &Message>,
    polling: Polling,
) -> Result<(), PollError> {
    let Some(delay) = polling.retry_delay else { return Ok(()) };
    let seconds = i32::try_from(delay.as_secs()).unwrap_or(i32::MAX).max(1);
    let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = failed
        .enumerate()
        .filter_map(|(n, m)| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(n.to_string())
                .receipt_handle(m.receipt_handle.clone()?)
                .visibility_timeout(seconds)
                .build()
                .ok()
        })
        .collect();
    if !entries.is_empty() {
        sqs.change_message_visibility_batch().queue_url(queue_url).set_entries(Some(entries)).send().await?;
    }
    Ok(())
}
