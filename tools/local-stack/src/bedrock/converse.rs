//! `POST /model/{modelId}/converse-stream`: a Converse request in, an
//! `application/vnd.amazon.eventstream` body out, paced like a real model and
//! written from a task that stops the moment the client goes away.

use std::{convert::Infallible, sync::Arc, time::Instant};

use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{
    BedrockStandIn, actions,
    answer::{Prompt, chunks},
    faults::{Admission, StreamPlan},
    records::StreamStatus,
    text::estimated_tokens,
    wire::{EVENT_STREAM_CONTENT_TYPE, aws_error, event_frame, exception_frame, validation_error},
};

/// Frames buffered between the generator and the connection: small, so a
/// slow reader holds the generator back as a real model stream would.
const FRAME_BUFFER: usize = 4;
const THROTTLE_MESSAGE: &str = "Too many requests, please wait before trying again.";
const REJECTED_MODEL_MESSAGE: &str = "The provided model identifier is invalid.";
const NO_CACHING_MESSAGE: &str = "You invoked a model that does not take cache points in the system prompt.";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseRequest {
    messages: Vec<RequestMessage>,
    #[serde(default)]
    system: Vec<SystemBlock>,
    #[serde(default)]
    inference_config: Option<InferenceConfig>,
}

#[derive(Debug, Deserialize)]
struct RequestMessage {
    role: String,
    content: Vec<TextBlock>,
}

/// A content block; images, documents and tool blocks carry no `text`.
#[derive(Debug, Deserialize)]
struct TextBlock {
    #[serde(default)]
    text: Option<String>,
}

/// A system block: text, or a cache point (`{"cachePoint": {"type": "default"}}`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SystemBlock {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    cache_point: Option<Value>,
}

impl ConverseRequest {
    /// The system text before the first cache point, if there is one.
    fn cached_prefix(&self) -> Option<String> {
        let at = self.system.iter().position(|block| block.cache_point.is_some())?;
        Some(self.system[..at].iter().filter_map(|b| b.text.as_deref()).collect::<Vec<_>>().join("\n"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig {
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
}

/// What one admitted request will stream.
struct Reply {
    /// Everything the stream says, an action marker included.
    answer: String,
    /// The text deltas it says it in.
    pieces: Vec<String>,
    stop_reason: &'static str,
    /// Prompt tokens not read from or written to the cache.
    input_tokens: u32,
    cache: Option<CacheUse>,
}

/// What a request's cache point did: tokens read from the cache or written to it.
#[derive(Debug, Clone, Copy, Default)]
struct CacheUse {
    read: u32,
    written: u32,
}

pub async fn converse_stream(
    State(standin): State<Arc<BedrockStandIn>>,
    Path(model_id): Path<String>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let id = standin.begin_stream(&model_id);
    let request = match parse(&body) {
        Ok(request) => request,
        Err(message) => {
            standin.finish_stream(id, StreamStatus::Invalid, Some(message.clone()));
            return validation_error(&message);
        }
    };
    let (prompt, system) = prompt_text(&request);
    let parsed = Prompt::parse(&prompt, &system);
    let mut reply = reply_to(&request, &parsed, &system);
    let style = standin.faults().action_marker;
    if let Some(selection) = actions::selection_reply(&prompt) {
        reply.pieces = vec![selection.clone()];
        reply.answer = selection;
    } else {
        let marker = actions::marker_pieces(&system, &parsed.question, style);
        reply.answer.push_str(&marker.concat());
        reply.pieces.extend(marker);
    }
    if let Some(prefix) = request.cached_prefix() {
        // Bedrock refuses a cache point the model cannot take, and caches
        // nothing (silently) below the model's minimum prefix.
        let Some(minimum) = domain::model::cache_minimum_tokens(&model_id) else {
            standin.finish_stream(id, StreamStatus::Invalid, Some(NO_CACHING_MESSAGE.into()));
            return validation_error(NO_CACHING_MESSAGE);
        };
        let tokens = domain::model::estimated_tokens(&prefix);
        let cache = if tokens >= minimum {
            let (read, written) = standin.cache_prompt(&model_id, &prefix, tokens);
            CacheUse { read, written }
        } else {
            CacheUse::default()
        };
        reply.input_tokens = reply.input_tokens.saturating_sub(cache.read + cache.written).max(1);
        reply.cache = Some(cache);
    }
    let message_chars = request
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .map(|block| block.text.as_deref().map_or(0, |t| t.chars().count()))
        .sum();
    standin.update_stream(id, |record| {
        record.messages = request.messages.len();
        record.message_chars = message_chars;
        record.question = parsed.question.clone();
        record.prompt = prompt;
        record.system = system;
        record.answer = reply.answer.clone();
        record.cache_point = reply.cache.is_some();
        let cache = reply.cache.unwrap_or_default();
        record.cache_read_tokens = cache.read;
        record.cache_write_tokens = cache.written;
    });
    let plan = match standin.admit(&model_id) {
        Admission::Reject => {
            standin.finish_stream(id, StreamStatus::Rejected, Some(REJECTED_MODEL_MESSAGE.into()));
            return validation_error(REJECTED_MODEL_MESSAGE);
        }
        Admission::Throttle => {
            standin.finish_stream(id, StreamStatus::Throttled, Some(THROTTLE_MESSAGE.into()));
            return aws_error(StatusCode::TOO_MANY_REQUESTS, "ThrottlingException", THROTTLE_MESSAGE);
        }
        Admission::Stream(plan) => plan,
    };
    let (frames, body) = mpsc::channel::<Result<Bytes, Infallible>>(FRAME_BUFFER);
    tokio::spawn(write_stream(standin, id, plan, reply, frames, started));
    // No content-length: the body is a stream, as Bedrock's is.
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE.as_str(), EVENT_STREAM_CONTENT_TYPE.to_owned()),
            ("x-amzn-requestid", format!("standin-{id}")),
        ],
        Body::from_stream(ReceiverStream::new(body)),
    )
        .into_response()
}

fn parse(body: &[u8]) -> Result<ConverseRequest, String> {
    let request: ConverseRequest =
        serde_json::from_slice(body).map_err(|err| format!("Malformed Converse request: {err}"))?;
    if request.messages.is_empty() {
        return Err("messages: at least one message is required.".into());
    }
    if let Some(bad) = request.messages.iter().find(|m| m.role != "user" && m.role != "assistant") {
        return Err(format!("messages: role must be user or assistant, got {:?}.", bad.role));
    }
    if let Some(config) = &request.inference_config {
        if config.max_tokens == Some(0) {
            return Err("inferenceConfig.maxTokens must be at least 1.".into());
        }
        if config.temperature.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
            return Err("inferenceConfig.temperature must be between 0 and 1.".into());
        }
    }
    Ok(request)
}

