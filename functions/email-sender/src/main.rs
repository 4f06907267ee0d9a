//! The email-sender Lambda: SQS batches of FormSubmitted events.

use std::sync::Arc;

use email_sender::EmailChannel;
use shared::{
    consumer::{Consumer, serve},
    mail::SesMailer,
    submissions::DynamoSubmissionStore,
    tenant::{S3ConfigSource, TenantLoader},
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let settings = shared::Settings::from_env()?;
    let config = shared::aws::sdk_config(&settings).await;
    let tenants = Arc::new(TenantLoader::new(S3ConfigSource::new(
        shared::aws::s3_client(&config),
        settings.config_bucket.clone(),
    )));
    let ledger =
        DynamoSubmissionStore::new(aws_sdk_dynamodb::Client::new(&config), &settings.form_submissions_table);
    let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(&config), &settings.ses_from_email);
    serve(Consumer::new(ledger, EmailChannel::new(tenants, mailer))).await
}
