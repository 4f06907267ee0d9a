//! The email-sender Lambda: SQS batches of FormSubmitted events.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::{
    consumer::Disposition,
    mail::SesMailer,
    submissions::DynamoSubmissionStore,
    tenant::{S3ConfigSource, TenantLoader},
};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let settings = shared::Settings::from_env()?;
    let config = shared::aws::sdk_config(&settings).await;
    let tenants = std::sync::Arc::new(TenantLoader::new(S3ConfigSource::new(
        shared::aws::s3_client(&config),
        settings.config_bucket.clone(),
    )));
    let ledger =
        DynamoSubmissionStore::new(aws_sdk_dynamodb::Client::new(&config), &settings.form_submissions_table);
    let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(&config), &settings.ses_from_email);
    let sender = &email_sender::EmailSender::new(tenants, ledger, mailer);
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let mut response = SqsBatchResponse::default();
        for record in event.payload.records {
            let body = record.body.as_deref().unwrap_or_default();
            if sender.handle_record(body).await == Disposition::Retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = record.message_id.unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        Ok::<_, Error>(response)
    }))
    .await
}
