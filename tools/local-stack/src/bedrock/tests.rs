//! The stand-in driven by the real SDK clients, through the same adapters the
//! chat function uses. ConverseStream tests run the stand-in alone; Retrieve
//! tests start a whole stack on free ports, since the documents live in S3.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use aws_adapters::{bedrock::BedrockKnowledgeBase, bedrock::BedrockModel};
use domain::{
    knowledge::{KnowledgeBase, Passage},
    model::{ModelError, ModelErrorKind, ModelEvent, ModelEvents, ModelRequest, ModelStream, Role, Turn},
};
use lambda_edge::Settings;

use super::{BedrockStandIn, NO_ANSWER, StandInOptions, StandInServer, StreamStatus};
use crate::{LocalStack, REGION, StackOptions};

const MODEL: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
const DEMO_KB: &str = "RIVKB00001";
const PATIENCE: Duration = Duration::from_secs(10);

const PROMPT: &str = "<context>\n\
[1] Reading Buddies (s3://bucket/knowledge-base/KB/reading-buddies.md)\n\
## Schedule and commitment\n\n\
- **Days:** Monday through Thursday. We do not tutor on Fridays.\n\
- **Commitment:** the full school year, from October through May.\n\n\
[2] Donate (s3://bucket/knowledge-base/KB/donate.md)\n\
Your gift buys books for our nine partner schools.\n\
</context>\n\nQuestion: Which days do Reading Buddies tutor?";

/// A stand-in on a free port with a fast pace, and a model client pointed at it.
struct StandIn {
    standin: Arc<BedrockStandIn>,
    server: StandInServer,
    model: BedrockModel,
}

async fn stand_in() -> StandIn {
    // ConverseStream never touches S3; this client points nowhere on purpose.
    let s3 = crate::s3_client(&aws_adapters::config::emulator_sdk_config("http://127.0.0.1:9", REGION).await);
    let options = StandInOptions { first_token_delay: Duration::ZERO, delta_delay: Duration::from_millis(1) };
    let standin = BedrockStandIn::new(s3, "no-bucket", options);
    let server = StandInServer::start(&standin, "127.0.0.1:0").await.expect("stand-in starts");
    let settings =
        Settings::from_vars(HashMap::from([("AWS_ENDPOINT_URL_BEDROCK_RUNTIME".to_owned(), server.url())]))
            .expect("settings");
    let sdk_config = aws_adapters::config::emulator_sdk_config(&server.url(), REGION).await;
    let model = BedrockModel::new(aws_adapters::bedrock::bedrock_runtime_client(
        &sdk_config,
        settings.bedrock_runtime_endpoint_url.as_deref(),
        settings.model_first_event_timeout,
    ));
    StandIn { standin, server, model }
}

fn request(model_id: &str, question: &str) -> ModelRequest {
    ModelRequest {
        model_id: model_id.to_owned(),
        system: "You answer only from the context.".to_owned(),
        visitor_context: String::new(),
        cache_system: false,
        turns: vec![Turn { role: Role::User, text: question.to_owned() }],
        max_tokens: 1024,
        temperature: 0.2,
    }
}

/// Every event until the stream ends, or the first error with the events before it.
async fn read_all(events: &mut impl ModelEvents) -> (Vec<ModelEvent>, Option<ModelError>) {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(PATIENCE, events.next()).await.expect("stream stalled") {
            Ok(Some(event)) => seen.push(event),
            Ok(None) => return (seen, None),
            Err(err) => return (seen, Some(err)),
        }
    }
}

