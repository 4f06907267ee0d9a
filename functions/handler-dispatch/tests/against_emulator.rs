//! handler-dispatch against the emulator. The local stack stores a real
//! submission through `POST /forms`; the channel is then called as the Lambda
//! calls it, with the EventBridge envelope an SQS record carries.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use aws_adapters::{dynamodb::DynamoSubmissionStore, s3::S3ConfigSource};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::types::ServerSideEncryption;
use axum::{Json, Router, http::HeaderMap, routing::post};
use domain::{
    events::{DETAIL_TYPE, SOURCE},
    fulfillment::StoredSubmission,
    tenant::TenantLoader,
};
use handler_dispatch::{AwsHandlerConsumer, aws_consumer};
use lambda_edge::consumer::Disposition;
use local_stack::{LocalStack, StackOptions, demo, repo_root};
use serde_json::{Value, json};

const READING: &str = "reading_buddy_application";
/// The demo tenant archives this form here (`fulfillment.bucket`).
const ARCHIVE_BUCKET: &str = "riverbend-form-archive";

async fn spawn_stack() -> LocalStack {
    // Nothing polls the queues: each test sees exactly what it put there.
    LocalStack::start(StackOptions::for_tests())
        .await
        .unwrap_or_else(|err| panic!("local stack did not start: {}", domain::report::error_chain(&err)))
}

/// The consumer the Lambda would run, with `WEBHOOK_ALLOW_PRIVATE` as given.
fn consumer(stack: &LocalStack, allow_private: bool) -> AwsHandlerConsumer {
    let mut settings = stack.settings.clone();
    settings.webhook_allow_private = allow_private;
    let source =
        S3ConfigSource::new(aws_adapters::s3::S3::new(&stack.sdk_config), settings.config_bucket.clone());
    aws_consumer(&stack.sdk_config, &settings, Arc::new(TenantLoader::new(source)))
}

fn reading_data() -> Value {
    json!({
        "age_18_plus": "yes", "first_name": "Ana", "last_name": "Lopez", "email": "ana.lopez@example.org",
        "phone": "+1 (503) 555-0199", "zip_code": "97412", "availability": "Weekday afternoons",
        "why_reading_buddies": "I loved reading with my grandmother and want to pass that on to kids."
    })
}

