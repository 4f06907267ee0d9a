//! form-intake: conversational form validation and submission.

pub mod config;
pub mod request;
pub mod service;

use std::sync::Arc;

use shared::{
    Settings,
    events::EventBridgePublisher,
    submissions::DynamoSubmissionStore,
    tenant::{S3ConfigSource, TenantLoader},
};

pub use crate::{
    request::is_form_mode,
    service::{FormEndpoint, FormResponse, FormService},
};

/// The service wired to AWS: S3 configs, the submissions table, the event bus.
pub type AwsFormService = FormService<S3ConfigSource, DynamoSubmissionStore, EventBridgePublisher>;

pub fn aws_service_with(
    sdk_config: &aws_config::SdkConfig,
    settings: &Settings,
    tenants: Arc<TenantLoader<S3ConfigSource>>,
) -> AwsFormService {
    let store = DynamoSubmissionStore::new(
        aws_sdk_dynamodb::Client::new(sdk_config),
        &settings.form_submissions_table,
    );
    FormService::new(tenants, store, EventBridgePublisher::for_bus_of(sdk_config, settings))
}

pub use shared::tenant::s3_tenant_loader as tenant_loader;