fn text_of(events: &[ModelEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn texts(events: &[ModelEvent]) -> usize {
    events.iter().filter(|e| matches!(e, ModelEvent::Text(_))).count()
}

#[tokio::test]
async fn the_sdk_decodes_a_whole_extractive_answer_with_stop_and_usage() {
    let s = stand_in().await;

    let mut events = s.model.open(&request(MODEL, PROMPT)).await.expect("stream opens");
    let (events, error) = read_all(&mut events).await;

    assert!(error.is_none(), "{error:?}");
    let answer = text_of(&events);
    assert!(answer.contains("Monday through Thursday"), "{answer}");
    assert!(!answer.contains("gift"), "{answer}");
    assert_eq!(events.first(), Some(&ModelEvent::BlockStart));
    assert!(texts(&events) > 3, "one delta per word: {events:?}");
    let tail = &events[events.len() - 2..];
    assert_eq!(tail[0], ModelEvent::Stop("end_turn".into()));
    let ModelEvent::Metadata(usage) = tail[1] else { panic!("metadata last: {events:?}") };
    assert!(usage.input_tokens > 0 && usage.output_tokens > 0);
    assert_eq!(usage.total_tokens, usage.input_tokens + usage.output_tokens);
    let record = s.standin.wait_for_stream(1, PATIENCE).await.expect("recorded");
    assert_eq!(record.status, StreamStatus::Completed);
    assert_eq!(record.answer, answer);
    assert_eq!(record.deltas_sent, texts(&events));
    assert_eq!(record.model_id, MODEL);
    assert_eq!(record.question, "Which days do Reading Buddies tutor?");
    s.server.stop().await;
}

#[tokio::test]
async fn a_question_without_context_is_answered_with_the_polite_refusal() {
    let s = stand_in().await;
    let prompt = "No knowledge base context was found for this question.\n\nQuestion: Who are you?";

    let mut events = s.model.open(&request(MODEL, prompt)).await.expect("stream opens");
    let (events, error) = read_all(&mut events).await;

    assert!(error.is_none(), "{error:?}");
    assert_eq!(text_of(&events), NO_ANSWER);
    s.server.stop().await;
}

#[tokio::test]
async fn a_throttled_request_surfaces_as_throttled_and_the_next_one_streams() {
    let s = stand_in().await;
    s.standin.throttle_next(1);

    let throttled = s.model.open(&request(MODEL, PROMPT)).await.err().expect("throttled");
    let mut retry = s.model.open(&request(MODEL, PROMPT)).await.expect("retry streams");

    assert_eq!(throttled.kind, ModelErrorKind::Throttled, "{throttled:?}");
    assert!(throttled.message.contains("Too many requests"), "{}", throttled.message);
    assert!(read_all(&mut retry).await.1.is_none());
    let statuses: Vec<_> = s.standin.streams().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [StreamStatus::Throttled, StreamStatus::Completed]);
    s.server.stop().await;
}

#[tokio::test]
async fn a_mid_stream_failure_surfaces_from_next_after_some_text() {
    let s = stand_in().await;
    s.standin.fail_next_mid_stream(1, 3, "The model stream broke.");

    let mut events = s.model.open(&request(MODEL, PROMPT)).await.expect("stream opens");
    let (events, error) = read_all(&mut events).await;

    assert_eq!(texts(&events), 3, "{events:?}");
    let error = error.expect("an error after three deltas");
    assert_eq!(error.kind, ModelErrorKind::Unavailable);
    assert_eq!(error.message, "The model stream broke.");
    let record = s.standin.wait_for_stream(1, PATIENCE).await.expect("recorded");
    assert_eq!((record.status, record.deltas_sent), (StreamStatus::Failed, 3));
    s.server.stop().await;
}

#[tokio::test]
async fn a_rejected_model_id_surfaces_as_model_rejected() {
    let s = stand_in().await;
    s.standin.reject_model("anthropic.claude-v2");

    let error = s.model.open(&request("anthropic.claude-v2", PROMPT)).await.err().expect("rejected");

    assert_eq!(error.kind, ModelErrorKind::ModelRejected, "{error:?}");
    assert_eq!(error.message, "The provided model identifier is invalid.");
    assert_eq!(s.standin.streams()[0].status, StreamStatus::Rejected);
    s.server.stop().await;
}

#[tokio::test]
async fn dropping_the_events_mid_answer_is_recorded_as_cancelled() {
    let s = stand_in().await;
    s.standin.set_delta_delay(Duration::from_millis(40));

    let mut events = s.model.open(&request(MODEL, PROMPT)).await.expect("stream opens");
    let mut seen = 0;
    while seen < 2 {
        if let Ok(Some(ModelEvent::Text(_))) = events.next().await {
            seen += 1;
        }
    }
    drop(events);

    let records = s.standin.wait_until_idle(PATIENCE).await.expect("the stream ends");
    assert_eq!(records[0].status, StreamStatus::Cancelled, "{records:?}");
    let total = super::answer::chunks(&records[0].answer).len();
    assert!(records[0].deltas_sent < total, "{} of {total} deltas", records[0].deltas_sent);
    s.server.stop().await;
}

#[tokio::test]
async fn the_first_token_delay_holds_back_only_the_first_text() {
    let s = stand_in().await;
    s.standin.set_first_token_delay(Duration::from_millis(300));
    let started = Instant::now();

    let mut events = s.model.open(&request(MODEL, PROMPT)).await.expect("stream opens");
    let opened = started.elapsed();
    while !matches!(events.next().await, Ok(Some(ModelEvent::Text(_))) | Ok(None) | Err(_)) {}
    let first_text = started.elapsed();

    assert!(opened < Duration::from_millis(300), "opened after {opened:?}");
    assert!(first_text >= Duration::from_millis(300), "first text after {first_text:?}");
    s.server.stop().await;
}

#[tokio::test]
async fn a_malformed_body_gets_a_validation_exception_and_faults_can_be_set_over_http() {
    let s = stand_in().await;
    let http = reqwest::Client::new();
    let url = s.server.url();

    let bad = http
        .post(format!("{url}/model/{}/converse-stream", "m%3A0"))
        .body("{not json")
        .send()
        .await
        .expect("answered");
    let set = http
        .post(format!("{url}/_standin/faults"))
        .json(&serde_json::json!({"throttle_next": 2, "rejected_models": ["old"]}))
        .send()
        .await
        .expect("answered");
    let misspelt = http
        .post(format!("{url}/_standin/faults"))
        .json(&serde_json::json!({"throttle": 2}))
        .send()
        .await
        .expect("answered");
    let streams: serde_json::Value = http
        .get(format!("{url}/_standin/streams"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");

    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["x-amzn-errortype"], "ValidationException");
    let body: serde_json::Value = bad.json().await.expect("json error");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("Malformed")), "{body}");
    assert_eq!(set.status(), 200);
    assert_eq!(s.standin.faults().throttle_next, 2);
    assert!(s.standin.faults().rejected_models.contains("old"));
    assert_eq!(misspelt.status(), 400);
    assert_eq!(streams[0]["model_id"], "m:0");
    assert_eq!(streams[0]["status"], "invalid");
    s.server.stop().await;
}

