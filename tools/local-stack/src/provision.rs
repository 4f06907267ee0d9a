//! Creates the template's stateful resources in the emulator, in dependency order.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use crate::template::{Context, EvalError, Physical, Resource, Template, scalar_text};

/// Resource kinds the local stack creates; everything else (functions, roles,
/// alarms, log groups) is played by the local host or has no local meaning.
pub const PROVISIONED_KINDS: [&str; 9] = [
    "AWS::SecretsManager::Secret",
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::SQS::QueuePolicy",
    "AWS::Events::EventBus",
    "AWS::Events::Rule",
    "AWS::Events::Archive",
];

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("resource {logical_id}: {message}")]
    Template { logical_id: String, message: String },
    #[error("resource {logical_id}: the emulator refused {operation}")]
    Aws {
        logical_id: String,
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("resources wait on each other or on something never created: {0:?}")]
    Unresolvable(Vec<String>),
}

/// Created once the functions are registered (their alarms name them), by
/// [`put_alarms`] rather than the SDK (see `put_alarms.py`).
pub const ALARM: &str = "AWS::CloudWatch::Alarm";
/// Put with the alarms, the same way.
pub const DASHBOARD: &str = "AWS::CloudWatch::Dashboard";

/// Creates every alarm and dashboard of the template in the emulator at
/// `endpoint`, with the Python that runs moto.
pub async fn put_alarms(
    repo_root: &std::path::Path,
    endpoint: &str,
    region: &str,
    template: &Template,
    created: &mut Created,
) -> Result<(), ProvisionError> {
    let context = Context { template, region, created };
    let mut alarms = Vec::new();
    for alarm in template.resources.iter().filter(|r| r.kind == ALARM) {
        let properties = context.eval(&alarm.properties).map_err(|e| ProvisionError::Template {
            logical_id: alarm.logical_id.clone(),
            message: e.to_string(),
        })?;
        alarms.push((alarm.logical_id.clone(), properties));
    }
    let mut dashboards = Vec::new();
    for dashboard in template.resources.iter().filter(|r| r.kind == DASHBOARD) {
        let properties = context.eval(&dashboard.properties).map_err(|e| ProvisionError::Template {
            logical_id: dashboard.logical_id.clone(),
            message: e.to_string(),
        })?;
        dashboards.push((dashboard.logical_id.clone(), properties));
    }
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| ProvisionError::Aws {
        logical_id: "the template's alarms".into(),
        operation: "PutMetricAlarm",
        source,
    };
    let python = crate::emulator::moto_python(repo_root).map_err(|e| failed(e.into()))?;
    let mut child = tokio::process::Command::new(python)
        .arg(repo_root.join("tools/local-stack/put_alarms.py"))
        .args([endpoint, region])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.into()))?;
    let input = serde_json::json!({
        "alarms": alarms.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        "dashboards": dashboards.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
    })
    .to_string();
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        stdin.write_all(input.as_bytes()).await.map_err(|e| failed(e.into()))?;
    }
    let output = child.wait_with_output().await.map_err(|e| failed(e.into()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("put_alarms.py failed").to_owned();
        return Err(failed(last.into()));
    }
    for (logical_id, properties) in alarms {
        let name = properties["AlarmName"].as_str().unwrap_or(&logical_id).to_owned();
        let arn = format!("arn:aws:cloudwatch:{region}:{}:alarm:{name}", crate::template::ACCOUNT_ID);
        created.insert(logical_id, physical(&name, [("Arn", arn)]));
    }
    for (logical_id, properties) in dashboards {
        let name = properties["DashboardName"].as_str().unwrap_or(&logical_id).to_owned();
        created.insert(logical_id, physical(&name, []));
    }
    Ok(())
}

/// Logical id → what was created for it.
pub type Created = HashMap<String, Physical>;

pub struct Provisioner {
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    region: String,
}

