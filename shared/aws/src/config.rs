//! AWS SDK configuration, built once per process.
//!
//! When `AWS_ENDPOINT_URL` is set every client goes to that endpoint (the
//! local stack, tests); otherwise the SDK's normal resolution applies.

use std::{sync::OnceLock, time::Duration};

use aws_credential_types::{
    Credentials,
    provider::{ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future},
};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_runtime_api::client::{
    http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector},
    runtime_components::RuntimeComponents,
};
use aws_smithy_types::{retry::RetryConfig, timeout::TimeoutConfig};
use aws_types::{SdkConfig, region::Region};

use domain::failure::Delivery;

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

/// The HTTPS client of every SDK client: rustls on ring (a smaller binary
/// than aws-lc, the SDK's default), trusting the Mozilla roots compiled into
/// the binary, or the files `SSL_CERT_FILE` / `SSL_CERT_DIR` name when set.
/// Nothing of it is built at start: the client, its TLS configuration and
/// its trust store are made on the first request.
pub fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(OnFirstRequest::default())
}

/// Whether `SSL_CERT_FILE` or `SSL_CERT_DIR` is set: then the roots are read
/// from those files (the OpenSSL convention) instead of the compiled-in ones.
pub fn custom_roots() -> bool {
    std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some()
}

fn rustls_client() -> SharedHttpClient {
    let builder =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    match tls_context() {
        Some(context) => builder.tls_context(context).build_https(),
        None => builder.build_https(),
    }
}

/// The trust store: the compiled-in roots, or the native ones when
/// [`custom_roots`]. Only an invalid additional server name fails the
/// context, and none is set; `None` then keeps the client's default.
fn tls_context() -> Option<TlsContext> {
    let trust = if custom_roots() {
        TrustStore::default()
    } else {
        TrustStore::empty().with_pem_certificate(mozilla_roots_pem())
    };
    TlsContext::builder().with_trust_store(trust).build().ok()
}

/// The webpki-root-certs roots as PEM, the one form the SDK's trust store takes.
fn mozilla_roots_pem() -> Vec<u8> {
    use base64::Engine as _;
    let mut pem = Vec::with_capacity(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() * 2_200);
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        pem.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(cert.as_ref()).as_bytes());
        pem.extend_from_slice(b"\n-----END CERTIFICATE-----\n");
    }
    pem
}

/// The SDK's client builds its TLS connector when each SDK client is made
/// (`validate_base_client_config`), so a function with six clients parsed the
/// trust store six times before it was ready. This one makes the client on
/// the first request, and leaves the connector to it.
#[derive(Debug, Default)]
struct OnFirstRequest(OnceLock<SharedHttpClient>);

impl HttpClient for OnFirstRequest {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.get_or_init(rustls_client).http_connector(settings, components)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.get_or_init(rustls_client).connector_metadata()
    }
}

/// A Lambda function's SDK configuration, made without `aws-config`: the
/// region and endpoint given (`AWS_REGION`, `AWS_ENDPOINT_URL`), the
/// credentials Lambda puts in the environment, our HTTPS client and
/// deadlines. Nothing is read from disk at start, and no other credential
/// provider (profiles, SSO, STS, IMDS, ECS) is in the functions' dependencies
/// (docs/decisions/0002-environment-credentials.md).
pub fn function_sdk_config(region: &str, endpoint: Option<&str>) -> SdkConfig {
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(EnvironmentCredentials))
        .http_client(https_client())
        .retry_config(RetryConfig::standard())
        .timeout_config(timeouts());
    if let Some(endpoint) = endpoint {
        config = config.endpoint_url(endpoint);
    }
    config.build()
}

/// The credentials Lambda puts in a function's environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), read
/// at each call as `aws-config`'s environment provider reads them.
#[derive(Debug)]
struct EnvironmentCredentials;

impl ProvideCredentials for EnvironmentCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(environment_credentials(|name| std::env::var(name).ok()))
    }
}

fn environment_credentials(var: impl Fn(&str) -> Option<String>) -> Result<Credentials, CredentialsError> {
    let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(key), Some(secret)) => {
            Ok(Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "environment"))
        }
        _ => {
            Err(CredentialsError::not_loaded("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set"))
        }
    }
}

