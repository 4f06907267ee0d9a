//! The Bedrock adapters: ConverseStream for the model port, Retrieve for the knowledge base.

use std::time::Duration;

use aws_smithy_types::{retry::RetryConfig, timeout::TimeoutConfig};
use aws_types::SdkConfig;

use crate::config::CONNECT_TIMEOUT;

use domain::{
    knowledge::{KnowledgeBase, KnowledgeError, Passage, RESULTS_PER_QUERY, title_from_uri},
    model::{ModelError, ModelErrorKind, ModelEvent, ModelEvents, ModelRequest, ModelStream, Role, Usage},
};

use aws_sdk_bedrockruntime::{
    error::{ProvideErrorMetadata, SdkError},
    operation::converse_stream::ConverseStreamError,
    primitives::event_stream::EventReceiver,
    types::{
        CachePointBlock, CachePointType, ContentBlock, ContentBlockDelta, ConversationRole,
        ConverseStreamOutput, InferenceConfiguration, Message, SystemContentBlock,
        error::ConverseStreamOutputError,
    },
};

#[derive(Clone)]
pub struct BedrockModel {
    client: aws_sdk_bedrockruntime::Client,
}

impl BedrockModel {
    pub fn new(client: aws_sdk_bedrockruntime::Client) -> Self {
        Self { client }
    }
}

impl ModelStream for BedrockModel {
    type Events = BedrockEvents;

    async fn open(&self, request: &ModelRequest) -> Result<BedrockEvents, ModelError> {
        let mut messages = Vec::with_capacity(request.turns.len());
        for turn in &request.turns {
            let role = match turn.role {
                Role::User => ConversationRole::User,
                Role::Assistant => ConversationRole::Assistant,
            };
            let message = Message::builder()
                .role(role)
                .content(ContentBlock::Text(turn.text.clone()))
                .build()
                .map_err(|e| ModelError {
                    kind: ModelErrorKind::Permanent,
                    message: e.to_string(),
                    source: Some(e.into()),
                })?;
            messages.push(message);
        }
        let output = self
            .client
            .converse_stream()
            .model_id(&request.model_id)
            .set_system(Some(system_blocks(request)?))
            .set_messages(Some(messages))
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(i32::try_from(request.max_tokens).unwrap_or(i32::MAX))
                    .temperature(request.temperature)
                    .build(),
            )
            .send()
            .await
            .map_err(classify_open_error)?;
        Ok(BedrockEvents { receiver: output.stream })
    }
}

/// The stable system prompt, a cache point after it when asked, then what
/// this visitor's turn adds (never cached: it changes every turn).
fn system_blocks(request: &ModelRequest) -> Result<Vec<SystemContentBlock>, ModelError> {
    let mut blocks = vec![SystemContentBlock::Text(request.system.clone())];
    if request.cache_system {
        let point = CachePointBlock::builder().r#type(CachePointType::Default).build().map_err(|e| {
            ModelError { kind: ModelErrorKind::Permanent, message: e.to_string(), source: Some(e.into()) }
        })?;
        blocks.push(SystemContentBlock::CachePoint(point));
    }
    if !request.visitor_context.is_empty() {
        blocks.push(SystemContentBlock::Text(request.visitor_context.clone()));
    }
    Ok(blocks)
}

pub struct BedrockEvents {
    receiver: EventReceiver<ConverseStreamOutput, ConverseStreamOutputError>,
}

