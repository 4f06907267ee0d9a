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
    assert_eq!(
        functions.len(),
        7,
        "chat-stream, form-intake, outbox-sweeper, the three consumers, the funnel"
    );
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
    // The parking queue has no consumer and no DLQ: nothing leaves it but into the table.
    let consumers: Vec<_> = queues
        .iter()
        .filter(|q| !q.logical_id.contains("DeadLetter") && q.logical_id != "ParkedSubmissionsQueue")
        .collect();
    assert_eq!(consumers.len(), 4, "email, SMS, handler and funnel");
    for queue in consumers {
        let redrive = &queue.properties["RedrivePolicy"];
        assert_eq!(redrive["maxReceiveCount"], 5, "{}", queue.logical_id);
        let dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0].as_str().unwrap();
        assert!(alarmed.contains(dlq), "{dlq} has no depth alarm");
    }
}

fn functions(template: &Template) -> Vec<&local_stack::template::Resource> {
    template.resources_of_kind("AWS::Serverless::Function").collect()
}

fn resource<'a>(template: &'a Template, logical_id: &str) -> &'a local_stack::template::Resource {
    template
        .resources
        .iter()
        .find(|r| r.logical_id == logical_id)
        .unwrap_or_else(|| panic!("no {logical_id}"))
}

/// The function an alarm watches (`Dimensions: [{Name: FunctionName, Value: !Ref F}]`).
fn watched_function(alarm: &Value) -> Option<String> {
    let dimensions = alarm["Dimensions"].as_array().cloned().or_else(|| {
        alarm["Metrics"]
            .as_array()?
            .iter()
            .find_map(|m| m["MetricStat"]["Metric"]["Dimensions"].as_array().cloned())
    })?;
    dimensions
        .iter()
        .find(|d| d["Name"] == "FunctionName")
        .and_then(|d| d["Value"]["Ref"].as_str().map(str::to_owned))
}

#[test]
fn every_function_runs_on_arm64_al2023_with_tracing_and_a_live_alias() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    let globals = &template.globals["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    // The architecture is a parameter so a local build for `sam local invoke`
    // can be x86_64; every deploy keeps its arm64 default.
    assert_eq!(globals["Architectures"], serde_json::json!([{"Ref": "Architecture"}]));
    assert_eq!(template.parameters["Architecture"], "arm64");
    let samconfig = std::fs::read_to_string(repo_root().join("samconfig.toml")).unwrap();
    assert!(!samconfig.contains("Architecture"), "samconfig.toml deploys the arm64 default");
    assert_eq!(globals["Tracing"], "Active");
    assert_eq!(globals["AutoPublishAlias"], "live");
    for function in functions(&template) {
        assert_eq!(function.metadata["BuildMethod"], "rust-cargolambda", "{}", function.logical_id);
        assert!(
            function.properties["Timeout"].as_u64().is_some(),
            "{} sets its timeout",
            function.logical_id
        );
        assert!(
            function.properties["MemorySize"].as_u64().is_some(),
            "{} sets its memory",
            function.logical_id
        );
    }
}

#[test]
fn every_function_logs_json_into_its_own_log_group_kept_30_days() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    for function in functions(&template) {
        let logging = &function.properties["LoggingConfig"];
        assert_eq!(logging["LogFormat"], "JSON", "{}", function.logical_id);
        let group = resource(&template, logging["LogGroup"]["Ref"].as_str().unwrap());
        assert_eq!(group.properties["RetentionInDays"], 30, "{}", group.logical_id);
        let name = function.properties["FunctionName"]["Fn::Sub"].as_str().unwrap();
        assert_eq!(group.properties["LogGroupName"]["Fn::Sub"], format!("/aws/lambda/{name}"));
    }
}

