//! The `lambda` handler: an asynchronous Invoke (`lambda:InvokeFunction`) of
//! the tenant's intake function, and its Lambda adapter.

use std::future::Future;

use aws_sdk_lambda::{
    error::ProvideErrorMetadata, operation::invoke::InvokeError as SdkInvokeError, primitives::Blob,
    types::InvocationType,
};
use domain::fulfillment::StoredSubmission;
use serde_json::{Value, json};

/// The action a handler is asked for when the form names none.
pub const DEFAULT_ACTION: &str = "process_form";

/// What the tenant's function receives: the submission under the names the
/// existing intake functions read.
pub fn invoke_payload(action: Option<&str>, submission: &StoredSubmission) -> Value {
    json!({
        "action": action.filter(|a| !a.trim().is_empty()).unwrap_or(DEFAULT_ACTION),
        "form_type": submission.form_id,
        "submission_id": submission.submission_id,
        "responses": submission.form_data,
        "tenant_id": submission.tenant_id,
        "priority": submission.priority,
    })
}

#[derive(Debug, thiserror::Error)]
#[error("asynchronous Invoke of {function} failed{}", if *.permanent { " (permanent)" } else { "" })]
pub struct InvokeError {
    pub function: String,
    /// Retrying will not help until the configuration or the role is fixed.
    pub permanent: bool,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl domain::failure::Permanence for InvokeError {
    fn is_permanent(&self) -> bool {
        self.permanent
    }
}

/// `lambda:InvokeFunction` with InvocationType `Event`.
pub trait Invoker: Send + Sync + 'static {
    fn invoke_event(
        &self,
        function: &str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), InvokeError>> + Send;
}

/// The Lambda client, pointed at `AWS_ENDPOINT_URL_LAMBDA` when set (locally
/// a stand-in, since the emulator's Lambda needs Docker).
pub fn lambda_client(
    config: &aws_types::SdkConfig,
    settings: &lambda_edge::Settings,
) -> aws_sdk_lambda::Client {
    // An asynchronous Invoke that may have reached Lambda is not retried by the
    // SDK; the consumer's own retry re-invokes, and the handler de-duplicates
    // by the `submission_id` in its payload.
    let mut builder = aws_sdk_lambda::config::Builder::from(config)
        .timeout_config(aws_adapters::config::send_timeouts())
        .retry_classifier(aws_adapters::config::NoRetryAfterSending);
    if let Some(endpoint) = &settings.lambda_endpoint_url {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_lambda::Client::from_conf(builder.build())
}

#[derive(Clone)]
pub struct LambdaInvoker {
    client: aws_sdk_lambda::Client,
}

impl LambdaInvoker {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client }
    }
}

/// Lambda accepted an asynchronous invocation.
const ACCEPTED: i32 = 202;

impl Invoker for LambdaInvoker {
    async fn invoke_event(&self, function: &str, payload: Vec<u8>) -> Result<(), InvokeError> {
        let error = |permanent, source| InvokeError { function: function.to_owned(), permanent, source };
        let output = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|err| error(err.as_service_error().is_some_and(is_permanent), Box::new(err)))?;
        match output.status_code() {
            ACCEPTED => Ok(()),
            status => Err(error(false, format!("Lambda answered {status}, not {ACCEPTED}").into())),
        }
    }
}

/// The function does not exist, the request is unusable, or the role may not
/// call it: the same event will fail the same way until someone fixes it.
pub fn is_permanent(err: &SdkInvokeError) -> bool {
    err.is_resource_not_found_exception()
        || err.is_invalid_parameter_value_exception()
        || err.is_invalid_request_content_exception()
        || err.is_request_too_large_exception()
        || err.code() == Some("AccessDeniedException")
}

#[cfg(test)]
mod tests {
    use aws_sdk_lambda::{error::ErrorMetadata, types::error::ResourceNotFoundException};

    use super::*;
    use crate::tests::submission;

    #[test]
    fn the_lambda_payload_carries_the_submission_under_the_intake_functions_names() {
        let payload = invoke_payload(Some("enroll"), &submission());
        assert_eq!(
            payload,
            json!({
                "action": "enroll",
                "form_type": "reading_buddy_application",
                "submission_id": "reading_1_abc",
                "responses": {"email": "ana@example.org", "first_name": "Ana"},
                "tenant_id": "RIV204815",
                "priority": "high",
            })
        );
        let keys: Vec<&str> = payload.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["action", "form_type", "submission_id", "responses", "tenant_id", "priority"]);
    }

    #[test]
    fn the_action_defaults_to_process_form() {
        assert_eq!(invoke_payload(None, &submission())["action"], "process_form");
        assert_eq!(invoke_payload(Some(" "), &submission())["action"], "process_form");
    }

    #[test]
    fn a_missing_function_or_a_denied_role_is_permanent_and_throttling_is_not() {
        let missing = SdkInvokeError::ResourceNotFoundException(ResourceNotFoundException::builder().build());
        let denied = SdkInvokeError::generic(ErrorMetadata::builder().code("AccessDeniedException").build());
        let throttled =
            SdkInvokeError::generic(ErrorMetadata::builder().code("TooManyRequestsException").build());
        assert!(is_permanent(&missing));
        assert!(is_permanent(&denied));
        assert!(!is_permanent(&throttled));
    }
}
