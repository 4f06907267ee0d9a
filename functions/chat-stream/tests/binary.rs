//! The chat-stream binary itself (main.rs, settings from the template's
//! environment, the response-streaming adapter) under a Lambda Runtime
//! API emulator, against a local stack that enforces IAM.

use std::{path::Path, time::Duration};

use local_stack::{
    LocalStack, StackOptions,
    runtime_api::{FunctionUnderTest, sample_event},
};

#[tokio::test]
async fn the_binary_streams_an_answer_to_a_function_url_event_as_it_is_written() {
    let stack = LocalStack::start(StackOptions::for_tests()).await.unwrap();
    stack.bedrock.set_delta_delay(Duration::from_millis(20));
    let binary = Path::new(env!("CARGO_BIN_EXE_chat-stream"));
    let function = FunctionUnderTest::start(&stack, "ChatStreamFunction", binary, &[]).await.unwrap();

    let invocation = function.invoke(sample_event("chat-stream/question.json")).await.unwrap();

    assert!(invocation.streamed, "answered in RESPONSE_STREAM mode");
    let (prelude, body) = invocation.http_response().unwrap();
    assert_eq!(prelude["statusCode"], 200);
    assert_eq!(prelude["headers"]["content-type"], "text/event-stream");
    let body = String::from_utf8(body).unwrap();
    assert!(body.starts_with(":ok\n\n"), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let text_frames = body.matches("\"type\":\"text\"").count();
    let text_chunks = invocation
        .chunks
        .iter()
        .filter(|(_, chunk)| String::from_utf8_lossy(chunk).contains("\"type\":\"text\""))
        .count();
    assert!(text_frames > 3, "{body}");
    // The runtime's HTTP client to the Runtime API leaves Nagle's algorithm
    // on, so a write can wait for the previous one's ACK and travel with the
    // next; most frames still arrive on their own.
    assert!(text_chunks * 2 > text_frames, "{text_chunks} chunks carried {text_frames} text frames");
    let (first, last) = (invocation.chunks.first().unwrap().0, invocation.chunks.last().unwrap().0);
    assert!(last > first, "the frames arrived over time, not all at once");
    function.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn the_binary_refuses_a_malformed_body_before_streaming() {
    let stack = LocalStack::start(StackOptions::for_tests()).await.unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_chat-stream"));
    let function = FunctionUnderTest::start(&stack, "ChatStreamFunction", binary, &[]).await.unwrap();

    let invocation = function.invoke(sample_event("chat-stream/malformed-body.json")).await.unwrap();

    let (prelude, body) = invocation.http_response().unwrap();
    assert_eq!(prelude["statusCode"], 400);
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("\"code\":\"invalid_json\""), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    function.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn the_binary_takes_a_widget_analytics_batch_from_the_query_string() {
    let stack = LocalStack::start(StackOptions::for_tests()).await.unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_chat-stream"));
    let function = FunctionUnderTest::start(&stack, "ChatStreamFunction", binary, &[]).await.unwrap();

    let invocation = function.invoke(sample_event("chat-stream/analytics-batch.json")).await.unwrap();

    let (prelude, body) = invocation.http_response().unwrap();
    assert_eq!(prelude["statusCode"], 200, "{prelude}");
    assert_eq!(prelude["headers"]["content-type"], "application/json");
    assert_eq!(String::from_utf8(body).unwrap(), r#"{"accepted":3}"#);
    function.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn the_binary_answers_the_widgets_json_fallback_with_the_turn_buffered() {
    let stack = LocalStack::start(StackOptions::for_tests()).await.unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_chat-stream"));
    let function = FunctionUnderTest::start(&stack, "ChatStreamFunction", binary, &[]).await.unwrap();

    let invocation = function.invoke(sample_event("chat-stream/widget-fallback.json")).await.unwrap();

    let (prelude, body) = invocation.http_response().unwrap();
    assert_eq!(prelude["statusCode"], 200, "{prelude}");
    assert_eq!(prelude["headers"]["content-type"], "application/json");
    assert_eq!(
        prelude["headers"]["access-control-allow-origin"], "https://chat.myrecruiter.ai",
        "the widget's origin"
    );
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(answer["content"].as_str().is_some_and(|c| !c.is_empty()), "{answer}");
    assert_eq!(answer["session_id"], "sess-1001");
    function.stop().await;
    stack.stop().await;
}
