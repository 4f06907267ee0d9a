//! The operator commands against an isolated local stack (moto plus the
//! template's resources), called as library functions with clients of the
//! `picasso-ops` principal (`tools/ops/iam-policy.json`): IAM is enforced, so
//! a call the policy does not allow fails here as it would in AWS. Tests
//! arrange and inspect as the administrator.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_smithy_types::DateTime;
use local_stack::{LocalStack, StackOptions, demo};
use ops::{
    redrive, replay,
    resources::{self, Consumer},
    sms_usage, status,
    time::{Month, Window},
};
use serde_json::{Value, json};

const STAGE: &str = "local";

async fn spawn_stack() -> LocalStack {
    // Nothing polls the queues: each test sees exactly what it put there.
    LocalStack::start(StackOptions::for_tests())
        .await
        .unwrap_or_else(|err| panic!("local stack did not start: {}", domain::report::error_chain(&err)))
}

/// Submits the demo tenant's reading-buddy form through the host, as the widget does.
async fn submit_demo_form(stack: &LocalStack) -> String {
    let body = json!({
        "tenant_hash": demo::DEMO_TENANT_HASH, "form_mode": true, "action": "submit_form",
        "form_id": "reading_buddy_application",
        "form_data": {
            "age_18_plus": "yes", "first_name": "Ana", "last_name": "Lopez", "email": "ana.lopez@example.org",
            "phone": "+1 (503) 555-0199", "zip_code": "97412", "availability": "Weekday afternoons",
            "why_reading_buddies": "I loved reading with my grandmother and want to pass that on to kids."
        }
    });
    let answer = reqwest::Client::new()
        .post(format!("{}/forms", stack.host_url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let frame: Value = answer
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str(data).ok())
        .find(|frame: &Value| frame["type"] == "form_complete")
        .unwrap_or_else(|| panic!("no form_complete frame in {answer:?}"));
    frame["submissionId"].as_str().unwrap().to_owned()
}

fn now() -> DateTime {
    DateTime::from(std::time::SystemTime::now())
}

/// Receives (and deletes) everything waiting on a queue.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut drained = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return drained;
        }
        for message in messages {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            drained.push(message);
        }
    }
}

#[tokio::test]
async fn redrive_moves_every_dead_letter_back_to_its_queue() {
    let stack = spawn_stack().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config);
    let operator = aws_sdk_sqs::Client::new(&stack.identities.ops);
    let dlq = redrive::queue_url(&operator, &resources::dead_letter_queue_name(Consumer::Email, STAGE))
        .await
        .unwrap();
    let queue = redrive::queue_url(&operator, &resources::queue_name(Consumer::Email, STAGE)).await.unwrap();
    drain(&sqs, &queue).await;
    for n in 1..=3 {
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(format!("{n}"))
            .build()
            .unwrap();
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(json!({"dead_letter": n}).to_string())
            .message_attributes("attempt", attribute)
            .send()
            .await
            .unwrap();
    }

    let moved = redrive::redrive(&operator, &dlq, &queue, None).await.unwrap();

    assert_eq!(moved, redrive::Redrive { from: dlq.clone(), to: queue.clone(), moved: 3 });
    let back = drain(&sqs, &queue).await;
    let mut bodies: Vec<(String, String)> = back
        .iter()
        .map(|m| {
            let attempt = m.message_attributes().unwrap()["attempt"].string_value().unwrap().to_owned();
            (m.body().unwrap().to_owned(), attempt)
        })
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        (1..=3).map(|n| (json!({"dead_letter": n}).to_string(), n.to_string())).collect::<Vec<_>>()
    );
    assert!(drain(&sqs, &dlq).await.is_empty(), "the dead-letter queue still holds messages");
    stack.stop().await;
}

#[tokio::test]
async fn redrive_stops_at_the_maximum_and_leaves_the_rest_in_the_dead_letter_queue() {
    let stack = spawn_stack().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config);
    let operator = aws_sdk_sqs::Client::new(&stack.identities.ops);
    let dlq = redrive::queue_url(&operator, &resources::dead_letter_queue_name(Consumer::Sms, STAGE))
        .await
        .unwrap();
    let queue = redrive::queue_url(&operator, &resources::queue_name(Consumer::Sms, STAGE)).await.unwrap();
    for n in 0..3 {
        sqs.send_message().queue_url(&dlq).message_body(format!("{n}")).send().await.unwrap();
    }

    let moved = redrive::redrive(&operator, &dlq, &queue, Some(2)).await.unwrap();

    assert_eq!(moved.moved, 2);
    assert_eq!(drain(&sqs, &dlq).await.len(), 1);
    stack.stop().await;
}

