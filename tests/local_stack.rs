//! The local stack creates what template.yaml declares, and its host answers.

use std::collections::HashMap;

use aws_sdk_sqs::{error::ProvideErrorMetadata, types::QueueAttributeName};
use e2e::spawn_stack;
use serde_json::{Value, json};

#[tokio::test]
async fn every_resource_in_the_template_exists_locally_with_its_declared_keys_and_redrive_policy() {
    let stack = spawn_stack().await;
    let config = &stack.sdk_config;
    let s3 = local_stack::s3_client(config);
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    let events = aws_sdk_eventbridge::Client::new(config);
    let logs = aws_sdk_cloudwatchlogs::Client::new(config);
    let arn_of = |logical_id: &str| stack.created[logical_id].attributes["Arn"].clone();
    let mut checked = HashMap::<&str, usize>::new();

    for resource in &stack.template.resources {
        let declared = &resource.properties;
        let physical = stack.created.get(&resource.logical_id);
        match resource.kind.as_str() {
            "AWS::S3::Bucket" => {
                s3.head_bucket().bucket(&physical.unwrap().reference).send().await.unwrap();
            }
            "AWS::DynamoDB::Table" => {
                let table =
                    dynamodb.describe_table().table_name(&physical.unwrap().reference).send().await.unwrap();
                let keys: Vec<Value> = table
                    .table
                    .unwrap()
                    .key_schema
                    .unwrap()
                    .into_iter()
                    .map(|k| json!({"AttributeName": k.attribute_name, "KeyType": k.key_type.as_str()}))
                    .collect();
                assert_eq!(Value::from(keys), declared["KeySchema"], "{}", resource.logical_id);
            }
            "AWS::SQS::Queue" => {
                let attributes = sqs
                    .get_queue_attributes()
                    .queue_url(&physical.unwrap().reference)
                    .attribute_names(QueueAttributeName::All)
                    .send()
                    .await
                    .unwrap()
                    .attributes
                    .unwrap();
                if let Some(redrive) = declared.get("RedrivePolicy") {
                    let actual: Value =
                        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
                    let dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0].as_str().unwrap();
                    assert_eq!(actual["deadLetterTargetArn"], arn_of(dlq), "{}", resource.logical_id);
                    assert_eq!(actual["maxReceiveCount"].to_string(), "5", "{}", resource.logical_id);
                }
                if let Some(timeout) = declared.get("VisibilityTimeout") {
                    assert_eq!(attributes[&QueueAttributeName::VisibilityTimeout], timeout.to_string());
                }
            }
            "AWS::SQS::QueuePolicy" => {
                let queue = declared["Queues"][0]["Ref"].as_str().unwrap();
                let policy = sqs
                    .get_queue_attributes()
                    .queue_url(&stack.created[queue].reference)
                    .attribute_names(QueueAttributeName::Policy)
                    .send()
                    .await
                    .unwrap()
                    .attributes
                    .unwrap()
                    .remove(&QueueAttributeName::Policy)
                    .unwrap();
                assert!(policy.contains("events.amazonaws.com"), "{policy}");
            }
            "AWS::Events::EventBus" => {
                events.describe_event_bus().name(&physical.unwrap().reference).send().await.unwrap();
            }
            "AWS::Events::Rule" => {
                let name = &physical.unwrap().reference;
                let bus = &stack.settings.event_bus_name;
                let rule = events.describe_rule().name(name).event_bus_name(bus).send().await.unwrap();
                let pattern: Value = serde_json::from_str(rule.event_pattern().unwrap()).unwrap();
                assert_eq!(pattern, declared["EventPattern"]);
                let targets =
                    events.list_targets_by_rule().rule(name).event_bus_name(bus).send().await.unwrap();
                let queue = declared["Targets"][0]["Arn"]["Fn::GetAtt"][0].as_str().unwrap();
                assert_eq!(targets.targets()[0].arn(), arn_of(queue));
            }
            "AWS::Events::Archive" => {
                let archive = events
                    .describe_archive()
                    .archive_name(&physical.unwrap().reference)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(archive.event_source_arn(), Some(arn_of("EventBus").as_str()));
                let pattern: Value = serde_json::from_str(archive.event_pattern().unwrap()).unwrap();
                assert_eq!(pattern, declared["EventPattern"]);
            }
            "AWS::Logs::LogGroup" => {
                let name = &physical.unwrap().reference;
                let groups = logs
                    .describe_log_groups()
                    .log_group_name_prefix(name)
                    .send()
                    .await
                    .unwrap()
                    .log_groups
                    .unwrap();
                assert_eq!(groups[0].log_group_name(), Some(name.as_str()));
                assert_eq!(
                    groups[0].retention_in_days().map(i64::from),
                    declared["RetentionInDays"].as_i64()
                );
            }
            _ => continue,
        }
        *checked.entry(resource.kind.as_str()).or_default() += 1;
    }
    assert_eq!(checked["AWS::Logs::LogGroup"], 7, "one per function");

    assert_eq!(
        checked["AWS::SQS::Queue"], 9,
        "four consumer queues (the funnel's too), their DLQs, the parking queue"
    );
    assert_eq!(checked["AWS::Events::Rule"], 4, "one rule per consumer");
    assert_eq!(
        checked["AWS::DynamoDB::Table"], 4,
        "submissions, SMS usage, rate-limit counters and the funnel"
    );
    assert_eq!(checked["AWS::Events::Archive"], 2, "FormSubmitted and WidgetAnalytics");
    stack.stop().await;
}