#[test]
fn every_function_has_error_rate_duration_and_throttle_alarms_and_rolls_back_on_them() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    let alarms: Vec<_> = template.resources_of_kind("AWS::CloudWatch::Alarm").collect();
    for function in functions(&template) {
        let id = &function.logical_id;
        let watching: BTreeSet<String> = alarms
            .iter()
            .filter(|a| watched_function(&a.properties).as_deref() == Some(id))
            .map(|a| a.logical_id.clone())
            .collect();
        let metrics: BTreeSet<String> = watching
            .iter()
            .flat_map(|a| {
                let alarm = &resource(&template, a).properties;
                let single = alarm["MetricName"].as_str().map(str::to_owned);
                let math = alarm["Metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["MetricStat"]["Metric"]["MetricName"].as_str().map(str::to_owned));
                single.into_iter().chain(math).collect::<Vec<_>>()
            })
            .collect();
        for metric in ["Errors", "Invocations", "Duration", "Throttles"] {
            assert!(metrics.contains(metric), "{id}: no alarm on {metric} ({watching:?})");
        }
        let preference = &function.properties["DeploymentPreference"];
        assert_eq!(preference["Type"]["Ref"], "DeploymentType", "{id}");
        let rollback: Vec<&str> =
            preference["Alarms"].as_array().unwrap().iter().filter_map(|a| a["Ref"].as_str()).collect();
        assert!(!rollback.is_empty(), "{id} rolls back on no alarm");
        for alarm in rollback {
            assert!(watching.contains(alarm), "{id} rolls back on {alarm}, which does not watch it");
        }
    }
}

#[test]
fn the_outbox_age_alarm_watches_the_metric_the_sweeper_emits() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    let alarm = &resource(&template, "OutboxAgeAlarm").properties;
    let report = outbox_sweeper::SweepReport::default();
    let line: Value = serde_json::from_str(&report.metrics_line("f")).unwrap();
    assert_eq!(alarm["Namespace"], line["_aws"]["CloudWatchMetrics"][0]["Namespace"]);
    assert!(
        line.get(alarm["MetricName"].as_str().unwrap()).is_some(),
        "the sweeper emits {}",
        alarm["MetricName"]
    );
    assert_eq!(watched_function(alarm).as_deref(), Some("OutboxSweeperFunction"));
}

#[test]
fn the_outputs_name_the_urls_the_queues_and_the_bus() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    for output in ["ChatStreamUrl", "FormIntakeUrl", "EventBus", "FormSubmittedArchive"] {
        assert!(template.outputs.get(output).is_some(), "no output {output}");
    }
    for queue in ["Email", "Sms", "Handler"] {
        for kind in ["QueueUrl", "DeadLetterQueueUrl"] {
            assert!(template.outputs.get(format!("{queue}{kind}")).is_some(), "no output {queue}{kind}");
        }
    }
}

/// `Name=Value` overrides of one samconfig.toml environment (the file's
/// `parameter_overrides` lists hold one quoted pair per line).
fn overrides(samconfig: &str, environment: &str) -> Vec<(String, String)> {
    let section = format!("[{environment}.deploy.parameters]");
    let body = samconfig.split(&section).nth(1).unwrap_or_default();
    let body = body.split("\n[").next().unwrap_or_default();
    body.lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix('"')?.split_once('"'))
        .filter_map(|(pair, _)| pair.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

#[test]
fn staging_and_production_name_every_seed_resource_with_template_parameters() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    let samconfig = std::fs::read_to_string(repo_root().join("samconfig.toml")).unwrap();
    for (environment, suffix) in [("staging", "-staging"), ("production", "")] {
        let pairs = overrides(&samconfig, environment);
        for (name, _) in &pairs {
            assert!(
                template.parameters.contains_key(name),
                "{environment}: {name} is not a template parameter"
            );
        }
        let value = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(value("Stage"), Some(environment));
        assert_eq!(value("ConfigBucketName"), Some(format!("myrecruiter-picasso{suffix}").as_str()));
        assert_eq!(
            value("FormSubmissionsTableName"),
            Some(format!("picasso-form-submissions{suffix}").as_str())
        );
        assert_eq!(value("SmsUsageTableName"), Some(format!("picasso-sms-usage{suffix}").as_str()));
        assert!(value("EventBusName").is_some() && value("SubmissionsBucketName").is_some(), "{environment}");
    }
}

