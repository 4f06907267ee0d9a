//! IAM enforced in the emulator, as AWS enforces it: every function of
//! `template.yaml` gets a principal of its own whose policy is that function's
//! `Policies`, evaluated with the same `!Sub`/`!Ref`/`!GetAtt` resolution the
//! provisioning uses; the local host, the operators' CLI and the operators
//! themselves get theirs. Once every principal exists, moto is told to
//! authenticate and authorize every request (`/moto-api/reset-auth`).
//!
//! moto authorizes S3 and SQS requests against the resource's ARN, DynamoDB
//! requests too once `moto_server.py` names their table or index (as AWS
//! does: a Query on an index needs a grant on `table/T/index/I`), and every
//! other service against `*`. A statement for EventBridge, SES or SNS
//! therefore keeps its actions but is given `Resource: "*"` in the emulator,
//! and so are DynamoDB's multi-table calls (transactions, batches): actions
//! are enforced for every service, resource ARNs for S3, SQS and DynamoDB
//! (`tests/template_policies.rs` checks the other ARNs themselves).

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use serde_json::{Value, json};

use crate::{
    provision::Created,
    template::{Context, Template},
};

/// The actions SAM's `SQSPollerPolicy` template grants on its queue.
const SQS_POLLER_ACTIONS: [&str; 6] = [
    "sqs:ChangeMessageVisibility",
    "sqs:ChangeMessageVisibilityBatch",
    "sqs:DeleteMessage",
    "sqs:DeleteMessageBatch",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
];

/// Services whose requests moto authorizes against the resource's ARN.
const RESOURCE_AWARE_SERVICES: [&str; 3] = ["s3", "sqs", "dynamodb"];
/// Calls of those services that moto still authorizes against `*`.
const AUTHORIZED_ON_STAR: [&str; 6] = [
    "sqs:GetQueueUrl",
    "sqs:ListQueues",
    "dynamodb:TransactWriteItems",
    "dynamodb:TransactGetItems",
    "dynamodb:BatchWriteItem",
    "dynamodb:BatchGetItem",
];
/// Where moto asks for an action AWS does not have: a transaction is
/// authorized in AWS by the item actions it performs, and HeadBucket by
/// ListBucket; moto checks `dynamodb:TransactWriteItems` and `s3:HeadBucket`.
const EMULATOR_ALIASES: [(&str, &str); 4] = [
    ("dynamodb:PutItem", "dynamodb:TransactWriteItems"),
    ("dynamodb:UpdateItem", "dynamodb:TransactWriteItems"),
    ("dynamodb:GetItem", "dynamodb:TransactGetItems"),
    ("s3:ListBucket", "s3:HeadBucket"),
];

/// The operators' own least-privilege policy (`picasso-ops`), with the
/// template's parameters and pseudo parameters in `Fn::Sub`.
pub const OPS_POLICY: &str = include_str!("../../ops/iam-policy.json");

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    #[error("{function}: {message}")]
    Policy { function: String, message: String },
    #[error("could not {operation} for principal {principal}")]
    Aws {
        principal: String,
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("moto refused to turn IAM enforcement on")]
    Enforce(#[source] reqwest::Error),
}

/// An IAM user in the emulator and its access key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The policy document of a template function's role.
pub fn function_policy(template: &Template, created: &Created, function: &str) -> Result<Value, IamError> {
    let error = |message: String| IamError::Policy { function: function.to_owned(), message };
    let resource = template
        .resources
        .iter()
        .find(|r| r.logical_id == function)
        .ok_or_else(|| error("no such function in template.yaml".into()))?;
    let context = Context { template, region: crate::REGION, created };
    let mut statements = Vec::new();
    for policy in resource.properties["Policies"].as_array().into_iter().flatten() {
        let policy = context.eval(policy).map_err(|e| error(e.to_string()))?;
        if let Some(inline) = policy.get("Statement").and_then(Value::as_array) {
            statements.extend(inline.iter().cloned());
        } else if let Some(queue) = policy.pointer("/SQSPollerPolicy/QueueName").and_then(Value::as_str) {
            let arn = format!("arn:aws:sqs:{}:{}:{queue}", crate::REGION, crate::template::ACCOUNT_ID);
            statements.push(json!({"Effect": "Allow", "Action": SQS_POLLER_ACTIONS, "Resource": arn}));
        } else {
            return Err(error(format!("the local stack does not know the policy {policy}")));
        }
    }
    Ok(json!({"Version": "2012-10-17", "Statement": statements}))
}

/// The operators' CLI policy, resolved against this stack.
pub fn ops_policy(template: &Template, created: &Created) -> Result<Value, IamError> {
    let error = |message: String| IamError::Policy { function: "picasso-ops".into(), message };
    let document: Value = serde_json::from_str(OPS_POLICY).map_err(|e| error(e.to_string()))?;
    let context = Context { template, region: crate::REGION, created };
    context.eval(&document).map_err(|e| error(e.to_string()))
}

