//! Least privilege, checked from the parsed template: each function's role
//! grants exactly the actions its code calls (listed beside the code in
//! `functions/<name>/iam-actions.txt`), on named resources.

use std::collections::BTreeSet;

use local_stack::{repo_root, template::Template};
use serde_json::Value;

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn statements(function: &Value) -> Vec<Value> {
    function["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|policy| policy["Statement"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[test]
fn every_functions_role_grants_exactly_the_actions_its_code_calls() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    let functions: Vec<_> = template.resources_of_kind("AWS::Serverless::Function").collect();
    assert_eq!(functions.len(), 6, "chat-stream, form-intake, outbox-sweeper and the three consumers");
    for function in functions {
        let binary = function.metadata["BuildProperties"]["Binary"].as_str().unwrap();
        let listed = std::fs::read_to_string(repo_root().join(format!("functions/{binary}/iam-actions.txt")))
            .unwrap_or_else(|e| panic!("functions/{binary}/iam-actions.txt: {e}"));
        let called: BTreeSet<String> = listed
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        let granted: BTreeSet<String> =
            statements(&function.properties).iter().flat_map(|s| strings(&s["Action"])).collect();
        assert_eq!(granted, called, "{}: granted vs called", function.logical_id);
    }
}

#[test]
fn no_function_policy_grants_on_every_resource() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    for function in template.resources_of_kind("AWS::Serverless::Function") {
        for statement in statements(&function.properties) {
            assert_eq!(statement["Effect"], "Allow");
            let resources = &statement["Resource"];
            assert!(!resources.is_null(), "{}: statement without Resource", function.logical_id);
            // SNS authorizes SMS to phone numbers only on "*"; nothing else may use it.
            let sms_only = strings(&statement["Action"]) == ["sns:Publish"];
            assert!(
                sms_only || !strings(resources).iter().any(|r| r == "*"),
                "{}: {} on Resource \"*\"",
                function.logical_id,
                statement["Sid"]
            );
        }
    }
}

#[test]
fn every_consumer_queue_has_a_dead_letter_queue_with_a_depth_alarm() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    let alarmed: BTreeSet<String> = template
        .resources_of_kind("AWS::CloudWatch::Alarm")
        .flat_map(|alarm| alarm.properties["Dimensions"].as_array().cloned().unwrap_or_default())
        .filter_map(|dimension| dimension["Value"]["Fn::GetAtt"][0].as_str().map(str::to_owned))
        .collect();
    let queues: Vec<_> = template.resources_of_kind("AWS::SQS::Queue").collect();
    let consumers: Vec<_> = queues.iter().filter(|q| !q.logical_id.contains("DeadLetter")).collect();
    assert_eq!(consumers.len(), 3);
    for queue in consumers {
        let redrive = &queue.properties["RedrivePolicy"];
        assert_eq!(redrive["maxReceiveCount"], 5, "{}", queue.logical_id);
        let dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0].as_str().unwrap();
        assert!(alarmed.contains(dlq), "{dlq} has no depth alarm");
    }
}