#[test]
fn each_consumer_queue_feeds_its_live_alias_with_partial_batch_responses_and_no_broad_sqs_policy() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    for function in functions(&template) {
        let events = function.properties["Events"].as_object().cloned().unwrap_or_default();
        assert!(
            events.values().all(|e| e["Type"] != "SQS"),
            "{}: a SAM SQS event would attach AWSLambdaSQSQueueExecutionRole (every queue)",
            function.logical_id
        );
    }
    let mappings: Vec<_> = template.resources_of_kind("AWS::Lambda::EventSourceMapping").collect();
    for queue in ["EmailQueue", "SmsQueue", "HandlerQueue"] {
        let feeding: Vec<_> =
            mappings.iter().filter(|m| m.properties["EventSourceArn"]["Fn::GetAtt"][0] == queue).collect();
        assert_eq!(feeding.len(), 1, "{queue}");
        let mapping = &feeding[0].properties;
        assert_eq!(
            mapping["FunctionResponseTypes"],
            serde_json::json!(["ReportBatchItemFailures"]),
            "{queue}"
        );
        assert_eq!(mapping["BatchSize"], 10, "{queue}");
        let target = mapping["FunctionName"]["Ref"].as_str().unwrap();
        let function =
            target.strip_suffix(".Alias").unwrap_or_else(|| panic!("{queue} feeds {target}, not its alias"));
        let poller = resource(&template, function).properties["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|p| p["SQSPollerPolicy"]["QueueName"]["Fn::GetAtt"][0].as_str().map(str::to_owned));
        assert_eq!(poller.as_deref(), Some(queue), "{function} may poll exactly its own queue");
    }
}

/// In AWS a role without `s3:ListBucket` gets 403 for a missing key, so an
/// unknown tenant would be an outage and the legacy config name never tried.
#[test]
fn every_role_that_reads_tenant_config_may_list_only_the_tenant_prefixes() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    let mut readers = 0;
    for function in template.resources_of_kind("AWS::Serverless::Function") {
        let statements = statements(&function.properties);
        let reads_config = statements.iter().any(|s| {
            s["Resource"].as_array().into_iter().flatten().any(|r| {
                r["Fn::Sub"].as_str().is_some_and(|sub| sub.ends_with("${ConfigBucketName}/mappings/*"))
            })
        });
        if !reads_config {
            continue;
        }
        readers += 1;
        let list = statements
            .iter()
            .find(|s| strings(&s["Action"]) == ["s3:ListBucket"])
            .unwrap_or_else(|| panic!("{} reads tenant config but may not list", function.logical_id));
        assert_eq!(list["Resource"]["Fn::Sub"], "arn:${AWS::Partition}:s3:::${ConfigBucketName}");
        assert_eq!(
            list["Condition"]["StringLike"]["s3:prefix"],
            serde_json::json!(["mappings/*", "tenants/*"]),
            "{}",
            function.logical_id
        );
    }
    assert_eq!(readers, 5, "chat-stream, form-intake and the three consumers read tenant config");
}

/// A record redelivered while its lease is live would be refused again
/// (`Busy`) and burn a receive; one that outlives its invocation cannot
/// finish; so for each consumer: Timeout < lease < queue VisibilityTimeout.
#[test]
fn every_consumers_timeout_is_shorter_than_its_lease_and_its_lease_than_its_queues_visibility() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    let mappings: Vec<_> = template.resources_of_kind("AWS::Lambda::EventSourceMapping").collect();
    assert_eq!(mappings.len(), 4, "the three consumers and the funnel projector (no lease, the same bounds)");
    for mapping in mappings {
        let function = mapping.properties["FunctionName"]["Ref"].as_str().unwrap().trim_end_matches(".Alias");
        let queue = mapping.properties["EventSourceArn"]["Fn::GetAtt"][0].as_str().unwrap();
        let timeout = template.function_timeout(function).unwrap();
        let visibility = resource(&template, queue).properties["VisibilityTimeout"].as_u64().unwrap();
        let lease = lambda_edge::consumer::LEASE;
        assert!(timeout < lease, "{function}: Timeout {timeout:?} vs lease {lease:?}");
        assert!(lease.as_secs() < visibility, "{queue}: lease {lease:?} vs VisibilityTimeout {visibility} s");
    }
}

