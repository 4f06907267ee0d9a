//! The SES v2 adapter of the mail port.

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use domain::mail::{Delivery, Email, MailError, Mailer};

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
pub fn ses_client(config: &aws_types::SdkConfig) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::config::Builder::from(config)
        .timeout_config(crate::config::send_timeouts())
        .retry_classifier(crate::config::NoRetryAfterSending)
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
            MailError { permanent, delivery: crate::config::delivery_of(&err), source: Box::new(err) }
        })
    }
}