/// Submits the Reading Buddies form for the tenant behind `tenant_hash`; its submission id.
async fn submit(stack: &LocalStack, tenant_hash: &str) -> String {
    let body = json!({"tenant_hash": tenant_hash, "form_mode": true, "action": "submit_form",
                      "form_id": READING, "form_data": reading_data()});
    let text = reqwest::Client::new()
        .post(format!("{}/forms", stack.host_url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .and_then(|response| response.error_for_status())
        .unwrap_or_else(|e| panic!("POST /forms: {e}"))
        .text()
        .await
        .unwrap();
    let complete = text
        .split("\n\n")
        .filter_map(|block| block.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find(|frame| frame["type"] == "form_complete")
        .unwrap_or_else(|| panic!("no form_complete frame in {text:?}"));
    complete["submissionId"].as_str().unwrap().to_owned()
}

fn store(stack: &LocalStack) -> DynamoSubmissionStore {
    DynamoSubmissionStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk_config),
        &stack.settings.form_submissions_table,
    )
}

async fn stored(stack: &LocalStack, submission_id: &str) -> StoredSubmission {
    store(stack).load(submission_id).await.unwrap().unwrap_or_else(|| panic!("{submission_id} is not stored"))
}

/// The `fulfillment.handler` record of a submission.
async fn handler_record(stack: &LocalStack, submission_id: &str) -> BTreeMap<String, String> {
    stored(stack, submission_id).await.fulfillment.remove("handler").unwrap_or_default()
}

/// The body of the SQS record EventBridge delivers for a stored submission.
async fn record_body(stack: &LocalStack, submission_id: &str) -> String {
    let submission = stored(stack, submission_id).await;
    assert!(
        submission.channels.iter().any(|c| c == "handler"),
        "handler is planned: {:?}",
        submission.channels
    );
    let event = submission.event();
    json!({"version": "0", "id": "e-1", "detail-type": DETAIL_TYPE, "source": SOURCE, "time": "t",
           "region": "us-east-1", "resources": [], "detail": event})
    .to_string()
}

fn archive_key(submission_id: &str) -> String {
    format!("submissions/{}/{READING}/{submission_id}.json", demo::DEMO_TENANT_ID)
}

async fn create_archive_bucket(stack: &LocalStack) {
    let s3 = local_stack::s3_client(&stack.sdk_config);
    if let Err(err) = s3.create_bucket().bucket(ARCHIVE_BUCKET).send().await {
        let owned = err.as_service_error().is_some_and(|e| e.is_bucket_already_owned_by_you());
        assert!(owned, "create {ARCHIVE_BUCKET}: {}", domain::report::error_chain(&err));
    }
}

async fn archive_exists(stack: &LocalStack, key: &str) -> bool {
    let head =
        local_stack::s3_client(&stack.sdk_config).head_object().bucket(ARCHIVE_BUCKET).key(key).send().await;
    match head {
        Ok(_) => true,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => false,
        Err(err) => panic!("head {key}: {}", domain::report::error_chain(&err)),
    }
}

#[tokio::test]
async fn an_s3_handler_archives_the_submission_encrypted_at_the_documented_key() {
    let stack = spawn_stack().await;
    create_archive_bucket(&stack).await;
    let id = submit(&stack, demo::DEMO_TENANT_HASH).await;

    let disposition = consumer(&stack, false).handle_record(&record_body(&stack, &id).await).await;

    assert_eq!(disposition, Disposition::Ack);
    assert_eq!(handler_record(&stack, &id).await["status"], "sent");
    let object = local_stack::s3_client(&stack.sdk_config)
        .get_object()
        .bucket(ARCHIVE_BUCKET)
        .key(archive_key(&id))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {}: {}", archive_key(&id), domain::report::error_chain(&e)));
    assert_eq!(object.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    assert_eq!(object.content_type(), Some("application/json"));
    let document: Value = serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap();
    let submission = stored(&stack, &id).await;
    assert_eq!(
        document,
        json!({
            "submission_id": id, "tenant_id": demo::DEMO_TENANT_ID, "form_id": READING,
            "priority": submission.priority, "submitted_at": submission.submitted_at, "data": reading_data(),
        })
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_redelivery_or_a_retry_after_the_archive_was_written_does_not_write_again() {
    let stack = spawn_stack().await;
    create_archive_bucket(&stack).await;
    let id = submit(&stack, demo::DEMO_TENANT_HASH).await;
    let consumer = consumer(&stack, false);
    let body = record_body(&stack, &id).await;
    assert_eq!(consumer.handle_record(&body).await, Disposition::Ack);
    let key = archive_key(&id);
    assert!(archive_exists(&stack, &key).await);
    local_stack::s3_client(&stack.sdk_config)
        .delete_object()
        .bucket(ARCHIVE_BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();

    // The same record again (SQS at-least-once, or a replay).
    assert_eq!(consumer.handle_record(&body).await, Disposition::Ack);
    assert!(!archive_exists(&stack, &key).await, "a sent channel is not done again");
    assert_eq!(handler_record(&stack, &id).await["status"], "sent");

    // As if the earlier delivery had written the archive but lost its outcome.
    aws_sdk_dynamodb::Client::new(&stack.sdk_config)
        .update_item()
        .table_name(&stack.settings.form_submissions_table)
        .key("submission_id", AttributeValue::S(id.clone()))
        .update_expression("SET fulfillment.#c.#s = :failed")
        .expression_attribute_names("#c", "handler")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":failed", AttributeValue::S("failed".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(consumer.handle_record(&body).await, Disposition::Ack);
    assert!(!archive_exists(&stack, &key).await, "the recorded archive part is not repeated");
    let record = handler_record(&stack, &id).await;
    assert_eq!(record["status"], "sent");
    assert!(record.contains_key("archive_done_at"), "{record:?}");
    stack.stop().await;
}

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    content_type: Option<String>,
    body: Value,
}

/// A webhook receiver on loopback; its URL and what it received.
async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let sink = Arc::clone(&received);
    let app = Router::new().route(
        "/hooks/intake",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
            sink.lock().unwrap().push(Received { content_type, body });
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hooks/intake?token=local-test"), received)
}

/// Registers a copy of the demo tenant whose Reading Buddies form posts to `url`.
async fn put_webhook_tenant(stack: &LocalStack, hash: &str, tenant_id: &str, url: &str) {
    let path = repo_root().join("tools/demo-tenant/config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["tenant_id"] = json!(tenant_id);
    config["tenant_hash"] = json!(hash);
    config["conversational_forms"][READING]["fulfillment"] = json!({"type": "webhook", "webhook_url": url});
    if let Err(err) = stack.put_tenant(hash, tenant_id, &config).await {
        panic!("registering {tenant_id}: {}", domain::report::error_chain(&err));
    }
}

#[tokio::test]
async fn a_webhook_reaches_a_local_receiver_with_the_documented_body_when_private_targets_are_allowed() {
    let stack = spawn_stack().await;
    let (url, received) = receiver().await;
    put_webhook_tenant(&stack, "hookallowed01", "HOOK000001", &url).await;
    let id = submit(&stack, "hookallowed01").await;

    let disposition = consumer(&stack, true).handle_record(&record_body(&stack, &id).await).await;

    assert_eq!(disposition, Disposition::Ack);
    assert_eq!(handler_record(&stack, &id).await["status"], "sent");
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    let submission = stored(&stack, &id).await;
    assert_eq!(received[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        received[0].body,
        json!({
            "form_id": READING, "submission_id": id, "priority": submission.priority,
            "timestamp": submission.submitted_at, "data": reading_data(),
        })
    );
    stack.stop().await;
}

#[tokio::test]
async fn a_webhook_to_a_local_receiver_is_refused_when_private_targets_are_not_allowed() {
    let stack = spawn_stack().await;
    let (url, received) = receiver().await;
    put_webhook_tenant(&stack, "hookrefused01", "HOOK000002", &url).await;
    let id = submit(&stack, "hookrefused01").await;

    let disposition = consumer(&stack, false).handle_record(&record_body(&stack, &id).await).await;

    assert_eq!(disposition, Disposition::Ack, "refused for good, not retried");
    let record = handler_record(&stack, &id).await;
    assert_eq!(record["status"], "failed");
    assert!(record["last_error"].contains("https"), "{record:?}");
    assert!(!record["last_error"].contains("local-test"), "the query is not recorded: {record:?}");
    assert!(received.lock().unwrap().is_empty(), "no request was made");
    stack.stop().await;
}
