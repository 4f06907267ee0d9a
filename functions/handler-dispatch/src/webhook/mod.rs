//! The `webhook` handler: an HTTPS POST of the submission to the tenant's
//! receiver, within a timeout, only to public addresses, with no redirect
//! followed; and its adapter, one HTTP/1.1 request per delivery over a
//! connection opened to the checked addresses.

pub mod target;

use std::{
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    sync::{Arc, OnceLock},
    time::Duration,
};

use bytes::Bytes;
use domain::fulfillment::StoredSubmission;
use http::{Request, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore, pki_types::ServerName};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

pub use target::{WebhookUrl, is_public};

/// Per address tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Resolution, connection, TLS, request and the response's status line.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
const USER_AGENT: &str = concat!("picasso-handler-dispatch/", env!("CARGO_PKG_VERSION"));

/// What the receiver gets.
pub fn webhook_body(submission: &StoredSubmission) -> Value {
    json!({
        "form_id": submission.form_id,
        "submission_id": submission.submission_id,
        "priority": submission.priority,
        "timestamp": submission.submitted_at,
        "data": submission.form_data,
    })
}

/// What a receiver's HTTP status means for the submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 2xx.
    Delivered,
    /// 4xx other than 408 and 429, and redirects (never followed): sending
    /// the same request again will not help.
    Rejected,
    /// 5xx, 408 and 429: the receiver may take it later.
    TryLater,
}

pub fn reply_to(status: u16) -> Reply {
    match status {
        200..=299 => Reply::Delivered,
        408 | 429 | 500..=599 => Reply::TryLater,
        _ => Reply::Rejected,
    }
}

/// Why a webhook was not delivered. Messages name the host, never the URL's
/// path or query (they may carry tokens or personal data).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook_url is not a valid URL")]
    Unparsable(#[source] http::uri::InvalidUri),
    #[error("webhook_url must be an https:// URL")]
    NotHttps,
    #[error("webhook_url names no host")]
    NoHost,
    #[error("webhook_url must not carry credentials (user:password@)")]
    Credentials,
    #[error("webhook host {host} could not be resolved")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "webhook host {host} resolves to {address}, a loopback, private, link-local or reserved address; refused"
    )]
    Refused { host: String, address: IpAddr },
    #[error("webhook host {host} is not a valid TLS server name")]
    ServerName {
        host: String,
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[error("the webhook request to {host} could not be built")]
    Build {
        host: String,
        #[source]
        source: http::Error,
    },
    #[error("TLS for webhooks could not be set up")]
    TlsSetup(#[source] rustls::Error),
    #[error("could not connect to webhook host {host}")]
    Connect {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("TLS handshake with webhook host {host} failed")]
    Tls {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("webhook request to {host} failed")]
    Request {
        host: String,
        #[source]
        source: hyper::Error,
    },
    #[error("webhook host {host} did not answer within {TOTAL_TIMEOUT:?}")]
    Timeout { host: String },
    #[error("webhook host {host} answered {status}")]
    Status { host: String, status: u16 },
}

impl domain::failure::Permanence for WebhookError {
    /// The URL or the receiver refuses this submission: retrying will not
    /// help until the tenant's configuration (or the receiver) changes.
    fn is_permanent(&self) -> bool {
        match self {
            Self::Unparsable(_)
            | Self::NotHttps
            | Self::NoHost
            | Self::Credentials
            | Self::Refused { .. }
            | Self::ServerName { .. }
            | Self::Build { .. } => true,
            Self::Status { status, .. } => reply_to(*status) == Reply::Rejected,
            Self::Resolve { .. }
            | Self::TlsSetup(_)
            | Self::Connect { .. }
            | Self::Tls { .. }
            | Self::Request { .. }
            | Self::Timeout { .. } => false,
        }
    }
}

/// The receiver took the submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub host: String,
    pub status: u16,
}

/// One HTTP POST of a JSON document, with an `Idempotency-Key` header (the
/// submission id): a delivery whose answer was lost is posted again, and the
/// receiver can tell it is the same one.
pub trait Webhook: Send + Sync + 'static {
    fn post(
        &self,
        url: &str,
        idempotency_key: &str,
        document: Vec<u8>,
    ) -> impl Future<Output = Result<Delivered, WebhookError>> + Send;
}