/// The same policy as moto can check it (see the module comment): each
/// statement's actions, with the aliases moto asks for, split into those
/// moto checks against the resource (kept) and those it checks against `*`.
pub fn for_emulator(policy: &Value) -> Value {
    let mut statements = Vec::new();
    for statement in policy["Statement"].as_array().into_iter().flatten() {
        let mut actions: Vec<String> = match &statement["Action"] {
            Value::String(action) => vec![action.clone()],
            Value::Array(actions) => actions.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        for (action, alias) in EMULATOR_ALIASES {
            if actions.iter().any(|a| a == action) && !actions.iter().any(|a| a == alias) {
                actions.push(alias.to_owned());
            }
        }
        let (on_resource, on_star): (Vec<String>, Vec<String>) = actions.into_iter().partition(|action| {
            !AUTHORIZED_ON_STAR.contains(&action.as_str())
                && RESOURCE_AWARE_SERVICES.iter().any(|service| action.starts_with(&format!("{service}:")))
        });
        for (actions, on_star) in [(on_resource, false), (on_star, true)] {
            if actions.is_empty() {
                continue;
            }
            let mut local = statement.clone();
            local["Action"] = json!(actions);
            if on_star {
                local["Resource"] = json!("*");
                if let Some(map) = local.as_object_mut() {
                    map.remove("Sid");
                }
            }
            statements.push(local);
        }
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Administrator: everything, for the operators' shell and the stack's own set-up.
pub fn admin_policy() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
}

/// Creates the IAM users and their access keys, one per named policy.
pub async fn create_principals(
    config: &SdkConfig,
    policies: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Principal>, IamError> {
    let iam = aws_sdk_iam::Client::new(config);
    let mut principals = BTreeMap::new();
    for (name, policy) in policies {
        let aws = |operation: &'static str| {
            move |source: Box<dyn std::error::Error + Send + Sync>| IamError::Aws {
                principal: name.clone(),
                operation,
                source,
            }
        };
        iam.create_user().user_name(name).send().await.map_err(|e| aws("CreateUser")(e.into()))?;
        iam.put_user_policy()
            .user_name(name)
            .policy_name("template")
            .policy_document(for_emulator(policy).to_string())
            .send()
            .await
            .map_err(|e| aws("PutUserPolicy")(e.into()))?;
        let key = iam
            .create_access_key()
            .user_name(name)
            .send()
            .await
            .map_err(|e| aws("CreateAccessKey")(e.into()))?
            .access_key
            .ok_or_else(|| aws("CreateAccessKey")("no access key in the answer".into()))?;
        principals.insert(
            name.clone(),
            Principal {
                name: name.clone(),
                access_key_id: key.access_key_id,
                secret_access_key: key.secret_access_key,
            },
        );
    }
    Ok(principals)
}

/// From now on moto authenticates and authorizes every request.
pub async fn enforce(endpoint: &str) -> Result<(), IamError> {
    reqwest::Client::new()
        .post(format!("{endpoint}/moto-api/reset-auth"))
        .body("0")
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(IamError::Enforce)?;
    Ok(())
}

/// An SDK configuration that acts as `principal` against the emulator.
pub async fn sdk_config_as(endpoint: &str, principal: &Principal) -> SdkConfig {
    aws_adapters::config::emulator_sdk_config_with(
        endpoint,
        crate::REGION,
        &principal.access_key_id,
        &principal.secret_access_key,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_sqs_and_dynamodb_statements_keep_their_resources_in_the_emulator_and_others_go_to_star() {
        let policy = json!({"Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": ["arn:aws:s3:::b/mappings/*"]},
            {"Effect": "Allow", "Action": ["sqs:ReceiveMessage"], "Resource": "arn:aws:sqs:r:1:q"},
            {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "arn:aws:dynamodb:r:1:table/t"},
            {"Effect": "Allow", "Action": ["events:PutEvents"], "Resource": "arn:aws:events:r:1:event-bus/b"},
        ]});
        let local = for_emulator(&policy);
        assert_eq!(local["Statement"][0]["Resource"], json!(["arn:aws:s3:::b/mappings/*"]));
        assert_eq!(local["Statement"][1]["Resource"], "arn:aws:sqs:r:1:q");
        assert_eq!(
            local["Statement"][2],
            json!({"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "arn:aws:dynamodb:r:1:table/t"}),
            "a table's item actions stay on its ARN"
        );
        assert_eq!(
            local["Statement"][3],
            json!({"Effect": "Allow", "Action": ["dynamodb:TransactGetItems"], "Resource": "*"}),
            "the name moto checks for a transaction, which names several tables, on *"
        );
        assert_eq!(local["Statement"][4]["Resource"], "*");
    }

    #[test]
    fn a_statement_mixing_queue_actions_and_get_queue_url_is_split() {
        let policy = json!({"Statement": [{"Sid": "Redrive", "Effect": "Allow",
            "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"], "Resource": "arn:aws:sqs:r:1:q"}]});
        let local = for_emulator(&policy);
        assert_eq!(
            local["Statement"],
            json!([
                {"Sid": "Redrive", "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "arn:aws:sqs:r:1:q"},
                {"Effect": "Allow", "Action": ["sqs:GetQueueUrl"], "Resource": "*"}
            ])
        );
    }

    #[test]
    fn every_function_policy_of_the_template_resolves_locally() {
        let template = Template::load(&crate::repo_root().join("template.yaml")).unwrap();
        let created: Created = template
            .resources
            .iter()
            .map(|r| {
                let physical = crate::template::Physical {
                    reference: r.logical_id.clone(),
                    attributes: [("Arn", "arn:x"), ("QueueName", "q"), ("Name", "n")]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                };
                (r.logical_id.clone(), physical)
            })
            .collect();
        for function in template.resources_of_kind("AWS::Serverless::Function") {
            let policy = function_policy(&template, &created, &function.logical_id).unwrap();
            assert!(!policy["Statement"].as_array().unwrap().is_empty(), "{}", function.logical_id);
        }
        let ops = ops_policy(&template, &created).unwrap();
        assert!(ops.to_string().contains("picasso-form-submissions"), "{ops}");
    }
}
