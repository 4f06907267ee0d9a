//! The mail port (`ses:SendEmail`) and its SES v2 adapter.

use std::future::Future;

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

pub use crate::aws::Delivery;

/// One email with a text and an HTML part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
#[error("email {}", match (.delivery, .permanent) {
    (Delivery::Unknown, _) => "may have been sent: the answer was lost",
    (_, true) => "not sent (permanent)",
    _ => "not sent",
})]
pub struct MailError {
    /// Retrying the same message will not help (e.g. the sender is not verified).
    pub permanent: bool,
    /// Whether SES may have taken it: an email that may be out is never sent again.
    pub delivery: Delivery,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl crate::consumer::Permanence for MailError {
    fn is_permanent(&self) -> bool {
        self.permanent
    }
}

pub trait Mailer: Send + Sync + 'static {
    fn send(&self, email: &Email) -> impl Future<Output = Result<(), MailError>> + Send;
}

#[derive(Clone)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl SesMailer {
    pub fn new(client: aws_sdk_sesv2::Client, from: impl Into<String>) -> Self {
        Self { client, from: from.into() }
    }
}

/// The SES client for sending: a late answer is waited for, and an attempt
/// that may have reached SES is never retried by the SDK (SES takes no
/// idempotency key, so a retry would be a second email).
pub fn ses_client(config: &aws_config::SdkConfig) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::config::Builder::from(config)
        .timeout_config(crate::aws::send_timeouts())
        .retry_classifier(crate::aws::NoRetryAfterSending)
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let content = |data: &str| {
            Content::builder().data(data).charset("UTF-8").build().map_err(|e| MailError {
                permanent: true,
                delivery: Delivery::NotSent,
                source: e.into(),
            })
        };
        let message = Message::builder()
            .subject(content(&email.subject)?)
            .body(Body::builder().text(content(&email.text)?).html(content(&email.html)?).build())
            .build();
        let sent = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().set_to_addresses(Some(email.to.clone())).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        sent.map(|_| ()).map_err(|err| {
            let permanent = err.as_service_error().is_some_and(|e| {
                e.is_message_rejected()
                    || e.is_mail_from_domain_not_verified_exception()
                    || e.is_bad_request_exception()
            });
            MailError { permanent, delivery: crate::aws::delivery_of(&err), source: Box::new(err) }
        })
    }
}
