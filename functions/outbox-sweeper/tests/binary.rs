//! The outbox-sweeper binary itself under a Lambda Runtime API emulator, with
//! the template's environment, against a local stack that enforces IAM.

use std::path::Path;

use aws_adapters::dynamodb::DynamoSubmissionStore;
use domain::{
    events::FormSubmitted,
    submissions::{NewSubmission, SubmissionStore},
};
use local_stack::{
    LocalStack, StackOptions, demo,
    runtime_api::{FunctionUnderTest, sample_event},
};

#[tokio::test]
async fn the_binary_publishes_a_stranded_submission_on_its_scheduled_event() {
    let stack = LocalStack::start(StackOptions::for_tests()).await.unwrap();
    // A saved submission whose event never reached the bus (as when PutEvents failed).
    let store = DynamoSubmissionStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk_config),
        &stack.settings.form_submissions_table,
    );
    let event = FormSubmitted {
        schema_version: 1,
        submission_id: "reading_buddy_application_1795575845000_strand".into(),
        tenant_id: demo::DEMO_TENANT_ID.into(),
        form_id: "reading_buddy_application".into(),
        priority: domain::forms::Priority::Normal,
        submitted_at: domain::time::now_rfc3339(),
        channels: vec!["handler".into()],
    };
    let stranded = NewSubmission {
        event,
        form_data: Default::default(),
        contact: Default::default(),
        client_submission_id: None,
        held: None,
        staff: Default::default(),
    };
    store.create(&stranded, "{}").await.unwrap();

    let binary = Path::new(env!("CARGO_BIN_EXE_outbox-sweeper"));
    let grace = [("OUTBOX_GRACE_SECONDS", "0")];
    let function = FunctionUnderTest::start(&stack, "OutboxSweeperFunction", binary, &grace).await.unwrap();
    let invocation = function.invoke(sample_event("outbox-sweeper/scheduled.json")).await.unwrap();

    let report = invocation.json().unwrap();
    assert_eq!(report["published"], 1, "{report}");
    let received = aws_sdk_sqs::Client::new(&stack.sdk_config)
        .receive_message()
        .queue_url(&stack.created["HandlerQueue"].reference)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    assert_eq!(received.messages().len(), 1, "the FormSubmitted event reached the consumers");
    function.stop().await;
    stack.stop().await;
}

#[test]
fn in_lambda_without_its_table_name_the_binary_logs_one_json_error_line_and_exits() {
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_outbox-sweeper"))
        .env_clear()
        .env("AWS_LAMBDA_FUNCTION_NAME", "picasso-outbox-sweeper-test")
        .output()
        .expect("the binary runs");
    assert_eq!(run.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let line: serde_json::Value = serde_json::from_str(lines[0]).expect("one JSON line");
    assert_eq!(line["level"], "ERROR", "{line}");
    assert!(line["error"].as_str().unwrap_or_default().contains("FORM_SUBMISSIONS_TABLE"), "{line}");
    assert!(run.stderr.is_empty(), "{}", String::from_utf8_lossy(&run.stderr));
}
