//! AWS SDK configuration, built once per process.
//!
//! When `AWS_ENDPOINT_URL` is set every client goes to that endpoint (the
//! local stack, tests); otherwise the SDK's normal resolution applies.

use aws_config::{BehaviorVersion, Region, SdkConfig, retry::RetryConfig};

use crate::Settings;

/// Loads the shared SDK configuration from the settings and the default credential chain.
pub async fn sdk_config(settings: &Settings) -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(settings.region.clone()));
    if let Some(endpoint) = &settings.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// SDK configuration for an emulator: its endpoint and throwaway static credentials,
/// so tools and tests never pick up a developer's real AWS identity by accident.
pub async fn emulator_sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "emulator"))
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
pub fn bedrock_runtime_client(config: &SdkConfig, settings: &Settings) -> aws_sdk_bedrockruntime::Client {
    let mut builder =
        aws_sdk_bedrockruntime::config::Builder::from(config).retry_config(RetryConfig::disabled());
    if let Some(endpoint) = &settings.bedrock_runtime_endpoint_url {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_bedrockruntime::Client::from_conf(builder.build())
}

/// Bedrock Agent Runtime client (knowledge-base Retrieve), standard retries.
pub fn bedrock_agent_runtime_client(
    config: &SdkConfig,
    settings: &Settings,
) -> aws_sdk_bedrockagentruntime::Client {
    let mut builder = aws_sdk_bedrockagentruntime::config::Builder::from(config);
    if let Some(endpoint) = &settings.bedrock_agent_runtime_endpoint_url {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_bedrockagentruntime::Client::from_conf(builder.build())
}
