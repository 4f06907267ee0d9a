//! The model port: open a streamed conversation and read its events. The
//! Bedrock ConverseStream adapter is the only place its SDK types appear.

use std::future::Future;

use aws_sdk_bedrockruntime::{
    error::{ProvideErrorMetadata, SdkError},
    operation::converse_stream::ConverseStreamError,
    primitives::event_stream::EventReceiver,
    types::{
        ContentBlock, ContentBlockDelta, ConversationRole, ConverseStreamOutput, InferenceConfiguration,
        Message, SystemContentBlock, error::ConverseStreamOutputError,
    },
};

/// Who said a turn of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub text: String,
}

/// Everything the model is asked, independent of the provider's wire format.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    pub model_id: String,
    pub system: String,
    /// Alternating turns, starting and ending with the user.
    pub turns: Vec<Turn>,
    pub max_tokens: u32,
    pub temperature: f32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
    pub latency_ms: u64,
}

impl Usage {
    /// The stream's total, or input + output when the model did not report one.
    pub fn total(&self) -> u32 {
        if self.total_tokens > 0 {
            self.total_tokens
        } else {
            self.input_tokens.saturating_add(self.output_tokens)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    /// The model started a content block.
    BlockStart,
    /// A piece of answer text.
    Text(String),
    /// The model finished its message (`end_turn`, `max_tokens`, ...).
    Stop(String),
    /// Token usage and latency, sent after the stop.
    Metadata(Usage),
}

/// How a model call failed, classified once, here, for the retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelErrorKind {
    /// Throttling or quota: retry later.
    Throttled,
    /// A 5xx, timeout or broken connection: retry.
    Unavailable,
    /// The model did not start answering, or fell silent, within its deadline.
    TimedOut,
    /// The model id is unknown, retired or not enabled: use another model.
    ModelRejected,
    /// Anything else (bad request, access denied): retrying will not help.
    Permanent,
}

#[derive(Debug, thiserror::Error)]
#[error("model call failed ({kind:?}): {message}")]
pub struct ModelError {
    pub kind: ModelErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ModelError {
    pub fn new(kind: ModelErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), source: None }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ModelErrorKind::Throttled | ModelErrorKind::Unavailable)
    }
}

/// Opens a streamed model answer (`bedrock:InvokeModelWithResponseStream`).
pub trait ModelStream: Send + Sync + 'static {
    type Events: ModelEvents;
    fn open(&self, request: &ModelRequest) -> impl Future<Output = Result<Self::Events, ModelError>> + Send;
}

/// The events of one answer; dropping it stops reading from the provider.
pub trait ModelEvents: Send + 'static {
    /// The next event, or `None` when the stream ended.
    fn next(&mut self) -> impl Future<Output = Result<Option<ModelEvent>, ModelError>> + Send;
}

/// Bedrock ConverseStream.
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
            .system(SystemContentBlock::Text(request.system.clone()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_and_unknown_model_messages_are_recognised() {
        assert!(names_a_bad_model(Some("The provided model identifier is invalid.")));
        assert!(names_a_bad_model(Some("This model version has reached the end of its life.")));
        assert!(!names_a_bad_model(Some("messages: at least one message is required")));
    }

    #[test]
    fn only_throttling_and_unavailability_are_retryable() {
        assert!(ModelError::new(ModelErrorKind::Throttled, "").is_retryable());
        assert!(ModelError::new(ModelErrorKind::Unavailable, "").is_retryable());
        assert!(!ModelError::new(ModelErrorKind::ModelRejected, "").is_retryable());
        assert!(!ModelError::new(ModelErrorKind::Permanent, "").is_retryable());
        assert!(
            !ModelError::new(ModelErrorKind::TimedOut, "").is_retryable(),
            "a timeout gets one retry of its own, not the backoff policy's"
        );
    }
}
