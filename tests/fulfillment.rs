//! Fulfillment, end to end: submissions go in through `/forms`; the host polls
//! the consumer queues as Lambda's SQS event sources do; effects are observed
//! in the emulator (`/moto-api/data.json`, the tables, the queues), the Lambda
//! stand-in and a local webhook server. The point of every test: a person gets
//! each email and SMS once, whatever is retried, replayed or redriven.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::DateTime;
use e2e::{
    FAST_POLLING, LocalStack, demo, demo_config, drain_queue, post_forms, put_tenant, spawn_fulfilling_stack,
    spawn_stack,
};
use lambda_edge::consumer::Disposition;
use serde_json::{Value, json};

const READING: &str = "reading_buddy_application";
const MENTOR: &str = "bridge_mentor_application";
const TEAM_PHONE: &str = "+15035550142";

fn reading_data(first_name: &str) -> Value {
    json!({
        "age_18_plus": "yes", "first_name": first_name, "last_name": "Lopez", "email": "ana.lopez@example.org",
        "phone": "+1 (503) 555-0199", "zip_code": "97412", "availability": "Weekday afternoons",
        "why_reading_buddies": "I loved reading with my grandmother and want to pass that on to kids."
    })
}

fn mentor_data() -> Value {
    json!({
        "one_year_commitment": "yes", "first_name": "Sam", "last_name": "Reyes", "email": "sam.reyes@example.org",
        "phone": "503-555-0188", "date_of_birth": "1988-02-14", "zip_code": "97412", "speaks_spanish": "yes",
        "why_mentor": "A mentor changed my life as a teenager and I want to do the same for someone.",
        "references": "Dana Smith (coach), 503-555-0100", "background_check_consent": "yes"
    })
}

/// Submits a form for a tenant and returns the new submission id.
async fn submit(stack: &LocalStack, tenant_hash: &str, form_id: &str, data: Value) -> String {
    let body = json!({"tenant_hash": tenant_hash, "form_mode": true, "action": "submit_form",
                      "form_id": form_id, "form_data": data});
    let reply = post_forms(stack, &body).await;
    let frame = reply
        .blocks
        .iter()
        .find_map(|b| b.json().filter(|j| j["type"] == "form_complete"))
        .unwrap_or_default();
    assert_eq!(frame["status"], "success", "{:?}", reply.blocks);
    frame["submissionId"].as_str().unwrap().to_owned()
}

/// The emulator's record of what it did, e.g. `data(stack)["ses"]["Message"]`.
async fn moto_data(stack: &LocalStack) -> Value {
    reqwest::get(format!("{}/moto-api/data.json", stack.endpoint)).await.unwrap().json().await.unwrap()
}

fn records(data: &Value, service: &str, model: &str) -> Vec<Value> {
    data[service][model].as_array().cloned().unwrap_or_default()
}

async fn emails(stack: &LocalStack) -> Vec<Value> {
    records(&moto_data(stack).await, "ses", "Message")
}

async fn sms(stack: &LocalStack) -> Vec<Value> {
    records(&moto_data(stack).await, "sns", "SMS")
}

/// The submission item as stored.
async fn item(stack: &LocalStack, submission_id: &str) -> HashMap<String, AttributeValue> {
    e2e::submission_item(stack, submission_id).await
}