/// Webhooks over HTTPS (rustls on ring, the roots the AWS clients trust).
pub struct HttpsWebhook {
    /// Made on the first HTTPS delivery, not at start.
    tls: OnceLock<Result<TlsConnector, rustls::Error>>,
    /// `WEBHOOK_ALLOW_PRIVATE`: plain HTTP and private targets (local development).
    allow_private: bool,
}

impl HttpsWebhook {
    pub fn new(allow_private: bool) -> Self {
        Self { tls: OnceLock::new(), allow_private }
    }

    async fn exchange(
        &self,
        url: &WebhookUrl,
        idempotency_key: &str,
        document: Vec<u8>,
    ) -> Result<u16, WebhookError> {
        let host = &url.host;
        let request = Request::post(url.path_and_query())
            .header(header::HOST, url.authority())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .header("idempotency-key", idempotency_key)
            .body(Full::new(Bytes::from(document)))
            .map_err(|source| WebhookError::Build { host: host.clone(), source })?;
        if !url.https {
            let addrs = url.resolve(self.allow_private).await?;
            return send(connect(host, &addrs).await?, request, host).await;
        }
        let tls = self
            .tls
            .get_or_init(tls_connector)
            .as_ref()
            .map_err(|err| WebhookError::TlsSetup(err.clone()))?;
        let name = ServerName::try_from(host.clone())
            .map_err(|source| WebhookError::ServerName { host: host.clone(), source })?;
        let addrs = url.resolve(self.allow_private).await?;
        let tcp = connect(host, &addrs).await?;
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|source| WebhookError::Tls { host: host.clone(), source })?;
        send(stream, request, host).await
    }
}

impl Webhook for HttpsWebhook {
    async fn post(
        &self,
        url: &str,
        idempotency_key: &str,
        document: Vec<u8>,
    ) -> Result<Delivered, WebhookError> {
        let url = WebhookUrl::parse(url, self.allow_private)?;
        let status = tokio::time::timeout(TOTAL_TIMEOUT, self.exchange(&url, idempotency_key, document))
            .await
            .map_err(|_| WebhookError::Timeout { host: url.host.clone() })??;
        match reply_to(status) {
            Reply::Delivered => Ok(Delivered { host: url.host, status }),
            Reply::Rejected | Reply::TryLater => Err(WebhookError::Status { host: url.host, status }),
        }
    }
}

/// ring, the provider the AWS clients use, chosen explicitly rather than
/// installed process-wide; the roots they trust too: the compiled-in Mozilla
/// roots, or the files `SSL_CERT_FILE` / `SSL_CERT_DIR` name.
fn tls_connector() -> Result<TlsConnector, rustls::Error> {
    let mut roots = RootCertStore::empty();
    if aws_adapters::config::custom_roots() {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(error = %error, "a root certificate of SSL_CERT_FILE / SSL_CERT_DIR could not be read");
        }
        roots.add_parsable_certificates(found.certs);
    } else {
        roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    }
    if roots.is_empty() {
        tracing::warn!("no root certificates: https webhooks will fail");
    }
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The first of the checked addresses that accepts a connection.
async fn connect(host: &str, addrs: &[SocketAddr]) -> Result<TcpStream, WebhookError> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no addresses");
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(err)) => last = err,
            Err(_) => {
                last = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {CONNECT_TIMEOUT:?}"),
                )
            }
        }
    }
    Err(WebhookError::Connect { host: host.to_owned(), source: last })
}

