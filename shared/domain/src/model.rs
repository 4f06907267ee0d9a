//! The model port: open a streamed conversation and read its events. The
//! Bedrock ConverseStream adapter is the only place its SDK types appear.

use std::future::Future;
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
#[cfg(test)]
mod tests {
    use super::*;

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