/// A submission's status, and its channels' records as plain strings.
async fn fulfillment(
    stack: &LocalStack,
    submission_id: &str,
) -> (String, HashMap<String, HashMap<String, String>>) {
    let item = item(stack, submission_id).await;
    let text = |v: &AttributeValue| v.as_s().or(v.as_n()).cloned().unwrap_or_default();
    let channels = item
        .get("fulfillment")
        .and_then(|f| f.as_m().ok())
        .map(|m| {
            m.iter()
                .map(|(c, r)| {
                    let record = r.as_m().map(|r| r.iter().map(|(k, v)| (k.clone(), text(v))).collect());
                    (c.clone(), record.unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    (item.get("status").map(text).unwrap_or_default(), channels)
}

/// Waits until `check` holds (every 200 ms, at most `limit`), then returns its last value.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every planned channel of the submission is terminal and rolled up.
/// Waits for the roll-up. The bound is generous: on a busy 2-core machine a
/// delivery whose calls timed out keeps its lease (120 s) before a retry.
async fn fulfilled(
    stack: &LocalStack,
    submission_id: &str,
) -> (String, HashMap<String, HashMap<String, String>>) {
    let started = Instant::now();
    loop {
        let (status, channels) = fulfillment(stack, submission_id).await;
        if status.contains("fulfilled") {
            return (status, channels);
        }
        if started.elapsed() > Duration::from_secs(120) {
            let dead: Vec<(&str, usize)> =
                ["EmailDeadLetterQueue", "SmsDeadLetterQueue", "HandlerDeadLetterQueue"]
                    .into_iter()
                    .map(|q| async move { (q, queue_depth(stack, q).await) })
                    .collect::<futures_util::future::JoinAll<_>>()
                    .await;
            panic!(
                "{submission_id} did not roll up: status {status:?}, channels {channels:?}, DLQ depths {dead:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes a `status` attribute (`#s`, e.g. `fulfillment.sms.#s`) as an operator would by hand.
async fn set_status_by_hand(stack: &LocalStack, submission_id: &str, path: &str, status: &str) {
    aws_sdk_dynamodb::Client::new(&stack.sdk_config)
        .update_item()
        .table_name(&stack.settings.form_submissions_table)
        .key("submission_id", AttributeValue::S(submission_id.to_owned()))
        .update_expression(format!("SET {path} = :status"))
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":status", AttributeValue::S(status.to_owned()))
        .send()
        .await
        .unwrap();
}

/// Visible plus in-flight messages of a template queue.
async fn queue_depth(stack: &LocalStack, logical_id: &str) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attributes = aws_sdk_sqs::Client::new(&stack.sdk_config)
        .get_queue_attributes()
        .queue_url(&stack.created[logical_id].reference)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    [A::ApproximateNumberOfMessages, A::ApproximateNumberOfMessagesNotVisible]
        .iter()
        .map(|a| attributes.get(a).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0))
        .sum()
}

/// Waits until the three consumer queues are empty: every delivery was handled.
async fn settled(stack: &LocalStack) {
    eventually(Duration::from_secs(120), "the consumer queues to drain", || async {
        let mut depth = 0;
        for queue in ["EmailQueue", "SmsQueue", "HandlerQueue", "FunnelQueue"] {
            depth += queue_depth(stack, queue).await;
        }
        (depth == 0).then_some(())
    })
    .await
}

async fn sms_count(stack: &LocalStack, tenant_id: &str) -> Option<String> {
    let month = domain::time::now_rfc3339()[..7].to_owned();
    let item = aws_sdk_dynamodb::Client::new(&stack.sdk_config)
        .get_item()
        .table_name(&stack.settings.sms_usage_table)
        .key("tenant_id", AttributeValue::S(tenant_id.to_owned()))
        .key("month", AttributeValue::S(month))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item?;
    item.get("count").and_then(|c| c.as_n().ok()).cloned()
}

/// Replays the archive window around this test's submissions and waits for it.
async fn replay_everything(stack: &LocalStack, started_at: DateTime) {
    replay_archive(stack, &ops::resources::archive_name("local"), started_at).await;
}

/// Replays one archive's window since `started_at` and waits for it.
async fn replay_archive(stack: &LocalStack, archive: &str, started_at: DateTime) {
    let eventbridge = aws_sdk_eventbridge::Client::new(&stack.sdk_config);
    let now = DateTime::from_secs(DateTime::from(std::time::SystemTime::now()).secs() + 60);
    let request = ops::replay::ReplayRequest {
        replay_name: ops::replay::default_replay_name(),
        archive_name: archive.to_owned(),
        event_bus_name: stack.settings.event_bus_name.clone(),
        window: ops::time::Window::new(DateTime::from_secs(started_at.secs() - 60), now).unwrap(),
    };
    let replay = ops::replay::start_replay(&eventbridge, &request).await.unwrap();
    let done = ops::replay::wait_for_replay(
        &eventbridge,
        replay,
        Duration::from_secs(30),
        Duration::from_millis(200),
    )
    .await
    .unwrap();
    assert_eq!(done.state, "COMPLETED");
}

fn now() -> DateTime {
    DateTime::from(std::time::SystemTime::now())
}

#[tokio::test]
async fn a_submission_is_emailed_to_the_team_and_confirmed_to_the_applicant_with_values_escaped() {
    let stack = spawn_fulfilling_stack().await;
    let mut config = demo_config();
    config["conversational_forms"][READING]["notifications"]["internal"]["subject"] =
        json!("New application: {{why_reading_buddies}}");
    put_tenant(&stack, "esc4pe000000", "ESC000001", &config).await;
    let mut data = reading_data("Ana");
    data["why_reading_buddies"] =
        json!("<script>alert(1)</script> I love books\r\nBcc: attacker@example.org");
    let id = submit(&stack, "esc4pe000000", READING, data).await;

    let (status, channels) = fulfilled(&stack, &id).await;
    assert_eq!(status, "fulfilled");
    assert_eq!(channels["email"]["status"], "sent");
    let sent = emails(&stack).await;
    assert_eq!(sent.len(), 2, "the team notification and the applicant confirmation: {sent:#?}");
    let team = sent.iter().find(|m| m["subject"].as_str().unwrap().starts_with("New application")).unwrap();
    let subject = team["subject"].as_str().unwrap();
    assert!(!subject.contains('\r') && !subject.contains('\n'), "{subject:?}");
    let html = team["body"].as_str().unwrap();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("Priority: normal"), "{html}");
    assert_eq!(
        team["destinations"]["ToAddresses"],
        json!(["volunteers@riverbendliteracy.org", "elliot.park@riverbendliteracy.org"])
    );
    let confirmation =
        sent.iter().find(|m| m["subject"] == "Thanks for applying to Reading Buddies!").unwrap();
    assert_eq!(confirmation["destinations"]["ToAddresses"], json!(["ana.lopez@example.org"]));
    assert_eq!(confirmation["source"], stack.settings.ses_from_email);
}

#[tokio::test]
async fn the_sms_goes_to_the_configured_e164_number_and_every_channel_rolls_up() {
    let stack = spawn_fulfilling_stack().await;
    let id = submit(&stack, demo::DEMO_TENANT_HASH, READING, reading_data("Ana")).await;

    let (status, channels) = fulfilled(&stack, &id).await;
    assert_eq!(status, "fulfilled");
    for channel in ["email", "sms", "handler"] {
        assert_eq!(channels[channel]["status"], "sent", "{channel}: {:?}", channels[channel]);
        assert_eq!(channels[channel]["attempts"], "1", "{channel}");
    }
    let texts = sms(&stack).await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["phone_number"], TEAM_PHONE);
    assert_eq!(
        texts[0]["message"],
        "RLMA: new Reading Buddy app from Ana (Weekday afternoons). Details in the volunteers inbox."
    );
    assert_eq!(sms_count(&stack, demo::DEMO_TENANT_ID).await.as_deref(), Some("1"));
}

#[tokio::test]
async fn an_sms_for_high_priority_only_is_skipped_for_a_low_priority_submission() {
    let stack = spawn_fulfilling_stack().await;
    let mut data = mentor_data();
    data["speaks_spanish"] = json!("no");
    let id = submit(&stack, demo::DEMO_TENANT_HASH, MENTOR, data).await;
    let (_, channels) = fulfilled(&stack, &id).await;
    assert_eq!(channels["sms"]["status"], "skipped");
    assert_eq!(channels["sms"]["reason"], "not_high_priority");
    assert!(sms(&stack).await.is_empty());
}

#[tokio::test]
async fn with_a_limit_of_five_twenty_concurrent_submissions_send_exactly_five_sms() {
    let stack = spawn_fulfilling_stack().await;
    let mut config = demo_config();
    config["sms_monthly_limit"] = json!(5);
    put_tenant(&stack, "qu0ta0000000", "QUOTA00001", &config).await;
    let stack = Arc::new(stack);
    let submits = (0..20).map(|n| {
        let stack = Arc::clone(&stack);
        tokio::spawn(async move {
            submit(&stack, "qu0ta0000000", READING, reading_data(&format!("Ana{n}"))).await
        })
    });
    let mut ids = Vec::new();
    for submit in submits {
        ids.push(submit.await.unwrap());
    }
    let mut skipped = 0;
    for id in &ids {
        let (_, channels) = fulfilled(&stack, id).await;
        let sms = &channels["sms"];
        if sms["status"] == "skipped" {
            assert_eq!(sms["reason"], "monthly_limit_reached");
            assert_eq!((sms["usage"].as_str(), sms["limit"].as_str()), ("5", "5"));
            skipped += 1;
        } else {
            assert_eq!(sms["status"], "sent");
        }
    }
    assert_eq!(skipped, 15);
    assert_eq!(self::sms(&stack).await.len(), 5);
    assert_eq!(sms_count(&stack, "QUOTA00001").await.as_deref(), Some("5"));
}

/// An SMS consumer whose SNS endpoint refuses connections, as when SNS is down.
async fn sms_consumer_with_sns_down(stack: &LocalStack) -> sms_sender::AwsSmsConsumer {
    let broken =
        aws_adapters::config::emulator_sdk_config("http://127.0.0.1:9", &stack.settings.region).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk_config);
    let tenants = aws_adapters::s3::s3_tenant_loader(&stack.sdk_config, &stack.settings.config_bucket);
    lambda_edge::consumer::Consumer::new(
        aws_adapters::dynamodb::DynamoSubmissionStore::new(
            dynamodb.clone(),
            &stack.settings.form_submissions_table,
        ),
        sms_sender::SmsChannel::new(
            tenants,
            sms_sender::text::SnsTexter::new(aws_sdk_sns::Client::new(&broken)),
            sms_sender::quota::DynamoQuota::new(dynamodb, &stack.settings.sms_usage_table),
            100,
        ),
    )
}

/// The one SMS-queue message of a submission, as the event source hands it over.
async fn sms_record(stack: &LocalStack) -> String {
    let bodies = drain_queue(stack, "SmsQueue").await;
    assert_eq!(bodies.len(), 1);
    bodies[0].to_string()
}

#[tokio::test]
async fn a_failed_sms_send_gives_its_unit_back_and_the_retry_sends_it_once() {
    let stack = spawn_stack().await;
    let id = submit(&stack, demo::DEMO_TENANT_HASH, READING, reading_data("Ana")).await;
    let record = sms_record(&stack).await;

    let down = sms_consumer_with_sns_down(&stack).await;
    assert_eq!(down.handle_record(&record).await, Disposition::Retry);
    assert_eq!(sms_count(&stack, demo::DEMO_TENANT_ID).await.as_deref(), Some("0"), "the unit is given back");
    let (_, channels) = fulfillment(&stack, &id).await;
    assert_eq!(channels["sms"]["status"], "failed");
    assert!(!channels["sms"]["last_error"].is_empty());

    let tenants = form_intake::tenant_loader(&stack.sdk_config, &stack.settings);
    let up = sms_sender::aws_consumer(&stack.sdk_config, &stack.settings, tenants);
    assert_eq!(up.handle_record(&record).await, Disposition::Ack);
    assert_eq!(up.handle_record(&record).await, Disposition::Ack, "a redelivery changes nothing");
    assert_eq!(sms(&stack).await.len(), 1);
    assert_eq!(sms_count(&stack, demo::DEMO_TENANT_ID).await.as_deref(), Some("1"));
    let (_, channels) = fulfillment(&stack, &id).await;
    assert_eq!((channels["sms"]["status"].as_str(), channels["sms"]["attempts"].as_str()), ("sent", "2"));
}

#[tokio::test]
async fn the_lambda_handler_is_invoked_with_the_documented_payload() {
    let stack = spawn_fulfilling_stack().await;
    let id = submit(&stack, demo::DEMO_TENANT_HASH, MENTOR, mentor_data()).await;
    let (_, channels) = fulfilled(&stack, &id).await;
    assert_eq!(channels["handler"]["status"], "sent");
    let invocations = stack.lambda.invocations();
    assert_eq!(invocations.len(), 1);
    assert_eq!(invocations[0].function, "Riverbend_Intake_Handler");
    assert_eq!(invocations[0].invocation_type, "Event");
    let payload = &invocations[0].payload;
    assert_eq!(payload["action"], "process_form");
    assert_eq!(payload["form_type"], MENTOR);
    assert_eq!(payload["submission_id"], id.as_str());
    assert_eq!(payload["tenant_id"], demo::DEMO_TENANT_ID);
    assert_eq!(payload["priority"], "high");
    assert_eq!(payload["responses"]["first_name"], "Sam");
    let keys: Vec<&str> = payload.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
}

#[tokio::test]
async fn the_s3_archive_object_exists_at_the_documented_key_encrypted() {
    let stack = spawn_fulfilling_stack().await;
    let id = submit(&stack, demo::DEMO_TENANT_HASH, READING, reading_data("Ana")).await;
    fulfilled(&stack, &id).await;
    let object = local_stack::s3_client(&stack.sdk_config)
        .get_object()
        .bucket("riverbend-form-archive")
        .key(format!("submissions/{}/{READING}/{id}.json", demo::DEMO_TENANT_ID))
        .send()
        .await
        .unwrap();
    assert_eq!(object.server_side_encryption().map(|e| e.as_str()), Some("AES256"));
    let body: Value = serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(body["submission_id"], id.as_str());
    assert_eq!(body["data"]["first_name"], "Ana");
}

/// A local webhook receiver: every body it was sent, with its `Idempotency-Key` as `_idempotency_key`.
async fn webhook_server() -> (String, Arc<Mutex<Vec<Value>>>, tokio::task::JoinHandle<()>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(mut body): axum::Json<Value>| {
                let sink = Arc::clone(&sink);
                async move {
                    let key =
                        headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default();
                    body["_idempotency_key"] = json!(key);
                    sink.lock().unwrap().push(body);
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, received, server)
}

fn webhook_config(url: &str) -> Value {
    let mut config = demo_config();
    config["conversational_forms"][READING]["fulfillment"] = json!({"type": "webhook", "webhook_url": url});
    config
}

#[tokio::test]
async fn a_webhook_reaches_a_local_server_in_local_mode_and_a_private_address_is_refused_otherwise() {
    let (url, received, server) = webhook_server().await;
    let stack = spawn_fulfilling_stack().await;
    put_tenant(&stack, "w3bh00k00000", "HOOK000001", &webhook_config(&url)).await;
    let id = submit(&stack, "w3bh00k00000", READING, reading_data("Ana")).await;
    let (_, channels) = fulfilled(&stack, &id).await;
    assert_eq!(channels["handler"]["status"], "sent");
    let bodies = received.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["form_id"], READING);
    assert_eq!(bodies[0]["submission_id"], id.as_str());
    assert_eq!(bodies[0]["data"]["first_name"], "Ana");
    assert_eq!(bodies[0]["_idempotency_key"], id.as_str(), "a re-post after a lost answer can be told apart");

    // Outside local development the same target is refused and nothing is sent.
    let quiet = spawn_stack().await;
    put_tenant(&quiet, "w3bh00k00000", "HOOK000001", &webhook_config(&url)).await;
    let id = submit(&quiet, "w3bh00k00000", READING, reading_data("Ana")).await;
    let record = drain_queue(&quiet, "HandlerQueue").await[0].to_string();
    let mut settings = quiet.settings.clone();
    settings.webhook_allow_private = false;
    let tenants = form_intake::tenant_loader(&quiet.sdk_config, &settings);
    let consumer = handler_dispatch::aws_consumer(&quiet.sdk_config, &settings, tenants);
    assert_eq!(consumer.handle_record(&record).await, Disposition::Ack, "refusal is permanent");
    let (status, channels) = fulfillment(&quiet, &id).await;
    assert_eq!(channels["handler"]["status"], "failed");
    assert_eq!(status, "pending_fulfillment", "email and SMS have not run in this stack");
    assert_eq!(received.lock().unwrap().len(), 1, "no second request");
    server.abort();
}

#[tokio::test]
async fn a_malformed_record_goes_to_the_dlq_after_five_receives_while_its_batch_mates_succeed() {
    let stack = spawn_stack().await;
    let id = submit(&stack, demo::DEMO_TENANT_HASH, READING, reading_data("Ana")).await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config);
    let queue = &stack.created["EmailQueue"].reference;
    sqs.send_message().queue_url(queue).message_body("{not an event").send().await.unwrap();
    let tenants = form_intake::tenant_loader(&stack.sdk_config, &stack.settings);
    let consumer = email_sender::aws_consumer(&stack.sdk_config, &stack.settings, tenants);

    let handled =
        local_stack::consumers::poll_once(&sqs, queue, &consumer, FAST_POLLING, Duration::from_secs(30))
            .await
            .unwrap();
    assert_eq!(handled, 2, "both records in one batch");
    assert_eq!(fulfillment(&stack, &id).await.1["email"]["status"], "sent", "the good record succeeded");
    let dead = eventually(Duration::from_secs(30), "the malformed record in the DLQ", || async {
        let _ =
            local_stack::consumers::poll_once(&sqs, queue, &consumer, FAST_POLLING, Duration::from_secs(30))
                .await;
        let dead = queue_depth(&stack, "EmailDeadLetterQueue").await;
        (dead > 0).then_some(dead)
    })
    .await;
    assert_eq!(dead, 1);
    let bodies = drain_queue(&stack, "EmailDeadLetterQueue").await;
    assert_eq!(bodies, [Value::Null], "the malformed body, kept for an operator");
    assert_eq!(emails(&stack).await.len(), 2, "the good record's emails, once");
}

#[tokio::test]
async fn replaying_the_archive_window_sends_no_second_email_sms_invocation_or_webhook() {
    let (url, received, server) = webhook_server().await;
    let stack = spawn_fulfilling_stack().await;
    put_tenant(&stack, "w3bh00k00000", "HOOK000001", &webhook_config(&url)).await;
    let started_at = now();
    let ids = [
        submit(&stack, demo::DEMO_TENANT_HASH, READING, reading_data("Ana")).await,
        submit(&stack, demo::DEMO_TENANT_HASH, MENTOR, mentor_data()).await,
        submit(&stack, "w3bh00k00000", READING, reading_data("Bea")).await,
    ];
    for id in &ids {
        assert_eq!(fulfilled(&stack, id).await.0, "fulfilled");
    }
    let before = (emails(&stack).await.len(), sms(&stack).await.len(), stack.lambda.invocations().len());
    assert_eq!(before, (6, 3, 1));
    assert_eq!(received.lock().unwrap().len(), 1);

    replay_everything(&stack, started_at).await;
    settled(&stack).await;
    let after = (emails(&stack).await.len(), sms(&stack).await.len(), stack.lambda.invocations().len());
    assert_eq!(after, before, "(emails, SMS, invocations) after the replay");
    assert_eq!(received.lock().unwrap().len(), 1, "webhook calls after the replay");
    assert_eq!(sms_count(&stack, demo::DEMO_TENANT_ID).await.as_deref(), Some("2"));
    server.abort();
}

#[tokio::test]
async fn a_channel_that_failed_and_is_then_fixed_is_delivered_exactly_once_by_a_replay() {
    let stack = spawn_fulfilling_stack().await;
    let ses = aws_sdk_sesv2::Client::new(&stack.sdk_config);
    ses.delete_email_identity().email_identity(&stack.settings.ses_from_email).send().await.unwrap();
    let started_at = now();
    let id = submit(&stack, demo::DEMO_TENANT_HASH, READING, reading_data("Ana")).await;
    let (status, channels) = fulfilled(&stack, &id).await;
    assert_eq!(status, "partially_fulfilled");
    assert_eq!(channels["email"]["status"], "failed");
    assert!(emails(&stack).await.is_empty());

    ses.create_email_identity().email_identity(&stack.settings.ses_from_email).send().await.unwrap();
    replay_everything(&stack, started_at).await;
    settled(&stack).await;
    let (status, channels) = fulfillment(&stack, &id).await;
    assert_eq!(channels["email"]["status"], "sent");
    assert_eq!(status, "fulfilled");
    assert_eq!(emails(&stack).await.len(), 2, "team and confirmation, once each");
    assert_eq!(sms(&stack).await.len(), 1, "the SMS was not sent again");
}

#[tokio::test]
async fn a_dlq_redrive_gets_its_messages_processed() {
    let mut stack = spawn_stack().await;
    let id = submit(&stack, demo::DEMO_TENANT_HASH, READING, reading_data("Ana")).await;
    let record = drain_queue(&stack, "EmailQueue").await[0].to_string();
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config);
    let (queue, dlq) =
        (&stack.created["EmailQueue"].reference, &stack.created["EmailDeadLetterQueue"].reference);
    sqs.send_message().queue_url(dlq).message_body(record).send().await.unwrap();

    let moved = ops::redrive::redrive(&sqs, dlq, queue, None).await.unwrap();
    assert_eq!(moved.moved, 1);
    assert_eq!(queue_depth(&stack, "EmailDeadLetterQueue").await, 0);
    drain_queue(&stack, "SmsQueue").await;
    drain_queue(&stack, "HandlerQueue").await;
    stack.start_consumers(FAST_POLLING).unwrap();
    eventually(Duration::from_secs(30), "the redriven email", || async {
        (fulfillment(&stack, &id).await.1["email"]["status"] == "sent").then_some(())
    })
    .await;
    assert_eq!(emails(&stack).await.len(), 2);
}

#[tokio::test]
async fn each_sample_sqs_batch_reports_only_its_malformed_record_for_retry() {
    let stack = spawn_stack().await;
    let tenants = form_intake::tenant_loader(&stack.sdk_config, &stack.settings);
    let read = |function: &str| -> aws_lambda_events::sqs::SqsEvent {
        let path = local_stack::repo_root().join(format!("events/{function}/sqs-batch.json"));
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    };
    let failed = |response: aws_lambda_events::sqs::SqsBatchResponse| -> Vec<String> {
        response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
    };
    let malformed = vec!["00000003-aaaa-4bbb-8ccc-dddddddddddd".to_owned()];
    let (config, settings) = (&stack.sdk_config, &stack.settings);
    let deadline = || std::time::Instant::now() + Duration::from_secs(30);
    let email = email_sender::aws_consumer(config, settings, Arc::clone(&tenants));
    assert_eq!(failed(email.handle_batch(read("email-sender"), deadline()).await), malformed);
    let sms = sms_sender::aws_consumer(config, settings, Arc::clone(&tenants));
    assert_eq!(failed(sms.handle_batch(read("sms-sender"), deadline()).await), malformed);
    let handler = handler_dispatch::aws_consumer(config, settings, tenants);
    assert_eq!(failed(handler.handle_batch(read("handler-dispatch"), deadline()).await), malformed);
    stack.stop().await;
}

#[tokio::test]
async fn records_a_batch_has_no_time_left_for_are_not_started_and_come_back() {
    let stack = spawn_stack().await;
    let tenants = form_intake::tenant_loader(&stack.sdk_config, &stack.settings);
    let path = local_stack::repo_root().join("events/email-sender/sqs-batch.json");
    let batch: aws_lambda_events::sqs::SqsEvent =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let every_id: Vec<String> = batch.records.iter().filter_map(|r| r.message_id.clone()).collect();
    let email = email_sender::aws_consumer(&stack.sdk_config, &stack.settings, tenants);

    let almost_out_of_time = std::time::Instant::now() + Duration::from_secs(5);
    let response = email.handle_batch(batch, almost_out_of_time).await;

    let mut failed: Vec<String> =
        response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
    failed.sort();
    let mut expected = every_id;
    expected.sort();
    assert_eq!(failed, expected, "every record is reported for redelivery");
    assert!(emails(&stack).await.is_empty(), "and none was started: no email went out");
    stack.stop().await;
}

#[tokio::test]
async fn a_lambda_handler_that_does_not_exist_is_recorded_failed_and_not_retried() {
    let stack = spawn_fulfilling_stack().await;
    let mut config = demo_config();
    config["conversational_forms"][MENTOR]["fulfillment"]["function"] = json!("Missing_Intake_Handler");
    put_tenant(&stack, "n0hand1er000", "NOHANDLER1", &config).await;
    let id = submit(&stack, "n0hand1er000", MENTOR, mentor_data()).await;
    let (status, channels) = fulfilled(&stack, &id).await;
    assert_eq!(status, "partially_fulfilled");
    let handler = &channels["handler"];
    assert_eq!((handler["status"].as_str(), handler["attempts"].as_str()), ("failed", "1"), "{handler:?}");
    assert!(handler["last_error"].contains("Missing_Intake_Handler"), "{handler:?}");
    settled(&stack).await;
    assert_eq!(
        queue_depth(&stack, "HandlerDeadLetterQueue").await,
        0,
        "a permanent failure is not dead-lettered"
    );
    assert!(stack.lambda.invocations().is_empty());
}

/// The FormSubmitted envelope SQS delivered to a consumer queue for `submission_id`.
async fn envelope_of(stack: &LocalStack, queue: &str, submission_id: &str) -> Value {
    drain_queue(stack, queue)
        .await
        .into_iter()
        .find(|e| e["detail"]["submission_id"] == submission_id)
        .unwrap_or_else(|| panic!("no event for {submission_id} on {queue}"))
}

fn ledger(stack: &LocalStack) -> aws_adapters::dynamodb::DynamoSubmissionStore {
    aws_adapters::dynamodb::DynamoSubmissionStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk_config),
        &stack.settings.form_submissions_table,
    )
}