impl ModelEvents for BedrockEvents {
    async fn next(&mut self) -> Result<Option<ModelEvent>, ModelError> {
        loop {
            let Some(event) = self.receiver.recv().await.map_err(classify_stream_error)? else {
                return Ok(None);
            };
            let mapped = match event {
                ConverseStreamOutput::ContentBlockStart(_) => Some(ModelEvent::BlockStart),
                ConverseStreamOutput::ContentBlockDelta(delta) => match delta.delta {
                    Some(ContentBlockDelta::Text(text)) => Some(ModelEvent::Text(text)),
                    _ => None,
                },
                ConverseStreamOutput::MessageStop(stop) => {
                    Some(ModelEvent::Stop(stop.stop_reason.as_str().to_owned()))
                }
                ConverseStreamOutput::Metadata(metadata) => {
                    let usage = metadata.usage.as_ref();
                    let count = |n: Option<i32>| n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
                    Some(ModelEvent::Metadata(Usage {
                        input_tokens: count(usage.map(|u| u.input_tokens)),
                        output_tokens: count(usage.map(|u| u.output_tokens)),
                        total_tokens: count(usage.map(|u| u.total_tokens)),
                        cache_read_tokens: count(usage.and_then(|u| u.cache_read_input_tokens)),
                        cache_write_tokens: count(usage.and_then(|u| u.cache_write_input_tokens)),
                        latency_ms: metadata
                            .metrics
                            .map(|m| u64::try_from(m.latency_ms).unwrap_or(0))
                            .unwrap_or(0),
                    }))
                }
                _ => None,
            };
            if let Some(event) = mapped {
                return Ok(Some(event));
            }
        }
    }
}

fn classify_open_error(
    err: SdkError<ConverseStreamError, aws_smithy_runtime_api::http::Response>,
) -> ModelError {
    let kind = match &err {
        SdkError::ServiceError(service) => match service.err() {
            ConverseStreamError::ThrottlingException(_) => ModelErrorKind::Throttled,
            ConverseStreamError::InternalServerException(_)
            | ConverseStreamError::ServiceUnavailableException(_)
            | ConverseStreamError::ModelNotReadyException(_)
            | ConverseStreamError::ModelTimeoutException(_)
            | ConverseStreamError::ModelStreamErrorException(_) => ModelErrorKind::Unavailable,
            ConverseStreamError::ResourceNotFoundException(_) => ModelErrorKind::ModelRejected,
            ConverseStreamError::ValidationException(e) if names_a_bad_model(e.message()) => {
                ModelErrorKind::ModelRejected
            }
            other if service.raw().status().as_u16() >= 500 || other.code() == Some("ServiceUnavailable") => {
                ModelErrorKind::Unavailable
            }
            _ => ModelErrorKind::Permanent,
        },
        SdkError::TimeoutError(_) => ModelErrorKind::TimedOut,
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => ModelErrorKind::Unavailable,
        _ => ModelErrorKind::Permanent,
    };
    model_error(kind, err)
}

fn classify_stream_error(
    err: SdkError<ConverseStreamOutputError, aws_smithy_types::event_stream::RawMessage>,
) -> ModelError {
    let kind = match err.as_service_error() {
        Some(ConverseStreamOutputError::ThrottlingException(_)) => ModelErrorKind::Throttled,
        Some(ConverseStreamOutputError::ValidationException(_)) => ModelErrorKind::Permanent,
        Some(_) => ModelErrorKind::Unavailable,
        None => ModelErrorKind::Unavailable,
    };
    model_error(kind, err)
}

/// Keeps the service's own message (e.g. "Too many requests") when there is one.
fn model_error<E, R>(kind: ModelErrorKind, err: SdkError<E, R>) -> ModelError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let message = err
        .as_service_error()
        .and_then(|e| e.message())
        .map(str::to_owned)
        .unwrap_or_else(|| err.to_string());
    ModelError { kind, message, source: Some(Box::new(err)) }
}