/// A whole stack on free ports: moto, the template's resources, the demo tenant, the stand-in.
async fn stack() -> LocalStack {
    let options = StackOptions::for_tests();
    LocalStack::start(options).await.expect("local stack starts")
}

/// The chat function's knowledge-base client, configured from the stack's settings.
fn knowledge_base(stack: &LocalStack) -> BedrockKnowledgeBase {
    BedrockKnowledgeBase::new(aws_adapters::bedrock::bedrock_agent_runtime_client(
        &stack.sdk_config,
        stack.settings.bedrock_agent_runtime_endpoint_url.as_deref(),
        stack.settings.retrieve_timeout,
    ))
}

#[tokio::test]
async fn retrieve_ranks_the_reading_buddies_document_first_for_a_reading_buddies_question() {
    let stack = stack().await;
    let kb = knowledge_base(&stack);

    let passages =
        kb.retrieve(DEMO_KB, "What does a Reading Buddies tutor do each week?").await.expect("retrieved");

    assert!(!passages.is_empty() && passages.len() <= 5, "{passages:#?}");
    let Passage { title, uri, score, .. } = &passages[0];
    assert_eq!(title, "Reading Buddies");
    let bucket = &stack.settings.config_bucket;
    assert_eq!(uri, &format!("s3://{bucket}/knowledge-base/{DEMO_KB}/reading-buddies.md"));
    assert!(*score > 0.0 && *score < 1.0);
    assert!(passages.windows(2).all(|w| w[0].score >= w[1].score), "ranked by score");
    assert!(passages.iter().all(|p| !p.text.trim().is_empty() && !p.title.is_empty()));
    assert_eq!(stack.settings.bedrock_runtime_endpoint_url.as_deref(), Some(stack.bedrock_url.as_str()));
    assert_eq!(stack.bedrock.retrievals()[0].results, passages.len());
    stack.stop().await;
}