impl Provisioner {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            s3: crate::s3_client(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
            events: aws_sdk_eventbridge::Client::new(config),
            region: config.region().map(ToString::to_string).unwrap_or_else(|| "us-east-1".into()),
        }
    }

    /// Creates every provisioned resource, each after the ones it refers to.
    pub async fn provision(&self, template: &Template) -> Result<Created, ProvisionError> {
        let mut created = Created::new();
        self.provision_kinds(template, &PROVISIONED_KINDS, &mut created).await?;
        Ok(created)
    }

    /// Creates the resources of `kinds`, each after the ones it refers to, adding them to `created`.
    pub async fn provision_kinds(
        &self,
        template: &Template,
        kinds: &[&str],
        created: &mut Created,
    ) -> Result<(), ProvisionError> {
        let mut pending: Vec<&Resource> =
            template.resources.iter().filter(|r| kinds.contains(&r.kind.as_str())).collect();
        while !pending.is_empty() {
            let mut waiting = Vec::new();
            for resource in pending.iter().copied() {
                let context = Context { template, region: &self.region, created };
                match context.eval(&resource.properties) {
                    Ok(properties) => {
                        let physical = self.create(resource, &properties).await?;
                        created.insert(resource.logical_id.clone(), physical);
                    }
                    Err(EvalError::Pending(_)) => waiting.push(resource),
                    Err(EvalError::Invalid(message)) => {
                        return Err(ProvisionError::Template {
                            logical_id: resource.logical_id.clone(),
                            message,
                        });
                    }
                }
            }
            if waiting.len() == pending.len() {
                return Err(ProvisionError::Unresolvable(
                    waiting.iter().map(|r| r.logical_id.clone()).collect(),
                ));
            }
            pending = waiting;
        }
        Ok(())
    }

    async fn create(&self, resource: &Resource, props: &Value) -> Result<Physical, ProvisionError> {
        let id = resource.logical_id.as_str();
        let text = |key: &str| props.get(key).map(scalar_text).unwrap_or_default();
        let aws = |operation: &'static str| {
            move |source: Box<dyn std::error::Error + Send + Sync>| ProvisionError::Aws {
                logical_id: resource.logical_id.clone(),
                operation,
                source,
            }
        };
        match resource.kind.as_str() {
            // Only read through `{{resolve:secretsmanager:...}}` at deploy, so
            // nothing is created in the emulator: the value is generated here,
            // new for each stack, as `GenerateSecretString` does.
            "AWS::SecretsManager::Secret" => {
                let name = text("Name");
                let length = props["GenerateSecretString"]["PasswordLength"].as_u64().unwrap_or(32) as usize;
                let value: String = std::iter::repeat_with(fastrand::alphanumeric).take(length).collect();
                let arn = format!(
                    "arn:aws:secretsmanager:{}:{}:secret:{name}-local",
                    self.region,
                    crate::template::ACCOUNT_ID
                );
                Ok(physical(&arn, [("Name", name.clone()), (crate::template::SECRET_STRING, value)]))
            }
            "AWS::S3::Bucket" => {
                let name = text("BucketName");
                self.s3
                    .create_bucket()
                    .bucket(&name)
                    .send()
                    .await
                    .map_err(|e| aws("CreateBucket")(e.into()))?;
                Ok(physical(&name, [("Arn", format!("arn:aws:s3:::{name}"))]))
            }
            "AWS::DynamoDB::Table" => self.create_table(id, props).await,
            "AWS::Logs::LogGroup" => {
                let name = text("LogGroupName");
                self.logs
                    .create_log_group()
                    .log_group_name(&name)
                    .send()
                    .await
                    .map_err(|e| aws("CreateLogGroup")(e.into()))?;
                if let Some(days) = props["RetentionInDays"].as_i64().and_then(|d| i32::try_from(d).ok()) {
                    self.logs
                        .put_retention_policy()
                        .log_group_name(&name)
                        .retention_in_days(days)
                        .send()
                        .await
                        .map_err(|e| aws("PutRetentionPolicy")(e.into()))?;
                }
                let arn =
                    format!("arn:aws:logs:{}:{}:log-group:{name}", self.region, crate::template::ACCOUNT_ID);
                Ok(physical(&name, [("Arn", arn)]))
            }
            "AWS::SQS::Queue" => {
                let name = text("QueueName");
                let mut request = self.sqs.create_queue().queue_name(&name);
                for (key, value) in props.as_object().into_iter().flatten() {
                    if key == "QueueName" {
                        continue;
                    }
                    // Attributes that are objects (RedrivePolicy) travel as JSON strings.
                    let value = if value.is_object() { value.to_string() } else { scalar_text(value) };
                    request = request.attributes(QueueAttributeName::from(key.as_str()), value);
                }
                let url = request
                    .send()
                    .await
                    .map_err(|e| aws("CreateQueue")(e.into()))?
                    .queue_url
                    .unwrap_or_default();
                let arn = format!("arn:aws:sqs:{}:{}:{name}", self.region, crate::template::ACCOUNT_ID);
                Ok(physical(&url, [("Arn", arn), ("QueueName", name.clone()), ("QueueUrl", url.clone())]))
            }
            "AWS::SQS::QueuePolicy" => {
                let policy = props.get("PolicyDocument").map(Value::to_string).unwrap_or_default();
                for queue_url in props.get("Queues").and_then(Value::as_array).into_iter().flatten() {
                    self.sqs
                        .set_queue_attributes()
                        .queue_url(scalar_text(queue_url))
                        .attributes(QueueAttributeName::Policy, &policy)
                        .send()
                        .await
                        .map_err(|e| aws("SetQueueAttributes")(e.into()))?;
                }
                Ok(physical(id, []))
            }
            "AWS::Events::EventBus" => {
                let name = text("Name");
                let out = self
                    .events
                    .create_event_bus()
                    .name(&name)
                    .send()
                    .await
                    .map_err(|e| aws("CreateEventBus")(e.into()))?;
                Ok(physical(&name, [("Arn", out.event_bus_arn.unwrap_or_default()), ("Name", name.clone())]))
            }
            "AWS::Events::Rule" => {
                let name = text("Name");
                let bus = text("EventBusName");
                let out = self
                    .events
                    .put_rule()
                    .name(&name)
                    .event_bus_name(&bus)
                    .event_pattern(props.get("EventPattern").map(Value::to_string).unwrap_or_default())
                    .state(text("State").as_str().into())
                    .send()
                    .await
                    .map_err(|e| aws("PutRule")(e.into()))?;
                let mut targets = self.events.put_targets().rule(&name).event_bus_name(&bus);
                for target in props.get("Targets").and_then(Value::as_array).into_iter().flatten() {
                    let field = |key: &str| target.get(key).map(scalar_text).unwrap_or_default();
                    let built = aws_sdk_eventbridge::types::Target::builder()
                        .id(field("Id"))
                        .arn(field("Arn"))
                        .build();
                    targets = targets.targets(built.map_err(|e| aws("PutTargets")(e.into()))?);
                }
                targets.send().await.map_err(|e| aws("PutTargets")(e.into()))?;
                Ok(physical(&name, [("Arn", out.rule_arn.unwrap_or_default())]))
            }
            "AWS::Events::Archive" => {
                let name = text("ArchiveName");
                let out = self
                    .events
                    .create_archive()
                    .archive_name(&name)
                    .event_source_arn(text("SourceArn"))
                    .set_description(props.get("Description").map(scalar_text))
                    .set_event_pattern(props.get("EventPattern").map(Value::to_string))
                    .set_retention_days(props.get("RetentionDays").and_then(|v| scalar_text(v).parse().ok()))
                    .send()
                    .await
                    .map_err(|e| aws("CreateArchive")(e.into()))?;
                Ok(physical(&name, [("Arn", out.archive_arn.unwrap_or_default())]))
            }
            other => Err(ProvisionError::Template {
                logical_id: id.to_owned(),
                message: format!("cannot create {other}"),
            }),
        }
    }

    async fn create_table(&self, id: &str, props: &Value) -> Result<Physical, ProvisionError> {
        let invalid = |message: String| ProvisionError::Template { logical_id: id.to_owned(), message };
        let name = props.get("TableName").map(scalar_text).unwrap_or_default();
        let mut request =
            self.dynamodb.create_table().table_name(&name).billing_mode(BillingMode::PayPerRequest);
        for definition in list(props, "AttributeDefinitions") {
            let built = AttributeDefinition::builder()
                .attribute_name(field(definition, "AttributeName"))
                .attribute_type(ScalarAttributeType::from(field(definition, "AttributeType").as_str()))
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            request = request.attribute_definitions(built);
        }
        for key in key_schema(props).map_err(invalid)? {
            request = request.key_schema(key);
        }
        for index in list(props, "GlobalSecondaryIndexes") {
            let projection = index.get("Projection");
            let built = GlobalSecondaryIndex::builder()
                .index_name(field(index, "IndexName"))
                .set_key_schema(Some(key_schema(index).map_err(invalid)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(
                            projection
                                .map(|p| field(p, "ProjectionType"))
                                .unwrap_or_else(|| "ALL".into())
                                .as_str(),
                        ))
                        .set_non_key_attributes(
                            projection.and_then(|p| p.get("NonKeyAttributes")).and_then(|a| {
                                a.as_array().map(|items| items.iter().map(scalar_text).collect())
                            }),
                        )
                        .build(),
                )
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            request = request.global_secondary_indexes(built);
        }
        let out = request.send().await.map_err(|e| ProvisionError::Aws {
            logical_id: id.to_owned(),
            operation: "CreateTable",
            source: e.into(),
        })?;
        if let Some(ttl) =
            props.get("TimeToLiveSpecification").filter(|t| t.get("Enabled") == Some(&Value::Bool(true)))
        {
            let spec = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(field(ttl, "AttributeName"))
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            self.dynamodb
                .update_time_to_live()
                .table_name(&name)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(|e| ProvisionError::Aws {
                    logical_id: id.to_owned(),
                    operation: "UpdateTimeToLive",
                    source: e.into(),
                })?;
        }
        let arn = out.table_description.and_then(|t| t.table_arn).unwrap_or_default();
        Ok(physical(&name, [("Arn", arn)]))
    }
}

fn physical<const N: usize>(reference: &str, attributes: [(&str, String); N]) -> Physical {
    Physical {
        reference: reference.to_owned(),
        attributes: attributes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

fn list<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn field(value: &Value, key: &str) -> String {
    value.get(key).map(scalar_text).unwrap_or_default()
}

fn key_schema(value: &Value) -> Result<Vec<KeySchemaElement>, String> {
    list(value, "KeySchema")
        .map(|key| {
            KeySchemaElement::builder()
                .attribute_name(field(key, "AttributeName"))
                .key_type(KeyType::from(field(key, "KeyType").as_str()))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}