/// Bedrock answers an unknown, retired or not-enabled model id with a
/// ValidationException whose message says so.
fn names_a_bad_model(message: Option<&str>) -> bool {
    let message = message.unwrap_or_default().to_ascii_lowercase();
    [
        "model identifier",
        "end of its life",
        "legacy",
        "model id",
        "not supported",
        "doesn't support",
        "access to the model",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

use aws_sdk_bedrockagentruntime::types::{
    KnowledgeBaseRetrievalConfiguration, KnowledgeBaseRetrievalResult,
    KnowledgeBaseVectorSearchConfiguration, RetrievalResultLocation,
};
#[derive(Clone)]
pub struct BedrockKnowledgeBase {
    client: aws_sdk_bedrockagentruntime::Client,
}

impl BedrockKnowledgeBase {
    pub fn new(client: aws_sdk_bedrockagentruntime::Client) -> Self {
        Self { client }
    }
}

impl KnowledgeBase for BedrockKnowledgeBase {
    async fn retrieve(&self, kb_id: &str, query: &str) -> Result<Vec<Passage>, KnowledgeError> {
        let configuration = KnowledgeBaseRetrievalConfiguration::builder()
            .vector_search_configuration(
                KnowledgeBaseVectorSearchConfiguration::builder()
                    .number_of_results(RESULTS_PER_QUERY)
                    .build(),
            )
            .build();
        let query = aws_sdk_bedrockagentruntime::types::KnowledgeBaseQuery::builder().text(query).build();
        let output = self
            .client
            .retrieve()
            .knowledge_base_id(kb_id)
            .retrieval_query(query)
            .retrieval_configuration(configuration)
            .send()
            .await
            .map_err(|e| KnowledgeError { kb_id: kb_id.to_owned(), source: Box::new(e) })?;
        Ok(output.retrieval_results.into_iter().filter_map(passage).collect())
    }
}

fn passage(result: KnowledgeBaseRetrievalResult) -> Option<Passage> {
    let text = result.content?.text;
    if text.trim().is_empty() {
        return None;
    }
    let uri = result.location.as_ref().and_then(location_uri).unwrap_or_default();
    let title = title_from_uri(&uri);
    Some(Passage { text, title, uri, score: result.score.unwrap_or(0.0) })
}

fn location_uri(location: &RetrievalResultLocation) -> Option<String> {
    location
        .s3_location
        .as_ref()
        .and_then(|s3| s3.uri.clone())
        .or_else(|| location.web_location.as_ref().and_then(|web| web.url.clone()))
        .or_else(|| location.confluence_location.as_ref().and_then(|c| c.url.clone()))
        .or_else(|| location.share_point_location.as_ref().and_then(|s| s.url.clone()))
        .or_else(|| location.salesforce_location.as_ref().and_then(|s| s.url.clone()))
}

/// Bedrock Runtime client. The SDK's own retries are off: the chat function
/// owns the retry policy, because a throttle can also arrive inside the stream
/// and only the caller knows whether text has already reached the visitor.
/// The SDK's deadline covers opening the stream (until the response headers);
/// the chat service times the events themselves.
pub fn bedrock_runtime_client(
    config: &SdkConfig,
    endpoint: Option<&str>,
    first_event_timeout: Duration,
) -> aws_sdk_bedrockruntime::Client {
    let open_deadline = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(first_event_timeout)
        .operation_timeout(first_event_timeout)
        .build();
    let mut builder = aws_sdk_bedrockruntime::config::Builder::from(config)
        .retry_config(RetryConfig::disabled())
        .timeout_config(open_deadline);
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_bedrockruntime::Client::from_conf(builder.build())
}

/// Bedrock Agent Runtime client (knowledge-base Retrieve), standard retries
/// within `RETRIEVE_TIMEOUT_MS`: an answer without context beats a late one.
pub fn bedrock_agent_runtime_client(
    config: &SdkConfig,
    endpoint: Option<&str>,
    retrieve_timeout: Duration,
) -> aws_sdk_bedrockagentruntime::Client {
    let deadline =
        TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_timeout(retrieve_timeout).build();
    let mut builder = aws_sdk_bedrockagentruntime::config::Builder::from(config).timeout_config(deadline);
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_bedrockagentruntime::Client::from_conf(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_and_unknown_model_messages_are_recognised() {
        assert!(names_a_bad_model(Some("The provided model identifier is invalid.")));
        assert!(names_a_bad_model(Some("This model version has reached the end of its life.")));
        assert!(!names_a_bad_model(Some("messages: at least one message is required")));
    }
}