#[tokio::test]
async fn an_unknown_knowledge_base_is_an_error_until_documents_are_written_for_it() {
    let stack = stack().await;
    let kb = knowledge_base(&stack);

    let unknown = kb.retrieve("NOSUCHKB01", "volunteer").await;
    crate::s3_client(&stack.sdk_config)
        .put_object()
        .bucket(&stack.settings.config_bucket)
        .key("knowledge-base/NOSUCHKB01/parking.md")
        .body(b"# Parking\n\nVisitors park free in the lot behind the library on weekdays.".to_vec().into())
        .send()
        .await
        .expect("document written");
    let known = kb.retrieve("NOSUCHKB01", "Where do visitors park?").await.expect("retrieved");

    let error = unknown.expect_err("unknown knowledge base");
    assert!(format!("{:?}", error.source).contains("ResourceNotFoundException"), "{error:?}");
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].title, "Parking");
    stack.stop().await;
}

#[tokio::test]
async fn an_injected_retrieve_failure_is_an_error_and_clears() {
    let stack = stack().await;
    let kb = knowledge_base(&stack);
    stack.bedrock.fail_retrieve(true);

    let failed = kb.retrieve(DEMO_KB, "donate").await;
    stack.bedrock.fail_retrieve(false);
    let recovered = kb.retrieve(DEMO_KB, "donate").await;

    let error = failed.expect_err("injected failure");
    assert!(format!("{:?}", error.source).contains("InternalServerException"), "{error:?}");
    assert!(recovered.is_ok_and(|p| !p.is_empty()));
    stack.stop().await;
}

#[tokio::test]
async fn an_answer_is_extracted_from_the_passages_retrieve_returned() {
    let stack = stack().await;
    let kb = knowledge_base(&stack);
    let model = BedrockModel::new(aws_adapters::bedrock::bedrock_runtime_client(
        &stack.sdk_config,
        stack.settings.bedrock_runtime_endpoint_url.as_deref(),
        stack.settings.model_first_event_timeout,
    ));
    stack.bedrock.set_delta_delay(Duration::ZERO);
    let question = "Who pays for the background check?";

    let passages = kb.retrieve(DEMO_KB, question).await.expect("retrieved");
    let context: Vec<String> = passages
        .iter()
        .enumerate()
        .map(|(i, p)| format!("[{}] {} ({})\n{}", i + 1, p.title, p.uri, p.text))
        .collect();
    let prompt = format!("<context>\n{}\n</context>\n\nQuestion: {question}", context.join("\n\n"));
    let mut events = model.open(&request(MODEL, &prompt)).await.expect("stream opens");
    let (events, error) = read_all(&mut events).await;

    assert!(error.is_none(), "{error:?}");
    let answer = text_of(&events);
    assert_ne!(answer, NO_ANSWER);
    assert!(answer.to_lowercase().contains("background check"), "{answer}");
    stack.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_during_the_first_token_delay_is_noticed_at_once() {
    let s = stand_in().await;
    s.standin.set_first_token_delay(Duration::from_secs(30));

    let mut events = s.model.open(&request(MODEL, PROMPT)).await.expect("stream opens");
    assert_eq!(events.next().await.ok().flatten(), Some(ModelEvent::BlockStart));
    drop(events);

    let records = s.standin.wait_until_idle(Duration::from_secs(2)).await.expect("noticed within 2 s");
    assert_eq!((records[0].status, records[0].deltas_sent), (StreamStatus::Cancelled, 0));
    s.server.stop().await;
}