#[tokio::test]
async fn status_shows_a_submitted_forms_fulfillment_without_its_form_data() {
    let stack = spawn_stack().await;
    let submission_id = submit_demo_form(&stack).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.identities.ops);

    let shown = status::submission_status(&dynamodb, &stack.settings.form_submissions_table, &submission_id)
        .await
        .unwrap();

    assert_eq!(shown.submission_id, submission_id);
    assert_eq!(shown.tenant_id, demo::DEMO_TENANT_ID);
    assert_eq!(shown.form_id, "reading_buddy_application");
    assert!(!shown.submitted_at.is_empty() && !shown.status.is_empty(), "{shown:?}");
    assert_eq!(shown.channels, ["email", "sms", "handler"]);
    let printed = serde_json::to_string(&shown).unwrap();
    for personal in ["form_data", "ana.lopez@example.org", "Lopez", "555-0199"] {
        assert!(!printed.contains(personal), "{personal} printed in {printed}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn status_of_an_unknown_submission_says_there_is_none() {
    let stack = spawn_stack().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.identities.ops);

    let err = status::submission_status(&dynamodb, &stack.settings.form_submissions_table, "nope_1_x")
        .await
        .unwrap_err();

    assert_eq!(err.to_string(), "no submission nope_1_x");
    stack.stop().await;
}

#[tokio::test]
async fn sms_usage_reads_the_months_count_and_zero_for_a_month_without_sms() {
    let stack = spawn_stack().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk_config);
    let table = &stack.settings.sms_usage_table;
    dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(HashMap::from([
            ("tenant_id".to_owned(), AttributeValue::S("tenant-ops".to_owned())),
            ("month".to_owned(), AttributeValue::S("2026-05".to_owned())),
            ("count".to_owned(), AttributeValue::N("7".to_owned())),
        ])))
        .send()
        .await
        .unwrap();

    let operator = aws_sdk_dynamodb::Client::new(&stack.identities.ops);
    let may = sms_usage::sms_usage(&operator, table, "tenant-ops", &Month::parse("2026-05").unwrap())
        .await
        .unwrap();
    let june = sms_usage::sms_usage(&operator, table, "tenant-ops", &Month::parse("2026-06").unwrap())
        .await
        .unwrap();

    assert_eq!(
        serde_json::to_value(may).unwrap(),
        json!({"tenant_id": "tenant-ops", "month": "2026-05", "count": 7})
    );
    assert_eq!(june.count, 0);
    stack.stop().await;
}

#[tokio::test]
async fn replay_of_a_window_redelivers_its_events_and_completes() {
    let stack = spawn_stack().await;
    let from = DateTime::from_secs(now().secs() - 60);
    let submission_id = submit_demo_form(&stack).await;
    let to = now();
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config);
    let queue = redrive::queue_url(&sqs, &resources::queue_name(Consumer::Email, STAGE)).await.unwrap();
    drain(&sqs, &queue).await;
    let eventbridge = aws_sdk_eventbridge::Client::new(&stack.identities.ops);
    let request = replay::ReplayRequest {
        replay_name: replay::default_replay_name(),
        archive_name: resources::archive_name(STAGE),
        event_bus_name: stack.settings.event_bus_name.clone(),
        window: Window::new(from, to).unwrap(),
    };

    let started = replay::start_replay(&eventbridge, &request).await.unwrap();
    let finished = replay::wait_for_replay(
        &eventbridge,
        started,
        std::time::Duration::from_secs(30),
        replay::POLL_EVERY,
    )
    .await
    .unwrap();

    assert_eq!(finished.state, "COMPLETED");
    assert_eq!(finished.replay_name, request.replay_name);
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.identities.ops);
    let table = &stack.settings.form_submissions_table;
    assert_eq!(replay::events_in_window(&dynamodb, table, &request.window).await.unwrap(), 1);
    let earlier = Window::new(DateTime::from_secs(from.secs() - 600), from).unwrap();
    assert_eq!(replay::events_in_window(&dynamodb, table, &earlier).await.unwrap(), 0);
    assert!(finished.replay_arn.is_some());
    let redelivered: Vec<Value> =
        drain(&sqs, &queue).await.iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()).collect();
    assert!(
        redelivered.iter().any(|event| event["replay-name"] == request.replay_name.as_str()
            && event["detail"]["submission_id"] == submission_id.as_str()),
        "{redelivered:?}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn replay_from_an_archive_that_does_not_exist_fails_naming_it() {
    let stack = spawn_stack().await;
    let eventbridge = aws_sdk_eventbridge::Client::new(&stack.identities.ops);
    let request = replay::ReplayRequest {
        replay_name: replay::default_replay_name(),
        archive_name: "no-such-archive".to_owned(),
        event_bus_name: stack.settings.event_bus_name.clone(),
        window: Window::new(DateTime::from_secs(now().secs() - 60), now()).unwrap(),
    };

    let err = replay::start_replay(&eventbridge, &request).await.unwrap_err();

    let chain = domain::report::error_chain(&err);
    assert!(chain.starts_with("DescribeArchive no-such-archive failed"), "{chain}");
    stack.stop().await;
}