/// A demo submission, the ledger over its table, and the event it was published as.
async fn submitted(
    stack: &LocalStack,
) -> (String, aws_adapters::dynamodb::DynamoSubmissionStore, domain::events::FormSubmitted) {
    let id = submit(stack, demo::DEMO_TENANT_HASH, READING, reading_data("Ana")).await;
    let ledger = ledger(stack);
    let event = ledger.load(&id).await.unwrap().unwrap().event();
    (id, ledger, event)
}

/// A ledger whose first `UpdateItem` is applied by DynamoDB but whose answer
/// never arrives, as when a response is lost or comes after the attempt
/// timeout: the SDK (3 s per attempt, standard retries) sends the call again.
async fn ledger_losing_one_answer(
    stack: &LocalStack,
) -> (aws_adapters::dynamodb::DynamoSubmissionStore, tokio::task::JoinHandle<()>) {
    let upstream = stack.endpoint.clone();
    let lose = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let forward = move |request: axum::extract::Request| {
        let (upstream, lose) = (upstream.clone(), Arc::clone(&lose));
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let target = parts.headers.get("x-amz-target").and_then(|t| t.to_str().ok()).unwrap_or_default();
            let lost =
                target.ends_with(".UpdateItem") && lose.swap(false, std::sync::atomic::Ordering::SeqCst);
            let mut headers = parts.headers.clone();
            headers.remove(axum::http::header::HOST);
            let answer = reqwest::Client::new()
                .post(format!("{upstream}{}", parts.uri))
                .headers(headers)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = answer.status();
            let bytes = answer.bytes().await.unwrap();
            if lost {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            (status, bytes)
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new().fallback(forward)).await;
    });
    let config = stack
        .sdk_config
        .to_builder()
        .endpoint_url(endpoint)
        .timeout_config(aws_adapters::config::timeouts())
        .retry_config(aws_config::retry::RetryConfig::standard())
        .build();
    let ledger = aws_adapters::dynamodb::DynamoSubmissionStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        &stack.settings.form_submissions_table,
    );
    (ledger, server)
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_still_this_deliverys_when_the_sdk_sends_it_again() {
    use domain::fulfillment::{Claim, FulfillmentLedger, Outcome};
    let stack = spawn_stack().await;
    let (id, _, event) = submitted(&stack).await;
    let (lossy, server) = ledger_losing_one_answer(&stack).await;

    let claimed = lossy.claim(&event, "email", domain::time::now_epoch_millis(), 120_000).await;
    let Ok(Claim::Acquired(_, lease)) = claimed else { panic!("not acquired: {claimed:?}") };
    lossy.finish(&lease, &Outcome::Sent).await.unwrap();
    let (_, channels) = fulfillment(&stack, &id).await;
    assert_eq!(channels["email"]["status"], "sent");
    assert_eq!(channels["email"]["attempts"], "1", "one claim, sent twice by the SDK");
    server.abort();
    stack.stop().await;
}