/// The last user message and the system prompt, as plain text.
fn prompt_text(request: &ConverseRequest) -> (String, String) {
    let text =
        |blocks: &[TextBlock]| blocks.iter().filter_map(|b| b.text.as_deref()).collect::<Vec<_>>().join("\n");
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| text(&m.content))
        .unwrap_or_default();
    let system = request.system.iter().filter_map(|b| b.text.as_deref()).collect::<Vec<_>>().join("\n");
    (last_user, system)
}

/// The answer, cut at `maxTokens` as a real model would stop.
fn reply_to(request: &ConverseRequest, prompt: &Prompt, system: &str) -> Reply {
    let all_text: String = request
        .messages
        .iter()
        .flat_map(|m| m.content.iter().filter_map(|b| b.text.as_deref()))
        .chain(std::iter::once(system))
        .collect::<Vec<_>>()
        .join(" ");
    let full = prompt.answer();
    let max_tokens = request.inference_config.as_ref().and_then(|c| c.max_tokens).unwrap_or(u32::MAX);
    let (answer, stop_reason) = if estimated_tokens(&full) <= max_tokens {
        (full, "end_turn")
    } else {
        let mut cut = String::new();
        for chunk in chunks(&full) {
            if estimated_tokens(&format!("{cut}{chunk}")) > max_tokens {
                break;
            }
            cut.push_str(chunk);
        }
        (cut, "max_tokens")
    };
    let pieces = chunks(&answer).into_iter().map(str::to_owned).collect();
    Reply { answer, pieces, stop_reason, input_tokens: estimated_tokens(&all_text).max(1), cache: None }
}

/// Writes the frames of one answer. Every send doubles as the check that the
/// client is still there: once it has gone, nothing more is generated.
async fn write_stream(
    standin: Arc<BedrockStandIn>,
    id: u64,
    plan: StreamPlan,
    reply: Reply,
    frames: mpsc::Sender<Result<Bytes, Infallible>>,
    started: Instant,
) {
    let (status, error) = match stream_frames(&standin, id, &plan, &reply, &frames, started).await {
        Ok(StreamStatus::Failed) => (StreamStatus::Failed, plan.failure.map(|f| f.message)),
        Ok(status) => (status, None),
        Err(err) => {
            tracing::error!(error = %err, "stand-in could not encode a frame");
            (StreamStatus::Failed, Some(format!("could not encode a frame: {err}")))
        }
    };
    standin.finish_stream(id, status, error);
}