/// Loads the SDK configuration for a region (and endpoint) with the default
/// credential chain (profiles included), for the operator's tools (feature
/// `operator`); functions use [`function_sdk_config`].
#[cfg(feature = "operator")]
pub async fn sdk_config(region: &str, endpoint: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .region(Region::new(region.to_owned()))
        .timeout_config(timeouts());
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// SDK configuration for an emulator: its endpoint and throwaway static credentials,
/// so tools and tests never pick up a developer's real AWS identity by accident.
/// For setting the emulator up and inspecting it: its deadlines are generous,
/// since a busy machine's emulator is slower than AWS, and no visitor waits.
#[cfg(feature = "operator")]
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

/// One try of a call whose side effect lands outside our tables (SES, SNS,
/// Lambda Invoke): long enough that a provider answering late is waited for
/// rather than asked twice, short enough that a record with two sends still
/// ends inside its consumer's `RECORD_TIME`.
pub const SEND_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);

/// Deadlines for a sending client: one attempt of [`SEND_ATTEMPT_TIMEOUT`],
/// the operation no longer (retries that may re-send are forbidden anyway).
pub fn send_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(SEND_ATTEMPT_TIMEOUT)
        .operation_timeout(SEND_ATTEMPT_TIMEOUT + CONNECT_TIMEOUT)
        .build()
}

/// Classifies a failed SDK call with a side effect. A connection that failed
/// before the request was written (refused, connect timeout) is `NotSent`;
/// no read timeout is set on the connector, so its timeouts are connects.
pub fn delivery_of<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> Delivery {
    use aws_smithy_runtime_api::client::result::SdkError;
    match err {
        SdkError::ConstructionFailure(_) | SdkError::DispatchFailure(_) | SdkError::ServiceError(_) => {
            Delivery::NotSent
        }
        _ => Delivery::Unknown,
    }
}

/// Forbids the SDK's retry of an attempt whose request may have reached the
/// provider (an attempt timeout, an unreadable answer): the standard retry
/// would send it again. Throttling, 5xx answers and failed connections are
/// still retried as usual; they are answers that nothing was done.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetryAfterSending;

impl aws_smithy_runtime_api::client::retries::classifiers::ClassifyRetry for NoRetryAfterSending {
    fn classify_retry(
        &self,
        ctx: &aws_smithy_runtime_api::client::interceptors::context::InterceptorContext,
    ) -> aws_smithy_runtime_api::client::retries::classifiers::RetryAction {
        use aws_smithy_runtime_api::client::retries::classifiers::RetryAction;
        match ctx.output_or_error() {
            Some(Err(err)) if err.is_timeout_error() || err.is_response_error() => {
                RetryAction::RetryForbidden
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "no retry after sending"
    }
}

/// SDK configuration for an emulator that enforces IAM: the access key of one
/// of its principals.
#[cfg(feature = "operator")]
pub async fn emulator_sdk_config_with(
    endpoint: &str,
    region: &str,
    access_key_id: &str,
    secret_access_key: &str,
) -> SdkConfig {
    let credentials = Credentials::new(access_key_id, secret_access_key, None, None, "emulator");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(credentials)
        .timeout_config(timeouts())
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::{CertificateDer, pem::PemObject};

    use super::*;

    #[test]
    fn the_compiled_in_roots_read_back_as_every_mozilla_root_certificate() {
        // The SDK's trust store panics on PEM it cannot read, so this is checked here.
        let read: Vec<CertificateDer<'_>> =
            CertificateDer::pem_slice_iter(&mozilla_roots_pem()).collect::<Result<_, _>>().unwrap();
        assert!(read.len() > 100, "{} roots", read.len());
        assert_eq!(read.as_slice(), webpki_root_certs::TLS_SERVER_ROOT_CERTS);
    }

    #[test]
    fn environment_credentials_need_a_key_and_a_secret_and_take_the_session_token_when_set() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
        };
        let full = environment_credentials(env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ]))
        .unwrap();
        assert_eq!(
            (full.access_key_id(), full.secret_access_key(), full.session_token()),
            ("AKID", "secret", Some("token"))
        );
        let no_token = environment_credentials(env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ]))
        .unwrap();
        assert_eq!(no_token.session_token(), None);
        assert!(
            environment_credentials(env(&[("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_SECRET_ACCESS_KEY", " ")]))
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_function_takes_its_region_endpoint_and_credentials_from_the_settings_and_environment() {
        let config = function_sdk_config("eu-west-1", Some("http://127.0.0.1:9"));
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:9"));
        assert!(config.credentials_provider().is_some());
        assert!(config.http_client().is_some(), "no default client is compiled in: ours must be set");
        assert_eq!(config.timeout_config().and_then(|t| t.operation_timeout()), Some(OPERATION_TIMEOUT));
    }
}