#[tokio::test]
async fn an_outcome_whose_answer_was_lost_is_recorded_and_rolls_the_submission_up() {
    use domain::fulfillment::{Claim, FulfillmentLedger, Outcome};
    let stack = spawn_stack().await;
    let (id, ledger, event) = submitted(&stack).await;
    let now = domain::time::now_epoch_millis();
    let mut leases = Vec::new();
    for channel in &event.channels {
        let Ok(Claim::Acquired(_, lease)) = ledger.claim(&event, channel, now, 120_000).await else {
            panic!("claim {channel}")
        };
        leases.push(lease);
    }
    let last = leases.pop().unwrap();
    for lease in &leases {
        ledger.finish(lease, &Outcome::Sent).await.unwrap();
    }

    let (lossy, server) = ledger_losing_one_answer(&stack).await;
    let finished = lossy.finish(&last, &Outcome::Sent).await;
    assert!(finished.is_ok(), "the outcome is this delivery's: {finished:?}");
    let (status, channels) = fulfillment(&stack, &id).await;
    assert_eq!(channels[&last.channel]["status"], "sent");
    assert_eq!(status, "fulfilled");
    server.abort();
    stack.stop().await;
}

#[tokio::test]
async fn an_event_naming_another_tenant_sends_nothing_and_is_acknowledged() {
    let stack = spawn_stack().await;
    put_tenant(&stack, "0ther0000001", "OTHER00001", &demo_config()).await;
    let id = submit(&stack, demo::DEMO_TENANT_HASH, READING, reading_data("Ana")).await;
    let genuine = envelope_of(&stack, "EmailQueue", &id).await;
    let mut forged = genuine.clone();
    forged["detail"]["tenant_id"] = json!("OTHER00001");
    let config = stack.identities.function("EmailSenderFunction");
    let tenants = form_intake::tenant_loader(config, &stack.settings);
    let email = email_sender::aws_consumer(config, &stack.settings, tenants);

    assert_eq!(email.handle_record(&forged.to_string()).await, Disposition::Ack);
    assert!(emails(&stack).await.is_empty(), "nothing went to the other tenant's team");
    assert_eq!(fulfillment(&stack, &id).await.1["email"]["status"], "queued", "nothing was claimed");

    assert_eq!(email.handle_record(&genuine.to_string()).await, Disposition::Ack);
    assert_eq!(emails(&stack).await.len(), 2, "the genuine event is fulfilled as usual");
    stack.stop().await;
}

