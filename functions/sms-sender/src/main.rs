//! The sms-sender Lambda: SQS batches of FormSubmitted events.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_edge::consumer::run_from_env(sms_sender::aws_consumer, sms_sender::REQUIRED_SETTINGS).await
}
