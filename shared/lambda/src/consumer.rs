//! What every fulfillment consumer shares: the EventBridge envelope an SQS
//! record carries, the claim → side effect → finish flow that makes a
//! redelivered or replayed event harmless, and the SQS batch response.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use serde::Deserialize;

pub use crate::sqs::{BatchFailed, CONSUMER_TIMEOUT, Disposition, batch_result, invocation_deadline};
use aws_adapters::s3::S3ConfigSource;
use domain::{
    events::{DETAIL_TYPE, FormSubmitted, SOURCE},
    failure::{Failure, Permanence},
    fulfillment::{Claim, FulfillmentLedger, Lease, LedgerError, Outcome, StoredSubmission},
    report::{LineSink, error_chain},
    tenant::{ConfigSource, Tenant, TenantLoader},
    time::now_epoch_millis,
};

/// The standard EventBridge envelope, parsed tolerantly (moto omits `account`).
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    pub detail: FormSubmitted,
    #[serde(rename = "replay-name", default)]
    pub replay_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("record body is not a FormSubmitted envelope")]
    Malformed(#[from] serde_json::Error),
    #[error("record is a {0} event, not FormSubmitted")]
    Unexpected(String),
}

pub fn parse_envelope(body: &str) -> Result<Envelope, EnvelopeError> {
    let envelope: Envelope = serde_json::from_str(body)?;
    if envelope.detail_type != DETAIL_TYPE || envelope.source != SOURCE {
        return Err(EnvelopeError::Unexpected(format!("{}/{}", envelope.source, envelope.detail_type)));
    }
    Ok(envelope)
}

/// One fulfillment channel (`email`, `sms`, `handler`): the side effect a
/// consumer performs once it holds the channel's lease.
pub trait Channel: Send + Sync + 'static {
    /// The channel's name in `channels` and `fulfillment.<name>`.
    const NAME: &'static str;
    /// Longer than the side effect can take; an expired lease is taken over.
    const LEASE: Duration = LEASE;
    /// The longest one record can take, claim to finish, with every call at
    /// its timeout. A record is not started with less time than this left
    /// before the invocation's deadline: it goes back to the queue untouched.
    const RECORD_TIME: Duration = Duration::from_secs(12);

    fn fulfil<L: FulfillmentLedger>(
        &self,
        job: &Job<'_, L>,
    ) -> impl Future<Output = Result<Outcome, Failure>> + Send;
}

/// A claimed channel of one submission. It carries the stored submission and
/// not the event: tenant, form and data come only from what was stored.
pub struct Job<'a, L> {
    pub submission: &'a StoredSubmission,
    channel: &'static str,
    lease: &'a Lease,
    ledger: &'a L,
}

impl<L: FulfillmentLedger> Job<'_, L> {
    /// Runs one part of the channel (one email, one SMS) unless an earlier
    /// delivery already did, and records it done, so a retry after a partial
    /// failure repeats nothing that already reached a person.
    pub async fn once<F>(&self, part: &str, effect: F) -> Result<(), Failure>
    where
        F: Future<Output = Result<(), Failure>> + Send,
    {
        if self.done(part) {
            return Ok(());
        }
        effect.await?;
        self.record(part).await
    }

    /// Whether an earlier delivery already did this part.
    pub fn done(&self, part: &str) -> bool {
        self.submission.part_done(self.channel, part)
    }

    /// Records one part done (refused once another delivery holds the channel).
    pub async fn record(&self, part: &str) -> Result<(), Failure> {
        self.ledger.part_done(self.lease, part).await.map_err(Failure::transient)
    }
}

/// How long a claim holds a channel: longer than any invocation (30 s), so a
/// live delivery is never overtaken, and shorter than the queue's visibility
/// timeout (180 s), so a delivery that died holding it has expired by the
/// time SQS hands its record out again.
pub const LEASE: Duration = Duration::from_secs(120);