#[tokio::test]
async fn a_redelivery_completes_a_roll_up_lost_after_the_last_channel_was_recorded() {
    let stack = spawn_stack().await;
    let id = submit(&stack, demo::DEMO_TENANT_HASH, READING, reading_data("Ana")).await;
    let tenants = form_intake::tenant_loader(&stack.sdk_config, &stack.settings);
    let (config, settings) = (&stack.sdk_config, &stack.settings);
    let archive = handler_dispatch::aws_consumer(config, settings, Arc::clone(&tenants));
    let email = email_sender::aws_consumer(config, settings, Arc::clone(&tenants));
    let sms_sender = sms_sender::aws_consumer(config, settings, tenants);
    let handler_record = envelope_of(&stack, "HandlerQueue", &id).await.to_string();
    let email_record = envelope_of(&stack, "EmailQueue", &id).await.to_string();
    let sms_record = envelope_of(&stack, "SmsQueue", &id).await.to_string();
    assert_eq!(archive.handle_record(&handler_record).await, Disposition::Ack);
    assert_eq!(email.handle_record(&email_record).await, Disposition::Ack);
    assert_eq!(sms_sender.handle_record(&sms_record).await, Disposition::Ack);
    assert_eq!(fulfillment(&stack, &id).await.0, "fulfilled");

    // As if the roll-up had timed out after the SMS channel's outcome was written.
    set_status_by_hand(&stack, &id, "#s", "pending_fulfillment").await;
    assert_eq!(sms_sender.handle_record(&sms_record).await, Disposition::Ack, "the redelivery");
    assert_eq!(fulfillment(&stack, &id).await.0, "fulfilled");
    assert_eq!(sms(&stack).await.len(), 1, "and the SMS was not sent again");
    stack.stop().await;
}

#[tokio::test]
async fn a_stale_deliverys_writes_are_refused_once_another_has_taken_over() {
    use domain::fulfillment::{Claim, FulfillmentLedger, LedgerError, Outcome};
    let stack = spawn_stack().await;
    let (id, ledger, event) = submitted(&stack).await;
    let now = domain::time::now_epoch_millis();
    let Ok(Claim::Acquired(_, stale)) = ledger.claim(&event, "email", now, 1_000).await else {
        panic!("first claim")
    };
    // Its lease has run out by the time a redelivery claims the channel.
    let Ok(Claim::Acquired(_, current)) = ledger.claim(&event, "email", now + 5_000, 120_000).await else {
        panic!("the expired lease is taken over")
    };

    let late = ledger.finish(&stale, &Outcome::Failed { error: "late".into() }).await;
    assert!(matches!(late, Err(LedgerError::LeaseLost { .. })), "{late:?}");
    assert!(matches!(ledger.part_done(&stale, "team").await, Err(LedgerError::LeaseLost { .. })));
    ledger.finish(&current, &Outcome::Sent).await.unwrap();

    let (_, channels) = fulfillment(&stack, &id).await;
    assert_eq!(channels["email"]["status"], "sent", "the newer holder's outcome stands");
    assert!(!channels["email"].contains_key("team_done_at"));
    stack.stop().await;
}