/// One request on a fresh connection; the status is all we read.
async fn send<S>(io: S, request: Request<Full<Bytes>>, host: &str) -> Result<u16, WebhookError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |source| WebhookError::Request { host: host.to_owned(), source };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(failed)?;
    let mut connection = std::pin::pin!(connection);
    let mut answer = std::pin::pin!(sender.send_request(request));
    let response = tokio::select! {
        biased;
        response = &mut answer => response,
        // The connection ended first: the response, or why there is none, is with the request.
        _ = &mut connection => answer.await,
    };
    Ok(response.map_err(failed)?.status().as_u16())
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use axum::{Router, http::StatusCode, response::Redirect, routing::post};

    use domain::failure::Permanence;

    use super::*;
    use crate::tests::submission;

    #[test]
    fn the_webhook_body_is_form_submission_priority_timestamp_and_data() {
        let body = webhook_body(&submission());
        assert_eq!(
            body,
            json!({
                "form_id": "reading_buddy_application",
                "submission_id": "reading_1_abc",
                "priority": "high",
                "timestamp": "2026-11-25T03:04:05.123Z",
                "data": {"email": "ana@example.org", "first_name": "Ana"},
            })
        );
    }

    #[test]
    fn two_hundreds_deliver_client_errors_reject_and_server_errors_408_and_429_retry() {
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(reply_to(status), Reply::Delivered, "{status}");
        }
        for status in [400, 401, 403, 404, 405, 410, 413, 422, 301, 302, 307] {
            assert_eq!(reply_to(status), Reply::Rejected, "{status}");
        }
        for status in [408, 429, 500, 502, 503, 504] {
            assert_eq!(reply_to(status), Reply::TryLater, "{status}");
        }
        let status = |status| WebhookError::Status { host: "h".into(), status };
        assert!(status(404).is_permanent());
        assert!(!status(503).is_permanent());
        assert!(!status(429).is_permanent());
        assert!(!WebhookError::Timeout { host: "h".into() }.is_permanent());
    }

    /// A receiver on loopback answering `/status/<code>`; counts every request.
    async fn receiver() -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        let app = Router::new()
            .route(
                "/status/{code}",
                post(move |axum::extract::Path(code): axum::extract::Path<u16>| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async move { StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT) }
                }),
            )
            .route("/moved", post(|| async { Redirect::temporary("/status/200") }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), hits)
    }

    #[tokio::test]
    async fn a_receivers_status_decides_between_delivered_rejected_and_retry() {
        let (base, hits) = receiver().await;
        let webhook = HttpsWebhook::new(true);
        let delivered =
            webhook.post(&format!("{base}/status/201?token=t"), "sub_1", b"{}".to_vec()).await.unwrap();
        assert_eq!(delivered, Delivered { host: "127.0.0.1".into(), status: 201 });
        let rejected =
            webhook.post(&format!("{base}/status/404"), "sub_1", b"{}".to_vec()).await.unwrap_err();
        assert!(rejected.is_permanent(), "{rejected}");
        let busy = webhook.post(&format!("{base}/status/503"), "sub_1", b"{}".to_vec()).await.unwrap_err();
        assert!(!busy.is_permanent(), "{busy}");
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let (base, hits) = receiver().await;
        let err = HttpsWebhook::new(true)
            .post(&format!("{base}/moved"), "sub_1", b"{}".to_vec())
            .await
            .unwrap_err();
        assert!(matches!(err, WebhookError::Status { status: 307, .. }), "{err}");
        assert!(err.is_permanent());
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect target was never called");
    }

    #[tokio::test]
    async fn without_allow_private_nothing_is_sent_to_loopback() {
        let (base, hits) = receiver().await;
        let https = base.replace("http://", "https://");
        let webhook = HttpsWebhook::new(false);
        let plain = webhook.post(&format!("{base}/status/200"), "sub_1", b"{}".to_vec()).await.unwrap_err();
        assert!(matches!(plain, WebhookError::NotHttps), "{plain}");
        let loopback =
            webhook.post(&format!("{https}/status/200"), "sub_1", b"{}".to_vec()).await.unwrap_err();
        assert!(matches!(loopback, WebhookError::Refused { .. }), "{loopback}");
        assert!(plain.is_permanent() && loopback.is_permanent());
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_error_message_names_the_host_but_not_the_path_or_query() {
        let err = HttpsWebhook::new(false)
            .post("https://10.9.8.7/hooks/secret-path?email=ana@example.org", "sub_1", b"{}".to_vec())
            .await
            .unwrap_err();
        let message = domain::report::error_chain(&err);
        assert!(message.contains("10.9.8.7"), "{message}");
        assert!(!message.contains("secret-path") && !message.contains("ana@"), "{message}");
    }
}
