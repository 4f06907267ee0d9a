//! One isolated local stack per test: its own emulator and host on free ports,
//! the template's resources and the demo tenant, stopped when the test ends.
//! Quiet unless `TEST_LOG` is set.

use std::path::PathBuf;

pub use local_stack::{LocalStack, demo};
use local_stack::{StackOptions, repo_root};

/// Starts a fresh stack. Panics (failing the test) if it cannot start.
pub async fn spawn_stack() -> LocalStack {
    spawn_stack_with(None).await
}

/// A fresh stack whose functions see these extra settings (e.g. shorter deadlines).
pub async fn spawn_stack_with_env(env: Vec<(String, String)>) -> LocalStack {
    let options = StackOptions { env, ..StackOptions::for_tests() };
    match LocalStack::start(options).await {
        Ok(stack) => stack,
        Err(err) => panic!("local stack did not start: {}", domain::report::error_chain(&err)),
    }
}

/// A fresh stack whose host also runs the outbox sweeper on a timer.
pub async fn spawn_stack_with(sweep: Option<local_stack::Sweep>) -> LocalStack {
    start(sweep, None).await
}

/// A fresh stack that also runs fulfillment: the host polls the email, SMS and
/// handler queues. A failed record comes back after a second (Lambda waits the
/// queue's 180 s), so five receives and the DLQ take seconds, not minutes.
pub async fn spawn_fulfilling_stack() -> LocalStack {
    start(None, Some(FAST_POLLING)).await
}

/// Consumers as in AWS, but a failed record is retried after one second.
pub const FAST_POLLING: local_stack::consumers::Polling =
    local_stack::consumers::Polling { retry_delay: Some(std::time::Duration::from_secs(1)), pollers: 3 };

async fn start(
    sweep: Option<local_stack::Sweep>,
    consumers: Option<local_stack::consumers::Polling>,
) -> LocalStack {
    // Tests sweep and consume explicitly unless they ask, so nothing runs behind their back.
    let options = StackOptions { sweep, consumers, ..StackOptions::for_tests() };
    match LocalStack::start(options).await {
        Ok(stack) => stack,
        Err(err) => panic!("local stack did not start: {}", domain::report::error_chain(&err)),
    }
}