#[tokio::test]
async fn a_success_after_a_failure_clears_last_error_and_the_status_only_moves_forward() {
    use domain::fulfillment::{Claim, FulfillmentLedger, Outcome};
    let stack = spawn_stack().await;
    let (id, ledger, event) = submitted(&stack).await;
    let run = |channel: &'static str, outcome: Outcome| {
        let (ledger, event) = (&ledger, &event);
        async move {
            let now = domain::time::now_epoch_millis();
            let Ok(Claim::Acquired(_, lease)) = ledger.claim(event, channel, now, 120_000).await else {
                panic!("claim {channel}")
            };
            ledger.finish(&lease, &outcome).await.unwrap();
        }
    };
    run("email", Outcome::Failed { error: "SES was down".into() }).await;
    run("sms", Outcome::Sent).await;
    run("handler", Outcome::Sent).await;
    let (status, channels) = fulfillment(&stack, &id).await;
    assert_eq!(
        (status.as_str(), channels["email"]["last_error"].as_str()),
        ("partially_fulfilled", "SES was down")
    );

    run("email", Outcome::Sent).await;
    let (status, channels) = fulfillment(&stack, &id).await;
    assert_eq!(status, "fulfilled", "forward from partially_fulfilled");
    assert!(!channels["email"].contains_key("last_error"), "{:?}", channels["email"]);

    // A channel that fails again later (say, a record reset by hand) cannot move it back.
    set_status_by_hand(&stack, &id, "fulfillment.sms.#s", "failed").await;
    run("sms", Outcome::Failed { error: "again".into() }).await;
    assert_eq!(fulfillment(&stack, &id).await.0, "fulfilled", "never back from fulfilled");
    stack.stop().await;
}

#[tokio::test]
async fn a_monthly_sms_limit_of_zero_sends_no_sms() {
    let stack = spawn_fulfilling_stack().await;
    let mut config = demo_config();
    config["sms_monthly_limit"] = json!(0);
    put_tenant(&stack, "n0sms0000000", "NOSMS00001", &config).await;
    let id = submit(&stack, "n0sms0000000", READING, reading_data("Ana")).await;

    let (_, channels) = fulfilled(&stack, &id).await;
    assert_eq!(channels["sms"]["status"], "skipped");
    assert_eq!(channels["sms"]["reason"], "monthly_limit_reached");
    assert!(sms(&stack).await.is_empty());
    assert_eq!(sms_count(&stack, "NOSMS00001").await, None, "no unit was taken");
    stack.stop().await;
}

#[tokio::test]
async fn a_number_already_texted_is_not_texted_again_when_the_recipient_list_changes() {
    let stack = spawn_stack().await;
    let (first, second) = ("+15035550142", "+15035550177");
    let mut config = demo_config();
    config["conversational_forms"][READING]["notifications"]["internal"]["sms_recipients"] =
        json!([first, second]);
    put_tenant(&stack, "s0rted000001", "SORTED0001", &config).await;
    let id = submit(&stack, "s0rted000001", READING, reading_data("Ana")).await;
    let envelope = envelope_of(&stack, "SmsQueue", &id).await;
    // An earlier delivery texted the first number, then failed before the second.
    aws_sdk_dynamodb::Client::new(&stack.sdk_config)
        .update_item()
        .table_name(&stack.settings.form_submissions_table)
        .key("submission_id", AttributeValue::S(id.clone()))
        .update_expression("SET fulfillment.sms.#s = :failed, fulfillment.sms.#done = :at")
        .expression_attribute_names("#s", "status")
        .expression_attribute_names("#done", "to_15035550142_done_at")
        .expression_attribute_values(":failed", AttributeValue::S("failed".into()))
        .expression_attribute_values(":at", AttributeValue::S(domain::time::now_rfc3339()))
        .send()
        .await
        .unwrap();
    // Meanwhile the team put the numbers the other way round, in another notation.
    config["conversational_forms"][READING]["notifications"]["internal"]["sms_recipients"] =
        json!(["+1 (503) 555-0177", "+1 503 555 0142"]);
    put_tenant(&stack, "s0rted000001", "SORTED0001", &config).await;
    let sms_config = stack.identities.function("SmsSenderFunction");
    let tenants = form_intake::tenant_loader(sms_config, &stack.settings);
    let consumer = sms_sender::aws_consumer(sms_config, &stack.settings, tenants);

    assert_eq!(consumer.handle_record(&envelope.to_string()).await, Disposition::Ack);

    let texted: Vec<String> =
        sms(&stack).await.iter().map(|m| m["phone_number"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(texted, [second], "only the number not yet texted");
    stack.stop().await;
}

#[tokio::test]
async fn the_sweeper_reports_a_submission_left_unfulfilled_for_over_15_minutes() {
    use aws_adapters::eventbridge::EventBridgePublisher;
    use domain::{
        events::FormSubmitted,
        fulfillment::{Claim, FulfillmentLedger, Outcome},
        submissions::{NewSubmission, SubmissionStore},
    };
    let stack = spawn_stack().await;
    let store = ledger(&stack);
    let now = domain::time::now_epoch_millis();
    let made = |id: &str, minutes_ago: u128| FormSubmitted {
        schema_version: 1,
        submission_id: id.to_owned(),
        tenant_id: demo::DEMO_TENANT_ID.to_owned(),
        form_id: READING.to_owned(),
        priority: domain::forms::Priority::Normal,
        submitted_at: domain::time::rfc3339_at(now - minutes_ago * 60_000),
        channels: vec!["email".to_owned()],
    };
    // One submission nobody consumed (its rule was missing), one fulfilled, both 20 minutes old.
    let (stuck, done) = (made("stuck_1", 20), made("done_1", 30));
    for event in [&stuck, &done] {
        let submission = NewSubmission {
            event: event.clone(),
            form_data: Default::default(),
            contact: Default::default(),
            client_submission_id: None,
            held: None,
            staff: Default::default(),
        };
        store.create(&submission, "{}").await.unwrap();
        store.mark_published(&event.submission_id).await.unwrap();
    }
    let claimed = FulfillmentLedger::claim(&store, &done, "email", now, 120_000).await;
    let Ok(Claim::Acquired(_, lease)) = claimed else { panic!("claim") };
    store.finish(&lease, &Outcome::Sent).await.unwrap();
    let publisher = EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(&stack.sdk_config),
        &stack.settings.event_bus_name,
    );

    let report = outbox_sweeper::sweep(&store, &publisher, Duration::from_secs(60)).await;

    assert!((1195..1300).contains(&report.oldest_unfulfilled_seconds), "{report:?}");
    let line: Value = serde_json::from_str(&report.metrics_line("picasso-outbox-sweeper-local")).unwrap();
    assert_eq!(line["UnfulfilledOldestAgeSeconds"], report.oldest_unfulfilled_seconds);
    stack.stop().await;
}

/// A TCP relay to the emulator whose answers come back `delay` late: the
/// provider takes each request at once and does its work; only its answer is
/// slow (or, past the client's attempt timeout, lost).
async fn late_answers(upstream: &str, delay: Duration) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let relay = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                let mut last_write: Option<Instant> = None;
                while let Ok(read) = server_read.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    // Once per answer: the rest of an answer follows its first bytes at once.
                    if last_write.is_none_or(|at| at.elapsed() > Duration::from_millis(500)) {
                        tokio::time::sleep(delay).await;
                    }
                    last_write = Some(Instant::now());
                    if client_write.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (url, relay)
}

/// The email and SMS consumers with SES and SNS behind a relay whose answers are `delay` late.
async fn consumers_with_late_providers(
    stack: &LocalStack,
    delay: Duration,
    metrics: domain::report::LineSink,
) -> (email_sender::AwsEmailConsumer, sms_sender::AwsSmsConsumer, Vec<tokio::task::JoinHandle<()>>) {
    let (ses_url, ses_relay) = late_answers(&stack.endpoint, delay).await;
    let (sns_url, sns_relay) = late_answers(&stack.endpoint, delay).await;
    let via = |url: &str| stack.sdk_config.to_builder().endpoint_url(url).build();
    let tenants = form_intake::tenant_loader(&stack.sdk_config, &stack.settings);
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk_config);
    let ledger = || {
        aws_adapters::dynamodb::DynamoSubmissionStore::new(
            dynamodb.clone(),
            &stack.settings.form_submissions_table,
        )
    };
    let caps = domain::limits::Limiter::new(Arc::new(aws_adapters::dynamodb::DynamoCounters::new(
        dynamodb.clone(),
        &stack.settings.rate_limits_table,
    )));
    let email = lambda_edge::consumer::Consumer::new(
        ledger(),
        email_sender::EmailChannel::new(
            Arc::clone(&tenants),
            aws_adapters::ses::SesMailer::new(
                aws_adapters::ses::ses_client(&via(&ses_url)),
                &stack.settings.ses_from_email,
            ),
            caps,
            Arc::clone(&metrics),
        ),
    )
    .with_metrics(Arc::clone(&metrics));
    let sms = lambda_edge::consumer::Consumer::new(
        ledger(),
        sms_sender::SmsChannel::new(
            tenants,
            sms_sender::text::SnsTexter::new(sms_sender::text::sns_client(&via(&sns_url))),
            sms_sender::quota::DynamoQuota::new(dynamodb.clone(), &stack.settings.sms_usage_table),
            100,
        ),
    )
    .with_metrics(metrics);
    (email, sms, vec![ses_relay, sns_relay])
}

