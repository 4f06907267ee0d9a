//! The mail port (`ses:SendEmail`) and its SES v2 adapter.

use std::future::Future;

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

/// One email with a text and an HTML part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
#[error("email not sent{}", if *.permanent { " (permanent)" } else { "" })]
pub struct MailError {
    /// Retrying the same message will not help (e.g. the sender is not verified).
    pub permanent: bool,
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

impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let content = |data: &str| {
            Content::builder()
                .data(data)
                .charset("UTF-8")
                .build()
                .map_err(|e| MailError { permanent: true, source: e.into() })
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
            MailError { permanent, source: Box::new(err) }
        })
    }
}