#[tokio::test]
async fn a_form_submitted_event_reaches_every_consumer_queue() {
    let stack = spawn_stack().await;
    let events = aws_sdk_eventbridge::Client::new(&stack.sdk_config);
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .event_bus_name(&stack.settings.event_bus_name)
        .source("picasso.forms")
        .detail_type("FormSubmitted")
        .detail(r#"{"schema_version":1,"submission_id":"s1"}"#)
        .build();
    let put = events.put_events().entries(entry).send().await.unwrap();
    assert_eq!(put.failed_entry_count(), 0);

    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config);
    for queue in ["EmailQueue", "SmsQueue", "HandlerQueue", "FunnelQueue"] {
        let received = sqs.receive_message().queue_url(&stack.created[queue].reference).send().await.unwrap();
        let body: Value = serde_json::from_str(received.messages()[0].body().unwrap()).unwrap();
        assert_eq!(body["detail"]["submission_id"], "s1", "{queue}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn healthz_reports_the_aws_endpoint_and_that_everything_is_up() {
    let stack = spawn_stack().await;
    let response = reqwest::get(format!("{}/healthz", stack.host_url())).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["aws_endpoint"], stack.endpoint);
    assert_eq!(
        body["checks"],
        json!({"emulator": "up", "config_bucket": "up", "demo_tenant": "up", "bedrock_standin": "up"})
    );
    assert_eq!(body["bedrock_endpoint"], stack.bedrock_url);
    stack.stop().await;
}

#[tokio::test]
async fn the_outbox_shows_emails_and_sms_the_emulator_captured() {
    let stack = spawn_stack().await;
    let ses = aws_sdk_sesv2::Client::new(&stack.sdk_config);
    let content = aws_sdk_sesv2::types::EmailContent::builder()
        .simple(
            aws_sdk_sesv2::types::Message::builder()
                .subject(aws_sdk_sesv2::types::Content::builder().data("New application").build().unwrap())
                .body(
                    aws_sdk_sesv2::types::Body::builder()
                        .text(aws_sdk_sesv2::types::Content::builder().data("Hello team").build().unwrap())
                        .build(),
                )
                .build(),
        )
        .build();
    ses.send_email()
        .from_email_address(&stack.settings.ses_from_email)
        .destination(aws_sdk_sesv2::types::Destination::builder().to_addresses("team@example.org").build())
        .content(content)
        .send()
        .await
        .expect("the stack verified the SES sender");
    aws_sdk_sns::Client::new(&stack.sdk_config)
        .publish()
        .phone_number("+15035550142")
        .message("New application")
        .send()
        .await
        .unwrap();

    let outbox: Value =
        reqwest::get(format!("{}/outbox", stack.host_url())).await.unwrap().json().await.unwrap();
    assert_eq!(outbox["emails"][0]["to"], json!(["team@example.org"]));
    assert_eq!(outbox["emails"][0]["subject"], "New application");
    assert_eq!(outbox["emails"][0]["from"], stack.settings.ses_from_email);
    assert_eq!(
        outbox["sms"],
        json!([{"id": outbox["sms"][0]["id"], "to": "+15035550142", "message": "New application"}])
    );
    stack.stop().await;
}

#[tokio::test]
async fn the_demo_tenant_mapping_is_listed_under_mappings() {
    let stack = spawn_stack().await;
    let listed = local_stack::s3_client(&stack.sdk_config)
        .list_objects_v2()
        .bucket(&stack.settings.config_bucket)
        .prefix("mappings/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, [format!("mappings/{}.json", e2e::demo::DEMO_TENANT_HASH)]);
    stack.stop().await;
}

/// "ok", or the error code an AWS call failed with (read from the raw answer
/// when the SDK cannot parse moto's error document for that protocol).
fn outcome<T, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> String {
    let err = match result {
        Ok(_) => return "ok".to_owned(),
        Err(err) => err,
    };
    if let Some(code) = err.code() {
        return code.to_owned();
    }
    let raw = err.raw_response().and_then(|r| r.body().bytes()).map(String::from_utf8_lossy);
    match raw {
        Some(body) if body.contains("AccessDenied") => "AccessDenied".to_owned(),
        _ => format!("{err:?}"),
    }
}

#[tokio::test]
async fn each_function_is_refused_what_its_role_in_the_template_does_not_grant() {
    let stack = spawn_stack().await;
    let chat = stack.identities.function("ChatStreamFunction");
    let email = stack.identities.function("EmailSenderFunction");
    let bucket = &stack.settings.config_bucket;
    let mapping = format!("mappings/{}.json", e2e::demo::DEMO_TENANT_HASH);

    let s3 = local_stack::s3_client(chat);
    assert_eq!(outcome(s3.get_object().bucket(bucket).key(&mapping).send().await), "ok");
    let write = s3.put_object().bucket(bucket).key(&mapping).body(b"{}".to_vec().into()).send().await;
    assert_eq!(outcome(write), "AccessDenied", "chat-stream may read tenant config, not write it");
    let outside = s3.get_object().bucket(bucket).key("knowledge-base/RIVKB00001/x.md").send().await;
    assert_eq!(outcome(outside), "AccessDenied", "only mappings/ and tenants/");

    let scan = aws_sdk_dynamodb::Client::new(chat)
        .scan()
        .table_name(&stack.settings.form_submissions_table)
        .send()
        .await;
    assert!(outcome(scan).starts_with("AccessDenied"), "no role scans the submissions");
    let listed = aws_sdk_sesv2::Client::new(email).list_email_identities().send().await;
    let identities = outcome(listed);
    assert!(identities.starts_with("AccessDenied"), "email-sender may send, nothing else: {identities}");
    let sqs = aws_sdk_sqs::Client::new(email);
    let other_queue = sqs.receive_message().queue_url(&stack.created["SmsQueue"].reference).send().await;
    assert!(outcome(other_queue).contains("AccessDenied"), "email-sender polls its own queue only");
    let own_queue = sqs.receive_message().queue_url(&stack.created["EmailQueue"].reference).send().await;
    assert_eq!(outcome(own_queue), "ok");
    stack.stop().await;
}

#[tokio::test]
async fn the_emulator_refuses_credentials_it_did_not_issue() {
    let stack = spawn_stack().await;
    let stranger = aws_adapters::config::emulator_sdk_config(&stack.endpoint, &stack.settings.region).await;
    let listed = aws_sdk_sqs::Client::new(&stranger).list_queues().send().await;
    assert_ne!(outcome(listed), "ok", "test/test is not a principal of this emulator");
    stack.stop().await;
}

#[tokio::test]
async fn a_second_stack_on_busy_ports_stops_before_creating_anything_and_names_the_flag_to_change() {
    use local_stack::{LocalStack, StackError, StackOptions};
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    for (options, flag) in [
        (StackOptions { moto_port: port, ..StackOptions::for_tests() }, "--moto-port"),
        (StackOptions { host_port: port, ..StackOptions::for_tests() }, "--host-port"),
        (StackOptions { bedrock_port: port, ..StackOptions::for_tests() }, "--bedrock-port"),
    ] {
        let err = LocalStack::start(options).await.err().expect("the port is busy");
        assert!(
            matches!(err, StackError::PortBusy { port: p, flag: f } if p == port && f == flag),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&port.to_string()) && message.contains(flag), "{message}");
    }
}

#[tokio::test]
async fn every_function_is_registered_in_the_emulators_lambda_with_its_template_configuration() {
    let stack = spawn_stack().await;
    let lambda = aws_sdk_lambda::Client::new(&stack.sdk_config);
    let functions = stack.template.resources.iter().filter(|r| r.kind == "AWS::Serverless::Function");
    let mut seen = 0;
    for function in functions {
        let name = &stack.created[&function.logical_id].reference;
        let config = lambda.get_function_configuration().function_name(name).send().await.unwrap();
        assert_eq!(config.runtime().map(|r| r.as_str()), Some("provided.al2023"), "{name}");
        assert_eq!(config.handler(), Some("bootstrap"), "{name}");
        let timeout = stack.template.function_timeout(&function.logical_id).unwrap();
        assert_eq!(config.timeout(), Some(timeout.as_secs() as i32), "{name}");
        assert_eq!(config.memory_size().map(i64::from), function.properties["MemorySize"].as_i64(), "{name}");
        let variables = config.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
        let declared = function.properties["Environment"]["Variables"].as_object().unwrap();
        assert_eq!(variables.len(), declared.len(), "{name}: {variables:?}");
        assert_eq!(variables["FORM_SUBMISSIONS_TABLE"], stack.settings.form_submissions_table, "{name}");
        seen += 1;
    }
    assert_eq!(seen, 7);
    let url = lambda
        .get_function_url_config()
        .function_name(&stack.created["ChatStreamFunction"].reference)
        .qualifier("live")
        .send()
        .await
        .unwrap();
    assert_eq!(url.invoke_mode().map(|m| m.as_str()), Some("RESPONSE_STREAM"));
    stack.stop().await;
}

#[tokio::test]
async fn the_guides_post_deployment_validation_passes_against_the_local_stack() {
    use local_stack::{LocalStack, StackOptions, consumers::Polling};
    let dir = std::env::temp_dir().join(format!("picasso-validate-{}", std::process::id()));
    let profiles = dir.join("aws");
    let options = StackOptions {
        profile_dir: Some(profiles.clone()),
        consumers: Some(Polling { retry_delay: None, pollers: 1 }),
        alarms: true,
        ..StackOptions::for_tests()
    };
    let stack = LocalStack::start(options).await.unwrap();
    let moto_port = stack.endpoint.rsplit(':').next().unwrap().to_owned();

    let run = tokio::process::Command::new(local_stack::repo_root().join("tools/validate.sh"))
        .args(["--local", "--moto-port", &moto_port, "--host-port", &stack.host_addr.port().to_string()])
        .arg("--profiles")
        .arg(&profiles)
        .output()
        .await
        .unwrap();

    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{printed}\n{}", String::from_utf8_lossy(&run.stderr));
    // The operations dashboard is created with the alarms, its body as the template gives it.
    let data: serde_json::Value =
        reqwest::get(format!("{}/moto-api/data.json", stack.endpoint)).await.unwrap().json().await.unwrap();
    let dashboards = data["cloudwatch"]["Dashboard"].as_array().cloned().unwrap_or_default();
    let dashboard =
        dashboards.iter().find(|d| d["name"] == "picasso-local").expect("the picasso-local dashboard");
    let body: serde_json::Value = serde_json::from_str(dashboard["body"].as_str().unwrap()).unwrap();
    let titles: Vec<&str> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["properties"]["title"].as_str())
        .collect();
    assert_eq!(titles.len(), 7, "{titles:?}");
    assert!(body.to_string().contains("picasso-funnel-dlq-local"), "every DLQ, the funnel's too");
    assert!(printed.contains("6 passed, 0 failed, 1 skipped"), "{printed}"); // logs: see docs/operations.md
    for step in 1..=7 {
        assert!(printed.contains(&format!("== Step {step}:")), "step {step} missing: {printed}");
    }
    stack.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_functions_log_lines_reach_its_log_group_as_lambda_ships_them() {
    use tracing_subscriber::layer::SubscriberExt;
    let stack = spawn_stack().await;
    // The test's runtime runs the host on this thread, so this subscriber sees the functions' lines.
    let (layer, queue) = local_stack::log_shipping::layer();
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let logs = aws_sdk_cloudwatchlogs::Client::new(&stack.sdk_config);
    local_stack::log_shipping::ship(queue, logs.clone());

    let body = json!({"tenant_hash": local_stack::demo::DEMO_TENANT_HASH, "form_mode": true, "action": "validate_field",
                      "field_id": "email", "field_value": "ana@"});
    let answer =
        reqwest::Client::new().post(format!("{}/forms", stack.host_url())).json(&body).send().await.unwrap();
    assert_eq!(answer.status(), 200);

    let group = format!("/aws/lambda/{}", stack.created["FormIntakeFunction"].reference);
    let mut messages = Vec::new();
    for _ in 0..50 {
        let found = logs.filter_log_events().log_group_name(&group).send().await.unwrap();
        messages = found.events().iter().filter_map(|e| e.message().map(str::to_owned)).collect::<Vec<_>>();
        if !messages.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let line: Value =
        serde_json::from_str(messages.first().expect("a line in the form-intake group")).unwrap();
    assert_eq!(line["function_name"], stack.created["FormIntakeFunction"].reference.as_str(), "{line}");
    assert!(line["level"].is_string() && line["message"].is_string(), "{line}");
    stack.stop().await;
}

#[tokio::test]
async fn a_chat_answers_lines_written_while_it_streams_reach_the_chat_log_group() {
    use tracing_subscriber::layer::SubscriberExt;
    let stack = spawn_stack().await;
    let (layer, queue) = local_stack::log_shipping::layer();
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let logs = aws_sdk_cloudwatchlogs::Client::new(&stack.sdk_config);
    local_stack::log_shipping::ship(queue, logs.clone());
    // The model is throttled on every try: the answer task logs the error after the stream started.
    reqwest::Client::new()
        .post(format!("{}/_standin/faults", stack.bedrock_url))
        .body(r#"{"throttle_next":20}"#)
        .send()
        .await
        .unwrap();

    let body =
        json!({"tenant_hash": local_stack::demo::DEMO_TENANT_HASH, "user_input": "What is Reading Buddies?"});
    let answer =
        reqwest::Client::new().post(format!("{}/chat", stack.host_url())).json(&body).send().await.unwrap();
    let frames = answer.text().await.unwrap();
    assert!(frames.contains("model_throttled"), "{frames}");

    let group = format!("/aws/lambda/{}", stack.created["ChatStreamFunction"].reference);
    let is_error = |m: &String| m.contains("\"level\":\"ERROR\"");
    let messages = log_messages(&logs, &group, |messages| messages.iter().any(is_error)).await;
    let errors: Vec<&String> = messages.iter().filter(|m| is_error(m)).collect();
    assert!(!errors.is_empty(), "the model error reached the chat-stream group");
    stack.stop().await;
}

#[tokio::test]
async fn a_chats_qa_complete_and_metric_lines_reach_the_chat_log_group_as_printed() {
    use tracing_subscriber::layer::SubscriberExt;
    let stack = spawn_stack().await;
    let (layer, queue) = local_stack::log_shipping::layer();
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let logs = aws_sdk_cloudwatchlogs::Client::new(&stack.sdk_config);
    local_stack::log_shipping::ship(queue, logs.clone());

    let body =
        json!({"tenant_hash": local_stack::demo::DEMO_TENANT_HASH, "user_input": "What is Reading Buddies?"});
    let answer =
        reqwest::Client::new().post(format!("{}/chat", stack.host_url())).json(&body).send().await.unwrap();
    assert!(answer.text().await.unwrap().contains("[DONE]"));

    let group = format!("/aws/lambda/{}", stack.created["ChatStreamFunction"].reference);
    let printed = log_messages(&logs, &group, |printed| {
        printed.iter().any(|m| m.contains("\"QA_COMPLETE\""))
            && printed.iter().any(|m| m.contains("\"_aws\""))
    })
    .await;
    let qa =
        printed.iter().find(|m| m.contains("\"QA_COMPLETE\"")).expect("the QA_COMPLETE line in the group");
    let qa: Value = serde_json::from_str(qa).unwrap();
    assert_eq!(qa["type"], "QA_COMPLETE", "shipped as printed, not wrapped: {qa}");
    assert!(printed.iter().any(|m| m.contains("\"_aws\"")), "the metric line too: {printed:?}");
    stack.stop().await;
}

#[tokio::test]
async fn each_sweeper_run_reports_its_summary_in_the_sweepers_log_group() {
    use tracing_subscriber::layer::SubscriberExt;
    let (layer, queue) = local_stack::log_shipping::layer();
    let _subscriber = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let sweep = local_stack::Sweep {
        every: std::time::Duration::from_millis(300),
        grace: std::time::Duration::from_secs(60),
    };
    let stack = e2e::spawn_stack_with(Some(sweep)).await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&stack.sdk_config);
    local_stack::log_shipping::ship(queue, logs.clone());

    let group = format!("/aws/lambda/{}", stack.created["OutboxSweeperFunction"].reference);
    let swept = |messages: &[String]| messages.iter().any(|m| m.contains("outbox swept"));
    let messages = log_messages(&logs, &group, swept).await;
    assert!(messages.iter().any(|m| m.contains("outbox swept")), "{messages:?}");
    stack.stop().await;
}

/// A log group's messages, once `enough` holds for them (checked every 100 ms, at most 5 s).
async fn log_messages(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    enough: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut messages = Vec::new();
    for _ in 0..50 {
        let found = logs.filter_log_events().log_group_name(group).send().await.unwrap();
        messages = found.events().iter().filter_map(|e| e.message()).map(str::to_owned).collect::<Vec<_>>();
        if enough(&messages) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    messages
}
