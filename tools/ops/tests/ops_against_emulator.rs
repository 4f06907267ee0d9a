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
    sms_usage, status, submissions,
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
    submit_reading_buddy(stack, demo::DEMO_TENANT_HASH, "Ana", "session_1733500000000_k3j9x2abc").await
}

/// The reading-buddy form of the tenant behind `hash`, from one applicant in one widget session.
async fn submit_reading_buddy(stack: &LocalStack, hash: &str, first_name: &str, session_id: &str) -> String {
    let body = json!({
        "tenant_hash": hash, "form_mode": true, "action": "submit_form",
        "form_id": "reading_buddy_application",
        "form_data": {
            "age_18_plus": "yes", "first_name": first_name, "last_name": "Lopez", "email": "ana.lopez@example.org",
            "phone": "+1 (503) 555-0199", "zip_code": "97412", "availability": "Weekday afternoons",
            "why_reading_buddies": "I loved reading with my grandmother and want to pass that on to kids."
        },
        "session_id": session_id, "conversation_id": session_id
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

/// The demo tenant's config under another tenant, keeping submissions `retention_days`.
async fn tenant_keeping_submissions(stack: &LocalStack, hash: &str, tenant_id: &str, retention_days: u32) {
    let mut config: Value = serde_json::from_str(include_str!("../../demo-tenant/config.json")).unwrap();
    config["tenant_id"] = json!(tenant_id);
    config["tenant_hash"] = json!(hash);
    config["data_retention_days"] = json!(retention_days);
    if let Err(err) = stack.put_tenant(hash, tenant_id, &config).await {
        panic!("registering {tenant_id}: {}", domain::report::error_chain(&err));
    }
}

#[tokio::test]
async fn submissions_lists_a_tenants_forms_newest_first_across_pages_with_what_staff_need() {
    let stack = spawn_stack().await;
    tenant_keeping_submissions(&stack, "reta1n000001", "RETAIN0001", 30).await;
    let mut ids = Vec::new();
    for (name, session) in [("Ana", "sess_a1"), ("Bo", "sess_b2"), ("Cy", "sess_c3")] {
        ids.push(submit_reading_buddy(&stack, "reta1n000001", name, session).await);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    submit_demo_form(&stack).await; // another tenant's: never listed
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.identities.ops);
    let table = &stack.settings.form_submissions_table;
    let listing = submissions::Listing {
        tenant_id: "RETAIN0001".into(),
        since: None,
        until: None,
        status: None,
        page_size: 2,
    };

    let listed = submissions::list(&dynamodb, table, &listing).await.unwrap();

    let listed_ids: Vec<&str> = listed.iter().map(|s| s.submission_id.as_str()).collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed_ids, newest_first, "three submissions over two pages, newest first");
    let first = listed.last().unwrap();
    assert_eq!(first.staff.session_id.as_deref(), Some("sess_a1"));
    assert_eq!(first.staff.conversation_id.as_deref(), Some("sess_a1"));
    assert_eq!(first.staff.form_title, "Reading Buddy Application");
    assert_eq!(first.pipeline_status.as_deref(), Some("new"));
    assert_eq!(first.contact.to_map().get("email").map(String::as_str), Some("ana.lopez@example.org"));
    assert_eq!(
        first.staff.display.first(),
        Some(&("Are you 18 or older?".to_owned(), "Yes, I'm 18 or older".to_owned()))
    );
    assert!(
        first.staff.display.contains(&("First name".to_owned(), "Ana".to_owned())),
        "{:?}",
        first.staff.display
    );
    let in_30_days = now().secs() as u64 + 30 * 24 * 3600;
    assert!(
        first.staff.expires_at.abs_diff(in_30_days) < 120,
        "expires_at {} is not 30 days on",
        first.staff.expires_at
    );

    let csv = submissions::to_csv(&listed).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(",Are you 18 or older?,First name,Last name,Email address,Phone number,ZIP code,Availability,Why Reading Buddies?"), "{header}");
    assert_eq!(csv.lines().count(), 4, "{csv}");

    let from_tomorrow =
        submissions::Listing { since: Some(DateTime::from_secs(now().secs() + 86_400)), ..listing.clone() };
    assert!(submissions::list(&dynamodb, table, &from_tomorrow).await.unwrap().is_empty());
    let held = submissions::Listing { status: Some(domain::fulfillment::SubmissionStatus::Held), ..listing };
    assert!(submissions::list(&dynamodb, table, &held).await.unwrap().is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn a_tenant_without_retention_keeps_submissions_a_year_and_the_idempotency_record_30_days() {
    let stack = spawn_stack().await;
    let submission_id = submit_demo_form(&stack).await;
    let admin = aws_sdk_dynamodb::Client::new(&stack.sdk_config);
    let item = admin
        .get_item()
        .table_name(&stack.settings.form_submissions_table)
        .key("submission_id", AttributeValue::S(submission_id))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let expires: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    let in_a_year = now().secs() as u64 + 365 * 24 * 3600;
    assert!(expires.abs_diff(in_a_year) < 120, "expires_at {expires}");
    let ttl = admin
        .describe_time_to_live()
        .table_name(&stack.settings.form_submissions_table)
        .send()
        .await
        .unwrap();
    let spec = ttl.time_to_live_description.unwrap();
    assert_eq!(spec.attribute_name.as_deref(), Some("expires_at"), "the table's TTL reads that attribute");
    stack.stop().await;
}