#[tokio::test]
async fn a_provider_answering_late_is_waited_for_and_each_email_and_sms_goes_out_once() {
    let stack = spawn_stack().await;
    let id = submit(&stack, demo::DEMO_TENANT_HASH, READING, reading_data("Ana")).await;
    let email_record = drain_queue(&stack, "EmailQueue").await[0].to_string();
    let sms_record = sms_record(&stack).await;
    // Later than the SDK's former 3 s attempt timeout, inside the sending clients' 8 s.
    let (email_consumer, sms_consumer, relays) =
        consumers_with_late_providers(&stack, Duration::from_secs(5), lambda_edge::telemetry::stdout_sink())
            .await;

    let (emailed, texted) =
        tokio::join!(email_consumer.handle_record(&email_record), sms_consumer.handle_record(&sms_record));
    assert_eq!((emailed, texted), (Disposition::Ack, Disposition::Ack));
    let (_, channels) = fulfillment(&stack, &id).await;
    assert_eq!((channels["email"]["status"].as_str(), channels["sms"]["status"].as_str()), ("sent", "sent"));
    assert_eq!(emails(&stack).await.len(), 2, "the team email and the confirmation, once each");
    assert_eq!(sms(&stack).await.len(), 1, "one SMS");
    relays.into_iter().for_each(|relay| relay.abort());
    stack.stop().await;
}

#[tokio::test]
async fn a_lost_answer_leaves_the_channel_unknown_with_its_metric_and_nothing_is_sent_twice() {
    let stack = spawn_stack().await;
    let id = submit(&stack, demo::DEMO_TENANT_HASH, READING, reading_data("Ana")).await;
    let sms_record = sms_record(&stack).await;
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = {
        let lines = Arc::clone(&lines);
        Arc::new(move |line: String| lines.lock().unwrap().push(line)) as domain::report::LineSink
    };
    // Longer than the sending clients' attempt timeout: SNS takes the SMS, its answer never comes in time.
    let (_, sms_consumer, relays) =
        consumers_with_late_providers(&stack, Duration::from_secs(10), sink).await;

    assert_eq!(sms_consumer.handle_record(&sms_record).await, Disposition::Ack);
    let (_, channels) = fulfillment(&stack, &id).await;
    assert_eq!(channels["sms"]["status"], "unknown", "{channels:?}");
    assert_eq!(channels["sms"]["unknown_parts"], "to_15035550142");
    let metric = lines.lock().unwrap().iter().find(|l| l.contains("UnknownOutcomes")).cloned();
    let metric: Value = serde_json::from_str(&metric.expect("an UnknownOutcomes metric line")).unwrap();
    assert_eq!(metric["Channel"], "sms");

    // SNS did send it (the relay delivered the request); a redelivery sends nothing more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sms(&stack).await.len(), 1);
    let up = sms_sender::aws_consumer(
        &stack.sdk_config,
        &stack.settings,
        form_intake::tenant_loader(&stack.sdk_config, &stack.settings),
    );
    assert_eq!(up.handle_record(&sms_record).await, Disposition::Ack);
    assert_eq!(sms(&stack).await.len(), 1, "an unknown outcome is never sent again automatically");
    assert_eq!(
        sms_count(&stack, demo::DEMO_TENANT_ID).await.as_deref(),
        Some("1"),
        "its quota unit stays taken"
    );
    relays.into_iter().for_each(|relay| relay.abort());
    stack.stop().await;
}