/// What two functions share lives below them (`shared`), never in one of them.
#[test]
fn no_function_crate_depends_on_another() {
    let functions = repo_root().join("functions");
    let names: Vec<String> = std::fs::read_dir(&functions)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("Cargo.toml").exists())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 7);
    for name in &names {
        let manifest = std::fs::read_to_string(functions.join(name).join("Cargo.toml")).unwrap();
        let dependencies = manifest.split("[dependencies]").nth(1).unwrap_or_default();
        let dependencies = dependencies.split("\n[").next().unwrap_or_default();
        for other in names.iter().filter(|other| *other != name) {
            assert!(
                !dependencies.lines().any(|line| line.trim_start().starts_with(&format!("{other}."))
                    || line.trim_start().starts_with(&format!("{other} "))),
                "{name} depends on the function crate {other}"
            );
        }
    }
}

#[test]
fn the_operations_page_gives_each_function_the_memory_and_timeout_the_template_does() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    let page = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    // Rows such as `| chat-stream | 256 MB / 300 s | why |` or `| email-sender, sms-sender | 128 MB / 30 s ...`.
    let mut stated = std::collections::BTreeMap::new();
    for row in page.lines().filter(|line| line.starts_with("| ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some((memory, timeout)) = cells.get(2).and_then(|cell| cell.split_once(" MB / ")) else {
            continue;
        };
        let timeout = timeout.split(" s").next().unwrap_or_default();
        for name in cells[1].split(',').map(str::trim) {
            stated.insert(name.to_owned(), (memory.parse::<u64>().unwrap(), timeout.parse::<u64>().unwrap()));
        }
    }
    for function in functions(&template) {
        let binary = function.metadata["BuildProperties"]["Binary"].as_str().unwrap();
        let declared = (
            function.properties["MemorySize"].as_u64().unwrap(),
            function.properties["Timeout"].as_u64().unwrap(),
        );
        assert_eq!(stated.get(binary), Some(&declared), "{binary}: docs/operations.md against template.yaml");
    }
}

#[test]
fn each_function_is_given_exactly_the_resource_names_it_requires() {
    let template = Template::load(&repo_root().join("template.yaml")).unwrap();
    let resource_names = [
        "CONFIG_BUCKET",
        "FORM_SUBMISSIONS_TABLE",
        "SMS_USAGE_TABLE",
        "RATE_LIMITS_TABLE",
        "VISITOR_KEY_SECRET",
        "FUNNEL_TABLE",
    ];
    let required: [(&str, &[&str]); 7] = [
        ("chat-stream", chat_stream::REQUIRED_SETTINGS),
        ("form-intake", form_intake::REQUIRED_SETTINGS),
        ("outbox-sweeper", outbox_sweeper::REQUIRED_SETTINGS),
        ("email-sender", email_sender::REQUIRED_SETTINGS),
        ("sms-sender", sms_sender::REQUIRED_SETTINGS),
        ("handler-dispatch", handler_dispatch::REQUIRED_SETTINGS),
        ("funnel-projector", funnel_projector::REQUIRED_SETTINGS),
    ];
    for function in functions(&template) {
        let binary = function.metadata["BuildProperties"]["Binary"].as_str().unwrap();
        let (_, wanted) = required.iter().find(|(name, _)| *name == binary).unwrap();
        let given = function.properties["Environment"]["Variables"].as_object().unwrap();
        let mut given: Vec<&str> =
            resource_names.into_iter().filter(|name| given.contains_key(*name)).collect();
        let mut wanted = wanted.to_vec();
        given.sort_unstable();
        wanted.sort_unstable();
        assert_eq!(given, wanted, "{binary}: the template's resource names against REQUIRED_SETTINGS");
    }
}