/// Records of one batch handled at once: enough that a batch of ten slow
/// webhooks ends inside the function's timeout, few enough to stay under
/// SES's and SNS's send rates with five batches running.
pub const CONCURRENT_RECORDS: usize = 4;

/// A consumer: its channel and the ledger that guards it.
pub struct Consumer<L, C> {
    ledger: L,
    channel: C,
    /// Where the `UnknownOutcomes` metric lines go (stdout: CloudWatch Logs).
    metrics: LineSink,
}

/// The metric operators act on: a send whose answer was lost (`Picasso/Fulfillment`).
pub fn unknown_outcome_metric(channel: &str) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": now_epoch_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "Picasso/Fulfillment",
                "Dimensions": [["Channel"], []],
                "Metrics": [{"Name": "UnknownOutcomes", "Unit": "Count"}],
            }],
        },
        "Channel": channel,
        "UnknownOutcomes": 1,
    })
    .to_string()
}

impl<L: FulfillmentLedger, C: Channel> Consumer<L, C> {
    pub fn new(ledger: L, channel: C) -> Self {
        Self { ledger, channel, metrics: crate::telemetry::stdout_sink() }
    }

    /// Metric lines to `metrics` instead of stdout.
    pub fn with_metrics(mut self, metrics: LineSink) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn channel(&self) -> &C {
        &self.channel
    }

    /// Handles the records, [`CONCURRENT_RECORDS`] at a time, and reports the
    /// ones to deliver again. A record that would start with less than
    /// [`Channel::RECORD_TIME`] left before `deadline` is not started (no
    /// claim, no side effect) and is reported for redelivery.
    pub async fn handle_batch(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        crate::sqs::each_record(
            event,
            deadline,
            C::RECORD_TIME,
            CONCURRENT_RECORDS,
            C::NAME,
            |body| async move { self.handle_record(&body).await },
        )
        .await
    }

    /// One SQS record. A body that is not a FormSubmitted envelope is retried
    /// until the queue's redrive policy moves it to the DLQ, which keeps it
    /// for an operator (nothing to record it against in the table).
    pub async fn handle_record(&self, body: &str) -> Disposition {
        let channel = C::NAME;
        let envelope = match parse_envelope(body) {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::error!(channel, error = %error_chain(&err), "unreadable record; it will reach the DLQ");
                return Disposition::Retry;
            }
        };
        let event = &envelope.detail;
        let id = event.submission_id.as_str();
        let replay = envelope.replay_name.as_deref();
        if !event.channels.iter().any(|c| c == channel) {
            return Disposition::Ack;
        }
        let claimed = self.ledger.claim(event, channel, now_epoch_millis(), C::LEASE.as_millis()).await;
        let (submission, lease) = match claimed {
            Ok(Claim::Acquired(submission, lease)) => (submission, lease),
            Ok(Claim::Done) => {
                tracing::info!(channel, submission_id = id, replay, "already done; nothing to do");
                return Disposition::Ack;
            }
            Ok(Claim::Missing) => {
                tracing::warn!(channel, submission_id = id, replay, "no such submission; nothing to do");
                return Disposition::Ack;
            }
            Ok(Claim::Mismatch) => {
                tracing::warn!(
                    security = true,
                    channel,
                    submission_id = id,
                    event_tenant_id = event.tenant_id,
                    event_form_id = event.form_id,
                    replay,
                    "event names another tenant or form than the stored submission; ignored"
                );
                return Disposition::Ack;
            }
            Ok(Claim::Busy) => {
                tracing::info!(channel, submission_id = id, replay, "another delivery holds the lease");
                return Disposition::Retry;
            }
            Err(err) => {
                tracing::error!(channel, submission_id = id, error = %error_chain(&err), "channel not claimed");
                return Disposition::Retry;
            }
        };
        let job = Job { submission: &submission, channel, lease: &lease, ledger: &self.ledger };
        let result = self.channel.fulfil(&job).await;
        let (outcome, disposition) = match result {
            Ok(outcome) => (outcome, Disposition::Ack),
            Err(failure) => {
                let disposition = if failure.is_permanent() { Disposition::Ack } else { Disposition::Retry };
                (Outcome::Failed { error: failure.message() }, disposition)
            }
        };
        match self.ledger.finish(&lease, &outcome).await {
            Ok(()) => {}
            Err(err @ LedgerError::LeaseLost { .. }) => {
                // The delivery that took over records the channel; this one's word is stale.
                tracing::warn!(channel, submission_id = id, error = %error_chain(&err), "outcome discarded");
                return Disposition::Ack;
            }
            Err(err) => {
                tracing::error!(channel, submission_id = id, error = %error_chain(&err), "outcome not recorded");
                return Disposition::Retry;
            }
        }
        match &outcome {
            Outcome::Failed { error } => {
                tracing::error!(channel, submission_id = id, replay, error, retry = ?disposition, "channel failed")
            }
            Outcome::Unknown { parts, error } => {
                tracing::error!(
                    channel,
                    submission_id = id,
                    replay,
                    ?parts,
                    error,
                    "outcome unknown: the provider may have sent it; not re-sent"
                );
                (self.metrics)(unknown_outcome_metric(channel));
            }
            outcome => tracing::info!(channel, submission_id = id, replay, ?outcome, "channel finished"),
        }
        disposition
    }
}

