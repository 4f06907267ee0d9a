//! The email-sender binary itself under a Lambda Runtime API emulator, with
//! the template's environment, against a local stack that enforces IAM: a
//! real FormSubmitted record and a poison one in one batch.

use std::path::Path;

use local_stack::{
    LocalStack, StackOptions,
    runtime_api::{FunctionUnderTest, failed_items, sample_event},
};
use serde_json::{Value, json};

#[tokio::test]
async fn the_binary_emails_a_real_submission_and_reports_only_the_poison_record() {
    let stack = LocalStack::start(StackOptions::for_tests()).await.unwrap();
    let submit: Value = serde_json::from_str(&sample_event("form-intake/submit-form-valid.json")).unwrap();
    let answer = reqwest::Client::new()
        .post(format!("{}/forms", stack.host_url()))
        .body(submit["body"].as_str().unwrap().to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config);
    let received = sqs
        .receive_message()
        .queue_url(&stack.created["EmailQueue"].reference)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let message = &received.messages()[0];
    let record = |id: &str, body: &str| {
        json!({"messageId": id, "receiptHandle": "r", "body": body, "attributes": {"ApproximateReceiveCount": "1"},
               "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
               "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:picasso-email-local"})
    };
    let batch =
        json!({"Records": [record("real", message.body().unwrap()), record("poison", "not an event")]});

    let binary = Path::new(env!("CARGO_BIN_EXE_email-sender"));
    let function = FunctionUnderTest::start(&stack, "EmailSenderFunction", binary, &[]).await.unwrap();
    let invocation = function.invoke(batch.to_string()).await.unwrap();

    assert_eq!(failed_items(&invocation.json().unwrap()), ["poison"]);
    let data: Value =
        reqwest::get(format!("{}/moto-api/data.json", stack.endpoint)).await.unwrap().json().await.unwrap();
    assert!(!data["ses"]["Message"].as_array().unwrap().is_empty(), "the team notification went out");
    function.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_batch_whose_every_record_fails_is_a_failed_invocation_lambda_counts() {
    let stack = LocalStack::start(StackOptions::for_tests()).await.unwrap();
    let record = |id: &str| {
        json!({"messageId": id, "receiptHandle": "r", "body": "not an event", "attributes": {"ApproximateReceiveCount": "1"},
               "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
               "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:picasso-email-local"})
    };
    let batch = json!({"Records": [record("first"), record("second")]});

    let binary = Path::new(env!("CARGO_BIN_EXE_email-sender"));
    let function = FunctionUnderTest::start(&stack, "EmailSenderFunction", binary, &[]).await.unwrap();
    let invocation = function.invoke(batch.to_string()).await.unwrap();

    // Lambda's Errors metric (and the canary's alarms) see it; the whole batch comes back.
    assert!(
        matches!(&invocation.ending, Some(local_stack::runtime_api::Ending::Error(error)) if error.contains("every record")),
        "{:?}",
        invocation.ending
    );
    function.stop().await;
    stack.stop().await;
}
