//! The funnel-projector Lambda: SQS batches of ChatAnswered, WidgetAnalytics
//! and FormSubmitted events.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_edge::telemetry::init();
    let settings = lambda_edge::Settings::for_function(funnel_projector::REQUIRED_SETTINGS);
    let config = lambda_edge::settings::function_sdk_config(&settings);
    lambda_edge::sqs::serve_batches(funnel_projector::aws_projector(&config, &settings)).await
}