#[tokio::test]
async fn a_persons_data_is_found_then_erased_and_neither_a_replay_nor_a_redrive_brings_anything_back() {
    let mut stack = spawn_stack().await;
    let started_at = now();
    let token = "ana-widget-token-0000000000000001";
    let with_token = json!({"tenant_hash": demo::DEMO_TENANT_HASH, "form_mode": true, "action": "submit_form",
        "form_id": READING, "form_data": reading_data("Ana"), "client_submission_id": token,
        "session_id": "sess_ana_1"});
    assert_eq!(post_forms(&stack, &with_token).await.status, 200);
    let ana_first = e2e::submissions(&stack).await;
    let ana_first = ana_first
        .iter()
        .find(|i| {
            i.get("client_submission_id").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(token)
        })
        .and_then(|i| i["submission_id"].as_s().ok().cloned())
        .unwrap();
    let mut upper = reading_data("Ana");
    upper["email"] = json!("  ANA.Lopez@Example.org");
    let ana_second = submit(&stack, demo::DEMO_TENANT_HASH, READING, upper).await;
    let sam = submit(&stack, demo::DEMO_TENANT_HASH, MENTOR, mentor_data()).await;
    // Keep a copy of Ana's email record for a redrive after the erasure; put everything back.
    let email_records = drain_queue(&stack, "EmailQueue").await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config);
    let (email_queue, email_dlq) = (
        stack.created["EmailQueue"].reference.clone(),
        stack.created["EmailDeadLetterQueue"].reference.clone(),
    );
    for record in &email_records {
        sqs.send_message().queue_url(&email_queue).message_body(record.to_string()).send().await.unwrap();
    }
    let ana_record =
        email_records.iter().find(|r| r["detail"]["submission_id"] == ana_first.as_str()).unwrap();
    stack.start_consumers(FAST_POLLING).unwrap();
    for id in [&ana_first, &ana_second, &sam] {
        assert_eq!(fulfilled(&stack, id).await.0, "fulfilled");
    }
    // Her first submission came from a widget session: the funnel keeps a summary of that visit.
    eventually(Duration::from_secs(30), "the funnel's summary of her visit", || async {
        (funnel_today(&stack, demo::DEMO_TENANT_ID).await.forms_completed == 3).then_some(())
    })
    .await;
    let ops = &stack.identities.ops;
    let (dynamodb, s3) = (aws_sdk_dynamodb::Client::new(ops), aws_adapters::s3::s3_client(ops));
    let clients = ops::subject::Clients {
        dynamodb: &dynamodb,
        s3: &s3,
        table: &stack.settings.form_submissions_table,
        funnel_table: &stack.settings.funnel_table,
        submissions_bucket: &stack.settings.submissions_bucket,
    };
    let tenants = aws_adapters::s3::s3_tenant_loader(ops, &stack.settings.config_bucket);

    let report = ops::subject::access(&clients, &tenants, demo::DEMO_TENANT_ID, "Ana.Lopez@example.org ")
        .await
        .unwrap();

    let mut found: Vec<&str> = report.submissions.iter().map(|h| h.submission_id.as_str()).collect();
    found.sort_unstable();
    let mut anas = [ana_first.as_str(), ana_second.as_str()];
    anas.sort_unstable();
    assert_eq!(found, anas, "both of Ana's submissions, whatever the case of the address; not Sam's");
    let first = report.submissions.iter().find(|h| h.submission_id == ana_first).unwrap();
    assert_eq!(
        first.idempotency_record.as_deref(),
        Some(format!("client#{}#{token}", demo::DEMO_TENANT_ID).as_str())
    );
    let archive = first.archive.as_ref().expect("the s3 fulfillment's copy");
    assert_eq!((archive.bucket.as_str(), archive.state), ("riverbend-form-archive", "present"));
    let sent =
        |channel: &str| first.sent_to.iter().find(|s| s.channel == channel).unwrap().recipients.clone();
    assert!(
        sent("email").contains(&"ana.lopez@example.org".to_owned()),
        "her confirmation: {:?}",
        first.sent_to
    );
    assert!(sent("email").contains(&"volunteers@riverbendliteracy.org".to_owned()));
    assert_eq!(sent("sms"), [TEAM_PHONE]);
    assert_eq!(sent("handler"), ["s3 bucket riverbend-form-archive"]);
    assert!(first.fields.contains(&"Email address".to_owned()));
    let today = &ops::funnel::window(now().secs() as u64, 1)[0];
    let visit = format!("session#{today}#sess_ana_1");
    assert_eq!(
        report.session_summaries,
        std::slice::from_ref(&visit),
        "the summary of the visit she submitted from"
    );

    let dry = ops::subject::erase(&clients, &report, "DSR-2026-0042", true).await.unwrap();
    assert_eq!(
        (dry.submissions, dry.idempotency_records, dry.archived_copies, dry.session_summaries),
        (2, 1, 2, 1)
    );
    assert!(item(&stack, &ana_first).await.contains_key("form_data"), "a dry run changes nothing");

    let erased = ops::subject::erase(&clients, &report, "DSR-2026-0042", false).await.unwrap();

    for id in [&ana_first, &ana_second] {
        let tombstone = item(&stack, id).await;
        let mut kept: Vec<&str> = tombstone.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(
            kept,
            ["erased_at", "expires_at", "form_id", "status", "submission_id", "submitted_at", "tenant_id"],
            "nothing of whom is left"
        );
        assert_eq!(tombstone["status"].as_s().unwrap(), "erased");
    }
    let record = item(&stack, &format!("client#{}#{token}", demo::DEMO_TENANT_ID)).await;
    assert!(record.contains_key("response") && !record.contains_key("fingerprint"), "{record:?}");
    let admin_s3 = local_stack::s3_client(&stack.sdk_config);
    let gone = admin_s3.head_object().bucket("riverbend-form-archive").key(&archive.key).send().await;
    assert!(gone.is_err(), "the archived copy is deleted");
    let audit = item(&stack, erased.audit_record.as_deref().unwrap()).await;
    assert_eq!(audit["requested_by"].as_s().unwrap(), "DSR-2026-0042");
    assert_eq!(audit["submissions"].as_n().unwrap(), "2");
    let printed = format!("{audit:?}").to_lowercase();
    assert!(!printed.contains("ana") && !printed.contains("example.org"), "no personal data: {printed}");
    assert!(item(&stack, &sam).await.contains_key("form_data"), "Sam's submission is untouched");
    let summary = aws_sdk_dynamodb::Client::new(&stack.sdk_config)
        .get_item()
        .table_name(&stack.settings.funnel_table)
        .key("tenant_id", AttributeValue::S(demo::DEMO_TENANT_ID.into()))
        .key("key", AttributeValue::S(visit))
        .send()
        .await
        .unwrap();
    assert!(summary.item.is_none(), "the visit's summary is deleted");

    let before = (emails(&stack).await.len(), sms(&stack).await.len());
    replay_everything(&stack, started_at).await;
    sqs.send_message().queue_url(&email_dlq).message_body(ana_record.to_string()).send().await.unwrap();
    assert_eq!(ops::redrive::redrive(&sqs, &email_dlq, &email_queue, None).await.unwrap().moved, 1);
    settled(&stack).await;
    assert_eq!((emails(&stack).await.len(), sms(&stack).await.len()), before, "nothing sent again");
    assert_eq!(item(&stack, &ana_first).await.len(), 7, "the tombstone stays a tombstone");
    let rearchived = admin_s3.head_object().bucket("riverbend-form-archive").key(&archive.key).send().await;
    assert!(rearchived.is_err(), "the replay archived nothing again");
    let again = ops::subject::access(&clients, &tenants, demo::DEMO_TENANT_ID, "ana.lopez@example.org")
        .await
        .unwrap();
    assert!(again.submissions.is_empty(), "{again:?}");
}

/// The tenant's funnel today, as `picasso-ops funnel --days 1` reads it (the operators' principal).
async fn funnel_today(stack: &LocalStack, tenant_id: &str) -> domain::funnel::FunnelDay {
    let funnel = aws_adapters::dynamodb::DynamoFunnel::new(
        aws_sdk_dynamodb::Client::new(&stack.identities.ops),
        ops::resources::funnel_table("local"),
    );
    let today = ops::funnel::window(now().secs() as u64, 1);
    ops::funnel::report(&funnel, tenant_id, &today).await.unwrap().totals
}

#[tokio::test]
async fn a_scripted_visit_is_counted_once_per_event_in_its_session_and_day_and_again_after_replays() {
    let stack = spawn_fulfilling_stack().await;
    let started_at = now();
    let session = "session_1796558400000_funnel01";
    let mut question = e2e::ask("How do I become a Reading Buddy?");
    question["session_id"] = json!(session);
    assert_eq!(e2e::post_chat(&stack, question.to_string()).await.status, 200);
    let stamp = domain::time::now_rfc3339();
    let widget = |step: u32, kind: &str| {
        json!({"tenant_id": demo::DEMO_TENANT_HASH, "session_id": session,
        "timestamp": stamp, "step_number": step, "event": {"type": kind, "payload": {"cta_id": "volunteer_apply"}}})
    };
    let batch =
        json!({"events": [widget(1, "CTA_CLICKED"), widget(2, "FORM_STARTED"), widget(3, "WIDGET_CLOSED")]});
    let analytics = e2e::post_json(&stack, "/chat?action=analytics", batch.to_string()).await;
    assert_eq!(analytics.status(), 200);
    let submit = json!({"tenant_hash": demo::DEMO_TENANT_HASH, "form_mode": true, "action": "submit_form",
        "form_id": READING, "form_data": reading_data("Ana"), "session_id": session});
    assert_eq!(post_forms(&stack, &submit).await.status, 200);

    let expected = (1, 1, 1, 1, 1);
    let counted = |d: &domain::funnel::FunnelDay| {
        (d.conversations, d.messages, d.cta_clicks, d.forms_started, d.forms_completed)
    };
    let day = eventually(Duration::from_secs(60), "the visit in the funnel", || async {
        let day = funnel_today(&stack, demo::DEMO_TENANT_ID).await;
        (counted(&day) == expected).then_some(day)
    })
    .await;
    assert!(day.first_token_p50_ms.is_some_and(|ms| ms > 0), "{day:?}");
    let today = &ops::funnel::window(now().secs() as u64, 1)[0];
    let summary = aws_sdk_dynamodb::Client::new(&stack.sdk_config)
        .get_item()
        .table_name(&stack.created["FunnelTable"].reference)
        .key("tenant_id", AttributeValue::S(demo::DEMO_TENANT_ID.into()))
        .key("key", AttributeValue::S(format!("session#{today}#{session}")))
        .send()
        .await
        .unwrap()
        .item
        .expect("the session's summary");
    for (name, value) in
        [("messages", "1"), ("cta_clicks", "1"), ("forms_started", "1"), ("forms_completed", "1")]
    {
        assert_eq!(summary[name].as_n().unwrap(), value, "{name} of the session");
    }

    replay_archive(&stack, "picasso-widget-analytics-local", started_at).await;
    replay_everything(&stack, started_at).await;
    settled(&stack).await;
    assert_eq!(
        counted(&funnel_today(&stack, demo::DEMO_TENANT_ID).await),
        expected,
        "after replaying both archives"
    );
    stack.stop().await;
}
