//! handler-dispatch: for each FormSubmitted, hands the submission to the
//! downstream handler its form names (`fulfillment.type`): an asynchronous
//! Lambda invocation, an encrypted S3 archive, or an HTTPS webhook; each done
//! at most once however often the event is delivered or replayed.

pub mod archive;
pub mod invoke;
pub mod webhook;

use std::{collections::BTreeMap, sync::Arc};

use aws_adapters::{dynamodb::DynamoSubmissionStore, s3::S3ConfigSource};
use domain::{
    failure::Failure,
    fulfillment::{FulfillmentLedger, Outcome},
    tenant::{ConfigSource, Fulfillment, FulfillmentKind, TenantLoader},
};
use lambda_edge::consumer::{Channel, Consumer, Job, load_tenant};

use crate::{
    archive::{Archive, S3Archive, archive_document, archive_key},
    invoke::{Invoker, LambdaInvoker, invoke_payload, lambda_client},
    webhook::{HttpsWebhook, Webhook, webhook_body},
};

/// The resource names this function reads, required when it runs in Lambda
/// (the template gives it exactly these: `tests/template_policies.rs`).
pub const REQUIRED_SETTINGS: &[&str] = &["CONFIG_BUCKET", "FORM_SUBMISSIONS_TABLE"];

/// The consumer the Lambda runs and the local host polls with.
pub type AwsHandlerConsumer =
    Consumer<DynamoSubmissionStore, HandlerChannel<S3ConfigSource, LambdaInvoker, S3Archive, HttpsWebhook>>;

pub fn aws_consumer(
    config: &aws_types::SdkConfig,
    settings: &lambda_edge::Settings,
    tenants: Arc<TenantLoader<S3ConfigSource>>,
) -> AwsHandlerConsumer {
    let ledger =
        DynamoSubmissionStore::new(aws_sdk_dynamodb::Client::new(config), &settings.form_submissions_table);
    let channel = HandlerChannel::new(
        tenants,
        LambdaInvoker::new(lambda_client(config, settings)),
        S3Archive::new(aws_adapters::s3::S3::new(config)),
        HttpsWebhook::new(settings.webhook_allow_private),
        &settings.submissions_bucket,
    );
    Consumer::new(ledger, channel)
}

/// The `handler` channel.
pub struct HandlerChannel<C, I, A, W> {
    tenants: Arc<TenantLoader<C>>,
    invoker: I,
    archive: A,
    webhook: W,
    /// `SUBMISSIONS_BUCKET`, for `s3` fulfillment that names no bucket.
    default_bucket: String,
}

impl<C: ConfigSource, I: Invoker, A: Archive, W: Webhook> HandlerChannel<C, I, A, W> {
    pub fn new(
        tenants: Arc<TenantLoader<C>>,
        invoker: I,
        archive: A,
        webhook: W,
        default_bucket: impl Into<String>,
    ) -> Self {
        Self { tenants, invoker, archive, webhook, default_bucket: default_bucket.into() }
    }

    async fn invoke<L: FulfillmentLedger>(
        &self,
        job: &Job<'_, L>,
        fulfillment: &Fulfillment,
    ) -> Result<(), Failure> {
        let submission = job.submission;
        let Some(function) = fulfillment.function.as_deref().filter(|f| !f.trim().is_empty()) else {
            return Err(Failure::permanent(format!(
                "form {} has lambda fulfillment without a function",
                submission.form_id
            )));
        };
        let payload = invoke_payload(fulfillment.action.as_deref(), submission).to_string();
        job.once("invoke", async {
            self.invoker.invoke_event(function, payload.into_bytes()).await.map_err(Failure::from_error)?;
            tracing::info!(submission_id = submission.submission_id, function, "handler function invoked");
            Ok(())
        })
        .await
    }

    async fn archive<L: FulfillmentLedger>(
        &self,
        job: &Job<'_, L>,
        fulfillment: &Fulfillment,
    ) -> Result<(), Failure> {
        let submission = job.submission;
        let bucket =
            fulfillment.bucket.as_deref().filter(|b| !b.trim().is_empty()).unwrap_or(&self.default_bucket);
        let key = archive_key(submission);
        let document = archive_document(submission).to_string();
        job.once("archive", async {
            self.archive.put(bucket, &key, document.into_bytes()).await.map_err(Failure::from_error)?;
            tracing::info!(submission_id = submission.submission_id, bucket, key, "submission archived");
            Ok(())
        })
        .await
    }

    async fn post<L: FulfillmentLedger>(
        &self,
        job: &Job<'_, L>,
        fulfillment: &Fulfillment,
    ) -> Result<(), Failure> {
        let submission = job.submission;
        let Some(url) = fulfillment.webhook_url.as_deref().filter(|u| !u.trim().is_empty()) else {
            return Err(Failure::permanent(format!(
                "form {} has webhook fulfillment without a webhook_url",
                submission.form_id
            )));
        };
        let body = webhook_body(submission).to_string();
        job.once("webhook", async {
            let delivered = self
                .webhook
                .post(url, &submission.submission_id, body.into_bytes())
                .await
                .map_err(Failure::from_error)?;
            tracing::info!(
                submission_id = submission.submission_id,
                host = delivered.host,
                status = delivered.status,
                "webhook delivered"
            );
            Ok(())
        })
        .await
    }
}

impl<C: ConfigSource, I: Invoker, A: Archive, W: Webhook> Channel for HandlerChannel<C, I, A, W> {
    const NAME: &'static str = domain::events::channel::HANDLER;

    async fn fulfil<L: FulfillmentLedger>(&self, job: &Job<'_, L>) -> Result<Outcome, Failure> {
        let submission = job.submission;
        let tenant = load_tenant(&self.tenants, &job.submission.tenant_id).await?;
        let Some(form) = tenant.config.form(&submission.form_id) else {
            return Err(Failure::permanent(format!("form {} is no longer configured", submission.form_id)));
        };
        let Some((fulfillment, kind)) =
            tenant.config.fulfillment_of(form).and_then(|f| Some((f, f.kind.as_ref()?)))
        else {
            return Ok(Outcome::skipped("no_handler"));
        };
        match kind {
            FulfillmentKind::Lambda => self.invoke(job, fulfillment).await?,
            FulfillmentKind::S3 => self.archive(job, fulfillment).await?,
            FulfillmentKind::Webhook => self.post(job, fulfillment).await?,
            FulfillmentKind::Unknown(other) => {
                return Ok(Outcome::skipped_with(
                    "unknown_handler_type",
                    BTreeMap::from([("type".to_owned(), other.clone())]),
                ));
            }
        }
        Ok(Outcome::Sent)
    }
}

#[cfg(test)]
mod tests;
