//! AWS SDK configuration, built once per process.
//!
//! When `AWS_ENDPOINT_URL` is set every client goes to that endpoint (the
//! local stack, tests); otherwise the SDK's normal resolution applies.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};

use crate::Settings;

/// Connecting to an AWS endpoint takes milliseconds; longer means it is unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One try of one call (DynamoDB, S3, EventBridge, SES, SNS, SQS, Lambda).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// A call with its retries. Two in a row (a submit's write and its publish)
/// still end inside form-intake's 15 s, so a visitor gets an answer, not a hang.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(6);

/// Every client has deadlines: without them a stalled endpoint holds an
/// invocation until Lambda kills it, and the caller learns nothing.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Loads the shared SDK configuration from the settings and the default credential chain.
pub async fn sdk_config(settings: &Settings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .timeout_config(timeouts());
    if let Some(endpoint) = &settings.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// SDK configuration for an emulator: its endpoint and throwaway static credentials,
/// so tools and tests never pick up a developer's real AWS identity by accident.
/// For setting the emulator up and inspecting it: its deadlines are generous,
/// since a busy machine's emulator is slower than AWS, and no visitor waits.
pub async fn emulator_sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    patient(emulator_sdk_config_with(endpoint, region, "test", "test").await)
}

/// The same configuration with generous deadlines, for setting an emulator
/// up and inspecting it (never for a function's own calls).
pub fn patient(config: SdkConfig) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(60))
        .build();
    let mut config = config.into_builder();
    config.set_timeout_config(Some(timeouts));
    config.build()
}

/// SDK configuration for an emulator that enforces IAM: the access key of one
/// of its principals.
pub async fn emulator_sdk_config_with(
    endpoint: &str,
    region: &str,
    access_key_id: &str,
    secret_access_key: &str,
) -> SdkConfig {
    let credentials =
        aws_sdk_s3::config::Credentials::new(access_key_id, secret_access_key, None, None, "emulator");
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .timeout_config(timeouts())
        .load()
        .await
}

/// S3 client; path-style addressing when an endpoint override is in use, since
/// emulators on `localhost` cannot serve virtual-host bucket names.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let builder = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// Bedrock Runtime client. The SDK's own retries are off: the chat function
/// owns the retry policy, because a throttle can also arrive inside the stream
/// and only the caller knows whether text has already reached the visitor.
/// The SDK's deadline covers opening the stream (until the response headers);
/// the chat service times the events themselves.
pub fn bedrock_runtime_client(config: &SdkConfig, settings: &Settings) -> aws_sdk_bedrockruntime::Client {
    let open_deadline = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(settings.model_first_event_timeout)
        .operation_timeout(settings.model_first_event_timeout)
        .build();
    let mut builder = aws_sdk_bedrockruntime::config::Builder::from(config)
        .retry_config(RetryConfig::disabled())
        .timeout_config(open_deadline);
    if let Some(endpoint) = &settings.bedrock_runtime_endpoint_url {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_bedrockruntime::Client::from_conf(builder.build())
}

/// Bedrock Agent Runtime client (knowledge-base Retrieve), standard retries
/// within `RETRIEVE_TIMEOUT_MS`: an answer without context beats a late one.
pub fn bedrock_agent_runtime_client(
    config: &SdkConfig,
    settings: &Settings,
) -> aws_sdk_bedrockagentruntime::Client {
    let deadline = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(settings.retrieve_timeout)
        .build();
    let mut builder = aws_sdk_bedrockagentruntime::config::Builder::from(config).timeout_config(deadline);
    if let Some(endpoint) = &settings.bedrock_agent_runtime_endpoint_url {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_bedrockagentruntime::Client::from_conf(builder.build())
}
