//! The handler-dispatch Lambda: SQS batches of FormSubmitted events.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_edge::consumer::run_from_env(handler_dispatch::aws_consumer, handler_dispatch::REQUIRED_SETTINGS)
        .await
}