/// The real tenant configs of the system we replace, kept with the tests.
pub fn tenant_fixtures() -> Vec<PathBuf> {
    let dir = repo_root().join("tests/fixtures/tenant-configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Writes an object into the stack's config bucket.
pub async fn put_config_object(stack: &LocalStack, key: &str, body: impl Into<Vec<u8>>) {
    local_stack::s3_client(&stack.sdk_config)
        .put_object()
        .bucket(&stack.settings.config_bucket)
        .key(key)
        .body(body.into().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {}", domain::report::error_chain(&e)));
}

/// One SSE block (a data frame or a comment) as the client received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: std::time::Instant,
    /// The block without its trailing blank line, e.g. `data: {...}` or `: x-total-tokens=12`.
    pub raw: String,
}

impl Received {
    /// The JSON payload of a data frame (`None` for comments and `[DONE]`).
    pub fn json(&self) -> Option<serde_json::Value> {
        self.raw.strip_prefix("data: ").and_then(|data| serde_json::from_str(data).ok())
    }

    pub fn frame_type(&self) -> Option<String> {
        self.json().and_then(|v| v["type"].as_str().map(str::to_owned))
    }
}

/// A chat response read block by block, each stamped with its arrival time.
pub struct ChatReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub blocks: Vec<Received>,
    /// How many network chunks carried the body (each frame should be its own).
    pub chunks: usize,
}

impl ChatReply {
    pub fn types(&self) -> Vec<String> {
        self.blocks
            .iter()
            .map(|b| match b.frame_type() {
                Some(t) => t,
                None if b.raw == "data: [DONE]" => "[DONE]".to_owned(),
                None => b.raw.split('=').next().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    pub fn frames_of(&self, frame_type: &str) -> Vec<serde_json::Value> {
        self.blocks
            .iter()
            .filter(|b| b.frame_type().as_deref() == Some(frame_type))
            .filter_map(Received::json)
            .collect()
    }

    pub fn text(&self) -> String {
        self.frames_of("text").iter().filter_map(|f| f["content"].as_str().map(str::to_owned)).collect()
    }
}

/// POSTs `body` to the host's `/chat` and reads the whole stream.
pub async fn post_chat(stack: &LocalStack, body: impl Into<String>) -> ChatReply {
    post_to(stack, "/chat", body.into()).await
}

/// Starts a chat and returns the response before reading its body.
pub async fn open_chat(stack: &LocalStack, body: &serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat", stack.host_url()))
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /chat: {e}"))
}

/// Reads an open chat stream until `count` text frames have arrived.
pub async fn read_until_text_frames(response: &mut reqwest::Response, count: usize) {
    let mut seen = String::new();
    while seen.matches("\"type\":\"text\"").count() < count {
        match response.chunk().await {
            Ok(Some(chunk)) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("stream ended after {seen:?}: {other:?}"),
        }
    }
}

pub async fn read_reply(mut response: reqwest::Response) -> ChatReply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut buffer = String::new();
    let mut blocks = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = response.chunk().await.unwrap_or_else(|e| panic!("reading the stream: {e}")) {
        chunks += 1;
        let at = std::time::Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            blocks.push(Received { at, raw: buffer[..end].to_owned() });
            buffer.drain(..end + 2);
        }
    }
    assert!(buffer.is_empty(), "stream ended mid-frame: {buffer:?}");
    ChatReply { status, headers, blocks, chunks }
}

/// Registers a tenant (mapping and config) in the stack's config bucket.
pub async fn put_tenant(stack: &LocalStack, hash: &str, tenant_id: &str, config: &serde_json::Value) {
    if let Err(err) = stack.put_tenant(hash, tenant_id, config).await {
        panic!("registering {tenant_id}: {}", domain::report::error_chain(&err));
    }
}

/// A fixture tenant of `tests/fixtures/<name>/`: its config (with its own
/// `tenant_hash` and `tenant_id`) and its knowledge-base documents, written
/// as production holds them. Returns the config, to derive variants from.
pub async fn put_fixture_tenant(stack: &LocalStack, name: &str) -> serde_json::Value {
    let dir = repo_root().join("tests/fixtures").join(name);
    let read = |path: PathBuf| std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let config: serde_json::Value = serde_json::from_slice(&read(dir.join("config.json"))).unwrap();
    let field = |key: &str| config[key].as_str().unwrap_or_else(|| panic!("{name} has no {key}")).to_owned();
    put_tenant(stack, &field("tenant_hash"), &field("tenant_id"), &config).await;
    let kb_id = config["aws"]["knowledge_base_id"].as_str().unwrap_or_default();
    for entry in std::fs::read_dir(dir.join("kb")).into_iter().flatten().filter_map(Result::ok) {
        let file = entry.file_name().to_string_lossy().into_owned();
        put_config_object(stack, &format!("knowledge-base/{kb_id}/{file}"), read(entry.path())).await;
    }
    config
}

/// The demo tenant's config, to derive test tenants from.
pub fn demo_config() -> serde_json::Value {
    let path = repo_root().join("tools/demo-tenant/config.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A chat request body for the demo tenant.
pub fn ask(question: &str) -> serde_json::Value {
    serde_json::json!({"tenant_hash": demo::DEMO_TENANT_HASH, "user_input": question, "session_id": "test-session"})
}

/// POSTs `body` to the host's `/forms` and reads the answer.
pub async fn post_forms(stack: &LocalStack, body: &serde_json::Value) -> ChatReply {
    post_to(stack, "/forms", body.to_string()).await
}

/// POSTs a raw body to any host path and reads the answer block by block.
pub async fn post_to(stack: &LocalStack, path: &str, body: String) -> ChatReply {
    read_reply(post_json(stack, path, body).await).await
}

/// POSTs a raw JSON body to any host path and returns the response unread.
pub async fn post_json(stack: &LocalStack, path: &str, body: String) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", stack.host_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// One item of the submissions table, read consistently (empty when absent).
pub async fn submission_item(
    stack: &LocalStack,
    submission_id: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    aws_sdk_dynamodb::Client::new(&stack.sdk_config)
        .get_item()
        .table_name(&stack.settings.form_submissions_table)
        .key("submission_id", aws_sdk_dynamodb::types::AttributeValue::S(submission_id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {submission_id}: {e}"))
        .item
        .unwrap_or_default()
}

/// Every item of the submissions table.
pub async fn submissions(
    stack: &LocalStack,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    aws_sdk_dynamodb::Client::new(&stack.sdk_config)
        .scan()
        .table_name(&stack.settings.form_submissions_table)
        .send()
        .await
        .unwrap_or_else(|e| panic!("scan: {e}"))
        .items
        .unwrap_or_default()
}

/// Receives (and deletes) every message waiting on a queue of the template.
pub async fn drain_queue(stack: &LocalStack, logical_id: &str) -> Vec<serde_json::Value> {
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config);
    let url = &stack.created[logical_id].reference;
    let mut bodies = Vec::new();
    loop {
        let received = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for message in messages {
            bodies.push(serde_json::from_str(message.body().unwrap_or("null")).unwrap_or_default());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .unwrap();
        }
    }
}

/// The events an archive of the template holds, from the emulator's state dump.
pub async fn archived_events(stack: &LocalStack, logical_id: &str) -> Vec<serde_json::Value> {
    let name = &stack.created[logical_id].reference;
    let data: serde_json::Value = reqwest::get(format!("{}/moto-api/data.json", stack.endpoint))
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("/moto-api/data.json: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("/moto-api/data.json: {e}"));
    let archives = data.pointer("/events/Archive").and_then(serde_json::Value::as_array).cloned();
    let archive = archives.unwrap_or_default().into_iter().find(|a| a["name"] == name.as_str());
    let archive = archive.unwrap_or_else(|| panic!("no archive {name} in the emulator"));
    archive["events"].as_array().cloned().unwrap_or_default()
}

/// GETs a host path (with `If-None-Match` when given) and returns the response.
pub async fn get_from(stack: &LocalStack, path: &str, if_none_match: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{}{path}", stack.host_url()));
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    request.send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// POSTs a raw body to any host path from a browser on `origin` (`None`: no
/// `Origin` header, as a server-to-server caller) and reads the answer.
pub async fn post_from(stack: &LocalStack, path: &str, body: String, origin: Option<&str>) -> ChatReply {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", stack.host_url()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    read_reply(request.send().await.unwrap_or_else(|e| panic!("POST {path}: {e}"))).await
}

/// Every counter item of the rate-limits table.
pub async fn rate_limit_counters(
    stack: &LocalStack,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    aws_sdk_dynamodb::Client::new(&stack.sdk_config)
        .scan()
        .table_name(&stack.settings.rate_limits_table)
        .send()
        .await
        .unwrap_or_else(|e| panic!("scan: {e}"))
        .items
        .unwrap_or_default()
}

/// Waits, if need be, until at least `margin` is left in the current UTC
/// minute, so a burst a test counts falls in one fixed window.
pub async fn away_from_the_minute_edge(margin: std::time::Duration) {
    let now = domain::limits::now_seconds();
    let left = 60 - now % 60;
    if left < margin.as_secs() {
        tokio::time::sleep(std::time::Duration::from_secs(left + 1)).await;
    }
}
