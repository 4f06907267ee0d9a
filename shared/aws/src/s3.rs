//! S3 `GetObject` and `PutObject`, the only S3 calls the functions make,
//! through `aws-sdk-s3` with the deadlines and standard retries every client
//! here has ([`crate::config::function_sdk_config`]). This module only names the
//! two calls and keeps S3's error code on the error.

use aws_sdk_s3::{
    error::{ProvideErrorMetadata, SdkError},
    primitives::ByteStream,
    types::ServerSideEncryption,
};
use aws_types::SdkConfig;
use std::sync::Arc;

use bytes::Bytes;
use domain::tenant::{ConfigSource, SourceError, TenantLoader};

type Source = Box<dyn std::error::Error + Send + Sync>;

/// An S3 client for `GetObject` and `PutObject`. Cheap to clone.
#[derive(Clone, Debug)]
pub struct S3 {
    client: aws_sdk_s3::Client,
}

/// What one S3 call failed on.
#[derive(Debug, thiserror::Error)]
#[error("S3 {operation} of s3://{bucket}/{key} failed")]
pub struct S3Error {
    pub operation: &'static str,
    pub bucket: String,
    pub key: String,
    /// S3's error code (`NoSuchKey`, `AccessDenied`, ...), when S3 answered one.
    pub code: Option<String>,
    #[source]
    pub source: Source,
}

impl S3Error {
    /// S3's error code, when S3 answered one (not a timeout or a network failure).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

impl S3 {
    /// From the SDK configuration; against an emulator (an endpoint URL is
    /// set) with path-style addresses, as emulators serve buckets.
    pub fn new(config: &SdkConfig) -> Self {
        Self { client: s3_client(config) }
    }

    /// The object's bytes, or `None` if S3 answered `NoSuchKey`.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, S3Error> {
        let failed = |code: Option<String>, source: Source| S3Error {
            operation: "GetObject",
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            code,
            source,
        };
        let output = match self.client.get_object().bucket(bucket).key(key).send().await {
            Ok(output) => output,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(err) => return Err(failed(code_of(&err), Box::new(err))),
        };
        let body = output.body.collect().await.map_err(|err| failed(None, Box::new(err)))?;
        Ok(Some(body.into_bytes()))
    }

    /// Stores `body` at the key, encrypted at rest with S3-managed keys (SSE-S3).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(), S3Error> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| S3Error {
                operation: "PutObject",
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                code: code_of(&err),
                source: Box::new(err),
            })
    }
}

fn code_of<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<String> {
    match err {
        SdkError::ServiceError(service) => service.err().code().map(str::to_owned),
        _ => None,
    }
}

/// The tenant loader every function builds once, over the config bucket (`CONFIG_BUCKET`).
/// The SDK's S3 client; against an emulator (an endpoint URL is set) with
/// path-style addresses, as emulators on `localhost` serve buckets.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let builder = aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
    aws_sdk_s3::Client::from_conf(builder.build())
}

pub fn s3_tenant_loader(sdk_config: &SdkConfig, bucket: &str) -> Arc<TenantLoader<S3ConfigSource>> {
    Arc::new(TenantLoader::new(S3ConfigSource::new(S3::new(sdk_config), bucket)))
}

#[derive(Clone)]
pub struct S3ConfigSource {
    client: S3,
    bucket: String,
}

impl S3ConfigSource {
    pub fn new(client: S3, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }
}

impl ConfigSource for S3ConfigSource {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SourceError> {
        match self.client.get_object(&self.bucket, key).await {
            Ok(object) => Ok(object.map(Vec::from)),
            Err(err) if err.code() == Some("AccessDenied") => {
                Err(SourceError::AccessDenied { key: key.to_owned(), source: Box::new(err) })
            }
            Err(err) => Err(SourceError::Unavailable(Box::new(err))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
    use aws_sdk_s3::config::retry::RetryConfig;

    use super::*;

    /// A client of an endpoint on 127.0.0.1 that answers each request with
    /// the next of `answers` (raw HTTP), and counts the requests.
    async fn against(answers: Vec<&'static str>) -> (S3, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let answer = answers.get(n).copied().unwrap_or("");
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    if answer.is_empty() {
                        tokio::time::sleep(Duration::from_secs(60)).await; // a stalled endpoint
                    } else {
                        let _ = socket.write_all(answer.as_bytes()).await;
                    }
                });
            }
        });
        let credentials = Credentials::new("AKID", "secret", None, None, "test");
        let config = SdkConfig::builder()
            .behavior_version(aws_smithy_runtime_api::client::behavior_version::BehaviorVersion::latest())
            .region(aws_types::region::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .http_client(crate::config::https_client())
            .retry_config(RetryConfig::standard())
            .timeout_config(crate::config::timeouts())
            .build();
        (S3::new(&config), requests)
    }

    const SLOW_DOWN: &str = "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 59\r\n\r\n\
                             <Error><Code>SlowDown</Code><Message>Slow</Message></Error>";
    const OBJECT: &str = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}";
    const NO_SUCH_KEY: &str = "HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 37\r\n\r\n\
                               <Error><Code>NoSuchKey</Code></Error>";
    const DENIED: &str = "HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 40\r\n\r\n\
                          <Error><Code>AccessDenied</Code></Error>";

    #[tokio::test]
    async fn a_throttled_read_is_tried_again_and_returns_the_object() {
        let (s3, requests) = against(vec![SLOW_DOWN, SLOW_DOWN, OBJECT]).await;
        let object = s3.get_object("bucket", "tenants/a/config.json").await.unwrap();
        assert_eq!(object.as_deref(), Some(&b"{}"[..]));
        assert_eq!(requests.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_missing_key_is_none_and_a_denial_is_an_error_with_its_code_and_not_retried() {
        let (s3, _) = against(vec![NO_SUCH_KEY]).await;
        assert_eq!(s3.get_object("bucket", "missing.json").await.unwrap(), None);
        let (s3, requests) = against(vec![DENIED]).await;
        let err = s3.get_object("bucket", "secret.json").await.unwrap_err();
        assert_eq!(err.code(), Some("AccessDenied"));
        assert_eq!(err.to_string(), "S3 GetObject of s3://bucket/secret.json failed");
        assert_eq!(requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stalled_endpoint_fails_the_call_at_its_deadline() {
        let (s3, _) = against(vec![]).await;
        let err = s3
            .put_object("bucket", "a.json", "application/json", Bytes::from_static(b"{}"))
            .await
            .unwrap_err();
        type PutError = SdkError<
            aws_sdk_s3::operation::put_object::PutObjectError,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >;
        assert!(matches!(err.source.downcast_ref::<PutError>(), Some(SdkError::TimeoutError(_))), "{err:?}");
    }
}
