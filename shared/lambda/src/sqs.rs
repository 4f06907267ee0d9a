//! What every SQS-fed function shares, whatever its events: the batch
//! response with the records to deliver again, the invocation's deadline,
//! and the Lambda loop around a batch handler.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use futures_util::{StreamExt, stream};

/// Whether SQS should forget a record or deliver it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Done, skipped, or failed for good (recorded): delete it.
    Ack,
    /// A transient failure: let it come back, and the DLQ take it after 5 tries.
    Retry,
}

/// A function that takes a batch of SQS records and says which to deliver again.
pub trait BatchHandler: Send + Sync + 'static {
    fn handle_batch(
        &self,
        event: SqsEvent,
        deadline: Instant,
    ) -> impl Future<Output = SqsBatchResponse> + Send;
}

/// The batch response: the records reported for redelivery.
pub fn response_of(outcomes: impl IntoIterator<Item = (Option<String>, Disposition)>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for (message_id, disposition) in outcomes {
        if disposition == Disposition::Retry {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id.unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Handles a batch's records, `concurrency` at a time, and reports the ones
/// to deliver again. A record that would start with less than `record_time`
/// left before `deadline` is not started (nothing claimed, nothing done) and
/// goes back to the queue for the next invocation: a record cut off by
/// Lambda's timeout would cost a receive and, near the DLQ, the record.
pub async fn each_record<F, Fut>(
    event: SqsEvent,
    deadline: Instant,
    record_time: Duration,
    concurrency: usize,
    what: &'static str,
    handle: F,
) -> SqsBatchResponse
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Disposition>,
{
    let outcomes = stream::iter(event.records)
        .map(|record| {
            let time_left = deadline.saturating_duration_since(Instant::now());
            let started = (time_left >= record_time).then(|| handle(record.body.unwrap_or_default()));
            async move {
                let disposition = match started {
                    Some(handling) => handling.await,
                    None => {
                        tracing::warn!(
                            consumer = what,
                            message_id = record.message_id,
                            time_left_ms = time_left.as_millis(),
                            "too little time left in this invocation; record left for the next"
                        );
                        Disposition::Retry
                    }
                };
                (record.message_id, disposition)
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    response_of(outcomes)
}

/// Runs a batch handler as a Lambda function fed by an SQS event source with
/// `ReportBatchItemFailures`.
pub async fn serve_batches<H: BatchHandler>(handler: H) -> Result<(), lambda_runtime::Error> {
    let handler = Arc::new(handler);
    lambda_runtime::run_concurrent(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let handler = Arc::clone(&handler);
            async move {
                let now = domain::time::now_epoch_millis();
                let deadline = invocation_deadline(event.context.deadline, now);
                let records = event.payload.records.len();
                let response = handler.handle_batch(event.payload, deadline).await;
                batch_result(records, response).map_err(lambda_runtime::Error::from)
            }
        },
    ))
    .await
}

/// A batch in which every record failed, reported to Lambda as a failed
/// invocation so its error metrics (and the alarms that gate a canary
/// deploy) see a broken release; Lambda then returns the whole batch.
#[derive(Debug, thiserror::Error)]
#[error("every record of the batch failed ({records} records)")]
pub struct BatchFailed {
    pub records: usize,
}

/// `Err` when the batch had records and every one is reported for retry.
pub fn batch_result(records: usize, response: SqsBatchResponse) -> Result<SqsBatchResponse, BatchFailed> {
    if records > 0 && response.batch_item_failures.len() >= records {
        Err(BatchFailed { records })
    } else {
        Ok(response)
    }
}

/// The consumers' `Timeout` in `template.yaml`: the time an invocation has
/// when its runtime gives no usable deadline.
pub const CONSUMER_TIMEOUT: Duration = Duration::from_secs(30);
/// No Lambda invocation lasts longer: a deadline further away is not one.
const LONGEST_INVOCATION: Duration = Duration::from_secs(15 * 60);

/// Lambda's deadline (epoch milliseconds) as an `Instant` on this process's
/// clock. A deadline that is missing (0), already past when the invocation
/// arrives, or beyond Lambda's 15 minutes is not a real one (emulators such
/// as cargo lambda send such values): the invocation then gets
/// [`CONSUMER_TIMEOUT`] rather than refusing every record.
pub fn invocation_deadline(deadline_epoch_ms: u64, now_epoch_ms: u128) -> Instant {
    let left = Duration::from_millis(
        u64::try_from(u128::from(deadline_epoch_ms).saturating_sub(now_epoch_ms)).unwrap_or(u64::MAX),
    );
    let left = if left.is_zero() || left > LONGEST_INVOCATION { CONSUMER_TIMEOUT } else { left };
    Instant::now() + left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_whose_every_record_failed_is_a_failed_invocation() {
        let failed = |ids: &[&str]| {
            let mut response = SqsBatchResponse::default();
            for id in ids {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = (*id).to_owned();
                response.batch_item_failures.push(failure);
            }
            response
        };
        assert!(batch_result(2, failed(&["a", "b"])).is_err());
        assert!(batch_result(2, failed(&["a"])).is_ok(), "one bad record never fails its batch");
        assert!(batch_result(0, failed(&[])).is_ok());
    }

    #[tokio::test]
    async fn a_record_is_started_only_with_enough_time_left_and_otherwise_goes_back_untouched() {
        let batch = || {
            let mut event = SqsEvent::default();
            for id in ["a", "b"] {
                let mut record = aws_lambda_events::sqs::SqsMessage::default();
                record.message_id = Some(id.into());
                record.body = Some(format!("body {id}"));
                event.records.push(record);
            }
            event
        };
        let handled = std::sync::Mutex::new(Vec::new());
        let handle = |body: String| {
            handled.lock().unwrap().push(body);
            async { Disposition::Ack }
        };
        let roomy = Instant::now() + Duration::from_secs(60);
        let response = each_record(batch(), roomy, Duration::from_secs(5), 4, "test", handle).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(handled.lock().unwrap().len(), 2);

        let tight = Instant::now() + Duration::from_secs(2);
        let response = each_record(batch(), tight, Duration::from_secs(5), 4, "test", handle).await;
        let back: Vec<&str> =
            response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(back, ["a", "b"]);
        assert_eq!(handled.lock().unwrap().len(), 2, "neither record was started");
    }

    #[test]
    fn a_real_deadline_is_honoured_and_a_missing_or_absurd_one_gives_the_configured_timeout() {
        let left = |deadline| invocation_deadline(deadline, 5_000).saturating_duration_since(Instant::now());
        assert!(left(65_000) > Duration::from_secs(59) && left(65_000) <= Duration::from_secs(60));
        assert!(left(8_000) <= Duration::from_secs(3), "a real, short deadline is kept");
        for unusable in [0, 1_000, 5_000, 5_000 + 16 * 60 * 1000] {
            let given = left(unusable);
            assert!(given > Duration::from_secs(29) && given <= CONSUMER_TIMEOUT, "{unusable}: {given:?}");
        }
    }
}