/// The submission's tenant. A config that is missing or broken is permanent
/// (fix it, then replay); S3 being unreachable is transient.
pub async fn load_tenant<S: ConfigSource>(
    tenants: &TenantLoader<S>,
    tenant_id: &str,
) -> Result<Arc<Tenant>, Failure> {
    tenants.load_by_id(tenant_id).await.map_err(Failure::from_error)
}

/// How a consumer crate builds its consumer from the process's configuration.
pub type Build<L, C> =
    fn(&aws_types::SdkConfig, &crate::Settings, Arc<TenantLoader<S3ConfigSource>>) -> Consumer<L, C>;

/// A consumer Lambda's `main`: settings from the environment, the SDK config,
/// the tenant loader, then [`serve`].
pub async fn run_from_env<L: FulfillmentLedger, C: Channel>(
    build: Build<L, C>,
    required_settings: &[&'static str],
) -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init();
    let settings = crate::Settings::for_function(required_settings);
    let config = crate::settings::function_sdk_config(&settings);
    let tenants = aws_adapters::s3::s3_tenant_loader(&config, &settings.config_bucket);
    crate::sqs::serve_batches(build(&config, &settings, tenants)).await
}

impl<L: FulfillmentLedger, C: Channel> crate::sqs::BatchHandler for Consumer<L, C> {
    fn handle_batch(
        &self,
        event: SqsEvent,
        deadline: Instant,
    ) -> impl Future<Output = SqsBatchResponse> + Send {
        Consumer::handle_batch(self, event, deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replayed_envelope_without_account_parses() {
        let body = r#"{"version":"0","id":"x","detail-type":"FormSubmitted","source":"picasso.forms","time":"t",
            "region":"us-east-1","resources":[],"replay-name":"r1","ingestion-time":1.5,
            "detail":{"schema_version":1,"submission_id":"s","tenant_id":"T","form_id":"f","priority":"high",
                      "submitted_at":"2026-11-25T00:00:00.000Z","channels":["email"]}}"#;
        let envelope = parse_envelope(body).unwrap();
        assert_eq!(envelope.replay_name.as_deref(), Some("r1"));
        assert_eq!(envelope.detail.channels, ["email"]);
    }

    #[test]
    fn garbage_and_other_events_are_refused() {
        assert!(matches!(parse_envelope("nope"), Err(EnvelopeError::Malformed(_))));
        let other = r#"{"detail-type":"Other","source":"x","detail":{"schema_version":1,"submission_id":"s","tenant_id":"T",
            "form_id":"f","priority":"p","submitted_at":"t","channels":[]}}"#;
        assert!(matches!(parse_envelope(other), Err(EnvelopeError::Unexpected(_))));
    }
}
