//! S3 `GetObject` and `PutObject`, the only S3 calls the functions make,
//! signed with SigV4 by `aws-sigv4` (the SDK's own signer) and sent on the
//! SDK's HTTPS connector, with the same deadlines and standard-mode retries
//! as every SDK client here.
//!
//! Not `aws-sdk-s3`: for two calls it linked S3's endpoint rules and its
//! flexible-checksum support, whose CRC tables alone (crc-fast) were about
//! 0.7 MB of every function's zip (docs/performance.md). Tools and tests
//! keep the SDK client (`local_stack::s3_client`).

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, SystemTime},
};

use aws_credential_types::{
    Credentials,
    provider::{ProvideCredentials, SharedCredentialsProvider, error::CredentialsError},
};
use aws_sigv4::{
    http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    },
    sign::v4,
};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::{
    http::HttpConnector,
    orchestrator::{HttpRequest, HttpResponse},
    result::ConnectorError,
};
use aws_smithy_types::body::SdkBody;
use aws_types::SdkConfig;
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::aws::{ATTEMPT_TIMEOUT, OPERATION_TIMEOUT};

/// Tries of one call, as the SDK's standard retry mode.
const MAX_ATTEMPTS: u32 = 3;
/// The first retry waits up to this long (jittered), doubling after.
const BACKOFF: Duration = Duration::from_millis(50);
/// Credentials closer than this to their expiry are fetched again.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Key bytes sent as they are; every other byte is percent-encoded (S3's rule).
const KEY_BYTES: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// An S3 client for `GetObject` and `PutObject`. Cheap to clone.
#[derive(Clone)]
pub struct S3 {
    inner: Arc<Inner>,
}

struct Inner {
    region: Option<String>,
    /// Path-style URLs on this endpoint (an emulator) instead of S3's own.
    endpoint: Option<String>,
    provider: Option<SharedCredentialsProvider>,
    credentials: Mutex<Option<Credentials>>,
    connector: OnceLock<Connector>,
}

/// What one S3 call failed on.
#[derive(Debug, thiserror::Error)]
#[error("S3 {operation} of s3://{bucket}/{key} failed")]
pub struct S3Error {
    pub operation: &'static str,
    pub bucket: String,
    pub key: String,
    #[source]
    pub failure: Failure,
}

