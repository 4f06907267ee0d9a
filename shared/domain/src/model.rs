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
    /// The part of the system prompt that is the same for every visitor of a
    /// tenant (persona, rules, tenant instructions, action catalog).
    pub system: String,
    /// What this visitor's turn adds to it (focus, form memory); may be empty.
    pub visitor_context: String,
    /// Ask the provider to cache `system`: a cache point after it. Set only
    /// when the model supports caching and `system` is long enough.
    pub cache_system: bool,
    /// Alternating turns, starting and ending with the user.
    pub turns: Vec<Turn>,
    pub max_tokens: u32,
    pub temperature: f32,
}

impl ModelRequest {
    /// Points the request at `model_id`, with a cache point after the
    /// stable system prompt when that model takes one and the prompt is long
    /// enough to be cached.
    pub fn use_model(&mut self, model_id: &str) {
        model_id.clone_into(&mut self.model_id);
        self.cache_system =
            cache_minimum_tokens(model_id).is_some_and(|minimum| estimated_tokens(&self.system) >= minimum);
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
    pub latency_ms: u64,
    /// Prompt tokens read from the provider's prompt cache.
    pub cache_read_tokens: u32,
    /// Prompt tokens written to it (charged above the input rate).
    pub cache_write_tokens: u32,
}

impl Usage {
    /// Two calls' usage together (an answer and its action selection).
    pub fn plus(&self, other: &Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
            total_tokens: self.total().saturating_add(other.total()),
            latency_ms: self.latency_ms.saturating_add(other.latency_ms),
            cache_read_tokens: self.cache_read_tokens.saturating_add(other.cache_read_tokens),
            cache_write_tokens: self.cache_write_tokens.saturating_add(other.cache_write_tokens),
        }
    }

    /// The stream's total, or input + output when the model did not report one.
    pub fn total(&self) -> u32 {
        if self.total_tokens > 0 {
            self.total_tokens
        } else {
            self.input_tokens.saturating_add(self.output_tokens)
        }
    }
}

/// The fewest prompt tokens a cache point of `model_id` caches, for the
/// Bedrock models that take explicit cache points; `None` for the others
/// (a cache point there is refused). Under the minimum Bedrock answers as
/// usual and caches nothing, so the estimate may err either way.
pub fn cache_minimum_tokens(model_id: &str) -> Option<u32> {
    let id = model_id.to_ascii_lowercase();
    let families: [(&str, u32); 8] = [
        ("claude-3-7-sonnet", 1024),
        ("claude-3-5-haiku", 2048),
        ("claude-haiku-4", 4096),
        ("claude-sonnet-4", 1024),
        ("claude-opus-4", 1024),
        ("nova-micro", 1024),
        ("nova-lite", 1024),
        ("nova-pro", 1024),
    ];
    families.iter().find(|(family, _)| id.contains(family)).map(|(_, minimum)| *minimum)
}

/// A rough token count for English prompt text (four characters a token).
pub fn estimated_tokens(text: &str) -> u32 {
    u32::try_from(text.chars().count().div_ceil(4)).unwrap_or(u32::MAX)
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
    fn only_models_that_take_cache_points_have_a_cache_minimum() {
        assert_eq!(cache_minimum_tokens("us.anthropic.claude-3-5-haiku-20241022-v1:0"), Some(2048));
        assert_eq!(cache_minimum_tokens("anthropic.claude-sonnet-4-20250514-v1:0"), Some(1024));
        assert_eq!(cache_minimum_tokens("global.anthropic.claude-haiku-4-5-20251001-v1:0"), Some(4096));
        assert_eq!(cache_minimum_tokens("anthropic.claude-3-haiku-20240307-v1:0"), None);
        assert_eq!(cache_minimum_tokens("meta.llama3-70b-instruct-v1:0"), None);
    }

    #[test]
    fn a_cache_point_is_asked_for_only_when_the_stable_prompt_reaches_the_models_minimum() {
        let mut request = ModelRequest {
            model_id: String::new(),
            system: "x".repeat(4 * 1024),
            visitor_context: String::new(),
            cache_system: false,
            turns: Vec::new(),
            max_tokens: 10,
            temperature: 0.0,
        };
        request.use_model("anthropic.claude-sonnet-4-20250514-v1:0");
        assert!(request.cache_system);
        request.use_model("us.anthropic.claude-3-5-haiku-20241022-v1:0");
        assert!(!request.cache_system, "2,048 tokens are needed on Claude 3.5 Haiku");
        request.use_model("anthropic.claude-3-haiku-20240307-v1:0");
        assert!(!request.cache_system, "no cache points on Claude 3 Haiku");
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
