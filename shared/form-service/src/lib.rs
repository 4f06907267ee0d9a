//! The form service: validation and submission of conversational forms, and
//! the widget's config. Both the form-intake function and the chat function
//! (`form_mode` requests) answer with it, so it lives here, below them.

pub mod config;
pub mod request;
pub mod service;

use std::sync::Arc;

use aws_adapters::{
    dynamodb::{DynamoSubmissionStore, dynamo_guard},
    eventbridge::EventBridgePublisher,
    s3::S3ConfigSource,
    sqs::SqsParking,
};
use domain::{report::LineSink, tenant::TenantLoader};
use lambda_edge::Settings;

pub use self::{
    request::is_form_mode,
    service::{FormEndpoint, FormResponse, FormService},
};

/// The service wired to AWS: S3 configs, the submissions table, the event bus.
pub type AwsFormService = FormService<S3ConfigSource, DynamoSubmissionStore, EventBridgePublisher>;

/// The service with its abuse limits, whose metric lines go to stdout (CloudWatch Logs).
pub fn aws_service_with(
    sdk_config: &aws_types::SdkConfig,
    settings: &Settings,
    tenants: Arc<TenantLoader<S3ConfigSource>>,
) -> AwsFormService {
    aws_service_with_metrics(sdk_config, settings, tenants, lambda_edge::telemetry::stdout_sink())
}

/// The same, with the limits' metric lines sent to `metrics`.
pub fn aws_service_with_metrics(
    sdk_config: &aws_types::SdkConfig,
    settings: &Settings,
    tenants: Arc<TenantLoader<S3ConfigSource>>,
    metrics: LineSink,
) -> AwsFormService {
    let store = DynamoSubmissionStore::new(
        aws_sdk_dynamodb::Client::new(sdk_config),
        &settings.form_submissions_table,
    );
    let publisher = EventBridgePublisher::for_bus(sdk_config, &settings.event_bus_name);
    let service = FormService::new(tenants, store, publisher)
        .with_guard(dynamo_guard(sdk_config, &settings.rate_limits_table, metrics))
        .with_widget_origins(settings.widget_origins.clone())
        .with_visitor_key(settings.visitor_key());
    match &settings.parked_submissions_queue_url {
        Some(queue_url) => {
            service.with_parking(Arc::new(SqsParking::new(aws_sdk_sqs::Client::new(sdk_config), queue_url)))
        }
        None => service,
    }
}

/// The tenant loader over the settings' config bucket (`CONFIG_BUCKET`).
pub fn tenant_loader(
    sdk_config: &aws_types::SdkConfig,
    settings: &Settings,
) -> Arc<TenantLoader<S3ConfigSource>> {
    aws_adapters::s3::s3_tenant_loader(sdk_config, &settings.config_bucket)
}