async fn stream_frames(
    standin: &BedrockStandIn,
    id: u64,
    plan: &StreamPlan,
    reply: &Reply,
    frames: &mpsc::Sender<Result<Bytes, Infallible>>,
    started: Instant,
) -> Result<StreamStatus, aws_smithy_eventstream::error::Error> {
    let send = |frame: Bytes| async move { frames.send(Ok(frame)).await.is_ok() };
    if plan.stall_after == Some(0) {
        return Ok(stall(frames).await);
    }
    let opening = [
        event_frame("messageStart", &json!({ "role": "assistant" }))?,
        // Bedrock's ContentBlockStart union has no text variant, and the SDK
        // refuses an empty `start` object; without `start` it reads the event
        // as a block start of an unknown kind, which is what a text block is.
        event_frame("contentBlockStart", &json!({ "contentBlockIndex": 0 }))?,
    ];
    for frame in opening {
        if !send(frame).await {
            return Ok(StreamStatus::Cancelled);
        }
    }
    for (index, piece) in reply.pieces.iter().enumerate() {
        if let Some(failure) = &plan.failure
            && failure.after_deltas == index
        {
            let frame = exception_frame("modelStreamErrorException", &failure.message)?;
            return Ok(if send(frame).await { StreamStatus::Failed } else { StreamStatus::Cancelled });
        }
        if index > 0 && plan.stall_after == Some(index) {
            return Ok(stall(frames).await);
        }
        let delay = if index == 0 { plan.first_token_delay } else { plan.delta_delay };
        if !pause(frames, delay).await {
            return Ok(StreamStatus::Cancelled);
        }
        let delta = json!({ "contentBlockIndex": 0, "delta": { "text": piece } });
        if !send(event_frame("contentBlockDelta", &delta)?).await {
            return Ok(StreamStatus::Cancelled);
        }
        standin.update_stream(id, |record| {
            record.deltas_sent += 1;
            record.first_delta_at.get_or_insert_with(Instant::now);
        });
    }
    if let Some(failure) = &plan.failure {
        // Asked to fail after more deltas than the answer has: fail at its end.
        let frame = exception_frame("modelStreamErrorException", &failure.message)?;
        return Ok(if send(frame).await { StreamStatus::Failed } else { StreamStatus::Cancelled });
    }
    let output_tokens = estimated_tokens(&reply.answer);
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let closing = [
        event_frame("contentBlockStop", &json!({ "contentBlockIndex": 0 }))?,
        event_frame("messageStop", &json!({ "stopReason": reply.stop_reason }))?,
        event_frame("metadata", &metadata(reply.input_tokens, output_tokens, reply.cache, latency_ms))?,
    ];
    for frame in closing {
        if !send(frame).await {
            return Ok(StreamStatus::Cancelled);
        }
    }
    Ok(StreamStatus::Completed)
}

/// Usage as Bedrock reports it: with a cache point, the cached tokens are
/// counted apart from `inputTokens` and added to the total.
fn metadata(input_tokens: u32, output_tokens: u32, cache: Option<CacheUse>, latency_ms: u64) -> Value {
    let cached = cache.map_or(0, |c| c.read + c.written);
    let mut usage = json!({
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens.saturating_add(output_tokens).saturating_add(cached),
    });
    if let Some(cache) = cache {
        usage["cacheReadInputTokens"] = json!(cache.read);
        usage["cacheWriteInputTokens"] = json!(cache.written);
    }
    json!({ "usage": usage, "metrics": { "latencyMs": latency_ms } })
}

/// A hung model: the stream stays open and says nothing until the client leaves.
async fn stall(frames: &mpsc::Sender<Result<Bytes, Infallible>>) -> StreamStatus {
    frames.closed().await;
    StreamStatus::Cancelled
}

/// Waits `delay`, returning false as soon as the client has gone.
async fn pause(frames: &mpsc::Sender<Result<Bytes, Infallible>>, delay: std::time::Duration) -> bool {
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = frames.closed() => return false,
        }
    }
    !frames.is_closed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> Result<ConverseRequest, String> {
        parse(json.as_bytes())
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        assert!(request("not json").is_err_and(|e| e.contains("Malformed")));
        assert!(request(r#"{"messages": []}"#).is_err_and(|e| e.contains("at least one")));
        assert!(
            request(r#"{"messages": [{"role": "robot", "content": []}]}"#)
                .is_err_and(|e| e.contains("robot"))
        );
        let hot = r#"{"messages": [{"role": "user", "content": [{"text": "hi"}]}], "inferenceConfig": {"temperature": 3}}"#;
        assert!(request(hot).is_err_and(|e| e.contains("temperature")));
    }

    #[test]
    fn the_prompt_is_the_last_user_message_and_other_blocks_are_ignored() {
        let body = r#"{
            "system": [{"text": "Be kind."}],
            "messages": [
                {"role": "user", "content": [{"text": "first"}]},
                {"role": "assistant", "content": [{"text": "answer"}]},
                {"role": "user", "content": [{"image": {"format": "png"}}, {"text": "Question: second"}]}
            ]
        }"#;
        let Ok(parsed) = request(body) else { panic!("valid request refused") };
        assert_eq!(prompt_text(&parsed), ("Question: second".into(), "Be kind.".into()));
    }

    #[test]
    fn a_small_token_budget_cuts_the_answer_and_says_so() {
        let body = r#"{"messages": [{"role": "user", "content": [{"text":
            "<context>Tutors read with two students every week at school.</context> Question: What do tutors do?"}]}],
            "inferenceConfig": {"maxTokens": 4}}"#;
        let Ok(parsed) = request(body) else { panic!("valid request refused") };
        let (prompt, system) = prompt_text(&parsed);
        let reply = reply_to(&parsed, &Prompt::parse(&prompt, &system), &system);
        assert_eq!(reply.stop_reason, "max_tokens");
        assert_eq!(reply.answer, "Tutors read with ");
        assert!(reply.input_tokens > 0);
    }
}
