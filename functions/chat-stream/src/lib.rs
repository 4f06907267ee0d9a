//! chat-stream: answers a visitor's question from the tenant's knowledge base
//! with a Claude model on Bedrock, streamed as server-sent events.

pub mod actions;
pub mod cta;
pub mod focus;
pub mod handler;
pub mod http_body;
pub mod instructions;
pub mod memory;
pub mod prompt;
pub mod qa_log;
pub mod request;
pub mod service;
pub mod showcase;

use std::sync::Arc;

use aws_adapters::{
    bedrock::BedrockKnowledgeBase, bedrock::BedrockModel, eventbridge::EventBridgePublisher,
    s3::S3ConfigSource,
};
use domain::{analytics::AnalyticsIntake, edge};
use lambda_edge::Settings;

pub use crate::{
    handler::handle,
    http_body::{FrameBody, to_http_response, to_json_response, to_stream_response},
    service::{ChatOptions, ChatResponse, ChatService, RetryPolicy},
};

/// The resource names this function reads, required when it runs in Lambda
/// (the template gives it exactly these: `tests/template_policies.rs`).
pub const REQUIRED_SETTINGS: &[&str] =
    &["CONFIG_BUCKET", "FORM_SUBMISSIONS_TABLE", "RATE_LIMITS_TABLE", "VISITOR_KEY_SECRET"];

/// The service wired to AWS: S3 configs, Bedrock KB Retrieve, Bedrock ConverseStream.
pub type AwsChatService = ChatService<S3ConfigSource, BedrockKnowledgeBase, BedrockModel>;

/// Builds the AWS clients once (default credential chain) and the service around them.
pub async fn aws_service(
    settings: Settings,
    qa_sink: qa_log::LineSink,
    options: ChatOptions,
) -> AwsChatService {
    let sdk_config = lambda_edge::settings::function_sdk_config(&settings);
    aws_service_with(&sdk_config, settings, qa_sink, options)
}

/// The service on an SDK configuration of the caller's (the local host's emulator credentials).
pub fn aws_service_with(
    sdk_config: &aws_types::SdkConfig,
    settings: Settings,
    qa_sink: qa_log::LineSink,
    options: ChatOptions,
) -> AwsChatService {
    let tenants = form_service::tenant_loader(sdk_config, &settings);
    let forms = form_service::aws_service_with_metrics(
        sdk_config,
        &settings,
        Arc::clone(&tenants),
        Arc::clone(&qa_sink),
    );
    let guard =
        aws_adapters::dynamodb::dynamo_guard(sdk_config, &settings.rate_limits_table, Arc::clone(&qa_sink));
    let knowledge = BedrockKnowledgeBase::new(aws_adapters::bedrock::bedrock_agent_runtime_client(
        sdk_config,
        settings.bedrock_agent_runtime_endpoint_url.as_deref(),
        settings.retrieve_timeout,
    ));
    let model = BedrockModel::new(aws_adapters::bedrock::bedrock_runtime_client(
        sdk_config,
        settings.bedrock_runtime_endpoint_url.as_deref(),
        settings.model_first_event_timeout,
    ));
    let bus = EventBridgePublisher::for_bus(sdk_config, &settings.event_bus_name);
    let analytics = AnalyticsIntake::new(Arc::clone(&tenants), bus.clone())
        .with_widget_origins(settings.widget_origins.clone());
    let session_forms = aws_adapters::dynamodb::DynamoSubmissionStore::from_config(
        sdk_config,
        &settings.form_submissions_table,
    );
    ChatService::with_options(settings, tenants, knowledge, model, qa_sink, options)
        .with_forms(Arc::new(forms))
        .with_analytics(Arc::new(analytics))
        .with_answers(Arc::new(bus))
        .with_session_forms(Arc::new(session_forms))
        .with_guard(guard)
}

/// Whether a chat is answered buffered as JSON rather than streamed: the
/// widget's HTTP fallback (`?action=chat`), or a client that accepts JSON and
/// not an event stream.
pub fn wants_json(query: Option<&str>, accept: Option<&str>) -> bool {
    edge::query_param(query, "action") == Some("chat")
        || accept.is_some_and(|accept| {
            accept.contains("application/json") && !accept.contains("text/event-stream")
        })
}

/// Whether a chat URL request is widget analytics (`?action=analytics`) rather than a chat.
pub fn is_analytics(query: Option<&str>) -> bool {
    edge::query_param(query, "action") == Some("analytics")
}
