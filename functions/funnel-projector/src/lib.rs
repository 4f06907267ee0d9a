//! funnel-projector: turns each event on its queue into counts of the
//! tenant's day and of the visitor's session (`domain::funnel`), applied once
//! per event (`aws_adapters::dynamodb::DynamoFunnel`), so a replay of the
//! archives or a redrive of the DLQ changes nothing already counted.
//!
//! A FormSubmitted is counted from the stored submission it points at (its
//! tenant, session and time), never from the event; one that names another
//! tenant than its submission, or none that exists, counts for nothing.

use std::time::{Duration, Instant};

use aws_adapters::dynamodb::{DynamoFunnel, DynamoSubmissionStore, Projected};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use domain::{funnel::Increment, report::error_chain};
use lambda_edge::sqs::{BatchHandler, Disposition, each_record};
use serde::Deserialize;
use serde_json::Value;

/// The resource names this function reads, required when it runs in Lambda.
pub const REQUIRED_SETTINGS: &[&str] = &["FORM_SUBMISSIONS_TABLE", "FUNNEL_TABLE"];

/// Records handled at once: each is one transaction on the tenant's day.
const CONCURRENT_RECORDS: usize = 4;
/// A record is started only with this long left in the invocation: a read of
/// the stored submission and a transaction, with the SDK's retries and ours.
const RECORD_TIME: Duration = Duration::from_secs(5);

pub struct Projector {
    submissions: DynamoSubmissionStore,
    funnel: DynamoFunnel,
}

pub fn aws_projector(config: &aws_types::SdkConfig, settings: &lambda_edge::Settings) -> Projector {
    let client = aws_sdk_dynamodb::Client::new(config);
    Projector {
        submissions: DynamoSubmissionStore::new(client.clone(), &settings.form_submissions_table),
        funnel: DynamoFunnel::new(client, &settings.funnel_table),
    }
}

/// The EventBridge envelope as SQS delivers it.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "detail-type")]
    detail_type: String,
    #[serde(default)]
    time: String,
    detail: Value,
}

impl Projector {
    /// One record: counted, already counted, or not a funnel event (all
    /// acknowledged); unreadable or not stored now (delivered again, then
    /// the DLQ).
    pub async fn handle_record(&self, body: &str) -> Disposition {
        let envelope: Envelope = match serde_json::from_str(body) {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::error!(error = %err, "unreadable record; it will reach the DLQ");
                return Disposition::Retry;
            }
        };
        let increment = match envelope.detail_type.as_str() {
            domain::funnel::CHAT_DETAIL_TYPE => Increment::from_answer(&envelope.detail).map(Some),
            domain::analytics::DETAIL_TYPE => Increment::from_widget(&envelope.detail, &envelope.time),
            domain::events::DETAIL_TYPE => return self.submitted(&envelope.detail).await,
            other => {
                tracing::debug!(detail_type = other, "not a funnel event; ignored");
                return Disposition::Ack;
            }
        };
        match increment {
            Ok(Some(increment)) => self.count(&increment).await,
            Ok(None) => Disposition::Ack,
            Err(err) => {
                tracing::error!(error = %err, "unreadable event; it will reach the DLQ");
                Disposition::Retry
            }
        }
    }

    async fn submitted(&self, detail: &Value) -> Disposition {
        let text = |key: &str| detail.get(key).and_then(Value::as_str).unwrap_or_default();
        let (submission_id, event_tenant) = (text("submission_id"), text("tenant_id"));
        let stored = match self.submissions.load(submission_id).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                tracing::warn!(submission_id, "no such submission; not counted");
                return Disposition::Ack;
            }
            Err(err) => {
                tracing::error!(submission_id, error = %error_chain(&err), "submission not read");
                return Disposition::Retry;
            }
        };
        if stored.tenant_id != event_tenant {
            tracing::warn!(
                security = true,
                submission_id,
                event_tenant,
                "event names another tenant; ignored"
            );
            return Disposition::Ack;
        }
        match Increment::from_submission(&stored) {
            Some(increment) => self.count(&increment).await,
            None => Disposition::Ack,
        }
    }

    async fn count(&self, increment: &Increment) -> Disposition {
        match self.funnel.project(increment).await {
            Ok(Projected::Counted) => Disposition::Ack,
            Ok(Projected::AlreadyCounted) => {
                tracing::info!(
                    tenant_id = increment.tenant_id,
                    key = increment.dedupe_key,
                    "already counted"
                );
                Disposition::Ack
            }
            Err(err) => {
                tracing::error!(tenant_id = increment.tenant_id, error = %error_chain(&err), "not counted");
                Disposition::Retry
            }
        }
    }
}

impl BatchHandler for Projector {
    async fn handle_batch(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        each_record(event, deadline, RECORD_TIME, CONCURRENT_RECORDS, "funnel", |body| async move {
            self.handle_record(&body).await
        })
        .await
    }
}
