//! The form service: validation and submission of conversational forms, and
//! the widget's config. Both the form-intake function and the chat function
//! (`form_mode` requests) answer with it, so it lives here, below them.

pub mod config;
pub mod request;
pub mod service;

use std::sync::Arc;

use crate::{
    Settings,
    events::EventBridgePublisher,
    submissions::DynamoSubmissionStore,
    tenant::{S3ConfigSource, TenantLoader},
};

pub use self::{
    request::is_form_mode,
    service::{FormEndpoint, FormResponse, FormService},
};

/// The service wired to AWS: S3 configs, the submissions table, the event bus.
pub type AwsFormService = FormService<S3ConfigSource, DynamoSubmissionStore, EventBridgePublisher>;

/// The service with its abuse limits, whose metric lines go to stdout (CloudWatch Logs).
pub fn aws_service_with(
    sdk_config: &aws_config::SdkConfig,
    settings: &Settings,
    tenants: Arc<TenantLoader<S3ConfigSource>>,
) -> AwsFormService {
    aws_service_with_metrics(sdk_config, settings, tenants, crate::telemetry::stdout_sink())
}

/// The same, with the limits' metric lines sent to `metrics`.
pub fn aws_service_with_metrics(
    sdk_config: &aws_config::SdkConfig,
    settings: &Settings,
    tenants: Arc<TenantLoader<S3ConfigSource>>,
    metrics: crate::telemetry::LineSink,
) -> AwsFormService {
    let store = DynamoSubmissionStore::new(
        aws_sdk_dynamodb::Client::new(sdk_config),
        &settings.form_submissions_table,
    );
    let service = FormService::new(tenants, store, EventBridgePublisher::for_bus_of(sdk_config, settings))
        .with_guard(crate::limits::dynamo_guard(sdk_config, settings, metrics))
        .with_widget_origins(settings.widget_origins.clone());
    match &settings.parked_submissions_queue_url {
        Some(queue_url) => service.with_parking(Arc::new(crate::parking::SqsParking::new(
            aws_sdk_sqs::Client::new(sdk_config),
            queue_url,
        ))),
        None => service,
    }
}

pub use crate::tenant::s3_tenant_loader as tenant_loader;
