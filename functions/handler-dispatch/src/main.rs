//! The handler-dispatch Lambda: SQS batches of FormSubmitted events.

use std::sync::Arc;

use shared::tenant::{S3ConfigSource, TenantLoader};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let settings = shared::Settings::from_env()?;
    let config = shared::aws::sdk_config(&settings).await;
    let tenants = Arc::new(TenantLoader::new(S3ConfigSource::new(
        shared::aws::s3_client(&config),
        settings.config_bucket.clone(),
    )));
    shared::consumer::serve(handler_dispatch::aws_consumer(&config, &settings, tenants)).await
}
