//! Every function of the template registered in the emulator's Lambda with
//! its template configuration (runtime, handler, architecture, timeout,
//! memory, environment, role, Function URL and its invoke mode, the `live`
//! alias), so `aws lambda get-function-configuration` and
//! `get-function-url-config` answer locally as they do in AWS. The code
//! registered is a placeholder: the functions themselves run in the local
//! host (and their binaries under `cargo lambda` or the Runtime API
//! emulator), because the emulator's Lambda needs Docker to run code.

use std::io::Write;

use aws_sdk_lambda::{
    primitives::Blob,
    types::{Architecture, Environment, FunctionCode, FunctionUrlAuthType, InvokeMode, Runtime},
};
use serde_json::Value;

use crate::{
    provision::Created,
    template::{Context, Physical, Template, scalar_text},
};

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("function {logical_id}: {message}")]
    Template { logical_id: String, message: String },
    #[error("function {logical_id}: {operation} failed")]
    Call {
        logical_id: String,
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Lambda's trust policy for a function's execution role.
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// Registers every `AWS::Serverless::Function` and records it in `created`
/// (its name for `!Ref`, its ARN for `!GetAtt .Arn`).
pub async fn register(
    sdk_config: &aws_config::SdkConfig,
    template: &Template,
    region: &str,
    created: &mut Created,
) -> Result<(), RegisterError> {
    let lambda = aws_sdk_lambda::Client::new(sdk_config);
    let iam = aws_sdk_iam::Client::new(sdk_config);
    let code = placeholder_zip();
    let functions = template.resources.iter().filter(|r| r.kind == "AWS::Serverless::Function");
    for function in functions.collect::<Vec<_>>() {
        let id = function.logical_id.as_str();
        let context = Context { template, region, created };
        let property = |key: &str| -> Result<Value, RegisterError> {
            let value = function.properties.get(key).or_else(|| template.globals["Function"].get(key));
            context
                .eval(value.unwrap_or(&Value::Null))
                .map_err(|e| RegisterError::Template { logical_id: id.to_owned(), message: e.to_string() })
        };
        let call = |operation: &'static str| {
            move |source: Box<dyn std::error::Error + Send + Sync>| RegisterError::Call {
                logical_id: id.to_owned(),
                operation,
                source,
            }
        };
        let name = property("FunctionName")?.as_str().map_or_else(|| id.to_owned(), str::to_owned);
        let role = iam
            .create_role()
            .role_name(format!("{name}-role"))
            .assume_role_policy_document(TRUST)
            .send()
            .await
            .map_err(|e| call("CreateRole")(e.into()))?;
        let role_arn = role.role().map(|r| r.arn().to_owned()).unwrap_or_default();
        let variables = property("Environment")?["Variables"]
            .as_object()
            .map(|vars| vars.iter().map(|(k, v)| (k.clone(), scalar_text(v))).collect())
            .unwrap_or_default();
        let text = |value: Value| value.as_str().map(str::to_owned);
        let number = |value: Value| value.as_i64().and_then(|n| i32::try_from(n).ok());
        let created_function = lambda
            .create_function()
            .function_name(&name)
            .role(role_arn)
            .set_runtime(text(property("Runtime")?).map(|r| Runtime::from(r.as_str())))
            .set_handler(text(property("Handler")?))
            .set_description(text(property("Description")?))
            .timeout(number(property("Timeout")?).unwrap_or(3))
            .memory_size(number(property("MemorySize")?).unwrap_or(128))
            .set_architectures(
                property("Architectures")?
                    .as_array()
                    .map(|list| list.iter().filter_map(Value::as_str).map(Architecture::from).collect()),
            )
            .environment(Environment::builder().set_variables(Some(variables)).build())
            .code(FunctionCode::builder().zip_file(Blob::new(code.clone())).build())
            .publish(true)
            .send()
            .await
            .map_err(|e| call("CreateFunction")(e.into()))?;
        let version = created_function.version().unwrap_or("1").to_owned();
        if let Some(alias) = property("AutoPublishAlias")?.as_str() {
            lambda
                .create_alias()
                .function_name(&name)
                .name(alias)
                .function_version(&version)
                .send()
                .await
                .map_err(|e| call("CreateAlias")(e.into()))?;
        }
        let url = property("FunctionUrlConfig")?;
        if url.is_object() {
            let mode = url["InvokeMode"].as_str().unwrap_or("BUFFERED");
            let mut request = lambda
                .create_function_url_config()
                .function_name(&name)
                .auth_type(FunctionUrlAuthType::from(url["AuthType"].as_str().unwrap_or("NONE")))
                .invoke_mode(InvokeMode::from(mode));
            if let Some(alias) = property("AutoPublishAlias")?.as_str() {
                request = request.qualifier(alias);
            }
            request.send().await.map_err(|e| call("CreateFunctionUrlConfig")(e.into()))?;
        }
        let arn = created_function.function_arn().unwrap_or_default().to_owned();
        created.insert(
            id.to_owned(),
            Physical { reference: name, attributes: [("Arn".to_owned(), arn)].into_iter().collect() },
        );
    }
    Ok(())
}

/// A real zip holding a `bootstrap` that says where the function runs.
fn placeholder_zip() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o755);
    let script =
        "#!/bin/sh\necho 'picasso local stack: this function runs in the local host, not here' >&2\nexit 1\n";
    let written = zip
        .start_file("bootstrap", options)
        .and_then(|()| zip.write_all(script.as_bytes()).map_err(Into::into))
        .and_then(|()| zip.finish());
    written.map(std::io::Cursor::into_inner).unwrap_or_default()
}
