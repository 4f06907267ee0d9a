//! The form-intake binary itself under a Lambda Runtime API emulator, with
//! the template's environment, against a local stack that enforces IAM.

use std::path::Path;

use base64::Engine as _;

use local_stack::{
    LocalStack, StackOptions,
    runtime_api::{FunctionUnderTest, sample_event},
};

#[tokio::test]
async fn the_binary_stores_a_submission_from_a_function_url_event() {
    let stack = LocalStack::start(StackOptions::for_tests()).await.unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_form-intake"));
    let function = FunctionUnderTest::start(&stack, "FormIntakeFunction", binary, &[]).await.unwrap();

    let invocation = function.invoke(sample_event("form-intake/submit-form-valid.json")).await.unwrap();

    let response = invocation.json().unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(response["headers"]["content-type"], "text/event-stream");
    let body = response["body"].as_str().unwrap();
    assert!(body.contains("\"type\":\"form_complete\""), "{body}");
    let frame: serde_json::Value =
        serde_json::from_str(body.lines().nth(4).unwrap().trim_start_matches("data: ")).unwrap();
    let id = frame["submissionId"].as_str().unwrap();
    let stored = aws_sdk_dynamodb::Client::new(&stack.sdk_config)
        .get_item()
        .table_name(&stack.settings.form_submissions_table)
        .key("submission_id", aws_sdk_dynamodb::types::AttributeValue::S(id.to_owned()))
        .send()
        .await
        .unwrap();
    assert!(stored.item.is_some(), "{id} is in the table");
    function.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn the_binary_answers_a_get_config_event_with_the_public_widget_config() {
    let stack = LocalStack::start(StackOptions::for_tests()).await.unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_form-intake"));
    let function = FunctionUnderTest::start(&stack, "FormIntakeFunction", binary, &[]).await.unwrap();

    let invocation = function.invoke(sample_event("form-intake/get-config.json")).await.unwrap();

    let response = invocation.json().unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(response["headers"]["content-type"], "application/json");
    assert_eq!(response["headers"]["cache-control"], "public, max-age=300");
    assert!(response["headers"]["etag"].as_str().is_some_and(|tag| tag.starts_with('"')), "{response}");
    let view: serde_json::Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(view["tenant_hash"], "ri3a9f2c7d41be");
    assert!(view.get("tone_prompt").is_none() && view.get("tenant_id").is_none(), "{view}");
    function.stop().await;
    stack.stop().await;
}

/// The log lines of one invocation, as JSON.
fn lines_of(function: &FunctionUnderTest, request_id: &str) -> Vec<serde_json::Value> {
    function
        .log_lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["function_request_id"] == request_id)
        .collect()
}

#[tokio::test]
async fn every_log_line_of_an_invocation_carries_its_request_id_trace_id_function_and_cold_start() {
    let stack = LocalStack::start(StackOptions::for_tests()).await.unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_form-intake"));
    let function = FunctionUnderTest::start(&stack, "FormIntakeFunction", binary, &[]).await.unwrap();

    let first = function.invoke(sample_event("form-intake/submit-form-valid.json")).await.unwrap();
    let second = function.invoke(sample_event("form-intake/submit-form-valid.json")).await.unwrap();

    let (first, second) = (lines_of(&function, &first.request_id), lines_of(&function, &second.request_id));
    assert!(!first.is_empty() && !second.is_empty(), "{:?}", function.log_lines());
    for line in first.iter().chain(&second) {
        assert_eq!(line["function_name"], "FormIntakeFunction-local", "{line}");
        assert!(line["xray_trace_id"].as_str().is_some_and(|t| t.starts_with("Root=1-")), "{line}");
        assert!(
            line["timestamp"].is_string() && line["level"].is_string() && line["message"].is_string(),
            "{line}"
        );
    }
    assert!(first.iter().all(|line| line["cold_start"] == true), "{first:?}");
    assert!(second.iter().all(|line| line["cold_start"] == false), "{second:?}");
    function.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn aws_lambda_log_level_sets_the_level_when_rust_log_is_unset() {
    let stack = LocalStack::start(StackOptions::for_tests()).await.unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_form-intake"));
    let quiet = [("AWS_LAMBDA_LOG_LEVEL", "WARN")];
    let function = FunctionUnderTest::start(&stack, "FormIntakeFunction", binary, &quiet).await.unwrap();

    let invocation = function.invoke(sample_event("form-intake/submit-form-valid.json")).await.unwrap();

    assert_eq!(invocation.json().unwrap()["statusCode"], 200);
    let info: Vec<_> =
        function.log_lines().into_iter().filter(|line| line.contains("\"level\":\"INFO\"")).collect();
    assert!(info.is_empty(), "INFO lines under WARN: {info:?}");
    function.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn the_binary_reads_a_base64_body_and_echoes_an_allowed_origin_and_refuses_another() {
    let stack = LocalStack::start(StackOptions::for_tests()).await.unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_form-intake"));
    let function = FunctionUnderTest::start(&stack, "FormIntakeFunction", binary, &[]).await.unwrap();
    let mut event: serde_json::Value =
        serde_json::from_str(&sample_event("form-intake/validate-field-valid.json")).unwrap();
    // The Function URL base64-encodes a body whose content type is not text.
    let body = event["body"].as_str().unwrap().to_owned();
    event["body"] = base64::engine::general_purpose::STANDARD.encode(body).into();
    event["isBase64Encoded"] = true.into();
    event["headers"]["content-type"] = "application/octet-stream".into();

    let allowed = function.invoke(event.to_string()).await.unwrap().json().unwrap();
    event["headers"]["origin"] = "https://elsewhere.example".into();
    let other = function.invoke(event.to_string()).await.unwrap().json().unwrap();

    assert_eq!(allowed["statusCode"], 200, "{allowed}");
    assert!(allowed["body"].as_str().unwrap().contains("validation_success"), "{allowed}");
    assert_eq!(allowed["headers"]["access-control-allow-origin"], "https://www.riverbendliteracy.org");
    assert_eq!(other["statusCode"], 403, "{other}");
    assert!(other["body"].as_str().unwrap().contains("origin_not_allowed"), "{other}");
    assert_eq!(
        other["headers"]["access-control-allow-origin"], "https://elsewhere.example",
        "the refusal is readable, so the widget can show its sentence: {other}"
    );
    function.stop().await;
    stack.stop().await;
}
