//! `redrive`: moves dead letters back to their source queue, one message at a
//! time: receive from the DLQ, send the body and message attributes to the
//! queue, and only then delete from the DLQ. A failed send leaves the message
//! in the DLQ (it reappears after its visibility timeout); a failed delete
//! leaves it in both queues, which the idempotent consumers tolerate.
//! `StartMessageMoveTask` would do this server-side, but the emulator lacks it.

use serde::Serialize;

use crate::{AwsError, call_failed};

/// How long one receive waits for messages; an empty receive ends the redrive.
const RECEIVE_WAIT_SECONDS: i32 = 1;
/// The most SQS hands out per receive.
const RECEIVE_BATCH: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redrive {
    pub from: String,
    pub to: String,
    pub moved: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("could not read the dead-letter queue after moving {moved} message(s)")]
    Receive {
        moved: usize,
        #[source]
        source: AwsError,
    },
    #[error(
        "could not send a message back after moving {moved} message(s); it stays in the dead-letter queue"
    )]
    Send {
        moved: usize,
        #[source]
        source: AwsError,
    },
    #[error(
        "a message was sent back but not deleted from the dead-letter queue after moving {moved} message(s); \
         it is now in both queues"
    )]
    Delete {
        moved: usize,
        #[source]
        source: AwsError,
    },
}

/// A queue's URL: a URL is used as given, a name is looked up with GetQueueUrl.
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, name_or_url: &str) -> Result<String, AwsError> {
    if name_or_url.starts_with("https://") || name_or_url.starts_with("http://") {
        return Ok(name_or_url.to_owned());
    }
    let output = sqs
        .get_queue_url()
        .queue_name(name_or_url)
        .send()
        .await
        .map_err(call_failed("GetQueueUrl", name_or_url))?;
    output.queue_url.ok_or_else(|| AwsError::Incomplete {
        operation: "GetQueueUrl",
        resource: name_or_url.to_owned(),
        field: "QueueUrl",
    })
}

/// Moves messages from `dlq_url` to `queue_url` until a receive comes back
/// empty or `max` messages have moved.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    queue_url: &str,
    max: Option<usize>,
) -> Result<Redrive, RedriveError> {
    let mut moved = 0;
    loop {
        let wanted = max.map_or(RECEIVE_BATCH, |max| max.saturating_sub(moved).min(RECEIVE_BATCH));
        if wanted == 0 {
            break;
        }
        let received = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(i32::try_from(wanted).unwrap_or(10))
            .wait_time_seconds(RECEIVE_WAIT_SECONDS)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| RedriveError::Receive {
                moved,
                source: call_failed("ReceiveMessage", dlq_url)(e),
            })?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let incomplete = |field| RedriveError::Receive {
                moved,
                source: AwsError::Incomplete {
                    operation: "ReceiveMessage",
                    resource: dlq_url.to_owned(),
                    field,
                },
            };
            let receipt_handle = message.receipt_handle.ok_or_else(|| incomplete("ReceiptHandle"))?;
            let body = message.body.ok_or_else(|| incomplete("Body"))?;
            sqs.send_message()
                .queue_url(queue_url)
                .message_body(body)
                .set_message_attributes(message.message_attributes)
                .send()
                .await
                .map_err(|e| RedriveError::Send {
                    moved,
                    source: call_failed("SendMessage", queue_url)(e),
                })?;
            sqs.delete_message().queue_url(dlq_url).receipt_handle(receipt_handle).send().await.map_err(
                |e| RedriveError::Delete { moved, source: call_failed("DeleteMessage", dlq_url)(e) },
            )?;
            moved += 1;
        }
        tracing::info!(moved, "redrive in progress");
    }
    Ok(Redrive { from: dlq_url.to_owned(), to: queue_url.to_owned(), moved })
}