impl S3Error {
    /// S3's error code (`NoSuchKey`, `AccessDenied`, ...), when S3 answered one.
    pub fn code(&self) -> Option<&str> {
        match &self.failure {
            Failure::Service { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("S3 answered {code} (HTTP {status}){}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Service { status: u16, code: String, message: String },
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("the connection failed")]
    Connection(#[source] ConnectorError),
    #[error("the answer's body could not be read")]
    Body(#[source] aws_smithy_types::byte_stream::error::Error),
    #[error("no credentials")]
    Credentials(#[source] CredentialsError),
    #[error("no credentials provider is configured")]
    NoCredentialsProvider,
    #[error("no region is configured")]
    NoRegion,
    #[error("the request could not be made")]
    Request(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Failure {
    /// Worth another try: the network, a deadline, S3's 5xx and throttling.
    fn is_transient(&self) -> bool {
        match self {
            Self::TimedOut(_) | Self::Connection(_) | Self::Body(_) => true,
            Self::Service { status, code, .. } => {
                *status >= 500
                    || *status == 429
                    || matches!(
                        code.as_str(),
                        "SlowDown" | "RequestTimeout" | "Throttling" | "ThrottlingException"
                    )
            }
            _ => false,
        }
    }
}

impl S3 {
    /// Region, endpoint and credentials from the SDK configuration; the
    /// connection is made on the first call.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                region: config.region().map(|r| r.to_string()),
                endpoint: config.endpoint_url().map(|e| e.trim_end_matches('/').to_owned()),
                provider: config.credentials_provider(),
                credentials: Mutex::default(),
                connector: OnceLock::new(),
            }),
        }
    }

    /// The object's bytes, or `None` if S3 answered `NoSuchKey`.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, S3Error> {
        let request =
            Call { operation: "GetObject", bucket, key, method: "GET", headers: &[], body: Bytes::new() };
        match self.send(&request).await {
            Ok(body) => Ok(Some(body)),
            Err(err) if err.code() == Some("NoSuchKey") => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Stores `body` at the key, encrypted at rest with S3-managed keys (SSE-S3).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(), S3Error> {
        let headers = [("content-type", content_type), ("x-amz-server-side-encryption", "AES256")];
        let request = Call { operation: "PutObject", bucket, key, method: "PUT", headers: &headers, body };
        self.send(&request).await.map(|_| ())
    }

    /// One call with its retries, within the operation's deadline.
    async fn send(&self, call: &Call<'_>) -> Result<Bytes, S3Error> {
        let tries = async {
            let mut attempt = 1;
            loop {
                let result = match tokio::time::timeout(ATTEMPT_TIMEOUT, self.attempt(call)).await {
                    Ok(result) => result,
                    Err(_) => Err(Failure::TimedOut(ATTEMPT_TIMEOUT)),
                };
                match result {
                    Err(failure) if failure.is_transient() && attempt < MAX_ATTEMPTS => {
                        tracing::debug!(operation = call.operation, attempt, error = %failure, "retrying");
                        let ceiling = BACKOFF * 2u32.pow(attempt - 1);
                        tokio::time::sleep(ceiling.mul_f64(fastrand::f64())).await;
                        attempt += 1;
                    }
                    result => return result,
                }
            }
        };
        let result = match tokio::time::timeout(OPERATION_TIMEOUT, tries).await {
            Ok(result) => result,
            Err(_) => Err(Failure::TimedOut(OPERATION_TIMEOUT)),
        };
        result.map_err(|failure| S3Error {
            operation: call.operation,
            bucket: call.bucket.to_owned(),
            key: call.key.to_owned(),
            failure,
        })
    }

    async fn attempt(&self, call: &Call<'_>) -> Result<Bytes, Failure> {
        let region = self.inner.region.as_deref().ok_or(Failure::NoRegion)?;
        let credentials = self.credentials().await?;
        let request = signed_request(
            call,
            &object_url(self.inner.endpoint.as_deref(), region, call),
            region,
            credentials,
        )?;
        let response = self.connector().call(request).await.map_err(Failure::Connection)?;
        read_response(response).await
    }

    /// The provider's credentials, kept until five minutes before they expire.
    async fn credentials(&self) -> Result<Credentials, Failure> {
        let fresh = |c: &Credentials| {
            c.expiry().is_none_or(|expiry| expiry > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
        };
        if let Some(kept) = self.kept_credentials().filter(fresh) {
            return Ok(kept);
        }
        let provider = self.inner.provider.as_ref().ok_or(Failure::NoCredentialsProvider)?;
        let credentials = provider.provide_credentials().await.map_err(Failure::Credentials)?;
        if let Ok(mut kept) = self.inner.credentials.lock() {
            *kept = Some(credentials.clone());
        }
        Ok(credentials)
    }

    fn kept_credentials(&self) -> Option<Credentials> {
        self.inner.credentials.lock().ok().and_then(|kept| kept.clone())
    }

    fn connector(&self) -> &Connector {
        self.inner.connector.get_or_init(crate::aws::https_connector)
    }
}

/// One S3 request before it is addressed and signed.
struct Call<'a> {
    operation: &'static str,
    bucket: &'a str,
    key: &'a str,
    method: &'static str,
    headers: &'a [(&'a str, &'a str)],
    body: Bytes,
}

/// Path-style on an emulator's endpoint or for a bucket name with dots (which
/// S3's certificate does not cover as a host name); virtual-hosted otherwise.
fn object_url(endpoint: Option<&str>, region: &str, call: &Call<'_>) -> String {
    let key = utf8_percent_encode(call.key, KEY_BYTES);
    let bucket = call.bucket;
    let domain = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    match endpoint {
        Some(endpoint) => format!("{endpoint}/{bucket}/{key}"),
        None if bucket.contains('.') => format!("https://s3.{region}.{domain}/{bucket}/{key}"),
        None => format!("https://{bucket}.s3.{region}.{domain}/{key}"),
    }
}

/// The request with its SigV4 headers, signed as S3 expects: the payload's
/// SHA-256 in `x-amz-content-sha256`, the path encoded once and not normalized.
fn signed_request(
    call: &Call<'_>,
    url: &str,
    region: &str,
    credentials: Credentials,
) -> Result<HttpRequest, Failure> {
    signed_request_at(call, url, region, credentials, SystemTime::now())
}

fn signed_request_at(
    call: &Call<'_>,
    url: &str,
    region: &str,
    credentials: Credentials,
    time: SystemTime,
) -> Result<HttpRequest, Failure> {
    let mut builder = http::Request::builder().method(call.method).uri(url);
    for (name, value) in call.headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(call.body.clone()).map_err(request_error)?;

    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .map_err(request_error)?
        .into();
    let headers = request.headers().iter().filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)));
    let signable = SignableRequest::new(call.method, url, headers, SignableBody::Bytes(&call.body))
        .map_err(request_error)?;
    let (instructions, _signature) = sign(signable, &params).map_err(request_error)?.into_parts();
    instructions.apply_to_request_http1x(&mut request);
    HttpRequest::try_from(request.map(SdkBody::from)).map_err(request_error)
}

/// A request that could not be built or signed, its cause kept.
fn request_error(err: impl std::error::Error + Send + Sync + 'static) -> Failure {
    Failure::Request(Box::new(err))
}

/// The body of a 2xx answer; otherwise S3's `<Error>` as a [`Failure`].
async fn read_response(response: HttpResponse) -> Result<Bytes, Failure> {
    let status = response.status().as_u16();
    let body = aws_smithy_types::byte_stream::ByteStream::new(response.into_body())
        .collect()
        .await
        .map_err(Failure::Body)?
        .into_bytes();
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let text = String::from_utf8_lossy(&body);
    let code = xml_text(&text, "Code").unwrap_or(match status {
        403 => "AccessDenied",
        404 => "NotFound",
        _ => "Unknown",
    });
    Err(Failure::Service {
        status,
        code: code.to_owned(),
        message: xml_text(&text, "Message").unwrap_or_default().to_owned(),
    })
}

/// The text of the first `<tag>` in S3's flat error document.
fn xml_text<'a>(document: &'a str, tag: &str) -> Option<&'a str> {
    let start = document.find(&format!("<{tag}>"))? + tag.len() + 2;
    let length = document[start..].find(&format!("</{tag}>"))?;
    Some(&document[start..start + length])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(key: &'a str, headers: &'a [(&'a str, &'a str)], body: &'static str) -> Call<'a> {
        let method = if body.is_empty() { "GET" } else { "PUT" };
        let operation = if body.is_empty() { "GetObject" } else { "PutObject" };
        Call {
            operation,
            bucket: "picasso-config",
            key,
            method,
            headers,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn objects_are_virtual_hosted_on_s3_and_path_style_on_an_emulator_or_a_dotted_bucket() {
        let get = call("tenants/my87674d777bf9/config.json", &[], "");
        assert_eq!(
            object_url(None, "us-east-1", &get),
            "https://picasso-config.s3.us-east-1.amazonaws.com/tenants/my87674d777bf9/config.json"
        );
        assert_eq!(
            object_url(Some("http://127.0.0.1:5000"), "us-east-1", &get),
            "http://127.0.0.1:5000/picasso-config/tenants/my87674d777bf9/config.json"
        );
        let dotted = Call { bucket: "config.example.org", ..call("a.json", &[], "") };
        assert_eq!(
            object_url(None, "eu-west-1", &dotted),
            "https://s3.eu-west-1.amazonaws.com/config.example.org/a.json"
        );
        assert_eq!(
            object_url(None, "cn-north-1", &call("a", &[], "")),
            "https://picasso-config.s3.cn-north-1.amazonaws.com.cn/a"
        );
    }

    #[test]
    fn a_key_keeps_its_slashes_and_percent_encodes_everything_else_once() {
        let odd = call("submissions/a b/ü+x=1&y.json", &[], "");
        assert_eq!(
            object_url(Some("http://s3"), "us-east-1", &odd),
            "http://s3/picasso-config/submissions/a%20b/%C3%BC%2Bx%3D1%26y.json"
        );
    }

    /// The expected headers were computed with botocore 1.44's `S3SigV4Auth`
    /// (the signer of the AWS CLI and boto3) for the same requests,
    /// credentials and time: the emulator does not check signatures.
    #[test]
    fn requests_are_signed_as_botocore_signs_them_for_s3() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_633_600); // 2025-12-02T00:00:00Z
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let sign = |call: &Call<'_>, token: Option<&str>| {
            let credentials = Credentials::new("AKIDEXAMPLE", secret, token.map(str::to_owned), None, "test");
            let url = object_url(None, "us-east-1", call);
            let signed = signed_request_at(call, &url, "us-east-1", credentials, time).unwrap();
            let header = |name: &str| signed.headers().get(name).unwrap_or_default().to_owned();
            (header("x-amz-date"), header("x-amz-content-sha256"), header("authorization"))
        };
        let scope = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251202/us-east-1/s3/aws4_request";

        let headers = [("content-type", "application/json"), ("x-amz-server-side-encryption", "AES256")];
        let (date, sha256, authorization) =
            sign(&call("submissions/T1/f/s 1.json", &headers, "{\"a\":1}"), None);
        assert_eq!(date, "20251202T000000Z");
        assert_eq!(sha256, "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862");
        assert_eq!(
            authorization,
            format!(
                "{scope}, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;\
                 x-amz-server-side-encryption, \
                 Signature=d9711e4fdc92b83d66603989a3fefeace160d56a810e12111b445f0a8cd5791a"
            )
        );

        let (_, sha256, authorization) =
            sign(&call("tenants/my87674d777bf9/config.json", &[], ""), Some("SESSIONTOKEN"));
        assert_eq!(sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(
            authorization,
            format!(
                "{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, \
                 Signature=497178e4de963cc608280a0d7be2fa682675760122a29aad4fe9733aff5bf797"
            )
        );
    }

    #[test]
    fn an_s3_error_document_gives_its_code_and_message() {
        let document = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>a</Key></Error>";
        assert_eq!(xml_text(document, "Code"), Some("NoSuchKey"));
        assert_eq!(xml_text(document, "Message"), Some("The specified key does not exist."));
        assert_eq!(xml_text("<Error></Error>", "Code"), None);
        assert_eq!(xml_text("<Code>unterminated", "Code"), None);
    }

    /// A client of an endpoint on 127.0.0.1 that answers each request with
    /// the next of `answers` (raw HTTP), and counts the requests.
    async fn against(answers: Vec<&'static str>) -> (S3, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
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
            .region(aws_types::region::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(SharedCredentialsProvider::new(credentials))
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
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_missing_key_is_none_and_a_denial_is_an_error_with_its_code_and_not_retried() {
        let (s3, _) = against(vec![NO_SUCH_KEY]).await;
        assert_eq!(s3.get_object("bucket", "missing.json").await.unwrap(), None);
        let (s3, requests) = against(vec![DENIED]).await;
        let err = s3.get_object("bucket", "secret.json").await.unwrap_err();
        assert_eq!(err.code(), Some("AccessDenied"));
        assert_eq!(err.to_string(), "S3 GetObject of s3://bucket/secret.json failed");
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stalled_endpoint_fails_the_call_at_its_deadline() {
        let (s3, _) = against(vec![]).await;
        let err = s3
            .put_object("bucket", "a.json", "application/json", Bytes::from_static(b"{}"))
            .await
            .unwrap_err();
        assert!(matches!(err.failure, Failure::TimedOut(_)), "{err:?}");
    }

    #[test]
    fn throttling_server_errors_and_the_network_are_retried_and_denials_are_not() {
        let service =
            |status: u16, code: &str| Failure::Service { status, code: code.into(), message: String::new() };
        assert!(service(503, "SlowDown").is_transient());
        assert!(service(500, "InternalError").is_transient());
        assert!(service(400, "RequestTimeout").is_transient());
        assert!(Failure::TimedOut(ATTEMPT_TIMEOUT).is_transient());
        assert!(!service(403, "AccessDenied").is_transient());
        assert!(!service(404, "NoSuchBucket").is_transient());
        assert!(!Failure::NoRegion.is_transient());
    }
}
